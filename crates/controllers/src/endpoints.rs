//! The EndpointSlice and Endpoints controllers: for every Service with a selector, the pods it
//! selects that have an IP, as `discovery.k8s.io/v1` EndpointSlices (what proxies and DNS
//! read) and the legacy `v1` Endpoints object (what `kubectl get endpoints` shows).
//!
//! An endpoint is ready when its pod's Ready condition is true and the pod is not being
//! deleted; a terminating pod stays listed with `terminating: true` and `serving` set from its
//! readiness, as Kubernetes does, so that proxies can drain it. Named target ports resolve
//! against each pod's container ports; pods that resolve them differently go to different
//! slices. Slices hold at most 100 endpoints, carry the `kubernetes.io/service-name` and
//! `endpointslice.kubernetes.io/managed-by` labels, and are owned by their Service (so they go
//! with it); existing slices are updated in place before any is created or deleted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use maestro_api::selector::LabelSelector;
use maestro_apiserver::Registry;
use maestro_apiserver::object::StoredObject;
use maestro_apiserver::registry::{DeleteOptions, Resource, WriteOptions};
use maestro_store::{CacheEvent, CacheEventKind, WatchCache};
use serde_json::{Value, json};

use crate::objects::{controller_reference, deleting, ready_since, resource};
use crate::queue::{self, Reconciler};

const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
const MANAGED_BY: &str = "endpointslice-controller.k8s.io";
const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// A service port resolved for one pod: (name, port, protocol).
type ResolvedPort = (String, i64, String);

/// The service's ports with their target ports resolved against a pod's containers; `None`
/// when a named target port is not found in the pod.
fn resolve_ports(service: &Value, pod: &Value) -> Option<Vec<ResolvedPort>> {
    let mut resolved = Vec::new();
    for port in service["spec"]["ports"].as_array().into_iter().flatten() {
        let protocol = port["protocol"].as_str().unwrap_or("TCP").to_string();
        let name = port["name"].as_str().unwrap_or_default().to_string();
        let number = match &port["targetPort"] {
            Value::Number(n) => n.as_i64()?,
            Value::String(named) => pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                .find(|p| {
                    p["name"] == named.as_str()
                        && p["protocol"].as_str().unwrap_or("TCP") == protocol
                })
                .and_then(|p| p["containerPort"].as_i64())?,
            _ => port["port"].as_i64()?,
        };
        resolved.push((name, number, protocol));
    }
    Some(resolved)
}

