//! `lab trace`: the lab's window. It sends the same request N times through a
//! proxy and shows, for each one, the balancer's choice beside what the
//! upstream saw: the pick and its explanation (`X-Lab-Pick`), the status,
//! the latency, and the real server's echo (RemoteAddr, X-Forwarded-For,
//! X-Real-Ip, Host, URI, every header).
//!
//! Every request carries `X-Lab-Explain: 1` (ask `lab proxy` to explain its
//! pick) and `Accept: application/json` (ask the real server for its JSON
//! echo). Without a balancer in the path (`lab naive`, a forward proxy,
//! `--direct`) the upstream is the server that answered (`X-Lab-Server`).
//!
//! - [`fire`]: the client: one connection per request, header lines exactly
//!   as listed, records collected in sequence order;
//! - [`model`]: the data of a run, which is also the `--json` schema;
//! - [`pick`]: the balancer's explanation read back, in one compact cell;
//! - [`diff`]: the client's headers against the upstream's, and one proxy's
//!   upstream view against another's (`--compare`);
//! - [`render`]: the human output: tables, the header diff, summary bars.
//!
//! # `--json`: one document (stable: fields are added, never renamed)
//!
//! ```text
//! {
//!   "mode": "reverse" | "forward" | "direct",
//!   "proxy": "http://127.0.0.1:2002",        where the requests were sent
//!   "target": "http://127.0.0.1:2003" | null, --target (forward mode)
//!   "seed": 7 | null,                         --seed, echoed
//!   "sent": { "method", "target", "headers": [[name, value], …], "body_bytes" },
//!   "requests": [ {
//!       "seq": 1,                             1, 2, 3 … in the order started
//!       "status": 200 | null,                 null: no response at all
//!       "upstream": "http://127.0.0.1:2004/base" | null,
//!       "server": "127.0.0.1:2004" | null,    the real server that answered
//!       "pick": { "algorithm": "weighted", … } | null,   X-Lab-Pick, as sent
//!       "upstream_saw": {                     null when the answer was no echo
//!           "remote_addr", "x_forwarded_for" (null if absent), "x_real_ip",
//!           "host", "uri", "headers": [[name, value], …], "body_bytes" },
//!       "latency_ms": 1.234,                  connect to last byte
//!       "client_addr": "127.0.0.1:50123" | null,
//!       "set": 2 | null,                      X-Lab-Set: the upstream set's generation
//!       "layer": "rate-limit" | null,         X-Lab-Layer: the proxy layer that answered
//!       "passed_over": false,                 X-Lab-Breaker: the pick's breaker was open
//!       "intercepted": "redirect 198.51.100.2:2003" | null,  X-Lab-Intercepted (lab transparent)
//!       "error": "…" | null                   why there was no response
//!   } ],
//!   "summary": {
//!       "requests": 30,
//!       "per_upstream": { "http://127.0.0.1:2003/base": 10, … },
//!       "per_status": { "200": 30 },
//!       "failed": 0,
//!       "latency_ms": { "p50": 1.2, "p99": 3.4 } },
//!   "compare": {                              only with --compare
//!       "proxy": "http://127.0.0.1:2012",
//!       "requests": [ …as above… ], "summary": { …as above… },
//!       "differences": [ { "seq": 1, "field": "x_forwarded_for",
//!                          "left": null, "right": "127.0.0.1" } ] },
//!   "set_changes": [                          only when the upstream set changed under the run
//!       { "generation": 2, "at": "2026-…Z", "upstream": "http://127.0.0.1:2004/base",
//!         "change": "left" | "joined" | "registered" | "deregistered",
//!         "reason": "3 failed checks in a row: cannot connect: …" } ]
//! }
//! ```
//!
//! `field` is `status`, `server`, `remote_ip` (ports always differ, so only
//! the IP is compared), `x_forwarded_for`, `x_real_ip`, `host`, `uri`, or
//! `header:NAME` for any other header the upstream saw; `left` is the main
//! run, `right` the compared proxy. Both runs send the same request, Host
//! included, so every difference is the proxies'.
//!
//! # Exit status
//!
//! 0 when the requests were sent, whatever they were answered (a 502 or a
//! reset is data here); 1 with a one-line hint naming the command to start
//! when nothing listens at an address given (`--proxy`: `lab proxy`,
//! `--forward`: `lab forward`, `--direct`: `lab realserver`, `--compare`:
//! `lab naive`); 2 for a usage error (clap's).
//!
//! On a terminal, or with `--interval`, each request's row is printed as it
//! completes (in sequence order), with a counter on stderr under the rows
//! when stderr is a terminal; the legend, what the upstream saw, the header
//! diff and the summary follow at the end. Otherwise (a pipe, `--json`,
//! `--compare`) the whole report is printed at the end, and runs of more
//! than 50 requests show a progress bar on a terminal's stderr.
//! `--interval D` starts one request every D instead of all at once: a slow
//! run, to watch the upstream set change under it.

pub mod diff;
pub mod fire;
pub mod model;
pub mod pick;
pub mod render;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::net::Endpoint;
use fire::{Pace, Plan, Route};
use model::{Comparison, Summary, Trace};

/// Runs of more requests than this get a progress bar (on a terminal).
const PROGRESS_ABOVE: u64 = 50;

