//! Token usage and GenAI timings, read from responses as they stream past (OTel GenAI metric names,
//! DESIGN §7). Non-streaming bodies are buffered up to a bound and parsed once at the end; SSE bodies are
//! scanned event by event, so `usage` in the final chunk is found without holding the stream.
//!
//! Parsing is best-effort by design: a body the tap cannot read changes nothing for the client.
//!
//! The request path records these for every answer, so it avoids the metrics registry's per-call work
//! (building a key of five labels and looking it up, five times per answer): the histograms of one label
//! set are registered once and kept in [`HANDLES`]; a non-streaming body is kept as the frames it arrived
//! in (shared, not copied) and parsed in place when it is one frame, as small answers are.
//!
//! Label values a client chooses are bounded by the config (DESIGN §7): a request or response model is its
//! own label value only when the config names it (an Exact model match), every other name is `other`.
//! Without that, a regex route and an upstream that answers any model let each new name become a series
//! that lives forever (issue 18: 228k names took a node to 1.1 GB). The set of configured names is
//! published on every config swap ([`set_configured_models`]); the request path consults it only when its
//! per-thread cache misses.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use bytes::Bytes;
use metrics::{Histogram, Label};
use smallvec::SmallVec;

use crate::proxy::json_members::{find_members, for_each_member};

/// Largest non-streaming body the tap buffers to find `usage`.
const MAX_BUFFERED: usize = 1 << 20;

/// Metric labels of one request.
#[derive(Debug, Clone)]
pub struct GenAiLabels {
    /// `gen_ai_operation_name`: `chat`, `completion`, `embeddings` (OTel GenAI semantic conventions).
    pub operation: &'static str,
    /// `gen_ai_provider_name`: `openai`, `aws.bedrock`, `azure.openai`, `anthropic`.
    pub provider: &'static str,
    /// `gen_ai_request_model`: the model sent upstream (a backendRef's `modelNameOverride`, else the
    /// client's), recorded as itself when the config names it, as [`OTHER_MODEL`] otherwise.
    pub request_model: Arc<str>,
    /// `gen_ai_original_model`: the client's model (Envoy AI Gateway's label) when a
    /// `modelNameOverride` changed it; `None`: the same as `request_model` (no second `Arc` to count).
    pub original_model: Option<Arc<str>>,
}

/// Token counts of one answer.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
    /// `prompt_tokens_details.cached_tokens`, when the answer has it.
    cached_input: Option<u64>,
    /// `prompt_tokens_details.cache_creation_tokens` (translated Bedrock/Anthropic answers).
    cache_creation_input: Option<u64>,
    /// `completion_tokens_details.reasoning_tokens`.
    reasoning: Option<u64>,
}

/// The GenAI histograms of one label set (operation, provider, request and response model).
struct GenAiHandles {
    operation: &'static str,
    provider: &'static str,
    request_model: Box<str>,
    response_model: Box<str>,
    original_model: Box<str>,
    input_tokens: Histogram,
    output_tokens: Histogram,
    /// `gen_ai_token_type` values Envoy AI Gateway records besides input/output.
    cached_input_tokens: Histogram,
    cache_creation_input_tokens: Histogram,
    reasoning_tokens: Histogram,
    duration: Histogram,
    time_to_first_token: Histogram,
    time_per_output_token: Histogram,
}

