//! The content-addressed image store on a node's disk.
//!
//! Invariants:
//! - Every file appears whole or not at all: blobs and the index are written to `tmp/`, synced
//!   and renamed into place; a layer is unpacked under `tmp/` and its directory renamed into
//!   `layers/` (the first of two concurrent unpacks wins, the other is discarded).
//! - The index only names content that is already on disk: blobs and layers are committed
//!   before the index entry that uses them, and removed only after it is gone. A crash leaves
//!   at most unreferenced content, which the next sweep deletes.
//! - Content a pull or import is working on is registered as in flight, and a sweep leaves it
//!   alone; images with a snapshot are never collected. Deletion first renames into `trash/`
//!   (quick, under the index lock), then deletes outside the lock.
//! - One process owns a store (the agent, or `maestro image import` while the agent is
//!   stopped): opening it empties `tmp/` and `trash/`, and the locks are in-process.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::error::IoContext;
use super::manifest::{ConfigFile, Platform};
use super::unpack::{self, Unpacked};
use super::{Digest, ImageConfig, ImageError, Reference, Result};

const INDEX_FILE: &str = "images.json";

/// An image in the store.
#[derive(Clone, Debug)]
pub struct Image {
    /// Digest of the image manifest for this node's platform.
    pub digest: Digest,
    /// Digest of the config: the image ID (`sha256:...`) the kubelet reports.
    pub config_digest: Digest,
    /// References that name this image: tags (`r/a:v1`) and repo digests (`r/a@sha256:...`,
    /// with the digest the registry served, an index's when the image came from one).
    pub names: Vec<String>,
    pub config: ImageConfig,
    pub platform: Platform,
    /// The layers' diff ids, base layer first.
    pub layers: Vec<Digest>,
    /// Bytes of unpacked layer content.
    pub size: u64,
}

