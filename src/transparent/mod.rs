//! `lab transparent`: the article's third proxy (透明代理), for real. The
//! client is not configured to use it (no `curl -x`, no proxy setting):
//! the network itself hands the client's connections to it, and it sends
//! each request on to where the client was going.
//!
//! It builds a little network of its own, on this machine's kernel (see
//! [`network`]): a client, a gateway and the real servers, each in a
//! network namespace, with an nftables rule in the gateway that intercepts
//! TCP to port 2003. Two ways to intercept, the `--mode`:
//!
//! - `redirect`: NAT. The kernel rewrites the destination to the proxy's
//!   own address; the proxy asks conntrack for the original one
//!   (`SO_ORIGINAL_DST`) and connects there *from the gateway*: the real
//!   server sees the gateway's address, and the client's only in
//!   X-Forwarded-For.
//! - `tproxy`: no rewriting. The kernel hands the packets, unchanged, to a
//!   listener with `IP_TRANSPARENT`; the accepted socket's local address is
//!   the original destination, and the proxy connects *from the client's
//!   address* (a non-local bind, again `IP_TRANSPARENT`): the real server
//!   sees the client itself as RemoteAddr.
//!
//! Either way the client never knows: it connected to 198.51.100.2:2003
//! and got 198.51.100.2:2003's answer. Port 2004 is not intercepted: the
//! gateway routes it (forwarding, 网络转发, at layer 3), and the server
//! sees the client and no X-Forwarded-For.
//!
//! Without root it runs itself in a user namespace ([`privileges`]); the
//! namespaces live only as long as this process ([`netns`]), so Ctrl-C,
//! SIGTERM and even `kill -9` leave nothing behind but a note
//! ([`state`]) that the next start removes.

mod child;
mod mode;
pub mod netns;
pub mod network;
pub mod privileges;
pub mod proxy;
pub mod sockets;
pub mod state;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_util::sync::CancellationToken;

use crate::output::say;
pub use mode::Mode;
use netns::Namespace;
pub use network::Place;
use network::{Network, SetupError};

/// What `lab transparent` is asked to do.
#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    /// The TCP ports intercepted (the rest is routed).
    pub ports: Vec<u16>,
    /// A command to run inside the network, then stop (empty: run until
    /// Ctrl-C).
    pub run: Vec<OsString>,
    /// The namespace the command runs in.
    pub place: Place,
    /// Stop a running one, or remove what a crashed one left.
    pub cleanup: bool,
    /// The real servers' settings.
    pub realserver: crate::realserver::Config,
    /// What the proxy's listener refuses.
    pub limits: crate::server::Limits,
}

/// Runs `lab transparent`.
pub async fn run(config: &Config) -> anyhow::Result<ExitCode> {
    let note = state::path();
    if config.cleanup {
        return cleanup(&note).await;
    }
    if let Some(existing) = state::read(&note) {
        if state::alive(&existing) {
            if !config.run.is_empty() {
                if existing.mode != config.mode.to_string() || existing.ports != config.ports {
                    eprintln!(
                        "note: running in the lab transparent already running (pid {}: {} mode, \
                         intercepting {:?}), whatever this command's --mode and --intercept say",
                        existing.pid, existing.mode, existing.ports
                    );
                }
                return join(&existing, config).await;
            }
            bail!(
                "a lab transparent is already running (pid {}, {} mode). Run commands in it \
                 with `lab transparent --run -- CMD`, or stop it (Ctrl-C in its terminal, or \
                 `lab transparent --cleanup`)",
                existing.pid,
                existing.mode
            );
        }
        // A crash left its note; the namespaces went with the process.
        tracing::info!(
            "removing the note of a lab transparent that is gone (pid {})",
            existing.pid
        );
        let _ = std::fs::remove_file(&note);
    }

    let network = match Network::build(config.mode, &config.ports) {
        Ok(network) => network,
        Err(SetupError::Namespace(err))
            if err.raw_os_error() == Some(libc::EPERM) && !privileges::inside_user_namespace() =>
        {
            tracing::info!("not root: trying an unprivileged user namespace");
            let env = [(state::STATE_ENV, note.display().to_string())];
            return privileges::rerun_in_user_namespace(&env)
                .await
                .map_err(|refused| no_privileges(&privileges::explain_refusal(&refused)));
        }
        Err(SetupError::Namespace(err)) => {
            return Err(no_privileges(&format!(
                "inside a user namespace, a network namespace was refused ({err}); \
                 AppArmor or a container may forbid it"
            )));
        }
        Err(other) => return Err(anyhow::Error::new(other).context("cannot build the network")),
    };
    let running = Running::start(network, config).await?;
    let pid = std::process::id();
    state::write(&note, &running.state(config, pid))
        .with_context(|| format!("cannot write {}", note.display()))?;
    tracing::info!(
        "transparent proxy on {} ({} mode) in the gateway namespace; note at {}",
        network::PROXY,
        config.mode,
        note.display()
    );

    let outcome = if config.run.is_empty() {
        print_screen(config);
        crate::net::shutdown_signal().await;
        Ok(ExitCode::SUCCESS)
    } else {
        let namespace = running.network.place(config.place);
        run_command(namespace, None, &config.run, true).await
    };
    state::remove_if_ours(&note, pid);
    running.stop().await;
    if config.run.is_empty() {
        say("Removed the client, gateway and server namespaces, with their interfaces and rules.");
    }
    outcome
}

