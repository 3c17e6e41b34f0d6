//! Lab 02, special headers (特殊请求头): X-Forwarded-For and X-Real-IP are
//! whatever the previous hop wrote, so a client talking straight to a server
//! writes them itself; RemoteAddr stays the TCP peer.
//!
//! Every probe runs against `lab realserver` and against the article's
//! RealServer in Go (`labs/go/realserver`): what the echo prints is Go's
//! `req.Header.Get` and `%v` of `req.Header`, and `lab`'s echo must agree.

use std::net::SocketAddr;

use futures_util::future::BoxFuture;

use super::servers::with_real_servers;
use crate::labs::findings::{Findings, Subject};
use crate::probe::Probe;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        if f.lab {
            f.measure_on(Subject::Lab);
            with_real_servers(f, 1, |f, servers| experiment(f, servers[0])).await?;
        }
        if let Some(go) = f.start_go("realserver", &["--addr", "127.0.0.1:0"]).await? {
            f.measure_on(Subject::Go);
            let result = experiment(f, go.addr()).await;
            go.shutdown().await?;
            f.measure_on(Subject::Lab);
            result?;
        }
        Ok(())
    })
}

/// The probes of the sheet against the real server on `server`, `lab`'s or
/// Go's (the claims are recorded on the subject being measured).
async fn experiment(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    // 1. A client writes X-Forwarded-For itself.
    let sent = Probe::get("/abc")
        .header("X-Forwarded-For", "1.2.3.4")
        .send(server)
        .await?;
    let echo = sent.text_echo()?;
    f.step(format!(
        "GET /abc with X-Forwarded-For: 1.2.3.4, straight to the server from {}: X-Forwarded-For={}",
        sent.local_addr, echo.x_forwarded_for
    ));
    f.claim_eq(
        "xff-is-whatever-the-client-wrote",
        "1.2.3.4",
        &echo.x_forwarded_for,
        "no proxy stood in between to add the real address, so the header is exactly what the \
         client sent: X-Forwarded-For is a claim, not a fact",
    );
    f.observe(
        "xff-direct",
        &echo.x_forwarded_for,
        "the server prints the header as it arrived",
    );

    // 2. X-Real-Ip too; RemoteAddr does not move.
    let sent = Probe::get("/abc")
        .header("X-Real-Ip", "9.9.9.9")
        .send(server)
        .await?;
    let echo = sent.text_echo()?;
    f.step(format!(
        "GET /abc with X-Real-Ip: 9.9.9.9: X-Real-Ip={}, RemoteAddr={}",
        echo.x_real_ip, echo.remote_addr
    ));
    f.claim_eq(
        "x-real-ip-can-be-forged",
        "9.9.9.9",
        &echo.x_real_ip,
        "X-Real-IP is an ordinary header: it is only as true as the last proxy you control, which \
         must overwrite it (nginx: proxy_set_header X-Real-IP $remote_addr)",
    );
    f.observe(
        "real-ip-direct",
        &echo.x_real_ip,
        "nothing between client and server replaced it",
    );
    f.claim_eq(
        "remote-addr-stays-the-peer",
        sent.local_addr,
        &echo.remote_addr,
        "RemoteAddr is taken from the TCP connection, not from any header",
    );

    // 3. The list format: client, proxy1, proxy2.
    let list = "203.0.113.7, 10.0.0.1, 10.0.0.2";
    let echo = Probe::get("/abc")
        .header("X-Forwarded-For", list)
        .send(server)
        .await?
        .text_echo()?;
    f.step(format!(
        "GET /abc with X-Forwarded-For: {list}: X-Forwarded-For={}",
        echo.x_forwarded_for
    ));
    f.claim_eq(
        "xff-list-arrives-whole",
        list,
        &echo.x_forwarded_for,
        "the format is `client, proxy1, proxy2`, each hop appending the address it saw; the \
         server cannot tell which entries are true. Only the entries added by proxies you run \
         can be trusted, counted from the right",
    );

    // 4. The same header on two lines: Header.Get shows the first, the
    // `headers =` line (Go's %v of req.Header) shows both.
    let text = Probe::get("/abc")
        .header("X-Forwarded-For", "1.1.1.1")
        .header("X-Forwarded-For", "2.2.2.2")
        .send(server)
        .await?
        .text_echo()?;
    let lines = header_in_map(&text.headers, "X-Forwarded-For");
    f.step(format!(
        "GET /abc with two lines X-Forwarded-For: 1.1.1.1 and X-Forwarded-For: 2.2.2.2: the echo \
         shows X-Forwarded-For={}, and in its headers = line X-Forwarded-For:{lines}",
        text.x_forwarded_for
    ));
    f.claim_eq(
        "get-reads-the-first-line-only",
        "X-Forwarded-For=1.1.1.1; both lines arrived: X-Forwarded-For:[1.1.1.1 2.2.2.2]",
        format!(
            "X-Forwarded-For={}; both lines arrived: X-Forwarded-For:{lines}",
            text.x_forwarded_for
        ),
        "RFC 9110 §5.3 makes two lines mean `1.1.1.1, 2.2.2.2`, but Go's req.Header.Get returns \
         the first line only: code that reads the first value reads the client's own line. \
         req.Header itself keeps both, as the headers = line shows",
    );
    f.observe(
        "two-lines",
        &text.x_forwarded_for,
        "Header.Get returns the first of the two lines",
    );
    Ok(())
}

/// The values of `name` in a `headers =map[…]` line, as Go prints them:
/// `[v1 v2]`, or `(missing)`.
fn header_in_map(map: &str, name: &str) -> String {
    let key = format!("{name}:[");
    map.find(&key)
        .and_then(|at| {
            let rest = &map[at + key.len() - 1..];
            rest.find(']').map(|end| rest[..=end].to_string())
        })
        .unwrap_or_else(|| "(missing)".into())
}

#[cfg(test)]
mod tests {
    use super::header_in_map;

    #[test]
    fn a_header_is_read_from_gos_map_format() {
        let map = "map[User-Agent:[curl/8] X-Forwarded-For:[1.1.1.1 2.2.2.2]]";
        assert_eq!(header_in_map(map, "X-Forwarded-For"), "[1.1.1.1 2.2.2.2]");
        assert_eq!(header_in_map(map, "X-Real-Ip"), "(missing)");
    }
}
