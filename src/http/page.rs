//! The public page (section 9b): HTML, CSS and JavaScript embedded in the binary, served at
//! `/` and at `/office/{poll_office_id}` (the shareable URL of one office; the script reads
//! the office from the path). No build step, no file to deploy, no third-party host: the
//! Content-Security-Policy allows this origin only.

use std::sync::LazyLock;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use warp::http::{header, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::Reply;

use super::public::etag_matches;

/// One embedded file, with its validator.
pub struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: HeaderValue,
}

impl Asset {
    fn new(body: &'static str, content_type: &'static str) -> Asset {
        let digest = Sha256::digest(body.as_bytes());
        let etag =
            HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12]))).expect("hex is a header value");
        Asset { body, content_type, etag }
    }
}

pub static INDEX: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_str!("../page/index.html"), "text/html; charset=utf-8"));
pub static SCRIPT: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_str!("../page/app.js"), "text/javascript; charset=utf-8"));
pub static STYLE: LazyLock<Asset> =
    LazyLock::new(|| Asset::new(include_str!("../page/app.css"), "text/css; charset=utf-8"));

const CSP: &str =
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Serves an asset. Browsers revalidate after a minute, so an upgraded binary's page is
/// picked up quickly, and a revalidation costs a 304.
pub fn serve(asset: &Asset, if_none_match: Option<String>) -> Response {
    let mut res = if etag_matches(if_none_match.as_deref(), asset.etag.to_str().unwrap_or_default()) {
        let mut res = Response::new(Bytes::new().into());
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        res
    } else {
        let mut res = warp::http::Response::new(asset.body).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        res
    };
    let h = res.headers_mut();
    h.insert(header::ETAG, asset.etag.clone());
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_stays_small_and_fetches_nothing_from_elsewhere() {
        let total = INDEX.body.len() + SCRIPT.body.len() + STYLE.body.len();
        assert!(total < 100 * 1024, "the page weighs {total} bytes");
        for asset in [&*INDEX, &*SCRIPT, &*STYLE] {
            assert!(!asset.body.contains("http://") && !asset.body.contains("https://"), "no absolute URL");
        }
    }

    #[test]
    fn every_text_has_both_languages() {
        let script = SCRIPT.body;
        let block = |lang: &str| {
            let start = script.find(&format!("  {lang}: {{")).expect("a language block");
            let end = start + script[start..].find("\n  },").expect("its end");
            let mut keys: Vec<&str> = script[start..end]
                .split([',', '{', '\n'])
                .filter_map(|part| part.trim().split_once(": \"").map(|(k, _)| k))
                .collect();
            keys.sort();
            keys
        };
        assert_eq!(block("fr"), block("en"));
        for key in INDEX.body.split("data-t=\"").skip(1).map(|s| &s[..s.find('"').unwrap()]) {
            assert!(block("fr").contains(&key), "{key} has no text");
        }
    }
}
