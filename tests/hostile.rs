//! Hostile input against every listener of the lab (`lab realserver`,
//! `lab naive`, `lab forward`, `lab proxy`), each a real process on
//! loopback: request smuggling, oversized and too many headers, slowloris,
//! bodies over `--max-body`, invalid URIs, methods and upgrades, CONNECT to a
//! port that is not allowed, a forward proxy asked to loop to itself or to
//! reach `/_lab/`.
//!
//! The expectations are the table in `docs/hostile-input.md`: the test reads
//! it, sends every row's bytes on a fresh connection to every listener, and
//! checks the answer against the cell (a status code, or `closed` for a
//! connection closed without an answer). After every row the listener must
//! still answer an ordinary request: one bad client never takes it down.
//! So the document cannot drift from what the programs do.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::process::{
    LabProcess, forward_process, naive_process, proxy_process, realserver_process,
};
use crate::common::wire::{exchange_until_close, find};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The flags every listener under test gets: small limits, so the rows stay small and quick.
const LIMITS: [&str; 6] = [
    "--max-body",
    "1000",
    "--header-timeout",
    "1s",
    "--body-timeout",
    "1s",
];

/// The longest a listener may take to answer (or close) one hostile request.
const ANSWER_WITHIN: Duration = Duration::from_secs(5);

/// One column of the table: the listener and what its requests look like.
struct Listener {
    name: &'static str,
    process: LabProcess,
    addr: SocketAddr,
    /// An upstream real server (for naive, forward and proxy).
    upstream: Option<(LabProcess, SocketAddr)>,
}

impl Listener {
    /// The request target of an ordinary request: origin-form, or for the
    /// forward proxy absolute-form to the upstream.
    fn target(&self, path: &str) -> String {
        match (&self.upstream, self.name) {
            (Some((_, up)), "forward") => format!("http://{up}{path}"),
            _ => path.to_string(),
        }
    }

    fn host(&self) -> String {
        match (&self.upstream, self.name) {
            (Some((_, up)), "forward") => up.to_string(),
            _ => self.addr.to_string(),
        }
    }
}

async fn start(name: &'static str) -> Listener {
    if name == "realserver" {
        let (process, addr) = realserver_process("127.0.0.1:0", &LIMITS).await;
        return Listener {
            name,
            process,
            addr,
            upstream: None,
        };
    }
    let (up_process, up) = realserver_process("127.0.0.1:0", &LIMITS).await;
    let upstream_url = format!("http://{up}");
    let proxy_upstream = format!("http://{up}/base");
    let mut args: Vec<&str> = match name {
        "naive" => vec!["--target", &upstream_url],
        "forward" => vec![],
        "proxy" => vec!["--upstream", &proxy_upstream],
        other => panic!("no listener {other}"),
    };
    args.extend(LIMITS);
    let (process, addr) = match name {
        "naive" => naive_process(&args).await,
        "forward" => forward_process(&args).await,
        _ => proxy_process(&args).await,
    };
    Listener {
        name,
        process,
        addr,
        upstream: Some((up_process, up)),
    }
}

