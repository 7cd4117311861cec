//! A pod's host-side preparation and its undoing: the per-pod directory, the volumes (emptyDir
//! on disk or tmpfs, hostPath with its type checks, configMap, secret, downwardAPI and projected
//! files including service account tokens), and the generated /etc files.
//!
//! ```text
//! <data>/pods/<uid>/
//!   volumes/<name>/           one directory per volume (a tmpfs mount for emptyDir with
//!                             medium: Memory, and for secret, downwardAPI and projected)
//!   etc/{hosts,hostname,resolv.conf}
//!   containers/<name>/termination-log.<attempt>
//! ```
//!
//! Projected files are written with [`crate::volumes::write_atomic`] and rewritten when their
//! content changes ([`Volumes::refresh`]), so running containers see configMap and secret
//! updates.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Volume};
use kube::Client;
use kube::api::{Api, PostParams};
use maestro_api::quantity;
use serde_json::{Value, json};

use crate::local_path;
use crate::volumes::{self, File};

/// One volume as the containers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostVolume {
    pub path: PathBuf,
    /// configMap, secret, downwardAPI and projected volumes are always mounted read-only.
    pub read_only: bool,
}

/// Why a volume could not be set up: the pod waits in ContainerCreating with a FailedMount
/// event carrying this message, and the worker retries.
#[derive(Debug, Clone, thiserror::Error)]
#[error("MountVolume.SetUp failed for volume \"{volume}\" : {message}")]
pub struct MountError {
    pub volume: String,
    pub message: String,
}

fn mount_error(volume: &str, message: impl Into<String>) -> MountError {
    MountError {
        volume: volume.to_string(),
        message: message.into(),
    }
}

/// The pod's directory on the node.
pub fn pod_dir(data_dir: &Path, uid: &str) -> PathBuf {
    data_dir.join("pods").join(uid)
}

/// A cached service account token and when to ask for a new one.
#[derive(Debug, Clone)]
struct Token {
    token: String,
    refresh_at: Instant,
}

/// The pod's prepared volumes, kept by the worker for refreshes and teardown.
#[derive(Debug, Default)]
pub struct Volumes {
    pub host: HashMap<String, HostVolume>,
    /// Last files written per projected volume, to rewrite only on change.
    written: HashMap<String, Vec<File>>,
    tokens: HashMap<(String, String, i64), Token>,
}

/// Data of a configMap (`data` and `binaryData`), `None` if it does not exist.
pub async fn config_map(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, kube::Error> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    Ok(api.get_opt(name).await?.map(|cm| {
        let mut data: BTreeMap<String, Vec<u8>> = cm
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.into_bytes()))
            .collect();
        for (k, v) in cm.binary_data.unwrap_or_default() {
            data.insert(k, v.0);
        }
        data
    }))
}

/// Data of a secret (`data` and `stringData` as stored), `None` if it does not exist.
pub async fn secret(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, Vec<u8>>>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    Ok(api.get_opt(name).await?.map(|s| {
        let mut data: BTreeMap<String, Vec<u8>> = s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect();
        for (k, v) in s.string_data.unwrap_or_default() {
            data.insert(k, v.into_bytes());
        }
        data
    }))
}

/// The files of one configMap or secret source: its keys projected as `source` (its `items`)
/// asks; none when the object is missing and the source optional; otherwise an error naming the
/// missing object as the kubelet words it (`configmap "x" not found`).
fn source_files(
    volume: &str,
    (kind, object): (&str, &str),
    data: Option<BTreeMap<String, Vec<u8>>>,
    optional: Option<bool>,
    source: &impl serde::Serialize,
    default_mode: u32,
) -> Result<Vec<File>, MountError> {
    match data {
        Some(data) => {
            let raw = serde_json::to_value(source).unwrap_or_default();
            volumes::project_keys(&raw, &data, default_mode)
                .map_err(|e| mount_error(volume, e.to_string()))
        }
        None if optional == Some(true) => Ok(Vec::new()),
        None => Err(mount_error(
            volume,
            format!("{kind} \"{object}\" not found"),
        )),
    }
}

fn mode_of(v: Option<i32>, default: u32) -> u32 {
    v.map_or(default, |m| m as u32)
}

/// What the worker passes to volume setup.
pub struct VolumeContext<'a> {
    pub client: &'a Client,
    pub pod: &'a Pod,
    /// The pod as JSON with this node's podIP/hostIP filled in (downward API).
    pub pod_json: &'a Value,
    pub pod_dir: &'a Path,
    pub node_cpu_millis: u64,
    pub node_memory_bytes: u64,
    /// Where the local-path provisioner's volumes of this node live.
    pub storage_dir: &'a Path,
}

