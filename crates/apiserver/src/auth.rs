//! Who a request is. Two kinds of bearer tokens are accepted: the admin token written to the
//! data directory at first start, and bootstrap tokens (`<id>.<secret>`) that nodes join with,
//! kept as `bootstrap.kubernetes.io/token` Secrets named `bootstrap-token-<id>` in kube-system,
//! as kubeadm keeps them, so that `maestro token create` works through the API; and
//! ServiceAccount tokens (signed JWTs, see `tokens`).

use std::collections::HashSet;

use base64::Engine;
use maestro_api::resources;
use serde_json::Value;

use crate::registry::Registry;
use crate::tokens::Signer;

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

/// Whether `token` authenticates: an admin token, a live bootstrap token, or a ServiceAccount
/// token whose account (and bound pod) still exist.
pub fn authenticate(
    admin_tokens: &HashSet<String>,
    registry: &Registry,
    signer: &Signer,
    token: &str,
) -> bool {
    if admin_tokens.contains(token) {
        return true;
    }
    if token.matches('.').count() == 2 && !is_bootstrap_token(token) {
        return service_account_token_valid(registry, signer, token);
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

fn service_account_token_valid(registry: &Registry, signer: &Signer, token: &str) -> bool {
    let Ok(claims) = signer.verify(token, jiff::Timestamp::now().as_second()) else {
        return false;
    };
    let audiences: Vec<&str> = match &claims["aud"] {
        Value::String(a) => vec![a.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !audiences.contains(&crate::tokens::ISSUER) {
        return false;
    }
    let k8s = &claims["kubernetes.io"];
    let (Some(namespace), Some(account), Some(uid)) = (
        k8s["namespace"].as_str(),
        k8s.pointer("/serviceaccount/name").and_then(Value::as_str),
        k8s.pointer("/serviceaccount/uid").and_then(Value::as_str),
    ) else {
        return false;
    };
    let exists = |plural: &str, name: &str, uid: &str| {
        let info = resources::find_builtin("", "v1", plural).expect("built in");
        registry
            .cache()
            .get(&info.key(Some(namespace), name))
            .is_some_and(|(obj, _)| obj.uid == uid)
    };
    if !exists("serviceaccounts", account, uid) {
        return false;
    }
    match (
        k8s.pointer("/pod/name").and_then(Value::as_str),
        k8s.pointer("/pod/uid").and_then(Value::as_str),
    ) {
        (Some(pod), Some(pod_uid)) => exists("pods", pod, pod_uid),
        _ => true,
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
