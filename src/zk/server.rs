//! A standalone ZooKeeper for the lab (`lab zk up`, and the tests), started
//! from Debian's `zookeeper` package in the foreground.
//!
//! The package's `zkServer.sh start-foreground CFG` execs Java on
//! `org.apache.zookeeper.server.quorum.QuorumPeerMain CFG`. Debian's
//! `zkEnv.sh` (a link to `/etc/zookeeper/conf/environment`) fixes
//! `ZOOCFGDIR`, `ZOO_LOG_DIR` and `CLASSPATH`, so they cannot be moved by
//! the environment; what can be:
//!
//! - the config: a `zoo.cfg` given as the script's argument (a path outside
//!   `ZOOCFGDIR` is used as is). Ours lives in a temp dir with the data
//!   directory, and the temp dir is removed when the server stops.
//! - the JVM's flags: `SERVER_JVMFLAGS` comes after the script's `-cp`, and
//!   Java keeps the last `-cp`. Debian's class path has no SLF4J binding, so
//!   ZooKeeper would log nothing at all; ours adds log4j and a
//!   `log4j.properties` that logs WARN and up (and session expiry) to the
//!   console, which this module reads: the lines go to the lab's debug log,
//!   and the last ones into the error when ZooKeeper dies.
//!
//! The config is the smallest that serves the lab: loopback only, the
//! AdminServer off (its port 8080 is the lab's forward proxy), and
//! `tickTime=1000` so that the registrations' 3 s sessions are allowed
//! (ZooKeeper's `minSessionTimeout` is 2 × `tickTime`).

use std::collections::VecDeque;
use std::future::Future;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tempfile::TempDir;
use tokio::sync::{oneshot, watch};
use zookeeper_client as zkc;

use super::{DEFAULT_PORT, SESSION_TIMEOUT, ZkUrl, ZkUrlError};

/// The package's start script.
pub const ZK_SERVER_SCRIPT: &str = "/usr/share/zookeeper/bin/zkServer.sh";

/// What to do when the package is missing.
pub const NOT_INSTALLED: &str = "ZooKeeper is not installed: sudo apt-get install zookeeper \
     (Debian's package provides /usr/share/zookeeper/bin/zkServer.sh)";

/// The Java the package's `zkEnv.sh` runs.
const JAVA: &str = "/usr/bin/java";

/// ZooKeeper's jar; its manifest names the libraries it needs.
const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";

/// An SLF4J binding and log4j, from Debian's libslf4j-java and liblog4j1.2-java
/// (both dependencies of the package).
const LOG_JARS: [&str; 2] = [
    "/usr/share/java/slf4j-log4j12.jar",
    "/usr/share/java/log4j-1.2.jar",
];

/// How long ZooKeeper may take to answer after it is started (a JVM start
/// is 1–2 s on a laptop; a busy CI machine is slower).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long `stop` waits after SIGTERM before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How many of ZooKeeper's last output lines are kept for error messages.
const TAIL_LINES: usize = 40;

/// Whether Debian's `zookeeper` package is installed.
pub fn is_installed() -> bool {
    Path::new(ZK_SERVER_SCRIPT).is_file()
}

