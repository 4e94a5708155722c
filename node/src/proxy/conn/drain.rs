//! The client connections a draining listener waits for: told to finish what they are doing and close,
//! then counted until the last one has.
//!
//! hyper-util's `GracefulShutdown` does the same with a watch channel whose change every connection polls
//! for on every poll of its task — a few hundred instructions on each request. Here a connection checks a
//! flag, and registers its waker once: it is polled through its absorber (`wake.rs`), whose waker never
//! changes, so the registry's lock is taken when a connection starts and ends, not per request.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::Notify;

#[derive(Default)]
struct Registry {
    next: u64,
    /// The waker of every connection still running (`None` until its first poll).
    wakers: HashMap<u64, Option<Waker>>,
}

#[derive(Default)]
struct Shared {
    draining: AtomicBool,
    registry: Mutex<Registry>,
    /// Told when the last connection has ended.
    ended: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        // Only map updates happen under the lock: a poisoned map is still consistent.
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The drain of one listener's connections.
#[derive(Default)]
pub struct Drain {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drain")
            .field("draining", &self.shared.draining.load(Ordering::Relaxed))
            .field("connections", &self.connections())
            .finish()
    }
}

impl Drain {
    /// A drain with no connections, not draining.
    pub fn new() -> Drain {
        Drain::default()
    }

    /// Connections running now.
    pub fn connections(&self) -> usize {
        self.shared.lock().wakers.len()
    }

    /// Watches `conn`: once the drain starts, `shutdown` is called on it once (hyper's
    /// `graceful_shutdown`: finish the requests in flight, then close) and it is polled to its end.
    pub fn watch<C: Future>(&self, conn: C, shutdown: fn(Pin<&mut C>)) -> Watched<C> {
        let id = {
            let mut r = self.shared.lock();
            let id = r.next;
            r.next += 1;
            r.wakers.insert(id, None);
            id
        };
        Watched {
            conn: Box::pin(conn),
            shutdown,
            shutting_down: false,
            registered: None,
            id,
            shared: self.shared.clone(),
        }
    }

    /// Tells every connection to finish and close, and waits until all have.
    pub async fn shutdown(self) {
        let shared = &self.shared;
        shared.draining.store(true, Ordering::SeqCst);
        let wakers: Vec<Waker> = shared.lock().wakers.values().flatten().cloned().collect();
        for w in wakers {
            w.wake();
        }
        loop {
            let ended = shared.ended.notified();
            if shared.lock().wakers.is_empty() {
                return;
            }
            ended.await;
        }
    }
}

/// A connection under a [`Drain`].
pub struct Watched<C> {
    conn: Pin<Box<C>>,
    shutdown: fn(Pin<&mut C>),
    shutting_down: bool,
    /// The waker last put in the registry.
    registered: Option<Waker>,
    id: u64,
    shared: Arc<Shared>,
}

impl<C: Future> Future for Watched<C> {
    type Output = C::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = &mut *self;
        if !this.shutting_down {
            // Registered before the flag is read: a drain that starts after the registration wakes
            // this waker; one that started before it is seen in the flag (both go through the lock).
            if !this
                .registered
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
            {
                let waker = cx.waker().clone();
                if let Some(slot) = this.shared.lock().wakers.get_mut(&this.id) {
                    *slot = Some(waker.clone());
                }
                this.registered = Some(waker);
            }
            if this.shared.draining.load(Ordering::SeqCst) {
                this.shutting_down = true;
                (this.shutdown)(this.conn.as_mut());
            }
        }
        this.conn.as_mut().poll(cx)
    }
}

impl<C> Drop for Watched<C> {
    fn drop(&mut self) {
        let last = {
            let mut r = self.shared.lock();
            r.wakers.remove(&self.id);
            r.wakers.is_empty()
        };
        if last {
            self.shared.ended.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// A connection that ends once it has been told to shut down, counting how often it was told.
    struct Conn {
        told: Arc<AtomicUsize>,
    }

    impl Future for Conn {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            if self.told.load(Ordering::SeqCst) > 0 {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }
    }

    fn tell(c: Pin<&mut Conn>) {
        c.told.fetch_add(1, Ordering::SeqCst);
    }

    #[tokio::test]
    async fn connections_are_told_once_and_the_drain_waits_for_them() {
        let drain = Drain::new();
        let told: Vec<Arc<AtomicUsize>> = (0..3).map(|_| Arc::new(AtomicUsize::new(0))).collect();
        let tasks: Vec<_> = told
            .iter()
            .map(|t| tokio::spawn(drain.watch(Conn { told: t.clone() }, tell)))
            .collect();
        // Every connection has been polled (and so registered) before the drain starts.
        while drain.shared.lock().wakers.values().any(Option::is_none) {
            tokio::task::yield_now().await;
        }
        assert_eq!(drain.connections(), 3);
        tokio::time::timeout(std::time::Duration::from_secs(5), drain.shutdown())
            .await
            .expect("the drain ended once every connection had");
        for (t, task) in told.iter().zip(tasks) {
            task.await.expect("connection task");
            assert_eq!(t.load(Ordering::SeqCst), 1);
        }
    }

    #[tokio::test]
    async fn a_connection_first_polled_after_the_drain_began_is_told_at_once() {
        let drain = Drain::new();
        let told = Arc::new(AtomicUsize::new(0));
        let watched = drain.watch(Conn { told: told.clone() }, tell);
        drain.shared.draining.store(true, Ordering::SeqCst);
        watched.await;
        assert_eq!(told.load(Ordering::SeqCst), 1);
        assert_eq!(drain.connections(), 0);
    }

    #[tokio::test]
    async fn a_drain_without_connections_ends_at_once() {
        tokio::time::timeout(std::time::Duration::from_secs(5), Drain::new().shutdown())
            .await
            .expect("nothing to wait for");
    }
}