impl Volumes {
    /// Sets up every volume of the pod. Idempotent: an agent restart calls it again for a
    /// running pod and gets the same paths.
    pub async fn prepare(&mut self, ctx: &VolumeContext<'_>) -> Result<(), MountError> {
        let spec_volumes = ctx
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        let namespace = ctx.pod.metadata.namespace.as_deref().unwrap_or("default");
        for volume in &spec_volumes {
            let dir = ctx.pod_dir.join("volumes").join(&volume.name);
            let host = match &volume.persistent_volume_claim {
                Some(claim) => {
                    let bound =
                        local_path::claim_volume(ctx.client, namespace, volume, ctx.storage_dir)
                            .await
                            .map_err(|m| mount_error(&volume.name, m))?;
                    let mut host = prepare_one(&bound, &dir)?;
                    host.read_only = claim.read_only == Some(true);
                    host
                }
                None => prepare_one(volume, &dir)?,
            };
            self.host.insert(volume.name.clone(), host);
        }
        self.refresh(ctx).await
    }

    /// Writes the files of configMap, secret, downwardAPI and projected volumes whose content
    /// changed since the last write (or that were never written).
    pub async fn refresh(&mut self, ctx: &VolumeContext<'_>) -> Result<(), MountError> {
        let spec_volumes = ctx
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        let namespace = ctx.pod.metadata.namespace.as_deref().unwrap_or("default");
        for volume in &spec_volumes {
            let Some(files) = self.files_of(volume, namespace, ctx).await? else {
                continue;
            };
            if self.written.get(&volume.name) == Some(&files) {
                continue;
            }
            let dir = ctx.pod_dir.join("volumes").join(&volume.name);
            let write_dir = dir.clone();
            let to_write = files.clone();
            tokio::task::spawn_blocking(move || volumes::write_atomic(&write_dir, &to_write))
                .await
                .map_err(|e| mount_error(&volume.name, e.to_string()))?
                .map_err(|e| mount_error(&volume.name, e.to_string()))?;
            self.written.insert(volume.name.clone(), files);
        }
        Ok(())
    }

    /// The files a projected-style volume should hold now; `None` for other kinds.
    async fn files_of(
        &mut self,
        volume: &Volume,
        namespace: &str,
        ctx: &VolumeContext<'_>,
    ) -> Result<Option<Vec<File>>, MountError> {
        let name = &volume.name;
        let api_error = |e: kube::Error| mount_error(name, e.to_string());
        if let Some(source) = &volume.config_map {
            let data = config_map(ctx.client, namespace, &source.name)
                .await
                .map_err(api_error)?;
            return source_files(
                name,
                ("configmap", &source.name),
                data,
                source.optional,
                source,
                mode_of(source.default_mode, 0o644),
            )
            .map(Some);
        }
        if let Some(source) = &volume.secret {
            let secret_name = source.secret_name.clone().unwrap_or_default();
            let data = secret(ctx.client, namespace, &secret_name)
                .await
                .map_err(api_error)?;
            return source_files(
                name,
                ("secret", &secret_name),
                data,
                source.optional,
                source,
                mode_of(source.default_mode, 0o644),
            )
            .map(Some);
        }
        if let Some(source) = &volume.downward_api {
            let raw = serde_json::to_value(source).unwrap_or_default();
            return downward_files(&raw, mode_of(source.default_mode, 0o644), ctx)
                .map(Some)
                .map_err(|m| mount_error(name, m));
        }
        if let Some(source) = &volume.projected {
            let default_mode = mode_of(source.default_mode, 0o644);
            let mut files = Vec::new();
            for s in source.sources.iter().flatten() {
                if let Some(cm) = &s.config_map {
                    let data = config_map(ctx.client, namespace, &cm.name)
                        .await
                        .map_err(api_error)?;
                    files.extend(source_files(
                        name,
                        ("configmap", &cm.name),
                        data,
                        cm.optional,
                        cm,
                        default_mode,
                    )?);
                }
                if let Some(sec) = &s.secret {
                    let data = secret(ctx.client, namespace, &sec.name)
                        .await
                        .map_err(api_error)?;
                    files.extend(source_files(
                        name,
                        ("secret", &sec.name),
                        data,
                        sec.optional,
                        sec,
                        default_mode,
                    )?);
                }
                if let Some(d) = &s.downward_api {
                    let raw = serde_json::to_value(d).unwrap_or_default();
                    files.extend(
                        downward_files(&raw, default_mode, ctx)
                            .map_err(|m| mount_error(name, m))?,
                    );
                }
                if let Some(t) = &s.service_account_token {
                    let audience = t.audience.clone().unwrap_or_default();
                    let expiration = t.expiration_seconds.unwrap_or(3600).max(600);
                    let token = self
                        .token(ctx, namespace, &audience, expiration)
                        .await
                        .map_err(|m| mount_error(name, m))?;
                    files.push(File {
                        path: t.path.clone(),
                        content: token.into_bytes(),
                        mode: default_mode,
                    });
                }
            }
            return Ok(Some(files));
        }
        Ok(None)
    }

