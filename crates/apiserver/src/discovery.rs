//! API discovery: the legacy documents (`APIVersions`, `APIGroupList`, `APIGroup`,
//! `APIResourceList`) and aggregated discovery (`APIGroupDiscoveryList`, v2 and v2beta1), built
//! from the built-in resources plus the custom resources of established CRDs.

use std::sync::Arc;

use maestro_api::resources::{self, ResourceInfo};
use serde_json::{Value, json};

use crate::registry::Resource;

/// A group with its served versions, preferred first.
#[derive(Debug, Clone)]
pub struct GroupVersions {
    pub name: String,
    pub versions: Vec<String>,
}

/// Every served resource, built-ins first.
pub fn all_resources(custom: &[Arc<Resource>]) -> Vec<Arc<Resource>> {
    resources::builtins()
        .iter()
        .map(Resource::builtin)
        .chain(custom.iter().cloned())
        .collect()
}

/// Groups in discovery order (core first), versions preferred first.
pub fn groups(all: &[Arc<Resource>]) -> Vec<GroupVersions> {
    let mut out: Vec<GroupVersions> = Vec::new();
    for r in all {
        let info = &r.info;
        match out.iter_mut().find(|g| g.name == info.group) {
            Some(g) => {
                if !g.versions.contains(&info.version) {
                    g.versions.push(info.version.clone());
                }
            }
            None => out.push(GroupVersions {
                name: info.group.clone(),
                versions: vec![info.version.clone()],
            }),
        }
    }
    out
}

struct Sub {
    name: &'static str,
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    verbs: &'static [&'static str],
}

/// What each subresource answers with and allows.
fn subresources(info: &ResourceInfo) -> Vec<Sub> {
    let mut subs = Vec::new();
    if info.status_subresource {
        subs.push(Sub {
            name: "status",
            group: "",
            version: "",
            kind: "",
            verbs: &["get", "patch", "update"],
        });
    }
    if info.scale.is_some() {
        subs.push(Sub {
            name: "scale",
            group: "autoscaling",
            version: "v1",
            kind: "Scale",
            verbs: &["get", "patch", "update"],
        });
    }
    for extra in &info.extra_subresources {
        let sub = match extra.as_str() {
            "finalize" => Sub {
                name: "finalize",
                group: "",
                version: "",
                kind: "",
                verbs: &["update"],
            },
            "binding" => Sub {
                name: "binding",
                group: "",
                version: "v1",
                kind: "Binding",
                verbs: &["create"],
            },
            "eviction" => Sub {
                name: "eviction",
                group: "policy",
                version: "v1",
                kind: "Eviction",
                verbs: &["create"],
            },
            "log" => Sub {
                name: "log",
                group: "",
                version: "v1",
                kind: "Pod",
                verbs: &["get"],
            },
            "exec" => Sub {
                name: "exec",
                group: "",
                version: "v1",
                kind: "PodExecOptions",
                verbs: &["create", "get"],
            },
            "attach" => Sub {
                name: "attach",
                group: "",
                version: "v1",
                kind: "PodAttachOptions",
                verbs: &["create", "get"],
            },
            "portforward" => Sub {
                name: "portforward",
                group: "",
                version: "v1",
                kind: "PodPortForwardOptions",
                verbs: &["create", "get"],
            },
            "proxy" => Sub {
                name: "proxy",
                group: "",
                version: "v1",
                kind: if info.kind == "Pod" {
                    "PodProxyOptions"
                } else if info.kind == "Node" {
                    "NodeProxyOptions"
                } else {
                    "ServiceProxyOptions"
                },
                verbs: &["create", "delete", "get", "patch", "update"],
            },
            "ephemeralcontainers" => Sub {
                name: "ephemeralcontainers",
                group: "",
                version: "",
                kind: "",
                verbs: &["get", "patch", "update"],
            },
            "resize" => Sub {
                name: "resize",
                group: "",
                version: "",
                kind: "",
                verbs: &["get", "patch", "update"],
            },
            "token" => Sub {
                name: "token",
                group: "authentication.k8s.io",
                version: "v1",
                kind: "TokenRequest",
                verbs: &["create"],
            },
            _ => continue,
        };
        subs.push(sub);
    }
    subs
}

/// `/api`
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

fn group_json(g: &GroupVersions) -> Value {
    let versions: Vec<Value> = g
        .versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{}/{v}", g.name), "version": v}))
        .collect();
    json!({
        "name": g.name,
        "versions": versions,
        "preferredVersion": versions[0].clone(),
    })
}

/// `/apis`
pub fn group_list(groups: &[GroupVersions]) -> Value {
    let items: Vec<Value> = groups
        .iter()
        .filter(|g| !g.name.is_empty())
        .map(group_json)
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": items})
}

/// `/apis/{group}`
pub fn group(g: &GroupVersions) -> Value {
    let mut value = group_json(g);
    value["kind"] = json!("APIGroup");
    value["apiVersion"] = json!("v1");
    value
}

