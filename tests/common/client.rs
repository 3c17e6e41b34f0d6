//! Requests through the lab's own client (`lab::probe`), as `lab trace`
//! sends them, and what the tests read from the answers.

use std::net::SocketAddr;
use std::sync::Once;

use http::StatusCode;
use lab::probe::{Exchange, Probe};
use lab::realserver::EchoReport;
use tokio::net::{TcpSocket, TcpStream};

use super::STEP;

/// Sends `probe` to `addr`; an answer must come back (any status).
pub async fn send(addr: SocketAddr, probe: Probe) -> Exchange {
    probe
        .send(addr)
        .await
        .unwrap_or_else(|err| panic!("{} {} to {addr}: {err:#}", probe.method, probe.path))
}

/// `GET path` to `addr`; an answer must come back.
pub async fn get(addr: SocketAddr, path: &str) -> Exchange {
    send(addr, Probe::get(path)).await
}

/// Sends `probe` asking for the real server's JSON echo (through whatever
/// listens at `addr`): a 200 with the echo must come back.
pub async fn json_echo(addr: SocketAddr, probe: Probe) -> (Exchange, EchoReport) {
    let exchange = send(addr, probe.header("Accept", "application/json")).await;
    assert_eq!(exchange.status, StatusCode::OK, "{}", exchange.text());
    let report = exchange.json_echo().expect("the real server's JSON echo");
    (exchange, report)
}

/// The one value of a response header, as text; exactly one must be there.
pub fn header_of<'a>(exchange: &'a Exchange, name: &str) -> &'a str {
    let values: Vec<_> = exchange.headers.get_all(name).iter().collect();
    assert_eq!(
        values.len(),
        1,
        "expected exactly one {name} header, got {:?}",
        exchange.headers
    );
    values[0].to_str().expect("header value is text")
}

/// Every value of a response header, as text, in order.
pub fn header_values<'a>(exchange: &'a Exchange, name: &str) -> Vec<&'a str> {
    exchange
        .headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().expect("header value is text"))
        .collect()
}

/// A reqwest client builder. reqwest's rustls needs a crypto provider even
/// for http://, and the only place it finds one is the process-wide default:
/// installed here (ring, the lab's own), for every test of this process, so
/// that no test passes only because another one installed it first.
pub fn reqwest_builder() -> reqwest::ClientBuilder {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err only if a provider is installed already: then that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
}

/// A connection to `to` from exactly `from` (another loopback address is
/// another client); `None` when `from` cannot be bound (a port in use by
/// someone else).
pub async fn connect_from(from: SocketAddr, to: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    // A port this test used before may be in TIME_WAIT (towards another
    // proxy): that is no reason not to bind it again.
    socket.set_reuseaddr(true).ok()?;
    socket.bind(from).ok()?;
    tokio::time::timeout(STEP, socket.connect(to))
        .await
        .ok()?
        .ok()
}

/// `probe` sent on a connection from exactly `from` (see [`connect_from`]).
pub async fn send_from(from: SocketAddr, to: SocketAddr, probe: Probe) -> Option<Exchange> {
    let stream = connect_from(from, to).await?;
    let local = stream.local_addr().expect("local address");
    assert_eq!(local.ip(), from.ip());
    assert!(from.port() == 0 || local.port() == from.port(), "{local}");
    Some(
        probe
            .send_on(stream, to)
            .await
            .unwrap_or_else(|err| panic!("{} from {from} to {to}: {err:#}", probe.path)),
    )
}
