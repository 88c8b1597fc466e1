//! Public endpoints: live stats and results (from memory, with ETags), the audit chain,
//! health and metrics.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

use super::error::{json_response, ApiError};
use crate::app::App;
use crate::domain::audit::GENESIS;
use crate::domain::ids::check_poll_office;
use crate::stats::{Body, Rendered};
use crate::store::reads;

/// Whether an `If-None-Match` header names this ETag.
pub fn etag_matches(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match.is_some_and(|h| {
        h.split(',').map(str::trim).any(|t| t == "*" || t == etag || t.strip_prefix("W/") == Some(etag))
    })
}

fn cached(r: Rendered, if_none_match: Option<&str>, cache_control: &HeaderValue) -> Response {
    let not_modified = etag_matches(if_none_match, r.etag.to_str().unwrap_or_default());
    let mut res = if not_modified {
        let mut res = warp::http::Response::new(Bytes::new()).into_response();
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        res
    } else {
        let mut res = warp::http::Response::new(r.body).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        res
    };
    let h = res.headers_mut();
    h.insert(header::ETAG, r.etag);
    h.insert(header::CACHE_CONTROL, cache_control.clone());
    res
}

/// Checks an office id from a public path (no copy: this is the busiest path of the day).
fn public_office(app: &App, id: &str) -> Result<(), ApiError> {
    check_poll_office(id).map_err(|m| ApiError::invalid_field("poll_office_id", m))?;
    if app.directory.read().refuses_office(app.settings.registry.strict, id) {
        return Err(ApiError::UnknownPollOffice);
    }
    Ok(())
}

/// The office a compatibility form names (`?poll_office=` or `?poll_office_id=`), or
/// `None` for the national view. Resolved in the order of section 5: a directory
/// identifier, then (all digits) a directory office's numeric id, and only then an office
/// outside the directory: an office nobody imported never shadows one the operator did.
fn compat_office(app: &App, query: &HashMap<String, String>) -> Result<Option<String>, ApiError> {
    let Some(raw) = ["poll_office", "poll_office_id"].iter().find_map(|k| query.get(*k)).map(|s| s.trim()) else {
        return Ok(None);
    };
    if raw.is_empty() {
        return Ok(None);
    }
    let directory = app.directory.read();
    let numeric = || raw.bytes().all(|b| b.is_ascii_digit());
    let id = if directory.offices.contains_key(raw) {
        raw.to_owned()
    } else if let Some(identifier) = raw.parse::<i64>().ok().filter(|_| numeric()).and_then(|n| directory.by_id.get(&n))
    {
        identifier.clone()
    } else {
        raw.to_owned()
    };
    drop(directory);
    public_office(app, &id)?;
    Ok(Some(id))
}

/// `GET /api/pollofficesstats/?poll_office=ID` (and the alias path): the earlier
/// backend's form; without an office, the national view.
pub fn compat_stats(
    app: Arc<App>,
    query: HashMap<String, String>,
    if_none_match: Option<String>,
) -> Result<Response, ApiError> {
    let rendered = match compat_office(&app, &query)? {
        Some(id) => app.stats.body(&id, Body::CompatStats),
        None => app.stats.national(&app.directory.read(), false),
    };
    Ok(cached(rendered, if_none_match.as_deref(), &app.public_cache_control))
}

/// `GET /api/pollofficeresults/?poll_office=ID`; without an office, the national results.
pub fn compat_results(
    app: Arc<App>,
    query: HashMap<String, String>,
    if_none_match: Option<String>,
) -> Result<Response, ApiError> {
    let rendered = match compat_office(&app, &query)? {
        Some(id) => app.stats.body(&id, Body::CompatResults),
        None => app.stats.national(&app.directory.read(), true),
    };
    Ok(cached(rendered, if_none_match.as_deref(), &app.public_cache_control))
}

/// `GET /api/flags/`: every flagged office, from memory.
pub fn flags(app: Arc<App>, if_none_match: Option<String>) -> Response {
    cached(app.stats.flagged(), if_none_match.as_deref(), &app.public_cache_control)
}

pub fn stats(app: Arc<App>, id: String, if_none_match: Option<String>) -> Result<Response, ApiError> {
    public_office(&app, &id)?;
    Ok(cached(app.stats.body(&id, Body::Stats), if_none_match.as_deref(), &app.public_cache_control))
}

