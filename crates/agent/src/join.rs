//! Joining a cluster with a join token: `maestro1::<sha256 of the cluster CA>::<id>.<secret>`.
//! The agent fetches the CA from the server's public `/cacerts` endpoint without trusting it,
//! checks its hash against the token, and from then on verifies the server with that CA and
//! authenticates with the bootstrap token `<id>.<secret>`.

use sha2::{Digest, Sha256};

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("not a join token (expected maestro1::<ca hash>::<id>.<secret>)")]
    Malformed,
    #[error("fetching the cluster CA from {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error(
        "the server's CA does not match the join token (got sha256 {actual}, token has {expected}): refusing to trust it"
    )]
    CaMismatch { expected: String, actual: String },
}

/// A parsed join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub ca_sha256: String,
    pub bearer: String,
}

const PREFIX: &str = "maestro1";

impl JoinToken {
    pub fn parse(text: &str) -> Result<JoinToken, JoinError> {
        let mut parts = text.trim().split("::");
        let (Some(PREFIX), Some(hash), Some(bearer), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JoinError::Malformed);
        };
        let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !hex(hash) || !bearer.contains('.') {
            return Err(JoinError::Malformed);
        }
        Ok(JoinToken {
            ca_sha256: hash.to_ascii_lowercase(),
            bearer: bearer.to_string(),
        })
    }

    pub fn format(ca_pem: &str, bearer: &str) -> String {
        format!("{PREFIX}::{}::{bearer}", ca_hash(ca_pem))
    }
}

/// sha256 of the CA certificate PEM text, hex.
pub fn ca_hash(ca_pem: &str) -> String {
    let digest = Sha256::digest(ca_pem.trim().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Check a fetched CA against the token.
pub fn verify_ca(token: &JoinToken, ca_pem: &str) -> Result<(), JoinError> {
    let actual = ca_hash(ca_pem);
    if actual == token.ca_sha256 {
        Ok(())
    } else {
        Err(JoinError::CaMismatch {
            expected: token.ca_sha256.clone(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_check_the_ca() {
        let ca = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
        let text = JoinToken::format(ca, "abcdef.0123456789abcdef");
        let token = JoinToken::parse(&text).unwrap();
        assert_eq!(token.bearer, "abcdef.0123456789abcdef");
        assert!(verify_ca(&token, ca).is_ok());
        assert!(matches!(
            verify_ca(&token, "another"),
            Err(JoinError::CaMismatch { .. })
        ));
        assert!(JoinToken::parse("maestro1::nothex::a.b").is_err());
        assert!(JoinToken::parse("abcdef.0123456789abcdef").is_err());
    }
}
