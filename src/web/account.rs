//! `/account`: profile, password, two-factor authentication and sessions.

use super::csrf;
use super::errors::PageError;
use super::http::{client_ip, current_session};
use super::login::{csrf_refused, see_other, throttled_page, with_cookie};
use super::mfa::check_second_factor;
use super::views::{
    self, AccountPage, Chrome, MessagePage, MfaSetupPage, RecoveryCodesPage, SessionRow,
};
use super::AppState;
use crate::audit;
use crate::crypto;
use crate::domain::model::{Actor, User};
use crate::domain::DomainError;
use crate::password::check_policy;
use crate::session::Session;
use crate::throttle::Gate;
use crate::totp;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use std::net::SocketAddr;

pub const RECOVERY_CODES: usize = 10;

/// Lower case without spaces or dashes: how recovery codes are compared.
pub fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Ten fresh codes (100 bits each) for display, and their hashes to store.
fn new_recovery_codes() -> Result<(Vec<String>, Vec<String>), DomainError> {
    let mut shown = Vec::new();
    let mut hashes = Vec::new();
    for _ in 0..RECOVERY_CODES {
        let raw = totp::base32_encode(&crypto::random_bytes::<13>()?).to_ascii_lowercase();
        let code: String = raw.chars().take(20).collect();
        hashes.push(crypto::sha256_hex(code.as_bytes()));
        let groups: Vec<String> = code
            .as_bytes()
            .chunks(5)
            .map(|c| String::from_utf8_lossy(c).to_string())
            .collect();
        shown.push(groups.join("-"));
    }
    Ok((shown, hashes))
}

struct SignedIn {
    cookie: String,
    session: Session,
    user: User,
    /// The page frame: CSRF token and the header's workspace switcher.
    chrome: Chrome,
}

/// The signed-in person, or a redirect to sign in.
async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Result<SignedIn, Response>, DomainError> {
    let Some((cookie, session)) = current_session(state, headers).await? else {
        return Ok(Err(see_other("/login?return_to=%2Faccount")));
    };
    let Some(user) = state.store.user_by_id(&session.uid).await? else {
        return Ok(Err(see_other("/login")));
    };
    let chrome = super::pages::signed_in_chrome(state, &session, &user, None).await?;
    Ok(Ok(SignedIn {
        cookie,
        session,
        user,
        chrome,
    }))
}

/// The signed-in person for a form post that carries a valid CSRF token,
/// or the page to answer with (sign in, or "form expired").
async fn posted(
    state: &AppState,
    headers: &HeaderMap,
    csrf_token: Option<&str>,
) -> Result<Result<SignedIn, Response>, DomainError> {
    let me = match signed_in(state, headers).await? {
        Ok(m) => m,
        Err(r) => return Ok(Err(r)),
    };
    if !csrf::verify(state, headers, Some(&me.session), csrf_token) {
        return Ok(Err(csrf_refused()));
    }
    Ok(Ok(me))
}

/// [`posted`], for the forms that change what Twilio manages for a linked
/// account (password, name, second factor): 409 with a page saying so.
async fn posted_own(
    state: &AppState,
    headers: &HeaderMap,
    csrf_token: Option<&str>,
) -> Result<Result<SignedIn, Response>, DomainError> {
    let me = match posted(state, headers, csrf_token).await? {
        Ok(m) => m,
        Err(r) => return Ok(Err(r)),
    };
    if let Err(DomainError::Conflict(why)) =
        crate::service::account::ensure_managed_here(state.store.as_ref(), &me.user.id).await
    {
        return Ok(Err(message(
            state,
            &me,
            StatusCode::CONFLICT,
            "Managed in Twilio",
            &why,
        )));
    }
    Ok(Ok(me))
}

fn chrome(_state: &AppState, me: &SignedIn) -> Chrome {
    me.chrome.clone()
}

fn message(
    state: &AppState,
    me: &SignedIn,
    status: StatusCode,
    title: &str,
    text: &str,
) -> Response {
    let page = MessagePage {
        chrome: chrome(state, me),
        title: title.into(),
        message: text.into(),
        link: Some(("/account".into(), "Back to your account".into())),
    };
    (status, views::render(&page)).into_response()
}

async fn audit_self(state: &AppState, me: &SignedIn, action: &str, ip: String) {
    audit::record(
        state.store.as_ref(),
        state.clock.now(),
        audit::Entry {
            workspace_id: None,
            actor: Actor::user(&me.user.id, &me.user.email),
            action,
            target: Some(&me.user.id),
            ip: Some(ip),
            details: serde_json::json!({}),
        },
    )
    .await;
}

/// How a session was started, in words.
fn method_text(m: &crate::domain::model::AuthMethod) -> String {
    use crate::domain::model::AuthMethod;
    match m {
        AuthMethod::Password => "Password".into(),
        AuthMethod::Twilio => "Twilio".into(),
        AuthMethod::Sso(id) => format!("SSO ({id})"),
    }
}

