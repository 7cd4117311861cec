//! What a fresh cluster holds before anyone writes: the namespaces every Kubernetes cluster has.

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
