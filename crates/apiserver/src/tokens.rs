//! ServiceAccount tokens: JWTs signed with the cluster's service-account key (ES256, kept in
//! `DATA_DIR/sa.key`), as the Kubernetes API server issues them through the TokenRequest API
//! (`serviceaccounts/<name>/token`, used by `kubectl create token` and projected volumes), and
//! accepted back as bearer tokens while the account (and the bound pod, if any) still exists.
//! The public key is published at `/openid/v1/jwks`, so agents can check tokens the API server
//! mints for its own calls to them.

use std::path::Path;

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

/// Issuer of every token.
pub const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// Why a key or token could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("service-account key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("malformed token")]
    Malformed,
    #[error("bad signature")]
    Signature,
    #[error("token expired")]
    Expired,
}

/// The signing key.
pub struct Signer {
    key: EcdsaKeyPair,
    key_id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish()
    }
}

impl Signer {
    /// Load the key from `path`, creating it on first start.
    pub fn load_or_create(path: &Path) -> Result<Signer, TokenError> {
        let err = |reason: String| TokenError::Key {
            path: path.display().to_string(),
            reason,
        };
        let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
        let rng = SystemRandom::new();
        let pkcs8 = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(_) => {
                let doc =
                    EcdsaKeyPair::generate_pkcs8(alg, &rng).map_err(|e| err(e.to_string()))?;
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| err(e.to_string()))?;
                file.write_all(doc.as_ref())
                    .map_err(|e| err(e.to_string()))?;
                file.sync_all().map_err(|e| err(e.to_string()))?;
                doc.as_ref().to_vec()
            }
        };
        let key = EcdsaKeyPair::from_pkcs8(alg, &pkcs8, &rng).map_err(|e| err(e.to_string()))?;
        let digest = ring::digest::digest(&ring::digest::SHA256, key.public_key().as_ref());
        Ok(Signer {
            key_id: b64(&digest.as_ref()[..16]),
            key,
        })
    }

    /// Sign `claims` as a compact JWS.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "kid": self.key_id});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("ECDSA signing with a valid key does not fail");
        format!("{input}.{}", b64(signature.as_ref()))
    }

    /// The verified claims of a token signed with this key, if it has not expired.
    pub fn verify(&self, token: &str, now: i64) -> Result<Value, TokenError> {
        verify_with(self.key.public_key().as_ref(), token, now)
    }

    /// The public key as a JSON Web Key Set.
    pub fn jwks(&self) -> Value {
        let public = self.key.public_key().as_ref();
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        json!({"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.key_id,
                         "x": b64(&public[1..33]), "y": b64(&public[33..65])}]})
    }
}

