//! The HTTPS front door: TLS (rustls, HTTP/2 and HTTP/1.1), bearer-token authentication,
//! routing of non-resource paths (version, health, metrics, discovery, OpenAPI) and metrics for
//! every request.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use maestro_api::ApiError;
use parking_lot::RwLock;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::discovery;
use crate::handlers::{self, MAX_BODY_BYTES};
use crate::metrics::{Gauges, Metrics};
use crate::openapi::{self, OpenApiCache};
use crate::registry::Registry;
use crate::request::{Query, Target, parse_path, wanted_discovery};
use crate::response::{Body, bytes_response, error_response, json_response, text_response};

/// Shared state of the HTTP server.
pub struct ApiState {
    pub registry: Arc<Registry>,
    /// Bearer tokens accepted, with the user they authenticate.
    pub tokens: RwLock<HashSet<String>>,
    pub metrics: Metrics,
    pub openapi: OpenApiCache,
    /// The cluster CA, served at `/cacerts` to joining nodes.
    pub ca_pem: String,
    /// Signs and checks ServiceAccount tokens.
    pub signer: std::sync::Arc<crate::tokens::Signer>,
    /// Address advertised in `/api` (`serverAddressByClientCIDRs`).
    pub advertise_address: String,
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("advertise_address", &self.advertise_address)
            .finish_non_exhaustive()
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Build the rustls configuration from PEM certificate and key.
pub fn tls_config(cert_pem: &str, key_pem: &str) -> Result<Arc<rustls::ServerConfig>, ServeError> {
    let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .ok_or_else(|| ServeError::Tls("no private key found".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accept connections until the listener fails.
pub async fn serve(listener: TcpListener, tls: Arc<rustls::ServerConfig>, state: Arc<ApiState>) {
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(pair) => pair,
            Err(err) => {
                tracing::warn!(%err, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let state = state.clone();
        tokio::spawn(async move {
            let tls_stream = match acceptor.accept(stream).await {
                Ok(s) => s,
                Err(err) => {
                    tracing::debug!(%peer, %err, "TLS handshake failed");
                    return;
                }
            };
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(state, req).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(err) = builder
                .serve_connection_with_upgrades(TokioIo::new(tls_stream), service)
                .await
            {
                tracing::debug!(%peer, %err, "connection ended with an error");
            }
        });
    }
}

/// Paths anyone may read (health checks and the version, as Kubernetes allows anonymously).
fn is_public(path: &str) -> bool {
    matches!(
        path.trim_end_matches('/'),
        "/livez"
            | "/readyz"
            | "/healthz"
            | "/version"
            | "/cacerts"
            | "/openid/v1/jwks"
            | "/.well-known/openid-configuration"
    ) || path.starts_with("/livez/")
        || path.starts_with("/readyz/")
        || path.starts_with("/healthz/")
}

fn authenticated(state: &ApiState, req: &Request<Incoming>) -> bool {
    let Some(value) = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    else {
        return false;
    };
    crate::auth::authenticate(
        &state.tokens.read(),
        &state.registry,
        &state.signer,
        token.trim(),
    )
}

/// The metrics labels of a request: (verb, resource).
fn labels(method: &Method, target: &Target, query: Option<&str>) -> (String, String) {
    match target {
        Target::Resource(p) => {
            let q = Query::parse(query);
            let verb = match *method {
                Method::GET if q.flag("watch") || p.watch_prefix => "WATCH",
                Method::GET if p.name.is_none() => "LIST",
                Method::DELETE if p.name.is_none() => "DELETECOLLECTION",
                ref m => m.as_str(),
            };
            let resource = match &p.subresource {
                Some(sub) => format!("{}/{sub}", p.resource),
                None => p.resource.clone(),
            };
            (verb.to_string(), resource)
        }
        _ => (method.as_str().to_string(), String::new()),
    }
}

async fn handle(state: Arc<ApiState>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let path = req.uri().path().to_string();
    let target = parse_path(&path);
    let (verb, resource) = labels(req.method(), &target, req.uri().query());
    let response = if !is_public(&path) && !authenticated(&state, &req) {
        error_response(&ApiError::unauthorized())
    } else {
        match collect(req).await {
            Ok(req) => match route(&state, req, target).await {
                Ok(resp) => resp,
                Err(err) => error_response(&err),
            },
            Err(err) => error_response(&err),
        }
    };
    state.metrics.observe(
        &verb,
        &resource,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Bodies larger than this are not even drained: the connection is dropped.
const MAX_DRAINED_BYTES: usize = 64 * 1024 * 1024;

async fn collect(req: Request<Incoming>) -> Result<Request<Bytes>, ApiError> {
    let (parts, mut body) = req.into_parts();
    let mut bytes = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame
            .map_err(|err| ApiError::bad_request(format!("reading the request body: {err}")))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        total += data.len();
        // Past the limit the rest is read and dropped, so that HTTP/1.1 clients still read the
        // 413 instead of a connection reset.
        if total <= MAX_BODY_BYTES {
            bytes.extend_from_slice(&data);
        } else if total > MAX_DRAINED_BYTES {
            break;
        }
    }
    if total > MAX_BODY_BYTES {
        return Err(ApiError::too_large(format!(
            "the request body exceeds the limit of {MAX_BODY_BYTES} bytes"
        )));
    }
    Ok(Request::from_parts(parts, Bytes::from(bytes)))
}

fn accept(req: &Request<Bytes>) -> Option<&str> {
    req.headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
}

fn discovery_response(version: &str, value: &serde_json::Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    bytes_response(
        200,
        &format!("application/json;g=apidiscovery.k8s.io;v={version};as=APIGroupDiscoveryList"),
        body,
    )
}

async fn route(
    state: &Arc<ApiState>,
    req: Request<Bytes>,
    target: Target,
) -> Result<Response<Body>, ApiError> {
    let registry = &state.registry;
    match target {
        Target::Resource(path) => handlers::serve(state, req, path).await,
        Target::CoreVersions => {
            let all = discovery::all_resources(&registry.custom_resources().resources);
            match wanted_discovery(accept(&req)) {
                Some(v) => Ok(discovery_response(v, &discovery::aggregated(&all, true, v))),
                None => Ok(json_response(
                    200,
                    &discovery::core_versions(&state.advertise_address),
                )),
            }
        }
        Target::Groups => {
            let _ = registry.cache().fresh().await;
            let all = discovery::all_resources(&registry.custom_resources().resources);
            match wanted_discovery(accept(&req)) {
                Some(v) => Ok(discovery_response(
                    v,
                    &discovery::aggregated(&all, false, v),
                )),
                None => Ok(json_response(
                    200,
                    &discovery::group_list(&discovery::groups(&all)),
                )),
            }
        }
        Target::Group(group) => {
            let all = discovery::all_resources(&registry.custom_resources().resources);
            discovery::groups(&all)
                .iter()
                .find(|g| g.name == group && !group.is_empty())
                .map(|g| json_response(200, &discovery::group(g)))
                .ok_or_else(ApiError::path_not_found)
        }
        Target::ResourceList { group, version } => {
            let _ = registry.cache().fresh().await;
            let all = discovery::all_resources(&registry.custom_resources().resources);
            discovery::resource_list(&all, &group, &version)
                .map(|list| json_response(200, &list))
                .ok_or_else(ApiError::path_not_found)
        }
        Target::Other(path) => match path.as_str() {
            "/version" => Ok(json_response(200, &crate::version::info())),
            // Joining nodes fetch the CA here and check it against the hash in their token.
            "/cacerts" => Ok(text_response(200, state.ca_pem.clone())),
            "/openid/v1/jwks" => Ok(json_response(200, &state.signer.jwks())),
            "/.well-known/openid-configuration" => Ok(json_response(
                200,
                &serde_json::json!({
                    "issuer": crate::tokens::ISSUER,
                    "jwks_uri": format!("https://{}/openid/v1/jwks", state.advertise_address),
                    "response_types_supported": ["id_token"],
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["ES256"],
                }),
            )),
            "/livez" | "/healthz" => Ok(text_response(200, "ok")),
            "/readyz" => match registry.cache().fresh().await {
                Ok(_) => Ok(text_response(200, "ok")),
                Err(err) => Ok(text_response(
                    500,
                    format!("[-]etcd failed: {err}\nreadyz check failed"),
                )),
            },
            "/metrics" => {
                let mut gauges = Gauges {
                    open_watches: crate::watch::OPEN_WATCHES
                        .load(std::sync::atomic::Ordering::Relaxed),
                    store_size_bytes: registry.backend().size_bytes().await.unwrap_or(0),
                    revision: registry.cache().revision(),
                    pods_bound: registry.bindings(),
                    ..Default::default()
                };
                for info in maestro_api::resources::builtins() {
                    if info.group == info.storage_group && info.version == info.storage_version {
                        let count = registry.cache().count(&info.storage_prefix());
                        let name = if info.group.is_empty() {
                            info.plural.clone()
                        } else {
                            format!("{}.{}", info.plural, info.group)
                        };
                        gauges.objects.insert(name, count);
                    }
                }
                Ok(bytes_response(
                    200,
                    "text/plain; version=0.0.4",
                    state.metrics.render(&gauges),
                ))
            }
            "/openapi/v3" => {
                let _ = registry.cache().fresh().await;
                let all = discovery::all_resources(&registry.custom_resources().resources);
                Ok(json_response(200, &openapi::index(&all)))
            }
            other if other.starts_with("/openapi/v3/") => {
                let all = discovery::all_resources(&registry.custom_resources().resources);
                let gv = other.trim_start_matches("/openapi/v3/");
                state
                    .openapi
                    .document(&all, gv)
                    .map(|bytes| bytes_response(200, "application/json", bytes))
                    .ok_or_else(ApiError::path_not_found)
            }
            other
                if other.starts_with("/livez/")
                    || other.starts_with("/readyz/")
                    || other.starts_with("/healthz/") =>
            {
                Ok(text_response(200, "ok"))
            }
            _ => Err(ApiError::path_not_found()),
        },
    }
}
