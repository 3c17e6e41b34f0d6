//! Lab 07, ModifyResponse (修改返回内容) and ErrorHandler (错误回调): the
//! article's prefixes, and what a client hears when the upstream is down.
//!
//! Each probe runs through `lab proxy` (with the flags that mimic the
//! article's hooks) and through the Go program of the listing it follows:
//! the 2.2 proxy (`labs/go/director`: `hello ` on a 200, an ErrorHandler that
//! answers 200), the article's main.go (`labs/go/balancer`: `StatusCode
//! error:` on a non-200, 500 `ErrorHandler error:`), and Go's ReverseProxy
//! with its default ErrorHandler (`labs/go/singlehost`: 502).

use std::net::SocketAddr;

use futures_util::future::BoxFuture;
use http::{Method, StatusCode};
use tokio::net::TcpListener;

use super::fronts::{Front, subjects};
use super::servers::{upstream_url, with_real_servers};
use crate::labs::findings::{Findings, Subject};
use crate::probe::{Exchange, Probe};

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 1, |f, servers| experiment(f, servers[0]))
}

/// A loopback address where nothing listens: bind a port, then let it go.
async fn dead_address() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?)
}

async fn experiment(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    let upstream = upstream_url(server);
    let dead = format!("http://{}/base", dead_address().await?);
    f.step(format!(
        "nothing listens on {dead}: the upstream that is down"
    ));
    let mut result = Ok(());
    for subject in subjects(f) {
        f.measure_on(subject);
        result = on_one_program(f, &upstream, &dead).await;
        if result.is_err() {
            break;
        }
    }
    f.measure_on(Subject::Lab);
    result
}

async fn on_one_program(f: &mut Findings, upstream: &str, dead: &str) -> anyhow::Result<()> {
    prefix_on_200(f, upstream).await?;
    prefix_errors(f, upstream).await?;
    unreachable(f, dead).await?;
    article_errors(f, dead).await?;
    if f.subject() == Subject::Go {
        director_errors(f, upstream, dead).await?;
    }
    Ok(())
}

/// Sends `probe` through a proxy started by [`Front::start`], and stops it.
async fn through(
    f: &mut Findings,
    lab_flags: &[&str],
    go_name: &str,
    go_args: &[&str],
    probes: &[Probe],
) -> anyhow::Result<Option<Vec<Exchange>>> {
    let Some(proxy) = Front::start(f, lab_flags, go_name, go_args).await? else {
        return Ok(None);
    };
    let mut answers = Vec::with_capacity(probes.len());
    let mut result = Ok(());
    for probe in probes {
        match probe.send(proxy.addr()).await {
            Ok(answer) => answers.push(answer),
            Err(err) => {
                result = Err(err);
                break;
            }
        }
    }
    proxy.shutdown().await?;
    result.map(|()| Some(answers))
}

/// A POST: the 2.2 Director reads the request body, and panics on a request
/// without one (lab 06).
fn post(path: &str) -> Probe {
    Probe::get(path)
        .method(Method::POST)
        .header("Content-Type", "text/plain")
        .body("x=1")
}

async fn prefix_on_200(f: &mut Findings, upstream: &str) -> anyhow::Result<()> {
    let Some(answers) = through(
        f,
        &["--upstream", upstream, "--prefix-response", "hello "],
        "director",
        &["--target", upstream],
        &[post("/abc")],
    )
    .await?
    else {
        return Ok(());
    };
    let ok = &answers[0];
    let text = ok.text();
    let length = ok
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("(none)")
        .to_string();
    f.step(format!(
        "POST /abc → {} with {} body bytes, Content-Length: {length}, starting {:?}",
        ok.status,
        ok.body.len(),
        text.lines().next().unwrap_or("")
    ));
    f.claim(
        "prefix-on-200",
        text.starts_with("hello http://") && length == ok.body.len().to_string(),
        "the body starts with \"hello \" and Content-Length counts the prefix",
        format!(
            "starts {:?}, Content-Length {length}, {} bytes",
            &text[..text.len().min(12)],
            ok.body.len()
        ),
        "ModifyResponse prepends the prefix and fixes the length (res.ContentLength = len(newPayLoad)); a stale length would cut the last 6 bytes",
    );
    Ok(())
}

