//! The dashboards and alerts in `deploy/grafana/` and `deploy/prometheus/` (issue 19) agree with what a node
//! exports and with Prometheus itself:
//! - every metric a dashboard query or an alert expression names is in a live node's `/metrics` — a 2-node
//!   cluster with mock providers, driven through a failover (local and cluster ejection, retry, fallback), a
//!   streamed answer, a truncated stream and a failed reload so the series exist;
//! - `promtool check rules`, `promtool test rules` (unit tests of every alert, the ejection and partition
//!   alerts among them) and `promtool check config` pass.
//!
//! promtool comes with Debian's `prometheus` package; the test fails, never skips, without it
//! (`scripts/setup.sh` installs it; .ci/run calls that).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context};
use serde_json::{json, Value};
use switchyard_cluster_tests::harness::{
    bin_path, fallback_config, http_get, http_post_json, http_post_json_stream, http_request,
    poll_until, repo_root, run_bounded, MockProvider, TestCluster, SEED_POLICY,
};

const MODEL: &str = "us.meta.llama3-2-1b-instruct-v1:0";

/// Series a node exports only after a rare event this test does not provoke (a peer refused at TLS or
/// Hello, a malformed or unknown gossip frame, a full gossip queue, the retry circuit breaker overflowing).
/// Each must still be a metric the node's code records: checked against its sources.
const EVENT_ONLY: &[&str] = &[
    "switchyard_quic_rejected_total",
    "switchyard_gossip_rejected_total",
    "switchyard_gossip_skipped_total",
    "switchyard_gossip_frames_dropped_total",
    "switchyard_retry_overflow_total",
];

/// Series Prometheus makes itself for every target.
const PROMETHEUS_OWN: &[&str] = &["up"];

