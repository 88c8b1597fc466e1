//! The one error shape of the API (section 3) and the one place where errors become
//! responses. The client gets the spec's code and a human message; causes go to the log.

use std::collections::BTreeMap;
use std::convert::Infallible;

use bytes::Bytes;
use serde_json::json;
use warp::http::{header, StatusCode};
use warp::reply::Response;
use warp::{Rejection, Reply};

use crate::domain::input::{FieldErrors, InputError};

#[derive(Debug)]
pub enum ApiError {
    InvalidJson,
    InvalidData { message: String, errors: FieldErrors },
    UnknownParty,
    AuthRequired,
    AuthFailed,
    TokenExpired,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    UnknownPollOffice,
    Conflict(&'static str),
    PayloadTooLarge,
    RateLimited { retry_after_secs: u64 },
    Unavailable,
    Internal,
}

impl warp::reject::Reject for ApiError {}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> Self {
        match e {
            InputError::Json => ApiError::InvalidJson,
            InputError::Fields(errors) => ApiError::invalid(errors),
        }
    }
}

impl ApiError {
    pub fn invalid(errors: FieldErrors) -> Self {
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        ApiError::InvalidData { message: format!("invalid field(s): {}", fields.join(", ")), errors }
    }

    pub fn invalid_field(field: &str, msg: &str) -> Self {
        Self::invalid(BTreeMap::from([(field.to_owned(), msg.to_owned())]))
    }

    /// The status and the spec's error body.
    pub fn parts(&self) -> (StatusCode, serde_json::Value) {
        let (status, code, message): (StatusCode, &str, String) = match self {
            ApiError::InvalidJson => (StatusCode::BAD_REQUEST, "invalid_json", "the body is not valid JSON".into()),
            ApiError::InvalidData { message, .. } => (StatusCode::BAD_REQUEST, "invalid_data", message.clone()),
            ApiError::UnknownParty => {
                (StatusCode::BAD_REQUEST, "unknown_party", "this party is not in the directory".into())
            }
            ApiError::AuthRequired => {
                (StatusCode::UNAUTHORIZED, "auth_required", "an Authorization header is required".into())
            }
            ApiError::AuthFailed => (StatusCode::UNAUTHORIZED, "auth_failed", "authentication failed".into()),
            ApiError::TokenExpired => {
                (StatusCode::UNAUTHORIZED, "token_expired", "the token has expired: authenticate again".into())
            }
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "this token may not use this endpoint".into()),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found", "no such route or resource".into()),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "this path does not take this method".into())
            }
            ApiError::UnknownPollOffice => {
                (StatusCode::NOT_FOUND, "unknown_poll_office", "this poll office is not in the directory".into())
            }
            ApiError::Conflict(what) => (StatusCode::CONFLICT, "conflict", format!("{what} already exists")),
            ApiError::PayloadTooLarge => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the body is too large".into())
            }
            ApiError::RateLimited { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many attempts: retry later".into())
            }
            ApiError::Unavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the database cannot commit now: retry later".into())
            }
            ApiError::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error".into()),
        };
        let mut body = json!({"code": code, "message": message});
        if let ApiError::InvalidData { errors, .. } = self {
            body["errors"] = json!(errors);
        }
        (status, body)
    }

    pub fn response(&self) -> Response {
        let (status, body) = self.parts();
        let mut res = json_response(status, &body);
        let retry = match self {
            ApiError::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            ApiError::Unavailable => Some(1),
            _ => None,
        };
        if let Some(secs) = retry {
            res.headers_mut().insert(header::RETRY_AFTER, secs.into());
        }
        res
    }
}

pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    warp::http::Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Bytes::from(body))
        .expect("a static header is valid")
        .into_response()
}

/// Turns every rejection into the spec's error body.
pub async fn recover(r: Rejection) -> Result<Response, Infallible> {
    let e = if let Some(e) = r.find::<ApiError>() {
        return Ok(e.response());
    } else if r.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if r.is_not_found() {
        ApiError::NotFound
    } else if r.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::PayloadTooLarge
    } else if r.find::<warp::ws::MissingConnectionUpgrade>().is_some() {
        ApiError::invalid_field("upgrade", "this endpoint is a WebSocket")
    } else if r.find::<warp::reject::InvalidQuery>().is_some() {
        ApiError::invalid_field("query", "is not valid")
    } else if r.find::<warp::reject::InvalidHeader>().is_some() || r.find::<warp::reject::MissingHeader>().is_some() {
        ApiError::invalid_field("headers", "are not valid for this endpoint")
    } else {
        log::error!("unhandled rejection: {r:?}");
        ApiError::Internal
    };
    Ok(e.response())
}

/// The password hashing queue is full: the client retries in a second.
impl From<crate::auth::password::Busy> for ApiError {
    fn from(_: crate::auth::password::Busy) -> Self {
        ApiError::RateLimited { retry_after_secs: 1 }
    }
}

impl From<crate::store::ReadError> for ApiError {
    fn from(e: crate::store::ReadError) -> Self {
        log::error!("{e}");
        match e {
            crate::store::ReadError::Unavailable(_) => ApiError::Unavailable,
            crate::store::ReadError::Task(_) => ApiError::Internal,
        }
    }
}