/// The bytes of one row, for one listener.
fn request(id: &str, to: &Listener) -> Vec<u8> {
    let target = to.target("/hostile");
    let host = to.host();
    let head = |method: &str, extra: &str| {
        format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").into_bytes()
    };
    let with = |mut head: Vec<u8>, body: &[u8]| {
        head.extend_from_slice(body);
        head
    };
    match id {
        "cl-and-te" => with(
            head(
                "POST",
                "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
            ),
            b"0\r\n\r\n",
        ),
        "te-and-cl" => with(
            head(
                "POST",
                "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
            ),
            b"0\r\n\r\n",
        ),
        "duplicate-cl" => with(
            head("POST", "Content-Length: 4\r\nContent-Length: 5\r\n"),
            b"abcde",
        ),
        "upgrade-cl-and-te" => with(
            head(
                "POST",
                "Connection: upgrade\r\nUpgrade: foo\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n",
            ),
            b"0\r\n\r\n",
        ),
        "upgrade-with-body" => with(
            head(
                "POST",
                "Connection: upgrade\r\nUpgrade: foo\r\nContent-Length: 5\r\n",
            ),
            b"hello",
        ),
        "two-hosts" => head("GET", "Host: other.example\r\n"),
        "cl-list" => with(head("POST", "Content-Length: 4, 5\r\n"), b"abcde"),
        "obs-fold" => head("GET", "X-Folded: a\r\n b\r\n"),
        "te-not-chunked" => with(head("POST", "Transfer-Encoding: gzip\r\n"), b"abcd"),
        "bad-chunk-size" => with(
            head("POST", "Transfer-Encoding: chunked\r\n"),
            b"zz\r\nabcd\r\n0\r\n\r\n",
        ),
        "huge-header" => head("GET", &format!("X-Big: {}\r\n", "a".repeat(600_000))),
        "big-header" => head("GET", &format!("X-Big: {}\r\n", "a".repeat(40_000))),
        "stalled-body" => with(head("POST", "Content-Length: 255\r\n"), b"hello world"),
        "many-headers" => head(
            "GET",
            &(0..200)
                .map(|i| format!("X-H{i}: v\r\n"))
                .collect::<String>(),
        ),
        "body-too-large" => head("POST", "Content-Length: 2000\r\n"),
        "chunked-too-large" => {
            let mut bytes = head("POST", "Transfer-Encoding: chunked\r\n");
            for _ in 0..4 {
                bytes.extend_from_slice(b"1f4\r\n");
                bytes.extend_from_slice(&[b'x'; 500]);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
            bytes
        }
        "bad-uri" => format!("GET /a\x01b HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes(),
        "bad-method" => format!("G@T {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes(),
        "bad-version" => format!("GET {target} HTTP/9.9\r\nHost: {host}\r\n\r\n").into_bytes(),
        "no-host" => format!("GET {target} HTTP/1.1\r\n\r\n").into_bytes(),
        "invalid-upgrade" => {
            let mut bytes = head("GET", "Connection: upgrade\r\nUpgrade: w");
            // "Upgrade: wébsocket": not a token (RFC 9110 §7.8).
            bytes.truncate(bytes.len() - 2);
            bytes.extend_from_slice("ébsocket\r\n\r\n".as_bytes());
            bytes
        }
        "connect-port-25" => {
            b"CONNECT 127.0.0.1:25 HTTP/1.1\r\nHost: 127.0.0.1:25\r\n\r\n".to_vec()
        }
        "connect-to-proxy-port" => {
            b"CONNECT 127.0.0.1:2002 HTTP/1.1\r\nHost: 127.0.0.1:2002\r\n\r\n".to_vec()
        }
        "loop-to-self" => {
            let me = to.addr;
            format!("GET http://{me}/loop HTTP/1.1\r\nHost: {me}\r\n\r\n").into_bytes()
        }
        "lab-pages" => {
            let page = match to.name {
                "forward" => format!("http://{}/_lab/stats", to.host()),
                _ => "/_lab/stats".to_string(),
            };
            format!("GET {page} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
        }
        "lab-unknown-page" => {
            let page = match to.name {
                "forward" => format!("http://{}/_lab/nothing", to.host()),
                _ => "/_lab/nothing".to_string(),
            };
            format!("GET {page} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
        }
        "tls-hello" => b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03 not http".to_vec(),
        "h2-preface" => b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        "slowloris" => unreachable!("sent by slowloris()"),
        other => panic!("docs/hostile-input.md names a row this test does not know: {other}"),
    }
}

/// What came back: `NNN` for a status line, `closed` when the connection
/// closed (or reset) without one.
async fn answer(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let result = tokio::time::timeout(ANSWER_WITHIN, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
            if find(&seen, b"\r\n\r\n").is_some() {
                return;
            }
        }
    })
    .await;
    if result.is_err() && seen.is_empty() {
        return "hung".to_string();
    }
    status_of(&seen)
}

fn status_of(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.strip_prefix("HTTP/1.") {
        Some(rest) => rest.get(2..5).unwrap_or("?").to_string(),
        None if bytes.is_empty() => "closed".to_string(),
        None => format!("not HTTP: {:?}", &text[..text.len().min(40)]),
    }
}

/// Sends `bytes` on a fresh connection and reads the answer. A write the
/// listener cut short (it answered and closed before reading it all) is fine.
async fn send(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let _ = stream.write_all(bytes).await;
    answer(&mut stream).await
}

/// A client that trickles header lines every 200 ms and never ends its
/// head: the listener must cut it off after `--header-timeout` (1 s here).
async fn slowloris(to: &Listener) -> String {
    let mut stream = TcpStream::connect(to.addr).await.expect("connect");
    let started = Instant::now();
    let head = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\n",
        to.target("/slow"),
        to.host()
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    for i in 0..25 {
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                seen.extend_from_slice(&buf[..n]);
                if find(&seen, b"\r\n\r\n").is_some() {
                    break;
                }
            }
            Err(_) => {
                // Still open: one more header line, as a slowloris client does.
                if stream
                    .write_all(format!("X-Slow-{i}: still here\r\n").as_bytes())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "{}: a slowloris client was held for {took:?} (--header-timeout 1s)",
        to.name
    );
    status_of(&seen)
}

/// An ordinary request still gets an ordinary answer.
async fn still_serves(to: &Listener, after: &str) {
    let ok = send(
        to.addr,
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            to.target("/ok"),
            to.host()
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(ok, "200", "{}: an ordinary request after {after}", to.name);
}

/// The table of docs/hostile-input.md: row id → (column → expected cell).
fn table() -> Vec<(String, BTreeMap<String, String>)> {
    let doc = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/hostile-input.md"),
    )
    .expect("docs/hostile-input.md");
    let mut header: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    // The first table of the document; the later ones describe other tests.
    let first_table = doc
        .lines()
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'));
    for line in first_table {
        let cells: Vec<String> = line
            .trim_matches('|')
            .split('|')
            .map(|cell| cell.trim().to_string())
            .collect();
        if header.is_empty() {
            header = cells;
            continue;
        }
        if cells[0].starts_with("---") {
            continue;
        }
        let id = cells[0].trim_matches('`').to_string();
        let expected = header
            .iter()
            .zip(&cells)
            .filter_map(|(column, cell)| {
                let name = column.strip_prefix("`lab ")?.strip_suffix('`')?;
                // The cell's first word: a status or `closed`; the rest explains.
                let word = cell.split_whitespace().next()?.trim_matches('*');
                Some((name.to_string(), word.to_string()))
            })
            .collect();
        rows.push((id, expected));
    }
    assert!(
        rows.len() >= 20,
        "the table of docs/hostile-input.md has {} rows",
        rows.len()
    );
    rows
}

async fn every_row_against(name: &'static str) {
    let to = start(name).await;
    let mut wrong = Vec::new();
    for (id, expected) in table() {
        let Some(want) = expected.get(name) else {
            panic!("row {id} has no `lab {name}` cell");
        };
        let got = if id == "slowloris" {
            slowloris(&to).await
        } else {
            send(to.addr, &request(&id, &to)).await
        };
        if &got != want {
            wrong.push(format!("{id}: got {got}, the table says {want}"));
        }
        still_serves(&to, &id).await;
    }
    assert!(
        wrong.is_empty(),
        "lab {name} does not do what docs/hostile-input.md says:\n{}",
        wrong.join("\n")
    );
    let mut to = to;
    assert!(
        to.process.child.try_wait().expect("try_wait").is_none(),
        "lab {name} exited during the hostile rows:\n{}",
        to.process.log()
    );
    if let Some((upstream, _)) = &mut to.upstream {
        assert!(upstream.child.try_wait().expect("try_wait").is_none());
    }
}

#[tokio::test]
async fn realserver_refuses_every_hostile_input_and_keeps_serving() {
    every_row_against("realserver").await;
}

#[tokio::test]
async fn naive_refuses_every_hostile_input_and_keeps_serving() {
    every_row_against("naive").await;
}

#[tokio::test]
async fn forward_refuses_every_hostile_input_and_keeps_serving() {
    every_row_against("forward").await;
}

#[tokio::test]
async fn proxy_refuses_every_hostile_input_and_keeps_serving() {
    every_row_against("proxy").await;
}

/// A request hidden in a chunked body's trailers after a bare LF does not
/// blind the guard. hyper reads the LF and what follows it as trailer bytes,
/// up to CRLF CRLF, and then the request with both lengths as the next one;
/// the guard must read the same, so that request is answered 400. (It used
/// to end the body at the bare LF, take the hidden "request" for a real one
/// with a 118-byte body, and let the next one through to hyper.)
#[tokio::test]
async fn a_request_after_bare_lf_trailers_is_still_judged() {
    let to = start("realserver").await;
    let hidden: &[u8] = b"POST /first HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
        0\r\n\nGET /phantom HTTP/1.1\r\nContent-Length: 118\r\n\n\r\n\r\n";
    let smuggled: &[u8] = b"POST /smuggled HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
        Transfer-Encoding: chunked\r\nAccept: application/json\r\n\r\n0\r\n\r\n";
    // Read until the guard's 400 closes the connection.
    let (seen, _) = exchange_until_close(to.addr, &[hidden, smuggled].concat()).await;
    let text = String::from_utf8_lossy(&seen);
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text.get(at + 9..at + 12))
        .filter(|code| code.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    assert_eq!(statuses, ["200", "400"], "answers:\n{text}");
    assert!(
        text.contains("both Content-Length and Transfer-Encoding"),
        "the 400 is not the guard's:\n{text}"
    );
}
