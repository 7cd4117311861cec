//! The agent's streaming endpoints, `/exec/{ns}/{pod}` and `/portForward/{ns}/{pod}`: the
//! WebSocket handshake checks and the pod manager's call happen before the 101 answer, so every
//! refusal reaches the client as an HTTP Status; after the upgrade the connection belongs to
//! the protocol bridges in [`crate::exec`] and [`crate::portforward`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use maestro_oci::runtime::{ExecConfig, ExecSession};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::exec::{self, ExecRequest, Process};
use crate::portforward;
use crate::server::{Body, PodStreams, StreamError};

/// How often a session checks whether its process has exited. The runtime's wait blocks, and
/// the session must stay reachable for resizes meanwhile; the output pipes have usually
/// reached their end by the time this matters, so the exit is seen within one period.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// How many polls a resize waits for the process to start (5 s).
const PID_WAIT_STEPS: u32 = 500;

/// A client's WebSocket opening handshake.
struct Offer {
    key: String,
    /// Every offered subprotocol, comma-separated (clients send one header or several).
    protocols: String,
}

fn websocket_offer(req: &Request<Incoming>, endpoint: &str) -> Result<Offer, StreamError> {
    let headers = req.headers();
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    if !(has_token(header::UPGRADE, "websocket") && has_token(header::CONNECTION, "upgrade")) {
        return Err(StreamError::bad_request(format!(
            "Upgrade request required: {endpoint} streams over WebSocket only \
             (Connection: Upgrade, Upgrade: websocket)"
        )));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| StreamError::bad_request("WebSocket upgrade without Sec-WebSocket-Key"))?;
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v != "13")
    {
        return Err(StreamError::bad_request(
            "unsupported WebSocket version: only 13 (RFC 6455) is spoken",
        ));
    }
    let protocols = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",");
    Ok(Offer {
        key: key.to_string(),
        protocols,
    })
}

fn no_protocol(endpoint: &str, ours: &[&str], offered: &str) -> StreamError {
    let offered = if offered.trim().is_empty() {
        "none".to_string()
    } else {
        offered.to_string()
    };
    StreamError::bad_request(format!(
        "{endpoint} needs one of the WebSocket subprotocols {} (offered: {offered})",
        ours.join(", ")
    ))
}

/// The 101 answer that completes the handshake.
fn switching_protocols(key: &str, protocol: &'static str) -> Response<Body> {
    let mut response = Response::new(crate::server::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&exec::accept_key(key)) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(protocol),
    );
    response
}

fn internal(message: String) -> StreamError {
    StreamError {
        code: 500,
        reason: "InternalError",
        message,
    }
}

/// `/exec/{ns}/{pod}`: start the process, answer 101, then bridge it to the client.
pub async fn exec(
    mut req: Request<Incoming>,
    streams: &Arc<dyn PodStreams>,
    namespace: &str,
    pod: &str,
    query: &[(String, String)],
) -> Result<Response<Body>, StreamError> {
    let offer = websocket_offer(&req, "exec")?;
    let protocol = exec::choose_protocol(&offer.protocols)
        .ok_or_else(|| no_protocol("exec", exec::PROTOCOLS, &offer.protocols))?;
    let request = ExecRequest::from_query(query).map_err(StreamError::bad_request)?;
    let config = ExecConfig {
        args: request.command.clone(),
        tty: request.tty,
        stdin: request.stdin,
        ..Default::default()
    };
    // Starting a process runs the OCI runtime: a blocking child process.
    let session = {
        let (streams, namespace, pod) = (streams.clone(), namespace.to_string(), pod.to_string());
        let container = request.container.clone();
        tokio::task::spawn_blocking(move || {
            streams.exec(&namespace, &pod, container.as_deref(), config)
        })
        .await
        .map_err(|e| internal(format!("exec: {e}")))??
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => run_exec(TokioIo::new(upgraded), session, request).await,
            Err(e) => {
                tracing::debug!("exec upgrade did not complete: {e}");
                dispose(session);
            }
        }
    });
    Ok(switching_protocols(&offer.key, protocol))
}

/// Ends a session off the async threads: dropping one whose process still runs kills the
/// process and waits for the runtime to reap it.
fn dispose(session: ExecSession) {
    tokio::task::spawn_blocking(move || drop(session));
}

type Reader = Box<dyn AsyncRead + Unpin + Send>;
type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// Reads and discards a stream nobody asked for, so the process never blocks writing to it.
fn drain(mut pipe: Reader) {
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut pipe, &mut tokio::io::sink()).await;
    });
}

/// The session's stdio as tokio I/O, each stream present only if the client asked for it.
fn process_io(
    session: &mut ExecSession,
    request: &ExecRequest,
) -> std::io::Result<Process<Writer, Reader, Reader>> {
    let keep = |wanted: bool, pipe: Reader| {
        if wanted {
            Some(pipe)
        } else {
            drain(pipe);
            None
        }
    };
    if request.tty {
        let Some(master) = session.take_pty() else {
            return Err(std::io::Error::other("the exec session has no terminal"));
        };
        let (output, input) = crate::pty::split(master)?;
        return Ok(Process {
            stdin: request.stdin.then(|| Box::new(input) as Writer),
            stdout: keep(request.stdout, Box::new(output)),
            stderr: None,
        });
    }
    let stdin = match session.take_stdin() {
        Some(pipe) => Some(Box::new(tokio::process::ChildStdin::from_std(pipe)?) as Writer),
        None => None,
    };
    let stdout = match session.take_stdout() {
        Some(pipe) => keep(
            request.stdout,
            Box::new(tokio::process::ChildStdout::from_std(pipe)?),
        ),
        None => None,
    };
    let stderr = match session.take_stderr() {
        Some(pipe) => keep(
            request.stderr,
            Box::new(tokio::process::ChildStderr::from_std(pipe)?),
        ),
        None => None,
    };
    Ok(Process {
        stdin,
        stdout,
        stderr,
    })
}

