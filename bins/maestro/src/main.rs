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
    /// Run a node agent that joins a cluster with a join token.
    Agent(AgentArgs),
    /// Manage join tokens.
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand, Debug)]
enum TokenCommand {
    /// Create a join token for agents (printed on stdout).
    Create(TokenCreateArgs),
}

#[derive(Args, Debug)]
struct TokenCreateArgs {
    /// The server's data directory (its kubeconfig and CA are used).
    #[arg(long, default_value = "/var/lib/maestro")]
    data_dir: PathBuf,
    /// How long the token stays valid, in hours (0: forever).
    #[arg(long, default_value_t = 24)]
    ttl_hours: u64,
}

#[derive(Args, Debug)]
struct AgentArgs {
    /// The API server, e.g. https://10.0.0.1:6443.
    #[arg(long)]
    server: String,
    /// The join token from `maestro token create`.
    #[arg(long, env = "MAESTRO_TOKEN")]
    token: String,
    /// This node's name (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    /// Where the agent keeps images, containers and pod state.
    #[arg(long, default_value = "/var/lib/maestro-agent")]
    data_dir: PathBuf,
    #[command(flatten)]
    node: NodeArgs,
}

/// Settings of the node, shared by `agent` and the agent embedded in `server`.
#[derive(Args, Debug, Clone)]
struct NodeArgs {
    /// CPU kept back from pods, in millicores.
    #[arg(long, default_value_t = 100)]
    reserved_cpu_millis: u64,
    /// Memory kept back from pods, in MiB.
    #[arg(long, default_value_t = 256)]
    reserved_memory_mib: u64,
    /// Most pods this node runs.
    #[arg(long, default_value_t = 110)]
    max_pods: u32,
    /// The address of this node (default: the source address of its default route).
    #[arg(long)]
    node_ip: Option<IpAddr>,
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
    /// Name of the embedded agent's node (default: the host name).
    #[arg(long)]
    node_name: Option<String>,
    #[command(flatten)]
    node: NodeArgs,
    /// Range the nodes' pod CIDRs come from.
    #[arg(long, default_value = "10.42.0.0/16")]
    cluster_cidr: String,
    /// Size of each node's pod CIDR.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
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
        Command::Agent(args) => runtime.block_on(agent(args)),
        Command::Token(TokenCommand::Create(args)) => runtime.block_on(token_create(args)),
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
    let ipam = maestro_controllers::node_ipam::NodeIpam {
        cluster_cidr: args
            .cluster_cidr
            .parse()
            .map_err(|e: String| anyhow::anyhow!("--cluster-cidr: {e}"))?,
        node_prefix: args.node_cidr_mask_size,
    };
    maestro_controllers::start(
        server.state.registry.clone(),
        &server.credentials,
        identity,
        ipam,
    );
    if args.no_agent {
        tracing::info!("running without a node agent (--no-agent)");
    } else {
        let config = maestro_agent::AgentConfig {
            server: format!("https://127.0.0.1:{}", server.address.port()),
            credentials: maestro_agent::client::Credentials::Bearer {
                token: server.credentials.admin_token.clone(),
                ca_pem: server.credentials.ca_cert_pem.clone(),
            },
            node_name: args
                .node_name
                .clone()
                .unwrap_or_else(maestro_agent::host::hostname),
            data_dir: args.data_dir.join("agent"),
            reserved_cpu_millis: args.node.reserved_cpu_millis,
            reserved_memory_bytes: args.node.reserved_memory_mib * 1024 * 1024,
            max_pods: args.node.max_pods,
            node_ip: args.node.node_ip,
        };
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating {}", config.data_dir.display()))?;
        tokio::spawn(async move {
            if let Err(err) = maestro_agent::run(config).await {
                tracing::error!(%err, "the embedded node agent stopped");
            }
        });
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

async fn agent(args: AgentArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let config = maestro_agent::AgentConfig {
        server: args.server.clone(),
        credentials: maestro_agent::client::Credentials::Join(args.token.clone()),
        node_name: args
            .node_name
            .clone()
            .unwrap_or_else(maestro_agent::host::hostname),
        data_dir: args.data_dir.clone(),
        reserved_cpu_millis: args.node.reserved_cpu_millis,
        reserved_memory_bytes: args.node.reserved_memory_mib * 1024 * 1024,
        max_pods: args.node.max_pods,
        node_ip: args.node.node_ip,
    };
    tracing::info!(server = %config.server, node = %config.node_name, "starting the node agent");
    maestro_agent::run(config)
        .await
        .context("the node agent stopped")
}

/// Create a bootstrap token Secret through the API (with the admin kubeconfig of the data dir)
/// and print the join token.
async fn token_create(args: TokenCreateArgs) -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, PostParams};

    let kubeconfig_path = args.data_dir.join("kubeconfig");
    let kubeconfig = kube::config::Kubeconfig::read_from(&kubeconfig_path)
        .with_context(|| format!("reading {}", kubeconfig_path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .context("loading the admin kubeconfig")?;
    let client = kube::Client::try_from(config).context("building the API client")?;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let random = |n: usize| -> String {
        (0..n)
            .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    let (id, secret) = (random(6), random(16));
    let mut data = serde_json::json!({
        "token-id": id,
        "token-secret": secret,
        "usage-bootstrap-authentication": "true",
        "description": "maestro join token",
    });
    if args.ttl_hours > 0 {
        let expires = jiff_expiration(args.ttl_hours);
        data["expiration"] = serde_json::json!(expires);
    }
    let body: Secret = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
        "type": "bootstrap.kubernetes.io/token",
        "stringData": data,
    }))?;
    let secrets: Api<Secret> = Api::namespaced(client, "kube-system");
    secrets
        .create(&PostParams::default(), &body)
        .await
        .context("creating the bootstrap token Secret")?;
    let ca_path = args.data_dir.join("ca.crt");
    let ca = std::fs::read_to_string(&ca_path)
        .with_context(|| format!("reading {}", ca_path.display()))?;
    println!(
        "{}",
        maestro_agent::join::JoinToken::format(&ca, &format!("{id}.{secret}"))
    );
    Ok(())
}

fn jiff_expiration(hours: u64) -> String {
    let at = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(hours as i64);
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}
