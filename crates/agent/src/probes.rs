//! Probe checks as the kubelet runs them: `httpGet` (status 200–399 is success; HTTPS without
//! certificate verification), `tcpSocket` (a connection opens), `grpc` (the standard
//! `grpc.health.v1.Health/Check` answers SERVING). `exec` probes run through the container
//! runtime and are the worker's. Each check is bounded by the probe's timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The result of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// Failed, with the message the kubelet would put in the `Unhealthy` event.
    Failure(String),
}

/// The User-Agent the kubelet's HTTP probes send.
pub const USER_AGENT: &str = "kube-probe/1.33";

/// An `httpGet` check of `addr` (the pod IP and port).
pub async fn http_get(
    addr: SocketAddr,
    https: bool,
    host_header: Option<&str>,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Outcome {
    match tokio::time::timeout(
        timeout,
        http_get_inner(addr, https, host_header, path, headers),
    )
    .await
    {
        Ok(Ok(status)) if (200..400).contains(&status) => Outcome::Success,
        Ok(Ok(status)) => Outcome::Failure(format!("HTTP probe failed with statuscode: {status}")),
        Ok(Err(err)) => Outcome::Failure(format!(
            "Get \"{}://{addr}{path}\": {err}",
            if https { "https" } else { "http" }
        )),
        Err(_) => Outcome::Failure(format!(
            "Get \"{}://{addr}{path}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            if https { "https" } else { "http" }
        )),
    }
}

async fn http_get_inner(
    addr: SocketAddr,
    https: bool,
    host_header: Option<&str>,
    path: &str,
    headers: &[(String, String)],
) -> Result<u16, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("dial tcp {addr}: connect: {e}"))?;
    let mut request = http::Request::get(if path.is_empty() { "/" } else { path })
        .header(
            http::header::HOST,
            host_header
                .map(str::to_string)
                .unwrap_or_else(|| addr.to_string()),
        )
        .header(http::header::USER_AGENT, USER_AGENT)
        .header(http::header::ACCEPT, "*/*");
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let status = if https {
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate))
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let tls = connector
            .connect(name, stream)
            .await
            .map_err(|e| e.to_string())?;
        send(TokioIo::new(tls), request).await?
    } else {
        send(TokioIo::new(stream), request).await?
    };
    Ok(status)
}

async fn send<T>(io: T, request: http::Request<Full<Bytes>>) -> Result<u16, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    // Drain a little of the body so the server is not cut off mid-write; it is not checked.
    let _ = tokio::time::timeout(Duration::from_millis(100), response.into_body().collect()).await;
    Ok(status)
}

/// A `tcpSocket` check.
pub async fn tcp(addr: SocketAddr, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Outcome::Success,
        Ok(Err(err)) => Outcome::Failure(format!("dial tcp {addr}: connect: {err}")),
        Err(_) => Outcome::Failure(format!("dial tcp {addr}: i/o timeout")),
    }
}

/// A `grpc` check: `grpc.health.v1.Health/Check` over HTTP/2 without TLS.
pub async fn grpc(addr: SocketAddr, service: &str, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, grpc_inner(addr, service)).await {
        Ok(Ok(1)) => Outcome::Success,
        Ok(Ok(status)) => Outcome::Failure(format!(
            "service unhealthy (responded with \"{}\")",
            serving_status(status)
        )),
        Ok(Err(err)) => Outcome::Failure(format!(
            "failed to connect service \"{addr}\" within {}s: {err}",
            timeout.as_secs()
        )),
        Err(_) => Outcome::Failure(format!(
            "timeout: health rpc did not complete within {}s",
            timeout.as_secs()
        )),
    }
}

fn serving_status(code: u64) -> &'static str {
    match code {
        0 => "UNKNOWN",
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

/// Protobuf of `HealthCheckRequest { service = 1 }` in a gRPC length-prefixed frame.
fn health_request(service: &str) -> Bytes {
    let mut message = Vec::new();
    if !service.is_empty() {
        message.push(0x0a);
        let mut len = service.len();
        loop {
            let byte = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                message.push(byte);
                break;
            }
            message.push(byte | 0x80);
        }
        message.extend_from_slice(service.as_bytes());
    }
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
    frame.extend_from_slice(&message);
    Bytes::from(frame)
}

/// The `status` field (1, varint) of a `HealthCheckResponse` frame.
fn health_status(frame: &[u8]) -> Option<u64> {
    let message = frame.get(5..)?;
    let mut i = 0;
    while i < message.len() {
        let key = message[i];
        i += 1;
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let byte = *message.get(i)?;
            i += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        if key == 0x08 {
            return Some(value);
        }
    }
    Some(0)
}

async fn grpc_inner(addr: SocketAddr, service: &str) -> Result<u64, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = http::Request::post(format!("http://{addr}/grpc.health.v1.Health/Check"))
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers")
        .header(http::header::USER_AGENT, USER_AGENT)
        .body(Full::new(health_request(service)))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let collected = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?;
    if let Some(trailers) = collected.trailers()
        && let Some(code) = trailers.get("grpc-status")
        && code != "0"
    {
        return Err(format!(
            "rpc error: code = {}",
            code.to_str().unwrap_or("?")
        ));
    }
    health_status(&collected.to_bytes()).ok_or_else(|| "malformed health response".to_string())
}

/// Probes do not verify certificates, as the kubelet does not.
#[derive(Debug)]
struct AcceptAnyCertificate;

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn serve_once(status_line: &'static str) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(format!("{status_line}\r\ncontent-length: 2\r\n\r\nok").as_bytes())
                    .await;
            }
        });
        addr
    }

    #[tokio::test]
    async fn http_statuses() {
        let ok = serve_once("HTTP/1.1 200 OK").await;
        assert_eq!(
            http_get(ok, false, None, "/healthz", &[], Duration::from_secs(1)).await,
            Outcome::Success
        );
        let redirect = serve_once("HTTP/1.1 302 Found").await;
        assert_eq!(
            http_get(redirect, false, None, "/", &[], Duration::from_secs(1)).await,
            Outcome::Success
        );
        let bad = serve_once("HTTP/1.1 500 Internal Server Error").await;
        assert_eq!(
            http_get(bad, false, None, "/", &[], Duration::from_secs(1)).await,
            Outcome::Failure("HTTP probe failed with statuscode: 500".into())
        );
    }

    #[tokio::test]
    async fn tcp_open_and_closed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        assert_eq!(tcp(open, Duration::from_secs(1)).await, Outcome::Success);
        drop(listener);
        assert!(
            matches!(tcp(open, Duration::from_secs(1)).await, Outcome::Failure(m) if m.contains("connect"))
        );
    }

    #[test]
    fn grpc_frames() {
        assert_eq!(&health_request("")[..], &[0, 0, 0, 0, 0]);
        assert_eq!(
            &health_request("db")[..],
            &[0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']
        );
        assert_eq!(health_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(1));
        assert_eq!(health_status(&[0, 0, 0, 0, 2, 0x08, 2]), Some(2));
        assert_eq!(health_status(&[0, 0, 0, 0, 0]), Some(0));
    }
}
