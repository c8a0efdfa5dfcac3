//! The values that cross the connector's boundary: its configuration, the
//! pending sign-in the caller keeps, and the callback's query. `Debug`
//! redacts every secret.

use serde::{Deserialize, Serialize};
use std::fmt;

/// How long a pending sign-in stays valid: 10 minutes.
pub const PENDING_TTL_SECS: i64 = 600;

/// One relying-party registration at one issuer.
#[derive(Clone)]
pub struct OidcClientConfig {
    /// Exactly the issuer identifier (`iss`); discovery is at
    /// `{issuer_url}/.well-known/openid-configuration`.
    pub issuer_url: String,
    pub client_id: String,
    /// Empty for a public client.
    pub client_secret: String,
    pub redirect_uri: String,
    /// Scopes besides `openid` (always sent); empty means `email profile`.
    pub scopes: Vec<String>,
}

impl fmt::Debug for OidcClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcClientConfig")
            .field("issuer_url", &self.issuer_url)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uri", &self.redirect_uri)
            .field("scopes", &self.scopes)
            .finish()
    }
}

/// What the caller keeps server-side between [`OidcConnector::begin`] and
/// [`OidcConnector::complete`]: single use, at most [`PENDING_TTL_SECS`],
/// bound to the browser that started the sign-in.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PendingAuth {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
    /// Unix seconds (the connector's clock).
    pub created_at: i64,
    /// The connection this was started for: a pending auth of another
    /// issuer, client or redirect URI is refused.
    pub issuer: String,
    pub client_id: String,
    pub redirect_uri: String,
}

impl fmt::Debug for PendingAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingAuth")
            .field("state", &"<redacted>")
            .field("nonce", &"<redacted>")
            .field("pkce_verifier", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("redirect_uri", &self.redirect_uri)
            .finish()
    }
}

/// The query of the redirect back from the issuer.
#[derive(Clone, Default, Deserialize)]
pub struct CallbackParams {
    pub code: Option<String>,
    pub state: Option<String>,
    /// RFC 9207 issuer identification.
    pub iss: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

impl fmt::Debug for CallbackParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackParams")
            .field("code", &self.code.as_ref().map(|_| "<redacted>"))
            .field("state", &self.state.as_ref().map(|_| "<redacted>"))
            .field("iss", &self.iss)
            .field("error", &self.error)
            .field("error_description", &self.error_description)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_from_debug() {
        let p = PendingAuth {
            state: "s3cr3t-state".into(),
            nonce: "s3cr3t-nonce".into(),
            pkce_verifier: "s3cr3t-verifier".into(),
            created_at: 1,
            issuer: "https://issuer.test".into(),
            client_id: "c".into(),
            redirect_uri: "https://rp.test/cb".into(),
        };
        assert!(!format!("{p:?}").contains("s3cr3t"));
        let c = CallbackParams {
            code: Some("s3cr3t-code".into()),
            ..Default::default()
        };
        assert!(!format!("{c:?}").contains("s3cr3t"));
        let cfg = OidcClientConfig {
            issuer_url: "https://issuer.test".into(),
            client_id: "c".into(),
            client_secret: "s3cr3t-secret".into(),
            redirect_uri: "https://rp.test/cb".into(),
            scopes: vec![],
        };
        assert!(!format!("{cfg:?}").contains("s3cr3t"));
    }
}
