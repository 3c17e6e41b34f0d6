//! ZooKeeper as the source of the upstream list: the article's
//! `LoadBalanceZkConf`, whose `WatchConf()` watches a path's children and
//! calls `UpdateConf()` on every change.
//!
//! Each child of the path is one real server, named by its address
//! (`127.0.0.1:2003`, as the article names them) and holding its upstream
//! spec in the article's `GetConf()` format, `http://127.0.0.1:2003/base,10`
//! (`lab realserver --register` writes it). The ZooKeeper session, watches
//! and reconnection live in [`crate::zk`]; this file only turns the members
//! into [`Node`]s and hands them on.

use std::collections::BTreeMap;

use tokio::sync::watch;

use crate::balance::{Node, parse_upstream_spec};
use crate::zk::ZkUrl;

/// Watches `url`'s children and publishes them as upstreams. Fails when
/// ZooKeeper cannot be reached at all; once running, a lost connection keeps
/// the last list until ZooKeeper answers again.
pub async fn discover(url: &ZkUrl) -> anyhow::Result<watch::Receiver<Vec<Node>>> {
    let children = crate::zk::watch_children(url).await?;
    let mut members = children.subscribe();
    let first = nodes_of(&members.borrow_and_update());
    tracing::info!(
        "discovered {} upstream(s) under {url}{}",
        first.len(),
        if first.is_empty() {
            format!(" — start one with `lab realserver --register {url}`")
        } else {
            String::new()
        }
    );
    let (tx, rx) = watch::channel(first);
    tokio::spawn(async move {
        // `children` lives in this task: dropping it ends the watch.
        let _children = children;
        loop {
            tokio::select! {
                changed = members.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let nodes = nodes_of(&members.borrow_and_update());
                    tx.send_replace(nodes);
                }
                // The proxy is gone: stop watching.
                () = tx.closed() => break,
            }
        }
    });
    Ok(rx)
}

/// The upstreams the members name, in the members' order; a member whose
/// data is not an upstream spec is skipped with a warning.
fn nodes_of(members: &BTreeMap<String, String>) -> Vec<Node> {
    members
        .iter()
        .filter_map(|(name, data)| match parse_upstream_spec(data) {
            Ok(node) => Some(node),
            Err(why) => {
                tracing::warn!(
                    "ignoring ZooKeeper node {name}: its data is not an upstream ({why})"
                );
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_become_nodes_and_bad_data_is_skipped() {
        let members = BTreeMap::from([
            (
                "127.0.0.1:2003".to_string(),
                "http://127.0.0.1:2003/base,10".to_string(),
            ),
            (
                "127.0.0.1:2004".to_string(),
                "http://127.0.0.1:2004/base,20".to_string(),
            ),
            ("junk".to_string(), "not a url".to_string()),
            ("empty".to_string(), String::new()),
        ]);
        let nodes = nodes_of(&members);
        let specs: Vec<String> = nodes
            .iter()
            .map(|n| format!("{},{}", n.upstream, n.weight))
            .collect();
        assert_eq!(
            specs,
            [
                "http://127.0.0.1:2003/base,10",
                "http://127.0.0.1:2004/base,20"
            ]
        );
    }
}
