//! Lab 18, ZooKeeper discovery (服务发现, the article's `LoadBalanceZkConf`):
//! real servers register as ephemeral nodes holding the article's
//! `GetConf()` spec, `lab proxy --discovery` watches their parent's
//! children, a third server joins and leaves while the proxy runs (no
//! restart), and with ZooKeeper stopped the proxy keeps its last set.
//!
//! Needs Debian's `zookeeper` package; without it the check fails with the
//! command that installs it.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use futures_util::future::BoxFuture;

use super::proxy_pages::{Answer, read_status, send, until_status};
use super::servers::{start_real_server, upstream_url};
use crate::cli::launch::RunningProxy;
use crate::discovery::Status;
use crate::labs::findings::Findings;
use crate::realserver::{RunningServer, upstream_spec};
use crate::zk::{self, Registration, ZkUrl, ZooKeeperServer};

/// How soon a registration or deregistration must reach the proxy.
const PROMPTLY: Duration = Duration::from_secs(2);

/// How long a wait for the proxy's set goes on before the claim fails.
const GIVE_UP: Duration = Duration::from_secs(5);

/// Requests per round: a multiple of 2 and 3, so round robin gives each of
/// two or three upstreams the same share.
const ROUND: usize = 6;

pub fn run(f: &mut Findings) -> BoxFuture<'_, anyhow::Result<()>> {
    Box::pin(async move {
        if !zk::server::is_installed() {
            anyhow::bail!(
                "{}; then run `lab check 18` again",
                zk::server::NOT_INSTALLED
            );
        }
        let zookeeper = ZooKeeperServer::start(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        f.step(format!(
            "started ZooKeeper on {}, as `lab zk up` does (Debian's package, its data in a temp dir)",
            zookeeper.addr()
        ));
        let mut lab = Started {
            zookeeper: Some(zookeeper),
            servers: Vec::new(),
            registrations: Vec::new(),
            proxy: None,
        };
        let result = experiment(f, &mut lab).await;
        let stopped = lab.stop().await;
        result.and(stopped)
    })
}

/// Everything the experiment started, stopped by [`Started::stop`] whatever
/// the experiment returned.
struct Started {
    /// `None` once the experiment has stopped it.
    zookeeper: Option<ZooKeeperServer>,
    servers: Vec<RunningServer>,
    registrations: Vec<Registration>,
    proxy: Option<RunningProxy>,
}

impl Started {
    /// A real server on a free port, as `lab realserver` runs it.
    async fn serve(&mut self) -> anyhow::Result<SocketAddr> {
        start_real_server(&mut self.servers).await
    }

    /// What `lab realserver --register URL --weight W` does for `addr`:
    /// the ephemeral node `PATH/HOST:PORT` holding `http://HOST:PORT/base,W`.
    async fn register(&mut self, url: &ZkUrl, addr: SocketAddr, weight: u32) -> anyhow::Result<()> {
        let spec = upstream_spec(false, addr, weight);
        let registration = zk::register(url, &addr.to_string(), &spec).await?;
        self.registrations.push(registration);
        Ok(())
    }

    /// Deletes `addr`'s node and closes its session: a clean stop.
    async fn deregister(&mut self, url: &ZkUrl, addr: SocketAddr) -> anyhow::Result<()> {
        let node = url.child_path(&addr.to_string());
        let index = self
            .registrations
            .iter()
            .position(|r| r.node() == node)
            .with_context(|| format!("{node} was not registered by this check"))?;
        self.registrations.remove(index).deregister().await
    }

    /// Stops the real server on `addr` (its requests in flight finish).
    async fn stop_server(&mut self, addr: SocketAddr) -> anyhow::Result<()> {
        let index = self
            .servers
            .iter()
            .position(|s| s.addr() == addr)
            .with_context(|| format!("no real server of this check on {addr}"))?;
        self.servers.remove(index).shutdown().await
    }

