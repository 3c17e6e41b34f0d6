//! The accept loop every listener of the lab shares: real servers and proxies.
//!
//! One task per connection, HTTP/1.1 with upgrades (WebSocket, CONNECT), and a
//! graceful shutdown: stop accepting (the port closes, so new connections are
//! refused), ask every connection to finish its request in flight and close,
//! then wait up to [`DRAIN_TIMEOUT`] for them and for any task they spawned
//! (a tunnel or a WebSocket outlives its HTTP exchange).

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::HttpService;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a shutdown waits for requests in flight before closing them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A client that has not finished its request head after this long is dropped.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// What a service knows about the connection it serves.
#[derive(Debug, Clone)]
pub struct Conn {
    /// The address this listener is bound to.
    pub local: SocketAddr,
    /// The TCP peer: Go's `req.RemoteAddr`.
    pub peer: SocketAddr,
    /// Cancelled at shutdown; long-lived work (tunnels, WebSockets) ends on it.
    pub stop: CancellationToken,
    /// Tracked tasks: spawn work that outlives the exchange here, so that
    /// shutdown waits for it.
    pub tasks: TaskTracker,
}

/// Serves HTTP/1.1 on `listener` until `shutdown` resolves; `make_service`
/// builds the service of each new connection.
pub async fn serve<F, S, B>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    make_service: F,
) -> anyhow::Result<()>
where
    F: Fn(Conn) -> S,
    S: HttpService<Incoming, ResBody = B> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let local = listener
        .local_addr()
        .context("listener has no local address")?;
    let tasks = TaskTracker::new();
    let stop = CancellationToken::new();
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!("{local}: accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Small requests and responses should not wait for Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        let service = make_service(Conn {
            local,
            peer,
            stop: stop.clone(),
            tasks: tasks.clone(),
        });
        let stop = stop.clone();
        tasks.spawn(async move {
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(err) = result {
                tracing::debug!("{local}: connection from {peer} ended: {err}");
            }
        });
    }

    // Dropping the listener closes the port: from here new connections are refused.
    drop(listener);
    stop.cancel();
    tasks.close();
    if !tasks.is_empty() {
        tracing::debug!("{local}: waiting for {} task(s) to finish", tasks.len());
    }
    if tokio::time::timeout(DRAIN_TIMEOUT, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            "{local}: {} connection(s) still busy after {DRAIN_TIMEOUT:?}; closing them",
            tasks.len()
        );
    }
    tracing::debug!("{local}: stopped");
    Ok(())
}