/// One endpoint of a pod for `service`: ready when the pod is ready (or the Service publishes
/// unready addresses) and not being deleted; named by the pod's hostname when the pod's
/// subdomain is the Service (how StatefulSet pods get DNS names), as Kubernetes does.
fn endpoint(pod: &Value, service: &Value) -> Option<Value> {
    let ip = pod["status"]["podIP"]
        .as_str()
        .filter(|ip| !ip.is_empty())?;
    let terminating = deleting(pod);
    let ready = ready_since(pod).is_some() || service["spec"]["publishNotReadyAddresses"] == true;
    let mut endpoint = json!({
        "addresses": [ip],
        "conditions": {"ready": ready && !terminating, "serving": ready, "terminating": terminating},
        "targetRef": {"kind": "Pod", "namespace": pod["metadata"]["namespace"],
            "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]},
    });
    if let Some(node) = pod["spec"]["nodeName"].as_str() {
        endpoint["nodeName"] = json!(node);
    }
    if let Some(hostname) = pod["spec"]["hostname"].as_str()
        && pod["spec"]["subdomain"] == service["metadata"]["name"]
    {
        endpoint["hostname"] = json!(hostname);
    }
    Some(endpoint)
}

/// The endpoints of a service grouped by their resolved ports, in a stable order.
fn desired(service: &Value, pods: &[Value]) -> BTreeMap<Vec<ResolvedPort>, Vec<Value>> {
    let mut groups: BTreeMap<Vec<ResolvedPort>, Vec<Value>> = BTreeMap::new();
    for pod in pods {
        if matches!(
            pod["status"]["phase"].as_str(),
            Some("Succeeded" | "Failed")
        ) {
            continue;
        }
        let (Some(ports), Some(endpoint)) = (resolve_ports(service, pod), endpoint(pod, service))
        else {
            continue;
        };
        groups.entry(ports).or_default().push(endpoint);
    }
    for endpoints in groups.values_mut() {
        endpoints.sort_by(|a, b| {
            a["targetRef"]["name"]
                .as_str()
                .cmp(&b["targetRef"]["name"].as_str())
        });
    }
    groups
}

fn ports_json(ports: &[ResolvedPort]) -> Value {
    json!(
        ports
            .iter()
            .map(|(name, port, protocol)| json!({"name": name, "port": port, "protocol": protocol}))
            .collect::<Vec<_>>()
    )
}

/// The legacy Endpoints subsets: ready addresses and not-ready ones per port set.
fn subsets(groups: &BTreeMap<Vec<ResolvedPort>, Vec<Value>>) -> Value {
    let subsets: Vec<Value> = groups
        .iter()
        .filter_map(|(ports, endpoints)| {
            let address = |e: &Value| {
                let mut a = json!({"ip": e["addresses"][0], "targetRef": e["targetRef"]});
                if let Some(node) = e.get("nodeName") {
                    a["nodeName"] = node.clone();
                }
                a
            };
            let live: Vec<&Value> = endpoints
                .iter()
                .filter(|e| e["conditions"]["terminating"] != true)
                .collect();
            if live.is_empty() {
                return None;
            }
            let ready: Vec<Value> = live
                .iter()
                .filter(|e| e["conditions"]["ready"] == true)
                .map(|e| address(e))
                .collect();
            let not_ready: Vec<Value> = live
                .iter()
                .filter(|e| e["conditions"]["ready"] != true)
                .map(|e| address(e))
                .collect();
            let mut subset = json!({"ports": ports_json(ports)});
            if !ready.is_empty() {
                subset["addresses"] = json!(ready);
            }
            if !not_ready.is_empty() {
                subset["notReadyAddresses"] = json!(not_ready);
            }
            Some(subset)
        })
        .collect();
    json!(subsets)
}

struct EndpointsController {
    services: Arc<Resource>,
    pods: Arc<Resource>,
    slices: Arc<Resource>,
    endpoints: Arc<Resource>,
    cache: Arc<WatchCache<StoredObject>>,
}

impl EndpointsController {
    async fn sync(&self, registry: &Registry, service: &StoredObject) -> Result<(), String> {
        let svc = service.value();
        let namespace = service.namespace.clone().unwrap_or_default();
        let selector = match svc["spec"]["selector"].as_object() {
            Some(s) if !s.is_empty() && !deleting(&svc) => {
                LabelSelector::from_object(&json!({"matchLabels": s})).map_err(|e| e.to_string())?
            }
            // Services without a selector have their endpoints written by someone else.
            _ => return Ok(()),
        };
        let (all, _) = registry
            .cache()
            .list(&self.pods.info.namespace_prefix(Some(&namespace)));
        let pods: Vec<Value> = all
            .iter()
            .filter(|p| selector.matches_map(&p.labels))
            .map(|p| p.value())
            .collect();
        let groups = desired(&svc, &pods);
        self.write_slices(registry, &svc, &namespace, &service.name, &groups)
            .await?;
        self.write_endpoints(registry, &svc, &namespace, &service.name, &groups)
            .await
    }

    async fn write_slices(
        &self,
        registry: &Registry,
        svc: &Value,
        namespace: &str,
        name: &str,
        groups: &BTreeMap<Vec<ResolvedPort>, Vec<Value>>,
    ) -> Result<(), String> {
        let mut wanted: Vec<(Value, Value)> = Vec::new();
        for (ports, endpoints) in groups {
            for chunk in endpoints.chunks(MAX_ENDPOINTS_PER_SLICE) {
                wanted.push((ports_json(ports), json!(chunk)));
            }
        }
        if wanted.is_empty() {
            // A service with no endpoints still has one (empty) slice, as in Kubernetes.
            wanted.push((json!([]), json!([])));
        }
        let (existing, _) = registry
            .cache()
            .list(&self.slices.info.namespace_prefix(Some(namespace)));
        let mut mine: Vec<Value> = existing
            .iter()
            .filter(|s| {
                s.labels.get(SERVICE_NAME_LABEL).map(String::as_str) == Some(name)
                    && s.labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
            })
            .map(|s| s.value())
            .collect();
        mine.sort_by(|a, b| {
            a["metadata"]["name"]
                .as_str()
                .cmp(&b["metadata"]["name"].as_str())
        });
        let mut owner = controller_reference(svc);
        owner["apiVersion"] = json!("v1");
        owner["kind"] = json!("Service");
        for (i, (ports, endpoints)) in wanted.iter().enumerate() {
            match mine.get(i) {
                Some(current)
                    if &current["ports"] == ports && &current["endpoints"] == endpoints => {}
                Some(current) => {
                    let slice_name = current["metadata"]["name"].as_str().unwrap_or_default();
                    crate::writes::edit(
                        registry,
                        &self.slices,
                        Some(namespace),
                        slice_name,
                        None,
                        |next| {
                            next["ports"] = ports.clone();
                            next["endpoints"] = endpoints.clone();
                        },
                    )
                    .await?;
                }
                None => {
                    let slice = json!({
                        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                        "metadata": {"generateName": format!("{name}-"),
                            "labels": {SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: MANAGED_BY},
                            "ownerReferences": [owner]},
                        "addressType": "IPv4", "ports": ports, "endpoints": endpoints,
                    });
                    registry
                        .create(
                            &self.slices,
                            Some(namespace),
                            slice,
                            &WriteOptions::default(),
                        )
                        .await
                        .map_err(|e| format!("creating an EndpointSlice: {}", e.message))?;
                }
            }
        }
        for extra in mine.iter().skip(wanted.len()) {
            let slice_name = extra["metadata"]["name"].as_str().unwrap_or_default();
            match registry
                .delete(
                    &self.slices,
                    Some(namespace),
                    slice_name,
                    &DeleteOptions::default(),
                )
                .await
            {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => {
                    return Err(format!(
                        "deleting EndpointSlice {slice_name}: {}",
                        e.message
                    ));
                }
            }
        }
        Ok(())
    }

    async fn write_endpoints(
        &self,
        registry: &Registry,
        svc: &Value,
        namespace: &str,
        name: &str,
        groups: &BTreeMap<Vec<ResolvedPort>, Vec<Value>>,
    ) -> Result<(), String> {
        let subsets = subsets(groups);
        let key = self.endpoints.info.key(Some(namespace), name);
        match registry.cache().get(&key) {
            Some((current, _)) => {
                let value = current.value();
                let now = value.get("subsets").cloned().unwrap_or(json!([]));
                if now == subsets {
                    return Ok(());
                }
                crate::writes::edit(
                    registry,
                    &self.endpoints,
                    Some(namespace),
                    name,
                    None,
                    |next| {
                        next["subsets"] = subsets.clone();
                    },
                )
                .await
            }
            None => {
                let mut owner = controller_reference(svc);
                owner["apiVersion"] = json!("v1");
                owner["kind"] = json!("Service");
                let endpoints = json!({"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name, "labels": svc["metadata"]["labels"].clone(),
                        "ownerReferences": [owner]},
                    "subsets": subsets});
                match registry
                    .create(
                        &self.endpoints,
                        Some(namespace),
                        endpoints,
                        &WriteOptions::default(),
                    )
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) if e.code == 409 => Ok(()),
                    Err(e) => Err(format!("creating Endpoints {name}: {}", e.message)),
                }
            }
        }
    }

    /// Services in the namespace whose selector matches these labels.
    fn services_selecting(
        &self,
        namespace: Option<&str>,
        labels: &[&BTreeMap<String, String>],
    ) -> Vec<String> {
        let (services, _) = self
            .cache
            .list(&self.services.info.namespace_prefix(namespace));
        services
            .iter()
            .filter(|s| {
                let v = s.value();
                v["spec"]["selector"].as_object().is_some_and(|sel| {
                    !sel.is_empty()
                        && labels.iter().any(|l| {
                            sel.iter()
                                .all(|(k, val)| l.get(k).map(String::as_str) == val.as_str())
                        })
                })
            })
            .map(|s| s.key.clone())
            .collect()
    }
}

