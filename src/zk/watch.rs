//! Watching a path's children (the article's `zkConn.ChildrenW` loop in
//! `LoadBalanceZkConf`): what a proxy follows to learn its upstreams.
//!
//! ZooKeeper watches are one-shot: a read can leave a watch behind, the
//! watch fires once at the next change, and the client must read again (and
//! watch again) to see the new state. So the loop here is *read everything
//! with watches → publish → wait for any watch → read again*:
//!
//! - a child watch on `PATH` (a server registered or left),
//! - a data watch on every child (a server changed its weight),
//! - while `PATH` does not exist yet, an exists-watch on it: a proxy may
//!   start before any server registers, and sees an empty set until then.
//!
//! The result is a `tokio::sync::watch` of [`Members`], published only when
//! it differs from the last one. When the connection is lost the last set
//! stays published (the servers are most likely still there); the client
//! reconnects, and the set is read again. When the session is lost, a new
//! one is opened with backoff — and for a grace period after it
//! ([`GRACE`]) only additions are published: the servers' sessions ended
//! too, and they need a moment to register again in the new one. Without
//! the grace a proxy would see every server leave and come back, and answer
//! 503 in between.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zookeeper_client as zkc;

use super::{SESSION_TIMEOUT, ZkUrl, is_session_over};

/// The children of the watched path: child name (`127.0.0.1:2003`) → its
/// data as text (`http://127.0.0.1:2003/base,1`; invalid UTF-8 replaced).
pub type Members = BTreeMap<String, String>;

/// The longest pause between two attempts to reach ZooKeeper again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// After a new session, how long removals wait: long enough for a server
/// whose session ended with ours to notice (its session timeout) and
/// register again (its next retry).
pub const GRACE: Duration = Duration::from_secs(SESSION_TIMEOUT.as_secs() + MAX_BACKOFF.as_secs());

/// A running watch of a path's children; the background task stops when
/// this is dropped (or [`ChildrenWatch::stop`]ped), after which receivers
/// see the channel closed.
#[derive(Debug)]
pub struct ChildrenWatch {
    url: ZkUrl,
    members: watch::Receiver<Members>,
    task: JoinHandle<()>,
}

/// Starts watching the children of `url`'s path: the returned watch already
/// holds the current set. Fails when ZooKeeper cannot be reached at all.
pub async fn watch_children(url: &ZkUrl) -> anyhow::Result<ChildrenWatch> {
    let client = super::connect(url, SESSION_TIMEOUT).await?;
    let snapshot = read(&client, url.path()).await.with_context(|| {
        format!(
            "cannot read the children of {} in ZooKeeper at {}",
            url.path(),
            url.hosts_display()
        )
    })?;
    tracing::debug!(
        "watching {url}: {} member(s) {:?}",
        snapshot.members.len(),
        snapshot.members.keys().collect::<Vec<_>>()
    );
    let (publish, members) = watch::channel(snapshot.members);
    let task = tokio::spawn(follow(url.clone(), client, snapshot.watches, publish));
    Ok(ChildrenWatch {
        url: url.clone(),
        members,
        task,
    })
}

impl ChildrenWatch {
    /// What is watched.
    pub fn url(&self) -> &ZkUrl {
        &self.url
    }

    /// The set as last published.
    pub fn current(&self) -> Members {
        self.members.borrow().clone()
    }

    /// The receiver, to `changed().await` or `wait_for(…)` on.
    pub fn receiver(&mut self) -> &mut watch::Receiver<Members> {
        &mut self.members
    }

    /// Another receiver of the same set (valid while this watch runs).
    pub fn subscribe(&self) -> watch::Receiver<Members> {
        self.members.clone()
    }

    /// Stops the background task and closes its session.
    pub fn stop(self) {
        // Drop does it.
    }
}

impl Drop for ChildrenWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One read of the set, with the watches it left behind.
struct Snapshot {
    members: Members,
    watches: Vec<zkc::OneshotWatcher>,
}

/// Reads the children and their data, leaving a watch on each (or an
/// exists-watch on the path while it does not exist).
async fn read(client: &zkc::Client, path: &str) -> Result<Snapshot, zkc::Error> {
    loop {
        let (children, child_watch) = match client.list_and_watch_children(path).await {
            Ok(found) => found,
            Err(zkc::Error::NoNode) => {
                let (stat, exists_watch) = client.check_and_watch_stat(path).await?;
                if stat.is_some() {
                    // Created between the two reads: read it as it is now.
                    continue;
                }
                return Ok(Snapshot {
                    members: Members::new(),
                    watches: vec![exists_watch],
                });
            }
            Err(err) => return Err(err),
        };
        // All requests are sent before any answer is awaited: one round trip.
        let paths: Vec<String> = children.iter().map(|c| format!("{path}/{c}")).collect();
        let reads =
            futures_util::future::join_all(paths.iter().map(|p| client.get_and_watch_data(p)))
                .await;
        let mut members = Members::new();
        let mut watches = vec![child_watch];
        for (child, read) in children.into_iter().zip(reads) {
            match read {
                Ok((data, _stat, data_watch)) => {
                    members.insert(child, String::from_utf8_lossy(&data).into_owned());
                    watches.push(data_watch);
                }
                // Gone since the listing; the child watch has fired already.
                Err(zkc::Error::NoNode) => {}
                Err(err) => return Err(err),
            }
        }
        return Ok(Snapshot { members, watches });
    }
}