pub fn results(app: Arc<App>, id: String, if_none_match: Option<String>) -> Result<Response, ApiError> {
    public_office(&app, &id)?;
    Ok(cached(app.stats.body(&id, Body::Results), if_none_match.as_deref(), &app.public_cache_control))
}

const PAGE_DEFAULT: i64 = 100;
const PAGE_MAX: i64 = 500;

/// `limit` / `offset` pagination, the way REST frameworks answer it: a `limit` above
/// `PAGE_MAX` is lowered to it, as Django REST framework does (the citizen app asks for
/// 1,000 and pages on by what it received).
fn page(query: &HashMap<String, String>) -> Result<(usize, usize), ApiError> {
    let limit = match query.get("limit").map(String::as_str) {
        None => PAGE_DEFAULT,
        // Any positive integer, however many digits it has.
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.bytes().any(|b| b != b'0') => {
            s.parse::<i64>().map_or(PAGE_MAX, |n| n.min(PAGE_MAX))
        }
        Some(_) => return Err(ApiError::invalid_field("limit", "must be a positive integer")),
    };
    let offset = int_param(query, "offset", 0, NON_NEGATIVE)?;
    Ok((limit as usize, offset as usize))
}

pub(super) const NON_NEGATIVE: std::ops::RangeInclusive<i64> = 0..=i64::MAX;

/// An optional integer query parameter within `range`.
pub(super) fn int_param(
    query: &HashMap<String, String>,
    name: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ApiError> {
    let Some(s) = query.get(name) else { return Ok(default) };
    s.parse().ok().filter(|n| range.contains(n)).ok_or_else(|| {
        let msg = if range == NON_NEGATIVE {
            "must be a non-negative integer".to_owned()
        } else {
            format!("must be an integer from {} to {}", range.start(), range.end())
        };
        ApiError::invalid_field(name, &msg)
    })
}

fn paged<T: serde::Serialize + ?Sized>(
    items: Vec<&T>,
    limit: usize,
    offset: usize,
    url: impl Fn(usize) -> String,
) -> Value {
    let count = items.len();
    let results: Vec<&T> = items.into_iter().skip(offset).take(limit).collect();
    let next = (offset + limit < count).then(|| url(offset + limit));
    let previous = (offset > 0).then(|| url(offset.saturating_sub(limit)));
    json!({"count": count, "next": next, "previous": previous, "results": results})
}

/// `GET /api/polloffices/?search=&limit=&offset=`: the directory, from memory.
pub fn poll_offices(app: Arc<App>, query: HashMap<String, String>, base: String) -> Result<Response, ApiError> {
    let (limit, offset) = page(&query)?;
    let search = query.get("search").map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty());
    let directory = app.directory.read();
    let matching: Vec<&serde_json::value::RawValue> = directory
        .office_rows
        .iter()
        .filter(|(haystack, _)| search.as_ref().is_none_or(|s| haystack.contains(s.as_str())))
        .map(|(_, row)| &**row)
        .collect();
    let search_param = search
        .as_ref()
        .map(|s| format!("search={}&", percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)))
        .unwrap_or_default();
    let body =
        paged(matching, limit, offset, |o| format!("{base}/api/polloffices/?{search_param}limit={limit}&offset={o}"));
    Ok(json_response(StatusCode::OK, &body))
}

/// `GET /api/candidateparties/?limit=&offset=`.
pub fn parties(app: Arc<App>, query: HashMap<String, String>, base: String) -> Result<Response, ApiError> {
    let (limit, offset) = page(&query)?;
    let directory = app.directory.read();
    let body = paged(directory.party_rows.iter().collect(), limit, offset, |o| {
        format!("{base}/api/candidateparties/?limit={limit}&offset={o}")
    });
    Ok(json_response(StatusCode::OK, &body))
}