/// PromQL words that are not metric names: keywords, and aggregation operators (which, unlike functions,
/// may be followed by `by (…)` before their parenthesis).
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// The metric names a PromQL expression selects: identifiers outside label matchers (`{…}`), ranges
/// (`[…]`), strings and grouping lists (`by (…)` etc.), that are neither functions nor keywords.
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    // After a grouping keyword, the next parenthesised list holds label names.
    let mut labels_next = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    if chars[i] == '"' || chars[i] == '\'' {
                        let q = chars[i];
                        i += 1;
                        while i < chars.len() && chars[i] != q {
                            i += if chars[i] == '\\' { 2 } else { 1 };
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '(' if labels_next => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                labels_next = false;
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let call = j < chars.len() && chars[j] == '(';
                let lower = word.to_ascii_lowercase();
                if [
                    "by",
                    "without",
                    "on",
                    "ignoring",
                    "group_left",
                    "group_right",
                ]
                .contains(&lower.as_str())
                {
                    labels_next = call;
                } else if !call && !KEYWORDS.contains(&lower.as_str()) {
                    // A number's exponent or a duration (`5m`) starts with a digit and never gets here.
                    names.insert(word);
                }
            }
            c if c.is_ascii_digit() || c == '.' => {
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn promql_metric_names_reads_selectors_only() {
    let cases: &[(&str, &[&str])] = &[
        ("up", &["up"]),
        (
            r#"sum by (backend, outcome) (rate(switchyard_upstream_requests_total{instance=~"$instance", outcome!~"2.."}[$__rate_interval]))"#,
            &["switchyard_upstream_requests_total"],
        ),
        (
            "histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m]))) > 0.5 or y == 0",
            &["x_bucket", "y"],
        ),
        (
            r#"a / on (job) group_left (instance) b unless c offset 5m > 1e3"#,
            &["a", "b", "c"],
        ),
        (
            r#"label_values(switchyard_ready, instance)"#,
            &["instance", "switchyard_ready"],
        ),
        (r#"count without (le) (m{l="}{"})"#, &["m"]),
    ];
    for (expr, want) in cases {
        let got: Vec<String> = promql_metric_names(expr).into_iter().collect();
        assert_eq!(got, *want, "{expr}");
    }
}

/// Every PromQL expression of the dashboard (panel targets and the templating query) and of the alert rules.
fn expressions() -> anyhow::Result<Vec<(String, String)>> {
    let root = repo_root();
    let mut out = Vec::new();
    let dash_path = root.join("deploy/grafana/switchyard.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&dash_path)?)
        .with_context(|| dash_path.display().to_string())?;
    let mut panels = 0;
    for p in dash["panels"].as_array().context("panels")? {
        if p["type"] == "row" {
            continue;
        }
        panels += 1;
        let title = p["title"].as_str().unwrap_or("?");
        let targets = p["targets"].as_array().context("targets")?;
        ensure!(!targets.is_empty(), "panel {title:?} has no query");
        ensure!(
            p["datasource"]["uid"] == "${datasource}",
            "panel {title:?} does not use the dashboard's data source variable"
        );
        for t in targets {
            let expr = t["expr"].as_str().context("expr")?;
            ensure!(
                expr.contains("$instance"),
                "panel {title:?} ignores the node selector: {expr}"
            );
            out.push((format!("dashboard panel {title:?}"), expr.to_owned()));
        }
    }
    ensure!(panels >= 15, "only {panels} panels");
    for v in dash["templating"]["list"]
        .as_array()
        .context("templating")?
    {
        if let Some(q) = v["query"]["query"].as_str() {
            // label_values(metric, label): the metric only.
            let metric = q
                .strip_prefix("label_values(")
                .and_then(|r| r.split(',').next())
                .unwrap_or(q);
            out.push((
                format!("dashboard variable {}", v["name"]),
                metric.to_owned(),
            ));
        }
    }

    let rules_path = root.join("deploy/prometheus/switchyard-alerts.yaml");
    let rules: Value = serde_saphyr::from_str(&std::fs::read_to_string(&rules_path)?)
        .with_context(|| rules_path.display().to_string())?;
    for g in rules["groups"].as_array().context("groups")? {
        for r in g["rules"].as_array().context("rules")? {
            let name = r["alert"].as_str().or(r["record"].as_str()).unwrap_or("?");
            out.push((
                format!("alert {name}"),
                r["expr"].as_str().context("expr")?.to_owned(),
            ));
        }
    }
    Ok(out)
}

/// Metric names on a `/metrics` page (`_bucket`, `_sum`, `_count` samples of histograms included).
fn exported(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(String::from)
        .collect()
}

async fn chat(url: &str) -> anyhow::Result<u16> {
    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}]});
    Ok(http_post_json(url, &body).await?.status.as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_and_alert_metric_is_exported_by_a_live_node() {
    bin_path("switchyard");
    bin_path("mock-provider");
    run_bounded(Duration::from_secs(120), async {
        let exprs = expressions()?;
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        let yaml = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY);
        let cluster = TestCluster::start(2, &yaml, &[]).await?;
        let n1 = cluster.node(0);
        let n2 = cluster.node(1);

        // Plain traffic, and a streamed answer (time to first token, time per output token).
        ensure!(chat(&n1.url("/v1/chat/completions")).await? == 200);
        let stream_body = json!({"model": MODEL, "stream": true,
            "messages": [{"role": "user", "content": "count to five"}]});
        let (_, err) = http_post_json_stream(&n2.url("/v1/chat/completions"), &stream_body)
            .await?
            .collect_chunks()
            .await;
        ensure!(err.is_none(), "stream: {err:?}");

        // The primary fails: n1 retries on the fallback and ejects it; n2 applies the ejection from gossip.
        primary
            .set_mode(json!({"mode": "status", "status": 500}))
            .await?;
        ensure!(chat(&n1.url("/v1/chat/completions")).await? == 200);
        poll_until(
            Duration::from_secs(10),
            Duration::from_millis(20),
            || async {
                let page = http_get(&n2.admin_url("/metrics")).await.ok()?.text();
                page.lines()
                    .any(|l| {
                        l.starts_with("switchyard_backend_cluster_ejected{") && l.ends_with(" 1")
                    })
                    .then_some(())
            },
        )
        .await
        .context("n2 never applied n1's ejection")?;

        // A stream that breaks after its first chunk reached the client is truncated, never retried.
        primary.set_mode(json!({"mode": "ok"})).await?;
        fallback
            .set_mode(json!({"mode": "cut", "after_chunks": 1}))
            .await?;
        let _ = http_post_json_stream(&n2.url("/v1/chat/completions"), &stream_body)
            .await?
            .collect_chunks()
            .await;

        // A reload that fails keeps the running config and is counted.
        std::fs::write(&n1.config_path, "kind: [not yaml")?;
        let r = http_request(hyper::Method::POST, &n1.admin_url("/reload"), &[], "").await?;
        ensure!(r.status.as_u16() == 400, "bad reload answered {}", r.status);

        let mut names = BTreeSet::new();
        for node in [n1, n2] {
            names.extend(exported(
                &http_get(&node.admin_url("/metrics")).await?.text(),
            ));
        }
        let sources = node_sources()?;
        let mut missing = Vec::new();
        for (place, expr) in &exprs {
            for name in promql_metric_names(expr) {
                if names.contains(&name) || PROMETHEUS_OWN.contains(&name.as_str()) {
                    continue;
                }
                if EVENT_ONLY.contains(&name.as_str()) && sources.contains(&format!("\"{name}\"")) {
                    continue;
                }
                missing.push(format!("{place}: {name}"));
            }
        }
        ensure!(
            missing.is_empty(),
            "metrics not exported by a live node:\n{}\nexported: {names:?}",
            missing.join("\n")
        );
        Ok(())
    })
    .await;
}

/// The node crate's sources, concatenated (to find the metric names it records).
fn node_sources() -> anyhow::Result<String> {
    fn walk(dir: &std::path::Path, out: &mut String) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, out)?;
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path)?);
            }
        }
        Ok(())
    }
    let mut all = String::new();
    walk(&repo_root().join("node/src"), &mut all)?;
    Ok(all)
}

