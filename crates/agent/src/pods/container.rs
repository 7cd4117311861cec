//! From a pod's container spec to the runtime's [`ContainerConfig`], with the kubelet's rules:
//! command and args merged with the image's entrypoint and cmd, `$(VAR)` expansion, the
//! environment from `env` and `envFrom` (configMap, secret, fieldRef and resourceFieldRef
//! values), the user from the security context or the image, capabilities, seccomp, read-only
//! root, the resources as cgroup values, and the volume mounts.
//!
//! Problems with the pod's own references (a missing configMap key, `runAsNonRoot` with a root
//! image) are [`ConfigError`]s with the kubelet's reason (`CreateContainerConfigError`): the
//! container waits with that reason and the worker retries.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, EnvVar, Pod, SecurityContext};
use maestro_api::quantity;
use maestro_oci::image::ImageConfig;
use maestro_oci::runtime::{
    ContainerConfig, Mount, ProcMount, Propagation, ResourceRequirements, SeccompProfile, Security,
    User,
};
use serde_json::Value;

use crate::volumes;

/// Why a container cannot be created from its spec, in the kubelet's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// `CreateContainerConfigError` (the pod's references), `CreateContainerError` (the spec
    /// cannot be turned into a process).
    pub reason: &'static str,
    pub message: String,
}

impl ConfigError {
    pub fn config(message: impl Into<String>) -> Self {
        ConfigError {
            reason: "CreateContainerConfigError",
            message: message.into(),
        }
    }

    pub fn create(message: impl Into<String>) -> Self {
        ConfigError {
            reason: "CreateContainerError",
            message: message.into(),
        }
    }
}

/// The data of the configMaps and secrets a pod refers to, fetched by the worker before the
/// container is built (`None`: the object does not exist).
#[derive(Debug, Default, Clone)]
pub struct References {
    pub config_maps: HashMap<String, Option<BTreeMap<String, Vec<u8>>>>,
    pub secrets: HashMap<String, Option<BTreeMap<String, Vec<u8>>>>,
}

impl References {
    /// Names of the configMaps and secrets the container's environment uses.
    pub fn wanted(container: &Container) -> (Vec<String>, Vec<String>) {
        let (mut maps, mut secrets) = (Vec::new(), Vec::new());
        for from in container.env_from.iter().flatten() {
            if let Some(r) = &from.config_map_ref {
                maps.push(r.name.clone());
            }
            if let Some(r) = &from.secret_ref {
                secrets.push(r.name.clone());
            }
        }
        for var in container.env.iter().flatten() {
            if let Some(from) = &var.value_from {
                if let Some(r) = &from.config_map_key_ref {
                    maps.push(r.name.clone());
                }
                if let Some(r) = &from.secret_key_ref {
                    secrets.push(r.name.clone());
                }
            }
        }
        maps.dedup();
        secrets.dedup();
        (maps, secrets)
    }
}

/// What the worker knows when it builds a container beyond the pod and the image.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub pod: &'a Pod,
    /// The pod as JSON with `status.podIP`/`hostIP` set to what this node assigned (fieldRefs).
    pub pod_json: &'a Value,
    pub image: &'a ImageConfig,
    /// The container's root filesystem (for users named in the image).
    pub rootfs: &'a Path,
    /// Volume name → host path and whether it is read-only by nature.
    pub volumes: &'a HashMap<String, super::setup::HostVolume>,
    pub references: &'a References,
    /// Node allocatable, for resourceFieldRefs of containers without limits.
    pub node_cpu_millis: u64,
    pub node_memory_bytes: u64,
}

/// The container's requests and limits in the runtime's units.
pub fn resource_requirements(container: &Container) -> ResourceRequirements {
    let get = |map: Option<
        &BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>,
    >,
               key: &str| {
        map.and_then(|m| m.get(key))
            .and_then(|q| quantity::milli(&q.0))
            .filter(|v| *v >= 0)
    };
    let resources = container.resources.as_ref();
    let requests = resources.and_then(|r| r.requests.as_ref());
    let limits = resources.and_then(|r| r.limits.as_ref());
    let bytes = |m: Option<i128>| m.map(|m| ((m + 999) / 1000) as u64);
    let mut r = ResourceRequirements {
        cpu_request_millis: get(requests, "cpu").map(|m| m as u64),
        cpu_limit_millis: get(limits, "cpu").map(|m| m as u64),
        memory_request_bytes: bytes(get(requests, "memory")),
        memory_limit_bytes: bytes(get(limits, "memory")),
    };
    // API defaulting: a limit without a request requests the limit.
    if r.cpu_request_millis.is_none() {
        r.cpu_request_millis = r.cpu_limit_millis;
    }
    if r.memory_request_bytes.is_none() {
        r.memory_request_bytes = r.memory_limit_bytes;
    }
    r
}

