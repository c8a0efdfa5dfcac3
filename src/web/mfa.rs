//! The second sign-in step: a TOTP code or a recovery code, after a correct
//! password. The pending sign-in lives server-side for five minutes, bound
//! to the browser by the `iamgw_mfa` cookie.

use super::csrf;
use super::errors::PageError;
use super::http::{client_ip, cookie};
use super::login::{finish_sign_in, throttled_page, with_cookie};
use super::views::{self, Chrome, MfaPage};
use super::AppState;
use crate::crypto;
use crate::domain::DomainError;
use crate::throttle::Gate;
use crate::totp;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

pub const COOKIE: &str = "iamgw_mfa";
const TTL: Duration = Duration::from_secs(300);

#[derive(Serialize, Deserialize)]
struct Pending {
    uid: String,
    email: String,
    return_to: String,
}

fn key(token: &str) -> String {
    format!("mfa:{}", crypto::sha256_hex(token.as_bytes()))
}

/// Starts the second step; returns the `Set-Cookie` for the pending sign-in.
pub async fn begin(
    state: &AppState,
    uid: &str,
    email: &str,
    return_to: &str,
) -> Result<String, DomainError> {
    let token = crypto::random_token("")?;
    let p = Pending {
        uid: uid.into(),
        email: email.into(),
        return_to: return_to.into(),
    };
    let json = serde_json::to_string(&p).map_err(|e| DomainError::Internal(e.to_string()))?;
    state.sessions.kv().set(&key(&token), &json, TTL).await?;
    Ok(format!(
        "{COOKIE}={token}; Path=/login; HttpOnly; SameSite=Lax; Max-Age={}{}",
        TTL.as_secs(),
        if state.cfg.is_https() { "; Secure" } else { "" }
    ))
}

async fn pending(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(String, Pending)>, DomainError> {
    let Some(token) = cookie(headers, COOKIE) else {
        return Ok(None);
    };
    let Some(json) = state.sessions.kv().get(&key(token)).await? else {
        return Ok(None);
    };
    Ok(serde_json::from_str(&json)
        .ok()
        .map(|p| (token.to_string(), p)))
}

fn expired() -> Response {
    super::login::see_other("/login")
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    pub code: String,
    pub csrf_token: Option<String>,
}

pub async fn mfa_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let Some((_, p)) = pending(&state, &headers).await? else {
        return Ok(expired());
    };
    let (csrf, set) = csrf::page_token(&state, &headers, None);
    let page = MfaPage {
        chrome: Chrome {
            csrf,
            user_email: None,
            ..Chrome::default()
        },
        email: p.email,
        error: None,
    };
    Ok(with_cookie(views::render(&page), set))
}

/// Checks a TOTP code (claiming its step, so it works once) or a recovery
/// code (marking it used). True when the code proves the second factor.
pub async fn check_second_factor(
    state: &AppState,
    user: &crate::domain::model::User,
    code: &str,
) -> Result<bool, DomainError> {
    let Some(sealed) = user.totp_secret.as_deref().filter(|_| user.mfa_enabled()) else {
        return Ok(false);
    };
    let secret = String::from_utf8(crypto::open(&state.secret, "totp", sealed)?)
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    let now = state.clock.now();
    if let Some(step) = totp::verify(&secret, code, now, user.totp_last_step) {
        return Ok(state.store.claim_totp_step(&user.id, step).await?);
    }
    let normalized = crate::web::account::normalize_recovery_code(code);
    if normalized.len() >= 16 {
        return Ok(state
            .store
            .use_recovery_code(&user.id, &crypto::sha256_hex(normalized.as_bytes()), now)
            .await?);
    }
    Ok(false)
}

pub async fn mfa_submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state, &headers, None, f.csrf_token.as_deref()) {
        return Ok(super::login::csrf_refused());
    }
    let Some((token, p)) = pending(&state, &headers).await? else {
        return Ok(expired());
    };
    let ip = client_ip(&state, peer, &headers);
    if let Gate::Locked(wait) = state.throttle.check(&p.email, ip).await? {
        return Ok(throttled_page(wait));
    }
    let user = state
        .store
        .user_by_id(&p.uid)
        .await?
        .ok_or(DomainError::Unauthenticated)?;
    if !check_second_factor(&state, &user, &f.code).await? {
        state.metrics.signin("password", "failure");
        if let Gate::Locked(wait) = state.throttle.failure(&p.email, ip).await? {
            return Ok(throttled_page(wait));
        }
        let (csrf, set) = csrf::page_token(&state, &headers, None);
        let page = MfaPage {
            chrome: Chrome {
                csrf,
                user_email: None,
                ..Chrome::default()
            },
            email: p.email,
            error: Some(
                "That code didn't work. Codes can be used once; wait for the next one.".into(),
            ),
        };
        return Ok(with_cookie(
            (StatusCode::UNAUTHORIZED, views::render(&page)).into_response(),
            set,
        ));
    }
    // Single use: only the request that removes the pending sign-in goes on.
    if state.sessions.kv().take(&key(&token)).await?.is_none() {
        return Ok(expired());
    }
    state.throttle.success(&p.email).await?;
    let mut resp = finish_sign_in(
        &state,
        &headers,
        &user,
        crate::service::signin::Via::Password { mfa: true },
        &p.return_to,
        ip,
    )
    .await?;
    let clear = format!("{COOKIE}=; Path=/login; HttpOnly; SameSite=Lax; Max-Age=0");
    if let Ok(v) = axum::http::HeaderValue::from_str(&clear) {
        resp.headers_mut().append(axum::http::header::SET_COOKIE, v);
    }
    Ok(resp)
}