async fn prefix_errors(f: &mut Findings, upstream: &str) -> anyhow::Result<()> {
    let Some(answers) = through(
        f,
        &["--upstream", upstream, "--prefix-errors"],
        "balancer",
        &["--upstream", upstream],
        &[Probe::get("/error")],
    )
    .await?
    else {
        return Ok(());
    };
    let error = &answers[0];
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
    Ok(())
}

async fn unreachable(f: &mut Findings, dead: &str) -> anyhow::Result<()> {
    let Some(answers) = through(
        f,
        &["--upstream", dead],
        "singlehost",
        &["--target", dead],
        &[Probe::get("/abc")],
    )
    .await?
    else {
        return Ok(());
    };
    let down = &answers[0];
    f.step(format!(
        "GET /abc, upstream down → {}: {:?}",
        down.status,
        down.text().trim()
    ));
    f.claim_eq(
        "unreachable-is-502",
        StatusCode::BAD_GATEWAY,
        down.status,
        "Go's default ErrorHandler logs \"http: proxy error: …\" and answers 502 to every error; RFC 9110 §15.6.3: 502 means the gateway got no valid response from upstream, the proxy itself is fine",
    );
    f.observe(
        "status-upstream-down",
        down.status.as_u16(),
        "the ErrorHandler answers 502 Bad Gateway when the upstream cannot be reached",
    );
    if f.subject() == Subject::Lab {
        f.claim(
            "bad-gateway-says-what-to-start",
            down.text().contains("lab realserver"),
            "a body that names the upstream and says what to start",
            down.text().trim(),
            "lab proxy explains its 502 to the learner; Go's default ErrorHandler writes the status and an empty body",
        );
    }
    Ok(())
}

async fn article_errors(f: &mut Findings, dead: &str) -> anyhow::Result<()> {
    let Some(answers) = through(
        f,
        &["--upstream", dead, "--article-errors"],
        "balancer",
        &["--upstream", dead],
        &[Probe::get("/abc")],
    )
    .await?
    else {
        return Ok(());
    };
    let down = &answers[0];
    f.step(format!(
        "GET /abc, upstream down, the article's errFunc → {}: {}",
        down.status,
        down.text().trim()
    ));
    f.claim(
        "article-answers-500",
        down.status == StatusCode::INTERNAL_SERVER_ERROR
            && down.text().starts_with("ErrorHandler error:"),
        "500 with \"ErrorHandler error:…\"",
        format!("{}: {}", down.status, down.text().trim()),
        "the article's errFunc calls http.Error(w, \"ErrorHandler error:\"+err.Error(), 500): a client (or a retrying load balancer) cannot tell a broken proxy from a broken upstream",
    );
    f.observe(
        "status-article-errors",
        down.status.as_u16(),
        "http.Error(w, …, 500) in the article's ErrorHandler",
    );
    Ok(())
}

/// The 2.2 proxy's ErrorHandler writes the error's text and no status: 200.
async fn director_errors(f: &mut Findings, upstream: &str, dead: &str) -> anyhow::Result<()> {
    let Some(failing) = through(
        f,
        &[],
        "director",
        &["--target", upstream],
        &[post("/error")],
    )
    .await?
    else {
        return Ok(());
    };
    let Some(down) = through(f, &[], "director", &["--target", dead], &[post("/abc")]).await?
    else {
        return Ok(());
    };
    let (failing, down) = (&failing[0], &down[0]);
    f.step(format!(
        "through the 2.2 proxy: POST /error (the real server answers 500) → {}: {:?}; POST /abc with the upstream down → {}: {:?}",
        failing.status,
        failing.text(),
        down.status,
        down.text()
    ));
    f.claim(
        "director-errors-answer-200",
        failing.status == StatusCode::OK
            && failing.text() == "error statusCode"
            && down.status == StatusCode::OK
            && down.text().contains("connection refused"),
        "upstream's 500: 200 \"error statusCode\"; upstream down: 200 \"dial tcp …: connect: connection refused\"",
        format!(
            "upstream's 500: {} {:?}; upstream down: {} {:?}",
            failing.status.as_u16(),
            failing.text(),
            down.status.as_u16(),
            down.text()
        ),
        "the 2.2 errorHandler only calls res.Write(err.Error()): a handler that writes without WriteHeader answers 200 OK; its ModifyResponse turned the upstream's 500 into an error first",
    );
    Ok(())
}
