//! `/account`: profile, password, two-factor authentication and sessions.
//! A workspace that requires 2FA sends people here with `return_to`; after
//! they enrol (or step up) they go back there.

use super::csrf;
use super::errors::Halt;
use super::http::{client_ip, current_session};
use super::login::{csrf_refused, see_other, throttled_page, with_cookie};
use super::views::{
    self, AccountPage, Chrome, MessagePage, MfaSetupPage, RecoveryCodesPage, SessionRow,
};
use super::AppState;
use crate::domain::model::{AuthMethod, User};
use crate::domain::return_to;
use crate::password::check_policy;
use crate::service::account::{self as core_account, audited_self};
use crate::service::signin::{throttled, Guess};
use crate::session::Session;
use crate::totp;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use std::net::{IpAddr, SocketAddr};

pub use crate::service::account::{normalize_recovery_code, RECOVERY_CODES};

struct SignedIn {
    cookie: String,
    session: Session,
    user: User,
    /// The page frame: CSRF token and the header's workspace switcher.
    chrome: Chrome,
}

/// The signed-in person, or a redirect to sign in.
async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<SignedIn, Halt> {
    let Some((cookie, session)) = current_session(state, headers).await? else {
        return Err(see_other("/login?return_to=%2Faccount").into());
    };
    let Some(user) = state.store.user_by_id(&session.uid).await? else {
        return Err(see_other("/login").into());
    };
    let chrome = super::pages::signed_in_chrome(state, &session, &user, None).await?;
    Ok(SignedIn {
        cookie,
        session,
        user,
        chrome,
    })
}

/// The signed-in person for a form post that carries a valid CSRF token,
/// or the page to answer with (sign in, or "form expired").
async fn posted(
    state: &AppState,
    headers: &HeaderMap,
    csrf_token: Option<&str>,
) -> Result<SignedIn, Halt> {
    let me = signed_in(state, headers).await?;
    if !csrf::verify(state, headers, Some(&me.session), csrf_token) {
        return Err(csrf_refused().into());
    }
    Ok(me)
}

/// [`posted`], for the forms that change what Twilio manages for a linked
/// account (password, name, second factor): 409 with a page saying so.
async fn posted_own(
    state: &AppState,
    headers: &HeaderMap,
    csrf_token: Option<&str>,
) -> Result<SignedIn, Halt> {
    let me = posted(state, headers, csrf_token).await?;
    if let Err(crate::domain::DomainError::Conflict(why)) =
        core_account::ensure_managed_here(state.store.as_ref(), &me.user.id).await
    {
        return Err(stop(&me, StatusCode::CONFLICT, "Managed in Twilio", &why));
    }
    Ok(me)
}

fn message(me: &SignedIn, status: StatusCode, title: &str, text: &str) -> Response {
    let page = MessagePage {
        chrome: me.chrome.clone(),
        title: title.into(),
        message: text.into(),
        link: Some(("/account".into(), "Back to your account".into())),
    };
    (status, views::render(&page)).into_response()
}

/// [`message`], as where a handler stops.
fn stop(me: &SignedIn, status: StatusCode, title: &str, text: &str) -> Halt {
    Halt::from(message(me, status, title, text))
}

/// How a session was started, in words.
fn method_text(m: &AuthMethod) -> String {
    match m {
        AuthMethod::Password => "Password".into(),
        AuthMethod::Twilio => "Twilio".into(),
        AuthMethod::Sso(id) => format!("SSO ({id})"),
    }
}

/// Where to go after enrolling or stepping up: the page that asked for a
/// second factor (validated), when one did.
fn back_to(state: &AppState, raw: Option<&str>) -> Option<String> {
    raw.filter(|r| !r.is_empty())
        .map(|r| return_to::sanitize(Some(r), &state.cfg.allowed_return_origins))
}

