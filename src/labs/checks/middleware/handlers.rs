//! Lab 19's first section, on both programs: Go's `httputil.ReverseProxy`
//! has none of the five layers (as it comes, ten requests sent flat out
//! without a token all pass), and a layer is an `http.Handler` around it
//! that answers before the proxy runs (`auth(proxy)`: 401 without the
//! token, 200 with it). Go's side is `labs/go/middleware`; `lab`'s is `lab
//! proxy` without and with `--auth-token`.

use std::net::SocketAddr;

use super::auth::TOKEN;
use super::started::Started;
use crate::labs::checks::proxy_pages::header;
use crate::labs::checks::servers::upstream_url as base;
use crate::labs::findings::{Findings, Subject};
use crate::probe::{Exchange, Probe};

/// Requests sent flat out through the bare proxy.
const FLAT_OUT: usize = 10;

/// `lab proxy` without middleware flags, then with `--auth-token`.
pub(super) async fn on_lab(
    f: &mut Findings,
    lab: &mut Started,
    a: SocketAddr,
) -> anyhow::Result<()> {
    let bare = lab.proxy(&["--upstream", &base(a)]).await?;
    let wrapped = lab
        .proxy(&["--upstream", &base(a), "--auth-token", TOKEN])
        .await?;
    f.step(format!(
        "`lab proxy --upstream {}` at {bare}, and with `--auth-token {TOKEN}` at {wrapped}",
        base(a)
    ));
    measure(f, bare, wrapped).await
}

/// `labs/go/middleware` without flags, then with `--auth-token`.
pub(super) async fn on_go(f: &mut Findings, a: SocketAddr) -> anyhow::Result<()> {
    let upstream = base(a);
    let Some(bare) = f
        .start_go(
            "middleware",
            &["--listen", "127.0.0.1:0", "--upstream", &upstream],
        )
        .await?
    else {
        return Ok(());
    };
    let wrapped = f
        .start_go(
            "middleware",
            &[
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                &upstream,
                "--auth-token",
                TOKEN,
            ],
        )
        .await;
    let wrapped = match wrapped {
        Ok(Some(wrapped)) => wrapped,
        Ok(None) => return bare.shutdown().await,
        Err(err) => {
            bare.shutdown().await?;
            return Err(err);
        }
    };
    let result = measure(f, bare.addr(), wrapped.addr()).await;
    bare.shutdown().await?;
    wrapped.shutdown().await?;
    result
}

/// A refusal in a few words: `401 Bearer …`.
fn answer(e: &Exchange) -> String {
    match header(e, "www-authenticate") {
        Some(challenge) if challenge.starts_with("Bearer") => {
            format!("{} with a Bearer challenge", e.status.as_u16())
        }
        Some(other) => format!("{} with the challenge {other:?}", e.status.as_u16()),
        None => e.status.as_u16().to_string(),
    }
}

/// The claims, through the bare proxy at `bare` and the wrapped one at
/// `wrapped`.
async fn measure(f: &mut Findings, bare: SocketAddr, wrapped: SocketAddr) -> anyhow::Result<()> {
    let mut statuses = Vec::with_capacity(FLAT_OUT);
    for _ in 0..FLAT_OUT {
        statuses.push(Probe::get("/abc").send(bare).await?.status.as_u16());
    }
    let passed = statuses.iter().filter(|&&s| s == 200).count();
    f.step(format!(
        "{FLAT_OUT} requests flat out, no token, through the bare proxy: {}",
        statuses
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let on_go = f.subject() == Subject::Go;
    f.claim_eq(
        "bare-proxy-has-no-middleware",
        format!("{FLAT_OUT} of {FLAT_OUT} pass (200)"),
        format!("{passed} of {FLAT_OUT} pass (200)"),
        if on_go {
            "httputil.ReverseProxy has no auth, no rate limit, no breaker: every request it gets goes to the upstream"
        } else {
            "lab proxy's layers are off until a flag turns them on (statistics are only counted): without flags it passes everything, as Go's ReverseProxy does"
        },
    );

    let without = Probe::get("/abc").send(wrapped).await?;
    let with = Probe::get("/abc")
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .send(wrapped)
        .await?;
    f.step(format!(
        "wrapped in auth: no token → {}; Authorization: Bearer {TOKEN} → {}",
        answer(&without),
        answer(&with)
    ));
    f.claim_eq(
        "a-wrapper-answers-first",
        "no token: 401 with a Bearer challenge; the token: 200",
        format!(
            "no token: {}; the token: {}",
            answer(&without),
            answer(&with)
        ),
        if on_go {
            "the wrapper is an http.Handler whose ServeHTTP runs first: it answers 401 itself, and calls the ReverseProxy's ServeHTTP only for a request it lets through"
        } else {
            "lab proxy's auth layer runs in its chain before the ReverseProxy's steps (src/proxy/chain.rs), as a wrapper would: it answers 401 itself"
        },
    );
    Ok(())
}
