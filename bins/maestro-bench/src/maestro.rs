//! maestro under test: start `maestro server` on a free port with its own data directory, drive
//! it over HTTPS/HTTP2 exactly as a Kubernetes client would (cluster CA and bearer token from the
//! kubeconfig it writes; one connection per simulated client), and take every measurement.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::payload;
use crate::procs::{CpuMeter, Server, free_port};
use crate::report::{Fanout, ListStat, Point, Results};
use crate::stats::{self, Sampler, Samples};
use crate::{Config, GET_TARGETS, WATCHES_PER_CONNECTION};

const JSON: &str = "application/json";
/// What kubectl 1.32 sends for `kubectl get`.
const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
const MERGE_PATCH: &str = "application/merge-patch+json";

const NS_GET: &str = "bench";
const NS_PODS: &str = "bench-list";
const NS_WATCH: &str = "bench-watch";

/// Where and how to reach the API server: read from the kubeconfig maestro writes.
#[derive(Clone)]
pub struct Api {
    addr: SocketAddr,
    base: String,
    server_name: ServerName<'static>,
    tls: Arc<rustls::ClientConfig>,
    auth: http::HeaderValue,
}

impl Api {
    pub fn from_kubeconfig(path: &Path) -> anyhow::Result<Api> {
        let text = std::fs::read_to_string(path)?;
        let doc: serde_yaml::Value = serde_yaml::from_str(&text)?;
        let cluster = &doc["clusters"][0]["cluster"];
        let base = cluster["server"]
            .as_str()
            .context("kubeconfig has no server")?
            .trim_end_matches('/')
            .to_string();
        let ca = base64::engine::general_purpose::STANDARD.decode(
            cluster["certificate-authority-data"]
                .as_str()
                .context("kubeconfig has no certificate-authority-data")?,
        )?;
        let token = doc["users"][0]["user"]["token"]
            .as_str()
            .context("kubeconfig has no token")?;
        let authority = base
            .strip_prefix("https://")
            .context("server is not https")?;
        let addr: SocketAddr = authority.parse().context("server is not IP:port")?;

        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&ca) {
            roots.add(cert?)?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Api {
            addr,
            base,
            server_name: ServerName::IpAddress(addr.ip().into()),
            tls: Arc::new(tls),
            auth: format!("Bearer {token}").parse()?,
        })
    }

    /// A new TLS connection speaking HTTP/2.
    pub async fn connect(&self) -> anyhow::Result<Conn> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(self.server_name.clone(), tcp)
            .await?;
        // Go's HTTP/2 client windows (4 MiB per stream): large LISTs are not throttled by
        // flow control more than kubectl's would be.
        let (send, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(4 << 20)
            .initial_connection_window_size(16 << 20)
            .handshake(TokioIo::new(tls))
            .await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            send,
            api: Arc::new(self.clone()),
        })
    }

    pub async fn connect_many(&self, n: usize) -> anyhow::Result<Vec<Conn>> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.connect().await?);
        }
        Ok(out)
    }
}

/// One HTTP/2 connection; clones share it (each request is its own stream).
#[derive(Clone)]
pub struct Conn {
    send: SendRequest<Full<Bytes>>,
    api: Arc<Api>,
}

impl Conn {
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<(&str, Bytes)>,
    ) -> anyhow::Result<Response<Incoming>> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.api.base))
            .header(header::AUTHORIZATION, &self.api.auth)
            .header(header::ACCEPT, accept);
        let body = match body {
            Some((content_type, bytes)) => {
                req = req.header(header::CONTENT_TYPE, content_type);
                Full::new(bytes)
            }
            None => Full::new(Bytes::new()),
        };
        let mut send = self.send.clone();
        send.ready().await?;
        Ok(send.send_request(req.body(body)?).await?)
    }

    /// Send and read the whole body, failing unless the status is `want`.
    pub async fn expect(
        &self,
        want: StatusCode,
        method: Method,
        path: &str,
        accept: &str,
        body: Option<(&str, Bytes)>,
    ) -> anyhow::Result<Bytes> {
        let resp = self.send(method.clone(), path, accept, body).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        if status != want {
            bail!(
                "{method} {path}: {status} (wanted {want}): {}",
                String::from_utf8_lossy(&bytes)
            );
        }
        Ok(bytes)
    }

    async fn create(&self, collection: &str, json: String) -> anyhow::Result<Bytes> {
        self.expect(
            StatusCode::CREATED,
            Method::POST,
            collection,
            JSON,
            Some((JSON, Bytes::from(json))),
        )
        .await
    }

    async fn get(&self, path: &str, accept: &str) -> anyhow::Result<Bytes> {
        self.expect(StatusCode::OK, Method::GET, path, accept, None)
            .await
    }
}

