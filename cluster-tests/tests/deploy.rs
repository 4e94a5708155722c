//! The deployment files in `deploy/` (issue 6) are valid and agree with the node's behaviour:
//! the Kubernetes manifests parse as YAML and wire probes, ports, seeds, certificates and the drain grace
//! period consistently; the ConfigMap's routes are the local example and `switchyard validate` accepts them;
//! the systemd unit passes `systemd-analyze verify` and stops within its drain; the HAProxy template renders
//! for N loopback nodes and `haproxy -c` accepts it, with a detection time below the default drain delay;
//! `kubectl kustomize deploy/kubernetes` renders them with the image `scripts/build-image.sh` produces; and
//! every `SWITCHYARD_*` variable and every flag these files name exists in `switchyard run --help` (issue 19).

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

/// `name` on `PATH`, or an error saying how to install it. Tests that need a tool fail (never skip) on this.
fn tool(name: &str, package: &str) -> anyhow::Result<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "`{name}` is not installed: Debian's {package} package has it \
                 (scripts/setup.sh installs it; .ci/run calls that)"
            )
        })
}

#[test]
fn kustomize_renders_the_manifests_with_the_scripts_image() -> anyhow::Result<()> {
    let kubectl = tool("kubectl", "kubernetes-client")?;
    let out = Command::new(&kubectl)
        .arg("kustomize")
        .arg(repo_root().join("deploy/kubernetes"))
        .output()?;
    ensure!(
        out.status.success(),
        "kubectl kustomize deploy/kubernetes: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered: Vec<Value> = serde_saphyr::from_multiple(&String::from_utf8(out.stdout)?)
        .context("parsing kubectl kustomize's output")?;
    let mut kinds: Vec<&str> = rendered.iter().filter_map(|d| d["kind"].as_str()).collect();
    kinds.sort_unstable();
    ensure!(
        kinds
            == [
                "ConfigMap",
                "Namespace",
                "PodDisruptionBudget",
                "Secret",
                "Service",
                "Service",
                "StatefulSet"
            ],
        "rendered kinds: {kinds:?}"
    );
    for d in &rendered {
        if d["kind"] != "Namespace" {
            ensure!(
                d["metadata"]["namespace"] == "switchyard",
                "{} {} is not in namespace switchyard",
                d["kind"],
                d["metadata"]["name"]
            );
        }
    }

    // The StatefulSet runs the image the build script produces, tagged with the workspace version.
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/build-image.sh"))
        .arg("--print-ref")
        .output()?;
    ensure!(out.status.success(), "build-image.sh --print-ref: {out:?}");
    let reference = String::from_utf8(out.stdout)?.trim().to_owned();
    ensure!(
        reference.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION"))),
        "the script's image {reference} is not tagged with the workspace version"
    );
    let sts = rendered
        .iter()
        .find(|d| d["kind"] == "StatefulSet")
        .context("StatefulSet")?;
    let image = &sts["spec"]["template"]["spec"]["containers"][0]["image"];
    ensure!(
        *image == reference.as_str(),
        "the StatefulSet runs {image}, scripts/build-image.sh builds {reference}"
    );
    Ok(())
}

/// Flags of other programs that the deployment files mention: (file, flag, whose).
const OTHER_PROGRAMS_FLAGS: &[(&str, &str, &str)] = &[
    (
        "deploy/kubernetes/secret.yaml",
        "--from-file",
        "kubectl create secret",
    ),
    (
        "deploy/kubernetes/secret.yaml",
        "--dry-run",
        "kubectl create secret",
    ),
    (
        "deploy/systemd/switchyard.service",
        "--now",
        "systemctl enable",
    ),
    ("Dockerfile", "--mount", "the RUN instruction"),
    ("Dockerfile", "--from", "the COPY instruction"),
    ("Dockerfile", "--locked", "cargo build"),
    ("Dockerfile", "--release", "cargo build"),
    ("Dockerfile", "--strip-debug", "objcopy"),
];

/// Words in `text` that start with `prefix` and go on with characters `more` accepts.
fn words<'a>(text: &'a str, prefix: &str, more: impl Fn(char) -> bool) -> Vec<&'a str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let tail = &rest[at + prefix.len()..];
        let len = if tail.starts_with(|c: char| c.is_ascii_alphabetic()) {
            tail.find(|c: char| !more(c)).unwrap_or(tail.len())
        } else {
            0
        };
        // A flag is `--` at a word start followed by a letter (not `---`, not `a--b`).
        let starts_word =
            at == 0 || !rest[..at].ends_with(|c: char| c.is_alphanumeric() || c == '-');
        if len > 0 && starts_word {
            found.push(&rest[at..at + prefix.len() + len]);
        }
        rest = &rest[at + prefix.len() + len.max(1).min(tail.len())..];
    }
    found
}

fn help(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin_path("switchyard")).args(args).output()?;
    ensure!(out.status.success(), "switchyard {args:?}: {out:?}");
    Ok(String::from_utf8(out.stdout)?)
}

