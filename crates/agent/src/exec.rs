//! The Kubernetes streaming protocol over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`),
//! as `kubectl exec` (1.30+), the Python client and kube-rs speak it: binary frames whose first
//! byte is the channel — 0 stdin, 1 stdout, 2 stderr, 3 error (a Status carrying the exit code
//! when the process ends), 4 terminal resize, 255 close (v5: "stdin is finished"). The process
//! side is any set of async pipes, so the runtime decides how it runs the command.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Subprotocols this agent speaks, preferred first.
pub const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
pub const CLOSE: u8 = 255;

/// How long a finished session waits for the client's half of the WebSocket closing handshake.
/// Reading it also drains what the client sent last, so closing the socket does not reset it.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Pick the subprotocol from the client's `Sec-WebSocket-Protocol` offers.
pub fn choose_protocol(offered: &str) -> Option<&'static str> {
    choose_from(PROTOCOLS, offered)
}

/// The first of `ours` (in our order of preference) that the client offered. Clients send
/// one comma-separated header (kube-rs, Python) or several, which the caller joins with commas.
pub fn choose_from(ours: &[&'static str], offered: &str) -> Option<&'static str> {
    let offers: Vec<&str> = offered.split(',').map(str::trim).collect();
    ours.iter().copied().find(|p| offers.contains(p))
}

/// The `Sec-WebSocket-Accept` value for a client key.
pub fn accept_key(key: &str) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes())
}

/// The Status sent on the error channel when the process ends, worded as the kubelet words it
/// for a CRI runtime's exit error (kubectl reads the code from the `ExitCode` cause and prints
/// "command terminated with exit code N").
pub fn exit_status(command: &[String], code: i32) -> Value {
    if code == 0 {
        return json!({"metadata": {}, "status": "Success"});
    }
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", command.join(" ")),
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
    })
}

/// The Status sent on the error channel when the process could not be waited for (the
/// kubelet's InternalError for an exec that failed without an exit code).
pub fn internal_error_status(error: &str) -> Value {
    let error = format!("error executing command in container: {error}");
    json!({
        "metadata": {},
        "status": "Failure",
        "message": format!("Internal error occurred: {error}"),
        "reason": "InternalError",
        "details": {"causes": [{"message": error}]},
        "code": 500,
    })
}

/// What an exec request asks for, from the query kubectl, the Python client and kube-rs send:
/// `command` (repeated, one argument each), `container`, `stdin`, `stdout`, `stderr`, `tty`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub command: Vec<String>,
    /// `None` when the request names no container (the pod's only one is meant).
    pub container: Option<String>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

impl ExecRequest {
    /// Parses and checks the query. Flags follow the API server's query conversion: present
    /// and not `0`/`false` (any case) is true, so `true`, `1` and older Python clients' `True`
    /// all work. A terminal merges stderr into stdout, so `tty` drops `stderr` (as the kubelet
    /// does).
    pub fn from_query(query: &[(String, String)]) -> Result<ExecRequest, String> {
        let flag = |key: &str| {
            query
                .iter()
                .find(|(k, _)| k == key)
                .is_some_and(|(_, v)| !(v == "0" || v.eq_ignore_ascii_case("false")))
        };
        let command: Vec<String> = query
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect();
        let mut request = ExecRequest {
            container: query
                .iter()
                .find(|(k, _)| k == "container")
                .map(|(_, v)| v.clone())
                .filter(|c| !c.is_empty()),
            stdin: flag("stdin"),
            stdout: flag("stdout"),
            stderr: flag("stderr"),
            tty: flag("tty"),
            command,
        };
        if request.command.is_empty() {
            return Err("you must specify at least one command for the container".into());
        }
        if !(request.stdin || request.stdout || request.stderr) {
            return Err("you must specify at least 1 of stdin, stdout, stderr".into());
        }
        if request.tty {
            request.stderr = false;
        }
        Ok(request)
    }
}

/// A running command's pipes. `None` for a stream the client did not ask for: its channel
/// stays silent (the caller drains such a pipe so the process never blocks on it).
pub struct Process<I, O, E> {
    pub stdin: Option<I>,
    pub stdout: Option<O>,
    pub stderr: Option<E>,
}

/// A terminal size from a resize frame (`{"Width":80,"Height":24}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    pub width: u16,
    pub height: u16,
}

fn parse_resize(data: &[u8]) -> Option<TerminalSize> {
    let v: Value = serde_json::from_slice(data).ok()?;
    Some(TerminalSize {
        width: u16::try_from(v["Width"].as_u64()?).ok()?,
        height: u16::try_from(v["Height"].as_u64()?).ok()?,
    })
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The process exited with this code and the client was sent its Status.
    Exited(i32),
    /// Waiting for the process failed; the client was sent an InternalError Status.
    Failed(String),
    /// The client closed the connection (or it broke) first. The caller ends the process:
    /// nobody is left to read its output.
    ClientGone,
}