/// `$(VAR)` expansion as the kubelet does it: `$$` escapes, unknown references stay verbatim.
pub fn expand(input: &str, vars: &dyn Fn(&str) -> Option<String>) -> String {
    let bytes = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            match bytes[i + 1] {
                b'$' => {
                    out.push('$');
                    i += 2;
                    continue;
                }
                b'(' => {
                    if let Some(end) = input[i + 2..].find(')') {
                        let name = &input[i + 2..i + 2 + end];
                        match vars(name) {
                            Some(v) => out.push_str(&v),
                            None => out.push_str(&input[i..i + 3 + end]),
                        }
                        i += 3 + end;
                        continue;
                    }
                }
                _ => {}
            }
        }
        let ch = input[i..].chars().next().expect("in bounds");
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

fn key_data<'r>(
    objects: &'r HashMap<String, Option<BTreeMap<String, Vec<u8>>>>,
    name: &str,
) -> Option<&'r BTreeMap<String, Vec<u8>>> {
    objects.get(name).and_then(Option::as_ref)
}

/// A valid environment variable name (C_IDENTIFIER-ish, as the API validates envFrom keys).
fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn resource_field(
    container: &Container,
    resource: &str,
    divisor: Option<&str>,
    ctx: &Context<'_>,
) -> Result<String, ConfigError> {
    let r = resource_requirements(container);
    let (value, unit_milli): (u64, i128) = match resource {
        "limits.cpu" => (
            r.cpu_limit_millis.unwrap_or(ctx.node_cpu_millis),
            quantity::milli(divisor.unwrap_or("1")).unwrap_or(1000),
        ),
        "requests.cpu" => (
            r.cpu_request_millis.unwrap_or(0),
            quantity::milli(divisor.unwrap_or("1")).unwrap_or(1000),
        ),
        "limits.memory" => (
            r.memory_limit_bytes.unwrap_or(ctx.node_memory_bytes),
            quantity::milli(divisor.unwrap_or("1")).unwrap_or(1000) / 1000 * 1000,
        ),
        "requests.memory" => (
            r.memory_request_bytes.unwrap_or(0),
            quantity::milli(divisor.unwrap_or("1")).unwrap_or(1000) / 1000 * 1000,
        ),
        other => {
            return Err(ConfigError::config(format!(
                "unsupported resourceFieldRef resource {other:?}"
            )));
        }
    };
    let unit = unit_milli.max(1) as u128;
    // CPU values are in millis, memory in bytes; both rounded up to whole divisors.
    let scaled = if resource.ends_with(".cpu") {
        (value as u128).div_ceil(unit)
    } else {
        (value as u128 * 1000).div_ceil(unit)
    };
    Ok(scaled
        .max(if resource.ends_with(".cpu") { 1 } else { 0 })
        .to_string())
}