#[derive(Deserialize)]
pub struct Notice {
    pub done: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Notice>,
) -> Result<Response, PageError> {
    let me = match signed_in(&state, &headers).await? {
        Ok(m) => m,
        Err(r) => return Ok(r),
    };
    let notice = match q.done.as_deref() {
        Some("profile") => Some("Your name is saved."),
        Some("password") => Some("Your password is changed. Your other sessions were signed out."),
        Some("mfa_off") => Some("Two-factor authentication is off."),
        Some("twilio_linked") => {
            Some("Your Twilio account is linked. From now on you sign in with Twilio.")
        }
        Some("twilio_unlinked") => {
            Some("Your Twilio account is unlinked. Sign in with your new password.")
        }
        _ => None,
    };
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
    let page = AccountPage {
        chrome: chrome(&state, &me),
        name: me.user.name.clone(),
        email: me.user.email.clone(),
        has_password: me.user.password_hash.is_some(),
        mfa_enabled: me.user.mfa_enabled(),
        recovery_left: state.store.unused_recovery_codes(&me.user.id).await?,
        sessions,
        method: method_text(&me.session.method),
        notice: notice.map(str::to_string),
        twilio_available: state.twilio.is_some(),
        twilio_subject: state
            .store
            .identities_of(&me.user.id)
            .await?
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
) -> Result<Response, PageError> {
    let me = match posted_own(&state, &headers, f.csrf_token.as_deref()).await? {
        Ok(m) => m,
        Err(r) => return Ok(r),
    };
    let name = f.name.trim();
    if name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Ok(message(
            &state,
            &me,
            StatusCode::BAD_REQUEST,
            "Name not saved",
            "Use at most 200 characters, without line breaks.",
        ));
    }
    state.store.set_user_name(&me.user.id, name).await?;
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

/// Changes the password: the current one is required (and throttled like a
/// sign-in); every session of the person ends and this browser gets a new one.
pub async fn change_password(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<PasswordChangeForm>,
) -> Result<Response, PageError> {
    let me = match posted_own(&state, &headers, f.csrf_token.as_deref()).await? {
        Ok(m) => m,
        Err(r) => return Ok(r),
    };
    let ip = client_ip(&state, peer, &headers);
    if let Gate::Locked(wait) = state.throttle.check(&me.user.email, ip).await? {
        return Ok(throttled_page(wait));
    }
    if me.user.password_hash.is_some()
        && !state
            .hasher
            .verify(me.user.password_hash.as_deref(), &f.current_password)
            .await
    {
        if let Gate::Locked(wait) = state.throttle.failure(&me.user.email, ip).await? {
            return Ok(throttled_page(wait));
        }
        return Ok(message(
            &state,
            &me,
            StatusCode::UNAUTHORIZED,
            "Password not changed",
            "Your current password is not correct.",
        ));
    }
    if let Err(why) = check_policy(&f.new_password, &me.user.email) {
        return Ok(message(
            &state,
            &me,
            StatusCode::BAD_REQUEST,
            "Password not changed",
            &why,
        ));
    }
    let hash = state
        .hasher
        .hash(&f.new_password)
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    state
        .store
        .set_password_hash(&me.user.id, &hash, state.clock.now())
        .await?;
    state.sessions.revoke_all(&me.user.id, None).await?;
    let (value, _) = state
        .sessions
        .login(&me.user.id, me.session.method.clone(), me.session.mfa, None)
        .await?;
    audit_self(&state, &me, "user.password_changed", ip.to_string()).await;
    Ok(with_cookie(
        see_other("/account?done=password"),
        Some(state.sessions.set_cookie_header(&value)),
    ))
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    pub csrf_token: Option<String>,
}

/// Makes a new secret (pending until confirmed) and shows it as a QR code,
/// an `otpauth://` URI and base32 text.
pub async fn mfa_setup(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    let me = match posted_own(&state, &headers, f.csrf_token.as_deref()).await? {
        Ok(m) => m,
        Err(r) => return Ok(r),
    };
    if me.user.mfa_enabled() {
        return Ok(message(&state, &me, StatusCode::CONFLICT, "Already on", "Two-factor authentication is already on. Turn it off first to set up a new authenticator."));
    }
    let secret = totp::new_secret()?;
    state
        .store
        .set_pending_totp(
            &me.user.id,
            &crypto::seal(&state.secret, "totp", secret.as_bytes())?,
        )
        .await?;
    Ok(render_setup(&state, &me, &secret, None))
}

fn render_setup(state: &AppState, me: &SignedIn, secret: &str, error: Option<String>) -> Response {
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
        chrome: chrome(state, me),
        uri,
        secret: secret.to_string(),
        qr_svg,
        error,
    };
    (status, views::render(&page)).into_response()
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    pub code: String,
    pub csrf_token: Option<String>,
}

fn pending_secret(state: &AppState, user: &User) -> Result<Option<String>, DomainError> {
    match user.totp_secret.as_deref() {
        None => Ok(None),
        Some(sealed) => Ok(Some(
            String::from_utf8(crypto::open(&state.secret, "totp", sealed)?)
                .map_err(|e| DomainError::Internal(e.to_string()))?,
        )),
    }
}