/// `/api/v1` or `/apis/{group}/{version}`
pub fn resource_list(all: &[Arc<Resource>], group: &str, version: &str) -> Option<Value> {
    let mut list = Vec::new();
    for r in all
        .iter()
        .filter(|r| r.info.group == group && r.info.version == version)
    {
        let info = &r.info;
        let mut entry = json!({
            "name": info.plural,
            "singularName": info.singular,
            "namespaced": info.namespaced(),
            "kind": info.kind,
            "verbs": info.verbs(),
        });
        if !info.short_names.is_empty() {
            entry["shortNames"] = json!(info.short_names);
        }
        if !info.categories.is_empty() {
            entry["categories"] = json!(info.categories);
        }
        list.push(entry);
        for sub in subresources(info) {
            let mut entry = json!({
                "name": format!("{}/{}", info.plural, sub.name),
                "singularName": "",
                "namespaced": info.namespaced(),
                "kind": if sub.kind.is_empty() { info.kind.as_str() } else { sub.kind },
                "verbs": sub.verbs,
            });
            if !sub.group.is_empty() || !sub.version.is_empty() {
                entry["group"] = json!(sub.group);
                entry["version"] = json!(sub.version);
            }
            list.push(entry);
        }
    }
    if list.is_empty() {
        return None;
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": list}),
    )
}

/// Aggregated discovery for `/api` (core only) or `/apis` (every other group).
pub fn aggregated(all: &[Arc<Resource>], core: bool, version: &str) -> Value {
    let mut items = Vec::new();
    for g in groups(all).iter().filter(|g| g.name.is_empty() == core) {
        let mut versions = Vec::new();
        for v in &g.versions {
            let mut resources = Vec::new();
            for r in all
                .iter()
                .filter(|r| r.info.group == g.name && &r.info.version == v)
            {
                let info = &r.info;
                let subs: Vec<Value> = subresources(info)
                    .iter()
                    .map(|sub| {
                        let (sg, sv, sk) = if sub.kind.is_empty() {
                            (info.group.as_str(), info.version.as_str(), info.kind.as_str())
                        } else if sub.version.is_empty() {
                            (info.group.as_str(), info.version.as_str(), sub.kind)
                        } else {
                            (sub.group, sub.version, sub.kind)
                        };
                        json!({"subresource": sub.name, "responseKind": {"group": sg, "version": sv, "kind": sk}, "verbs": sub.verbs})
                    })
                    .collect();
                let mut entry = json!({
                    "resource": info.plural,
                    "responseKind": {"group": info.group, "version": info.version, "kind": info.kind},
                    "scope": if info.namespaced() { "Namespaced" } else { "Cluster" },
                    "singularResource": info.singular,
                    "verbs": info.verbs(),
                });
                if !info.short_names.is_empty() {
                    entry["shortNames"] = json!(info.short_names);
                }
                if !info.categories.is_empty() {
                    entry["categories"] = json!(info.categories);
                }
                if !subs.is_empty() {
                    entry["subresources"] = json!(subs);
                }
                resources.push(entry);
            }
            versions.push(json!({"version": v, "resources": resources, "freshness": "Current"}));
        }
        items.push(
            json!({"metadata": {"name": g.name, "creationTimestamp": null}, "versions": versions}),
        );
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("apidiscovery.k8s.io/{version}"),
        "metadata": {},
        "items": items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_resource_list_has_subresources() {
        let all = all_resources(&[]);
        let list = resource_list(&all, "", "v1").unwrap();
        let names: Vec<&str> = list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"pods"));
        assert!(names.contains(&"pods/status"));
        assert!(names.contains(&"pods/eviction"));
        let apps = resource_list(&all, "apps", "v1").unwrap();
        let scale = apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == "deployments/scale")
            .unwrap();
        assert_eq!(
            (
                scale["group"].as_str(),
                scale["version"].as_str(),
                scale["kind"].as_str()
            ),
            (Some("autoscaling"), Some("v1"), Some("Scale"))
        );
        assert!(resource_list(&all, "nope", "v1").is_none());
    }

    #[test]
    fn groups_prefer_their_first_version() {
        let all = all_resources(&[]);
        let gs = groups(&all);
        assert_eq!(gs[0].name, "");
        let autoscaling = gs.iter().find(|g| g.name == "autoscaling").unwrap();
        assert_eq!(autoscaling.versions, vec!["v2", "v1"]);
        let list = group_list(&gs);
        assert!(
            list["groups"]
                .as_array()
                .unwrap()
                .iter()
                .all(|g| g["name"] != "")
        );
        let agg = aggregated(&all, false, "v2");
        assert_eq!(agg["apiVersion"], "apidiscovery.k8s.io/v2");
        let core = aggregated(&all, true, "v2");
        assert_eq!(core["items"].as_array().unwrap().len(), 1);
    }
}
