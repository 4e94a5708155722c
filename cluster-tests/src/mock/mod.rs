//! The mock model provider used by the multi-process tests (DESIGN.md §9).
//!
//! One `mock-provider` process plays one upstream provider. It has two ports:
//!
//! - the *data* port ([`data`]) speaks the provider wire formats — OpenAI ([`openai`]), AWS Bedrock with
//!   SigV4 verification ([`bedrock`]), Azure OpenAI ([`azure`]) and Anthropic ([`anthropic`]), chosen by
//!   path ([`Format`]) — over HTTP/1.1 and h2c (or TLS with ALPN), records every request, and misbehaves on
//!   command ([`mode::Mode`]) in the format's own error shape;
//! - the *control* port ([`control`]) is plain HTTP/1.1 JSON, separate so that the data listener can be
//!   closed ("refuse") while the test still talks to the process.
//!
//! This module holds the state both ports share ([`Shared`]) and [`run`], which binds both listeners,
//! prints the ready line and serves until the process is killed.

pub mod agent;
pub mod anthropic;
pub mod azure;
pub mod bedrock;
pub mod cohere;
pub mod control;
pub mod credentials;
pub mod data;
pub mod discovery;
pub mod invoke;
pub mod json_schema;
pub mod log;
pub mod mode;
pub mod openai;
#[cfg(test)]
mod published;
pub mod responses;
pub mod service_model;
pub mod vertex;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use self::log::RecordedRequest;
use self::mode::Mode;

/// The wire format a data-port request speaks, decided by its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `/v1/...` OpenAI paths.
    OpenAi,
    /// `/model/{id}/converse[-stream]`, `/model/{id}/invoke[-with-response-stream]`, `/model/{id}/count-tokens`.
    Bedrock,
    /// `/openai/deployments/...`.
    Azure,
    /// `/v1/messages` and `/v1/messages/count_tokens`.
    Anthropic,
    /// `/v2/chat`.
    Cohere,
    /// `/v1/responses…`, and Azure's `/openai/v1/responses…` and `/openai/responses…`.
    Responses,
    /// `/v1/projects/{p}/locations/{r}/publishers/anthropic/…`: Claude on Vertex AI.
    Vertex,
    /// `/v1/projects/{p}/locations/{r}/publishers/google/…`: Gemini on Vertex AI.
    Gemini,
}

impl Format {
    /// The format of a request path (with or without query).
    pub fn of(path: &str) -> Format {
        let p = path.split('?').next().unwrap_or(path);
        if bedrock::is_bedrock_path(p) {
            Format::Bedrock
        } else if vertex::is_vertex_path(p) && p.contains("/publishers/google/") {
            Format::Gemini
        } else if vertex::is_vertex_path(p) {
            Format::Vertex
        } else if responses::is_responses_path(p) {
            Format::Responses
        } else if p.starts_with(azure::PREFIX) {
            Format::Azure
        } else if p == anthropic::PATH || p == anthropic::COUNT_PATH {
            Format::Anthropic
        } else if p == cohere::PATH || p == cohere::RERANK_PATH {
            Format::Cohere
        } else {
            Format::OpenAi
        }
    }

    /// The in-stream error event of this format for `status`: an OpenAI error chunk, an Anthropic `error`
    /// event, a Bedrock exception message, a Responses `error` event (numbered `seq`, the events before it).
    pub fn stream_error_event(
        self,
        status: hyper::StatusCode,
        message: &str,
        seq: usize,
    ) -> bytes::Bytes {
        match self {
            Format::Responses => responses::stream_error_event(status, message, seq),
            Format::OpenAi | Format::Azure => {
                let (kind, code) = match status.as_u16() {
                    429 => ("requests", "rate_limit_exceeded"),
                    503 | 529 => ("server_error", "overloaded"),
                    _ => ("server_error", "server_error"),
                };
                let v = serde_json::json!({"error": {"message": message, "type": kind, "code": code, "param": null}});
                bytes::Bytes::from(format!("data: {v}\n\n"))
            }
            // Claude on Vertex streams Anthropic's events, errors included.
            Format::Anthropic | Format::Vertex => {
                let v = serde_json::json!({"type": "error", "error": {"type": anthropic::error_type_for(status), "message": message}});
                bytes::Bytes::from(format!("event: error\ndata: {v}\n\n"))
            }
            Format::Bedrock => bedrock::exception_frame(
                bedrock::error_type_for(status),
                &serde_json::json!({"message": message}),
            ),
            Format::Cohere => cohere::stream_error_event(message),
            // A Gemini stream's events are whole responses; an error is one holding `error`.
            Format::Gemini => {
                let v = serde_json::json!({"error": {"code": status.as_u16(), "message": message, "status": "UNAVAILABLE"}});
                bytes::Bytes::from(format!("data: {v}\r\n\r\n"))
            }
        }
    }