fn configmaps(ns: &str) -> String {
    format!("/api/v1/namespaces/{ns}/configmaps")
}

/// Start maestro and wait for /readyz.
async fn start(binary: &Path, env: &[(String, String)]) -> anyhow::Result<(Server, Api)> {
    let dir = tempfile::Builder::new()
        .prefix("maestro-bench-")
        .tempdir()?;
    let port = free_port()?;
    let mut cmd = std::process::Command::new(binary);
    cmd.arg("server")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--api-port")
        .arg(port.to_string())
        .arg("--no-agent")
        // The API server alone, as kube-apiserver is measured: without nodes a scheduler would
        // answer every benchmark pod with a FailedScheduling event and a status write.
        .arg("--disable-scheduler")
        .env("RUST_LOG", "warn")
        .envs(env.iter().map(|(k, v)| (k, v)));
    let mut server = Server::spawn("maestro", cmd, dir)?;
    let kubeconfig = server.path().join("data/kubeconfig");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        server.check_alive()?;
        if kubeconfig.exists()
            && let Ok(api) = Api::from_kubeconfig(&kubeconfig)
            && let Ok(conn) = api.connect().await
            && conn.get("/readyz", "text/plain").await.is_ok()
        {
            return Ok((server, api));
        }
        ensure!(
            Instant::now() < deadline,
            "maestro not ready after 30 s:\n{}",
            server.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The kubectl apply session: a real `kubectl apply -f` of a Deployment with an empty cache
/// directory (so it fetches discovery and OpenAPI as on a first use), then the OpenAPI v3
/// documents kubectl uses, fetched directly in case this kubectl version skipped one.
/// Returns a note naming what kubectl fetched.
async fn apply_session(server: &Server, api: &Api, kubectl: &str) -> anyhow::Result<String> {
    let manifest = server.path().join("deployment.yaml");
    std::fs::write(&manifest, payload::DEPLOYMENT_YAML)?;
    let started = Instant::now();
    let out = tokio::process::Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(server.path().join("data/kubeconfig"))
        .arg("--cache-dir")
        .arg(server.path().join("kube-cache"))
        .arg("-v=6")
        .arg("apply")
        .arg("-f")
        .arg(&manifest)
        .output()
        .await
        .with_context(|| format!("running {kubectl}"))?;
    let took = started.elapsed();
    let log = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.success(),
        "kubectl apply failed: {}\n{log}",
        String::from_utf8_lossy(&out.stdout)
    );
    // -v=6 logs every request with its URL (".../openapi/v3/apis/apps/v1?hash=...").
    let mut fetched: Vec<&str> = log
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.contains("/openapi/")))
        .filter_map(|url| url.find("/openapi/").map(|i| &url[i..]))
        .map(|p| p.split('?').next().unwrap_or(p))
        .collect();
    fetched.dedup();
    let requests = log.lines().filter(|l| l.contains("https://")).count();

    let conn = api.connect().await?;
    let mut sizes = Vec::new();
    for path in [
        "/openapi/v3",
        "/openapi/v3/api/v1",
        "/openapi/v3/apis/apps/v1",
    ] {
        let doc = conn.get(path, JSON).await?;
        sizes.push(format!("{path} {:.0} KiB", doc.len() as f64 / 1024.0));
    }
    Ok(format!(
        "kubectl apply took {:.2} s ({requests} requests; OpenAPI documents it fetched: {}); documents served: {}",
        took.as_secs_f64(),
        if fetched.is_empty() {
            "none".to_string()
        } else {
            fetched.join(", ")
        },
        sizes.join(", ")
    ))
}

