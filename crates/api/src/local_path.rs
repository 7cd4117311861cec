//! Names the built-in local-path provisioner shares between its parts: the API server creates
//! the StorageClass, the controller provisions and binds volumes on the node the scheduler
//! selected, and the node agent mounts them and removes their directories when they are deleted.

/// The StorageClass `provisioner` the built-in controller serves.
pub const PROVISIONER: &str = "maestro.dev/local-path";

/// The default StorageClass the server creates.
pub const STORAGE_CLASS: &str = "local-path";

/// Where a node keeps its provisioned volumes, published by its agent as a Node annotation.
pub const DIR_ANNOTATION: &str = "maestro.dev/local-path-dir";

/// Where volumes go on a node that did not publish its directory.
pub const DEFAULT_DIR: &str = "/var/lib/maestro/storage";

/// On provisioned volumes with reclaim policy Delete: the node agent removes the directory,
/// then this finalizer, so the PersistentVolume object outlives its data by no more than that.
pub const CLEANUP_FINALIZER: &str = "maestro.dev/local-path-cleanup";

/// The node the scheduler chose for the first pod of a WaitForFirstConsumer claim (Kubernetes'
/// annotation).
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// Which provisioner created a PersistentVolume (Kubernetes' annotation).
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";

/// The directory of a provisioned volume under the node's directory: the volume's name first,
/// so the agent can tell which volume a directory belongs to.
pub fn volume_dir(root: &str, volume: &str, namespace: &str, claim: &str) -> String {
    format!(
        "{}/{volume}_{namespace}_{claim}",
        root.trim_end_matches('/')
    )
}
