//! The cluster's credentials, created on first start in the data directory: a CA, the API
//! server's serving certificate signed by it, the admin bearer token, and a kubeconfig that
//! points kubectl at the server with no other flag.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// Why credentials could not be created or loaded.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("certificate generation: {0}")]
    Cert(#[from] rcgen::Error),
}

/// Paths of everything the server keeps in its data directory.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub ca_cert_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub admin_token: String,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> PkiError + '_ {
    move |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Write a secret file readable by its owner only.
fn write_private(path: &Path, contents: &str) -> Result<(), PkiError> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io_err(path))?;
    file.write_all(contents.as_bytes()).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "maestro-ca");
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    params
}

/// The names the serving certificate covers: loopback, localhost, the host name and any extra
/// addresses the operator gives.
fn serving_params(extra_sans: &[String]) -> Result<CertificateParams, PkiError> {
    let mut names = vec![
        "localhost".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        "kubernetes.default.svc.cluster.local".to_string(),
    ];
    if let Ok(host) = fs::read_to_string("/etc/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            names.push(host.to_string());
        }
    }
    let mut params = CertificateParams::new(names)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "maestro-apiserver");
    params.distinguished_name = dn;
    for ip in ["127.0.0.1", "::1"]
        .iter()
        .map(|s| s.to_string())
        .chain(extra_sans.iter().cloned())
    {
        match ip.parse::<IpAddr>() {
            Ok(addr) => params.subject_alt_names.push(SanType::IpAddress(addr)),
            Err(_) => params
                .subject_alt_names
                .push(SanType::DnsName(ip.as_str().try_into()?)),
        }
    }
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

/// A random token of 32 bytes, hex-encoded.
fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Load the credentials from `dir`, creating whatever is missing.
pub fn ensure(dir: &Path, extra_sans: &[String]) -> Result<Credentials, PkiError> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let ca_cert_path = dir.join("ca.crt");
    let ca_key_path = dir.join("ca.key");
    let cert_path = dir.join("server.crt");
    let key_path = dir.join("server.key");
    let token_path = dir.join("admin.token");

    let (ca_cert_pem, ca_key) = if ca_cert_path.exists() && ca_key_path.exists() {
        let cert = fs::read_to_string(&ca_cert_path).map_err(io_err(&ca_cert_path))?;
        let key = fs::read_to_string(&ca_key_path).map_err(io_err(&ca_key_path))?;
        (cert, KeyPair::from_pem(&key)?)
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params().self_signed(&key)?;
        write_private(&ca_key_path, &key.serialize_pem())?;
        write_private(&ca_cert_path, &cert.pem())?;
        (cert.pem(), key)
    };
    let (server_cert_pem, server_key_pem) = if cert_path.exists() && key_path.exists() {
        (
            fs::read_to_string(&cert_path).map_err(io_err(&cert_path))?,
            fs::read_to_string(&key_path).map_err(io_err(&key_path))?,
        )
    } else {
        let key = KeyPair::generate()?;
        let issuer = Issuer::new(ca_params(), &ca_key);
        let cert = serving_params(extra_sans)?.signed_by(&key, &issuer)?;
        write_private(&key_path, &key.serialize_pem())?;
        write_private(&cert_path, &cert.pem())?;
        (cert.pem(), key.serialize_pem())
    };
    let admin_token = if token_path.exists() {
        fs::read_to_string(&token_path)
            .map_err(io_err(&token_path))?
            .trim()
            .to_string()
    } else {
        let token = new_token();
        write_private(&token_path, &token)?;
        token
    };
    Ok(Credentials {
        ca_cert_pem,
        server_cert_pem,
        server_key_pem,
        admin_token,
    })
}

/// The kubeconfig text for `server` (e.g. `https://127.0.0.1:6443`).
pub fn kubeconfig(creds: &Credentials, server: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(creds.ca_cert_pem.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: maestro
  cluster:
    server: {server}
    certificate-authority-data: {ca}
contexts:
- name: maestro
  context:
    cluster: maestro
    user: admin
    namespace: default
current-context: maestro
users:
- name: admin
  user:
    token: {token}
",
        token = creds.admin_token
    )
}

/// Write `DIR/kubeconfig` (owner-only: it holds the admin token).
pub fn write_kubeconfig(
    dir: &Path,
    creds: &Credentials,
    server: &str,
) -> Result<PathBuf, PkiError> {
    let path = dir.join("kubeconfig");
    write_private(&path, &kubeconfig(creds, server))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_created_once_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure(dir.path(), &[]).unwrap();
        let second = ensure(dir.path(), &[]).unwrap();
        assert_eq!(first.admin_token, second.admin_token);
        assert_eq!(first.server_cert_pem, second.server_cert_pem);
        assert_eq!(first.admin_token.len(), 64);
        let config = kubeconfig(&first, "https://127.0.0.1:6443");
        assert!(config.contains("server: https://127.0.0.1:6443"));
        assert!(config.contains(&first.admin_token));
        let mode = std::fs::metadata(dir.path().join("admin.token"))
            .unwrap()
            .permissions();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(mode.mode() & 0o777, 0o600);
    }
}
