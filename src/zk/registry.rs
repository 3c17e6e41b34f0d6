//! Registering a server in ZooKeeper (服务注册): the other half of the
//! article's `LoadBalanceZkConf`, done by `lab realserver --register`.
//!
//! A server is an *ephemeral* node `PATH/NAME` whose data is its upstream
//! spec. Ephemeral means the node lives exactly as long as the session that
//! created it: close the session and it is gone at once; kill the process
//! and ZooKeeper removes it when the session expires, [`SESSION_TIMEOUT`]
//! later. That is the whole failure detector of ZooKeeper discovery, so the
//! timeout is short here.
//!
//! A background task keeps the registration true: the client pings within
//! the session, and if the session is lost anyway (ZooKeeper restarted, the
//! machine slept), the task opens a new session and creates the node again.

use std::time::Duration;

use anyhow::Context;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use zookeeper_client as zkc;

use super::ZkUrl;

/// The session timeout the lab asks for: a killed server's node vanishes
/// about this long after its last ping.
///
/// ZooKeeper grants a timeout between `minSessionTimeout` (default 2 ×
/// `tickTime`) and `maxSessionTimeout` (20 × `tickTime`). `lab zk up` runs
/// with `tickTime=1000`, so 3 s is granted as asked; a stock ZooKeeper
/// (`tickTime=2000`) raises it to 4 s. Shorter would make a proxy notice a
/// dead server sooner, but a busy laptop (a GC pause, a suspended terminal)
/// would then lose registrations that are still alive.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(3);

/// How long [`Registration::deregister`] waits for ZooKeeper before giving up.
const DEREGISTER_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest pause between two attempts to reach ZooKeeper again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A live registration: the ephemeral node and the task that keeps it.
///
/// Dropping it without [`Registration::deregister`] stops the task and
/// closes the session in the background (the node then goes too).
#[derive(Debug)]
pub struct Registration {
    url: ZkUrl,
    node: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

/// Creates the ephemeral node `PATH/NAME` (the parents as persistent nodes
/// when missing) holding `data`, and keeps it there until
/// [`Registration::deregister`].
///
/// A node of that name left by a process whose session has not expired yet
/// is replaced: a name is an address, and only one server can listen there.
pub async fn register(url: &ZkUrl, name: &str, data: &str) -> anyhow::Result<Registration> {
    check_name(name)?;
    let node = url.child_path(name);
    let client = super::connect(url, SESSION_TIMEOUT).await?;
    create_node(&client, url.path(), &node, data)
        .await
        .with_context(|| {
            format!(
                "cannot create {node} in ZooKeeper at {}",
                url.hosts_display()
            )
        })?;
    tracing::debug!("created the ephemeral node {node} = {data:?}");
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(keep(
        url.clone(),
        client,
        node.clone(),
        data.to_string(),
        stopped,
    ));
    Ok(Registration {
        url: url.clone(),
        node,
        stop: Some(stop),
        task: Some(task),
    })
}

impl Registration {
    /// The node's full path, `PATH/NAME`.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Where it is registered.
    pub fn url(&self) -> &ZkUrl {
        &self.url
    }

    /// Deletes the node and closes the session; proxies watching the path
    /// see the server leave at once.
    pub async fn deregister(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let Some(task) = self.task.take() else {
            return Ok(());
        };
        match tokio::time::timeout(DEREGISTER_TIMEOUT, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(anyhow::anyhow!(
                "the registration task of {} failed: {join}",
                self.node
            )),
            Err(_) => Err(anyhow::anyhow!(
                "ZooKeeper at {} did not confirm the removal of {} within {DEREGISTER_TIMEOUT:?}; \
                 it goes when the session expires",
                self.url.hosts_display(),
                self.node
            )),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // The client goes with the task, and with it the session.
            task.abort();
        }
    }
}

/// A child name is one path segment.
pub fn check_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        anyhow::bail!(
            "{name:?} cannot name a ZooKeeper node; use one segment without '/', e.g. 127.0.0.1:2003"
        );
    }
    // ZooKeeper also refuses U+D800–U+F8FF and U+FFF0–U+FFFF (PathUtils).
    let refused = |c: char| matches!(c, '\u{e000}'..='\u{f8ff}' | '\u{fff0}'..='\u{ffff}');
    if name.chars().any(|c| c.is_control() || refused(c)) {
        anyhow::bail!(
            "{name:?} cannot name a ZooKeeper node: it has a control character or one ZooKeeper refuses"
        );
    }
    Ok(())
}