/// Verify a compact ES256 JWS with an uncompressed P-256 public key.
pub fn verify_with(public_key: &[u8], token: &str, now: i64) -> Result<Value, TokenError> {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let decode = |s: &str| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| TokenError::Malformed)
    };
    let header: Value =
        serde_json::from_slice(&decode(header)?).map_err(|_| TokenError::Malformed)?;
    if header["alg"] != "ES256" {
        return Err(TokenError::Malformed);
    }
    let signed = &token[..token.rfind('.').expect("three parts")];
    signature::UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, public_key)
        .verify(signed.as_bytes(), &decode(sig)?)
        .map_err(|_| TokenError::Signature)?;
    let claims: Value =
        serde_json::from_slice(&decode(payload)?).map_err(|_| TokenError::Malformed)?;
    if claims["exp"].as_i64().is_none_or(|exp| exp <= now) {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// Claims of a ServiceAccount token, optionally bound to a pod.
pub fn service_account_claims(
    namespace: &str,
    account: &str,
    account_uid: &str,
    audiences: &[String],
    now: i64,
    expiration_seconds: i64,
    pod: Option<(&str, &str)>,
) -> Value {
    let mut k8s =
        json!({"namespace": namespace, "serviceaccount": {"name": account, "uid": account_uid}});
    if let Some((name, uid)) = pod {
        k8s["pod"] = json!({"name": name, "uid": uid});
    }
    json!({
        "iss": ISSUER,
        "sub": format!("system:serviceaccount:{namespace}:{account}"),
        "aud": audiences,
        "iat": now,
        "nbf": now,
        "exp": now + expiration_seconds,
        "kubernetes.io": k8s,
    })
}

/// Serve a TokenRequest (`POST serviceaccounts/<name>/token`): a token for the account, for
/// the requested audiences (default: the API server) and lifetime (default one hour, at least
/// ten minutes), optionally bound to a pod or secret that must exist.
pub async fn token_request(
    registry: &crate::registry::Registry,
    signer: &Signer,
    namespace: Option<&str>,
    account: &str,
    body: &Value,
) -> Result<Value, maestro_api::ApiError> {
    use maestro_api::{ApiError, Cause, resources};
    let namespace = namespace.unwrap_or("default");
    let accounts = crate::registry::Resource::builtin(
        resources::find_builtin("", "v1", "serviceaccounts").expect("built in"),
    );
    let sa = registry.get(&accounts, Some(namespace), account).await?;
    let sa_uid = sa
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let audiences: Vec<String> = spec
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .filter(|a: &Vec<String>| !a.is_empty())
        .unwrap_or_else(|| vec![ISSUER.to_string()]);
    let expiration = spec
        .get("expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    if expiration < 600 {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            account,
            vec![Cause::invalid(
                "spec.expirationSeconds",
                &json!(expiration),
                "may not specify a duration less than 10 minutes",
            )],
        ));
    }
    let mut pod = None;
    if let Some(bound) = spec.get("boundObjectRef").filter(|b| !b.is_null()) {
        let kind = bound
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = bound
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let plural = match kind {
            "Pod" => "pods",
            "Secret" => "secrets",
            other => {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to object of kind {other:?}"
                )));
            }
        };
        let res = crate::registry::Resource::builtin(
            resources::find_builtin("", "v1", plural).expect("built in"),
        );
        let object = registry.get(&res, Some(namespace), name).await?;
        let uid = object
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if let Some(want) = bound.get("uid").and_then(Value::as_str)
            && want != uid
        {
            return Err(ApiError::conflict_with(
                "",
                plural,
                name,
                &format!(
                    "the UID in the bound object reference ({want}) does not match the UID in record. The object might have been deleted and then recreated"
                ),
            ));
        }
        if kind == "Pod" {
            pod = Some((name.to_string(), uid));
        }
    }
    let now = jiff::Timestamp::now().as_second();
    let claims = service_account_claims(
        namespace,
        account,
        &sa_uid,
        &audiences,
        now,
        expiration,
        pod.as_ref().map(|(n, u)| (n.as_str(), u.as_str())),
    );
    let token = signer.sign(&claims);
    let expires = jiff::Timestamp::from_second(now + expiration)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    let mut response = body.clone();
    if !response.is_object() {
        response = json!({});
    }
    response["apiVersion"] = json!("authentication.k8s.io/v1");
    response["kind"] = json!("TokenRequest");
    response["metadata"] =
        json!({"name": account, "namespace": namespace, "creationTimestamp": null});
    response["spec"]["audiences"] = json!(audiences);
    response["spec"]["expirationSeconds"] = json!(expiration);
    response["status"] = json!({"token": token, "expirationTimestamp": expires});
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let signer = Signer::load_or_create(&dir.path().join("sa.key")).unwrap();
        let again = Signer::load_or_create(&dir.path().join("sa.key")).unwrap();
        assert_eq!(signer.key_id, again.key_id, "the key is kept");
        let claims = service_account_claims(
            "ns",
            "sa",
            "u1",
            &["api".into()],
            1000,
            3600,
            Some(("p", "pu")),
        );
        let token = signer.sign(&claims);
        let verified = again.verify(&token, 2000).unwrap();
        assert_eq!(verified["sub"], "system:serviceaccount:ns:sa");
        assert_eq!(verified["kubernetes.io"]["pod"]["uid"], "pu");
        assert!(matches!(
            signer.verify(&token, 5000),
            Err(TokenError::Expired)
        ));
        let mut tampered = token.clone();
        tampered.replace_range(token.len() - 4.., "AAAA");
        assert!(signer.verify(&tampered, 2000).is_err());
        let jwks = signer.jwks();
        assert_eq!(jwks["keys"][0]["crv"], "P-256");
    }
}
