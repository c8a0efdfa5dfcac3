//! What every federated sign-in (Twilio, OIDC SSO, SAML SSO) shares: state
//! kept server-side, single use, bound to the browser by a pre-auth cookie,
//! and the page shown when a sign-in is refused.

use super::views::{self, Chrome, MessagePage};
use super::AppState;
use crate::crypto;
use crate::domain::DomainError;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Serialize, Deserialize)]
struct Bound<T> {
    /// SHA-256 of the pre-auth cookie of the browser that started the flow.
    browser: String,
    data: T,
}

/// Keeps `data` under `key` for `ttl`, bound to this browser's pre-auth
/// cookie `cookie_name` (created when absent). Returns the `Set-Cookie` to
/// send when a cookie was created.
pub async fn stash<T: Serialize>(
    state: &AppState,
    headers: &HeaderMap,
    cookie_name: &str,
    cross_site_post: bool,
    key: &str,
    data: &T,
    ttl: Duration,
) -> Result<Option<String>, DomainError> {
    let (value, set) = match super::http::cookie(headers, cookie_name).filter(|v| v.len() >= 43) {
        Some(v) => (v.to_string(), None),
        None => {
            let v = crypto::random_token("")?;
            // A SAML response arrives as a cross-site POST: on https the
            // cookie must be SameSite=None (and Secure) to come along.
            let same_site = if cross_site_post && state.cfg.is_https() {
                "None"
            } else {
                "Lax"
            };
            let secure = if state.cfg.is_https() { "; Secure" } else { "" };
            let set = format!(
                "{cookie_name}={v}; Path=/; HttpOnly; SameSite={same_site}; Max-Age={}{secure}",
                ttl.as_secs()
            );
            (v, Some(set))
        }
    };
    let bound = Bound {
        browser: crypto::sha256_hex(value.as_bytes()),
        data,
    };
    let json = serde_json::to_string(&bound).map_err(|e| DomainError::Internal(e.to_string()))?;
    state.sessions.kv().set(key, &json, ttl).await?;
    Ok(set)
}

/// Takes the data under `key` once; `None` when unknown, used, expired or
/// started by another browser.
pub async fn claim<T: DeserializeOwned>(
    state: &AppState,
    headers: &HeaderMap,
    cookie_name: &str,
    key: &str,
) -> Result<Option<T>, DomainError> {
    let Some(json) = state.sessions.kv().take(key).await? else {
        return Ok(None);
    };
    let Ok(bound) = serde_json::from_str::<Bound<T>>(&json) else {
        return Ok(None);
    };
    let Some(cookie) = super::http::cookie(headers, cookie_name) else {
        return Ok(None);
    };
    if !crypto::ct_eq(
        crypto::sha256_hex(cookie.as_bytes()).as_bytes(),
        bound.browser.as_bytes(),
    ) {
        return Ok(None);
    }
    Ok(Some(bound.data))
}

/// A refused sign-in: the status, a page that says why in plain words, and
/// no session cookie.
pub fn refused(status: u16, title: &str, reason: &str) -> Response {
    let page = MessagePage {
        chrome: Chrome::anonymous(),
        title: title.into(),
        message: reason.into(),
        link: Some(("/login".into(), "Back to sign-in".into())),
    };
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut resp = (code, views::render(&page)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
