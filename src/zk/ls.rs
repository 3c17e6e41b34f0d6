//! `lab zk ls zk://HOST:PORT/PATH`: the children of a path and their data,
//! as a table, so a learner can see who is registered (what the proxy's
//! discovery sees) without a ZooKeeper shell.

use std::process::ExitCode;

use anyhow::Context;
use comfy_table::Cell;
use zookeeper_client as zkc;

use super::{SESSION_TIMEOUT, ZkUrl};
use crate::output;

/// One child as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// The data as text (invalid UTF-8 replaced).
    pub data: String,
    /// The session that owns it, when it is ephemeral (a registration).
    pub ephemeral_owner: Option<i64>,
}

/// Reads the children of `url`'s path with their data, sorted by name;
/// `None` when the path does not exist.
pub async fn list(url: &ZkUrl) -> anyhow::Result<Option<Vec<Entry>>> {
    let client = super::connect(url, SESSION_TIMEOUT).await?;
    let path = url.path();
    let context = || format!("cannot list {path} in ZooKeeper at {}", url.hosts_display());
    let mut children = match client.list_children(path).await {
        Ok(children) => children,
        Err(zkc::Error::NoNode) => return Ok(None),
        Err(err) => return Err(err).with_context(context),
    };
    children.sort();
    let paths: Vec<String> = children.iter().map(|c| url.child_path(c)).collect();
    let reads = futures_util::future::join_all(paths.iter().map(|p| client.get_data(p))).await;
    let mut entries = Vec::with_capacity(children.len());
    for (name, read) in children.into_iter().zip(reads) {
        match read {
            Ok((data, stat)) => entries.push(Entry {
                name,
                data: String::from_utf8_lossy(&data).into_owned(),
                ephemeral_owner: (stat.ephemeral_owner != 0).then_some(stat.ephemeral_owner),
            }),
            // Left between the listing and the read.
            Err(zkc::Error::NoNode) => {}
            Err(err) => return Err(err).with_context(context),
        }
    }
    Ok(Some(entries))
}

/// `lab zk ls URL`: prints the table (or says why there is none).
pub async fn run(url: &ZkUrl) -> anyhow::Result<ExitCode> {
    let Some(entries) = list(url).await? else {
        println!(
            "{url}: no such node yet; nothing has registered there. \
             Register a server with: lab realserver --register {url}"
        );
        return Ok(ExitCode::SUCCESS);
    };
    let count = match entries.len() {
        1 => "1 child".to_string(),
        n => format!("{n} children"),
    };
    println!("{}", output::heading(&format!("{url}: {count}")));
    if entries.is_empty() {
        println!("(none: register a server with lab realserver --register {url})");
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = output::table(&["child", "data", "kind"]);
    for entry in &entries {
        let kind = match entry.ephemeral_owner {
            Some(session) => format!("ephemeral (session {session:#x})"),
            None => "persistent".to_string(),
        };
        table.add_row(vec![
            Cell::new(&entry.name),
            Cell::new(&entry.data),
            Cell::new(kind),
        ]);
    }
    println!("{table}");
    Ok(ExitCode::SUCCESS)
}
