//! `ntier`: the programs of maestro's n-tier example (`examples/ntier`), one binary for both
//! images that run it:
//!
//! ```text
//! ntier api [--listen ADDR]     REST API over documents kept as PostgreSQL JSONB
//! ntier web [--listen ADDR]     the web page, and /api/ passed on to the API
//! ntier connect HOST:PORT       exit 0 if a TCP connection opens (network policy checks)
//! ```
//!
//! Settings come from the environment, as the example's ConfigMap and Secret give them: the API
//! reads `DATABASE_HOST`, `DATABASE_PORT`, `DATABASE_NAME`, `DATABASE_USER` and
//! `DATABASE_PASSWORD`; the frontend reads `API_URL` and `PAGE_TITLE`. Every response carries
//! `X-Served-By` with the pod's hostname, so a client can see which replica answered.

mod api;
mod http;
mod web;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ntier",
    about = "maestro's n-tier example: REST API, web frontend"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API (documents in PostgreSQL).
    Api {
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
    },
    /// Serve the web page and pass /api/ requests on to the API.
    Web {
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
    },
    /// Try to open a TCP connection: exit 0 if it opens, 1 if not.
    Connect {
        /// HOST:PORT (a Service name resolves through the cluster DNS).
        address: String,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // The schema statements' "already exists, skipping" notices are not news.
                .unwrap_or_else(|_| "info,tokio_postgres=warn".into()),
        )
        // Container logs are files: no colour codes.
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("ntier: starting the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Api { listen } => api::run(listen, api::DatabaseConfig::from_env()?).await,
            Command::Web { listen } => web::run(listen, web::WebConfig::from_env()?).await,
            Command::Connect {
                address,
                timeout_ms,
            } => connect(&address, Duration::from_millis(timeout_ms)).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ntier: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn connect(address: &str, timeout: Duration) -> anyhow::Result<()> {
    let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address))
        .await
        .map_err(|_| anyhow::anyhow!("cannot connect to {address}: timed out after {timeout:?}"))?
        .map_err(|e| anyhow::anyhow!("cannot connect to {address}: {e}"))?;
    println!("connected to {address} ({})", stream.peer_addr()?);
    Ok(())
}
