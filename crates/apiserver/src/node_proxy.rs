//! Requests the API server passes on to a node agent: `pods/log` (streamed), and `pods/exec`,
//! `pods/attach`, `pods/portforward` (WebSocket upgrades spliced through). The agent is found
//! from the pod's `spec.nodeName` and the Node's InternalIP and kubelet port; the API server
//! authenticates itself with a short-lived token signed by the cluster key (audience
//! `maestro-agent`), which agents check against `/openid/v1/jwks`. Agents serve a self-signed
//! certificate that is not verified, as kube-apiserver does not verify kubelets by default.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use maestro_api::{ApiError, resources};
use serde_json::{Value, json};
use tokio::net::TcpStream;

use crate::registry::{Registry, Resource};
use crate::response::Body;
use crate::tokens::Signer;

/// Audience of the tokens the API server presents to agents.
pub const AGENT_AUDIENCE: &str = "maestro-agent";

/// The agent address of the node running a pod.
async fn agent_address(
    registry: &Registry,
    namespace: &str,
    pod: &str,
) -> Result<SocketAddr, ApiError> {
    let pods = Resource::builtin(resources::find_builtin("", "v1", "pods").expect("built in"));
    let pod_obj = registry.get(&pods, Some(namespace), pod).await?;
    let Some(node_name) = pod_obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return Err(ApiError::bad_request(format!(
            "pod {pod} does not have a host assigned"
        )));
    };
    let nodes = Resource::builtin(resources::find_builtin("", "v1", "nodes").expect("built in"));
    let node = registry.get(&nodes, None, node_name).await.map_err(|_| {
        ApiError::bad_request(format!("node {node_name:?} of pod {pod} is not registered"))
    })?;
    let ip = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
        .and_then(|a| a["address"].as_str())
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| ApiError::internal(format!("node {node_name:?} has no InternalIP")))?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .unwrap_or(10250) as u16;
    Ok(SocketAddr::new(ip, port))
}

fn agent_token(signer: &Signer) -> String {
    let now = jiff::Timestamp::now().as_second();
    signer.sign(&json!({
        "iss": crate::tokens::ISSUER,
        "sub": "system:kube-apiserver",
        "aud": [AGENT_AUDIENCE],
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }))
}

async fn connect_tls(
    addr: SocketAddr,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ApiError> {
    let unreachable = |e: String| {
        ApiError::service_unavailable(format!("error dialing backend: dial tcp {addr}: {e}"))
    };
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| unreachable(e.to_string()))?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| unreachable(e.to_string()))?
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(crate::insecure::AcceptAnyCertificate))
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    connector
        .connect(
            rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
            tcp,
        )
        .await
        .map_err(|e| unreachable(e.to_string()))
}

