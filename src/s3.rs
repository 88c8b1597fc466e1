//! What reporters are told about S3: their key prefix (the only folder their credentials
//! may write to) and the credentials' shape. Minting (STS AssumeRole) is not wired yet:
//! until it is, every answer keeps the shape with empty secrets and `error:
//! "unconfigured"`, so apps already parse the final form.

use serde_json::{json, Value};

use crate::config;
use crate::domain::ids::{ElectorId, PollOfficeId};
use crate::domain::time::{self, Timestamp};

/// `{s3.prefix}{poll_office_id}/source-{elector_id}/`: built from validated identifiers
/// only, so it can never widen a policy.
pub fn key_prefix(s3: &config::S3, office: &PollOfficeId, elector: &ElectorId) -> String {
    format!("{}{}/source-{}/", s3.prefix, office, elector)
}

/// Temporary credentials, or why there are none.
pub struct Minted {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: String,
    pub expiration: Timestamp,
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
        "prefix": prefix,
        "accessKeyId": c.access_key,
        "secretAccessKey": c.secret_key,
        "sessionToken": c.session_token,
    })
}

/// The `s3` object of the authenticate answer.
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

/// What `/healthz` reports of S3: "unconfigured" until credentials can be minted.
pub fn health(_s3: &config::S3) -> &'static str {
    "unconfigured"
}

/// Credentials for a reporter; until STS is wired, always "unconfigured".
pub fn mint(_s3: &config::S3) -> Result<Minted, String> {
    Err("unconfigured".into())
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
        assert_eq!(v["base_path"], "s3://ufrecs-media/media/PO-001/source-02-12/");
        assert_eq!(v["credentials"]["prefix"], "media/PO-001/source-02-12/");
        assert_eq!(v["secretAccessKey"], "");
        assert_eq!(v["expiration"], "2025-08-15T14:00:00Z");
        assert_eq!(v["error"], "unconfigured");
    }
}
