//! The node's side of the built-in local-path provisioner (the controller side is
//! `maestro-controllers`' `volumes`): volumes live in directories under `<data>/storage`, which
//! the agent publishes on its Node ([`DIR_ANNOTATION`]) so the provisioner knows where to put
//! them; pods mount claims through the volume they are bound to ([`claim_volume`]); and a
//! deleted volume's directory is removed here before its [`CLEANUP_FINALIZER`] is lifted
//! ([`run`]), since only this node can reach it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, PersistentVolume, PersistentVolumeClaim, Volume,
};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use maestro_api::local_path::CLEANUP_FINALIZER;
use serde_json::json;

/// How often the agent looks for deleted volumes of its own to clean up.
const CLEANUP_PERIOD: Duration = Duration::from_secs(5);

/// Where this node keeps provisioned volumes.
pub fn storage_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("storage")
}

/// The hostPath volume a pod's `persistentVolumeClaim` volume stands for: the bound volume's
/// directory (hostPath or local). An unbound claim is an error the pod waits on, as the
/// kubelet's "PVC is not bound"; volumes the provisioner made for this node are created open to
/// every user (0777, as Rancher's provisioner does), so a container running as any user can
/// write its data.
pub async fn claim_volume(
    client: &Client,
    namespace: &str,
    volume: &Volume,
    storage_dir: &Path,
) -> Result<Volume, String> {
    let source = volume
        .persistent_volume_claim
        .as_ref()
        .ok_or("not a persistentVolumeClaim volume")?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let claim = claims.get(&source.claim_name).await.map_err(|e| {
        format!(
            "error processing PVC {namespace}/{}: {e}",
            source.claim_name
        )
    })?;
    let bound = claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| !v.is_empty());
    let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
    let (Some(pv_name), Some("Bound")) = (bound, phase) else {
        return Err(format!(
            "error processing PVC {namespace}/{}: PVC is not bound",
            source.claim_name
        ));
    };
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let pv = volumes
        .get(&pv_name)
        .await
        .map_err(|e| format!("error getting PersistentVolume {pv_name}: {e}"))?;
    let spec = pv.spec.unwrap_or_default();
    let (path, kind) = if let Some(host) = spec.host_path {
        (PathBuf::from(host.path), host.type_.unwrap_or_default())
    } else if let Some(local) = spec.local {
        (PathBuf::from(local.path), "Directory".to_string())
    } else {
        return Err(format!(
            "PersistentVolume {pv_name} has a volume source this node cannot mount \
             (supported: hostPath, local)"
        ));
    };
    if path.starts_with(storage_dir) && !path.exists() {
        let created = path.clone();
        tokio::task::spawn_blocking(move || create_open_dir(&created))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("creating {}: {e}", path.display()))?;
    }
    Ok(Volume {
        name: volume.name.clone(),
        host_path: Some(HostPathVolumeSource {
            path: path.to_string_lossy().into_owned(),
            type_: Some(kind),
        }),
        ..Default::default()
    })
}

fn create_open_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o777))
}

/// The directory of a deleted volume that this node should remove: one pinned to this node,
/// directly under `storage_dir`, marked for cleanup, being deleted, with reclaim policy Delete.
fn directory_to_remove(pv: &PersistentVolume, node: &str, storage_dir: &Path) -> Option<PathBuf> {
    let meta = &pv.metadata;
    meta.deletion_timestamp.as_ref()?;
    if !meta
        .finalizers
        .iter()
        .flatten()
        .any(|f| f == CLEANUP_FINALIZER)
    {
        return None;
    }
    let spec = pv.spec.as_ref()?;
    if spec.persistent_volume_reclaim_policy.as_deref() != Some("Delete") {
        return None;
    }
    let pinned_here = spec
        .node_affinity
        .as_ref()
        .and_then(|a| a.required.as_ref())
        .is_some_and(|r| {
            r.node_selector_terms.iter().any(|t| {
                t.match_expressions.iter().flatten().any(|e| {
                    e.key == "kubernetes.io/hostname"
                        && e.operator == "In"
                        && e.values.iter().flatten().any(|v| v == node)
                })
            })
        });
    if !pinned_here {
        return None;
    }
    let path = PathBuf::from(&spec.host_path.as_ref()?.path);
    // Only a directory directly under ours: never follow a volume elsewhere on the node.
    (path.parent() == Some(storage_dir)).then_some(path)
}

