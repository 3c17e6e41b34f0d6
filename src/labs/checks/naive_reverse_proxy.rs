//! Lab 04, the naive reverse proxy (简单版反向代理) against `lab proxy`: what
//! the article's hand-written proxy gets wrong, and its five listed problems
//! where they can be seen on the wire.

use std::net::SocketAddr;

use futures_util::future::BoxFuture;
use http::StatusCode;
use tokio::net::TcpListener;

use super::servers::with_real_servers;
use crate::cli::launch::RunningProxy;
use crate::labs::findings::Findings;
use crate::probe::Probe;
use crate::proxy::naive::{self, Target};
use crate::server::Background;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 1, |f, servers| experiment(f, servers[0]))
}

async fn start_naive(target: &str) -> anyhow::Result<Background> {
    let target: Target = target.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    Background::spawn_on_free_port(|listener, shutdown| naive::serve(listener, target, shutdown))
        .await
}

async fn experiment(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    let target = format!("http://{server}");
    let naive = start_naive(&target).await?;
    let proxy = RunningProxy::start(&["--upstream", &target]).await?;
    f.step(format!(
        "started `lab naive --target {target}` on {} and `lab proxy --upstream {target}` on {}",
        naive.addr(),
        proxy.addr()
    ));
    let result = observe(f, server, naive.addr(), proxy.addr()).await;
    naive.shutdown().await?;
    proxy.shutdown().await?;
    result
}

async fn observe(
    f: &mut Findings,
    server: SocketAddr,
    naive: SocketAddr,
    proxy: SocketAddr,
) -> anyhow::Result<()> {
    let probe = || {
        Probe::get("/abc")
            .header("Accept", "application/json")
            .header("Connection", "X-Foo")
            .header("X-Foo", "1")
    };
    let through_naive = probe().send(naive).await?.json_echo()?;
    let through_proxy = probe().send(proxy).await?.json_echo()?;
    let xff = |echo: &crate::realserver::EchoReport| {
        let values = echo.header_values("x-forwarded-for");
        if values.is_empty() {
            "none".to_string()
        } else {
            values.join(" | ")
        }
    };
    f.step(format!(
        "GET /abc with Connection: X-Foo and X-Foo: 1 → through lab naive the real server saw X-Forwarded-For: {}, X-Foo: {:?}; through lab proxy X-Forwarded-For: {}, X-Foo: {:?}",
        xff(&through_naive),
        through_naive.header_values("x-foo"),
        xff(&through_proxy),
        through_proxy.header_values("x-foo"),
    ));
    f.claim_eq(
        "naive-loses-the-client",
        "X-Forwarded-For: none (lab proxy: 127.0.0.1)",
        format!(
            "X-Forwarded-For: {} (lab proxy: {})",
            xff(&through_naive),
            xff(&through_proxy)
        ),
        "the naive code sends the request as it came: the real server's RemoteAddr is the proxy, and nothing says who the client was",
    );
    f.observe(
        "naive-xff",
        xff(&through_naive),
        "the naive proxy adds no X-Forwarded-For",
    );
    let arrives = |echo: &crate::realserver::EchoReport| {
        if echo.header_values("x-foo").is_empty() {
            "missing"
        } else {
            "arrives"
        }
    };
    f.claim_eq(
        "naive-forwards-hop-by-hop",
        "X-Foo arrives through lab naive, missing through lab proxy",
        format!(
            "X-Foo {} through lab naive, {} through lab proxy",
            arrives(&through_naive),
            arrives(&through_proxy)
        ),
        "Connection: X-Foo made X-Foo a hop-by-hop header; only the ReverseProxy pipeline removes it",
    );

    let error_naive = Probe::get("/base/error").send(naive).await?;
    let error_proxy = Probe::get("/base/error").send(proxy).await?;
    f.step(format!(
        "GET /base/error → through lab naive {} {:?}; through lab proxy {} {:?}",
        error_naive.status,
        error_naive.text(),
        error_proxy.status,
        error_proxy.text()
    ));
    f.claim_eq(
        "naive-loses-the-status",
        "naive 200, proxy 500",
        format!(
            "naive {}, proxy {}",
            error_naive.status.as_u16(),
            error_proxy.status.as_u16()
        ),
        "the naive code copies headers and body but never calls rw.WriteHeader(resp.StatusCode): Go sends 200 with the error's body",
    );
    f.observe(
        "naive-error-status",
        error_naive.status.as_u16(),
        "the upstream's 500 is lost: the first body write sends 200",
    );

    // Problem 4: no URL rewriting — the path goes through untouched.
    let rewritten = RunningProxy::start(&[
        "--upstream",
        &format!("http://{server}"),
        "--rewrite",
        "^/dir(.*)=$1",
    ])
    .await?;
    let naive_path = Probe::get("/dir/abc")
        .header("Accept", "application/json")
        .send(naive)
        .await?
        .json_echo()?
        .uri;
    let proxy_path = Probe::get("/dir/abc")
        .header("Accept", "application/json")
        .send(rewritten.addr())
        .await?
        .json_echo()?
        .uri;
    rewritten.shutdown().await?;
    f.step(format!(
        "GET /dir/abc → lab naive sent {naive_path}; lab proxy --rewrite '^/dir(.*)=$1' sent {proxy_path}"
    ));
    f.claim_eq(
        "naive-cannot-rewrite",
        "naive /dir/abc, proxy /abc",
        format!("naive {naive_path}, proxy {proxy_path}"),
        "problem 4 (没有url重写): the naive code has no place to change the URL; ReverseProxy's Director is that place",
    );

    // Problem 1: no error callback — a dead upstream.
    let dead = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    let naive_dead = start_naive(&format!("http://{dead}")).await?;
    let down = Probe::get("/abc").send(naive_dead.addr()).await?;
    naive_dead.shutdown().await?;
    f.step(format!(
        "lab naive with nothing at {dead}: {} {}",
        down.status,
        down.text().trim()
    ));
    f.claim(
        "naive-has-no-error-callback",
        down.status == StatusCode::BAD_GATEWAY,
        "502 from the lab's stand-in for Go's panic",
        format!("{}", down.status),
        "problem 1 (没有错误回调及错误日志): the Go code panics here and the client gets an empty reply; the lab answers a fixed 502 instead, but there is still no hook to decide what the client sees (ReverseProxy's ErrorHandler, lab 06)",
    );
    Ok(())
}