    /// A token for the pod's service account, bound to the pod; requested again after 80% of
    /// its lifetime, as the kubelet does.
    async fn token(
        &mut self,
        ctx: &VolumeContext<'_>,
        namespace: &str,
        audience: &str,
        expiration: i64,
    ) -> Result<String, String> {
        let account = ctx
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into());
        let key = (account.clone(), audience.to_string(), expiration);
        if let Some(t) = self.tokens.get(&key)
            && Instant::now() < t.refresh_at
        {
            return Ok(t.token.clone());
        }
        let mut spec = json!({
            "expirationSeconds": expiration,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                "name": ctx.pod.metadata.name, "uid": ctx.pod.metadata.uid},
        });
        if !audience.is_empty() {
            spec["audiences"] = json!([audience]);
        }
        let body =
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec});
        let api: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(ctx.client.clone(), namespace);
        let answer: Value = api
            .create_subresource(
                "token",
                &account,
                &PostParams::default(),
                &serde_json::to_vec(&body).map_err(|e| e.to_string())?,
            )
            .await
            .map_err(|e| format!("failed to fetch token: {e}"))?;
        let token = answer
            .pointer("/status/token")
            .and_then(Value::as_str)
            .ok_or("failed to fetch token: no token in the answer")?
            .to_string();
        self.tokens.insert(
            key,
            Token {
                token: token.clone(),
                refresh_at: Instant::now() + Duration::from_secs((expiration as u64) * 8 / 10),
            },
        );
        Ok(token)
    }
}

/// The files of a downwardAPI source (`items` of fieldRef / resourceFieldRef).
fn downward_files(
    source: &Value,
    default_mode: u32,
    ctx: &VolumeContext<'_>,
) -> Result<Vec<File>, String> {
    let mut files = Vec::new();
    for item in source
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let path = item["path"].as_str().unwrap_or_default().to_string();
        let mode = item
            .get("mode")
            .and_then(Value::as_u64)
            .map_or(default_mode, |m| m as u32);
        let content = if let Some(field) =
            item.pointer("/fieldRef/fieldPath").and_then(Value::as_str)
        {
            volumes::field_ref(ctx.pod_json, field).map_err(|e| e.to_string())?
        } else if let Some(r) = item.get("resourceFieldRef") {
            let container_name = r["containerName"].as_str().unwrap_or_default();
            let container = ctx
                .pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == container_name))
                .ok_or_else(|| format!("container {container_name:?} not found"))?;
            let req = super::container::resource_requirements(container);
            let resource = r["resource"].as_str().unwrap_or_default();
            let divisor = r["divisor"].as_str().unwrap_or("1");
            let unit = quantity::milli(divisor).unwrap_or(1000).max(1) as u128;
            match resource {
                "limits.cpu" => (req.cpu_limit_millis.unwrap_or(ctx.node_cpu_millis) as u128)
                    .div_ceil(unit)
                    .max(1)
                    .to_string(),
                "requests.cpu" => (req.cpu_request_millis.unwrap_or(0) as u128)
                    .div_ceil(unit)
                    .to_string(),
                "limits.memory" => {
                    ((req.memory_limit_bytes.unwrap_or(ctx.node_memory_bytes) as u128) * 1000)
                        .div_ceil(unit)
                        .to_string()
                }
                "requests.memory" => ((req.memory_request_bytes.unwrap_or(0) as u128) * 1000)
                    .div_ceil(unit)
                    .to_string(),
                other => return Err(format!("unsupported resourceFieldRef resource {other:?}")),
            }
        } else {
            continue;
        };
        files.push(File {
            path,
            content: content.into_bytes(),
            mode,
        });
    }
    Ok(files)
}

/// Mounts a tmpfs with `options` (`mode=...,size=...`) on `target`.
fn mount_tmpfs(target: &Path, options: &str) -> Result<(), String> {
    use nix::mount::{MsFlags, mount};
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(options),
    )
    .map_err(|e| format!("mounting a tmpfs on {}: {e}", target.display()))
}

fn is_mount_point(path: &Path) -> bool {
    maestro_oci::runtime::is_mount_point(path)
}