    /// Stops the proxy, the registrations, the servers and ZooKeeper, in
    /// that order; the first error is returned, after everything stopped.
    async fn stop(self) -> anyhow::Result<()> {
        let mut first_error = None;
        let mut note = |result: anyhow::Result<()>| {
            if let Err(err) = result {
                first_error.get_or_insert(err);
            }
        };
        if let Some(proxy) = self.proxy {
            note(proxy.shutdown().await);
        }
        if self.zookeeper.is_some() {
            for registration in self.registrations {
                note(registration.deregister().await);
            }
        } else {
            // ZooKeeper is gone: there is no node to delete, and asking would
            // only wait for its timeout. Dropping ends the sessions' tasks.
            drop(self.registrations);
        }
        for server in self.servers {
            note(server.shutdown().await);
        }
        if let Some(zookeeper) = self.zookeeper {
            note(zookeeper.stop().await);
        }
        first_error.map_or(Ok(()), Err)
    }
}

async fn experiment(f: &mut Findings, lab: &mut Started) -> anyhow::Result<()> {
    let zookeeper = lab.zookeeper.as_ref().context("ZooKeeper is not running")?;
    let url = zookeeper.url(&format!(
        "/lab-check/{:08x}/realserver",
        rand::random::<u32>()
    ))?;
    let weight = registered_weight(&url)?;

    let a = lab.serve().await?;
    let b = lab.serve().await?;
    lab.register(&url, a, weight).await?;
    lab.register(&url, b, weight).await?;
    f.step(format!(
        "started real servers a on {a} and b on {b}, each registered as `lab realserver --register {url}` does"
    ));
    let names = Names::new([('a', a), ('b', b)]);

    // What the registration left in ZooKeeper, as `lab zk ls` reads it.
    let entries = zk::ls::list(&url).await?.unwrap_or_default();
    let children: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    f.step(format!(
        "`lab zk ls {url}`: {} children: {}",
        entries.len(),
        children.join(", ")
    ));
    let a_entry = entries.iter().find(|e| e.name == a.to_string());
    f.claim_eq(
        "node-data-is-getconf",
        format!("{a} = http://{a}/base,{weight}, ephemeral"),
        a_entry.map_or(format!("no child named {a}"), |e| {
            let kind = match e.ephemeral_owner {
                Some(_) => "ephemeral",
                None => "persistent",
            };
            format!("{} = {}, {kind}", e.name, e.data)
        }),
        "named HOST:PORT as the article names its children, holding GetConf()'s \
         fmt.Sprintf(format, ip)+\",\"+weight; ephemeral: it lives as long as a's session",
    );

    let discovery = url.to_string();
    let proxy = RunningProxy::start(&["--discovery", &discovery, "--lb", "round-robin"]).await?;
    let p = proxy.addr();
    lab.proxy = Some(proxy);
    f.step(format!(
        "`lab proxy --discovery {url} --lb round-robin` at {p}"
    ));

    let status = read_status(p).await?;
    let answers = send(p, ROUND).await?;
    let turns = names.of_answers(&answers);
    f.step(format!("{ROUND} requests: {}", turns.join(" ")));
    f.claim_eq(
        "discovers-registered",
        format!("source zookeeper {url}, generation 1, live a b; {ROUND} × 200 in set 1, a and b in turn"),
        format!(
            "source {}, generation {}, live {}; {}",
            status.source,
            status.generation,
            names.live(&status),
            requests(&answers, &turns, &["a", "b"])
        ),
        "the proxy read PATH's children when it started (NewLoadBalanceZkConf's GetServerListByPath) \
         and built its balancer from their data",
    );
    f.observe(
        "weight-when-registered",
        status
            .upstreams
            .iter()
            .find(|u| u.url == names.url('a'))
            .map_or("a is not listed".to_string(), |u| u.weight.to_string()),
        "`lab realserver --register` writes --weight (1 unless told) into the node's data, and the proxy \
         uses what the data says (the article's GetConf() would say \"50\" for an IP missing from its map)",
    );

    // A third server registers while the proxy runs.
    let c = lab.serve().await?;
    lab.register(&url, c, weight).await?;
    f.step(format!(
        "started c on {c} and registered it, as `lab realserver --addr {c} --register {url}` does; \
         the proxy keeps running"
    ));
    let names = Names::new([('a', a), ('b', b), ('c', c)]);
    let c_url = names.url('c');
    let (took, status) = until_status(p, GIVE_UP, |s| {
        s.upstreams.iter().any(|u| u.url == c_url && u.live)
    })
    .await?;
    let answers = send(p, ROUND).await?;
    let turns = names.of_answers(&answers);
    f.step(format!("{ROUND} requests: {}", turns.join(" ")));
    let want = format!(
        "generation 2, live a b c, c registered (weight {weight}); {ROUND} × 200 in set 2, a 2 · b 2 · c 2"
    );
    let got = format!(
        "generation {}, live {}, {}; {}, a {} · b {} · c {}",
        status.generation,
        names.live(&status),
        names.event(&status, &c_url, "registered"),
        statuses(&answers),
        count(&turns, "a"),
        count(&turns, "b"),
        count(&turns, "c")
    );
    f.claim(
        "third-server-joins",
        took <= PROMPTLY && got == want,
        format!("within {} ms: {want}", PROMPTLY.as_millis()),
        format!("after {} ms: {got}", took.as_millis()),
        "the child watch fired, the proxy read the children again (WatchConf → UpdateConf) \
         and the observer built generation 2 over three",
    );
    f.observe(
        "third-without-restart",
        if count(&turns, "c") > 0 { "yes" } else { "no" },
        "the same proxy process gave c its turns: the watch changed the set, not a restart",
    );

    // c stops cleanly: its node is deleted first, then its server stops.
    lab.deregister(&url, c).await?;
    f.step(
        "c deregistered, as Ctrl-C on `lab realserver --register` does before the server drains",
    );
    let (took, status) =
        until_status(p, GIVE_UP, |s| !s.upstreams.iter().any(|u| u.url == c_url)).await?;
    lab.stop_server(c).await?;
    f.step("stopped c's server");
    let answers = send(p, ROUND).await?;
    let turns = names.of_answers(&answers);
    f.step(format!("{ROUND} requests: {}", turns.join(" ")));
    let want =
        format!("generation 3, live a b, c deregistered; {ROUND} × 200 in set 3, a and b in turn");
    let got = format!(
        "generation {}, live {}, {}; {}",
        status.generation,
        names.live(&status),
        names.event(&status, &c_url, "deregistered"),
        requests(&answers, &turns, &["a", "b"])
    );
    f.claim(
        "deregister-leaves",
        took <= PROMPTLY && got == want,
        format!("within {} ms: {want}", PROMPTLY.as_millis()),
        format!("after {} ms: {got}", took.as_millis()),
        "deleting the node fired the child watch; the proxy dropped c before c's server stopped, \
         so no request was sent to it",
    );

    // ZooKeeper stops; the servers it knew about do not.
    let zookeeper = lab.zookeeper.take().context("ZooKeeper is not running")?;
    zookeeper.stop().await?;
    f.step("stopped ZooKeeper; a and b keep running");
    // Past the session timeout, the time after which a crashed server's
    // node would be gone: nothing can be deleted while ZooKeeper is away.
    let away = zk::SESSION_TIMEOUT + Duration::from_millis(500);
    tokio::time::sleep(away).await;
    f.step(format!(
        "waited {} ms, past the {} s session timeout",
        away.as_millis(),
        zk::SESSION_TIMEOUT.as_secs()
    ));
    let answers = send(p, ROUND).await?;
    let turns = names.of_answers(&answers);
    f.step(format!("{ROUND} requests: {}", turns.join(" ")));
    let status = read_status(p).await?;
    f.observe(
        "after-zookeeper-stops",
        distinct_statuses(&answers),
        "the proxy lost ZooKeeper, not its upstreams: it keeps the last set it read",
    );
    f.claim_eq(
        "keeps-last-set-without-zookeeper",
        format!("generation 3, live a b; {ROUND} × 200 in set 3, a and b in turn"),
        format!(
            "generation {}, live {}; {}",
            status.generation,
            names.live(&status),
            requests(&answers, &turns, &["a", "b"])
        ),
        "an unreachable ZooKeeper says nothing about the servers: the set stays as last read \
         until ZooKeeper answers again",
    );
    Ok(())
}

