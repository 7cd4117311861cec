//! The ingress data path: HTTP and HTTPS listeners (hyper, rustls with SNI from the routing
//! table; HTTP/1.1 and HTTP/2), forwarding to a backend endpoint over pooled HTTP/1.1
//! connections. Endpoints are taken in turn; a request without a body is tried again on the
//! next endpoint when it fails before a response. WebSocket (and other) upgrades are spliced
//! through. Every request is logged (target `maestro_agent::ingress::access`) and counted.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;

use super::IngressConfig;
use super::routes::{Certificate, RouteTable};

type Body = BoxBody<Bytes, hyper::Error>;

/// How many times a request without a body is tried before giving up.
const ATTEMPTS: usize = 3;

/// Headers that belong to one connection, not to the request (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// The routing table with its certificates parsed, swapped whole.
struct Compiled {
    table: RouteTable,
    keys: HashMap<String, Arc<CertifiedKey>>,
}

/// The current routes, shared by the listeners and replaced by the controller.
#[derive(Clone)]
pub struct SharedRoutes(Arc<RwLock<Arc<Compiled>>>);

impl Default for SharedRoutes {
    fn default() -> Self {
        SharedRoutes(Arc::new(RwLock::new(Arc::new(Compiled {
            table: RouteTable::default(),
            keys: HashMap::new(),
        }))))
    }
}

fn certified_key(certificate: &Certificate) -> Result<CertifiedKey, String> {
    let certs = rustls_pemfile::certs(&mut certificate.cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate: {e}"))?;
    let key = rustls_pemfile::private_key(&mut certificate.key_pem.as_slice())
        .map_err(|e| format!("key: {e}"))?
        .ok_or("no private key in tls.key")?;
    let key =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| format!("key: {e}"))?;
    Ok(CertifiedKey::new(certs, key))
}

impl SharedRoutes {
    /// Install a new table (certificates that do not parse are logged and left out).
    pub fn replace(&self, table: RouteTable) {
        let mut keys = HashMap::new();
        for (host, certificate) in &table.certificates {
            match certified_key(certificate) {
                Ok(key) => {
                    keys.insert(host.clone(), Arc::new(key));
                }
                Err(err) => tracing::warn!(%host, %err, "unusable TLS certificate"),
            }
        }
        let compiled = Arc::new(Compiled { table, keys });
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = compiled;
    }

    fn current(&self) -> Arc<Compiled> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl std::fmt::Debug for SharedRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedRoutes")
    }
}

impl ResolvesServerCert for SharedRoutes {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name()?.to_ascii_lowercase();
        let compiled = self.current();
        let mut candidates = vec![name.clone()];
        if let Some((_, parent)) = name.split_once('.') {
            candidates.push(format!("*.{parent}"));
        }
        candidates
            .iter()
            .find_map(|c| compiled.keys.get(c).cloned())
    }
}

/// What the data path has done, shared by the workers and exported on the metrics port.
#[derive(Debug, Default)]
pub struct Counters {
    /// Responses by status class (index 0: 1xx … 4: 5xx).
    responses: [AtomicU64; 5],
    /// Requests no rule matched (404 from the controller itself).
    not_found: AtomicU64,
    /// Requests whose backend had no ready endpoint (503).
    unavailable: AtomicU64,
    /// Requests no endpoint answered (502).
    bad_gateway: AtomicU64,
    /// Connection attempts moved on to the next endpoint.
    retries: AtomicU64,
    /// Upgraded connections (WebSocket and others).
    upgrades: AtomicU64,
    duration_micros: AtomicU64,
}

