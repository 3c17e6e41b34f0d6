//! Exercise 3, the naive proxy fixed: lab 05's probes through the
//! learner's proxy to one real server. The status must survive, the real
//! server must learn the client's IP, and hop-by-hop headers must stop at
//! the proxy in both directions.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::exercises::session::Session;
use crate::probe::{Exchange, Probe};
use crate::realserver::EchoReport;

pub fn run(s: &mut Session) -> BoxFuture<'_, anyhow::Result<()>> {
    async move {
        let status = s.answer_of(&Probe::get("/base/error")).await;
        s.point(
            "status-kept",
            "the real server's 500 for /base/error reaches the client as 500",
            "500 error handler",
            status,
        );

        let echo = s.echo_of(&Probe::get("/abc?x=1")).await;
        s.point(
            "path-and-query",
            "GET /abc?x=1 reaches the real server as /abc?x=1",
            "/abc?x=1",
            echo.as_ref().map_or_else(Clone::clone, |e| e.uri.clone()),
        );
        s.point(
            "xff-set",
            "the real server sees the client's IP in X-Forwarded-For",
            "127.0.0.1",
            header_or_why(&echo, "x-forwarded-for"),
        );

        let echo = s
            .echo_of(&Probe::get("/abc").header("X-Forwarded-For", "1.2.3.4"))
            .await;
        s.point(
            "xff-appended",
            "a client's X-Forwarded-For: 1.2.3.4 arrives with the client's IP appended",
            "1.2.3.4, 127.0.0.1",
            header_or_why(&echo, "x-forwarded-for"),
        );

        let probe = Probe::get("/abc")
            .header("Connection", "X-Foo")
            .header("X-Foo", "1")
            .header("Keep-Alive", "timeout=5");
        let echo = s.echo_of(&probe).await;
        let arrived = match &echo {
            Ok(echo) => {
                let names: Vec<&str> = ["x-foo", "keep-alive"]
                    .into_iter()
                    .filter(|n| echo.headers.iter().any(|(h, _)| h == n))
                    .collect();
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            }
            Err(why) => why.clone(),
        };
        s.point(
            "hop-request",
            "Connection: X-Foo, X-Foo and Keep-Alive from the client never reach the real server",
            "none",
            arrived,
        );

        let kept = match s.send(&Probe::get("/hop-headers")).await {
            Ok(answer) => hop_headers_in(&answer),
            Err(why) => why,
        };
        s.point(
            "hop-response",
            "the real server's Connection: X-Hop, X-Hop and Keep-Alive never reach the client",
            "none",
            kept,
        );
        Ok(())
    }
    .boxed()
}

fn header_or_why(echo: &Result<EchoReport, String>, name: &str) -> String {
    match echo {
        Ok(echo) => {
            let values: Vec<&str> = echo
                .headers
                .iter()
                .filter(|(h, _)| h == name)
                .map(|(_, v)| v.as_str())
                .collect();
            if values.is_empty() {
                "(none)".into()
            } else {
                values.join(", ")
            }
        }
        Err(why) => why.clone(),
    }
}

fn hop_headers_in(answer: &Exchange) -> String {
    let names: Vec<&str> = ["x-hop", "keep-alive"]
        .into_iter()
        .filter(|n| answer.headers.contains_key(*n))
        .chain(
            answer
                .headers
                .get_all("connection")
                .iter()
                .any(|v| v.as_bytes().eq_ignore_ascii_case(b"x-hop"))
                .then_some("connection: X-Hop"),
        )
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}