/// A ZooKeeper server process of this lab; stopped (and its temp dir
/// removed) by [`ZooKeeperServer::stop`], or killed when dropped.
#[derive(Debug)]
pub struct ZooKeeperServer {
    addr: SocketAddr,
    /// The process (and process group) id: the script execs Java in place.
    pid: u32,
    dir: Option<TempDir>,
    /// How the process ended (`exit status: 1`), once it has.
    exit: watch::Receiver<Option<String>>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl ZooKeeperServer {
    /// Starts ZooKeeper listening on `addr` and waits until it answers.
    ///
    /// Port 0 means a free port, chosen here (ZooKeeper cannot report the
    /// port it bound): [`ZooKeeperServer::addr`] tells which.
    pub async fn start(addr: SocketAddr) -> anyhow::Result<ZooKeeperServer> {
        if !is_installed() {
            anyhow::bail!(NOT_INSTALLED);
        }
        if !Path::new(JAVA).exists() {
            anyhow::bail!(
                "Java is not installed ({JAVA} is missing), and ZooKeeper runs on it: \
                 sudo apt-get install default-jre-headless"
            );
        }
        let addr = choose_port(addr)?;
        let dir = temp_dir()?;
        let config = write_config(dir.path(), addr)?;

        let mut command = Command::new(ZK_SERVER_SCRIPT);
        command
            .arg("start-foreground")
            .arg(&config)
            // Honoured by upstream's zkEnv.sh; Debian's fixes its own and the argument wins.
            .env("ZOOCFGDIR", dir.path())
            .env("ZOO_LOG_DIR", dir.path())
            .env("JMXDISABLE", "true")
            .env("SERVER_JVMFLAGS", jvm_flags(dir.path()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        isolate(&mut command);
        let (pid, stdout, stderr, exit) = spawn(command).await?;

        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        for stream in [
            stdout.map(|s| Box::new(s) as Box<dyn Read + Send>),
            stderr.map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tail = tail.clone();
            std::thread::Builder::new()
                .name("zookeeper-output".into())
                .spawn(move || read_output(stream, tail))
                .context("cannot start a thread to read ZooKeeper's output")?;
        }

        let server = ZooKeeperServer {
            addr,
            pid,
            dir: Some(dir),
            exit,
            tail,
        };
        tracing::debug!(
            "ZooKeeper (pid {pid}) starting on {addr}, config {}",
            config.display()
        );
        server.wait_ready().await?;
        Ok(server)
    }

    /// The client address, e.g. `127.0.0.1:2181`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `zk://ADDR/PATH` for this server.
    pub fn url(&self, path: &str) -> Result<ZkUrl, ZkUrlError> {
        format!("zk://{}{path}", self.addr).parse()
    }

    /// The temp dir holding `zoo.cfg`, `log4j.properties` and `data/`.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map_or(Path::new(""), |dir| dir.path())
    }

    /// The Java process's id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Resolves when the process has ended, with how (`exit status: 1`).
    pub fn exited(&self) -> impl Future<Output = String> + Send + 'static {
        let mut exit = self.exit.clone();
        async move {
            let how = exit
                .wait_for(Option::is_some)
                .await
                .map(|how| how.clone().unwrap_or_default());
            match how {
                Ok(how) => how,
                // The waiting thread is gone without a word: it cannot be
                // told apart from running, so wait forever.
                Err(_) => std::future::pending().await,
            }
        }
    }

    /// ZooKeeper's last output lines, oldest first.
    pub fn output_tail(&self) -> String {
        let tail = self.tail.lock().map(|t| t.clone()).unwrap_or_default();
        let lines: Vec<String> = tail.into_iter().collect();
        if lines.is_empty() {
            "(no output)".to_string()
        } else {
            lines.join("\n")
        }
    }

    /// Stops ZooKeeper (SIGTERM, then SIGKILL after a grace period), waits
    /// for it, and removes its temp dir.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if self.exit.borrow().is_none() {
            self.signal(libc::SIGTERM);
            if tokio::time::timeout(STOP_GRACE, self.exited())
                .await
                .is_err()
            {
                tracing::warn!(
                    "ZooKeeper did not stop within {STOP_GRACE:?} of SIGTERM; killing it"
                );
                self.signal(libc::SIGKILL);
                tokio::time::timeout(Duration::from_secs(5), self.exited())
                    .await
                    .map_err(|_| {
                        anyhow::anyhow!("ZooKeeper (pid {}) survived SIGKILL", self.pid)
                    })?;
            }
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_path_buf();
            dir.close().with_context(|| {
                format!("cannot remove ZooKeeper's temp dir {}", path.display())
            })?;
        }
        Ok(())
    }

    /// Signals the process group (the JVM, and anything it started).
    fn signal(&self, signal: libc::c_int) {
        let Ok(pid) = libc::pid_t::try_from(self.pid) else {
            return;
        };
        // SAFETY: kill(2) has no memory effects; the group is the child's own
        // (process_group(0)), which exists while the child is not reaped.
        unsafe {
            libc::kill(-pid, signal);
        }
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(how) = self.exit.borrow().clone() {
                return Err(self.died_starting(&how));
            }
            let hosts = self.addr.to_string();
            let attempt = zkc::Client::connector()
                .with_session_timeout(SESSION_TIMEOUT)
                .with_fail_eagerly()
                .connect(&hosts);
            if let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(2), attempt).await {
                drop(client);
                tracing::debug!("ZooKeeper answered after {:?}", started.elapsed());
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                anyhow::bail!(
                    "ZooKeeper did not answer on {} within {START_TIMEOUT:?}; its last output:\n{}",
                    self.addr,
                    self.output_tail()
                );
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = self.exited() => {}
            }
        }
    }

    fn died_starting(&self, how: &str) -> anyhow::Error {
        let tail = self.output_tail();
        if tail.contains("Address already in use") {
            return anyhow::anyhow!("{}", port_in_use(self.addr));
        }
        anyhow::anyhow!("ZooKeeper stopped while starting ({how}); its last output:\n{tail}")
    }
}

