//! The Prometheus recorder and the shape of its histograms.
//!
//! Histograms are exported as Prometheus histograms with the bucket boundaries the OTel GenAI semantic
//! conventions advise, not as summaries (the exporter's default): buckets add up across the nodes of a
//! cluster, where quantiles of summaries cannot be combined, and filing a sample into a fixed bucket costs
//! a fraction of what a quantile sketch does on every request (docs/BENCHMARKS.md).

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// `gen_ai_client_token_usage`: powers of four from 1 to 4^13 tokens (OTel GenAI advice).
const TOKEN_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
/// `gen_ai_server_request_duration_seconds`: 10 ms doubling to 82 s (OTel GenAI advice).
const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// `gen_ai_server_time_to_first_token_seconds` (OTel GenAI advice).
const TTFT_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// `gen_ai_server_time_per_output_token_seconds` (OTel GenAI advice).
const TPOT_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];
/// `switchyard_ejection_propagation_seconds`: from the owner's decision to a peer's merge. The goal is
/// 1 RTT + 2 ms (DESIGN §6), so the fine buckets sit below 5 ms; the coarse ones catch anti-entropy repairs.
const PROPAGATION_BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.001_5, 0.002, 0.003, 0.005, 0.01, 0.025, 0.1, 0.5, 1.0, 2.5, 10.0,
];
/// Any other histogram: 1 ms to 30 s.
const DEFAULT_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The bucket boundaries by metric name, then for every other histogram.
fn builder() -> Result<PrometheusBuilder, BuildError> {
    let full = |name: &str| Matcher::Full(name.to_string());
    PrometheusBuilder::new()
        .set_buckets(DEFAULT_BUCKETS)?
        .set_buckets_for_metric(full("gen_ai_client_token_usage"), TOKEN_BUCKETS)?
        .set_buckets_for_metric(
            full("gen_ai_server_request_duration_seconds"),
            DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(
            full("gen_ai_server_time_to_first_token_seconds"),
            TTFT_BUCKETS,
        )?
        .set_buckets_for_metric(
            full("gen_ai_server_time_per_output_token_seconds"),
            TPOT_BUCKETS,
        )?
        .set_buckets_for_metric(
            full("switchyard_ejection_propagation_seconds"),
            PROPAGATION_BUCKETS,
        )
}

/// Installs the process-wide recorder and returns the handle that renders `/metrics`.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    builder()?.install_recorder()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genai_histograms_render_as_prometheus_histograms_with_semconv_buckets() {
        let recorder = builder().expect("builder").build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            metrics::histogram!("gen_ai_client_token_usage", "gen_ai_token_type" => "input")
                .record(12.0);
            metrics::histogram!("gen_ai_server_request_duration_seconds").record(0.05);
            metrics::histogram!("switchyard_ejection_propagation_seconds").record(0.003);
        });
        let text = handle.render();
        assert!(
            text.contains("# TYPE gen_ai_client_token_usage histogram"),
            "{text}"
        );
        assert!(
            text.contains(
                "gen_ai_client_token_usage_bucket{gen_ai_token_type=\"input\",le=\"16\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "gen_ai_client_token_usage_bucket{gen_ai_token_type=\"input\",le=\"4\"} 0"
            ),
            "{text}"
        );
        assert!(
            text.contains("gen_ai_server_request_duration_seconds_bucket{le=\"0.08\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("switchyard_ejection_propagation_seconds_bucket{le=\"0.003\"} 1"),
            "{text}"
        );
        assert!(!text.contains("quantile"), "{text}");
    }

    #[test]
    fn bucket_boundaries_increase() {
        for b in [
            TOKEN_BUCKETS,
            DURATION_BUCKETS,
            TTFT_BUCKETS,
            TPOT_BUCKETS,
            DEFAULT_BUCKETS,
        ] {
            assert!(b.windows(2).all(|w| w[0] < w[1]), "{b:?}");
        }
    }
}
