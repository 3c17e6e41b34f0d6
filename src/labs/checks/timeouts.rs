//! Lab 11, timeouts: the article's 6 s handler under a 3 s write timeout,
//! seen directly (an empty reply) and through a proxy (502; the article's
//! ErrorHandlers answer 500 and 200), Go's Transport sending the request a
//! second time when a reused connection closes unanswered, and what a
//! timeout inside the proxy gives: Go's 502, `lab proxy`'s 504 (lab's choice).
//!
//! Go's side runs the article's RealServer (`labs/go/realserver`) directly,
//! and `labs/go/singlehost`, `labs/go/balancer` (main.go) and
//! `labs/go/director` (2.2) in front of `lab realserver`. The probes of one
//! program run at once: the slowest takes 10 s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::fronts::{Front, subjects};
use super::servers::with_real_servers;
use crate::labs::findings::{Findings, Subject};
use crate::probe::Probe;

/// The article's TimeoutHandler path.
const SLOW: &str = "/test_http_string/test_http_string/aaa";

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    with_real_servers(f, 1, |f, servers| experiment(f, servers[0]))
}

async fn experiment(f: &mut Findings, server: SocketAddr) -> anyhow::Result<()> {
    let relay = CountingRelay::start(server, SLOW.as_bytes()).await?;
    let silent = SilentUpstream::start().await?;
    f.step(format!(
        "started a relay on {} to the real server that counts the requests for {SLOW} it passes on, and on {} an upstream that accepts connections and never says a word (no TLS handshake)",
        relay.addr, silent.addr
    ));
    let mut result = Ok(());
    for subject in subjects(f) {
        f.measure_on(subject);
        result = on_one_program(f, server, &relay, silent.addr).await;
        if result.is_err() {
            break;
        }
    }
    f.measure_on(Subject::Lab);
    relay.stop();
    silent.stop();
    result
}

/// How a probe ended: a status and body, or no response at all, and when.
struct Outcome {
    answer: Option<(StatusCode, String)>,
    after: Duration,
}

impl Outcome {
    fn status(&self) -> Option<StatusCode> {
        self.answer.as_ref().map(|(status, _)| *status)
    }

    /// `502 after about 3 s`, `no response; closed after about 6 s`.
    fn summary(&self) -> String {
        match &self.answer {
            Some((status, _)) => format!("{} after {}", status.as_u16(), about(self.after)),
            None => format!("no response; closed after {}", about(self.after)),
        }
    }

    fn body(&self) -> &str {
        self.answer.as_ref().map_or("", |(_, body)| body.trim())
    }
}

/// A duration in whole seconds: `about 3 s`.
fn about(duration: Duration) -> String {
    format!("about {} s", (duration.as_millis() + 500) / 1000)
}

async fn probe(probe: Probe, addr: SocketAddr) -> Outcome {
    let started = Instant::now();
    let answer = probe
        .send(addr)
        .await
        .ok()
        .map(|exchange| (exchange.status, exchange.text()));
    Outcome {
        answer,
        after: started.elapsed(),
    }
}

/// A GET on its own connection, waiting up to 15 s (longer than
/// [`Probe`]'s limit, for Go's 10 s TLS handshake timeout); only the
/// status line is read.
async fn patient_get(addr: SocketAddr, path: &str) -> Outcome {
    let started = Instant::now();
    let answer = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = vec![0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(15), stream.read(&mut head))
            .await
            .ok()?
            .ok()?;
        let line = String::from_utf8_lossy(&head[..n])
            .lines()
            .next()?
            .to_string();
        let code: u16 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some((StatusCode::from_u16(code).ok()?, String::new()))
    }
    .await;
    Outcome {
        answer,
        after: started.elapsed(),
    }
}

async fn on_one_program(
    f: &mut Findings,
    server: SocketAddr,
    relay: &CountingRelay,
    silent: SocketAddr,
) -> anyhow::Result<()> {
    let subject = f.subject();
    let upstream = format!("http://{server}");
    let through_relay = format!("http://{}", relay.addr);
    let tls_upstream = format!("https://{silent}");
    let (lab, go) = (subject == Subject::Lab, subject == Subject::Go);

    // Everything is started first, then probed at once.
    let go_realserver = match go {
        true => f.start_go("realserver", &["--addr", "127.0.0.1:0"]).await?,
        false => None,
    };
    let direct = go_realserver.as_ref().map_or(server, |g| g.addr());
    let mut fronts = Vec::new();
    let started = async {
        let fronts = &mut fronts;
        let patient = start(
            f,
            fronts,
            &["--upstream", &upstream],
            "singlehost",
            &["--target", &upstream],
        )
        .await?;
        let reused = start(
            f,
            fronts,
            &["--upstream", &through_relay],
            "singlehost",
            &["--target", &through_relay],
        )
        .await?;
        let article = start(
            f,
            fronts,
            &["--upstream", &upstream, "--article-errors"],
            "balancer",
            &["--upstream", &upstream],
        )
        .await?;
        let hasty = match lab {
            true => {
                let flags = ["--upstream", &upstream, "--response-timeout", "1s"];
                start(f, fronts, &flags, "", &[]).await?
            }
            false => None,
        };
        let tls = match go {
            true => start(f, fronts, &[], "singlehost", &["--target", &tls_upstream]).await?,
            false => None,
        };
        let director = match go {
            true => start(f, fronts, &[], "director", &["--target", &upstream]).await?,
            false => None,
        };
        anyhow::Ok((patient, reused, article, hasty, tls, director))
    }
    .await;
    let result = match started {
        Ok(addrs) => Ok(probe_all(relay, direct, addrs).await),
        Err(err) => Err(err),
    };
    for front in fronts {
        front.shutdown().await?;
    }
    if let Some(program) = go_realserver {
        program.shutdown().await?;
    }
    record(f, result?);
    Ok(())
}

