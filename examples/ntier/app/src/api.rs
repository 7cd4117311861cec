//! The REST API: JSON documents kept in PostgreSQL as JSONB, one row per document.
//!
//! ```text
//! GET    /api/items[?field=value...]  the documents (those containing every field=value;
//!                                     numbers and booleans match as such)
//! POST   /api/items                   store a JSON object: 201 with it, its id and createdAt
//! GET    /api/items/{id}              one document, 404 if there is none
//! PUT    /api/items/{id}              replace it
//! DELETE /api/items/{id}              remove it: 204
//! GET    /api/info                    this replica's hostname and the database's version
//! GET    /healthz                     alive (liveness)
//! GET    /readyz                      the database answers (readiness)
//! ```
//!
//! The connection is made on first use and again whenever it breaks (the database pod was
//! replaced, say), so the API keeps no state of its own: any replica serves any request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_postgres::types::Json;
use tokio_postgres::{Client, NoTls};

use crate::http::{self, Body};

/// Largest document accepted.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;

/// How to reach the database, from the environment.
#[derive(Clone)]
pub struct DatabaseConfig {
    pub host: String,
    pub port: u16,
    pub name: String,
    pub user: String,
    pub password: String,
}

impl DatabaseConfig {
    pub fn from_env() -> anyhow::Result<DatabaseConfig> {
        let var = |name: &str| std::env::var(name).with_context(|| format!("{name} is not set"));
        Ok(DatabaseConfig {
            host: var("DATABASE_HOST")?,
            port: std::env::var("DATABASE_PORT")
                .ok()
                .map(|p| p.parse().context("DATABASE_PORT is not a port number"))
                .transpose()?
                .unwrap_or(5432),
            name: var("DATABASE_NAME")?,
            user: var("DATABASE_USER")?,
            password: var("DATABASE_PASSWORD")?,
        })
    }
}

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS items (
        id bigserial PRIMARY KEY,
        doc jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX IF NOT EXISTS items_doc ON items USING gin (doc jsonb_path_ops);
";

/// A document as the API returns it: its fields, its id and when it was stored.
const DOCUMENT: &str = "doc || jsonb_build_object('id', id, 'createdAt', created_at)";

/// The database connection, made when first needed and remade when it breaks.
struct Database {
    config: DatabaseConfig,
    client: Mutex<Option<Arc<Client>>>,
}

impl Database {
    async fn client(&self) -> Result<Arc<Client>, tokio_postgres::Error> {
        let mut current = self.client.lock().await;
        if let Some(client) = current.as_ref().filter(|c| !c.is_closed()) {
            return Ok(client.clone());
        }
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.config.host)
            .port(self.config.port)
            .dbname(&self.config.name)
            .user(&self.config.user)
            .password(&self.config.password)
            .application_name(http::hostname())
            .connect_timeout(Duration::from_secs(3));
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::warn!(%err, "the database connection ended");
            }
        });
        client.batch_execute(SCHEMA).await?;
        tracing::info!(host = %self.config.host, "connected to the database");
        let client = Arc::new(client);
        *current = Some(client.clone());
        Ok(client)
    }
}

/// A failed request: its status and message.
struct Failure(StatusCode, String);

impl From<tokio_postgres::Error> for Failure {
    fn from(err: tokio_postgres::Error) -> Self {
        tracing::warn!(%err, "database request failed");
        Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database unavailable: {err}"),
        )
    }
}

fn not_found(id: i64) -> Failure {
    Failure(StatusCode::NOT_FOUND, format!("no item with id {id}"))
}

/// The document of a request body: a JSON object of bounded size.
async fn document(request: Request<Incoming>) -> Result<Value, Failure> {
    let bytes = Limited::new(request.into_body(), MAX_DOCUMENT_BYTES)
        .collect()
        .await
        .map_err(|e| {
            Failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("reading the body: {e} (at most {MAX_DOCUMENT_BYTES} bytes)"),
            )
        })?
        .to_bytes();
    let mut value: Value = serde_json::from_slice(&bytes).map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("the body is not JSON: {e}"),
        )
    })?;
    let Some(fields) = value.as_object_mut() else {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            "a document must be a JSON object".into(),
        ));
    };
    // Set by the API, not by clients.
    fields.remove("id");
    fields.remove("createdAt");
    Ok(value)
}

/// `?a=1&b=x&c=true` as the JSON object documents must contain: values that read as JSON
/// numbers or booleans are matched as such, anything else as a string.
fn filter(query: Option<&str>) -> Value {
    let pairs = form_urlencoded::parse(query.unwrap_or("").as_bytes()).map(|(k, v)| {
        let value = match serde_json::from_str::<Value>(&v) {
            Ok(scalar @ (Value::Bool(_) | Value::Number(_))) => scalar,
            _ => Value::String(v.into_owned()),
        };
        (k.into_owned(), value)
    });
    Value::Object(pairs.collect())
}

