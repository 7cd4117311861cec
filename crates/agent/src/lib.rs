//! The node agent (the kubelet's job): it registers its Node with capacity read from the host,
//! keeps the node's Lease and conditions current, and runs the pods bound to it. It talks to the
//! API server over HTTPS like any other client; `maestro server` runs one in-process by default.

pub mod client;
pub mod exec;
pub mod host;
pub mod join;
pub mod logs;
pub mod node;
pub mod pods;
pub mod portforward;
pub mod probes;
pub mod pty;
pub mod server;
pub mod streaming;
pub mod volumes;

use std::path::PathBuf;

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("joining the cluster: {0}")]
    Join(#[from] join::JoinError),
    #[error("API client: {0}")]
    Client(String),
    #[error("API request failed: {0}")]
    Api(#[from] kube::Error),
    #[error("{0}")]
    Host(String),
}

/// How to run an agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// API server URL, e.g. `https://10.0.0.1:6443`.
    pub server: String,
    pub credentials: client::Credentials,
    pub node_name: String,
    pub data_dir: PathBuf,
    /// Resources kept back from pods: allocatable = capacity - reserved.
    pub reserved_cpu_millis: u64,
    pub reserved_memory_bytes: u64,
    pub max_pods: u32,
    /// The address other nodes and the API server reach this node at.
    pub node_ip: Option<std::net::IpAddr>,
}

/// Run the agent until an unrecoverable error.
pub async fn run(config: AgentConfig) -> Result<(), AgentError> {
    let client = client::connect(&config.server, &config.credentials).await?;
    node::run(client, &config).await
}
