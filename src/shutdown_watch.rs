//! [`ShutdownWatch`]: a connection waiting for the shutdown signal beside
//! its work, at the cost of two atomics per wake-up.
//!
//! A served connection waits on two things at once: its own I/O and the
//! listener's shutdown token ("finish the request in flight and close").
//! The token's own future (`CancellationToken::cancelled`) is made for
//! waiting on once: each poll locks the token's mutex twice (once to read
//! the flag, once to check the waker it holds). A connection's task wakes
//! several times per request, and every connection shares the one token, so
//! under load the worker threads took turns on one lock for nothing: it is
//! almost never cancelled.
//!
//! So the watch polls the token's future only when that future itself
//! asked to be polled: it gives the future a waker of its own, which sets a
//! flag and wakes the task. Every other wake-up costs reading the flag and
//! remembering the task's waker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Resolves once `token` is cancelled (see the module).
pub struct ShutdownWatch {
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    relay: Arc<Relay>,
    /// Whether `cancelled` has been polled once (and so holds our waker).
    polled: bool,
}

/// The waker handed to the token's future: notes that it fired and wakes
/// the task that waits on the watch.
struct Relay {
    fired: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Relay {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl ShutdownWatch {
    pub fn new(token: CancellationToken) -> ShutdownWatch {
        ShutdownWatch {
            cancelled: Box::pin(token.cancelled_owned()),
            relay: Arc::new(Relay {
                fired: AtomicBool::new(false),
                task: AtomicWaker::new(),
            }),
            polled: false,
        }
    }
}

impl Future for ShutdownWatch {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // The task's waker first: a firing from here on wakes this task.
        self.relay.task.register(cx.waker());
        let fired = self.relay.fired.load(Ordering::Acquire)
            && self.relay.fired.swap(false, Ordering::AcqRel);
        if self.polled && !fired {
            return Poll::Pending;
        }
        self.polled = true;
        let waker = Waker::from(self.relay.clone());
        self.cancelled
            .as_mut()
            .poll(&mut Context::from_waker(&waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn resolves_when_the_token_is_cancelled_and_not_before() {
        let token = CancellationToken::new();
        let mut watch = ShutdownWatch::new(token.clone());
        assert!(futures_util::poll!(&mut watch).is_pending());
        // Wake-ups of the task that are not the token's leave it pending.
        for _ in 0..3 {
            tokio::task::yield_now().await;
            assert!(futures_util::poll!(&mut watch).is_pending());
        }
        let cancel = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            cancel.cancel();
        });
        tokio::time::timeout(Duration::from_secs(5), watch)
            .await
            .expect("the watch saw the cancellation");
    }

    #[tokio::test]
    async fn an_already_cancelled_token_resolves_at_once() {
        let token = CancellationToken::new();
        token.cancel();
        let mut watch = ShutdownWatch::new(token);
        assert!(futures_util::poll!(&mut watch).is_ready());
    }

    #[test]
    fn a_cancellation_from_another_thread_wakes_the_waiting_task() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let token = CancellationToken::new();
        let cancel = token.clone();
        let canceller = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            cancel.cancel();
        });
        runtime.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), ShutdownWatch::new(token))
                .await
                .expect("woken from the other thread");
        });
        canceller.join().unwrap();
    }
}
