//! `/account` for the signed-in person: name, email and password (both need
//! the current password), and TOTP two-factor authentication (enrol with a
//! confirming code; turn off with a current code). TOTP secrets are sealed
//! at rest and every accepted code moves the last accepted step forward.

use super::accounts::{self, Account};
use super::sessions::IssuerSession;
use super::views::{
    csrf_refused, render_status, see_other, AccountPage, Chrome, PageError, TotpSetupPage,
};
use super::{csrf, IssuerState};
use crate::domain::DomainError;
use crate::password::{check_policy, MAX_PASSWORD_BYTES};
use crate::totp;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Form;
use serde::Deserialize;

#[derive(Deserialize)]
pub struct Done {
    pub done: Option<String>,
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub csrf_token: String,
}

#[derive(Deserialize)]
pub struct EmailForm {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub current_password: String,
    #[serde(default)]
    pub csrf_token: String,
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    pub current_password: String,
    #[serde(default)]
    pub new_password: String,
    #[serde(default)]
    pub csrf_token: String,
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub csrf_token: String,
}

/// The outcome of the checks every account page makes first.
enum Access {
    /// Signed in (and, for forms, the CSRF token is right).
    Granted(Box<(IssuerSession, Account)>),
    /// The answer instead: a redirect to sign in, or a refused form.
    Answer(Response),
}

/// The signed-in person and their account, or the redirect to sign in.
async fn signed_in(st: &IssuerState, headers: &HeaderMap) -> Result<Access, DomainError> {
    let to_login = || Access::Answer(see_other("/login?return_to=%2Faccount"));
    let Some(session) = st.session(headers).await? else {
        return Ok(to_login());
    };
    match accounts::by_sub(st.store.as_ref(), &session.sub).await? {
        Some(a) => Ok(Access::Granted(Box::new((session, a)))),
        None => Ok(to_login()),
    }
}

fn chrome(st: &IssuerState, headers: &HeaderMap, s: &IssuerSession, a: &Account) -> Chrome {
    Chrome {
        csrf: csrf::page_token(st, headers, Some(s)).0,
        email: Some(a.email.clone()),
    }
}

fn account_page(
    st: &IssuerState,
    headers: &HeaderMap,
    s: &IssuerSession,
    a: &Account,
    notice: Option<&str>,
    error: Option<(StatusCode, String)>,
) -> Response {
    let status = error.as_ref().map(|(st, _)| *st).unwrap_or(StatusCode::OK);
    let page = AccountPage {
        chrome: chrome(st, headers, s, a),
        name: a.name.clone(),
        email: a.email.clone(),
        email_verified: a.email_verified,
        totp_enabled: a.totp_enabled,
        notice: notice.map(str::to_string),
        error: error.map(|(_, m)| m),
    };
    render_status(status, &page)
}

/// A domain refusal shown on the account page; other errors propagate.
fn refusal(e: DomainError) -> Result<(StatusCode, String), PageError> {
    match e {
        DomainError::Invalid(m) => Ok((StatusCode::BAD_REQUEST, m)),
        DomainError::Conflict(m) => Ok((StatusCode::CONFLICT, m)),
        other => Err(PageError(other)),
    }
}

pub async fn page(
    State(st): State<IssuerState>,
    headers: HeaderMap,
    Query(q): Query<Done>,
) -> Result<Response, PageError> {
    let (s, a) = match signed_in(&st, &headers).await? {
        Access::Granted(g) => *g,
        Access::Answer(r) => return Ok(r),
    };
    // Fixed texts only: nothing from the URL is reflected.
    let notice = match q.done.as_deref() {
        Some("name") => Some("Your name is saved."),
        Some("email") => Some("Your email address is changed."),
        Some("password") => Some("Your password is changed. Your other sessions were ended."),
        Some("totp_on") => Some("Two-factor authentication is on."),
        Some("totp_off") => Some("Two-factor authentication is off."),
        _ => None,
    };
    Ok(account_page(&st, &headers, &s, &a, notice, None))
}

/// Runs the sign-in check and the CSRF check every account form needs.
async fn form_guard(
    st: &IssuerState,
    headers: &HeaderMap,
    presented: &str,
) -> Result<Access, DomainError> {
    Ok(match signed_in(st, headers).await? {
        Access::Granted(g) if !csrf::verify(st, headers, Some(&g.0), presented) => {
            Access::Answer(csrf_refused())
        }
        other => other,
    })
}

async fn password_ok(st: &IssuerState, a: &Account, password: &str) -> bool {
    password.len() <= MAX_PASSWORD_BYTES
        && st.hasher.verify(a.password_hash.as_deref(), password).await
}

pub async fn profile(
    State(st): State<IssuerState>,
    headers: HeaderMap,
    Form(f): Form<NameForm>,
) -> Result<Response, PageError> {
    let (s, a) = match form_guard(&st, &headers, &f.csrf_token).await? {
        Access::Granted(g) => *g,
        Access::Answer(r) => return Ok(r),
    };
    let name = match accounts::check_name(&f.name) {
        Ok(n) => n,
        Err(e) => return Ok(account_page(&st, &headers, &s, &a, None, Some(refusal(e)?))),
    };
    accounts::set_name(st.store.as_ref(), &a.sub, &name, st.clock.now()).await?;
    tracing::info!(event = "twilio_account_name_changed", sub = %a.sub, "name changed");
    Ok(see_other("/account?done=name"))
}

