//! A verify run's session: where the learner's program and the lab's real
//! servers listen, how a request is sent to the program, and the points
//! recorded so far. The experiments (`checks/`) write to it; `verify`
//! reads it.

use std::fmt::Display;
use std::net::SocketAddr;
use std::time::Duration;

use std::path::PathBuf;

use crate::exercises::subject::{Launch, Subject};
use crate::probe::{Exchange, Probe};
use crate::realserver::{self, EchoReport, RunningServer};

/// How long one request to the learner's program may take before it
/// counts as unanswered (the write-timeout point waits longer on purpose).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// One thing the program must do, and whether it did.
#[derive(Debug, Clone)]
pub struct Point {
    pub id: String,
    /// What is checked, in a sentence.
    pub what: String,
    pub expected: String,
    pub actual: String,
    pub passed: bool,
}

/// A verify run in progress: the servers, the program, the points so far.
pub struct Session {
    /// The learner's program.
    pub addr: SocketAddr,
    /// The lab's real servers behind it, `a`, `b`, `c`… in this order.
    pub upstreams: Vec<SocketAddr>,
    pub points: Vec<Point>,
    /// The running real servers, by the same index (`None` while stopped).
    pub servers: Vec<Option<RunningServer>>,
    /// The learner's program (`None` after a restart that failed).
    pub program: Option<Subject>,
    /// How to start it again.
    pub restart: Restart,
}

/// What it takes to start the learner's program (again).
#[derive(Debug, Clone)]
pub struct Restart {
    pub launch: Launch,
    pub build_dir: PathBuf,
    /// The path of the upstream URLs (`/base`).
    pub path: String,
    pub weights: Vec<u32>,
}

impl Restart {
    /// The URL the program is given for the real server at `addr`.
    pub fn url(&self, addr: SocketAddr) -> String {
        format!("http://{addr}{}", self.path)
    }

    /// What the program is told: where to listen, where its real servers
    /// are (`$UPSTREAM`, `$UPSTREAMS`), their weights (`$WEIGHTS`).
    pub fn environment(&self, addr: SocketAddr, upstreams: &[SocketAddr]) -> Vec<(String, String)> {
        let urls: Vec<String> = upstreams.iter().map(|&a| self.url(a)).collect();
        let mut env = vec![
            ("LISTEN".to_string(), addr.to_string()),
            ("PORT".to_string(), addr.port().to_string()),
        ];
        if let Some(first) = urls.first() {
            env.push(("UPSTREAM".into(), first.clone()));
            env.push(("UPSTREAMS".into(), urls.join(" ")));
        }
        if !self.weights.is_empty() {
            let weights: Vec<String> = self.weights.iter().map(u32::to_string).collect();
            env.push(("WEIGHTS".into(), weights.join(" ")));
        }
        env
    }
}

impl Session {
    /// Records a point: passed when `actual` reads as `expected`.
    pub fn point(
        &mut self,
        id: &str,
        what: &str,
        expected: impl Display,
        actual: impl Display,
    ) -> bool {
        let (expected, actual) = (expected.to_string(), actual.to_string());
        let passed = expected == actual;
        self.judge(id, what, expected, actual, passed)
    }

    /// Records a point judged by the caller.
    pub fn judge(
        &mut self,
        id: &str,
        what: &str,
        expected: impl Display,
        actual: impl Display,
        passed: bool,
    ) -> bool {
        self.points.push(Point {
            id: id.to_string(),
            what: what.to_string(),
            expected: expected.to_string(),
            actual: actual.to_string(),
            passed,
        });
        passed
    }

    /// Sends `probe` to the learner's program, waiting at most [`ANSWER_TIMEOUT`].
    pub async fn send(&self, probe: &Probe) -> Result<Exchange, String> {
        self.send_within(probe, ANSWER_TIMEOUT).await
    }

    /// [`Session::send`] with its own patience.
    pub async fn send_within(&self, probe: &Probe, patience: Duration) -> Result<Exchange, String> {
        match tokio::time::timeout(patience, probe.send(self.addr)).await {
            Ok(Ok(exchange)) => Ok(exchange),
            Ok(Err(err)) => Err(format!("no answer: {err:#}")),
            Err(_) => Err(format!("no answer within {patience:?}")),
        }
    }

