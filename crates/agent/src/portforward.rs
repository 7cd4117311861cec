//! Port-forwarding over WebSocket (`v4.channel.k8s.io`), as the Python client and kube-rs speak
//! it and as the kubelet serves it. The request names its ports in the query; port `i` gets two
//! channels, data `2i` and error `2i+1`, and the server opens each channel with a frame holding
//! only the port as a little-endian u16 (clients check it). Then client frames on `2i` go to the
//! pod's port and what the pod sends comes back on `2i`; a failure is text on `2i+1`. One TCP
//! connection per port per WebSocket: clients open a new WebSocket for each local connection.
//!
//! kubectl does not speak this: it tunnels SPDY through the WebSocket
//! (`SPDY/3.1+portforward.k8s.io`); see `docs/research/kubectl-wire.md`.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::exec::{client_frame, normal_close};

/// The subprotocol the kubelet answers port-forward requests with. Clients offer
/// `v5.channel.k8s.io` too (kube-rs, Python ≥ 37) and accept v4.
pub const PROTOCOLS: &[&str] = &["v4.channel.k8s.io"];

/// What kubectl (1.31+) offers: SPDY framing tunnelled through the WebSocket. Not spoken here.
pub const KUBECTL_TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";

/// Two channels per port and a channel is one byte.
pub const MAX_PORTS: usize = 128;

/// How long connecting to the pod may take before the port reports an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// See `exec::CLOSE_GRACE`.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// The ports of a request: `ports` (what clients send to the API server) or `port` (what
/// kube-apiserver passes on to kubelets), each repeated or comma-separated, in order.
pub fn parse_ports(query: &[(String, String)]) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (_, value) in query.iter().filter(|(k, _)| k == "ports" || k == "port") {
        if value.is_empty() {
            return Err("query parameter \"ports\" cannot be empty".into());
        }
        for part in value.split(',') {
            let port = part
                .trim()
                .parse::<u16>()
                .map_err(|_| format!("unable to parse {part:?} as a port"))?;
            if port == 0 {
                return Err(format!("port {part:?} must be > 0"));
            }
            ports.push(port);
        }
    }
    if ports.is_empty() {
        return Err("query parameter \"ports\" is required".into());
    }
    if ports.len() > MAX_PORTS {
        return Err(format!(
            "at most {MAX_PORTS} ports can be forwarded over one connection"
        ));
    }
    Ok(ports)
}

/// The frame that opens channel `channel` of `port`.
pub fn port_frame(channel: u8, port: u16) -> Vec<u8> {
    let [lo, hi] = port.to_le_bytes();
    vec![channel, lo, hi]
}

/// Forward `ports` of the pod at `ip` over the upgraded connection `io` until every port's
/// connection has ended (then the WebSocket is closed) or the client leaves (then the pod
/// connections are dropped). `pod` names the pod in error messages.
pub async fn serve<S>(io: S, pod: String, ip: IpAddr, ports: Vec<u16>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, None).await;
    let (mut sink, mut source) = ws.split();
    for (i, &port) in ports.iter().enumerate() {
        for channel in [2 * i as u8, 2 * i as u8 + 1] {
            if sink
                .send(Message::Binary(port_frame(channel, port).into()))
                .await
                .is_err()
            {
                return;
            }
        }
    }

    let (out_tx, mut out_rx) = mpsc::channel::<Vec<u8>>(64);
    let mut to_pod = Vec::with_capacity(ports.len());
    let mut forwards = tokio::task::JoinSet::new();
    for (i, &port) in ports.iter().enumerate() {
        let (tx, rx) = mpsc::channel::<Vec<u8>>(16);
        to_pod.push(tx);
        forwards.spawn(forward(
            2 * i as u8,
            SocketAddr::new(ip, port),
            pod.clone(),
            rx,
            out_tx.clone(),
        ));
    }
    drop(out_tx);

    // Frames to the client, then the close once every port is done.
    let mut writer = tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            if sink.send(Message::Binary(frame.into())).await.is_err() {
                return;
            }
        }
        let _ = sink.send(normal_close()).await;
    });
    // Frames from the client to the ports. A port that has finished drops its receiver and
    // later data for it is discarded, as the kubelet does once a stream pair is closed.
    let reader = async move {
        while let Some(Ok(message)) = source.next().await {
            let Some(data) = client_frame(message) else {
                break;
            };
            let Some((&channel, payload)) = data.split_first() else {
                continue;
            };
            if channel % 2 == 0
                && !payload.is_empty()
                && let Some(tx) = to_pod.get(usize::from(channel / 2))
            {
                let _ = tx.send(payload.to_vec()).await;
            }
        }
    };
    tokio::pin!(reader);
    tokio::select! {
        _ = &mut writer => {
            let _ = tokio::time::timeout(CLOSE_GRACE, &mut reader).await;
        }
        _ = &mut reader => {
            forwards.abort_all();
            writer.abort();
        }
    }
}

