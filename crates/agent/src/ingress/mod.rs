//! The built-in ingress controller: every node serves the Ingresses of class `maestro` on its
//! HTTP and HTTPS ports ([`proxy`]), routing by host and path ([`routes`]) to the ready
//! endpoints of the backend Services, with TLS certificates from Secrets chosen by SNI. The
//! routing table is rebuilt from watch caches (Ingresses, IngressClasses, Services,
//! EndpointSlices, Secrets) on every change and swapped in whole, so that a change never drops
//! a connection.

pub mod proxy;
pub mod routes;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};
use kube::Api;
use tokio::sync::Notify;

use crate::services::{SlicesByService, endpoints_for, slices_by_service, watch};
use routes::{Backend, Certificate, PathRule, PathType, RouteTable};

/// The IngressClass the server creates, and its controller name.
pub const CLASS: &str = "maestro";
pub const CONTROLLER: &str = "maestro.dev/ingress";

/// The annotation marking the cluster's default IngressClass.
const DEFAULT_CLASS_ANNOTATION: &str = "ingressclass.kubernetes.io/is-default-class";

/// Where the controller listens (port 0: that listener is off).
#[derive(Debug, Clone)]
pub struct IngressConfig {
    pub http: SocketAddr,
    pub https: SocketAddr,
    /// Prometheus metrics (`/metrics`).
    pub metrics: SocketAddr,
}

/// Whether an Ingress is ours: its class names our controller, or it names no class and ours
/// is the default (or it uses the old `kubernetes.io/ingress.class` annotation).
fn is_ours(ingress: &Ingress, classes: &[Arc<IngressClass>]) -> bool {
    let ours = |class: &IngressClass| {
        class.spec.as_ref().and_then(|s| s.controller.as_deref()) == Some(CONTROLLER)
    };
    let named = ingress
        .spec
        .as_ref()
        .and_then(|s| s.ingress_class_name.clone())
        .or_else(|| {
            ingress
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/ingress.class").cloned())
        });
    match named {
        Some(name) => {
            name == CLASS
                || classes
                    .iter()
                    .any(|c| c.metadata.name.as_deref() == Some(name.as_str()) && ours(c))
        }
        None => classes.iter().any(|c| {
            ours(c)
                && c.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(DEFAULT_CLASS_ANNOTATION))
                    .is_some_and(|v| v == "true")
        }),
    }
}

/// The ready endpoints behind an Ingress backend.
fn backend(
    namespace: &str,
    spec: &IngressBackend,
    services: &HashMap<(String, String), Arc<Service>>,
    slices: &SlicesByService,
) -> Option<Backend> {
    let target = spec.service.as_ref()?;
    let service = services.get(&(namespace.to_string(), target.name.clone()))?;
    let wanted = target.port.as_ref()?;
    let port = service.spec.as_ref()?.ports.iter().flatten().find(|p| {
        match (&wanted.number, &wanted.name) {
            (Some(number), _) => p.port == *number,
            (None, Some(name)) => p.name.as_deref() == Some(name.as_str()),
            _ => false,
        }
    })?;
    let name = port.name.clone().unwrap_or_default();
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    let empty = Vec::new();
    let own = slices
        .get(&(namespace.to_string(), target.name.clone()))
        .unwrap_or(&empty);
    let all = endpoints_for(own, &name, protocol);
    let usable = maestro_net::proxy::rules::usable(all.iter());
    Some(Backend {
        name: format!("{namespace}/{}:{}", target.name, port.port),
        endpoints: usable
            .iter()
            .map(|e| SocketAddr::new(e.ip.into(), e.port))
            .collect(),
    })
}

