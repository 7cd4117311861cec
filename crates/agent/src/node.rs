//! The Node object: registration with the host's capacity, the heartbeat (conditions every
//! `STATUS_PERIOD`, the node Lease in kube-node-lease every `LEASE_PERIOD`), as the kubelet does.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::{AgentConfig, AgentError, host};

/// How often conditions are written.
const STATUS_PERIOD: Duration = Duration::from_secs(10);
/// How long the node Lease is valid; renewed every quarter of it, as the kubelet does. Shorter
/// than the kubelet's 40 s so that the server's 12 s grace period spans three renewals.
const LEASE_DURATION_SECONDS: i64 = 16;
const LEASE_PERIOD: Duration = Duration::from_secs(4);

/// Free memory below which the node reports MemoryPressure.
const MEMORY_PRESSURE_BYTES: u64 = 100 * 1024 * 1024;
/// Free disk share below which the node reports DiskPressure.
const DISK_PRESSURE_PERCENT: u64 = 10;

pub(crate) fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

pub(crate) fn now_micro() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.6fZ")
        .to_string()
}

pub(crate) fn field_manager() -> PatchParams {
    PatchParams {
        field_manager: Some("maestro-agent".into()),
        ..Default::default()
    }
}

/// This host's architecture as Kubernetes names it (`GOARCH`).
fn host_arch() -> String {
    std::env::consts::ARCH
        .replace("x86_64", "amd64")
        .replace("aarch64", "arm64")
}

/// The Node to create on first registration, with the well-known labels the kubelet sets.
pub(crate) fn node_object(name: &str, arch: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": arch,
            }
        },
        "spec": {}
    })
}

/// One condition, keeping its transition time while its status does not change.
fn condition(
    previous: &[Value],
    kind: &str,
    status: bool,
    reason: &str,
    message: &str,
    now: &str,
) -> Value {
    let status = if status { "True" } else { "False" };
    let transition = previous
        .iter()
        .find(|c| c["type"] == kind && c["status"] == status)
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(now));
    json!({"type": kind, "status": status, "reason": reason, "message": message,
           "lastHeartbeatTime": now, "lastTransitionTime": transition})
}

/// The four node conditions the kubelet reports, with the kubelet's reasons and messages; the
/// node is Ready unless under pressure.
pub(crate) fn conditions(
    previous: &[Value],
    memory_pressure: bool,
    disk_pressure: bool,
    pid_pressure: bool,
    now: &str,
) -> Vec<Value> {
    let ready = !memory_pressure && !disk_pressure && !pid_pressure;
    // (type, status, reason and message when True, when False)
    let table = [
        (
            "MemoryPressure",
            memory_pressure,
            (
                "KubeletHasInsufficientMemory",
                "kubelet has insufficient memory available",
            ),
            (
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
        ),
        (
            "DiskPressure",
            disk_pressure,
            ("KubeletHasDiskPressure", "kubelet has disk pressure"),
            ("KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ),
        (
            "PIDPressure",
            pid_pressure,
            (
                "KubeletHasInsufficientPID",
                "kubelet has insufficient PID available",
            ),
            (
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
        ),
        (
            "Ready",
            ready,
            ("KubeletReady", "kubelet is posting ready status"),
            ("KubeletNotReady", "the node is under resource pressure"),
        ),
    ];
    table
        .into_iter()
        .map(|(kind, status, when_true, when_false)| {
            let (reason, message) = if status { when_true } else { when_false };
            condition(previous, kind, status, reason, message, now)
        })
        .collect()
}

/// `status.nodeInfo` from the host's identity.
pub(crate) fn node_info(info: &host::NodeInfo, container_runtime: &str, arch: &str) -> Value {
    json!({
        "machineID": info.machine_id,
        "systemUUID": info.system_uuid,
        "bootID": info.boot_id,
        "kernelVersion": info.kernel_version,
        "osImage": info.os_image,
        "containerRuntimeVersion": container_runtime,
        "kubeletVersion": host::AGENT_VERSION,
        "kubeProxyVersion": host::AGENT_VERSION,
        "operatingSystem": "linux",
        "architecture": arch,
    })
}

/// The node's status from the host's state.
pub fn status(config: &AgentConfig, previous_conditions: &[Value]) -> Result<Value, AgentError> {
    let r = host::resources(&config.data_dir).map_err(AgentError::Host)?;
    let info = host::node_info();
    let now = now();
    let memory_pressure = r.memory_available_bytes < MEMORY_PRESSURE_BYTES;
    let disk_pressure =
        r.disk_bytes > 0 && r.disk_available_bytes * 100 / r.disk_bytes < DISK_PRESSURE_PERCENT;
    let pid_pressure = r.pids * 100 / r.pid_max.max(1) > 90;
    let cpu_alloc = (r.cpus * 1000).saturating_sub(config.reserved_cpu_millis);
    let mem_alloc = r.memory_bytes.saturating_sub(config.reserved_memory_bytes);
    let mut addresses = vec![json!({"type": "Hostname", "address": config.node_name})];
    if let Some(ip) = config.node_ip.or_else(host::primary_ip) {
        addresses.insert(0, json!({"type": "InternalIP", "address": ip.to_string()}));
    }
    Ok(json!({
        "capacity": {
            "cpu": r.cpus.to_string(),
            "memory": host::kibibytes(r.memory_bytes),
            "pods": config.max_pods.to_string(),
            "ephemeral-storage": host::kibibytes(r.disk_bytes),
            "hugepages-2Mi": "0",
            "hugepages-1Gi": "0",
        },
        "allocatable": {
            "cpu": format!("{cpu_alloc}m"),
            "memory": host::kibibytes(mem_alloc),
            "pods": config.max_pods.to_string(),
            "ephemeral-storage": host::kibibytes(r.disk_bytes * 9 / 10),
            "hugepages-2Mi": "0",
            "hugepages-1Gi": "0",
        },
        "conditions": conditions(previous_conditions, memory_pressure, disk_pressure, pid_pressure, &now),
        "addresses": addresses,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": config.port}},
        "nodeInfo": node_info(&info, "runc://1", &host_arch()),
    }))
}

/// Create a Node unless it exists; true when this call created it.
pub(crate) async fn create_node(nodes: &Api<Node>, object: Value) -> Result<bool, AgentError> {
    let node: Node =
        serde_json::from_value(object).map_err(|e| AgentError::Client(e.to_string()))?;
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(err) => Err(err.into()),
    }
}

/// Create the Node if needed and write its status.
pub async fn register(client: &Client, config: &AgentConfig) -> Result<(), AgentError> {
    let nodes: Api<Node> = Api::all(client.clone());
    if create_node(&nodes, node_object(&config.node_name, &host_arch())).await? {
        tracing::info!(node = %config.node_name, "registered the node");
    } else {
        tracing::info!(node = %config.node_name, "the node is already registered");
    }
    // Where this node's provisioned volumes go (its data directory may have moved).
    let storage = crate::local_path::storage_dir(&config.data_dir);
    let annotations = json!({"metadata": {"annotations": {
        maestro_api::local_path::DIR_ANNOTATION: storage.to_string_lossy(),
    }}});
    nodes
        .patch(
            &config.node_name,
            &field_manager(),
            &Patch::Merge(annotations),
        )
        .await?;
    update_status(client, config).await
}

/// Write the node's status (conditions, capacity, addresses).
pub async fn update_status(client: &Client, config: &AgentConfig) -> Result<(), AgentError> {
    let nodes: Api<Node> = Api::all(client.clone());
    let current = nodes.get(&config.node_name).await?;
    let previous: Vec<Value> = current
        .status
        .and_then(|s| s.conditions)
        .map(|c| {
            c.iter()
                .filter_map(|c| serde_json::to_value(c).ok())
                .collect()
        })
        .unwrap_or_default();
    let status = status(config, &previous)?;
    nodes
        .patch_status(
            &config.node_name,
            &field_manager(),
            &Patch::Merge(json!({"status": status})),
        )
        .await?;
    Ok(())
}

/// Create or renew the node's Lease in kube-node-lease.
pub async fn renew_lease(client: &Client, config: &AgentConfig) -> Result<(), AgentError> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    renew_node_lease(&leases, &config.node_name, LEASE_DURATION_SECONDS).await
}

/// Renew the Lease of node `name` (`leases` is kube-node-lease), creating it when it is missing:
/// renewals are the common case, so they go first.
pub(crate) async fn renew_node_lease(
    leases: &Api<Lease>,
    name: &str,
    duration_seconds: i64,
) -> Result<(), AgentError> {
    let now = now_micro();
    let spec =
        json!({"holderIdentity": name, "leaseDurationSeconds": duration_seconds, "renewTime": now});
    match leases
        .patch(name, &field_manager(), &Patch::Merge(json!({"spec": spec})))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => {
            let lease: Lease = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": "kube-node-lease"},
                "spec": spec,
            }))
            .map_err(|e| AgentError::Client(e.to_string()))?;
            leases.create(&PostParams::default(), &lease).await?;
            Ok(())
        }
        Err(err) => Err(err.into()),
    }
}