impl Image {
    /// The first repo digest (`registry/repo@sha256:...`), which the kubelet reports as the
    /// container's `imageID`.
    pub fn repo_digest(&self) -> Option<&str> {
        self.names
            .iter()
            .map(String::as_str)
            .find(|n| n.contains('@'))
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct IndexFile {
    /// Images by manifest digest.
    pub images: BTreeMap<Digest, ImageEntry>,
    /// Normalized reference → manifest digest.
    pub refs: BTreeMap<String, Digest>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct ImageEntry {
    pub config: Digest,
    /// Index blobs (multi-platform) this image was selected from; kept with the image.
    #[serde(default)]
    pub indexes: BTreeSet<Digest>,
    pub layers: Vec<Digest>,
    pub size: u64,
    /// Unix milliseconds.
    pub created: u64,
    pub last_used: u64,
}

pub(crate) struct Inner {
    pub root: PathBuf,
    pub index: Mutex<IndexFile>,
    /// Content being pulled or imported: `blob:<hex>` and `layer:<hex>` with a use count.
    inflight: Mutex<HashMap<String, usize>>,
}

/// The image store. Cheap to clone; all clones share one index.
#[derive(Clone)]
pub struct ImageStore {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.inner.root)
            .finish()
    }
}

/// Registration of in-flight content; dropping it lets a sweep see the content again.
pub(crate) struct InflightGuard {
    store: Arc<Inner>,
    keys: Vec<String>,
}

impl InflightGuard {
    pub(crate) fn add(&mut self, key: String) {
        *lock(&self.store.inflight).entry(key.clone()).or_default() += 1;
        self.keys.push(key);
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        let mut map = lock(&self.store.inflight);
        for key in &self.keys {
            if let Some(n) = map.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(key);
                }
            }
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the data as consistent as any crash would.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Unix time in milliseconds: with seconds, images pulled in the same second would tie for
/// least recently used.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A unique name for temporary files and directories.
pub(crate) fn temp_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl ImageStore {
    /// Opens (creating if needed) the store at `root`. The root is resolved to a real path so
    /// snapshot root filesystems handed to runc are never reached through a symlink.
    pub fn open(root: &Path) -> Result<ImageStore> {
        fs::create_dir_all(root).ctx("create", root)?;
        let root = fs::canonicalize(root).ctx("resolve", root)?;
        for dir in [
            "blobs/sha256",
            "layers",
            "snapshots",
            "tmp",
            "trash",
            "empty",
        ] {
            let d = root.join(dir);
            fs::create_dir_all(&d).ctx("create", &d)?;
        }
        // Leftovers of a crash: partial downloads, unpacks and deletions.
        for dir in ["tmp", "trash"] {
            empty_dir(&root.join(dir))?;
        }
        let index_path = root.join(INDEX_FILE);
        let index = match fs::read(&index_path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| ImageError::invalid(index_path.display().to_string(), e))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => IndexFile::default(),
            Err(e) => return Err(ImageError::io("read", index_path, e)),
        };
        Ok(ImageStore {
            inner: Arc::new(Inner {
                root,
                index: Mutex::new(index),
                inflight: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The store's (resolved) root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The image a reference names, if it is in the store. A digest reference also finds the
    /// image by its manifest or config digest, whatever repository it was pulled from.
    pub fn get(&self, reference: &Reference) -> Result<Option<Image>> {
        let index = lock(&self.inner.index);
        let found = index.refs.get(&reference.to_string()).cloned().or_else(|| {
            let digest = reference.digest()?;
            let by_name = reference.with_digest(digest.clone()).to_string();
            index
                .refs
                .get(&by_name)
                .cloned()
                .or_else(|| self.find_by_digest(&index, digest))
        });
        match found {
            Some(d) => self.load(&index, &d).map(Some),
            None => Ok(None),
        }
    }

    /// The image with this manifest or config digest.
    pub fn get_by_digest(&self, digest: &Digest) -> Result<Option<Image>> {
        let index = lock(&self.inner.index);
        match self.find_by_digest(&index, digest) {
            Some(d) => self.load(&index, &d).map(Some),
            None => Ok(None),
        }
    }

    fn find_by_digest(&self, index: &IndexFile, digest: &Digest) -> Option<Digest> {
        if index.images.contains_key(digest) {
            return Some(digest.clone());
        }
        index
            .images
            .iter()
            .find(|(_, e)| &e.config == digest)
            .map(|(d, _)| d.clone())
    }

    /// Every image in the store.
    pub fn images(&self) -> Result<Vec<Image>> {
        let index = lock(&self.inner.index);
        index.images.keys().map(|d| self.load(&index, d)).collect()
    }

    fn load(&self, index: &IndexFile, digest: &Digest) -> Result<Image> {
        let entry = index
            .images
            .get(digest)
            .ok_or_else(|| ImageError::NotInStore(digest.to_string()))?;
        let config = ConfigFile::parse(&self.read_blob(&entry.config)?)?;
        Ok(Image {
            digest: digest.clone(),
            config_digest: entry.config.clone(),
            names: index
                .refs
                .iter()
                .filter(|(_, d)| *d == digest)
                .map(|(n, _)| n.clone())
                .collect(),
            config: config.image_config(),
            platform: config.platform(),
            layers: entry.layers.clone(),
            size: entry.size,
        })
    }

    /// Records that a container started from the image now, for least-recently-used collection.
    pub fn touch(&self, digest: &Digest) -> Result<()> {
        let mut index = lock(&self.inner.index);
        let Some(d) = self.find_by_digest(&index, digest) else {
            return Err(ImageError::NotInStore(digest.to_string()));
        };
        if let Some(e) = index.images.get_mut(&d) {
            e.last_used = now();
        }
        self.save_index(&index)
    }

    /// Removes one name (tag or repo digest). The image stays until garbage collection or
    /// [`ImageStore::remove_image`].
    pub fn untag(&self, reference: &Reference) -> Result<bool> {
        let mut index = lock(&self.inner.index);
        let removed = index.refs.remove(&reference.to_string()).is_some();
        if removed {
            self.save_index(&index)?;
        }
        Ok(removed)
    }

    /// Removes an image (by manifest or config digest) with all its names, and deletes the
    /// content no other image uses. Refused while a snapshot uses the image.
    pub fn remove_image(&self, digest: &Digest) -> Result<()> {
        {
            let mut index = lock(&self.inner.index);
            let Some(d) = self.find_by_digest(&index, digest) else {
                return Ok(());
            };
            if let Some(id) = self.snapshot_users(&d)?.first() {
                return Err(ImageError::Snapshot {
                    id: id.clone(),
                    message: format!("uses image {d}"),
                });
            }
            index.images.remove(&d);
            index.refs.retain(|_, v| *v != d);
            self.save_index(&index)?;
        }
        self.sweep().map(|_| ())
    }

    // --- content -------------------------------------------------------------------------

    pub(crate) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.inner.root.join("blobs/sha256").join(digest.hex())
    }

    pub(crate) fn layer_dir(&self, diff_id: &Digest) -> PathBuf {
        self.inner.root.join("layers").join(diff_id.hex())
    }

    /// The directory overlayfs uses as this layer's lower dir.
    pub(crate) fn layer_fs(&self, diff_id: &Digest) -> PathBuf {
        self.layer_dir(diff_id).join("fs")
    }

    pub(crate) fn has_layer(&self, diff_id: &Digest) -> bool {
        self.layer_fs(diff_id).is_dir()
    }

    pub(crate) fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.blob_path(digest);
        let bytes = fs::read(&path).ctx("read", &path)?;
        digest.verify(
            &Digest::of(&bytes),
            &format!("stored blob {}", path.display()),
        )?;
        Ok(bytes)
    }

    /// Writes a blob, verified against `expected` when given. Returns its digest.
    pub(crate) fn write_blob(&self, bytes: &[u8], expected: Option<&Digest>) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if let Some(expected) = expected {
            expected.verify(&digest, "blob")?;
        }
        let path = self.blob_path(&digest);
        if !path.exists() {
            self.write_atomic(&path, bytes)?;
        }
        Ok(digest)
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let tmp = self.inner.root.join("tmp").join(temp_name("file"));
        let mut f = File::create(&tmp).ctx("create", &tmp)?;
        f.write_all(bytes).ctx("write", &tmp)?;
        f.sync_all().ctx("sync", &tmp)?;
        drop(f);
        fs::rename(&tmp, path).ctx("rename", path)?;
        sync_parent(path)
    }

    pub(crate) fn inflight(&self) -> InflightGuard {
        InflightGuard {
            store: self.inner.clone(),
            keys: Vec::new(),
        }
    }

    /// Unpacks a layer blob into `layers/<diff id>/` unless it is there already, checking the
    /// blob's digest (when known) and the diff id. Blocking: call from a blocking thread.
    pub(crate) fn unpack_layer(
        &self,
        blob: impl io::Read,
        compression: super::manifest::Compression,
        blob_digest: Option<&Digest>,
        diff_id: &Digest,
    ) -> Result<u64> {
        let final_dir = self.layer_dir(diff_id);
        if self.has_layer(diff_id) {
            return read_size(&final_dir);
        }
        let tmp = self.inner.root.join("tmp").join(temp_name("layer"));
        let result = (|| {
            let fs_dir = tmp.join("fs");
            fs::create_dir_all(&fs_dir).ctx("create", &fs_dir)?;
            fs::set_permissions(&fs_dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .ctx("chmod", &fs_dir)?;
            let Unpacked {
                blob_digest: got_blob,
                diff_id: got_diff,
                size,
            } = unpack::unpack_layer(blob, compression, blob_digest, &fs_dir, diff_id.as_str())?;
            if let Some(expected) = blob_digest {
                expected.verify(&got_blob, "layer blob")?;
            }
            diff_id.verify(&got_diff, "layer diff id")?;
            fs::write(tmp.join("size"), size.to_string()).ctx("write", tmp.join("size"))?;
            // One syncfs for the whole layer instead of an fsync per file.
            let dir = File::open(&tmp).ctx("open", &tmp)?;
            rustix::fs::syncfs(&dir)
                .map_err(io::Error::from)
                .ctx("sync", &tmp)?;
            match fs::rename(&tmp, &final_dir) {
                Ok(()) => sync_parent(&final_dir)?,
                // Another pull committed the same layer first; ours is a duplicate.
                Err(_) if self.has_layer(diff_id) => {}
                Err(e) => return Err(ImageError::io("rename", &final_dir, e)),
            }
            Ok(size)
        })();
        if tmp.exists() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Adds or updates an image whose blobs and layers are all in place, and points `names`
    /// at it. Returns the image as stored.
    pub(crate) fn commit_image(
        &self,
        manifest: &Digest,
        config_digest: &Digest,
        config: &ConfigFile,
        index_digest: Option<&Digest>,
        names: &[String],
    ) -> Result<Image> {
        let mut size = 0;
        for layer in &config.rootfs.diff_ids {
            size += read_size(&self.layer_dir(layer))?;
        }
        let mut index = lock(&self.inner.index);
        let t = now();
        let entry = index
            .images
            .entry(manifest.clone())
            .or_insert_with(|| ImageEntry {
                config: config_digest.clone(),
                indexes: BTreeSet::new(),
                layers: config.rootfs.diff_ids.clone(),
                size,
                created: t,
                last_used: t,
            });
        entry.last_used = t;
        if let Some(i) = index_digest {
            entry.indexes.insert(i.clone());
        }
        for name in names {
            index.refs.insert(name.clone(), manifest.clone());
        }
        self.save_index(&index)?;
        self.load(&index, manifest)
    }

    /// If the image is in the store, records it as used now and points `names` (and the index
    /// it came from) at it, all under one lock so a collection cannot interleave.
    pub(crate) fn refresh_image(
        &self,
        manifest: &Digest,
        index_digest: Option<&Digest>,
        names: &[String],
    ) -> Result<Option<Image>> {
        let mut index = lock(&self.inner.index);
        let Some(entry) = index.images.get_mut(manifest) else {
            return Ok(None);
        };
        entry.last_used = now();
        if let Some(i) = index_digest {
            entry.indexes.insert(i.clone());
        }
        for name in names {
            index.refs.insert(name.clone(), manifest.clone());
        }
        self.save_index(&index)?;
        self.load(&index, manifest).map(Some)
    }

    pub(crate) fn save_index(&self, index: &IndexFile) -> Result<()> {
        let bytes =
            serde_json::to_vec_pretty(index).map_err(|e| ImageError::invalid("index", e))?;
        self.write_atomic(&self.inner.root.join(INDEX_FILE), &bytes)
    }

    /// Deletes blobs and layers that no image references and nothing has in flight. Returns
    /// the bytes freed.
    pub(crate) fn sweep(&self) -> Result<u64> {
        let trash = self.inner.root.join("trash");
        let mut freed = 0;
        {
            let index = lock(&self.inner.index);
            let inflight = lock(&self.inner.inflight);
            let mut blobs = BTreeSet::new();
            let mut layers = BTreeSet::new();
            for (digest, e) in &index.images {
                blobs.insert(digest.hex().to_owned());
                blobs.insert(e.config.hex().to_owned());
                blobs.extend(e.indexes.iter().map(|d| d.hex().to_owned()));
                layers.extend(e.layers.iter().map(|d| d.hex().to_owned()));
            }
            for (kind, dir, keep) in [
                ("blob", "blobs/sha256", &blobs),
                ("layer", "layers", &layers),
            ] {
                let dir = self.inner.root.join(dir);
                for entry in fs::read_dir(&dir).ctx("list", &dir)? {
                    let entry = entry.ctx("list", &dir)?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if keep.contains(&name) || inflight.contains_key(&format!("{kind}:{name}")) {
                        continue;
                    }
                    freed += if kind == "layer" {
                        read_size(&entry.path()).unwrap_or(0)
                    } else {
                        entry.metadata().map(|m| m.len()).unwrap_or(0)
                    };
                    let to = trash.join(temp_name(&name[..12.min(name.len())]));
                    fs::rename(entry.path(), &to).ctx("move to trash", entry.path())?;
                }
            }
        }
        empty_dir(&trash)?;
        Ok(freed)
    }
}

fn read_size(layer_dir: &Path) -> Result<u64> {
    let path = layer_dir.join("size");
    let text = fs::read_to_string(&path).ctx("read", &path)?;
    text.trim()
        .parse()
        .map_err(|e| ImageError::invalid(path.display().to_string(), e))
}

fn sync_parent(path: &Path) -> Result<()> {
    if let Some(parent) = path.parent() {
        File::open(parent)
            .and_then(|d| d.sync_all())
            .ctx("sync", parent)?;
    }
    Ok(())
}

/// Deletes everything inside `dir`.
pub(crate) fn empty_dir(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).ctx("list", dir)? {
        let path = entry.ctx("list", dir)?.path();
        let r = if fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        r.ctx("remove", &path)?;
    }
    Ok(())
}
