//! The client listener's limits (issue 18, DESIGN §7): how long a connection may take to send a request
//! head, sit idle between requests, or pause inside a request body, and how many client connections the
//! node holds at once. Without them a slow or silent client keeps its descriptor forever, and a few hundred
//! of them lock every client out (nginx closes such connections after 60–75 s; Envoy has request-header,
//! request and idle timeouts).
//!
//! The decisions are pure and take the time as a number ([`next_check`], [`LogBudget`],
//! [`default_max_connections`]); [`ConnActivity`] is the handful of atomics a connection's I/O, its
//! requests and its watchdog share, and [`ActivityIo`] / [`InFlightBody`] are the thin wrappers that keep
//! them up to date. A request in progress is timed out here only when the client stops taking its answer
//! (nginx `send_timeout`): a frame handed to the connection and not followed by a request for the next one
//! within the send timeout. Its body's pauses are bounded by the handler, its upstream by the route's
//! timeouts.

use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The client listener's limits, from `switchyard run` flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// A request head must be complete this long after its first byte, and a new connection must send
    /// one this long after it was accepted (nginx `client_header_timeout`).
    pub header_timeout: Duration,
    /// The longest pause between two pieces of a request body (nginx `client_body_timeout`).
    pub body_timeout: Duration,
    /// How long a connection may sit idle after its last answer (nginx `keepalive_timeout`).
    pub keepalive_timeout: Duration,
    /// Optional bound on receiving a whole request body, from its head on (Envoy `request_timeout`).
    pub request_timeout: Option<Duration>,
    /// How long an answer may wait for the client to take its next piece (nginx `send_timeout`): a client
    /// that stops reading would otherwise hold its connection, and the upstream stream behind it, forever.
    pub send_timeout: Duration,
    /// Client connections held at once; beyond it a connection is answered 503 and closed.
    pub max_connections: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            header_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
            request_timeout: None,
            send_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// The body timeouts the handler applies while it reads a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeouts {
    /// Longest pause between two pieces.
    pub idle: Duration,
    /// Bound on the whole body, from the request head.
    pub total: Option<Duration>,
}

impl ClientLimits {
    /// The part the handler needs.
    pub fn body(&self) -> BodyTimeouts {
        BodyTimeouts {
            idle: self.body_timeout,
            total: self.request_timeout,
        }
    }
}

/// Descriptors kept back from client connections for everything else: the listeners, the runtime, logs,
/// config files, the gossip socket and DNS.
const RESERVED_DESCRIPTORS: u64 = 64;

/// The connection cap when none is given: half of the descriptors left after [`RESERVED_DESCRIPTORS`],
/// since every client request in flight holds an upstream connection too. A cap below the descriptor
/// limit is what turns a flood into 503s instead of failed accepts that lock everyone out.
pub fn default_max_connections(nofile: u64) -> usize {
    let usable = nofile.saturating_sub(RESERVED_DESCRIPTORS) / 2;
    usize::try_from(usable).unwrap_or(usize::MAX).max(16)
}

/// Raises the soft descriptor limit to the hard one (as Go's runtime does at start) and returns it;
/// `None` when it cannot be read.
pub fn raise_nofile_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer, which lives on this
    // stack frame for the whole call.
    #[allow(unsafe_code)]
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    Some(lim.rlim_cur)
}

/// What a connection is waiting for, as the watchdog sees it (times in ms since the connection opened).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivitySnapshot {
    /// Requests whose answer has not been fully sent.
    pub in_flight: u32,
    /// Whether any request started on this connection.
    pub served: bool,
    /// When the first byte of the next request head arrived, if one did while nothing was in flight.
    pub head_since: Option<u64>,
    /// When the last answer finished (0 before any).
    pub idle_since: u64,
    /// Answers holding a piece the connection has not come back for since.
    pub waiting_on_client: u32,
    /// When a piece of an answer was last handed to the connection.
    pub sent_since: u64,
}

/// Why the watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A request head (or a new connection's first request) took longer than the header timeout.
    Header,
    /// The connection sat idle after an answer longer than the keep-alive timeout.
    KeepAlive,
    /// The client stopped taking an answer for longer than the send timeout.
    Send,
}

