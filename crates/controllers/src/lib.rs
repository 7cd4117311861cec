//! The reconciliation loops that run inside the server: garbage collection of dependents
//! (Background, Foreground, Orphan), namespace lifecycle, the `default` ServiceAccount and
//! `kube-root-ca.crt` ConfigMap of every namespace, cleanup of a deleted CRD's objects, pod
//! CIDRs for nodes, node lifecycle (heartbeats, taints, taint-based eviction), a first scheduler,
//! the ReplicaSet, Deployment, DaemonSet, StatefulSet, Job and CronJob controllers, and PodDisruptionBudget status for the
//! eviction API, ResourceQuota usage, and EndpointSlices and Endpoints for Services.
//!
//! Each loop follows the shared watch cache, marks the keys an event concerns as dirty and
//! reconciles them: reconcilers look at the current state and converge, whatever the event was.
//! When several servers share one store, the loops run on the holder of a Lease (`leader`).

mod crd_cleanup;
mod cronjob;
mod daemonset;
mod deployment;
mod disruption;
mod endpoints;
pub mod events;
mod garbage_collector;
mod job;
pub mod leader;
pub mod load_balancer;
mod namespaces;
pub mod node_ipam;
pub mod node_lifecycle;
mod objects;
mod queue;
mod replicaset;
mod resourcequota;
mod revisions;
pub mod scheduler;
mod statefulset;
mod taints;
mod volumes;
mod writes;

use std::sync::Arc;

use maestro_apiserver::Registry;
use maestro_apiserver::pki::Credentials;

/// Run every in-server controller while this server holds the controllers' Lease (one server
/// at a time when several share a store). `identity` names this server in the Lease; keep it
/// stable across restarts so that a restarted server resumes its own Lease at once.
pub fn start(
    registry: Arc<Registry>,
    credentials: &Credentials,
    identity: String,
    ipam: node_ipam::NodeIpam,
    lifecycle: node_lifecycle::NodeLifecycleConfig,
    scheduler_profiles: Option<Vec<scheduler::framework::Profile>>,
    load_balancer_pool: Option<load_balancer::Pool>,
) {
    let ca_pem = credentials.ca_cert_pem.clone();
    tokio::spawn(leader::run_while_leader(
        registry,
        identity,
        move |registry| {
            vec![
                tokio::spawn(garbage_collector::run(registry.clone())),
                tokio::spawn(namespaces::run(registry.clone(), ca_pem.clone())),
                tokio::spawn(crd_cleanup::run(registry.clone())),
                tokio::spawn(node_ipam::run(registry.clone(), ipam)),
                tokio::spawn(node_lifecycle::run(registry.clone(), lifecycle)),
                tokio::spawn(replicaset::run(registry.clone())),
                tokio::spawn(deployment::run(registry.clone())),
                tokio::spawn(daemonset::run(registry.clone())),
                tokio::spawn(job::run(registry.clone())),
                tokio::spawn(cronjob::run(registry.clone())),
                tokio::spawn(statefulset::run(registry.clone())),
                tokio::spawn(resourcequota::run(registry.clone())),
                tokio::spawn(endpoints::run(registry.clone())),
                tokio::spawn(disruption::run(registry.clone())),
                tokio::spawn(volumes::run(registry.clone())),
            ]
            .into_iter()
            .chain(
                load_balancer_pool
                    .map(|pool| tokio::spawn(load_balancer::run(registry.clone(), pool))),
            )
            .chain(
                scheduler_profiles
                    .clone()
                    .map(|profiles| tokio::spawn(scheduler::run(registry, profiles))),
            )
            .collect()
        },
    ));
}
