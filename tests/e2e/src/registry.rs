//! A private OCI registry for tests: Debian's `docker-registry` (distribution 2.8) listening on
//! 127.0.0.1 on a free port, storing in the test's temp dir, killed by PID on drop. Images reach
//! it from an OCI layout (see [`crate::image`]) with `skopeo copy`, so nothing is ever pulled
//! from a public registry.
//!
//! Needs the Debian packages `docker-registry` and `skopeo` (`apache2-utils` for Basic auth).

use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use crate::image::OciImage;
use crate::{free_port, run};

/// How the registry authenticates clients.
#[derive(Debug, Clone)]
pub enum RegistryAuth {
    /// Anonymous pushes and pulls.
    None,
    /// HTTP Basic against an htpasswd file made from this user and password.
    Basic { user: String, password: String },
    /// Docker's token auth: clients fetch a bearer token from `realm`; the registry accepts
    /// tokens for `service` from `issuer` signed by the key of `cert_pem` (the token server is
    /// the test's business).
    Token {
        realm: String,
        service: String,
        issuer: String,
        cert_pem: String,
    },
}

impl RegistryAuth {
    pub fn basic(user: &str, password: &str) -> RegistryAuth {
        RegistryAuth::Basic {
            user: user.into(),
            password: password.into(),
        }
    }
}

/// A `docker-registry serve` process on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    address: String,
    port: u16,
    data: PathBuf,
    /// `--dest-creds` for our own pushes when the registry wants credentials.
    push_creds: Option<String>,
}

impl Registry {
    /// Starts a registry whose config, log (`registry.log`) and storage (`registry-data/`) live
    /// in `dir`, and waits until it accepts connections.
    pub fn start(dir: &Path, auth: &RegistryAuth) -> Result<Registry> {
        Self::start_on(dir, auth, "127.0.0.1")
    }

    /// [`Registry::start`] listening on `address` (an address of this machine that network
    /// namespaces can reach, such as the gateway of [`crate::hosts::Hosts`]); images are named
    /// after it.
    pub fn start_on(dir: &Path, auth: &RegistryAuth, address: &str) -> Result<Registry> {
        let data = dir.join("registry-data");
        fs::create_dir_all(&data)?;
        let mut push_creds = None;
        let auth = match auth {
            RegistryAuth::None => String::new(),
            RegistryAuth::Basic { user, password } => {
                let file = dir.join("htpasswd");
                let entry = run(Command::new("htpasswd").args(["-Bbn", user, password]))
                    .context("htpasswd (apt install apache2-utils)")?;
                fs::write(&file, entry)?;
                push_creds = Some(format!("{user}:{password}"));
                format!(
                    "auth:\n  htpasswd:\n    realm: maestro-test\n    path: {}\n",
                    file.display()
                )
            }
            RegistryAuth::Token {
                realm,
                service,
                issuer,
                cert_pem,
            } => {
                let file = dir.join("token-ca.pem");
                fs::write(&file, cert_pem)?;
                format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    \
                     issuer: {issuer}\n    rootcertbundle: {}\n",
                    file.display()
                )
            }
        };
        // A port that was free a moment ago; the registry cannot be handed a bound socket.
        let port = free_port();
        let config = dir.join("registry.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {address}:{port}\n  secret: test\n{auth}",
                data.display()
            ),
        )?;
        let log = fs::File::create(dir.join("registry.log"))?;
        let child = Command::new("/usr/bin/docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .context("starting /usr/bin/docker-registry (apt install docker-registry)")?;
        // From here on, Drop kills it whatever happens.
        let mut registry = Registry {
            child,
            address: address.to_string(),
            port,
            data,
            push_creds,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect((address, port)).is_err() {
            if let Some(status) = registry.child.try_wait()? {
                anyhow::bail!(
                    "docker-registry exited with {status}: {}",
                    fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
                );
            }
            ensure!(
                Instant::now() < deadline,
                "registry did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(registry)
    }

    /// `<address>:<port>` (`127.0.0.1:<port>` unless started on another address): the
    /// registry part of image names.
    pub fn host(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The registry's storage root (`docker/registry/v2/...` below it), for tests that tamper
    /// with what it serves.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The full image name of `name` (`repo[:tag]` or `repo@digest`) in this registry.
    pub fn image(&self, name: &str) -> String {
        format!("{}/{name}", self.host())
    }

    /// `skopeo copy` of `tag` in the OCI layout at `layout` to `name` (`repo:tag`) in this
    /// registry; returns the full image name.
    pub fn push(&self, layout: &Path, tag: &str, name: &str) -> Result<String> {
        self.push_with(layout, tag, name, &[])
    }

    /// [`Registry::push`] with extra `skopeo copy` arguments (`--format v2s2` for a Docker
    /// manifest, `--all` for an index, `--dest-creds`).
    pub fn push_with(
        &self,
        layout: &Path,
        tag: &str,
        name: &str,
        extra: &[&str],
    ) -> Result<String> {
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "-q", "--dest-tls-verify=false"]);
        if let Some(creds) = &self.push_creds
            && !extra.contains(&"--dest-creds")
        {
            cmd.args(["--dest-creds", creds]);
        }
        cmd.args(extra)
            .arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{}", self.image(name)));
        run(&mut cmd).context("skopeo copy (apt install skopeo)")?;
        Ok(self.image(name))
    }

    /// Pushes a built image as `name`; returns the full image name.
    pub fn push_image(&self, image: &OciImage, name: &str) -> Result<String> {
        self.push(&image.layout, &image.tag, name)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
