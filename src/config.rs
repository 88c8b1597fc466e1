//! Settings: built-in defaults, then `ufrecs.toml` (or `--config` / `UFRECS_CONFIG`), then
//! `UFRECS_<SECTION>_<KEY>` environment variables (`UFRECS_<SECTION>_<KEY>_FILE` reads the
//! value from a file, for secrets). Validated once; passed explicitly, never global.
//! Secrets are `SecretString`s, so `Debug` never shows them and the settings can be
//! logged at start.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub use crate::domain::directory::Strict;

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub server: Server,
    pub database: Database,
    pub auth: Auth,
    pub registry: Registry,
    pub http: Http,
    pub s3: S3,
    pub ws: Ws,
    pub compat: Compat,
    pub limits: Limits,
    pub log: Log,
    pub replication: Replication,
}

/// Continuous replication off the box by Litestream (section 10 of the contract).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Replication {
    /// Whether Litestream replicates the database: the server then leaves checkpoints to
    /// it and reports the replication lag.
    pub enabled: bool,
    /// Names this box's replica folder, `{s3.prefix}replica/{box_id}/`; generated at install.
    pub box_id: String,
    /// The replication user's S3 key (put, get, list; no delete). Empty: the operator's.
    pub access_key: String,
    #[serde(serialize_with = "expose")]
    pub secret_key: SecretString,
    /// The Litestream binary (0.5.x).
    pub litestream: PathBuf,
    /// Where Litestream serves its metrics (on loopback); the server reads it to tell a
    /// running Litestream from a stopped one.
    pub metrics_addr: String,
    /// How often Litestream reads the WAL and uploads what it found (its monitor and
    /// sync intervals): about what a box that dies loses, and one S3 PUT per interval
    /// while votes come in.
    pub sync_interval_ms: u64,
    /// After Litestream has been stopped this long, the server checkpoints the WAL itself
    /// (once a minute while it stays stopped), so a dead Litestream cannot fill the disk;
    /// Litestream then takes a fresh snapshot when it returns.
    pub checkpoint_after_stopped_secs: u64,
}

impl Default for Replication {
    fn default() -> Self {
        Replication {
            enabled: false,
            box_id: String::new(),
            access_key: String::new(),
            secret_key: SecretString::default(),
            litestream: "litestream".into(),
            metrics_addr: "127.0.0.1:9099".into(),
            sync_interval_ms: 1000,
            checkpoint_after_stopped_secs: 600,
        }
    }
}

/// The transparency log (section 6e).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// The checkpoints' origin line (a schema-less URL), also the log key's name.
    pub origin: String,
    /// The log's Ed25519 signing key, generated (mode 0600) when missing.
    pub key_file: PathBuf,
    /// How often a growing log signs a new checkpoint.
    pub checkpoint_interval_ms: u64,
    /// Verifier keys of the witnesses whose cosignatures are accepted and served.
    pub witnesses: Vec<String>,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            origin: "ufrecs.localhost/dev".into(),
            key_file: "data/log-key".into(),
            checkpoint_interval_ms: 1000,
            witnesses: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    pub listen: String,
    pub trusted_proxies: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Database {
    pub path: PathBuf,
    pub synchronous: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Auth {
    pub token_ttl_secs: u64,
    #[serde(serialize_with = "expose")]
    pub admin_token: SecretString,
    pub secret_file: PathBuf,
    pub failed_per_address_per_min: u32,
    pub failures_before_lockout: u32,
    /// Authentications that create a source, per client address and minute.
    pub new_sources_per_address_per_min: u32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Registry {
    pub strict: Strict,
}

impl Serialize for Strict {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Strict::Yes => s.serialize_bool(true),
            Strict::No => s.serialize_bool(false),
            Strict::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(Strict::Yes),
            Raw::Bool(false) => Ok(Strict::No),
            Raw::Text(t) => match t.trim() {
                "true" | "1" | "yes" | "on" => Ok(Strict::Yes),
                "false" | "0" | "no" | "off" => Ok(Strict::No),
                "auto" => Ok(Strict::Auto),
                _ => Err(serde::de::Error::custom("registry.strict must be true, false or auto")),
            },
        }
    }
}

