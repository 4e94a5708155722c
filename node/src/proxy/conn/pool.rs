//! Idle HTTP/1.1 connections to one backend host, and the response body that carries its connection.
//!
//! Why not a client with a task per connection (hyper-util's pooled client): there every request crosses
//! tasks twice — into the connection's task and back — and on a multi-threaded runtime that is a thread
//! wake-up each way. Here the request's own task drives its connection: while the request is sent and the
//! response headers are awaited, and then from inside the response body ([`UpstreamResponseBody`]) while
//! the client reads it, so the bytes of one exchange are moved by one task, as an event-loop proxy does.
//! The hand-overs between the connection and the futures waiting on it are finished inside one poll
//! ([`Absorber`], `wake.rs`).
//! A connection is only ever driven by the one request that holds it; idle ones wait here, undriven.
//!
//! Undriven means nobody notices an idle connection closing: the check happens when it is taken
//! ([`Pool::checkout`]: a connection that has been closed, or idle for longer than the idle timeout, is
//! dropped), and a request that finds its reused connection closed before anything was written is sent
//! again on a fresh one by the client (`upstream.rs`). A reaper task drops connections idle for too long, so
//! sockets the server closed do not linger.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;

use crate::proxy::conn::stream::Stream;
use crate::proxy::conn::wake::{poll_frame_quietly, Absorber};

/// One HTTP/1.1 connection: the request half and the connection future that moves its bytes. Kept boxed:
/// it is large, and it moves between the pool, the request and the response body.
pub struct Conn {
    pub(crate) sender: SendRequest<Full<Bytes>>,
    pub(crate) conn: Connection<TokioIo<Stream>, Full<Bytes>>,
    /// What the connection and the futures waiting on it are polled with.
    absorber: Absorber,
}

impl Conn {
    /// A connection fresh from the handshake.
    pub(crate) fn new(
        sender: SendRequest<Full<Bytes>>,
        conn: Connection<TokioIo<Stream>, Full<Bytes>>,
    ) -> Conn {
        Conn {
            sender,
            conn,
            absorber: Absorber::new(),
        }
    }

    /// Drives the connection; true once it has ended (closed, failed, or the peer went away).
    fn poll_closed(&mut self, cx: &mut Context<'_>) -> bool {
        Pin::new(&mut self.conn).poll(cx).is_ready()
    }

    /// Polls `waiting` (a future of this connection's exchange: the response head, the body) together
    /// with the connection, inside the absorber: the connection first, as it reads what `waiting` waits
    /// for, and only until it has ended, which sets `closed`.
    pub(crate) fn drive<T>(
        &mut self,
        cx: &mut Context<'_>,
        closed: &mut bool,
        mut waiting: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        let Conn { conn, absorber, .. } = self;
        absorber.run(cx, |cx| {
            if !*closed {
                *closed = Pin::new(&mut *conn).poll(cx).is_ready();
            }
            waiting(cx)
        })
    }

    /// Polls `waiting` alone, with the connection's waker but without polling the connection: for what
    /// the connection's last poll may already have delivered.
    fn poll_delivered<T>(
        &mut self,
        cx: &mut Context<'_>,
        waiting: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        self.absorber.run(cx, waiting)
    }

    /// Whether the connection is open and ready for another request, judged without waiting: it is
    /// polled once with a no-op waker (nobody is to be woken for an idle connection).
    fn reusable_now(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        !self.poll_closed(&mut cx) && self.sender.is_ready()
    }
}

struct Idle {
    conn: Box<Conn>,
    since: Instant,
}

/// The idle connections of one backend host (most recently used first out, so a few warm connections
/// serve a light load and the rest age out).
pub struct Pool {
    idle: Mutex<Vec<Idle>>,
    idle_timeout: Duration,
    max_idle: usize,
    reaper: std::sync::Once,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.idle_count())
            .field("idle_timeout", &self.idle_timeout)
            .finish()
    }
}

