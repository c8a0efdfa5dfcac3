//! The one error type of the OIDC connector, its HTTP status, and how the
//! token endpoint's failures map onto it.

use super::http::HttpError;
use openidconnect::core::CoreErrorResponseType;
use openidconnect::{RequestTokenError, StandardErrorResponse};

/// Why a sign-in through an OpenID Connect issuer did not happen. Every
/// message is plain words fit for the error page: it never carries a code, a
/// token, a client secret or a PKCE verifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// The callback's `state` is missing or does not belong to the pending
    /// sign-in kept for this browser (tampered, replayed, expired, or from
    /// another connection). 400.
    #[error("bad state: {0}")]
    BadState(String),
    /// The callback is malformed (no code and no error). 400.
    #[error("malformed callback: {0}")]
    Malformed(String),
    /// The issuer answered the authorization request with an error
    /// (`login_required`, `access_denied`, ...). `description` is the
    /// issuer's own text, shortened and stripped of control characters.
    #[error("the identity provider answered `{error}`")]
    ProviderError {
        error: String,
        description: Option<String>,
    },
    /// A token or response failed validation (signature, issuer, audience,
    /// nonce, expiry, subject, RFC 9207 `iss`), or the token endpoint refused
    /// the code. 401.
    #[error("validation failed: {0}")]
    Invalid(String),
    /// The issuer's discovery document or key set is unusable (for example
    /// it names another issuer). 502.
    #[error("discovery failed: {0}")]
    Discovery(String),
    /// The issuer cannot be reached (connection refused, timeout, 5xx). 503.
    #[error("identity provider unavailable: {0}")]
    Unavailable(String),
    /// The connection is configured wrongly or the machine failed (no
    /// randomness). 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl OidcError {
    /// The HTTP status the gateway answers with: 400 bad state or malformed
    /// callback, 401 failed validation (and issuer errors such as
    /// `access_denied`), 502 unusable discovery or an issuer `server_error`,
    /// 503 issuer unreachable or `temporarily_unavailable`, 500 internal.
    pub fn status(&self) -> u16 {
        match self {
            OidcError::BadState(_) | OidcError::Malformed(_) => 400,
            OidcError::ProviderError { error, .. } => match error.as_str() {
                "temporarily_unavailable" => 503,
                "server_error" => 502,
                _ => 401,
            },
            OidcError::Invalid(_) => 401,
            OidcError::Discovery(_) => 502,
            OidcError::Unavailable(_) => 503,
            OidcError::Internal(_) => 500,
        }
    }

    /// Plain words for the error page.
    pub fn reason(&self) -> String {
        match self {
            OidcError::BadState(why) => format!(
                "This sign-in attempt cannot be completed in this browser ({why}). Please start again."
            ),
            OidcError::Malformed(why) => {
                format!("The identity provider's answer is incomplete ({why}).")
            }
            OidcError::ProviderError { error, description } => {
                let what = match error.as_str() {
                    "login_required" => "you are not signed in there".to_string(),
                    "access_denied" => "access was denied".to_string(),
                    "consent_required" => "consent is required".to_string(),
                    "interaction_required" => "it needs you to interact with it".to_string(),
                    "account_selection_required" => "you need to choose an account".to_string(),
                    "temporarily_unavailable" => "it is temporarily unavailable".to_string(),
                    "server_error" => "it had an internal error".to_string(),
                    other => format!("it answered `{other}`"),
                };
                match description {
                    Some(d) if !d.is_empty() => {
                        format!("The identity provider did not sign you in: {what} ({d}).")
                    }
                    _ => format!("The identity provider did not sign you in: {what}."),
                }
            }
            OidcError::Invalid(why) => {
                format!("The identity provider's answer was refused: {why}.")
            }
            OidcError::Discovery(why) => {
                format!("The identity provider is not usable: {why}.")
            }
            OidcError::Unavailable(_) => {
                "The identity provider cannot be reached right now. Please try again later."
                    .to_string()
            }
            OidcError::Internal(_) => {
                "This sign-in method is not working right now. Please contact your administrator."
                    .to_string()
            }
        }
    }
}

/// Issuer-supplied text made safe to show: no control characters, at most
/// 200 characters.
pub(crate) fn sanitize(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect::<String>()
        .trim()
        .to_string()
}

/// Token endpoint failures: refused or unreadable → 401, unreachable → 503.
/// Response bodies are never logged or shown (they may hold tokens).
pub(crate) fn token_error(
    e: RequestTokenError<HttpError, StandardErrorResponse<CoreErrorResponseType>>,
) -> OidcError {
    match e {
        RequestTokenError::ServerResponse(r) => OidcError::Invalid(format!(
            "the token endpoint refused the authorization code ({})",
            sanitize(r.error().as_ref())
        )),
        RequestTokenError::Request(HttpError::Unreachable(m)) => OidcError::Unavailable(m),
        RequestTokenError::Request(other) => OidcError::Invalid(format!(
            "the token endpoint's answer could not be read ({other})"
        )),
        RequestTokenError::Parse(err, _body) => {
            // The ID token is parsed with the token response; its payload
            // errors say "Failed to parse payload JSON" (the path is lost to
            // a `flatten`).
            let message = err.inner().to_string();
            let in_id_token = err.path().to_string().starts_with("id_token")
                || message.contains("Failed to parse payload JSON");
            match (missing_field(&message), in_id_token) {
                (Some(field), true) => {
                    OidcError::Invalid(format!("the ID token lacks the `{field}` claim"))
                }
                (Some(field), false) => {
                    OidcError::Invalid(format!("the token response lacks `{field}`"))
                }
                (None, true) => OidcError::Invalid("the ID token is malformed".into()),
                (None, false) => OidcError::Invalid("the token response is malformed".into()),
            }
        }
        _ => OidcError::Invalid("the token endpoint answered unexpectedly".into()),
    }
}

/// `serde` reports a missing field as "missing field `name`"; the name is
/// ours to show (nothing else of the message is, it may quote the token).
fn missing_field(message: &str) -> Option<String> {
    let start = message.find("missing field `")? + "missing field `".len();
    let rest = &message[start..];
    let end = rest.find('`')?;
    let field = &rest[..end];
    field
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
        .then(|| field.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_the_contract() {
        assert_eq!(OidcError::BadState("x".into()).status(), 400);
        assert_eq!(OidcError::Malformed("x".into()).status(), 400);
        assert_eq!(OidcError::Invalid("x".into()).status(), 401);
        assert_eq!(OidcError::Discovery("x".into()).status(), 502);
        assert_eq!(OidcError::Unavailable("x".into()).status(), 503);
        let denied = OidcError::ProviderError {
            error: "access_denied".into(),
            description: None,
        };
        assert_eq!(denied.status(), 401);
        assert!(denied.reason().contains("access was denied"));
    }

    #[test]
    fn issuer_text_is_sanitized() {
        assert_eq!(sanitize("a\nb\u{7}c"), "abc");
        assert_eq!(sanitize(&"x".repeat(500)).len(), 200);
    }

    #[test]
    fn missing_field_names_only_identifiers() {
        assert_eq!(
            missing_field("Failed to parse payload JSON: Error(\"missing field `iat`\", line: 1)"),
            Some("iat".into())
        );
        assert_eq!(missing_field("invalid type: string \"eyJ\""), None);
        assert_eq!(missing_field("missing field `a b`"), None);
    }
}
