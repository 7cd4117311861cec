//! Namespace lifecycle: a namespace being deleted is `Terminating` while everything in it is
//! deleted, then its `kubernetes` finalizer is removed and it disappears. Live namespaces get
//! the `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap, recreated if removed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use maestro_api::resources;
use maestro_apiserver::Registry;
use maestro_apiserver::object::{StoredObject, key_resource};
use maestro_apiserver::registry::{Resource, WriteOptions};
use maestro_store::{CacheEvent, CacheEventKind};
use serde_json::{Value, json};

use crate::queue::{self, Reconciler};
use crate::writes;

const ROOT_CA_CONFIGMAP: &str = "kube-root-ca.crt";

struct Namespaces {
    ca_pem: String,
    terminating: BTreeSet<String>,
}

fn namespaces() -> Arc<Resource> {
    Resource::builtin(resources::find_builtin("", "v1", "namespaces").expect("built in"))
}

fn builtin(plural: &str) -> Arc<Resource> {
    Resource::builtin(resources::find_builtin("", "v1", plural).expect("built in"))
}

/// Every stored namespaced resource: built-ins in their storage version and custom resources.
fn namespaced_resources(registry: &Registry) -> Vec<Arc<Resource>> {
    let mut out: Vec<Arc<Resource>> = resources::builtins()
        .iter()
        .filter(|r| r.namespaced() && r.group == r.storage_group && r.version == r.storage_version)
        .map(Resource::builtin)
        .collect();
    let mut seen = BTreeSet::new();
    for r in &registry.custom_resources().resources {
        if r.info.namespaced() && seen.insert((r.info.group.clone(), r.info.plural.clone())) {
            out.push(r.clone());
        }
    }
    out
}

impl Namespaces {
    async fn ensure(&self, registry: &Registry, ns: &str) -> Result<(), String> {
        let create = |res: Arc<Resource>, body: Value| async move {
            match registry
                .create(&res, Some(ns), body, &WriteOptions::default())
                .await
            {
                Ok(_) => Ok(()),
                Err(err) if err.code == 409 || err.code == 404 || err.code == 403 => Ok(()),
                Err(err) => Err(err.message),
            }
        };
        let sa = builtin("serviceaccounts");
        if registry
            .cache()
            .get(&sa.info.key(Some(ns), "default"))
            .is_none()
        {
            create(sa, json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}})).await?;
        }
        let cm = builtin("configmaps");
        let data = json!({"ca.crt": self.ca_pem});
        match registry
            .cache()
            .get(&cm.info.key(Some(ns), ROOT_CA_CONFIGMAP))
        {
            None => {
                create(
                    cm,
                    json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": ROOT_CA_CONFIGMAP, "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                        "data": data}),
                )
                .await?;
            }
            Some((existing, _)) if existing.value().get("data") != Some(&data) => {
                writes::edit(registry, &cm, Some(ns), ROOT_CA_CONFIGMAP, None, |next| {
                    next["data"] = data.clone();
                })
                .await?;
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Delete the namespace's contents and report what is left.
    async fn empty(&self, registry: &Registry, ns: &str) -> Result<Remaining, String> {
        let mut remaining = Remaining::default();
        for res in namespaced_resources(registry) {
            let (items, _) = registry.cache().list(&res.info.namespace_prefix(Some(ns)));
            if items.is_empty() {
                continue;
            }
            remaining.resources.push((
                format!("{}.{}", res.info.plural, res.info.group),
                items.len(),
            ));
            for item in items {
                for finalizer in &item.finalizers {
                    *remaining.finalizers.entry(finalizer.clone()).or_default() += 1;
                }
                if item.deleting {
                    continue;
                }
                writes::delete(registry, &res, Some(ns), &item.name, &item.uid, None).await?;
            }
        }
        Ok(remaining)
    }
}

/// What still holds a terminating namespace.
#[derive(Debug, Default)]
struct Remaining {
    /// (`plural.group`, count)
    resources: Vec<(String, usize)>,
    /// finalizer → objects carrying it
    finalizers: std::collections::BTreeMap<String, usize>,
}