/// Starts a proxy with [`Front::start`], kept in `fronts` to be stopped
/// later; its address.
async fn start(
    f: &mut Findings,
    fronts: &mut Vec<Front>,
    lab_flags: &[&str],
    go_name: &str,
    go_args: &[&str],
) -> anyhow::Result<Option<SocketAddr>> {
    let front = Front::start(f, lab_flags, go_name, go_args).await?;
    let addr = front.as_ref().map(Front::addr);
    fronts.extend(front);
    Ok(addr)
}

async fn maybe_probe(addr: Option<SocketAddr>, p: Probe) -> Option<Outcome> {
    match addr {
        Some(addr) => Some(probe(p, addr).await),
        None => None,
    }
}

type Addrs = (
    Option<SocketAddr>,
    Option<SocketAddr>,
    Option<SocketAddr>,
    Option<SocketAddr>,
    Option<SocketAddr>,
    Option<SocketAddr>,
);

/// What every probe of one program found.
struct Found {
    direct: Outcome,
    patient: Option<Outcome>,
    /// The slow request on a reused connection, and how many times the
    /// real server got it.
    reused: Option<(Outcome, usize)>,
    article: Option<Outcome>,
    hasty: Option<Outcome>,
    tls: Option<Outcome>,
    director: Option<Outcome>,
}

async fn probe_all(relay: &CountingRelay, direct: SocketAddr, addrs: Addrs) -> Found {
    let (patient, reused, article, hasty, tls, director) = addrs;
    let slow = || Probe::get(SLOW);
    let reused = async {
        let addr = reused?;
        // One answered request first: its connection stays in the pool.
        let _ = Probe::get("/abc").send(addr).await;
        let before = relay.count.load(Ordering::SeqCst);
        let outcome = probe(slow(), addr).await;
        Some((outcome, relay.count.load(Ordering::SeqCst) - before))
    };
    let tls = async {
        match tls {
            Some(addr) => Some(patient_get(addr, "/abc").await),
            None => None,
        }
    };
    // The 2.2 Director reads the request body, and panics without one.
    let post = Probe::get(SLOW).method(Method::POST).body("x=1");
    let (direct, patient, reused, article, hasty, tls, director) = tokio::join!(
        probe(slow(), direct),
        maybe_probe(patient, slow()),
        reused,
        maybe_probe(article, slow()),
        maybe_probe(hasty, slow()),
        tls,
        maybe_probe(director, post),
    );
    Found {
        direct,
        patient,
        reused,
        article,
        hasty,
        tls,
        director,
    }
}