impl GenAiHandles {
    fn register(
        op: &'static str,
        provider: &'static str,
        req: &str,
        resp: &str,
        orig: &str,
    ) -> Self {
        // Label values are shared (`Arc<str>`) or static, so each registration clones them for free.
        let request_model: Arc<str> = Arc::from(req);
        let response_model: Arc<str> = if resp == req {
            request_model.clone()
        } else {
            Arc::from(resp)
        };
        let original_model: Arc<str> = if orig == req {
            request_model.clone()
        } else {
            Arc::from(orig)
        };
        let labels = vec![
            Label::from_static_parts("gen_ai_operation_name", op),
            Label::from_static_parts("gen_ai_provider_name", provider),
            Label::new("gen_ai_request_model", request_model),
            Label::new("gen_ai_response_model", response_model),
            Label::new("gen_ai_original_model", original_model),
        ];
        let with = |extra: Label| {
            let mut v = labels.clone();
            v.push(extra);
            v
        };
        GenAiHandles {
            operation: op,
            provider,
            request_model: req.into(),
            response_model: resp.into(),
            original_model: orig.into(),
            input_tokens: metrics::histogram!(
                "gen_ai_client_token_usage",
                with(Label::from_static_parts("gen_ai_token_type", "input"))
            ),
            output_tokens: metrics::histogram!(
                "gen_ai_client_token_usage",
                with(Label::from_static_parts("gen_ai_token_type", "output"))
            ),
            cached_input_tokens: metrics::histogram!(
                "gen_ai_client_token_usage",
                with(Label::from_static_parts(
                    "gen_ai_token_type",
                    "cached_input"
                ))
            ),
            cache_creation_input_tokens: metrics::histogram!(
                "gen_ai_client_token_usage",
                with(Label::from_static_parts(
                    "gen_ai_token_type",
                    "cache_creation_input"
                ))
            ),
            reasoning_tokens: metrics::histogram!(
                "gen_ai_client_token_usage",
                with(Label::from_static_parts("gen_ai_token_type", "reasoning"))
            ),
            time_per_output_token: metrics::histogram!(
                "gen_ai_server_time_per_output_token_seconds",
                labels.clone()
            ),
            time_to_first_token: metrics::histogram!(
                "gen_ai_server_time_to_first_token_seconds",
                labels.clone()
            ),
            duration: metrics::histogram!("gen_ai_server_request_duration_seconds", labels),
        }
    }

    fn is(&self, op: &str, provider: &str, req: &str, resp: &str, orig: &str) -> bool {
        self.operation == op
            && self.provider == provider
            && &*self.request_model == req
            && &*self.response_model == resp
            && &*self.original_model == orig
    }
}

/// Label sets cached at most. The label values are bounded by the config, so this is only reached by a
/// config naming thousands of models; past it handles are registered per answer, as the registry would.
const MAX_CACHED_LABEL_SETS: usize = 4096;

/// The model label value of every name the config does not list.
pub const OTHER_MODEL: &str = "other";

/// Registered GenAI histograms by a hash of their label set (collisions kept side by side). Handles stay
/// valid for the life of the process's recorder, which `run` installs before serving.
static HANDLES: LazyLock<RwLock<HashMap<u64, Vec<Arc<GenAiHandles>>>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

/// The model names the config in force lists: the only model label values besides [`OTHER_MODEL`].
static CONFIGURED_MODELS: LazyLock<ArcSwap<HashSet<Box<str>>>> =
    LazyLock::new(|| ArcSwap::from_pointee(HashSet::new()));

/// Bumped on every [`set_configured_models`], so per-thread caches of raw names notice a config swap.
static MODELS_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Publishes the model names the config in force lists (its Exact model matches and the models it
/// rewrites requests to): the only model label values besides [`OTHER_MODEL`]. One process has one
/// metrics recorder, so this is process-wide, like the recorder; the gateway calls it on every swap.
pub fn set_configured_models<I, S>(names: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let set: HashSet<Box<str>> = names.into_iter().map(|n| n.as_ref().into()).collect();
    CONFIGURED_MODELS.store(Arc::new(set));
    MODELS_GENERATION.fetch_add(1, Ordering::Release);
}

/// `model` as a label value: itself when the config lists it, [`OTHER_MODEL`] otherwise.
fn model_label<'a>(configured: &HashSet<Box<str>>, model: &'a str) -> &'a str {
    if configured.contains(model) {
        model
    } else {
        OTHER_MODEL
    }
}

/// The handles a thread used last, with the raw names (as sent and answered) they were chosen for.
struct LastUsed {
    generation: u64,
    operation: &'static str,
    provider: &'static str,
    request_model: Box<str>,
    response_model: Box<str>,
    original_model: Box<str>,
    handles: Arc<GenAiHandles>,
}

thread_local! {
    /// The label set this thread recorded last: most answers of a thread repeat it, and comparing four
    /// short strings and a counter is cheaper than hashing them, bounding them and taking the map's lock.
    static LAST: std::cell::RefCell<Option<LastUsed>> = const { std::cell::RefCell::new(None) };
}

