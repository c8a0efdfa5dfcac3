//! Email-first password sign-in, sign-out, the workspace picker and
//! one-time set-password links.

use super::csrf;
use super::errors::PageError;
use super::http::{client_ip, cookie, current_session};
use super::mfa;
use super::views::{
    self, Chrome, ForgotPage, LoginEmailPage, LoginPasswordPage, MessagePage, SetPasswordPage,
    WorkspaceRow, WorkspacesPage,
};
use super::AppState;
use crate::audit;
use crate::crypto;
use crate::domain::model::{valid_email, Actor, User};
use crate::domain::{return_to, DomainError};
use crate::password::{check_policy, MAX_PASSWORD_BYTES};
use crate::service::signin;
use crate::throttle::Gate;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};

/// Purpose of the links "forgot password" mails (1 hour).
pub use crate::service::account::RESET_PASSWORD;
/// Purpose of the one-time links `bootstrap` prints (24 hours).
pub use crate::service::account::SET_PASSWORD;
pub const RESET_TTL_SECS: i64 = 3600;

#[derive(Deserialize)]
pub struct ReturnTo {
    pub return_to: Option<String>,
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    pub email: String,
    pub return_to: Option<String>,
    pub csrf_token: Option<String>,
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub password: String,
    pub return_to: Option<String>,
    pub csrf_token: Option<String>,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    pub csrf_token: Option<String>,
}

#[derive(Deserialize)]
pub struct NewPasswordForm {
    #[serde(default)]
    pub password: String,
    pub csrf_token: Option<String>,
}

/// The SSO connection for an email whose domain a workspace verified and
/// whose workspace has an enabled connection.
pub async fn sso_for_email(state: &AppState, email: &str) -> Result<Option<String>, DomainError> {
    let domain = crate::domain::model::email_domain(email);
    let Some(d) = state
        .store
        .get_domain(&domain)
        .await?
        .filter(|d| d.verified_at.is_some())
    else {
        return Ok(None);
    };
    Ok(super::sso::first_enabled(state, &d.workspace_id)
        .await?
        .map(|c| c.id))
}

/// A 303 redirect.
pub fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

