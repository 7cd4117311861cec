//! The agent's streaming endpoints against a real container: `server::serve_on` on 127.0.0.1
//! with a `PodStreams` backed by runc, a busybox rootfs, and a pod sandbox whose network
//! namespace is joined to the host by a veth pair (a /30 of its own, no route anywhere else),
//! driven by a WebSocket client over TLS that speaks v5 and v4 like kubectl, the Python client
//! and kube-rs. Needs root, runc, busybox, nsenter and ip; skipped (with a message) otherwise.
//!
//! Not a libtest harness: containers need the shim, which the product runs as a hidden
//! subcommand of its own binary (`maestro shim ...`). This binary does the same (`streams shim
//! ...` is the shim) and runs its scenarios itself:
//! `cargo test -p maestro-agent --test streams [-- FILTER...]`.
//! Everything it creates (container, sandbox and its namespaces, veth, cgroups, temp dir) is
//! removed by `Node`'s `Drop`, after the scenarios, whether they passed or not.

use std::ffi::OsString;
use std::fs;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use futures::{FutureExt, SinkExt, StreamExt};
use maestro_agent::server::{self, PodStreams, StreamError};
use maestro_oci::runtime::cgroup::{self, CgroupManager};
use maestro_oci::runtime::{
    ContainerConfig, ContainerIo, ExecConfig, ExecSession, OciRuntime, QosClass, RuncCli,
    RuncConfig, RuntimeKind, SandboxConfig, SandboxManager, ShimCommand,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};

const APPLETS: &[&str] = &[
    "sh", "cat", "echo", "sleep", "nc", "httpd", "stty", "tty", "ps", "grep", "true", "ls",
];
const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";
const HELLO: &str = "hello from the pod\n";

fn main() {
    let mut args = std::env::args_os();
    let _program = args.next();
    let rest: Vec<OsString> = args.collect();
    if rest.first().is_some_and(|a| a == "shim") {
        std::process::exit(maestro_oci::runtime::shim::main(rest.into_iter().skip(1)));
    }
    // Arguments that are not libtest flags (or their values) filter scenarios by name.
    let mut filters: Vec<String> = Vec::new();
    let mut args = rest.iter().filter_map(|a| a.to_str());
    while let Some(arg) = args.next() {
        if [
            "--test-threads",
            "--skip",
            "--format",
            "--color",
            "--logfile",
            "-Z",
        ]
        .contains(&arg)
        {
            args.next();
        } else if !arg.starts_with('-') {
            filters.push(arg.to_string());
        }
    }
    let list = rest.iter().any(|a| a == "--list");
    let selected: Vec<&(&str, Scenario)> = SCENARIOS
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f)))
        .collect();
    if list {
        for (name, _) in &selected {
            println!("{name}: test");
        }
        return;
    }
    if selected.is_empty() {
        return;
    }
    let Some(node) = Node::new() else { return };
    let failures = {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let failures = runtime.block_on(async {
            let agent = Agent::start(&node).await;
            let mut failures = Vec::new();
            for (name, scenario) in &selected {
                let outcome = std::panic::AssertUnwindSafe(tokio::time::timeout(
                    Duration::from_secs(60),
                    scenario(&agent),
                ))
                .catch_unwind()
                .await;
                let verdict = match outcome {
                    Ok(Ok(())) => "ok",
                    Ok(Err(_)) => "FAILED (timed out)",
                    Err(_) => "FAILED",
                };
                println!("test {name} ... {verdict}");
                if verdict != "ok" {
                    failures.push(*name);
                }
            }
            failures
        });
        // Ends the server and any session still open before the node is torn down.
        runtime.shutdown_timeout(Duration::from_secs(5));
        failures
    };
    drop(node);
    println!(
        "\ntest result: {}. {} passed; {} failed",
        if failures.is_empty() { "ok" } else { "FAILED" },
        selected.len() - failures.len(),
        failures.len()
    );
    if !failures.is_empty() {
        eprintln!("failed: {failures:?}");
        std::process::exit(1);
    }
}

