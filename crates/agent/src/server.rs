//! The agent's HTTPS endpoint (the kubelet's port 10250): container logs, and exec and
//! port-forward streams (WebSocket upgrades, see [`crate::streaming`]), served to the API server
//! only. Requests must carry a token the API server signed for the `maestro-agent` audience; the
//! agent checks it with the cluster key it fetched from `/openid/v1/jwks`. The certificate is
//! self-signed (the API server does not verify agents, as kube-apiserver does not verify kubelets
//! by default).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::logs::{self, LogOptions};

pub type Body = BoxBody<Bytes, std::io::Error>;

/// Audience the API server's tokens carry for agents.
pub const AUDIENCE: &str = "maestro-agent";

/// Why a stream cannot be served; rendered as a Kubernetes Status.
#[derive(Debug, Clone)]
pub struct StreamError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

impl StreamError {
    pub fn not_found(message: impl Into<String>) -> Self {
        StreamError {
            code: 404,
            reason: "NotFound",
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        StreamError {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
        }
    }
}

/// What the pod manager tells the server about its pods' streams.
pub trait PodStreams: Send + Sync + 'static {
    /// The CRI log file of a container's current (or, with `previous`, last terminated) run.
    fn log_path(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        previous: bool,
    ) -> Result<PathBuf, StreamError>;
    /// Whether the container is running now (a followed log ends when it stops).
    fn running(&self, namespace: &str, pod: &str, container: &str) -> bool;
    /// Starts a process in a running container of the pod (`kubectl exec`). `container` is
    /// `None` when the request named none: the pod's only container, else a BadRequest.
    fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        exec: maestro_oci::runtime::ExecConfig,
    ) -> Result<maestro_oci::runtime::ExecSession, StreamError>;
    /// The pod's IP, reachable from the node (port-forward connects to it).
    fn pod_ip(&self, namespace: &str, pod: &str) -> Result<std::net::IpAddr, StreamError>;
}

/// The key that signs the API server's tokens, from a JWKS document.
pub fn key_from_jwks(jwks: &Value) -> Option<Vec<u8>> {
    let key = jwks
        .get("keys")?
        .as_array()?
        .iter()
        .find(|k| k["kty"] == "EC" && k["crv"] == "P-256")?;
    let decode = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()
    };
    let (x, y) = (decode(key["x"].as_str()?)?, decode(key["y"].as_str()?)?);
    let mut point = vec![4u8];
    point.extend(x);
    point.extend(y);
    Some(point)
}

/// Check an ES256 token against `public_key` and require the agent audience.
pub fn authorized(public_key: &[u8], header: Option<&str>, now: i64) -> bool {
    let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let decode = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()
    };
    let (Some(sig), Some(payload)) = (decode(sig), decode(payload)) else {
        return false;
    };
    let signed = &token[..token.rfind('.').expect("three parts")];
    if ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        public_key,
    )
    .verify(signed.as_bytes(), &sig)
    .is_err()
    {
        return false;
    }
    let Ok(claims) = serde_json::from_slice::<Value>(&payload) else {
        return false;
    };
    let audience_ok = claims["aud"]
        .as_array()
        .is_some_and(|a| a.iter().any(|x| x == AUDIENCE));
    audience_ok && claims["exp"].as_i64().is_some_and(|exp| exp > now)
}

/// An empty body (101 answers).
pub(crate) fn empty() -> Body {
    full(Bytes::new())
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

fn status(err: &StreamError) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": err.message, "reason": err.reason, "code": err.code});
    let mut resp = Response::new(full(body.to_string()));
    *resp.status_mut() =
        StatusCode::from_u16(err.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

fn log_options(query: &[(String, String)]) -> Result<(LogOptions, bool, bool), StreamError> {
    let get = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let flag = |k: &str| matches!(get(k), Some("true" | "1"));
    let number = |k: &str| -> Result<Option<u64>, StreamError> {
        get(k)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| StreamError::bad_request(format!("invalid {k} {v:?}")))
            })
            .transpose()
    };
    let since = match (number("sinceSeconds")?, get("sinceTime")) {
        (Some(secs), _) => {
            Some(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(secs as i64))
        }
        (None, Some(t)) => Some(
            t.parse()
                .map_err(|_| StreamError::bad_request(format!("invalid sinceTime {t:?}")))?,
        ),
        _ => None,
    };
    Ok((
        LogOptions {
            tail_lines: number("tailLines")?.map(|n| n as usize),
            since,
            timestamps: flag("timestamps"),
            limit_bytes: number("limitBytes")?.map(|n| n as usize),
        },
        flag("follow"),
        flag("previous"),
    ))
}

