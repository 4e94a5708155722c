//! Wake-ups an upstream exchange causes itself, absorbed inside one poll instead of costing another.
//!
//! A request's task drives its upstream connection and the futures waiting on it (the response head, the
//! response body; `pool.rs`). hyper connects those halves with channels, and each hand-over wakes the
//! other half: the connection delivering the response head fires the head's oneshot, the body asking
//! for data wakes the connection, the connection sending data wakes the body. All of them are the same
//! task, already running — yet each wake-up schedules it again, and every extra poll walks the whole
//! chain (client connection, service, both HTTP/1 state machines) only to find nothing new. Counted with
//! callgrind, that was two of the four polls of every proxied request.
//!
//! [`Absorber::run`] polls with a waker of its own. A wake-up that arrives while the exchange is being
//! polled just asks for another round of the loop; one that arrives between polls (the socket became
//! readable) wakes the task as usual.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;

/// Not being polled: wake-ups go to the task.
const IDLE: u8 = 0;
/// Being polled: a wake-up asks for another round.
const POLLING: u8 = 1;
/// Being polled, and woken since the round began.
const WOKEN: u8 = 2;

/// Rounds one poll may take before it yields to the scheduler anyway (futures that keep waking each
/// other must not starve the rest of the task's work).
const MAX_ROUNDS: usize = 8;

struct Shared {
    state: AtomicU8,
    task: AtomicWaker,
}

impl Wake for Shared {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        match self
            .state
            .compare_exchange(POLLING, WOKEN, Ordering::AcqRel, Ordering::Acquire)
        {
            // Seen by the running poll before it returns.
            Ok(_) | Err(WOKEN) => {}
            // Between polls (or racing a poll that is just starting, where the wake-up is merely
            // spurious): the task must run.
            Err(_) => self.task.wake(),
        }
    }
}

/// The waker one connection's exchanges are polled with (one per connection, made once: a stable waker
/// also spares hyper and tokio re-registering it on every poll).
pub struct Absorber {
    shared: Arc<Shared>,
    waker: Waker,
}

impl std::fmt::Debug for Absorber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Absorber").finish_non_exhaustive()
    }
}

impl Default for Absorber {
    fn default() -> Self {
        Absorber::new()
    }
}

impl Absorber {
    /// A new absorber, not being polled.
    pub fn new() -> Self {
        let shared = Arc::new(Shared {
            state: AtomicU8::new(IDLE),
            task: AtomicWaker::new(),
        });
        Absorber {
            waker: Waker::from(shared.clone()),
            shared,
        }
    }

    /// Forgets the task: the connection goes idle, undriven, and what it or its finished futures signal
    /// from now on (a dropped response body, say) must not wake a request that has moved on.
    pub fn detach(&self) {
        drop(self.shared.task.take());
    }

    /// Polls `poll` on behalf of the task of `cx`, again as long as it woke itself during the previous
    /// round (up to a bound), so that the hand-overs between a connection and its waiting futures finish
    /// within this one poll.
    pub fn run<T>(
        &self,
        cx: &mut Context<'_>,
        mut poll: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.shared.task.register(cx.waker());
        let state = &self.shared.state;
        state.store(POLLING, Ordering::Release);
        let mut inner = Context::from_waker(&self.waker);
        for _ in 0..MAX_ROUNDS {
            if let Poll::Ready(v) = poll(&mut inner) {
                state.store(IDLE, Ordering::Release);
                return Poll::Ready(v);
            }
            if state
                .compare_exchange(POLLING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                return Poll::Pending;
            }
            // Woken during the round: go again.
            state.store(POLLING, Ordering::Release);
        }
        // Still waking itself: let the scheduler run something else first, then come back.
        state.store(IDLE, Ordering::Release);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts how often the task was woken.
    struct CountingTask(AtomicUsize);

    impl Wake for CountingTask {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn task() -> (Arc<CountingTask>, Waker) {
        let t = Arc::new(CountingTask(AtomicUsize::new(0)));
        (t.clone(), Waker::from(t))
    }

    /// Polls once on behalf of `task`, pending, and returns the waker the polled future registered (as
    /// a socket or a channel would keep it).
    fn pend_once(absorber: &Absorber, task: &Waker) -> Waker {
        let mut kept = None;
        let got: Poll<()> = absorber.run(&mut Context::from_waker(task), |inner| {
            kept = Some(inner.waker().clone());
            Poll::Pending
        });
        assert_eq!(got, Poll::Pending);
        kept.expect("registered")
    }

    #[test]
    fn a_wake_during_the_poll_is_another_round_not_a_task_wake() {
        let (count, waker) = task();
        let mut cx = Context::from_waker(&waker);
        let absorber = Absorber::new();
        let mut rounds = 0;
        let got = absorber.run(&mut cx, |inner| {
            rounds += 1;
            if rounds < 3 {
                // A hand-over: the other half is now ready and says so.
                inner.waker().wake_by_ref();
                Poll::Pending
            } else {
                Poll::Ready(rounds)
            }
        });
        assert_eq!(got, Poll::Ready(3));
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_wake_after_the_poll_wakes_the_task() {
        let (count, waker) = task();
        let absorber = Absorber::new();
        let kept = pend_once(&absorber, &waker);
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        // The socket became readable later.
        kept.wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_future_that_keeps_waking_itself_yields_after_a_bound() {
        let (count, waker) = task();
        let mut cx = Context::from_waker(&waker);
        let absorber = Absorber::new();
        let mut rounds = 0;
        let got: Poll<()> = absorber.run(&mut cx, |inner| {
            rounds += 1;
            inner.waker().wake_by_ref();
            Poll::Pending
        });
        assert_eq!(got, Poll::Pending);
        assert_eq!(rounds, MAX_ROUNDS);
        // The task is rescheduled rather than left asleep.
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_detached_absorber_wakes_nobody() {
        let (count, waker) = task();
        let absorber = Absorber::new();
        let kept = pend_once(&absorber, &waker);
        absorber.detach();
        kept.wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn wakes_reach_the_task_of_the_latest_poll() {
        let (first, first_waker) = task();
        let (second, second_waker) = task();
        let absorber = Absorber::new();
        let kept = pend_once(&absorber, &first_waker);
        // The connection moved to another request's task (pool checkout).
        let _ = pend_once(&absorber, &second_waker);
        kept.wake();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }
}