impl Drop for ZooKeeperServer {
    fn drop(&mut self) {
        if self.exit.borrow().is_some() {
            return;
        }
        self.signal(libc::SIGKILL);
        // Wait (briefly) so the temp dir is removed after the JVM is gone.
        let deadline = Instant::now() + Duration::from_secs(2);
        while self.exit.borrow().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// `lab zk up`: ZooKeeper in the foreground until `shutdown`.
pub async fn up(
    listen: SocketAddr,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let mut shutdown = std::pin::pin!(shutdown);
    if !is_installed() {
        anyhow::bail!(NOT_INSTALLED);
    }
    tracing::info!(
        "starting ZooKeeper on {listen} from Debian's zookeeper package ({ZK_SERVER_SCRIPT})"
    );
    let server = tokio::select! {
        server = ZooKeeperServer::start(listen) => server?,
        _ = &mut shutdown => {
            tracing::info!("stopped before ZooKeeper was ready");
            return Ok(());
        }
    };
    let addr = server.addr();
    let dir = server.dir().display().to_string();
    tracing::info!("ZooKeeper's config and data: {dir} (removed when it stops)");
    tracing::info!("ZooKeeper ready at zk://{addr}");
    let url = format!("zk://{addr}/lab/realserver");
    tracing::info!(
        "try: lab realserver --register {url}   then: lab zk ls {url}   (Ctrl-C stops ZooKeeper)"
    );
    let died = tokio::select! {
        _ = &mut shutdown => None,
        how = server.exited() => Some(how),
    };
    if let Some(how) = died {
        let tail = server.output_tail();
        drop(server);
        anyhow::bail!("ZooKeeper exited by itself ({how}); its last output:\n{tail}");
    }
    tracing::info!("stopping ZooKeeper");
    server.stop().await?;
    tracing::info!("ZooKeeper stopped; removed {dir}");
    Ok(())
}

/// The port to give ZooKeeper: `addr`'s, checked free, or a free one for port 0.
fn choose_port(addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    match std::net::TcpListener::bind(addr) {
        // Closed at once: ZooKeeper binds it next (both use SO_REUSEADDR).
        Ok(listener) => listener
            .local_addr()
            .with_context(|| format!("cannot read the port bound on {addr}")),
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => {
            Err(anyhow::anyhow!("{}", port_in_use(addr)))
        }
        Err(err) if err.kind() == std::io::ErrorKind::AddrNotAvailable => Err(anyhow::anyhow!(
            "{} is not an address of this machine; listen on loopback instead: --listen 127.0.0.1:{}",
            addr.ip(),
            addr.port()
        )),
        Err(err) => Err(err).with_context(|| format!("cannot listen on {addr}")),
    }
}

fn port_in_use(addr: SocketAddr) -> String {
    let port = addr.port();
    let next = SocketAddr::new(addr.ip(), port.checked_add(1).unwrap_or(DEFAULT_PORT + 1));
    format!(
        "port {port} is already in use ({addr}): perhaps another ZooKeeper (a `lab zk up` in \
         another terminal, or the system's zookeeper service) is listening there. Stop it (see \
         `ss -ltnp 'sport = :{port}'`), or choose another port: --listen {next}"
    )
}

/// A fresh temp dir; under /tmp when TMPDIR has spaces (the script splits
/// SERVER_JVMFLAGS, which names files in it, on whitespace).
fn temp_dir() -> anyhow::Result<TempDir> {
    let base = std::env::temp_dir();
    let base = if base.to_string_lossy().contains(char::is_whitespace) {
        PathBuf::from("/tmp")
    } else {
        base
    };
    tempfile::Builder::new()
        .prefix("lab-zk-")
        .tempdir_in(&base)
        .with_context(|| {
            format!(
                "cannot create a temp dir for ZooKeeper in {}",
                base.display()
            )
        })
}

/// Writes `zoo.cfg` and `log4j.properties` into `dir`; returns the config's path.
fn write_config(dir: &Path, addr: SocketAddr) -> anyhow::Result<PathBuf> {
    let data = dir.join("data");
    std::fs::create_dir(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let ip = match addr.ip() {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => ip.to_string(),
    };
    let zoo_cfg = format!(
        "# Written by `lab zk up`: a standalone ZooKeeper for the lab, removed when it stops.\n\
         # tickTime is ZooKeeper's heartbeat unit; sessions may last from 2 to 20 ticks\n\
         # (minSessionTimeout, maxSessionTimeout), so the lab's 3 s sessions are allowed.\n\
         tickTime=1000\n\
         dataDir={data}\n\
         clientPortAddress={ip}\n\
         clientPort={port}\n\
         # The AdminServer would take port 8080, the lab's forward proxy.\n\
         admin.enableServer=false\n\
         # Four-letter words a learner may try: echo ruok | nc {ip} {port}\n\
         4lw.commands.whitelist=ruok,srvr,stat,cons,mntr\n\
         # One server, no snapshots to keep.\n\
         autopurge.purgeInterval=0\n",
        data = data.display(),
        port = addr.port(),
    );
    let log4j = "\
# Written by `lab zk up`: ZooKeeper's log to the console (lab reads it), WARN and up,
# and the session expiries that remove ephemeral nodes.
log4j.rootLogger=WARN, CONSOLE
log4j.logger.org.apache.zookeeper.server.ZooKeeperServer=INFO
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.Target=System.err
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p %c{1}: %m%n
";
    let config = dir.join("zoo.cfg");
    std::fs::write(&config, zoo_cfg)
        .with_context(|| format!("cannot write {}", config.display()))?;
    let log_config = dir.join("log4j.properties");
    std::fs::write(&log_config, log4j)
        .with_context(|| format!("cannot write {}", log_config.display()))?;
    Ok(config)
}

/// The JVM flags: a small heap, a quick start, and a class path with logging.
fn jvm_flags(dir: &Path) -> String {
    let mut class_path = vec![dir.display().to_string(), ZOOKEEPER_JAR.to_string()];
    class_path.extend(
        LOG_JARS
            .iter()
            .filter(|jar| Path::new(jar).is_file())
            .map(|jar| jar.to_string()),
    );
    format!(
        "-Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
         -Dlog4j.configuration=file:{}/log4j.properties -cp {}",
        dir.display(),
        class_path.join(":")
    )
}

/// Puts the child in its own process group (so a Ctrl-C at the terminal
/// reaches `lab`, which stops ZooKeeper in order) and, on Linux, has the
/// kernel kill it if `lab` dies without stopping it.
fn isolate(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
    #[cfg(target_os = "linux")]
    {
        let parent = std::process::id();
        // SAFETY: only async-signal-safe calls (prctl, getppid) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                // lab died between fork and prctl: do not outlive it.
                if u32::try_from(libc::getppid()).ok() != Some(parent) {
                    return Err(std::io::Error::other("lab exited while starting ZooKeeper"));
                }
                Ok(())
            });
        }
    }
}

