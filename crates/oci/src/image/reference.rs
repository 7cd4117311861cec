//! Image references (`registry/repository:tag@sha256:...`) normalized the way Docker and the
//! kubelet do, so `busybox` and `docker.io/library/busybox:latest` are the same image.

use std::fmt;
use std::str::FromStr;

use super::{Digest, ImageError};

/// Docker Hub's name in references; the host actually contacted is `registry-1.docker.io`.
pub(crate) const DOCKER_HUB: &str = "docker.io";

/// A normalized image reference. Displayed in full (`docker.io/library/busybox:latest`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses a reference with Docker's defaults: no registry means `docker.io`, a one-part
    /// Docker Hub name gets `library/`, and a reference without tag or digest means `:latest`.
    pub fn parse(s: &str) -> Result<Reference, ImageError> {
        let invalid = |reason: &str| ImageError::InvalidReference {
            reference: s.to_owned(),
            reason: reason.to_owned(),
        };
        if s.is_empty() {
            return Err(invalid("empty reference"));
        }
        let (name, digest) = match s.split_once('@') {
            Some((name, digest)) => {
                let digest = Digest::parse(digest).map_err(|_| invalid("invalid digest"))?;
                (name, Some(digest))
            }
            None => (s, None),
        };
        // A ':' after the last '/' starts the tag; one before it belongs to a registry port.
        let (name, tag) = match name.rfind(':') {
            Some(i) if !name[i..].contains('/') => (&name[..i], Some(&name[i + 1..])),
            _ => (name, None),
        };
        if let Some(tag) = tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && !tag.starts_with(['.', '-'])
                && tag
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
            if !valid {
                return Err(invalid("invalid tag"));
            }
        }
        // The first component is a registry when it looks like a host: it has a dot or a
        // port, is `localhost`, or has upper case (which repositories never have).
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.bytes().any(|b| b.is_ascii_uppercase()) =>
            {
                (first, rest.to_owned())
            }
            _ => (DOCKER_HUB, name.to_owned()),
        };
        if !valid_registry(registry) {
            return Err(invalid("invalid registry host"));
        }
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB
        } else {
            registry
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("repository name must be lowercase"));
        }
        if !repository.split('/').all(valid_path_component) {
            return Err(invalid("invalid repository name"));
        }
        if registry.len() + 1 + repository.len() > 255 {
            return Err(invalid(
                "repository name must not be more than 255 characters",
            ));
        }
        let tag = match (tag, &digest) {
            (Some(tag), _) => Some(tag.to_owned()),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_owned()),
        };
        Ok(Reference {
            registry: registry.to_owned(),
            repository,
            tag,
            digest,
        })
    }

    /// The registry as written in references (`docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same repository pinned to `digest` (no tag): the "repo digest" form.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// What to ask the registry's manifest endpoint for: the digest when there is one.
    pub(crate) fn manifest_ref(&self) -> &str {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.as_str(),
            (None, Some(t)) => t,
            (None, None) => "latest",
        }
    }
}

fn valid_registry(host: &str) -> bool {
    let (host, port) = match host.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !p.contains(']') => (h, Some(p)),
        _ => (host, None),
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        !v6.is_empty()
            && v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
    } else {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    port_ok && host_ok
}

/// One path component: lowercase alphanumerics joined by `.`, `_`, `__` or runs of `-`.
fn valid_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-')) {
            return false;
        }
    }
    true
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reference::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn norm(s: &str) -> String {
        Reference::parse(s).unwrap().to_string()
    }

    #[test]
    fn docker_defaults() {
        assert_eq!(norm("busybox"), "docker.io/library/busybox:latest");
        assert_eq!(norm("busybox:1.36"), "docker.io/library/busybox:1.36");
        assert_eq!(
            norm("index.docker.io/busybox"),
            "docker.io/library/busybox:latest"
        );
        assert_eq!(norm("user/app"), "docker.io/user/app:latest");
        assert_eq!(norm("quay.io/a/b/c:v1"), "quay.io/a/b/c:v1");
        assert_eq!(norm("localhost/app"), "localhost/app:latest");
        assert_eq!(norm("127.0.0.1:5000/app"), "127.0.0.1:5000/app:latest");
        assert_eq!(norm("[::1]:5000/app:x"), "[::1]:5000/app:x");
        assert_eq!(
            norm(&format!("busybox@{D}")),
            format!("docker.io/library/busybox@{D}")
        );
        assert_eq!(
            norm(&format!("r.io:443/a:t@{D}")),
            format!("r.io:443/a:t@{D}")
        );
        let r = Reference::parse("127.0.0.1:5000/a/b").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "a/b");
        assert_eq!(r.manifest_ref(), "latest");
        assert_eq!(r.with_digest(Digest::parse(D).unwrap()).manifest_ref(), D);
    }

    #[test]
    fn rejects_invalid() {
        for bad in [
            "",
            "Busybox",
            "docker.io/Library/x",
            "a:",
            "a:-x",
            "a@sha256:12",
            "a//b",
            "a/-b",
            "a/b_",
            "a..b",
            "a___b",
            "bad host!/x",
            "r.io:port/x",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(Reference::parse("a__b/c-d/e.f/g---h").is_ok());
        let long = format!("r.io/{}", "a".repeat(251));
        assert!(Reference::parse(&long).is_err());
    }
}
