//! Files of configMap, secret, downwardAPI and projected volumes, written the way the kubelet's
//! atomic writer does: the payload goes into a fresh timestamped directory, a `..data` symlink is
//! switched to it in one rename, and each visible file is a symlink through `..data`. A container
//! therefore never sees a half-updated volume, and updates reach running containers.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

/// Why a volume could not be prepared (shown in the pod's events and status).
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    #[error("{0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> VolumeError + '_ {
    move |source| VolumeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// One file of a volume: relative path, content, mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

/// A relative path that stays inside the volume (no `..`, not absolute, not starting with `..`).
fn check_path(path: &str) -> Result<(), VolumeError> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && !path.starts_with("..")
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(VolumeError::Invalid(format!(
            "invalid path {path:?} in a volume"
        )))
    }
}

/// Files of a configMap or secret volume source: every key, or the listed `items`
/// (`key` → `path`, optional `mode`); a listed key that does not exist is an error unless the
/// source is optional. `data` holds the decoded values.
pub fn project_keys(
    source: &Value,
    data: &BTreeMap<String, Vec<u8>>,
    default_mode: u32,
) -> Result<Vec<File>, VolumeError> {
    let mut files = Vec::new();
    match source.get("items").and_then(Value::as_array) {
        Some(items) if !items.is_empty() => {
            for item in items {
                let key = item.get("key").and_then(Value::as_str).unwrap_or_default();
                let path = item.get("path").and_then(Value::as_str).unwrap_or(key);
                check_path(path)?;
                let Some(content) = data.get(key) else {
                    if source.get("optional").and_then(Value::as_bool) == Some(true) {
                        continue;
                    }
                    return Err(VolumeError::Invalid(format!(
                        "configmap/secret references non-existent key {key:?}"
                    )));
                };
                let mode = item
                    .get("mode")
                    .and_then(Value::as_u64)
                    .map_or(default_mode, |m| m as u32);
                files.push(File {
                    path: path.to_string(),
                    content: content.clone(),
                    mode,
                });
            }
        }
        _ => {
            for (key, content) in data {
                check_path(key)?;
                files.push(File {
                    path: key.clone(),
                    content: content.clone(),
                    mode: default_mode,
                });
            }
        }
    }
    Ok(files)
}

