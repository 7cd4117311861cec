//! `maestro image import FILE`: images for air-gapped nodes from an OCI image layout archive
//! (`skopeo copy ... oci-archive:`, `docker save` since Docker 25, `ctr export`) or a classic
//! `docker save` tarball (`manifest.json` with `RepoTags`), gzip-compressed or not.
//!
//! The archive is read in place: one pass records where each member's data lies, then
//! members are read by seeking, so nothing is extracted twice.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::digest::HashingReader;
use super::error::IoContext;
use super::manifest::{
    Compression, ConfigFile, Descriptor, Index, Manifest, ManifestKind, OCI_CONFIG, OCI_LAYER_TAR,
    OCI_MANIFEST, manifest_kind,
};
use super::store::temp_name;
use super::{Digest, Image, ImageError, ImageStore, Platform, Reference, Result};

const MAX_JSON: u64 = 16 << 20;

impl ImageStore {
    /// Loads every image of an OCI layout archive or `docker save` tarball into the store, with
    /// the names it carries (`io.containerd.image.name` or a full `org.opencontainers.image.ref.name`
    /// annotation; `RepoTags`). For a multi-platform index, the host platform's image is taken.
    /// Blocking.
    pub fn import(&self, file: &Path) -> Result<Vec<Image>> {
        let mut head = [0u8; 4];
        let n = File::open(file)
            .and_then(|mut f| f.read(&mut head))
            .ctx("read", file)?;
        if Compression::sniff(&head[..n]) == Compression::Gzip {
            // Seeking needs the plain tar: decompress it next to the store first.
            let tmp = self.root().join("tmp").join(temp_name("import"));
            let result = (|| {
                let mut out = File::create(&tmp).ctx("create", &tmp)?;
                let mut gz = flate2::read::MultiGzDecoder::new(File::open(file).ctx("open", file)?);
                io::copy(&mut gz, &mut out).ctx("decompress", file)?;
                self.import_tar(&tmp, file)
            })();
            let _ = std::fs::remove_file(&tmp);
            return result;
        }
        self.import_tar(file, file)
    }

    fn import_tar(&self, tar_path: &Path, shown: &Path) -> Result<Vec<Image>> {
        let archive = Archive::scan(tar_path, shown)?;
        if archive.members.contains_key("index.json") {
            self.import_oci(&archive)
        } else if archive.members.contains_key("manifest.json") {
            self.import_docker(&archive)
        } else {
            Err(archive.error(
                "neither an OCI layout (index.json) nor a docker save tarball (manifest.json)",
            ))
        }
    }

    fn import_oci(&self, archive: &Archive) -> Result<Vec<Image>> {
        let index: Index = serde_json::from_slice(&archive.read("index.json", MAX_JSON)?)
            .map_err(|e| archive.error(&format!("index.json: {e}")))?;
        let mut images = Vec::new();
        for top in &index.manifests {
            let names = oci_names(top);
            let body = archive.blob(&top.digest)?;
            let media = (!top.media_type.is_empty()).then_some(top.media_type.as_str());
            let image = match manifest_kind(media, &body)? {
                ManifestKind::Manifest => {
                    self.import_manifest(archive, &top.digest, &body, None, &names)?
                }
                ManifestKind::Index => {
                    let inner: Index = serde_json::from_slice(&body)
                        .map_err(|e| ImageError::invalid("image index", e))?;
                    let platform = Platform::default();
                    let chosen =
                        platform
                            .select(&inner)
                            .ok_or_else(|| ImageError::NoMatchingPlatform {
                                reference: names
                                    .first()
                                    .cloned()
                                    .unwrap_or_else(|| top.digest.to_string()),
                                platform: platform.to_string(),
                            })?;
                    let manifest = archive.blob(&chosen.digest)?;
                    self.import_manifest(
                        archive,
                        &chosen.digest,
                        &manifest,
                        Some((&top.digest, &body)),
                        &names,
                    )?
                }
            };
            images.push(image);
        }
        Ok(images)
    }

