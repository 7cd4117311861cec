//! Reading a request: the URL path into group/version/namespace/resource/name/subresource, the
//! query into typed options, and the media types of the body and of the wanted answer.

use std::collections::HashMap;

use maestro_api::selector::{FieldSelector, LabelSelector};
use maestro_api::{ApiError, Cause};
use serde_json::Value;

use crate::registry::{DeleteOptions, FieldValidation, ListOptions, Propagation, WriteOptions};

/// Where a request points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`
    ResourceList { group: String, version: String },
    /// A resource path.
    Resource(ResourcePath),
    /// Anything else (`/version`, `/healthz`, `/openapi/...`): handled by name.
    Other(String),
}

/// `/api[s]/{group}/{version}/[namespaces/{ns}/]{resource}[/{name}[/{subresource}]]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
    /// The deprecated `/watch/` path prefix was used.
    pub watch_prefix: bool,
}

/// Parse a request path (without the query).
pub fn parse_path(path: &str) -> Target {
    let trimmed = path.trim_end_matches('/');
    let parts: Vec<&str> = trimmed.split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        ["api"] => Target::CoreVersions,
        ["apis"] => Target::Groups,
        ["api", version] => Target::ResourceList {
            group: String::new(),
            version: version.to_string(),
        },
        ["apis", group] => Target::Group(group.to_string()),
        ["apis", group, version] => Target::ResourceList {
            group: group.to_string(),
            version: version.to_string(),
        },
        ["api", version, rest @ ..] => {
            resource_path("", version, rest).unwrap_or_else(|| Target::Other(trimmed.to_string()))
        }
        ["apis", group, version, rest @ ..] => resource_path(group, version, rest)
            .unwrap_or_else(|| Target::Other(trimmed.to_string())),
        _ => Target::Other(if trimmed.is_empty() {
            "/".to_string()
        } else {
            trimmed.to_string()
        }),
    }
}

fn resource_path(group: &str, version: &str, rest: &[&str]) -> Option<Target> {
    let (watch_prefix, rest) = match rest {
        ["watch", tail @ ..] => (true, tail),
        _ => (false, rest),
    };
    let decode = |s: &str| percent_decode(s);
    let mut path = ResourcePath {
        group: group.to_string(),
        version: version.to_string(),
        namespace: None,
        resource: String::new(),
        name: None,
        subresource: None,
        watch_prefix,
    };
    match rest {
        // `/namespaces/{name}/status|finalize` is a subresource of the namespace itself.
        ["namespaces", name, sub @ ("status" | "finalize")] if group.is_empty() => {
            path.resource = "namespaces".into();
            path.name = Some(decode(name));
            path.subresource = Some(sub.to_string());
        }
        ["namespaces", ns, resource, tail @ ..] => {
            path.namespace = Some(decode(ns));
            path.resource = resource.to_string();
            match tail {
                [] => {}
                [name] => path.name = Some(decode(name)),
                [name, sub] => {
                    path.name = Some(decode(name));
                    path.subresource = Some(sub.to_string());
                }
                _ => return None,
            }
        }
        [resource] => path.resource = resource.to_string(),
        [resource, name] => {
            path.resource = resource.to_string();
            path.name = Some(decode(name));
        }
        [resource, name, sub] => {
            path.resource = resource.to_string();
            path.name = Some(decode(name));
            path.subresource = Some(sub.to_string());
        }
        _ => return None,
    }
    Some(Target::Resource(path))
}

fn percent_decode(s: &str) -> String {
    form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// The query string as a map (the last value of a repeated key wins), plus the field manager a
/// client without `fieldManager` gets.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub params: HashMap<String, String>,
    pub default_manager: Option<String>,
}

