//! Reporter endpoints: authenticate, votes, ballots, S3 credential refresh.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;

use super::error::{json_response, ApiError};
use super::write_error;
use crate::app::App;
use crate::auth::tokens::{self, Reporter};
use crate::domain::change::with_receipt;
use crate::domain::ids::{ElectorId, PollOfficeId};
use crate::domain::input::{self, AuthInput, BallotInput, VoteInput};
use crate::domain::time;
use crate::s3;
use crate::store::ops::{AuthOp, Authentication, Proposal, WriteOp};
use crate::store::reads;
use crate::store::WriteError;

fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// A reporter's office, from its token: checked again at every write, since a token
/// issued before the directory was imported (`registry.strict = auto`) must not go on
/// writing an invented office into the public log. A token for an office whose name was
/// reserved since (an operator's folder: `backups`, `log`, `replica`) is refused like any
/// bad token, or its credentials would reach that folder.
fn token_office(app: &App, r: &Reporter) -> Result<PollOfficeId, ApiError> {
    let office = PollOfficeId::parse(r.poll_office_id.as_str()).map_err(|_| ApiError::AuthFailed)?;
    if app.directory.read().refuses_office(app.settings.registry.strict, office.as_str()) {
        return Err(ApiError::UnknownPollOffice);
    }
    Ok(office)
}

pub async fn authenticate(app: Arc<App>, client: IpAddr, body: Bytes) -> Result<Response, ApiError> {
    let input = AuthInput::parse(&input::object(&body)?)?;
    let elector = input.elector_id.as_str().to_owned();
    if let Err(retry_after_secs) = app.limits.check_elector(&elector, app.clock.now()) {
        return Err(rate_limited(&app, retry_after_secs));
    }
    if app.directory.read().refuses_office(app.settings.registry.strict, input.poll_office_id.as_str()) {
        return Err(ApiError::UnknownPollOffice);
    }
    // The password is checked outside the write; if it changed before the write commits,
    // the writer says so and the check runs again.
    for _ in 0..3 {
        let e = elector.clone();
        let found = app.reader.read(move |c| reads::source_auth(c, &e)).await?;
        let (checked_hash, new_password_hash) = match (found, &input.password) {
            (None, p) => {
                // Creating sources is limited per address, before any password is hashed.
                if let Err(retry_after_secs) = app.limits.new_source(client, app.clock.now()) {
                    return Err(rate_limited(&app, retry_after_secs));
                }
                (None, hash_opt(&app, p).await?)
            }
            (Some(s), p) => match (&s.password_hash, p) {
                (Some(h), Some(p)) => {
                    if !app.hasher.verify(p.clone(), h.clone()).await? {
                        return Err(auth_failed(&app, client, &input, s.n, "wrong_password").await);
                    }
                    (Some(h.clone()), None)
                }
                (Some(_), None) => return Err(auth_failed(&app, client, &input, s.n, "password_required").await),
                (None, _) if s.status.is_trusted() => {
                    return Err(auth_failed(&app, client, &input, s.n, "no_password_set").await)
                }
                (None, p) => (None, hash_opt(&app, p).await?),
            },
        };
        let (token, token_hash) = tokens::mint();
        let now = app.clock.now();
        let expires_at = now + chrono::Duration::seconds(app.settings.auth.token_ttl_secs as i64);
        let op = AuthOp {
            elector_id: input.elector_id.clone(),
            poll_office_id: input.poll_office_id.clone(),
            token_hash,
            expires_at,
            checked_hash,
            new_password_hash,
        };
        match app.writer.authenticate(op).await.map_err(write_error)? {
            Authentication::Done { created, status, source_n, receipt } => {
                app.limits.succeeded(&elector);
                let minted = credentials(&app, source_n, &input.poll_office_id, &input.elector_id).await;
                let s3 = s3::answer(&app.settings.s3, &input.poll_office_id, &input.elector_id, minted, now);
                let body = json!({
                    "token": token,
                    "poll_office_id": input.poll_office_id.as_str(),
                    "expires_at": time::format(expires_at),
                    "source": {"elector_id": elector, "status": status.as_str()},
                    "s3": s3,
                    "receipt": receipt.to_json(),
                });
                return Ok(json_response(created_or_ok(created), &body));
            }
            Authentication::CheckAgain => continue,
        }
    }
    Err(ApiError::Unavailable)
}