impl Remaining {
    fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }

    /// The deletion conditions Kubernetes reports on a terminating namespace.
    fn conditions(&self, now: &str) -> Vec<Value> {
        let condition = |kind: &str, status: bool, reason: &str, message: String| {
            json!({"type": kind, "status": if status { "True" } else { "False" }, "reason": reason,
                   "message": message, "lastTransitionTime": now})
        };
        let content = if self.resources.is_empty() {
            condition(
                "NamespaceContentRemaining",
                false,
                "ContentRemoved",
                "All content successfully removed".into(),
            )
        } else {
            let list: Vec<String> = self
                .resources
                .iter()
                .map(|(r, n)| format!("{r} has {n} resource instances"))
                .collect();
            condition(
                "NamespaceContentRemaining",
                true,
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", list.join(", ")),
            )
        };
        let finalizers = if self.finalizers.is_empty() {
            condition(
                "NamespaceFinalizersRemaining",
                false,
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished".into(),
            )
        } else {
            let list: Vec<String> = self
                .finalizers
                .iter()
                .map(|(f, n)| format!("{f} in {n} resource instances"))
                .collect();
            condition(
                "NamespaceFinalizersRemaining",
                true,
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    list.join(", ")
                ),
            )
        };
        vec![
            condition(
                "NamespaceDeletionDiscoveryFailure",
                false,
                "ResourcesDiscovered",
                "All resources successfully discovered".into(),
            ),
            condition(
                "NamespaceDeletionGroupVersionParsingFailure",
                false,
                "ParsedGroupVersions",
                "All legacy kube types successfully parsed".into(),
            ),
            condition(
                "NamespaceDeletionContentFailure",
                false,
                "ContentDeleted",
                "All content successfully deleted, may be waiting on finalization".into(),
            ),
            content,
            finalizers,
        ]
    }
}

/// Write the deletion conditions when their substance changed (times aside).
async fn report(registry: &Registry, name: &str, conditions: Vec<Value>) -> Result<(), String> {
    let without_time = |list: &[Value]| -> Vec<Value> {
        list.iter()
            .map(|c| {
                let mut c = c.clone();
                if let Some(m) = c.as_object_mut() {
                    m.remove("lastTransitionTime");
                }
                c
            })
            .collect()
    };
    writes::edit(
        registry,
        &namespaces(),
        None,
        name,
        Some("status"),
        |next| {
            let existing = next["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if without_time(&existing) != without_time(&conditions) {
                next["status"]["conditions"] = json!(conditions);
            }
        },
    )
    .await
}

impl Reconciler for Namespaces {
    fn keys_for(&mut self, event: &CacheEvent<StoredObject>) -> Vec<String> {
        let ns_prefix = namespaces().info.storage_prefix();
        if event.key.starts_with(&ns_prefix) {
            let deleting = event.object.deleting;
            if event.kind == CacheEventKind::Deleted || !deleting {
                self.terminating.remove(&event.object.name);
            } else {
                self.terminating.insert(event.object.name.clone());
            }
            return vec![event.key.clone()];
        }
        let Some(ns) = event.object.namespace.clone() else {
            return vec![];
        };
        let system_object = match key_resource(&event.key) {
            Some(("", "serviceaccounts")) => event.object.name == "default",
            Some(("", "configmaps")) => event.object.name == ROOT_CA_CONFIGMAP,
            _ => false,
        };
        let gone = event.kind == CacheEventKind::Deleted;
        if (gone && self.terminating.contains(&ns))
            || (system_object && (gone || event.kind == CacheEventKind::Modified))
        {
            return vec![namespaces().info.key(None, &ns)];
        }
        vec![]
    }

    fn resync_keys(&mut self, registry: &Registry) -> Vec<String> {
        let (items, _) = registry.cache().list(&namespaces().info.storage_prefix());
        items.iter().map(|o| o.key.clone()).collect()
    }

    fn reconcile<'a>(
        &'a mut self,
        registry: &'a Arc<Registry>,
        key: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let Some((stored, _)) = registry.cache().get(key) else {
                return Ok(());
            };
            let name = stored.name.clone();
            if !stored.deleting {
                return self.ensure(registry, &name).await;
            }
            let remaining = self.empty(registry, &name).await?;
            let now = maestro_api::meta::format_time(jiff::Timestamp::now());
            report(registry, &name, remaining.conditions(&now)).await?;
            if !remaining.is_empty() {
                // Deletions still in flight: the events of their removal bring us back.
                return Ok(());
            }
            writes::edit(registry, &namespaces(), None, &name, None, |next| {
                if let Some(list) = next
                    .pointer_mut("/spec/finalizers")
                    .and_then(Value::as_array_mut)
                {
                    list.retain(|f| f != "kubernetes");
                }
            })
            .await
        })
    }
}

/// Run the namespace controller.
pub async fn run(registry: Arc<Registry>, ca_pem: String) {
    let reconciler = Namespaces {
        ca_pem,
        terminating: BTreeSet::new(),
    };
    queue::run(registry, "/registry/", reconciler, Duration::from_secs(60)).await;
}
