//! The reconciliation loops that run inside the server: garbage collection of dependents
//! (Background, Foreground, Orphan), namespace lifecycle, the `default` ServiceAccount and
//! `kube-root-ca.crt` ConfigMap of every namespace, and cleanup of a deleted CRD's objects.
//!
//! Each loop follows the shared watch cache, marks the keys an event concerns as dirty and
//! reconciles them: reconcilers look at the current state and converge, whatever the event was.

mod crd_cleanup;
mod garbage_collector;
mod namespaces;
mod queue;
mod writes;

use std::sync::Arc;

use maestro_apiserver::Registry;
use maestro_apiserver::pki::Credentials;

/// Start every in-server controller.
pub fn start(registry: Arc<Registry>, credentials: &Credentials) {
    tokio::spawn(garbage_collector::run(registry.clone()));
    tokio::spawn(namespaces::run(
        registry.clone(),
        credentials.ca_cert_pem.clone(),
    ));
    tokio::spawn(crd_cleanup::run(registry));
}
