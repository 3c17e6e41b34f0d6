//! Consistent hash (一致性hash负载): a key sticks to its node by header, by
//! client address (moving with each connection) or by client IP (sticking).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::{
    Ring, addrs_of, explained, node_of, pick_of, probe, served_by, specs, start_proxy,
    users_for_each_node,
};
use crate::common::bounded;
use crate::common::client::{send, send_from};
use crate::common::servers::real_servers;
use lab::lab_headers::PICK_HEADER;
use lab::probe::Exchange;
use serde_json::{Value, json};

/// Checks an `X-Lab-Pick` of the article's ring against crc32 and the ring
/// computed here, and that the server the ring names answered; returns it.
fn assert_hash_pick(exchange: &Exchange, ring: &Ring, key: &str, addrs: &[SocketAddr]) -> Value {
    let pick = pick_of(exchange);
    let place = ring.place(key);
    assert_eq!(
        served_by(exchange, addrs),
        place.node,
        "{key:?} belongs to {}",
        place.virtual_node
    );
    assert_eq!(
        pick,
        json!({
            "algorithm": "consistent-hash",
            "key": key,
            "hash": crc32fast::hash(key.as_bytes()),
            "virtual_node_hash": place.point,
            "ring_index": place.ring_index,
            "virtual_node": place.virtual_node,
        }),
        "{PICK_HEADER} for {key:?}"
    );
    pick
}

#[tokio::test]
async fn consistent_hash_by_header_sticks_each_user_and_spreads_users() {
    bounded(async {
        let servers = real_servers(2).await;
        let addrs = addrs_of(&servers);
        // Weight 3 puts 30 virtual nodes on the ring, weight 1 ten.
        let specs = specs(&addrs, &[1, 3]);
        let ring = Ring::article(&addrs, &[1, 3]);
        assert_eq!(ring.points.len(), 40);
        // Two users on each server, as the ring says.
        let users = users_for_each_node(&ring, 2);
        for lb in ["consistent-hash", "hash"] {
            let proxy = start_proxy(&["--lb", lb, "--hash-key", "header:X-User"], &specs).await;
            let mut used = BTreeSet::new();
            for (node, users) in users.iter().enumerate() {
                for user in users {
                    // Every request a new connection (the probe opens one).
                    for i in 0..20 {
                        let request = probe("/hash").header("X-User", user);
                        let exchange = if i == 0 {
                            let exchange = send(proxy.addr(), explained(request)).await;
                            assert_hash_pick(&exchange, &ring, user, &addrs);
                            exchange
                        } else {
                            send(proxy.addr(), request).await
                        };
                        assert_eq!(
                            served_by(&exchange, &addrs),
                            node,
                            "--lb {lb}: {user} sticks to its server (request {i})"
                        );
                        used.insert(node);
                    }
                }
            }
            assert_eq!(used.len(), 2, "different users spread over both servers");

            // No X-User: the empty key, crc32("") = 0, the first virtual node.
            let exchange = send(proxy.addr(), explained(probe("/hash"))).await;
            let pick = assert_hash_pick(&exchange, &ring, "", &addrs);
            assert_eq!((&pick["hash"], &pick["ring_index"]), (&json!(0), &json!(0)));

            // A key past the last virtual node wraps round to the first.
            let last = ring.points.last().unwrap().0;
            let wraps = (0..)
                .map(|n| format!("wrap-{n}"))
                .find(|key| crc32fast::hash(key.as_bytes()) > last)
                .unwrap();
            let request = explained(probe("/hash").header("X-User", &wraps));
            let pick = assert_hash_pick(&send(proxy.addr(), request).await, &ring, &wraps, &addrs);
            assert_eq!(pick["ring_index"], 0, "{pick}");
        }
    })
    .await;
}

#[tokio::test]
async fn consistent_hash_remote_addr_moves_with_each_connection_remote_ip_sticks() {
    bounded(async {
        let servers = real_servers(2).await;
        let addrs = addrs_of(&servers);
        let specs = specs(&addrs, &[1, 1]);
        let ring = Ring::article(&addrs, &[1, 1]);
        let by_addr = start_proxy(&["--lb", "hash", "--hash-key", "remote-addr"], &specs).await;
        let by_ip = start_proxy(&["--lb", "hash", "--hash-key", "remote-ip"], &specs).await;
        let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);

        // The article's key, IP:port. One client (127.0.0.1) from two source
        // ports that the ring sends to different servers (chosen below the
        // ephemeral range, from the ring's answers): the same client, two
        // servers. Then with remote-ip, the same two ports, one server.
        let mut from_port = [None, None];
        let mut port = 20_000u16;
        while from_port.iter().any(Option::is_none) {
            assert!(port < 32_000, "no free source port for each server");
            let from = SocketAddr::new(localhost, port);
            let node = node_of(&ring, &from.to_string());
            if from_port[node].is_none()
                && let Some(exchange) =
                    send_from(from, by_addr.addr(), explained(probe("/addr"))).await
            {
                assert_hash_pick(&exchange, &ring, &from.to_string(), &addrs);
                assert_eq!(served_by(&exchange, &addrs), node);
                from_port[node] = Some(port);
            }
            port += 1;
        }
        let ip_node = node_of(&ring, "127.0.0.1");
        for port in from_port.into_iter().flatten() {
            // The same source port again, now to the remote-ip proxy (a new
            // connection: the one to by_addr is closed).
            let from = SocketAddr::new(localhost, port);
            let exchange = send_from(from, by_ip.addr(), explained(probe("/ip")))
                .await
                .unwrap_or_else(|| panic!("cannot connect from {from} again"));
            assert_hash_pick(&exchange, &ring, "127.0.0.1", &addrs);
            assert_eq!(served_by(&exchange, &addrs), ip_node, "from {from}");
        }

        // Ordinary connections (the kernel's ports): remote-addr follows each
        // connection's port, remote-ip stays on one server.
        for i in 0..20 {
            let exchange = send(by_addr.addr(), explained(probe("/addr"))).await;
            let key = exchange.local_addr.to_string();
            assert_hash_pick(&exchange, &ring, &key, &addrs);
            assert_eq!(served_by(&exchange, &addrs), node_of(&ring, &key), "{i}");

            let exchange = send(by_ip.addr(), explained(probe("/ip"))).await;
            assert_hash_pick(&exchange, &ring, "127.0.0.1", &addrs);
            assert_eq!(served_by(&exchange, &addrs), ip_node, "{i}");
        }

        // remote-ip is the client's address, not a constant: another loopback
        // client the ring places on the other server goes there. The
        // article's ring can give one server a sliver of the circle (its
        // points are one pattern, lab 15), so look through 127.0.0.0/16, not
        // only 127.0.0.0/24: all of 127/8 is loopback on Linux.
        let other = (2u16..=u16::MAX - 1)
            .map(|n| {
                let [high, low] = n.to_be_bytes();
                IpAddr::V4(Ipv4Addr::new(127, 0, high, low))
            })
            .filter(
                |ip| !matches!(ip, IpAddr::V4(v4) if v4.octets()[3] == 0 || v4.octets()[3] == 255),
            )
            .find(|ip| node_of(&ring, &ip.to_string()) != ip_node)
            .expect("a loopback address on the other server");
        let exchange = send_from(
            SocketAddr::new(other, 0),
            by_ip.addr(),
            explained(probe("/ip")),
        )
        .await
        .unwrap_or_else(|| panic!("cannot connect from {other}"));
        assert_hash_pick(&exchange, &ring, &other.to_string(), &addrs);
        assert_eq!(served_by(&exchange, &addrs), 1 - ip_node, "from {other}");
    })
    .await;
}
