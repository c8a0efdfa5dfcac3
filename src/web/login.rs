//! Email-first password sign-in, sign-out, the workspace picker and
//! one-time set-password links.

use super::csrf;
use super::errors::{Halt, PageError};
use super::http::{client_ip, cookie, current_session};
use super::mfa;
use super::views::{
    self, Chrome, ForgotPage, LoginEmailPage, LoginPasswordPage, MessagePage, SetPasswordPage,
    WorkspaceRow, WorkspacesPage,
};
use super::AppState;
use crate::crypto;
use crate::domain::model::{valid_email, User};
use crate::domain::{return_to, DomainError};
use crate::password::check_policy;
use crate::service::signin;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use signin::PasswordCheck;
use std::net::{IpAddr, SocketAddr};

/// Purpose of the links "forgot password" mails (1 hour).
pub use crate::service::account::RESET_PASSWORD;
pub use crate::service::account::RESET_TTL_SECS;
/// Purpose of the one-time links `bootstrap` prints (24 hours).
pub use crate::service::account::SET_PASSWORD;

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

/// The email step's page (the sign-in page).
fn email_page(
    state: &AppState,
    csrf: String,
    return_to: String,
    email: String,
    error: Option<&str>,
    notice: Option<&str>,
) -> Response {
    let page = LoginEmailPage {
        twilio: state.twilio.is_some(),
        chrome: Chrome {
            csrf,
            user_email: None,
            ..Chrome::default()
        },
        return_to,
        email,
        error: error.map(str::to_string),
        notice: notice.map(str::to_string),
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    (status, views::render(&page)).into_response()
}

pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ReturnTo>,
) -> Result<Response, PageError> {
    let session = current_session(&state, &headers).await?;
    let (csrf, set) = csrf::page_token(&state, &headers, session.as_ref().map(|(_, s)| s));
    let return_to = return_to::sanitize(q.return_to.as_deref(), &state.cfg.allowed_return_origins);
    let page = email_page(&state, csrf, return_to, String::new(), None, None);
    Ok(with_cookie(page, set))
}

/// The browser's session (if any) after checking a sign-in form's CSRF
/// token, and the page token to render with (and its `Set-Cookie`).
async fn sign_in_form(
    state: &AppState,
    headers: &HeaderMap,
    csrf_token: Option<&str>,
) -> Result<(String, Option<String>), Halt> {
    let session = checked_form(state, headers, csrf_token).await?;
    Ok(csrf::page_token(
        state,
        headers,
        session.as_ref().map(|(_, s)| s),
    ))
}

/// The browser's session (cookie value and session), if any, once the
/// form's CSRF token checks out; "form expired" otherwise.
async fn checked_form(
    state: &AppState,
    headers: &HeaderMap,
    csrf_token: Option<&str>,
) -> Result<Option<(String, crate::session::Session)>, Halt> {
    let session = current_session(state, headers).await?;
    if !csrf::verify(state, headers, session.as_ref().map(|(_, s)| s), csrf_token) {
        return Err(csrf_refused().into());
    }
    Ok(session)
}

/// Step one: the email. Home-realm discovery comes here; everyone else gets
/// the password step, whether or not the account exists.
pub async fn login_email(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<EmailForm>,
) -> Result<Response, Halt> {
    let (csrf, set) = sign_in_form(&state, &headers, f.csrf_token.as_deref()).await?;
    let return_to = return_to::sanitize(f.return_to.as_deref(), &state.cfg.allowed_return_origins);
    let email = f.email.trim().to_string();
    if !valid_email(&email) {
        let error = "Enter a valid email address, like name@company.com.";
        let page = email_page(&state, csrf, return_to, email, Some(error), None);
        return Ok(with_cookie(page, set));
    }
    // Home-realm discovery: a verified domain with SSO goes to its IdP.
    if let Some(conn_id) = sso_for_email(&state, &email).await? {
        let back = super::forward_auth::urlencode(&return_to);
        let to = format!("/sso/{conn_id}/start?return_to={back}");
        return Ok(with_cookie(see_other(&to), set));
    }
    let page = password_page(csrf, return_to, email, None);
    Ok(with_cookie(views::render(&page), set))
}