#[derive(Deserialize)]
pub struct Notice {
    pub done: Option<String>,
    /// The page that sent the person here for a second factor.
    pub return_to: Option<String>,
}

fn notice_text(done: Option<&str>) -> Option<String> {
    let text = match done? {
        "profile" => "Your name is saved.",
        "password" => "Your password is changed. Your other sessions were signed out.",
        "mfa_off" => "Two-factor authentication is off.",
        "twilio_linked" => "Your Twilio account is linked. From now on you sign in with Twilio.",
        "twilio_unlinked" => "Your Twilio account is unlinked. Sign in with your new password.",
        _ => return None,
    };
    Some(text.to_string())
}

/// The person's live sessions, this one first.
async fn session_rows(state: &AppState, me: &SignedIn) -> Result<Vec<SessionRow>, Halt> {
    let mut sessions: Vec<SessionRow> = state
        .sessions
        .sessions_of(&me.user.id)
        .await?
        .into_iter()
        .map(|s| SessionRow {
            current: s.key == me.session.key,
            method: method_text(&s.method),
            started: super::pages::access::when(s.created),
            last_seen: super::pages::access::when(s.seen),
        })
        .collect();
    sessions.sort_by(|a, b| {
        b.current
            .cmp(&a.current)
            .then(b.last_seen.cmp(&a.last_seen))
    });
    Ok(sessions)
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Result<Response, Halt> {
    let me = signed_in(&state, &headers).await?;
    let identities = state.store.identities_of(&me.user.id).await?;
    let page = AccountPage {
        chrome: me.chrome.clone(),
        name: me.user.name.clone(),
        email: me.user.email.clone(),
        has_password: me.user.password_hash.is_some(),
        mfa_enabled: me.user.mfa_enabled(),
        session_mfa: me.session.mfa,
        recovery_left: state.store.unused_recovery_codes(&me.user.id).await?,
        sessions: session_rows(&state, &me).await?,
        method: method_text(&me.session.method),
        notice: notice_text(q.done.as_deref()),
        return_to: back_to(&state, q.return_to.as_deref()),
        twilio_available: state.twilio.is_some(),
        twilio_subject: identities
            .into_iter()
            .find(|(p, _)| p == crate::web::twilio::PROVIDER)
            .map(|(_, s)| s),
    };
    Ok(views::render(&page))
}

#[derive(Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    pub name: String,
    pub csrf_token: Option<String>,
}

pub async fn profile(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<ProfileForm>,
) -> Result<Response, Halt> {
    let me = posted_own(&state, &headers, f.csrf_token.as_deref()).await?;
    let name = f.name.trim();
    if name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(stop(
            &me,
            StatusCode::BAD_REQUEST,
            "Name not saved",
            "Use at most 200 characters, without line breaks.",
        ));
    }
    state.store.set_user_name(&me.user.id, name).await?;
    // The name travels in the identity headers forward-auth caches.
    state.access_changed().await;
    Ok(see_other("/account?done=profile"))
}

#[derive(Deserialize)]
pub struct PasswordChangeForm {
    #[serde(default)]
    pub current_password: String,
    #[serde(default)]
    pub new_password: String,
    pub csrf_token: Option<String>,
}

/// A guess's answer as where a handler stops: throttled (429) or wrong
/// (401 with `title` and `text`).
fn guessed(me: &SignedIn, guess: Guess, title: &str, text: &str) -> Result<(), Halt> {
    match guess {
        Guess::Right => Ok(()),
        Guess::Locked(wait) | Guess::Wrong { locked: Some(wait) } => {
            Err(throttled_page(wait).into())
        }
        Guess::Wrong { locked: None } => Err(stop(me, StatusCode::UNAUTHORIZED, title, text)),
    }
}