type Spawned = (
    u32,
    Option<std::process::ChildStdout>,
    Option<std::process::ChildStderr>,
    watch::Receiver<Option<String>>,
);

/// Spawns the child from a thread that then waits for it: the thread lives
/// as long as the child, which the parent-death signal needs (it follows
/// the thread that forked), and the exit is published on a watch.
async fn spawn(mut command: Command) -> anyhow::Result<Spawned> {
    let (spawned_tx, spawned_rx) = oneshot::channel();
    let (exit_tx, exit_rx) = watch::channel(None);
    std::thread::Builder::new()
        .name("zookeeper".into())
        .spawn(move || {
            let mut child = match command.spawn() {
                Ok(child) => child,
                Err(err) => {
                    let _ = spawned_tx.send(Err(err));
                    return;
                }
            };
            let stdout = child.stdout.take();
            let stderr = child.stderr.take();
            let _ = spawned_tx.send(Ok((child.id(), stdout, stderr)));
            let how = match child.wait() {
                Ok(status) => status.to_string(),
                Err(err) => format!("cannot wait for it: {err}"),
            };
            exit_tx.send_replace(Some(how));
        })
        .context("cannot start a thread to run ZooKeeper")?;
    let (pid, stdout, stderr) = spawned_rx
        .await
        .context("the thread starting ZooKeeper ended")?
        .with_context(|| format!("cannot run {ZK_SERVER_SCRIPT}"))?;
    Ok((pid, stdout, stderr, exit_rx))
}