/// What `lab trace` is asked to do (its flags, as the command line turns
/// them into values).
#[derive(Debug, Clone)]
pub struct TraceConfig {
    /// Through a reverse or forward proxy, or straight to a server.
    pub route: Route,
    /// The request to send, each time.
    pub plan: Plan,
    /// How many times.
    pub requests: u64,
    pub pace: Pace,
    /// A second proxy to send the same requests through (`--compare`).
    pub compare: Option<Endpoint>,
    /// A seed to note in the output (`--seed`).
    pub seed: Option<u64>,
    /// One JSON document instead of tables.
    pub json: bool,
    /// `-v`: every request's headers; `-vv`: the bodies too.
    pub verbose: u8,
}

/// `lab trace`: fire, collect, print (a table or `--json`).
pub async fn run(config: &TraceConfig) -> anyhow::Result<ExitCode> {
    let (route, plan, pace) = (&config.route, &config.plan, config.pace);
    let what = match route.mode() {
        model::Mode::Reverse => "the reverse proxy",
        model::Mode::Forward => "the forward proxy",
        model::Mode::Direct => "the server",
    };
    let addr = reachable(route.endpoint(), what, &route.start_command()).await?;
    let compare = match &config.compare {
        Some(endpoint) => {
            let start = format!("lab naive --listen {}", endpoint.authority());
            let addr = reachable(endpoint, "the proxy to compare with", &start).await?;
            Some((endpoint, addr))
        }
        None => None,
    };

    let request = plan.request_for(route, None);
    let runs = if compare.is_some() { 2 } else { 1 };
    // Rows as they complete: on a terminal, or when the requests are paced
    // (`--interval`: a slow run, watched while servers stop and start).
    let live = !config.json
        && compare.is_none()
        && (std::io::stdout().is_terminal() || pace.interval.is_some());
    let progress = progress_bar(config.requests, runs, live);
    let width = crate::output::width();
    let rows = live.then(|| {
        let rows = render::live::Rows::new(width);
        let title = render::live::title(
            route.mode(),
            &request.sent(),
            config.requests,
            &route.endpoint().to_string(),
            width,
        );
        progress.suspend(|| print!("{title}{}", rows.header()));
        std::sync::Mutex::new(rows)
    });
    let done = |record: &model::Record| {
        if let Some(rows) = &rows {
            let mut rows = rows
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let text = rows.push(record.clone());
            if !text.is_empty() {
                progress.suspend(|| {
                    print!("{text}");
                    let _ = std::io::Write::flush(&mut std::io::stdout());
                });
            }
        }
    };
    let requests = fire::fire(addr, &request, config.requests, pace, &progress, &done).await;
    let set_changes = match route.mode() {
        model::Mode::Reverse => set_changes(addr, &requests).await,
        _ => Vec::new(),
    };
    let compare = match compare {
        Some((endpoint, addr)) => {
            // The same request, Host included: any difference is the proxies'.
            let other = Route::Reverse(endpoint.clone());
            let same = plan.request_for(&other, Some(route.host()));
            let records = fire::fire(addr, &same, config.requests, pace, &progress, &|_| {}).await;
            Some(Comparison {
                proxy: endpoint.to_string(),
                summary: Summary::of(&records),
                differences: diff::differences(&requests, &records),
                requests: records,
            })
        }
        None => None,
    };
    progress.finish_and_clear();

    let trace = Trace {
        mode: route.mode(),
        proxy: route.endpoint().to_string(),
        target: route.target().map(ToString::to_string),
        seed: config.seed,
        sent: request.sent(),
        summary: Summary::of(&requests),
        requests,
        compare,
        set_changes,
    };
    if config.json {
        let json =
            serde_json::to_string_pretty(&trace).context("cannot write the trace as JSON")?;
        println!("{json}");
    } else {
        let text = if live {
            render::render_after_live(&trace, config.verbose, width)
        } else {
            render::render(&trace, config.verbose, width)
        };
        print!("{text}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The changes of the proxy's upstream set that the records span: when
/// their `set` generations differ, the proxy's `/_lab/upstreams` tells what
/// happened in between. Empty when nothing changed or the proxy cannot say.
async fn set_changes(addr: SocketAddr, records: &[model::Record]) -> Vec<crate::discovery::Event> {
    let generations = records.iter().filter_map(|r| r.set);
    let (Some(first), Some(last)) = (generations.clone().min(), generations.max()) else {
        return Vec::new();
    };
    if first == last {
        return Vec::new();
    }
    let status = crate::proxy::admin::fetch_upstreams(addr);
    match tokio::time::timeout(fire::REQUEST_TIMEOUT, status).await {
        Ok(Ok(status)) => status
            .events
            .into_iter()
            .filter(|e| e.generation > first && e.generation <= last)
            .collect(),
        _ => Vec::new(),
    }
}

/// Resolves `endpoint` and checks that something accepts connections there.
async fn reachable(endpoint: &Endpoint, what: &str, start: &str) -> anyhow::Result<SocketAddr> {
    let addr = endpoint.resolve().await?;
    fire::check_listening(addr, what, start, "point lab trace at a running one").await?;
    Ok(addr)
}

/// A bar on stderr for long runs (`requests` per run, `runs` runs), or a
/// counter under the rows as they come (`live`), on a terminal; hidden
/// otherwise, so pipes and tests see none.
fn progress_bar(requests: u64, runs: u64, live: bool) -> ProgressBar {
    if (requests <= PROGRESS_ABOVE && !live) || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(requests * runs);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:30} {pos}/{len} requests, {elapsed} {msg}")
    {
        bar.set_style(style.progress_chars("█░ "));
    }
    bar
}
