//! Running the pods bound to this node: the per-pod lifecycle, restarts with back-off, and the
//! status the kubelet reports.

pub mod backoff;
pub mod status;