impl Counters {
    fn record(&self, status: StatusCode, started: Instant) {
        let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
        self.duration_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of the counters.
    pub fn render(&self) -> String {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::from(
            "# HELP maestro_ingress_responses_total Responses sent by the ingress controller, by status class.\n\
             # TYPE maestro_ingress_responses_total counter\n",
        );
        let mut total = 0;
        for (i, count) in self.responses.iter().enumerate() {
            let count = load(count);
            total += count;
            out.push_str(&format!(
                "maestro_ingress_responses_total{{class=\"{}xx\"}} {count}\n",
                i + 1
            ));
        }
        for (name, help, counter) in [
            (
                "no_route",
                "Requests no Ingress rule matched.",
                &self.not_found,
            ),
            (
                "no_endpoint",
                "Requests whose backend had no ready endpoint.",
                &self.unavailable,
            ),
            (
                "backend_failures",
                "Requests no endpoint answered.",
                &self.bad_gateway,
            ),
            (
                "retries",
                "Connection attempts moved on to the next endpoint.",
                &self.retries,
            ),
            (
                "upgrades",
                "Connections upgraded (WebSocket and others).",
                &self.upgrades,
            ),
        ] {
            out.push_str(&format!(
                "# HELP maestro_ingress_{name}_total {help}\n# TYPE maestro_ingress_{name}_total counter\nmaestro_ingress_{name}_total {}\n",
                load(counter)
            ));
        }
        out.push_str(&format!(
            "# HELP maestro_ingress_request_duration_seconds Time from a request to its response head.\n\
             # TYPE maestro_ingress_request_duration_seconds summary\n\
             maestro_ingress_request_duration_seconds_sum {:.6}\n\
             maestro_ingress_request_duration_seconds_count {total}\n",
            load(&self.duration_micros) as f64 / 1e6
        ));
        out
    }
}

struct State {
    routes: SharedRoutes,
    client: Client<HttpConnector, Body>,
    next: AtomicUsize,
    counters: Arc<Counters>,
}

fn full(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(text)).map_err(|e| match e {}).boxed());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// The request's host, without a port.
fn host_of(request: &Request<Incoming>) -> String {
    let raw = request
        .uri()
        .host()
        .map(str::to_string)
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    match raw.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host.to_string(),
        _ => raw,
    }
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
    remote: SocketAddr,
    scheme: &'static str,
) -> Result<Response<Body>, Infallible> {
    let started = Instant::now();
    let response = forward(&state, request, remote, scheme, started).await;
    state.counters.record(response.status(), started);
    Ok(response)
}

/// Route and forward one request.
async fn forward(
    state: &State,
    mut request: Request<Incoming>,
    remote: SocketAddr,
    scheme: &'static str,
    started: Instant,
) -> Response<Body> {
    let host = host_of(&request);
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let routes = state.routes.current();
    let Some(backend) = routes.table.route(&host, &path) else {
        state.counters.not_found.fetch_add(1, Ordering::Relaxed);
        return full(StatusCode::NOT_FOUND, "default backend - 404\n");
    };
    if backend.endpoints.is_empty() {
        state.counters.unavailable.fetch_add(1, Ordering::Relaxed);
        return full(StatusCode::SERVICE_UNAVAILABLE, "no ready endpoint\n");
    }
    let upgrade = request.headers().get(header::UPGRADE).cloned();
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(name);
    }
    if let Some(protocol) = &upgrade {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, protocol.clone());
    }
    if parts.headers.get(header::HOST).is_none()
        && let Ok(value) = HeaderValue::from_str(&host)
    {
        parts.headers.insert(header::HOST, value);
    }
    let forwarded_for = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(earlier) => format!("{earlier}, {}", remote.ip()),
        None => remote.ip().to_string(),
    };
    for (name, value) in [
        ("x-forwarded-for", forwarded_for),
        ("x-forwarded-proto", scheme.to_string()),
        ("x-forwarded-host", host.clone()),
        ("x-real-ip", remote.ip().to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            parts.headers.insert(HeaderName::from_static(name), value);
        }
    }
    parts.version = http::Version::HTTP_11;
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let retryable = !has_body_parts(&parts);
    let mut body = Some(body.boxed());
    let first = state.next.fetch_add(1, Ordering::Relaxed);
    // A request without a body is tried again, on the next endpoint (the same one when it is
    // the only one), whatever failed before a response came: a refused connection, or a pooled
    // connection the backend closed meanwhile (nginx's `proxy_next_upstream error` default).
    let attempts = if retryable { ATTEMPTS } else { 1 };
    let mut outcome = None;
    let mut parts = Some(parts);
    for attempt in 0..attempts {
        let endpoint = backend.endpoints[(first + attempt) % backend.endpoints.len()];
        let Ok(uri) = format!("http://{endpoint}{path_and_query}").parse::<Uri>() else {
            break;
        };
        // The headers are copied only when another attempt may follow.
        let mut forwarded_parts = if attempt + 1 == attempts {
            parts.take().expect("taken on the last attempt only")
        } else {
            parts.clone().expect("kept until the last attempt")
        };
        forwarded_parts.uri = uri;
        let request_body = match body.take() {
            Some(b) if !retryable => b,
            _ => Empty::<Bytes>::new().map_err(|e| match e {}).boxed(),
        };
        match state
            .client
            .request(Request::from_parts(forwarded_parts, request_body))
            .await
        {
            Ok(response) => {
                outcome = Some((endpoint, response));
                break;
            }
            Err(err) if attempt + 1 < attempts => {
                state.counters.retries.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%endpoint, %err, "ingress: backend request failed; trying again");
            }
            Err(err) => {
                tracing::warn!(%endpoint, %err, backend = %backend.name, "ingress: backend request failed");
                break;
            }
        }
    }
    let Some((endpoint, mut response)) = outcome else {
        state.counters.bad_gateway.fetch_add(1, Ordering::Relaxed);
        return full(StatusCode::BAD_GATEWAY, "bad gateway\n");
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        state.counters.upgrades.fetch_add(1, Ordering::Relaxed);
        let backend_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            if let (Ok(client), Ok(backend)) = tokio::join!(client_upgrade, backend_upgrade) {
                let mut client = TokioIo::new(client);
                let mut backend = TokioIo::new(backend);
                let _ = tokio::io::copy_bidirectional(&mut client, &mut backend).await;
            }
        });
    } else {
        for name in HOP_BY_HOP {
            response.headers_mut().remove(name);
        }
    }
    tracing::info!(
        target: "maestro_agent::ingress::access",
        client = %remote.ip(), %method, %host, %path, status = response.status().as_u16(),
        backend = %backend.name, %endpoint, micros = started.elapsed().as_micros() as u64,
    );
    response.map(BodyExt::boxed)
}

