//! `lab verify N`: the lab's real servers, the learner's program in front
//! of them (or as the real server itself), the exercise's experiment, and a
//! report of each point as expected against actual, with the next step.
//!
//! Points run in order and all of them run: the report says which is the
//! first to fix, since the skeleton's `TODO`s are numbered in that order.

use std::net::SocketAddr;

use crate::exercises::session::{Point, Restart, Session};
use crate::exercises::subject::{Launch, Subject, Trouble};
use crate::exercises::{Exercise, checks};
use crate::output::{self, Mark};
use crate::realserver::RunningServer;

/// How a verify run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub points: Vec<Point>,
    /// The program could not be judged at all.
    pub trouble: Option<Trouble>,
    /// The experiment stopped early: why, and what the program printed.
    pub aborted: Option<String>,
    /// The program's last lines, when something failed.
    pub output: String,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.trouble.is_none()
            && self.aborted.is_none()
            && !self.points.is_empty()
            && self.points.iter().all(|p| p.passed)
    }

    /// The first point that failed.
    pub fn first_failure(&self) -> Option<&Point> {
        self.points.iter().find(|p| !p.passed)
    }

    pub fn failed(&self) -> usize {
        self.points.iter().filter(|p| !p.passed).count()
    }

    /// The report: each point, the first failure's next step, the verdict.
    pub fn render(&self, exercise: &Exercise, width: usize) -> String {
        let mut out = String::new();
        let mut say = |text: String| {
            out.push_str(&output::wrapped(&text, width));
            out.push('\n');
        };
        if let Some(trouble) = &self.trouble {
            say(format!("{} {}", Mark::Fail.styled(), trouble.headline()));
            if !trouble.output().is_empty() {
                out.push_str(&indent_block(trouble.output()));
            }
            out.push_str(&output::field("next step", trouble.next_step(), width));
            return out;
        }
        for point in &self.points {
            let mark = if point.passed { Mark::Pass } else { Mark::Fail };
            let head = format!("{} {}: {}", mark.styled(), point.id, point.what);
            for line in output::wrap(&head, width, "", "  ") {
                out.push_str(&line);
                out.push('\n');
            }
            if !point.passed {
                out.push_str(&output::field("expected", &point.expected, width));
                out.push_str(&output::field("actual", &point.actual, width));
            }
        }
        if let Some(why) = &self.aborted {
            out.push_str(&output::wrapped(
                &format!("{} the experiment stopped: {why}", Mark::Fail.styled()),
                width,
            ));
            out.push('\n');
        }
        if !self.passed() && !self.output.is_empty() {
            out.push_str("your program's last lines:\n");
            out.push_str(&indent_block(&self.output));
        }
        if let Some(first) = self.first_failure() {
            let next = exercise
                .hints(&first.id)
                .first()
                .cloned()
                .unwrap_or_else(|| format!("make `{}` hold", first.id));
            out.push('\n');
            out.push_str(&output::wrapped(
                &format!("Next step ({}): {next}", first.id),
                width,
            ));
            out.push('\n');
        }
        out
    }
}

fn indent_block(text: &str) -> String {
    text.lines().map(|l| format!("  | {l}\n")).collect()
}

/// Runs exercise `exercise` against the program `launch` describes:
/// starts the lab's real servers, the program with its environment, the
/// experiment, and stops them all.
pub async fn run(exercise: &Exercise, launch: &Launch) -> anyhow::Result<Outcome> {
    let scenario = checks::scenario(&exercise.meta.check).ok_or_else(|| {
        anyhow::anyhow!(
            "exercise {} names check `{}`, which src/exercises/checks/ does not have",
            exercise.number,
            exercise.meta.check
        )
    })?;
    let mut servers: Vec<RunningServer> = Vec::new();
    for _ in 0..exercise.meta.upstreams {
        servers
            .push(RunningServer::start_on_free_port(super::session::real_server_config()).await?);
    }
    let upstreams: Vec<SocketAddr> = servers.iter().map(RunningServer::addr).collect();
    let addr = free_port().await?;
    let build_dir = tempfile::tempdir()?;
    let restart = Restart {
        launch: launch.clone(),
        build_dir: build_dir.path().to_path_buf(),
        path: exercise.meta.upstream_path.clone(),
        weights: exercise.meta.weights.clone(),
    };
    let env = restart.environment(addr, &upstreams);
    let outcome = match Subject::start(launch, addr, &env, build_dir.path()).await {
        Err(trouble) => Outcome {
            points: Vec::new(),
            trouble: Some(trouble),
            aborted: None,
            output: String::new(),
        },
        Ok(subject) => {
            let mut session = Session {
                addr,
                upstreams,
                points: Vec::new(),
                servers: servers.into_iter().map(Some).collect(),
                program: Some(subject),
                restart,
            };
            let result = scenario(&mut session).await;
            servers = session.servers.into_iter().flatten().collect();
            let (crashed, output) = match session.program.as_mut() {
                Some(subject) => (subject.exited(), subject.output()),
                None => (None, String::new()),
            };
            if let Some(subject) = session.program.take() {
                subject.stop().await;
            }
            let aborted = match (result, crashed) {
                (_, Some(status)) => Some(format!("your program stopped ({status})")),
                (Err(err), None) => Some(format!("{err:#}")),
                (Ok(()), None) => None,
            };
            Outcome {
                points: session.points,
                trouble: None,
                aborted,
                output,
            }
        }
    };
    for server in servers {
        server.shutdown().await?;
    }
    Ok(outcome)
}

/// A loopback port free a moment ago (the program binds it itself).
async fn free_port() -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    Ok(listener.local_addr()?)
}
