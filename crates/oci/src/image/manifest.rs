//! The image formats as data: OCI image manifests and indexes, Docker v2 schema 2 manifests and
//! manifest lists (the same shapes under other media types), image configs, and platform
//! selection in an index.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{Digest, ImageError};

pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub(crate) const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// The Accept header of manifest requests. A Docker distribution registry answers an OCI
/// manifest with 404 unless its media type is listed here.
pub(crate) const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v2+json";

/// How a layer blob is compressed, from its media type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    pub(crate) fn from_media_type(media_type: &str) -> Result<Compression, ImageError> {
        match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Ok(Compression::None),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Ok(Compression::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => {
                Ok(Compression::Zstd)
            }
            other => Err(ImageError::UnsupportedMediaType(other.to_owned())),
        }
    }

    /// From the first bytes of the content: archives (docker save) do not say.
    pub(crate) fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// A reference to content: what it is, its digest and size.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An image manifest (OCI or Docker schema 2).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// An image index (OCI) or manifest list (Docker).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Index {
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
}

/// The kind of a manifest document, from the Content-Type the registry sent or, failing that,
/// from the document's own `mediaType` and shape.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ManifestKind {
    Manifest,
    Index,
}

pub(crate) fn manifest_kind(
    content_type: Option<&str>,
    body: &[u8],
) -> Result<ManifestKind, ImageError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        schema_version: Option<u32>,
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
        config: Option<serde_json::Value>,
    }
    let probe: Probe =
        serde_json::from_slice(body).map_err(|e| ImageError::invalid("manifest", e))?;
    // Registries often answer `application/json` or `text/plain`; only trust a known type.
    let declared = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| c.starts_with("application/vnd."))
        .or(probe.media_type.as_deref());
    match declared {
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => Ok(ManifestKind::Manifest),
        Some(OCI_INDEX | DOCKER_LIST) => Ok(ManifestKind::Index),
        Some(other) => Err(ImageError::UnsupportedMediaType(other.to_owned())),
        None if probe.schema_version == Some(2) && probe.manifests.is_some() => {
            Ok(ManifestKind::Index)
        }
        None if probe.schema_version == Some(2) && probe.config.is_some() => {
            Ok(ManifestKind::Manifest)
        }
        None => Err(ImageError::UnsupportedMediaType(format!(
            "schema version {:?} without a media type",
            probe.schema_version
        ))),
    }
}

impl Manifest {
    pub(crate) fn parse(body: &[u8]) -> Result<Manifest, ImageError> {
        let m: Manifest =
            serde_json::from_slice(body).map_err(|e| ImageError::invalid("manifest", e))?;
        if m.schema_version != 2 {
            return Err(ImageError::invalid(
                "manifest",
                format!("schema version {}", m.schema_version),
            ));
        }
        match m.config.media_type.as_str() {
            OCI_CONFIG | DOCKER_CONFIG => {}
            other => return Err(ImageError::UnsupportedMediaType(other.to_owned())),
        }
        Ok(m)
    }
}

/// An operating system and CPU architecture, as in image indexes and configs.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// The platform this binary runs on, in OCI names (`linux/amd64` on x86_64).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform::new("linux", arch, None)
    }

    /// Whether an index entry for `other` runs here. A wanted variant must match, except that
    /// arm64 entries without a variant are v8.
    pub(crate) fn accepts(&self, other: &Platform) -> bool {
        if self.os != other.os || self.architecture != other.architecture {
            return false;
        }
        match (&self.variant, &other.variant) {
            (None, _) => true,
            (Some(want), Some(have)) => want == have,
            (Some(want), None) => self.architecture == "arm64" && want == "v8",
        }
    }

    /// Picks the manifest for this platform from an index: the first entry that matches.
    pub(crate) fn select<'a>(&self, index: &'a Index) -> Option<&'a Descriptor> {
        index
            .manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| self.accepts(p)))
    }
}

impl Default for Platform {
    /// The host's platform (`linux/amd64` on x86_64 nodes).
    fn default() -> Platform {
        Platform::host()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// The image config file (OCI and Docker share it).
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: Option<RawContainerConfig>,
    pub rootfs: RootFs,
}

#[derive(Clone, Debug, Deserialize)]
pub(crate) struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct RawContainerConfig {
    user: Option<String>,
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    env: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    volumes: Option<BTreeMap<String, serde_json::Value>>,
    working_dir: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    stop_signal: Option<String>,
}

impl ConfigFile {
    pub(crate) fn parse(body: &[u8]) -> Result<ConfigFile, ImageError> {
        let c: ConfigFile =
            serde_json::from_slice(body).map_err(|e| ImageError::invalid("image config", e))?;
        if c.rootfs.kind != "layers" {
            return Err(ImageError::invalid(
                "image config",
                format!("rootfs type {:?}", c.rootfs.kind),
            ));
        }
        Ok(c)
    }

    pub(crate) fn platform(&self) -> Platform {
        Platform::new(&self.os, &self.architecture, self.variant.as_deref())
    }

    pub(crate) fn image_config(&self) -> ImageConfig {
        let c = self.config.clone().unwrap_or_default();
        let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
        ImageConfig {
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            working_dir: nonempty(c.working_dir),
            user: nonempty(c.user),
            exposed_ports: c.exposed_ports.unwrap_or_default().into_keys().collect(),
            volumes: c.volumes.unwrap_or_default().into_keys().collect(),
            labels: c.labels.unwrap_or_default(),
            stop_signal: nonempty(c.stop_signal),
        }
    }
}

/// What a container started from the image runs with, unless the pod spec overrides it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `NAME=value` entries.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// `user`, `uid`, `user:group` or `uid:gid`, resolved in the container's /etc/passwd.
    pub user: Option<String>,
    /// `80/tcp`, `53/udp`.
    pub exposed_ports: Vec<String>,
    pub volumes: Vec<String>,
    pub labels: BTreeMap<String, String>,
    pub stop_signal: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_selection() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let index: Index = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2,
            "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": d, "size": 1,
                 "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"mediaType": OCI_MANIFEST, "digest": d, "size": 2,
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": OCI_MANIFEST, "digest": d, "size": 3,
                 "platform": {"os": "unknown", "architecture": "unknown"}},
            ]
        }))
        .unwrap();
        assert_eq!(
            Platform::new("linux", "amd64", None)
                .select(&index)
                .unwrap()
                .size,
            2
        );
        assert_eq!(
            Platform::new("linux", "arm64", Some("v8"))
                .select(&index)
                .unwrap()
                .size,
            1
        );
        assert!(
            Platform::new("linux", "arm", Some("v7"))
                .select(&index)
                .is_none()
        );
        assert!(
            Platform::new("linux", "arm64", Some("v8"))
                .accepts(&Platform::new("linux", "arm64", None))
        );
    }

    #[test]
    fn kinds() {
        let m = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        assert_eq!(
            manifest_kind(Some(OCI_MANIFEST), m).unwrap(),
            ManifestKind::Manifest
        );
        assert_eq!(
            manifest_kind(Some("application/json"), m).unwrap(),
            ManifestKind::Manifest
        );
        assert_eq!(
            manifest_kind(None, br#"{"schemaVersion":2,"manifests":[]}"#).unwrap(),
            ManifestKind::Index
        );
        let v1 = br#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+prettyjws"}"#;
        assert!(matches!(
            manifest_kind(None, v1),
            Err(ImageError::UnsupportedMediaType(_))
        ));
    }
}