impl Pool {
    /// A pool keeping at most `max_idle` connections, each for at most `idle_timeout`.
    pub fn new(idle_timeout: Duration, max_idle: usize) -> Arc<Pool> {
        Arc::new(Pool {
            idle: Mutex::new(Vec::new()),
            idle_timeout,
            max_idle,
            reaper: std::sync::Once::new(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Idle>> {
        // Only pushes and pops happen under the lock; a poisoned one still holds a consistent Vec.
        self.idle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections idle now.
    pub fn idle_count(&self) -> usize {
        self.lock().len()
    }

    /// An idle connection that is still open and ready, if there is one; closed or expired ones met on
    /// the way are dropped.
    pub fn checkout(&self) -> Option<Box<Conn>> {
        let now = Instant::now();
        loop {
            let idle = self.lock().pop()?;
            let mut conn = idle.conn;
            if now.duration_since(idle.since) < self.idle_timeout && conn.reusable_now() {
                return Some(conn);
            }
        }
    }

    /// Gives a connection back after a complete exchange, if it can take another request.
    pub fn checkin(self: &Arc<Self>, mut conn: Box<Conn>) {
        conn.absorber.detach();
        // Usually ready already: the exchange's last poll of the connection finished it. Only when it
        // is not is the connection polled to tell whether it is closing.
        if !conn.sender.is_ready() && !conn.reusable_now() {
            return;
        }
        {
            let mut idle = self.lock();
            if idle.len() >= self.max_idle {
                return;
            }
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
        self.start_reaper();
    }

    /// Drops connections idle for longer than the idle timeout, every half timeout, for as long as the pool
    /// exists (the task holds it weakly). Started with the first idle connection, inside the runtime.
    fn start_reaper(self: &Arc<Self>) {
        self.reaper.call_once(|| {
            let Ok(handle) = tokio::runtime::Handle::try_current() else {
                return;
            };
            let pool: Weak<Pool> = Arc::downgrade(self);
            let every = (self.idle_timeout / 2).max(Duration::from_millis(100));
            handle.spawn(async move {
                let mut ticker = tokio::time::interval(every);
                ticker.tick().await;
                loop {
                    ticker.tick().await;
                    let Some(pool) = pool.upgrade() else { return };
                    pool.reap(Instant::now());
                }
            });
        });
    }

    fn reap(&self, now: Instant) {
        let expired: Vec<Idle> = {
            let mut idle = self.lock();
            let (keep, expired): (Vec<Idle>, Vec<Idle>) = idle
                .drain(..)
                .partition(|i| now.duration_since(i.since) < self.idle_timeout);
            *idle = keep;
            expired
        };
        // Closed outside the lock.
        drop(expired);
    }
}

/// A response body from a backend, together with the connection it arrives on: polling the body drives
/// the connection, and once the body has ended the connection goes back to its pool. Dropped before the
/// end (the client went away, or a retriable answer is discarded), the connection is closed with it —
/// a half-read HTTP/1.1 connection cannot be reused.
pub struct UpstreamResponseBody {
    inner: Incoming,
    lease: Option<(Box<Conn>, Arc<Pool>)>,
}

impl UpstreamResponseBody {
    pub(crate) fn new(inner: Incoming, conn: Option<Box<Conn>>, pool: Arc<Pool>) -> Self {
        let mut body = UpstreamResponseBody {
            inner,
            lease: conn.map(|c| (c, pool)),
        };
        // Nothing to read (e.g. Content-Length: 0): hyper will not poll the body, so return the
        // connection now.
        if body.inner.is_end_stream() {
            body.release();
        }
        body
    }

    fn release(&mut self) {
        if let Some((conn, pool)) = self.lease.take() {
            pool.checkin(conn);
        }
    }
}

impl Body for UpstreamResponseBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let inner = &mut this.inner;
        let frame = match this.lease.as_mut() {
            Some((conn, _)) => {
                // The connection's poll that read the response head usually read the whole of a short
                // body too, and finished the exchange: then polling it again would only find nothing to
                // do. So the body first, and the connection only when the body waits for it: the
                // connection first then, as it reads what the body waits for. Once it has ended, the
                // body reports the end or the error the connection left it.
                match conn.poll_delivered(cx, |cx| poll_frame_quietly(&mut *inner, cx)) {
                    Poll::Pending => {
                        let mut closed = false;
                        let frame =
                            conn.drive(cx, &mut closed, |cx| poll_frame_quietly(&mut *inner, cx));
                        if closed {
                            this.lease = None;
                        }
                        frame
                    }
                    delivered => delivered,
                }
            }
            None => Pin::new(inner).poll_frame(cx),
        };
        match &frame {
            Poll::Ready(None) => this.release(),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => this.release(),
            Poll::Ready(Some(Err(_))) => this.lease = None,
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
