//! The second sign-in step: a TOTP code or a recovery code, after a correct
//! password. The pending sign-in lives server-side for five minutes, bound
//! to the browser by the `iamgw_mfa` cookie.

use super::csrf;
use super::errors::{Halt, PageError};
use super::http::{client_ip, cookie};
use super::login::{finish_sign_in, throttled_page, with_cookie};
use super::views::{self, Chrome, MfaPage};
use super::AppState;
use crate::crypto;
use crate::domain::DomainError::{self, Unauthenticated};
use crate::service::signin::{throttled, Guess, Via};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

pub const COOKIE: &str = "iamgw_mfa";
const TTL: Duration = Duration::from_secs(300);
/// Ends the pending sign-in's cookie.
const CLEAR: &str = "iamgw_mfa=; Path=/login; HttpOnly; SameSite=Lax; Max-Age=0";

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

pub use crate::service::account::check_second_factor;

/// The second-step page again, with why the code was refused (401).
fn code_refused(state: &AppState, headers: &HeaderMap, email: String) -> Response {
    let (csrf, set) = csrf::page_token(state, headers, None);
    let page = MfaPage {
        chrome: Chrome {
            csrf,
            user_email: None,
            ..Chrome::default()
        },
        email,
        error: Some("That code didn't work. Codes can be used once; wait for the next one.".into()),
    };
    with_cookie(
        (StatusCode::UNAUTHORIZED, views::render(&page)).into_response(),
        set,
    )
}

/// The person of the pending sign-in, once `code` proves their second
/// factor (throttled like a password); or the page to answer with.
async fn proven(
    state: &AppState,
    headers: &HeaderMap,
    p: &Pending,
    code: &str,
    ip: std::net::IpAddr,
) -> Result<crate::domain::model::User, Halt> {
    let mut user = None;
    let check = async {
        let found = state.store.user_by_id(&p.uid).await?;
        let u = user.insert(found.ok_or(Unauthenticated)?);
        let ok = check_second_factor(state, u, code).await?;
        if !ok {
            state.metrics.signin("password", "failure");
        }
        Ok(ok)
    };
    match throttled(state, &p.email, ip, check).await? {
        Guess::Right => Ok(user.ok_or(Unauthenticated)?),
        Guess::Locked(wait) | Guess::Wrong { locked: Some(wait) } => {
            Err(throttled_page(wait).into())
        }
        Guess::Wrong { locked: None } => Err(code_refused(state, headers, p.email.clone()).into()),
    }
}

pub async fn mfa_submit(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Result<Response, Halt> {
    if !csrf::verify(&state, &headers, None, f.csrf_token.as_deref()) {
        return Ok(super::login::csrf_refused());
    }
    let (token, p) = pending(&state, &headers).await?.ok_or_else(expired)?;
    let ip = client_ip(&state, peer, &headers);
    let user = proven(&state, &headers, &p, &f.code, ip).await?;
    // Single use: only the request that removes the pending sign-in goes on.
    let kv = state.sessions.kv();
    kv.take(&key(&token)).await?.ok_or_else(expired)?;
    state.throttle.success(&p.email).await?;
    let via = Via::Password { mfa: true };
    let resp = finish_sign_in(&state, &headers, &user, via, &p.return_to, ip).await?;
    Ok(with_cookie(resp, Some(CLEAR.into())))
}