/// What woke the loop up.
enum Wake {
    /// A watch fired: something changed under the path.
    Changed,
    /// The connection came back: read again in case.
    Reconnected,
    /// The session is over: a new one is needed.
    SessionOver(String),
    /// The grace after a new session ended: read, and apply removals now.
    GraceOver,
    /// Nobody listens any more.
    Unwatched,
}

/// The background task: wait for a watch, read again, publish if different.
async fn follow(
    url: ZkUrl,
    mut client: zkc::Client,
    watches: Vec<zkc::OneshotWatcher>,
    publish: watch::Sender<Members>,
) {
    let path = url.path().to_string();
    let mut pending = arm(watches);
    let mut state = client.state_watcher();
    // Set while removals wait after a new session (see GRACE).
    let mut grace: Option<tokio::time::Instant> = None;
    loop {
        let wake = tokio::select! {
            _ = publish.closed() => Wake::Unwatched,
            () = grace_over(grace) => Wake::GraceOver,
            event = pending.next() => match event {
                Some(event) if event.event_type == zkc::EventType::Session => {
                    Wake::SessionOver(event.session_state.to_string().to_lowercase())
                }
                Some(_) => Wake::Changed,
                // Not reached: every read leaves at least one watch.
                None => Wake::Changed,
            },
            now = state.changed() => match now {
                zkc::SessionState::Disconnected => {
                    tracing::warn!(
                        "lost the connection to ZooKeeper at {}; keeping the last {} member(s) of \
                         {path} while the client reconnects",
                        url.hosts_display(),
                        publish.borrow().len()
                    );
                    continue;
                }
                zkc::SessionState::SyncConnected | zkc::SessionState::ConnectedReadOnly => {
                    Wake::Reconnected
                }
                ended => Wake::SessionOver(ended.to_string().to_lowercase()),
            },
        };
        match wake {
            Wake::Unwatched => return,
            Wake::Changed => {}
            Wake::Reconnected => {
                tracing::info!("reconnected to ZooKeeper at {}", url.hosts_display())
            }
            Wake::SessionOver(why) => {
                tracing::warn!(
                    "the ZooKeeper session ended ({why}); keeping the last {} member(s) of {path} \
                     and opening a new session",
                    publish.borrow().len()
                );
                client = reconnect(&url).await;
                state = client.state_watcher();
                grace = Some(tokio::time::Instant::now() + GRACE);
            }
            Wake::GraceOver => grace = None,
        }
        // Read again until a read succeeds; the old watches stay armed meanwhile.
        let snapshot = loop {
            match read(&client, &path).await {
                Ok(snapshot) => break snapshot,
                Err(err) if is_session_over(&err) || client.state().is_terminated() => {
                    tracing::warn!(
                        "ZooKeeper session lost while reading {path} ({err}); opening a new one"
                    );
                    client = reconnect(&url).await;
                    state = client.state_watcher();
                    grace = Some(tokio::time::Instant::now() + GRACE);
                }
                Err(err) => {
                    tracing::debug!("reading {path} failed ({err}); retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        pending = arm(snapshot.watches);
        let members = match grace {
            // In the grace: what was there stays, what is new joins.
            Some(_) => {
                let mut kept = publish.borrow().clone();
                kept.extend(snapshot.members);
                kept
            }
            None => snapshot.members,
        };
        publish_if_changed(&publish, &path, members);
    }
}

/// Resolves when the grace after a new session is over; never without one.
async fn grace_over(grace: Option<tokio::time::Instant>) {
    match grace {
        Some(until) => tokio::time::sleep_until(until).await,
        None => std::future::pending().await,
    }
}

/// The watches as one stream of events, whichever fires first.
fn arm(
    watches: Vec<zkc::OneshotWatcher>,
) -> FuturesUnordered<BoxFuture<'static, zkc::WatchedEvent>> {
    watches
        .into_iter()
        .map(|watch| -> BoxFuture<'static, zkc::WatchedEvent> { Box::pin(watch.changed()) })
        .collect()
}

/// Publishes `members` unless they equal what is published; logs the difference.
fn publish_if_changed(publish: &watch::Sender<Members>, path: &str, members: Members) {
    publish.send_if_modified(|current| {
        if *current == members {
            return false;
        }
        for (name, data) in &members {
            match current.get(name) {
                None => tracing::debug!("{path}: {name} appeared = {data}"),
                Some(old) if old != data => {
                    tracing::debug!("{path}: {name} changed {old} → {data}")
                }
                Some(_) => {}
            }
        }
        for name in current.keys().filter(|name| !members.contains_key(*name)) {
            tracing::debug!("{path}: {name} went away");
        }
        *current = members;
        true
    });
}

/// A new session, retried with backoff until it works: the watch has no one
/// to report a failure to, so it keeps trying.
async fn reconnect(url: &ZkUrl) -> zkc::Client {
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0u32;
    loop {
        match super::connect(url, SESSION_TIMEOUT).await {
            Ok(client) => {
                if failures > 0 {
                    tracing::info!(
                        "reached ZooKeeper at {} again after {failures} failed attempt(s)",
                        url.hosts_display()
                    );
                }
                return client;
            }
            Err(err) => {
                failures += 1;
                // Once loudly, then quietly: a ZooKeeper that is down stays down a while.
                if failures == 1 {
                    tracing::warn!("{err:#}; retrying every few seconds");
                } else {
                    tracing::debug!("attempt {failures} to reach ZooKeeper: {err:#}");
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