fn promtool() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file())
        .context(
            "`promtool` is not installed: Debian's prometheus package has it \
             (scripts/setup.sh installs it; .ci/run calls that)",
        )
}

fn run_promtool(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(promtool()?)
        .args(args)
        .current_dir(repo_root().join("deploy/prometheus"))
        .output()?;
    ensure!(
        out.status.success(),
        "promtool {}: {}\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Every dashboard query parses as PromQL: promtool checks them as recording rules, with Grafana's variables
/// given values.
#[test]
fn dashboard_queries_are_valid_promql() -> anyhow::Result<()> {
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut n = 0;
    for (place, expr) in expressions()? {
        if !place.starts_with("dashboard panel") {
            continue;
        }
        n += 1;
        let expr = expr
            .replace("$__rate_interval", "5m")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query_{n}\n        expr: {}\n",
            serde_json::to_string(&expr)?
        ));
    }
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("dashboard-queries.yaml");
    std::fs::write(&path, &rules)?;
    let out = Command::new(promtool()?)
        .args(["check", "rules"])
        .arg(&path)
        .output()?;
    ensure!(
        out.status.success(),
        "promtool rejects a dashboard query: {}{}\n{rules}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(n > 20, "only {n} dashboard queries");
    Ok(())
}

#[test]
fn alert_rules_pass_promtool_check_and_their_unit_tests() -> anyhow::Result<()> {
    run_promtool(&["check", "rules", "switchyard-alerts.yaml"])?;
    run_promtool(&["check", "config", "prometheus.yml"])?;
    run_promtool(&["test", "rules", "switchyard-alerts.test.yaml"])?;
    // The unit tests cover every alert, the ejection and partition alerts among them.
    let tests =
        std::fs::read_to_string(repo_root().join("deploy/prometheus/switchyard-alerts.test.yaml"))?;
    let rules =
        std::fs::read_to_string(repo_root().join("deploy/prometheus/switchyard-alerts.yaml"))?;
    for alert in rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
    {
        ensure!(
            tests.contains(&format!("alertname: {alert}")),
            "no promtool unit test for {alert}"
        );
    }
    Ok(())
}
