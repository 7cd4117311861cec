//! The Kubernetes streaming protocol over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`),
//! as `kubectl exec` (1.30+), the Python client and kube-rs speak it: binary frames whose first
//! byte is the channel — 0 stdin, 1 stdout, 2 stderr, 3 error (a Status carrying the exit code
//! when the process ends), 4 terminal resize, 255 close (v5: "stdin is finished"). The process
//! side is any set of async pipes, so the runtime decides how it runs the command.

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

/// Subprotocols this agent speaks, preferred first.
pub const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
pub const CLOSE: u8 = 255;

/// Pick the subprotocol from the client's `Sec-WebSocket-Protocol` offers.
pub fn choose_protocol(offered: &str) -> Option<&'static str> {
    let offers: Vec<&str> = offered.split(',').map(str::trim).collect();
    PROTOCOLS.iter().copied().find(|p| offers.contains(p))
}

/// The `Sec-WebSocket-Accept` value for a client key.
pub fn accept_key(key: &str) -> String {
    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes())
}

/// The Status sent on the error channel when the process ends.
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

/// A running command's pipes.
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
        width: v["Width"].as_u64()? as u16,
        height: v["Height"].as_u64()? as u16,
    })
}

/// Bridge an upgraded connection and a process until the process ends; `wait` yields its exit
/// code once both output pipes are drained. `on_resize` is told of terminal resizes.
pub async fn serve<S, I, O, E, W>(
    io: S,
    command: Vec<String>,
    process: Process<I, O, E>,
    wait: W,
    on_resize: impl Fn(TerminalSize) + Send + 'static,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    I: AsyncWrite + Unpin + Send + 'static,
    O: AsyncRead + Unpin + Send + 'static,
    E: AsyncRead + Unpin + Send + 'static,
    W: std::future::Future<Output = i32> + Send,
{
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    let (mut sink, mut source) = ws.split();
    let (out_tx, mut out_rx) = tokio::sync::mpsc::channel::<Vec<u8>>(64);

    // Client → process: stdin, resizes, close.
    let mut stdin = process.stdin;
    let reader = tokio::spawn(async move {
        while let Some(Ok(message)) = source.next().await {
            let data = match message {
                Message::Binary(data) => data.to_vec(),
                Message::Close(_) => break,
                _ => continue,
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
    let writer = tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                return None;
            }
        }
        Some(sink)
    });
    for p in pumps {
        let _ = p.await;
    }
    let code = wait.await;
    if let Ok(Some(mut sink)) = writer.await {
        let mut frame = vec![ERROR];
        frame.extend_from_slice(exit_status(&command, code).to_string().as_bytes());
        let _ = sink.send(Message::Binary(frame.into())).await;
        let _ = sink.send(Message::Close(None)).await;
    }
    reader.abort();
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
        // RFC 6455's example key.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
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
                    .unwrap_or(-1)
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
        server.await.unwrap();
        assert_eq!(out, b"got hello\n");
        assert_eq!(err, b"oops\n");
        assert_eq!(status["details"]["causes"][0]["message"], "3");
    }
}