/// Bounds on what one request may make the box keep or recompute.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// The highest vote and ballot index accepted: far above any real office's voters,
    /// and what bounds the cost of re-weighing an office.
    pub max_index: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_index: 10_000 }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Http {
    pub public_max_age_secs: u64,
    /// A client must send a request's headers within this time, or its connection is
    /// closed: slow clients cannot hold connections open for ever (slowloris). Idle
    /// keep-alive connections are closed after it too.
    pub header_timeout_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3 {
    pub endpoint: String,
    pub sts_endpoint: String,
    pub region: String,
    pub bucket: String,
    pub prefix: String,
    pub access_key: String,
    #[serde(serialize_with = "expose")]
    pub secret_key: SecretString,
    pub role_arn: String,
    pub credentials_ttl_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ws {
    pub wait_timeout_secs: u64,
    pub answer_timeout_secs: u64,
    pub max_waiting_per_office: u32,
    pub max_connections_per_address: u32,
    /// Waiting sockets per client address at one office: one address must not fill an
    /// office's queue and "verify" every vote.
    pub max_waiting_per_address_per_office: u32,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Compat {
    pub numeric_vote_ids: bool,
}

impl Default for Server {
    fn default() -> Self {
        Server { listen: "127.0.0.1:8000".into(), trusted_proxies: vec!["127.0.0.1".into(), "::1".into()] }
    }
}

impl Default for Database {
    fn default() -> Self {
        Database { path: "data/ufrecs.sqlite3".into(), synchronous: "full".into() }
    }
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            token_ttl_secs: 21600,
            admin_token: SecretString::default(),
            secret_file: "data/secret".into(),
            failed_per_address_per_min: 30,
            failures_before_lockout: 5,
            new_sources_per_address_per_min: 30,
        }
    }
}

impl Default for Http {
    fn default() -> Self {
        Http { public_max_age_secs: 1, header_timeout_secs: 15 }
    }
}

impl Default for S3 {
    fn default() -> Self {
        S3 {
            endpoint: String::new(),
            sts_endpoint: String::new(),
            region: "us-east-1".into(),
            bucket: "ufrecs-media".into(),
            prefix: String::new(),
            access_key: String::new(),
            secret_key: SecretString::default(),
            role_arn: String::new(),
            credentials_ttl_secs: 3600,
        }
    }
}

impl Default for Ws {
    fn default() -> Self {
        Ws {
            wait_timeout_secs: 900,
            answer_timeout_secs: 300,
            max_waiting_per_office: 100,
            max_connections_per_address: 200,
            max_waiting_per_address_per_office: 5,
        }
    }
}

/// Secrets are written out only where the defaults are merged with the file (the table
/// `load` builds); everywhere else, `SecretString` shows `[REDACTED]`.
fn expose<S: serde::Serializer>(secret: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(secret.expose_secret())
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0}: {1}")]
    Parse(String, String),
    #[error("{0}")]
    Invalid(String),
}

/// Where an installed box keeps its configuration (`install-home-prod`).
pub const SYSTEM_CONFIG: &str = "/etc/ufrecs/ufrecs.toml";

/// The config file to read: `--config`, else `UFRECS_CONFIG`, else `ufrecs.toml` in the
/// working directory if there is one, else `SYSTEM_CONFIG` if there is one (an operator on
/// the box who forgets `--config` still reaches the server's database). An explicitly
/// named file must exist.
pub fn load(explicit: Option<&Path>, env: &BTreeMap<String, String>) -> Result<Settings, ConfigError> {
    load_from(explicit, env, &[Path::new("ufrecs.toml"), Path::new(SYSTEM_CONFIG)])
}

