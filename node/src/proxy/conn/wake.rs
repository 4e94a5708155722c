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
//! readable) wakes the task as usual. The client connection's task is polled the same way (`server.rs`).
//!
//! One hand-over is not even worth a round: taking the last frame of a body. hyper's body channel wakes
//! its sender (the connection) whenever a frame is taken, so that it may send the next one — but after
//! the last frame there is no next one, and the connection has usually dropped its sender already. Every
//! request paid a whole extra poll of its client connection for that wake-up (2.2k instructions of 48k).
//! [`poll_frame_quietly`] holds back the wake-ups a body raises for the very waker it is polled with,
//! on this thread and during that call only, and raises them again unless the frame ended the body.
//! Wake-ups from anywhere else (another thread's I/O driver, another connection) are never held.

use std::cell::Cell;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use atomic_waker::AtomicWaker;
use http_body::{Body, Frame};

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
        if held_back(Arc::as_ptr(self).cast()) {
            return;
        }
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

/// The waker whose wake-ups on this thread are being held back (its data pointer; null for none), and
/// whether one was.
#[derive(Clone, Copy)]
struct Held {
    waker: *const (),
    woken: bool,
}

thread_local! {
    static HELD: Cell<Held> = const {
        Cell::new(Held {
            waker: std::ptr::null(),
            woken: false,
        })
    };
}

/// Whether a wake-up of the waker at `waker` is held back (and so noted) instead of delivered.
fn held_back(waker: *const ()) -> bool {
    HELD.with(|h| {
        let held = h.get();
        let mine = !held.waker.is_null() && held.waker == waker;
        if mine {
            h.set(Held {
                waker: held.waker,
                woken: true,
            });
        }
        mine
    })
}

/// Restores the previous hold when a holding call ends, even by unwinding: a hold left behind would
/// swallow that waker's wake-ups on this thread for good.
struct HoldGuard(Held);

impl Drop for HoldGuard {
    fn drop(&mut self) {
        HELD.with(|h| h.set(self.0));
    }
}

/// Runs `poll` with the wake-ups it raises for `cx`'s own waker held back, when that waker is an
/// absorber's; returns what `poll` returned and whether a wake-up was held. The caller must raise it
/// again (`cx.waker().wake_by_ref()`) unless it knows nobody waits for it.
fn holding_own_wakes<T>(
    cx: &mut Context<'_>,
    poll: impl FnOnce(&mut Context<'_>) -> T,
) -> (T, bool) {
    let me = Held {
        waker: cx.waker().data(),
        woken: false,
    };
    let guard = HoldGuard(HELD.with(|h| h.replace(me)));
    let out = poll(cx);
    let held = HELD.with(|h| h.get());
    drop(guard);
    (out, held.woken)
}

/// What polling a body for a frame gives.
pub type PolledFrame<B> = Poll<Option<Result<Frame<<B as Body>::Data>, <B as Body>::Error>>>;

/// Polls `body` for its next frame. A wake-up the body raises for the waker it is polled with (its
/// sender, on the same connection, told that the frame was taken) is dropped when the frame ended the
/// body — the sender has nothing more to send — and delivered otherwise.
pub fn poll_frame_quietly<B: Body + Unpin>(body: &mut B, cx: &mut Context<'_>) -> PolledFrame<B> {
    let (frame, held) = holding_own_wakes(cx, |cx| Pin::new(&mut *body).poll_frame(cx));
    if held {
        let ended = match &frame {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => body.is_end_stream(),
            Poll::Ready(Some(Err(_))) | Poll::Pending => false,
        };
        if !ended {
            cx.waker().wake_by_ref();
        }
    }
    frame
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

    /// A body of `frames` one-byte frames whose every poll first runs `on_poll` (a hand-over it
    /// signals, as hyper's channel wakes its sender).
    struct Wakeful<F> {
        frames: usize,
        on_poll: F,
    }

    impl<F: FnMut(&mut Context<'_>) + Unpin> Body for Wakeful<F> {
        type Data = bytes::Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<bytes::Bytes>, Self::Error>>> {
            (self.on_poll)(cx);
            if self.frames == 0 {
                return Poll::Ready(None);
            }
            self.frames -= 1;
            Poll::Ready(Some(Ok(Frame::data(bytes::Bytes::from_static(b"x")))))
        }

        fn is_end_stream(&self) -> bool {
            self.frames == 0
        }
    }

    /// A body of `frames` frames that wakes whoever polls it on every poll, as hyper's channel wakes
    /// its sender when a frame is taken.
    fn waking_its_poller(frames: usize) -> Wakeful<fn(&mut Context<'_>)> {
        Wakeful {
            frames,
            on_poll: |cx| cx.waker().wake_by_ref(),
        }
    }

    /// Takes one frame of `body` inside an absorber on behalf of `waker`; the rounds it took.
    fn take_one<B: Body + Unpin>(absorber: &Absorber, waker: &Waker, body: &mut B) -> usize {
        let mut rounds = 0;
        let mut taken = false;
        let got = absorber.run(&mut Context::from_waker(waker), |cx| {
            rounds += 1;
            if !taken {
                taken = true;
                let _ = poll_frame_quietly(body, cx);
            }
            // Waits for something else afterwards, as a handler waits for its upstream.
            Poll::<()>::Pending
        });
        assert_eq!(got, Poll::Pending);
        rounds
    }

    #[test]
    fn the_wake_up_for_a_body_s_last_frame_is_dropped() {
        let (count, waker) = task();
        let absorber = Absorber::new();
        let mut body = waking_its_poller(1);
        assert_eq!(take_one(&absorber, &waker, &mut body), 1);
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn the_wake_up_for_a_frame_with_more_to_come_is_delivered() {
        let (count, waker) = task();
        let absorber = Absorber::new();
        let mut body = waking_its_poller(2);
        // Another round: the sender is told it may send the next frame.
        assert_eq!(take_one(&absorber, &waker, &mut body), 2);
        // And outside an absorber, the task itself is woken.
        let mut cx = Context::from_waker(&waker);
        let mut body = waking_its_poller(2);
        assert!(poll_frame_quietly(&mut body, &mut cx).is_ready());
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn wake_ups_of_other_wakers_and_other_threads_are_never_held() {
        let (other_count, other_waker) = task();
        let other = Absorber::new();
        let others = pend_once(&other, &other_waker);
        let (count, waker) = task();
        let absorber = Absorber::new();
        let mut body = Wakeful {
            frames: 1,
            on_poll: |_: &mut Context<'_>| others.wake_by_ref(),
        };
        assert_eq!(take_one(&absorber, &waker, &mut body), 1);
        assert_eq!(other_count.0.load(Ordering::SeqCst), 1);
        // Our own waker, woken from another thread during the call (an I/O driver elsewhere).
        let mut body = Wakeful {
            frames: 1,
            on_poll: |cx: &mut Context<'_>| {
                let w = cx.waker().clone();
                std::thread::spawn(move || w.wake())
                    .join()
                    .expect("waking thread");
            },
        };
        assert_eq!(take_one(&absorber, &waker, &mut body), 2);
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_body_that_panics_leaves_no_hold_behind() {
        let (count, waker) = task();
        let absorber = Absorber::new();
        let kept = pend_once(&absorber, &waker);
        let mut body = Wakeful {
            frames: 1,
            on_poll: |_: &mut Context<'_>| panic!("body failed"),
        };
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut cx = Context::from_waker(&kept);
            poll_frame_quietly(&mut body, &mut cx)
        }));
        assert!(caught.is_err());
        kept.wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }
}
