//! A running `mock-provider` process and a client for its control API.
//!
//! Tests start one [`MockProvider`] per upstream provider they need, steer its failure mode and read what
//! it received. The process is owned by a [`Process`], so it is killed by PID when the value is dropped.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde_json::Value;

use super::http::{http_get, http_request, HttpResponse};
use super::{bin_path, poll_until, Process, RecordedRequest};

/// How long to wait for the ready line.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Start options for [`MockProvider::start_with`]. `Default` gives name `mock`, ports 0, mode `ok`.
#[derive(Debug, Clone, Default)]
pub struct MockOptions {
    /// Provider name (default `mock`).
    pub name: Option<String>,
    /// Data address (default `127.0.0.1:0`).
    pub listen: Option<SocketAddr>,
    /// Control address (default `127.0.0.1:0`).
    pub control: Option<SocketAddr>,
    /// Initial mode in the command-line form, e.g. `"fail-after 2 reset"` (default `ok`).
    pub mode: Option<String>,
    /// PEM certificate and key files to serve the data port over TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Further command-line arguments (e.g. `--chunk-delay-ms 50`).
    pub extra_args: Vec<String>,
}

/// A running mock provider.
#[derive(Debug)]
pub struct MockProvider {
    /// Its name (echoed as "hello from NAME" and in `x-mock-provider`).
    pub name: String,
    /// The data port address.
    pub data_addr: SocketAddr,
    /// The control port address.
    pub control_addr: SocketAddr,
    process: Process,
}

impl MockProvider {
    /// Starts a provider named `name` on free ports, mode `ok`.
    pub async fn start(name: &str) -> anyhow::Result<MockProvider> {
        MockProvider::start_with(MockOptions {
            name: Some(name.to_owned()),
            ..MockOptions::default()
        })
        .await
    }

    /// Starts a provider with `opts` and waits (bounded) for its ready line.
    pub async fn start_with(opts: MockOptions) -> anyhow::Result<MockProvider> {
        let name = opts.name.unwrap_or_else(|| "mock".to_owned());
        let local = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut args: Vec<String> = vec![
            "--name".into(),
            name.clone(),
            "--listen".into(),
            opts.listen.unwrap_or(local).to_string(),
            "--control".into(),
            opts.control.unwrap_or(local).to_string(),
            "--mode".into(),
            opts.mode.unwrap_or_else(|| "ok".into()),
        ];
        if let Some((cert, key)) = &opts.tls {
            args.push("--tls-cert".into());
            args.push(cert.display().to_string());
            args.push("--tls-key".into());
            args.push(key.display().to_string());
        }
        args.extend(opts.extra_args);
        let mut process = Process::start(
            &format!("mock-provider-{name}"),
            &bin_path("mock-provider"),
            &args,
            &[],
        )?;
        let line = poll_until(READY_TIMEOUT, Duration::from_millis(10), || {
            let out = process.stdout();
            let exited = process.try_exit().ok().flatten();
            async move {
                if let Some(line) = out.lines().find(|l| l.starts_with("mock-provider ready ")) {
                    return Some(Ok(line.to_owned()));
                }
                exited.map(Err)
            }
        })
        .await;
        let line = match line {
            Ok(Ok(line)) => line,
            Ok(Err(status)) => bail!(
                "mock-provider exited with {status} before ready\n{}",
                process.logs()
            ),
            Err(e) => bail!("mock-provider not ready: {e}\n{}", process.logs()),
        };
        let field = |key: &str| -> anyhow::Result<SocketAddr> {
            let v = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .with_context(|| format!("no {key} in ready line {line:?}"))?;
            v.parse()
                .with_context(|| format!("bad address in ready line {line:?}"))
        };
        Ok(MockProvider {
            name,
            data_addr: field("data=")?,
            control_addr: field("control=")?,
            process,
        })
    }

    /// `http://DATA_ADDR`.
    pub fn data_url(&self) -> String {
        format!("http://{}", self.data_addr)
    }

    /// `http://CONTROL_ADDR`.
    pub fn control_url(&self) -> String {
        format!("http://{}", self.control_addr)
    }

    /// The process (for its logs or PID).
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// The process, mutably (to signal it).
    pub fn process_mut(&mut self) -> &mut Process {
        &mut self.process
    }

    async fn control(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.control_url());
        let body = body.map(|b| Bytes::from(b.to_string())).unwrap_or_default();
        let resp: HttpResponse = http_request(
            method.clone(),
            &url,
            &[("content-type", "application/json")],
            body,
        )
        .await
        .with_context(|| format!("control {method} {path}"))?;
        if resp.status != StatusCode::OK {
            bail!("control {method} {path}: {} {}", resp.status, resp.text());
        }
        resp.json()
    }

    /// Sets the mode (`PUT /mode`), e.g. `json!({"mode":"status","status":500})`. Returns once the data
    /// listener follows the mode (closed for `refuse`, re-bound otherwise).
    pub async fn set_mode(&self, mode: Value) -> anyhow::Result<()> {
        self.control(Method::PUT, "/mode", Some(&mode))
            .await
            .map(drop)
    }

    /// Sets streaming settings (`PUT /stream`), e.g. `json!({"chunk_delay_ms":50,"content_chunks":5})`.
    pub async fn set_stream(&self, settings: Value) -> anyhow::Result<()> {
        self.control(Method::PUT, "/stream", Some(&settings))
            .await
            .map(drop)
    }

    /// Every request received on the data port since the last [`MockProvider::clear`].
    pub async fn requests(&self) -> anyhow::Result<Vec<RecordedRequest>> {
        let v = self.control(Method::GET, "/requests", None).await?;
        serde_json::from_value(v).context("decoding /requests")
    }

    /// Number of requests in the log.
    pub async fn request_count(&self) -> anyhow::Result<usize> {
        let v = self.control(Method::GET, "/requests/count", None).await?;
        let n = v.get("count").and_then(Value::as_u64).context("no count")?;
        Ok(usize::try_from(n)?)
    }

    /// Sets the credential services (`PUT /credentials`), e.g. `json!({"lifetime_secs":3,"fail":false})`;
    /// returns their status.
    pub async fn set_credentials(&self, settings: Value) -> anyhow::Result<Value> {
        self.control(Method::PUT, "/credentials", Some(&settings))
            .await
    }

    /// Settings and counts of credentials issued per kind (`GET /credentials`).
    pub async fn credentials(&self) -> anyhow::Result<Value> {
        self.control(Method::GET, "/credentials", None).await
    }

    /// Clears the request log.
    pub async fn clear(&self) -> anyhow::Result<()> {
        self.control(Method::DELETE, "/requests", None)
            .await
            .map(drop)
    }

    /// `GET /health` on the control port succeeds.
    pub async fn healthy(&self) -> bool {
        http_get(&format!("{}/health", self.control_url()))
            .await
            .is_ok_and(|r| r.status == StatusCode::OK)
    }
}