/// Reads ZooKeeper's output line by line into the tail, and into the log:
/// session expiry (an ephemeral node's end) at info, errors at warn, the
/// rest at debug (`lab -v`).
fn read_output(stream: Box<dyn Read + Send>, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut reader = BufReader::new(stream);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
        if line.is_empty() {
            continue;
        }
        if line.contains("Expiring session") {
            tracing::info!("ZooKeeper: {}", without_timestamp(&line));
        } else if line.contains(" ERROR ") {
            tracing::warn!("ZooKeeper: {line}");
        } else {
            tracing::debug!("ZooKeeper: {line}");
        }
        if let Ok(mut tail) = tail.lock() {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
}

/// `2026-01-01 10:00:00,000 INFO  SessionTrackerImpl: Expiring…` → `Expiring…`.
fn without_timestamp(line: &str) -> &str {
    line.split_once(": ").map_or(line, |(_, message)| message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_loopback_with_short_ticks_and_no_admin_server() {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = "127.0.0.1:2999".parse().unwrap();
        let config = write_config(dir.path(), addr).unwrap();
        let text = std::fs::read_to_string(config).unwrap();
        for line in [
            "tickTime=1000",
            "clientPortAddress=127.0.0.1",
            "clientPort=2999",
            "admin.enableServer=false",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        assert!(dir.path().join("data").is_dir());
        assert!(dir.path().join("log4j.properties").is_file());
    }

    #[test]
    fn port_in_use_suggests_the_next_port() {
        let message = port_in_use("127.0.0.1:2181".parse().unwrap());
        assert!(message.contains("port 2181 is already in use"), "{message}");
        assert!(message.contains("--listen 127.0.0.1:2182"), "{message}");
    }

    #[test]
    fn session_expiry_lines_lose_their_timestamp() {
        assert_eq!(
            without_timestamp(
                "2026-01-01 10:00:00,000 INFO  SessionTrackerImpl: Expiring session 0x1, timeout of 3000ms exceeded"
            ),
            "Expiring session 0x1, timeout of 3000ms exceeded"
        );
    }
}
