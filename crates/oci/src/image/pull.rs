//! Pulling from registries with the distribution API (`/v2/<name>/manifests|blobs/<ref>`):
//! manifest negotiation, platform selection in indexes, Basic and bearer-token auth, and layers
//! streamed straight into the unpacker (hashed on the way, never stored compressed).
//!
//! Plain HTTP is tried only for loopback registries and those listed as insecure, and only
//! after HTTPS failed to connect (as Docker and containerd do for `localhost`).

use std::collections::BTreeMap;
use std::io;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use serde::Deserialize;

use super::auth::Challenge;
use super::manifest::{
    Compression, ConfigFile, Descriptor, Index, MANIFEST_ACCEPT, Manifest, ManifestKind,
    manifest_kind,
};
use super::{Credentials, Digest, Image, ImageError, ImageStore, Platform, Reference, Result};

/// Largest manifest or index accepted (containerd's limit too): bounds memory per pull.
const MAX_MANIFEST: u64 = 4 << 20;
/// Largest image config accepted.
const MAX_CONFIG: u64 = 16 << 20;
/// How long the HTTPS attempt on a host allowed plain HTTP may take before falling back.
const HTTPS_PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Progress is reported at most this often per layer, plus at its end.
const PROGRESS_STEP: u64 = 1 << 20;

/// How to reach registries and what to send them.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// Tried in order until one is accepted (as the kubelet tries its pull secrets). Empty
    /// means anonymous.
    pub credentials: Vec<Credentials>,
    /// Registries (`host` or `host:port`) that may be reached over plain HTTP. Loopback
    /// (`127.0.0.1`, `localhost`, `[::1]`) always may.
    pub insecure_registries: Vec<String>,
    /// Registry name as written in references → `host[:port]` actually contacted (a mirror, or
    /// a test registry). `docker.io` maps to `registry-1.docker.io` unless listed here.
    pub endpoints: BTreeMap<String, String>,
    /// Which manifest of an index to pull.
    pub platform: Platform,
    /// Whole-request timeout for manifests and configs; layer downloads only time out on
    /// connect and when no data arrives for this long.
    pub timeout: Duration,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            credentials: Vec::new(),
            insecure_registries: Vec::new(),
            endpoints: BTreeMap::new(),
            platform: Platform::default(),
            timeout: Duration::from_secs(60),
        }
    }
}

/// Kubernetes' `imagePullPolicy`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    /// The API's default: `Always` for `:latest` or untagged references, else `IfNotPresent`.
    pub fn default_for(reference: &Reference) -> PullPolicy {
        if reference.digest().is_none() && reference.tag() == Some("latest") {
            PullPolicy::Always
        } else {
            PullPolicy::IfNotPresent
        }
    }

    /// Parses the API's spelling.
    pub fn parse(s: &str) -> Option<PullPolicy> {
        match s {
            "Always" => Some(PullPolicy::Always),
            "IfNotPresent" => Some(PullPolicy::IfNotPresent),
            "Never" => Some(PullPolicy::Never),
            _ => None,
        }
    }
}

/// What a pull is doing, for log lines and the pod's `Pulling`/`Pulled` events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PullEvent {
    /// The registry resolved the reference to this digest.
    Resolved { reference: String, digest: Digest },
    /// A layer is already unpacked in the store.
    LayerCached { digest: Digest },
    /// Download of a layer started; `size` from the manifest.
    LayerStarted { digest: Digest, size: u64 },
    /// Bytes of the layer received so far.
    LayerProgress {
        digest: Digest,
        downloaded: u64,
        size: u64,
    },
    /// The layer is verified and unpacked.
    LayerDone { digest: Digest },
    /// The image is in the store.
    Done {
        digest: Digest,
        downloaded: u64,
        elapsed: Duration,
    },
}

type Progress<'a> = &'a (dyn Fn(&PullEvent) + Send + Sync);