/// `6 × 200 in set 1, a and b in turn` when every request was answered and
/// they went to `letters` in turn; else every status, set and upstream.
fn requests(answers: &[Answer], turns: &[String], letters: &[&str]) -> String {
    let statuses = statuses(answers);
    if alternates(turns, letters) && !statuses.contains(',') {
        format!("{statuses}, {} in turn", letters.join(" and "))
    } else {
        format!("{statuses}; to {}", turns.join(" "))
    }
}

/// The weight `lab realserver --register URL` registers when not told
/// (`--weight`'s default), read from the command line's own definition.
fn registered_weight(url: &ZkUrl) -> anyhow::Result<u32> {
    let url = url.to_string();
    let argv = ["lab", "realserver", "--register", url.as_str()];
    let cli = <crate::cli::Cli as clap::Parser>::try_parse_from(argv)
        .map_err(|e| anyhow::anyhow!("cannot parse `lab realserver --register {url}`: {e}"))?;
    let crate::cli::Command::Realserver(args) = cli.command else {
        anyhow::bail!("`lab realserver` did not parse as the realserver command");
    };
    Ok(args.weight)
}

/// The real servers by letter, and their upstream URLs as the proxy names them.
struct Names(Vec<(char, String)>);

impl Names {
    fn new<const N: usize>(servers: [(char, SocketAddr); N]) -> Names {
        Names(
            servers
                .into_iter()
                .map(|(letter, addr)| (letter, upstream_url(addr)))
                .collect(),
        )
    }