async fn hash_opt(app: &App, password: &Option<String>) -> Result<Option<String>, ApiError> {
    match password {
        Some(p) => Ok(Some(app.hasher.hash(p.clone()).await?)),
        None => Ok(None),
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
    match app.writer.record(op).await {
        Ok(()) => ApiError::AuthFailed,
        Err(e) => write_error(e),
    }
}

pub async fn vote(app: Arc<App>, reporter: Reporter, body: Bytes) -> Result<Response, ApiError> {
    let input = VoteInput::parse(&input::object(&body)?, app.settings.limits.max_index)?;
    let index = input.index.get();
    let op = WriteOp::ProposeVote {
        source_n: reporter.source_n,
        poll_office_id: token_office(&app, &reporter)?,
        input,
        batch: false,
    };
    let Proposal { created, id, receipt } = app.writer.propose(op).await.map_err(write_error)?;
    let id = if app.settings.compat.numeric_vote_ids { json!(id) } else { json!(id.to_string()) };
    Ok(json_response(created_or_ok(created), &with_receipt(json!({"id": id, "index": index}), receipt)))
}

pub async fn ballot(app: Arc<App>, reporter: Reporter, body: Bytes) -> Result<Response, ApiError> {
    let input = BallotInput::parse(&input::object(&body)?, app.settings.limits.max_index)?;
    if app.directory.read().refuses_party(app.settings.registry.strict, input.party_id.as_str()) {
        return Err(ApiError::UnknownParty);
    }
    let op = WriteOp::ProposeBallot {
        source_n: reporter.source_n,
        poll_office_id: token_office(&app, &reporter)?,
        input,
        batch: false,
    };
    let Proposal { created, receipt, .. } = app.writer.propose(op).await.map_err(write_error)?;
    Ok(json_response(created_or_ok(created), &with_receipt(json!({"status": "ok"}), receipt)))
}

/// The most items a batch may hold (section 6d).
pub const BATCH_MAX: usize = 500;

/// A batch envelope's items: `{key: [item, ...]}`, at most `BATCH_MAX`. Anything else is
/// a 400 for the whole request, and nothing is stored.
fn batch_items(body: &[u8], key: &str) -> Result<Vec<Value>, ApiError> {
    let mut envelope = input::object(body)?;
    match envelope.remove(key) {
        Some(Value::Array(items)) if items.len() <= BATCH_MAX => Ok(items),
        Some(Value::Array(_)) => Err(ApiError::invalid_field(key, &format!("at most {BATCH_MAX} items"))),
        _ => Err(ApiError::invalid_field(key, "must be an array of items")),
    }
}

/// One item's answer: `index` as sent when it is an integer, else null.
fn item_answer(item: &Value) -> Value {
    let index = item.get("index").filter(|i| i.is_i64() || i.is_u64()).cloned().unwrap_or(Value::Null);
    json!({ "index": index })
}

fn item_error(answer: &mut Value, e: &ApiError) {
    let (status, body) = e.parts();
    answer["status"] = json!(status.as_u16());
    answer["error"] = body;
}

/// An item parsed as a single post's body would be.
fn item_object(item: &Value) -> Result<&serde_json::Map<String, Value>, ApiError> {
    item.as_object().ok_or_else(|| ApiError::invalid_field("body", "must be a JSON object"))
}

/// Runs a batch: items that parsed go to the writer together (one commit, each in its own
/// savepoint, in order); every item gets the status and body a single post would get.
async fn run_batch(
    app: &App,
    items: &[Value],
    parse: impl Fn(&Value) -> Result<WriteOp, ApiError>,
    success: impl Fn(bool, i64) -> Value,
) -> Result<Response, ApiError> {
    let mut answers: Vec<Value> = items.iter().map(item_answer).collect();
    let mut ops = Vec::with_capacity(items.len());
    let mut slots = Vec::with_capacity(items.len());
    for (k, item) in items.iter().enumerate() {
        match parse(item) {
            Ok(op) => {
                ops.push(op);
                slots.push(k);
            }
            Err(e) => item_error(&mut answers[k], &e),
        }
    }
    let outcomes = if ops.is_empty() { Vec::new() } else { app.writer.propose_all(ops).await };
    for (k, outcome) in slots.into_iter().zip(outcomes) {
        match outcome {
            Ok(Proposal { created, id, receipt }) => {
                answers[k]["status"] = json!(created_or_ok(created).as_u16());
                for (key, v) in with_receipt(success(created, id), receipt).as_object().into_iter().flatten() {
                    answers[k][key] = v.clone();
                }
            }
            // The commit failed: nothing of the batch is stored.
            Err(WriteError::Unavailable) => return Err(ApiError::Unavailable),
            Err(e) => item_error(&mut answers[k], &write_error(e)),
        }
    }
    Ok(json_response(StatusCode::OK, &json!({ "results": answers })))
}

/// `POST /api/vote/batch/` `{"votes": [...]}`: an offline queue flushed at once.
pub async fn vote_batch(app: Arc<App>, reporter: Reporter, body: Bytes) -> Result<Response, ApiError> {
    let items = batch_items(&body, "votes")?;
    let office = token_office(&app, &reporter)?;
    let numeric = app.settings.compat.numeric_vote_ids;
    let max_index = app.settings.limits.max_index;
    let parse = |item: &Value| -> Result<WriteOp, ApiError> {
        let input = VoteInput::parse(item_object(item)?, max_index)?;
        Ok(WriteOp::ProposeVote { source_n: reporter.source_n, poll_office_id: office.clone(), input, batch: true })
    };
    let success = |_, id: i64| json!({"id": if numeric { json!(id) } else { json!(id.to_string()) }});
    run_batch(&app, &items, parse, success).await
}

/// `POST /api/votingpaperresult/batch/` `{"papers": [...]}`.
pub async fn ballot_batch(app: Arc<App>, reporter: Reporter, body: Bytes) -> Result<Response, ApiError> {
    let items = batch_items(&body, "papers")?;
    let office = token_office(&app, &reporter)?;
    let strict = app.settings.registry.strict;
    let max_index = app.settings.limits.max_index;
    let parse = |item: &Value| -> Result<WriteOp, ApiError> {
        let input = BallotInput::parse(item_object(item)?, max_index)?;
        if app.directory.read().refuses_party(strict, input.party_id.as_str()) {
            return Err(ApiError::UnknownParty);
        }
        Ok(WriteOp::ProposeBallot { source_n: reporter.source_n, poll_office_id: office.clone(), input, batch: true })
    };
    run_batch(&app, &items, parse, |_, _| json!({})).await
}

pub async fn refresh_s3(app: Arc<App>, reporter: Reporter) -> Result<Response, ApiError> {
    let office = token_office(&app, &reporter)?;
    let elector = &reporter.elector_id;
    let minted = credentials(&app, reporter.source_n, &office, elector).await;
    let body = s3::refresh_answer(&app.settings.s3, &office, elector, minted, app.clock.now());
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
        if let Err(e) = app.writer.record(op).await {
            log::error!("could not audit minted credentials: {e}");
        }
    }
    Ok(minted)
}
