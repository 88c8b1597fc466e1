//! The admin API (Bearer admin token): create sources, change their status, password or
//! names.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};
use warp::http::StatusCode;
use warp::reply::Response;

use super::error::{json_response, ApiError};
use super::write_error;
use crate::app::App;
use crate::domain::ids::ElectorId;
use crate::domain::input::{self, NewSource, SourcePatch};
use crate::store::ops::{Actor, SourceRecord, SourceUpdate, WriteOp};

fn source_json(s: &SourceRecord) -> Value {
    json!({
        "elector_id": s.elector_id,
        "status": s.status.as_str(),
        "full_name": s.full_name,
        "official_org": s.official_org,
        "has_password": s.has_password,
    })
}

pub async fn create_reporter(app: Arc<App>, body: Bytes) -> Result<Response, ApiError> {
    let source = NewSource::parse(&input::object(&body)?)?;
    let password_hash = match &source.password {
        Some(p) => Some(app.hasher.hash(p.clone()).await?),
        None => None,
    };
    let op = WriteOp::CreateSource { source, password_hash, actor: Actor::Admin };
    let s = app.writer.source(op).await.map_err(write_error)?;
    Ok(json_response(StatusCode::CREATED, &json!({"status": "created", "source": source_json(&s)})))
}

pub async fn update_source(app: Arc<App>, elector_id: String, body: Bytes) -> Result<Response, ApiError> {
    let elector_id = ElectorId::parse(&elector_id).map_err(|m| ApiError::invalid_field("elector_id", m))?;
    let patch = SourcePatch::parse(&input::object(&body)?)?;
    let password_hash = match &patch.password {
        Some(p) => Some(app.hasher.hash(p.clone()).await?),
        None => None,
    };
    let update = SourceUpdate {
        status: patch.status,
        password_hash,
        full_name: patch.full_name,
        official_org: patch.official_org,
    };
    let op = WriteOp::UpdateSource { elector_id, update, actor: Actor::Admin };
    let s = app.writer.source(op).await.map_err(write_error)?;
    Ok(json_response(StatusCode::OK, &json!({"status": "updated", "source": source_json(&s)})))
}