    fn import_manifest(
        &self,
        archive: &Archive,
        digest: &Digest,
        body: &[u8],
        index: Option<(&Digest, &[u8])>,
        names: &[String],
    ) -> Result<Image> {
        let manifest = Manifest::parse(body)?;
        let config_body = archive.blob(&manifest.config.digest)?;
        let config = ConfigFile::parse(&config_body)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(archive.error("manifest and config disagree on the number of layers"));
        }
        let mut inflight = self.inflight();
        for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            inflight.add(format!("layer:{}", diff_id.hex()));
            if !self.has_layer(diff_id) {
                let compression = Compression::from_media_type(&layer.media_type)?;
                let reader = archive.open(&blob_member(&layer.digest))?;
                self.unpack_layer(reader, compression, Some(&layer.digest), diff_id)?;
            }
        }
        for d in [digest, &manifest.config.digest]
            .into_iter()
            .chain(index.map(|(d, _)| d))
        {
            inflight.add(format!("blob:{}", d.hex()));
        }
        self.write_blob(&config_body, Some(&manifest.config.digest))?;
        self.write_blob(body, Some(digest))?;
        if let Some((d, b)) = index {
            self.write_blob(b, Some(d))?;
        }
        let names = with_repo_digests(names, index.map_or(digest, |(d, _)| d));
        self.commit_image(
            digest,
            &manifest.config.digest,
            &config,
            index.map(|(d, _)| d),
            &names,
        )
    }

    fn import_docker(&self, archive: &Archive) -> Result<Vec<Image>> {
        #[derive(Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Entry {
            config: String,
            #[serde(default)]
            repo_tags: Option<Vec<String>>,
            layers: Vec<String>,
        }
        let entries: Vec<Entry> = serde_json::from_slice(&archive.read("manifest.json", MAX_JSON)?)
            .map_err(|e| archive.error(&format!("manifest.json: {e}")))?;
        let mut images = Vec::new();
        for entry in entries {
            let config_body = archive.read(&entry.config, MAX_JSON)?;
            let config_digest = Digest::of(&config_body);
            let config = ConfigFile::parse(&config_body)?;
            if config.rootfs.diff_ids.len() != entry.layers.len() {
                return Err(
                    archive.error("manifest.json and the config disagree on the number of layers")
                );
            }
            let mut inflight = self.inflight();
            let mut layers = Vec::new();
            for (member, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
                inflight.add(format!("layer:{}", diff_id.hex()));
                // Docker writes plain tars, other tools may compress; the content says which.
                let mut head = [0u8; 4];
                let n = archive
                    .open(member)?
                    .read(&mut head)
                    .ctx("read", &archive.shown)?;
                let compression = Compression::sniff(&head[..n]);
                if !self.has_layer(diff_id) {
                    self.unpack_layer(archive.open(member)?, compression, None, diff_id)?;
                }
                // The manifest we make up names each layer as the archive holds it.
                let (digest, size) = match compression {
                    Compression::None => (diff_id.clone(), archive.size(member)?),
                    _ => HashingReader::new(archive.open(member)?)
                        .finish()
                        .ctx("read", &archive.shown)?,
                };
                let media_type = match compression {
                    Compression::None => OCI_LAYER_TAR.to_owned(),
                    Compression::Gzip => format!("{OCI_LAYER_TAR}+gzip"),
                    Compression::Zstd => format!("{OCI_LAYER_TAR}+zstd"),
                };
                layers.push(Descriptor {
                    media_type,
                    digest,
                    size,
                    platform: None,
                    annotations: Default::default(),
                });
            }
            // A docker save has no manifest: make the OCI one a registry push would have made.
            let manifest = Manifest {
                schema_version: 2,
                media_type: Some(OCI_MANIFEST.to_owned()),
                config: Descriptor {
                    media_type: OCI_CONFIG.to_owned(),
                    digest: config_digest.clone(),
                    size: config_body.len() as u64,
                    platform: None,
                    annotations: Default::default(),
                },
                layers,
            };
            let manifest_body =
                serde_json::to_vec(&manifest).map_err(|e| ImageError::invalid("manifest", e))?;
            let manifest_digest = Digest::of(&manifest_body);
            inflight.add(format!("blob:{}", manifest_digest.hex()));
            inflight.add(format!("blob:{}", config_digest.hex()));
            self.write_blob(&config_body, Some(&config_digest))?;
            self.write_blob(&manifest_body, Some(&manifest_digest))?;
            let mut names = Vec::new();
            for tag in entry.repo_tags.unwrap_or_default() {
                names.push(Reference::parse(&tag)?.to_string());
            }
            images.push(self.commit_image(
                &manifest_digest,
                &config_digest,
                &config,
                None,
                &names,
            )?);
        }
        Ok(images)
    }
}