fn handles(
    op: &'static str,
    provider: &'static str,
    req: &str,
    resp: &str,
    orig: &str,
) -> Arc<GenAiHandles> {
    let generation = MODELS_GENERATION.load(Ordering::Acquire);
    let last = LAST.with(|l| {
        l.borrow()
            .as_ref()
            .filter(|u| {
                u.generation == generation
                    && u.operation == op
                    && u.provider == provider
                    && &*u.request_model == req
                    && &*u.response_model == resp
                    && &*u.original_model == orig
            })
            .map(|u| u.handles.clone())
    });
    if let Some(h) = last {
        return h;
    }
    let configured = CONFIGURED_MODELS.load();
    let found = lookup(
        op,
        provider,
        model_label(&configured, req),
        model_label(&configured, resp),
        model_label(&configured, orig),
    );
    LAST.with(|l| {
        *l.borrow_mut() = Some(LastUsed {
            generation,
            operation: op,
            provider,
            request_model: req.into(),
            response_model: resp.into(),
            original_model: orig.into(),
            handles: found.clone(),
        })
    });
    found
}

/// Records a routed request that failed (a non-2xx answer, the gateway's own 503/504, ...):
/// `gen_ai_server_request_duration_seconds` with `error_type` (OTel's `error.type`), as Envoy AI Gateway
/// records failed requests. `error_type` must come from a bounded set ([`error_type_of`]); the model is
/// bounded like every other model label.
pub fn record_failure(
    operation: &'static str,
    provider: &'static str,
    request_model: &str,
    error_type: &'static str,
    elapsed: Duration,
) {
    let configured = CONFIGURED_MODELS.load();
    let model: Arc<str> = Arc::from(model_label(&configured, request_model));
    metrics::histogram!("gen_ai_server_request_duration_seconds",
        "gen_ai_operation_name" => operation,
        "gen_ai_provider_name" => provider,
        "gen_ai_request_model" => model.clone(),
        "gen_ai_response_model" => model,
        "error_type" => error_type)
    .record(elapsed.as_secs_f64());
}

/// `gen_ai_provider_name` values of the translators (OTel GenAI semantic conventions, as Envoy AI Gateway
/// spells them); index 0 is for a request that never reached a backend.
const PROVIDERS: [&str; 9] = [
    "unknown",
    "openai",
    "aws.bedrock",
    "azure.openai",
    "anthropic",
    "aws.anthropic",
    "gcp.vertex_ai",
    "gcp.anthropic",
    "cohere",
];

/// The provider of a request's latest attempt, set by the attempt loop and read once the answer is known
/// (to label a failure). An index into a fixed table: a request shares it across awaits by reference,
/// and it costs no allocation.
#[derive(Debug, Default)]
pub struct LastProvider(std::sync::atomic::AtomicU8);

impl LastProvider {
    /// Notes the provider an attempt goes to (a translator's `provider_name`).
    pub fn set(&self, provider: &'static str) {
        let i = PROVIDERS.iter().position(|p| *p == provider).unwrap_or(0);
        self.0.store(i as u8, Ordering::Relaxed);
    }

    /// The provider noted last, `unknown` before any attempt.
    pub fn get(&self) -> &'static str {
        PROVIDERS
            .get(usize::from(self.0.load(Ordering::Relaxed)))
            .copied()
            .unwrap_or(PROVIDERS[0])
    }
}

/// `error_type` of a failed answer: its status code for the statuses gateways and providers answer,
/// OTel's fallback `_OTHER` for the rest, so the label cannot grow with whatever an upstream sends.
pub fn error_type_of(status: http::StatusCode) -> &'static str {
    const KNOWN: [&str; 17] = [
        "400", "401", "403", "404", "408", "409", "413", "415", "422", "429", "500", "501", "502",
        "503", "504", "520", "529",
    ];
    let code = status.as_str();
    KNOWN
        .iter()
        .find(|k| **k == code)
        .copied()
        .unwrap_or("_OTHER")
}

fn lookup(
    op: &'static str,
    provider: &'static str,
    req: &str,
    resp: &str,
    orig: &str,
) -> Arc<GenAiHandles> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (op, provider, req, resp, orig).hash(&mut h);
    let key = h.finish();
    let found = HANDLES
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&key)
        .and_then(|v| {
            v.iter()
                .find(|e| e.is(op, provider, req, resp, orig))
                .cloned()
        });
    if let Some(found) = found {
        return found;
    }
    let entry = Arc::new(GenAiHandles::register(op, provider, req, resp, orig));
    let mut map = HANDLES.write().unwrap_or_else(|e| e.into_inner());
    if map.len() < MAX_CACHED_LABEL_SETS {
        let slot = map.entry(key).or_default();
        if !slot.iter().any(|e| e.is(op, provider, req, resp, orig)) {
            slot.push(entry.clone());
        }
    }
    entry
}

