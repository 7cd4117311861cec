//! Events the controllers record about the objects they act on, aggregated as Kubernetes' event
//! recorder does: a repeat of the same reason and message on the same object bumps the count
//! of the existing Event instead of creating another.

use maestro_api::resources;
use maestro_apiserver::Registry;
use maestro_apiserver::registry::{Resource, WriteOptions};
use serde_json::{Value, json};

/// The object an event is about.
#[derive(Debug, Clone)]
pub struct Involved {
    pub api_version: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Involved {
    /// The involved-object reference of a stored object (`apiVersion`, `kind` and metadata).
    pub fn of(object: &Value) -> Involved {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Involved {
            api_version: text("/apiVersion"),
            kind: text("/kind"),
            namespace: text("/metadata/namespace"),
            name: text("/metadata/name"),
            uid: text("/metadata/uid"),
        }
    }

    /// A pod, by its namespace, name and uid.
    pub fn pod(namespace: &str, name: &str, uid: &str) -> Involved {
        Involved {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: namespace.into(),
            name: name.into(),
            uid: uid.into(),
        }
    }
}

/// Normal or Warning.
#[derive(Debug, Clone, Copy)]
pub enum EventType {
    Normal,
    Warning,
}

/// Record an event from `component`, or bump the count of the same event.
pub async fn record(
    registry: &Registry,
    component: &str,
    involved: &Involved,
    kind: EventType,
    reason: &str,
    message: &str,
) {
    let events = Resource::builtin(resources::find_builtin("", "v1", "events").expect("built in"));
    let namespace = if involved.namespace.is_empty() {
        "default"
    } else {
        &involved.namespace
    };
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (existing, _) = registry
        .cache()
        .list(&events.info.namespace_prefix(Some(namespace)));
    let same = existing.iter().find(|e| {
        e.field("involvedObject.uid").as_deref() == Some(involved.uid.as_str())
            && e.field("reason").as_deref() == Some(reason)
            && e.value()["message"] == message
    });
    if let Some(event) = same {
        let _ = registry
            .read_modify_write(
                &events,
                Some(namespace),
                &event.name,
                None,
                &WriteOptions::default(),
                |current| {
                    let mut next = current.clone();
                    next["count"] = json!(current["count"].as_i64().unwrap_or(1) + 1);
                    next["lastTimestamp"] = json!(now);
                    Ok(next)
                },
                None,
            )
            .await;
        return;
    }
    create(registry, component, involved, kind, reason, message).await;
}

/// Create an event without looking for one to aggregate with (for events that never repeat,
/// such as a pod's Scheduled).
pub async fn create(
    registry: &Registry,
    component: &str,
    involved: &Involved,
    kind: EventType,
    reason: &str,
    message: &str,
) {
    let events = Resource::builtin(resources::find_builtin("", "v1", "events").expect("built in"));
    let namespace = if involved.namespace.is_empty() {
        "default"
    } else {
        &involved.namespace
    };
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let event = json!({
        "apiVersion": "v1", "kind": "Event",
        // Named as Kubernetes' event recorder names them: `<object>.<unix nanos in hex>`.
        "metadata": {"name": format!("{}.{:x}", involved.name, jiff::Timestamp::now().as_nanosecond())},
        "involvedObject": {
            "apiVersion": involved.api_version, "kind": involved.kind,
            "name": involved.name, "namespace": namespace, "uid": involved.uid,
        },
        "reason": reason, "message": message,
        "type": match kind { EventType::Normal => "Normal", EventType::Warning => "Warning" },
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    let _ = registry
        .create(&events, Some(namespace), event, &WriteOptions::default())
        .await;
}