/// Bridge an upgraded connection and a process until the process ends or the client leaves.
/// `wait` yields the exit code (or why there is none); it is awaited once both output pipes are
/// drained, so all output precedes the Status. `on_resize` is told of terminal resizes.
pub async fn serve<S, I, O, E, W>(
    io: S,
    command: Vec<String>,
    process: Process<I, O, E>,
    wait: W,
    on_resize: impl Fn(TerminalSize) + Send + 'static,
) -> Ended
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    I: AsyncWrite + Unpin + Send + 'static,
    O: AsyncRead + Unpin + Send + 'static,
    E: AsyncRead + Unpin + Send + 'static,
    W: std::future::Future<Output = Result<i32, String>> + Send,
{
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);

    // Like the kubelet, an empty frame on the lowest channel we will write tells the client the
    // stream is established (SPDY-era clients wait for it; WebSocket clients ignore it).
    let first = match (&process.stdout, &process.stderr) {
        (Some(_), _) => STDOUT,
        (None, Some(_)) => STDERR,
        (None, None) => ERROR,
    };
    let _ = out_tx.send(vec![first]).await;

    // Client → process: stdin, resizes, close. Ends when the client closes or the connection
    // breaks.
    let mut stdin = process.stdin;
    let mut reader = tokio::spawn(async move {
        while let Some(Ok(message)) = source.next().await {
            let Some(data) = client_frame(message) else {
                break;
            };
            let Some((&channel, payload)) = data.split_first() else {
                continue;
            };
            match channel {
                STDIN => {
                    if let Some(pipe) = stdin.as_mut()
                        && (pipe.write_all(payload).await.is_err() || pipe.flush().await.is_err())
                    {
                        stdin = None;
                    }
                }
                RESIZE => {
                    if let Some(size) = parse_resize(payload) {
                        on_resize(size);
                    }
                }
                // v5: the client has no more stdin.
                CLOSE if payload.first() == Some(&STDIN) => {
                    if let Some(mut pipe) = stdin.take() {
                        let _ = pipe.shutdown().await;
                    }
                }
                _ => {}
            }
        }
    });

    // Process → client: stdout and stderr, each prefixed with its channel.
    let pump = |mut pipe: Box<dyn AsyncRead + Unpin + Send>,
                channel: u8,
                tx: tokio::sync::mpsc::Sender<Vec<u8>>| {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match pipe.read(&mut buf).await {
                    // A pty master reports EIO once the terminal's last user is gone: its EOF.
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut frame = Vec::with_capacity(n + 1);
                        frame.push(channel);
                        frame.extend_from_slice(&buf[..n]);
                        if tx.send(frame).await.is_err() {
                            break;
                        }
                    }
                }
            }
        })
    };
    let mut pumps = Vec::new();
    if let Some(out) = process.stdout {
        pumps.push(pump(Box::new(out), STDOUT, out_tx.clone()));
    }
    if let Some(err) = process.stderr {
        pumps.push(pump(Box::new(err), STDERR, out_tx.clone()));
    }
    drop(out_tx);
    let pump_aborts: Vec<_> = pumps.iter().map(|p| p.abort_handle()).collect();
    let mut writer = tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                return None;
            }
        }
        Some(sink)
    });
    let finished = async {
        for p in pumps {
            let _ = p.await;
        }
        wait.await
    };
    let result = tokio::select! {
        result = finished => result,
        _ = &mut reader => {
            for p in pump_aborts {
                p.abort();
            }
            writer.abort();
            return Ended::ClientGone;
        }
    };
    let (status, ended) = match result {
        Ok(code) => (exit_status(&command, code), Ended::Exited(code)),
        Err(e) => (internal_error_status(&e), Ended::Failed(e)),
    };
    if let Ok(Some(mut sink)) = (&mut writer).await {
        let mut frame = vec![ERROR];
        frame.extend_from_slice(status.to_string().as_bytes());
        let _ = sink.send(Message::Binary(frame.into())).await;
        let _ = sink.send(normal_close()).await;
        let _ = tokio::time::timeout(CLOSE_GRACE, &mut reader).await;
    }
    reader.abort();
    ended
}

/// The bytes of a client's WebSocket message (channel byte first): `None` when the client
/// closes, empty for control frames. The Python client sends str data as text frames; the
/// kubelet takes any frame, and so does this.
pub(crate) fn client_frame(message: Message) -> Option<bytes::Bytes> {
    match message {
        Message::Binary(data) => Some(data),
        Message::Text(text) => Some(text.into()),
        Message::Close(_) => None,
        _ => Some(bytes::Bytes::new()),
    }
}

