//! Exercise 9, smooth weighted round robin: three real servers with
//! weights 5, 1, 1 behind the learner's proxy. What each pick should be is
//! computed with the lab's own algorithm (`crate::balance::weighted`, the
//! article's `Next()` line by line), request by request, so a learner's
//! program is held to the exact sequence, also after a failure: real
//! server a is stopped, its failure must lower its effectiveWeight to 0
//! (nginx's rule), and after it returns it earns its weight back pick by
//! pick.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::balance::WeightState;
use crate::balance::weighted::{lower_effective, smooth_wrr_step};
use crate::exercises::session::Session;
use crate::probe::Probe;

pub fn run(s: &mut Session) -> BoxFuture<'_, anyhow::Result<()>> {
    async move {
        anyhow::ensure!(
            s.restart.weights.len() == s.upstreams.len(),
            "exercise.toml must give one weight per upstream"
        );
        let mut model: Vec<WeightState> = s
            .restart
            .weights
            .iter()
            .map(|&w| WeightState::new(w))
            .collect();
        let letter = |i: usize| ((b'a' + i as u8) as char).to_string();
        let expect = |model: &mut [WeightState]| {
            smooth_wrr_step(model).map_or("?".to_string(), |(i, _)| letter(i))
        };

        let (mut wanted, mut got) = (Vec::new(), Vec::new());
        for _ in 0..14 {
            wanted.push(expect(&mut model));
            got.push(s.who_answers("/").await);
        }
        s.point(
            "sequence",
            "weights 5,1,1: the first seven requests go to a a b a c a a",
            wanted[..7].join(" "),
            got[..7].join(" "),
        );
        s.point(
            "repeats",
            "the next seven go the same way: every currentWeight is back to 0",
            wanted[7..].join(" "),
            got[7..].join(" "),
        );

        // a goes down; its turn comes at once (request 15 is a's, 5 in 7).
        s.stop_upstream(0).await?;
        let chosen = expect(&mut model);
        let answer = s.send(&Probe::get("/")).await;
        let status = match &answer {
            Ok(answer) => answer.status.as_u16().to_string(),
            Err(why) => why.clone(),
        };
        if chosen == "a" {
            // nginx's rule with max_fails = 1: a is not trusted at all now.
            lower_effective(&mut model[0], 1);
        }
        s.point(
            "failure-answered",
            "with a's real server stopped, request 15 (a's turn) is answered 502 Bad Gateway",
            "502",
            status,
        );

        s.start_upstream(0).await?;
        let (mut wanted, mut got) = (Vec::new(), Vec::new());
        for _ in 0..7 {
            wanted.push(expect(&mut model));
            got.push(s.who_answers("/").await);
        }
        s.point(
            "lowered-then-recovers",
            "a is back: its effectiveWeight went to 0 and returns one per pick, so the next \
             seven go b c b a a c a",
            wanted.join(" "),
            got.join(" "),
        );
        Ok(())
    }
    .boxed()
}
