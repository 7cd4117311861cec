//! Who a request is. Two kinds of bearer tokens are accepted: the admin token written to the
//! data directory at first start, and bootstrap tokens (`<id>.<secret>`) that nodes join with,
//! kept as `bootstrap.kubernetes.io/token` Secrets named `bootstrap-token-<id>` in kube-system,
//! as kubeadm keeps them, so that `maestro token create` works through the API.

use std::collections::HashSet;

use base64::Engine;
use maestro_api::resources;
use serde_json::Value;

use crate::registry::Registry;

/// Whether `token` has the bootstrap token shape `[a-z0-9]{6}.[a-z0-9]{16}`.
pub fn is_bootstrap_token(token: &str) -> bool {
    let valid = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    matches!(token.split_once('.'), Some((id, secret)) if valid(id, 6) && valid(secret, 16))
}

/// The Secret holding a bootstrap token.
pub fn bootstrap_secret_name(id: &str) -> String {
    format!("bootstrap-token-{id}")
}

/// Whether `token` authenticates: an admin token, or a live bootstrap token.
pub fn authenticate(admin_tokens: &HashSet<String>, registry: &Registry, token: &str) -> bool {
    if admin_tokens.contains(token) {
        return true;
    }
    if !is_bootstrap_token(token) {
        return false;
    }
    let (id, secret) = token.split_once('.').expect("checked shape");
    let secrets = resources::find_builtin("", "v1", "secrets").expect("built in");
    let Some((stored, _)) = registry
        .cache()
        .get(&secrets.key(Some("kube-system"), &bootstrap_secret_name(id)))
    else {
        return false;
    };
    let value = stored.value();
    if value.get("type").and_then(Value::as_str) != Some("bootstrap.kubernetes.io/token") {
        return false;
    }
    let field = |name: &str| -> Option<String> {
        let encoded = value
            .pointer(&format!("/data/{name}"))
            .and_then(Value::as_str)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .ok()?;
        String::from_utf8(bytes).ok()
    };
    if field("token-secret").as_deref() != Some(secret) || field("token-id").as_deref() != Some(id)
    {
        return false;
    }
    if field("usage-bootstrap-authentication").as_deref() != Some("true") {
        return false;
    }
    match field("expiration") {
        Some(expiration) => expiration
            .parse::<jiff::Timestamp>()
            .is_ok_and(|at| at > jiff::Timestamp::now()),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_token_shape() {
        assert!(is_bootstrap_token("abcdef.0123456789abcdef"));
        assert!(!is_bootstrap_token("ABCDEF.0123456789abcdef"));
        assert!(!is_bootstrap_token("abcdef0123456789abcdef"));
        assert!(!is_bootstrap_token("abcde.0123456789abcdef"));
    }
}
