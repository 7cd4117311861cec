//! `Status` errors: every API failure becomes exactly one Kubernetes `Status` object with the
//! reason, code and message wording that clients (kubectl, client-go, kube-rs) recognise.

use serde_json::{Value, json};

/// One field-level cause inside an `Invalid` (422) or `BadRequest` status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// Machine reason, e.g. `FieldValueRequired`, `FieldValueInvalid`, `FieldValueForbidden`.
    pub reason: String,
    /// Human message without the field path.
    pub message: String,
    /// Field path, e.g. `metadata.name` or `spec.containers[0].image`.
    pub field: String,
}

impl Cause {
    pub fn new(reason: &str, field: impl Into<String>, message: impl Into<String>) -> Self {
        Cause {
            reason: reason.to_string(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// `field: Required value`.
    pub fn required(field: impl Into<String>) -> Self {
        Cause::new("FieldValueRequired", field, "Required value")
    }

    /// `field: Invalid value: <value>: <detail>`.
    pub fn invalid(field: impl Into<String>, value: &Value, detail: impl AsRef<str>) -> Self {
        Cause::new(
            "FieldValueInvalid",
            field,
            format!(
                "Invalid value: {}: {}",
                render_value(value),
                detail.as_ref()
            ),
        )
    }

    /// `field: Forbidden: <detail>`.
    pub fn forbidden(field: impl Into<String>, detail: impl AsRef<str>) -> Self {
        Cause::new(
            "FieldValueForbidden",
            field,
            format!("Forbidden: {}", detail.as_ref()),
        )
    }

    /// `field: Unsupported value: <value>: supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: &Value, supported: &[&str]) -> Self {
        let list: Vec<String> = supported.iter().map(|s| format!("\"{s}\"")).collect();
        Cause::new(
            "FieldValueNotSupported",
            field,
            format!(
                "Unsupported value: {}: supported values: {}",
                render_value(value),
                list.join(", ")
            ),
        )
    }

    /// `field: Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: &Value) -> Self {
        Cause::new(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {}", render_value(value)),
        )
    }

    /// The text Kubernetes puts in the aggregated message: `field: message`.
    pub fn display(&self) -> String {
        if self.field.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.field, self.message)
        }
    }
}

/// Go prints invalid values with `%#v`-like quoting: strings quoted, numbers bare.
fn render_value(value: &Value) -> String {
    match value {
        Value::String(s) => format!("\"{s}\""),
        Value::Null => "null".to_string(),
        other => other.to_string(),
    }
}

/// An API error, rendered as a `Status` body with an HTTP code.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    /// `details.name`
    pub name: Option<String>,
    /// `details.group`
    pub group: Option<String>,
    /// `details.kind` (the resource plural for NotFound/AlreadyExists/Conflict, the Kind for Invalid)
    pub kind: Option<String>,
    pub causes: Vec<Cause>,
    /// `details.retryAfterSeconds` (429 and some 5xx)
    pub retry_after_seconds: Option<u32>,
}

