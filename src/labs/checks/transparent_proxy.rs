//! Lab 04, the transparent proxy (透明代理) and forwarding (网络转发) beside
//! it: `lab transparent` in each mode, and in its client's namespace curl
//! with no proxy setting, `lab trace --direct`, and in its gateway's `nft
//! list ruleset`. What the real server saw says which mode ran; port 2004,
//! not intercepted, shows the router forwarding the client's own packets.
//!
//! The check runs `lab transparent --run` as a child process (this same
//! program): that is what the sheet shows, and it brings its own way to
//! the namespaces (root, or a user namespace it enters without root). Each
//! run builds the network, runs one command and removes it. The article
//! has no code here, so there is nothing in Go to compare.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::future::BoxFuture;

use crate::labs::findings::Findings;
use crate::realserver::EchoReport;
use crate::transparent::Mode;
use crate::transparent::state::STATE_ENV;

/// How long one `lab transparent --run` may take (build, command, teardown).
const RUN_WITHIN: Duration = Duration::from_secs(30);

/// The real servers' address in `lab transparent`'s network.
const INTERCEPTED: &str = "http://198.51.100.2:2003/abc";
const ROUTED: &str = "http://198.51.100.2:2004/abc";

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        if let Err(why) = crate::transparent::privileges::probe() {
            bail!(
                "lab transparent cannot build its network here: {why}; then run `lab check 4` again"
            );
        }
        // A note of our own: never join a `lab transparent` the learner runs.
        let dir = tempfile::tempdir().context("cannot make a temporary directory")?;
        experiment(f, &dir.path().join("transparent.json")).await
    })
}