impl ImageStore {
    /// Makes sure the image is in the store as `policy` asks: `Never` only looks, `IfNotPresent`
    /// pulls when missing, `Always` asks the registry (a cheap manifest request when nothing
    /// changed). Records the use for garbage collection.
    pub async fn ensure(
        &self,
        reference: &Reference,
        policy: PullPolicy,
        options: &PullOptions,
        progress: Progress<'_>,
    ) -> Result<Image> {
        if policy != PullPolicy::Always
            && let Some(image) = self.get(reference)?
        {
            match self.touch(&image.digest) {
                Ok(()) => return Ok(image),
                // Collected since the lookup: pull it again (or report it missing).
                Err(ImageError::NotInStore(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if policy == PullPolicy::Never {
            return Err(ImageError::NeverPull {
                reference: reference.to_string(),
            });
        }
        self.pull(reference, options, progress).await
    }

    /// Pulls an image from its registry into the store (layers already there are not fetched
    /// again) and returns it. With several credentials, each is tried until one is accepted.
    pub async fn pull(
        &self,
        reference: &Reference,
        options: &PullOptions,
        progress: Progress<'_>,
    ) -> Result<Image> {
        let mut candidates: Vec<Option<&Credentials>> =
            options.credentials.iter().map(Some).collect();
        if candidates.is_empty() {
            candidates.push(None);
        }
        let mut last = None;
        for creds in candidates {
            match self.pull_with(reference, options, creds, progress).await {
                Err(e @ ImageError::Unauthorized { .. }) => last = Some(e),
                other => return other,
            }
        }
        Err(last.expect("at least one attempt"))
    }

    async fn pull_with(
        &self,
        reference: &Reference,
        options: &PullOptions,
        creds: Option<&Credentials>,
        progress: Progress<'_>,
    ) -> Result<Image> {
        let started = Instant::now();
        let mut client = Client::new(reference, options, creds)?;
        tracing::info!(image = %reference, endpoint = %client.host, "pulling image");
        let mut inflight = self.inflight();

        let (top_type, top_body) = client.manifest(reference.manifest_ref()).await?;
        let top_digest = Digest::of(&top_body);
        if let Some(d) = reference.digest() {
            d.verify(&top_digest, &format!("manifest of {reference}"))?;
        }
        progress(&PullEvent::Resolved {
            reference: reference.to_string(),
            digest: top_digest.clone(),
        });

        let (index_digest, manifest_digest, manifest_body) =
            match manifest_kind(top_type.as_deref(), &top_body)? {
                ManifestKind::Manifest => (None, top_digest.clone(), top_body),
                ManifestKind::Index => {
                    let index: Index = serde_json::from_slice(&top_body)
                        .map_err(|e| ImageError::invalid("image index", e))?;
                    let chosen = options.platform.select(&index).ok_or_else(|| {
                        ImageError::NoMatchingPlatform {
                            reference: reference.to_string(),
                            platform: options.platform.to_string(),
                        }
                    })?;
                    let (kind, body) = client.manifest(chosen.digest.as_str()).await?;
                    let digest = Digest::of(&body);
                    chosen.digest.verify(
                        &digest,
                        &format!("manifest of {reference} for {}", options.platform),
                    )?;
                    if manifest_kind(kind.as_deref(), &body)? != ManifestKind::Manifest {
                        return Err(ImageError::invalid(
                            "image index",
                            "an index entry is itself an index",
                        ));
                    }
                    inflight.add(format!("blob:{}", top_digest.hex()));
                    // Kept with the image so the repo digest can be checked without a request.
                    self.write_blob(&top_body, Some(&top_digest))?;
                    (Some(top_digest.clone()), digest, body)
                }
            };
        inflight.add(format!("blob:{}", manifest_digest.hex()));
        let names = names_for(reference, &top_digest);

        // Nothing changed since the last pull: only the names may be new.
        if let Some(image) = self.refresh_image(&manifest_digest, index_digest.as_ref(), &names)? {
            progress(&PullEvent::Done {
                digest: manifest_digest,
                downloaded: 0,
                elapsed: started.elapsed(),
            });
            return Ok(image);
        }

        let manifest = Manifest::parse(&manifest_body)?;
        inflight.add(format!("blob:{}", manifest.config.digest.hex()));
        let config_body = client
            .blob_bytes(&manifest.config.digest, MAX_CONFIG)
            .await?;
        manifest
            .config
            .digest
            .verify(&Digest::of(&config_body), "image config")?;
        let config = ConfigFile::parse(&config_body)?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::invalid(
                "image",
                format!(
                    "{} layers in the manifest, {} diff ids in the config",
                    manifest.layers.len(),
                    config.rootfs.diff_ids.len()
                ),
            ));
        }
        for layer in &manifest.layers {
            Compression::from_media_type(&layer.media_type)?;
        }

        let mut downloaded = 0;
        for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            inflight.add(format!("layer:{}", diff_id.hex()));
            if self.has_layer(diff_id) {
                progress(&PullEvent::LayerCached {
                    digest: layer.digest.clone(),
                });
                continue;
            }
            downloaded += self
                .fetch_layer(&mut client, layer, diff_id, progress)
                .await?;
        }

        self.write_blob(&config_body, Some(&manifest.config.digest))?;
        self.write_blob(&manifest_body, Some(&manifest_digest))?;
        let image = self.commit_image(
            &manifest_digest,
            &manifest.config.digest,
            &config,
            index_digest.as_ref(),
            &names,
        )?;
        let elapsed = started.elapsed();
        tracing::info!(image = %reference, digest = %manifest_digest, bytes = downloaded, ?elapsed, "pulled image");
        progress(&PullEvent::Done {
            digest: manifest_digest,
            downloaded,
            elapsed,
        });
        Ok(image)
    }

    /// Streams one layer from the registry into the unpacker on a blocking thread. Returns the
    /// bytes downloaded.
    async fn fetch_layer(
        &self,
        client: &mut Client,
        layer: &Descriptor,
        diff_id: &Digest,
        progress: Progress<'_>,
    ) -> Result<u64> {
        let compression = Compression::from_media_type(&layer.media_type)?;
        progress(&PullEvent::LayerStarted {
            digest: layer.digest.clone(),
            size: layer.size,
        });
        tracing::debug!(layer = %layer.digest, size = layer.size, "downloading layer");
        let response = client.blob(&layer.digest).await?;
        let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<bytes::Bytes>>(16);
        let store = self.clone();
        let (blob_digest, diff) = (layer.digest.clone(), diff_id.clone());
        let unpack = tokio::task::spawn_blocking(move || {
            store.unpack_layer(
                ChannelReader {
                    rx,
                    current: Default::default(),
                },
                compression,
                Some(&blob_digest),
                &diff,
            )
        });

        let mut stream = response.bytes_stream();
        let (mut received, mut reported) = (0u64, 0u64);
        let mut network_error = None;
        loop {
            let next = tokio::time::timeout(client.timeout, stream.next()).await;
            let chunk = match next {
                Err(_) => Err(client.network(format!(
                    "no data for {:?} while downloading {}",
                    client.timeout, layer.digest
                ))),
                Ok(None) => break,
                Ok(Some(Ok(chunk))) => Ok(chunk),
                Ok(Some(Err(e))) => Err(client.network(describe(&e))),
            };
            match chunk {
                Ok(chunk) => {
                    received += chunk.len() as u64;
                    if received > layer.size {
                        // The descriptor's size is part of the content's identity; this also
                        // stops a registry that streams without end.
                        let e = ImageError::invalid(
                            format!("layer {}", layer.digest),
                            format!("more than the {} bytes its descriptor says", layer.size),
                        );
                        let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                        network_error = Some(e);
                        break;
                    }
                    if received - reported >= PROGRESS_STEP {
                        reported = received;
                        progress(&PullEvent::LayerProgress {
                            digest: layer.digest.clone(),
                            downloaded: received,
                            size: layer.size,
                        });
                    }
                    if tx.send(Ok(chunk)).await.is_err() {
                        break; // the unpacker failed; its error says why
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
                    network_error = Some(e);
                    break;
                }
            }
        }
        drop(tx);
        let unpacked = unpack
            .await
            .map_err(|e| ImageError::invalid("layer", format!("unpack task: {e}")))?;
        if let Some(e) = network_error {
            return Err(e);
        }
        if received < layer.size && unpacked.is_err() {
            // A truncated download makes the unpacker fail; the truncation is the cause.
            return Err(client.network(format!(
                "layer {}: the connection ended after {received} of {} bytes",
                layer.digest, layer.size
            )));
        }
        unpacked?;
        if received != layer.size {
            return Err(ImageError::invalid(
                format!("layer {}", layer.digest),
                format!("{received} bytes, its descriptor says {}", layer.size),
            ));
        }
        progress(&PullEvent::LayerProgress {
            digest: layer.digest.clone(),
            downloaded: received,
            size: layer.size,
        });
        progress(&PullEvent::LayerDone {
            digest: layer.digest.clone(),
        });
        Ok(received)
    }
}

/// The names a pull records: the reference as given (tag) and the repo digest.
fn names_for(reference: &Reference, top_digest: &Digest) -> Vec<String> {
    let mut names = vec![reference.with_digest(top_digest.clone()).to_string()];
    if reference.digest().is_none() {
        names.push(reference.to_string());
    }
    names
}

/// The blocking unpacker's view of the chunks the async download hands over.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<bytes::Bytes>>,
    current: bytes::Bytes,
}

impl io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

fn describe(e: &reqwest::Error) -> String {
    // reqwest's own message is terse ("error sending request"); the cause says what happened.
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// One registry conversation: endpoint, scheme, and the authorization earned so far.
struct Client {
    http: reqwest::Client,
    /// The registry as named in the reference (for messages).
    registry: String,
    /// `host[:port]` contacted.
    host: String,
    repository: String,
    /// `https`, or `http` once HTTPS failed on a host allowed plain HTTP.
    scheme: &'static str,
    plain_http_allowed: bool,
    credentials: Option<Credentials>,
    authorization: Option<String>,
    timeout: Duration,
}

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
}

impl Client {
    fn new(
        reference: &Reference,
        options: &PullOptions,
        creds: Option<&Credentials>,
    ) -> Result<Client> {
        let registry = reference.registry().to_owned();
        let host = match options.endpoints.get(&registry) {
            Some(h) => h.clone(),
            None if registry == super::reference::DOCKER_HUB => "registry-1.docker.io".to_owned(),
            None => registry.clone(),
        };
        // Decided by the host actually contacted: a mirror of an insecure name is not insecure.
        let plain_http_allowed = plain_http_allowed(&host, &options.insecure_registries);
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .user_agent(concat!("maestro/", env!("CARGO_PKG_VERSION")));
        if is_loopback(&host) {
            // HTTP(S)_PROXY from the environment applies to real registries; a proxy cannot
            // reach this machine's loopback.
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| ImageError::Network {
            registry: registry.clone(),
            message: describe(&e),
        })?;
        Ok(Client {
            http,
            registry,
            host,
            repository: reference.repository().to_owned(),
            scheme: "https",
            plain_http_allowed,
            credentials: creds.cloned(),
            authorization: None,
            timeout: options.timeout,
        })
    }

