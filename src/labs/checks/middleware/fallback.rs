//! Lab 19's 降级 (degradation) section: the fallback replaces the proxy's own
//! errors (502, 503, 504), never an upstream's answer.

use std::net::SocketAddr;

use super::started::{Started, dead_port};
use crate::lab_headers::LAYER_HEADER;
use crate::labs::checks::proxy_pages::header;
use crate::labs::checks::servers::upstream_url as base;
use crate::labs::findings::Findings;
use crate::probe::{Exchange, Probe};

/// The fallback of the degradation section.
const FALLBACK_BODY: &str = "degraded: try again later";

/// 降级: the fallback replaces the proxy's own 502, not an upstream's 500.
pub(super) async fn fallback(
    f: &mut Findings,
    lab: &mut Started,
    a: SocketAddr,
) -> anyhow::Result<()> {
    let dead = dead_port().await?;
    let p = lab
        .round_robin(
            a,
            dead,
            &["--fallback-status", "200", "--fallback-body", FALLBACK_BODY],
        )
        .await?;
    f.step(format!(
        "`lab proxy --lb round-robin --upstream {} --upstream {} --fallback-status 200 \
         --fallback-body '{FALLBACK_BODY}'` at {p}: a is live, nothing listens on {dead}",
        base(a),
        base(dead)
    ));
    // Round robin: the first goes to a (its /base/error answers 500), the
    // second to the dead upstream (the proxy's own 502).
    let own = Probe::get("/error").send(p).await?;
    let ours = Probe::get("/error").send(p).await?;
    let describe = |e: &Exchange| {
        format!(
            "{} \"{}\" ({}{})",
            e.status.as_u16(),
            e.text().trim_end(),
            header(e, LAYER_HEADER.as_str()).unwrap_or("the upstream's"),
            header(e, crate::lab_headers::DEGRADED_HEADER.as_str())
                .map(|s| format!(", degraded from {s}"))
                .unwrap_or_default()
        )
    };
    f.step(format!(
        "GET /error twice: a answered {}; the dead upstream's turn: {}",
        describe(&own),
        describe(&ours)
    ));
    f.observe(
        "own-500-replaced",
        if own.status == 500 && own.text() == "error handler" {
            "no"
        } else {
            "yes"
        },
        "the upstream answered: its 500 is the truth about the request, and the client gets it",
    );
    f.claim_eq(
        "fallback-for-proxy-errors-only",
        format!(
            "a's own: 500 \"error handler\" (the upstream's); \
             the proxy's own: 200 \"{FALLBACK_BODY}\" (fallback, degraded from 502)"
        ),
        format!(
            "a's own: {}; the proxy's own: {}",
            describe(&own),
            describe(&ours)
        ),
        "degradation replaces only the 502/503/504 the proxy makes itself \
         (upstream unreachable, nothing live, breakers open), never an upstream's answer",
    );
    Ok(())
}
