//! Reporter endpoints: authenticate, votes, ballots, S3 credential refresh.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;

use super::error::{json_response, ApiError};
use super::write_error;
use crate::app::App;
use crate::auth::tokens::{self, Reporter};
use crate::domain::ids::{ElectorId, PollOfficeId};
use crate::domain::input::{self, AuthInput, BallotInput, VoteInput};
use crate::domain::time;
use crate::s3;
use crate::store::ops::{AuthOp, Outcome, WriteOp};
use crate::store::reads;

fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// Reporters' offices come from their tokens, which were only issued for valid ids.
fn token_office(r: &Reporter) -> Result<PollOfficeId, ApiError> {
    PollOfficeId::parse(&r.poll_office_id).map_err(|_| ApiError::Internal)
}

pub async fn authenticate(app: Arc<App>, client: IpAddr, body: Bytes) -> Result<Response, ApiError> {
    let input = AuthInput::parse(&input::object(&body)?)?;
    let elector = input.elector_id.as_str().to_owned();
    if let Err(retry_after_secs) = app.limits.check_elector(&elector, app.clock.now()) {
        return Err(rate_limited(&app, retry_after_secs));
    }
    if app.settings.registry.strict && !app.directory.read().offices.contains_key(input.poll_office_id.as_str()) {
        return Err(ApiError::UnknownPollOffice);
    }
    // The password is checked outside the write; if it changed before the write commits,
    // the writer says so and the check runs again.
    for _ in 0..3 {
        let e = elector.clone();
        let found = app.read(move |c| reads::source_auth(c, &e)).await?;
        let (checked_hash, new_password_hash) = match (found, &input.password) {
            (None, p) => (None, hash_opt(&app, p).await),
            (Some(s), p) => match (&s.password_hash, p) {
                (Some(h), Some(p)) => {
                    if !app.hasher.verify(p.clone(), h.clone()).await {
                        return Err(auth_failed(&app, client, &input, s.n, "wrong_password").await);
                    }
                    (Some(h.clone()), None)
                }
                (Some(_), None) => return Err(auth_failed(&app, client, &input, s.n, "password_required").await),
                (None, _) if s.status.is_trusted() => {
                    return Err(auth_failed(&app, client, &input, s.n, "no_password_set").await)
                }
                (None, p) => (None, hash_opt(&app, p).await),
            },
        };
        let (token, token_hash) = tokens::mint();
        let now = app.clock.now();
        let expires_at = now + chrono::Duration::seconds(app.settings.auth.token_ttl_secs as i64);
        let op = WriteOp::Authenticate(AuthOp {
            elector_id: input.elector_id.clone(),
            poll_office_id: input.poll_office_id.clone(),
            token_hash,
            expires_at,
            checked_hash,
            new_password_hash,
        });
        match app.writer.submit(op).await.map_err(write_error)? {
            Outcome::Authenticated { created, status, source_n } => {
                app.limits.succeeded(&elector);
                let minted = credentials(&app, source_n, &input.poll_office_id, &input.elector_id).await;
                let s3 = s3::answer(&app.settings.s3, &input.poll_office_id, &input.elector_id, minted, now);
                let body = json!({
                    "token": token,
                    "poll_office_id": input.poll_office_id.as_str(),
                    "expires_at": time::format(expires_at),
                    "source": {"elector_id": elector, "status": status.as_str()},
                    "s3": s3,
                });
                return Ok(json_response(created_or_ok(created), &body));
            }
            Outcome::CheckAgain => continue,
            _ => return Err(ApiError::Internal),
        }
    }
    Err(ApiError::Unavailable)
}

async fn hash_opt(app: &App, password: &Option<String>) -> Option<String> {
    match password {
        Some(p) => Some(app.hasher.hash(p.clone()).await),
        None => None,
    }
}

fn rate_limited(app: &App, retry_after_secs: u64) -> ApiError {
    app.metrics.rate_limited.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    ApiError::RateLimited { retry_after_secs }
}

/// Records a failed authentication (rate limits, metrics, audit) and returns the error;
/// past the address's limit, the failure is refused with 429 instead, and not audited.
async fn auth_failed(app: &App, client: IpAddr, input: &AuthInput, source_n: i64, reason: &'static str) -> ApiError {
    if let Err(retry_after_secs) = app.limits.check_address(client, app.clock.now()) {
        return rate_limited(app, retry_after_secs);
    }
    app.limits.failed(client, input.elector_id.as_str(), app.clock.now());
    app.metrics.auth_failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let op = WriteOp::AuthFailed { source_n, poll_office_id: input.poll_office_id.clone(), reason };
    match app.writer.submit(op).await {
        Ok(_) => ApiError::AuthFailed,
        Err(e) => write_error(e),
    }
}

pub async fn vote(app: Arc<App>, reporter: Reporter, body: Bytes) -> Result<Response, ApiError> {
    let input = VoteInput::parse(&input::object(&body)?)?;
    let index = input.index.get();
    let op = WriteOp::ProposeVote {
        source_n: reporter.source_n,
        poll_office_id: token_office(&reporter)?,
        input,
        batch: false,
    };
    match app.writer.submit(op).await.map_err(write_error)? {
        Outcome::Proposed { created, id } => {
            let id = if app.settings.compat.numeric_vote_ids { json!(id) } else { json!(id.to_string()) };
            Ok(json_response(created_or_ok(created), &json!({"id": id, "index": index})))
        }
        _ => Err(ApiError::Internal),
    }
}

pub async fn ballot(app: Arc<App>, reporter: Reporter, body: Bytes) -> Result<Response, ApiError> {
    let input = BallotInput::parse(&input::object(&body)?)?;
    if app.settings.registry.strict && !app.directory.read().parties.contains(input.party_id.as_str()) {
        return Err(ApiError::UnknownParty);
    }
    let op = WriteOp::ProposeBallot { source_n: reporter.source_n, poll_office_id: token_office(&reporter)?, input };
    match app.writer.submit(op).await.map_err(write_error)? {
        Outcome::Proposed { created, .. } => Ok(json_response(created_or_ok(created), &json!({"status": "ok"}))),
        _ => Err(ApiError::Internal),
    }
}

pub async fn refresh_s3(app: Arc<App>, reporter: Reporter) -> Result<Response, ApiError> {
    let office = token_office(&reporter)?;
    let elector = ElectorId::parse(&reporter.elector_id).map_err(|_| ApiError::Internal)?;
    let minted = credentials(&app, reporter.source_n, &office, &elector).await;
    let body = s3::refresh_answer(&app.settings.s3, &office, &elector, minted, app.clock.now());
    Ok(json_response(StatusCode::OK, &body))
}

/// S3 credentials for a reporter, from the cache or freshly minted (then audited).
async fn credentials(
    app: &App,
    source_n: i64,
    office: &PollOfficeId,
    elector: &ElectorId,
) -> Result<s3::Minted, String> {
    let (minted, fresh) = app.s3.credentials(source_n, office, elector, app.clock.now()).await?;
    if fresh {
        let op = WriteOp::CredentialsMinted { source_n, poll_office_id: office.clone(), expiration: minted.expiration };
        if let Err(e) = app.writer.submit(op).await {
            log::error!("could not audit minted credentials: {e}");
        }
    }
    Ok(minted)
}
