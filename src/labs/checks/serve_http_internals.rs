//! Lab 08, inside ServeHTTP: hop-by-hop headers removed both ways, `TE:
//! trailers` and trailers passed through, X-Forwarded-For (Go's only
//! forwarding header), a header the Director adds lost when the client names
//! it in Connection, a stream forwarded as it comes, and a client that leaves
//! cancelling the upstream request.
//!
//! Every probe runs through `lab proxy` and through Go's ReverseProxy: the
//! article's `NewSingleHostReverseProxy` program (`labs/go/singlehost`) and,
//! for the Director's header, its 2.2 program (`labs/go/director`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::future::BoxFuture;
use http::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::fronts::{Front, subjects};
use super::servers::{upstream_url, with_real_servers};
use crate::labs::findings::{Findings, Subject};
use crate::probe::Probe;
use crate::realserver::EchoReport;

/// The trailer the stand-in upstream always sends.
const TRAILER: &str = "X-Lab-Chunks";

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 1, |f, servers| experiment(f, servers[0]))
}

async fn experiment(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    let trailing = TrailingUpstream::start().await?;
    f.step(format!(
        "started a stand-in upstream on {} that answers every request with a chunked body and the trailer {TRAILER}: 1, whatever the request's TE",
        trailing.addr
    ));
    let mut result = Ok(());
    for subject in subjects(f) {
        f.measure_on(subject);
        result = on_one_program(f, server, trailing.addr).await;
        if result.is_err() {
            break;
        }
    }
    f.measure_on(Subject::Lab);
    trailing.stop();
    result
}

/// Every probe, through the proxy of the program measured now.
async fn on_one_program(
    f: &mut Findings,
    server: SocketAddr,
    trailing: SocketAddr,
) -> anyhow::Result<()> {
    let upstream = upstream_url(server);
    if let Some(proxy) = Front::start(
        f,
        &["--upstream", &upstream],
        "singlehost",
        &["--target", &upstream],
    )
    .await?
    {
        let result = async {
            let seen = hop_by_hop(f, proxy.addr()).await?;
            forwarding_headers(f, &seen);
            trailers_and_streaming(f, proxy.addr()).await
        }
        .await;
        proxy.shutdown().await?;
        result?;
    }
    director_header(f, &upstream).await?;
    trailers_without_te(f, trailing).await?;
    client_abort(f).await
}