/// `load`, with the files tried in turn when none is named.
fn load_from(
    explicit: Option<&Path>,
    env: &BTreeMap<String, String>,
    tried: &[&Path],
) -> Result<Settings, ConfigError> {
    let named = explicit.map(Path::to_path_buf).or_else(|| env.get("UFRECS_CONFIG").map(PathBuf::from));
    let file = named.or_else(|| tried.iter().find(|p| p.exists()).map(|p| p.to_path_buf()));
    let toml::Value::Table(mut table) =
        toml::Value::try_from(Settings::default()).map_err(|e| ConfigError::Invalid(e.to_string()))?
    else {
        unreachable!("settings serialise to a table")
    };
    if let Some(path) = &file {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.display().to_string(), e))?;
        let from_file: toml::Table =
            text.parse().map_err(|e: toml::de::Error| ConfigError::Parse(path.display().to_string(), e.to_string()))?;
        merge(&mut table, from_file);
    }
    apply_env(&mut table, env)?;
    let settings: Settings = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::Parse("configuration".into(), e.to_string()))?;
    settings.validate()
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Applies `UFRECS_<SECTION>_<KEY>[_FILE]` variables, typed like the key they replace.
fn apply_env(table: &mut toml::Table, env: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (name, raw) in env {
        let Some(rest) = name.strip_prefix("UFRECS_") else {
            continue;
        };
        if rest == "CONFIG" || rest == "LOG" {
            continue;
        }
        let lower = rest.to_ascii_lowercase();
        let Some((section, key)) = lower.split_once('_') else {
            log::warn!("ignoring unknown setting {name}");
            continue;
        };
        let Some(toml::Value::Table(sec)) = table.get_mut(section) else {
            log::warn!("ignoring unknown setting {name}");
            continue;
        };
        let (key, value) = if sec.contains_key(key) {
            (key.to_owned(), raw.clone())
        } else if let Some(k) = key.strip_suffix("_file").filter(|k| sec.contains_key(*k)) {
            let text = std::fs::read_to_string(raw).map_err(|e| ConfigError::Read(raw.clone(), e))?;
            (k.to_owned(), text.trim_end_matches(['\n', '\r']).to_owned())
        } else {
            log::warn!("ignoring unknown setting {name}");
            continue;
        };
        let typed = match &sec[&key] {
            toml::Value::Integer(_) => toml::Value::Integer(
                value.trim().parse().map_err(|_| ConfigError::Invalid(format!("{name} must be an integer")))?,
            ),
            toml::Value::Boolean(_) => toml::Value::Boolean(match value.trim() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                _ => return Err(ConfigError::Invalid(format!("{name} must be true or false"))),
            }),
            toml::Value::Array(_) => toml::Value::Array(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.into()))
                    .collect(),
            ),
            _ => toml::Value::String(value),
        };
        sec.insert(key, typed);
    }
    Ok(())
}