/// The container's environment (`envFrom`, then `env`), without the image's.
pub fn environment(
    container: &Container,
    ctx: &Context<'_>,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| match env
        .iter_mut()
        .find(|(key, _)| *key == k)
    {
        Some(entry) => entry.1 = v,
        None => env.push((k, v)),
    };
    let ns = ctx
        .pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (data, kind, name, optional) = if let Some(r) = &from.config_map_ref {
            (
                key_data(&ctx.references.config_maps, &r.name),
                "configmap",
                &r.name,
                r.optional == Some(true),
            )
        } else if let Some(r) = &from.secret_ref {
            (
                key_data(&ctx.references.secrets, &r.name),
                "secret",
                &r.name,
                r.optional == Some(true),
            )
        } else {
            continue;
        };
        let Some(data) = data else {
            if optional {
                continue;
            }
            return Err(ConfigError::config(format!("{kind} \"{name}\" not found")));
        };
        for (key, value) in data {
            let key = format!("{prefix}{key}");
            if valid_env_name(&key) {
                set(&mut env, key, String::from_utf8_lossy(value).into_owned());
            }
        }
    }
    for EnvVar {
        name,
        value,
        value_from,
    } in container.env.iter().flatten()
    {
        let resolved = match (value, value_from) {
            (_, Some(from)) => {
                if let Some(r) = &from.config_map_key_ref {
                    match key_data(&ctx.references.config_maps, &r.name) {
                        Some(data) => match data.get(&r.key) {
                            Some(v) => String::from_utf8_lossy(v).into_owned(),
                            None if r.optional == Some(true) => continue,
                            None => {
                                return Err(ConfigError::config(format!(
                                    "couldn't find key {} in ConfigMap {ns}/{}",
                                    r.key, r.name
                                )));
                            }
                        },
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(ConfigError::config(format!(
                                "configmap \"{}\" not found",
                                r.name
                            )));
                        }
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    match key_data(&ctx.references.secrets, &r.name) {
                        Some(data) => match data.get(&r.key) {
                            Some(v) => String::from_utf8_lossy(v).into_owned(),
                            None if r.optional == Some(true) => continue,
                            None => {
                                return Err(ConfigError::config(format!(
                                    "couldn't find key {} in Secret {ns}/{}",
                                    r.key, r.name
                                )));
                            }
                        },
                        None if r.optional == Some(true) => continue,
                        None => {
                            return Err(ConfigError::config(format!(
                                "secret \"{}\" not found",
                                r.name
                            )));
                        }
                    }
                } else if let Some(r) = &from.field_ref {
                    match r.field_path.as_str() {
                        "status.podIPs" => ctx
                            .pod_json
                            .pointer("/status/podIP")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        "status.hostIPs" => ctx
                            .pod_json
                            .pointer("/status/hostIP")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        path => volumes::field_ref(ctx.pod_json, path)
                            .map_err(|e| ConfigError::config(e.to_string()))?,
                    }
                } else if let Some(r) = &from.resource_field_ref {
                    let target = match r.container_name.as_deref() {
                        Some(n) if !n.is_empty() && n != container.name => ctx
                            .pod
                            .spec
                            .as_ref()
                            .and_then(|s| s.containers.iter().find(|c| c.name == n))
                            .ok_or_else(|| {
                                ConfigError::config(format!("container {n:?} not found"))
                            })?,
                        _ => container,
                    };
                    resource_field(
                        target,
                        &r.resource,
                        r.divisor.as_ref().map(|d| d.0.as_str()),
                        ctx,
                    )?
                } else {
                    String::new()
                }
            }
            (Some(v), None) => {
                let lookup = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
                expand(v, &lookup)
            }
            (None, None) => String::new(),
        };
        set(&mut env, name.clone(), resolved);
    }
    Ok(env)
}

/// The process: `command`/`args` over the image's entrypoint/cmd, expanded with `env`.
pub fn process_args(
    container: &Container,
    image: &ImageConfig,
    env: &[(String, String)],
) -> Result<Vec<String>, ConfigError> {
    let lookup = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
    let command = container.command.clone().unwrap_or_default();
    let args = container.args.clone().unwrap_or_default();
    let expanded =
        |list: Vec<String>| -> Vec<String> { list.iter().map(|a| expand(a, &lookup)).collect() };
    let mut argv = if !command.is_empty() {
        expanded(command.clone())
    } else {
        image.entrypoint.clone()
    };
    if !args.is_empty() {
        argv.extend(expanded(args));
    } else if command.is_empty() {
        argv.extend(image.cmd.iter().cloned());
    }
    if argv.is_empty() {
        return Err(ConfigError::create(
            "failed to generate container spec: no command specified",
        ));
    }
    Ok(argv)
}

/// Looks a user or group name up in the container's `/etc/passwd` or `/etc/group`.
fn lookup_id(rootfs: &Path, file: &str, name: &str) -> Option<(u32, Option<u32>)> {
    let text = std::fs::read_to_string(rootfs.join("etc").join(file)).ok()?;
    text.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.first() != Some(&name) || fields.len() < 3 {
            return None;
        }
        Some((
            fields[2].parse().ok()?,
            fields.get(3).and_then(|g| g.parse().ok()),
        ))
    })
}

/// The primary group of a uid from the container's `/etc/passwd` (0 when unknown).
fn primary_group(rootfs: &Path, uid: u32) -> u32 {
    std::fs::read_to_string(rootfs.join("etc/passwd"))
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                (f.len() > 3 && f[2].parse::<u32>().ok() == Some(uid))
                    .then(|| f[3].parse().ok())
                    .flatten()
            })
        })
        .unwrap_or(0)
}