/// `mkdir -p` of the parent, then the ephemeral node, replacing a stale one.
async fn create_node(
    client: &zkc::Client,
    parent: &str,
    node: &str,
    data: &str,
) -> Result<(), zkc::Error> {
    let persistent = zkc::CreateMode::Persistent.with_acls(zkc::Acls::anyone_all());
    let ephemeral = zkc::CreateMode::Ephemeral.with_acls(zkc::Acls::anyone_all());
    client.mkdir(parent, &persistent).await?;
    // Three rounds cover a parent removed or a stale node replaced in between.
    let mut last = zkc::Error::NodeExists;
    for _ in 0..3 {
        match client.create(node, data.as_bytes(), &ephemeral).await {
            Ok(_) => return Ok(()),
            Err(zkc::Error::NodeExists) => {
                tracing::info!(
                    "{node} is already registered, probably by a process that stopped less than a \
                     session timeout ago; replacing it"
                );
                match client.delete(node, None).await {
                    Ok(()) | Err(zkc::Error::NoNode) => {}
                    Err(err) => return Err(err),
                }
                last = zkc::Error::NodeExists;
            }
            Err(zkc::Error::NoNode) => {
                client.mkdir(parent, &persistent).await?;
                last = zkc::Error::NoNode;
            }
            Err(err) => return Err(err),
        }
    }
    Err(last)
}

/// The background task: follows the session, registers again in a new one
/// when it is lost, and on `stop` deletes the node and closes the session.
async fn keep(
    url: ZkUrl,
    mut client: zkc::Client,
    node: String,
    data: String,
    mut stop: oneshot::Receiver<()>,
) -> anyhow::Result<()> {
    let mut state = client.state_watcher();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            now = state.changed() => match now {
                zkc::SessionState::Disconnected => tracing::warn!(
                    "lost the connection to ZooKeeper at {}; {node} stays registered while the \
                     session lives ({:?}), the client is reconnecting",
                    url.hosts_display(),
                    client.session_timeout()
                ),
                zkc::SessionState::SyncConnected | zkc::SessionState::ConnectedReadOnly => {
                    tracing::info!(
                        "reconnected to ZooKeeper at {}; {node} is still registered",
                        url.hosts_display()
                    )
                }
                ended => {
                    tracing::warn!(
                        "the ZooKeeper session ended ({}), and with it {node}; registering it again",
                        ended.to_string().to_lowercase()
                    );
                    match register_again(&url, &node, &data, &mut stop).await {
                        Some(new) => {
                            client = new;
                            state = client.state_watcher();
                            tracing::info!("registered {node} again = {data}");
                        }
                        // Stopped while ZooKeeper was away: nothing is registered.
                        None => return Ok(()),
                    }
                }
            },
        }
    }
    deregister(&url, client, &node).await
}

/// A new session and the node in it, retried with backoff until it works or
/// `stop` fires (then `None`).
async fn register_again(
    url: &ZkUrl,
    node: &str,
    data: &str,
    stop: &mut oneshot::Receiver<()>,
) -> Option<zkc::Client> {
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0u32;
    loop {
        let attempt = async {
            let client = super::connect(url, SESSION_TIMEOUT).await?;
            create_node(&client, url.path(), node, data)
                .await
                .with_context(|| format!("cannot create {node}"))?;
            anyhow::Ok(client)
        };
        tokio::select! {
            _ = &mut *stop => return None,
            result = attempt => match result {
                Ok(client) => return Some(client),
                Err(err) => {
                    failures += 1;
                    // Once loudly, then quietly: a ZooKeeper that is down stays down a while.
                    if failures == 1 {
                        tracing::warn!("{err:#}; retrying every few seconds");
                    } else {
                        tracing::debug!("attempt {failures} to register {node} again: {err:#}");
                    }
                }
            },
        }
        tokio::select! {
            _ = &mut *stop => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Deletes the node, then closes the session and waits until it is closed.
async fn deregister(url: &ZkUrl, client: zkc::Client, node: &str) -> anyhow::Result<()> {
    let deleted = match client.delete(node, None).await {
        Ok(()) | Err(zkc::Error::NoNode) => Ok(()),
        // An ended session has taken its ephemeral nodes with it.
        Err(err) if super::is_session_over(&err) => {
            tracing::debug!("{node}: the session had ended ({err}), and the node with it");
            Ok(())
        }
        Err(err) => Err(anyhow::anyhow!(
            "cannot delete {node} in ZooKeeper at {} ({err}); it goes when the session expires",
            url.hosts_display()
        )),
    };
    // Dropping the last handle closes the session (which would remove the
    // node too); the state turns Closed once ZooKeeper has been told.
    let mut state = client.state_watcher();
    drop(client);
    let closed = async {
        while !state.state().is_terminated() {
            state.changed().await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(2), closed)
        .await
        .is_err()
    {
        tracing::debug!("the ZooKeeper session did not report closed within 2s");
    }
    deleted
}