/// Run every maestro measurement. Also returns the pods as maestro stored them (etcd gets the
/// same bytes).
pub async fn run(binary: &Path, cfg: &Config) -> anyhow::Result<(Results, Vec<Bytes>)> {
    let (server, api) = start(binary, &cfg.maestro_env).await?;
    let mut notes = Vec::new();
    if !cfg.maestro_env.is_empty() {
        let env: Vec<String> = cfg
            .maestro_env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        notes.push(format!("server environment: {}", env.join(" ")));
    }
    let mut rss = Vec::new();
    // Let start-up work (bootstrap objects, controllers' first sync) settle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    rss.push((Point::Idle, server.rss_kib()?));

    crate::progress("maestro: kubectl apply session");
    notes.push(apply_session(&server, &api, &cfg.kubectl).await?);
    tokio::time::sleep(Duration::from_millis(500)).await;
    rss.push((Point::AfterApply, server.rss_kib()?));

    let conn = api.connect().await?;
    for ns in [NS_GET, NS_PODS, NS_WATCH] {
        let body =
            format!(r#"{{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"{ns}"}}}}"#);
        conn.create("/api/v1/namespaces", body).await?;
    }
    for i in 0..GET_TARGETS {
        conn.create(
            &configmaps(NS_GET),
            payload::configmap(NS_GET, &format!("get-{i:03}")),
        )
        .await?;
    }
    let get_op = |c: Conn, i: usize| async move {
        c.get(
            &format!("{}/get-{:03}", configmaps(NS_GET), i % GET_TARGETS),
            JSON,
        )
        .await
        .map(drop)
    };

    crate::progress("maestro: GET, one client, idle");
    let get_idle =
        stats::sample(conn.clone(), cfg.get_samples / 10, cfg.get_samples, get_op).await?;

    let clients = api.connect_many(cfg.clients).await?;

    crate::progress(&format!("maestro: creating {} pods", cfg.pods));
    let stored: Arc<Mutex<Vec<Bytes>>> = Arc::new(Mutex::new(vec![Bytes::new(); cfg.pods]));
    let keep = stored.clone();
    let pods = stats::drive(clients.clone(), cfg.pods, move |c: Conn, i| {
        let keep = keep.clone();
        async move {
            let body = c
                .create(
                    &format!("/api/v1/namespaces/{NS_PODS}/pods"),
                    payload::pod(NS_PODS, &format!("pod-{i:05}")),
                )
                .await?;
            keep.lock().expect("not poisoned")[i] = body;
            Ok(())
        }
    })
    .await?;
    let stored = std::mem::take(&mut *stored.lock().expect("not poisoned"));
    rss.push((Point::PodsCreated, server.rss_kib()?));

    crate::progress("maestro: LIST");
    let list_path = format!("/api/v1/namespaces/{NS_PODS}/pods");
    let list_json = list(&conn, &list_path, JSON, cfg.list_runs, cfg.pods).await?;
    rss.push((Point::AfterJsonLists, server.rss_kib()?));
    let list_table = list(&conn, &list_path, TABLE, cfg.list_runs, cfg.pods).await?;
    rss.push((Point::AfterLists, server.rss_kib()?));

    crate::progress(&format!(
        "maestro: {} creates by {} clients, GET beside them",
        cfg.creates, cfg.clients
    ));
    let reader_api = api.clone();
    let reader = Sampler::start(move || async move { reader_api.connect().await }, get_op)?;
    // The same round trip without a store read: separates queueing for the CPU from waiting
    // for the watch cache to catch up with the latest commit.
    let probe_api = api.clone();
    let probe = Sampler::start(
        move || async move { probe_api.connect().await },
        |c: Conn, _| async move { c.get("/version", JSON).await.map(drop) },
    )?;
    let meter = CpuMeter::start(&server)?;
    let creates = stats::drive(clients, cfg.creates, |c: Conn, i| async move {
        c.create(
            &configmaps(NS_GET),
            payload::configmap(NS_GET, &format!("cm-{i:06}")),
        )
        .await
        .map(drop)
    })
    .await?;
    let creates_cpu = meter.stop()?;
    let get_loaded = reader.finish()?;
    let version_loaded = probe.finish()?;

    crate::progress(&format!("maestro: watch fan-out to {}", cfg.watchers));
    let fanout = fanout(&api, cfg.watchers, cfg.rounds).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    rss.push((Point::End, server.rss_kib()?));

    if let Some(db) = metric(&conn, "apiserver_storage_size_bytes").await? {
        notes.push(format!(
            "store file at the end: {:.0} MiB",
            db / (1024.0 * 1024.0)
        ));
    }
    Ok((
        Results {
            system: "maestro".into(),
            get_idle,
            pods,
            list_json,
            list_table: Some(list_table),
            creates,
            creates_cpu,
            get_loaded,
            version_loaded: Some(version_loaded),
            fanout,
            rss_kib: rss,
            notes,
        },
        stored,
    ))
}

/// One unlabelled gauge from /metrics.
async fn metric(conn: &Conn, name: &str) -> anyhow::Result<Option<f64>> {
    let text = conn.get("/metrics", "text/plain").await?;
    Ok(String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok()))
}

