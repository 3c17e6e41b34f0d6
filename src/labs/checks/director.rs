//! Lab 05, the Director (控制器): where the request goes. Path join, query
//! merge, the article's regex rewrite, a set header, a replaced body, and
//! which Host the upstream sees.

use futures_util::future::BoxFuture;
use http::Method;

use super::servers::with_real_servers;
use crate::cli::launch::RunningProxy;
use crate::labs::findings::Findings;
use crate::probe::Probe;

/// The article's replacement body.
const JSON: &str = r#"{"apple":2,"banana":3,"cherry":4}"#;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 1, |f, servers| experiment(f, servers[0]))
}

async fn experiment(f: &mut Findings, server: std::net::SocketAddr) -> anyhow::Result<()> {
    let target = format!("http://{server}/base?name=123");
    let plain = RunningProxy::start(&["--upstream", &target]).await?;
    let custom = RunningProxy::start(&[
        "--upstream",
        &format!("http://{server}/base"),
        "--rewrite",
        "^/dir(.*)=$1",
        "--set-header",
        "token:ssss",
        "--replace-body",
        JSON,
    ])
    .await?;
    f.step(format!(
        "started `lab proxy --upstream {target}` on {} and, on {}, one with --rewrite '^/dir(.*)=$1' --set-header token:ssss --replace-body '{JSON}'",
        plain.addr(),
        custom.addr()
    ));
    let result = observe(f, &plain, &custom).await;
    plain.shutdown().await?;
    custom.shutdown().await?;
    result
}

async fn observe(
    f: &mut Findings,
    plain: &RunningProxy,
    custom: &RunningProxy,
) -> anyhow::Result<()> {
    let seen = |path: &str| Probe::get(path).header("Accept", "application/json");

    let joined = seen("/xxx").send(plain.addr()).await?.json_echo()?;
    f.step(format!("GET /xxx → the upstream saw {}", joined.uri));
    f.claim_eq(
        "path-joins-with-one-slash",
        "/base/xxx?name=123",
        &joined.uri,
        "singleJoiningSlash puts exactly one slash between the target's /base and the request's /xxx",
    );

    let merged = seen("/xxx?x=1").send(plain.addr()).await?.json_echo()?;
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

    let encoded = seen("/a%2Fb").send(plain.addr()).await?.json_echo()?;
    f.step(format!("GET /a%2Fb → the upstream saw {}", encoded.uri));
    f.claim_eq(
        "encoded-path-kept",
        "/base/a%2Fb?name=123",
        &encoded.uri,
        "the join works on the path as received, so an encoded slash stays one segment (Go's joinURLPath uses RawPath for this)",
    );

    let host = joined.header_values("host").join(",");
    f.claim_eq(
        "host-is-the-clients",
        plain.addr(),
        &host,
        "NewSingleHostReverseProxy's director never touches req.Host: the upstream sees the Host the client sent to the proxy (and X-Forwarded-Host says so too)",
    );
    f.observe(
        "host-seen",
        if host == plain.addr().to_string() {
            "proxy"
        } else {
            "upstream"
        },
        format!("Host: {host}, the address the client connected to"),
    );

    let rewritten = seen("/dir/abc").send(custom.addr()).await?.json_echo()?;
    f.step(format!(
        "GET /dir/abc through the custom proxy → the upstream saw {}",
        rewritten.uri
    ));
    f.claim_eq(
        "rewrite-strips-dir",
        "/base/abc",
        &rewritten.uri,
        "the rewrite runs before the join: ^/dir(.*) → $1 turns /dir/abc into /abc, then /base is joined",
    );
    f.claim_eq(
        "set-header-arrives",
        "ssss",
        rewritten.header_values("token").join(","),
        "the director sets the header on the outgoing request: req.Header.Set(\"token\", \"ssss\")",
    );

    let posted = seen("/dir/post")
        .method(Method::POST)
        .body("hello world")
        .send(custom.addr())
        .await?
        .json_echo()?;
    let length = posted.header_values("content-length").join(",");
    f.step(format!(
        "POST /dir/post with an 11-byte body → the upstream received {} bytes, Content-Length: {length}",
        posted.body_bytes
    ));
    f.claim_eq(
        "body-replaced-length-fixed",
        format!("{} bytes, Content-Length: {}", JSON.len(), JSON.len()),
        format!("{} bytes, Content-Length: {length}", posted.body_bytes),
        "a replaced body needs its Content-Length changed too (the article's warning); a stale length would cut the body or hang the upstream",
    );
    f.observe(
        "replaced-bytes",
        posted.body_bytes,
        format!(
            "the JSON document {JSON} is {} bytes; the client's 11 bytes were read and dropped",
            JSON.len()
        ),
    );
    Ok(())
}