type Scenario = for<'a> fn(&'a Agent) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

const SCENARIOS: &[(&str, Scenario)] = &[
    ("exec_echo_v5_and_v4", |a| Box::pin(exec_echo_v5_and_v4(a))),
    ("exec_exit_code_and_stderr", |a| {
        Box::pin(exec_exit_code_and_stderr(a))
    }),
    ("exec_stdin_through_cat", |a| {
        Box::pin(exec_stdin_through_cat(a))
    }),
    ("exec_client_leaving_ends_the_process", |a| {
        Box::pin(exec_client_leaving_ends_the_process(a))
    }),
    ("exec_tty_with_resize", |a| {
        Box::pin(exec_tty_with_resize(a))
    }),
    ("exec_errors", |a| Box::pin(exec_errors(a))),
    ("port_forward_http", |a| Box::pin(port_forward_http(a))),
    ("port_forward_echo_and_refused", |a| {
        Box::pin(port_forward_echo_and_refused(a))
    }),
    ("port_forward_errors", |a| Box::pin(port_forward_errors(a))),
    ("python_client_exec_and_port_forward", |a| {
        Box::pin(python_client_exec_and_port_forward(a))
    }),
];

// ---------------------------------------------------------------------------------------------
// The node: a pod sandbox with a veth to the host and one running container.
// ---------------------------------------------------------------------------------------------