/// The evidence index of an office in the directory or with data.
pub async fn evidence(app: Arc<App>, id: String) -> Result<Response, ApiError> {
    check_poll_office(&id).map_err(|m| ApiError::invalid_field("poll_office_id", m))?;
    if !app.s3.enabled() {
        return Ok(json_response(StatusCode::OK, &json!({"s3": "unconfigured"})));
    }
    if !app.directory.read().offices.contains_key(&id) && !app.stats.has_office(&id) {
        return Err(ApiError::NotFound);
    }
    let listing = {
        let (app, id) = (app.clone(), id.clone());
        move || async move {
            let prefix = format!("{}{id}/", app.settings.s3.prefix);
            let objects = crate::s3::list_objects(&app.settings.s3, &prefix).await?;
            let names = app
                .reader
                .read(reads::display_names_by_elector)
                .await
                .map_err(|_| "the database cannot be read".to_string())?;
            Ok(crate::s3::evidence::summarize(&id, &prefix, &objects, &names, app.clock.now()))
        }
    };
    match app.evidence.get(&id, listing).await {
        Ok(body) => Ok(json_response(StatusCode::OK, &body)),
        Err(e) => {
            log::warn!("evidence index of {id}: {e}");
            Err(ApiError::Unavailable)
        }
    }
}

/// `Cache-Control` of a complete audit page: its entries never change (the log only
/// grows), so caches may keep it for a day.
const COMPLETE_PAGE: HeaderValue = HeaderValue::from_static("public, max-age=86400");

pub async fn audit_head(app: Arc<App>, if_none_match: Option<String>) -> Result<Response, ApiError> {
    let head = app.reader.read(reads::audit_head).await?;
    let body = match head {
        Some(r) => json!({"seq": r.entry.seq, "hash": r.hash, "at": r.entry.at}),
        None => json!({"seq": 0, "hash": GENESIS, "at": null}),
    };
    Ok(cached(Rendered::of(&body), if_none_match.as_deref(), &app.public_cache_control))
}

const AUDIT_PAGE_MAX: i64 = 1000;

pub async fn audit(
    app: Arc<App>,
    query: HashMap<String, String>,
    base: String,
    if_none_match: Option<String>,
) -> Result<Response, ApiError> {
    let after = int_param(&query, "after", 0, NON_NEGATIVE)?;
    let limit = int_param(&query, "limit", 100, 1..=AUDIT_PAGE_MAX)? as u32;
    // One row more than asked says whether there is a next page.
    let mut rows = app.reader.read(move |c| reads::audit_page(c, after, limit + 1)).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = match rows.last() {
        Some(last) if more => {
            json!(format!("{base}/api/audit/?after={}&limit={limit}", last.entry.seq))
        }
        _ => json!(null),
    };
    let results: Vec<_> = rows
        .into_iter()
        .map(|r| {
            let mut v = r.entry.to_json();
            v["hash"] = json!(r.hash);
            v
        })
        .collect();
    let cache_control = if more { &COMPLETE_PAGE } else { &app.public_cache_control };
    Ok(cached(Rendered::of(&json!({"results": results, "next": next})), if_none_match.as_deref(), cache_control))
}

pub async fn healthz(app: Arc<App>) -> Response {
    let readable = app.reader.read(|c| c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))).await.is_ok();
    let writable = app.metrics.last_commit_ok();
    // While another process's commits cannot be read, what it wrote is not served.
    let following = app.metrics.follow_ok();
    // A Litestream that stopped leaves the box's data on the box alone.
    let replication = app.replication.health();
    let replicating = replication.state != crate::domain::replication::State::Stopped;
    let ok = readable && writable && following && replicating;
    let s3 = app.s3.health().await;
    let body = json!({
        "status": if ok { "ok" } else { "degraded" },
        "database": if readable && writable { "ok" } else { "error" },
        "s3": s3,
        "follow": if following { "ok" } else { "retrying" },
        "replication": replication,
    });
    json_response(if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, &body)
}

pub fn metrics(app: Arc<App>, client: IpAddr, authorization: Option<String>) -> Result<Response, ApiError> {
    if !client.is_loopback() {
        super::filters::check_admin(&app, authorization.as_deref())?;
    }
    let mut text = app.metrics.render();
    let replication = app.replication.health();
    if replication.state != crate::domain::replication::State::Off {
        text.push_str(&crate::metrics::replication(&replication));
    }
    let mut res = text.into_response();
    res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_accepts_lists_weak_tags_and_star() {
        assert!(etag_matches(Some("\"abc\""), "\"abc\""));
        assert!(etag_matches(Some("\"x\", W/\"abc\""), "\"abc\""));
        assert!(etag_matches(Some("*"), "\"abc\""));
        assert!(!etag_matches(Some("\"abd\""), "\"abc\""));
        assert!(!etag_matches(None, "\"abc\""));
    }
}
