//! The deployment files in `deploy/` (issue 6) are valid and agree with the node's behaviour:
//! the Kubernetes manifests parse as YAML and wire probes, ports, seeds, certificates and the drain grace
//! period consistently; the ConfigMap's routes are the local example and `switchyard validate` accepts them;
//! the systemd unit passes `systemd-analyze verify` and stops within its drain; the HAProxy template renders
//! for N loopback nodes and `haproxy -c` accepts it, with a detection time below the default drain delay.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use serde_json::Value;
use switchyard_cluster_tests::harness::{bin_path, haproxy_path, repo_root};

fn docs(file: &str) -> anyhow::Result<Vec<Value>> {
    let path = repo_root().join("deploy/kubernetes").join(file);
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).with_context(|| format!("parsing {file}"))?;
    ensure!(!docs.is_empty(), "{file} has no document");
    Ok(docs)
}

fn one(file: &str, kind: &str) -> anyhow::Result<Value> {
    let all: Vec<Value> = docs(file)?
        .into_iter()
        .filter(|d| d["kind"] == kind)
        .collect();
    ensure!(all.len() == 1, "{file}: want one {kind}, got {}", all.len());
    all.into_iter().next().context("one")
}

/// `5s`, `30s`, `1m` → seconds.
fn secs(v: &str) -> anyhow::Result<u64> {
    if let Some(s) = v.strip_suffix("ms") {
        return Ok(s.parse::<u64>()?.div_ceil(1000));
    }
    if let Some(s) = v.strip_suffix('s') {
        return Ok(s.parse()?);
    }
    if let Some(m) = v.strip_suffix('m') {
        return Ok(m.parse::<u64>()? * 60);
    }
    bail!("cannot read duration {v:?}")
}

fn env<'a>(container: &'a Value, name: &str) -> anyhow::Result<&'a str> {
    container["env"]
        .as_array()
        .context("env")?
        .iter()
        .find(|e| e["name"] == name)
        .and_then(|e| e["value"].as_str())
        .with_context(|| format!("no env {name}"))
}

