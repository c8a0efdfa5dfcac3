//! CSRF protection. Signed-in: the token is a MAC of the session's storage
//! key. Before sign-in: a MAC of a random pre-session cookie. Forms send it
//! as `csrf_token`, API calls as `X-CSRF-Token`; a cross-site page can read
//! neither. A present `Origin` header (other than the opaque `null`) must
//! also be the gateway's own.

use super::http::cookie;
use super::AppState;
use crate::crypto;
use crate::session::Session;
use axum::http::HeaderMap;

pub fn pre_cookie_name(state: &AppState) -> &'static str {
    if state.cfg.is_https() {
        "__Host-iamgw_csrf"
    } else {
        "iamgw_csrf"
    }
}

fn mac(state: &AppState, kind: &[u8], value: &str) -> String {
    crypto::b64url(&crypto::hmac_sha256(
        &state.secret,
        &[b"csrf", kind, value.as_bytes()],
    ))
}

pub fn token_for_session(state: &AppState, session: &Session) -> String {
    mac(state, b"session", &session.key)
}

fn token_for_pre(state: &AppState, pre: &str) -> String {
    mac(state, b"pre", pre)
}

/// The token a page should embed, and a `Set-Cookie` when a pre-session
/// cookie had to be created.
pub fn page_token(
    state: &AppState,
    headers: &HeaderMap,
    session: Option<&Session>,
) -> (String, Option<String>) {
    if let Some(s) = session {
        return (token_for_session(state, s), None);
    }
    if let Some(pre) = cookie(headers, pre_cookie_name(state)).filter(|v| v.len() >= 32) {
        return (token_for_pre(state, pre), None);
    }
    let pre = crypto::random_token("").unwrap_or_default();
    let set = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Lax{}",
        pre_cookie_name(state),
        pre,
        if state.cfg.is_https() { "; Secure" } else { "" }
    );
    (token_for_pre(state, &pre), Some(set))
}

/// Whether an unsafe request carries a valid token for this browser.
pub fn verify(
    state: &AppState,
    headers: &HeaderMap,
    session: Option<&Session>,
    presented: Option<&str>,
) -> bool {
    if let Some(origin) = headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
    {
        // Browsers send `Origin: null` for form posts under this gateway's
        // `Referrer-Policy: no-referrer`: it says nothing, so the token alone
        // decides. Any real origin must be the gateway's own.
        if origin != "null" && origin != state.cfg.public_origin() {
            return false;
        }
    }
    let Some(presented) = presented.filter(|p| !p.is_empty()) else {
        return false;
    };
    let mut candidates = Vec::with_capacity(2);
    if let Some(s) = session {
        candidates.push(token_for_session(state, s));
    }
    if let Some(pre) = cookie(headers, pre_cookie_name(state)).filter(|v| v.len() >= 32) {
        candidates.push(token_for_pre(state, pre));
    }
    candidates
        .iter()
        .any(|c| crypto::ct_eq(c.as_bytes(), presented.as_bytes()))
}
