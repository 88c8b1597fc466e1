//! The HTTP API: one route table, filters kept apart from handlers, and one `recover` that
//! turns every rejection into the spec's error body. Handlers parse, call the store or the
//! in-memory state, and build the reply; they hold no SQL.

pub mod admin;
pub mod error;
pub mod filters;
pub mod page;
pub mod public;
pub mod reporter;
pub mod server;
pub mod socket;
pub mod tlog;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use warp::filters::BoxedFilter;
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::app::App;
use crate::route::Route;
use crate::store::{OpError, WriteError};
use error::ApiError;
use filters::{body, client, reporter as reporter_auth, with_app, BATCH_BODY_LIMIT, BODY_LIMIT};

/// Maps a failed write to the API error it answers.
pub fn write_error(e: WriteError) -> ApiError {
    match e {
        WriteError::Unavailable => ApiError::Unavailable,
        WriteError::Op(OpError::Invalid(errors)) => ApiError::invalid(errors),
        WriteError::Op(OpError::SourceExists) => ApiError::Conflict("this source"),
        WriteError::Op(OpError::NoSuchSource | OpError::NoSuchVote) => ApiError::NotFound,
        WriteError::Op(OpError::AlreadyVerified) => ApiError::Conflict("a verification"),
        WriteError::Op(OpError::Sql(e)) => {
            log::error!("unexpected database error: {e}");
            ApiError::Internal
        }
    }
}

fn finish(r: Result<Response, ApiError>) -> Response {
    r.unwrap_or_else(|e| e.response())
}

/// `scheme://host` of this request, for absolute `next` links.
fn base_url(app: Arc<App>) -> impl Filter<Extract = (String,), Error = warp::Rejection> + Clone {
    filters::peer()
        .and(warp::header::optional::<String>("host"))
        .and(warp::header::optional::<String>("x-forwarded-proto"))
        .map(move |peer: Option<SocketAddr>, host: Option<String>, proto: Option<String>| {
            let trusted = peer.is_some_and(|p| app.trusted_proxies.iter().any(|n| n.contains(&p.ip())));
            let scheme = match proto.as_deref() {
                Some("https") if trusted => "https",
                _ => "http",
            };
            let host = host.filter(|h| h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)));
            format!("{scheme}://{}", host.unwrap_or_else(|| app.settings.server.listen.clone()))
        })
}

