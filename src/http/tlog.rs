//! The transparency log's endpoints (section 6e): the checkpoint and its key as text,
//! tiles as C2SP `tlog-tiles` serves them (full ones immutable, for any cache or CDN),
//! JSON proofs for simple clients, and witnesses' cosignatures.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

use super::error::{json_response, ApiError};
use super::public::{int_param, NON_NEGATIVE};
use super::write_error;
use crate::app::App;
use crate::domain::tlog::{self, TilePath};
use crate::store::ops::WriteOp;
use crate::store::tlog as tables;
use crate::transparency::{CosignError, Log};

const SHORT: HeaderValue = HeaderValue::from_static("public, max-age=1");
const IMMUTABLE: HeaderValue = HeaderValue::from_static("public, max-age=31536000, immutable");

fn bytes_response(body: impl Into<Bytes>, content_type: &'static str, cache: HeaderValue) -> Response {
    let mut res = warp::http::Response::new(body.into()).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, cache);
    res
}

/// `GET /log/checkpoint`: the latest signed checkpoint with the cosignatures gathered for it.
pub fn checkpoint(app: Arc<App>) -> Response {
    let published = app.log.published();
    let mut res = bytes_response(published.served.clone(), "text/plain; charset=utf-8", SHORT);
    // When it was signed (the page shows its age).
    if let Some(at) = crate::domain::time::parse(&published.at) {
        if let Ok(v) = HeaderValue::from_str(&at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()) {
            res.headers_mut().insert(header::LAST_MODIFIED, v);
        }
    }
    res
}

/// `GET /log/vkey`: the log's note verifier key.
pub fn vkey(app: Arc<App>) -> Response {
    bytes_response(format!("{}\n", app.log.vkey()), "text/plain; charset=utf-8", SHORT)
}

/// `GET /log/tile/<path>`: a hash tile or an entry bundle, full or partial.
pub async fn tile(app: Arc<App>, path: String) -> Result<Response, ApiError> {
    let tile = TilePath::parse(&path).ok_or(ApiError::NotFound)?;
    let snapshot = app.log.snapshot();
    let data = app
        .reader
        .read(move |conn| Ok(crate::mirror::tile_data(conn, &snapshot.tree, &snapshot.tiles(conn), tile)))
        .await?
        .ok_or(ApiError::NotFound)?;
    let full = match tile {
        TilePath::Hashes { width, .. } | TilePath::Entries { width, .. } => width.is_none(),
    };
    Ok(bytes_response(data, "application/octet-stream", if full { IMMUTABLE } else { SHORT }))
}

/// A tree size from the query (`default`: the latest checkpoint's), one the log reached.
fn size_param(app: &App, query: &HashMap<String, String>, name: &str) -> Result<u64, ApiError> {
    let default = app.log.published().size as i64;
    let size = int_param(query, name, default, NON_NEGATIVE)? as u64;
    if size > app.log.size() {
        return Err(ApiError::invalid_field(name, "is larger than the log has ever been"));
    }
    Ok(size)
}

/// `GET /api/log/inclusion/?seq=N&size=M`: the RFC 6962 audit path of entry `seq`.
pub async fn inclusion(app: Arc<App>, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let size = size_param(&app, &query, "size")?;
    if !query.contains_key("seq") {
        return Err(ApiError::invalid_field("seq", "is required"));
    }
    let seq = int_param(&query, "seq", 0, 1..=i64::MAX)?;
    if seq as u64 > size {
        return Err(ApiError::invalid_field("seq", "is not in a tree of that size"));
    }
    let snapshot = app.log.snapshot();
    let (leaf, proof) = app
        .reader
        .read(move |conn| {
            let leaf = crate::store::ops::receipt_of(conn, seq)?.leaf_hash;
            let proof = snapshot.tree.inclusion(seq as u64 - 1, size, &snapshot.tiles(conn));
            Ok((leaf, proof))
        })
        .await?;
    let proof = proof.map_err(|e| tree_error(&e))?;
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "seq": seq,
            "leaf_index": seq - 1,
            "tree_size": size,
            "leaf_hash": hex::encode(leaf.0),
            "hashes": proof.iter().map(|h| hex::encode(h.0)).collect::<Vec<_>>(),
        }),
    ))
}

/// `GET /api/log/consistency/?from=A&to=B`: the RFC 6962 proof that tree `A` is a prefix of `B`.
pub async fn consistency(app: Arc<App>, query: HashMap<String, String>) -> Result<Response, ApiError> {
    let to = size_param(&app, &query, "to")?;
    if !query.contains_key("from") {
        return Err(ApiError::invalid_field("from", "is required"));
    }
    let from = int_param(&query, "from", 0, NON_NEGATIVE)? as u64;
    if from > to {
        return Err(ApiError::invalid_field("from", "is larger than to"));
    }
    let snapshot = app.log.snapshot();
    let proof = app.reader.read(move |conn| Ok(snapshot.tree.consistency(from, to, &snapshot.tiles(conn)))).await?;
    let proof = proof.map_err(|e| tree_error(&e))?;
    let hashes: Vec<String> = proof.iter().map(|h| hex::encode(h.0)).collect();
    Ok(json_response(StatusCode::OK, &json!({"from": from, "to": to, "hashes": hashes})))
}

fn tree_error(e: &tlog::TreeError) -> ApiError {
    match e {
        tlog::TreeError::Range(m) => ApiError::invalid_field("size", m),
        tlog::TreeError::Tile { .. } => {
            log::error!("the transparency log cannot answer: {e}");
            ApiError::Internal
        }
    }
}

/// `POST /log/cosignature`: a checkpoint this log signed, with a witness's cosignature
/// line appended; 204 when stored.
pub async fn cosignature(app: Arc<App>, body: Bytes) -> Result<Response, ApiError> {
    let note =
        std::str::from_utf8(&body).map_err(|_| ApiError::invalid_field("body", "must be a UTF-8 signed note"))?;
    let size = Log::claimed_size(note).ok_or_else(|| ApiError::invalid_field("body", "must be a checkpoint"))?;
    let signed = app.reader.read(move |conn| tables::checkpoint(conn, size)).await?;
    let found = app.log.check_cosigned(note, signed).map_err(|e| {
        let field = match e {
            CosignError::NotOurs(_) | CosignError::NeverSigned => "checkpoint",
            CosignError::UnknownWitness | CosignError::BadCosignature => "cosignature",
        };
        ApiError::invalid_field(field, &e.to_string())
    })?;
    let found: Vec<_> = found.into_iter().filter(|c| app.log.is_new(c)).collect();
    for c in &found {
        app.writer.record(WriteOp::Cosignature(c.clone())).await.map_err(write_error)?;
    }
    if !found.is_empty() {
        app.log.cosigned(found);
    }
    let mut res = warp::http::Response::new(Bytes::new()).into_response();
    *res.status_mut() = StatusCode::NO_CONTENT;
    Ok(res)
}