impl Settings {
    fn validate(mut self) -> Result<Self, ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.server.listen.parse::<SocketAddr>().is_err() {
            return bad(format!("server.listen: {:?} is not an address:port", self.server.listen));
        }
        for p in &self.server.trusted_proxies {
            if p.parse::<IpNet>().is_err() && p.parse::<IpAddr>().is_err() {
                return bad(format!("server.trusted_proxies: {p:?} is not an address or CIDR range"));
            }
        }
        if !matches!(self.database.synchronous.as_str(), "full" | "normal") {
            return bad("database.synchronous must be full or normal".into());
        }
        if self.http.header_timeout_secs == 0 {
            return bad("http.header_timeout_secs must be positive".into());
        }
        if !(1..=crate::domain::ids::Index::MAX as u32).contains(&self.limits.max_index) {
            return bad(format!("limits.max_index must be from 1 to {}", crate::domain::ids::Index::MAX));
        }
        if self.auth.token_ttl_secs == 0 {
            return bad("auth.token_ttl_secs must be positive".into());
        }
        let prefix = self.s3.prefix.trim_matches('/');
        if !prefix.is_empty() && prefix.split('/').any(|seg| crate::domain::ids::check_identifier(seg).is_err()) {
            return bad("s3.prefix: folders of A-Z a-z 0-9 . _ - separated by /".into());
        }
        self.s3.prefix = if prefix.is_empty() { String::new() } else { format!("{prefix}/") };
        if crate::domain::ids::check_identifier(&self.s3.bucket).is_err() {
            return bad("s3.bucket is not a valid bucket name".into());
        }
        if self.s3.sts_endpoint.is_empty() {
            self.s3.sts_endpoint = self.s3.endpoint.clone();
        }
        self.s3.credentials_ttl_secs = self.s3.credentials_ttl_secs.clamp(900, 43200);
        if !signed_note::is_key_name_valid(&self.log.origin) {
            return bad("log.origin must be a name without spaces or '+', such as observe.example.org/ufrecs".into());
        }
        if self.log.checkpoint_interval_ms == 0 {
            return bad("log.checkpoint_interval_ms must be positive".into());
        }
        if !self.replication.box_id.is_empty()
            && crate::domain::ids::check_identifier(&self.replication.box_id).is_err()
        {
            return bad("replication.box_id: A-Z a-z 0-9 . _ - only, at most 64".into());
        }
        if self.replication.metrics_addr.parse::<SocketAddr>().is_err() {
            return bad(format!(
                "replication.metrics_addr: {:?} is not an address:port",
                self.replication.metrics_addr
            ));
        }
        if !(100..=60_000).contains(&self.replication.sync_interval_ms) {
            return bad("replication.sync_interval_ms must be from 100 to 60000".into());
        }
        if self.replication.checkpoint_after_stopped_secs == 0 {
            return bad("replication.checkpoint_after_stopped_secs must be positive".into());
        }
        if self.replication.enabled {
            if self.replication.box_id.is_empty() {
                return bad("replication.enabled needs replication.box_id (install-home-prod generates one)".into());
            }
            if self.s3.endpoint.is_empty() {
                return bad("replication.enabled needs s3.endpoint (the replica goes to the media bucket)".into());
            }
        }
        for w in &self.log.witnesses {
            if let Err(e) = crate::domain::note::WitnessVerifier::parse(w) {
                return bad(format!("log.witnesses: {w:?} is not a witness verifier key ({e})"));
            }
        }
        Ok(self)
    }

    pub fn listen_addr(&self) -> SocketAddr {
        self.server.listen.parse().expect("validated")
    }

    pub fn trusted_proxies(&self) -> Vec<IpNet> {
        self.server
            .trusted_proxies
            .iter()
            .filter_map(|p| p.parse::<IpNet>().ok().or_else(|| p.parse::<IpAddr>().ok().map(IpNet::from)))
            .collect()
    }

    pub fn synchronous_full(&self) -> bool {
        self.database.synchronous == "full"
    }

    /// How the database is opened for writing: checkpoints are Litestream's while it
    /// replicates the file.
    pub fn durability(&self) -> crate::store::Durability {
        crate::store::Durability { synchronous_full: self.synchronous_full(), replicated: self.replication.enabled }
    }

    /// The replica's folder in the media bucket, without its final `/`.
    pub fn replica_path(&self, box_id: &str) -> String {
        format!("{}replica/{box_id}", self.s3.prefix)
    }

    /// The replication user's key, or the operator's when none is set.
    pub fn replication_key(&self) -> (String, SecretString) {
        if self.replication.access_key.is_empty() {
            (self.s3.access_key.clone(), self.s3.secret_key.clone())
        } else {
            (self.replication.access_key.clone(), self.replication.secret_key.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_named_file_the_first_that_exists_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let (local, system) = (dir.path().join("ufrecs.toml"), dir.path().join("etc-ufrecs.toml"));
        std::fs::write(&system, "[server]\nlisten = \"127.0.0.1:8123\"\n").unwrap();
        let s = load_from(None, &env(&[]), &[&local, &system]).unwrap();
        assert_eq!(s.server.listen, "127.0.0.1:8123", "the installed box's file");
        std::fs::write(&local, "[server]\nlisten = \"127.0.0.1:8124\"\n").unwrap();
        assert_eq!(load_from(None, &env(&[]), &[&local, &system]).unwrap().server.listen, "127.0.0.1:8124");
        let named = load_from(None, &env(&[("UFRECS_CONFIG", system.to_str().unwrap())]), &[&local]).unwrap();
        assert_eq!(named.server.listen, "127.0.0.1:8123");
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_documented_file_holds_every_default() {
        let documented: Settings = toml::from_str(include_str!("../ufrecs.toml")).unwrap();
        let d = Settings::default();
        assert_eq!(format!("{documented:?}"), format!("{d:?}"));
    }

    #[test]
    fn environment_variables_override_with_the_keys_type() {
        let s = load(
            Some(Path::new("ufrecs.toml")),
            &env(&[
                ("UFRECS_SERVER_LISTEN", "127.0.0.1:9000"),
                ("UFRECS_AUTH_TOKEN_TTL_SECS", "60"),
                ("UFRECS_REGISTRY_STRICT", "true"),
                ("UFRECS_SERVER_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
                ("UFRECS_S3_PREFIX", "media"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server.listen, "127.0.0.1:9000");
        assert_eq!(s.auth.token_ttl_secs, 60);
        assert_eq!(s.registry.strict, Strict::Yes);
        assert_eq!(s.server.trusted_proxies, ["10.0.0.0/8", "127.0.0.1"]);
        assert_eq!(s.s3.prefix, "media/");
        let clamp = |ttl: &str| {
            load(Some(Path::new("ufrecs.toml")), &env(&[("UFRECS_S3_CREDENTIALS_TTL_SECS", ttl)]))
                .unwrap()
                .s3
                .credentials_ttl_secs
        };
        assert_eq!((clamp("60"), clamp("3600"), clamp("100000")), (900, 3600, 43200));
    }

    #[test]
    fn registry_strict_is_auto_by_default_and_takes_booleans_or_auto() {
        assert_eq!(Settings::default().registry.strict, Strict::Auto);
        let strict = |v: &str| load(Some(Path::new("ufrecs.toml")), &env(&[("UFRECS_REGISTRY_STRICT", v)]));
        assert_eq!(strict("false").unwrap().registry.strict, Strict::No);
        assert_eq!(strict("auto").unwrap().registry.strict, Strict::Auto);
        assert!(strict("maybe").is_err());
        let file: Settings = toml::from_str("[registry]\nstrict = true\n").unwrap();
        assert_eq!(file.registry.strict, Strict::Yes);
        assert!(Strict::Auto.applies(true) && !Strict::Auto.applies(false));
    }

    #[test]
    fn file_variants_read_secrets_and_debug_redacts_them() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("admin");
        std::fs::write(&f, "s3cr3t-admin\n").unwrap();
        let s = load(
            Some(Path::new("ufrecs.toml")),
            &env(&[("UFRECS_AUTH_ADMIN_TOKEN_FILE", f.to_str().unwrap()), ("UFRECS_S3_SECRET_KEY", "zzz")]),
        )
        .unwrap();
        assert_eq!(s.auth.admin_token.expose_secret(), "s3cr3t-admin");
        let shown = format!("{s:?}");
        assert!(!shown.contains("s3cr3t-admin") && !shown.contains("zzz"));
    }

    #[test]
    fn bad_values_are_refused_with_the_key_named() {
        let e = load(Some(Path::new("ufrecs.toml")), &env(&[("UFRECS_AUTH_TOKEN_TTL_SECS", "soon")])).unwrap_err();
        assert!(e.to_string().contains("UFRECS_AUTH_TOKEN_TTL_SECS"));
        let e = load(Some(Path::new("ufrecs.toml")), &env(&[("UFRECS_DATABASE_SYNCHRONOUS", "off")])).unwrap_err();
        assert!(e.to_string().contains("synchronous"));
        assert!(load(Some(Path::new("missing.toml")), &env(&[])).is_err());
    }
}
