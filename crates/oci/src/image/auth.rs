//! Registry credentials: user/password pairs, how they are found in the `.dockerconfigjson` (or
//! legacy `.dockercfg`) of an imagePullSecret, and the `WWW-Authenticate` challenges that say
//! whether a registry wants them as Basic auth or exchanged for a bearer token.

use std::collections::BTreeMap;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use super::{ImageError, Reference};

/// A user name and password (or token used as password) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    pub fn new(username: &str, password: &str) -> Credentials {
        Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        }
    }

    /// The `Authorization` header value for Basic auth.
    pub(crate) fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            STANDARD.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

impl fmt::Debug for Credentials {
    // Never print the password (pull errors are logged).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The registry entries of a docker config (`kubernetes.io/dockerconfigjson` secrets hold
/// `{"auths": {...}}`, `kubernetes.io/dockercfg` ones the bare map).
#[derive(Clone, Debug, Default)]
pub struct DockerConfig {
    entries: Vec<(String, Credentials)>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

impl DockerConfig {
    /// Parses a `.dockerconfigjson` or `.dockercfg` document.
    pub fn parse(bytes: &[u8]) -> Result<DockerConfig, ImageError> {
        let invalid = |e: &dyn fmt::Display| ImageError::invalid("docker config", e);
        let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| invalid(&e))?;
        let auths = match value.get("auths") {
            Some(auths) => auths.clone(),
            None => value,
        };
        let map: BTreeMap<String, AuthEntry> =
            serde_json::from_value(auths).map_err(|e| invalid(&e))?;
        let mut entries = Vec::new();
        for (key, entry) in map {
            let creds = match (entry.username, entry.password, entry.auth) {
                (Some(u), Some(p), _) if !u.is_empty() => Credentials {
                    username: u,
                    password: p,
                },
                (_, _, Some(auth)) if !auth.is_empty() => {
                    let decoded = STANDARD.decode(auth.trim()).map_err(|e| invalid(&e))?;
                    let decoded = String::from_utf8(decoded).map_err(|e| invalid(&e))?;
                    let (u, p) = decoded
                        .split_once(':')
                        .ok_or_else(|| invalid(&"auth is not base64(user:password)"))?;
                    Credentials::new(u, p)
                }
                _ => continue,
            };
            entries.push((normalize_key(&key), creds));
        }
        Ok(DockerConfig { entries })
    }

    /// Adds the entries of another config after this one's (several pull secrets).
    pub fn extend(&mut self, other: DockerConfig) {
        self.entries.extend(other.entries);
    }

    /// The credentials that apply to `reference`, most specific first, as the kubelet matches
    /// them: the key's host (with `*` standing for one DNS label) must match the registry, and
    /// a key with a path must be a prefix of the repository.
    pub fn credentials_for(&self, reference: &Reference) -> Vec<Credentials> {
        let mut found: Vec<(usize, &Credentials)> = self
            .entries
            .iter()
            .filter(|(key, _)| key_matches(key, reference))
            .map(|(key, c)| (key.len(), c))
            .collect();
        found.sort_by_key(|f| std::cmp::Reverse(f.0));
        let mut out: Vec<Credentials> = Vec::new();
        for (_, c) in found {
            if !out.contains(c) {
                out.push(c.clone());
            }
        }
        out
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://r.io:5000/v2/` → `r.io:5000`.
fn normalize_key(key: &str) -> String {
    let key = key.trim();
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let key = key.trim_end_matches('/');
    let key = key
        .strip_suffix("/v1")
        .or_else(|| key.strip_suffix("/v2"))
        .unwrap_or(key);
    match key.split_once('/') {
        Some((host, path)) => format!("{}/{path}", canonical_host(host)),
        None => canonical_host(key).to_owned(),
    }
}

fn canonical_host(host: &str) -> &str {
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => "docker.io",
        other => other,
    }
}

fn key_matches(key: &str, reference: &Reference) -> bool {
    let (host, path) = match key.split_once('/') {
        Some((h, p)) => (h, Some(p)),
        None => (key, None),
    };
    let registry = reference.registry();
    let host_ok = if host.contains('*') {
        let (hp, rp) = (
            host.split('.').collect::<Vec<_>>(),
            registry.split('.').collect::<Vec<_>>(),
        );
        hp.len() == rp.len() && hp.iter().zip(&rp).all(|(h, r)| *h == "*" || h == r)
    } else {
        host == registry
    };
    host_ok
        && path.is_none_or(|p| {
            let repo = reference.repository();
            repo == p || repo.starts_with(&format!("{p}/"))
        })
}

/// A parsed `WWW-Authenticate` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
    pub(crate) fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header
            .split_once(char::is_whitespace)
            .unwrap_or((header, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return Some(Challenge::Basic);
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return None;
        }
        let params = parse_params(rest);
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        Some(Challenge::Bearer {
            realm: get("realm")?,
            service: get("service"),
            scope: get("scope"),
        })
    }
}

/// `a="x, y",b=z` → [(a, "x, y"), (b, z)]: quoted values may hold commas.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() || chars.next() != Some('=') {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            value = std::iter::from_fn(|| chars.next_if(|c| *c != ','))
                .collect::<String>()
                .trim()
                .to_owned();
        }
        out.push((key.trim().to_owned(), value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            Challenge::parse(r#"Basic realm="basic-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.example/token".into(),
                service: Some("registry.example".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(Challenge::parse("Negotiate abc"), None);
    }

    #[test]
    fn docker_config_matching() {
        let cfg = DockerConfig::parse(
            br#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
                "127.0.0.1:5000": {"username": "u", "password": "p"},
                "127.0.0.1:5000/team": {"username": "team", "password": "t"},
                "*.example.com": {"auth": "dzp4"}
            }}"#,
        )
        .unwrap();
        let get = |r: &str| cfg.credentials_for(&Reference::parse(r).unwrap());
        assert_eq!(get("busybox"), vec![Credentials::new("hub", "secret")]);
        assert_eq!(get("127.0.0.1:5000/app"), vec![Credentials::new("u", "p")]);
        assert_eq!(
            get("127.0.0.1:5000/team/app"),
            vec![Credentials::new("team", "t"), Credentials::new("u", "p")]
        );
        assert_eq!(get("r.example.com/x"), vec![Credentials::new("w", "x")]);
        assert!(get("a.b.example.com/x").is_empty());
        assert!(get("127.0.0.1:5001/app").is_empty());
        let legacy = DockerConfig::parse(br#"{"r.io": {"auth": "dTpw"}}"#).unwrap();
        assert_eq!(
            legacy.credentials_for(&Reference::parse("r.io/x").unwrap()),
            vec![Credentials::new("u", "p")]
        );
        assert!(DockerConfig::parse(br#"{"auths": {"r.io": {"auth": "!!"}}}"#).is_err());
    }
}
