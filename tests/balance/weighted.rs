//! Weighted round robin (加权负载均衡): nginx's smooth algorithm, its 5/1/1
//! table on real servers, a failure dropping the effective weight and its
//! climb back, and 10/20 splitting 300 requests exactly.

use super::{
    A, B, BadGateway, C, Outcome, Served, addrs_of, explained, outcome, pick_of, probe, served_by,
    specs, start_proxy, to_json,
};
use crate::common::bounded;
use crate::common::client::send;
use crate::common::servers::real_servers;
use lab::balance::weighted::{lower_effective, smooth_wrr_step};
use lab::balance::{Explanation, WeightState, smooth_wrr_sequence};
use serde_json::Value;

fn effectives(states: &Value) -> Vec<i64> {
    column(states, "effective")
}

fn currents(states: &Value) -> Vec<i64> {
    column(states, "current")
}

fn column(states: &Value, field: &str) -> Vec<i64> {
    states
        .as_array()
        .unwrap_or_else(|| panic!("a list of weight states: {states}"))
        .iter()
        .map(|state| state[field].as_i64().expect("a whole number"))
        .collect()
}

#[tokio::test]
async fn weighted_5_1_1_is_nginx_smooth_table_on_real_servers() {
    bounded(async {
        let servers = real_servers(3).await;
        let addrs = addrs_of(&servers);
        let specs = specs(&addrs, &[5, 1, 1]);
        let proxy = start_proxy(&["--lb", "wrr"], &specs).await;

        // a a b a c a a, twice; each X-Lab-Pick is the table's row.
        let rounds = smooth_wrr_sequence(&[5, 1, 1], 7);
        let mut served = Vec::new();
        for pick in 0..14 {
            let exchange = send(proxy.addr(), explained(probe("/wrr"))).await;
            served.push(served_by(&exchange, &addrs));
            let round = &rounds[pick % 7];
            let explanation = pick_of(&exchange);
            assert_eq!(
                explanation,
                to_json(&Explanation::Weighted {
                    before: round.before.clone(),
                    after: round.after.clone(),
                    total: round.total,
                }),
                "pick {pick}"
            );
            assert_eq!(explanation["algorithm"], "weighted");
        }
        assert_eq!(served, [A, A, B, A, C, A, A, A, A, B, A, C, A, A]);

        // The table by hand, so the answer key is checked too: currentWeight
        // after step 1 (before) and after step 3 (after), total 7.
        let table: [[i64; 6]; 7] = [
            [5, 1, 1, -2, 1, 1],
            [3, 2, 2, -4, 2, 2],
            [1, 3, 3, 1, -4, 3],
            [6, -3, 4, -1, -3, 4],
            [4, -2, 5, 4, -2, -2],
            [9, -1, -1, 2, -1, -1],
            [7, 0, 0, 0, 0, 0],
        ];
        for (round, row) in rounds.iter().zip(table) {
            let current =
                |states: &[WeightState]| -> Vec<i64> { states.iter().map(|s| s.current).collect() };
            let before: Vec<i64> = current(&round.before);
            let after: Vec<i64> = current(&round.after);
            assert_eq!(before, row[..3]);
            assert_eq!(after, row[3..]);
            assert_eq!(round.total, 7);
        }
    })
    .await;
}