/// The host side of one volume (files of projected-style volumes come later, from `refresh`).
fn prepare_one(volume: &Volume, dir: &Path) -> Result<HostVolume, MountError> {
    let name = &volume.name;
    let io = |what: &str, e: std::io::Error| mount_error(name, format!("{what}: {e}"));
    if let Some(empty) = &volume.empty_dir {
        std::fs::create_dir_all(dir).map_err(|e| io("creating the directory", e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| io("setting permissions", e))?;
        if empty.medium.as_deref() == Some("Memory") && !is_mount_point(dir) {
            let size = empty
                .size_limit
                .as_ref()
                .and_then(|q| quantity::units_ceil(&q.0))
                .filter(|s| *s > 0);
            let options = match size {
                Some(bytes) => format!("mode=1777,size={bytes}"),
                None => "mode=1777".to_string(),
            };
            mount_tmpfs(dir, &options).map_err(|m| mount_error(name, m))?;
        }
        return Ok(HostVolume {
            path: dir.to_path_buf(),
            read_only: false,
        });
    }
    if let Some(host) = &volume.host_path {
        let path = PathBuf::from(&host.path);
        check_host_path(&path, host.type_.as_deref().unwrap_or(""))
            .map_err(|m| mount_error(name, m))?;
        return Ok(HostVolume {
            path,
            read_only: false,
        });
    }
    if volume.config_map.is_some()
        || volume.secret.is_some()
        || volume.downward_api.is_some()
        || volume.projected.is_some()
    {
        std::fs::create_dir_all(dir).map_err(|e| io("creating the directory", e))?;
        // As the kubelet does, secrets, tokens and pod metadata live in memory only: they never
        // reach the node's disk and vanish with the pod. ConfigMaps stay on disk.
        if volume.config_map.is_none() && !is_mount_point(dir) {
            mount_tmpfs(dir, "mode=0755").map_err(|m| mount_error(name, m))?;
        }
        return Ok(HostVolume {
            path: dir.to_path_buf(),
            read_only: true,
        });
    }
    Err(mount_error(
        name,
        "volume type not supported by this node (supported: emptyDir, hostPath, configMap, \
         secret, downwardAPI, projected, persistentVolumeClaim)",
    ))
}

/// hostPath `type` checks, creating what `...OrCreate` asks for.
fn check_host_path(path: &Path, kind: &str) -> Result<(), String> {
    let meta = std::fs::metadata(path);
    let shown = path.display();
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => {
            if meta.is_err() {
                std::fs::create_dir_all(path).map_err(|e| format!("creating {shown}: {e}"))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
                    .map_err(|e| e.to_string())?;
                return Ok(());
            }
            check_host_path(path, "Directory")
        }
        "Directory" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(format!(
                "hostPath type check failed: {shown} is not a directory"
            )),
            Err(_) => Err(format!(
                "hostPath type check failed: {shown} is not a directory"
            )),
        },
        "FileOrCreate" => {
            if meta.is_err() {
                std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(path)
                    .map_err(|e| format!("creating {shown}: {e}"))?;
                return Ok(());
            }
            check_host_path(path, "File")
        }
        "File" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            _ => Err(format!("hostPath type check failed: {shown} is not a file")),
        },
        "Socket" => match meta {
            Ok(m) if m.file_type().is_socket() => Ok(()),
            _ => Err(format!(
                "hostPath type check failed: {shown} is not a socket file"
            )),
        },
        "CharDevice" => match meta {
            Ok(m) if m.file_type().is_char_device() => Ok(()),
            _ => Err(format!(
                "hostPath type check failed: {shown} is not a character device"
            )),
        },
        "BlockDevice" => match meta {
            Ok(m) if m.file_type().is_block_device() => Ok(()),
            _ => Err(format!(
                "hostPath type check failed: {shown} is not a block device"
            )),
        },
        other => Err(format!("invalid hostPath type {other:?}")),
    }
}

