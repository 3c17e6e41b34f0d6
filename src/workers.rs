//! One runtime per core (`lab proxy --threads N`): N threads, each running a
//! single-threaded tokio runtime that accepts on a listener of its own
//! (`SO_REUSEPORT`: the kernel spreads new connections among them) and
//! serves those connections start to end.
//!
//! Why not one multi-threaded runtime: there, a connection's task can move
//! between threads and wake another thread for each readiness event; here a
//! request's reads, writes, balancer choice and upstream exchange all happen
//! on the thread that accepted its connection, with no hand-over. What the
//! workers share (the balancer, the statistics, the breakers) is shared
//! through the same locks and atomics as before, so the smooth weighted
//! round robin sequence stays exact across threads.
//!
//! What is bound to a runtime (an upstream connection is driven by the
//! runtime that made it) is kept per worker: [`current`] says which runtime
//! the calling thread belongs to, 0 for the main one (health checks,
//! discovery, every other command).

use std::cell::Cell;
use std::future::Future;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// The most worker runtimes a process runs.
pub const MAX: usize = 64;

thread_local! {
    static WORKER: Cell<usize> = const { Cell::new(0) };
}

/// The current thread's worker number: 0 outside the workers.
pub fn current() -> usize {
    WORKER.with(Cell::get)
}

/// One worker per core this process may use (at most [`MAX`]).
pub fn per_core() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX)
}

/// Serves each of `listeners` on a worker thread of its own: `serve(listener,
/// stop)` runs in that thread's runtime until `stop` resolves, which it does
/// when `shutdown` resolves here. Returns when every worker has finished
/// (each drains its own connections), or with the first worker's error, the
/// others stopped.
pub async fn serve<F, Fut>(
    listeners: Vec<std::net::TcpListener>,
    serve: F,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()>
where
    F: Fn(tokio::net::TcpListener, WaitForCancellationFutureOwned) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + 'static,
{
    let stop = CancellationToken::new();
    let serve = std::sync::Arc::new(serve);
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut threads = Vec::new();
    for (index, listener) in listeners.into_iter().enumerate() {
        let number = (index + 1).min(MAX);
        let (serve, stop, done) = (serve.clone(), stop.clone(), done_tx.clone());
        let thread = std::thread::Builder::new()
            .name(format!("lab-worker-{number}"))
            .spawn(move || {
                WORKER.with(|worker| worker.set(number));
                let result = run_worker(listener, &*serve, stop);
                // The receiver may be gone if the main runtime is stopping.
                let _ = done.send(result);
            })
            .context("cannot start a worker thread")?;
        threads.push(thread);
    }
    drop(done_tx);
    let count = threads.len();

    // Until the shutdown signal, or a worker that ends on its own (an error).
    let mut results = Vec::with_capacity(count);
    tokio::select! {
        () = shutdown => {}
        Some(early) = done_rx.recv() => results.push(early),
    }
    stop.cancel();
    while results.len() < count {
        match done_rx.recv().await {
            Some(result) => results.push(result),
            None => break,
        }
    }
    for thread in threads {
        let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    }
    results.into_iter().collect()
}

/// One worker: a single-threaded runtime serving `listener` until `stop`.
fn run_worker<F, Fut>(
    listener: std::net::TcpListener,
    serve: &F,
    stop: CancellationToken,
) -> anyhow::Result<()>
where
    F: Fn(tokio::net::TcpListener, WaitForCancellationFutureOwned) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a worker's runtime")?;
    // This thread runs this one runtime for its life: its requests can hand
    // their timers on to the next (see crate::timer), until it is dropped.
    crate::timer::recycle_on_this_thread();
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::from_std(listener)
            .context("cannot register the worker's listener")?;
        tokio::spawn(keep_a_timer_near());
        serve(listener, stop.cancelled_owned()).await
    });
    crate::timer::stop_recycling_on_this_thread();
    served
}

/// How often [`keep_a_timer_near`] ticks.
const NEAR: Duration = Duration::from_millis(500);

/// A timer that is always due within [`NEAR`], for the life of the runtime.
///
/// Why: tokio's timer wakes its own thread through an eventfd (a `write`,
/// then an extra `epoll_wait`) whenever a new timer is due sooner than
/// every timer it already holds. Each request sets timers due in seconds
/// (hyper's header-read timer, the response timeout), so on a runtime with
/// no sooner timer about one request in four paid that wake-up (counted
/// with `strace -c` under `wrk`). A tick every half second is always
/// sooner: the request's timers never wake anything, for two wake-ups a
/// second.
///
/// The tick also looks whether a load has passed, and if so lets go of the
/// timers this thread kept ([`crate::timer::forget_kept`]) and empties its
/// malloc cache ([`crate::memory::give_back_thread_cache`]); only the
/// thread that owns them can.
async fn keep_a_timer_near() {
    let mut ticks = tokio::time::interval(NEAR);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut loads_seen = crate::memory::loads_passed();
    loop {
        ticks.tick().await;
        let loads = crate::memory::loads_passed();
        if loads != loads_seen {
            loads_seen = loads;
            crate::timer::forget_kept();
            crate::memory::give_back_thread_cache();
        }
    }
}
