//! The `switchyard` binary: parses the command line and hands over to the library. `anyhow` lives here only.

use std::process::ExitCode;

/// mimalloc instead of glibc's allocator: the request path allocates and frees many small buffers across
/// threads, where glibc's arenas showed up as ~9 % of the CPU profile (docs/BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use switchyard::cli::{CertsCommand, Cli, Command, LogFormat};

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

fn days(n: u32) -> std::time::Duration {
    std::time::Duration::from_secs(u64::from(n) * 86_400)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One request thread means the single-threaded scheduler: the work-stealing one only adds
    // cross-thread bookkeeping when there is nobody to steal from (docs/BENCHMARKS.md).
    let worker_threads = match &cli.command {
        Command::Run(args) => args.worker_threads,
        _ => None,
    };
    let mut builder = match worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(usize::from(n));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async move {
        match cli.command {
            Command::Run(args) => {
                init_logging(args.log_format);
                switchyard::run::run(args).await?;
                Ok(())
            }
            Command::Validate { config, strict } => {
                let cfg = switchyard::config::load(&config)?;
                print!("{}", switchyard::config::render_routing_table(&cfg));
                switchyard::config::strict_check(&cfg, strict).map_err(anyhow::Error::msg)
            }
            Command::Status {
                admin,
                json,
                admin_token,
                admin_token_file,
            } => {
                let token = switchyard::admin_access::read_token(
                    admin_token.as_ref().map(|t| t.expose()),
                    admin_token_file.as_deref(),
                )?;
                let v = switchyard::status::fetch_with_token(&admin, token.as_ref()).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&v)?);
                } else {
                    print!("{}", switchyard::status::render(&v));
                }
                Ok(())
            }
            Command::Demo { exit_after } => {
                switchyard::demo::run(exit_after.map(std::time::Duration::from_secs)).await?;
                Ok(())
            }
            Command::Certs { command } => {
                let files = match command {
                    CertsCommand::Ca {
                        out,
                        cluster,
                        force,
                        validity_days,
                    } => switchyard::cluster::certs::write_ca_valid_for(
                        &out,
                        &cluster,
                        force,
                        days(validity_days),
                    )?,
                    CertsCommand::Node {
                        ca_dir,
                        node_id,
                        out,
                        ips,
                        force,
                        validity_days,
                    } => {
                        let out = out.unwrap_or_else(|| ca_dir.clone());
                        switchyard::cluster::certs::write_node_valid_for(
                            &ca_dir,
                            &node_id,
                            &out,
                            &ips,
                            force,
                            days(validity_days),
                        )?
                    }
                };
                println!("wrote {}", files.cert.display());
                println!("wrote {}", files.key.display());
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: the library's errors already quote their
/// source in their own message (they are read on their own in logs and `/status`), so a cause whose text
/// the line already holds is left out instead of repeated.
fn error_chain(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot load config: {0}")]
    struct Load(#[source] Read);

    #[derive(Debug, thiserror::Error)]
    #[error("/x.yaml: cannot read: {0}")]
    struct Read(#[source] std::io::Error);

    #[test]
    fn each_cause_is_printed_once() {
        let io = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let quoted = anyhow::Error::new(Load(Read(io())));
        assert_eq!(
            error_chain(&quoted),
            "cannot load config: /x.yaml: cannot read: entity not found"
        );
        // A context that does not quote its cause still gets it appended.
        let bare = anyhow::Error::new(io()).context("starting");
        assert_eq!(error_chain(&bare), "starting: entity not found");
    }
}
