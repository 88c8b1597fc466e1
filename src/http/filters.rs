//! Filters shared by the routes: state injection, the size-limited body (chunked or not),
//! the client address behind trusted proxies, and reporter / admin authentication. They
//! run in the spec's order: body size (413), authentication (401/403), then the body (400),
//! which handlers parse.

use secrecy::ExposeSecret;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use subtle::ConstantTimeEq;

use base64::Engine;
use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use ipnet::IpNet;
use warp::{Filter, Rejection};

use super::error::ApiError;
use crate::app::App;
use crate::auth::tokens::{Reporter, TokenError};

pub const BODY_LIMIT: usize = 16 * 1024;
/// The body limit of the batch endpoints (section 6d).
pub const BATCH_BODY_LIMIT: usize = 256 * 1024;

pub fn with_app(app: Arc<App>) -> impl Filter<Extract = (Arc<App>,), Error = std::convert::Infallible> + Clone {
    warp::any().map(move || app.clone())
}

/// The request body, refused with 413 past `limit` bytes whether or not a length was given.
pub fn body(limit: usize) -> impl Filter<Extract = (Bytes,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length").and(warp::body::stream()).and_then(
        move |length: Option<u64>, stream| async move {
            let mut stream = std::pin::pin!(stream);
            let read = match length {
                Some(l) if l > limit as u64 => Err(ApiError::PayloadTooLarge),
                // A body trickled in a byte at a time must not hold a task for ever.
                _ => tokio::time::timeout(BODY_TIMEOUT, read_limited(&mut stream, limit))
                    .await
                    .unwrap_or_else(|_| Err(ApiError::invalid_field("body", "was not received in time"))),
            };
            // Past DRAIN_MAX the client gets a reset anyway: do not ask for the upload.
            if matches!(read, Err(ApiError::PayloadTooLarge)) && length.is_none_or(|l| l <= DRAIN_MAX as u64) {
                drain(&mut stream).await;
            }
            read.map_err(warp::reject::custom)
        },
    )
}

/// How long a request body may take to arrive (after its headers).
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Up to this much of a refused body is read and dropped, so that a client still sending
/// it reads the 413 rather than a reset connection; past it (or after a few seconds), the
/// connection is closed.
const DRAIN_MAX: usize = 1024 * 1024;

async fn drain<S, B>(stream: &mut S)
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut seen = 0;
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.remaining();
            if seen > DRAIN_MAX {
                break;
            }
        }
    })
    .await;
}

async fn read_limited<S, B>(stream: &mut S, limit: usize) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>> + Unpin,
    B: Buf,
{
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|_| ApiError::invalid_field("body", "could not be read"))?;
        if body.len() + chunk.remaining() > limit {
            return Err(ApiError::PayloadTooLarge);
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            body.extend_from_slice(part);
            let n = part.len();
            chunk.advance(n);
        }
    }
    Ok(body.freeze())
}

/// The client's address: the peer's, or, when the peer is a trusted proxy, the right-most
/// `X-Forwarded-For` address that is not itself a trusted proxy.
pub fn client_addr(peer: Option<SocketAddr>, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let peer = peer.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |p| p.ip());
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut last = peer;
    for hop in header.rsplit(',') {
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) if !is_trusted(&ip) => return ip,
            Ok(ip) => last = ip,
            Err(_) => break,
        }
    }
    last
}

/// The TCP peer, as our accept loop records it.
pub fn peer() -> impl Filter<Extract = (Option<SocketAddr>,), Error = std::convert::Infallible> + Clone {
    warp::ext::optional::<super::server::Peer>().map(|p: Option<super::server::Peer>| p.map(|p| p.0))
}

pub fn client(app: Arc<App>) -> impl Filter<Extract = (IpAddr,), Error = Rejection> + Clone {
    peer().and(warp::header::optional::<String>("x-forwarded-for")).map(
        move |peer: Option<SocketAddr>, xff: Option<String>| client_addr(peer, xff.as_deref(), &app.trusted_proxies),
    )
}