/// Register, then keep the heartbeat going. Failures are logged and retried: an agent cut off
/// from the server keeps running and catches up when it is back.
pub async fn run(client: Client, config: &AgentConfig) -> Result<(), AgentError> {
    loop {
        match register(&client, config).await {
            Ok(()) => break,
            Err(err) => {
                tracing::warn!(%err, "registering the node failed; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    let mut status_tick = tokio::time::interval(STATUS_PERIOD);
    let mut lease_tick = tokio::time::interval(LEASE_PERIOD);
    loop {
        tokio::select! {
            _ = status_tick.tick() => {
                if let Err(err) = update_status(&client, config).await {
                    tracing::warn!(%err, "updating the node status failed");
                }
            }
            _ = lease_tick.tick() => {
                if let Err(err) = renew_lease(&client, config).await {
                    tracing::warn!(%err, "renewing the node lease failed");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> AgentConfig {
        AgentConfig {
            server: "https://127.0.0.1:6443".into(),
            credentials: crate::client::Credentials::Join(String::new()),
            node_name: "n1".into(),
            data_dir: dir.to_path_buf(),
            reserved_cpu_millis: 100,
            reserved_memory_bytes: 256 * 1024 * 1024,
            max_pods: 110,
            node_ip: Some("10.0.0.5".parse().unwrap()),
            port: 10250,
            pods: crate::PodSettings::new(maestro_oci::runtime::ShimCommand::binary("/bin/false")),
        }
    }

    #[test]
    fn status_reports_capacity_allocatable_and_conditions() {
        let dir = tempfile::tempdir().unwrap();
        let status = status(&config(dir.path()), &[]).unwrap();
        assert_eq!(status["capacity"]["pods"], "110");
        let cpus: u64 = status["capacity"]["cpu"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            status["allocatable"]["cpu"],
            format!("{}m", cpus * 1000 - 100)
        );
        let kinds: Vec<&str> = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        );
        assert_eq!(
            status["addresses"][0],
            json!({"type": "InternalIP", "address": "10.0.0.5"})
        );
        // The transition time stays while the status does not change.
        let earlier = vec![
            json!({"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"}),
        ];
        let again = super::status(&config(dir.path()), &earlier).unwrap();
        let ready = again["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        if ready["status"] == "True" {
            assert_eq!(ready["lastTransitionTime"], "2020-01-01T00:00:00Z");
        }
    }
}
