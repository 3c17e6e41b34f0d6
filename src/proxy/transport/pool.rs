//! The idle lists (空闲连接池): keep-alive upstream connections waiting for
//! their next request, one list per upstream, newest last.
//!
//! - **LIFO.** A request takes the connection that went idle last: it is the
//!   one least likely to have been closed by the upstream's own idle timeout,
//!   and under a light load the same few connections carry everything while
//!   the others age out (Go's Transport does the same).
//! - **Per runtime.** With `--threads N`, each worker thread runs its own
//!   runtime, and a connection is driven by the runtime that made it, so each
//!   worker has its own lists (a shard), locked only by that thread; the main
//!   runtime (health checks, the other commands) has shard 0.
//! - **Bounded.** At most `--max-idle-per-host` connections wait per upstream
//!   (0: none, a connection per request); one idle past `--idle-timeout` is
//!   closed by a sweeper task and never handed out.
//!
//! After a load has passed ([`crate::memory`]), the idle connections are
//! closed: made at the peak, they pin memory all over the heap, and the
//! traffic that remains opens what it needs again.
//!
//! A connection comes back only when its response body was read to the end
//! ([`super::body::UpstreamBody`]); one whose client left mid-body is
//! closed, since the rest of that response is still on its way.

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;

use super::connector::{Destination, UpstreamIo};
use super::tracked::{ConnectionUse, Tracked};
use crate::body::RequestBody;
use crate::workers;

/// An upstream connection's bytes as hyper reads and writes them.
pub(super) type Stream = TokioIo<Tracked<UpstreamIo>>;

/// One upstream connection: the handle requests are sent on, and the
/// connection's own future, which reads and writes. No task of its own
/// drives it: whoever uses the connection polls it (the round trip, then
/// the response body), so a request costs no hand-over to another task.
pub(super) struct Pooled {
    pub sender: SendRequest<RequestBody>,
    /// `None` once the connection has ended.
    conn: Option<Pin<Box<Connection<Stream, RequestBody>>>>,
    /// Its exchanges and whether an answer began (see [`ConnectionUse`]).
    pub used: ConnectionUse,
    pub to: Destination,
}

impl Pooled {
    pub fn new(
        sender: SendRequest<RequestBody>,
        conn: Connection<Stream, RequestBody>,
        used: ConnectionUse,
        to: Destination,
    ) -> Pooled {
        Pooled {
            sender,
            conn: Some(Box::pin(conn)),
            used,
            to,
        }
    }

    /// Lets the connection read and write what it can; false once it has
    /// ended (closed by either side, or failed).
    pub fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        if let Some(conn) = &mut self.conn
            && conn.as_mut().poll(cx).is_ready()
        {
            self.conn = None;
        }
        self.conn.is_some()
    }

    /// Whether a request can go out on it now: alive, and hyper ready for
    /// the next request (the previous exchange finished both ways).
    fn ready_now(&mut self, cx: &mut Context<'_>) -> bool {
        self.drive(cx) && matches!(self.sender.poll_ready(cx), Poll::Ready(Ok(())))
    }

    /// Drives `future` (the response on its way) and the connection
    /// together, until `future` is done.
    pub async fn drive_until<F: Future + Unpin>(&mut self, mut future: F) -> F::Output {
        poll_fn(|cx| {
            if let Poll::Ready(done) = Pin::new(&mut future).poll(cx) {
                return Poll::Ready(done);
            }
            self.drive(cx);
            Pin::new(&mut future).poll(cx)
        })
        .await
    }
}

/// A connection waiting in an idle list, and since when.
struct Idle {
    pooled: Pooled,
    since: Instant,
}

/// One runtime's idle lists, looked up twice per request: foldhash (seeded
/// per process) hashes a key in a tenth of SipHash's time. A key is only
/// added for a connection that was made and answered, so even `lab
/// forward`'s clients cannot fill a list's map with keys of their choosing.
type Shard = HashMap<Destination, Vec<Idle>, foldhash::fast::RandomState>;

/// The idle connections of one Transport. Cheap to clone: clones share it.
#[derive(Clone)]
pub(super) struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    /// Shard 0 for the main runtime, 1..=N for the workers (see the top).
    shards: Box<[Mutex<Shard>]>,
    max_idle_per_host: usize,
    idle_timeout: Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("max_idle_per_host", &self.inner.max_idle_per_host)
            .field("idle_timeout", &self.inner.idle_timeout)
            .finish()
    }
}

