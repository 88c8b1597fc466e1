//! Serving: our own accept loop (hyper), every request handed to warp's route table,
//! except the verification WebSocket's upgrade, done in `socket` so that each socket's
//! buffers can be sized: warp 0.4 keeps tungstenite's default 128 KiB read buffer per
//! socket, 1.3 GB for 10,000 waiting voters.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tower_service::Service;

use crate::app::App;
use crate::clock::Clock;
use crate::config::Settings;

/// The TCP peer of a request (warp's own is private to its server).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

/// Serves until `shutdown`, then lets open requests finish.
pub async fn serve(app: Arc<App>, listener: tokio::net::TcpListener, shutdown: impl Future<Output = ()>) {
    let routes = warp::service(super::routes(app.clone()));
    let graceful = GracefulShutdown::new();
    let header_timeout = Duration::from_secs(app.settings.http.header_timeout_secs);
    let mut shutdown = std::pin::pin!(shutdown);
    // Told to connections still waiting for their first byte, so that a silent (or a
    // pooled, unused) connection does not hold the shutdown for the header timeout.
    let (stopping, stop_signal) = tokio::sync::watch::channel(false);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    log::error!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let (app, routes, watcher) = (app.clone(), routes.clone(), graceful.watcher());
        let mut stop_signal = stop_signal.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                req.extensions_mut().insert(Peer(peer));
                let (app, mut routes) = (app.clone(), routes.clone());
                async move {
                    if super::socket::is_socket_request(&req) {
                        Ok::<_, Infallible>(super::socket::upgrade(app, req, peer).await)
                    } else {
                        routes.call(req).await
                    }
                }
            });
            // The protocol detection below reads the first bytes with no timer: a client
            // that connects and says nothing is dropped here instead of staying for ever.
            let mut first = [0u8; 1];
            tokio::select! {
                peeked = tokio::time::timeout(header_timeout, stream.peek(&mut first)) => {
                    if !matches!(peeked, Ok(Ok(1..))) {
                        return;
                    }
                }
                _ = stop_signal.wait_for(|stopping| *stopping) => return,
            }
            let mut builder = Builder::new(TokioExecutor::new()).http1_only();
            builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn).await {
                log::debug!("connection from {peer} ended: {e}");
            }
        });
    }
    drop(listener);
    let _ = stopping.send(true);
    graceful.shutdown().await;
}

/// A server running in this process.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<()>,
    writer: std::thread::JoinHandle<()>,
    hubs: crate::ws::Hubs,
}

impl Running {
    /// Stops accepting, lets open requests finish, and waits for the writer to close the
    /// database.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let _ = self.server.await;
        // Upgraded sockets outlive the HTTP server: the hub closes them, and lets go of
        // the writer, whose thread then ends.
        self.hubs.shutdown();
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    }
}

/// Builds the app and serves it on `listener` until `stop`.
pub async fn start(
    settings: Settings,
    clock: Arc<dyn Clock>,
    listener: tokio::net::TcpListener,
) -> Result<Running, crate::app::StartError> {
    let addr = listener.local_addr()?;
    let (app, writer) = crate::app::build(settings, clock)?;
    let (shutdown, signal) = tokio::sync::oneshot::channel::<()>();
    let hubs = app.hubs.clone();
    let server = tokio::spawn(serve(app, listener, async {
        let _ = signal.await;
    }));
    Ok(Running { addr, shutdown, server, writer, hubs })
}