fn have(binary: &str) -> bool {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .any(|d| Path::new(d).join(binary).exists())
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Node {
    tmp: tempfile::TempDir,
    runtime: Arc<RuncCli>,
    cgroups: Arc<dyn CgroupManager>,
    cgroup_root: String,
    sandboxes: SandboxManager,
    pod_uid: String,
    host_veth: String,
    container: String,
    pod_ip: IpAddr,
}

impl Node {
    fn new() -> Option<Node> {
        // /proc/self belongs to the effective user.
        let root = std::os::unix::fs::MetadataExt::uid(&fs::metadata("/proc/self").unwrap()) == 0;
        let tools = ["runc", "busybox", "unshare", "nsenter", "ip"];
        if !(root && tools.iter().all(|t| have(t))) {
            eprintln!("skipping: needs root and {}", tools.join(", "));
            return None;
        }
        let pid = std::process::id();
        let tmp = tempfile::Builder::new()
            .prefix("maestro-agent-streams-")
            .tempdir()
            .unwrap();
        let rootfs = tmp.path().join("rootfs");
        build_rootfs(&rootfs);
        let cgroups = cgroup::detect(Path::new(cgroup::DEFAULT_ROOT)).unwrap();
        let mut config =
            RuncConfig::new(RuntimeKind::Runc, ShimCommand::current_exe("shim").unwrap());
        config.root = tmp.path().join("state");
        config.bundle_dir = tmp.path().join("containers");
        let runtime = Arc::new(RuncCli::new(config, cgroups.clone()).unwrap());
        let cgroup_root = format!("/maestro-agent-streams-{pid}");
        let sandboxes = SandboxManager::new(
            tmp.path().join("pods"),
            cgroup_root.clone(),
            cgroups.clone(),
        );
        // A /30 of its own: host end .1, pod .2; nothing routes beyond it. Skip subnets another
        // run on this machine holds.
        let taken = Command::new("ip")
            .args(["-o", "-4", "addr", "show"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let net = (0..64)
            .map(|i| format!("10.251.{}", (pid as usize + i) % 64 * 4))
            .find(|net| !taken.contains(&format!(" {net}.")))
            .expect("a free 10.251.x.0/30");
        let mut node = Node {
            tmp,
            runtime,
            cgroups,
            cgroup_root,
            sandboxes,
            pod_uid: format!("streams-{pid}"),
            host_veth: format!("mst{}", pid % 1_000_000),
            container: format!("streams-app-{pid}"),
            pod_ip: format!("{net}.2").parse().unwrap(),
        };
        node.start(&rootfs, &net);
        Some(node)
    }

    /// Everything is recorded in `self` before it is created, so `Drop` removes what exists.
    fn start(&mut self, rootfs: &Path, net: &str) {
        let sandbox = self
            .sandboxes
            .create(&SandboxConfig::new(
                &self.pod_uid,
                "web",
                QosClass::BestEffort,
            ))
            .unwrap();
        let netns = format!("--net={}", sandbox.net_ns().display());
        let own = std::process::id().to_string();
        run(
            "nsenter",
            &[
                &netns,
                "ip",
                "link",
                "add",
                "eth0",
                "type",
                "veth",
                "peer",
                "name",
                &self.host_veth,
                "netns",
                &own,
            ],
        );
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{net}.1/30"),
                "dev",
                &self.host_veth,
            ],
        );
        run("ip", &["link", "set", &self.host_veth, "up"]);
        run(
            "nsenter",
            &[
                &netns,
                "ip",
                "addr",
                "add",
                &format!("{net}.2/30"),
                "dev",
                "eth0",
            ],
        );
        run("nsenter", &[&netns, "ip", "link", "set", "eth0", "up"]);

        // An HTTP server on 8080 and an echo server on 9000, as a pod's own processes.
        let log = self.tmp.path().join("app.log");
        let mut c = ContainerConfig::new(
            &self.container,
            rootfs,
            vec![
                "sh".into(),
                "-c".into(),
                "httpd -p 8080 -h /www; nc -ll -p 9000 -e cat & echo ready; exec sleep 600".into(),
            ],
        );
        c.io = ContainerIo::log_file(&log);
        sandbox.configure(&mut c);
        self.runtime.create(&c).unwrap();
        self.runtime.start(&self.container).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("ready")
        {
            assert!(Instant::now() < deadline, "the container did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Err(e) = self.runtime.delete(&self.container, true) {
            eprintln!("cleanup: delete {}: {e}", self.container);
        }
        if let Err(e) = self.sandboxes.teardown(&self.pod_uid) {
            eprintln!("cleanup: teardown {}: {e}", self.pod_uid);
        }
        // Gone with the namespace already, unless the namespace could not be removed.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_veth])
            .stderr(std::process::Stdio::null())
            .status();
        if let Err(e) = self
            .cgroups
            .remove(&self.cgroup_root, Duration::from_secs(10))
        {
            eprintln!("cleanup: cgroup root {}: {e}", self.cgroup_root);
        }
    }
}

fn build_rootfs(rootfs: &Path) {
    for dir in ["bin", "proc", "sys", "dev", "etc", "tmp", "www"] {
        fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
    fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap();
    fs::write(rootfs.join("www/hello.txt"), HELLO).unwrap();
}

/// The pod manager as the server sees it: one pod, `default/web`, with one container, `app`.
struct TestPods {
    runtime: Arc<RuncCli>,
    container: String,
    ip: IpAddr,
}

impl TestPods {
    fn find(&self, namespace: &str, pod: &str) -> Result<(), StreamError> {
        if (namespace, pod) == ("default", "web") {
            Ok(())
        } else {
            Err(StreamError::not_found(format!("pods \"{pod}\" not found")))
        }
    }
}

impl PodStreams for TestPods {
    fn log_path(&self, _: &str, pod: &str, _: &str, _: bool) -> Result<PathBuf, StreamError> {
        Err(StreamError::not_found(format!("pods \"{pod}\" not found")))
    }

    fn running(&self, _: &str, _: &str, _: &str) -> bool {
        false
    }

    fn exec(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        exec: ExecConfig,
    ) -> Result<ExecSession, StreamError> {
        self.find(namespace, pod)?;
        if let Some(other) = container.filter(|c| *c != "app") {
            return Err(StreamError::bad_request(format!(
                "container {other} is not valid for pod {pod}"
            )));
        }
        self.runtime
            .exec(&self.container, &exec)
            .map_err(|e| StreamError {
                code: 500,
                reason: "InternalError",
                message: e.to_string(),
            })
    }

    fn pod_ip(&self, namespace: &str, pod: &str) -> Result<IpAddr, StreamError> {
        self.find(namespace, pod)?;
        Ok(self.ip)
    }
}

// ---------------------------------------------------------------------------------------------
// The client side: TLS pinned to the agent's certificate, an API-server token, WebSockets.
// ---------------------------------------------------------------------------------------------

struct Agent {
    addr: SocketAddr,
    token: String,
    tls: tokio_rustls::TlsConnector,
    runtime: Arc<RuncCli>,
    container: String,
}

impl Agent {
    async fn start(node: &Node) -> Agent {
        let rng = ring::rand::SystemRandom::new();
        let alg = &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        let key = ring::signature::EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref(), &rng).unwrap();
        use ring::signature::KeyPair;
        let public = key.public_key().as_ref().to_vec();
        let b64 = |d: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d);
        let claims =
            json!({"aud": [server::AUDIENCE], "exp": jiff::Timestamp::now().as_second() + 3600});
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"ES256"}"#),
            b64(claims.to_string().as_bytes())
        );
        let signature = key.sign(&rng, input.as_bytes()).unwrap();
        let token = format!("{input}.{}", b64(signature.as_ref()));

        let data_dir = node.tmp.path().join("agent");
        fs::create_dir_all(&data_dir).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let pods = Arc::new(TestPods {
            runtime: node.runtime.clone(),
            container: node.container.clone(),
            ip: node.pod_ip,
        });
        tokio::spawn(server::serve_on(
            listener,
            data_dir.clone(),
            vec!["127.0.0.1".into()],
            public,
            pods,
        ));
        // The server writes its self-signed certificate before it accepts anything.
        let cert_path = data_dir.join("agent.crt");
        let deadline = Instant::now() + Duration::from_secs(10);
        let pem = loop {
            if let Ok(pem) = fs::read(&cert_path) {
                break pem;
            }
            assert!(Instant::now() < deadline, "no agent certificate");
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let cert = rustls_pemfile::certs(&mut &pem[..])
            .next()
            .unwrap()
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Pinned {
                cert: cert.to_vec(),
                provider,
            }))
            .with_no_client_auth();
        Agent {
            addr,
            token,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            runtime: node.runtime.clone(),
            container: node.container.clone(),
        }
    }

    async fn connect(&self) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        let name = rustls::pki_types::ServerName::IpAddress(self.addr.ip().into());
        self.tls.connect(name, tcp).await.unwrap()
    }

    /// A WebSocket to `path` offering `protocols`; the negotiated protocol, or the refusal's
    /// HTTP code and Status.
    async fn websocket(
        &self,
        path: &str,
        protocols: &str,
    ) -> Result<(WebSocketStream<TlsStream<TcpStream>>, String), (u16, Value)> {
        let mut request = format!("wss://{}{path}", self.addr)
            .into_client_request()
            .unwrap();
        let headers = request.headers_mut();
        headers.insert(
            "Authorization",
            format!("Bearer {}", self.token).parse().unwrap(),
        );
        if !protocols.is_empty() {
            headers.insert("Sec-WebSocket-Protocol", protocols.parse().unwrap());
        }
        match tokio_tungstenite::client_async(request, self.connect().await).await {
            Ok((ws, response)) => {
                let protocol = response
                    .headers()
                    .get("Sec-WebSocket-Protocol")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default();
                Ok((ws, protocol))
            }
            Err(tungstenite::Error::Http(response)) => {
                let body = response.body().clone().unwrap_or_default();
                let status = serde_json::from_slice(&body).unwrap_or(Value::Null);
                Err((response.status().as_u16(), status))
            }
            Err(e) => panic!("websocket {path}: {e}"),
        }
    }

    /// A plain (not upgraded) GET: its code and Status.
    async fn get(&self, path: &str, token: bool) -> (u16, Value) {
        let mut tls = self.connect().await;
        let auth = if token {
            format!("Authorization: Bearer {}\r\n", self.token)
        } else {
            String::new()
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\n{auth}Connection: close\r\n\r\n",
            self.addr
        );
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response).await;
        let text = String::from_utf8_lossy(&response);
        let code = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
        (code, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    /// Runs `script` with `sh -c` in the container and returns its stdout.
    fn sh(&self, script: &str) -> String {
        let out = self
            .runtime
            .exec(&self.container, &ExecConfig::command(["sh", "-c", script]))
            .unwrap()
            .output(Some(Duration::from_secs(10)))
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Trusts exactly the agent's certificate (it is self-signed, as the kubelet's is).
#[derive(Debug)]
struct Pinned {
    cert: Vec<u8>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_slice() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the agent's certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

type Ws = WebSocketStream<TlsStream<TcpStream>>;

/// What an exec session sent, read until the server closed the connection.
#[derive(Debug, Default)]
struct Output {
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    status: Value,
    /// The channel of every frame, in order.
    channels: Vec<u8>,
}

impl Output {
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

async fn read_frame(ws: &mut Ws) -> Option<Vec<u8>> {
    loop {
        match ws.next().await? {
            Ok(Message::Binary(data)) => return Some(data.to_vec()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

fn record(output: &mut Output, frame: &[u8]) {
    let Some((&channel, data)) = frame.split_first() else {
        return;
    };
    output.channels.push(channel);
    match channel {
        1 => output.stdout.extend_from_slice(data),
        2 => output.stderr.extend_from_slice(data),
        3 if !data.is_empty() => output.status = serde_json::from_slice(data).unwrap(),
        _ => {}
    }
}

async fn collect(ws: &mut Ws) -> Output {
    let mut output = Output::default();
    while let Some(frame) = read_frame(ws).await {
        record(&mut output, &frame);
    }
    output
}

/// Reads until stdout contains `needle`.
async fn read_until(ws: &mut Ws, output: &mut Output, needle: &str) {
    while !output.stdout().contains(needle) {
        let frame = read_frame(ws)
            .await
            .unwrap_or_else(|| panic!("closed before {needle:?}; got {:?}", output.stdout()));
        record(output, &frame);
    }
}

fn binary(channel: u8, data: &[u8]) -> Message {
    Message::Binary([&[channel][..], data].concat().into())
}

fn exec_path(command: &[&str], flags: &str) -> String {
    let mut path = String::from("/exec/default/web?");
    for arg in command {
        path.push_str("command=");
        path.extend(form_urlencoded::byte_serialize(arg.as_bytes()));
        path.push('&');
    }
    path + flags
}

// ---------------------------------------------------------------------------------------------
// exec
// ---------------------------------------------------------------------------------------------

async fn exec_echo_v5_and_v4(agent: &Agent) {
    for protocol in [V5, V4] {
        let path = exec_path(&["echo", "hello world"], "stdout=true&stderr=true");
        let (mut ws, chosen) = agent.websocket(&path, protocol).await.unwrap();
        assert_eq!(chosen, protocol);
        let output = collect(&mut ws).await;
        assert_eq!(output.stdout(), "hello world\n");
        assert_eq!(output.status, json!({"metadata": {}, "status": "Success"}));
        // The kubelet's "connection established" frame comes first: stdout, no data.
        assert_eq!(output.channels.first(), Some(&1));
    }
    // Both offered (kube-rs: "v5.channel.k8s.io, v4.channel.k8s.io"): v5 wins.
    let path = exec_path(&["true"], "stdout=true");
    let (_, chosen) = agent
        .websocket(&path, &format!("{V4}, {V5}"))
        .await
        .unwrap();
    assert_eq!(chosen, V5);
}

async fn exec_exit_code_and_stderr(agent: &Agent) {
    let script = "echo out; echo err >&2; exit 7";
    let path = exec_path(&["sh", "-c", script], "stdout=true&stderr=true");
    let (mut ws, _) = agent.websocket(&path, V5).await.unwrap();
    let output = collect(&mut ws).await;
    assert_eq!(output.stdout(), "out\n");
    assert_eq!(String::from_utf8_lossy(&output.stderr), "err\n");
    assert_eq!(output.status["status"], "Failure");
    assert_eq!(output.status["reason"], "NonZeroExitCode");
    assert_eq!(
        output.status["details"]["causes"][0],
        json!({"reason": "ExitCode", "message": "7"})
    );
    assert_eq!(
        output.status["message"],
        format!(
            "command terminated with non-zero exit code: error executing command [sh -c {script}], exit code 7"
        )
    );
    // Status comes after all the output.
    assert_eq!(output.channels.last(), Some(&3));

    // Without stderr requested, stderr is dropped (and does not block the process).
    let script = "for i in $(seq 1 2000); do echo noise-noise-noise-noise >&2; done; echo done";
    let path = exec_path(&["sh", "-c", script], "stdout=true");
    let (mut ws, _) = agent.websocket(&path, V4).await.unwrap();
    let output = collect(&mut ws).await;
    assert_eq!(output.stdout(), "done\n");
    assert!(output.stderr.is_empty());
    assert!(!output.channels.contains(&2));
    assert_eq!(output.status["status"], "Success");
}

async fn exec_stdin_through_cat(agent: &Agent) {
    // v5: what goes in comes out, and closing stdin (channel 255) ends cat.
    let path = exec_path(&["cat"], "stdin=true&stdout=true&stderr=true");
    let (mut ws, _) = agent.websocket(&path, V5).await.unwrap();
    let mut output = Output::default();
    ws.send(binary(0, b"ping\n")).await.unwrap();
    read_until(&mut ws, &mut output, "ping\n").await;
    ws.send(binary(0, b"pong\n")).await.unwrap();
    ws.send(binary(255, &[0])).await.unwrap();
    while let Some(frame) = read_frame(&mut ws).await {
        record(&mut output, &frame);
    }
    assert_eq!(output.stdout(), "ping\npong\n");
    assert_eq!(output.status["status"], "Success");

    // v4 has no stdin close, but a process can end by itself.
    let path = exec_path(
        &["sh", "-c", "read x; echo got-$x; exit 5"],
        "stdin=true&stdout=true&stderr=true",
    );
    let (mut ws, _) = agent.websocket(&path, V4).await.unwrap();
    ws.send(binary(0, b"abc\n")).await.unwrap();
    let output = collect(&mut ws).await;
    assert_eq!(output.stdout(), "got-abc\n");
    assert_eq!(output.status["details"]["causes"][0]["message"], "5");
}

async fn exec_client_leaving_ends_the_process(agent: &Agent) {
    // `exec`: the session's process is the one that must go (the runtime kills that process,
    // not what it may have started).
    let path = exec_path(
        &["sh", "-c", "echo started; exec sleep 4242"],
        "stdout=true",
    );
    let (mut ws, _) = agent.websocket(&path, V4).await.unwrap();
    let mut output = Output::default();
    read_until(&mut ws, &mut output, "started").await;
    let running = || agent.sh("ps -o args | grep -c '^sleep 4242'");
    assert_eq!(running().trim(), "1");
    ws.close(None).await.unwrap();
    drop(ws);
    let deadline = Instant::now() + Duration::from_secs(10);
    while running().trim() != "0" {
        assert!(Instant::now() < deadline, "the process outlived its client");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn exec_tty_with_resize(agent: &Agent) {
    let path = exec_path(&["sh"], "stdin=true&stdout=true&stderr=true&tty=true");
    let (mut ws, _) = agent.websocket(&path, V5).await.unwrap();
    // kubectl sends the terminal's size first, before the process has started.
    ws.send(binary(4, br#"{"Width":100,"Height":30}"#))
        .await
        .unwrap();
    let mut output = Output::default();
    // The shell's prompt: it runs on its terminal.
    read_until(&mut ws, &mut output, "# ").await;
    ws.send(binary(0, b"tty; stty size; echo typed-$((6*7))\n"))
        .await
        .unwrap();
    read_until(&mut ws, &mut output, "typed-42\r\n").await;
    ws.send(binary(4, br#"{"Width":120,"Height":40}"#))
        .await
        .unwrap();
    ws.send(binary(0, b"stty size; echo err >&2; exit 3\n"))
        .await
        .unwrap();
    while let Some(frame) = read_frame(&mut ws).await {
        record(&mut output, &frame);
    }
    let text = output.stdout();
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("30 100\r\n"), "{text}");
    assert!(text.contains("40 120\r\n"), "{text}");
    // One stream on a terminal: stderr arrives as stdout.
    assert!(text.contains("err\r\n"), "{text}");
    assert!(!output.channels.contains(&2));
    assert_eq!(output.status["details"]["causes"][0]["message"], "3");
}

async fn exec_errors(agent: &Agent) {
    let expect = |result: Result<(Ws, String), (u16, Value)>, code: u16, words: &str| {
        let Err((got, status)) = result else {
            panic!("upgraded, expected {code}")
        };
        assert_eq!(got, code, "{status}");
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["code"], code);
        let message = status["message"].as_str().unwrap_or_default().to_string();
        assert!(message.contains(words), "{message:?} lacks {words:?}");
        status
    };
    let status = expect(
        agent
            .websocket("/exec/default/nope?command=ls&stdout=true", V5)
            .await,
        404,
        "pods \"nope\" not found",
    );
    assert_eq!(status["reason"], "NotFound");
    let status = expect(
        agent
            .websocket("/exec/default/web?command=ls&stdout=true&container=db", V5)
            .await,
        400,
        "container db is not valid",
    );
    assert_eq!(status["reason"], "BadRequest");
    expect(
        agent.websocket("/exec/default/web?stdout=true", V5).await,
        400,
        "at least one command",
    );
    expect(
        agent.websocket("/exec/default/web?command=ls", V5).await,
        400,
        "at least 1 of stdin, stdout, stderr",
    );
    // Pre-v4 and base64 protocols are not spoken; neither is a WebSocket without one.
    expect(
        agent
            .websocket(
                "/exec/default/web?command=ls&stdout=true",
                "channel.k8s.io, base64.channel.k8s.io",
            )
            .await,
        400,
        "v5.channel.k8s.io, v4.channel.k8s.io",
    );
    expect(
        agent
            .websocket("/exec/default/web?command=ls&stdout=true", "")
            .await,
        400,
        "offered: none",
    );
    // No such binary in the image: runc starts, fails, and says why on stderr; the client gets
    // a failure Status rather than a hang.
    let path = exec_path(&["/no/such/binary"], "stdout=true&stderr=true");
    if let Ok((mut ws, _)) = agent.websocket(&path, V5).await {
        let output = collect(&mut ws).await;
        assert_eq!(output.status["status"], "Failure", "{:?}", output.status);
    }

    let (code, status) = agent
        .get("/exec/default/web?command=ls&stdout=true", true)
        .await;
    assert_eq!(code, 400);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("Upgrade request required"),
        "{status}"
    );
    let (code, status) = agent
        .get("/exec/default/web?command=ls&stdout=true", false)
        .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (401, Some("Unauthorized"))
    );
}

// ---------------------------------------------------------------------------------------------
// port-forward
// ---------------------------------------------------------------------------------------------

/// Reads the two opening frames of each port and checks them.
async fn expect_port_frames(ws: &mut Ws, ports: &[u16]) {
    for (i, port) in ports.iter().enumerate() {
        for channel in [2 * i as u8, 2 * i as u8 + 1] {
            let frame = read_frame(ws).await.expect("opening frame");
            let [lo, hi] = port.to_le_bytes();
            assert_eq!(
                frame,
                [channel, lo, hi],
                "opening frame of channel {channel}"
            );
        }
    }
}

async fn port_forward_http(agent: &Agent) {
    // What kube-rs and the Python client offer; the kubelet's answer is v4.
    let offers = format!("{V5}, {V4}");
    for _ in 0..2 {
        let (mut ws, chosen) = agent
            .websocket("/portForward/default/web?ports=8080", &offers)
            .await
            .unwrap();
        assert_eq!(chosen, V4);
        expect_port_frames(&mut ws, &[8080]).await;
        ws.send(binary(0, b"GET /hello.txt HTTP/1.0\r\n\r\n"))
            .await
            .unwrap();
        let mut response = Vec::new();
        while let Some(frame) = read_frame(&mut ws).await {
            assert_eq!(frame[0], 0, "data channel only: {frame:?}");
            response.extend_from_slice(&frame[1..]);
        }
        let response = String::from_utf8_lossy(&response);
        assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
        assert!(response.ends_with(HELLO), "{response}");
    }
}

async fn port_forward_echo_and_refused(agent: &Agent) {
    // kube-rs's spelling: one comma-separated value.
    let (mut ws, _) = agent
        .websocket("/portForward/default/web?ports=9000%2C9001", V4)
        .await
        .unwrap();
    expect_port_frames(&mut ws, &[9000, 9001]).await;
    // Nothing listens on 9001: the kubelet's error text on its error channel.
    let frame = read_frame(&mut ws).await.unwrap();
    assert_eq!(frame[0], 3);
    let error = String::from_utf8_lossy(&frame[1..]).into_owned();
    assert!(
        error.starts_with("error forwarding port 9001 to pod default/web")
            && error.contains("refused"),
        "{error}"
    );
    // 9000 still works, in both directions and in pieces.
    let mut echoed = Vec::new();
    for line in [&b"one\n"[..], b"two\n"] {
        ws.send(binary(0, line)).await.unwrap();
    }
    while echoed != b"one\ntwo\n" {
        let frame = read_frame(&mut ws).await.expect("echo");
        assert_eq!(frame[0], 0);
        echoed.extend_from_slice(&frame[1..]);
    }
    // The client leaving ends the forward: the echo connection is closed in the pod.
    ws.close(None).await.unwrap();
    while read_frame(&mut ws).await.is_some() {}
    let deadline = Instant::now() + Duration::from_secs(10);
    while agent.sh("ps -o args | grep -c '^cat$'").trim() != "0" {
        assert!(
            Instant::now() < deadline,
            "the echo connection was left open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn port_forward_errors(agent: &Agent) {
    let refused = |result: Result<(Ws, String), (u16, Value)>| match result {
        Ok(_) => panic!("upgraded"),
        Err(refusal) => refusal,
    };
    let (code, status) = refused(
        agent
            .websocket("/portForward/default/nope?ports=80", V4)
            .await,
    );
    assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));
    let (code, status) = refused(agent.websocket("/portForward/default/web", V4).await);
    assert_eq!(code, 400);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("\"ports\" is required")
    );
    let (code, _) = refused(
        agent
            .websocket("/portForward/default/web?ports=http", V4)
            .await,
    );
    assert_eq!(code, 400);
    // kubectl 1.31+: SPDY tunnelled through the WebSocket, with the ports in SPDY headers.
    let (code, status) = refused(
        agent
            .websocket("/portForward/default/web", "SPDY/3.1+portforward.k8s.io")
            .await,
    );
    assert_eq!(code, 400);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("not supported yet"),
        "{status}"
    );
    let (code, status) = agent.get("/portForward/default/web?ports=80", true).await;
    assert_eq!(code, 400);
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("Upgrade request required"),
        "{status}"
    );
}

// ---------------------------------------------------------------------------------------------
// The official Python client
// ---------------------------------------------------------------------------------------------

/// A Python with the `kubernetes` package: `MAESTRO_PYTHON`, or the virtualenv `scripts/test`
/// creates.
fn python_with_client() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tmp/venv/bin/python");
    std::env::var_os("MAESTRO_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([venv])
        .filter(|p| p.exists())
        .find(|p| {
            Command::new(p)
                .args(["-c", "import kubernetes"])
                .status()
                .is_ok_and(|s| s.success())
        })
}

async fn python_client_exec_and_port_forward(agent: &Agent) {
    let python = python_with_client().expect(
        "no python with the kubernetes package: run scripts/test once or set MAESTRO_PYTHON",
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python_streams.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .arg(format!("https://{}", agent.addr))
        .arg(&agent.token)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
