//! The version the server reports: the Kubernetes API level it implements, with maestro's own
//! version as build metadata.

use serde_json::{Value, json};

/// Kubernetes API level served (matches the k8s-openapi feature in use).
pub const KUBE_MAJOR: &str = "1";
pub const KUBE_MINOR: &str = "33";
pub const GIT_VERSION: &str = concat!("v1.33.0+maestro-", env!("CARGO_PKG_VERSION"));

/// The `/version` document; every field is a string, as the Python client requires.
pub fn info() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": option_env!("MAESTRO_GIT_COMMIT").unwrap_or("unknown"),
        "gitTreeState": "clean",
        "buildDate": option_env!("MAESTRO_BUILD_DATE").unwrap_or("1970-01-01T00:00:00Z"),
        "goVersion": "n/a (rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", other => other }),
    })
}
