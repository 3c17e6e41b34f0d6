//! Lab 01, proxy basics (网络代理 / 网络转发): what RemoteAddr is, that a
//! header cannot change it, and that a proxy which opens its own connection
//! (here a transport-level relay) replaces the client's address with its own.
//!
//! The same probes run against `lab realserver` and against the article's
//! RealServer in Go (`labs/go/realserver`): RemoteAddr and the `headers =`
//! line (no Host: Go's server moves it to `req.Host`) are Go's behaviour,
//! and `lab realserver` must print the same.

use std::net::SocketAddr;

use anyhow::Context;
use futures_util::future::BoxFuture;

use super::servers::with_real_servers;
use crate::lab_headers::SERVER_HEADER;
use crate::labs::findings::{Findings, Subject};
use crate::probe::Probe;
use crate::proxy::relay::RunningRelay;

/// The one header the probes send besides Host, so the `headers =` line
/// to expect is known exactly.
const USER_AGENT: &str = "lab-check";

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        if f.lab {
            f.measure_on(Subject::Lab);
            with_real_servers(f, 2, lab_experiment).await?;
        }
        if let Some(go) = f.start_go("realserver", &["--addr", "127.0.0.1:0"]).await? {
            f.measure_on(Subject::Go);
            let result = experiment(f, go.addr()).await;
            go.shutdown().await?;
            f.measure_on(Subject::Lab);
            result?;
        }
        Ok(())
    })
}

