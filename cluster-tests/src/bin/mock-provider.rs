//! `mock-provider`: a scriptable model provider for Switchyard's multi-process tests.
//!
//! One process plays one upstream provider (DESIGN.md §9). The logic lives in
//! `switchyard_cluster_tests::mock`; this file only parses flags, sets up logging and runs it.
//! Once both ports listen it prints `mock-provider ready data=ADDR control=ADDR` on stdout.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use clap::Parser;
use switchyard_cluster_tests::mock::{self, mode::Mode, StreamSettings};

/// An OpenAI-compatible mock model provider that fails on command.
#[derive(Debug, Parser)]
#[command(name = "mock-provider", version)]
struct Args {
    /// Data port address (HTTP/1.1 and h2c, or TLS with --tls-cert/--tls-key).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Control API address (HTTP/1.1 JSON).
    #[arg(long, default_value = "127.0.0.1:0")]
    control: SocketAddr,
    /// Provider name, echoed in answers ("hello from NAME") and the `x-mock-provider` header.
    #[arg(long, default_value = "mock")]
    name: String,
    /// Initial mode, e.g. `ok`, `status 503 2`, `refuse`, `reset`, `hang`, `delay 200`, `stall 2`,
    /// `cut 2`, `fail-after 3 reset`, or mode JSON.
    #[arg(long, default_value = "ok")]
    mode: String,
    /// Delay between streamed chunks in milliseconds.
    #[arg(long, default_value_t = 0)]
    chunk_delay_ms: u64,
    /// Number of content chunks a streamed answer is split into.
    #[arg(long, default_value_t = 3)]
    content_chunks: usize,
    /// PEM certificate chain for TLS on the data port.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS on the data port.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Count requests without recording them (benchmarks: flat memory, no recording cost).
    #[arg(long)]
    no_log: bool,
    /// botocore's bedrock-runtime `service-2.json` (uncompressed): every Bedrock request is checked
    /// against its `ConverseRequest` / `ConverseStreamRequest` shapes, as AWS validates them.
    #[arg(long)]
    bedrock_service_model: Option<PathBuf>,
    /// Vertex AI's discovery document (`aiplatform.v1.json` from google-api-python-client): every Gemini
    /// request is checked against its `GenerateContentRequest` schema, as Vertex's parser would.
    #[arg(long)]
    vertex_discovery: Option<PathBuf>,
    /// Cohere's v2 Chat definition as JSON Schema (written by cluster-tests/tests/cohere_schema.py from
    /// the official `cohere` SDK): every /v2/chat request is checked against it.
    #[arg(long)]
    cohere_schema: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MOCK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mode = Mode::parse(&args.mode)?;
    if args.content_chunks == 0 {
        bail!("--content-chunks must be at least 1");
    }
    if let Some(path) = &args.bedrock_service_model {
        let model = switchyard_cluster_tests::mock::service_model::ServiceModel::load(path)?;
        if !model.has("ConverseRequest") {
            bail!(
                "{} is not the bedrock-runtime service model",
                path.display()
            );
        }
        let _ = switchyard_cluster_tests::mock::bedrock::SERVICE_MODEL.set(model);
    }
    // A definition that was asked for but cannot be read stops the mock: running unchecked would let
    // the tests pass for the wrong reason.
    if let Some(path) = &args.vertex_discovery {
        let doc =
            mock::discovery::Discovery::load(path, mock::discovery::GENERATE_CONTENT_REQUEST)?;
        let _ = mock::discovery::VERTEX.set(doc);
    }
    if let Some(path) = &args.cohere_schema {
        let schema = mock::json_schema::CohereSchema::load(path)?;
        let _ = mock::json_schema::COHERE.set(schema);
    }
    let opts = mock::Options {
        listen: args.listen,
        control: args.control,
        name: args.name,
        mode,
        tls: args.tls_cert.zip(args.tls_key),
        stream: StreamSettings {
            chunk_delay_ms: args.chunk_delay_ms,
            content_chunks: args.content_chunks,
        },
        no_log: args.no_log,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(mock::run(opts))
}
