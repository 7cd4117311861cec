//! The ingress routing table: Ingress rules (networking.k8s.io/v1) of the `maestro` class,
//! resolved to endpoint addresses, and the lookup of a request's host and path.
//!
//! Matching follows the Ingress specification: an exact host beats a wildcard (`*.example.com`
//! matches exactly one label more), the longest matching path wins, `Exact` beats `Prefix` at the
//! same length, a `Prefix` matches whole path elements (`/foo` matches `/foo` and `/foo/bar`,
//! never `/foobar`), `ImplementationSpecific` is treated as `Prefix`. Requests no rule matches go
//! to the default backend, if any.

use std::collections::BTreeMap;
use std::net::SocketAddr;

/// Where matching requests go: the ready endpoints of a Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// `namespace/service:port`, for logs.
    pub name: String,
    pub endpoints: Vec<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum PathType {
    /// Ranked above `Prefix` at the same length.
    Prefix,
    Exact,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRule {
    pub path: String,
    pub path_type: PathType,
    pub backend: Backend,
}

/// TLS settings of one host: the certificate and key (PEM) from its Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// The whole table, rebuilt on every change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTable {
    /// Host (lower case; `*.` for wildcards; empty for rules without a host) → path rules.
    pub hosts: BTreeMap<String, Vec<PathRule>>,
    pub default_backend: Option<Backend>,
    /// Host (or wildcard) → certificate, for SNI.
    pub certificates: BTreeMap<String, Certificate>,
}

/// Whether `path` is under `prefix` by whole elements.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return true;
    }
    path == prefix || path.starts_with(&format!("{prefix}/"))
}

impl RouteTable {
    pub fn add(&mut self, host: &str, rule: PathRule) {
        let rules = self.hosts.entry(host.to_ascii_lowercase()).or_default();
        rules.push(rule);
        // Longest first; Exact before Prefix at equal length.
        rules.sort_by(|a, b| {
            b.path
                .len()
                .cmp(&a.path.len())
                .then(b.path_type.cmp(&a.path_type))
        });
    }

    /// The host keys that apply to `host`, most specific first.
    fn host_keys(host: &str) -> Vec<String> {
        let host = host.to_ascii_lowercase();
        let mut keys = vec![host.clone()];
        if let Some((_, parent)) = host.split_once('.') {
            keys.push(format!("*.{parent}"));
        }
        keys.push(String::new());
        keys
    }

    /// The backend for a request to `host` (without port) and `path`.
    pub fn route(&self, host: &str, path: &str) -> Option<&Backend> {
        for key in Self::host_keys(host) {
            let Some(rules) = self.hosts.get(&key) else {
                continue;
            };
            let found = rules.iter().find(|rule| match rule.path_type {
                PathType::Exact => rule.path == path,
                PathType::Prefix => prefix_matches(&rule.path, path),
            });
            if let Some(rule) = found {
                return Some(&rule.backend);
            }
        }
        self.default_backend.as_ref()
    }

    /// The certificate for a TLS client hello naming `server_name`.
    pub fn certificate(&self, server_name: &str) -> Option<&Certificate> {
        Self::host_keys(server_name)
            .iter()
            .filter(|k| !k.is_empty())
            .find_map(|k| self.certificates.get(k))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(name: &str) -> Backend {
        Backend {
            name: name.into(),
            endpoints: vec![],
        }
    }

    fn rule(path: &str, path_type: PathType, name: &str) -> PathRule {
        PathRule {
            path: path.into(),
            path_type,
            backend: backend(name),
        }
    }

    #[test]
    fn hosts_paths_and_the_default() {
        let mut t = RouteTable::default();
        t.add("shop.example.com", rule("/", PathType::Prefix, "web"));
        t.add("shop.example.com", rule("/api", PathType::Prefix, "api"));
        t.add(
            "shop.example.com",
            rule("/api", PathType::Exact, "api-root"),
        );
        t.add("*.example.com", rule("/", PathType::Prefix, "wild"));
        t.add("", rule("/health", PathType::Exact, "any-host"));
        t.default_backend = Some(backend("default"));
        let name = |host: &str, path: &str| t.route(host, path).map(|b| b.name.clone());
        assert_eq!(name("shop.example.com", "/"), Some("web".into()));
        assert_eq!(name("SHOP.example.com", "/api"), Some("api-root".into()));
        assert_eq!(name("shop.example.com", "/api/items"), Some("api".into()));
        assert_eq!(name("shop.example.com", "/apiary"), Some("web".into()));
        assert_eq!(name("blog.example.com", "/x"), Some("wild".into()));
        assert_eq!(
            name("a.blog.example.com", "/x"),
            Some("default".into()),
            "a wildcard covers one label"
        );
        assert_eq!(name("other.org", "/health"), Some("any-host".into()));
        assert_eq!(name("other.org", "/"), Some("default".into()));
    }

    #[test]
    fn certificates_by_server_name() {
        let mut t = RouteTable::default();
        let cert = |n: u8| Certificate {
            cert_pem: vec![n],
            key_pem: vec![n],
        };
        t.certificates.insert("shop.example.com".into(), cert(1));
        t.certificates.insert("*.example.com".into(), cert(2));
        assert_eq!(t.certificate("shop.example.com"), Some(&cert(1)));
        assert_eq!(t.certificate("blog.example.com"), Some(&cert(2)));
        assert_eq!(t.certificate("example.org"), None);
    }
}
