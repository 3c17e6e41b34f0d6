//! Lab 06, the Director (控制器): where the request goes. Path join, query
//! merge, the article's regex rewrite, a set header, a replaced body, and
//! which Host the upstream sees.
//!
//! Two pairs run the same probes. NewSingleHostReverseProxy's Director: Go's
//! own (`labs/go/singlehost`) beside `lab proxy --upstream`. The article's
//! custom Director (2.2, `labs/go/director`) beside `lab proxy` with
//! `--rewrite`, `--set-header` and `--replace-body`. The Go director also
//! shows its bugs: a GET makes it panic, the rewrite decodes an encoded
//! slash, and (with `--stale-length`, the article's warning ignored) Go's
//! transport refuses a body whose length is not ContentLength.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use http::Method;

use super::servers::with_real_servers;
use crate::cli::launch::RunningProxy;
use crate::labs::findings::{Findings, Subject};
use crate::probe::Probe;
use crate::realserver::EchoReport;

/// The article's replacement body.
const JSON: &str = r#"{"apple":2,"banana":3,"cherry":4}"#;

/// What the client POSTs: 11 bytes, replaced by [`JSON`] on the way.
const POSTED: &str = "hello world";

/// The prefix the article's ModifyResponse puts in front of a 200's body.
const HELLO: &str = "hello ";

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 1, |f, servers| experiment(f, servers[0]))
}

async fn experiment(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    let target = format!("http://{server}/base?name=123");
    let base = format!("http://{server}/base");

    if f.lab {
        f.measure_on(Subject::Lab);
        let plain = RunningProxy::start(&["--upstream", &target]).await?;
        let custom = RunningProxy::start(&[
            "--upstream",
            &base,
            "--rewrite",
            "^/dir(.*)=$1",
            "--set-header",
            "token:ssss",
            "--replace-body",
            JSON,
        ])
        .await?;
        f.step(format!(
            "started `lab proxy --upstream {target}` on {} and, on {}, one with --upstream {base} --rewrite '^/dir(.*)=$1' --set-header token:ssss --replace-body '{JSON}'",
            plain.addr(),
            custom.addr()
        ));
        let result = async {
            single_host(f, plain.addr()).await?;
            custom_director(f, custom.addr()).await?;
            lab_differences(f, custom.addr()).await
        }
        .await;
        plain.shutdown().await?;
        custom.shutdown().await?;
        result?;
    }

    if let Some(single) = f
        .start_go(
            "singlehost",
            &["--listen", "127.0.0.1:0", "--target", &target],
        )
        .await?
    {
        f.measure_on(Subject::Go);
        let result = single_host(f, single.addr()).await;
        single.shutdown().await?;
        f.measure_on(Subject::Lab);
        result?;
    }
    if let Some(director) = f
        .start_go("director", &["--listen", "127.0.0.1:0", "--target", &base])
        .await?
    {
        f.measure_on(Subject::Go);
        let result = async {
            custom_director(f, director.addr()).await?;
            article_bugs(f, director.addr()).await
        }
        .await;
        director.shutdown().await?;
        f.measure_on(Subject::Lab);
        result?;
    }
    if let Some(stale) = f
        .start_go(
            "director",
            &[
                "--listen",
                "127.0.0.1:0",
                "--target",
                &base,
                "--stale-length",
            ],
        )
        .await?
    {
        f.measure_on(Subject::Go);
        let result = stale_length(f, stale.addr()).await;
        stale.shutdown().await?;
        f.measure_on(Subject::Lab);
        result?;
    }
    Ok(())
}

fn json_probe(path: &str) -> Probe {
    Probe::get(path).header("Accept", "application/json")
}