/// The process identity: the security context's runAsUser/runAsGroup over the image's `User`.
pub fn user(
    pod: &Pod,
    security: Option<&SecurityContext>,
    image: &ImageConfig,
    rootfs: &Path,
) -> Result<User, ConfigError> {
    let pod_security = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let run_as_user = security
        .and_then(|s| s.run_as_user)
        .or_else(|| pod_security.and_then(|s| s.run_as_user));
    let run_as_group = security
        .and_then(|s| s.run_as_group)
        .or_else(|| pod_security.and_then(|s| s.run_as_group));
    let non_root = security
        .and_then(|s| s.run_as_non_root)
        .or_else(|| pod_security.and_then(|s| s.run_as_non_root))
        == Some(true);

    let (uid, image_gid) = match run_as_user {
        Some(uid) => (uid as u32, None),
        None => {
            let spec = image.user.clone().unwrap_or_default();
            let (user_part, group_part) = match spec.split_once(':') {
                Some((u, g)) => (u.to_string(), Some(g.to_string())),
                None => (spec.clone(), None),
            };
            let uid = if user_part.is_empty() {
                0
            } else if let Ok(n) = user_part.parse::<u32>() {
                n
            } else {
                if non_root {
                    return Err(ConfigError::config(format!(
                        "container has runAsNonRoot and image has non-numeric user ({user_part}), cannot verify user is non-root"
                    )));
                }
                lookup_id(rootfs, "passwd", &user_part)
                    .map(|(uid, _)| uid)
                    .ok_or_else(|| {
                        ConfigError::create(format!(
                            "unable to find user {user_part}: no matching entries in passwd file"
                        ))
                    })?
            };
            let gid = match group_part {
                Some(g) if !g.is_empty() => Some(match g.parse::<u32>() {
                    Ok(n) => n,
                    Err(_) => lookup_id(rootfs, "group", &g)
                        .map(|(gid, _)| gid)
                        .ok_or_else(|| {
                            ConfigError::create(format!(
                                "unable to find group {g}: no matching entries in group file"
                            ))
                        })?,
                }),
                _ => None,
            };
            (uid, gid)
        }
    };
    if non_root && uid == 0 {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        return Err(ConfigError::config(format!(
            "container has runAsNonRoot and image will run as root (pod: \"{pod_name}_{}({})\")",
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.uid.clone().unwrap_or_default()
        )));
    }
    let gid = run_as_group
        .map(|g| g as u32)
        .or(image_gid)
        .unwrap_or_else(|| primary_group(rootfs, uid));
    let mut additional: Vec<u32> = Vec::new();
    if let Some(ps) = pod_security {
        if let Some(fs_group) = ps.fs_group {
            additional.push(fs_group as u32);
        }
        for g in ps.supplemental_groups.iter().flatten() {
            additional.push(*g as u32);
        }
    }
    additional.sort_unstable();
    additional.dedup();
    Ok(User {
        uid,
        gid,
        additional_gids: additional,
        umask: None,
    })
}

/// The security context of the container, pod-level defaults applied.
pub fn security(pod: &Pod, security: Option<&SecurityContext>, uid: u32) -> Security {
    let pod_security = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let caps = security.and_then(|s| s.capabilities.as_ref());
    let seccomp = security
        .and_then(|s| s.seccomp_profile.as_ref())
        .or_else(|| pod_security.and_then(|s| s.seccomp_profile.as_ref()));
    Security {
        privileged: security.and_then(|s| s.privileged) == Some(true),
        cap_add: caps.and_then(|c| c.add.clone()).unwrap_or_default(),
        cap_drop: caps.and_then(|c| c.drop.clone()).unwrap_or_default(),
        no_new_privileges: security.and_then(|s| s.allow_privilege_escalation) == Some(false),
        readonly_rootfs: security.and_then(|s| s.read_only_root_filesystem) == Some(true),
        run_as_non_root: uid != 0
            && security
                .and_then(|s| s.run_as_non_root)
                .or_else(|| pod_security.and_then(|s| s.run_as_non_root))
                == Some(true),
        // The kubelet's default (no --seccomp-default) is Unconfined unless asked.
        seccomp: match seccomp.map(|p| p.type_.as_str()) {
            Some("RuntimeDefault") => SeccompProfile::RuntimeDefault,
            _ => SeccompProfile::Unconfined,
        },
        proc_mount: match security.and_then(|s| s.proc_mount.as_deref()) {
            Some("Unmasked") => ProcMount::Unmasked,
            _ => ProcMount::Default,
        },
    }
}