/// `lab realserver`'s own part (two servers in one process, each naming
/// itself), then the probes every real server gets.
async fn lab_experiment(f: &mut Findings, servers: Vec<SocketAddr>) -> anyhow::Result<()> {
    let (a, b) = (servers[0], servers[1]);

    // 1. Two servers in one process, each naming itself.
    let mut firsts = Vec::new();
    let mut named = Vec::new();
    for addr in [a, b] {
        let exchange = Probe::get("/abc?x=1").send(addr).await?;
        firsts.push(exchange.text_echo()?.url);
        named.push(
            exchange
                .headers
                .get(SERVER_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(none)")
                .to_string(),
        );
    }
    f.step(format!(
        "GET /abc?x=1 on each server: {}",
        firsts.join(" · ")
    ));
    f.claim_eq(
        "servers-name-themselves",
        format!("http://{a}/abc, http://{b}/abc; X-Lab-Server {a}, {b}"),
        format!(
            "{}, {}; X-Lab-Server {}, {}",
            firsts[0], firsts[1], named[0], named[1]
        ),
        "line 1 is the article's fmt.Sprintf(\"http://%s%s\", r.Addr, req.URL.Path): the server's own \
         address and the path, without the query",
    );
    experiment(f, a).await
}

/// The probes of the sheet against the real server on `a` (`lab`'s or Go's:
/// the claims are recorded on the subject being measured). The relay's
/// claims are `lab`'s; against Go the relay only answers the prediction.
async fn experiment(f: &mut Findings, a: SocketAddr) -> anyhow::Result<()> {
    let on_lab = f.subject() == Subject::Lab;

    // 2. Direct: RemoteAddr is this client's socket, and the headers map.
    let direct = Probe::get("/abc")
        .header("User-Agent", USER_AGENT)
        .send(a)
        .await?;
    let direct_echo = direct.text_echo()?;
    let seen = direct_echo.remote_addr;
    f.step(format!(
        "GET /abc directly from {} (Host: {a}, User-Agent: {USER_AGENT}): the server printed \
         RemoteAddr={seen} and headers ={}",
        direct.local_addr, direct_echo.headers
    ));
    f.claim_eq(
        "remote-addr-is-tcp-peer",
        direct.local_addr,
        &seen,
        "RemoteAddr comes from the TCP connection: the address and port of the socket that connected",
    );
    f.claim_eq(
        "echo-headers-have-no-host",
        format!("map[User-Agent:[{USER_AGENT}]]"),
        &direct_echo.headers,
        "Go's server moves the Host header out of req.Header into req.Host, so the article's \
         fmt.Sprintf(\"headers =%v\", req.Header) never prints Host although every HTTP/1.1 \
         request carries one",
    );
    let whose = if seen == direct.local_addr.to_string() {
        "client"
    } else if seen.ends_with(&format!(":{}", a.port())) {
        "server"
    } else {
        "neither"
    };
    f.observe(
        "direct-port",
        whose,
        format!(
            "the port is {}, the client's ephemeral port; the server's own port is {}",
            direct.local_addr.port(),
            a.port()
        ),
    );

    // 3. Headers cannot move RemoteAddr.
    let spoofed = Probe::get("/abc")
        .header("X-Forwarded-For", "6.6.6.6")
        .header("X-Real-Ip", "6.6.6.6")
        .send(a)
        .await?;
    let echo = spoofed.text_echo()?;
    f.step(format!(
        "GET /abc with X-Forwarded-For: 6.6.6.6 and X-Real-Ip: 6.6.6.6: RemoteAddr={}",
        echo.remote_addr
    ));
    f.claim_eq(
        "headers-cannot-change-remote-addr",
        spoofed.local_addr,
        &echo.remote_addr,
        "headers are bytes the client writes; the peer address is what the kernel accepted. \
         To forge it a client would have to complete a TCP handshake from that address",
    );
    let ip = echo
        .remote_addr
        .rsplit_once(':')
        .map_or(echo.remote_addr.as_str(), |(ip, _)| ip);
    f.observe(
        "spoofed-remote-ip",
        ip,
        "the headers arrived (see lab 02) but RemoteAddr stayed the socket's address",
    );

    // 4. A proxy in between: a relay that connects to the server itself.
    // (`lab relay`, the same code, started in this process.)
    let mut relay = RunningRelay::start(a).await?;
    let via = Probe::get("/abc").send(relay.addr).await?;
    let outbound = relay
        .relayed
        .recv()
        .await
        .context("the relay did not report its connection")?
        .outbound;
    let via_echo = via.text_echo()?;
    f.step(format!(
        "GET /abc through a TCP relay on {}: client {} → relay {} → server; RemoteAddr={}",
        relay.addr, via.local_addr, outbound, via_echo.remote_addr
    ));
    if on_lab {
        f.claim(
            "relay-replaces-client-address",
            via_echo.remote_addr == outbound.to_string()
                && via_echo.remote_addr != via.local_addr.to_string(),
            format!("the relay's socket {outbound}, not the client's {}", via.local_addr),
            &via_echo.remote_addr,
            "a proxy opens its own connection to the server (用户不直接连接服务器，网络代理去连接), so \
             the server's peer is the proxy",
        );
    }
    let whose = if via_echo.remote_addr == outbound.to_string() {
        "relay"
    } else if via_echo.remote_addr == via.local_addr.to_string() {
        "client"
    } else {
        "neither"
    };
    f.observe(
        "relay-remote-addr",
        whose,
        format!(
            "{} is the socket the relay opened towards the server",
            outbound
        ),
    );

    // 5. The relay copies bytes: it adds no header, so the client's address
    // is lost. Seen in `lab realserver`'s JSON echo, which lists every line
    // as it arrived, Host included (the article's RealServer has no JSON).
    if !on_lab {
        relay.shutdown().await;
        return Ok(());
    }
    let direct_json = Probe::get("/abc")
        .header("Accept", "application/json")
        .send(a)
        .await?
        .json_echo()?;
    let relay_json = Probe::get("/abc")
        .header("Accept", "application/json")
        .send(relay.addr)
        .await?
        .json_echo()?;
    let without_host = |headers: &[(String, String)]| -> Vec<String> {
        headers
            .iter()
            .filter(|(n, _)| n != "host")
            .map(|(n, v)| format!("{n}: {v}"))
            .collect()
    };
    let (direct_lines, relay_lines) = (
        without_host(&direct_json.headers),
        without_host(&relay_json.headers),
    );
    let relay_host = relay_json.header_values("host").join(",");
    f.step(format!(
        "the same JSON request directly and through the relay: {} header line(s) each; Host through the relay: {relay_host}",
        relay_json.headers.len()
    ));
    f.claim(
        "relay-adds-no-headers",
        direct_lines == relay_lines && relay_host == relay.addr.to_string(),
        format!(
            "the same header lines both ways, and Host still {} (as the client wrote it)",
            relay.addr
        ),
        format!(
            "{} ; Host {relay_host}",
            if direct_lines == relay_lines {
                "the same header lines".to_string()
            } else {
                format!("direct {direct_lines:?} vs relay {relay_lines:?}")
            }
        ),
        "a transport-level relay copies bytes without reading them: nothing in the request \
         remembers the client's address. An HTTP proxy has to write it down, in \
         X-Forwarded-For (lab 02)",
    );
    relay.shutdown().await;
    Ok(())
}
