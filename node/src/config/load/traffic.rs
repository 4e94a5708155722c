//! Pass 2 for `BackendTrafficPolicy`: which route a policy attaches to, and its retry, timeout, passive and
//! active health and circuit-breaker settings with Envoy's (and Envoy Gateway's) defaults filled in.

use std::collections::HashMap;
use std::time::Duration;

use super::super::duration::GoDuration;
use super::super::error::{ConfigError, ResourceId};
use super::super::model::{
    ActiveHealthConfig, PassiveHealthConfig, RetryConfig, RetryTrigger, TrafficPolicy,
};
use super::super::resources::{
    ActiveHealthCheck, BackendTrafficPolicySpec, PassiveHealthCheck, PerRetryPolicy, Retry,
    RetryOn, FIRST_TOKEN_TIMEOUT_ANNOTATION, RATE_LIMIT_COOLDOWN_ANNOTATION,
};
use super::{find, Loaded, Store, Warnings};

/// Upper bound on `numRetries`: Envoy has none, but a larger number is a typo, not a policy, and would
/// let one request hammer every provider for the whole route timeout.
const MAX_NUM_RETRIES: i64 = 100;

/// Which BackendTrafficPolicy applies to which route (`namespace/name` → policy).
pub(super) fn attach_traffic_policies<'s>(
    store: &'s Store,
    warnings: &mut Warnings,
) -> Result<HashMap<String, &'s Loaded<BackendTrafficPolicySpec>>, ConfigError> {
    let mut out: HashMap<String, &Loaded<BackendTrafficPolicySpec>> = HashMap::new();
    for p in &store.traffic_policies {
        let refs = p
            .spec
            .target_ref
            .iter()
            .map(|r| ("spec.targetRef".to_owned(), r))
            .chain(
                p.spec
                    .target_refs
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, r)| (format!("spec.targetRefs[{i}]"), r)),
            );
        let mut attached_any = false;
        for (field, r) in refs {
            let kind = r.kind.as_deref().unwrap_or("");
            match kind {
                // Envoy AI Gateway generates an HTTPRoute named after the AIGatewayRoute; policies target
                // that. Naming the AIGatewayRoute itself is accepted too.
                "HTTPRoute" | "AIGatewayRoute" => {
                    let Some(route) = find(&store.routes, &p.id.namespace, &r.name) else {
                        warnings.push(p.id.warning(
                            &field,
                            format!(
                                "targets {kind} {}/{} but no AIGatewayRoute of that name is loaded; ignored",
                                p.id.namespace, r.name
                            ),
                        ));
                        continue;
                    };
                    let key = route.id.key();
                    if let Some(prev) = out.get(&key) {
                        if prev.id != p.id {
                            return Err(p.id.error(
                                field,
                                format!(
                                    "route {key} is already targeted by BackendTrafficPolicy {}; only one policy may apply to a route",
                                    prev.id.key()
                                ),
                            ));
                        }
                    }
                    out.insert(key, p);
                    attached_any = true;
                }
                "Gateway" => warnings.push(p.id.warning(
                    &field,
                    "ignored: policies attached to a Gateway are not applied; target the route (kind HTTPRoute, name = the AIGatewayRoute's name)",
                )),
                other => warnings.push(p.id.warning(
                    &field,
                    format!("ignored: kind {other:?} is not a route Switchyard serves"),
                )),
            }
        }
        if !attached_any {
            warnings.push(p.id.warning("spec", "applies to no loaded route"));
        }
    }
    Ok(out)
}