/// A JSON string value: borrowed from the body when it has no escapes (model names never do), unescaped by
/// serde otherwise; `None` for `null` and anything that is not a string.
fn json_string(raw: &[u8]) -> Option<Cow<'_, str>> {
    let inner = string_bytes(raw)?;
    if !inner.contains(&b'\\') {
        return std::str::from_utf8(inner).ok().map(Cow::Borrowed);
    }
    serde_json::from_slice::<String>(raw).ok().map(Cow::Owned)
}

/// The bytes between the quotes of a raw JSON string value, as written (escapes not decoded).
fn string_bytes(raw: &[u8]) -> Option<&[u8]> {
    raw.strip_prefix(b"\"")?.strip_suffix(b"\"")
}

/// A `usage` object's token counts (OpenAI's `prompt_tokens`/`completion_tokens` or Anthropic's
/// `input_tokens`/`output_tokens`); `None` for `null` or anything that is not an object. A count that is
/// missing or not a non-negative integer counts as 0, the rest of the object still counts.
fn usage_object(raw: &[u8]) -> Option<Usage> {
    if raw.first() != Some(&b'{') {
        return None;
    }
    let mut usage = Usage::default();
    // `input_tokens_details`/`output_tokens_details`: the Responses API's names for the details.
    let keys: [&[u8]; 10] = [
        b"prompt_tokens",
        b"input_tokens",
        b"completion_tokens",
        b"output_tokens",
        b"prompt_tokens_details",
        b"completion_tokens_details",
        b"input_tokens_details",
        b"output_tokens_details",
        b"cache_read_input_tokens",
        b"cache_creation_input_tokens",
    ];
    for_each_member(raw, &keys, |key, value| {
        if key.ends_with(b"_details") {
            usage_details(value, &mut usage);
            return;
        }
        // Anthropic's spelling of the cache counts (Messages answers passed on untranslated).
        if key == b"cache_read_input_tokens" {
            usage.cached_input = Some(json_count(value));
            return;
        }
        if key == b"cache_creation_input_tokens" {
            usage.cache_creation_input = Some(json_count(value));
            return;
        }
        let n = json_count(value);
        if key == b"prompt_tokens" || key == b"input_tokens" {
            usage.prompt_tokens = n;
        } else {
            usage.completion_tokens = n;
        }
    });
    Some(usage)
}

/// The token details OpenAI answers (and translated ones) carry: cache reads and writes, reasoning.
fn usage_details(raw: &[u8], usage: &mut Usage) {
    if raw.first() != Some(&b'{') {
        return;
    }
    let keys: [&[u8]; 3] = [
        b"cached_tokens",
        b"cache_creation_tokens",
        b"reasoning_tokens",
    ];
    for_each_member(raw, &keys, |key, value| {
        let n = Some(json_count(value));
        match key {
            b"cached_tokens" => usage.cached_input = n,
            b"cache_creation_tokens" => usage.cache_creation_input = n,
            _ => usage.reasoning = n,
        }
    });
}

/// A token count: a JSON integer in `0..=u64::MAX`, else 0.
fn json_count(raw: &[u8]) -> u64 {
    if raw.is_empty() {
        return 0;
    }
    raw.iter()
        .try_fold(0u64, |n, b| {
            let digit = b.checked_sub(b'0').filter(|d| *d <= 9)?;
            n.checked_mul(10)?.checked_add(u64::from(digit))
        })
        .unwrap_or(0)
}

/// Watches one response body.
pub struct UsageTap {
    labels: GenAiLabels,
    sse: bool,
    started: Instant,
    first_data: Option<Instant>,
    /// SSE: the partial line carried over to the next frame.
    buf: Vec<u8>,
    /// Non-streaming: the frames so far (shared with the client's copy, not copied; a small answer is
    /// one frame, kept inline).
    frames: SmallVec<[Bytes; 2]>,
    buffered: usize,
    overflowed: bool,
    usage: Option<Usage>,
    response_model: Option<String>,
    /// `/v1/responses`: read as a Responses answer.
    responses_api: bool,
    /// `/v1/responses`: the backend that answers (to remember the response's id with), until the id is
    /// seen.
    response_home: Option<Box<str>>,
    /// The body is Anthropic's Messages answer (`/anthropic/v1/messages`), not OpenAI's.
    messages: bool,
}

impl UsageTap {
    /// Reads an Anthropic Messages answer instead: a stream's model and first counts are in
    /// `message_start`'s `message`, later counts in `message_delta`'s `usage` (cumulative, and only the
    /// counts that changed), and `input_tokens` excludes the cache reads and writes, which the metric's
    /// input count includes as it does for translated answers.
    pub fn reading_messages(mut self) -> Self {
        self.messages = true;
        self
    }

