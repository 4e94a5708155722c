//! Active health checks (`healthCheck.active`): an HTTP probe loop per backend host, owned by that host's
//! BackendHealth actor. Off unless configured — probes cost money at LLM providers — and `GET /v1/models` is
//! the recommended cheap path (DESIGN §5).
//!
//! The loop only measures; the actor decides. A probe result is a message to the actor, which applies
//! Envoy's thresholds and the rule that a passing probe returns an ejected host at once.

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use tokio::task::JoinHandle;

use crate::config::model::ActiveHealthConfig;
use crate::proxy::upstream::HttpClient;

/// Everything one host's probe needs.
#[derive(Clone)]
pub struct ActiveProbe {
    /// Thresholds, period, path and expected statuses.
    pub config: ActiveHealthConfig,
    /// The host's pooled client.
    pub client: HttpClient,
    /// `scheme://endpoint-authority` of the host (its connector dials the host's own address).
    pub base_url: String,
    /// Credentials header, if the backend has one (marked sensitive).
    pub auth: Option<(header::HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for ActiveProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveProbe")
            .field("config", &self.config)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl ActiveProbe {
    /// Whether two probes would behave the same (so a reload need not restart the loop).
    pub fn same_as(&self, other: &ActiveProbe) -> bool {
        self.config == other.config && self.base_url == other.base_url
    }

    /// One probe: true when the host answered an expected status within the timeout.
    pub async fn probe_once(&self) -> bool {
        let uri = format!("{}{}", self.base_url, self.config.path);
        let mut builder = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(header::USER_AGENT, "switchyard-health-check");
        if let Some((name, value)) = &self.auth {
            builder = builder.header(name.clone(), value.clone());
        }
        let Ok(req) = builder.body(Full::new(Bytes::new())) else {
            return false;
        };
        let attempt = async {
            let resp = self.client.request(req).await.ok()?;
            let status = resp.status().as_u16();
            // Drain the body so the connection returns to the pool.
            let _ = resp.into_body().collect().await;
            Some(self.config.expected_statuses.contains(&status))
        };
        matches!(
            tokio::time::timeout(self.config.timeout, attempt).await,
            Ok(Some(true))
        )
    }

    /// Starts the probe loop; each result goes to `report`, and the loop ends when it returns false (the
    /// host's actor is gone).
    pub fn spawn(self, report: impl Fn(bool) -> bool + Send + 'static) -> JoinHandle<()> {
        tokio::spawn(async move {
            let every = self.config.interval.max(Duration::from_millis(10));
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                let passed = self.probe_once().await;
                if !report(passed) {
                    return;
                }
            }
        })
    }
}

/// Envoy's active health-check thresholds for one host. Pure.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ActiveState {
    /// Consecutive passing probes.
    pub passes: u32,
    /// Consecutive failing probes.
    pub failures: u32,
    /// The host failed active checking (unhealthy until `healthy_threshold` passes).
    pub failed: bool,
}

impl ActiveState {
    /// Applies one probe result; returns true when `failed` changed.
    pub fn record(&mut self, passed: bool, cfg: &ActiveHealthConfig) -> bool {
        let before = self.failed;
        if passed {
            self.failures = 0;
            self.passes = self.passes.saturating_add(1);
            if self.failed && self.passes >= cfg.healthy_threshold.max(1) {
                self.failed = false;
            }
        } else {
            self.passes = 0;
            self.failures = self.failures.saturating_add(1);
            if self.failures >= cfg.unhealthy_threshold.max(1) {
                self.failed = true;
            }
        }
        before != self.failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(unhealthy: u32, healthy: u32) -> ActiveHealthConfig {
        ActiveHealthConfig {
            path: "/v1/models".into(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            unhealthy_threshold: unhealthy,
            healthy_threshold: healthy,
            expected_statuses: vec![200],
        }
    }

    #[test]
    fn thresholds() {
        let rows: &[(&str, u32, u32, &[bool], bool)] = &[
            (
                "one failure below an unhealthy threshold of 2 keeps the host",
                2,
                1,
                &[false],
                false,
            ),
            (
                "two consecutive failures fail it",
                2,
                1,
                &[false, false],
                true,
            ),
            (
                "a pass between failures resets the count",
                2,
                1,
                &[false, true, false],
                false,
            ),
            (
                "one pass restores with healthy threshold 1",
                2,
                1,
                &[false, false, true],
                false,
            ),
            (
                "healthy threshold 2 needs two passes",
                1,
                2,
                &[false, true],
                true,
            ),
            (
                "healthy threshold 2 restores after two passes",
                1,
                2,
                &[false, true, true],
                false,
            ),
        ];
        for (name, unhealthy, healthy, results, want) in rows {
            let c = cfg(*unhealthy, *healthy);
            let mut s = ActiveState::default();
            for r in *results {
                s.record(*r, &c);
            }
            assert_eq!(s.failed, *want, "{name}");
        }
    }
}