/// NewSingleHostReverseProxy's Director, through `proxy` (its target
/// `http://SERVER/base?name=123`): join, query, encoding, Host.
async fn single_host(f: &mut Findings, proxy: SocketAddr) -> anyhow::Result<()> {
    let joined = json_probe("/xxx").send(proxy).await?.json_echo()?;
    f.step(format!("GET /xxx → the upstream saw {}", joined.uri));
    f.claim_eq(
        "path-joins-with-one-slash",
        "/base/xxx?name=123",
        &joined.uri,
        "singleJoiningSlash puts exactly one slash between the target's /base and the request's /xxx",
    );

    let merged = json_probe("/xxx?x=1").send(proxy).await?.json_echo()?;
    f.step(format!("GET /xxx?x=1 → the upstream saw {}", merged.uri));
    f.claim_eq(
        "query-target-first",
        "/base/xxx?name=123&x=1",
        &merged.uri,
        "targetQuery + \"&\" + req.URL.RawQuery: the target's query first",
    );
    f.observe(
        "joined-uri",
        &merged.uri,
        "path joined to /base with one slash, the target's name=123 before the request's x=1",
    );

    let encoded = json_probe("/a%2Fb").send(proxy).await?.json_echo()?;
    f.step(format!("GET /a%2Fb → the upstream saw {}", encoded.uri));
    f.claim_eq(
        "encoded-path-kept",
        "/base/a%2Fb?name=123",
        &encoded.uri,
        "the join works on the path as received, so an encoded slash stays one segment (Go's joinURLPath joins RawPath too)",
    );

    let host = joined.header_values("host").join(",");
    f.step(format!(
        "GET /xxx sent to {proxy} → the upstream saw Host: {host}"
    ));
    f.claim_eq(
        "host-is-the-clients",
        proxy,
        &host,
        "NewSingleHostReverseProxy's director never touches req.Host: the upstream sees the Host the client sent to the proxy",
    );
    f.observe(
        "host-seen",
        if host == proxy.to_string() {
            "proxy"
        } else {
            "upstream"
        },
        format!("Host: {host}, the address the client connected to"),
    );
    Ok(())
}

/// The article's custom Director through `proxy` (target
/// `http://SERVER/base`): a POST, since a GET makes the article's code panic.
async fn custom_director(f: &mut Findings, proxy: SocketAddr) -> anyhow::Result<()> {
    let posted = json_probe("/dir/abc")
        .method(Method::POST)
        .body(POSTED)
        .send(proxy)
        .await?;
    let (echo, prefixed) = echo_maybe_prefixed(&posted)?;
    let length = echo.header_values("content-length").join(",");
    f.step(format!(
        "POST /dir/abc with an {}-byte body → the upstream saw {}, token: {}, {} body bytes, Content-Length: {length}{}",
        POSTED.len(),
        echo.uri,
        echo.header_values("token").join(","),
        echo.body_bytes,
        if prefixed {
            format!("; the answer came back as `{HELLO}` + the echo (the article's ModifyResponse)")
        } else {
            String::new()
        }
    ));
    f.claim_eq(
        "rewrite-strips-dir",
        "/base/abc",
        &echo.uri,
        "the rewrite runs before the join: ^/dir(.*) → $1 turns /dir/abc into /abc, then /base is joined",
    );
    f.claim_eq(
        "set-header-arrives",
        "ssss",
        echo.header_values("token").join(","),
        "the director sets the header on the outgoing request: req.Header.Set(\"token\", \"ssss\")",
    );
    f.claim_eq(
        "body-replaced-length-fixed",
        format!("{} bytes, Content-Length: {}", JSON.len(), JSON.len()),
        format!("{} bytes, Content-Length: {length}", echo.body_bytes),
        "the body is replaced and ContentLength set to match (the article's warning): the transport writes Content-Length from that field",
    );
    f.observe(
        "replaced-bytes",
        echo.body_bytes,
        format!(
            "the JSON document {JSON} is {} bytes; the client's {} bytes were read and dropped",
            JSON.len(),
            POSTED.len()
        ),
    );

    let encoded = json_probe("/dir/a%2Fb")
        .method(Method::POST)
        .body(POSTED)
        .send(proxy)
        .await?;
    let (echo, _) = echo_maybe_prefixed(&encoded)?;
    f.step(format!("POST /dir/a%2Fb → the upstream saw {}", echo.uri));
    match f.subject() {
        Subject::Go => f.claim_eq(
            "rewrite-decodes-encoded-slash",
            "/base/a/b",
            &echo.uri,
            "the regexp rewrites the decoded req.URL.Path and leaves RawPath behind; RawPath no longer matches, so Go sends the re-encoded Path: a%2Fb, one segment, became a/b, two",
        ),
        Subject::Lab => f.claim_lab_choice(
            "rewrite-decodes-encoded-slash",
            "/base/a%2Fb",
            &echo.uri,
            "lab proxy's --rewrite works on the path as received, so an encoded slash stays one segment, as NewSingleHostReverseProxy's joinURLPath keeps it",
        ),
    }
    Ok(())
}

