//! The agent's connection to the API server: a kube-rs client that verifies the server with the
//! cluster CA and authenticates with a bearer token.

use kube::{Client, Config};

use crate::AgentError;
use crate::join::{self, JoinToken};

/// How the agent proves itself and checks the server.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A join token from `maestro token create`: the CA is fetched and checked against it.
    Join(String),
    /// A bearer token and the CA PEM (the agent embedded in `maestro server`).
    Bearer { token: String, ca_pem: String },
}

fn ca_der(ca_pem: &str) -> Result<Vec<Vec<u8>>, AgentError> {
    rustls_pemfile::certs(&mut ca_pem.as_bytes())
        .map(|c| c.map(|der| der.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| AgentError::Client(format!("reading the CA: {e}")))
}

/// Fetch `/cacerts` without verifying the server (the hash in the join token is the check).
async fn fetch_ca(server: &str) -> Result<String, join::JoinError> {
    let url = format!("{}/cacerts", server.trim_end_matches('/'));
    let fail = |reason: String| join::JoinError::Fetch {
        url: url.clone(),
        reason,
    };
    let mut config = Config::new(server.parse().map_err(|e| fail(format!("{e}")))?);
    config.accept_invalid_certs = true;
    let client = Client::try_from(config).map_err(|e| fail(e.to_string()))?;
    let request = http::Request::get("/cacerts")
        .body(Vec::new())
        .map_err(|e| fail(e.to_string()))?;
    client
        .request_text(request)
        .await
        .map_err(|e| fail(e.to_string()))
}

/// Build a client for `server` with these credentials.
pub async fn connect(server: &str, credentials: &Credentials) -> Result<Client, AgentError> {
    let (token, ca_pem) = match credentials {
        Credentials::Bearer { token, ca_pem } => (token.clone(), ca_pem.clone()),
        Credentials::Join(text) => {
            let token = JoinToken::parse(text)?;
            let ca_pem = fetch_ca(server).await?;
            join::verify_ca(&token, &ca_pem)?;
            (token.bearer, ca_pem)
        }
    };
    let mut config = Config::new(
        server
            .parse()
            .map_err(|e| AgentError::Client(format!("server URL {server:?}: {e}")))?,
    );
    config.root_cert = Some(ca_der(&ca_pem)?);
    config.auth_info.token = Some(token.into());
    config.default_namespace = "default".into();
    Client::try_from(config).map_err(|e| AgentError::Client(e.to_string()))
}
