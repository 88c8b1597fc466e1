//! S3 for reporters (spec section 8): each reporter's key prefix (the only folder its
//! credentials may write to), credentials minted by STS AssumeRole with an inline policy
//! limited to that prefix, cached per (source, office) until five minutes before they
//! expire. When S3 is off or STS fails, authentication still succeeds: the answer keeps
//! its shape with empty secrets and says why in `error`.

pub mod evidence;
pub mod policy;
pub mod sts;

use secrecy::ExposeSecret;
use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};

use crate::config;
use crate::domain::ids::{ElectorId, PollOfficeId};
use crate::domain::time::{self, Timestamp};
use crate::metrics::Metrics;
pub use sts::Credentials as Minted;

/// `{s3.prefix}{poll_office_id}/source-{elector_id}/`: built from validated identifiers
/// only, so it can never widen a policy.
pub fn key_prefix(s3: &config::S3, office: &PollOfficeId, elector: &ElectorId) -> String {
    format!("{}{}/source-{}/", s3.prefix, office, elector)
}

fn credentials_json(s3: &config::S3, prefix: &str, c: &Minted) -> Value {
    json!({
        "access_key": c.access_key,
        "secret_key": c.secret_key,
        "session_token": c.session_token,
        "expiration": time::format(c.expiration),
        "bucket": s3.bucket,
        "region": s3.region,
        "endpoint": s3.endpoint,
        "prefix": prefix.trim_end_matches('/'),
        "accessKeyId": c.access_key,
        "secretAccessKey": c.secret_key,
        "sessionToken": c.session_token,
    })
}

/// The `s3` object of the authenticate answer. `credentials.prefix` is the key prefix
/// without its final `/`: the earlier reporter app joins `prefix + "/" + folder`, and MinIO
/// refuses object names with `//`.
pub fn answer(
    s3: &config::S3,
    office: &PollOfficeId,
    elector: &ElectorId,
    minted: Result<Minted, String>,
    now: Timestamp,
) -> Value {
    let prefix = key_prefix(s3, office, elector);
    let (creds, error) = match minted {
        Ok(c) => (c, None),
        Err(e) => (
            Minted {
                access_key: String::new(),
                secret_key: String::new(),
                session_token: String::new(),
                expiration: now,
            },
            Some(e),
        ),
    };
    let mut v = json!({
        "base_path": format!("s3://{}/{}", s3.bucket, prefix),
        "credentials": credentials_json(s3, &prefix, &creds),
    });
    if let Some(e) = error {
        v["error"] = json!(e);
    }
    v
}

/// The refresh endpoint's answer: the credential fields at the top level too.
pub fn refresh_answer(
    s3: &config::S3,
    office: &PollOfficeId,
    elector: &ElectorId,
    minted: Result<Minted, String>,
    now: Timestamp,
) -> Value {
    let mut v = answer(s3, office, elector, minted, now);
    if let Some(creds) = v["credentials"].as_object().cloned() {
        for (k, val) in creds {
            v[k] = val;
        }
    }
    v
}

/// The operator's view of the media bucket (backups, the evidence index).
pub fn operator_bucket(s3: &config::S3) -> Result<Box<::s3::Bucket>, String> {
    let region = ::s3::Region::Custom { region: s3.region.clone(), endpoint: s3.endpoint.clone() };
    let creds =
        ::s3::creds::Credentials::new(Some(&s3.access_key), Some(s3.secret_key.expose_secret()), None, None, None)
            .map_err(|_| "the S3 operator key is incomplete".to_string())?;
    Ok(::s3::Bucket::new(&s3.bucket, region, creds)
        .map_err(|e| format!("bucket {}: {e}", s3.bucket))?
        .with_path_style())
}

/// Every object under `prefix` (sizes and times only), with the operator's key.
pub async fn list_objects(s3: &config::S3, prefix: &str) -> Result<Vec<evidence::Listed>, String> {
    let bucket = operator_bucket(s3)?;
    let pages = bucket.list(prefix.to_owned(), None).await.map_err(|_| "S3 cannot be listed now".to_string())?;
    Ok(pages
        .into_iter()
        .flat_map(|p| p.contents)
        .map(|o| evidence::Listed { key: o.key, size: o.size, last_modified: o.last_modified })
        .collect())
}

/// How long STS gets, retries included, before authentication answers without credentials.
const STS_BUDGET: Duration = Duration::from_secs(3);
const STS_TRIES: u32 = 3;
/// Credentials are served from the cache until this long before they expire.
const CACHE_MARGIN_SECS: i64 = 300;
/// How long a health observation (a call's outcome, or a probe) is believed.
const HEALTH_FRESH: Duration = Duration::from_secs(30);

/// The credential minter: one per server.
pub struct Service {
    settings: config::S3,
    http: reqwest::Client,
    cache: Mutex<HashMap<(i64, String), Minted>>,
    /// The last time STS was seen reachable or not.
    health: Mutex<Option<(Instant, bool)>>,
    metrics: Arc<Metrics>,
}