#[test]
fn kubernetes_manifests_parse_and_agree() -> anyhow::Result<()> {
    let dir = repo_root().join("deploy/kubernetes");
    // Every file parses, every document has apiVersion/kind/metadata.name, and kustomization lists them all.
    let kustomization = docs("kustomization.yaml")?.remove(0);
    let listed: Vec<&str> = kustomization["resources"]
        .as_array()
        .context("resources")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for entry in std::fs::read_dir(&dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".yaml") || name == "kustomization.yaml" {
            continue;
        }
        ensure!(
            listed.contains(&name.as_str()),
            "kustomization misses {name}"
        );
        for d in docs(&name)? {
            ensure!(
                d["apiVersion"].is_string()
                    && d["kind"].is_string()
                    && d["metadata"]["name"].is_string(),
                "{name}: document without apiVersion/kind/metadata.name"
            );
        }
    }

    let sts = one("statefulset.yaml", "StatefulSet")?;
    let spec = &sts["spec"];
    let pod = &spec["template"]["spec"];
    let c = &pod["containers"][0];
    let replicas = spec["replicas"].as_u64().context("replicas")?;
    let service_name = spec["serviceName"].as_str().context("serviceName")?;
    let ns = sts["metadata"]["namespace"].as_str().context("namespace")?;
    let name = sts["metadata"]["name"].as_str().context("name")?;

    // Stable node ids from the pod name.
    ensure!(env(c, "SWITCHYARD_NODE_ID")? == "$(POD_NAME)");
    let pod_name = c["env"]
        .as_array()
        .context("env")?
        .iter()
        .find(|e| e["name"] == "POD_NAME")
        .context("POD_NAME")?;
    ensure!(pod_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name");

    // Seeds: every pod's DNS name through the headless Service, on the gossip port.
    let seeds: Vec<String> = env(c, "SWITCHYARD_SEEDS")?
        .split(',')
        .map(String::from)
        .collect();
    let want: Vec<String> = (0..replicas)
        .map(|i| format!("{name}-{i}.{service_name}.{ns}.svc.cluster.local:7946"))
        .collect();
    ensure!(seeds == want, "seeds {seeds:?}, want {want:?}");
    let headless = docs("services.yaml")?
        .into_iter()
        .find(|d| d["metadata"]["name"] == service_name)
        .context("headless service")?;
    ensure!(headless["spec"]["clusterIP"] == "None");
    ensure!(headless["spec"]["ports"][0]["protocol"] == "UDP");
    ensure!(headless["spec"]["ports"][0]["port"] == 7946);

    // The LoadBalancer exposes the client port only.
    let lb = docs("services.yaml")?
        .into_iter()
        .find(|d| d["spec"]["type"] == "LoadBalancer")
        .context("LoadBalancer service")?;
    let lb_ports = lb["spec"]["ports"].as_array().context("ports")?;
    ensure!(lb_ports.len() == 1 && lb_ports[0]["targetPort"] == "http");
    let http_port = c["ports"]
        .as_array()
        .context("ports")?
        .iter()
        .find(|p| p["name"] == "http")
        .context("http port")?;
    ensure!(
        env(c, "SWITCHYARD_LISTEN")?.ends_with(&format!(":{}", http_port["containerPort"])),
        "client port and SWITCHYARD_LISTEN disagree"
    );

    // Probes on the admin port, which is bound where the kubelet reaches it.
    ensure!(c["readinessProbe"]["httpGet"]["path"] == "/readyz");
    ensure!(c["readinessProbe"]["httpGet"]["port"] == "admin");
    ensure!(c["livenessProbe"]["httpGet"]["path"] == "/healthz");
    ensure!(c["livenessProbe"]["httpGet"]["port"] == "admin");
    ensure!(env(c, "SWITCHYARD_ADMIN")?.starts_with("0.0.0.0:"));

    // The grace period covers drain delay + drain timeout, and the delay outlasts the readiness probe's
    // detection (period × failureThreshold).
    let delay = secs(env(c, "SWITCHYARD_DRAIN_DELAY")?)?;
    let timeout = secs(env(c, "SWITCHYARD_DRAIN_TIMEOUT")?)?;
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .context("terminationGracePeriodSeconds")?;
    ensure!(
        grace > delay + timeout,
        "grace {grace}s ≤ drain {delay}s + {timeout}s"
    );
    let probe = &c["readinessProbe"];
    let detect = probe["periodSeconds"].as_u64().context("periodSeconds")?
        * probe["failureThreshold"]
            .as_u64()
            .context("failureThreshold")?;
    ensure!(
        delay > detect,
        "drain delay {delay}s ≤ readiness detection {detect}s"
    );

    // Certificates from the Secret, at the paths the env names.
    let secret = one("secret.yaml", "Secret")?;
    let tls_volume = pod["volumes"]
        .as_array()
        .context("volumes")?
        .iter()
        .find(|v| v["secret"]["secretName"] == secret["metadata"]["name"])
        .context("no volume from the Secret")?;
    let mount = c["volumeMounts"]
        .as_array()
        .context("volumeMounts")?
        .iter()
        .find(|m| m["name"] == tls_volume["name"])
        .context("Secret volume not mounted")?;
    let mount_path = mount["mountPath"].as_str().context("mountPath")?;
    for (var, key) in [
        ("SWITCHYARD_CLUSTER_CA", "ca.crt"),
        ("SWITCHYARD_CLUSTER_CERT", "tls.crt"),
        ("SWITCHYARD_CLUSTER_KEY", "tls.key"),
    ] {
        ensure!(secret["stringData"][key].is_string(), "Secret lacks {key}");
        ensure!(env(c, var)? == format!("{mount_path}/{key}"));
    }

    // The PodDisruptionBudget selects the pods and lets one go at a time.
    let pdb = one("pdb.yaml", "PodDisruptionBudget")?;
    ensure!(pdb["spec"]["maxUnavailable"] == 1);
    ensure!(pdb["spec"]["selector"]["matchLabels"] == spec["selector"]["matchLabels"]);

    // The ConfigMap carries the local example verbatim, and the node accepts it.
    let cm = one("configmap.yaml", "ConfigMap")?;
    let routes = cm["data"]["routes.yaml"].as_str().context("routes.yaml")?;
    let example = std::fs::read_to_string(repo_root().join("deploy/examples/local-fallback.yaml"))?;
    ensure!(
        routes.trim_end() == example.trim_end(),
        "configmap.yaml's routes differ from deploy/examples/local-fallback.yaml"
    );
    ensure!(env(c, "SWITCHYARD_CONFIG")?.ends_with("/routes.yaml"));
    let tmp = tempfile::tempdir()?;
    let file = tmp.path().join("routes.yaml");
    std::fs::write(&file, routes)?;
    let out = Command::new(bin_path("switchyard"))
        .args(["validate", "--config"])
        .arg(&file)
        .output()?;
    ensure!(
        out.status.success(),
        "switchyard validate rejected the ConfigMap's routes: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn unit_value<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

#[test]
fn systemd_unit_verifies_and_stops_within_its_drain() -> anyhow::Result<()> {
    let dir = repo_root().join("deploy/systemd");
    let unit = std::fs::read_to_string(dir.join("switchyard.service"))?;
    let envfile = std::fs::read_to_string(dir.join("switchyard.env"))?;
    let env_value = |k: &str| {
        envfile
            .lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .with_context(|| format!("switchyard.env lacks {k}"))
    };
    let drain =
        secs(env_value("SWITCHYARD_DRAIN_DELAY")?)? + secs(env_value("SWITCHYARD_DRAIN_TIMEOUT")?)?;
    let stop =
        secs(unit_value(&unit, "TimeoutStopSec").context("TimeoutStopSec")?).or_else(|_| {
            unit_value(&unit, "TimeoutStopSec")
                .context("TimeoutStopSec")?
                .parse::<u64>()
                .map_err(anyhow::Error::from)
        })?;
    ensure!(stop > drain, "TimeoutStopSec {stop}s ≤ drain {drain}s");
    ensure!(unit_value(&unit, "ExecReload") == Some("/bin/kill -HUP $MAINPID"));
    ensure!(unit_value(&unit, "EnvironmentFile").is_some());
    for (k, v) in [
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("ProtectSystem", "strict"),
        ("MemoryDenyWriteExecute", "yes"),
        ("SystemCallFilter", "@system-service"),
        ("DynamicUser", "yes"),
    ] {
        ensure!(unit_value(&unit, k) == Some(v), "unit lacks {k}={v}");
    }
    ensure!(unit_value(&unit, "RestrictAddressFamilies").is_some());

    // systemd-analyze verify, with ExecStart and EnvironmentFile pointing at files that exist here.
    let analyze = Path::new("/usr/bin/systemd-analyze");
    if !analyze.exists() {
        println!("systemd-analyze not installed: structural checks only");
        return Ok(());
    }
    let tmp = tempfile::tempdir()?;
    let local = unit
        .replace(
            "/usr/local/bin/switchyard",
            &bin_path("switchyard").display().to_string(),
        )
        .replace(
            "/etc/switchyard/switchyard.env",
            &dir.join("switchyard.env").display().to_string(),
        );
    let path = tmp.path().join("switchyard.service");
    std::fs::write(&path, local)?;
    let out = Command::new(analyze).arg("verify").arg(&path).output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success() && !stderr.contains("switchyard.service"),
        "systemd-analyze verify: {}\n{stderr}",
        out.status
    );
    Ok(())
}

#[test]
fn haproxy_template_renders_for_n_loopback_nodes() -> anyhow::Result<()> {
    let haproxy = haproxy_path()?;
    let script = repo_root().join("deploy/haproxy/render.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args([
            "--bind",
            "127.0.0.1:8080",
            "--stats",
            "127.0.0.1:8404",
            "--loopback",
            "5",
            "8080",
            "9901",
        ])
        .output()?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cfg = String::from_utf8(out.stdout)?;
    for i in 1..=5 {
        let line = format!("server node-{i} 127.0.0.{i}:8080 check port 9901");
        ensure!(cfg.contains(&line), "missing `{line}` in\n{cfg}");
    }
    ensure!(!cfg.contains('@'), "placeholder left in\n{cfg}");
    ensure!(cfg.contains("option httpchk GET /readyz"));
    ensure!(!cfg.lines().any(|l| l.trim() == "option redispatch"));
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("haproxy.cfg");
    std::fs::write(&path, &cfg)?;
    let check = Command::new(haproxy)
        .args(["-c", "-f"])
        .arg(&path)
        .output()?;
    ensure!(
        check.status.success(),
        "haproxy -c: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Detection (inter × fall + check timeout) stays below the node's default drain delay (5s).
    let cfg: String = cfg
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let ms = |key: &str| -> anyhow::Result<u64> {
        let v = cfg
            .split_whitespace()
            .skip_while(|w| *w != key)
            .nth(1)
            .with_context(|| format!("no {key}"))?;
        Ok(match v.strip_suffix("ms") {
            Some(n) => n.parse()?,
            None => secs(v)? * 1000,
        })
    };
    let fall: u64 = cfg
        .split_whitespace()
        .skip_while(|w| *w != "fall")
        .nth(1)
        .context("fall")?
        .parse()?;
    let detect = Duration::from_millis(ms("inter")? * fall + ms("check")?);
    ensure!(
        detect < Duration::from_secs(5),
        "HAProxy detection {detect:?} ≥ default drain delay"
    );
    Ok(())
}