/// Every route of the API, with errors rendered and requests counted.
pub fn routes(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = std::convert::Infallible> + Clone {
    let app_f = with_app(app.clone());
    let inm = warp::header::optional::<String>("if-none-match");

    let stats = warp::path!("api" / "pollofficesstats" / String)
        .and(warp::get())
        .and(app_f.clone())
        .and(inm)
        .map(|id, app, inm| finish(public::stats(app, id, inm)));
    let results = warp::path!("api" / "pollofficeresults" / String)
        .and(warp::get())
        .and(app_f.clone())
        .and(inm)
        .map(|id, app, inm| finish(public::results(app, id, inm)));
    let compat_stats = warp::path!("api" / "pollofficesstats")
        .or(warp::path!("api" / "pollofficestats"))
        .unify()
        .and(warp::get())
        .and(app_f.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and(inm)
        .map(|app, q, inm| finish(public::compat_stats(app, q, inm)));
    let compat_results = warp::path!("api" / "pollofficeresults")
        .and(warp::get())
        .and(app_f.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and(inm)
        .map(|app, q, inm| finish(public::compat_results(app, q, inm)));
    let flags = warp::path!("api" / "flags").and(warp::get()).and(app_f.clone()).and(inm).map(public::flags);
    let poll_offices = warp::path!("api" / "polloffices")
        .and(warp::get())
        .and(app_f.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and(base_url(app.clone()))
        .map(|app, q, base| finish(public::poll_offices(app, q, base)));
    let parties = warp::path!("api" / "candidateparties")
        .and(warp::get())
        .and(app_f.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and(base_url(app.clone()))
        .map(|app, q, base| finish(public::parties(app, q, base)));
    let evidence = warp::path!("api" / "pollofficeevidence" / String)
        .and(warp::get())
        .and(app_f.clone())
        .then(|id, app| async move { finish(public::evidence(app, id).await) });
    let authenticate = warp::path!("api" / "authenticate")
        .and(warp::post())
        .and(body(BODY_LIMIT))
        .and(app_f.clone())
        .and(client(app.clone()))
        .then(|body, app, client| async move { finish(reporter::authenticate(app, client, body).await) });
    let vote = warp::path!("api" / "vote")
        .and(warp::post())
        .and(body(BODY_LIMIT))
        .and(reporter_auth(app.clone()))
        .and(app_f.clone())
        .then(|body, who, app| async move { finish(reporter::vote(app, who, body).await) });
    let vote_batch = warp::path!("api" / "vote" / "batch")
        .and(warp::post())
        .and(body(BATCH_BODY_LIMIT))
        .and(reporter_auth(app.clone()))
        .and(app_f.clone())
        .then(|body, who, app| async move { finish(reporter::vote_batch(app, who, body).await) });
    let ballot_batch = warp::path!("api" / "votingpaperresult" / "batch")
        .and(warp::post())
        .and(body(BATCH_BODY_LIMIT))
        .and(reporter_auth(app.clone()))
        .and(app_f.clone())
        .then(|body, who, app| async move { finish(reporter::ballot_batch(app, who, body).await) });
    let ballot = warp::path!("api" / "votingpaperresult")
        .and(warp::post())
        .and(body(BODY_LIMIT))
        .and(reporter_auth(app.clone()))
        .and(app_f.clone())
        .then(|body, who, app| async move { finish(reporter::ballot(app, who, body).await) });
    let refresh = warp::path!("api" / "refresh-s3-credentials")
        .and(warp::get().or(warp::post()).unify())
        .and(reporter_auth(app.clone()))
        .and(app_f.clone())
        .then(|who, app| async move { finish(reporter::refresh_s3(app, who).await) });
    let audit_head = warp::path!("api" / "audit" / "head")
        .and(warp::get())
        .and(app_f.clone())
        .and(inm)
        .then(|app, inm| async move { finish(public::audit_head(app, inm).await) });
    let audit = warp::path!("api" / "audit")
        .and(warp::get())
        .and(app_f.clone())
        .and(warp::query::<HashMap<String, String>>())
        .and(base_url(app.clone()))
        .and(inm)
        .then(|app, q, base, inm| async move { finish(public::audit(app, q, base, inm).await) });
    let healthz = warp::path!("healthz").and(warp::get()).and(app_f.clone()).then(public::healthz);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(app_f.clone())
        .and(client(app.clone()))
        .and(warp::header::optional::<String>("authorization"))
        .map(|app, client, auth| finish(public::metrics(app, client, auth)));
    let reporters = warp::path!("api" / "reporters")
        .and(warp::post())
        .and(filters::admin_enabled(app.clone()))
        .and(body(BODY_LIMIT))
        .and(filters::admin(app.clone()))
        .and(app_f.clone())
        .then(|body, app| async move { finish(admin::create_reporter(app, body).await) });
    let sources = warp::path!("api" / "sources" / String)
        .and(warp::patch())
        .and(filters::admin_enabled(app.clone()))
        .and(body(BODY_LIMIT))
        .and(filters::admin(app.clone()))
        .and(app_f.clone())
        .then(|id, body, app| async move { finish(admin::update_source(app, id, body).await) });
    let log_checkpoint = warp::path!("log" / "checkpoint").and(warp::get()).and(app_f.clone()).map(tlog::checkpoint);
    let log_vkey = warp::path!("log" / "vkey").and(warp::get()).and(app_f.clone()).map(tlog::vkey);
    let log_tile = warp::path("log")
        .and(warp::path("tile"))
        .and(warp::path::tail())
        .and(warp::get())
        .and(app_f.clone())
        .then(|tail: warp::path::Tail, app| async move { finish(tlog::tile(app, tail.as_str().to_owned()).await) });
    let log_cosignature = warp::path!("log" / "cosignature")
        .and(warp::post())
        .and(body(BODY_LIMIT))
        .and(app_f.clone())
        .then(|body, app| async move { finish(tlog::cosignature(app, body).await) });
    let log_inclusion = warp::path!("api" / "log" / "inclusion")
        .and(warp::get())
        .and(app_f.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|app, q| async move { finish(tlog::inclusion(app, q).await) });
    let log_consistency = warp::path!("api" / "log" / "consistency")
        .and(warp::get())
        .and(app_f.clone())
        .and(warp::query::<HashMap<String, String>>())
        .then(|app, q| async move { finish(tlog::consistency(app, q).await) });

    let home = warp::path::end()
        .or(warp::path!("office" / String).map(|_| ()).untuple_one())
        .unify()
        .and(warp::get())
        .and(inm)
        .map(|inm| page::serve(&page::INDEX, inm));
    let script = warp::path!("page" / "app.js").and(warp::get()).and(inm).map(|inm| page::serve(&page::SCRIPT, inm));
    let style = warp::path!("page" / "app.css").and(warp::get()).and(inm).map(|inm| page::serve(&page::STYLE, inm));

    let metrics_app = app.clone();
    let log = warp::log::custom(move |info| {
        let status = info.status().as_u16();
        metrics_app.metrics.request(Route::of(info.path()), status);
        log::debug!("{} {} {} {:.1}ms", info.method(), info.path(), status, info.elapsed().as_secs_f64() * 1e3);
    });

    // Each route is boxed before they are chained: nested `Or` types of this many routes
    // make rustc's compile time explode. Chained from the right, so that a request for the
    // first routes (the busiest) goes through the fewest boxed layers.
    let api: BoxedFilter<(Response,)> = [
        stats.boxed(),
        results.boxed(),
        compat_stats.boxed(),
        compat_results.boxed(),
        flags.boxed(),
        vote.boxed(),
        ballot.boxed(),
        vote_batch.boxed(),
        ballot_batch.boxed(),
        authenticate.boxed(),
        refresh.boxed(),
        evidence.boxed(),
        poll_offices.boxed(),
        parties.boxed(),
        audit_head.boxed(),
        audit.boxed(),
        healthz.boxed(),
        metrics.boxed(),
        reporters.boxed(),
        sources.boxed(),
        log_checkpoint.boxed(),
        log_vkey.boxed(),
        log_tile.boxed(),
        log_cosignature.boxed(),
        log_inclusion.boxed(),
        log_consistency.boxed(),
        home.boxed(),
        script.boxed(),
        style.boxed(),
    ]
    .into_iter()
    .rev()
    .reduce(|rest, route| route.or(rest).unify().boxed())
    .expect("the route table is not empty");
    warp::path::full()
        .and(api.recover(error::recover).unify())
        .map(|path: warp::path::FullPath, mut res: Response| {
            if res.status() == warp::http::StatusCode::METHOD_NOT_ALLOWED {
                let allow = warp::http::HeaderValue::from_static(Route::of(path.as_str()).methods());
                res.headers_mut().insert(warp::http::header::ALLOW, allow);
            }
            res
        })
        .with(log)
}