impl Reconciler for EndpointsController {
    fn keys_for(&mut self, event: &CacheEvent<StoredObject>) -> Vec<String> {
        let stored = &event.object;
        if event.key.starts_with(&self.services.info.storage_prefix()) {
            return if event.kind == CacheEventKind::Deleted {
                vec![]
            } else {
                vec![event.key.clone()]
            };
        }
        if event.key.starts_with(&self.pods.info.storage_prefix()) {
            // The old labels too: a pod relabelled out of a service leaves it.
            let mut labels = vec![&stored.labels];
            if let Some(prev) = &event.prev {
                labels.push(&prev.labels);
            }
            return self.services_selecting(stored.namespace.as_deref(), &labels);
        }
        if event.key.starts_with(&self.slices.info.storage_prefix())
            && stored.labels.get(MANAGED_BY_LABEL).map(String::as_str) == Some(MANAGED_BY)
            && let Some(service) = stored.labels.get(SERVICE_NAME_LABEL)
        {
            return vec![self.services.info.key(stored.namespace.as_deref(), service)];
        }
        vec![]
    }

    fn resync_keys(&mut self, registry: &Registry) -> Vec<String> {
        queue::all_keys(registry, &self.services)
    }

    fn reconcile<'a>(
        &'a mut self,
        registry: &'a Arc<Registry>,
        key: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let Some((service, _)) = registry.cache().get(key) else {
                return Ok(());
            };
            self.sync(registry, &service).await
        })
    }
}