async fn run_exec<S>(io: S, mut session: ExecSession, request: ExecRequest)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let process = match process_io(&mut session, &request) {
        Ok(process) => process,
        Err(e) => {
            // Nothing to bridge: tell the client why on the error channel.
            let process: Process<Writer, Reader, Reader> = Process {
                stdin: None,
                stdout: None,
                stderr: None,
            };
            let error = format!("attaching to the process: {e}");
            exec::serve(io, request.command, process, async { Err(error) }, |_| {}).await;
            dispose(session);
            return;
        }
    };
    let session = Arc::new(Mutex::new(session));
    // Resizes hold a weak handle so the last strong one is ours and the session ends here.
    let on_resize = resizer(Arc::downgrade(&session));
    let wait = async {
        loop {
            let status = match session.lock() {
                Ok(mut s) => s.try_wait(),
                Err(_) => return Err("exec session lock poisoned".to_string()),
            };
            match status {
                Ok(Some(code)) => return Ok(code),
                Ok(None) => tokio::time::sleep(EXIT_POLL).await,
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    let ended = exec::serve(io, request.command, process, wait, on_resize).await;
    tracing::debug!(?ended, "exec session ended");
    match Arc::try_unwrap(session) {
        Ok(session) => dispose(session.into_inner().unwrap_or_else(|p| p.into_inner())),
        // A resize in progress holds the other handle; it drops it in a moment.
        Err(session) => {
            tokio::task::spawn_blocking(move || drop(session));
        }
    }
}

/// Applies terminal sizes to a session. A size that arrives before the runtime has started the
/// process (kubectl sends its first one right after the upgrade, while `runc exec` is still
/// starting) reaches only our end of the terminal; it is applied again once the process exists,
/// so the container's terminal gets it too.
fn resizer(session: Weak<Mutex<ExecSession>>) -> impl Fn(exec::TerminalSize) + Send + 'static {
    let latest = Arc::new(Mutex::new(None::<exec::TerminalSize>));
    let waiting = Arc::new(AtomicBool::new(false));
    let apply = |session: &Mutex<ExecSession>, size: exec::TerminalSize| -> bool {
        let Ok(session) = session.lock() else {
            return true;
        };
        if let Err(e) = session.resize(size.width, size.height) {
            tracing::debug!("exec resize: {e}");
        }
        session.pid().is_some()
    };
    move |size| {
        let Some(strong) = session.upgrade() else {
            return;
        };
        if let Ok(mut latest) = latest.lock() {
            *latest = Some(size);
        }
        if apply(&strong, size) || waiting.swap(true, Ordering::SeqCst) {
            return;
        }
        let (session, latest) = (session.clone(), latest.clone());
        tokio::spawn(async move {
            for _ in 0..PID_WAIT_STEPS {
                tokio::time::sleep(EXIT_POLL).await;
                let Some(strong) = session.upgrade() else {
                    return;
                };
                let started = strong.lock().is_ok_and(|s| s.pid().is_some());
                let size = latest.lock().ok().and_then(|l| *l);
                if let (true, Some(size)) = (started, size) {
                    apply(&strong, size);
                    return;
                }
            }
        });
    }
}

/// `/portForward/{ns}/{pod}`: answer 101, then splice each requested port of the pod.
pub async fn port_forward(
    mut req: Request<Incoming>,
    streams: &Arc<dyn PodStreams>,
    namespace: &str,
    pod: &str,
    query: &[(String, String)],
) -> Result<Response<Body>, StreamError> {
    let offer = websocket_offer(&req, "port-forward")?;
    let protocol =
        exec::choose_from(portforward::PROTOCOLS, &offer.protocols).ok_or_else(|| {
            if exec::choose_from(&[portforward::KUBECTL_TUNNEL_PROTOCOL], &offer.protocols)
                .is_some()
            {
                StreamError::bad_request(format!(
                    "port-forward: kubectl's SPDY-over-WebSocket tunnel ({}) is not supported yet; \
                 clients speaking {} (the Python client, kube-rs) are",
                    portforward::KUBECTL_TUNNEL_PROTOCOL,
                    portforward::PROTOCOLS.join(", ")
                ))
            } else {
                no_protocol("port-forward", portforward::PROTOCOLS, &offer.protocols)
            }
        })?;
    let ports = portforward::parse_ports(query).map_err(StreamError::bad_request)?;
    let ip = streams.pod_ip(namespace, pod)?;
    let upgrade = hyper::upgrade::on(&mut req);
    let name = format!("{namespace}/{pod}");
    tokio::spawn(async move {
        match upgrade.await {
            Ok(upgraded) => portforward::serve(TokioIo::new(upgraded), name, ip, ports).await,
            Err(e) => tracing::debug!("port-forward upgrade did not complete: {e}"),
        }
    });
    Ok(switching_protocols(&offer.key, protocol))
}