/// The routing table of our Ingresses.
pub fn build(
    ingresses: &[Arc<Ingress>],
    classes: &[Arc<IngressClass>],
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    secrets: &[Arc<Secret>],
) -> RouteTable {
    let services: HashMap<(String, String), Arc<Service>> = services
        .iter()
        .map(|s| {
            (
                (
                    s.metadata.namespace.clone().unwrap_or_default(),
                    s.metadata.name.clone().unwrap_or_default(),
                ),
                s.clone(),
            )
        })
        .collect();
    let slices = slices_by_service(slices);
    let mut table = RouteTable::default();
    // Oldest first, so that the first Ingress to claim a default backend or certificate keeps it.
    let mut ours: Vec<&Arc<Ingress>> = ingresses.iter().filter(|i| is_ours(i, classes)).collect();
    ours.sort_by_key(|i| i.metadata.creation_timestamp.clone().map(|t| t.0));
    for ingress in ours {
        let namespace = ingress.metadata.namespace.clone().unwrap_or_default();
        let Some(spec) = &ingress.spec else { continue };
        if let Some(default) = &spec.default_backend
            && table.default_backend.is_none()
        {
            table.default_backend = backend(&namespace, default, &services, &slices);
        }
        for rule in spec.rules.iter().flatten() {
            let host = rule.host.clone().unwrap_or_default();
            for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
                let Some(target) = backend(&namespace, &path.backend, &services, &slices) else {
                    continue;
                };
                let path_type = match path.path_type.as_str() {
                    "Exact" => PathType::Exact,
                    _ => PathType::Prefix,
                };
                table.add(
                    &host,
                    PathRule {
                        path: path.path.clone().unwrap_or_else(|| "/".into()),
                        path_type,
                        backend: target,
                    },
                );
            }
        }
        for tls in spec.tls.iter().flatten() {
            let Some(secret_name) = &tls.secret_name else {
                continue;
            };
            let secret = secrets.iter().find(|s| {
                s.metadata.namespace.as_deref() == Some(namespace.as_str())
                    && s.metadata.name.as_deref() == Some(secret_name.as_str())
            });
            let Some(data) = secret.and_then(|s| s.data.as_ref()) else {
                tracing::warn!(%namespace, secret = %secret_name, "TLS secret of an Ingress not found");
                continue;
            };
            let (Some(cert), Some(key)) = (data.get("tls.crt"), data.get("tls.key")) else {
                continue;
            };
            for host in tls.hosts.iter().flatten() {
                table
                    .certificates
                    .entry(host.to_ascii_lowercase())
                    .or_insert_with(|| Certificate {
                        cert_pem: cert.0.clone(),
                        key_pem: key.0.clone(),
                    });
            }
        }
    }
    table
}

/// Run the ingress controller until the agent stops.
pub async fn run(client: kube::Client, config: IngressConfig) {
    let shared = proxy::SharedRoutes::default();
    if let Err(err) = proxy::serve(&config, shared.clone()).await {
        tracing::error!(%err, "the ingress controller cannot listen; Ingresses are not served by this node");
        return;
    }
    let changed = Arc::new(Notify::new());
    let ingresses = watch(Api::<Ingress>::all(client.clone()), changed.clone());
    let classes = watch(Api::<IngressClass>::all(client.clone()), changed.clone());
    let services = watch(Api::<Service>::all(client.clone()), changed.clone());
    let slices = watch(Api::<EndpointSlice>::all(client.clone()), changed.clone());
    let secrets = watch(Api::<Secret>::all(client.clone()), changed.clone());
    for ready in [
        ingresses.wait_until_ready().await,
        classes.wait_until_ready().await,
        services.wait_until_ready().await,
        slices.wait_until_ready().await,
        secrets.wait_until_ready().await,
    ] {
        if let Err(err) = ready {
            tracing::error!(%err, "an ingress watch cache never filled");
            return;
        }
    }
    loop {
        let table = build(
            &ingresses.state(),
            &classes.state(),
            &services.state(),
            &slices.state(),
            &secrets.state(),
        );
        shared.replace(table);
        let _ = tokio::time::timeout(Duration::from_secs(300), changed.notified()).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