    /// A tap for a response that started (request received) at `started`.
    pub fn new(labels: GenAiLabels, sse: bool, started: Instant) -> Self {
        UsageTap {
            labels,
            sse,
            started,
            first_data: None,
            buf: Vec::new(),
            frames: SmallVec::new(),
            buffered: 0,
            overflowed: false,
            usage: None,
            response_model: None,
            responses_api: false,
            response_home: None,
            messages: false,
        }
    }

    /// Reads the answer as a Responses API answer: usage and model also inside a stream event's
    /// `response`, and the response's id, remembered with `backend` (`proxy::responses`) when first seen.
    pub fn with_response_home(mut self, backend: &str) -> Self {
        self.responses_api = true;
        self.response_home = Some(backend.into());
        self
    }

    /// Feeds the next body frame, received at `now`.
    pub fn on_data(&mut self, data: &Bytes, now: Instant) {
        if data.is_empty() {
            return;
        }
        self.first_data.get_or_insert(now);
        if self.overflowed {
            return;
        }
        if self.sse {
            // Consume complete lines in place; keep the partial tail for the next frame.
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(data);
            let mut start = 0;
            while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
                self.on_sse_line(&buf[start..start + pos + 1]);
                start += pos + 1;
            }
            buf.drain(..start);
            if buf.len() > MAX_BUFFERED {
                self.overflowed = true;
            } else {
                self.buf = buf;
            }
        } else {
            self.buffered += data.len();
            if self.buffered > MAX_BUFFERED {
                self.overflowed = true;
                self.frames = SmallVec::new();
            } else {
                self.frames.push(data.clone());
            }
        }
    }

    fn on_sse_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(payload) = line.strip_prefix(b"data:") else {
            return;
        };
        let payload = payload.strip_prefix(b" ").unwrap_or(payload);
        if payload == b"[DONE]" {
            return;
        }
        if self.messages {
            let [message, usage] = find_members(payload, [b"message", b"usage"]);
            if let Some(m) = message {
                self.absorb(m);
            }
            if let Some(u) = usage.and_then(usage_object) {
                let merged = match self.usage {
                    Some(old) => Usage {
                        prompt_tokens: old.prompt_tokens.max(u.prompt_tokens),
                        completion_tokens: old.completion_tokens.max(u.completion_tokens),
                        cached_input: old.cached_input.max(u.cached_input),
                        cache_creation_input: old.cache_creation_input.max(u.cache_creation_input),
                        reasoning: old.reasoning.max(u.reasoning),
                    },
                    None => u,
                };
                self.usage = Some(merged);
            }
            return;
        }
        self.absorb(payload);
    }

    fn absorb(&mut self, json: &[u8]) {
        self.absorb_members(json);
        if self.responses_api {
            self.absorb_response(json);
        }
    }

    /// A Responses answer: a stream event carries the response (model, usage) in `response`; the
    /// response's id is remembered once.
    fn absorb_response(&mut self, json: &[u8]) {
        let [nested] = find_members(json, [b"response"]);
        if let Some(r) = nested.filter(|r| r.first() == Some(&b'{')) {
            self.absorb_members(r);
        }
        if self.response_home.is_some() {
            if let Some(id) = crate::schema::responses::answer_id(json) {
                if let Some(backend) = self.response_home.take() {
                    crate::proxy::responses::remember(&id, &backend);
                }
            }
        }
    }

    fn absorb_members(&mut self, json: &[u8]) {
        // Only the two members are read; `choices` and the rest are not even skipped when the answer has
        // them in OpenAI's order (model first, usage last).
        let [model, usage] = find_members(json, [b"model", b"usage"]);
        // Kept only when it differs from the request's; a later event naming one replaces it. The same
        // name as requested, the usual answer, is recognised by its bytes, without decoding it.
        if let Some(raw) = model {
            let requested = self.labels.request_model.as_bytes();
            if string_bytes(raw) == Some(requested) {
                self.response_model = None;
            } else if let Some(m) = json_string(raw) {
                self.response_model = (*m != *self.labels.request_model).then(|| m.into_owned());
            }
        }
        if let Some(u) = usage.and_then(usage_object) {
            self.usage = Some(u);
        }
    }

    /// The body ended cleanly at `now`: parse what is buffered and record the metrics.
    pub fn finish(mut self, now: Instant) {
        if !self.sse && !self.overflowed {
            let frames = std::mem::take(&mut self.frames);
            match frames.as_slice() {
                [] => {}
                [one] => self.absorb(one),
                many => self.absorb(&many.concat()),
            }
        }
        if self.messages {
            if let Some(u) = self.usage.as_mut() {
                u.prompt_tokens +=
                    u.cached_input.unwrap_or(0) + u.cache_creation_input.unwrap_or(0);
            }
        }
        let l = &self.labels;
        let response_model = self.response_model.take();
        let h = handles(
            l.operation,
            l.provider,
            &l.request_model,
            response_model.as_deref().unwrap_or(&l.request_model),
            l.original_model.as_deref().unwrap_or(&l.request_model),
        );
        if let Some(u) = self.usage {
            h.input_tokens.record(u.prompt_tokens as f64);
            h.output_tokens.record(u.completion_tokens as f64);
            for (n, hist) in [
                (u.cached_input, &h.cached_input_tokens),
                (u.cache_creation_input, &h.cache_creation_input_tokens),
                (u.reasoning, &h.reasoning_tokens),
            ] {
                if let Some(n) = n {
                    hist.record(n as f64);
                }
            }
            if self.sse && u.completion_tokens > 1 {
                if let Some(first) = self.first_data {
                    let per_token =
                        now.duration_since(first).as_secs_f64() / (u.completion_tokens - 1) as f64;
                    h.time_per_output_token.record(per_token);
                }
            }
        }
        if self.sse {
            if let Some(first) = self.first_data {
                h.time_to_first_token
                    .record(first.duration_since(self.started).as_secs_f64());
            }
        }
        h.duration
            .record(now.duration_since(self.started).as_secs_f64());
    }

    #[cfg(test)]
    fn seen(&self) -> (Option<Usage>, Option<String>) {
        (self.usage, self.response_model.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> GenAiLabels {
        GenAiLabels {
            operation: "chat",
            provider: "openai",
            request_model: "m".into(),
            original_model: None,
        }
    }

    #[test]
    fn sse_usage_in_the_final_chunk_is_found_across_frame_boundaries() {
        let now = Instant::now();
        let mut tap = UsageTap::new(labels(), true, now);
        let stream = "data: {\"model\":\"m-2024\",\"choices\":[]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n";
        let (a, b) = stream.as_bytes().split_at(60);
        tap.on_data(&Bytes::copy_from_slice(a), now);
        tap.on_data(&Bytes::copy_from_slice(b), now);
        let (usage, model) = tap.seen();
        assert_eq!(
            usage,
            Some(Usage {
                prompt_tokens: 7,
                completion_tokens: 3,
                ..Usage::default()
            })
        );
        assert_eq!(model.as_deref(), Some("m-2024"));
    }

    #[test]
    fn null_usage_chunks_do_not_erase_a_seen_usage() {
        let now = Instant::now();
        let mut tap = UsageTap::new(labels(), true, now);
        tap.on_data(
            &Bytes::from_static(
                b"data: {\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n",
            ),
            now,
        );
        tap.on_data(&Bytes::from_static(b"data: {\"usage\":null}\n"), now);
        assert_eq!(
            tap.seen().0,
            Some(Usage {
                prompt_tokens: 1,
                completion_tokens: 2,
                ..Usage::default()
            })
        );
    }

    #[test]
    fn anthropic_style_names_are_accepted() {
        let now = Instant::now();
        let mut tap = UsageTap::new(labels(), true, now);
        tap.on_data(
            &Bytes::from_static(b"data: {\"usage\":{\"input_tokens\":4,\"output_tokens\":5}}\n"),
            now,
        );
        assert_eq!(
            tap.seen().0,
            Some(Usage {
                prompt_tokens: 4,
                completion_tokens: 5,
                ..Usage::default()
            })
        );
    }

    #[test]
    fn messages_streams_merge_message_start_and_message_delta_counts() {
        let now = Instant::now();
        let mut tap = UsageTap::new(labels(), true, now).reading_messages();
        let stream = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-2025\",\"usage\":{\"input_tokens\":4,\"cache_read_input_tokens\":10,\"cache_creation_input_tokens\":2,\"output_tokens\":1}}}\n\n\
event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"usage\"}}\n\n\
event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9}}\n\n";
        let (a, b) = stream.as_bytes().split_at(90);
        tap.on_data(&Bytes::copy_from_slice(a), now);
        tap.on_data(&Bytes::copy_from_slice(b), now);
        let (usage, model) = tap.seen();
        assert_eq!(
            usage,
            Some(Usage {
                prompt_tokens: 4,
                completion_tokens: 9,
                cached_input: Some(10),
                cache_creation_input: Some(2),
                reasoning: None,
            })
        );
        assert_eq!(model.as_deref(), Some("claude-2025"));
    }

    #[test]
    fn plain_answers_give_their_top_level_usage_and_model_only() {
        let now = Instant::now();
        let mut tap = UsageTap::new(labels(), false, now);
        // A nested "usage" and "model" (inside the content and a message) must not count.
        tap.absorb(br#"{"choices":[{"message":{"content":"{\"usage\":{\"prompt_tokens\":99}}","model":"inner","usage":{"prompt_tokens":98}}}],"model":"m-\u0032","usage":{"prompt_tokens":8,"completion_tokens":4,"total_tokens":12}}"#);
        assert_eq!(
            tap.seen(),
            (
                Some(Usage {
                    prompt_tokens: 8,
                    completion_tokens: 4,
                    ..Usage::default()
                }),
                Some("m-2".to_string())
            )
        );
    }

    #[test]
    fn usage_counts_are_read_leniently() {
        let cases: [(&str, Option<(u64, u64)>); 8] = [
            (r#"{"prompt_tokens":8,"completion_tokens":4}"#, Some((8, 4))),
            (
                r#"{ "completion_tokens" : 4 , "prompt_tokens" : 8 }"#,
                Some((8, 4)),
            ),
            (
                r#"{"input_tokens":3,"output_tokens":2,"cache":{"prompt_tokens":99}}"#,
                Some((3, 2)),
            ),
            // Counts that are not non-negative integers count as 0; the object still counts.
            (
                r#"{"prompt_tokens":null,"completion_tokens":-1}"#,
                Some((0, 0)),
            ),
            (
                r#"{"prompt_tokens":1.5,"completion_tokens":"7"}"#,
                Some((0, 0)),
            ),
            (
                r#"{"prompt_tokens":99999999999999999999999,"completion_tokens":1}"#,
                Some((0, 1)),
            ),
            ("null", None),
            ("[1,2]", None),
        ];
        for (raw, want) in cases {
            let got = usage_object(raw.as_bytes()).map(|u| (u.prompt_tokens, u.completion_tokens));
            assert_eq!(got, want, "{raw}");
        }
    }

    #[test]
    fn token_details_are_read_for_the_metrics() {
        let raw = br#"{"prompt_tokens":20,"completion_tokens":9,"total_tokens":29,
            "prompt_tokens_details":{"cached_tokens":12,"audio_tokens":0,"cache_creation_tokens":3},
            "completion_tokens_details":{"reasoning_tokens":7,"accepted_prediction_tokens":0}}"#;
        assert_eq!(
            usage_object(raw),
            Some(Usage {
                prompt_tokens: 20,
                completion_tokens: 9,
                cached_input: Some(12),
                cache_creation_input: Some(3),
                reasoning: Some(7),
            })
        );
        let plain = usage_object(br#"{"prompt_tokens":1,"completion_tokens":2}"#).expect("usage");
        assert_eq!(
            (
                plain.cached_input,
                plain.cache_creation_input,
                plain.reasoning
            ),
            (None, None, None)
        );
    }

    #[test]
    fn responses_usage_is_read_from_the_object_and_the_completed_event() {
        let details = br#"{"input_tokens":20,"input_tokens_details":{"cached_tokens":12},"output_tokens":9,"output_tokens_details":{"reasoning_tokens":7},"total_tokens":29}"#;
        assert_eq!(
            usage_object(details),
            Some(Usage {
                prompt_tokens: 20,
                completion_tokens: 9,
                cached_input: Some(12),
                cache_creation_input: None,
                reasoning: Some(7),
            })
        );
        let now = Instant::now();
        let mut tap = UsageTap::new(labels(), true, now).with_response_home("ns/tap-test");
        let stream = concat!(
            "event: response.created\n",
            "data: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_taptest1\",\"object\":\"response\",\"model\":\"m-2025\",\"usage\":null}}\n\n",
            "event: response.completed\n",
            "data: {\"type\":\"response.completed\",\"sequence_number\":5,\"response\":{\"id\":\"resp_taptest1\",\"object\":\"response\",\"model\":\"m-2025\",\"usage\":{\"input_tokens\":3,\"output_tokens\":4,\"output_tokens_details\":{\"reasoning_tokens\":1}}}}\n\n",
        );
        tap.on_data(&Bytes::from_static(stream.as_bytes()), now);
        let (usage, model) = tap.seen();
        assert_eq!(
            usage,
            Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
                reasoning: Some(1),
                ..Usage::default()
            })
        );
        assert_eq!(model.as_deref(), Some("m-2025"));
        // The id was remembered with the backend that answered, once.
        assert!(tap.response_home.is_none());
        let probe = crate::proxy::responses::CreateCtx::of(
            br#"{"model":"m","previous_response_id":"resp_taptest1"}"#,
        );
        assert_eq!(probe.holder.as_deref(), Some("ns/tap-test"));
    }

    #[test]
    fn model_strings_borrow_unless_escaped() {
        assert!(matches!(
            json_string(br#""gpt-4o""#),
            Some(Cow::Borrowed("gpt-4o"))
        ));
        assert_eq!(json_string(br#""a"b""#).as_deref(), Some("a\"b"));
        assert_eq!(json_string(br#""\u00e9""#).as_deref(), Some("\u{e9}"));
        for not_a_string in [&b"null"[..], b"42", b"\"", b"\"\xff\""] {
            assert_eq!(json_string(not_a_string), None);
        }
    }

    /// The only test that publishes configured models (they are process-wide), under its own operation
    /// name so the label sets it counts are its own.
    #[test]
    fn client_chosen_models_share_one_label_set_unless_configured() {
        const OP: &str = "test-bounded";
        set_configured_models(["m", "n"]);
        for i in 0..10_000 {
            let name = format!("client-{i}");
            handles(OP, "openai", &name, &name, &name);
            // A configured request answered under any name the upstream likes.
            handles(OP, "openai", "m", &name, "m");
        }
        handles(OP, "openai", "m", "m", "m");
        handles(OP, "openai", "n", "m", "n");
        let mut sets: Vec<(String, String)> = HANDLES
            .read()
            .expect("lock")
            .values()
            .flatten()
            .filter(|h| h.operation == OP)
            .map(|h| (h.request_model.to_string(), h.response_model.to_string()))
            .collect();
        sets.sort();
        let want = [("m", "m"), ("m", "other"), ("n", "m"), ("other", "other")];
        assert_eq!(
            sets,
            want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
        );
        // A reload that stops listing `n` moves it to `other`, even on a thread that cached it.
        set_configured_models(["m"]);
        let h = handles(OP, "openai", "n", "n", "n");
        assert_eq!(&*h.request_model, OTHER_MODEL);
    }

    #[test]
    fn failures_are_labelled_from_bounded_sets() {
        let cases = [
            (http::StatusCode::INTERNAL_SERVER_ERROR, "500"),
            (http::StatusCode::GATEWAY_TIMEOUT, "504"),
            (http::StatusCode::TOO_MANY_REQUESTS, "429"),
            (http::StatusCode::from_u16(599).expect("status"), "_OTHER"),
            (http::StatusCode::from_u16(302).expect("status"), "_OTHER"),
        ];
        for (status, want) in cases {
            assert_eq!(error_type_of(status), want, "{status}");
        }
        let p = LastProvider::default();
        assert_eq!(p.get(), "unknown");
        for name in ["openai", "aws.bedrock", "azure.openai", "anthropic"] {
            p.set(name);
            assert_eq!(p.get(), name);
        }
        p.set("not-a-provider");
        assert_eq!(p.get(), "unknown");
        // Every translator's provider name has its slot.
        use crate::config::model::SchemaName;
        for schema in [
            SchemaName::OpenAI,
            SchemaName::AwsBedrock,
            SchemaName::AzureOpenAI,
            SchemaName::Anthropic,
            SchemaName::AwsAnthropic,
            SchemaName::GcpAnthropic,
            SchemaName::GcpVertexAI,
        ] {
            let name = crate::schema::translator(schema).provider_name();
            p.set(name);
            assert_eq!(p.get(), name, "{schema:?}");
        }
    }

    #[test]
    fn oversized_plain_bodies_are_dropped_not_buffered() {
        let now = Instant::now();
        let mut tap = UsageTap::new(labels(), false, now);
        tap.on_data(&Bytes::from(vec![b' '; MAX_BUFFERED + 1]), now);
        assert!(tap.frames.is_empty() && tap.overflowed);
    }
}
