//! Lab 10, timeouts: the article's 6 s handler under a 3 s write timeout,
//! seen directly (an empty reply) and through the proxy (502, or 504 when the
//! proxy's own response timeout is shorter).

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::StatusCode;

use super::servers::with_real_servers;
use crate::cli::launch::RunningProxy;
use crate::labs::findings::Findings;
use crate::probe::Probe;

/// The article's TimeoutHandler path.
const SLOW: &str = "/test_http_string/test_http_string/aaa";

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 1, |f, servers| experiment(f, servers[0]))
}

async fn experiment(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    let upstream = format!("http://{server}");
    let patient = RunningProxy::start(&["--upstream", &upstream]).await?;
    let hasty = RunningProxy::start(&["--upstream", &upstream, "--response-timeout", "1s"]).await?;
    f.step(format!(
        "started `lab proxy --upstream {upstream}` on {} (response timeout 30 s) and with --response-timeout 1s on {}",
        patient.addr(),
        hasty.addr()
    ));
    let result = observe(f, server, &patient, &hasty).await;
    patient.shutdown().await?;
    hasty.shutdown().await?;
    result
}

async fn observe(
    f: &mut Findings,
    server: SocketAddr,
    patient: &RunningProxy,
    hasty: &RunningProxy,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let direct = Probe::get(SLOW).send(server).await;
    let waited = started.elapsed();
    let direct_outcome = match &direct {
        Ok(exchange) => format!("{} after {} ms", exchange.status, waited.as_millis()),
        Err(_) => format!(
            "no response: connection closed after {} ms",
            waited.as_millis()
        ),
    };
    f.step(format!("GET {SLOW} directly → {direct_outcome}"));
    f.claim(
        "write-timeout-closes-unanswered",
        direct.is_err() && waited >= Duration::from_millis(2500),
        "no response; the connection closes after about 3 s",
        &direct_outcome,
        "the handler sleeps 6 s, the server's WriteTimeout is 3 s: the response can no longer be written, and the client gets an empty reply",
    );

    let through = Probe::get(SLOW).send(patient.addr()).await?;
    f.step(format!(
        "GET {SLOW} through the proxy → {} after {} ms: {}",
        through.status,
        through.elapsed.as_millis(),
        through.text().trim()
    ));
    f.claim(
        "proxy-sees-a-broken-upstream",
        through.status == StatusCode::BAD_GATEWAY && through.elapsed >= Duration::from_millis(2500),
        "502 Bad Gateway after about 3 s",
        format!("{} after {} ms", through.status, through.elapsed.as_millis()),
        "the proxy waited; the upstream closed the connection without an answer, which is a bad gateway, not a slow one",
    );
    f.observe(
        "status-through-proxy",
        through.status.as_u16(),
        "the upstream hung up without a response: 502",
    );

    let hurried = Probe::get(SLOW).send(hasty.addr()).await?;
    f.step(format!(
        "GET {SLOW} through the proxy with --response-timeout 1s → {} after {} ms",
        hurried.status,
        hurried.elapsed.as_millis()
    ));
    f.claim(
        "response-timeout-is-504",
        hurried.status == StatusCode::GATEWAY_TIMEOUT
            && hurried.elapsed < Duration::from_millis(2500),
        "504 Gateway Timeout after about 1 s",
        format!("{} after {} ms", hurried.status, hurried.elapsed.as_millis()),
        "the proxy gave up first (Go: Transport.ResponseHeaderTimeout): the upstream is too slow, which is a gateway timeout",
    );
    f.observe(
        "status-with-response-timeout",
        hurried.status.as_u16(),
        "the proxy's own 1 s limit passed before the upstream's 3 s one: 504",
    );
    Ok(())
}
