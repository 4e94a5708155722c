//! Response bodies: gateway-made bodies and upstream bodies passed through frame by frame.
//!
//! An upstream body is never buffered: each frame goes to the client as it arrives, so streaming (SSE)
//! responses reach the client chunk by chunk. Two things are added on top (DESIGN §3.6): a per-frame idle
//! timeout, and honest truncation — when an SSE stream breaks mid-way the client gets a final
//! `data: {"error":…}` event and then the body errors, which makes hyper abort the connection instead of
//! sending a clean end that would hide the truncation.
//!
//! Answers of non-OpenAI providers pass through a [`BodyTransform`] (`schema`) frame by frame; the
//! transform's output is what the client gets and what the usage tap reads. A provider error inside a
//! stream, or a stream the transform finds incomplete, is a truncation like a broken connection; so is an
//! OpenAI-schema stream that ends without `data: [DONE]` or a finish reason ([`StreamWatch`]).
//!
//! A streamed answer can be held until its first content ([`UpstreamBody::hold_until_content`]): until
//! then nothing has gone to the client, so an error event, an end or silence is the attempt's failure and
//! the attempt loop may retry it (DESIGN §3.6). What was held is replayed to the client first.
//!
//! The body also reports how the answer ended ([`EndReport`]): a clean end counts the attempt's 200 and,
//! for streams, its success for passive health; a truncation counts as a failed attempt of its backend
//! (DESIGN §5: a failure after the headers is a failure of the attempt, classified like Envoy's resets).
//! The route timeout bounds the body too (Envoy: the route timeout runs until the response is complete).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tokio::time::{Instant, Sleep};

use crate::health::outlier::Observation;
use crate::health::registry::HostEntry;
use crate::proxy::conn::pool::UpstreamResponseBody;
pub use crate::proxy::stream_end::{StartFailure, TruncatedStream};
use crate::proxy::usage::UsageTap;
use crate::retry::policy::AttemptOutcome;
use crate::schema::openai::{StreamSignal, StreamWatch};
use crate::schema::{BodyTransform, TranslateError};

/// Boxed error type of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response the gateway sends.
pub struct ProxyBody(UnsyncBoxBody<Bytes, BoxError>);