/// A BackendTrafficPolicy → [`TrafficPolicy`] with Envoy's defaults, one helper per block.
pub(super) fn resolve_traffic_policy(
    p: &Loaded<BackendTrafficPolicySpec>,
    warnings: &mut Warnings,
) -> Result<TrafficPolicy, ConfigError> {
    let id = &p.id;
    let spec = &p.spec;
    let mut out = TrafficPolicy::default();
    if let Some(text) = p.annotations.get(FIRST_TOKEN_TIMEOUT_ANNOTATION) {
        let field = format!("metadata.annotations[{FIRST_TOKEN_TIMEOUT_ANNOTATION}]");
        match crate::config::duration::parse_duration(text) {
            Ok(d) if !d.is_zero() => out.first_token_timeout = Some(d),
            Ok(_) => return Err(id.error(field, "must be greater than 0")),
            Err(e) => return Err(id.error(field, e.to_string())),
        }
    }
    if let Some(text) = p.annotations.get(RATE_LIMIT_COOLDOWN_ANNOTATION) {
        let field = format!("metadata.annotations[{RATE_LIMIT_COOLDOWN_ANNOTATION}]");
        match crate::config::duration::parse_duration(text) {
            Ok(d) if !d.is_zero() => out.rate_limit_cooldown = Some(d),
            Ok(_) => return Err(id.error(field, "must be greater than 0 (the longest cooldown honoured); remove the annotation to switch cooldowns off")),
            Err(e) => return Err(id.error(field, e.to_string())),
        }
    }
    if let Some(r) = &spec.retry {
        out.retry = Some(retry(id, r, warnings)?);
    }
    if let Some(hc) = &spec.health_check {
        if let Some(pt) = hc.panic_threshold {
            out.panic_threshold = percent(pt).ok_or_else(|| {
                id.error(
                    "spec.healthCheck.panicThreshold",
                    format!("{pt} is not a percentage (0..=100)"),
                )
            })?;
        }
        if let Some(ps) = &hc.passive {
            out.passive = Some(passive_health(id, ps)?);
        }
        if let Some(a) = &hc.active {
            out.active = resolve_active_health(id, a, warnings)?;
        }
    }
    if let Some(n) = spec
        .circuit_breaker
        .as_ref()
        .and_then(|cb| cb.max_parallel_retries)
    {
        out.max_parallel_retries = u32::try_from(n).map_err(|_| {
            id.error(
                "spec.circuitBreaker.maxParallelRetries",
                format!("{n} must be a non-negative integer"),
            )
        })?;
    }
    if let Some(ct) = spec
        .timeout
        .as_ref()
        .and_then(|t| t.tcp.as_ref())
        .and_then(|tcp| tcp.connect_timeout)
    {
        if ct.0.is_zero() {
            return Err(id.error("spec.timeout.tcp.connectTimeout", "must be greater than 0"));
        }
        out.connect_timeout = ct.0;
    }
    Ok(out)
}

/// `retry` → [`RetryConfig`] (Envoy Gateway `buildRetry` + the xDS translator's `buildRetryPolicy`).
fn retry(id: &ResourceId, r: &Retry, warnings: &mut Warnings) -> Result<RetryConfig, ConfigError> {
    let defaults = RetryConfig::default();
    let num_retries = r.num_retries.unwrap_or(i64::from(defaults.num_retries));
    if !(0..=MAX_NUM_RETRIES).contains(&num_retries) {
        return Err(id.error(
            "spec.retry.numRetries",
            format!("{num_retries} is not in 0..={MAX_NUM_RETRIES}"),
        ));
    }
    let num_attempts_per_priority = match r.num_attempts_per_priority {
        None => None,
        Some(n) if (1..=i64::from(u32::MAX)).contains(&n) => Some(n as u32),
        Some(n) => {
            return Err(id.error(
                "spec.retry.numAttemptsPerPriority",
                format!("{n} must be at least 1"),
            ))
        }
    };
    let (triggers, http_status_codes) = retry_on(id, r.retry_on.as_ref(), warnings)?;
    let (base_interval, max_interval, per_try_timeout) = per_retry(id, r.per_retry.as_ref())?;
    Ok(RetryConfig {
        num_retries: num_retries as u32,
        triggers,
        http_status_codes,
        base_interval,
        max_interval,
        per_try_timeout,
        num_attempts_per_priority,
    })
}