/// `runs` full LISTs (after one unrecorded), checking that each returns every pod.
async fn list(
    conn: &Conn,
    path: &str,
    accept: &str,
    runs: usize,
    expected: usize,
) -> anyhow::Result<ListStat> {
    let mut samples = Samples::default();
    let mut bytes = 0;
    for i in 0..=runs {
        let t = Instant::now();
        let body = conn.get(path, accept).await?;
        let took = t.elapsed();
        if i == 0 {
            // Count once (parsing is not part of the measurement).
            let doc: serde_json::Value = serde_json::from_slice(&body)?;
            let n = doc["items"]
                .as_array()
                .or(doc["rows"].as_array())
                .map_or(0, Vec::len);
            ensure!(n == expected, "LIST returned {n} items, wanted {expected}");
        } else {
            samples.push(took);
        }
        bytes = body.len();
    }
    Ok(ListStat {
        runs: samples,
        bytes,
    })
}

/// Open `watchers` watches on one namespace from its current revision, then update one object
/// in it `rounds` times; each watcher reports when it read each update's event.
async fn fanout(api: &Api, watchers: usize, rounds: usize) -> anyhow::Result<Fanout> {
    let writer = api.connect().await?;
    let created = writer
        .create(
            &configmaps(NS_WATCH),
            payload::configmap(NS_WATCH, "fanout"),
        )
        .await?;
    let created: serde_json::Value = serde_json::from_slice(&created)?;
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .context("no resourceVersion")?
        .to_string();
    let path = format!(
        "{}?watch=true&resourceVersion={rv}&timeoutSeconds=600",
        configmaps(NS_WATCH)
    );

    let started = Instant::now();
    let conns = api
        .connect_many(watchers.div_ceil(WATCHES_PER_CONNECTION))
        .await?;
    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(watchers);
    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel::<(u32, Instant)>();
    let mut tasks = JoinSet::new();
    for i in 0..watchers {
        let conn = conns[i / WATCHES_PER_CONNECTION].clone();
        let (path, ready, seen) = (path.clone(), ready_tx.clone(), seen_tx.clone());
        tasks.spawn(async move {
            let resp = conn.send(Method::GET, &path, JSON, None).await?;
            ensure!(resp.status() == StatusCode::OK, "watch: {}", resp.status());
            ready.send(()).await?;
            let mut body = resp.into_body();
            let mut buf = Vec::new();
            while let Some(frame) = body.frame().await {
                let at = Instant::now();
                let Ok(data) = frame?.into_data() else {
                    continue;
                };
                buf.extend_from_slice(&data);
                while let Some(end) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=end).collect();
                    if let Some(round) = payload::round_of(&line) {
                        let _ = seen.send((round, at));
                    }
                }
            }
            anyhow::Ok(())
        });
    }
    drop((ready_tx, seen_tx));
    for _ in 0..watchers {
        tokio::time::timeout(Duration::from_secs(60), ready_rx.recv())
            .await
            .context("watches not open after 60 s")?
            .context("a watch failed to open")?;
    }
    let setup = started.elapsed();
    // Response headers can precede the server's count of the stream: wait for its own figure.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open = metric(&writer, "apiserver_registered_watchers")
            .await?
            .unwrap_or(0.0) as usize;
        if open >= watchers {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "server reports {open} open watches of {watchers}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let result = stats::deliver(rounds, watchers, &mut seen_rx, |round| {
        let writer = writer.clone();
        async move {
            writer
                .expect(
                    StatusCode::OK,
                    Method::PATCH,
                    &format!("{}/fanout", configmaps(NS_WATCH)),
                    JSON,
                    Some((
                        MERGE_PATCH,
                        Bytes::from(format!(r#"{{"data":{{"round":"{round}"}}}}"#)),
                    )),
                )
                .await
                .map(drop)
        }
    })
    .await;
    tasks.abort_all();
    let (from_ack, from_send, round_max) = result?;
    Ok(Fanout {
        watchers,
        rounds,
        from_ack,
        from_send,
        round_max,
        setup,
    })
}