    /// An error reply in this format's shape.
    pub fn error_reply(self, status: hyper::StatusCode, message: &str) -> openai::Reply {
        match self {
            Format::OpenAi | Format::Responses => openai::error_reply(status, message),
            Format::Bedrock => {
                bedrock::error_reply(status, bedrock::error_type_for(status), message)
            }
            Format::Azure => azure::error_reply(status, message),
            Format::Anthropic => anthropic::error_reply(status, message),
            Format::Cohere => cohere::error_reply(status, message),
            Format::Vertex | Format::Gemini => vertex::error_reply(status, message),
        }
    }
}

/// Everything `mock-provider` is started with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Data port address (`127.0.0.1:0` picks a free port).
    pub listen: SocketAddr,
    /// Control port address.
    pub control: SocketAddr,
    /// Provider name echoed in answers.
    pub name: String,
    /// Initial failure mode.
    pub mode: Mode,
    /// PEM certificate chain and private key to serve the data port over TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Initial streaming settings.
    pub stream: StreamSettings,
    /// Keep no request log (benchmarks): requests are only counted, so memory stays flat and recording
    /// costs nothing. `GET /requests` is then empty and `GET /requests/count` is the count.
    pub no_log: bool,
}

/// How streamed answers are paced and split. Set with `PUT /stream` (fields optional there).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSettings {
    /// Delay between consecutive body chunks (SSE events) in milliseconds.
    pub chunk_delay_ms: u64,
    /// Number of content chunks the answer text is split into.
    pub content_chunks: usize,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            chunk_delay_ms: 0,
            content_chunks: 3,
        }
    }
}

/// The current mode and how many requests it has been applied to.
#[derive(Debug)]
struct ModeState {
    mode: Mode,
    served: u64,
}

/// State shared by the data port, the control port and the data listener task.
#[derive(Debug)]
pub struct Shared {
    /// Provider name.
    pub name: String,
    mode: Mutex<ModeState>,
    stream: Mutex<StreamSettings>,
    log: Mutex<Vec<RecordedRequest>>,
    /// False with `--no-log`: requests are counted in `unlogged` instead of recorded.
    keep_log: bool,
    unlogged: AtomicU64,
    seq: AtomicU64,
    /// Responses made through the Responses API (retrieve, delete, `previous_response_id`).
    pub responses: responses::Store,
    /// Whether the data listener should be open (false while the effective next mode is `refuse`).
    want_listen: watch::Sender<bool>,
    /// Whether the data listener is open right now.
    listening: watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these short locks cannot leave the data inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// New state with the given name, mode and stream settings.
    pub fn new(name: String, mode: Mode, stream: StreamSettings) -> Arc<Shared> {
        Self::with_log(name, mode, stream, true)
    }

    /// Like [`Shared::new`]; `keep_log: false` counts requests without recording them (`--no-log`).
    pub fn with_log(
        name: String,
        mode: Mode,
        stream: StreamSettings,
        keep_log: bool,
    ) -> Arc<Shared> {
        let want = mode.effective(0) != Mode::Refuse;
        Arc::new(Shared {
            name,
            mode: Mutex::new(ModeState { mode, served: 0 }),
            stream: Mutex::new(stream),
            log: Mutex::new(Vec::new()),
            keep_log,
            unlogged: AtomicU64::new(0),
            seq: AtomicU64::new(0),
            responses: responses::Store::default(),
            want_listen: watch::Sender::new(want),
            listening: watch::Sender::new(false),
        })
    }

