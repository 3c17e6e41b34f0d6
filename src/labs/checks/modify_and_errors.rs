//! Lab 06, ModifyResponse (修改返回内容) and ErrorHandler (错误回调): the
//! article's prefixes, and what a client hears when the upstream is down.

use std::net::SocketAddr;

use futures_util::future::BoxFuture;
use http::StatusCode;
use tokio::net::TcpListener;

use super::servers::with_real_servers;
use crate::cli::launch::RunningProxy;
use crate::labs::findings::Findings;
use crate::probe::Probe;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 1, |f, servers| experiment(f, servers[0]))
}

/// A loopback address where nothing listens: bind a port, then let it go.
async fn dead_address() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?)
}

async fn experiment(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    let upstream = format!("http://{server}/base");
    let modifying = RunningProxy::start(&[
        "--upstream",
        &upstream,
        "--prefix-response",
        "hello ",
        "--prefix-errors",
    ])
    .await?;
    let dead = format!("http://{}/base", dead_address().await?);
    let gateway = RunningProxy::start(&["--upstream", &dead]).await?;
    let article = RunningProxy::start(&["--upstream", &dead, "--article-errors"]).await?;
    f.step(format!(
        "started `lab proxy --prefix-response 'hello ' --prefix-errors` → {upstream} on {}, and two proxies to {dead} where nothing listens: plain on {}, --article-errors on {}",
        modifying.addr(),
        gateway.addr(),
        article.addr()
    ));
    let result = observe(f, &modifying, &gateway, &article).await;
    for proxy in [modifying, gateway, article] {
        proxy.shutdown().await?;
    }
    result
}

async fn observe(
    f: &mut Findings,
    modifying: &RunningProxy,
    gateway: &RunningProxy,
    article: &RunningProxy,
) -> anyhow::Result<()> {
    let ok = Probe::get("/abc").send(modifying.addr()).await?;
    let text = ok.text();
    let length = ok
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .to_string();
    f.step(format!(
        "GET /abc → {} with {} body bytes, Content-Length: {length}, starting {:?}",
        ok.status,
        ok.body.len(),
        text.lines().next().unwrap_or("")
    ));
    f.claim(
        "prefix-on-200",
        text.starts_with("hello http://") && length == ok.body.len().to_string(),
        "the body starts with \"hello \" and Content-Length counts the prefix",
        format!("starts {:?}, Content-Length {length}, {} bytes", &text[..text.len().min(12)], ok.body.len()),
        "ModifyResponse prepends the prefix and fixes the length (res.ContentLength = len(newPayLoad)); a stale length would cut the last 6 bytes",
    );

    let error = Probe::get("/error").send(modifying.addr()).await?;
    f.step(format!("GET /error → {}: {:?}", error.status, error.text()));
    f.claim_eq(
        "prefix-errors-on-non-200",
        "500 Internal Server Error: StatusCode error:error handler",
        format!("{}: {}", error.status, error.text()),
        "the multi-host proxy's ModifyResponse: if resp.StatusCode != 200, prefix the body with \"StatusCode error:\"",
    );
    f.observe(
        "error-body",
        error.text(),
        "the real server's /base/error says \"error handler\"; ModifyResponse put \"StatusCode error:\" before it",
    );

    let down = Probe::get("/abc").send(gateway.addr()).await?;
    f.step(format!(
        "GET /abc, upstream down → {}: {}",
        down.status,
        down.text().trim()
    ));
    f.claim(
        "unreachable-is-502",
        down.status == StatusCode::BAD_GATEWAY && down.text().contains("lab realserver"),
        "502 Bad Gateway, with a body that says what to start",
        format!("{}: {}", down.status, down.text().trim()),
        "RFC 9110 §15.6.3: 502 means the gateway got no valid response from upstream; the proxy itself is fine",
    );
    f.observe(
        "status-upstream-down",
        down.status.as_u16(),
        "the ErrorHandler answers 502 Bad Gateway when the upstream cannot be reached",
    );

    let article_down = Probe::get("/abc").send(article.addr()).await?;
    f.step(format!(
        "the same with --article-errors → {}: {}",
        article_down.status,
        article_down.text().trim()
    ));
    f.claim(
        "article-answers-500",
        article_down.status == StatusCode::INTERNAL_SERVER_ERROR
            && article_down.text().starts_with("ErrorHandler error:"),
        "500 with \"ErrorHandler error:…\"",
        format!("{}: {}", article_down.status, article_down.text().trim()),
        "the article's errFunc calls http.Error(w, \"ErrorHandler error:\"+err.Error(), 500): a client (or a retrying load balancer) cannot tell a broken proxy from a broken upstream",
    );
    f.observe(
        "status-article-errors",
        article_down.status.as_u16(),
        "http.Error(w, …, 500) in the article's ErrorHandler",
    );
    Ok(())
}
