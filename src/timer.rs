//! Timers reused from one request to the next, on the worker threads.
//!
//! Every request sets two timers that almost never fire: hyper's limit on
//! reading the request head, and the proxy's response timeout (30 s by
//! default). A fresh `tokio::time::sleep` per request pays for its place in
//! the runtime's timer wheel twice: it is inserted on its first poll and
//! removed when dropped, each time under the wheel's lock. But tokio moves
//! a registered timer to a *later* deadline with one compare-and-swap, and
//! leaves it where it is in the wheel (when its old slot comes up, the
//! wheel sees the new deadline and files it again). Since each request's
//! deadline is later than the last one's, a timer handed from request to
//! request never goes back to the wheel while the traffic lasts.
//!
//! So a worker thread keeps the timers its requests are done with
//! ([`Deadline`]'s drop puts them back) and the next request takes one.
//! Only on the worker threads ([`recycle_on_this_thread`]): a timer belongs
//! to the runtime that made it, and a worker thread has one runtime for its
//! whole life. Elsewhere a [`Deadline`] is a plain fresh timer.
//!
//! A kept timer still holds the waker of the last request that waited on
//! it, which keeps that finished task's memory; so the thread keeps only a
//! few ([`KEEP`]), and lets them all go when a load has passed
//! ([`forget_kept`]).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::TokioTimer;
use tokio::time::{Instant, Sleep};

/// The most timers a thread keeps for reuse.
const KEEP: usize = 32;

thread_local! {
    /// The timers this thread keeps; `None` where it does not recycle.
    static KEPT: RefCell<Option<Vec<Pin<Box<Sleep>>>>> = const { RefCell::new(None) };
}

/// From now on, timers dropped on this thread are kept for the next
/// [`Deadline`] made here. For a thread that runs one runtime for as long
/// as it recycles; call [`stop_recycling_on_this_thread`] before that
/// runtime is dropped.
pub fn recycle_on_this_thread() {
    KEPT.with(|kept| *kept.borrow_mut() = Some(Vec::new()));
}

/// Drops the kept timers and keeps no more on this thread.
pub fn stop_recycling_on_this_thread() {
    let kept = KEPT.with(|kept| kept.borrow_mut().take());
    drop(kept);
}

/// Drops the timers this thread keeps (and the wakers they hold), still
/// recycling from now on.
pub fn forget_kept() {
    let kept = KEPT.with(|kept| kept.borrow_mut().as_mut().map(std::mem::take));
    drop(kept);
}

/// How many of the most recently kept timers [`take`] looks at.
const LOOK_AT: usize = 4;

/// A kept timer to move to `deadline`: one whose deadline is not later, if
/// one of the last few kept is (moving a timer to a sooner deadline takes it
/// out of the wheel and puts it back, under the lock: the header timer,
/// 11 s, and the response timeout, 30 s, take turns), else the last kept.
fn take(kept: &mut Vec<Pin<Box<Sleep>>>, deadline: Instant) -> Option<Pin<Box<Sleep>>> {
    let sooner = kept
        .iter()
        .rev()
        .take(LOOK_AT)
        .position(|sleep| sleep.deadline() <= deadline);
    match sooner {
        Some(from_end) => Some(kept.swap_remove(kept.len() - 1 - from_end)),
        None => kept.pop(),
    }
}

/// A far deadline for "no limit" (tokio's own `sleep(Duration::MAX)` uses
/// about 30 years too).
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365 * 30)
}

/// A timer that fires at a deadline, reused on the worker threads (see the
/// module). Needs a tokio runtime with its timer.
pub struct Deadline {
    // Always `Some` until dropped (taken out in `drop` to be kept).
    sleep: Option<Pin<Box<Sleep>>>,
}

impl Deadline {
    /// Fires at `deadline`.
    pub fn at(deadline: Instant) -> Deadline {
        let kept = KEPT.with(|kept| {
            kept.borrow_mut()
                .as_mut()
                .and_then(|kept| take(kept, deadline))
        });
        let sleep = match kept {
            Some(mut sleep) => {
                // Later than its last deadline: a compare-and-swap, no lock.
                sleep.as_mut().reset(deadline);
                sleep
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        Deadline { sleep: Some(sleep) }
    }

    /// Fires `limit` from now.
    pub fn after(limit: Duration) -> Deadline {
        Deadline::at(Instant::now().checked_add(limit).unwrap_or_else(far_future))
    }

    /// Fires at `deadline` instead.
    pub fn reset(&mut self, deadline: Instant) {
        if let Some(sleep) = self.sleep.as_mut() {
            sleep.as_mut().reset(deadline);
        }
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        match self.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        let Some(sleep) = self.sleep.take() else {
            return;
        };
        // A fired timer would go back to the wheel's lock on reuse anyway.
        if sleep.is_elapsed() {
            return;
        }
        // `try_with`: at thread exit the list may already be gone.
        let _ = KEPT.try_with(|kept| {
            if let Ok(mut kept) = kept.try_borrow_mut()
                && let Some(kept) = kept.as_mut()
                && kept.len() < KEEP
            {
                kept.push(sleep);
            }
        });
    }
}

impl hyper::rt::Sleep for Deadline {}

/// Whether this thread keeps timers for reuse ([`recycle_on_this_thread`]).
fn recycling() -> bool {
    KEPT.with(|kept| kept.borrow().is_some())
}

/// hyper's timer (its header-read limit): [`Deadline`]s where this thread
/// recycles timers, hyper-util's plain tokio timer elsewhere (a
/// [`Deadline`] there would be a second allocation around the same fresh
/// timer).
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperTimer;

impl hyper::rt::Timer for HyperTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        if recycling() {
            Box::pin(Deadline::after(duration))
        } else {
            TokioTimer::new().sleep(duration)
        }
    }

    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        if recycling() {
            Box::pin(Deadline::at(deadline.into()))
        } else {
            TokioTimer::new().sleep_until(deadline)
        }
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, new_deadline: std::time::Instant) {
        match sleep.as_mut().downcast_mut_pin::<Deadline>() {
            Some(deadline) => deadline.get_mut().reset(new_deadline.into()),
            None => TokioTimer::new().reset(sleep, new_deadline),
        }
    }
}