fn no_privileges(why: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "lab transparent builds its own network namespaces, and this process may not: creating \
         one needs root (CAP_SYS_ADMIN), and without root {why}. Nothing was set up."
    )
}

/// The network with its servers and proxy running in it.
struct Running {
    network: Network,
    stop: CancellationToken,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    async fn start(network: Network, config: &Config) -> anyhow::Result<Running> {
        let stop = CancellationToken::new();
        let mut threads = Vec::new();
        // The real servers, in the server namespace.
        let (realserver, until) = (config.realserver.clone(), stop.clone());
        threads.push(
            start_in(&network.server, move || async move {
                let mut tasks = Vec::new();
                for port in network::SERVER_PORTS {
                    let addr = SocketAddr::from((network::SERVER, port));
                    let listener = crate::net::bind(addr, "--addr").await?;
                    let until = until.clone();
                    tasks.push(tokio::spawn(crate::realserver::serve(
                        listener,
                        realserver.clone(),
                        async move { until.cancelled().await },
                    )));
                }
                Ok(tasks)
            })
            .await
            .context("cannot start the real servers in the server namespace")?,
        );
        // The proxy, in the gateway namespace: the sockets it opens to the
        // real servers are made there too.
        let (mode, limits, until) = (config.mode, config.limits.clone(), stop.clone());
        threads.push(
            start_in(&network.gateway, move || async move {
                let listener = sockets::listen(network::PROXY, mode)
                    .with_context(|| format!("cannot listen on {}", network::PROXY))?;
                Ok(vec![tokio::spawn(proxy::serve(
                    listener,
                    mode,
                    limits,
                    async move { until.cancelled().await },
                ))])
            })
            .await
            .context("cannot start the proxy in the gateway namespace")?,
        );
        Ok(Running {
            network,
            stop,
            threads,
        })
    }

    fn state(&self, config: &Config, pid: u32) -> state::State {
        state::State {
            pid,
            mode: config.mode.to_string(),
            ports: config.ports.clone(),
            client: self.network.client.path(),
            gateway: self.network.gateway.path(),
            server: self.network.server.path(),
            user_namespace: privileges::inside_user_namespace()
                .then(|| format!("/proc/{pid}/ns/user")),
        }
    }

    /// Stops the servers and the proxy, then drops the namespaces.
    async fn stop(self) {
        self.stop.cancel();
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
        drop(self.network);
    }
}

type Tasks = Vec<tokio::task::JoinHandle<anyhow::Result<()>>>;

/// Starts a thread inside `namespace` with a runtime of its own, runs
/// `setup` there (binding listeners, spawning their servers), and waits
/// until it has: an error in `setup` is returned here. The thread then
/// runs the spawned servers to their end.
async fn start_in<Setup, Fut>(
    namespace: &Namespace,
    setup: Setup,
) -> anyhow::Result<std::thread::JoinHandle<()>>
where
    Setup: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = anyhow::Result<Tasks>>,
{
    let (ready, started) = tokio::sync::oneshot::channel();
    let thread = namespace.spawn_thread(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => {
                let _ = ready.send(Err(anyhow::Error::new(err)));
                return;
            }
        };
        runtime.block_on(async move {
            let tasks = match setup().await {
                Ok(tasks) => tasks,
                Err(err) => {
                    let _ = ready.send(Err(err));
                    return;
                }
            };
            let _ = ready.send(Ok(()));
            for task in tasks {
                if let Ok(Err(err)) = task.await {
                    tracing::warn!("{err:#}");
                }
            }
        });
    })?;
    match started.await {
        Ok(Ok(())) => Ok(thread),
        Ok(Err(err)) => Err(err),
        Err(_) => bail!("the {} namespace's thread stopped", namespace.name()),
    }
}