/// `retryOn` → (triggers, retriable status codes), as Envoy Gateway builds Envoy's retry policy: the
/// default triggers (connect-failure, refused-stream, retriable-status-codes) apply unless `triggers` lists
/// some, and the default codes ([503]) unless `retryOn` names any field at all — so an empty `retryOn`
/// is the defaults, and a codes-only `retryOn` is the default triggers with those codes (audit D5).
fn retry_on(
    id: &ResourceId,
    on: Option<&RetryOn>,
    warnings: &mut Warnings,
) -> Result<(Vec<RetryTrigger>, Vec<u16>), ConfigError> {
    let defaults = RetryConfig::default();
    // EG `buildRetry` keeps `retryOn` only when triggers or httpStatusCodes is set.
    let Some(on) = on.filter(|on| on.triggers.is_some() || on.http_status_codes.is_some()) else {
        return Ok((defaults.triggers, defaults.http_status_codes));
    };
    let mut triggers = Vec::new();
    for (i, t) in on.triggers.iter().flatten().enumerate() {
        let field = format!("spec.retry.retryOn.triggers[{i}]");
        match RetryTrigger::parse(t) {
            Some(trig) => {
                if !triggers.contains(&trig) {
                    triggers.push(trig);
                }
            }
            None if matches!(
                t.as_str(),
                "cancelled" | "deadline-exceeded" | "internal" | "resource-exhausted" | "unavailable"
            ) =>
            {
                warnings.push(id.warning(field, format!("ignored: {t} is a gRPC trigger")));
            }
            None => {
                return Err(id.error(
                    field,
                    format!("unknown retry trigger {t:?} (expected 5xx, gateway-error, reset, reset-before-request, connect-failure, retriable-4xx, refused-stream, retriable-status-codes)"),
                ))
            }
        }
    }
    // EG/xDS: an empty trigger list leaves Envoy Gateway's default `retry_on` in place.
    if on.triggers.as_ref().is_none_or(|t| t.is_empty()) {
        triggers = defaults.triggers;
    } else if triggers.is_empty() {
        warnings.push(id.warning(
            "spec.retry.retryOn.triggers",
            "only gRPC triggers: nothing will be retried",
        ));
    }
    let mut codes = Vec::new();
    for (i, c) in on.http_status_codes.iter().flatten().enumerate() {
        let code = u16::try_from(*c)
            .ok()
            .filter(|c| (100..=599).contains(c))
            .ok_or_else(|| {
                id.error(
                    format!("spec.retry.retryOn.httpStatusCodes[{i}]"),
                    format!("{c} is not an HTTP status (100..=599)"),
                )
            })?;
        codes.push(code);
    }
    if !codes.is_empty() && !triggers.contains(&RetryTrigger::RetriableStatusCodes) {
        warnings.push(id.warning(
            "spec.retry.retryOn.httpStatusCodes",
            "has no effect without the retriable-status-codes trigger",
        ));
    }
    Ok((triggers, codes))
}

/// `perRetry` → (backoff base, backoff max, per-try timeout).
fn per_retry(
    id: &ResourceId,
    pr: Option<&PerRetryPolicy>,
) -> Result<(Duration, Duration, Option<Duration>), ConfigError> {
    let mut base_interval = RetryConfig::default().base_interval;
    let mut max_interval = None;
    let mut per_try_timeout = None;
    if let Some(pr) = pr {
        per_try_timeout = pr.timeout.map(|d| d.0);
        if per_try_timeout == Some(Duration::ZERO) {
            return Err(id.error("spec.retry.perRetry.timeout", "must be greater than 0"));
        }
        if let Some(b) = &pr.back_off {
            if let Some(base) = b.base_interval {
                if base.0.is_zero() {
                    return Err(id.error(
                        "spec.retry.perRetry.backOff.baseInterval",
                        "must be greater than 0",
                    ));
                }
                base_interval = base.0;
            }
            max_interval = b.max_interval.map(|d| d.0);
        }
    }
    // Envoy: maxInterval defaults to 10 × baseInterval and may not be below it.
    let max_interval = max_interval.unwrap_or(base_interval * 10);
    if max_interval < base_interval {
        return Err(id.error(
            "spec.retry.perRetry.backOff.maxInterval",
            "must be greater than or equal to baseInterval",
        ));
    }
    Ok((base_interval, max_interval, per_try_timeout))
}

