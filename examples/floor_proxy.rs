//! The floor reference for `bench/compare.sh`: the smallest reverse proxy
//! of `lab proxy`'s design, and nothing else. A tokio multi-thread runtime,
//! a hyper HTTP/1.1 server, hyper-util's pooled client, round robin over
//! the upstreams, X-Forwarded-For appended and hop-by-hop headers removed
//! both ways. No statistics, no framing guard, no limits, no middleware, no
//! explanations: what a request costs here is what the design costs, and
//! `lab proxy`'s own work per request is the difference.
//!
//! ```text
//! cargo run --example floor_proxy -- --listen 127.0.0.1:2012 \
//!     --upstream http://127.0.0.1:2003 --upstream http://127.0.0.1:2004
//! ```
//!
//! Not a tool for learners: it answers any error with a bare 502 and has
//! no shutdown but the process ending.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, hyper::Error>;

/// RFC 9110 §7.6.1's hop-by-hop headers, and the ones Go's list adds.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

struct Proxy {
    client: Client<HttpConnector, Incoming>,
    upstreams: Vec<Uri>,
    next: AtomicUsize,
}

impl Proxy {
    async fn handle(&self, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
        let upstream =
            &self.upstreams[self.next.fetch_add(1, Ordering::Relaxed) % self.upstreams.len()];
        let (mut parts, body) = req.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let Ok(uri) = format!("{upstream}{}", path.trim_start_matches('/')).parse() else {
            return status(StatusCode::BAD_REQUEST);
        };
        parts.uri = uri;
        remove_hop_by_hop(&mut parts.headers);
        append_forwarded_for(&mut parts.headers, peer);
        parts.version = http::Version::HTTP_11;
        match self.client.request(Request::from_parts(parts, body)).await {
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                remove_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body.boxed())
            }
            Err(_) => status(StatusCode::BAD_GATEWAY),
        }
    }
}

/// Removes the headers `Connection` names, then the standard hop-by-hop ones.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

/// `X-Forwarded-For: prior, client`.
fn append_forwarded_for(headers: &mut HeaderMap, peer: SocketAddr) {
    let ip = peer.ip().to_string();
    let value = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(prior) => format!("{prior}, {ip}"),
        None => ip,
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert("x-forwarded-for", value);
    }
}

fn status(code: StatusCode) -> Response<Body> {
    let mut response = Response::new(http_body_util::Empty::new().map_err(|e| match e {}).boxed());
    *response.status_mut() = code;
    response
}

/// `--listen ADDR` and every `--upstream URL`.
fn arguments() -> Result<(SocketAddr, Vec<Uri>), String> {
    let mut listen = None;
    let mut upstreams = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => listen = Some(value.parse().map_err(|e| format!("--listen: {e}"))?),
            "--upstream" => {
                let base = if value.ends_with('/') {
                    value
                } else {
                    value + "/"
                };
                upstreams.push(base.parse().map_err(|e| format!("--upstream: {e}"))?);
            }
            other => {
                return Err(format!(
                    "unknown flag {other}: --listen ADDR --upstream URL…"
                ));
            }
        }
    }
    let listen = listen.ok_or("--listen ADDR is required")?;
    if upstreams.is_empty() {
        return Err("at least one --upstream URL".into());
    }
    Ok((listen, upstreams))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (listen, upstreams) = arguments()?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        // As many idle upstream connections as bench/compare.sh gives nginx
        // (`keepalive 1024`) and lab proxy (`--max-idle-per-host 1024`): at
        // 500 clients, 100 would close and reopen hundreds a second.
        .pool_max_idle_per_host(1024)
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector);
    let proxy = Arc::new(Proxy {
        client,
        upstreams,
        next: AtomicUsize::new(0),
    });
    let listener = TcpListener::bind(listen).await?;
    eprintln!("floor proxy on {}", listener.local_addr()?);
    loop {
        let (stream, peer) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let proxy = proxy.clone();
                async move { Ok::<_, Infallible>(proxy.handle(peer, req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