#[tokio::test]
async fn weighted_failure_drops_effective_to_0_and_it_climbs_back_one_per_pick() {
    bounded(async {
        let mut servers = real_servers(3).await;
        let addrs = addrs_of(&servers);
        let specs = specs(&addrs, &[5, 1, 1]);
        let proxy = start_proxy(&["--lb", "weighted"], &specs).await;

        // One full cycle with every server up: a a b a c a a.
        let mut served = Vec::new();
        for _ in 0..7 {
            served.push(served_by(&send(proxy.addr(), probe("/wrr")).await, &addrs));
        }
        assert_eq!(served, [A, A, B, A, C, A, A]);

        // a goes down in the middle of the test.
        servers
            .remove(A)
            .shutdown()
            .await
            .expect("real server a stops");

        // Pick by pick (nginx, max_fails = 1): the effective weights that were
        // added in step 1, the currents after step 1 and after step 3, the
        // total, the chosen node, and the effective weights after the pick's
        // recovery (+1 for a node below its weight).
        type Row = ([i64; 3], [i64; 3], i64, Outcome, [i64; 3], [i64; 3]);
        let rows: [Row; 6] = [
            // a is chosen and fails: 502. Its effective drops to 0 afterwards.
            (
                [5, 1, 1],
                [5, 1, 1],
                7,
                BadGateway(A),
                [-2, 1, 1],
                [5, 1, 1],
            ),
            // a adds 0, the others are chosen; a's effective climbs 0 → 1 → 2 → 3.
            ([0, 1, 1], [-2, 2, 2], 2, Served(B), [-2, 0, 2], [1, 1, 1]),
            ([1, 1, 1], [-1, 1, 3], 3, Served(C), [-1, 1, 0], [2, 1, 1]),
            ([2, 1, 1], [1, 2, 1], 4, Served(B), [1, -2, 1], [3, 1, 1]),
            // At 3 a wins again, fails again, and is back to 0.
            (
                [3, 1, 1],
                [4, -1, 2],
                5,
                BadGateway(A),
                [-1, -1, 2],
                [4, 1, 1],
            ),
            ([0, 1, 1], [-1, 0, 3], 2, Served(C), [-1, 0, 1], [1, 1, 1]),
        ];
        for (pick, (effective, before, total, expected, after, recovered)) in
            rows.into_iter().enumerate()
        {
            let exchange = send(proxy.addr(), explained(probe("/wrr"))).await;
            assert_eq!(
                outcome(&exchange, &addrs),
                expected,
                "pick {pick} after the stop"
            );
            // The 502 explains its pick too.
            let explanation = pick_of(&exchange);
            assert_eq!(explanation["algorithm"], "weighted", "pick {pick}");
            assert_eq!(effectives(&explanation["before"]), effective, "pick {pick}");
            assert_eq!(currents(&explanation["before"]), before, "pick {pick}");
            assert_eq!(explanation["total"], total, "pick {pick}");
            assert_eq!(currents(&explanation["after"]), after, "pick {pick}");
            assert_eq!(effectives(&explanation["after"]), recovered, "pick {pick}");
        }

        // Thirty more, against the library's own step and failure rule run
        // beside it from the same state: every failure of a shows at 0 in the
        // next pick, then +1 per pick; b and c serve everything else.
        // The state after the last row: effective 1 1 1, current -1 0 1.
        let mut model: Vec<WeightState> = [5, 1, 1].map(WeightState::new).to_vec();
        for (state, current) in model.iter_mut().zip([-1, 0, 1]) {
            state.effective = 1;
            state.current = current;
        }
        // a's effective in the last row's step 1.
        let mut a_effective_seen = vec![0];
        let mut counts = [0usize; 3];
        let mut a_failed_last = false;
        for pick in 0..30 {
            let exchange = send(proxy.addr(), explained(probe("/wrr"))).await;
            let (chosen, _) = smooth_wrr_step(&mut model).unwrap();
            let got = outcome(&exchange, &addrs);
            let a_effective = effectives(&pick_of(&exchange)["before"])[A];
            if a_failed_last {
                assert_eq!(a_effective, 0, "pick {pick}: a failed just before");
            } else if let Some(last) = a_effective_seen.last() {
                assert_eq!(a_effective, (last + 1).min(5), "pick {pick}: +1 per pick");
            }
            a_effective_seen.push(a_effective);
            assert_eq!(
                currents(&pick_of(&exchange)["after"]),
                model.iter().map(|s| s.current).collect::<Vec<_>>(),
                "pick {pick}"
            );
            if chosen == A {
                assert_eq!(got, BadGateway(A), "pick {pick}");
                lower_effective(&mut model[A], 1);
                counts[A] += 1;
            } else {
                assert_eq!(got, Served(chosen), "pick {pick}");
                counts[chosen] += 1;
            }
            a_failed_last = chosen == A;
        }
        // Healthy, a would get 5 picks in 7 (21 of 30); failing, it keeps
        // being tried (no fail_timeout here) but gets under a third, and b and
        // c, 1 in 7 each when all are up (4 of 30), carry the rest.
        assert!(
            counts[A] >= 1 && 3 * counts[A] <= 30 && counts[B] > 4 && counts[C] > 4,
            "{counts:?}, a's effective {a_effective_seen:?}"
        );
    })
    .await;
}

#[tokio::test]
async fn weighted_10_20_splits_300_requests_exactly_100_200() {
    bounded(async {
        let servers = real_servers(2).await;
        let addrs = addrs_of(&servers);
        let proxy = start_proxy(&["--lb", "wrr"], &specs(&addrs, &[10, 20])).await;
        let mut served = Vec::new();
        for _ in 0..300 {
            served.push(served_by(&send(proxy.addr(), probe("/wrr")).await, &addrs));
        }
        let count = |server| served.iter().filter(|&&s| s == server).count();
        assert_eq!((count(A), count(B)), (100, 200));
        // Smooth: every three picks are b a b, never a run of one server.
        for (i, cycle) in served.chunks(3).enumerate() {
            assert_eq!(cycle, [B, A, B], "cycle {i}");
        }
    })
    .await;
}
