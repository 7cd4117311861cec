//! Events about pods, as the kubelet records them (`kubectl describe pod` and `kubectl get
//! events` show them): reasons such as Pulling, Pulled, Created, Started, Killing, BackOff,
//! Unhealthy, FailedMount, with the `kubelet` source and the node as reporting instance.
//!
//! Recording never blocks a pod worker: events go through a bounded queue to one task that
//! writes them. A repeat of the same event (same object, reason and message) within ten minutes
//! updates the count and last timestamp of the first one instead of creating another, as the
//! kubelet's event correlator does for BackOff loops.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// How long repeats of one event are folded into it.
const AGGREGATION_WINDOW: Duration = Duration::from_secs(600);
/// Events waiting to be written; beyond this, new ones are dropped (and logged).
const QUEUE: usize = 1024;

/// Normal or Warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

/// The pod an event is about, and the container within it (`spec.containers{name}`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub field_path: Option<String>,
}

impl Subject {
    pub fn pod(namespace: &str, name: &str, uid: &str) -> Self {
        Subject {
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: uid.to_string(),
            field_path: None,
        }
    }

    /// The same pod, narrowed to one container (`spec.containers{web}`,
    /// `spec.initContainers{setup}`).
    pub fn container(&self, field: &str, container: &str) -> Self {
        Subject {
            field_path: Some(format!("spec.{field}{{{container}}}")),
            ..self.clone()
        }
    }
}

struct Pending {
    subject: Subject,
    kind: EventType,
    reason: String,
    message: String,
}

/// Hands events to the writer task; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    queue: mpsc::Sender<Pending>,
}

impl Recorder {
    /// Starts the writer task for `node`.
    pub fn start(client: Client, node: &str) -> Recorder {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_events(client, node.to_string(), rx));
        Recorder { queue }
    }

    pub fn record(&self, subject: &Subject, kind: EventType, reason: &str, message: &str) {
        let event = Pending {
            subject: subject.clone(),
            kind,
            reason: reason.to_string(),
            message: message.to_string(),
        };
        if self.queue.try_send(event).is_err() {
            tracing::warn!(reason, message, "event queue full; event dropped");
        }
    }

    pub fn normal(&self, subject: &Subject, reason: &str, message: &str) {
        self.record(subject, EventType::Normal, reason, message);
    }

    pub fn warning(&self, subject: &Subject, reason: &str, message: &str) {
        self.record(subject, EventType::Warning, reason, message);
    }
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

struct Seen {
    name: String,
    count: u64,
    at: Instant,
}

async fn write_events(client: Client, node: String, mut rx: mpsc::Receiver<Pending>) {
    let gvk = kube::api::GroupVersionKind::gvk("", "v1", "Event");
    let resource = kube::api::ApiResource::from_gvk(&gvk);
    let mut seen: HashMap<(Subject, String, String), Seen> = HashMap::new();
    while let Some(event) = rx.recv().await {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), &event.subject.namespace, &resource);
        let key = (
            event.subject.clone(),
            event.reason.clone(),
            event.message.clone(),
        );
        seen.retain(|_, s| s.at.elapsed() < AGGREGATION_WINDOW);
        if let Some(previous) = seen.get_mut(&key) {
            previous.count += 1;
            let patch = json!({"count": previous.count, "lastTimestamp": now()});
            match api
                .patch(
                    &previous.name,
                    &PatchParams::default(),
                    &Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => continue,
                // Gone (expired, namespace deleted): write it afresh below.
                Err(err) => tracing::debug!(%err, "updating an event failed"),
            }
        }
        let name = format!(
            "{}.{:x}",
            event.subject.name,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        );
        let mut involved = json!({
            "kind": "Pod", "apiVersion": "v1",
            "namespace": event.subject.namespace, "name": event.subject.name,
            "uid": event.subject.uid,
        });
        if let Some(path) = &event.subject.field_path {
            involved["fieldPath"] = json!(path);
        }
        let body = json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": event.subject.namespace},
            "involvedObject": involved,
            "reason": event.reason,
            "message": event.message,
            "type": match event.kind { EventType::Normal => "Normal", EventType::Warning => "Warning" },
            "source": {"component": "kubelet", "host": node},
            "reportingComponent": "kubelet",
            "reportingInstance": node,
            "firstTimestamp": now(),
            "lastTimestamp": now(),
            "eventTime": Value::Null,
            "count": 1,
        });
        let object: DynamicObject = match serde_json::from_value(body) {
            Ok(o) => o,
            Err(err) => {
                tracing::warn!(%err, "building an event failed");
                continue;
            }
        };
        match api.create(&PostParams::default(), &object).await {
            Ok(_) => {
                seen.insert(
                    key,
                    Seen {
                        name,
                        count: 1,
                        at: Instant::now(),
                    },
                );
            }
            Err(err) => tracing::debug!(%err, reason = event.reason, "writing an event failed"),
        }
    }
}
