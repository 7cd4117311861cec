//! The web frontend: the page (`index.html`, with the title from `PAGE_TITLE`) and `/api/...`
//! passed on to the API at `API_URL` over a new connection per request, so that requests spread
//! over the API's replicas as the Service balances connections. Behind the example's Ingress,
//! `/api/` goes to the API directly; this path serves the page when it is reached otherwise
//! (`kubectl port-forward svc/web`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HOST, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::http::{self, Body};

const PAGE: &str = include_str!("index.html");
const MAX_BODY_BYTES: usize = 1024 * 1024;

pub struct WebConfig {
    /// `host:port` of the API (from `API_URL=http://host:port`).
    api: String,
    page: String,
}

impl WebConfig {
    pub fn from_env() -> anyhow::Result<WebConfig> {
        let url = std::env::var("API_URL").context("API_URL is not set")?;
        let title = std::env::var("PAGE_TITLE").unwrap_or_else(|_| "maestro n-tier example".into());
        WebConfig::new(&url, &title)
    }

    fn new(url: &str, title: &str) -> anyhow::Result<WebConfig> {
        let Some(api) = url.strip_prefix("http://") else {
            bail!("API_URL must be http://host:port, not {url:?}");
        };
        let api = api.trim_end_matches('/');
        if api.is_empty() || api.contains('/') {
            bail!("API_URL must be http://host:port, not {url:?}");
        }
        Ok(WebConfig {
            api: api.to_string(),
            page: PAGE.replace("{{TITLE}}", &escape(title)),
        })
    }
}

/// Text made safe for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One request to the API over a fresh connection.
async fn forward(api: &str, request: Request<Incoming>) -> anyhow::Result<Response<Body>> {
    let (mut parts, body) = request.into_parts();
    let body = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the request body: {e}"))?
        .to_bytes();
    let stream = tokio::time::timeout(Duration::from_secs(3), tokio::net::TcpStream::connect(api))
        .await
        .context("connecting to the API timed out")?
        .with_context(|| format!("connecting to the API at {api}"))?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    parts.headers.insert(HOST, HeaderValue::from_str(api)?);
    let response = sender
        .send_request(Request::from_parts(parts, Full::new(body)))
        .await?;
    let (mut parts, body) = response.into_parts();
    let body = Limited::new(body, MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|e| anyhow::anyhow!("reading the API's response: {e}"))?
        .to_bytes();
    parts
        .headers
        .insert("x-frontend", HeaderValue::from_str(http::hostname())?);
    Ok(Response::from_parts(parts, Full::new(body)))
}

/// Serve the frontend on `listen`.
pub async fn run(listen: SocketAddr, config: WebConfig) -> anyhow::Result<()> {
    let config = Arc::new(config);
    http::serve(listen, move |request| {
        let config = config.clone();
        async move {
            let path = request.uri().path().to_string();
            match (request.method(), path.as_str()) {
                (&Method::GET, "/" | "/index.html") => {
                    let mut response = http::respond(
                        StatusCode::OK,
                        "text/html; charset=utf-8",
                        config.page.clone(),
                    );
                    response
                        .headers_mut()
                        .insert("cache-control", HeaderValue::from_static("no-store"));
                    response
                }
                (&Method::GET, "/healthz" | "/readyz") => {
                    http::respond(StatusCode::OK, "text/plain", "ok\n")
                }
                (_, p) if p == "/api" || p.starts_with("/api/") => {
                    match forward(&config.api, request).await {
                        Ok(response) => response,
                        Err(err) => {
                            tracing::warn!(%err, "the API did not answer");
                            http::error(
                                StatusCode::BAD_GATEWAY,
                                format!("the API did not answer: {err:#}"),
                            )
                        }
                    }
                }
                _ => http::error(StatusCode::NOT_FOUND, format!("no page at {path}")),
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_url_and_the_title() {
        let config = WebConfig::new("http://api:8080/", "Fish & <chips>").unwrap();
        assert_eq!(config.api, "api:8080");
        assert!(
            config
                .page
                .contains("<title>Fish &amp; &lt;chips&gt;</title>")
        );
        assert!(!config.page.contains("{{TITLE}}"));
        for bad in [
            "https://api:8080",
            "api:8080",
            "http://",
            "http://api:8080/v1",
        ] {
            assert!(WebConfig::new(bad, "t").is_err(), "{bad}");
        }
    }
}
