//! Exercise 7, random: three real servers behind the learner's proxy, 300
//! requests one after another; which server answered each is read from its
//! JSON echo. A fair draw gives each about 100 (a binomial with standard
//! deviation 8: outside 60..=140 is five deviations away, once in millions
//! of runs), and never the round-robin cycle.

use futures_util::FutureExt;
use futures_util::future::BoxFuture;

use crate::exercises::session::Session;

/// Requests sent, and the share each of three upstreams must stay within.
const REQUESTS: usize = 300;
const FAIR: std::ops::RangeInclusive<usize> = 60..=140;

pub fn run(s: &mut Session) -> BoxFuture<'_, anyhow::Result<()>> {
    async move {
        let mut letters = Vec::new();
        for _ in 0..REQUESTS {
            let letter = s.who_answers("/").await;
            let failed = letter.len() > 1;
            letters.push(letter);
            if failed {
                break;
            }
        }
        let n = s.upstreams.len();
        let names: Vec<String> = (0..n)
            .map(|i| ((b'a' + i as u8) as char).to_string())
            .collect();
        let counts: Vec<usize> = names
            .iter()
            .map(|l| letters.iter().filter(|x| *x == l).count())
            .collect();
        let tally = names
            .iter()
            .zip(&counts)
            .map(|(l, c)| format!("{l}={c}"))
            .collect::<Vec<_>>()
            .join(" ");
        let served = counts.iter().filter(|&&c| c > 0).count();
        let stopped = letters.last().filter(|l| l.len() > 1).cloned();
        s.judge(
            "every-upstream",
            "300 requests: every upstream serves some",
            format!("{n} upstreams serving"),
            stopped
                .clone()
                .unwrap_or(format!("{served} upstreams serving ({tally})")),
            stopped.is_none() && served == n,
        );
        s.judge(
            "fair-shares",
            "300 requests: each upstream serves between 60 and 140 (a third, give or take)",
            "60 to 140 each",
            tally.clone(),
            stopped.is_none() && counts.iter().all(|c| FAIR.contains(c)),
        );
        let rotated = (0..n)
            .any(|k| letters.len() >= 30 && (0..30).all(|i| letters[i] == names[(i + k) % n]));
        let first: Vec<&str> = letters.iter().take(12).map(String::as_str).collect();
        s.judge(
            "not-a-cycle",
            "the order is drawn, not the round-robin cycle a b c a b c",
            "no cycle",
            format!("{} …", first.join(" ")),
            stopped.is_none() && !rotated,
        );
        Ok(())
    }
    .boxed()
}