    /// Replaces the mode and restarts its request count; returns once the data listener matches it
    /// (closed for `refuse`, open otherwise) or after 5 s.
    pub async fn set_mode(&self, mode: Mode) -> anyhow::Result<()> {
        let want = {
            let mut st = lock(&self.mode);
            *st = ModeState { mode, served: 0 };
            st.mode.effective(0) != Mode::Refuse
        };
        self.want_listen.send_replace(want);
        let mut listening = self.listening.subscribe();
        let follow = async { listening.wait_for(|l| *l == want).await.is_ok() };
        let ok = tokio::time::timeout(Duration::from_secs(5), follow)
            .await
            .context("data listener did not follow the mode within 5 s")?;
        anyhow::ensure!(ok, "data listener task is gone");
        Ok(())
    }

    /// The configured mode and the number of requests it has been applied to.
    pub fn mode(&self) -> (Mode, u64) {
        let st = lock(&self.mode);
        (st.mode.clone(), st.served)
    }

    /// Takes the mode for one data-port request (counting it) and updates whether to listen.
    pub fn next_mode(&self) -> Mode {
        let (mode, want) = {
            let mut st = lock(&self.mode);
            let mode = st.mode.effective(st.served);
            st.served += 1;
            (mode, st.mode.effective(st.served) != Mode::Refuse)
        };
        self.want_listen
            .send_if_modified(|w| std::mem::replace(w, want) != want);
        mode
    }

    /// Current streaming settings.
    pub fn stream(&self) -> StreamSettings {
        *lock(&self.stream)
    }

    /// Replaces the streaming settings.
    pub fn set_stream(&self, s: StreamSettings) {
        *lock(&self.stream) = s;
    }

    /// Appends a request to the log, assigning its sequence number (1-based, never reused).
    pub fn record(&self, mut r: RecordedRequest) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        r.seq = seq;
        lock(&self.log).push(r);
        seq
    }

    /// Whether requests are recorded (false with `--no-log`).
    pub fn logging(&self) -> bool {
        self.keep_log
    }

    /// Counts a request without recording it (`--no-log`); returns its sequence number.
    pub fn count_unlogged(&self) -> u64 {
        self.unlogged.fetch_add(1, Ordering::Relaxed);
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// A copy of the request log.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.log).clone()
    }

    /// Number of requests in the log (with `--no-log`: requests counted since the last clear).
    pub fn request_count(&self) -> usize {
        lock(&self.log).len() + self.unlogged.load(Ordering::Relaxed) as usize
    }

    /// Empties the request log (sequence numbers keep counting); returns how many were removed.
    pub fn clear(&self) -> usize {
        let mut log = lock(&self.log);
        let n = log.len() + self.unlogged.swap(0, Ordering::Relaxed) as usize;
        log.clear();
        n
    }
}

/// Binds both ports, prints `mock-provider ready data=ADDR control=ADDR` and serves forever.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    let tls = match &opts.tls {
        Some((cert, key)) => Some(data::tls_acceptor(cert, key)?),
        None => None,
    };
    let shared = Shared::with_log(
        opts.name.clone(),
        opts.mode.clone(),
        opts.stream,
        !opts.no_log,
    );
    let data_listener = tokio::net::TcpListener::bind(opts.listen)
        .await
        .with_context(|| format!("binding data port {}", opts.listen))?;
    let data_addr = data_listener.local_addr()?;
    let control_listener = tokio::net::TcpListener::bind(opts.control)
        .await
        .with_context(|| format!("binding control port {}", opts.control))?;
    let control_addr = control_listener.local_addr()?;

    // Start closed when the initial mode is `refuse`; the address stays reserved for re-binding.
    let initial = if *shared.want_listen.borrow() {
        Some(data_listener)
    } else {
        drop(data_listener);
        None
    };
    let data_task = tokio::spawn(data::listen(shared.clone(), initial, data_addr, tls));
    let control_task = tokio::spawn(control::serve(shared.clone(), control_listener));

    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "mock-provider ready data={data_addr} control={control_addr}"
        )?;
        out.flush()?;
    }
    tracing::info!(name = %opts.name, %data_addr, %control_addr, "mock provider ready");

    tokio::select! {
        r = data_task => r.context("data task panicked")?,
        r = control_task => r.context("control task panicked")?,
    }
}