impl Expiry {
    /// Metric and log label.
    pub fn as_str(self) -> &'static str {
        match self {
            Expiry::Header => "header",
            Expiry::KeepAlive => "keepalive",
            Expiry::Send => "send",
        }
    }
}

/// The watchdog's verdict at `now_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Close the connection.
    Expired(Expiry),
    /// Look again at this time (ms). Never later than the earliest deadline any change of state since
    /// `now_ms` could set, so no deadline is overslept.
    At(u64),
}

/// Decides whether a connection in state `s` has overstayed at `now_ms`, or when to look again.
pub fn next_check(s: &ActivitySnapshot, limits: &ClientLimits, now_ms: u64) -> Check {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let (header, keepalive) = (ms(limits.header_timeout), ms(limits.keepalive_timeout));
    let send = ms(limits.send_timeout);
    // Any change of state after now starts a deadline at least this far away.
    let soonest_new = now_ms.saturating_add(header.min(keepalive).min(send).max(1));
    let deadline = if s.in_flight > 0 {
        (s.waiting_on_client > 0).then(|| (s.sent_since.saturating_add(send), Expiry::Send))
    } else if let Some(head) = s.head_since {
        Some((head.saturating_add(header), Expiry::Header))
    } else if !s.served {
        Some((s.idle_since.saturating_add(header), Expiry::Header))
    } else {
        Some((s.idle_since.saturating_add(keepalive), Expiry::KeepAlive))
    };
    match deadline {
        Some((at, why)) if at <= now_ms => Check::Expired(why),
        Some((at, _)) => Check::At(at.min(soonest_new)),
        None => Check::At(soonest_new),
    }
}

/// No head in progress.
const NONE: u64 = u64::MAX;

/// The state one connection's I/O, requests and watchdog share (they may run on different threads for
/// HTTP/2, whose requests are tasks of their own).
#[derive(Debug)]
pub struct ConnActivity {
    opened: Instant,
    in_flight: AtomicU32,
    /// Bit 0: served any request.
    served: AtomicU32,
    head_since: AtomicU64,
    idle_since: AtomicU64,
    waiting_on_client: AtomicU32,
    sent_since: AtomicU64,
}

impl ConnActivity {
    /// A connection opened now.
    pub fn new() -> Arc<ConnActivity> {
        Arc::new(ConnActivity {
            opened: Instant::now(),
            in_flight: AtomicU32::new(0),
            served: AtomicU32::new(0),
            head_since: AtomicU64::new(NONE),
            idle_since: AtomicU64::new(0),
            waiting_on_client: AtomicU32::new(0),
            sent_since: AtomicU64::new(0),
        })
    }

    /// Milliseconds since the connection opened.
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The connection's time of `at`, in ms.
    pub fn ms_at(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.opened).as_millis()).unwrap_or(u64::MAX)
    }

    /// The instant of connection time `ms` (a year on at most: timeouts of absurd length must not
    /// overflow the clock).
    pub fn instant_at(&self, ms: u64) -> Instant {
        const YEAR_MS: u64 = 365 * 24 * 3600 * 1000;
        self.opened + Duration::from_millis(ms.min(YEAR_MS))
    }

    /// Bytes arrived: with nothing in flight, they are the start of the next request head.
    fn on_read(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0
            && self.head_since.load(Ordering::Relaxed) == NONE
        {
            self.head_since.store(self.now_ms(), Ordering::Relaxed);
        }
    }

    /// A request's head was read and handed to the service: the guard ends it when its answer is done.
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.served.store(1, Ordering::Relaxed);
        self.head_since.store(NONE, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// The state now.
    pub fn snapshot(&self) -> ActivitySnapshot {
        let head = self.head_since.load(Ordering::Relaxed);
        ActivitySnapshot {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            served: self.served.load(Ordering::Relaxed) != 0,
            head_since: (head != NONE).then_some(head),
            idle_since: self.idle_since.load(Ordering::Relaxed),
            waiting_on_client: self.waiting_on_client.load(Ordering::Relaxed),
            sent_since: self.sent_since.load(Ordering::Relaxed),
        }
    }

    /// A piece of an answer was handed to the connection: from now on the answer waits for the client.
    fn handed(&self) {
        self.sent_since.store(self.now_ms(), Ordering::Relaxed);
        self.waiting_on_client.fetch_add(1, Ordering::Relaxed);
    }

    /// The connection came back for the next piece of an answer that was waiting for it. No clock read:
    /// an answer still waiting was handed its piece no earlier than `sent_since`'s last store.
    fn taken(&self) {
        self.waiting_on_client.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One request in flight on a connection; dropped when its answer has been sent (or abandoned).
#[derive(Debug)]
pub struct InFlight(Arc<ConnActivity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        // Every answer's end moves the idle time, before the count drops: the watchdog never sees an
        // idle connection with an old idle time, even when two HTTP/2 streams end at once.
        a.idle_since.store(a.now_ms(), Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// The client socket, noting when bytes arrive ([`ConnActivity`]).
    pub struct ActivityIo<T> {
        #[pin]
        inner: T,
        activity: Arc<ConnActivity>,
    }
}

impl<T> ActivityIo<T> {
    /// Wraps `inner`.
    pub fn new(inner: T, activity: Arc<ConnActivity>) -> Self {
        ActivityIo { inner, activity }
    }
}

impl<T: AsyncRead> AsyncRead for ActivityIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.on_read();
        }
        polled
    }
}