impl Query {
    pub fn parse(query: Option<&str>) -> Query {
        Query {
            params: form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
            default_manager: None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    pub fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1"))
    }

    /// `dryRun`; `options_kind` (CreateOptions, PatchOptions...) names the options in errors.
    pub fn dry_run(&self, options_kind: &str) -> Result<bool, ApiError> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(invalid_option(
                options_kind,
                Cause::not_supported("dryRun", &Value::String(other.to_string()), &["All"]),
            )),
        }
    }

    /// Options of a create, update or patch; `options_kind` is how Kubernetes names them.
    pub fn write_options(&self, options_kind: &str) -> Result<WriteOptions, ApiError> {
        let field_validation = match self.get("fieldValidation") {
            None | Some("") | Some("Warn") => FieldValidation::Warn,
            Some("Strict") => FieldValidation::Strict,
            Some("Ignore") => FieldValidation::Ignore,
            Some(other) => {
                return Err(invalid_option(
                    options_kind,
                    Cause::not_supported(
                        "fieldValidation",
                        &Value::String(other.to_string()),
                        &["Ignore", "Strict", "Warn"],
                    ),
                ));
            }
        };
        Ok(WriteOptions {
            dry_run: self.dry_run(options_kind)?,
            field_validation,
            field_manager: self.get("fieldManager").map(str::to_string),
            duplicate_fields: Vec::new(),
            manager: self.default_manager.clone(),
            apply: false,
        })
    }

    pub fn list_options(&self) -> Result<ListOptions, ApiError> {
        let labels = LabelSelector::parse(self.get("labelSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
        let fields = FieldSelector::parse(self.get("fieldSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        Ok(ListOptions { labels, fields })
    }

    /// Delete options from the query (the body's DeleteOptions override them).
    pub fn delete_options(&self) -> Result<DeleteOptions, ApiError> {
        let mut opts = DeleteOptions {
            dry_run: self.dry_run("DeleteOptions")?,
            ..Default::default()
        };
        if let Some(p) = self.get("propagationPolicy") {
            opts.propagation = Some(parse_propagation(p)?);
        }
        if let Some(orphan) = self.get("orphanDependents") {
            opts.propagation = Some(if orphan == "true" {
                Propagation::Orphan
            } else {
                Propagation::Background
            });
        }
        if let Some(g) = self.get("gracePeriodSeconds") {
            opts.grace_period_seconds =
                Some(g.parse().map_err(|_| {
                    ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}"))
                })?);
        }
        Ok(opts)
    }
}

pub fn parse_propagation(p: &str) -> Result<Propagation, ApiError> {
    match p {
        "Background" => Ok(Propagation::Background),
        "Foreground" => Ok(Propagation::Foreground),
        "Orphan" => Ok(Propagation::Orphan),
        other => Err(invalid_option(
            "DeleteOptions",
            Cause::not_supported(
                "propagationPolicy",
                &Value::String(other.to_string()),
                &["Foreground", "Background", "Orphan", "nil"],
            ),
        )),
    }
}

/// A 422 about request options, worded as Kubernetes words it
/// (`CreateOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: ...`).
pub fn invalid_option(options_kind: &str, cause: Cause) -> ApiError {
    ApiError::invalid("meta.k8s.io", options_kind, "", vec![cause])
}

/// What representation the client wants back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Json,
    Yaml,
    Table,
    PartialObjectMetadata,
    PartialObjectMetadataList,
}

/// Read the Accept header. Protobuf-only clients get JSON (clients accept it).
pub fn wanted(accept: Option<&str>) -> Wanted {
    let Some(accept) = accept else {
        return Wanted::Json;
    };
    for part in accept.split(',') {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        let media = params[0];
        let has = |p: &str| params.contains(&p);
        let is_meta = has("g=meta.k8s.io") && (has("v=v1") || has("v=v1beta1"));
        if media == "application/json" && is_meta {
            if has("as=Table") {
                return Wanted::Table;
            }
            if has("as=PartialObjectMetadataList") {
                return Wanted::PartialObjectMetadataList;
            }
            if has("as=PartialObjectMetadata") {
                return Wanted::PartialObjectMetadata;
            }
            continue;
        }
        if media.starts_with("application/json") || media == "*/*" || media == "application/*" {
            return Wanted::Json;
        }
        if media == "application/yaml" {
            return Wanted::Yaml;
        }
    }
    Wanted::Json
}

/// Which version of aggregated discovery the client asked for, if any.
pub fn wanted_discovery(accept: Option<&str>) -> Option<&'static str> {
    let accept = accept?;
    for part in accept.split(',') {
        let params: Vec<&str> = part.split(';').map(str::trim).collect();
        let has = |p: &str| params.contains(&p);
        if params[0] == "application/json"
            && has("g=apidiscovery.k8s.io")
            && has("as=APIGroupDiscoveryList")
        {
            if has("v=v2") {
                return Some("v2");
            }
            if has("v=v2beta1") {
                return Some("v2beta1");
            }
        }
        if params[0] == "application/json" && params.len() == 1 {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(path: &str) -> ResourcePath {
        match parse_path(path) {
            Target::Resource(r) => r,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn paths() {
        assert_eq!(parse_path("/api/"), Target::CoreVersions);
        assert_eq!(
            parse_path("/apis/apps/v1"),
            Target::ResourceList {
                group: "apps".into(),
                version: "v1".into()
            }
        );
        let p = res("/api/v1/namespaces/default/pods/web/log");
        assert_eq!(
            (
                p.namespace.as_deref(),
                p.resource.as_str(),
                p.name.as_deref(),
                p.subresource.as_deref()
            ),
            (Some("default"), "pods", Some("web"), Some("log"))
        );
        let ns = res("/api/v1/namespaces/default");
        assert_eq!(
            (ns.namespace, ns.resource.as_str(), ns.name.as_deref()),
            (None, "namespaces", Some("default"))
        );
        let fin = res("/api/v1/namespaces/x/finalize");
        assert_eq!(
            (
                fin.resource.as_str(),
                fin.name.as_deref(),
                fin.subresource.as_deref()
            ),
            ("namespaces", Some("x"), Some("finalize"))
        );
        let list = res("/api/v1/namespaces/x/configmaps");
        assert_eq!(
            (list.namespace.as_deref(), list.resource.as_str(), list.name),
            (Some("x"), "configmaps", None)
        );
        let all = res("/apis/apps/v1/deployments");
        assert_eq!(
            (all.namespace, all.resource.as_str()),
            (None, "deployments")
        );
        let w = res("/api/v1/watch/namespaces/x/pods");
        assert!(w.watch_prefix);
        assert_eq!(parse_path("/version/"), Target::Other("/version".into()));
    }

    #[test]
    fn accept_headers() {
        assert_eq!(
            wanted(Some(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            )),
            Wanted::Table
        );
        assert_eq!(
            wanted(Some("application/vnd.kubernetes.protobuf,application/json")),
            Wanted::Json
        );
        assert_eq!(wanted(None), Wanted::Json);
        assert_eq!(
            wanted_discovery(Some(
                "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
            )),
            Some("v2")
        );
        assert_eq!(wanted_discovery(Some("application/json, */*")), None);
    }

    #[test]
    fn queries() {
        let q = Query::parse(Some(
            "labelSelector=app%3Dweb&fieldSelector=metadata.name%3Dx&dryRun=All&fieldValidation=Strict",
        ));
        let list = q.list_options().unwrap();
        assert_eq!(list.labels.to_string(), "app=web");
        assert_eq!(list.fields.exact("metadata.name"), Some("x"));
        let w = q.write_options("CreateOptions").unwrap();
        assert!(w.dry_run);
        assert_eq!(w.field_validation, FieldValidation::Strict);
        let err = Query::parse(Some("dryRun=Some"))
            .dry_run("CreateOptions")
            .unwrap_err();
        assert_eq!(err.code, 422);
        assert_eq!(
            err.message,
            "CreateOptions.meta.k8s.io \"\" is invalid: dryRun: Unsupported value: \"Some\": supported values: \"All\""
        );
    }
}
