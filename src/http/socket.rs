//! The verification WebSocket's HTTP side: the request is checked (parameters, registry,
//! a voter who already verified) before the upgrade, answered with the spec's error body
//! when bad, and upgraded here, with small buffers, into a `ws::connection`.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

use super::error::ApiError;
use super::filters::client_addr;
use crate::app::App;
use crate::route::Route;

const PATH: &str = "/ws/vote-verification";

/// Whether a request is for the verification socket (upgrades or not: a plain GET gets
/// the error body from here too).
pub fn is_socket_request(req: &Request<Incoming>) -> bool {
    Route::of(req.uri().path()) == Route::WsVoteVerification
}

/// A socket's buffers: messages are at most 4 KiB, so 4 KiB is enough to read them
/// (tungstenite's default is 128 KiB, allocated and filled at the first read).
fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(Some(64 * 1024))
        .max_frame_size(Some(64 * 1024))
}

pub async fn upgrade(app: Arc<App>, mut req: Request<Incoming>, peer: SocketAddr) -> Response {
    let res = match accept(&app, &mut req, peer).await {
        Ok(res) => res,
        Err(e) => e.response(),
    };
    app.metrics.request(Route::WsVoteVerification, res.status().as_u16());
    log::debug!("GET {PATH} {}", res.status().as_u16());
    res
}

async fn accept(app: &Arc<App>, req: &mut Request<Incoming>, peer: SocketAddr) -> Result<Response, ApiError> {
    if req.method() != hyper::Method::GET {
        return Err(ApiError::MethodNotAllowed);
    }
    let query: std::collections::HashMap<String, String> =
        req.uri().query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let (office, elector) = crate::ws::parameters(&query).map_err(ApiError::invalid)?;
    if app.directory.read().refuses_office(app.settings.registry.strict, office.as_str()) {
        return Err(ApiError::UnknownPollOffice);
    }
    let h = req.headers();
    let has = |name: header::HeaderName, value: &str| {
        h.get_all(name)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case(value))))
    };
    let key = h.get(header::SEC_WEBSOCKET_KEY).cloned();
    let key = match key {
        Some(key)
            if has(header::CONNECTION, "upgrade")
                && has(header::UPGRADE, "websocket")
                && has(header::SEC_WEBSOCKET_VERSION, "13") =>
        {
            key
        }
        _ => return Err(ApiError::invalid_field("upgrade", "this endpoint is a WebSocket")),
    };
    let forwarded = h.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client = client_addr(Some(peer), forwarded, &app.trusted_proxies);
    let voter_hash = crate::domain::source::voter_hash(&app.secret, &elector);
    let hash = voter_hash.clone();
    let already_verified = app.reader.read(move |c| crate::store::reads::voter_has_verified(c, &hash)).await?;
    let open = crate::ws::Opening { office: office.into_string(), voter_hash, already_verified, client };
    let on_upgrade = hyper::upgrade::on(req);
    let (hubs, metrics) = (app.hubs.clone(), app.metrics.clone());
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket =
                    WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config())).await;
                crate::ws::connection(socket, hubs, open, metrics).await;
            }
            Err(e) => log::debug!("websocket upgrade failed: {e}"),
        }
    });
    let mut res = warp::http::Response::new(Bytes::new()).into_response();
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let accept = HeaderValue::from_str(&derive_accept_key(key.as_bytes())).map_err(|_| ApiError::Internal)?;
    let headers = res.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    Ok(res)
}
