//! Lab 19's 权限 (auth) section: without the bearer token a request is
//! answered 401 by the auth layer and never reaches an upstream; with it,
//! the request passes and the token is not forwarded.

use std::net::SocketAddr;

use super::started::Started;
use crate::lab_headers::{LAYER_HEADER, UPSTREAM_HEADER};
use crate::labs::checks::proxy_pages::header;
use crate::labs::checks::servers::upstream_url as base;
use crate::labs::findings::Findings;
use crate::probe::{Exchange, Probe};

/// The token of the auth section (`--auth-token`).
pub(super) const TOKEN: &str = "s3cret";

/// 权限: no token, 401; the right token passes and is not forwarded.
pub(super) async fn auth(f: &mut Findings, lab: &mut Started, a: SocketAddr) -> anyhow::Result<()> {
    let p = lab
        .proxy(&["--upstream", &base(a), "--auth-token", TOKEN])
        .await?;
    f.step(format!(
        "`lab proxy --upstream {} --auth-token {TOKEN}` at {p}",
        base(a)
    ));

    let missing = Probe::get("/abc").send(p).await?;
    let wrong = Probe::get("/abc")
        .header("Authorization", "Bearer s3cre")
        .send(p)
        .await?;
    let refusal = |e: &Exchange| {
        format!(
            "{} {} ({}{})",
            e.status.as_u16(),
            header(e, "www-authenticate").unwrap_or("no WWW-Authenticate"),
            header(e, LAYER_HEADER.as_str()).unwrap_or("no layer"),
            if header(e, UPSTREAM_HEADER.as_str()).is_some() {
                ", an upstream was asked"
            } else {
                ", no upstream asked"
            }
        )
    };
    f.claim_eq(
        "auth-401-without-token",
        "no token: 401 Bearer realm=\"lab\" (auth, no upstream asked); \
         a wrong token: 401 Bearer realm=\"lab\", error=\"invalid_token\" (auth, no upstream asked)",
        format!(
            "no token: {}; a wrong token: {}",
            refusal(&missing),
            refusal(&wrong)
        ),
        "auth runs before the balancer: a refused request costs no upstream anything, \
         and the challenge says which scheme to use (RFC 6750 §3)",
    );

    let right = Probe::get("/abc")
        .header("Authorization", &format!("Bearer {TOKEN}"))
        .header("Accept", "application/json")
        .send(p)
        .await?;
    let seen = match right.json_echo() {
        Ok(echo) => {
            let leaked: Vec<String> = echo
                .headers
                .iter()
                .filter(|(name, value)| {
                    name.eq_ignore_ascii_case("authorization") || value.contains(TOKEN)
                })
                .map(|(name, value)| format!("{name}: {value}"))
                .collect();
            if leaked.is_empty() {
                "no Authorization header, no token".to_string()
            } else {
                leaked.join(", ")
            }
        }
        Err(err) => format!("no echo ({err})"),
    };
    f.claim_eq(
        "token-never-forwarded",
        "200; the upstream saw no Authorization header, no token",
        format!("{}; the upstream saw {seen}", right.status.as_u16()),
        "the credential is the proxy's: it is removed before the request goes on, \
         so the upstream (and its logs) never see it",
    );
    Ok(())
}