pub async fn email(
    State(st): State<IssuerState>,
    headers: HeaderMap,
    Form(f): Form<EmailForm>,
) -> Result<Response, PageError> {
    let (s, a) = match form_guard(&st, &headers, &f.csrf_token).await? {
        Access::Granted(g) => *g,
        Access::Answer(r) => return Ok(r),
    };
    if !password_ok(&st, &a, &f.current_password).await {
        let why = (
            StatusCode::UNAUTHORIZED,
            "Your current password is not correct.".to_string(),
        );
        return Ok(account_page(&st, &headers, &s, &a, None, Some(why)));
    }
    let result = match accounts::check_email(&f.email) {
        Ok(e) => accounts::set_email(st.store.as_ref(), &a.sub, &e, st.clock.now()).await,
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        return Ok(account_page(&st, &headers, &s, &a, None, Some(refusal(e)?)));
    }
    tracing::info!(event = "twilio_account_email_changed", sub = %a.sub, "email changed");
    Ok(see_other("/account?done=email"))
}

pub async fn password(
    State(st): State<IssuerState>,
    headers: HeaderMap,
    Form(f): Form<PasswordForm>,
) -> Result<Response, PageError> {
    let (s, a) = match form_guard(&st, &headers, &f.csrf_token).await? {
        Access::Granted(g) => *g,
        Access::Answer(r) => return Ok(r),
    };
    if !password_ok(&st, &a, &f.current_password).await {
        let why = (
            StatusCode::UNAUTHORIZED,
            "Your current password is not correct.".to_string(),
        );
        return Ok(account_page(&st, &headers, &s, &a, None, Some(why)));
    }
    if let Err(why) = check_policy(&f.new_password, &a.email) {
        let why = (StatusCode::BAD_REQUEST, why);
        return Ok(account_page(&st, &headers, &s, &a, None, Some(why)));
    }
    let hash = st
        .hasher
        .hash(&f.new_password)
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    accounts::set_password(st.store.as_ref(), &a.sub, &hash, st.clock.now()).await?;
    st.end_other_sessions(&a.sub, Some(&s.key)).await?;
    tracing::info!(event = "twilio_password_changed", sub = %a.sub, "password changed; other sessions ended");
    Ok(see_other("/account?done=password"))
}

fn setup_page(
    st: &IssuerState,
    headers: &HeaderMap,
    s: &IssuerSession,
    a: &Account,
    secret: &str,
    error: Option<String>,
) -> Response {
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = TotpSetupPage {
        chrome: chrome(st, headers, s, a),
        secret: secret.to_string(),
        uri: totp::otpauth_uri("Twilio", &a.email, secret),
        error,
    };
    render_status(status, &page)
}

/// `GET /account/totp`: shows the pending enrolment, starting one if needed.
pub async fn totp_page(
    State(st): State<IssuerState>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let (s, a) = match signed_in(&st, &headers).await? {
        Access::Granted(g) => *g,
        Access::Answer(r) => return Ok(r),
    };
    if a.totp_enabled {
        return Ok(see_other("/account"));
    }
    let secret = match &a.totp_secret {
        Some(sealed) => accounts::open_totp(&st.secret, &a.sub, sealed)?,
        None => {
            let fresh = totp::new_secret()?;
            let sealed = accounts::seal_totp(&st.secret, &a.sub, &fresh)?;
            if !accounts::start_totp(st.store.as_ref(), &a.sub, &sealed, st.clock.now()).await? {
                return Ok(see_other("/account"));
            }
            fresh
        }
    };
    Ok(setup_page(&st, &headers, &s, &a, &secret, None))
}

/// `POST /account/totp`: the first code confirms the enrolment.
pub async fn totp_enable(
    State(st): State<IssuerState>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Result<Response, PageError> {
    let (s, a) = match form_guard(&st, &headers, &f.csrf_token).await? {
        Access::Granted(g) => *g,
        Access::Answer(r) => return Ok(r),
    };
    let Some(sealed) = a.totp_secret.clone().filter(|_| !a.totp_enabled) else {
        return Ok(see_other("/account"));
    };
    let secret = accounts::open_totp(&st.secret, &a.sub, &sealed)?;
    let now = st.clock.now();
    let Some(step) = totp::verify(&secret, &f.code, now, None) else {
        let why = "That code did not match. Check the time on your device and try the next code.";
        return Ok(setup_page(&st, &headers, &s, &a, &secret, Some(why.into())));
    };
    if !accounts::enable_totp(st.store.as_ref(), &a.sub, &sealed, step, now).await? {
        return Ok(see_other("/account/totp"));
    }
    tracing::info!(event = "twilio_totp_enabled", sub = %a.sub, "two-factor authentication turned on");
    Ok(see_other("/account?done=totp_on"))
}

/// `POST /account/totp/disable`: needs a current, unused code.
pub async fn totp_disable(
    State(st): State<IssuerState>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Result<Response, PageError> {
    let (s, a) = match form_guard(&st, &headers, &f.csrf_token).await? {
        Access::Granted(g) => *g,
        Access::Answer(r) => return Ok(r),
    };
    let Some(sealed) = a.totp_secret.clone().filter(|_| a.totp_enabled) else {
        return Ok(see_other("/account"));
    };
    let secret = accounts::open_totp(&st.secret, &a.sub, &sealed)?;
    let now = st.clock.now();
    let done = match totp::verify(&secret, &f.code, now, a.totp_last_step) {
        Some(step) => accounts::disable_totp(st.store.as_ref(), &a.sub, step, now).await?,
        None => false,
    };
    if !done {
        let why = (
            StatusCode::UNAUTHORIZED,
            "That code is wrong or was already used. Wait for the next one.".to_string(),
        );
        return Ok(account_page(&st, &headers, &s, &a, None, Some(why)));
    }
    tracing::info!(event = "twilio_totp_disabled", sub = %a.sub, "two-factor authentication turned off");
    Ok(see_other("/account?done=totp_off"))
}
