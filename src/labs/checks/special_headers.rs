//! Lab 02, special headers (特殊请求头): X-Forwarded-For and X-Real-IP are
//! whatever the previous hop wrote, so a client talking straight to a server
//! writes them itself; RemoteAddr stays the TCP peer.

use std::net::SocketAddr;

use futures_util::future::BoxFuture;

use super::servers::with_real_servers;
use crate::labs::findings::Findings;
use crate::probe::Probe;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 1, |f, servers| experiment(f, servers[0]))
}

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

    // 4. The same header on two lines.
    let two_lines = || {
        Probe::get("/abc")
            .header("X-Forwarded-For", "1.1.1.1")
            .header("X-Forwarded-For", "2.2.2.2")
    };
    let text = two_lines().send(server).await?.text_echo()?;
    let json = two_lines()
        .header("Accept", "application/json")
        .send(server)
        .await?
        .json_echo()?;
    let lines = json.header_values("x-forwarded-for");
    f.step(format!(
        "GET /abc with two lines X-Forwarded-For: 1.1.1.1 and X-Forwarded-For: 2.2.2.2: the text \
         echo shows X-Forwarded-For={}, the JSON echo lists {:?}",
        text.x_forwarded_for, lines
    ));
    f.claim_eq(
        "get-reads-the-first-line-only",
        "X-Forwarded-For=1.1.1.1; both lines arrived: 1.1.1.1 | 2.2.2.2",
        format!(
            "X-Forwarded-For={}; both lines arrived: {}",
            text.x_forwarded_for,
            lines.join(" | ")
        ),
        "RFC 9110 §5.3 makes two lines mean `1.1.1.1, 2.2.2.2`, but Go's req.Header.Get returns \
         the first line only: code that reads the first value reads the client's own line",
    );
    f.observe(
        "two-lines",
        &text.x_forwarded_for,
        "Header.Get returns the first of the two lines",
    );
    Ok(())
}
