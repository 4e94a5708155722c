//! How an answer that had started ended early, in the three vocabularies that must agree about it: passive
//! health (Envoy's local-origin results, or the status an error event stands for), the retry policy (when
//! it happened before the first content), and the `outcome` label of `switchyard_upstream_requests_total`.
//! Pure, so the mapping is one table and tested as one (DESIGN §5: a failure after the headers is a
//! failure of the attempt, classified like Envoy's resets).

use std::time::Duration;

use crate::health::outlier::{LocalOriginFailure, Observation};
use crate::retry::policy::AttemptOutcome;
use crate::schema::{stream_error_status, TranslateError};

/// Why an upstream body ended early.
#[derive(Debug, thiserror::Error)]
pub enum TruncatedStream {
    /// The upstream connection broke.
    #[error("upstream stream broke mid-way: {0}")]
    Broken(String),
    /// No frame arrived within the idle timeout (`streamIdleTimeout`).
    #[error("upstream stream idle for longer than {0:?}")]
    Idle(Duration),
    /// The route timeout (`timeouts.request`) ran out before the response was complete.
    #[error("upstream response not complete within the route timeout of {0:?}")]
    RouteTimeout(Duration),
    /// No content within the first-token timeout (`switchyard.io/first-token-timeout`).
    #[error("no content from upstream within the first-token timeout of {0:?}")]
    FirstToken(Duration),
    /// The provider's body could not be translated, reported an error mid-stream, or ended without its
    /// end marker.
    #[error("{0}")]
    Translation(TranslateError),
}

impl TruncatedStream {
    /// How passive health counts it: a broken or early-ended stream as a reset, a stall as a timeout
    /// (Envoy's local-origin results), a provider error event as the status it stands for.
    pub(crate) fn observation(&self) -> Observation {
        match self {
            TruncatedStream::Broken(_) => {
                Observation::LocalOriginFailure(LocalOriginFailure::Reset)
            }
            TruncatedStream::Idle(_)
            | TruncatedStream::RouteTimeout(_)
            | TruncatedStream::FirstToken(_) => {
                Observation::LocalOriginFailure(LocalOriginFailure::Timeout)
            }
            TruncatedStream::Translation(e) => match stream_error_status(e) {
                Some(status) => Observation::Status(status),
                None => Observation::LocalOriginFailure(LocalOriginFailure::Reset),
            },
        }
    }

    /// The retry policy's name for it, when it happens before the first content.
    pub(crate) fn attempt_outcome(&self) -> AttemptOutcome {
        match self.observation() {
            Observation::Status(s) => AttemptOutcome::Status(s),
            Observation::LocalOriginFailure(LocalOriginFailure::Timeout) => {
                AttemptOutcome::PerTryTimeout
            }
            _ => AttemptOutcome::Reset,
        }
    }

    /// The `outcome` label of `switchyard_upstream_requests_total` for an answer that ended so.
    pub(crate) fn outcome_label(&self) -> &'static str {
        match self {
            TruncatedStream::Broken(_) => "stream_reset",
            TruncatedStream::Idle(_) => "stream_idle",
            TruncatedStream::RouteTimeout(_) => "route_timeout",
            TruncatedStream::FirstToken(_) => "first_token_timeout",
            TruncatedStream::Translation(TranslateError::Incomplete(_)) => "stream_incomplete",
            TruncatedStream::Translation(TranslateError::StreamError { .. }) => "stream_error",
            TruncatedStream::Translation(_) => "stream_malformed",
        }
    }
}

/// Why a held stream failed before its first content: what the attempt loop classifies and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartFailure {
    /// For passive health.
    pub observation: Observation,
    /// For the retry policy.
    pub outcome: AttemptOutcome,
    /// `outcome` label of the attempt's metric.
    pub label: &'static str,
    /// The route timeout ran out: never retried (DESIGN §4).
    pub route_timeout: bool,
    /// The first-token timeout ran out: retried whatever `retryOn` says (the extension's point).
    pub first_token_timeout: bool,
    /// For logs.
    pub message: String,
}

impl StartFailure {
    pub(crate) fn of(why: &TruncatedStream) -> StartFailure {
        StartFailure {
            observation: why.observation(),
            outcome: why.attempt_outcome(),
            label: why.outcome_label(),
            route_timeout: matches!(why, TruncatedStream::RouteTimeout(_)),
            first_token_timeout: matches!(why, TruncatedStream::FirstToken(_)),
            message: why.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_error(provider: &'static str, kind: &str) -> TruncatedStream {
        TruncatedStream::Translation(TranslateError::StreamError {
            provider,
            kind: kind.into(),
            message: "m".into(),
        })
    }

    #[test]
    fn each_ending_is_classified_alike_for_health_retry_and_metrics() {
        use LocalOriginFailure::{Reset, Timeout};
        use Observation::{LocalOriginFailure as Local, Status};
        let d = Duration::from_secs(1);
        let rows: Vec<(&str, TruncatedStream, Observation, AttemptOutcome, &str)> = vec![
            (
                "reset",
                TruncatedStream::Broken("x".into()),
                Local(Reset),
                AttemptOutcome::Reset,
                "stream_reset",
            ),
            (
                "stall",
                TruncatedStream::Idle(d),
                Local(Timeout),
                AttemptOutcome::PerTryTimeout,
                "stream_idle",
            ),
            (
                "route timeout",
                TruncatedStream::RouteTimeout(d),
                Local(Timeout),
                AttemptOutcome::PerTryTimeout,
                "route_timeout",
            ),
            (
                "first token",
                TruncatedStream::FirstToken(d),
                Local(Timeout),
                AttemptOutcome::PerTryTimeout,
                "first_token_timeout",
            ),
            (
                "early end",
                TruncatedStream::Translation(TranslateError::Incomplete("openai-schema")),
                Local(Reset),
                AttemptOutcome::Reset,
                "stream_incomplete",
            ),
            (
                "anthropic overloaded",
                stream_error("anthropic", "overloaded_error"),
                Status(529),
                AttemptOutcome::Status(529),
                "stream_error",
            ),
            (
                "anthropic rate limit",
                stream_error("anthropic", "rate_limit_error"),
                Status(429),
                AttemptOutcome::Status(429),
                "stream_error",
            ),
            (
                "bedrock throttling",
                stream_error("aws.bedrock", "throttlingException"),
                Status(429),
                AttemptOutcome::Status(429),
                "stream_error",
            ),
            (
                "bedrock unavailable",
                stream_error("aws.bedrock", "serviceUnavailableException"),
                Status(503),
                AttemptOutcome::Status(503),
                "stream_error",
            ),
            (
                "malformed",
                TruncatedStream::Translation(TranslateError::TooLarge),
                Status(502),
                AttemptOutcome::Status(502),
                "stream_malformed",
            ),
        ];
        for (name, why, obs, outcome, label) in rows {
            assert_eq!(why.observation(), obs, "{name}");
            assert_eq!(why.attempt_outcome(), outcome, "{name}");
            assert_eq!(why.outcome_label(), label, "{name}");
            let f = StartFailure::of(&why);
            assert_eq!(
                (f.observation, f.outcome, f.label),
                (obs, outcome, label),
                "{name}"
            );
            assert_eq!(f.route_timeout, name == "route timeout", "{name}");
            assert_eq!(f.first_token_timeout, name == "first token", "{name}");
        }
    }
}