/// A sub path that stays inside its volume.
fn safe_sub_path(sub: &str) -> Result<PathBuf, ConfigError> {
    let path = Path::new(sub);
    if path.is_absolute()
        || path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
    {
        return Err(ConfigError::create(format!(
            "subPath {sub:?} must be a relative path without '..'"
        )));
    }
    Ok(path.to_path_buf())
}

/// The volume mounts of a container.
pub fn mounts(
    container: &Container,
    ctx: &Context<'_>,
    env: &[(String, String)],
) -> Result<Vec<Mount>, ConfigError> {
    let mut out = Vec::new();
    for vm in container.volume_mounts.iter().flatten() {
        let volume = ctx.volumes.get(&vm.name).ok_or_else(|| {
            ConfigError::create(format!(
                "cannot find volume \"{}\" to mount into container \"{}\"",
                vm.name, container.name
            ))
        })?;
        let mut source = volume.path.clone();
        let sub = match (&vm.sub_path, &vm.sub_path_expr) {
            (Some(s), _) if !s.is_empty() => Some(s.clone()),
            (_, Some(e)) if !e.is_empty() => {
                let lookup = |k: &str| env.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
                Some(expand(e, &lookup))
            }
            _ => None,
        };
        if let Some(sub) = sub {
            source = source.join(safe_sub_path(&sub)?);
            if !source.exists() {
                std::fs::create_dir_all(&source).map_err(|e| {
                    ConfigError::create(format!(
                        "failed to create subPath directory for volumeMount \"{}\": {e}",
                        vm.name
                    ))
                })?;
            }
        }
        let propagation = match vm.mount_propagation.as_deref() {
            Some("HostToContainer") => Propagation::HostToContainer,
            Some("Bidirectional") => Propagation::Bidirectional,
            _ => Propagation::Private,
        };
        out.push(Mount {
            destination: PathBuf::from(&vm.mount_path),
            source: maestro_oci::runtime::MountSource::Bind(source),
            read_only: vm.read_only == Some(true) || volume.read_only,
            propagation,
        });
    }
    Ok(out)
}

/// Image environment first, the container's over it (the container wins on a name clash).
pub fn merged_env(
    image: &ImageConfig,
    container_env: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = image
        .env
        .iter()
        .filter_map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
        })
        .collect();
    for (k, v) in container_env {
        match env.iter_mut().find(|(key, _)| key == k) {
            Some(entry) => entry.1 = v.clone(),
            None => env.push((k.clone(), v.clone())),
        }
    }
    env
}

