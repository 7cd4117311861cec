//! What a fresh cluster holds before anyone writes: the namespaces every Kubernetes cluster has
//! and the `default/kubernetes` Service that points at the API server.

use maestro_api::ApiError;
use maestro_api::resources;
use serde_json::json;

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

/// The `default/kubernetes` Service (first address of the service range, port 443) and its
/// Endpoints pointing at this API server, kept current when the server's address changes.
pub async fn ensure_kubernetes_service(
    registry: &Registry,
    host: &str,
    port: u16,
) -> Result<(), ApiError> {
    let services =
        Resource::builtin(resources::find_builtin("", "v1", "services").expect("built in"));
    let endpoints =
        Resource::builtin(resources::find_builtin("", "v1", "endpoints").expect("built in"));
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
    let opts = WriteOptions {
        field_manager: Some("maestro-apiserver".into()),
        ..Default::default()
    };
    // Asked for by address, so an existing Service must be found before creating: a second
    // allocation of the same address is an error.
    if registry
        .get(&services, Some("default"), "kubernetes")
        .await
        .is_err()
    {
        match registry
            .create(&services, Some("default"), service, &opts)
            .await
        {
            Ok(_) => {}
            Err(err) if err.code == 409 => {}
            Err(err) => return Err(err),
        }
    }
    // Endpoints may not hold loopback addresses: a server bound to loopback is not reachable
    // from pods, so its Service has no endpoints until it listens on a routable address.
    let routable = host
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| !ip.is_loopback() && !ip.is_unspecified());
    if !routable {
        return Ok(());
    }
    let subsets = json!([{"addresses": [{"ip": host}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]);
    let body = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kubernetes", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}}, "subsets": subsets});
    match registry
        .create(&endpoints, Some("default"), body, &opts)
        .await
    {
        Ok(_) => Ok(()),
        Err(err) if err.code == 409 => registry
            .read_modify_write(
                &endpoints,
                Some("default"),
                "kubernetes",
                None,
                &opts,
                |current| {
                    let mut next = current.clone();
                    next["subsets"] = subsets.clone();
                    Ok(next)
                },
                None,
            )
            .await
            .map(|_| ()),
        Err(err) => Err(err),
    }
}
