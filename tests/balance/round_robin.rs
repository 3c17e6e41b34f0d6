//! Round robin (轮询负载均衡): the article's counter, strictly alternating
//! whatever the weights.

use super::{addrs_of, assert_no_pick, explained, pick_of, probe, served_by, specs, start_proxy};
use crate::common::bounded;
use crate::common::client::send;
use crate::common::servers::real_servers;
use lab::lab_headers::PICK_HEADER;
use serde_json::json;

#[tokio::test]
async fn round_robin_alternates_strictly_whatever_the_weights() {
    bounded(async {
        let servers = real_servers(2).await;
        let addrs = addrs_of(&servers);
        // Weights are ignored, in either order, by either name.
        for (lb, weights) in [("round-robin", [1, 5]), ("rr", [20, 10])] {
            let specs = specs(&addrs, &weights);
            let proxy = start_proxy(&["--lb", lb], &specs).await;
            for counter in 0..12u64 {
                let exchange = send(proxy.addr(), explained(probe("/rr"))).await;
                let expected = (counter % 2) as usize;
                assert_eq!(
                    served_by(&exchange, &addrs),
                    expected,
                    "--lb {lb} {weights:?}, request {counter}"
                );
                assert_eq!(
                    pick_of(&exchange),
                    json!({"algorithm": "round-robin", "counter": counter, "nodes": 2}),
                    "--lb {lb}: {PICK_HEADER} shows the counter"
                );
            }
            // The counter keeps going for requests that did not ask for it.
            let exchange = send(proxy.addr(), probe("/rr")).await;
            assert_eq!(served_by(&exchange, &addrs), 0, "request 12");
            assert_no_pick(&exchange, "round robin");
            let exchange = send(proxy.addr(), explained(probe("/rr"))).await;
            assert_eq!(served_by(&exchange, &addrs), 1, "request 13");
            assert_eq!(pick_of(&exchange)["counter"], 13);
        }
    })
    .await;
}