async fn experiment(f: &mut Findings, note: &Path) -> anyhow::Result<()> {
    // The claims are `lab`'s programs' (there is no Go here); the
    // predictions are answered either way.
    let record = f.lab;

    let redirect = curl(note, Mode::Redirect, INTERCEPTED).await?;
    let saw = &redirect.echo;
    f.step(format!(
        "lab transparent (redirect); in the client: curl -i {INTERCEPTED}, no proxy setting → {}; \
         the answer's headers: {}; the real server saw RemoteAddr {}, X-Forwarded-For {}, Via {}",
        redirect.status_line,
        redirect.header_names(),
        saw.remote_addr,
        list(&saw.header_values("x-forwarded-for")),
        list(&saw.header_values("via")),
    ));
    let seen = redirect.proxy_seen();
    f.observe(
        "client-sees-proxy",
        if seen.is_empty() { "no" } else { "yes" },
        "the client connected to 198.51.100.2:2003 and its answer came back on that connection; lab's \
         transparent proxy adds nothing to the answer (no Via), so nothing in it names a proxy",
    );
    let redirect_ip = ip_of(&saw.remote_addr);
    f.observe(
        "redirect-remote-addr",
        redirect_ip,
        "the proxy runs in the gateway and opens its own connection to the server, from the gateway's \
         address on the server's side",
    );
    if record {
        let via = saw.header_values("via");
        let through_proxy = via.iter().any(|v| v.contains("lab-transparent-"));
        f.claim_eq(
            "client-never-knows",
            "a proxy on the way (the server saw its Via), none in the answer",
            match (through_proxy, seen.is_empty()) {
                (true, true) => {
                    "a proxy on the way (the server saw its Via), none in the answer".into()
                }
                (false, _) => "no proxy on the way: the server saw no Via".to_string(),
                (true, false) => format!("the answer names the proxy: {seen}"),
            },
            "the kernel handed the connection to the proxy; curl, with no proxy setting, spoke to \
             198.51.100.2:2003 and got that server's answer",
        );
        f.claim_eq(
            "passes-the-real-ip",
            "192.0.2.2",
            list(&saw.header_values("x-forwarded-for")),
            "the proxy appends the address it accepted the connection from, the client's",
        );
        f.claim_eq(
            "redirect-server-sees-gateway",
            "198.51.100.1",
            redirect_ip,
            "a new connection from the gateway: the client's address is only in X-Forwarded-For",
        );

        let rules = inside(note, Mode::Redirect, "gateway", &["nft", "list", "ruleset"]).await?;
        let rule = rule_line(&rules, "dport");
        f.step(format!(
            "in the gateway: nft list ruleset → {}",
            rule.as_deref().unwrap_or("(no rule with a port)")
        ));
        f.claim_eq(
            "redirect-rule-rewrites",
            "iifname \"g0\" tcp dport 2003 redirect to :3129",
            rule.as_deref().unwrap_or("none"),
            "NAT: the destination becomes the gateway's own address and the proxy's port; conntrack \
             keeps the original",
        );

        let traced = inside(
            note,
            Mode::Redirect,
            "client",
            &[
                "lab",
                "trace",
                "--direct",
                "http://198.51.100.2:2003",
                "-n",
                "1",
                "--json",
            ],
        )
        .await?;
        let intercepted = intercepted_of(&traced)?;
        f.step(format!(
            "in the client: lab trace --direct http://198.51.100.2:2003 → X-Lab-Intercepted: {intercepted}"
        ));
        f.claim_eq(
            "original-destination-recovered",
            "redirect 198.51.100.2:2003",
            &intercepted,
            "getsockopt(SOL_IP, SO_ORIGINAL_DST) asks conntrack where the connection was going before NAT",
        );
    }

    let routed = curl(note, Mode::Redirect, ROUTED).await?;
    let saw = &routed.echo;
    let xff = saw.header_values("x-forwarded-for");
    f.step(format!(
        "in the client: curl -i {ROUTED} (port 2004, not intercepted) → {}; the real server saw \
         RemoteAddr {}, X-Forwarded-For {}, Via {}",
        routed.status_line,
        saw.remote_addr,
        list(&xff),
        list(&saw.header_values("via")),
    ));
    f.observe(
        "routed-xff",
        if xff.is_empty() { "no" } else { "yes" },
        "a router moves packets; X-Forwarded-For is written only by something that reads the request",
    );
    if record {
        f.claim_eq(
            "router-forwards-unchanged",
            "RemoteAddr 192.0.2.2, no X-Forwarded-For, no Via",
            format!(
                "RemoteAddr {}, {}, {}",
                ip_of(&saw.remote_addr),
                absent_or(&xff, "X-Forwarded-For"),
                absent_or(&saw.header_values("via"), "Via"),
            ),
            "网络转发: the gateway routes the client's own packets; the server's peer is the client",
        );
    }

    let tproxy = curl(note, Mode::Tproxy, INTERCEPTED).await?;
    let tproxy_ip = ip_of(&tproxy.echo.remote_addr);
    f.step(format!(
        "lab transparent --mode tproxy; in the client: curl -i {INTERCEPTED} → {}; the real server \
         saw RemoteAddr {}, X-Forwarded-For {}",
        tproxy.status_line,
        tproxy.echo.remote_addr,
        list(&tproxy.echo.header_values("x-forwarded-for")),
    ));
    f.observe(
        "tproxy-remote-addr",
        tproxy_ip,
        "the proxy's socket binds to the client's address (IP_TRANSPARENT), so the server sees the client",
    );
    if record {
        f.claim_eq(
            "tproxy-server-sees-client",
            "192.0.2.2",
            tproxy_ip,
            "a non-local bind: the outbound socket speaks from the client's address, and the replies \
             come back through the gateway to the proxy",
        );
        let rules = inside(note, Mode::Tproxy, "gateway", &["nft", "list", "ruleset"]).await?;
        let rule = rule_line(&rules, "dport");
        f.step(format!(
            "in the gateway (tproxy): nft list ruleset → {}",
            rule.as_deref().unwrap_or("(no rule with a port)")
        ));
        let keeps = rule
            .as_deref()
            .is_some_and(|r| r.contains("tproxy to 192.0.2.1:3129"));
        f.claim(
            "tproxy-rule-keeps-destination",
            keeps,
            "a rule with tproxy to 192.0.2.1:3129",
            rule.as_deref().unwrap_or("none"),
            "no NAT: the packets reach the proxy's socket unchanged, and its local address is the \
             original destination",
        );
    }
    Ok(())
}