/// Run the EndpointSlice and Endpoints controllers.
pub async fn run(registry: Arc<Registry>) {
    let controller = EndpointsController {
        services: resource("services", ""),
        pods: resource("pods", ""),
        slices: resource("endpointslices", "discovery.k8s.io"),
        endpoints: resource("endpoints", ""),
        cache: registry.cache().clone(),
    };
    queue::run(registry, "/registry/", controller, Duration::from_secs(30)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, ready: bool, deleting: bool, port_name: &str, port: i64) -> Value {
        let mut pod = json!({"metadata": {"name": name, "namespace": "default", "uid": name},
            "spec": {"nodeName": "n1", "containers": [{"ports": [{"name": port_name, "containerPort": port}]}]},
            "status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}});
        if deleting {
            pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        }
        pod
    }

    #[test]
    fn endpoints_follow_readiness_termination_and_named_ports() {
        let service =
            json!({"spec": {"ports": [{"name": "web", "port": 80, "targetPort": "http"}]}});
        let pods = [
            pod("a", "10.0.0.1", true, false, "http", 8080),
            pod("b", "10.0.0.2", false, false, "http", 8080),
            pod("c", "10.0.0.3", true, true, "http", 8080),
            pod("d", "10.0.0.4", true, false, "http", 9090),
            pod("e", "", true, false, "http", 8080),
            pod("f", "10.0.0.6", true, false, "other", 8080),
        ];
        let groups = desired(&service, &pods);
        // Two port mappings (8080 and 9090); no IP or no such named port: not listed.
        assert_eq!(groups.len(), 2);
        let at_8080 = &groups[&vec![("web".to_string(), 8080, "TCP".to_string())]];
        let conditions: Vec<(&str, &Value)> = at_8080
            .iter()
            .map(|e| (e["targetRef"]["name"].as_str().unwrap(), &e["conditions"]))
            .collect();
        assert_eq!(
            conditions[0],
            (
                "a",
                &json!({"ready": true, "serving": true, "terminating": false})
            )
        );
        assert_eq!(
            conditions[1],
            (
                "b",
                &json!({"ready": false, "serving": false, "terminating": false})
            )
        );
        assert_eq!(
            conditions[2],
            (
                "c",
                &json!({"ready": false, "serving": true, "terminating": true})
            )
        );
        // Legacy Endpoints: ready and not-ready addresses, terminating ones left out.
        let legacy = subsets(&groups);
        let first = &legacy[0];
        assert_eq!(first["addresses"][0]["ip"], "10.0.0.1");
        assert_eq!(first["notReadyAddresses"][0]["ip"], "10.0.0.2");
        assert_eq!(first["addresses"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn hostnames_for_the_subdomain_service_and_published_unready_pods() {
        let service = json!({"metadata": {"name": "db"},
            "spec": {"publishNotReadyAddresses": true, "ports": [{"port": 5432}]}});
        let mut named = pod("db-0", "10.0.0.1", false, false, "pg", 5432);
        named["spec"]["hostname"] = json!("db-0");
        named["spec"]["subdomain"] = json!("db");
        let mut elsewhere = pod("x-0", "10.0.0.2", true, false, "pg", 5432);
        elsewhere["spec"]["hostname"] = json!("x-0");
        elsewhere["spec"]["subdomain"] = json!("other");
        let db = endpoint(&named, &service).unwrap();
        assert_eq!(db["hostname"], "db-0");
        assert_eq!(
            db["conditions"]["ready"], true,
            "published although not ready"
        );
        assert!(
            endpoint(&elsewhere, &service)
                .unwrap()
                .get("hostname")
                .is_none()
        );
    }
}