fn password_page(
    csrf: String,
    return_to: String,
    email: String,
    error: Option<&str>,
) -> LoginPasswordPage {
    LoginPasswordPage {
        chrome: Chrome {
            csrf,
            user_email: None,
            ..Chrome::default()
        },
        return_to,
        email,
        error: error.map(str::to_string),
    }
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
) -> Result<Response, Halt> {
    let (csrf, set) = sign_in_form(&state, &headers, f.csrf_token.as_deref()).await?;
    let return_to = return_to::sanitize(f.return_to.as_deref(), &state.cfg.allowed_return_origins);
    let email = f.email.trim().to_string();
    let ip = client_ip(&state, peer, &headers);
    let refuse = |status: StatusCode, error: &str| {
        let page = password_page(csrf, return_to.clone(), email.clone(), Some(error));
        with_cookie((status, views::render(&page)).into_response(), set)
    };
    let user = match signin::check_password(&state, &email, &f.password, ip).await? {
        PasswordCheck::Verified(user) => user,
        PasswordCheck::TooLong => {
            return Ok(refuse(
                StatusCode::BAD_REQUEST,
                "That password is too long.",
            ))
        }
        PasswordCheck::Locked(wait) => return Ok(throttled_page(wait)),
        PasswordCheck::Incorrect => {
            return Ok(refuse(
                StatusCode::UNAUTHORIZED,
                "Incorrect email or password.",
            ))
        }
    };
    if user.mfa_enabled() {
        let pending = mfa::begin(&state, &user.id, &user.email, &return_to).await?;
        return Ok(with_cookie(see_other("/login/mfa"), Some(pending)));
    }
    state.throttle.success(&email).await?;
    let via = signin::Via::Password { mfa: false };
    Ok(finish_sign_in(&state, &headers, &user, via, &return_to, ip).await?)
}

/// Ends this session on every instance and clears the cookie.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfForm>,
) -> Result<Response, Halt> {
    let session = checked_form(&state, &headers, f.csrf_token.as_deref()).await?;
    if let Some((value, s)) = &session {
        state.end_session(value).await?;
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
    let rows = crate::service::members::roles_in_workspaces(&state, &user.id)
        .await?
        .into_iter()
        .map(|(w, roles)| WorkspaceRow {
            slug: w.slug,
            name: w.name,
            roles: super::pages::role_items(&roles),
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
        crate::service::account::LINK_DEAD.into(),
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
    Ok(password_form(state, headers, user.email, None))
}

/// The set-password page; with `error` (400) after a refused password.
fn password_form(
    state: &AppState,
    headers: &HeaderMap,
    email: String,
    error: Option<String>,
) -> Response {
    let (csrf, set) = csrf::page_token(state, headers, None);
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = SetPasswordPage {
        chrome: Chrome {
            csrf,
            user_email: None,
            ..Chrome::default()
        },
        email,
        error,
    };
    with_cookie((status, views::render(&page)).into_response(), set)
}

/// 409 and a page when the account's password is managed in Twilio.
async fn managed_here(state: &AppState, user: &User) -> Result<(), Halt> {
    match crate::service::account::ensure_managed_here(state.store.as_ref(), &user.id).await {
        Err(DomainError::Conflict(why)) => {
            let page = MessagePage {
                chrome: Chrome::anonymous(),
                title: "Managed in Twilio".into(),
                message: why,
                link: Some(("/login".into(), "Go to sign-in".into())),
            };
            Err((StatusCode::CONFLICT, views::render(&page))
                .into_response()
                .into())
        }
        other => Ok(other?),
    }
}

/// Sets a password from a one-time link (policy first; see
/// [`crate::service::account::set_password_from_link`]), then asks to
/// sign in with it.
async fn link_submit(
    state: &AppState,
    headers: &HeaderMap,
    token: &str,
    purpose: &str,
    f: NewPasswordForm,
    ip: IpAddr,
) -> Result<Response, Halt> {
    if !csrf::verify(state, headers, None, f.csrf_token.as_deref()) {
        return Ok(csrf_refused());
    }
    let user = link_user(state, token, purpose).await?;
    managed_here(state, &user).await?;
    if let Err(why) = check_policy(&f.password, &user.email) {
        return Ok(password_form(state, headers, user.email, Some(why)));
    }
    let (password, ip) = (&f.password, ip.to_string());
    crate::service::account::set_password_from_link(state, &user, token, purpose, password, &ip)
        .await?;
    let csrf = csrf::page_token(state, headers, None).0;
    let notice = Some("Your password is set. Sign in with it now.");
    let home = return_to::DEFAULT.into();
    Ok(email_page(state, csrf, home, user.email, None, notice))
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
) -> Result<Response, Halt> {
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
) -> Result<Response, Halt> {
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
    crate::service::account::send_reset_link(&state, f.email.trim()).await?;
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