impl<T: AsyncWrite> AsyncWrite for ActivityIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

pin_project_lite::pin_project! {
    /// An answer's body that ends its request's [`InFlight`] when hyper is done with it, and tells the
    /// watchdog when a piece of it waits for the client: hyper asks for the next frame only once the last
    /// one found room in its write buffer (HTTP/1.1) or in the stream's flow-control window (HTTP/2), so a
    /// frame not followed by the next request is an answer the client is not taking.
    pub struct InFlightBody<B> {
        #[pin]
        inner: B,
        in_flight: InFlight,
        waiting: bool,
    }

    impl<B> PinnedDrop for InFlightBody<B> {
        fn drop(this: Pin<&mut Self>) {
            if this.waiting {
                this.in_flight.0.waiting_on_client.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl<B> InFlightBody<B> {
    /// Ties `inner` to `in_flight`.
    pub fn new(inner: B, in_flight: InFlight) -> Self {
        InFlightBody {
            inner,
            in_flight,
            waiting: false,
        }
    }
}

impl<B: http_body::Body<Data = Bytes>> http_body::Body for InFlightBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let mut this = self.project();
        if std::mem::take(this.waiting) {
            this.in_flight.0.taken();
        }
        let polled = this.inner.as_mut().poll_frame(cx);
        // The last frame is not waited on: hyper drops the body after it, and what it still has to
        // write is the keep-alive timeout's business once the request has ended.
        if matches!(polled, Poll::Ready(Some(Ok(_)))) && !this.inner.is_end_stream() {
            this.in_flight.0.handed();
            *this.waiting = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Bounds how often a recurring failure is logged: one line per window, carrying how many were left out.
#[derive(Debug, Clone)]
pub struct LogBudget {
    window: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogBudget {
    /// At most one line per `window`.
    pub fn new(window: Duration) -> Self {
        LogBudget {
            window,
            last: None,
            suppressed: 0,
        }
    }

    /// One more occurrence at `now`: `Some(n)` when it is to be logged, `n` being how many were left
    /// out since the last line; `None` when it is to be left out.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.window => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ClientLimits {
        ClientLimits {
            header_timeout: Duration::from_millis(60),
            keepalive_timeout: Duration::from_millis(75),
            send_timeout: Duration::from_millis(50),
            ..ClientLimits::default()
        }
    }

    fn state(in_flight: u32, served: bool, head: Option<u64>, idle: u64) -> ActivitySnapshot {
        ActivitySnapshot {
            in_flight,
            served,
            head_since: head,
            idle_since: idle,
            waiting_on_client: 0,
            sent_since: 0,
        }
    }

    fn sending(waiting_on_client: u32, sent_since: u64) -> ActivitySnapshot {
        ActivitySnapshot {
            waiting_on_client,
            sent_since,
            ..state(1, true, None, 0)
        }
    }

    #[test]
    fn the_watchdog_closes_what_overstays() {
        // (name, state, now, verdict) with header 60 ms, keep-alive 75 ms, send 50 ms.
        let cases = [
            (
                "a silent new connection gets the header timeout",
                state(0, false, None, 0),
                59,
                Check::At(60),
            ),
            (
                "a silent new connection expires at it",
                state(0, false, None, 0),
                60,
                Check::Expired(Expiry::Header),
            ),
            (
                "a head trickling since 10 expires at 70",
                state(0, false, Some(10), 0),
                70,
                Check::Expired(Expiry::Header),
            ),
            (
                "an idle keep-alive connection waits for the keep-alive timeout",
                state(0, true, None, 100),
                150,
                Check::At(175),
            ),
            (
                "looks again early enough for a head or a send that may start meanwhile",
                state(0, true, None, 100),
                101,
                Check::At(151),
            ),
            (
                "an idle keep-alive connection expires",
                state(0, true, None, 100),
                175,
                Check::Expired(Expiry::KeepAlive),
            ),
            (
                "the next head on a kept-alive connection gets the header timeout",
                state(0, true, Some(120), 100),
                180,
                Check::Expired(Expiry::Header),
            ),
            (
                "a request in flight whose client takes its answer is not timed out here",
                state(1, true, None, 0),
                10_000,
                Check::At(10_050),
            ),
            (
                "an answer waiting for the client since 1000 is looked at when the send timeout ends",
                sending(1, 1_000),
                1_010,
                Check::At(1_050),
            ),
            (
                "an answer the client has not taken for the send timeout closes the connection",
                sending(1, 1_000),
                1_050,
                Check::Expired(Expiry::Send),
            ),
            (
                "a piece handed over since restarts the send timeout",
                sending(1, 1_040),
                1_050,
                Check::At(1_090),
            ),
            (
                "nothing waiting for the client: no send deadline",
                sending(0, 1_000),
                5_000,
                Check::At(5_050),
            ),
        ];
        for (name, s, now, want) in cases {
            assert_eq!(next_check(&s, &limits(), now), want, "{name}");
        }
    }

    #[test]
    fn activity_follows_reads_and_requests() {
        let a = ConnActivity::new();
        assert_eq!(a.snapshot(), state(0, false, None, 0));
        a.on_read();
        assert!(a.snapshot().head_since.is_some());
        let req = a.start_request();
        a.on_read(); // body bytes: not a new head
        assert_eq!(a.snapshot().head_since, None);
        assert_eq!(a.snapshot().in_flight, 1);
        let second = a.start_request(); // HTTP/2: another stream
        drop(req);
        assert_eq!(a.snapshot().in_flight, 1);
        drop(second);
        let s = a.snapshot();
        assert_eq!((s.in_flight, s.served, s.head_since), (0, true, None));
    }

    #[test]
    fn absurd_deadlines_do_not_overflow_the_clock() {
        let a = ConnActivity::new();
        assert!(a.instant_at(u64::MAX) > a.instant_at(1));
        let huge = ClientLimits {
            header_timeout: Duration::MAX,
            keepalive_timeout: Duration::MAX,
            send_timeout: Duration::MAX,
            ..ClientLimits::default()
        };
        assert_eq!(
            next_check(&state(0, false, None, 0), &huge, 5),
            Check::At(u64::MAX)
        );
    }

    #[test]
    fn default_caps_leave_descriptors_for_upstreams() {
        assert_eq!(default_max_connections(1024), 480);
        assert_eq!(default_max_connections(256), 96);
        assert_eq!(default_max_connections(64), 16);
        assert_eq!(default_max_connections(0), 16);
    }

    #[test]
    fn log_budget_allows_one_line_per_window_and_counts_the_rest() {
        let t0 = Instant::now();
        let mut b = LogBudget::new(Duration::from_secs(5));
        let at = |ms| t0 + Duration::from_millis(ms);
        let got: Vec<Option<u64>> = [0, 50, 100, 4_999, 5_000, 5_001, 20_000]
            .into_iter()
            .map(|ms| b.allow(at(ms)))
            .collect();
        assert_eq!(got, vec![Some(0), None, None, None, Some(3), None, Some(1)]);
    }
}