fn has_body_parts(parts: &http::request::Parts) -> bool {
    let length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    parts.headers.contains_key(header::TRANSFER_ENCODING) || length.is_some_and(|l| l > 0)
}

/// Worker threads of the data path: each runs its own event loop with its own connection pool
/// and its own listening sockets (SO_REUSEPORT: the kernel spreads new connections), as
/// nginx's workers do, so a request never changes threads on its way through.
pub fn workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8)
}

fn reuseport_listener(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(address)?;
    socket.listen(1024)
}

fn tls_acceptor(routes: &SharedRoutes) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    let mut tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(std::io::Error::other)?
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(routes.clone()));
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(tls)))
}

/// Start the worker threads; returns once every worker listens (or the first error, such as
/// the port being taken).
pub async fn serve(config: &IngressConfig, routes: SharedRoutes) -> std::io::Result<()> {
    let tls = if config.https.port() != 0 {
        Some(tls_acceptor(&routes)?)
    } else {
        None
    };
    let counters = Arc::new(Counters::default());
    if config.metrics.port() != 0 {
        serve_metrics(config.metrics, counters.clone()).await?;
    }
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
    let count = workers();
    for index in 0..count {
        let (config, routes, tls, ready, counters) = (
            config.clone(),
            routes.clone(),
            tls.clone(),
            ready_tx.clone(),
            counters.clone(),
        );
        std::thread::Builder::new()
            .name(format!("ingress-{index}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = ready.send(Err(err));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let mut connector = HttpConnector::new();
                    connector.set_nodelay(true);
                    connector.set_connect_timeout(Some(std::time::Duration::from_secs(3)));
                    let state = Arc::new(State {
                        routes,
                        client: Client::builder(TokioExecutor::new()).build(connector),
                        next: AtomicUsize::new(index),
                        counters,
                    });
                    let mut tasks = Vec::new();
                    for (address, tls) in [(config.http, None), (config.https, tls)] {
                        if address.port() == 0 {
                            continue;
                        }
                        match reuseport_listener(address) {
                            Ok(listener) => {
                                tasks.push(tokio::spawn(accept(listener, state.clone(), tls)))
                            }
                            Err(err) => {
                                let _ = ready.send(Err(err));
                                return;
                            }
                        }
                    }
                    let _ = ready.send(Ok(()));
                    drop(ready);
                    for task in tasks {
                        let _ = task.await;
                    }
                });
            })?;
    }
    drop(ready_tx);
    for _ in 0..count {
        match ready_rx.recv().await {
            Some(Ok(())) => {}
            Some(Err(err)) => return Err(err),
            None => return Err(std::io::Error::other("an ingress worker did not start")),
        }
    }
    tracing::info!(http = %config.http, https = %config.https, workers = count, "ingress controller listening");
    Ok(())
}

