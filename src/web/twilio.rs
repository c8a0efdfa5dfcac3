//! Twilio Unified Login on the gateway side: sign-in (and the console's
//! product-switcher hand-off, which is the same flow answered by the
//! issuer's existing session), linking from `/account`, and unlinking.
//! The issuer is reached only over HTTP, through OIDC discovery. What
//! happens to accounts is in [`crate::service::twilio`].

use super::csrf;
use super::errors::{Halt, PageError};
use super::federation::{self, refused};
use super::http::{client_ip, current_session};
use super::login::{csrf_refused, finish_sign_in, see_other, throttled_page, with_cookie};
use super::views::{self, Chrome, TwilioConfirmPage};
use super::AppState;
use crate::audit;
use crate::connectors::oidc::{
    CallbackParams, OidcConnector, OidcError, PendingAuth, PENDING_TTL_SECS,
};
use crate::connectors::ExternalIdentity;
use crate::crypto;
use crate::domain::model::{Actor, User};
use crate::domain::{return_to, DomainError};
use crate::password::check_policy;
use crate::service::signin::{throttled, Guess, Via};
use crate::service::twilio as core_twilio;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub const PROVIDER: &str = crate::service::account::TWILIO_PROVIDER;
const PRE_COOKIE: &str = "iamgw_oidc";
const CONFIRM_TTL: Duration = Duration::from_secs(600);

#[derive(Serialize, Deserialize)]
enum Purpose {
    SignIn { return_to: String },
    Link { uid: String },
}

#[derive(Serialize, Deserialize)]
struct Started {
    pending: PendingAuth,
    purpose: Purpose,
}

/// A Twilio identity waiting for the matching gateway account's password.
#[derive(Serialize, Deserialize)]
struct Confirm {
    uid: String,
    email: String,
    subject: String,
    name: Option<String>,
    mfa: bool,
    return_to: String,
}

fn unavailable() -> Response {
    refused(
        404,
        "Twilio sign-in is off",
        "This gateway is not set up for Twilio Unified Login.",
    )
}

/// The Twilio relying party, or 404 when Twilio sign-in is off.
fn relying_party(state: &AppState) -> Result<Arc<OidcConnector>, Halt> {
    state.twilio.clone().ok_or_else(|| unavailable().into())
}

async fn begin(
    state: &AppState,
    headers: &HeaderMap,
    purpose: Purpose,
    prompt: Option<&str>,
) -> Result<Response, Halt> {
    let rp = relying_party(state)?;
    let (url, pending) = rp
        .begin(prompt)
        .await
        .map_err(|e| refused(e.status(), "Twilio is not reachable", &e.reason()))?;
    let key = format!("oidc:{}", pending.state);
    let started = Started { pending, purpose };
    let ttl = Duration::from_secs(PENDING_TTL_SECS as u64);
    let set = federation::stash(state, headers, PRE_COOKIE, false, &key, &started, ttl).await?;
    Ok(with_cookie(see_other(&url), set))
}

#[derive(Deserialize)]
pub struct Start {
    pub return_to: Option<String>,
    /// `none`: only sign in if Twilio already knows the browser (silent).
    pub prompt: Option<String>,
}

/// `GET /login/twilio?return_to=…`: also where the Twilio console's product
/// switcher sends a signed-in Twilio user.
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Start>,
) -> Result<Response, Halt> {
    let return_to = return_to::sanitize(q.return_to.as_deref(), &state.cfg.allowed_return_origins);
    let prompt = q.prompt.as_deref().filter(|p| *p == "none");
    begin(&state, &headers, Purpose::SignIn { return_to }, prompt).await
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    pub csrf_token: Option<String>,
}

/// `POST /account/twilio/link`: links the signed-in user's Twilio account.
pub async fn link(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(f): Form<CsrfOnly>,
) -> Result<Response, Halt> {
    let Some((_, session)) = current_session(&state, &headers).await? else {
        return Ok(see_other("/login?return_to=%2Faccount"));
    };
    if !csrf::verify(&state, &headers, Some(&session), f.csrf_token.as_deref()) {
        return Ok(csrf_refused());
    }
    begin(&state, &headers, Purpose::Link { uid: session.uid }, None).await
}

async fn audit_refusal(state: &AppState, ip: IpAddr, reason: &str) {
    // audit-after: a refusal changes nothing.
    audit::record(
        state.store.as_ref(),
        state.clock.now(),
        audit::Entry {
            workspace_id: None,
            actor: Actor::system(),
            action: "signin.refused",
            target: None,
            ip: Some(ip.to_string()),
            details: serde_json::json!({"method": "twilio", "reason": reason}),
        },
    )
    .await;
}

const BAD_STATE: &str = "This sign-in could not be matched to your browser: the link is invalid, was already used, or was started in another browser. Start again.";