pub fn with_cookie(mut resp: Response, set_cookie: Option<String>) -> Response {
    if let Some(c) = set_cookie.and_then(|c| header::HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

pub fn csrf_refused() -> Response {
    let page = MessagePage {
        chrome: Chrome::anonymous(),
        title: "This form has expired".into(),
        message: "For your safety the form could not be accepted. Go back, reload the page and try again.".into(),
        link: Some(("/login".into(), "Go to sign-in".into())),
    };
    (StatusCode::FORBIDDEN, views::render(&page)).into_response()
}

pub async fn home() -> Response {
    see_other("/workspaces")
}

pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReturnTo>,
) -> Result<Response, PageError> {
    let session = current_session(&state, &headers).await?;
    let (csrf, set) = csrf::page_token(&state, &headers, session.as_ref().map(|(_, s)| s));
    let page = LoginEmailPage {
        twilio: state.twilio.is_some(),
        chrome: Chrome {
            csrf,
            user_email: None,
            ..Chrome::default()
        },
        return_to: return_to::sanitize(q.return_to.as_deref(), &state.cfg.allowed_return_origins),
        email: String::new(),
        error: None,
        notice: None,
    };
    Ok(with_cookie(views::render(&page), set))
}

/// Step one: the email. Home-realm discovery comes here; everyone else gets
/// the password step, whether or not the account exists.
pub async fn login_email(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<EmailForm>,
) -> Result<Response, PageError> {
    let session = current_session(&state, &headers).await?;
    if !csrf::verify(
        &state,
        &headers,
        session.as_ref().map(|(_, s)| s),
        f.csrf_token.as_deref(),
    ) {
        return Ok(csrf_refused());
    }
    let (csrf, set) = csrf::page_token(&state, &headers, session.as_ref().map(|(_, s)| s));
    let return_to = return_to::sanitize(f.return_to.as_deref(), &state.cfg.allowed_return_origins);
    let email = f.email.trim().to_string();
    if !valid_email(&email) {
        let page = LoginEmailPage {
            twilio: state.twilio.is_some(),
            chrome: Chrome {
                csrf,
                user_email: None,
                ..Chrome::default()
            },
            return_to,
            email,
            error: Some("Enter a valid email address, like name@company.com.".into()),
            notice: None,
        };
        return Ok(with_cookie(
            (StatusCode::BAD_REQUEST, views::render(&page)).into_response(),
            set,
        ));
    }
    // Home-realm discovery: a verified domain with SSO goes to its IdP.
    if let Some(conn_id) = sso_for_email(&state, &email).await? {
        let to = format!(
            "/sso/{conn_id}/start?return_to={}",
            super::forward_auth::urlencode(&return_to)
        );
        return Ok(with_cookie(see_other(&to), set));
    }
    let page = LoginPasswordPage {
        chrome: Chrome {
            csrf,
            user_email: None,
            ..Chrome::default()
        },
        return_to,
        email,
        error: None,
    };
    Ok(with_cookie(views::render(&page), set))
}

/// 429 with Retry-After and a page that says how long to wait.
pub fn throttled_page(wait: i64) -> Response {
    let page = MessagePage {
        chrome: Chrome::anonymous(),
        title: "Too many attempts".into(),
        message: format!(
            "For your safety, sign-in is paused for this account. Try again in {wait} seconds."
        ),
        link: Some(("/login".into(), "Back to sign-in".into())),
    };
    let mut resp = (StatusCode::TOO_MANY_REQUESTS, views::render(&page)).into_response();
    if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Completes a sign-in in the core ([`signin::complete`], ending the
/// session the browser presented) and answers with its cookie and a 303 to
/// where it goes: the one web side of every sign-in.
pub async fn finish_sign_in(
    state: &AppState,
    headers: &HeaderMap,
    user: &User,
    via: signin::Via,
    return_to: &str,
    ip: IpAddr,
) -> Result<Response, DomainError> {
    let previous = cookie(headers, state.sessions.cookie_name());
    let done = signin::complete(state, user, via, previous, &ip.to_string(), return_to).await?;
    Ok(with_cookie(
        see_other(&done.return_to),
        Some(state.sessions.set_cookie_header(&done.cookie_value)),
    ))
}

/// Step two: the password. Unknown accounts and wrong passwords get the same
/// answer after the same amount of work; failures are throttled per account
/// and per address.
pub async fn login_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> Result<Response, PageError> {
    let session = current_session(&state, &headers).await?;
    if !csrf::verify(
        &state,
        &headers,
        session.as_ref().map(|(_, s)| s),
        f.csrf_token.as_deref(),
    ) {
        return Ok(csrf_refused());
    }
    let (csrf, set) = csrf::page_token(&state, &headers, session.as_ref().map(|(_, s)| s));
    let return_to = return_to::sanitize(f.return_to.as_deref(), &state.cfg.allowed_return_origins);
    let email = f.email.trim().to_string();
    let refuse = |status: StatusCode, msg: &str, csrf: String| {
        let page = LoginPasswordPage {
            chrome: Chrome {
                csrf,
                user_email: None,
                ..Chrome::default()
            },
            return_to: return_to.clone(),
            email: email.clone(),
            error: Some(msg.to_string()),
        };
        (status, views::render(&page)).into_response()
    };
    if f.password.len() > MAX_PASSWORD_BYTES {
        state.metrics.signin("password", "refused");
        return Ok(with_cookie(
            refuse(StatusCode::BAD_REQUEST, "That password is too long.", csrf),
            set,
        ));
    }
    let ip = client_ip(&state, peer, &headers);
    if let Gate::Locked(wait) = state.throttle.check(&email, ip).await? {
        state.metrics.signin("password", "throttled");
        return Ok(throttled_page(wait));
    }
    let user = if valid_email(&email) {
        state.store.user_by_email(&email).await?
    } else {
        None
    };
    let ok = state
        .hasher
        .verify(
            user.as_ref().and_then(|u| u.password_hash.as_deref()),
            &f.password,
        )
        .await;
    let Some(user) = user.filter(|_| ok) else {
        state.metrics.signin("password", "failure");
        tracing::info!(
            event = "signin_failed",
            method = "password",
            "password sign-in failed"
        );
        if let Gate::Locked(wait) = state.throttle.failure(&email, ip).await? {
            return Ok(throttled_page(wait));
        }
        return Ok(with_cookie(
            refuse(
                StatusCode::UNAUTHORIZED,
                "Incorrect email or password.",
                csrf,
            ),
            set,
        ));
    };
    if user.mfa_enabled() {
        let pending = mfa::begin(&state, &user.id, &user.email, &return_to).await?;
        return Ok(with_cookie(see_other("/login/mfa"), Some(pending)));
    }
    state.throttle.success(&email).await?;
    Ok(finish_sign_in(
        &state,
        &headers,
        &user,
        signin::Via::Password { mfa: false },
        &return_to,
        ip,
    )
    .await?)
}

/// Ends this session on every instance and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, PageError> {
    let session = current_session(&state, &headers).await?;
    if !csrf::verify(
        &state,
        &headers,
        session.as_ref().map(|(_, s)| s),
        f.csrf_token.as_deref(),
    ) {
        return Ok(csrf_refused());
    }
    if let Some((value, s)) = &session {
        state.sessions.revoke(value).await?;
        tracing::info!(event = "signout", user_id = %s.uid, "signed out");
    }
    Ok(with_cookie(
        see_other("/login"),
        Some(state.sessions.clear_cookie_header()),
    ))
}

pub async fn workspaces(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let Some((_, session)) = current_session(&state, &headers).await? else {
        return Ok(see_other("/login?return_to=%2Fworkspaces"));
    };
    let Some(user) = state.store.user_by_id(&session.uid).await? else {
        return Ok(see_other("/login"));
    };
    let rows = state
        .store
        .workspaces_of_user(&user.id)
        .await?
        .into_iter()
        .map(|w| WorkspaceRow {
            slug: w.workspace.slug,
            name: w.workspace.name,
            roles: w
                .policies
                .iter()
                .map(|p| {
                    crate::domain::roles::find(&p.role)
                        .map(|d| d.name.to_string())
                        .unwrap_or_else(|| p.role.clone())
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect();
    let page = WorkspacesPage {
        chrome: super::pages::signed_in_chrome(&state, &session, &user, None).await?,
        name: if user.name.is_empty() {
            user.email.clone()
        } else {
            user.name.clone()
        },
        workspaces: rows,
    };
    Ok(views::render(&page))
}

fn link_dead() -> PageError {
    PageError(DomainError::Invalid(
        "This link is invalid, was already used, or has expired. Ask for a new one.".into(),
    ))
}

async fn link_user(state: &AppState, token: &str, purpose: &str) -> Result<User, PageError> {
    let hash = crypto::sha256_hex(token.as_bytes());
    let uid = state
        .store
        .peek_action_token(&hash, purpose, state.clock.now())
        .await?
        .ok_or_else(link_dead)?;
    state.store.user_by_id(&uid).await?.ok_or_else(link_dead)
}

async fn link_page(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
    purpose: &str,
) -> Result<Response, PageError> {
    let user = link_user(state, token, purpose).await?;
    let (csrf, set) = csrf::page_token(state, headers, None);
    let page = SetPasswordPage {
        chrome: Chrome {
            csrf,
            user_email: None,
            ..Chrome::default()
        },
        email: user.email,
        error: None,
    };
    Ok(with_cookie(views::render(&page), set))
}

/// Sets a password from a one-time link: policy first, then the hash, then
/// the link is used (atomically: only one request wins), then the password is
/// stored and every session of the user ends.
async fn link_submit(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
    purpose: &str,
    f: NewPasswordForm,
    ip: IpAddr,
) -> Result<Response, PageError> {
    if !csrf::verify(state, headers, None, f.csrf_token.as_deref()) {
        return Ok(csrf_refused());
    }
    let user = link_user(state, token, purpose).await?;
    if let Err(DomainError::Conflict(why)) =
        crate::service::account::ensure_managed_here(state.store.as_ref(), &user.id).await
    {
        let page = MessagePage {
            chrome: Chrome::anonymous(),
            title: "Managed in Twilio".into(),
            message: why,
            link: Some(("/login".into(), "Go to sign-in".into())),
        };
        return Ok((StatusCode::CONFLICT, views::render(&page)).into_response());
    }
    if let Err(why) = check_policy(&f.password, &user.email) {
        let (csrf, set) = csrf::page_token(state, headers, None);
        let page = SetPasswordPage {
            chrome: Chrome {
                csrf,
                user_email: None,
                ..Chrome::default()
            },
            email: user.email,
            error: Some(why),
        };
        return Ok(with_cookie(
            (StatusCode::BAD_REQUEST, views::render(&page)).into_response(),
            set,
        ));
    }
    let hash = state
        .hasher
        .hash(&f.password)
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    let token_hash = crypto::sha256_hex(token.as_bytes());
    let now = state.clock.now();
    if state
        .store
        .consume_action_token(&token_hash, purpose, now)
        .await?
        .as_deref()
        != Some(user.id.as_str())
    {
        return Err(link_dead());
    }
    state.store.set_password_hash(&user.id, &hash, now).await?;
    state.sessions.revoke_all(&user.id, None).await?;
    state.throttle.success(&user.email).await?;
    audit::record(
        state.store.as_ref(),
        now,
        audit::Entry {
            workspace_id: None,
            actor: Actor::user(&user.id, &user.email),
            action: if purpose == RESET_PASSWORD {
                "user.password_reset"
            } else {
                "user.password_set"
            },
            target: Some(&user.id),
            ip: Some(ip.to_string()),
            details: serde_json::json!({}),
        },
    )
    .await;
    tracing::info!(event = "password_set", user_id = %user.id, purpose, "password set from a one-time link");
    let page = LoginEmailPage {
        twilio: state.twilio.is_some(),
        chrome: Chrome {
            csrf: csrf::page_token(state, headers, None).0,
            user_email: None,
            ..Chrome::default()
        },
        return_to: return_to::DEFAULT.into(),
        email: user.email,
        error: None,
        notice: Some("Your password is set. Sign in with it now.".into()),
    };
    Ok(views::render(&page))
}

pub async fn set_password_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    link_page(&state, &headers, &token, SET_PASSWORD).await
}

pub async fn set_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(f): Form<NewPasswordForm>,
) -> Result<Response, PageError> {
    let ip = client_ip(&state, peer, &headers);
    link_submit(&state, &headers, &token, SET_PASSWORD, f, ip).await
}

pub async fn reset_password_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    link_page(&state, &headers, &token, RESET_PASSWORD).await
}

pub async fn reset_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(f): Form<NewPasswordForm>,
) -> Result<Response, PageError> {
    let ip = client_ip(&state, peer, &headers);
    link_submit(&state, &headers, &token, RESET_PASSWORD, f, ip).await
}

pub async fn forgot_page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let (csrf, set) = csrf::page_token(&state, &headers, None);
    let page = ForgotPage {
        chrome: Chrome {
            csrf,
            user_email: None,
            ..Chrome::default()
        },
        sent: false,
    };
    Ok(with_cookie(views::render(&page), set))
}

/// Always answers the same; mails a one-hour reset link when the account
/// exists (at most three per account per 15 minutes).
pub async fn forgot_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<EmailForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state, &headers, None, f.csrf_token.as_deref()) {
        return Ok(csrf_refused());
    }
    let email = f.email.trim().to_string();
    if valid_email(&email) {
        let counter = format!(
            "reset:n:{}",
            state
                .throttle
                .subject_id("reset", &crate::domain::model::normalize_email(&email))
        );
        let sent = state
            .sessions
            .kv()
            .incr(&counter, std::time::Duration::from_secs(900))
            .await?;
        if sent <= 3 {
            let user = match state.store.user_by_email(&email).await? {
                // A Twilio-linked account's password is managed in Twilio:
                // no reset link (the answer stays the same for everyone).
                Some(u)
                    if crate::service::account::twilio_linked(state.store.as_ref(), &u.id)
                        .await? =>
                {
                    None
                }
                other => other,
            };
            if let Some(user) = user {
                let token = crypto::random_token("")?;
                let now = state.clock.now();
                state
                    .store
                    .create_action_token(
                        &crypto::sha256_hex(token.as_bytes()),
                        RESET_PASSWORD,
                        &user.id,
                        now,
                        now + RESET_TTL_SECS,
                    )
                    .await?;
                let link = format!("{}/reset-password/{token}", state.cfg.public_url);
                let body = format!(
                    "Someone asked to reset the password of {} on IAM Gateway.\n\nSet a new password within one hour:\n{link}\n\nIf it wasn't you, ignore this message; your password stays as it is.\n",
                    user.email
                );
                state
                    .mailer
                    .send(&user.email, "Reset your IAM Gateway password", &body)
                    .await
                    .map_err(|e| DomainError::Internal(e.to_string()))?;
            }
        }
    }
    let (csrf, set) = csrf::page_token(&state, &headers, None);
    let page = ForgotPage {
        chrome: Chrome {
            csrf,
            user_email: None,
            ..Chrome::default()
        },
        sent: true,
    };
    Ok(with_cookie(views::render(&page), set))
}