/// Runs `command` inside `namespace` (after `user`) and waits for it;
/// Ctrl-C and SIGTERM are passed on. `lab` as the program is this program.
async fn run_command(
    namespace: &Namespace,
    user: Option<&Namespace>,
    command: &[OsString],
    die_with_us: bool,
) -> anyhow::Result<ExitCode> {
    let Some((program, args)) = command.split_first() else {
        return Ok(ExitCode::SUCCESS);
    };
    let program = if program == "lab" {
        std::env::current_exe().map_or_else(|_| program.clone(), OsString::from)
    } else {
        program.clone()
    };
    let mut std_command = std::process::Command::new(&program);
    std_command.args(args);
    namespace.enter_before_exec(&mut std_command, user);
    if die_with_us {
        use std::os::unix::process::CommandExt as _;
        // SAFETY: prctl is a system call. If this process dies, so does
        // the command, which would otherwise keep the namespace alive.
        unsafe {
            std_command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    let child = tokio::process::Command::from(std_command)
        .spawn()
        .with_context(|| {
            format!(
                "cannot run {program:?} in the {} namespace",
                namespace.name()
            )
        })?;
    Ok(child::exit_code_of(
        child::wait_passing_signals(child).await?,
    ))
}

/// `--run` while another `lab transparent` runs: the command joins its
/// namespaces.
async fn join(existing: &state::State, config: &Config) -> anyhow::Result<ExitCode> {
    let open_failed = |err: std::io::Error| {
        anyhow::anyhow!(
            "cannot join the running lab transparent (pid {}): {err}; run this as the same \
             user that started it",
            existing.pid
        )
    };
    let user = match &existing.user_namespace {
        Some(user) => {
            Some(Namespace::open("user", std::path::Path::new(user)).map_err(open_failed)?)
        }
        None => None,
    };
    let path = std::path::Path::new(existing.path_of(config.place));
    let namespace = Namespace::open(config.place.name(), path).map_err(open_failed)?;
    run_command(&namespace, user.as_ref(), &config.run, false).await
}

/// `--cleanup`: stops a running one, or removes a crashed one's note.
async fn cleanup(note: &std::path::Path) -> anyhow::Result<ExitCode> {
    let Some(existing) = state::read(note) else {
        say(&format!(
            "Nothing to clean up: no lab transparent is running (no note at {}). Its \
             namespaces never outlive it.",
            note.display()
        ));
        return Ok(ExitCode::SUCCESS);
    };
    if !state::alive(&existing) {
        let _ = std::fs::remove_file(note);
        say(&format!(
            "The lab transparent with pid {} is gone; its namespaces, interfaces and rules went \
             with it. Removed its note ({}).",
            existing.pid,
            note.display()
        ));
        return Ok(ExitCode::SUCCESS);
    }
    // SAFETY: a signal to the process the note names, which is alive and
    // holds the namespaces the note lists.
    unsafe { libc::kill(existing.pid as i32, libc::SIGTERM) };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while state::alive(&existing) {
        if tokio::time::Instant::now() > deadline {
            bail!(
                "the lab transparent with pid {} did not stop within 15 s of SIGTERM; \
                 `kill -9 {}` stops it (its namespaces go with it)",
                existing.pid,
                existing.pid
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = std::fs::remove_file(note);
    say(&format!(
        "Stopped the lab transparent with pid {}; its namespaces, interfaces and rules are gone.",
        existing.pid
    ));
    Ok(ExitCode::SUCCESS)
}

/// What a learner sees while it runs: the network, and what to try.
fn print_screen(config: &Config) {
    let ports = config
        .ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let how = match config.mode {
        Mode::Redirect => "nftables redirect, SO_ORIGINAL_DST",
        Mode::Tproxy => "nftables tproxy, IP_TRANSPARENT",
    };
    let server = network::SERVER;
    let text = format!(
        "lab transparent, {mode} mode ({how})\n\
         \n\
         \x20 client 192.0.2.2 ── 192.0.2.1 gateway 198.51.100.1 ── 198.51.100.2 server\n\
         \x20                     proxy on 192.0.2.1:3129          real servers :2003 :2004\n\
         \n\
         The gateway hands TCP to port {ports} to the proxy; it routes the rest.\n\
         \n\
         Try, in another terminal (no proxy setting anywhere):\n\
         \x20 lab transparent --run -- curl -s http://{server}:2003/abc\n\
         \x20 lab transparent --run -- curl -s http://{server}:2004/abc\n\
         \x20 lab transparent --run -- lab trace --direct http://{server}:2003\n\
         \x20 lab transparent --run --in gateway -- nft list ruleset\n\
         \n\
         Ctrl-C removes the namespaces, with their interfaces and rules.",
        mode = config.mode,
    );
    println!("{text}");
}