/// Remove the directories of this node's deleted volumes, then their finalizers, forever.
pub async fn run(client: Client, node: String, storage_dir: PathBuf) {
    if let Err(err) = std::fs::create_dir_all(&storage_dir) {
        tracing::warn!(%err, dir = %storage_dir.display(), "cannot create the volume directory");
    }
    let volumes: Api<PersistentVolume> = Api::all(client);
    let mut tick = tokio::time::interval(CLEANUP_PERIOD);
    loop {
        tick.tick().await;
        let list = match volumes.list(&ListParams::default()).await {
            Ok(list) => list,
            Err(err) => {
                tracing::debug!(%err, "listing volumes failed");
                continue;
            }
        };
        for pv in list.items {
            let Some(dir) = directory_to_remove(&pv, &node, &storage_dir) else {
                continue;
            };
            let name = pv.metadata.name.clone().unwrap_or_default();
            let removed = dir.clone();
            let result =
                tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&removed) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                })
                .await;
            if let Ok(Err(err)) | Err(err) = result.map_err(std::io::Error::other) {
                tracing::warn!(volume = %name, %err, dir = %dir.display(), "removing a deleted volume's directory failed");
                continue;
            }
            let remaining: Vec<String> = pv
                .metadata
                .finalizers
                .iter()
                .flatten()
                .filter(|f| *f != CLEANUP_FINALIZER)
                .cloned()
                .collect();
            // The resourceVersion makes the patch fail if the finalizers changed meanwhile.
            let patch = json!({"metadata": {
                "finalizers": remaining,
                "resourceVersion": pv.metadata.resource_version,
            }});
            match volumes
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await
            {
                Ok(_) => {
                    tracing::info!(volume = %name, dir = %dir.display(), "removed a deleted volume's data")
                }
                Err(err) => {
                    tracing::debug!(volume = %name, %err, "lifting the cleanup finalizer failed; retrying")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_deleted_volumes_of_this_node_with_delete_policy_are_removed() {
        let pv_on = |node: &str,
                     deleting: bool,
                     finalizer: bool,
                     policy: &str,
                     path: &str|
         -> PersistentVolume {
            serde_json::from_value(json!({
                "metadata": {
                    "name": "pvc-1",
                    "deletionTimestamp": deleting.then_some("2026-11-29T00:00:00Z"),
                    "finalizers": if finalizer { vec![CLEANUP_FINALIZER] } else { vec![] },
                },
                "spec": {
                    "persistentVolumeReclaimPolicy": policy,
                    "hostPath": {"path": path},
                    "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
                },
            }))
            .unwrap()
        };
        let pv = |deleting, finalizer, policy, path| pv_on("n1", deleting, finalizer, policy, path);
        let dir = Path::new("/data/storage");
        let ours = "/data/storage/pvc-1_default_data";
        assert_eq!(
            directory_to_remove(&pv(true, true, "Delete", ours), "n1", dir),
            Some(PathBuf::from(ours))
        );
        assert_eq!(
            directory_to_remove(&pv(false, true, "Delete", ours), "n1", dir),
            None,
            "not deleted"
        );
        assert_eq!(
            directory_to_remove(&pv(true, false, "Delete", ours), "n1", dir),
            None,
            "no finalizer"
        );
        assert_eq!(
            directory_to_remove(&pv(true, true, "Retain", ours), "n1", dir),
            None,
            "retained"
        );
        assert_eq!(
            directory_to_remove(&pv(true, true, "Delete", "/srv/elsewhere"), "n1", dir),
            None,
            "another node's or the operator's directory"
        );
        assert_eq!(
            directory_to_remove(&pv_on("n2", true, true, "Delete", ours), "n1", dir),
            None,
            "a volume of another node with the same directory"
        );
        assert_eq!(
            directory_to_remove(&pv(true, true, "Delete", "/data/storage"), "n1", dir),
            None,
            "the storage directory itself"
        );
    }
}