/// Confirms the authenticator with a first code, turns 2FA on, shows the
/// recovery codes once, and upgrades this session (new cookie value).
pub async fn mfa_confirm(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Result<Response, PageError> {
    let me = match posted_own(&state, &headers, f.csrf_token.as_deref()).await? {
        Ok(m) => m,
        Err(r) => return Ok(r),
    };
    if me.user.mfa_enabled() {
        return Ok(message(
            &state,
            &me,
            StatusCode::CONFLICT,
            "Already on",
            "Two-factor authentication is already on.",
        ));
    }
    let Some(secret) = pending_secret(&state, &me.user)? else {
        return Ok(message(
            &state,
            &me,
            StatusCode::BAD_REQUEST,
            "Start again",
            "Set up two-factor authentication from your account page first.",
        ));
    };
    let now = state.clock.now();
    let Some(step) = totp::verify(&secret, &f.code, now, None) else {
        return Ok(render_setup(
            &state,
            &me,
            &secret,
            Some(
                "That code didn't match. Check the time on your phone and try the next code."
                    .into(),
            ),
        ));
    };
    let (codes, hashes) = new_recovery_codes()?;
    state
        .store
        .enable_totp(&me.user.id, now, step, &hashes)
        .await?;
    let (value, _) = state
        .sessions
        .login(
            &me.user.id,
            me.session.method.clone(),
            true,
            Some(&me.cookie),
        )
        .await?;
    audit_self(
        &state,
        &me,
        "user.mfa_enabled",
        client_ip(&state, peer, &headers).to_string(),
    )
    .await;
    let fresh = state
        .sessions
        .lookup(&value)
        .await?
        .ok_or(DomainError::Unauthenticated)?;
    let page = RecoveryCodesPage {
        chrome: Chrome {
            csrf: csrf::token_for_session(&state, &fresh),
            ..me.chrome.clone()
        },
        codes,
    };
    Ok(with_cookie(
        views::render(&page),
        Some(state.sessions.set_cookie_header(&value)),
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
) -> Result<Result<(SignedIn, std::net::IpAddr), Response>, PageError> {
    let me = match posted_own(state, headers, f.csrf_token.as_deref()).await? {
        Ok(m) => m,
        Err(r) => return Ok(Err(r)),
    };
    let ip = client_ip(state, peer, headers);
    if let Gate::Locked(wait) = state.throttle.check(&me.user.email, ip).await? {
        return Ok(Err(throttled_page(wait)));
    }
    if !check_second_factor(state, &me.user, &f.code).await? {
        if let Gate::Locked(wait) = state.throttle.failure(&me.user.email, ip).await? {
            return Ok(Err(throttled_page(wait)));
        }
        return Ok(Err(message(
            state,
            &me,
            StatusCode::UNAUTHORIZED,
            refused_title,
            "That code didn't work.",
        )));
    }
    Ok(Ok((me, ip)))
}

/// Turning 2FA off needs a current code or a recovery code.
pub async fn mfa_disable(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Result<Response, PageError> {
    let (me, ip) = match with_second_factor(
        &state,
        peer,
        &headers,
        &f,
        "Two-factor authentication is still on",
    )
    .await?
    {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    state.store.disable_totp(&me.user.id).await?;
    audit_self(&state, &me, "user.mfa_disabled", ip.to_string()).await;
    Ok(see_other("/account?done=mfa_off"))
}

/// New recovery codes (the old ones stop working); needs a current code.
pub async fn mfa_new_recovery_codes(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<CodeForm>,
) -> Result<Response, PageError> {
    let (me, ip) = match with_second_factor(&state, peer, &headers, &f, "No new codes").await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let (codes, hashes) = new_recovery_codes()?;
    state
        .store
        .replace_recovery_codes(&me.user.id, &hashes)
        .await?;
    audit_self(&state, &me, "user.recovery_codes_replaced", ip.to_string()).await;
    let page = RecoveryCodesPage {
        chrome: chrome(&state, &me),
        codes,
    };
    Ok(views::render(&page))
}

/// "Sign out everywhere": every session of the person ends, this one too.
pub async fn revoke_sessions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Result<Response, PageError> {
    let me = match posted(&state, &headers, f.csrf_token.as_deref()).await? {
        Ok(m) => m,
        Err(r) => return Ok(r),
    };
    state.sessions.revoke_all(&me.user.id, None).await?;
    Ok(with_cookie(
        see_other("/login"),
        Some(state.sessions.clear_cookie_header()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_distinct_grouped_and_normalise_to_what_is_hashed() {
        let (shown, hashes) = new_recovery_codes().unwrap();
        assert_eq!(shown.len(), RECOVERY_CODES);
        let mut uniq = hashes.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), RECOVERY_CODES);
        assert_eq!(shown[0].len(), 23);
        assert_eq!(
            crypto::sha256_hex(normalize_recovery_code(&shown[0].to_uppercase()).as_bytes()),
            hashes[0]
        );
    }
}
