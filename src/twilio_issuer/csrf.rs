//! CSRF protection for the issuer's forms, the same approach as the
//! gateway's (`crate::web::csrf`): signed in, the token is a MAC of the
//! session's storage key; before sign-in, a MAC of a random `twilio_csrf`
//! cookie. A present `Origin` header (other than the opaque `null`) must be
//! the issuer's own origin.

use super::sessions::IssuerSession;
use super::IssuerState;
use crate::crypto;
use crate::web::http::cookie;
use axum::http::{header, HeaderMap};

pub const PRE_COOKIE: &str = "twilio_csrf";

fn mac(state: &IssuerState, kind: &[u8], value: &str) -> String {
    crypto::b64url(&crypto::hmac_sha256(
        &state.secret,
        &[b"twilio-issuer csrf", kind, value.as_bytes()],
    ))
}

fn pre_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, PRE_COOKIE).filter(|v| v.len() >= 32)
}

/// The token a page embeds, and a `Set-Cookie` when a pre-session cookie
/// had to be created.
pub fn page_token(
    state: &IssuerState,
    headers: &HeaderMap,
    session: Option<&IssuerSession>,
) -> (String, Option<String>) {
    if let Some(s) = session {
        return (mac(state, b"session", &s.key), None);
    }
    if let Some(pre) = pre_cookie(headers) {
        return (mac(state, b"pre", pre), None);
    }
    let pre = crypto::random_token("").unwrap_or_default();
    let set = format!(
        "{PRE_COOKIE}={pre}; Path=/; HttpOnly; SameSite=Lax{}",
        if state.secure { "; Secure" } else { "" }
    );
    (mac(state, b"pre", &pre), Some(set))
}

/// Whether an unsafe request carries a valid token for this browser.
pub fn verify(
    state: &IssuerState,
    headers: &HeaderMap,
    session: Option<&IssuerSession>,
    presented: &str,
) -> bool {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        // Browsers send `Origin: null` for form posts under the issuer's
        // `Referrer-Policy: no-referrer` (Chromium does): the token decides
        // then. Any real origin must be the issuer's own.
        if origin != "null" && origin != state.origin {
            return false;
        }
    }
    if presented.is_empty() {
        return false;
    }
    let mut candidates = Vec::with_capacity(2);
    if let Some(s) = session {
        candidates.push(mac(state, b"session", &s.key));
    }
    if let Some(pre) = pre_cookie(headers) {
        candidates.push(mac(state, b"pre", pre));
    }
    candidates
        .iter()
        .any(|c| crypto::ct_eq(c.as_bytes(), presented.as_bytes()))
}