    fn url(&self, letter: char) -> String {
        self.0
            .iter()
            .find(|(l, _)| *l == letter)
            .map_or_else(String::new, |(_, url)| url.clone())
    }

    /// The letter of an upstream URL, or the URL itself.
    fn of(&self, url: Option<&str>) -> String {
        match url {
            None => "none".to_string(),
            Some(url) => self
                .0
                .iter()
                .find(|(_, u)| u == url)
                .map_or_else(|| url.to_string(), |(l, _)| l.to_string()),
        }
    }

    fn of_answers(&self, answers: &[Answer]) -> Vec<String> {
        answers
            .iter()
            .map(|a| self.of(a.upstream.as_deref()))
            .collect()
    }

    /// The live upstreams by letter, sorted: `a b c`.
    fn live(&self, status: &Status) -> String {
        let mut live: Vec<String> = status
            .upstreams
            .iter()
            .filter(|u| u.live)
            .map(|u| self.of(Some(&u.url)))
            .collect();
        live.sort();
        if live.is_empty() {
            "none".to_string()
        } else {
            live.join(" ")
        }
    }

    /// The last `change` event of `url`: `c registered (weight 1)`.
    fn event(&self, status: &Status, url: &str, change: &str) -> String {
        let letter = self.of(Some(url));
        status
            .events
            .iter()
            .rev()
            .find(|e| e.upstream == url && e.change == change)
            .map_or(format!("no '{change}' event for {letter}"), |e| {
                if change == "registered" {
                    format!("{letter} {change} ({})", e.reason)
                } else {
                    format!("{letter} {change}")
                }
            })
    }
}

/// Whether `turns` takes each of `letters` in turn, none twice in a row.
fn alternates(turns: &[String], letters: &[&str]) -> bool {
    turns.iter().all(|t| letters.contains(&t.as_str()))
        && turns.windows(2).all(|w| w[0] != w[1])
        && letters.iter().all(|l| turns.iter().any(|t| t == l))
}

fn count(turns: &[String], letter: &str) -> usize {
    turns.iter().filter(|t| *t == letter).count()
}

/// `6 × 200 in set 2`, or every status and set when they differ.
fn statuses(answers: &[Answer]) -> String {
    let set = |a: &Answer| a.set.map_or("?".to_string(), |g| g.to_string());
    match answers.first() {
        Some(first)
            if answers
                .iter()
                .all(|a| a.status == first.status && a.set == first.set) =>
        {
            format!("{} × {} in set {}", answers.len(), first.status, set(first))
        }
        _ => answers
            .iter()
            .map(|a| format!("{} in set {}", a.status, set(a)))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The statuses seen, each once: `200`, or `200 502`.
fn distinct_statuses(answers: &[Answer]) -> String {
    let mut distinct: Vec<u16> = answers.iter().map(|a| a.status).collect();
    distinct.sort_unstable();
    distinct.dedup();
    distinct
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}