    fn network(&self, message: String) -> ImageError {
        ImageError::Network {
            registry: self.registry.clone(),
            message,
        }
    }

    /// GET `/v2/<repository>/<path>`, answering auth challenges and falling back to plain HTTP
    /// where allowed. Statuses other than 2xx become errors.
    async fn get(
        &mut self,
        path: &str,
        accept: Option<&str>,
        what: &str,
        whole_timeout: bool,
    ) -> Result<reqwest::Response> {
        let mut authenticated = false;
        loop {
            let url = format!(
                "{}://{}/v2/{}/{}",
                self.scheme, self.host, self.repository, path
            );
            let mut request = self.http.get(&url);
            if whole_timeout {
                request = request.timeout(self.timeout);
            }
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            if let Some(auth) = &self.authorization {
                request = request.header(AUTHORIZATION, auth);
            }
            // Bounds the wait for the response head even where the body may take long. A plain
            // HTTP server may never answer a TLS hello, so the HTTPS probe of a host allowed
            // plain HTTP gets a short wait and falls back on it too.
            let probing = self.scheme == "https" && self.plain_http_allowed;
            let wait = if probing {
                self.timeout.min(HTTPS_PROBE_TIMEOUT)
            } else {
                self.timeout
            };
            let sent = match tokio::time::timeout(wait, request.send()).await {
                Ok(sent) => sent,
                Err(_) if probing => {
                    tracing::debug!(registry = %self.host, "no HTTPS answer, trying plain HTTP");
                    self.scheme = "http";
                    continue;
                }
                Err(_) => {
                    return Err(self.network(format!("no response within {wait:?} from {url}")));
                }
            };
            let response = match sent {
                Ok(r) => r,
                Err(e) if probing => {
                    tracing::debug!(registry = %self.host, "HTTPS failed ({}), trying plain HTTP", describe(&e));
                    self.scheme = "http";
                    continue;
                }
                Err(e) => return Err(self.network(describe(&e))),
            };
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            if status == StatusCode::UNAUTHORIZED && !authenticated {
                let challenge = response
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|h| h.to_str().ok())
                    .and_then(Challenge::parse);
                authenticated = true;
                match challenge {
                    Some(Challenge::Basic) => match &self.credentials {
                        Some(c) => self.authorization = Some(c.basic_header()),
                        None => return Err(self.unauthorized("authentication required")),
                    },
                    Some(Challenge::Bearer {
                        realm,
                        service,
                        scope,
                    }) => {
                        let scope =
                            scope.unwrap_or_else(|| format!("repository:{}:pull", self.repository));
                        let token = self.token(&realm, service.as_deref(), &scope).await?;
                        self.authorization = Some(format!("Bearer {token}"));
                    }
                    None => {
                        return Err(
                            self.unauthorized("authentication required (no usable challenge)")
                        );
                    }
                }
                continue;
            }
            let body = response.text().await.unwrap_or_default();
            let message = registry_message(&body)
                .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned());
            return Err(match status {
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => self.unauthorized(&message),
                StatusCode::NOT_FOUND => ImageError::NotFound {
                    reference: what.to_owned(),
                },
                _ => ImageError::Registry {
                    registry: self.registry.clone(),
                    status: status.as_u16(),
                    message,
                },
            });
        }
    }

    fn unauthorized(&self, message: &str) -> ImageError {
        ImageError::Unauthorized {
            registry: self.registry.clone(),
            message: message.to_owned(),
        }
    }

    /// Exchanges the credentials (or nothing, for anonymous pulls) for a bearer token.
    async fn token(&self, realm: &str, service: Option<&str>, scope: &str) -> Result<String> {
        let url = reqwest::Url::parse(realm)
            .map_err(|e| self.unauthorized(&format!("bad token realm {realm:?}: {e}")))?;
        let realm_host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
            None => url.host_str().unwrap_or("").to_owned(),
        };
        // Credentials never travel in clear text to a host that was not allowed plain HTTP.
        if url.scheme() != "https"
            && !(self.plain_http_allowed && (realm_host == self.host || is_loopback(&realm_host)))
        {
            return Err(self.unauthorized(&format!("refusing token realm {realm} over plain HTTP")));
        }
        let mut request = self
            .http
            .get(url)
            .timeout(self.timeout)
            .query(&[("scope", scope)]);
        if let Some(service) = service {
            request = request.query(&[("service", service)]);
        }
        if let Some(c) = &self.credentials {
            request = request.basic_auth(&c.username, Some(&c.password));
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.network(format!("token request: {}", describe(&e))))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            let message = registry_message(&body)
                .unwrap_or_else(|| format!("token server answered {status}"));
            return Err(
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                    self.unauthorized(&message)
                } else {
                    ImageError::Registry {
                        registry: self.registry.clone(),
                        status: status.as_u16(),
                        message,
                    }
                },
            );
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| self.network(format!("token response: {}", describe(&e))))?;
        let body: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| self.unauthorized(&format!("unreadable token response: {e}")))?;
        body.token
            .or(body.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| self.unauthorized("token response without a token"))
    }

    /// Fetches a manifest or index by tag or digest: its Content-Type and body.
    async fn manifest(&mut self, reference: &str) -> Result<(Option<String>, Vec<u8>)> {
        let what = format!("{}/{}:{reference}", self.registry, self.repository)
            .replace(":sha256:", "@sha256:");
        let response = self
            .get(
                &format!("manifests/{reference}"),
                Some(MANIFEST_ACCEPT),
                &what,
                true,
            )
            .await?;
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned);
        let body = self.read_limited(response, MAX_MANIFEST).await?;
        Ok((content_type, body))
    }

    async fn blob(&mut self, digest: &Digest) -> Result<reqwest::Response> {
        let what = format!("{}/{}@{digest}", self.registry, self.repository);
        self.get(&format!("blobs/{digest}"), None, &what, false)
            .await
    }

    async fn blob_bytes(&mut self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        let response = self.blob(digest).await?;
        self.read_limited(response, limit).await
    }

    async fn read_limited(&self, response: reqwest::Response, limit: u64) -> Result<Vec<u8>> {
        if response.content_length().is_some_and(|l| l > limit) {
            return Err(ImageError::invalid(
                "registry response",
                format!("larger than {limit} bytes"),
            ));
        }
        let mut body = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.network(describe(&e)))?;
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(ImageError::invalid(
                    "registry response",
                    format!("larger than {limit} bytes"),
                ));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