/// Unmounts the pod's tmpfs volumes and removes its directory. Idempotent.
pub fn remove_pod_dir(dir: &Path) -> std::io::Result<()> {
    if let Ok(entries) = std::fs::read_dir(dir.join("volumes")) {
        for entry in entries.flatten() {
            let path = entry.path();
            if is_mount_point(&path) {
                use nix::mount::{MntFlags, umount2};
                // Busy (a process of the pod still inside): detach it instead.
                if umount2(&path, MntFlags::empty()).is_err() {
                    let _ = umount2(&path, MntFlags::MNT_DETACH);
                }
            }
        }
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The resolver setup of a pod from its `dnsPolicy` and `dnsConfig`: the cluster DNS when the
/// node knows one (ClusterFirst), otherwise the node's own resolv.conf (as the kubelet falls
/// back to Default when it has no cluster DNS).
pub fn dns_config(
    pod: &Pod,
    cluster_dns: &[IpAddr],
    cluster_domain: &str,
    host_resolv_conf: &str,
) -> maestro_net::pod_network::files::DnsConfig {
    use maestro_net::pod_network::files::{DnsConfig, DnsOption};
    let spec = pod.spec.as_ref();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let policy = spec
        .and_then(|s| s.dns_policy.clone())
        .unwrap_or_else(|| "ClusterFirst".into());
    let host_network = spec.and_then(|s| s.host_network) == Some(true);
    let host = || {
        let mut dns = DnsConfig::default();
        for line in host_resolv_conf.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => dns.nameservers.extend(words.map(String::from)),
                Some("search") => dns.searches = words.map(String::from).collect(),
                Some("options") => dns.options.extend(words.map(|o| match o.split_once(':') {
                    Some((n, v)) => DnsOption {
                        name: n.into(),
                        value: Some(v.into()),
                    },
                    None => DnsOption {
                        name: o.into(),
                        value: None,
                    },
                })),
                _ => {}
            }
        }
        dns
    };
    let mut dns = match policy.as_str() {
        "None" => DnsConfig::default(),
        "Default" => host(),
        "ClusterFirstWithHostNet" | "ClusterFirst"
            if !cluster_dns.is_empty()
                && (policy == "ClusterFirstWithHostNet" || !host_network) =>
        {
            DnsConfig::cluster_first(
                namespace,
                cluster_domain,
                cluster_dns.iter().map(|ip| ip.to_string()),
            )
        }
        _ => host(),
    };
    if let Some(extra) = spec.and_then(|s| s.dns_config.as_ref()) {
        for ns in extra.nameservers.iter().flatten() {
            if !dns.nameservers.contains(ns) {
                dns.nameservers.push(ns.clone());
            }
        }
        for s in extra.searches.iter().flatten() {
            if !dns.searches.contains(s) {
                dns.searches.push(s.clone());
            }
        }
        for o in extra.options.iter().flatten() {
            let name = o.name.clone().unwrap_or_default();
            dns.options.retain(|x| x.name != name);
            dns.options.push(DnsOption {
                name,
                value: o.value.clone(),
            });
        }
    }
    dns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_path_types() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("made");
        check_host_path(&sub, "DirectoryOrCreate").unwrap();
        assert!(sub.is_dir());
        check_host_path(&sub, "Directory").unwrap();
        let err = check_host_path(&sub, "File").unwrap_err();
        assert!(err.contains("is not a file"), "{err}");
        let file = dir.path().join("f");
        check_host_path(&file, "FileOrCreate").unwrap();
        assert!(file.is_file());
        assert!(check_host_path(&dir.path().join("nope"), "Directory").is_err());
        assert!(check_host_path(&file, "Socket").is_err());
        assert!(check_host_path(&file, "Weird").is_err());
    }

    #[test]
    fn dns_policies() {
        let pod = |spec: Value| -> Pod {
            let mut spec = spec;
            spec["containers"] = json!([{"name": "c"}]);
            serde_json::from_value(
                json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}),
            )
            .unwrap()
        };
        let host = "nameserver 192.0.2.53\nsearch example.org\noptions edns0\n";
        let dns: Vec<IpAddr> = vec!["10.43.0.10".parse().unwrap()];
        let cf = dns_config(&pod(json!({})), &dns, "cluster.local", host);
        assert_eq!(cf.nameservers, ["10.43.0.10"]);
        assert_eq!(cf.searches[0], "ns.svc.cluster.local");
        // No cluster DNS: the node's resolver, as the kubelet falls back.
        let fallback = dns_config(&pod(json!({})), &[], "cluster.local", host);
        assert_eq!(fallback.nameservers, ["192.0.2.53"]);
        assert_eq!(fallback.searches, ["example.org"]);
        let none = dns_config(
            &pod(
                json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": ["1.2.3.4"], "options": [{"name": "ndots", "value": "2"}]}}),
            ),
            &dns,
            "cluster.local",
            host,
        );
        assert_eq!(none.nameservers, ["1.2.3.4"]);
        assert_eq!(none.options[0].value.as_deref(), Some("2"));
        // Host network pods keep the node's resolver under ClusterFirst.
        let hn = dns_config(
            &pod(json!({"hostNetwork": true})),
            &dns,
            "cluster.local",
            host,
        );
        assert_eq!(hn.nameservers, ["192.0.2.53"]);
    }
}
