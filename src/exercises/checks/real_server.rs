//! Exercise 1, the real server: the learner's program is RealServer, and
//! lab 01's probes go to it directly. Its three-line echo is read with the
//! same parser that reads `lab realserver`'s.

use std::time::{Duration, Instant};

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::exercises::session::Session;
use crate::probe::Probe;
use crate::realserver::TextEcho;

pub fn run(s: &mut Session) -> BoxFuture<'_, anyhow::Result<()>> {
    async move {
        let probe = Probe::get("/abc")
            .header("X-Forwarded-For", "1.2.3.4")
            .header("X-Real-Ip", "5.6.7.8");
        let answer = s.send(&probe).await;
        let echo = answer.as_ref().map_err(Clone::clone).and_then(|a| {
            TextEcho::parse(&a.text()).ok_or_else(|| {
                format!(
                    "{} {:?} (not the three-line echo)",
                    a.status.as_u16(),
                    a.text()
                )
            })
        });
        let line = |f: fn(&TextEcho) -> String| echo.as_ref().map_or_else(Clone::clone, f);
        s.point(
            "echo-url",
            "line 1 of GET /abc is http://ADDR/abc (the server's own address and the path)",
            format!("http://{}/abc", s.addr),
            line(|e| e.url.clone()),
        );
        let client = answer.as_ref().map_or_else(
            |_| "the probe's address".into(),
            |a| a.local_addr.to_string(),
        );
        s.point(
            "remote-addr",
            "line 2 starts RemoteAddr= and the client's IP:port",
            client,
            line(|e| e.remote_addr.clone()),
        );
        s.point(
            "forwarded-headers",
            "line 2 goes on with X-Forwarded-For=1.2.3.4,X-Real-Ip=5.6.7.8 as the client sent them",
            "1.2.3.4 5.6.7.8",
            line(|e| format!("{} {}", e.x_forwarded_for, e.x_real_ip)),
        );

        let error = s.answer_of(&Probe::get("/base/error")).await;
        s.point(
            "error-handler",
            "GET /base/error answers 500 error handler",
            "500 error handler",
            error,
        );

        // The handler sleeps 6 s; past a 3 s WriteTimeout its answer is never
        // sent. (Go closes the connection when the handler returns, at 6 s;
        // `lab realserver` at the deadline: either way, no answer.)
        let started = Instant::now();
        let slow = Probe::get("/test_http_string/test_http_string/aaa");
        let result = s.send_within(&slow, Duration::from_secs(9)).await;
        let after = started.elapsed().as_secs_f64();
        let (actual, passed) = match result {
            Ok(answer) => (
                format!(
                    "{} {:?} after {after:.1} s",
                    answer.status.as_u16(),
                    answer.text()
                ),
                false,
            ),
            Err(_) => (
                format!("no answer, the connection closed after {after:.1} s"),
                after >= 2.0,
            ),
        };
        s.judge(
            "write-timeout",
            "GET /test_http_string/test_http_string/aaa gets no answer: the 3 s WriteTimeout \
             beats the handler's 6 s sleep",
            "no answer, the connection closed after 3 to 6 s",
            actual,
            passed,
        );
        Ok(())
    }
    .boxed()
}
