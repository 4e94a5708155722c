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
//! stream, or a stream the transform finds incomplete, is a truncation like a broken connection.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use tokio::time::{Instant, Sleep};

use crate::proxy::pool::UpstreamResponseBody;
use crate::proxy::usage::UsageTap;
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

    /// An upstream body, passed through with an idle timeout; `sse` adds the error event on truncation;
    /// `tap` (successful responses) records token usage and timings when the body ends; `transform`
    /// rewrites the provider's body into the OpenAI shape.
    pub fn upstream(
        inner: UpstreamResponseBody,
        sse: bool,
        idle_timeout: Duration,
        tap: Option<UsageTap>,
        transform: Option<Box<dyn BodyTransform>>,
    ) -> Self {
        ProxyBody(
            UpstreamBody {
                inner,
                sse,
                tap,
                transform,
                pending_error: None,
                idle_timeout,
                idle: None,
                state: State::Streaming,
            }
            .boxed_unsync(),
        )
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

/// Why an upstream body ended early.
#[derive(Debug, thiserror::Error)]
pub enum TruncatedStream {
    /// The upstream connection broke.
    #[error("upstream stream broke mid-way: {0}")]
    Broken(String),
    /// No frame arrived within the idle timeout.
    #[error("upstream stream idle for longer than {0:?}")]
    Idle(Duration),
    /// The provider's body could not be translated, or reported an error mid-stream.
    #[error("{0}")]
    Translation(TranslateError),
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

struct UpstreamBody {
    inner: UpstreamResponseBody,
    sse: bool,
    tap: Option<UsageTap>,
    transform: Option<Box<dyn BodyTransform>>,
    /// A translation error found after some output of the same frame: reported on the next poll.
    pending_error: Option<TruncatedStream>,
    idle_timeout: Duration,
    /// Armed the first time the upstream has nothing ready (most small answers never need a timer).
    idle: Option<Pin<Box<Sleep>>>,
    state: State,
}

/// The SSE event that tells the client a stream was cut.
pub fn sse_error_event(message: &str) -> Bytes {
    let event = serde_json::json!({
        "error": {"message": message, "type": "server_error", "code": "upstream_stream_truncated", "param": null}
    });
    Bytes::from(format!("data: {event}\n\n"))
}

impl UpstreamBody {
    /// The upstream body is complete: lets the transform flush what it holds into `rest` and marks the
    /// body done, unless the transform finds the provider's body incomplete.
    fn end(&mut self, rest: &mut BytesMut) -> Result<(), TruncatedStream> {
        if let Some(t) = self.transform.as_mut() {
            t.finish(rest).map_err(TruncatedStream::Translation)?;
        }
        self.state = State::Done;
        Ok(())
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
        metrics::counter!("switchyard_truncated_responses_total").increment(1);
        if self.sse {
            let event = sse_error_event(&why.to_string());
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
            State::Done => return Poll::Ready(None),
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
            State::Streaming => {}
        }
        if let Some(why) = this.pending_error.take() {
            return this.truncated(why);
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let now = Instant::now();
                    if let Some(idle) = this.idle.as_mut() {
                        idle.as_mut().reset(now + this.idle_timeout);
                    }
                    let mut out = match (this.transform.as_mut(), frame.into_data()) {
                        (None, Ok(data)) => {
                            // Passed through as it came (no copy). The last frame of a body of known
                            // length: hyper sends it and stops polling, so the end is handled now, not on
                            // a poll that never comes.
                            if this.inner.is_end_stream() {
                                this.state = State::Done;
                            }
                            return this.deliver(data, now.into_std());
                        }
                        (None, Err(frame)) => return Poll::Ready(Some(Ok(frame))),
                        // Trailers of a translated body describe the provider's body: dropped.
                        (Some(_), Err(_)) => continue,
                        (Some(t), Ok(data)) => {
                            let mut out = BytesMut::new();
                            if let Err(e) = t.feed(&data, &mut out) {
                                if out.is_empty() {
                                    return this.truncated(TruncatedStream::Translation(e));
                                }
                                this.pending_error = Some(TruncatedStream::Translation(e));
                            }
                            out
                        }
                    };
                    // Translated: the same for the last frame of a body of known length.
                    let last = this.inner.is_end_stream() && this.pending_error.is_none();
                    if last {
                        if let Err(e) = this.end(&mut out) {
                            if out.is_empty() {
                                return this.truncated(e);
                            }
                            this.pending_error = Some(e);
                        }
                    }
                    if out.is_empty() && !last {
                        continue;
                    }
                    return this.deliver(out.freeze(), now.into_std());
                }
                Poll::Ready(Some(Err(e))) => {
                    return this.truncated(TruncatedStream::Broken(e.to_string()))
                }
                Poll::Ready(None) => {
                    let mut rest = BytesMut::new();
                    if let Err(e) = this.end(&mut rest) {
                        if rest.is_empty() {
                            return this.truncated(e);
                        }
                        this.pending_error = Some(e);
                        return Poll::Ready(Some(Ok(Frame::data(rest.freeze()))));
                    }
                    return this.deliver(rest.freeze(), std::time::Instant::now());
                }
                Poll::Pending => {
                    let deadline = Instant::now() + this.idle_timeout;
                    let idle = this
                        .idle
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    return match idle.as_mut().poll(cx) {
                        Poll::Ready(()) => this.truncated(TruncatedStream::Idle(this.idle_timeout)),
                        Poll::Pending => Poll::Pending,
                    };
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        // An SSE body may gain an error event, so it never promises an exact length.
        match self.state {
            State::Streaming if !self.sse && self.transform.is_none() => self.inner.size_hint(),
            _ => SizeHint::default(),
        }
    }
}
