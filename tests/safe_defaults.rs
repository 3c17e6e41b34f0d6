//! Safe defaults (issue 10, item 4), each checked on the real thing:
//! every listener binds loopback unless told otherwise; `lab forward` serves
//! only the clients `--allow` names (loopback by default); `lab proxy`
//! believes X-Forwarded-For only from `--trusted-proxy` peers. (CONNECT
//! ports and `/_lab/` pages are rows of docs/hostile-input.md, checked by
//! tests/hostile.rs.)

use std::net::{IpAddr, SocketAddr};

use crate::common::process::{forward_process, proxy_process, realserver_process, run_lab};
use clap::Parser;
use lab::cli::{Cli, Command};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

#[test]
fn every_listener_binds_loopback_unless_told_otherwise() {
    // The defaults as the command line parses them, with no LAB_* variable set.
    for var in [
        "LAB_REALSERVER_ADDRS",
        "LAB_NAIVE_LISTEN",
        "LAB_FORWARD_LISTEN",
        "LAB_PROXY_LISTEN",
        "LAB_ZK_LISTEN",
    ] {
        assert!(
            std::env::var_os(var).is_none(),
            "{var} is set in the test's environment"
        );
    }
    let parse = |args: &[&str]| Cli::try_parse_from(args).expect("parses").command;
    let mut addrs: Vec<(&str, SocketAddr)> = Vec::new();
    match parse(&["lab", "realserver"]) {
        Command::Realserver(args) => addrs.extend(args.addrs.iter().map(|a| ("realserver", *a))),
        _ => unreachable!(),
    }
    match parse(&["lab", "naive"]) {
        Command::Naive(args) => addrs.push(("naive", args.listen)),
        _ => unreachable!(),
    }
    match parse(&["lab", "forward"]) {
        Command::Forward(args) => addrs.push(("forward", args.listen)),
        _ => unreachable!(),
    }
    match parse(&["lab", "proxy"]) {
        Command::Proxy(args) => addrs.push(("proxy", args.listen)),
        _ => unreachable!(),
    }
    assert_eq!(addrs.len(), 5);
    for (command, addr) in addrs {
        assert_eq!(
            addr.ip(),
            IpAddr::from([127, 0, 0, 1]),
            "lab {command} listens on {addr} by default"
        );
    }
}

/// `GET http://{target}/allowed` through the forward proxy at `proxy`, from
/// the local address `from`; the status code.
async fn forward_from(from: IpAddr, proxy: SocketAddr, target: SocketAddr) -> u16 {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(from, 0))
        .expect("bind the client side");
    let mut stream: TcpStream = socket.connect(proxy).await.expect("connect");
    let request = format!(
        "GET http://{target}/allowed HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.get(9..12)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"))
}

#[tokio::test]
async fn the_forward_proxy_serves_only_the_clients_it_allows() {
    let (_upstream, target) = realserver_process("127.0.0.1:0", &[]).await;
    let here = IpAddr::from([127, 0, 0, 1]);
    let other = IpAddr::from([127, 0, 0, 2]);

    // By default: loopback, all of 127.0.0.0/8.
    let (_open, proxy) = forward_process(&[]).await;
    assert_eq!(forward_from(here, proxy, target).await, 200);
    assert_eq!(forward_from(other, proxy, target).await, 200);

    // --allow replaces the default: only 127.0.0.2 now; 127.0.0.1 stands in
    // for a client from elsewhere.
    let (mut narrow, proxy) = forward_process(&["--allow", "127.0.0.2/32"]).await;
    assert_eq!(forward_from(other, proxy, target).await, 200);
    assert_eq!(forward_from(here, proxy, target).await, 403);
    let refused = narrow.wait_for("is not one").await;
    assert!(refused.contains("127.0.0.1"), "{refused}");

    // A bad range is refused with a hint.
    let (status, stderr) = run_lab(&["forward", "--allow", "10.0.0.0/33"]).await;
    assert!(!status.success());
    assert!(stderr.contains("such as 10.0.0.0/8"), "{stderr}");
}

/// What the upstream real server saw as X-Real-Ip for a request sent through
/// `proxy` with `X-Forwarded-For: 203.0.113.9`.
async fn real_ip_seen(proxy: SocketAddr) -> String {
    let mut stream = TcpStream::connect(proxy).await.expect("connect");
    stream
        .write_all(
            b"GET /who HTTP/1.1\r\nHost: lab\r\nX-Forwarded-For: 203.0.113.9\r\n\
              Connection: close\r\n\r\n",
        )
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    let (_, rest) = text
        .split_once("X-Real-Ip=")
        .unwrap_or_else(|| panic!("the echo names X-Real-Ip: {text}"));
    rest.split([',', '\n', '\r'])
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let (_upstream, up) = realserver_process("127.0.0.1:0", &[]).await;
    let base = format!("http://{up}/base");

    let (_plain, proxy) = proxy_process(&["--upstream", &base]).await;
    assert_eq!(
        real_ip_seen(proxy).await,
        "127.0.0.1",
        "a client's X-Forwarded-For is text, not its address"
    );

    let (_trusting, proxy) =
        proxy_process(&["--upstream", &base, "--trusted-proxy", "127.0.0.1"]).await;
    assert_eq!(
        real_ip_seen(proxy).await,
        "203.0.113.9",
        "behind a trusted proxy, the address it vouches for"
    );
}