/// Everything of the container's config that comes from the pod spec and the image; the worker
/// adds the sandbox, io and cgroup placement.
pub fn build(
    id: &str,
    container: &Container,
    ctx: &Context<'_>,
) -> Result<ContainerConfig, ConfigError> {
    let container_env = environment(container, ctx)?;
    let args = process_args(container, ctx.image, &container_env)?;
    let user = user(
        ctx.pod,
        container.security_context.as_ref(),
        ctx.image,
        ctx.rootfs,
    )?;
    let mut config = ContainerConfig::new(id, ctx.rootfs, args);
    config.env = merged_env(ctx.image, &container_env);
    config.cwd = container
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .or_else(|| ctx.image.working_dir.clone())
        .map(PathBuf::from)
        .unwrap_or_default();
    config.security = security(ctx.pod, container.security_context.as_ref(), user.uid);
    config.user = user;
    config.resources = resource_requirements(container).container_resources();
    config.mounts = mounts(container, ctx, &container_env)?;
    if let Some(sysctls) = ctx
        .pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.sysctls.as_ref())
    {
        for s in sysctls {
            config.sysctls.insert(s.name.clone(), s.value.clone());
        }
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(value: Value) -> Container {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn expansion_follows_the_kubelet() {
        let vars = |k: &str| (k == "A").then(|| "1".to_string());
        assert_eq!(expand("x$(A)y", &vars), "x1y");
        assert_eq!(expand("$$(A)", &vars), "$(A)");
        assert_eq!(expand("$(B)", &vars), "$(B)");
        assert_eq!(expand("$(A", &vars), "$(A");
        assert_eq!(expand("€$(A)", &vars), "€1");
    }

    #[test]
    fn command_and_args_over_the_image() {
        let image = ImageConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default".into()],
            ..Default::default()
        };
        let env = vec![("A".to_string(), "1".to_string())];
        let args = |c: Value| process_args(&container(c), &image, &env);
        assert_eq!(args(json!({"name": "c"})).unwrap(), ["/entry", "default"]);
        assert_eq!(
            args(json!({"name": "c", "args": ["x$(A)"]})).unwrap(),
            ["/entry", "x1"]
        );
        assert_eq!(
            args(json!({"name": "c", "command": ["/bin/sh"]})).unwrap(),
            ["/bin/sh"]
        );
        assert_eq!(
            args(json!({"name": "c", "command": ["/bin/sh"], "args": ["-c", "$(A)"]})).unwrap(),
            ["/bin/sh", "-c", "1"]
        );
        let bare = ImageConfig::default();
        let err = process_args(&container(json!({"name": "c"})), &bare, &env).unwrap_err();
        assert_eq!(err.reason, "CreateContainerError");
    }

    #[test]
    fn environment_from_references() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c"}], "nodeName": "n1"},
        }))
        .unwrap();
        let mut pod_json = serde_json::to_value(&pod).unwrap();
        pod_json["status"] = json!({"podIP": "10.42.0.5"});
        let mut refs = References::default();
        refs.config_maps.insert(
            "cm".into(),
            Some(BTreeMap::from([
                ("k".to_string(), b"v".to_vec()),
                ("bad key".to_string(), b"x".to_vec()),
            ])),
        );
        refs.secrets.insert("missing".into(), None);
        let volumes = HashMap::new();
        let image = ImageConfig::default();
        let ctx = Context {
            pod: &pod,
            pod_json: &pod_json,
            image: &image,
            rootfs: Path::new("/nonexistent"),
            volumes: &volumes,
            references: &refs,
            node_cpu_millis: 2000,
            node_memory_bytes: 1 << 30,
        };
        let c = container(json!({"name": "c",
        "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
        "env": [
            {"name": "A", "value": "a"},
            {"name": "B", "value": "$(A)-$(CM_k)"},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "CPUM", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "1m"}}},
            {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k", "optional": true}}},
        ]}));
        let env = environment(&c, &ctx).unwrap();
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("CM_k"), Some("v"));
        assert_eq!(get("CM_bad key"), None);
        assert_eq!(get("B"), Some("a-v"));
        assert_eq!(get("NODE"), Some("n1"));
        assert_eq!(get("IP"), Some("10.42.0.5"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("MEM"), Some("64"));
        assert_eq!(get("CPU"), Some("1"));
        assert_eq!(get("CPUM"), Some("500"));
        assert_eq!(get("OPT"), None);

        let missing = container(json!({"name": "c", "env": [
            {"name": "X", "valueFrom": {"secretKeyRef": {"name": "missing", "key": "k"}}}]}));
        let err = environment(&missing, &ctx).unwrap_err();
        assert_eq!(err.reason, "CreateContainerConfigError");
        assert_eq!(err.message, "secret \"missing\" not found");
        let no_key = container(json!({"name": "c", "env": [
            {"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nope"}}}]}));
        assert_eq!(
            environment(&no_key, &ctx).unwrap_err().message,
            "couldn't find key nope in ConfigMap ns/cm"
        );
    }

    #[test]
    fn users_from_context_or_image() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nweb:x:1000:1001::/home/web:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let pod = |sc: Value| -> Pod {
            serde_json::from_value(
                json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u"},
                "spec": {"containers": [{"name": "c"}], "securityContext": sc}}),
            )
            .unwrap()
        };
        let image = |u: &str| ImageConfig {
            user: Some(u.into()),
            ..Default::default()
        };
        let u = user(&pod(json!({})), None, &image("web"), dir.path()).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 1001));
        let u = user(&pod(json!({})), None, &image("web:staff"), dir.path()).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 50));
        let u = user(
            &pod(json!({"runAsUser": 2000, "runAsGroup": 3000, "fsGroup": 4000, "supplementalGroups": [5000]})),
            None,
            &image("web"),
            dir.path(),
        )
        .unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids),
            (2000, 3000, vec![4000, 5000])
        );
        let err = user(
            &pod(json!({"runAsNonRoot": true})),
            None,
            &image(""),
            dir.path(),
        )
        .unwrap_err();
        assert!(
            err.message
                .starts_with("container has runAsNonRoot and image will run as root"),
            "{err}"
        );
        let err = user(
            &pod(json!({"runAsNonRoot": true})),
            None,
            &image("web"),
            dir.path(),
        )
        .unwrap_err();
        assert!(err.message.contains("non-numeric user (web)"), "{err}");
        let err = user(&pod(json!({})), None, &image("nobody"), dir.path()).unwrap_err();
        assert_eq!(err.reason, "CreateContainerError");
    }
}