/// The value of a downward API `fieldRef` of a pod (`metadata.name`, `metadata.labels`, ...).
pub fn field_ref(pod: &Value, field_path: &str) -> Result<String, VolumeError> {
    let meta = |k: &str| {
        pod.pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let map_text = |k: &str| -> String {
        let mut lines: Vec<String> = pod
            .pointer(&format!("/metadata/{k}"))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(key, v)| {
                        format!(
                            "{key}={}",
                            serde_json::to_string(v.as_str().unwrap_or_default())
                                .unwrap_or_default()
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        lines.sort();
        lines.join("\n")
    };
    let value = match field_path {
        "metadata.name" => meta("name"),
        "metadata.namespace" => meta("namespace"),
        "metadata.uid" => meta("uid"),
        "metadata.labels" => map_text("labels"),
        "metadata.annotations" => map_text("annotations"),
        "spec.nodeName" => pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        "spec.serviceAccountName" => pod
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        "status.podIP" => pod
            .pointer("/status/podIP")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        "status.hostIP" => pod
            .pointer("/status/hostIP")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        other => {
            if let Some(key) = other
                .strip_prefix("metadata.labels['")
                .and_then(|r| r.strip_suffix("']"))
            {
                pod.pointer("/metadata/labels")
                    .and_then(|l| l.get(key))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            } else if let Some(key) = other
                .strip_prefix("metadata.annotations['")
                .and_then(|r| r.strip_suffix("']"))
            {
                pod.pointer("/metadata/annotations")
                    .and_then(|l| l.get(key))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            } else {
                return Err(VolumeError::Invalid(format!(
                    "unsupported fieldPath {other:?}"
                )));
            }
        }
    };
    Ok(value)
}

/// Write `files` into the volume directory `dir` atomically (see the module docs).
pub fn write_atomic(dir: &Path, files: &[File]) -> Result<(), VolumeError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let stamp = format!(
        "..{}",
        jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S.%f")
    );
    let payload = dir.join(&stamp);
    std::fs::create_dir(&payload).map_err(io(&payload))?;
    for file in files {
        check_path(&file.path)?;
        let target = payload.join(&file.path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&target, &file.content).map_err(io(&target))?;
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(file.mode))
            .map_err(io(&target))?;
    }
    // Switch `..data` in one rename, then drop the previous payload.
    let previous = std::fs::read_link(dir.join("..data")).ok();
    let tmp_link = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp_link);
    symlink(&stamp, &tmp_link).map_err(io(&tmp_link))?;
    std::fs::rename(&tmp_link, dir.join("..data")).map_err(io(dir))?;
    // Top-level names point through ..data; names no longer in the payload go away.
    let wanted: std::collections::BTreeSet<String> = files
        .iter()
        .map(|f| f.path.split('/').next().unwrap_or_default().to_string())
        .collect();
    for name in &wanted {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(Path::new("..data").join(name), &link).map_err(io(&link))?;
        }
    }
    for entry in std::fs::read_dir(dir).map_err(io(dir))?.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with("..") && !wanted.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    if let Some(old) = previous
        && old != Path::new(&stamp)
    {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn keys_items_and_modes() {
        let all = project_keys(&json!({}), &data(&[("a", "1"), ("b", "2")]), 0o644).unwrap();
        assert_eq!(all.len(), 2);
        let items = project_keys(
            &json!({"items": [{"key": "a", "path": "dir/x", "mode": 0o400}]}),
            &data(&[("a", "1"), ("b", "2")]),
            0o644,
        )
        .unwrap();
        assert_eq!(
            items,
            vec![File {
                path: "dir/x".into(),
                content: b"1".to_vec(),
                mode: 0o400
            }]
        );
        assert!(
            project_keys(
                &json!({"items": [{"key": "missing", "path": "x"}]}),
                &data(&[]),
                0o644
            )
            .is_err()
        );
        assert!(
            project_keys(
                &json!({"items": [{"key": "a", "path": "../escape"}]}),
                &data(&[("a", "1")]),
                0o644
            )
            .is_err()
        );
        assert!(
            project_keys(
                &json!({"optional": true, "items": [{"key": "missing", "path": "x"}]}),
                &data(&[]),
                0o644
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn downward_api_fields() {
        let pod = json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"b": "2", "a": "1"}}, "spec": {"nodeName": "n1"}});
        assert_eq!(field_ref(&pod, "metadata.name").unwrap(), "p");
        assert_eq!(
            field_ref(&pod, "metadata.labels").unwrap(),
            "a=\"1\"\nb=\"2\""
        );
        assert_eq!(field_ref(&pod, "metadata.labels['b']").unwrap(), "2");
        assert_eq!(field_ref(&pod, "spec.nodeName").unwrap(), "n1");
        assert!(field_ref(&pod, "spec.bogus").is_err());
    }

    #[test]
    fn atomic_updates_swap_the_payload() {
        let dir = tempfile::tempdir().unwrap();
        let vol = dir.path().join("vol");
        write_atomic(
            &vol,
            &[
                File {
                    path: "a".into(),
                    content: b"1".to_vec(),
                    mode: 0o644,
                },
                File {
                    path: "d/b".into(),
                    content: b"2".to_vec(),
                    mode: 0o600,
                },
            ],
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(vol.join("a")).unwrap(), "1");
        assert_eq!(std::fs::read_to_string(vol.join("d/b")).unwrap(), "2");
        let mode = std::fs::metadata(vol.join("d/b"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        std::thread::sleep(std::time::Duration::from_millis(2));
        write_atomic(
            &vol,
            &[File {
                path: "a".into(),
                content: b"changed".to_vec(),
                mode: 0o644,
            }],
        )
        .unwrap();
        assert_eq!(std::fs::read_to_string(vol.join("a")).unwrap(), "changed");
        assert!(!vol.join("d").exists(), "keys no longer present disappear");
        let payloads = std::fs::read_dir(&vol)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("..2")
            })
            .count();
        assert_eq!(payloads, 1, "the previous payload is removed");
    }
}
