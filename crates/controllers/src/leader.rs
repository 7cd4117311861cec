//! Leader election among API servers sharing one store: the in-server controllers run on one
//! server at a time, the holder of the `kube-system/maestro-controllers` Lease
//! (coordination.k8s.io/v1), as Kubernetes' controller-manager does with its Lease. The holder
//! renews it every few seconds; another server takes it over once it has not been renewed for
//! its duration. Every change goes through a compare-and-swap on the Lease's resourceVersion.

use std::sync::Arc;
use std::time::Duration;

use maestro_api::{meta, resources};
use maestro_apiserver::Registry;
use maestro_apiserver::registry::{Resource, WriteOptions};
use serde_json::{Value, json};

/// Name of the Lease in kube-system.
pub const LEASE_NAME: &str = "maestro-controllers";
/// How long a Lease stays valid without renewal.
const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the holder renews (and others check).
const RETRY_PERIOD: Duration = Duration::from_secs(2);

fn leases() -> Arc<Resource> {
    Resource::builtin(
        resources::find_builtin("coordination.k8s.io", "v1", "leases").expect("built in"),
    )
}

fn now_micro() -> String {
    meta::format_micro_time(jiff::Timestamp::now())
}

/// Whether a Lease's holder has let it lapse.
fn expired(lease: &Value, now: jiff::Timestamp) -> bool {
    let duration = lease
        .pointer("/spec/leaseDurationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(LEASE_DURATION.as_secs() as i64);
    let renewed = lease
        .pointer("/spec/renewTime")
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    match renewed {
        Some(renewed) => renewed + jiff::SignedDuration::from_secs(duration) < now,
        None => true,
    }
}

/// Try once to hold the Lease: create it, renew it, or take it over when it lapsed.
/// Returns whether `identity` holds it now.
pub async fn try_acquire(registry: &Registry, identity: &str) -> bool {
    let res = leases();
    let opts = WriteOptions {
        field_manager: Some("maestro-leader-election".into()),
        ..Default::default()
    };
    let current = registry.get(&res, Some("kube-system"), LEASE_NAME).await;
    let now = now_micro();
    let Ok(lease) = current else {
        let body = json!({
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": LEASE_NAME},
            "spec": {"holderIdentity": identity, "leaseDurationSeconds": LEASE_DURATION.as_secs(),
                     "acquireTime": now, "renewTime": now, "leaseTransitions": 0}
        });
        return registry
            .create(&res, Some("kube-system"), body, &opts)
            .await
            .is_ok();
    };
    let holder = lease
        .pointer("/spec/holderIdentity")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mine = holder == identity;
    if !mine && !expired(&lease, jiff::Timestamp::now()) {
        return false;
    }
    let version = meta::resource_version(&lease).map(str::to_string);
    let result = registry
        .read_modify_write(
            &res,
            Some("kube-system"),
            LEASE_NAME,
            version.as_deref(),
            &opts,
            |current| {
                let mut next = current.clone();
                next["spec"]["renewTime"] = json!(now);
                if !mine {
                    let transitions = current
                        .pointer("/spec/leaseTransitions")
                        .and_then(Value::as_i64)
                        .unwrap_or(0);
                    next["spec"]["holderIdentity"] = json!(identity);
                    next["spec"]["acquireTime"] = json!(now);
                    next["spec"]["leaseTransitions"] = json!(transitions + 1);
                    next["spec"]["leaseDurationSeconds"] = json!(LEASE_DURATION.as_secs());
                }
                Ok(next)
            },
            None,
        )
        .await;
    result.is_ok()
}

/// Run `start` while this server holds the Lease; stop what it started when the Lease is lost.
pub async fn run_while_leader(
    registry: Arc<Registry>,
    identity: String,
    start: impl Fn(Arc<Registry>) -> Vec<tokio::task::JoinHandle<()>>,
) {
    let mut running: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut ticker = tokio::time::interval(RETRY_PERIOD);
    loop {
        ticker.tick().await;
        let leading = try_acquire(&registry, &identity).await;
        match (leading, running.is_empty()) {
            (true, true) => {
                tracing::info!(%identity, "acquired the controllers' lease; starting controllers");
                running = start(registry.clone());
            }
            (false, false) => {
                tracing::warn!(%identity, "lost the controllers' lease; stopping controllers");
                for task in running.drain(..) {
                    task.abort();
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_lapse_after_their_duration() {
        let now: jiff::Timestamp = "2026-01-01T00:00:30Z".parse().unwrap();
        let fresh = json!({"spec": {"renewTime": "2026-01-01T00:00:20.000000Z", "leaseDurationSeconds": 15}});
        let stale = json!({"spec": {"renewTime": "2026-01-01T00:00:10.000000Z", "leaseDurationSeconds": 15}});
        assert!(!expired(&fresh, now));
        assert!(expired(&stale, now));
        assert!(expired(&json!({"spec": {}}), now));
    }
}