/// `GET pods/<name>/log`: the agent's `/containerLogs/<ns>/<pod>/<container>` streamed back.
pub async fn logs(
    registry: &Registry,
    signer: &Signer,
    namespace: &str,
    pod: &str,
    query: Option<&str>,
) -> Result<Response<Body>, ApiError> {
    let pods = Resource::builtin(resources::find_builtin("", "v1", "pods").expect("built in"));
    let pod_obj = registry.get(&pods, Some(namespace), pod).await?;
    let params: Vec<(String, String)> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let container = match params
        .iter()
        .find(|(k, _)| k == "container")
        .map(|(_, v)| v.clone())
    {
        Some(c) if !c.is_empty() => c,
        _ => {
            let names: Vec<String> = pod_obj
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map(|c| {
                    c.iter()
                        .filter_map(|c| c["name"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            match names.as_slice() {
                [only] => only.clone(),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "a container name must be specified for pod {pod}, choose one of: [{}]",
                        names.join(" ")
                    )));
                }
            }
        }
    };
    let addr = agent_address(registry, namespace, pod).await?;
    let rest: Vec<String> = params
        .iter()
        .filter(|(k, _)| k != "container")
        .map(|(k, v)| {
            format!(
                "{}={}",
                k,
                form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect();
    let path = format!(
        "/containerLogs/{namespace}/{pod}/{container}?{}",
        rest.join("&")
    );
    let tls = connect_tls(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| ApiError::service_unavailable(e.to_string()))?;
    tokio::spawn(connection);
    let request = Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", agent_token(signer)),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| ApiError::service_unavailable(e.to_string()))?;
    let status = response.status();
    if !status.is_success() {
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        // The agent answers errors as Status objects; pass them on.
        if let Ok(status_obj) = serde_json::from_slice::<Value>(&body) {
            let code = status_obj["code"]
                .as_u64()
                .unwrap_or(u64::from(status.as_u16())) as u16;
            let mut err = ApiError::new(
                code,
                status_obj["reason"].as_str().unwrap_or("InternalError"),
                status_obj["message"].as_str().unwrap_or_default(),
            );
            err.name = Some(pod.to_string());
            return Err(err);
        }
        return Err(ApiError::new(
            status.as_u16(),
            "InternalError",
            String::from_utf8_lossy(&body).to_string(),
        ));
    }
    let body = response.into_body().map_err(std::io::Error::other).boxed();
    let mut out = Response::new(body);
    *out.status_mut() = StatusCode::OK;
    out.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    out.headers_mut().insert(
        http::header::TRANSFER_ENCODING,
        http::HeaderValue::from_static("chunked"),
    );
    Ok(out)
}

/// `pods/exec`, `pods/attach`, `pods/portforward`: answer the client's WebSocket upgrade with
/// the agent's, then splice the two connections.
pub async fn upgrade(
    registry: &Registry,
    signer: &Signer,
    namespace: &str,
    pod: &str,
    subresource: &str,
    mut request: Request<Bytes>,
) -> Result<Response<Body>, ApiError> {
    if !request
        .headers()
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
    {
        return Err(ApiError::bad_request(
            "Upgrade request required: this endpoint speaks WebSocket (v5.channel.k8s.io, v4.channel.k8s.io)",
        ));
    }
    let addr = agent_address(registry, namespace, pod).await?;
    let agent_path = match subresource {
        "exec" => format!("/exec/{namespace}/{pod}"),
        "attach" => format!("/attach/{namespace}/{pod}"),
        _ => format!("/portForward/{namespace}/{pod}"),
    };
    let query = request
        .uri()
        .query()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let tls = connect_tls(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| ApiError::service_unavailable(e.to_string()))?;
    tokio::spawn(connection.with_upgrades());
    let mut forward = Request::get(format!("{agent_path}{query}"));
    for (name, value) in request.headers() {
        if matches!(name.as_str(), "authorization" | "host") {
            continue;
        }
        forward = forward.header(name, value);
    }
    let forward = forward
        .header(http::header::HOST, addr.to_string())
        .header(
            http::header::AUTHORIZATION,
            format!("Bearer {}", agent_token(signer)),
        )
        .body(Empty::<Bytes>::new())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut agent_response = sender
        .send_request(forward)
        .await
        .map_err(|e| ApiError::service_unavailable(e.to_string()))?;
    if agent_response.status() != StatusCode::SWITCHING_PROTOCOLS {
        let status = agent_response.status();
        let body = agent_response
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        if let Ok(obj) = serde_json::from_slice::<Value>(&body) {
            return Err(ApiError::new(
                obj["code"].as_u64().unwrap_or(500) as u16,
                obj["reason"].as_str().unwrap_or("InternalError"),
                obj["message"].as_str().unwrap_or_default(),
            ));
        }
        return Err(ApiError::new(
            status.as_u16(),
            "InternalError",
            String::from_utf8_lossy(&body).to_string(),
        ));
    }
    let mut response = Response::new(crate::response::full(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in agent_response.headers() {
        response.headers_mut().insert(name, value.clone());
    }
    let agent_upgrade = hyper::upgrade::on(&mut agent_response);
    let client_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let (Ok(agent), Ok(client)) = (agent_upgrade.await, client_upgrade.await) else {
            tracing::debug!("a streaming upgrade did not complete");
            return;
        };
        let mut agent = TokioIo::new(agent);
        let mut client = TokioIo::new(client);
        let _ = tokio::io::copy_bidirectional(&mut client, &mut agent).await;
    });
    Ok(response)
}