/// What the article's Director does wrong, on the Go program: a GET.
async fn article_bugs(f: &mut Findings, director: SocketAddr) -> anyhow::Result<()> {
    let got = status_or_nothing(json_probe("/dir/abc"), director).await?;
    f.step(format!("GET /dir/abc (no body) → {got}"));
    f.claim_eq(
        "get-panics-the-director",
        NO_RESPONSE,
        &got,
        "ServeHTTP sets outreq.Body = nil for a request without a body, and ioutil.ReadAll(nil) panics: net/http recovers the panic, logs it and closes the connection; the upstream never sees the request",
    );
    Ok(())
}

/// `lab proxy` where it differs from the article's Director by design.
async fn lab_differences(f: &mut Findings, custom: SocketAddr) -> anyhow::Result<()> {
    let got = status_or_nothing(json_probe("/dir/abc"), custom).await?;
    f.step(format!(
        "GET /dir/abc (no body) through the custom lab proxy → {got}"
    ));
    f.claim_lab_choice(
        "get-panics-the-director",
        "200 OK",
        &got,
        "lab proxy's --replace-body replaces the body of any request, one that had none too: there is no nil body to trip on",
    );

    // lab proxy computes Content-Length from the new body itself: there is
    // no stale length it could send.
    let posted = json_probe("/dir/abc")
        .method(Method::POST)
        .body(POSTED)
        .send(custom)
        .await?
        .json_echo()?;
    let length = posted.header_values("content-length").join(",");
    f.claim_lab_choice(
        "stale-length-refused",
        format!("no stale length: Content-Length {} for {} bytes", JSON.len(), JSON.len()),
        format!("no stale length: Content-Length {length} for {} bytes", posted.body_bytes),
        "lab proxy's --replace-body sets Content-Length from the new body itself: it has no way to send the client's stale length",
    );
    Ok(())
}

/// The article's warning ignored (`--stale-length`): the transport refuses.
async fn stale_length(f: &mut Findings, stale: SocketAddr) -> anyhow::Result<()> {
    let answer = json_probe("/dir/abc")
        .method(Method::POST)
        .body(POSTED)
        .send(stale)
        .await?;
    f.step(format!(
        "POST /dir/abc with {} bytes through the director run with --stale-length (ContentLength left at {}) → {} {:?} after {} ms",
        POSTED.len(),
        POSTED.len(),
        answer.status,
        answer.text(),
        answer.elapsed.as_millis()
    ));
    let quick = answer.elapsed < Duration::from_secs(1);
    f.claim(
        "stale-length-refused",
        answer.text() == format!("http: ContentLength={} with Body length {}", POSTED.len(), JSON.len())
            && quick,
        format!(
            "http: ContentLength={} with Body length {}, at once",
            POSTED.len(),
            JSON.len()
        ),
        format!(
            "{}{}",
            answer.text(),
            if quick { ", at once" } else { ", after a wait" }
        ),
        "Go's transport counts the body it sends against ContentLength and refuses the request when they differ: the round trip fails at once, and the article's ErrorHandler writes the error (with a 200; Go's default would answer 502). That is the article's 否则会报错",
    );
    Ok(())
}

/// What a client gets when the connection closes without an answer.
const NO_RESPONSE: &str = "no response (the connection closed)";

/// The status `probe` gets from `addr`, or [`NO_RESPONSE`].
async fn status_or_nothing(probe: Probe, addr: SocketAddr) -> anyhow::Result<String> {
    match probe.send(addr).await {
        Ok(exchange) => Ok(exchange.status.to_string()),
        Err(err) if format!("{err:#}").contains("closed the connection without a response") => {
            Ok(NO_RESPONSE.to_string())
        }
        Err(err) => Err(err),
    }
}

/// The real server's JSON echo in `exchange`, after the article's
/// ModifyResponse prefix `hello ` if it is there; and whether it was.
fn echo_maybe_prefixed(exchange: &crate::probe::Exchange) -> anyhow::Result<(EchoReport, bool)> {
    let text = exchange.text();
    match text.strip_prefix(HELLO) {
        Some(rest) => Ok((serde_json::from_str(rest)?, true)),
        None => Ok((exchange.json_echo()?, false)),
    }
}