/// The flow this browser started, named by the callback's `state`; or the
/// refusal (recorded when a state was given).
async fn started_flow(
    state: &AppState,
    headers: &HeaderMap,
    params: &CallbackParams,
    ip: IpAddr,
) -> Result<Started, Halt> {
    let bad = || refused(400, "Sign-in not completed", BAD_STATE);
    let Some(st) = params
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 256)
    else {
        state.metrics.signin("twilio", "refused");
        return Err(bad().into());
    };
    let key = format!("oidc:{st}");
    match federation::claim::<Started>(state, headers, PRE_COOKIE, &key).await? {
        Some(started) => Ok(started),
        None => {
            state.metrics.signin("twilio", "refused");
            audit_refusal(state, ip, "unknown, used or foreign state").await;
            Err(bad().into())
        }
    }
}

/// Twilio's answer refused: recorded, and the page saying why.
async fn twilio_refused(state: &AppState, ip: IpAddr, e: OidcError) -> Halt {
    state.metrics.signin("twilio", "refused");
    audit_refusal(state, ip, &e.reason()).await;
    let title = if matches!(e, OidcError::ProviderError { .. }) {
        "Twilio did not sign you in"
    } else {
        "Sign-in refused"
    };
    refused(e.status(), title, &e.reason()).into()
}

/// `GET /auth/twilio/callback`.
pub async fn callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Result<Response, Halt> {
    let rp = relying_party(&state)?;
    let ip = client_ip(&state, peer, &headers);
    let started = started_flow(&state, &headers, &params, ip).await?;
    let identity = match rp.complete(&started.pending, &params).await {
        Ok(i) => i,
        Err(e) => return Err(twilio_refused(&state, ip, e).await),
    };
    match started.purpose {
        Purpose::SignIn { return_to } => sign_in(&state, &headers, identity, &return_to, ip).await,
        Purpose::Link { uid } => link_done(&state, &headers, identity, &uid, ip).await,
    }
}

async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    user: &User,
    mfa: bool,
    return_to: &str,
    ip: IpAddr,
) -> Result<Response, Halt> {
    let via = Via::Twilio { mfa };
    Ok(finish_sign_in(state, headers, user, via, return_to, ip).await?)
}

/// The identity's email, when Twilio shared a valid and verified one.
fn verified_email(state: &AppState, identity: &ExternalIdentity) -> Result<String, Halt> {
    let refuse = |title: &str, text: &str| {
        state.metrics.signin("twilio", "refused");
        Halt::from(refused(403, title, text))
    };
    let Some(email) = identity
        .email
        .clone()
        .filter(|e| crate::domain::model::valid_email(e))
    else {
        return Err(refuse(
            "Email needed",
            "Twilio did not share an email address for your account, so it cannot be used here.",
        ));
    };
    if !identity.email_verified {
        return Err(refuse("Verify your email first", "Your Twilio account's email address is not verified. Verify it at Twilio, then try again."));
    }
    Ok(email)
}

/// The confirm page: the existing account's password, with `error` (401)
/// after a wrong one.
fn confirm_page(
    state: &AppState,
    headers: &HeaderMap,
    email: String,
    token: String,
    has_password: bool,
    error: Option<&str>,
) -> Response {
    let (csrf, set) = csrf::page_token(state, headers, None);
    let page = TwilioConfirmPage {
        chrome: Chrome {
            csrf,
            user_email: None,
            ..Chrome::default()
        },
        email,
        token,
        has_password,
        error: error.map(str::to_string),
    };
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    with_cookie((status, views::render(&page)).into_response(), set)
}

/// An account already has the Twilio email: never linked silently, the
/// person proves the account first (its password).
async fn ask_confirm(
    state: &AppState,
    headers: &HeaderMap,
    existing: User,
    identity: &ExternalIdentity,
    return_to: &str,
) -> Result<Response, Halt> {
    let token = crypto::random_token("")?;
    let confirm = Confirm {
        uid: existing.id.clone(),
        email: existing.email.clone(),
        subject: identity.subject.clone(),
        name: identity.name.clone(),
        mfa: core_twilio::used_second_factor(identity),
        return_to: return_to.to_string(),
    };
    let key = format!("oidc-confirm:{token}");
    let set = federation::stash(
        state,
        headers,
        PRE_COOKIE,
        false,
        &key,
        &confirm,
        CONFIRM_TTL,
    )
    .await?;
    let has_password = existing.password_hash.is_some();
    let page = confirm_page(state, headers, existing.email, token, has_password, None);
    Ok(with_cookie(page, set))
}

async fn sign_in(
    state: &AppState,
    headers: &HeaderMap,
    identity: ExternalIdentity,
    return_to: &str,
    ip: IpAddr,
) -> Result<Response, Halt> {
    let mfa = core_twilio::used_second_factor(&identity);
    if let Some(user) = core_twilio::linked_user(state, &identity).await? {
        return start_session(state, headers, &user, mfa, return_to, ip).await;
    }
    let email = verified_email(state, &identity)?;
    if let Some(existing) = state.store.user_by_email(&email).await? {
        return ask_confirm(state, headers, existing, &identity, return_to).await;
    }
    let user = core_twilio::create_user(state, &identity, &email).await?;
    start_session(state, headers, &user, mfa, return_to, ip).await
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    pub csrf_token: Option<String>,
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub password: String,
}