async fn hop_by_hop(f: &mut Findings, proxy: SocketAddr) -> anyhow::Result<EchoReport> {
    let seen = Probe::get("/abc")
        .header("Accept", "application/json")
        .header("Connection", "X-Foo")
        .header("X-Foo", "1")
        .header("Keep-Alive", "timeout=5")
        .header("Proxy-Authorization", "Basic Zm9vOmJhcg==")
        .header("TE", "trailers")
        .send(proxy)
        .await?
        .json_echo()?;
    let hop = ["connection", "x-foo", "keep-alive", "proxy-authorization"];
    let arrived: Vec<&str> = hop
        .iter()
        .copied()
        .filter(|name| !seen.header_values(name).is_empty())
        .collect();
    f.step(format!(
        "sent Connection: X-Foo, X-Foo, Keep-Alive, Proxy-Authorization and TE: trailers; the real server got: {}",
        seen.headers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    f.claim_eq(
        "request-hop-headers-removed",
        "none of connection, x-foo, keep-alive, proxy-authorization",
        if arrived.is_empty() {
            "none of connection, x-foo, keep-alive, proxy-authorization".to_string()
        } else {
            format!("arrived: {}", arrived.join(", "))
        },
        "hop-by-hop headers describe the client's connection to the proxy (RFC 9110 §7.6.1); X-Foo became one by being named in Connection",
    );
    f.observe(
        "x-foo-arrives",
        if seen.header_values("x-foo").is_empty() {
            "no"
        } else {
            "yes"
        },
        "Connection: X-Foo marks X-Foo as hop-by-hop, so removeConnectionHeaders drops it",
    );
    f.claim_eq(
        "te-trailers-kept",
        "trailers",
        seen.header_values("te").join(","),
        "TE is hop-by-hop, but `trailers` is restored: the upstream must know the client accepts trailers",
    );

    Ok(seen)
}

/// The forwarding headers the upstream got: `X-Forwarded-For: …, nothing
/// else` or `…, and X-Real-IP, …`.
fn forwarding(seen: &EchoReport) -> String {
    let xff = seen.header_values("x-forwarded-for").join(", ");
    let others: Vec<&str> = [
        ("x-real-ip", "X-Real-IP"),
        ("x-forwarded-host", "X-Forwarded-Host"),
        ("x-forwarded-proto", "X-Forwarded-Proto"),
        ("via", "Via"),
    ]
    .into_iter()
    .filter(|(name, _)| !seen.header_values(name).is_empty())
    .map(|(_, shown)| shown)
    .collect();
    if others.is_empty() {
        format!("X-Forwarded-For: {xff}, nothing else")
    } else {
        format!("X-Forwarded-For: {xff}, and {}", others.join(", "))
    }
}

/// Step 6: Go sets X-Forwarded-For and nothing else; `lab proxy` also sets
/// what nginx is usually told to.
fn forwarding_headers(f: &mut Findings, seen: &EchoReport) {
    let actual = forwarding(seen);
    f.step(format!("step 6: the real server got {actual}"));
    match f.subject() {
        Subject::Go => f.claim_eq(
            "only-xff-added",
            "X-Forwarded-For: 127.0.0.1, nothing else",
            actual,
            "step 6 of Go's ServeHTTP appends the client's IP to X-Forwarded-For; X-Real-IP, X-Forwarded-Host/Proto and Via are not Go's (the article's step list names X-Real-IP, its code does not set it)",
        ),
        Subject::Lab => f.claim_lab_choice(
            "only-xff-added",
            "X-Forwarded-For: 127.0.0.1, and X-Real-IP, X-Forwarded-Host, X-Forwarded-Proto, Via",
            actual,
            "lab proxy also sets X-Real-IP, X-Forwarded-Host and X-Forwarded-Proto (as nginx is usually configured: proxy_set_header) and Via (RFC 9110 §7.6.3, which also lets it see a loop); `lab proxy --like-go` sets X-Forwarded-For alone (docs/go-differences.md)",
        ),
    }
}

async fn trailers_and_streaming(f: &mut Findings, proxy: SocketAddr) -> anyhow::Result<()> {
    let answer = Probe::get("/hop-headers").send(proxy).await?;
    let leaked: Vec<&str> = ["x-hop", "keep-alive", "connection"]
        .into_iter()
        .filter(|name| answer.headers.contains_key(*name))
        .collect();
    f.step(format!(
        "GET /hop-headers (the real server answers with Connection: X-Hop, X-Hop, Keep-Alive) → the client got headers: {}",
        answer
            .headers
            .keys()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    f.claim_eq(
        "response-hop-headers-removed",
        "no connection, x-hop, keep-alive",
        if leaked.is_empty() {
            "no connection, x-hop, keep-alive".to_string()
        } else {
            format!("leaked: {}", leaked.join(", "))
        },
        "step 9 removes the upstream hop's headers from the response, Connection-named ones included",
    );

    let streamed = Probe::get("/stream?n=3&ms=400")
        .header("TE", "trailers")
        .send(proxy)
        .await?;
    let trailer = trailer_value(&streamed);
    let first = streamed.first_data_after.unwrap_or(streamed.elapsed);
    f.step(format!(
        "GET /stream?n=3&ms=400 with TE: trailers: first chunk after {} ms, all after {} ms, trailer {TRAILER}: {trailer}",
        first.as_millis(),
        streamed.elapsed.as_millis()
    ));
    f.claim_eq(
        "trailers-pass-through",
        "3",
        &trailer,
        "the proxy announces the upstream's Trailer header again (step 11) and forwards the trailer after the last chunk",
    );
    f.observe(
        "trailer-arrives",
        if trailer == "3" { "yes" } else { "no" },
        "the trailer follows the last chunk, through the proxy",
    );
    // The upstream spaces chunks 400 ms apart: 800 ms from first to last.
    f.claim(
        "stream-forwarded-as-it-comes",
        first < Duration::from_millis(600) && streamed.elapsed >= Duration::from_millis(750),
        "the first chunk long before the last (< 600 ms vs ≥ 800 ms)",
        format!(
            "first after {} ms, last after {} ms",
            first.as_millis(),
            streamed.elapsed.as_millis()
        ),
        "a response of unknown length is flushed as it arrives (Go: flushInterval -1 for such bodies); buffering it would hold the first chunk until the end",
    );
    Ok(())
}

fn trailer_value(exchange: &crate::probe::Exchange) -> String {
    exchange
        .trailers
        .as_ref()
        .and_then(|t| t.get(TRAILER))
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .to_string()
}

/// A header the Director adds (the article's `token: ssss`) is removed
/// again by step 5 when the client names it in Connection: Go 1.19 removes
/// hop-by-hop headers *after* the Director ran. (Go 1.20's Rewrite runs
/// after the removal instead.)
async fn director_header(f: &mut Findings, upstream: &str) -> anyhow::Result<()> {
    let Some(proxy) = Front::start(
        f,
        &["--upstream", upstream, "--set-header", "token:ssss"],
        "director",
        &["--target", upstream],
    )
    .await?
    else {
        return Ok(());
    };
    let result = async {
        // A POST: the 2.2 Director reads the body, and panics on a request
        // without one (lab 06).
        let probe = Probe::get("/abc")
            .method(Method::POST)
            .header("Accept", "application/json")
            .header("Content-Type", "text/plain")
            .body("x=1");
        let plain = echo_after_hello(&probe.clone().send(proxy.addr()).await?)?;
        let named = echo_after_hello(
            &probe
                .header("Connection", "token")
                .send(proxy.addr())
                .await?,
        )?;
        anyhow::Ok((token(&plain), token(&named)))
    }
    .await;
    proxy.shutdown().await?;
    let (plain, named) = result?;
    f.step(format!(
        "POST /abc through a proxy whose Director sets token: ssss: the real server got token {plain}; the same with Connection: token from the client: token {named}"
    ));
    f.claim_eq(
        "director-header-named-in-connection-is-lost",
        "plain: ssss; with Connection: token: (none)",
        format!("plain: {plain}; with Connection: token: {named}"),
        "Go 1.19 removes the headers named in Connection after the Director ran, so a client can strip what the Director added (Go issue 50580); Go 1.20's Rewrite hook runs after the removal",
    );
    Ok(())
}

/// The real server's JSON echo, after the `hello ` the 2.2 proxy's
/// ModifyResponse puts in front of a 200's body.
fn echo_after_hello(exchange: &crate::probe::Exchange) -> anyhow::Result<EchoReport> {
    let body = exchange
        .body
        .strip_prefix(b"hello ")
        .unwrap_or(&exchange.body);
    serde_json::from_slice(body).with_context(|| {
        format!(
            "expected the real server's JSON echo, got {}: {}",
            exchange.status,
            exchange.text()
        )
    })
}

fn token(echo: &EchoReport) -> String {
    let values = echo.header_values("token");
    if values.is_empty() {
        "(none)".into()
    } else {
        values.join(",")
    }
}

/// The stand-in upstream always sends a trailer; does a client that did not
/// send `TE: trailers` get it?
async fn trailers_without_te(f: &mut Findings, trailing: SocketAddr) -> anyhow::Result<()> {
    let upstream = format!("http://{trailing}");
    let Some(proxy) = Front::start(
        f,
        &["--upstream", &upstream],
        "singlehost",
        &["--target", &upstream],
    )
    .await?
    else {
        return Ok(());
    };
    let result = Probe::get("/trailing").send(proxy.addr()).await;
    proxy.shutdown().await?;
    let answer = result?;
    let trailer = trailer_value(&answer);
    f.step(format!(
        "GET /trailing without TE: trailers, through a proxy to the stand-in that always sends a trailer → {}, body {:?}, trailer {TRAILER}: {trailer}",
        answer.status,
        answer.text()
    ));
    match f.subject() {
        Subject::Go => f.claim_eq(
            "trailers-sent-without-te",
            "1",
            trailer,
            "Go's server writes the trailers a handler declared whether or not the client sent TE: trailers; ReverseProxy copies the upstream's (step 13, after the body)",
        ),
        Subject::Lab => f.claim_lab_choice(
            "trailers-sent-without-te",
            "(none)",
            trailer,
            "lab proxy's HTTP library (hyper) sends trailer fields only to a client that said `TE: trailers` (RFC 9110 §10.1.4: trailers a client did not ask for may be dropped); send TE: trailers to get them (docs/go-differences.md)",
        ),
    }
    Ok(())
}

async fn client_abort(f: &mut Findings) -> anyhow::Result<()> {
    // An upstream that reads the request and never answers, reporting when
    // its connection closes.
    let upstream = TcpListener::bind("127.0.0.1:0").await?;
    let upstream_url = format!("http://{}", upstream.local_addr()?);
    let Some(proxy) = Front::start(
        f,
        &["--upstream", &upstream_url],
        "singlehost",
        &["--target", &upstream_url],
    )
    .await?
    else {
        return Ok(());
    };
    let result = abandon(&upstream, proxy.addr()).await;
    proxy.shutdown().await?;
    let closed = result?;
    f.step(format!(
        "a client sent GET /slow to an upstream that never answers, then hung up: the upstream's connection {}",
        match closed {
            Some(after) => format!("closed {} ms later", after.as_millis()),
            None => "stayed open for 5 s".to_string(),
        }
    ));
    f.claim(
        "client-abort-cancels-upstream",
        closed.is_some(),
        "the upstream connection closes when the client leaves",
        match closed {
            Some(after) => format!("closed after {} ms", after.as_millis()),
            None => "still open after 5 s".to_string(),
        },
        match f.subject() {
            Subject::Go => "step 1: the server cancels the request's context when the client's connection closes; the outgoing request carries that context, so the Transport drops the upstream connection",
            Subject::Lab => "step 1: the dropped client drops the whole exchange in lab proxy, upstream connection included",
        },
    );
    Ok(())
}

/// Sends a request through `proxy` to the silent `upstream`, hangs up once
/// the upstream has it, and returns how long the upstream's connection then
/// stayed open (`None`: still open after 5 s).
async fn abandon(upstream: &TcpListener, proxy: SocketAddr) -> anyhow::Result<Option<Duration>> {
    let mut client = TcpStream::connect(proxy).await?;
    client
        .write_all(b"GET /slow HTTP/1.1\r\nHost: lab\r\n\r\n")
        .await?;
    let (mut held, _) = tokio::time::timeout(Duration::from_secs(5), upstream.accept())
        .await
        .context("the request never reached the upstream")??;
    let mut head = [0u8; 1024];
    let _ = held.read(&mut head).await?;

    let left = Instant::now();
    drop(client);
    let mut rest = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), held.read(&mut rest)).await;
    Ok(match closed {
        Ok(Ok(0)) | Ok(Err(_)) => Some(left.elapsed()),
        _ => None,
    })
}

/// A stand-in upstream that answers every request with a one-chunk body and
/// a trailer, as a Go handler that sets one does, whatever the request's TE.
struct TrailingUpstream {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl TrailingUpstream {
    async fn start() -> anyhow::Result<TrailingUpstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTrailer: {TRAILER}\r\n\
                         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
                         3\r\nabc\r\n0\r\n{TRAILER}: 1\r\n\r\n"
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Ok(TrailingUpstream { addr, task })
    }

    fn stop(self) {
        self.task.abort();
    }
}