impl Service {
    pub fn new(settings: &config::S3, metrics: Arc<Metrics>) -> Self {
        Service {
            settings: settings.clone(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(1))
                .build()
                .expect("a TLS client builds"),
            cache: Mutex::default(),
            health: Mutex::default(),
            metrics,
        }
    }

    pub fn enabled(&self) -> bool {
        !self.settings.endpoint.is_empty()
    }

    /// Credentials for a source at an office: from the cache, or freshly minted (then
    /// `fresh` is true). `Err` holds what reporters are told in `s3.error`.
    pub async fn credentials(
        &self,
        source_n: i64,
        office: &PollOfficeId,
        elector: &ElectorId,
        now: Timestamp,
    ) -> Result<(Minted, bool), String> {
        if !self.enabled() {
            return Err("unconfigured".into());
        }
        let key = (source_n, office.as_str().to_owned());
        if let Some(c) =
            self.cache.lock().get(&key).filter(|c| c.expiration - chrono::Duration::seconds(CACHE_MARGIN_SECS) > now)
        {
            return Ok((c.clone(), false));
        }
        let prefix = key_prefix(&self.settings, office, elector);
        let policy = policy::session_policy(&self.settings.bucket, &prefix).to_string();
        let session_name = format!("ufrecs-source-{source_n}");
        let request = sts::Request {
            endpoint: &self.settings.sts_endpoint,
            region: &self.settings.region,
            access_key: &self.settings.access_key,
            secret_key: self.settings.secret_key.expose_secret(),
            role_arn: &self.settings.role_arn,
            session_name: &session_name,
            policy: &policy,
            duration_secs: self.settings.credentials_ttl_secs,
        };
        let minted = self.assume_role_with_retries(&request).await.map_err(|e| e.for_reporters())?;
        self.cache.lock().insert(key, minted.clone());
        Ok((minted, true))
    }

    /// A few tries within the budget on network errors and 5xx; a refusal is final.
    async fn assume_role_with_retries(&self, request: &sts::Request<'_>) -> Result<Minted, sts::StsError> {
        let deadline = Instant::now() + STS_BUDGET;
        let mut pause = Duration::from_millis(100);
        let mut last = sts::StsError::Unreachable;
        for _ in 0..STS_TRIES {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.metrics.sts_calls.fetch_add(1, Relaxed);
            match sts::assume_role(&self.http, request, left.min(Duration::from_secs(1))).await {
                Ok(c) => {
                    self.observe(true);
                    return Ok(c);
                }
                Err(e) => {
                    self.metrics.sts_failures.fetch_add(1, Relaxed);
                    let reachable = matches!(e, sts::StsError::Refused(_));
                    self.observe(reachable);
                    log::warn!("STS AssumeRole failed: {}", e.for_reporters());
                    if reachable {
                        return Err(e);
                    }
                    last = e;
                }
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
            pause *= 3;
        }
        Err(last)
    }

    fn observe(&self, reachable: bool) {
        *self.health.lock() = Some((Instant::now(), reachable));
    }

    /// `unconfigured`, `ok` or `unreachable`: the last call's outcome if recent, else a
    /// probe of the STS endpoint (any HTTP answer means reachable).
    pub async fn health(&self) -> &'static str {
        if !self.enabled() {
            return "unconfigured";
        }
        let seen = *self.health.lock();
        let reachable = match seen {
            Some((at, reachable)) if at.elapsed() < HEALTH_FRESH => reachable,
            _ => {
                let probe = self.http.get(&self.settings.sts_endpoint).timeout(Duration::from_secs(2)).send().await;
                let reachable = probe.is_ok();
                self.observe(reachable);
                reachable
            }
        };
        if reachable {
            "ok"
        } else {
            "unreachable"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_prefix_is_the_sources_own_folder() {
        let mut s3 = config::S3::default();
        let office = PollOfficeId::parse("PO-001").unwrap();
        let elector = ElectorId::parse("02-12").unwrap();
        assert_eq!(key_prefix(&s3, &office, &elector), "PO-001/source-02-12/");
        s3.prefix = "media/".into();
        let now = time::parse("2025-08-15T14:00:00Z").unwrap();
        let v = refresh_answer(&s3, &office, &elector, Err("unconfigured".into()), now);
        assert!(v["credentials"]["session_token"] == "");
        assert_eq!(v["base_path"], "s3://ufrecs-media/media/PO-001/source-02-12/");
        assert_eq!(v["credentials"]["prefix"], "media/PO-001/source-02-12");
        assert_eq!(v["secretAccessKey"], "");
        assert_eq!(v["expiration"], "2025-08-15T14:00:00Z");
        assert_eq!(v["error"], "unconfigured");
    }
}