/// One port: connect, then copy both ways until the pod closes its side or fails. Errors go
/// out as text on the port's error channel (`data_channel + 1`).
async fn forward(
    data_channel: u8,
    addr: SocketAddr,
    pod: String,
    mut from_client: mpsc::Receiver<Vec<u8>>,
    to_client: mpsc::Sender<Vec<u8>>,
) {
    let report = |error: String| {
        let to_client = to_client.clone();
        let message = format!(
            "error forwarding port {} to pod {pod}: {error}",
            addr.port()
        );
        async move {
            let mut frame = vec![data_channel + 1];
            frame.extend_from_slice(message.as_bytes());
            let _ = to_client.send(frame).await;
        }
    };
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return report(format!("dial tcp {addr}: {e}")).await,
        Err(_) => return report(format!("dial tcp {addr}: i/o timeout")).await,
    };
    let (mut from_pod, mut to_pod) = stream.into_split();
    let upstream = async {
        while let Some(data) = from_client.recv().await {
            to_pod.write_all(&data).await?;
        }
        // The client is gone; let the pod see the end of its input.
        to_pod.shutdown().await
    };
    let downstream = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = from_pod.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            let mut frame = Vec::with_capacity(n + 1);
            frame.push(data_channel);
            frame.extend_from_slice(&buf[..n]);
            if to_client.send(frame).await.is_err() {
                return Ok(());
            }
        }
    };
    // The pod closing its side ends the port (the protocol has no half-close to pass on); a
    // write the pod refuses is reported like a read error.
    let result = tokio::select! {
        r = downstream => r,
        r = upstream => r,
    };
    if let Err(e) = result {
        report(format!("read/write {addr}: {e}")).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn port_queries() {
        // kube-rs: one comma-separated value; Python: one value per call; kube-apiserver → kubelet:
        // `port`.
        assert_eq!(
            parse_ports(&query(&[("ports", "80,1234")])).unwrap(),
            [80, 1234]
        );
        assert_eq!(
            parse_ports(&query(&[("ports", "80"), ("port", "81,82")])).unwrap(),
            [80, 81, 82]
        );
        assert!(parse_ports(&query(&[])).unwrap_err().contains("required"));
        assert!(parse_ports(&query(&[("ports", "")])).is_err());
        assert!(parse_ports(&query(&[("ports", "http")])).is_err());
        assert!(parse_ports(&query(&[("ports", "0")])).is_err());
        assert!(parse_ports(&query(&[("ports", "65536")])).is_err());
        let many = (1..=129)
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(",");
        assert!(parse_ports(&query(&[("ports", &many)])).is_err());
        assert_eq!(port_frame(3, 8080), [3, 0x90, 0x1f]);
    }

    #[tokio::test]
    async fn a_port_is_spliced_and_a_refused_one_reported() {
        // An echo server on loopback, and a port nothing listens on.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().port();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 64];
            let n = conn.read(&mut buf).await.unwrap();
            conn.write_all(&[b"echo:", &buf[..n]].concat())
                .await
                .unwrap();
        });
        let (server_io, client_io) = tokio::io::duplex(64 * 1024);
        let server = tokio::spawn(serve(
            server_io,
            "default/web".into(),
            IpAddr::from([127, 0, 0, 1]),
            vec![open, closed],
        ));
        let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        let mut frames = Vec::new();
        // Four opening frames, then the refusal on channel 3.
        while frames.len() < 5 {
            match client.next().await.unwrap().unwrap() {
                Message::Binary(data) => frames.push(data.to_vec()),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(frames[0], port_frame(0, open));
        assert_eq!(frames[1], port_frame(1, open));
        assert_eq!(frames[2], port_frame(2, closed));
        assert_eq!(frames[3], port_frame(3, closed));
        assert_eq!(frames[4][0], 3);
        let error = String::from_utf8_lossy(&frames[4][1..]).to_string();
        assert!(
            error.starts_with(&format!(
                "error forwarding port {closed} to pod default/web"
            )) && error.contains("refused"),
            "{error}"
        );
        client
            .send(Message::Binary([&[0u8][..], b"ping"].concat().into()))
            .await
            .unwrap();
        let mut echoed = Vec::new();
        let mut closed_by_server = false;
        while let Some(message) = client.next().await {
            match message.unwrap() {
                Message::Binary(data) => {
                    assert_eq!(data[0], 0);
                    echoed.extend_from_slice(&data[1..]);
                }
                Message::Close(_) => closed_by_server = true,
                _ => {}
            }
        }
        assert_eq!(echoed, b"echo:ping");
        assert!(
            closed_by_server,
            "the server closes once both ports are done"
        );
        server.await.unwrap();
    }
}
