//! Lab 05, the naive reverse proxy (简单版反向代理) against a ReverseProxy:
//! what the article's hand-written proxy gets wrong, and its five listed
//! problems where they can be seen on the wire.
//!
//! Two pairs run the same probes: in Go, the article's naive proxy
//! (`labs/go/naive`) beside `httputil.NewSingleHostReverseProxy`
//! (`labs/go/singlehost`); in `lab`, `lab naive` (the article's code, copied)
//! beside `lab proxy`. Where `lab naive` departs from the article's code (a
//! 502 where the Go handler panics), the check says it is `lab`'s choice.

use std::net::SocketAddr;

use futures_util::future::BoxFuture;
use tokio::net::TcpListener;

use super::servers::with_real_servers;
use crate::cli::launch::RunningProxy;
use crate::golang::GoProgram;
use crate::labs::findings::{Findings, Subject};
use crate::probe::Probe;
use crate::proxy::naive::{self, Target};
use crate::realserver::EchoReport;
use crate::server::Background;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 1, |f, servers| experiment(f, servers[0]))
}

async fn start_naive(target: &str) -> anyhow::Result<Background> {
    let target: Target = target.parse().map_err(|e| anyhow::anyhow!("{e}"))?;
    Background::spawn_on_free_port(|listener, shutdown| naive::serve(listener, target, shutdown))
        .await
}

/// The two proxies of one subject: the naive one and a ReverseProxy.
#[derive(Clone, Copy)]
struct Pair {
    naive: SocketAddr,
    reverse: SocketAddr,
    /// How the report names the ReverseProxy of the pair.
    reverse_name: &'static str,
}

async fn experiment(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    let target = format!("http://{server}");
    // Nothing listens here: the upstream of problem 1.
    let dead = format!(
        "http://{}",
        TcpListener::bind("127.0.0.1:0").await?.local_addr()?
    );

    if f.lab {
        f.measure_on(Subject::Lab);
        let naive = start_naive(&target).await?;
        let proxy = RunningProxy::start(&["--upstream", &target]).await?;
        f.step(format!(
            "started `lab naive --target {target}` on {} and `lab proxy --upstream {target}` on {}",
            naive.addr(),
            proxy.addr()
        ));
        let pair = Pair {
            naive: naive.addr(),
            reverse: proxy.addr(),
            reverse_name: "lab proxy",
        };
        let result = probes(f, pair).await;
        naive.shutdown().await?;
        proxy.shutdown().await?;
        result?;

        let naive_dead = start_naive(&dead).await?;
        let proxy_dead = RunningProxy::start(&["--upstream", &dead]).await?;
        let result = upstream_down(
            f,
            &dead,
            Pair {
                naive: naive_dead.addr(),
                reverse: proxy_dead.addr(),
                reverse_name: "lab proxy",
            },
        )
        .await;
        naive_dead.shutdown().await?;
        proxy_dead.shutdown().await?;
        result?;
    }

    if let Some((naive, single)) = go_pair(f, &target).await? {
        f.measure_on(Subject::Go);
        let pair = Pair {
            naive: naive.addr(),
            reverse: single.addr(),
            reverse_name: "singlehost",
        };
        let result = probes(f, pair).await;
        naive.shutdown().await?;
        single.shutdown().await?;
        f.measure_on(Subject::Lab);
        result?;
    }
    if let Some((naive, single)) = go_pair(f, &dead).await? {
        f.measure_on(Subject::Go);
        let pair = Pair {
            naive: naive.addr(),
            reverse: single.addr(),
            reverse_name: "singlehost",
        };
        let result = upstream_down(f, &dead, pair).await;
        naive.shutdown().await?;
        single.shutdown().await?;
        f.measure_on(Subject::Lab);
        result?;
    }
    Ok(())
}

/// Go's pair in front of `target`: the article's naive proxy and
/// NewSingleHostReverseProxy; `None` when Go does not run.
async fn go_pair(f: &mut Findings, target: &str) -> anyhow::Result<Option<(GoProgram, GoProgram)>> {
    let args = ["--listen", "127.0.0.1:0", "--target", target];
    let Some(naive) = f.start_go("naive", &args).await? else {
        return Ok(None);
    };
    match f.start_go("singlehost", &args).await {
        Ok(Some(single)) => Ok(Some((naive, single))),
        Ok(None) => {
            naive.shutdown().await?;
            Ok(None)
        }
        Err(err) => {
            let _ = naive.shutdown().await;
            Err(err)
        }
    }
}

