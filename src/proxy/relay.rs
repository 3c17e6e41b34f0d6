//! `lab relay`: forwarding (网络转发), not proxying. A layer-4 TCP relay
//! copies bytes both ways between the client's connection and one it opens
//! to the target, and understands nothing of them: no header is read, added
//! or removed, HTTP or not (a WebSocket, TLS, anything).
//!
//! What a learner sees beside `lab proxy`: the real server's RemoteAddr is
//! the relay's own outbound socket (a new TCP connection, so the client's
//! address is gone), and nothing else changed; there is no X-Forwarded-For
//! to carry the client's address, because that is an HTTP header and the
//! relay does not speak HTTP. The article's 网络转发 versus 网络代理.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

/// Where `lab relay` listens by default (next to the article's 2002).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:2001";
/// Where it forwards by default: the first real server.
pub const DEFAULT_TARGET: &str = "127.0.0.1:2003";

/// How long connections still open at Ctrl-C may go on before they are cut.
const DRAIN: Duration = Duration::from_secs(2);

/// One relayed connection, once it is set up: the client, and the socket
/// the relay opened towards the target (what the target calls RemoteAddr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    pub client: SocketAddr,
    pub outbound: SocketAddr,
}

/// Relays every connection accepted on `listener` to `target` until
/// `shutdown` resolves; then stops accepting and gives open connections
/// [`DRAIN`] to finish. Each connection set up is reported on `report`.
pub async fn serve(
    listener: TcpListener,
    target: SocketAddr,
    report: Option<mpsc::UnboundedSender<Relayed>>,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    let report = report.clone();
                    connections.spawn(relay_one(client, peer, target, report));
                }
                Err(err) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!("accept failed: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Finished connections are reaped as they go.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    if !connections.is_empty() {
        tracing::info!(
            "stopping: {} connection(s) still open get {DRAIN:?} to finish",
            connections.len()
        );
        let drained = tokio::time::timeout(DRAIN, async {
            while connections.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            connections.shutdown().await;
        }
    }
}

/// One connection: connect to the target, then copy both ways until both
/// sides have closed (a half-close is passed on: the target sees the
/// client's FIN and may still answer).
async fn relay_one(
    mut client: TcpStream,
    peer: SocketAddr,
    target: SocketAddr,
    report: Option<mpsc::UnboundedSender<Relayed>>,
) {
    let mut server = match TcpStream::connect(target).await {
        Ok(server) => server,
        Err(err) => {
            tracing::warn!(
                "{peer}: cannot reach the target {target}: {err} (is `lab realserver` running?); \
                 the client's connection is closed"
            );
            return;
        }
    };
    let outbound = server.local_addr().unwrap_or(target);
    if let Some(report) = report {
        let _ = report.send(Relayed {
            client: peer,
            outbound,
        });
    }
    // No Nagle delay: small writes (an HTTP head, a WebSocket frame) go now.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tracing::info!("{peer} → {target} via {outbound}");
    match tokio::io::copy_bidirectional(&mut client, &mut server).await {
        Ok((up, down)) => tracing::info!("{peer} closed: {up} bytes to {target}, {down} back"),
        Err(err) => tracing::info!("{peer} ended: {err}"),
    }
}

/// `lab relay`: binds `listen` (an error that names the port when it is
/// taken) and relays to `target` until `shutdown`.
pub async fn run(
    listen: SocketAddr,
    target: SocketAddr,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let listener = crate::net::bind(listen, "--listen").await?;
    let addr = listener.local_addr()?;
    tracing::info!("relay on {addr} → {target} (TCP, bytes unchanged; Ctrl-C stops it)");
    tracing::info!("try: curl -s http://{addr}/abc   (the real server sees the relay's address)");
    serve(listener, target, None, shutdown).await;
    Ok(())
}

/// A relay running in the background of this process (the labs, tests):
/// it reports each connection's outbound socket.
pub struct RunningRelay {
    pub addr: SocketAddr,
    pub relayed: mpsc::UnboundedReceiver<Relayed>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningRelay {
    /// A relay to `target` on a free loopback port.
    pub async fn start(target: SocketAddr) -> anyhow::Result<RunningRelay> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (report, relayed) = mpsc::unbounded_channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, target, Some(report), async move {
            let _ = stopped.await;
        }));
        Ok(RunningRelay {
            addr,
            relayed,
            stop: Some(stop),
            task,
        })
    }

    /// Stops accepting and waits for the open connections (at most [`DRAIN`]).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }
}
