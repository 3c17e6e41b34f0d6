//! The floor reference for `bench/compare.sh`: the smallest reverse proxy
//! of `lab proxy`'s earlier design, and nothing else. A tokio multi-thread
//! runtime, a hyper HTTP/1.1 server, hyper-util's pooled client, round
//! robin over the upstreams, X-Forwarded-For appended and hop-by-hop
//! headers removed both ways. No statistics, no framing guard, no limits,
//! no middleware, no explanations: what a request costs here is what the
//! design costs, and `lab proxy`'s own work per request is the difference.
//!
//! ```text
//! cargo run --example floor_proxy -- --listen 127.0.0.1:2012 \
//!     --upstream http://127.0.0.1:2003 --upstream http://127.0.0.1:2004
//! ```
//!
//! With `--per-core`, the same proxy on `lab proxy`'s present design
//! instead: a current_thread runtime per core, each with its own
//! `SO_REUSEPORT` listener, through the lab's own upstream pool
//! (`lab::workers`, `lab::proxy::transport`): the floor of that design.
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
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use lab::proxy::transport::{Transport, TransportConfig};
use tokio::net::TcpListener;

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, hyper::Error>;

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

/// The upstream client of each design.
enum Upstreams {
    /// hyper-util's pooled client, one pool for the process.
    Legacy(Client<HttpConnector, Incoming>),
    /// The lab's pool: one per worker thread.
    PerCore(Transport),
}

struct Proxy {
    client: Upstreams,
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
        let request = Request::from_parts(parts, body);
        let response = match &self.client {
            Upstreams::Legacy(client) => client
                .request(request)
                .await
                .map(|r| r.map(|b| b.boxed_unsync()))
                .ok(),
            Upstreams::PerCore(transport) => transport
                .round_trip(request)
                .await
                .map(|r| r.map(|b| b.boxed_unsync()))
                .ok(),
        };
        match response {
            Some(response) => {
                let (mut parts, body) = response.into_parts();
                remove_hop_by_hop(&mut parts.headers);
                Response::from_parts(parts, body)
            }
            None => status(StatusCode::BAD_GATEWAY),
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
    let mut response = Response::new(
        http_body_util::Empty::new()
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *response.status_mut() = code;
    response
}

/// `--listen ADDR`, every `--upstream URL`, and whether `--per-core`.
fn arguments() -> Result<(SocketAddr, Vec<Uri>, bool), String> {
    let mut listen = None;
    let mut upstreams = Vec::new();
    let mut per_core = false;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--per-core" {
            per_core = true;
            continue;
        }
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
                    "unknown flag {other}: --listen ADDR --upstream URL… [--per-core]"
                ));
            }
        }
    }
    let listen = listen.ok_or("--listen ADDR is required")?;
    if upstreams.is_empty() {
        return Err("at least one --upstream URL".into());
    }
    Ok((listen, upstreams, per_core))
}

/// Serves one connection with `proxy`.
async fn serve_connection(proxy: Arc<Proxy>, stream: tokio::net::TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let service = hyper::service::service_fn(move |req| {
        let proxy = proxy.clone();
        async move { Ok::<_, Infallible>(proxy.handle(peer, req).await) }
    });
    let _ = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (listen, upstreams, per_core) = arguments()?;
    let main_runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if per_core {
        // As `lab proxy` runs: the main runtime only waits.
        return main_runtime.block_on(serve_per_core(listen, upstreams));
    }
    main_runtime.block_on(async move {
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
            client: Upstreams::Legacy(client),
            upstreams,
            next: AtomicUsize::new(0),
        });
        let listener = TcpListener::bind(listen).await?;
        eprintln!("floor proxy on {}", listener.local_addr()?);
        loop {
            let (stream, peer) = listener.accept().await?;
            tokio::spawn(serve_connection(proxy.clone(), stream, peer));
        }
    })
}

/// The per-core design: a worker thread per core, each accepting on its own
/// `SO_REUSEPORT` listener, sharing one round robin and the lab's pool
/// (whose idle lists are per worker).
async fn serve_per_core(
    listen: SocketAddr,
    upstreams: Vec<Uri>,
) -> Result<(), Box<dyn std::error::Error>> {
    let threads = lab::workers::per_core();
    let listeners = lab::net::bind_reuseport(listen, threads, "--listen")?;
    eprintln!(
        "floor proxy (per core, {threads} threads) on {}",
        listeners[0].local_addr()?
    );
    let transport = Transport::new(&TransportConfig {
        max_idle_per_host: 1024,
        ..TransportConfig::default()
    });
    let proxy = Arc::new(Proxy {
        client: Upstreams::PerCore(transport),
        upstreams,
        next: AtomicUsize::new(0),
    });
    let serve = move |listener: TcpListener, stop| {
        let proxy = proxy.clone();
        async move {
            tokio::pin!(stop);
            loop {
                let (stream, peer) = tokio::select! {
                    () = &mut stop => return Ok(()),
                    accepted = listener.accept() => accepted?,
                };
                tokio::spawn(serve_connection(proxy.clone(), stream, peer));
            }
        }
    };
    lab::workers::serve(listeners, serve, std::future::pending()).await?;
    Ok(())
}