/// The same requests through the naive proxy and the ReverseProxy of `pair`.
async fn probes(f: &mut Findings, pair: Pair) -> anyhow::Result<()> {
    let Pair {
        naive,
        reverse,
        reverse_name,
    } = pair;
    let probe = || {
        Probe::get("/abc")
            .header("Accept", "application/json")
            .header("Connection", "X-Foo")
            .header("X-Foo", "1")
    };
    let through_naive = probe().send(naive).await?.json_echo()?;
    let through_reverse = probe().send(reverse).await?.json_echo()?;
    f.step(format!(
        "GET /abc with Connection: X-Foo and X-Foo: 1 → through the naive proxy the real server saw X-Forwarded-For: {}, X-Foo: {:?}; through {reverse_name} X-Forwarded-For: {}, X-Foo: {:?}",
        xff(&through_naive),
        through_naive.header_values("x-foo"),
        xff(&through_reverse),
        through_reverse.header_values("x-foo"),
    ));
    f.claim_eq(
        "naive-loses-the-client",
        "naive none, ReverseProxy 127.0.0.1",
        format!(
            "naive {}, ReverseProxy {}",
            xff(&through_naive),
            xff(&through_reverse)
        ),
        "the naive code sends the request as it came: the real server's RemoteAddr is the proxy, and nothing says who the client was. ReverseProxy's step 6 appends the client to X-Forwarded-For",
    );
    f.observe(
        "naive-xff",
        xff(&through_naive),
        "the naive proxy adds no X-Forwarded-For",
    );
    let arrives = |echo: &EchoReport| {
        if echo.header_values("x-foo").is_empty() {
            "missing"
        } else {
            "arrives"
        }
    };
    f.claim_eq(
        "naive-forwards-hop-by-hop",
        "X-Foo arrives through the naive proxy, missing through ReverseProxy",
        format!(
            "X-Foo {} through the naive proxy, {} through ReverseProxy",
            arrives(&through_naive),
            arrives(&through_reverse)
        ),
        "Connection: X-Foo made X-Foo a hop-by-hop header; only ReverseProxy removes it (its removeConnectionHeaders)",
    );

    let error_naive = Probe::get("/base/error").send(naive).await?;
    let error_reverse = Probe::get("/base/error").send(reverse).await?;
    f.step(format!(
        "GET /base/error → through the naive proxy {} {:?}; through {reverse_name} {} {:?}",
        error_naive.status,
        error_naive.text(),
        error_reverse.status,
        error_reverse.text()
    ));
    f.claim_eq(
        "naive-loses-the-status",
        "naive 200, ReverseProxy 500",
        format!(
            "naive {}, ReverseProxy {}",
            error_naive.status.as_u16(),
            error_reverse.status.as_u16()
        ),
        "the naive code copies headers and body but never calls rw.WriteHeader(resp.StatusCode): Go's first body write sends 200 with the error's body",
    );
    f.observe(
        "naive-error-status",
        error_naive.status.as_u16(),
        "the upstream's 500 is lost: the first body write sends 200",
    );

    // Problem 4: no URL rewriting — the path goes through untouched.
    let naive_path = Probe::get("/dir/abc")
        .header("Accept", "application/json")
        .send(naive)
        .await?
        .json_echo()?
        .uri;
    f.step(format!("GET /dir/abc → the naive proxy sent {naive_path}"));
    f.claim_eq(
        "naive-cannot-rewrite",
        "/dir/abc",
        naive_path,
        "problem 4 (没有url重写): the naive code sets only the scheme and host of req.URL; ReverseProxy's Director is the place to change the path (lab 06)",
    );
    Ok(())
}

/// Problem 1: with nothing at `dead`, what each proxy of `pair` answers.
async fn upstream_down(f: &mut Findings, dead: &str, pair: Pair) -> anyhow::Result<()> {
    let naive = answer(pair.naive).await?;
    let reverse = answer(pair.reverse).await?;
    f.step(format!(
        "with nothing at {dead}: GET /abc → the naive proxy: {naive}; {}: {reverse}",
        pair.reverse_name
    ));
    match f.subject() {
        Subject::Go => f.claim_eq(
            "naive-has-no-error-callback",
            NO_RESPONSE,
            &naive,
            "problem 1 (没有错误回调及错误日志): RoundTrip's error goes to panic(err); net/http recovers the handler's panic, logs it and closes the connection without an answer (curl: Empty reply from server)",
        ),
        Subject::Lab => f.claim_lab_choice(
            "naive-has-no-error-callback",
            "502 Bad Gateway",
            &naive,
            "lab naive answers a fixed 502 and a sentence where the article's handler panics: a learner should see an answer, not a dropped connection. There is still no hook to decide what the client sees",
        ),
    }
    f.claim_eq(
        "reverse-proxy-answers-502",
        "502 Bad Gateway",
        &reverse,
        "ReverseProxy's default ErrorHandler logs the error and answers 502 Bad Gateway; ErrorHandler is the hook to do otherwise (lab 07)",
    );
    Ok(())
}

/// What a client gets when nothing answers: no status line at all.
const NO_RESPONSE: &str = "no response (the connection closed)";

/// The status a GET /abc to `addr` gets, or [`NO_RESPONSE`].
async fn answer(addr: SocketAddr) -> anyhow::Result<String> {
    match Probe::get("/abc").send(addr).await {
        Ok(exchange) => Ok(exchange.status.to_string()),
        Err(err) if format!("{err:#}").contains("closed the connection without a response") => {
            Ok(NO_RESPONSE.to_string())
        }
        Err(err) => Err(err),
    }
}

fn xff(echo: &EchoReport) -> String {
    let values = echo.header_values("x-forwarded-for");
    if values.is_empty() {
        "none".to_string()
    } else {
        values.join(" | ")
    }
}