#[test]
fn deployment_files_name_only_flags_and_variables_the_binary_has() -> anyhow::Result<()> {
    let run = help(&["run", "--help"])?;
    let env_char = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
    let flag_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    let known_vars: Vec<&str> = words(&run, "SWITCHYARD_", env_char);
    ensure!(
        known_vars.contains(&"SWITCHYARD_CONFIG") && known_vars.contains(&"SWITCHYARD_LOG"),
        "`switchyard run --help` lists no SWITCHYARD_CONFIG/SWITCHYARD_LOG:\n{run}"
    );
    // `switchyard certs ca|node` flags appear in the certificate how-tos.
    let certs = help(&["certs", "ca", "--help"])? + &help(&["certs", "node", "--help"])?;
    let mut known_flags: Vec<&str> = words(&run, "--", flag_char);
    known_flags.extend(words(&certs, "--", flag_char));

    let root = repo_root();
    let mut files: Vec<std::path::PathBuf> = vec![
        root.join("deploy/haproxy/haproxy.cfg.in"),
        root.join("deploy/systemd/switchyard.service"),
        root.join("deploy/systemd/switchyard.env"),
        root.join("Dockerfile"),
    ];
    for entry in std::fs::read_dir(root.join("deploy/kubernetes"))? {
        files.push(entry?.path());
    }
    let mut problems = Vec::new();
    let mut vars_seen = 0;
    for file in &files {
        let rel = file.strip_prefix(&root)?.display().to_string();
        let text = std::fs::read_to_string(file).with_context(|| rel.clone())?;
        for var in words(&text, "SWITCHYARD_", env_char) {
            vars_seen += 1;
            if !known_vars.contains(&var) {
                problems.push(format!("{rel}: {var} is not in `switchyard run --help`"));
            }
        }
        for flag in words(&text, "--", flag_char) {
            let other = OTHER_PROGRAMS_FLAGS
                .iter()
                .any(|(f, name, _)| *f == rel && *name == flag);
            if !other && !known_flags.contains(&flag) {
                problems.push(format!(
                    "{rel}: {flag} is not a `switchyard run` (or `certs`) flag"
                ));
            }
        }
    }
    ensure!(problems.is_empty(), "{}", problems.join("\n"));
    // The scan itself works: the StatefulSet and the env file set a dozen variables between them.
    ensure!(
        vars_seen > 20,
        "only {vars_seen} SWITCHYARD_* mentions found"
    );
    Ok(())
}

#[test]
fn flag_scan_finds_flags_and_variables() {
    let flag_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    assert_eq!(
        words("run --listen x --drain-delay=5s a--b ---", "--", flag_char),
        ["--listen", "--drain-delay"]
    );
    let env_char = |c: char| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_';
    assert_eq!(
        words(
            "#SWITCHYARD_NODE_ID=x $SWITCHYARD_LOG",
            "SWITCHYARD_",
            env_char
        ),
        ["SWITCHYARD_NODE_ID", "SWITCHYARD_LOG"]
    );
}

/// The ports, user, entrypoint and command an image description names: (`EXPOSE`/`--port` values,
/// user, entrypoint JSON, cmd JSON).
fn image_settings(text: &str, expose: &str, user: &str, entry: &str, cmd: &str) -> [String; 4] {
    // `EXPOSE a b c` names every port after it; `--port a --port b` one port after each.
    let mut ports: Vec<&str> = Vec::new();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        for (i, w) in words.iter().enumerate() {
            if *w == expose.trim() {
                if expose.starts_with("--") {
                    ports.extend(words.get(i + 1));
                } else if i == 0 {
                    ports.extend(&words[1..]);
                }
            }
        }
    }
    ports.sort_unstable();
    let value = |key: &str| {
        text.lines()
            .filter_map(|l| l.trim().strip_prefix(key))
            .map(|v| {
                v.trim()
                    .trim_end_matches('\\')
                    .trim()
                    .trim_matches('\'')
                    .to_owned()
            })
            .next_back()
            .unwrap_or_default()
    };
    [ports.join(" "), value(user), value(entry), value(cmd)]
}

#[test]
fn dockerfile_and_image_script_agree_with_the_statefulset() -> anyhow::Result<()> {
    let root = repo_root();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile"))?;
    let script = std::fs::read_to_string(root.join("scripts/build-image.sh"))?;
    let from_dockerfile = image_settings(&dockerfile, "EXPOSE ", "USER ", "ENTRYPOINT ", "CMD ");
    let from_script = image_settings(&script, "--port ", "--user ", "--entrypoint ", "--cmd ");
    ensure!(
        from_dockerfile == from_script,
        "Dockerfile {from_dockerfile:?} and build-image.sh {from_script:?} build different images"
    );
    let [ports, user, entrypoint, cmd] = &from_dockerfile;
    ensure!(entrypoint == r#"["/usr/local/bin/switchyard"]"# && cmd == r#"["run"]"#);

    let sts = one("statefulset.yaml", "StatefulSet")?;
    let pod = &sts["spec"]["template"]["spec"];
    let mut want: Vec<String> = pod["containers"][0]["ports"]
        .as_array()
        .context("ports")?
        .iter()
        .map(|p| {
            format!(
                "{}/{}",
                p["containerPort"],
                p["protocol"].as_str().unwrap_or("TCP").to_ascii_lowercase()
            )
        })
        .collect();
    want.sort_unstable();
    ensure!(
        *ports == want.join(" "),
        "image exposes {ports}, the StatefulSet uses {want:?}"
    );
    let run_as = format!(
        "{}:{}",
        pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]
    );
    ensure!(*user == run_as, "image user {user}, pod runs as {run_as}");
    Ok(())
}