/// `pods` or `deployments.apps`: how Kubernetes qualifies a resource in messages.
pub fn qualified_resource(group: &str, plural: &str) -> String {
    if group.is_empty() {
        plural.to_string()
    } else {
        format!("{plural}.{group}")
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            name: None,
            group: None,
            kind: None,
            causes: Vec::new(),
            retry_after_seconds: None,
        }
    }

    fn with_details(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.group = Some(group.to_string());
        self.kind = Some(kind.to_string());
        self.name = Some(name.to_string());
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(403, "Forbidden", message)
    }

    /// `pods "x" not found`
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        ApiError::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified_resource(group, plural)),
        )
        .with_details(group, plural, name)
    }

    /// A path the server does not serve at all.
    pub fn path_not_found() -> Self {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    /// `pods "x" already exists`
    pub fn already_exists(group: &str, plural: &str, name: &str) -> Self {
        ApiError::new(
            409,
            "AlreadyExists",
            format!(
                "{} \"{name}\" already exists",
                qualified_resource(group, plural)
            ),
        )
        .with_details(group, plural, name)
    }

    /// The optimistic-concurrency conflict clients retry on.
    pub fn conflict(group: &str, plural: &str, name: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                qualified_resource(group, plural)
            ),
        )
        .with_details(group, plural, name)
    }

    /// A conflict with a custom explanation (e.g. a precondition on uid).
    pub fn conflict_with(group: &str, plural: &str, name: &str, why: &str) -> Self {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified_resource(group, plural)
            ),
        )
        .with_details(group, plural, name)
    }

    /// `Deployment.apps "x" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0`
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let qualified_kind = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let joined = match causes.len() {
            0 => "unknown reason".to_string(),
            1 => causes[0].display(),
            _ => format!(
                "[{}]",
                causes
                    .iter()
                    .map(Cause::display)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        let mut err = ApiError::new(
            422,
            "Invalid",
            format!("{qualified_kind} \"{name}\" is invalid: {joined}"),
        )
        .with_details(group, kind, name);
        err.causes = causes;
        err
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        ApiError::new(406, "NotAcceptable", message)
    }

    pub fn gone(message: impl Into<String>) -> Self {
        ApiError::new(410, "Expired", message)
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        ApiError::new(413, "RequestEntityTooLarge", message)
    }

    /// 415 for a request body type the endpoint does not take; `accepted` lists those it does.
    pub fn unsupported_media_type(accepted: &[&str]) -> Self {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: {}",
                accepted.join(", ")
            ),
        )
    }

    pub fn too_many_requests(message: impl Into<String>, retry_after_seconds: u32) -> Self {
        let mut err = ApiError::new(429, "TooManyRequests", message);
        err.retry_after_seconds = Some(retry_after_seconds);
        err
    }

    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(500, "InternalError", message)
    }

    pub fn service_unavailable(message: impl Into<String>) -> Self {
        ApiError::new(503, "ServiceUnavailable", message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        ApiError::new(504, "Timeout", message)
    }

    /// The `Status` object clients parse.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        let mut details = serde_json::Map::new();
        if let Some(name) = &self.name {
            details.insert("name".into(), json!(name));
        }
        if let Some(group) = &self.group
            && !group.is_empty()
        {
            details.insert("group".into(), json!(group));
        }
        if let Some(kind) = &self.kind {
            details.insert("kind".into(), json!(kind));
        }
        if !self.causes.is_empty() {
            let causes: Vec<Value> = self
                .causes
                .iter()
                .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                .collect();
            details.insert("causes".into(), Value::Array(causes));
        }
        if let Some(secs) = self.retry_after_seconds {
            details.insert("retryAfterSeconds".into(), json!(secs));
        }
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_message_qualifies_group() {
        let err = ApiError::not_found("apps", "deployments", "web");
        assert_eq!(err.message, "deployments.apps \"web\" not found");
        let status = err.to_status();
        assert_eq!(status["code"], 404);
        assert_eq!(status["details"]["group"], "apps");
        assert_eq!(status["details"]["kind"], "deployments");
    }

    #[test]
    fn core_group_is_not_in_details() {
        let status = ApiError::already_exists("", "pods", "p").to_status();
        assert_eq!(status["message"], "pods \"p\" already exists");
        assert!(status["details"].get("group").is_none());
    }

    #[test]
    fn invalid_joins_causes() {
        let err = ApiError::invalid(
            "apps",
            "Deployment",
            "web",
            vec![
                Cause::invalid(
                    "spec.replicas",
                    &json!(-1),
                    "must be greater than or equal to 0",
                ),
                Cause::required("spec.selector"),
            ],
        );
        assert_eq!(
            err.message,
            "Deployment.apps \"web\" is invalid: [spec.replicas: Invalid value: -1: must be greater than or equal to 0, spec.selector: Required value]"
        );
        assert_eq!(
            err.to_status()["details"]["causes"][1]["field"],
            "spec.selector"
        );
    }
}