impl ProxyBody {
    /// A complete in-memory body.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        ProxyBody(
            Full::new(bytes.into())
                .map_err(|e| match e {})
                .boxed_unsync(),
        )
    }

    /// An upstream body (see [`UpstreamBody::new`]).
    pub fn upstream(body: UpstreamBody) -> Self {
        ProxyBody(body.boxed_unsync())
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

/// Who hears how an answer ended: the attempt's host and its metric series.
pub struct EndReport {
    /// The host's health.
    pub health: Arc<HostEntry>,
    /// The host's metric label.
    pub backend: Arc<str>,
    /// `switchyard_upstream_requests_total{backend, outcome="200"}`, counted when the body ends cleanly.
    pub ok: metrics::Counter,
    /// Report the clean end to passive health too (streams: their 200 was not reported at the headers,
    /// so that a stream cut after every 200 is not forgiven by it).
    pub success_to_health: bool,
}

enum State {
    Streaming,
    /// The SSE error event went out. The next poll yields once so hyper flushes the event to the socket
    /// (a body error makes hyper drop whatever it still buffers), the one after fails the body so the
    /// connection is aborted rather than ended cleanly.
    ErrorEventSent {
        why: Option<TruncatedStream>,
        flushed: bool,
    },
    Done,
}

/// What [`UpstreamBody::poll_output`] produced: client bytes, the clean end (with the last bytes), or a
/// truncation.
enum Output {
    Data(Bytes, std::time::Instant),
    End(Bytes),
    Failed(TruncatedStream),
}

/// An upstream body on its way to the client.
pub struct UpstreamBody {
    inner: UpstreamResponseBody,
    sse: bool,
    tap: Option<UsageTap>,
    transform: Option<Box<dyn BodyTransform>>,
    /// Streams: first content, error events before it, and the end marker of the (translated) stream.
    watch: Option<StreamWatch>,
    /// An error event the watch found before content (the held attempt's failure).
    start_error: Option<(u16, String)>,
    /// A translation error found after some output of the same frame: reported on the next poll.
    pending_error: Option<TruncatedStream>,
    idle_timeout: Duration,
    /// The route's deadline and its length (for the message).
    deadline: Instant,
    route_timeout: Duration,
    /// Armed the first time the upstream has nothing ready (most small answers never need a timer).
    idle: Option<Pin<Box<Sleep>>>,
    /// Output held before the first content, replayed to the client first.
    replay: Option<Bytes>,
    report: Option<EndReport>,
    /// The attempt's outcome was already counted and reported (a held stream that failed before content).
    attempt_counted: bool,
    state: State,
}

/// Most a stream's output held before its first content. An upstream that sends this much without content
/// (keep-alive comments, empty deltas) is committed to, so a hold never grows without bound.
const MAX_HELD: usize = 256 << 10;

/// The SSE event that tells the client a stream was cut.
pub fn sse_error_event(message: &str) -> Bytes {
    let event = serde_json::json!({
        "error": {"message": message, "type": "server_error", "code": "upstream_stream_truncated", "param": null}
    });
    Bytes::from(format!("data: {event}\n\n"))
}

impl UpstreamBody {
    /// An upstream body, passed through with an idle timeout and the route's `deadline` (`route_timeout`
    /// long); `sse` adds the error event on truncation, and with `watch` the stream is read for its first
    /// content and its end marker; `tap` (successful responses) records token usage and timings when the
    /// body ends; `transform` rewrites the provider's body into the OpenAI shape; `report` hears the end.
    #[allow(clippy::too_many_arguments)] // one constructor, called from one place
    pub fn new(
        inner: UpstreamResponseBody,
        sse: bool,
        watch: bool,
        idle_timeout: Duration,
        deadline: Instant,
        route_timeout: Duration,
        tap: Option<UsageTap>,
        transform: Option<Box<dyn BodyTransform>>,
        report: Option<EndReport>,
    ) -> Self {
        UpstreamBody {
            inner,
            sse,
            tap,
            transform,
            watch: watch.then(StreamWatch::new),
            start_error: None,
            pending_error: None,
            idle_timeout,
            deadline,
            route_timeout,
            idle: None,
            replay: None,
            report,
            attempt_counted: false,
            state: State::Streaming,
        }
    }

    /// Watches the stream as a Responses API stream (`/v1/responses`): its typed events decide content,
    /// failure and end, and a cut ends with a Responses `error` event.
    pub fn watch_responses(&mut self) {
        if self.watch.is_some() {
            self.watch = Some(StreamWatch::responses());
        }
    }

    /// Reads the stream until its first content (or its clean end), holding what it produced, so that
    /// nothing has reached the client if the attempt fails first. `first_token` bounds the wait.
    ///
    /// On failure the failure is left in the body (replayed after what was held, as a truncation) in case
    /// the attempt loop returns it to the client after all, and the caller reports it to health.
    pub async fn hold_until_content(
        &mut self,
        first_token: Option<(Instant, Duration)>,
    ) -> Result<(), StartFailure> {
        let mut held = BytesMut::new();
        let mut timer = first_token.map(|(at, d)| (Box::pin(tokio::time::sleep_until(at)), d));
        let result = loop {
            let out = std::future::poll_fn(|cx| {
                if let Some((t, d)) = timer.as_mut() {
                    if t.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Output::Failed(TruncatedStream::FirstToken(*d)));
                    }
                }
                self.poll_output(cx)
            })
            .await;
            match out {
                Output::Data(data, _) => {
                    held.extend_from_slice(&data);
                    if let Some((status, message)) = self.start_error.take() {
                        let why = TruncatedStream::Translation(TranslateError::StreamError {
                            provider: "openai",
                            kind: format!("error event ({status})"),
                            message,
                        });
                        let mut failure = StartFailure::of(&why);
                        failure.observation = Observation::Status(status);
                        failure.outcome = AttemptOutcome::Status(status);
                        break Err(failure);
                    }
                    if held.len() > MAX_HELD
                        || self.watch.as_ref().is_none_or(StreamWatch::has_content)
                    {
                        break Ok(());
                    }
                }
                Output::End(rest) => {
                    held.extend_from_slice(&rest);
                    self.state = State::Done;
                    break Ok(());
                }
                Output::Failed(why) => {
                    let failure = StartFailure::of(&why);
                    self.pending_error = Some(why);
                    break Err(failure);
                }
            }
        };
        // The attempt loop counts and reports a failure before content itself (and waits for the verdict).
        self.attempt_counted = result.is_err();
        self.replay = Some(held.freeze());
        result
    }

    /// Counts a clean end: the attempt's 200, and for streams its success for passive health.
    fn ended_cleanly(&mut self) {
        if let Some(r) = self.report.take() {
            r.ok.increment(1);
            if r.success_to_health {
                r.health.report(Observation::Status(200));
            }
        }
    }

    /// Hands `data` (received at `received`) to the client through the usage tap; once the body is done
    /// the tap records its metrics, and an empty last frame is the end of the body.
    fn deliver(
        &mut self,
        data: Bytes,
        received: std::time::Instant,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(tap) = self.tap.as_mut() {
            tap.on_data(&data, received);
        }
        if matches!(self.state, State::Done) {
            if let Some(tap) = self.tap.take() {
                tap.finish(std::time::Instant::now());
            }
            if data.is_empty() {
                return Poll::Ready(None);
            }
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn truncated(&mut self, why: TruncatedStream) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        tracing::warn!(error = %why, "upstream response truncated");
        match self.report.take() {
            Some(r) => {
                metrics::counter!("switchyard_truncated_responses_total",
                    "backend" => r.backend.clone())
                .increment(1);
                if !self.attempt_counted {
                    metrics::counter!("switchyard_upstream_requests_total",
                        "backend" => r.backend, "outcome" => why.outcome_label())
                    .increment(1);
                    // Fire and forget: nothing waits on this answer's verdict any more.
                    r.health.report(why.observation());
                }
            }
            None => metrics::counter!("switchyard_truncated_responses_total").increment(1),
        }
        if self.sse {
            let message = why.to_string();
            let event = match self.watch.as_ref().filter(|w| w.is_responses()) {
                Some(w) => Bytes::from(crate::schema::responses::truncation_event(
                    &message,
                    w.last_sequence().map_or(0, |n| n.saturating_add(1)),
                )),
                None => self
                    .transform
                    .as_ref()
                    .and_then(|t| t.truncation_event(&message))
                    .unwrap_or_else(|| sse_error_event(&message)),
            };
            self.state = State::ErrorEventSent {
                why: Some(why),
                flushed: false,
            };
            Poll::Ready(Some(Ok(Frame::data(event))))
        } else {
            self.state = State::Done;
            Poll::Ready(Some(Err(Box::new(why))))
        }
    }

    /// Feeds client bytes to the watch; an error event before content is kept for the hold.
    fn watch(&mut self, out: &[u8]) {
        if let Some(w) = self.watch.as_mut() {
            if let StreamSignal::Error { status, message } = w.feed(out) {
                self.start_error = Some((status, message));
            }
        }
    }

    /// The upstream body is complete: lets the transform flush what it holds into `rest`; the stream must
    /// have reached its end marker.
    fn end(&mut self, rest: &mut BytesMut) -> Result<(), TruncatedStream> {
        if let Some(t) = self.transform.as_mut() {
            t.finish(rest).map_err(TruncatedStream::Translation)?;
        }
        self.watch(rest);
        if self.watch.as_ref().is_some_and(|w| !w.ended()) {
            return Err(TruncatedStream::Translation(TranslateError::Incomplete(
                "openai-schema",
            )));
        }
        Ok(())
    }

    /// The next client bytes: upstream frames, translated and watched, under the idle timeout and the
    /// route deadline.
    fn poll_output(&mut self, cx: &mut Context<'_>) -> Poll<Output> {
        if let Some(why) = self.pending_error.take() {
            return Poll::Ready(Output::Failed(why));
        }
        loop {
            match Pin::new(&mut self.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let now = Instant::now();
                    if let Some(idle) = self.idle.as_mut() {
                        idle.as_mut()
                            .reset((now + self.idle_timeout).min(self.deadline));
                    }
                    let mut out = match (self.transform.as_mut(), frame.into_data()) {
                        (None, Ok(data)) => {
                            // Passed through as it came (no copy). The last frame of a body of known
                            // length: hyper sends it and stops polling, so the end is handled now, not on
                            // a poll that never comes.
                            self.watch(&data);
                            if self.inner.is_end_stream() {
                                let mut rest = BytesMut::new();
                                if let Err(e) = self.end(&mut rest) {
                                    self.pending_error = Some(e);
                                    return Poll::Ready(Output::Data(data, now.into_std()));
                                }
                                return Poll::Ready(Output::End(data));
                            }
                            return Poll::Ready(Output::Data(data, now.into_std()));
                        }
                        // Trailers: passed on untranslated only, and never what the watch reads.
                        (None, Err(_)) => continue,
                        // Trailers of a translated body describe the provider's body: dropped.
                        (Some(_), Err(_)) => continue,
                        (Some(t), Ok(data)) => {
                            let mut out = BytesMut::new();
                            if let Err(e) = t.feed(&data, &mut out) {
                                if out.is_empty() {
                                    return Poll::Ready(Output::Failed(
                                        TruncatedStream::Translation(e),
                                    ));
                                }
                                self.pending_error = Some(TruncatedStream::Translation(e));
                            }
                            self.watch(&out);
                            out
                        }
                    };
                    // Translated: the same for the last frame of a body of known length.
                    let last = self.inner.is_end_stream() && self.pending_error.is_none();
                    if last {
                        if let Err(e) = self.end(&mut out) {
                            if out.is_empty() {
                                return Poll::Ready(Output::Failed(e));
                            }
                            self.pending_error = Some(e);
                            return Poll::Ready(Output::Data(out.freeze(), now.into_std()));
                        }
                        return Poll::Ready(Output::End(out.freeze()));
                    }
                    if out.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Output::Data(out.freeze(), now.into_std()));
                }
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Output::Failed(TruncatedStream::Broken(e.to_string())))
                }
                Poll::Ready(None) => {
                    let mut rest = BytesMut::new();
                    if let Err(e) = self.end(&mut rest) {
                        if rest.is_empty() {
                            return Poll::Ready(Output::Failed(e));
                        }
                        self.pending_error = Some(e);
                        return Poll::Ready(Output::Data(rest.freeze(), std::time::Instant::now()));
                    }
                    return Poll::Ready(Output::End(rest.freeze()));
                }
                Poll::Pending => {
                    let at = (Instant::now() + self.idle_timeout).min(self.deadline);
                    let idle = self
                        .idle
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
                    return match idle.as_mut().poll(cx) {
                        Poll::Ready(()) if Instant::now() >= self.deadline => Poll::Ready(
                            Output::Failed(TruncatedStream::RouteTimeout(self.route_timeout)),
                        ),
                        Poll::Ready(()) => {
                            Poll::Ready(Output::Failed(TruncatedStream::Idle(self.idle_timeout)))
                        }
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match &mut this.state {
            State::Done if this.replay.is_none() => return Poll::Ready(None),
            State::ErrorEventSent { flushed, .. } if !*flushed => {
                *flushed = true;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            State::ErrorEventSent { why, .. } => {
                let why = why
                    .take()
                    .unwrap_or_else(|| TruncatedStream::Broken("stream truncated".into()));
                this.state = State::Done;
                return Poll::Ready(Some(Err(Box::new(why))));
            }
            State::Streaming | State::Done => {}
        }
        if let Some(held) = this.replay.take() {
            if matches!(this.state, State::Done) {
                this.ended_cleanly();
            }
            if !held.is_empty() || matches!(this.state, State::Done) {
                return this.deliver(held, std::time::Instant::now());
            }
        }
        match this.poll_output(cx) {
            Poll::Ready(Output::Data(data, received)) => this.deliver(data, received),
            Poll::Ready(Output::End(rest)) => {
                this.state = State::Done;
                this.ended_cleanly();
                this.deliver(rest, std::time::Instant::now())
            }
            Poll::Ready(Output::Failed(why)) => this.truncated(why),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done) && self.replay.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        // An SSE body may gain an error event, so it never promises an exact length.
        match self.state {
            State::Streaming if !self.sse && self.transform.is_none() && self.replay.is_none() => {
                self.inner.size_hint()
            }
            _ => SizeHint::default(),
        }
    }
}