/// The close frame a finished stream ends with. It carries code 1000: client-go treats a close
/// without a code (1005) as a broken stream and fails the whole `kubectl exec`.
pub(crate) fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_choice_and_statuses() {
        assert_eq!(
            choose_protocol("v4.channel.k8s.io, v5.channel.k8s.io"),
            Some("v5.channel.k8s.io")
        );
        assert_eq!(
            choose_protocol("v4.channel.k8s.io"),
            Some("v4.channel.k8s.io")
        );
        assert_eq!(choose_protocol("channel.k8s.io"), None);
        assert_eq!(exit_status(&["true".into()], 0)["status"], "Success");
        let failed = exit_status(&["sh".into(), "-c".into(), "exit 3".into()], 3);
        assert_eq!(failed["reason"], "NonZeroExitCode");
        assert_eq!(failed["details"]["causes"][0]["message"], "3");
        assert_eq!(
            failed["message"],
            "command terminated with non-zero exit code: error executing command [sh -c exit 3], exit code 3"
        );
        assert_eq!(
            parse_resize(br#"{"Width":80,"Height":24}"#),
            Some(TerminalSize {
                width: 80,
                height: 24
            })
        );
        let failed = internal_error_status("runc exec: boom");
        assert_eq!(
            (failed["reason"].as_str(), failed["code"].as_u64()),
            (Some("InternalError"), Some(500))
        );
        assert_eq!(parse_resize(br#"{"Width":70000,"Height":24}"#), None);
        // RFC 6455's example key.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn exec_queries() {
        // What kubectl 1.33 sends for `kubectl exec -i -t web -c app -- sh -c 'echo hi'`.
        let request = ExecRequest::from_query(&query(&[
            ("command", "sh"),
            ("command", "-c"),
            ("command", "echo hi"),
            ("container", "app"),
            ("stdin", "true"),
            ("stdout", "true"),
            ("stderr", "true"),
            ("tty", "true"),
        ]))
        .unwrap();
        assert_eq!(
            request,
            ExecRequest {
                command: vec!["sh".into(), "-c".into(), "echo hi".into()],
                container: Some("app".into()),
                stdin: true,
                stdout: true,
                // A terminal has no separate stderr.
                stderr: false,
                tty: true,
            }
        );
        // The API server's spelling ("1"), older Python clients' ("True"), explicit false.
        let request = ExecRequest::from_query(&query(&[
            ("command", "ls"),
            ("stdout", "1"),
            ("stderr", "True"),
            ("stdin", "false"),
            ("tty", "0"),
            ("container", ""),
        ]))
        .unwrap();
        assert_eq!(
            (request.stdout, request.stderr, request.stdin, request.tty),
            (true, true, false, false)
        );
        assert_eq!(request.container, None);
        assert!(
            ExecRequest::from_query(&query(&[("stdout", "true")]))
                .unwrap_err()
                .contains("at least one command")
        );
        assert!(
            ExecRequest::from_query(&query(&[("command", "ls"), ("tty", "true")]))
                .unwrap_err()
                .contains("at least 1 of stdin, stdout, stderr")
        );
        assert_eq!(
            choose_from(
                &["v4.channel.k8s.io"],
                "v5.channel.k8s.io,v4.channel.k8s.io"
            ),
            Some("v4.channel.k8s.io")
        );
    }

    #[tokio::test]
    async fn a_process_is_bridged_to_the_client() {
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", "read line; echo got $line; echo oops >&2; exit 3"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let process = Process {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
        };
        let server = tokio::spawn(serve(
            server_io,
            vec!["sh".into()],
            process,
            async move {
                child
                    .wait()
                    .await
                    .map(|s| s.code().unwrap_or(-1))
                    .map_err(|e| e.to_string())
            },
            |_| {},
        ));
        let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        client
            .send(Message::Binary([&[STDIN][..], b"hello\n"].concat().into()))
            .await
            .unwrap();
        let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), Value::Null);
        while let Some(Ok(message)) = client.next().await {
            let Message::Binary(data) = message else {
                continue;
            };
            match data[0] {
                STDOUT => out.extend_from_slice(&data[1..]),
                STDERR => err.extend_from_slice(&data[1..]),
                ERROR => status = serde_json::from_slice(&data[1..]).unwrap(),
                _ => {}
            }
        }
        assert_eq!(server.await.unwrap(), Ended::Exited(3));
        assert_eq!(out, b"got hello\n");
        assert_eq!(err, b"oops\n");
        assert_eq!(status["details"]["causes"][0]["message"], "3");
    }
}
