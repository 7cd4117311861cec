//! The objects the benchmarks write: ConfigMaps of about 1 KiB, pods shaped like the ones a
//! Deployment creates (2-3 KiB once defaulted), and the Deployment manifest kubectl applies.

use serde_json::json;

/// A ConfigMap of about 1 KiB of JSON.
pub fn configmap(namespace: &str, name: &str) -> String {
    // A config file's worth of text: what ConfigMaps usually carry.
    let config: String = (0..16)
        .map(|i| format!("setting_{i:02}: value for setting {i:02} of the benchmark app\n"))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app": "bench", "tier": "config"},
        },
        "data": {"app.yaml": config, "round": "0"},
    })
    .to_string()
}

/// A pod as a ReplicaSet would create it (two containers, env, probes, resources, the projected
/// service-account volume, default tolerations), without owner references: the garbage
/// collector would delete pods whose owner does not exist.
pub fn pod(namespace: &str, name: &str) -> String {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "app": "web",
                "pod-template-hash": "7d4b9c8f6d",
                "tier": "frontend",
                "version": "v1.4.2",
            },
            "annotations": {
                "kubectl.kubernetes.io/restartedAt": "2025-05-01T10:00:00Z",
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9090",
            },
        },
        "spec": {
            "containers": [
                {
                    "name": "web",
                    "image": "registry.example.com/team/web:1.4.2",
                    "imagePullPolicy": "IfNotPresent",
                    "args": ["--port=8080", "--metrics-port=9090", "--log-level=info"],
                    "ports": [
                        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
                        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
                    ],
                    "env": [
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                        {"name": "DATABASE_URL", "value": "postgres://web@db.default.svc.cluster.local:5432/web"},
                        {"name": "CACHE_URL", "value": "redis://cache.default.svc.cluster.local:6379/0"},
                    ],
                    "resources": {
                        "requests": {"cpu": "100m", "memory": "128Mi"},
                        "limits": {"cpu": "500m", "memory": "256Mi"},
                    },
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 5},
                    "livenessProbe": {
                        "httpGet": {"path": "/livez", "port": 8080},
                        "initialDelaySeconds": 10,
                        "periodSeconds": 10,
                    },
                    "volumeMounts": [
                        {"name": "config", "mountPath": "/etc/web"},
                        {
                            "name": "kube-api-access",
                            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                            "readOnly": true,
                        },
                    ],
                },
                {
                    "name": "log-shipper",
                    "image": "registry.example.com/infra/fluent-bit:3.0",
                    "resources": {"requests": {"cpu": "20m", "memory": "32Mi"}},
                    "volumeMounts": [{"name": "varlog", "mountPath": "/var/log"}],
                },
            ],
            "volumes": [
                {"name": "config", "configMap": {"name": "web-config"}},
                {"name": "varlog", "emptyDir": {}},
                {
                    "name": "kube-api-access",
                    "projected": {
                        "defaultMode": 420,
                        "sources": [
                            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                            {"downwardAPI": {"items": [{
                                "path": "namespace",
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                            }]}},
                        ],
                    },
                },
            ],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
            ],
        },
    })
    .to_string()
}

/// The manifest of the kubectl apply session.
pub const DEPLOYMENT_YAML: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels:
    app: web
spec:
  replicas: 2
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: registry.example.com/team/web:1.4.2
        ports:
        - containerPort: 8080
        resources:
          requests:
            cpu: 100m
            memory: 128Mi
";

/// The round number carried by a watch event line or stored value (`"round":"N"`).
pub fn round_of(bytes: &[u8]) -> Option<u32> {
    const NEEDLE: &[u8] = b"\"round\":\"";
    let at = bytes.windows(NEEDLE.len()).position(|w| w == NEEDLE)? + NEEDLE.len();
    let digits = &bytes[at..];
    let end = digits.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_sizes_are_as_documented() {
        let cm = configmap("bench", "cm-000001").len();
        assert!((950..=1100).contains(&cm), "configmap is {cm} bytes");
        let pod = pod("bench-list", "pod-00001").len();
        assert!((2000..=3000).contains(&pod), "pod is {pod} bytes");
    }

    #[test]
    fn finds_the_round_marker() {
        assert_eq!(round_of(configmap("a", "b").as_bytes()), Some(0));
        assert_eq!(
            round_of(br#"{"type":"MODIFIED","object":{"data":{"round":"17"}}}"#),
            Some(17)
        );
        assert_eq!(round_of(b"{}"), None);
    }
}