/// The first message of a distribution error body (`{"errors":[{"code":..,"message":..}]}`).
fn registry_message(body: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let e: Errors = serde_json::from_str(body).ok()?;
    let first = e.errors.into_iter().next()?;
    Some(if first.code.is_empty() {
        first.message
    } else {
        format!("{}: {}", first.code, first.message)
    })
}

fn host_only(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

fn is_loopback(host: &str) -> bool {
    let h = host_only(host);
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn plain_http_allowed(host: &str, insecure: &[String]) -> bool {
    is_loopback(host) || insecure.iter().any(|i| i == host || i == host_only(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_where_allowed() {
        assert!(plain_http_allowed("127.0.0.1:5000", &[]));
        assert!(plain_http_allowed("localhost", &[]));
        assert!(plain_http_allowed("[::1]:5000", &[]));
        assert!(!plain_http_allowed("registry.local:5000", &[]));
        assert!(plain_http_allowed(
            "registry.local:5000",
            &["registry.local".into()]
        ));
        assert!(plain_http_allowed(
            "registry.local:5000",
            &["registry.local:5000".into()]
        ));
        assert!(!plain_http_allowed(
            "registry.local:5001",
            &["registry.local:5000".into()]
        ));
    }

    #[test]
    fn policies_and_messages() {
        assert_eq!(
            PullPolicy::default_for(&Reference::parse("a").unwrap()),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::default_for(&Reference::parse("a:1").unwrap()),
            PullPolicy::IfNotPresent
        );
        assert_eq!(
            registry_message(
                r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
            )
            .unwrap(),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
    }
}
