//! Exercise 12, health checks: two real servers behind the learner's
//! proxy; b's real server is stopped and started again, and the program
//! must take it out of service (no request sent to it) and bring it back,
//! each within a few seconds, on its own checks alone.

use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::exercises::session::Session;

/// How long the program has to notice a stop or a return.
const NOTICE: Duration = Duration::from_secs(4);

pub fn run(s: &mut Session) -> BoxFuture<'_, anyhow::Result<()>> {
    async move {
        let mut first = Vec::new();
        for _ in 0..6 {
            first.push(s.who_answers("/").await);
        }
        let mut served: Vec<&str> = first.iter().map(String::as_str).collect();
        served.sort();
        served.dedup();
        s.point(
            "all-serve",
            "both upstreams up: six requests are answered by a and b",
            "a b",
            served.join(" "),
        );

        // b goes down: after a few checks, only a answers.
        s.stop_upstream(1).await?;
        let started = Instant::now();
        let mut recent: Vec<String> = Vec::new();
        let mut out_after = None;
        while started.elapsed() < NOTICE {
            recent.push(s.who_answers("/").await);
            let last: Vec<&String> = recent.iter().rev().take(10).collect();
            if last.len() == 10 && last.iter().all(|l| *l == "a") {
                out_after = Some(started.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let tail = |recent: &[String]| {
            let from = recent.len().saturating_sub(10);
            recent[from..].join(" ")
        };
        s.judge(
            "taken-out",
            "b's real server stops: within 4 s, ten requests in a row are answered by a",
            "ten in a row by a",
            match out_after {
                Some(after) => format!(
                    "ten in a row by a, {:.1} s after the stop",
                    after.as_secs_f64()
                ),
                None => format!("after {NOTICE:?}, the last ten: {}", tail(&recent)),
            },
            out_after.is_some(),
        );
        let mut after: Vec<String> = Vec::new();
        for _ in 0..20 {
            after.push(s.who_answers("/").await);
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        s.judge(
            "stays-out",
            "while b is down, the next twenty requests all go to a",
            "a ×20",
            if after.iter().all(|l| l == "a") {
                "a ×20".to_string()
            } else {
                after.join(" ")
            },
            after.iter().all(|l| l == "a"),
        );

        // b comes back: it serves again.
        s.start_upstream(1).await?;
        let started = Instant::now();
        let mut back_after = None;
        let mut seen = Vec::new();
        while started.elapsed() < NOTICE {
            let letter = s.who_answers("/").await;
            let b = letter == "b";
            seen.push(letter);
            if b {
                back_after = Some(started.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        s.judge(
            "back-in",
            "b's real server returns: within 4 s it answers requests again",
            "b serves again",
            match back_after {
                Some(after) => format!(
                    "b serves again, {:.1} s after its return",
                    after.as_secs_f64()
                ),
                None => format!("after {NOTICE:?}, the last ten: {}", tail(&seen)),
            },
            back_after.is_some(),
        );
        Ok(())
    }
    .boxed()
}