/// Changes the password: the current one is required (and throttled like a
/// sign-in); every session of the person ends and this browser gets a new one.
pub async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<PasswordChangeForm>,
) -> Result<Response, Halt> {
    let me = posted_own(&state, &headers, f.csrf_token.as_deref()).await?;
    let ip = client_ip(&state, peer, &headers);
    let hash = me.user.password_hash.as_deref();
    let current =
        async { Ok(hash.is_none() || state.hasher.verify(hash, &f.current_password).await) };
    let guess = throttled(&state, &me.user.email, ip, current).await?;
    let not_changed = "Password not changed";
    guessed(
        &me,
        guess,
        not_changed,
        "Your current password is not correct.",
    )?;
    if let Err(why) = check_policy(&f.new_password, &me.user.email) {
        return Err(stop(&me, StatusCode::BAD_REQUEST, not_changed, &why));
    }
    let value = core_account::change_password(
        &state,
        &me.user,
        &me.session,
        &f.new_password,
        &ip.to_string(),
    )
    .await?;
    Ok(with_cookie(
        see_other("/account?done=password"),
        Some(state.sessions.set_cookie_header(&value)),
    ))
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    pub csrf_token: Option<String>,
}

#[derive(Deserialize)]
pub struct SetupForm {
    pub csrf_token: Option<String>,
    pub return_to: Option<String>,
}

/// Makes a new secret (pending until confirmed) and shows it as a QR code,
/// an `otpauth://` URI and base32 text.
pub async fn mfa_setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<SetupForm>,
) -> Result<Response, Halt> {
    let me = posted_own(&state, &headers, f.csrf_token.as_deref()).await?;
    if me.user.mfa_enabled() {
        return Err(stop(&me, StatusCode::CONFLICT, "Already on", "Two-factor authentication is already on. Turn it off first to set up a new authenticator."));
    }
    let secret = core_account::begin_totp(&state, &me.user).await?;
    let back = back_to(&state, f.return_to.as_deref());
    Ok(render_setup(&me, &secret, back, None))
}

fn render_setup(
    me: &SignedIn,
    secret: &str,
    return_to: Option<String>,
    error: Option<String>,
) -> Response {
    let uri = totp::otpauth_uri("IAM Gateway", &me.user.email, secret);
    let qr_svg = qrcode::QrCode::new(uri.as_bytes())
        .map(|c| {
            c.render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .build()
        })
        .unwrap_or_default();
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    let page = MfaSetupPage {
        chrome: me.chrome.clone(),
        uri,
        secret: secret.to_string(),
        qr_svg,
        error,
        return_to,
    };
    (status, views::render(&page)).into_response()
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    pub code: String,
    pub csrf_token: Option<String>,
    /// Where to go afterwards (enrolment and step-up, from a workspace
    /// that requires 2FA).
    pub return_to: Option<String>,
}

/// The pending authenticator's secret of a person whose 2FA is off, or the
/// page to answer with.
fn pending_secret(state: &AppState, me: &SignedIn) -> Result<String, Halt> {
    if me.user.mfa_enabled() {
        let text = "Two-factor authentication is already on.";
        return Err(stop(me, StatusCode::CONFLICT, "Already on", text));
    }
    core_account::totp_secret(state, &me.user)?.ok_or_else(|| {
        let text = "Set up two-factor authentication from your account page first.";
        stop(me, StatusCode::BAD_REQUEST, "Start again", text)
    })
}