/// What curl got: the status line, the answer's headers, the server's echo.
struct Answer {
    status_line: String,
    headers: Vec<(String, String)>,
    echo: EchoReport,
}

impl Answer {
    fn header_names(&self) -> String {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        names.join(", ")
    }

    /// What in the answer names a proxy (`Via`, a `lab-transparent` name).
    fn proxy_seen(&self) -> String {
        let seen: Vec<String> = self
            .headers
            .iter()
            .filter(|(name, value)| name == "via" || value.contains("lab-transparent"))
            .map(|(name, value)| format!("{name}: {value}"))
            .collect();
        seen.join("; ")
    }
}

/// `lab transparent --mode MODE --run -- curl -i … URL` in the client.
async fn curl(note: &Path, mode: Mode, url: &str) -> anyhow::Result<Answer> {
    let command = [
        "curl",
        "-sS",
        "-i",
        "-m",
        "10",
        "-H",
        "Accept: application/json",
        url,
    ];
    let out = inside(note, mode, "client", &command).await?;
    let (head, body) = out
        .split_once("\r\n\r\n")
        .with_context(|| format!("curl printed no HTTP answer: {out}"))?;
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default().trim().to_string();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_string()))
        .collect();
    let echo: EchoReport = serde_json::from_str(body)
        .with_context(|| format!("not the real server's JSON echo: {status_line}: {body}"))?;
    Ok(Answer {
        status_line,
        headers,
        echo,
    })
}

/// Runs `command` in `place` (client, gateway) of a `lab transparent`
/// made for it, and returns its stdout.
async fn inside(note: &Path, mode: Mode, place: &str, command: &[&str]) -> anyhow::Result<String> {
    let program = std::env::current_exe().context("cannot find this program to run it again")?;
    let mode = mode.to_string();
    let mut child = tokio::process::Command::new(program);
    child
        .args([
            "--color",
            "never",
            "transparent",
            "--mode",
            &mode,
            "--in",
            place,
        ])
        .arg("--run")
        .arg("--")
        .args(command)
        .env(STATE_ENV, note)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let shown = format!(
        "lab transparent --mode {mode} --in {place} --run -- {}",
        command.join(" ")
    );
    let output = tokio::time::timeout(RUN_WITHIN, child.output())
        .await
        .with_context(|| format!("`{shown}` did not finish within {RUN_WITHIN:?}"))?
        .with_context(|| format!("cannot run `{shown}`"))?;
    if !output.status.success() {
        bail!(
            "`{shown}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// The first ruleset line that mentions `word`, trimmed.
fn rule_line(ruleset: &str, word: &str) -> Option<String> {
    ruleset
        .lines()
        .map(str::trim)
        .find(|line| line.contains(word))
        .map(str::to_string)
}

/// The `intercepted` field of a `lab trace --json` document's first request.
fn intercepted_of(json: &str) -> anyhow::Result<String> {
    let trace: serde_json::Value =
        serde_json::from_str(json).with_context(|| format!("lab trace --json printed: {json}"))?;
    Ok(trace["requests"][0]["intercepted"]
        .as_str()
        .unwrap_or("none")
        .to_string())
}

/// The address part of `IP:PORT`.
fn ip_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(ip, _)| ip)
}

fn list(values: &[&str]) -> String {
    if values.is_empty() {
        "—".to_string()
    } else {
        values.join(", ")
    }
}

fn absent_or(values: &[&str], name: &str) -> String {
    if values.is_empty() {
        format!("no {name}")
    } else {
        format!("{name}: {}", values.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_line_is_the_one_with_a_port() {
        let ruleset = "table ip lab_transparent {\n\tchain intercept {\n\t\ttype nat hook prerouting \
                       priority dstnat; policy accept;\n\t\tiifname \"g0\" tcp dport 2003 redirect to :3129\n\t}\n}\n";
        assert_eq!(
            rule_line(ruleset, "dport").as_deref(),
            Some("iifname \"g0\" tcp dport 2003 redirect to :3129")
        );
        assert_eq!(ip_of("198.51.100.1:40000"), "198.51.100.1");
    }
}