/// `GET /metrics` on `address` (Prometheus text), on the caller's runtime.
async fn serve_metrics(address: SocketAddr, counters: Arc<Counters>) -> std::io::Result<()> {
    let listener = TcpListener::bind(address).await?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let counters = counters.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let counters = counters.clone();
                    async move {
                        let response = if request.uri().path() == "/metrics" {
                            let mut response =
                                Response::new(Full::new(Bytes::from(counters.render())));
                            response.headers_mut().insert(
                                header::CONTENT_TYPE,
                                HeaderValue::from_static("text/plain; version=0.0.4"),
                            );
                            response
                        } else {
                            let mut response =
                                Response::new(Full::new(Bytes::from_static(b"not found\n")));
                            *response.status_mut() = StatusCode::NOT_FOUND;
                            response
                        };
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(())
}

async fn accept(listener: TcpListener, state: Arc<State>, tls: Option<tokio_rustls::TlsAcceptor>) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                tracing::warn!(%err, "ingress accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let scheme = if tls.is_some() { "https" } else { "http" };
            let service = hyper::service::service_fn(move |request| {
                handle(state.clone(), request, remote, scheme)
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let result = match tls {
                Some(acceptor) => match acceptor.accept(stream).await {
                    Ok(stream) => {
                        builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .await
                    }
                    Err(err) => {
                        tracing::debug!(%err, %remote, "ingress TLS handshake failed");
                        return;
                    }
                },
                None => {
                    builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await
                }
            };
            if let Err(err) = result {
                tracing::debug!(%err, %remote, "ingress connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;
    use crate::ingress::routes::{Backend, PathRule, PathType};

    /// `N` distinct free ports (all held until every one is chosen, so no two are the same).
    fn free_ports<const N: usize>() -> [u16; N] {
        let held: Vec<std::net::TcpListener> = (0..N)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect();
        std::array::from_fn(|i| held[i].local_addr().unwrap().port())
    }

    /// A backend that answers plain requests with "plain" (keeping the connection open for the
    /// next one, as HTTP/1.1 servers do) and upgrades to an echo.
    async fn backend() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    loop {
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") {
                            if stream.read_exact(&mut byte).await.is_err() {
                                return;
                            }
                            head.push(byte[0]);
                        }
                        let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                        if head.contains("upgrade: echo") {
                            let _ = stream
                                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n")
                                .await;
                            let (mut reader, mut writer) = stream.split();
                            let _ = tokio::io::copy(&mut reader, &mut writer).await;
                            return;
                        }
                        let forwarded = head.contains("x-forwarded-for: 127.0.0.1");
                        let body = if forwarded { "plain" } else { "unforwarded" };
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        address
    }

    async fn request(port: u16, text: &str) -> (TcpStream, String) {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
            .await
            .unwrap();
        stream.write_all(text.as_bytes()).await.unwrap();
        let mut buffer = vec![0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buffer))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        (stream, String::from_utf8_lossy(&buffer[..n]).to_string())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn routes_retries_and_upgrades() {
        let live = backend().await;
        let [dead_port, port, metrics_port] = free_ports::<3>();
        let dead: SocketAddr = (Ipv4Addr::LOCALHOST, dead_port).into();
        let mut table = RouteTable::default();
        let rule = |path: &str, endpoints: Vec<SocketAddr>| PathRule {
            path: path.into(),
            path_type: PathType::Prefix,
            backend: Backend {
                name: path.into(),
                endpoints,
            },
        };
        // Every request meets the refusing endpoint first or second: retries must hide it.
        table.add("app.test", rule("/", vec![dead, live]));
        table.add("app.test", rule("/empty", vec![]));
        let routes = SharedRoutes::default();
        routes.replace(table.clone());
        let config = IngressConfig {
            http: (Ipv4Addr::LOCALHOST, port).into(),
            https: (Ipv4Addr::LOCALHOST, 0).into(),
            metrics: (Ipv4Addr::LOCALHOST, metrics_port).into(),
        };
        let routes_handle = routes.clone();
        serve(&config, routes).await.unwrap();

        for _ in 0..4 {
            let (_, answer) = request(port, "GET / HTTP/1.1\r\nhost: app.test\r\n\r\n").await;
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(answer.ends_with("plain"), "forwarded headers: {answer}");
        }
        let (_, answer) = request(port, "GET / HTTP/1.1\r\nhost: other.test\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
        let (_, answer) = request(port, "GET /empty HTTP/1.1\r\nhost: app.test\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");

        let (mut stream, answer) = request(
            port,
            "GET /ws HTTP/1.1\r\nhost: app.test\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");
        stream.write_all(b"ping").await.unwrap();
        let mut echoed = [0u8; 4];
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_exact(&mut echoed),
        )
        .await
        .expect("the echo within 5 s")
        .unwrap();
        assert_eq!(&echoed, b"ping");

        // A new table (the route gone) leaves the open connection alone; new requests see it.
        let mut emptied = table.clone();
        emptied.hosts.clear();
        routes_handle.replace(emptied);
        stream.write_all(b"pong").await.unwrap();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            stream.read_exact(&mut echoed),
        )
        .await
        .expect("the echo within 5 s")
        .unwrap();
        assert_eq!(
            &echoed, b"pong",
            "the upgraded connection survived the change"
        );
        let (_, answer) = request(port, "GET / HTTP/1.1\r\nhost: app.test\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");

        let (_, metrics) = request(
            config.metrics.port(),
            "GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n",
        )
        .await;
        for line in [
            "maestro_ingress_responses_total{class=\"2xx\"} 4",
            "maestro_ingress_responses_total{class=\"4xx\"} 2",
            "maestro_ingress_responses_total{class=\"5xx\"} 1",
            "maestro_ingress_no_route_total 2",
            "maestro_ingress_no_endpoint_total 1",
            "maestro_ingress_upgrades_total 1",
        ] {
            assert!(metrics.contains(line), "{line} in:\n{metrics}");
        }
        assert!(
            metrics.contains("maestro_ingress_retries_total "),
            "{metrics}"
        );
    }
}
