//! The maestro API server: a Kubernetes-compatible REST API (discovery, OpenAPI, CRUD, watch,
//! patches, subresources) over the revisioned store, served over HTTPS with bearer-token
//! authentication. [`ApiServer::start`] brings it all up from a data directory.

pub mod apply;
pub mod auth;
pub mod bootstrap;
pub mod conversion;
pub mod crd;
pub mod discovery;
pub mod duplicates;
pub mod eviction;
pub mod handlers;
pub mod insecure;
pub mod metrics;
pub mod node_ports;
pub mod node_proxy;
pub mod object;
pub mod openapi;
pub mod patch;
pub mod pki;
pub mod quota;
pub mod registry;
pub mod request;
pub mod response;
pub mod server;
pub mod service_ips;
pub mod tables;
pub mod tokens;
pub mod version;
pub mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use maestro_store::{Backend, RedbBackend};
use parking_lot::RwLock;
use tokio::net::TcpListener;

pub use registry::Registry;
pub use server::ApiState;

/// Where the cluster state lives.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// The embedded redb file in the data directory (single server).
    Embedded,
    /// An etcd v3 cluster (several servers for high availability), with an optional key prefix.
    Etcd {
        endpoints: Vec<String>,
        prefix: Option<String>,
    },
}

/// How to run the API server.
#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    pub data_dir: PathBuf,
    pub bind: SocketAddr,
    /// Extra names or addresses for the serving certificate.
    pub extra_sans: Vec<String>,
    /// How often store history is compacted.
    pub compaction_interval: std::time::Duration,
    pub store: StoreConfig,
    /// Virtual IPs of Services come from here; the first is the `kubernetes` Service's.
    pub service_cidr: service_ips::Cidr,
    /// How often watches that allow bookmarks get one.
    pub watch_bookmark_interval: std::time::Duration,
    /// The not-ready and unreachable tolerations every pod gets.
    pub default_toleration_seconds: registry::DefaultTolerationSeconds,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Pki(#[from] pki::PkiError),
    #[error("store: {0}")]
    Store(#[from] maestro_store::StoreError),
    #[error(transparent)]
    Serve(#[from] server::ServeError),
    #[error("bootstrap: {0}")]
    Bootstrap(#[from] maestro_api::ApiError),
    #[error("{0}")]
    Keys(String),
}

/// A running API server.
#[derive(Debug)]
pub struct ApiServer {
    pub state: Arc<ApiState>,
    pub address: SocketAddr,
    pub kubeconfig: PathBuf,
    pub credentials: pki::Credentials,
}

impl ApiServer {
    /// Open the store, create credentials, bind the port and start serving in the background.
    pub async fn start(config: ApiServerConfig) -> Result<ApiServer, StartError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| pki::PkiError::Io {
            path: config.data_dir.clone(),
            source,
        })?;
        let credentials = pki::ensure(&config.data_dir, &config.extra_sans)?;
        watch::set_bookmark_interval(config.watch_bookmark_interval);
        let backend: Arc<dyn Backend> = match &config.store {
            StoreConfig::Embedded => {
                Arc::new(RedbBackend::open(&config.data_dir.join("store.redb"))?)
            }
            StoreConfig::Etcd { endpoints, prefix } => {
                Arc::new(maestro_store::EtcdBackend::connect(endpoints, prefix.clone()).await?)
            }
        };
        maestro_store::spawn_compactor(backend.clone(), config.compaction_interval);
        let registry = Registry::new(backend, config.service_cidr).await?;
        registry.set_default_toleration_seconds(config.default_toleration_seconds);
        bootstrap::ensure_system_namespaces(&registry).await?;
        registry.repair_service_ips().await?;
        let listener =
            TcpListener::bind(config.bind)
                .await
                .map_err(|source| server::ServeError::Bind {
                    addr: config.bind,
                    source,
                })?;
        let address = listener
            .local_addr()
            .map_err(|source| server::ServeError::Bind {
                addr: config.bind,
                source,
            })?;
        let host = if address.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            address.ip().to_string()
        };
        let url = format!("https://{host}:{}", address.port());
        let kubeconfig = pki::write_kubeconfig(&config.data_dir, &credentials, &url)?;
        bootstrap::ensure_kubernetes_service(&registry, &host, address.port()).await?;
        let tls = server::tls_config(&credentials.server_cert_pem, &credentials.server_key_pem)?;
        let state = Arc::new(ApiState {
            registry,
            tokens: RwLock::new([credentials.admin_token.clone()].into_iter().collect()),
            metrics: metrics::Metrics::default(),
            openapi: openapi::OpenApiCache::default(),
            ca_pem: credentials.ca_cert_pem.clone(),
            signer: Arc::new(
                tokens::Signer::load_or_create(&config.data_dir.join("sa.key"))
                    .map_err(|e| StartError::Keys(e.to_string()))?,
            ),
            advertise_address: format!("{host}:{}", address.port()),
        });
        tokio::spawn(server::serve(listener, tls, state.clone()));
        Ok(ApiServer {
            state,
            address,
            kubeconfig,
            credentials,
        })
    }
}
