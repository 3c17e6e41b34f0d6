//! Exercise 13, rate limiting (限流) as middleware (中间件): the learner's
//! limit of 5 requests a second, wrapped around a ReverseProxy to one real
//! server. Five requests at once pass to the real server; five more right
//! after are refused with 429 and a Retry-After; a second later requests
//! pass again.
//!
//! The bucket starts full when the program starts, and `lab verify` sends
//! nothing before this experiment (it waits for a TCP connect, not a
//! request), so the first five are the program's first five.

use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::exercises::session::Session;
use crate::probe::{Exchange, Probe};

/// The limit the exercise asks for, in requests per second (and at once).
const PER_SECOND: usize = 5;

pub fn run(s: &mut Session) -> BoxFuture<'_, anyhow::Result<()>> {
    async move {
        let within = at_once(s, PER_SECOND).await;
        let over = at_once(s, PER_SECOND).await;

        // A token comes back every 200 ms, so if the second five took that
        // long to arrive one of them may rightly pass; more may not.
        let refused = over.iter().filter(|a| status_of(a) == "429").count();
        let passed = over.iter().filter(|a| status_of(a) == "200").count();
        s.judge(
            "limited",
            "five more requests right after the first five are refused: 429 Too Many Requests",
            "429 429 429 429 429 (one 200 at most: a token comes back every 200 ms)",
            statuses(&over),
            refused + passed == PER_SECOND && refused >= PER_SECOND - 1,
        );

        let retry_after = over
            .iter()
            .flatten()
            .find(|a| a.status.as_u16() == 429)
            .map(|a| {
                a.headers
                    .get("retry-after")
                    .map_or("(no Retry-After)".to_string(), |v| {
                        format!("Retry-After: {}", String::from_utf8_lossy(v.as_bytes()))
                    })
            });
        let whole_seconds = retry_after
            .as_deref()
            .and_then(|h| h.strip_prefix("Retry-After: "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|secs| secs >= 1);
        s.judge(
            "retry-after",
            "the 429 says when to come back: Retry-After, a whole number of seconds, at least 1",
            "Retry-After: 1",
            retry_after.unwrap_or_else(|| "no 429 to look at".into()),
            whole_seconds,
        );

        s.point(
            "within-limit",
            "five requests at once, the program's first, all pass: 200",
            ["200"; PER_SECOND].join(" "),
            statuses(&within),
        );

        let upstream = s.upstreams[0].to_string();
        let echoes = within
            .iter()
            .flatten()
            .filter(|a| a.json_echo().is_ok_and(|e| e.server == upstream))
            .count();
        s.point(
            "wraps-the-proxy",
            "the requests that pass are answered by the real server (its JSON echo)",
            format!("{PER_SECOND} echoes from {upstream}"),
            format!("{echoes} echoes from {upstream}"),
        );

        // Past a second the bucket is full again, whatever it was before.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let later = at_once(s, 1).await;
        s.point(
            "recovers",
            "1.1 s later a request passes again",
            "200",
            statuses(&later),
        );
        Ok(())
    }
    .boxed()
}

/// `n` requests for the real server's JSON echo, sent at once.
async fn at_once(s: &Session, n: usize) -> Vec<Result<Exchange, String>> {
    let probe = Probe::get("/abc").header("Accept", "application/json");
    futures_util::future::join_all((0..n).map(|_| s.send(&probe))).await
}

fn status_of(answer: &Result<Exchange, String>) -> String {
    match answer {
        Ok(answer) => answer.status.as_u16().to_string(),
        Err(why) => format!("({why})"),
    }
}

/// The statuses, sorted so that the order the answers came in does not matter.
fn statuses(answers: &[Result<Exchange, String>]) -> String {
    let mut all: Vec<String> = answers.iter().map(status_of).collect();
    all.sort();
    all.join(" ")
}