/// What [`within`] gives when the limit passed first.
#[derive(Debug, PartialEq, Eq)]
pub struct TimedOut;

pin_project_lite::pin_project! {
    /// [`within`]'s future: `work`, and a deadline if there is a limit.
    ///
    /// A struct rather than an `async fn` with `select!`: the work is a
    /// large future (a whole upstream round trip), and each layer of
    /// `async` and `select!` copies it once more when it is built.
    pub struct Within<F> {
        #[pin]
        work: F,
        deadline: Option<Deadline>,
    }
}

/// Runs `work` for at most `limit` (`None`: no limit, and no timer).
pub fn within<F: Future>(limit: Option<Duration>, work: F) -> Within<F> {
    Within {
        work,
        deadline: limit.map(Deadline::after),
    }
}

impl<F: Future> Future for Within<F> {
    type Output = Result<F::Output, TimedOut>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        // The work first: a result that is ready counts even at the limit.
        if let Poll::Ready(output) = this.work.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        match this.deadline {
            Some(deadline) => Pin::new(deadline).poll(cx).map(|()| Err(TimedOut)),
            None => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The address of the timer inside a deadline (to see it reused).
    fn timer_of(deadline: &Deadline) -> usize {
        let sleep: &Sleep = deadline.sleep.as_ref().unwrap();
        sleep as *const Sleep as usize
    }

    #[tokio::test(start_paused = true)]
    async fn a_recycling_thread_hands_the_same_timer_to_the_next_request() {
        recycle_on_this_thread();
        let mut first = Deadline::after(Duration::from_secs(30));
        // Registered in the wheel, as a request waiting on it would be.
        assert!(futures_util::poll!(&mut first).is_pending());
        let timer = timer_of(&first);
        drop(first);
        let mut second = Deadline::after(Duration::from_secs(30));
        assert_eq!(timer_of(&second), timer);
        // And it fires at its new deadline, not the old one.
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(futures_util::poll!(&mut second).is_pending());
        tokio::time::advance(Duration::from_secs(2)).await;
        (&mut second).await;
        // A fired timer is not kept.
        drop(second);
        let kept = || KEPT.with(|kept| kept.borrow().as_ref().map(Vec::len));
        assert_eq!(kept(), Some(0));

        drop(Deadline::after(Duration::from_secs(30)));
        assert_eq!(kept(), Some(1));
        forget_kept();
        assert_eq!(kept(), Some(0));
        stop_recycling_on_this_thread();
        assert_eq!(kept(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_takes_a_kept_timer_due_no_later_than_its_deadline() {
        recycle_on_this_thread();
        let mut header = Deadline::after(Duration::from_secs(11));
        let mut response = Deadline::after(Duration::from_secs(30));
        assert!(futures_util::poll!(&mut header).is_pending());
        assert!(futures_util::poll!(&mut response).is_pending());
        let (header_timer, response_timer) = (timer_of(&header), timer_of(&response));
        // Kept in this order: the response timeout's is the last kept.
        drop(header);
        drop(response);
        // A deadline in 12 s: the 11 s timer moves later (no lock), the
        // 30 s one would have to move sooner.
        let next = Deadline::after(Duration::from_secs(12));
        assert_eq!(timer_of(&next), header_timer);
        let after_that = Deadline::after(Duration::from_secs(12));
        assert_eq!(timer_of(&after_that), response_timer);
        stop_recycling_on_this_thread();
    }

    #[tokio::test(start_paused = true)]
    async fn elsewhere_each_deadline_is_a_fresh_timer() {
        let first = Deadline::after(Duration::from_secs(30));
        drop(first);
        KEPT.with(|kept| assert!(kept.borrow().is_none()));
        let started = Instant::now();
        Deadline::after(Duration::from_secs(5)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn hyper_gets_a_deadline_only_where_timers_are_recycled() {
        use hyper::rt::Timer;
        let is_deadline = |mut sleep: Pin<Box<dyn hyper::rt::Sleep>>| {
            sleep.as_mut().downcast_mut_pin::<Deadline>().is_some()
        };
        assert!(!is_deadline(HyperTimer.sleep(Duration::from_secs(11))));
        recycle_on_this_thread();
        assert!(is_deadline(HyperTimer.sleep(Duration::from_secs(11))));
        stop_recycling_on_this_thread();
    }

    #[tokio::test(start_paused = true)]
    async fn within_gives_the_work_or_times_out() {
        recycle_on_this_thread();
        let quick = within(Some(Duration::from_secs(1)), async { 7 }).await;
        assert_eq!(quick, Ok(7));
        let slow = within(
            Some(Duration::from_secs(1)),
            tokio::time::sleep(Duration::from_secs(2)),
        )
        .await;
        assert_eq!(slow, Err(TimedOut));
        let unlimited = within(None, tokio::time::sleep(Duration::from_secs(3600))).await;
        assert_eq!(unlimited, Ok(()));
        stop_recycling_on_this_thread();
    }
}