/// What an `Authorization` header carries.
#[derive(Debug, PartialEq)]
pub enum Credentials {
    /// Basic `elector_id:token`.
    Basic {
        user: String,
        secret: String,
    },
    Bearer(String),
}

pub fn parse_authorization(header: &str) -> Option<Credentials> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        return Some(Credentials::Bearer(rest.to_owned()));
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, secret) = text.split_once(':')?;
        return Some(Credentials::Basic { user: user.to_owned(), secret: secret.to_owned() });
    }
    None
}

fn check_reporter(app: &App, header: Option<&str>) -> Result<Reporter, ApiError> {
    let header = header.ok_or(ApiError::AuthRequired)?;
    let (token, user) = match parse_authorization(header).ok_or(ApiError::AuthFailed)? {
        Credentials::Basic { user, secret } => (secret, Some(user)),
        Credentials::Bearer(token) => (token, None),
    };
    app.tokens.check(&token, user.as_deref(), app.clock.now()).map_err(|e| match e {
        TokenError::Failed => ApiError::AuthFailed,
        TokenError::Expired => ApiError::TokenExpired,
    })
}

/// A reporter authenticated by token (Basic `elector_id:token` or Bearer).
pub fn reporter(app: Arc<App>) -> impl Filter<Extract = (Reporter,), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization").and_then(move |h: Option<String>| {
        let r = check_reporter(&app, h.as_deref()).map_err(warp::reject::custom);
        std::future::ready(r)
    })
}

/// Whether the header carries the admin token; reporters' tokens get 403.
pub fn check_admin(app: &App, header: Option<&str>) -> Result<(), ApiError> {
    let expected = app.settings.auth.admin_token.expose_secret();
    if expected.is_empty() {
        return Err(ApiError::NotFound);
    }
    let header = header.ok_or(ApiError::AuthRequired)?;
    match parse_authorization(header) {
        Some(Credentials::Bearer(t)) if bool::from(t.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
        _ if check_reporter(app, Some(header)).is_ok() => Err(ApiError::Forbidden),
        _ => Err(ApiError::AuthFailed),
    }
}

/// The admin API exists only while an admin token is configured (404 otherwise); this
/// runs before the body is read, `admin` after it.
pub fn admin_enabled(app: Arc<App>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::any()
        .and_then(move || {
            let on = !app.settings.auth.admin_token.expose_secret().is_empty();
            std::future::ready(if on { Ok(()) } else { Err(warp::reject::custom(ApiError::NotFound)) })
        })
        .untuple_one()
}

/// The admin token (401 without or with a wrong one, 403 for a reporter's token).
pub fn admin(app: Arc<App>) -> impl Filter<Extract = (), Error = Rejection> + Clone {
    warp::header::optional::<String>("authorization")
        .and_then(move |h: Option<String>| {
            std::future::ready(check_admin(&app, h.as_deref()).map_err(warp::reject::custom))
        })
        .untuple_one()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        let proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let stranger: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(client_addr(Some(stranger), Some("1.2.3.4"), &trusted), ip("203.0.113.9"));
        assert_eq!(client_addr(Some(proxy), Some("1.2.3.4"), &trusted), ip("1.2.3.4"));
        assert_eq!(client_addr(Some(proxy), Some("6.6.6.6, 1.2.3.4, 10.1.1.1"), &trusted), ip("1.2.3.4"));
        assert_eq!(client_addr(Some(proxy), Some("10.2.2.2"), &trusted), ip("10.2.2.2"));
        assert_eq!(client_addr(Some(proxy), Some("garbage"), &trusted), ip("127.0.0.1"));
        assert_eq!(client_addr(Some(proxy), None, &trusted), ip("127.0.0.1"));
    }

    #[test]
    fn basic_and_bearer_headers_are_read() {
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("E-1:tok:en"));
        assert_eq!(
            parse_authorization(&basic),
            Some(Credentials::Basic { user: "E-1".into(), secret: "tok:en".into() })
        );
        assert_eq!(parse_authorization("Bearer abc"), Some(Credentials::Bearer("abc".into())));
        assert_eq!(parse_authorization("Basic !!!"), None);
        assert_eq!(parse_authorization("Token abc"), None);
    }
}