/// Confirms the authenticator with a first code, turns 2FA on, shows the
/// recovery codes once (then on to `return_to`, or the account page), and
/// upgrades this session (new cookie value).
pub async fn mfa_confirm(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Result<Response, Halt> {
    let me = posted_own(&state, &headers, f.csrf_token.as_deref()).await?;
    let secret = pending_secret(&state, &me)?;
    let back = back_to(&state, f.return_to.as_deref());
    let ip = client_ip(&state, peer, &headers).to_string();
    let (user, session) = (&me.user, &me.session);
    let enabled =
        core_account::confirm_totp(&state, user, &secret, &f.code, session, &me.cookie, &ip)
            .await?;
    let Some(enabled) = enabled else {
        let error = "That code didn't match. Check the time on your phone and try the next code.";
        return Ok(render_setup(&me, &secret, back, Some(error.into())));
    };
    let fresh = state
        .sessions
        .lookup(&enabled.cookie_value)
        .await?
        .ok_or(crate::domain::DomainError::Unauthenticated)?;
    let page = RecoveryCodesPage {
        chrome: Chrome {
            csrf: csrf::token_for_session(&state, &fresh),
            ..me.chrome.clone()
        },
        codes: enabled.codes,
        next: back.unwrap_or_else(|| "/account".into()),
    };
    Ok(with_cookie(
        views::render(&page),
        Some(state.sessions.set_cookie_header(&enabled.cookie_value)),
    ))
}

/// The signed-in person after a valid CSRF token and a second factor (a
/// current TOTP code or a recovery code), throttled like a sign-in; or the
/// page to answer with (`refused_title` when the code is wrong).
async fn with_second_factor(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    f: &CodeForm,
    refused_title: &str,
) -> Result<(SignedIn, IpAddr), Halt> {
    let me = posted_own(state, headers, f.csrf_token.as_deref()).await?;
    let ip = client_ip(state, peer, headers);
    let code = core_account::check_second_factor(state, &me.user, &f.code);
    let guess = throttled(state, &me.user.email, ip, code).await?;
    guessed(&me, guess, refused_title, "That code didn't work.")?;
    Ok((me, ip))
}

/// Turning 2FA off needs a current code or a recovery code.
pub async fn mfa_disable(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Result<Response, Halt> {
    let title = "Two-factor authentication is still on";
    let (me, ip) = with_second_factor(&state, peer, &headers, &f, title).await?;
    let disable = state.store.disable_totp(&me.user.id);
    audited_self(
        &state,
        &me.user,
        "user.mfa_disabled",
        &ip.to_string(),
        disable,
    )
    .await?;
    state.access_changed().await;
    Ok(see_other("/account?done=mfa_off"))
}

/// A session without a second factor (started before 2FA was turned on)
/// proves one now: the session is upgraded (new cookie value) and the
/// person goes back to `return_to`, or to the account page.
pub async fn mfa_step_up(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Result<Response, Halt> {
    let title = "Second factor not confirmed";
    let (me, _) = with_second_factor(&state, peer, &headers, &f, title).await?;
    let method = me.session.method.clone();
    let (value, _) = state
        .start_session(&me.user.id, method, true, Some(&me.cookie))
        .await?;
    let back = back_to(&state, f.return_to.as_deref());
    Ok(with_cookie(
        see_other(back.as_deref().unwrap_or("/account")),
        Some(state.sessions.set_cookie_header(&value)),
    ))
}

/// New recovery codes (the old ones stop working); needs a current code.
pub async fn mfa_new_recovery_codes(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Result<Response, Halt> {
    let (me, ip) = with_second_factor(&state, peer, &headers, &f, "No new codes").await?;
    let (codes, hashes) = core_account::new_recovery_codes()?;
    let replace = state.store.replace_recovery_codes(&me.user.id, &hashes);
    let (action, ip) = ("user.recovery_codes_replaced", ip.to_string());
    audited_self(&state, &me.user, action, &ip, replace).await?;
    let page = RecoveryCodesPage {
        chrome: me.chrome.clone(),
        codes,
        next: "/account".into(),
    };
    Ok(views::render(&page))
}

/// "Sign out everywhere": every session of the person ends, this one too.
pub async fn revoke_sessions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Result<Response, Halt> {
    let me = posted(&state, &headers, f.csrf_token.as_deref()).await?;
    state.end_sessions_of(&me.user.id, None).await?;
    Ok(with_cookie(
        see_other("/login"),
        Some(state.sessions.clear_cookie_header()),
    ))
}
