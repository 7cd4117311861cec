//! `maestro image import` for air-gapped nodes. The agent owns its image store, so the command
//! does not touch the store itself: it drops the archive into the agent's import directory and
//! the agent imports it (also when the agent starts, for archives dropped while it was down),
//! answering with a result file next to it.
//!
//! ```text
//! <agent data>/images-import/<name>.tar          an archive waiting (written as .part, renamed)
//! <agent data>/images-import/<name>.tar.result   {"images": [...]} or {"error": "..."}
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use maestro_oci::image::ImageStore;
use serde_json::json;

/// How often the agent looks for new archives.
const SCAN_PERIOD: Duration = Duration::from_secs(1);
/// Suffix of an archive still being copied in.
pub const PARTIAL_SUFFIX: &str = ".part";
/// Suffix of the agent's answer.
pub const RESULT_SUFFIX: &str = ".result";

pub fn import_dir(agent_data_dir: &Path) -> PathBuf {
    agent_data_dir.join("images-import")
}

/// Imports one archive and writes its result file; the archive is removed either way.
fn import_one(store: &ImageStore, archive: &Path) {
    let result = match store.import(archive) {
        Ok(images) => {
            let names: Vec<String> = images
                .iter()
                .flat_map(|i| {
                    if i.names.is_empty() {
                        vec![i.digest.as_str().to_string()]
                    } else {
                        i.names.clone()
                    }
                })
                .collect();
            tracing::info!(archive = %archive.display(), ?names, "imported images");
            json!({"images": names})
        }
        Err(err) => {
            tracing::warn!(archive = %archive.display(), %err, "importing images failed");
            json!({"error": err.to_string()})
        }
    };
    let mut result_path = archive.as_os_str().to_owned();
    result_path.push(RESULT_SUFFIX);
    let result_path = PathBuf::from(result_path);
    let mut tmp = result_path.as_os_str().to_owned();
    tmp.push(PARTIAL_SUFFIX);
    let tmp = PathBuf::from(tmp);
    if std::fs::write(&tmp, result.to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, &result_path);
    }
    let _ = std::fs::remove_file(archive);
}

/// Archives waiting in `dir`.
fn waiting(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            p.is_file() && !name.ends_with(PARTIAL_SUFFIX) && !name.ends_with(RESULT_SUFFIX)
        })
        .collect();
    out.sort();
    out
}

/// Imports archives as they arrive, until the agent stops.
pub async fn run(store: ImageStore, dir: PathBuf) {
    if let Err(err) = std::fs::create_dir_all(&dir) {
        tracing::error!(%err, dir = %dir.display(), "cannot create the image import directory");
        return;
    }
    loop {
        for archive in waiting(&dir) {
            let store = store.clone();
            let _ = tokio::task::spawn_blocking(move || import_one(&store, &archive)).await;
        }
        tokio::time::sleep(SCAN_PERIOD).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_gets_an_error_result_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(&dir.path().join("store")).unwrap();
        let imports = import_dir(dir.path());
        std::fs::create_dir_all(&imports).unwrap();
        std::fs::write(imports.join("a.tar.part"), b"partial").unwrap();
        std::fs::write(imports.join("b.tar"), b"not an archive").unwrap();
        let found = waiting(&imports);
        assert_eq!(found, vec![imports.join("b.tar")]);
        import_one(&store, &found[0]);
        assert!(!imports.join("b.tar").exists());
        let result: serde_json::Value =
            serde_json::from_slice(&std::fs::read(imports.join("b.tar.result")).unwrap()).unwrap();
        assert!(
            result["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{result}"
        );
        assert!(waiting(&imports).is_empty());
    }
}