/// `healthCheck.passive` → [`PassiveHealthConfig`] (Envoy outlier detection as Envoy Gateway configures it).
fn passive_health(
    id: &ResourceId,
    ps: &PassiveHealthCheck,
) -> Result<PassiveHealthConfig, ConfigError> {
    let d = PassiveHealthConfig::default();
    let count = |v: Option<i64>, default: u32, name: &str| -> Result<u32, ConfigError> {
        match v {
            None => Ok(default),
            Some(n) => u32::try_from(n).map_err(|_| {
                id.error(
                    format!("spec.healthCheck.passive.{name}"),
                    format!("{n} must be a non-negative integer"),
                )
            }),
        }
    };
    let positive = |v: Option<GoDuration>, default: Duration, name: &str| match v {
        None => Ok(default),
        Some(x) if x.0.is_zero() => Err(id.error(
            format!("spec.healthCheck.passive.{name}"),
            "must be greater than 0",
        )),
        Some(x) => Ok(x.0),
    };
    let max_ejection_percent = match ps.max_ejection_percent {
        // Envoy Gateway only sets max_ejection_percent when it is above 0, so 0 leaves Envoy's
        // default of 10 % (audit D9), rather than disabling ejection.
        None | Some(0) => d.max_ejection_percent,
        Some(v) => percent(v).ok_or_else(|| {
            id.error(
                "spec.healthCheck.passive.maxEjectionPercent",
                format!("{v} is not a percentage (0..=100)"),
            )
        })?,
    };
    let base_ejection_time = positive(
        ps.base_ejection_time,
        d.base_ejection_time,
        "baseEjectionTime",
    )?;
    Ok(PassiveHealthConfig {
        consecutive_5xx: count(
            ps.consecutive_5xx_errors,
            d.consecutive_5xx,
            "consecutive5XxErrors",
        )?,
        consecutive_gateway_errors: count(
            ps.consecutive_gateway_errors,
            d.consecutive_gateway_errors,
            "consecutiveGatewayErrors",
        )?,
        consecutive_local_origin_failures: count(
            ps.consecutive_local_origin_failures,
            d.consecutive_local_origin_failures,
            "consecutiveLocalOriginFailures",
        )?,
        split_external_local_origin_errors: ps
            .split_external_local_origin_errors
            .unwrap_or(d.split_external_local_origin_errors),
        interval: positive(ps.interval, d.interval, "interval")?,
        base_ejection_time,
        max_ejection_percent,
        always_eject_one_endpoint: ps
            .always_eject_one_endpoint
            .unwrap_or(d.always_eject_one_endpoint),
        // Envoy: max_ejection_time defaults to 300 s or base_ejection_time, whichever is larger (D8);
        // Envoy Gateway does not expose it.
        max_ejection_time: d.max_ejection_time.max(base_ejection_time),
    })
}

pub(super) fn percent(v: i64) -> Option<u32> {
    u32::try_from(v).ok().filter(|p| *p <= 100)
}

/// `healthCheck.active` → [`ActiveHealthConfig`]; only HTTP probes exist here.
pub(super) fn resolve_active_health(
    id: &ResourceId,
    a: &ActiveHealthCheck,
    warnings: &mut Warnings,
) -> Result<Option<ActiveHealthConfig>, ConfigError> {
    const F: &str = "spec.healthCheck.active";
    match a.check_type.as_str() {
        "HTTP" => {}
        "TCP" | "GRPC" => {
            warnings.push(id.warning(
                format!("{F}.type"),
                format!(
                    "ignored: {} probes are not implemented; only HTTP",
                    a.check_type
                ),
            ));
            return Ok(None);
        }
        other => {
            return Err(id.error(
                format!("{F}.type"),
                format!("{other:?} is not a health checker type (expected HTTP)"),
            ))
        }
    }
    let http = a
        .http
        .as_ref()
        .ok_or_else(|| id.error(format!("{F}.http"), "required when type is HTTP"))?;
    if !http.path.starts_with('/') {
        return Err(id.error(
            format!("{F}.http.path"),
            format!("{:?} must start with /", http.path),
        ));
    }
    if http
        .method
        .as_deref()
        .is_some_and(|m| !m.eq_ignore_ascii_case("GET"))
    {
        warnings.push(id.warning(
            format!("{F}.http.method"),
            "ignored: probes are GET requests",
        ));
    }
    let mut expected_statuses = Vec::new();
    for (i, s) in http.expected_statuses.iter().flatten().enumerate() {
        expected_statuses.push(
            u16::try_from(*s)
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| {
                    id.error(
                        format!("{F}.http.expectedStatuses[{i}]"),
                        format!("{s} is not an HTTP status (100..=599)"),
                    )
                })?,
        );
    }
    if expected_statuses.is_empty() {
        expected_statuses.push(200);
    }
    let threshold = |v: Option<i64>, default: u32, name: &str| -> Result<u32, ConfigError> {
        match v {
            None => Ok(default),
            Some(n) if n >= 1 && n <= i64::from(u32::MAX) => Ok(n as u32),
            Some(n) => Err(id.error(format!("{F}.{name}"), format!("{n} must be at least 1"))),
        }
    };
    let interval = a.interval.map_or(Duration::from_secs(3), |d| d.0);
    let timeout = a.timeout.map_or(Duration::from_secs(1), |d| d.0);
    if interval.is_zero() {
        return Err(id.error(format!("{F}.interval"), "must be greater than 0"));
    }
    if timeout.is_zero() {
        return Err(id.error(format!("{F}.timeout"), "must be greater than 0"));
    }
    Ok(Some(ActiveHealthConfig {
        path: http.path.clone(),
        interval,
        timeout,
        unhealthy_threshold: threshold(a.unhealthy_threshold, 3, "unhealthyThreshold")?,
        healthy_threshold: threshold(a.healthy_threshold, 1, "healthyThreshold")?,
        expected_statuses,
    }))
}
