//! What the load-balancing labs (12–17) share: the upstreams named a, b, c
//! in `--upstream` order, the proxy in front of them (`lab proxy`, or the
//! article's `main.go` in Go, `labs/go/balancer`), and one request through
//! it that reports which upstream answered and, from `lab proxy` when asked,
//! why the balancer chose it (`X-Lab-Pick`).
//!
//! Which upstream answered is read black-box: `lab proxy` names it in
//! `X-Lab-Upstream`; behind the Go proxy the real server names itself in
//! `X-Lab-Server`, and when it could not be reached the Go ErrorHandler's
//! body names its address (`dial tcp 127.0.0.1:PORT: …`).

use std::net::SocketAddr;

use anyhow::Context;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use crate::balance::{Node, parse_upstream_spec};
use crate::cli::launch::RunningProxy;
use crate::golang::GoProgram;
use crate::lab_headers::{EXPLAIN_HEADER, PICK_HEADER, SERVER_HEADER, UPSTREAM_HEADER};
use crate::labs::findings::Findings;
use crate::probe::{Exchange, Probe, TIMEOUT};

/// The letter of upstream `index`: a, b, c, …
pub(super) fn letter(index: usize) -> char {
    (b'a' + index as u8) as char
}

/// Picks as letters: `a a b a c a a`.
pub(super) fn letters(picks: &[usize]) -> String {
    picks
        .iter()
        .map(|&i| letter(i).to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `1 upstream`, `2 upstreams`.
pub(super) fn plural(n: usize, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

/// How many picks went to each upstream, `a 4 · b 8`.
pub(super) fn counts(picks: &[usize], upstreams: usize) -> Vec<usize> {
    let mut counts = vec![0; upstreams];
    for &pick in picks {
        counts[pick] += 1;
    }
    counts
}

/// `a 4 · b 8`.
pub(super) fn show_counts(counts: &[usize]) -> String {
    counts
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{} {n}", letter(i)))
        .collect::<Vec<_>>()
        .join(" · ")
}

/// The real servers' URLs, as `--upstream` names them and `X-Lab-Upstream`
/// reports them.
pub(super) struct Upstreams {
    urls: Vec<String>,
    /// The real servers' addresses, as they name themselves in `X-Lab-Server`.
    addrs: Vec<SocketAddr>,
}

impl Upstreams {
    /// `http://ADDR/base` for each server, in order: a, b, c.
    pub(super) fn of(servers: &[SocketAddr]) -> anyhow::Result<Upstreams> {
        let urls = servers
            .iter()
            .map(|addr| {
                Ok(node(&format!("http://{addr}/base"), 1)?
                    .upstream
                    .to_string())
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Upstreams {
            urls,
            addrs: servers.to_vec(),
        })
    }

    pub(super) fn len(&self) -> usize {
        self.urls.len()
    }

    pub(super) fn url(&self, index: usize) -> &str {
        &self.urls[index]
    }

    /// The balancer's nodes for these upstreams with `weights`.
    pub(super) fn nodes(&self, weights: &[u32]) -> anyhow::Result<Vec<Node>> {
        self.urls
            .iter()
            .zip(weights)
            .map(|(url, &w)| node(url, w))
            .collect()
    }

    /// `--upstream URL,W` for each upstream, with `weights`.
    pub(super) fn flags(&self, weights: &[u32]) -> Vec<String> {
        self.urls
            .iter()
            .zip(weights)
            .flat_map(|(url, w)| ["--upstream".to_string(), format!("{url},{w}")])
            .collect()
    }

    /// `a = http://…, b = http://…` for a step line.
    pub(super) fn legend(&self) -> String {
        self.urls
            .iter()
            .enumerate()
            .map(|(i, url)| format!("{} = {url}", letter(i)))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Which upstream an `X-Lab-Upstream` value names.
    fn index_of(&self, named: &str) -> anyhow::Result<usize> {
        self.urls
            .iter()
            .position(|url| url == named)
            .with_context(|| format!("X-Lab-Upstream names {named:?}, none of {:?}", self.urls))
    }

    /// Which upstream answered `exchange`: `lab proxy` names it in
    /// `X-Lab-Upstream`; behind the Go proxy the real server names itself
    /// in `X-Lab-Server`, or, when it could not be reached, the Go
    /// ErrorHandler's body names its address.
    fn answered(&self, exchange: &Exchange) -> anyhow::Result<usize> {
        let header = |name: &str| {
            exchange
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        if let Some(named) = header(UPSTREAM_HEADER.as_str()) {
            return self.index_of(&named);
        }
        if let Some(server) = header(SERVER_HEADER) {
            return self
                .addrs
                .iter()
                .position(|addr| addr.to_string() == server)
                .with_context(|| {
                    format!("X-Lab-Server names {server:?}, none of {:?}", self.addrs)
                });
        }
        let body = exchange.text();
        let named: Vec<usize> = (0..self.addrs.len())
            .filter(|&i| {
                body.contains(&format!("{} ", self.addrs[i]))
                    || body.contains(&format!("{}:", self.addrs[i]))
            })
            .collect();
        match named[..] {
            [one] => Ok(one),
            _ => anyhow::bail!(
                "the proxy's answer ({}) names no upstream: no X-Lab-Upstream, no X-Lab-Server, and its body {:?} names no single real server",
                exchange.status,
                body.trim()
            ),
        }
    }
}

fn node(url: &str, weight: u32) -> anyhow::Result<Node> {
    parse_upstream_spec(&format!("{url},{weight}")).map_err(anyhow::Error::msg)
}

/// Starts `lab proxy` with these flags.
pub(super) async fn proxy(flags: &[String]) -> anyhow::Result<RunningProxy> {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    RunningProxy::start(&flags).await
}

/// The article's `main.go` in Go (`labs/go/balancer`) on a free port with
/// `--lb LB` over the upstreams with `weights` (and `extra` flags), when
/// this run includes Go; the step is noted.
pub(super) async fn go_balancer(
    f: &mut Findings,
    lb: &str,
    upstreams: &Upstreams,
    weights: &[u32],
    extra: &[&str],
) -> anyhow::Result<Option<GoProgram>> {
    let mut args: Vec<String> = ["--listen", "127.0.0.1:0", "--lb", lb]
        .map(String::from)
        .to_vec();
    args.extend(upstreams.flags(weights));
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    f.start_go("balancer", &args).await
}

/// The minor version of the installed Go (`19` for go1.19.8), if Go is
/// found and says it plainly.
pub(super) fn go_minor_version() -> Option<u32> {
    let version = crate::golang::toolchain::Toolchain::find().ok()?.version;
    let rest = version.strip_prefix("go1.")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// One request through the proxy, as the balancer saw it.
pub(super) struct Answer {
    /// The upstream that was chosen (a = 0).
    pub node: usize,
    pub status: StatusCode,
    /// The pick's explanation, when it was asked for (`lab proxy` only).
    pub pick: Option<Value>,
    /// The client's end of the connection: the proxy's `RemoteAddr`.
    pub local: SocketAddr,
    /// The response body (the echo, or the proxy's error).
    pub body: String,
}

impl Answer {
    /// A field of the explanation, or an error that says which.
    pub(super) fn field(&self, name: &str) -> anyhow::Result<&Value> {
        self.pick
            .as_ref()
            .and_then(|pick| pick.get(name))
            .with_context(|| format!("X-Lab-Pick has no {name:?}: {:?}", self.pick))
    }

    /// An unsigned field of the explanation.
    pub(super) fn u64_field(&self, name: &str) -> anyhow::Result<u64> {
        self.field(name)?
            .as_u64()
            .with_context(|| format!("X-Lab-Pick's {name:?} is not a number: {:?}", self.pick))
    }

    /// The weighted explanation's `before` or `after`: `(effective, current)` per node.
    pub(super) fn weights(&self, which: &str) -> anyhow::Result<Vec<(i64, i64)>> {
        let rows = self
            .field(which)?
            .as_array()
            .with_context(|| format!("X-Lab-Pick's {which:?} is not a list"))?;
        rows.iter()
            .map(|row| {
                let get = |name: &str| row.get(name).and_then(Value::as_i64);
                get("effective")
                    .zip(get("current"))
                    .with_context(|| format!("X-Lab-Pick's {which:?} row {row} lacks weights"))
            })
            .collect()
    }
}

/// Sends `probe` (on a new connection) to the proxy, asking for the pick's
/// explanation when `explain`, and reads which upstream answered.
pub(super) async fn send(
    proxy: SocketAddr,
    upstreams: &Upstreams,
    probe: Probe,
    explain: bool,
) -> anyhow::Result<Answer> {
    let probe = if explain {
        probe.header(EXPLAIN_HEADER.as_str(), "1")
    } else {
        probe
    };
    let exchange = probe.send(proxy).await?;
    answer(upstreams, exchange, explain)
}

/// Reads which upstream answered `exchange` and the pick's explanation.
fn answer(upstreams: &Upstreams, exchange: Exchange, explain: bool) -> anyhow::Result<Answer> {
    let node = upstreams.answered(&exchange)?;
    let pick = match exchange.headers.get(PICK_HEADER) {
        Some(json) => Some(
            serde_json::from_slice(json.as_bytes())
                .with_context(|| format!("X-Lab-Pick is not JSON: {json:?}"))?,
        ),
        None if explain => anyhow::bail!("asked X-Lab-Explain: 1 but got no X-Lab-Pick"),
        None => None,
    };
    Ok(Answer {
        node,
        status: exchange.status,
        pick,
        local: exchange.local_addr,
        body: exchange.text(),
    })
}

/// `n` GETs of `/abc` one after another on one keep-alive connection: one
/// `RemoteAddr` for all of them.
pub(super) async fn send_on_one_connection(
    proxy: SocketAddr,
    upstreams: &Upstreams,
    n: usize,
) -> anyhow::Result<Vec<Answer>> {
    let stream = TcpStream::connect(proxy)
        .await
        .with_context(|| format!("cannot connect to the proxy at {proxy}"))?;
    let local = stream.local_addr()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP/1.1 handshake failed")?;
    let connection = tokio::spawn(conn);
    let mut answers = Vec::with_capacity(n);
    let result = async {
        for _ in 0..n {
            sender
                .ready()
                .await
                .context("the proxy closed the connection")?;
            let request = Request::get("/abc")
                .header(http::header::HOST, proxy.to_string())
                .body(Full::new(Bytes::new()))
                .context("cannot build the request")?;
            let response = tokio::time::timeout(TIMEOUT, sender.send_request(request))
                .await
                .with_context(|| format!("no answer from {proxy} within {TIMEOUT:?}"))?
                .context("the proxy closed the connection without a response")?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .context("the response body was cut off")?
                .to_bytes();
            let exchange = Exchange {
                local_addr: local,
                status: parts.status,
                headers: parts.headers,
                body,
                trailers: None,
                first_data_after: None,
                elapsed: std::time::Duration::ZERO,
            };
            answers.push(answer(upstreams, exchange, false)?);
        }
        anyhow::Ok(())
    }
    .await;
    drop(sender);
    connection.abort();
    result.map(|()| answers)
}

/// `n` GETs of `/abc`, one after another, each on a new connection.
pub(super) async fn send_many(
    proxy: SocketAddr,
    upstreams: &Upstreams,
    n: usize,
    explain: bool,
) -> anyhow::Result<Vec<Answer>> {
    let mut answers = Vec::with_capacity(n);
    for _ in 0..n {
        answers.push(send(proxy, upstreams, Probe::get("/abc"), explain).await?);
    }
    Ok(answers)
}

/// The upstreams of `answers`, in order.
pub(super) fn nodes_of(answers: &[Answer]) -> Vec<usize> {
    answers.iter().map(|a| a.node).collect()
}