/// Names an OCI index entry carries: containerd's full name, else a `ref.name` that is a
/// whole reference. A bare tag (`latest`) names no repository, so it is not a name here.
fn oci_names(d: &Descriptor) -> Vec<String> {
    let full = d.annotations.get("io.containerd.image.name");
    let ref_name = d
        .annotations
        .get("org.opencontainers.image.ref.name")
        .filter(|r| r.contains('/'));
    full.or(ref_name)
        .and_then(|n| Reference::parse(n).ok())
        .map(|r| vec![r.to_string()])
        .unwrap_or_default()
}

/// Adds `name@digest` for each tagged name, as a pull records.
fn with_repo_digests(names: &[String], digest: &Digest) -> Vec<String> {
    let mut out = names.to_vec();
    for n in names {
        if let Ok(r) = Reference::parse(n) {
            out.push(r.with_digest(digest.clone()).to_string());
        }
    }
    out
}

fn blob_member(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// Where each member of a tar lies.
struct Archive {
    path: PathBuf,
    shown: PathBuf,
    /// Normalized member path → (data offset, size).
    members: HashMap<String, (u64, u64)>,
    /// Symlinks and hard links → normalized target (docker save links repeated layers).
    links: HashMap<String, String>,
}

impl Archive {
    fn scan(path: &Path, shown: &Path) -> Result<Archive> {
        let mut archive = Archive {
            path: path.to_owned(),
            shown: shown.to_owned(),
            members: HashMap::new(),
            links: HashMap::new(),
        };
        let file = File::open(path).ctx("open", shown)?;
        let mut tar = tar::Archive::new(file);
        let bad = |e: io::Error| ImageError::Import {
            path: shown.to_owned(),
            message: e.to_string(),
        };
        for entry in tar.entries().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let name = normalize(&entry.path().map_err(bad)?);
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    archive
                        .members
                        .insert(name, (entry.raw_file_position(), entry.size()));
                }
                tar::EntryType::Symlink | tar::EntryType::Link => {
                    let Some(target) = entry.link_name().map_err(bad)? else {
                        continue;
                    };
                    let target = if entry.header().entry_type() == tar::EntryType::Symlink {
                        let parent = Path::new(&name)
                            .parent()
                            .unwrap_or(Path::new(""))
                            .to_owned();
                        normalize(&parent.join(target))
                    } else {
                        normalize(&target)
                    };
                    archive.links.insert(name, target);
                }
                _ => {}
            }
        }
        Ok(archive)
    }

    fn error(&self, message: &str) -> ImageError {
        ImageError::Import {
            path: self.shown.clone(),
            message: message.to_owned(),
        }
    }

    fn locate(&self, name: &str) -> Result<(u64, u64)> {
        let mut name = normalize(Path::new(name));
        for _ in 0..16 {
            if let Some(found) = self.members.get(&name) {
                return Ok(*found);
            }
            match self.links.get(&name) {
                Some(target) => name = target.clone(),
                None => break,
            }
        }
        Err(self.error(&format!("member {name:?} is missing")))
    }

    fn size(&self, name: &str) -> Result<u64> {
        Ok(self.locate(name)?.1)
    }

    fn open(&self, name: &str) -> Result<io::Take<File>> {
        let (offset, size) = self.locate(name)?;
        let mut f = File::open(&self.path).ctx("open", &self.shown)?;
        f.seek(SeekFrom::Start(offset)).ctx("seek", &self.shown)?;
        Ok(f.take(size))
    }

    fn read(&self, name: &str, limit: u64) -> Result<Vec<u8>> {
        if self.size(name)? > limit {
            return Err(self.error(&format!("member {name:?} is larger than {limit} bytes")));
        }
        let mut out = Vec::new();
        self.open(name)?
            .read_to_end(&mut out)
            .ctx("read", &self.shown)?;
        Ok(out)
    }

    fn blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let body = self.read(&blob_member(digest), MAX_JSON)?;
        digest.verify(
            &Digest::of(&body),
            &format!("{} in {}", blob_member(digest), self.shown.display()),
        )?;
        Ok(body)
    }
}

/// `./a/../b/c` → `b/c` (lexically; member names are only looked up, never opened as paths).
fn normalize(path: &Path) -> String {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    parts
        .iter()
        .map(|p| p.to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}