fn confirm_expired() -> Response {
    refused(
        400,
        "Start again",
        "This step expired or was started in another browser. Continue with Twilio again.",
    )
}

/// A wrong password at the confirm step: the pending link is put back so
/// the person can try again.
async fn wrong_password(
    state: &AppState,
    headers: &HeaderMap,
    key: &str,
    c: &Confirm,
    token: &str,
) -> Result<Response, Halt> {
    let set = federation::stash(state, headers, PRE_COOKIE, false, key, c, CONFIRM_TTL).await?;
    let error = Some("That password is not correct.");
    let page = confirm_page(state, headers, c.email.clone(), token.into(), true, error);
    Ok(with_cookie(page, set))
}

/// `POST /auth/twilio/confirm`: the password of the existing account that
/// has the Twilio email; on success the accounts are linked.
pub async fn confirm(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<ConfirmForm>,
) -> Result<Response, Halt> {
    if !csrf::verify(&state, &headers, None, f.csrf_token.as_deref()) {
        return Ok(csrf_refused());
    }
    let key = format!("oidc-confirm:{}", f.token);
    let c = federation::claim::<Confirm>(&state, &headers, PRE_COOKIE, &key)
        .await?
        .ok_or_else(confirm_expired)?;
    let ip = client_ip(&state, peer, &headers);
    let mut found = None;
    let password = async {
        let user = state.store.user_by_id(&c.uid).await?;
        let user = found.insert(user.ok_or(DomainError::Unauthenticated)?);
        let hash = user.password_hash.as_deref();
        Ok(state.hasher.verify(hash, &f.password).await)
    };
    match throttled(&state, &c.email, ip, password).await? {
        Guess::Right => {}
        Guess::Locked(wait) | Guess::Wrong { locked: Some(wait) } => {
            return Ok(throttled_page(wait))
        }
        Guess::Wrong { locked: None } => {
            return wrong_password(&state, &headers, &key, &c, &f.token).await
        }
    }
    let user = found.ok_or(DomainError::Unauthenticated)?;
    state.throttle.success(&c.email).await?;
    core_twilio::link(&state, &user, &c.subject, Some(&c.email), &ip.to_string()).await?;
    if let Some(name) = c.name.as_deref().filter(|n| !n.trim().is_empty()) {
        state.store.set_user_name(&user.id, name.trim()).await?;
    }
    start_session(&state, &headers, &user, c.mfa, &c.return_to, ip).await
}

async fn link_done(
    state: &AppState,
    headers: &HeaderMap,
    identity: ExternalIdentity,
    uid: &str,
    ip: IpAddr,
) -> Result<Response, Halt> {
    let ended = || {
        refused(
            401,
            "Sign in again",
            "Your session ended before the Twilio account could be linked. Sign in and try again.",
        )
    };
    let (_, session) = current_session(state, headers)
        .await?
        .filter(|(_, s)| s.uid == uid)
        .ok_or_else(ended)?;
    match core_twilio::already_linked(state, uid, &identity.subject).await {
        Ok(false) => {}
        Ok(true) => return Ok(see_other("/account?done=twilio_linked")),
        Err(DomainError::Conflict(why)) => return Ok(refused(409, "Already linked", &why)),
        Err(e) => return Err(e.into()),
    }
    let user = state
        .store
        .user_by_id(&session.uid)
        .await?
        .ok_or(DomainError::Unauthenticated)?;
    let email = identity.email.as_deref();
    core_twilio::link(state, &user, &identity.subject, email, &ip.to_string()).await?;
    core_twilio::refresh_profile(state, &user, &identity).await;
    Ok(see_other("/account?done=twilio_linked"))
}

#[derive(Deserialize)]
pub struct UnlinkForm {
    pub csrf_token: Option<String>,
    #[serde(default)]
    pub new_password: String,
}

/// `POST /account/twilio/unlink`: needs a new gateway password, since the
/// account must keep a way to sign in; other sessions end.
pub async fn unlink(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<UnlinkForm>,
) -> Result<Response, PageError> {
    let Some((cookie_value, session)) = current_session(&state, &headers).await? else {
        return Ok(see_other("/login?return_to=%2Faccount"));
    };
    if !csrf::verify(&state, &headers, Some(&session), f.csrf_token.as_deref()) {
        return Ok(csrf_refused());
    }
    let user = state
        .store
        .user_by_id(&session.uid)
        .await?
        .ok_or(DomainError::Unauthenticated)?;
    if let Err(why) = check_policy(&f.new_password, &user.email) {
        let text = format!("Set a new password to unlink Twilio. {why}");
        return Ok(refused(400, "Not unlinked", &text));
    }
    let ip = client_ip(&state, peer, &headers).to_string();
    core_twilio::unlink(&state, &user, &f.new_password, &cookie_value, &ip).await?;
    Ok(see_other("/account?done=twilio_unlinked"))
}
