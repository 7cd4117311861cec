//! `maestro`: the one binary. `maestro server` runs a whole single-node control plane (API
//! server on the embedded store, controllers); more subcommands join as the node agent and
//! tooling land.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "maestro",
    version,
    about = "A lightweight Kubernetes-compatible orchestrator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the control plane (and, by default, a node agent) in the foreground.
    Server(ServerArgs),
}

#[derive(Args, Debug)]
struct ServerArgs {
    /// Where the store, credentials and kubeconfig live.
    #[arg(long, default_value = "/var/lib/maestro")]
    data_dir: PathBuf,
    /// HTTPS port of the Kubernetes API.
    #[arg(long, default_value_t = 6443)]
    api_port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: IpAddr,
    /// Extra names or IP addresses for the serving certificate.
    #[arg(long = "tls-san")]
    tls_san: Vec<String>,
    /// Do not run the embedded node agent (control plane only).
    #[arg(long)]
    no_agent: bool,
    /// Seconds between store compactions (history older than one interval is dropped).
    #[arg(long, default_value_t = 300)]
    compaction_interval_seconds: u64,
    /// etcd v3 endpoints (comma-separated `http://host:port`) to keep the cluster state in
    /// instead of the embedded store; several servers on one etcd cluster make it highly
    /// available.
    #[arg(long = "etcd-servers", value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// Key prefix in etcd, so that several clusters can share one etcd.
    #[arg(long, default_value = "/maestro")]
    etcd_prefix: String,
    /// Range of Service virtual IPs (ClusterIPs).
    #[arg(long, default_value = "10.43.0.0/16")]
    service_cidr: String,
    /// Seconds between the bookmarks sent to watches that allow them.
    #[arg(long, default_value_t = 60.0)]
    watch_bookmark_interval_seconds: f64,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Server(args) => runtime.block_on(server(args)),
    }
}

async fn server(args: ServerArgs) -> anyhow::Result<()> {
    let store = if args.etcd_servers.is_empty() {
        maestro_apiserver::StoreConfig::Embedded
    } else {
        maestro_apiserver::StoreConfig::Etcd {
            endpoints: args.etcd_servers.clone(),
            prefix: Some(args.etcd_prefix.clone()).filter(|p| !p.is_empty()),
        }
    };
    let service_cidr = args
        .service_cidr
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--service-cidr: {e}"))?;
    let config = maestro_apiserver::ApiServerConfig {
        data_dir: args.data_dir.clone(),
        bind: SocketAddr::new(args.bind_address, args.api_port),
        extra_sans: args.tls_san.clone(),
        compaction_interval: Duration::from_secs(args.compaction_interval_seconds.max(1)),
        store,
        service_cidr,
        watch_bookmark_interval: Duration::from_secs_f64(
            args.watch_bookmark_interval_seconds.max(0.1),
        ),
    };
    let server = maestro_apiserver::ApiServer::start(config)
        .await
        .with_context(|| {
            format!(
                "starting the API server with data dir {}",
                args.data_dir.display()
            )
        })?;
    let identity = server_identity(&args.data_dir).context("reading this server's identity")?;
    maestro_controllers::start(server.state.registry.clone(), &server.credentials, identity);
    if args.no_agent {
        tracing::info!("running without a node agent (--no-agent)");
    } else {
        tracing::warn!("this build has no node agent yet; running the control plane only");
    }
    tracing::info!(address = %server.address, kubeconfig = %server.kubeconfig.display(), "maestro server ready");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for a signal")?;
    tracing::info!("shutting down");
    Ok(())
}

/// This server's name in leader election: kept in the data directory so that it survives
/// restarts (a restarted server resumes its own Lease instead of waiting for it to lapse).
fn server_identity(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("identity");
    if let Ok(existing) = std::fs::read_to_string(&path)
        && !existing.trim().is_empty()
    {
        return Ok(existing.trim().to_string());
    }
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let suffix: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
        ^ u64::from(std::process::id());
    let identity = format!("{}_{suffix:016x}", host.trim());
    std::fs::write(&path, &identity).with_context(|| format!("writing {}", path.display()))?;
    Ok(identity)
}
