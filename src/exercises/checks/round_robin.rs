//! Exercise 8, round robin: three real servers behind the learner's proxy;
//! which one answered each request is read from the real server's JSON echo.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::exercises::session::Session;
use crate::probe::Probe;

pub fn run(s: &mut Session) -> BoxFuture<'_, anyhow::Result<()>> {
    async move {
        // One at a time: the order is the lesson.
        let mut letters = Vec::new();
        for _ in 0..6 {
            letters.push(s.who_answers("/").await);
        }
        let n = s.upstreams.len();
        let expected: Vec<String> = (0..6)
            .map(|i| ((b'a' + (i % n) as u8) as char).to_string())
            .collect();
        s.point(
            "sequence",
            "six requests one after another are served by a b c a b c",
            expected.join(" "),
            letters.join(" "),
        );
        let mut seen: Vec<&String> = letters.iter().filter(|l| l.len() == 1).collect();
        seen.sort();
        seen.dedup();
        s.point(
            "every-upstream",
            "every upstream serves its share",
            n,
            seen.len(),
        );

        // Thirty at once: ten each, if Next is safe on many goroutines.
        let probes = (0..30).map(|_| s.who_answers("/"));
        let answers = futures_util::future::join_all(probes).await;
        let count = |l: &str| answers.iter().filter(|a| *a == l).count();
        let counts: Vec<String> = (0..n)
            .map(|i| {
                let l = ((b'a' + i as u8) as char).to_string();
                format!("{l}={}", count(&l))
            })
            .collect();
        let even: Vec<String> = (0..n)
            .map(|i| format!("{}={}", (b'a' + i as u8) as char, 30 / n))
            .collect();
        s.point(
            "even-under-load",
            "thirty requests at once: ten for each upstream",
            even.join(" "),
            counts.join(" "),
        );

        // The director joins the upstream's path before the client's.
        let probe = Probe::get("/abc?x=1").header("Accept", "application/json");
        let uri = match s.send(&probe).await {
            Ok(answer) => match answer.json_echo() {
                Ok(echo) => echo.uri,
                Err(_) => format!("{} {}", answer.status, answer.text()),
            },
            Err(why) => why,
        };
        s.point(
            "path-joined",
            "GET /abc?x=1 reaches the real server as /base/abc?x=1",
            "/base/abc?x=1",
            uri,
        );
        Ok(())
    }
    .boxed()
}