fn container_logs(
    streams: &Arc<dyn PodStreams>,
    ns: &str,
    pod: &str,
    container: &str,
    query: &[(String, String)],
) -> Result<Response<Body>, StreamError> {
    let (opts, follow, previous) = log_options(query)?;
    let path = streams.log_path(ns, pod, container, previous)?;
    let read = |path: &PathBuf| std::fs::read(path).unwrap_or_default();
    let initial = read(&path);
    let rendered = logs::render(&initial[..], &opts);
    let text_response = |body: Body| {
        let mut resp = Response::new(body);
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain"),
        );
        resp
    };
    if !follow || previous {
        return Ok(text_response(full(rendered)));
    }
    // Following: send what is there, then what is appended, until the container stops.
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(16);
    let streams = streams.clone();
    let (ns, pod, container) = (ns.to_string(), pod.to_string(), container.to_string());
    let timestamps = opts.timestamps;
    tokio::spawn(async move {
        if tx
            .send(Ok(Frame::data(Bytes::from(rendered))))
            .await
            .is_err()
        {
            return;
        }
        logs::follow(
            path,
            initial.len() as u64,
            timestamps,
            || streams.running(&ns, &pod, &container),
            |out| {
                let tx = tx.clone();
                async move { tx.send(Ok(Frame::data(Bytes::from(out)))).await.is_ok() }
            },
        )
        .await;
    });
    Ok(text_response(
        StreamBody::new(tokio_stream_from(rx)).boxed(),
    ))
}

fn tokio_stream_from(
    rx: mpsc::Receiver<Result<Frame<Bytes>, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Frame<Bytes>, std::io::Error>> {
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

async fn handle(
    req: Request<Incoming>,
    key: Arc<Vec<u8>>,
    streams: Arc<dyn PodStreams>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        return Ok(Response::new(full("ok")));
    }
    let header = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !authorized(&key, header, jiff::Timestamp::now().as_second()) {
        return Ok(status(&StreamError {
            code: 401,
            reason: "Unauthorized",
            message: "Unauthorized".into(),
        }));
    }
    let query: Vec<(String, String)> =
        form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let result = match parts.as_slice() {
        ["containerLogs", ns, pod, container] => {
            container_logs(&streams, ns, pod, container, &query)
        }
        ["exec", ns, pod] => crate::streaming::exec(req, &streams, ns, pod, &query).await,
        ["portForward", ns, pod] => {
            crate::streaming::port_forward(req, &streams, ns, pod, &query).await
        }
        _ => Err(StreamError::not_found(format!("no agent endpoint {path}"))),
    };
    Ok(result.unwrap_or_else(|err| status(&err)))
}

/// A self-signed serving certificate for the agent's addresses, created once in `dir`.
fn certificate(dir: &std::path::Path, names: &[String]) -> Result<(String, String), String> {
    let (cert_path, key_path) = (dir.join("agent.crt"), dir.join("agent.key"));
    if let (Ok(cert), Ok(key)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
    ) {
        return Ok((cert, key));
    }
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(|e| e.to_string())?;
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    std::fs::write(&cert_path, cert.pem()).map_err(|e| e.to_string())?;
    std::fs::write(&key_path, key.serialize_pem()).map_err(|e| e.to_string())?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// Serve on `bind` until the process ends.
pub async fn serve(
    bind: SocketAddr,
    data_dir: PathBuf,
    names: Vec<String>,
    api_key: Vec<u8>,
    streams: Arc<dyn PodStreams>,
) -> Result<(), String> {
    let listener = TcpListener::bind(bind)
        .await
        .map_err(|e| format!("listening on {bind}: {e}"))?;
    serve_on(listener, data_dir, names, api_key, streams).await
}

/// Serve on a bound listener until the process ends (tests bind port 0 and read the port).
pub async fn serve_on(
    listener: TcpListener,
    data_dir: PathBuf,
    names: Vec<String>,
    api_key: Vec<u8>,
    streams: Arc<dyn PodStreams>,
) -> Result<(), String> {
    let (cert_pem, key_pem) = certificate(&data_dir, &names)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_bytes())
        .map_err(|e| e.to_string())?
        .ok_or("no agent key")?;
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| e.to_string())?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let key = Arc::new(api_key);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let acceptor = acceptor.clone();
        let (key, streams) = (key.clone(), streams.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service =
                hyper::service::service_fn(move |req| handle(req, key.clone(), streams.clone()));
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_need_the_signature_and_the_audience() {
        let rng = ring::rand::SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        use ring::signature::KeyPair;
        let public = key.public_key().as_ref().to_vec();
        let b64 = |d: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d);
        let sign = |claims: Value| {
            let input = format!(
                "{}.{}",
                b64(br#"{"alg":"ES256"}"#),
                b64(claims.to_string().as_bytes())
            );
            let sig = key.sign(&rng, input.as_bytes()).unwrap();
            format!("Bearer {input}.{}", b64(sig.as_ref()))
        };
        let good = sign(json!({"aud": [AUDIENCE], "exp": 2000}));
        assert!(authorized(&public, Some(&good), 1000));
        assert!(!authorized(&public, Some(&good), 3000), "expired");
        assert!(!authorized(
            &public,
            Some(&sign(json!({"aud": ["other"], "exp": 2000}))),
            1000
        ));
        assert!(!authorized(&public, None, 1000));
        let jwks = json!({"keys": [{"kty": "EC", "crv": "P-256", "x": b64(&public[1..33]), "y": b64(&public[33..65])}]});
        assert_eq!(key_from_jwks(&jwks).unwrap(), public);
    }

    #[test]
    fn log_query_options() {
        let q = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let (opts, follow, previous) = log_options(&q(&[
            ("tailLines", "5"),
            ("follow", "true"),
            ("timestamps", "true"),
        ]))
        .unwrap();
        assert_eq!(opts.tail_lines, Some(5));
        assert!(follow && !previous && opts.timestamps);
        assert!(log_options(&q(&[("tailLines", "x")])).is_err());
    }
}