    /// Stops real server `i` (its letter's index), as a crash would look to
    /// the program: connections to its address are refused.
    pub async fn stop_upstream(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(server) = self.servers.get_mut(i).and_then(Option::take) {
            server.shutdown().await?;
        }
        Ok(())
    }

    /// Starts real server `i` again on its old address.
    pub async fn start_upstream(&mut self, i: usize) -> anyhow::Result<()> {
        let addr = self.upstreams[i];
        let listener = crate::net::bind(addr, "--addr").await?;
        self.servers[i] = Some(RunningServer::start(listener, real_server_config())?);
        Ok(())
    }

    /// Stops the learner's program and starts it again with the real
    /// servers `keep` (by index, in that order) in `$UPSTREAMS`, on the same
    /// address: a server leaving the configuration, the list in another
    /// order, or a server that moved to another port.
    pub async fn restart_program_with(&mut self, keep: &[usize]) -> anyhow::Result<()> {
        if let Some(old) = self.program.take() {
            old.stop().await;
        }
        let upstreams: Vec<SocketAddr> = keep.iter().map(|&i| self.upstreams[i]).collect();
        let env = self.restart.environment(self.addr, &upstreams);
        match Subject::start(
            &self.restart.launch,
            self.addr,
            &env,
            &self.restart.build_dir,
        )
        .await
        {
            Ok(subject) => {
                self.program = Some(subject);
                Ok(())
            }
            // Said without a reason for the restart: the check restarts the
            // program with fewer upstreams, in another order, or with one
            // moved to another port.
            Err(trouble) => anyhow::bail!(
                "started again with the upstreams {}, {}: {}",
                upstreams
                    .iter()
                    .map(SocketAddr::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                trouble.headline(),
                trouble.output()
            ),
        }
    }

    /// The program's answer to `probe` as `STATUS BODY` (`500 error
    /// handler`), or why there was none.
    pub async fn answer_of(&self, probe: &Probe) -> String {
        match self.send(probe).await {
            Ok(answer) => format!("{} {}", answer.status.as_u16(), answer.text()),
            Err(why) => why,
        }
    }

    /// What the real server saw of `probe` sent through the program, from
    /// its JSON echo, or what came back instead.
    pub async fn echo_of(&self, probe: &Probe) -> Result<EchoReport, String> {
        let probe = probe.clone().header("Accept", "application/json");
        let answer = self.send(&probe).await?;
        answer.json_echo().map_err(|_| {
            let said = format!("{} {}", answer.status.as_u16(), answer.text());
            format!("{} (no echo)", said.trim_end())
        })
    }

    /// Which real server answered a GET for `path`, by letter (read from
    /// its JSON echo), or the status or failure that came instead.
    pub async fn who_answers(&self, path: &str) -> String {
        let probe = Probe::get(path).header("Accept", "application/json");
        match self.send(&probe).await {
            Ok(answer) => match answer.json_echo() {
                Ok(echo) => self.letter(&echo.server),
                Err(_) => answer.status.as_u16().to_string(),
            },
            Err(why) => why,
        }
    }

    /// The letter of the real server at `server` (`127.0.0.1:PORT`): `a`,
    /// `b`…, or `?` for none of them.
    pub fn letter(&self, server: &str) -> String {
        self.upstreams
            .iter()
            .position(|a| a.to_string() == server)
            .map_or("?".into(), |i| ((b'a' + i as u8) as char).to_string())
    }
}

/// The values of header `name` as the real server saw them, `(none)` when
/// it did not arrive (several lines joined with ` | `).
pub fn header_values(echo: &EchoReport, name: &str) -> String {
    let values = echo.header_values(name);
    if values.is_empty() {
        "(none)".into()
    } else {
        values.join(" | ")
    }
}

/// The real servers' settings in an exercise: the defaults, but for the
/// request head they accept. Exercise 6 pads its requests with a 40 000-byte
/// header so that the echo outgrows Go's 32 KB copy buffer, past the
/// default `--max-header-size` of 32 KiB.
pub(super) fn real_server_config() -> realserver::Config {
    realserver::Config {
        limits: crate::server::Limits {
            max_header_size: 64 * 1024,
            ..crate::server::Limits::default()
        },
        ..realserver::Config::default()
    }
}
