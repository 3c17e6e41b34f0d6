//! Memory given back after a load has passed.
//!
//! A server that held 2 000 connections for a moment freed everything they
//! used when they closed, and yet its resident memory (RSS) stays near the
//! peak: glibc's allocator keeps freed memory in its arenas for the next
//! allocation instead of returning it to the kernel. Measured with
//! `bench/idle_connections.py --rounds`, it is retention, not a leak:
//! `malloc_trim(0)` hands the free pages back and RSS falls most of the way
//! to where it started (a leak would not fall).
//!
//! So a background task watches how many client connections the process
//! holds ([`crate::server::open_connections`], and the peak between two
//! looks, so that a load shorter than a second is seen); once that number has
//! fallen well below its peak and stayed down, the load is over, and it
//! asks the allocator to give back what is free. Once per load, not per
//! request: a trim walks the heap, which takes a few milliseconds.
//!
//! Before the trim, whatever registered with [`after_load`] lets go of what
//! the load left behind: each upstream connection pool closes its idle
//! connections. An idle connection keeps two buffers and, made at the
//! peak, pins pages all over the heap that the trim could otherwise return
//! (bench/RESULTS.md, "Memory given back after a load": with every idle
//! connection kept, RSS after 8 rounds of 2 000 connections stayed 36–39 %
//! above its level before the load; with two per upstream kept, 20–23 %).

use std::sync::Mutex;
use std::time::Duration;

/// What to do when a load has passed, before the trim (see the module).
type AfterLoad = Box<dyn Fn() -> bool + Send + Sync>;

static AFTER_LOAD: Mutex<Vec<AfterLoad>> = Mutex::new(Vec::new());

/// Runs `release` each time a load has passed, just before free memory is
/// given back. It should return quickly; it returns false once what it
/// releases is gone, and is then forgotten.
pub fn after_load(release: impl Fn() -> bool + Send + Sync + 'static) {
    AFTER_LOAD
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Box::new(release));
}

/// Runs every [`after_load`] callback, forgetting those that are done.
fn release_after_load() {
    AFTER_LOAD
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|release| release());
}

/// How often the task looks.
const EVERY: Duration = Duration::from_secs(1);

/// Ticks after a load's trim for the second one.
const AGAIN_AFTER: u32 = 2;

/// A fall of this many connections from the peak is a load that passed
/// (fewer is ordinary coming and going, not worth a trim).
const LOAD: usize = 128;

/// Watches the connection count for as long as the runtime runs, and
/// gives free memory back after each load (see the module).
pub async fn give_back_after_load() {
    let mut peak = crate::server::take_peak_connections();
    let mut previous = crate::server::open_connections();
    let mut ticker = tokio::time::interval(EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Ticks until a second trim: some of a load's memory is freed a little
    // after its connections close (deferred releases, tasks winding down).
    let mut again: Option<u32> = None;
    loop {
        ticker.tick().await;
        peak = peak.max(crate::server::take_peak_connections());
        let now = crate::server::open_connections();
        // Down from the peak, and no longer falling: the load is over.
        if peak >= now + LOAD && now >= previous {
            release_after_load();
            let released = trim();
            tracing::debug!(
                "{peak} → {now} client connections: gave free memory back to the system ({released})"
            );
            peak = now;
            again = Some(AGAIN_AFTER);
        } else if let Some(ticks) = again {
            again = ticks.checked_sub(1);
            if ticks == 0 {
                trim();
            }
        }
        previous = now;
    }
}

/// Hands the allocator's free pages back to the kernel.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() -> &'static str {
    // SAFETY: malloc_trim only walks glibc's own heap, under its locks.
    if unsafe { libc::malloc_trim(0) } == 1 {
        "some released"
    } else {
        "nothing to release"
    }
}

/// Other allocators return memory on their own terms.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> &'static str {
    "not glibc: nothing to do"
}
