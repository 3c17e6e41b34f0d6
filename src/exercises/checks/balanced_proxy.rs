//! Exercise 11, the article's main.go: two real servers behind the
//! learner's balanced proxy. Round robin is read from which server
//! answered; modifyFunc from the real server's 500 for /base/error as the
//! client receives it; errFunc from a request sent while both real servers
//! are stopped.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::exercises::session::Session;
use crate::probe::{Exchange, Probe};

/// What the real server's 500 becomes through modifyFunc.
const MARKED: &str = "StatusCode error:error handler";

pub fn run(s: &mut Session) -> BoxFuture<'_, anyhow::Result<()>> {
    async move {
        let mut letters = Vec::new();
        for _ in 0..4 {
            letters.push(s.who_answers("/abc").await);
        }
        s.point(
            "balanced",
            "four requests are answered by a b a b (the balancer's round robin)",
            "a b a b",
            letters.join(" "),
        );

        let probe = Probe::get("/abc?x=1").header("Accept", "application/json");
        let uri = match s.send(&probe).await {
            Ok(answer) => answer
                .json_echo()
                .map(|e| e.uri)
                .unwrap_or_else(|_| describe(&answer)),
            Err(why) => why,
        };
        s.point(
            "path-and-query",
            "GET /abc?x=1 reaches the real server as /base/abc?x=1",
            "/base/abc?x=1",
            uri,
        );

        let error = s.send(&Probe::get("/error")).await;
        s.point(
            "errors-prefixed",
            "the real server's 500 for /base/error reaches the client marked by modifyFunc",
            format!("500 {MARKED:?}"),
            error.as_ref().map_or_else(Clone::clone, describe),
        );
        let length = |a: &Exchange| {
            a.headers
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("(none)")
                .to_string()
        };
        s.point(
            "length-fixed",
            "its Content-Length is the new body's length",
            MARKED.len(),
            error.as_ref().map_or_else(Clone::clone, length),
        );

        let ok = s.send(&Probe::get("/abc")).await;
        let start = |a: &Exchange| {
            let text = a.text();
            format!(
                "{} {:?}…",
                a.status.as_u16(),
                text.chars().take(17).collect::<String>()
            )
        };
        s.judge(
            "ok-untouched",
            "a 200 answer is passed as it is, not marked",
            "200 \"http://…\" (the echo)",
            ok.as_ref().map_or_else(Clone::clone, start),
            ok.as_ref()
                .is_ok_and(|a| a.status == 200 && a.text().starts_with("http://")),
        );

        // No upstream answers: errFunc speaks.
        s.stop_upstream(0).await?;
        s.stop_upstream(1).await?;
        let down = s.send(&Probe::get("/abc")).await;
        let (actual, passed) = match &down {
            Ok(a) => (
                format!("{} {:?}", a.status.as_u16(), a.text()),
                a.status == 500 && a.text().starts_with("ErrorHandler error:"),
            ),
            Err(why) => (why.clone(), false),
        };
        s.judge(
            "upstream-down",
            "with both real servers stopped, errFunc answers 500 \"ErrorHandler error:…\"",
            "500 \"ErrorHandler error:…\"",
            actual,
            passed,
        );
        Ok(())
    }
    .boxed()
}

fn describe(answer: &Exchange) -> String {
    format!("{} {:?}", answer.status.as_u16(), answer.text())
}
