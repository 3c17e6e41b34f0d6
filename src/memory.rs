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
//!
//! And each thread that served the load empties its own malloc cache
//! ([`give_back_thread_cache`]). glibc keeps, per thread, up to 7 freed
//! chunks of each small size (the "tcache") to hand out again without a
//! lock. To the allocator those chunks are still in use, so the trim cannot
//! return their pages; and the last ones freed as a load ends sit all over
//! the heap. Measured (`GLIBC_TUNABLES=glibc.malloc.tcache_count=0`, 6
//! rounds of 2 000 connections): without the cache, the worker arenas held
//! 120 + 152 KB after the rounds; with it, 1 100 + 1 000 KB.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
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

/// How many loads have passed: a thread that served one empties its
/// malloc cache when it sees this change (see [`give_back_thread_cache`]).
static LOADS_PASSED: AtomicU64 = AtomicU64::new(0);

/// How many loads have passed since the process started.
pub fn loads_passed() -> u64 {
    LOADS_PASSED.load(Ordering::Relaxed)
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
            // The worker threads empty their caches on their next tick,
            // before the second trim. Not this thread: it served none of
            // the load, and refilling an almost empty cache would pin more
            // pages than it frees.
            LOADS_PASSED.fetch_add(1, Ordering::Relaxed);
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

/// Size classes in glibc's per-thread cache: chunks of 32 to 1 040 bytes,
/// 16 apart.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const CACHE_BINS: usize = 64;

/// Chunks glibc's per-thread cache keeps per size class (its default,
/// `glibc.malloc.tcache_count`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const CACHE_PER_BIN: usize = 7;

/// Empties the calling thread's malloc cache into the heap, where the next
/// trim can return the pages it pinned (see the module).
///
/// glibc has no call for it, so it is done with malloc's own rules: a
/// `malloc` of a cached size takes from the cache first, and a `free` puts
/// back into the cache only while it has room. So, for each size class:
/// take 7 chunks (the cache's: freed as the load ended, anywhere in the
/// heap), then 7 more (from the heap, where it finds room now, after the
/// trim has merged what is free); free the second 7 first (they refill the
/// cache) and then the first 7 (the cache is full: they go back to the heap).
/// (When a `malloc` finds the cache empty, glibc may refill it from the
/// heap's free chunks of that size; those were free in the heap already, so
/// the cache then keeps them, not the chunks the load freed last.)
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn give_back_thread_cache() {
    let mut taken = [[std::ptr::null_mut::<libc::c_void>(); 2 * CACHE_PER_BIN]; CACHE_BINS];
    for (bin, chunks) in taken.iter_mut().enumerate() {
        // The request that fills a chunk of 32 + 16 * bin bytes exactly.
        let size = 24 + 16 * bin;
        for chunk in chunks.iter_mut() {
            // SAFETY: a plain allocation, freed below (free(NULL) is a no-op).
            *chunk = unsafe { libc::malloc(size) };
        }
    }
    for chunks in &taken {
        let (from_cache, from_heap) = chunks.split_at(CACHE_PER_BIN);
        for &chunk in from_heap.iter().chain(from_cache) {
            // SAFETY: each pointer came from malloc above and is freed once.
            unsafe { libc::free(chunk) };
        }
    }
}

/// Other allocators: nothing to empty.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn give_back_thread_cache() {}

#[cfg(test)]
mod tests {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    use super::*;

    /// Chunks freed as a load ended sit in the thread's cache, and the
    /// next allocations of their size get them back (last freed, first
    /// out). After the cache is emptied they are in the heap, and the
    /// cache hands out other chunks.
    /// (glibc's per-thread cache is what is tested.)
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn the_chunks_a_load_freed_leave_the_thread_cache() {
        // A thread of its own: its cache holds nothing of other tests.
        std::thread::spawn(|| {
            // Sizes larger than the heap's fast bins, and odd ones: when a
            // `malloc` finds the cache empty, glibc refills the cache from
            // the heap's free chunks of the same size, and tests running
            // beside this one (sharing its heap arena) free small common
            // sizes all the time.
            let sizes = [456, 824, 1000];
            // SAFETY (every block below): plain allocations of `size`
            // bytes, each freed once and never used.
            let take = |size: usize| -> Vec<*mut libc::c_void> {
                (0..CACHE_PER_BIN)
                    .map(|_| unsafe { libc::malloc(size) })
                    .collect()
            };
            let free = |chunks: Vec<*mut libc::c_void>| {
                for chunk in chunks {
                    unsafe { libc::free(chunk) };
                }
            };
            let addresses =
                |chunks: &[*mut libc::c_void]| chunks.iter().map(|&c| c as usize).collect();
            // The cache may already hold chunks of these sizes (the thread's
            // start freed some): taken out and held, so that it holds only
            // what the "load" frees.
            let held: Vec<_> = sizes.iter().map(|&size| take(size)).collect();
            // 7 chunks of `size` taken and freed at once, by address: what
            // a load leaves in the cache, and, done again, what the cache
            // hands out next.
            let take_and_free = |size: usize| -> Vec<usize> {
                let chunks = take(size);
                let used = addresses(&chunks);
                free(chunks);
                used
            };

            // Without emptying: the same chunks come back.
            for size in sizes {
                let freed = take_and_free(size);
                let again = take_and_free(size);
                assert!(again.iter().all(|chunk| freed.contains(chunk)), "{size}");
            }
            // Emptied: none of them.
            let freed: Vec<(usize, Vec<usize>)> =
                sizes.map(|size| (size, take_and_free(size))).into();
            give_back_thread_cache();
            for (size, freed) in freed {
                let again = take_and_free(size);
                assert!(again.iter().all(|chunk| !freed.contains(chunk)), "{size}");
            }
            held.into_iter().for_each(free);
        })
        .join()
        .unwrap();
    }
}
