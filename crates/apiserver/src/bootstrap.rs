//! What a fresh cluster holds before anyone writes: the namespaces every Kubernetes cluster has
//! the `default/kubernetes` Service that points at the API server, and the cluster's network
//! settings with the `kube-system/kube-dns` Service, and the default IngressClass and
//! StorageClass of the built-in ingress controller and local-path provisioner.

use maestro_api::ApiError;
use maestro_api::{local_path, resources};
use serde_json::{Value, json};

use crate::registry::{Registry, Resource, WriteOptions};

/// Namespaces Kubernetes creates at start-up.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

/// Create the system namespaces that are missing.
pub async fn ensure_system_namespaces(registry: &Registry) -> Result<(), ApiError> {
    let info = resources::find_builtin("", "v1", "namespaces").expect("namespaces are built in");
    let res = Resource::builtin(info);
    for name in SYSTEM_NAMESPACES {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        match registry
            .create(&res, None, body, &WriteOptions::default())
            .await
        {
            Ok(_) => tracing::info!(namespace = name, "created system namespace"),
            Err(err) if err.code == 409 => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// The field manager of what the server writes itself.
fn server_writes() -> WriteOptions {
    WriteOptions {
        field_manager: Some("maestro-apiserver".into()),
        ..Default::default()
    }
}

fn builtin(group: &str, version: &str, plural: &str) -> std::sync::Arc<Resource> {
    Resource::builtin(resources::find_builtin(group, version, plural).expect("built in"))
}

/// Create a Service that asks for its address unless it exists: it must be looked up first,
/// since a second allocation of the same address is an error.
async fn ensure_service(registry: &Registry, namespace: &str, body: Value) -> Result<(), ApiError> {
    let services = builtin("", "v1", "services");
    let name = body["metadata"]["name"].as_str().unwrap_or_default();
    if registry.get(&services, Some(namespace), name).await.is_ok() {
        return Ok(());
    }
    match registry
        .create(&services, Some(namespace), body, &server_writes())
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if err.code == 409 => Ok(()),
        Err(err) => Err(err),
    }
}

/// Create `body`, or when it exists, set its top-level `fields` to `body`'s.
async fn create_or_refresh(
    registry: &Registry,
    res: &Resource,
    namespace: &str,
    body: Value,
    fields: &[&str],
) -> Result<(), ApiError> {
    let name = body["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    match registry
        .create(res, Some(namespace), body.clone(), &server_writes())
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if err.code == 409 => registry
            .read_modify_write(
                res,
                Some(namespace),
                &name,
                None,
                &server_writes(),
                |current| {
                    let mut next = current.clone();
                    for field in fields {
                        next[*field] = body[*field].clone();
                    }
                    Ok(next)
                },
                None,
            )
            .await
            .map(|_| ()),
        Err(err) => Err(err),
    }
}

/// The `default/kubernetes` Service (first address of the service range, port 443) and its
/// Endpoints and EndpointSlice pointing at this API server, kept current when the server's
/// address changes.
pub async fn ensure_kubernetes_service(
    registry: &Registry,
    host: &str,
    port: u16,
) -> Result<(), ApiError> {
    let labels = json!({"component": "apiserver", "provider": "kubernetes"});
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "labels": labels},
        "spec": {
            "clusterIP": registry.service_cidr().first_host().to_string(),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
            "type": "ClusterIP",
            "sessionAffinity": "None",
        }
    });
    ensure_service(registry, "default", service).await?;
    // Endpoints may not hold loopback addresses: a server bound to loopback is not reachable
    // from pods, so its Service has no endpoints until it listens on a routable address.
    let routable = host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| !ip.is_loopback() && !ip.is_unspecified());
    if !routable {
        return Ok(());
    }
    let subsets = json!([{"addresses": [{"ip": host}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]);
    let endpoints = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}}, "subsets": subsets});
    create_or_refresh(
        registry,
        &builtin("", "v1", "endpoints"),
        "default",
        endpoints,
        &["subsets"],
    )
    .await?;
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "labels": {
            "kubernetes.io/service-name": "kubernetes",
            "endpointslice.kubernetes.io/managed-by": "maestro-apiserver",
        }},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [host], "conditions": {"ready": true}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
    });
    create_or_refresh(
        registry,
        &builtin("discovery.k8s.io", "v1", "endpointslices"),
        "default",
        slice,
        &["endpoints", "ports"],
    )
    .await
}

/// The cluster's network settings that every node agent reads at start-up.
#[derive(Debug, Clone)]
pub struct ClusterNetwork {
    pub cluster_cidr: String,
    pub service_cidr: String,
    pub cluster_dns: std::net::Ipv4Addr,
    pub cluster_domain: String,
    /// The LoadBalancer address pool as `first-last`, if any.
    pub load_balancer_pool: Option<String>,
}

/// Name of the ConfigMap in `kube-system` that publishes [`ClusterNetwork`].
pub const CLUSTER_NETWORK_CONFIGMAP: &str = "maestro-cluster";

/// Publish the network settings for the agents (`kube-system/maestro-cluster`), create the
/// `kube-system/kube-dns` Service that holds the cluster DNS address (every node answers on
/// that address itself, so the Service has no endpoints) and the default IngressClass
/// `maestro` of the built-in ingress controller.
pub async fn publish_cluster_network(
    registry: &Registry,
    network: &ClusterNetwork,
) -> Result<(), ApiError> {
    let config = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": CLUSTER_NETWORK_CONFIGMAP},
        "data": {
            "clusterCIDR": network.cluster_cidr,
            "serviceCIDR": network.service_cidr,
            "clusterDNS": network.cluster_dns.to_string(),
            "clusterDomain": network.cluster_domain,
            "loadBalancerPool": network.load_balancer_pool.clone().unwrap_or_default(),
        }
    });
    create_or_refresh(
        registry,
        &builtin("", "v1", "configmaps"),
        "kube-system",
        config,
        &["data"],
    )
    .await?;
    let dns = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kube-dns", "labels": {
            "k8s-app": "kube-dns",
            "kubernetes.io/cluster-service": "true",
            "kubernetes.io/name": "maestro-dns",
        }},
        "spec": {
            "clusterIP": network.cluster_dns.to_string(),
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
            ],
            "type": "ClusterIP",
        }
    });
    ensure_service(registry, "kube-system", dns).await?;
    // The built-in ingress controller's class and the built-in provisioner's, both the default
    // (created once: an operator may change the defaults afterwards).
    let ingress_class = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "maestro", "annotations": {
            "ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": "maestro.dev/ingress"},
    });
    create_once(
        registry,
        &builtin("networking.k8s.io", "v1", "ingressclasses"),
        ingress_class,
    )
    .await?;
    let storage_class = json!({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": local_path::STORAGE_CLASS, "annotations": {
            "storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": local_path::PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    });
    create_once(
        registry,
        &builtin("storage.k8s.io", "v1", "storageclasses"),
        storage_class,
    )
    .await
}

/// Create a cluster-scoped object unless one by that name exists.
async fn create_once(registry: &Registry, res: &Resource, object: Value) -> Result<(), ApiError> {
    match registry.create(res, None, object, &server_writes()).await {
        Ok(_) => Ok(()),
        Err(err) if err.code == 409 => Ok(()),
        Err(err) => Err(err),
    }
}