fn record(f: &mut Findings, found: Found) {
    let go = f.subject() == Subject::Go;
    f.step(format!("GET {SLOW} directly → {}", found.direct.summary()));
    f.observe(
        "direct-status",
        found
            .direct
            .status()
            .map_or("none".into(), |s| s.as_u16().to_string()),
        "the server cannot write its answer after the write timeout: the connection closes with no status line at all, not a 504",
    );
    if go {
        f.claim_eq(
            "write-timeout-closes-unanswered",
            "no response; closed after about 6 s",
            found.direct.summary(),
            "Go's server checks the 3 s WriteTimeout when it writes, and the handler writes only when it wakes after 6 s: the write fails and the connection is closed unanswered",
        );
    } else {
        f.claim_lab_choice(
            "write-timeout-closes-unanswered",
            "no response; closed after about 3 s",
            found.direct.summary(),
            "lab realserver enforces the write timeout when it passes, so the client learns at 3 s what Go tells it at 6 s: nothing is coming",
        );
    }

    if let Some(patient) = &found.patient {
        f.step(format!(
            "GET {SLOW} through the proxy (a new upstream connection) → {}: {:?}",
            patient.summary(),
            patient.body()
        ));
        f.claim_eq(
            "proxy-sees-a-broken-upstream",
            "502 after about 3 s",
            patient.summary(),
            "the proxy waited; the upstream closed the connection without an answer, which is a bad gateway, not a slow one",
        );
        f.observe(
            "status-through-proxy",
            patient
                .status()
                .map_or("none".into(), |s| s.as_u16().to_string()),
            "the upstream hung up without a response: 502",
        );
    }

    if let Some((reused, times)) = &found.reused {
        let actual = format!(
            "the real server got it {times} time(s); {}",
            reused.summary()
        );
        f.step(format!(
            "GET /abc, then GET {SLOW} through the same proxy (its upstream connection reused) → {actual}"
        ));
        f.claim_eq(
            "reused-connection-retried",
            "the real server got it 2 time(s); 502 after about 6 s",
            actual,
            if go {
                "the Transport resends an idempotent request (a GET without a body) once when a connection it reused from the pool closes before any answer: it may have been closed idle just as the request went out. The slow handler runs twice"
            } else {
                "lab proxy resends the same way (RFC 9112 §9.3.1.1 allows it for an idempotent request): a GET without a body whose reused connection closed before any answer goes out once more on a new connection, so the slow handler runs twice here too"
            },
        );
    }

    if let Some(tls) = &found.tls {
        f.step(format!(
            "GET /abc through a Go proxy to https://… that never answers the TLS handshake → {}",
            tls.summary()
        ));
        f.claim_eq(
            "timeouts-are-502",
            "502 after about 10 s",
            tls.summary(),
            "a timeout is an error like any other to Go's default ErrorHandler: DefaultTransport's TLSHandshakeTimeout (10 s) ends in 502 Bad Gateway",
        );
    }
    if let Some(hasty) = &found.hasty {
        f.step(format!(
            "GET {SLOW} through the proxy with --response-timeout 1s → {}",
            hasty.summary()
        ));
        f.claim_lab_choice(
            "timeouts-are-502",
            "504 after about 1 s",
            hasty.summary(),
            "lab proxy answers 504 Gateway Timeout when its own --response-timeout passes (RFC 9110 §15.6.5: a gateway that did not get a response in time), to tell a slow upstream from a broken one; `lab proxy --like-go` answers 502 (docs/go-differences.md)",
        );
        f.claim_eq(
            "response-timeout-is-504",
            "504 after about 1 s",
            hasty.summary(),
            "the proxy gave up first (Go's equivalent is Transport.ResponseHeaderTimeout, which Go answers with 502): the upstream is too slow, a gateway timeout",
        );
    }

    if let Some(article) = &found.article {
        f.step(format!(
            "GET {SLOW} through the article's main.go ErrorHandler → {}: {:?}",
            article.summary(),
            article.body()
        ));
        f.claim(
            "article-main-timeout-is-500",
            article.status() == Some(StatusCode::INTERNAL_SERVER_ERROR)
                && article.body().starts_with("ErrorHandler error:")
                && about(article.after) == "about 3 s",
            "500 after about 3 s, \"ErrorHandler error:…\"",
            format!("{}, {:?}", article.summary(), article.body()),
            "main.go's errFunc answers every error with 500: the client cannot tell a slow or broken upstream from a broken proxy",
        );
    }
    if let Some(director) = &found.director {
        f.step(format!(
            "POST {SLOW} through the 2.2 proxy → {}: {:?}",
            director.summary(),
            director.body()
        ));
        f.claim_eq(
            "director-timeout-is-200",
            "200 after about 3 s: \"EOF\"",
            format!("{}: {:?}", director.summary(), director.body()),
            "the 2.2 errorHandler writes the error's text without a status, so the upstream's silence reaches the client as 200 OK with the body \"EOF\"",
        );
    }
}

/// A TCP relay to the real server that counts the requests for one path it
/// passes on: how many times the upstream was asked.
struct CountingRelay {
    addr: SocketAddr,
    count: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingRelay {
    async fn start(target: SocketAddr, path: &'static [u8]) -> anyhow::Result<CountingRelay> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut from_client, mut to_client) = client.into_split();
                    let (mut from_server, mut to_server) = server.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 8192];
                        // A request head comes in one piece on loopback: the
                        // path is not looked for across two reads.
                        while let Ok(n) = from_client.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            let asked = buf[..n].windows(path.len()).filter(|w| *w == path).count();
                            counted.fetch_add(asked, Ordering::SeqCst);
                            if to_server.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = to_server.shutdown().await;
                    };
                    let down = async {
                        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
                        let _ = to_client.shutdown().await;
                    };
                    tokio::join!(up, down);
                });
            }
        });
        Ok(CountingRelay { addr, count, task })
    }

    fn stop(self) {
        self.task.abort();
    }
}

/// An upstream that accepts connections and never writes a byte: a TLS
/// client waits for a handshake that never comes.
struct SilentUpstream {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl SilentUpstream {
    async fn start() -> anyhow::Result<SilentUpstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((conn, _)) = listener.accept().await {
                held.push(conn);
            }
        });
        Ok(SilentUpstream { addr, task })
    }

    fn stop(self) {
        self.task.abort();
    }
}