impl Pool {
    /// An empty pool. Inside a runtime it starts the sweeper, which closes
    /// connections idle past `idle_timeout` (0: no limit, as in Go) and
    /// ends with the pool.
    pub fn new(max_idle_per_host: usize, idle_timeout: Duration) -> Pool {
        // Zero is Go's "no limit".
        let idle_timeout = if idle_timeout.is_zero() {
            Duration::MAX
        } else {
            idle_timeout
        };
        let shards = (0..=workers::MAX).map(|_| Mutex::default()).collect();
        let pool = Pool {
            inner: Arc::new(Inner {
                shards,
                max_idle_per_host,
                idle_timeout,
            }),
        };
        if max_idle_per_host > 0
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(sweep(Arc::downgrade(&pool.inner)));
        }
        let after_a_load = Arc::downgrade(&pool.inner);
        crate::memory::after_load(move || match after_a_load.upgrade() {
            Some(inner) => {
                inner.close_idle(Duration::ZERO);
                true
            }
            None => false,
        });
        pool
    }

    /// This thread's idle lists.
    fn shard(&self) -> std::sync::MutexGuard<'_, Shard> {
        let index = workers::current().min(self.inner.shards.len() - 1);
        // A panic while holding it leaves only idle connections behind.
        self.inner.shards[index]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The newest idle connection to `to` that is still open and ready;
    /// those found closed, expired or busy on the way are closed.
    pub async fn take(&self, to: &Destination) -> Option<Pooled> {
        loop {
            let idle = {
                // An emptied list stays until the sweeper or the close after
                // a load removes it: the next `put` finds it rather than
                // allocating it again.
                self.shard().get_mut(to)?.pop()?
            };
            if idle.since.elapsed() >= self.inner.idle_timeout {
                continue;
            }
            let mut pooled = idle.pooled;
            // One look: an upstream that closed it while it waited shows
            // now (its end of file is read); a healthy one is ready at once.
            if poll_fn(|cx| Poll::Ready(pooled.ready_now(cx))).await {
                return Some(pooled);
            }
        }
    }

    /// Puts `pooled` back in its idle list, unless the list is full or the
    /// connection is closing; otherwise it is closed here.
    ///
    /// A connection whose exchange is not over yet (the upstream answered
    /// before the whole request body was written, and hyper is still
    /// writing it) is not idle: a task of its own drives it until it is,
    /// then puts it back, or lets it go if that takes longer than the idle
    /// timeout (at most 30 s).
    pub fn give_back(&self, pooled: Pooled) {
        if pooled.conn.is_none() || pooled.sender.is_closed() {
            return;
        }
        if pooled.sender.is_ready() {
            self.put(pooled);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = self.clone();
        let limit = self.inner.idle_timeout.min(Duration::from_secs(30));
        runtime.spawn(async move {
            let mut pooled = pooled;
            let settled = poll_fn(|cx| {
                if !pooled.drive(cx) {
                    return Poll::Ready(false);
                }
                pooled.sender.poll_ready(cx).map(|ready| ready.is_ok())
            });
            if let Ok(true) = tokio::time::timeout(limit, settled).await {
                pool.put(pooled);
            }
        });
    }

    /// Puts an idle connection at the end of its list, if there is room.
    fn put(&self, pooled: Pooled) {
        let max = self.inner.max_idle_per_host;
        let mut shard = self.shard();
        let list = shard.entry(pooled.to.clone()).or_default();
        if list.len() < max {
            list.push(Idle {
                pooled,
                since: Instant::now(),
            });
        }
    }

    /// The most connections one upstream's idle list holds.
    pub fn max_idle_per_host(&self) -> usize {
        self.inner.max_idle_per_host
    }

    /// Idle connections to `to` in this thread's lists (for tests and
    /// the transport lab).
    pub fn idle_count(&self, to: &Destination) -> usize {
        self.shard().get(to).map_or(0, Vec::len)
    }
}

impl Inner {
    /// Closes every connection idle for `at_least` or longer.
    fn close_idle(&self, at_least: Duration) {
        for shard in self.shards.iter() {
            // Closed outside the lock: dropping a connection closes its socket.
            let mut closing = Vec::new();
            {
                let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
                shard.retain(|_, list| {
                    let (old, young): (Vec<Idle>, Vec<Idle>) = list
                        .drain(..)
                        .partition(|idle| idle.since.elapsed() >= at_least);
                    closing.extend(old);
                    *list = young;
                    !list.is_empty()
                });
            }
            drop(closing);
        }
    }
}

/// Closes connections idle past the timeout, every half timeout (at least
/// every 5 s, at most every 50 ms), until the pool is gone.
async fn sweep(pool: Weak<Inner>) {
    let period = {
        let Some(inner) = pool.upgrade() else { return };
        (inner.idle_timeout / 2).clamp(Duration::from_millis(50), Duration::from_secs(5))
    };
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = pool.upgrade() else { return };
        inner.close_idle(inner.idle_timeout);
    }
}