async fn handle(db: &Database, request: Request<Incoming>) -> Result<Response<Body>, Failure> {
    let path = request.uri().path().trim_end_matches('/').to_string();
    let method = request.method().clone();
    let id = path
        .strip_prefix("/api/items/")
        .map(|id| {
            id.parse::<i64>()
                .map_err(|_| Failure(StatusCode::NOT_FOUND, format!("no item with id {id}")))
        })
        .transpose()?;
    match (&method, path.as_str(), id) {
        (&Method::GET, "/healthz", _) => Ok(http::respond(StatusCode::OK, "text/plain", "ok\n")),
        (&Method::GET, "/readyz", _) => {
            db.client().await?.simple_query("SELECT 1").await?;
            Ok(http::respond(StatusCode::OK, "text/plain", "ok\n"))
        }
        (&Method::GET, "/api/info", _) => {
            let row = db
                .client()
                .await?
                .query_one("SHOW server_version", &[])
                .await?;
            let version: String = row.get(0);
            Ok(http::json(
                StatusCode::OK,
                &json!({"hostname": http::hostname(), "database": format!("PostgreSQL {version}")}),
            ))
        }
        (&Method::GET, "/api/items", None) => {
            let wanted = filter(request.uri().query());
            let rows = db
                .client()
                .await?
                .query(
                    &format!("SELECT {DOCUMENT} FROM items WHERE doc @> $1 ORDER BY id"),
                    &[&Json(&wanted)],
                )
                .await?;
            let items: Vec<Value> = rows.iter().map(|r| r.get(0)).collect();
            Ok(http::json(StatusCode::OK, &Value::Array(items)))
        }
        (&Method::POST, "/api/items", None) => {
            let doc = document(request).await?;
            let row = db
                .client()
                .await?
                .query_one(
                    &format!("INSERT INTO items (doc) VALUES ($1) RETURNING id, {DOCUMENT}"),
                    &[&Json(&doc)],
                )
                .await?;
            let id: i64 = row.get(0);
            let mut response = http::json(StatusCode::CREATED, &row.get::<_, Value>(1));
            if let Ok(location) = format!("/api/items/{id}").parse() {
                response.headers_mut().insert("location", location);
            }
            Ok(response)
        }
        (&Method::GET, _, Some(id)) => {
            let row = db
                .client()
                .await?
                .query_opt(
                    &format!("SELECT {DOCUMENT} FROM items WHERE id = $1"),
                    &[&id],
                )
                .await?
                .ok_or_else(|| not_found(id))?;
            Ok(http::json(StatusCode::OK, &row.get::<_, Value>(0)))
        }
        (&Method::PUT, _, Some(id)) => {
            let doc = document(request).await?;
            let row = db
                .client()
                .await?
                .query_opt(
                    &format!("UPDATE items SET doc = $1 WHERE id = $2 RETURNING {DOCUMENT}"),
                    &[&Json(&doc), &id],
                )
                .await?
                .ok_or_else(|| not_found(id))?;
            Ok(http::json(StatusCode::OK, &row.get::<_, Value>(0)))
        }
        (&Method::DELETE, _, Some(id)) => {
            let deleted = db
                .client()
                .await?
                .execute("DELETE FROM items WHERE id = $1", &[&id])
                .await?;
            if deleted == 0 {
                return Err(not_found(id));
            }
            Ok(http::respond(StatusCode::NO_CONTENT, "text/plain", ""))
        }
        (_, "/api/items", _) | (_, _, Some(_)) => Err(Failure(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not allowed here"),
        )),
        _ => Err(Failure(
            StatusCode::NOT_FOUND,
            format!("no route for {path}"),
        )),
    }
}

/// Serve the API on `listen`.
pub async fn run(listen: SocketAddr, config: DatabaseConfig) -> anyhow::Result<()> {
    let db = Arc::new(Database {
        config,
        client: Mutex::new(None),
    });
    http::serve(listen, move |request| {
        let db = db.clone();
        async move {
            let (method, path) = (request.method().clone(), request.uri().path().to_string());
            let response = handle(&db, request)
                .await
                .unwrap_or_else(|Failure(status, message)| http::error(status, message));
            if !path.ends_with("z") {
                tracing::info!(%method, %path, status = response.status().as_u16(), "request");
            }
            response
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_become_the_fields_documents_must_contain() {
        assert_eq!(filter(None), json!({}));
        assert_eq!(
            filter(Some("title=buy%20milk&done=false&count=3&tag=%22x%22")),
            json!({"title": "buy milk", "done": false, "count": 3, "tag": "\"x\""})
        );
    }
}
