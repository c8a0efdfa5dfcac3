//! Twilio Unified Login on the gateway side: sign-in (and the console's
//! product-switcher hand-off, which is the same flow answered by the
//! issuer's existing session), linking from `/account`, and unlinking.
//! The issuer is reached only over HTTP, through OIDC discovery.

use super::csrf;
use super::errors::PageError;
use super::federation::{self, refused};
use super::http::{client_ip, current_session};
use super::login::{csrf_refused, finish_sign_in, see_other, throttled_page, with_cookie};
use super::views::{self, Chrome, TwilioConfirmPage};
use super::AppState;
use crate::audit;
use crate::connectors::oidc::{CallbackParams, OidcError, PendingAuth, PENDING_TTL_SECS};
use crate::connectors::ExternalIdentity;
use crate::crypto;
use crate::domain::model::{Actor, User};
use crate::domain::{return_to, DomainError};
use crate::password::check_policy;
use crate::store::NewUser;
use crate::throttle::Gate;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
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

fn twilio_mfa(identity: &ExternalIdentity) -> bool {
    identity
        .amr
        .iter()
        .any(|m| matches!(m.as_str(), "otp" | "mfa" | "hwk" | "swk" | "sms"))
}

fn unavailable() -> Response {
    refused(
        404,
        "Twilio sign-in is off",
        "This gateway is not set up for Twilio Unified Login.",
    )
}

async fn begin(
    state: &AppState,
    headers: &HeaderMap,
    purpose: Purpose,
    prompt: Option<&str>,
) -> Result<Response, PageError> {
    let Some(rp) = &state.twilio else {
        return Ok(unavailable());
    };
    let (url, pending) = match rp.begin(prompt).await {
        Ok(x) => x,
        Err(e) => return Ok(refused(e.status(), "Twilio is not reachable", &e.reason())),
    };
    let key = format!("oidc:{}", pending.state);
    let started = Started { pending, purpose };
    let set = federation::stash(
        state,
        headers,
        PRE_COOKIE,
        false,
        &key,
        &started,
        Duration::from_secs(PENDING_TTL_SECS as u64),
    )
    .await?;
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
) -> Result<Response, PageError> {
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
) -> Result<Response, PageError> {
    let Some((_, session)) = current_session(&state, &headers).await? else {
        return Ok(see_other("/login?return_to=%2Faccount"));
    };
    if !csrf::verify(&state, &headers, Some(&session), f.csrf_token.as_deref()) {
        return Ok(csrf_refused());
    }
    begin(&state, &headers, Purpose::Link { uid: session.uid }, None).await
}

async fn audit_refusal(state: &AppState, ip: IpAddr, reason: &str) {
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

/// `GET /auth/twilio/callback`.
pub async fn callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Result<Response, PageError> {
    let Some(rp) = state.twilio.clone() else {
        return Ok(unavailable());
    };
    let ip = client_ip(&state, peer, &headers);
    let bad_state = "This sign-in could not be matched to your browser: the link is invalid, was already used, or was started in another browser. Start again.";
    let Some(st) = params
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 256)
    else {
        state.metrics.signin("twilio", "refused");
        return Ok(refused(400, "Sign-in not completed", bad_state));
    };
    let Some(started) =
        federation::claim::<Started>(&state, &headers, PRE_COOKIE, &format!("oidc:{st}")).await?
    else {
        state.metrics.signin("twilio", "refused");
        audit_refusal(&state, ip, "unknown, used or foreign state").await;
        return Ok(refused(400, "Sign-in not completed", bad_state));
    };
    let identity = match rp.complete(&started.pending, &params).await {
        Ok(i) => i,
        Err(e) => {
            state.metrics.signin("twilio", "refused");
            audit_refusal(&state, ip, &e.reason()).await;
            let title = if matches!(e, OidcError::ProviderError { .. }) {
                "Twilio did not sign you in"
            } else {
                "Sign-in refused"
            };
            return Ok(refused(e.status(), title, &e.reason()));
        }
    };
    match started.purpose {
        Purpose::SignIn { return_to } => sign_in(&state, &headers, identity, &return_to, ip).await,
        Purpose::Link { uid } => link_done(&state, &headers, identity, &uid, ip).await,
    }
}

/// Name and email follow Twilio at every sign-in of a linked user.
async fn refresh_profile(state: &AppState, user: &User, identity: &ExternalIdentity) {
    if let Some(name) = identity
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != user.name)
    {
        if let Err(e) = state.store.set_user_name(&user.id, name).await {
            tracing::warn!(error = %e, "could not update the name from Twilio");
        }
    }
    if let Some(email) = identity
        .email
        .as_deref()
        .filter(|e| identity.email_verified && !e.eq_ignore_ascii_case(&user.email))
    {
        if let Err(e) = state.store.set_user_email(&user.id, email).await {
            tracing::warn!(error = %e, "could not take the email from Twilio (already used by another user?)");
        }
    }
}

async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    user: &User,
    mfa: bool,
    return_to: &str,
    ip: IpAddr,
) -> Result<Response, PageError> {
    let via = crate::service::signin::Via::Twilio { mfa };
    Ok(finish_sign_in(state, headers, user, via, return_to, ip).await?)
}

async fn sign_in(
    state: &AppState,
    headers: &HeaderMap,
    identity: ExternalIdentity,
    return_to: &str,
    ip: IpAddr,
) -> Result<Response, PageError> {
    let mfa = twilio_mfa(&identity);
    if let Some(uid) = state
        .store
        .identity_user(PROVIDER, &identity.subject)
        .await?
    {
        let user = state
            .store
            .user_by_id(&uid)
            .await?
            .ok_or(DomainError::Unauthenticated)?;
        refresh_profile(state, &user, &identity).await;
        return start_session(state, headers, &user, mfa, return_to, ip).await;
    }
    let Some(email) = identity
        .email
        .clone()
        .filter(|e| crate::domain::model::valid_email(e))
    else {
        state.metrics.signin("twilio", "refused");
        return Ok(refused(
            403,
            "Email needed",
            "Twilio did not share an email address for your account, so it cannot be used here.",
        ));
    };
    if !identity.email_verified {
        state.metrics.signin("twilio", "refused");
        return Ok(refused(403, "Verify your email first", "Your Twilio account's email address is not verified. Verify it at Twilio, then try again."));
    }
    if let Some(existing) = state.store.user_by_email(&email).await? {
        // Never linked silently: the person proves the account first.
        let token = crypto::random_token("")?;
        let confirm = Confirm {
            uid: existing.id.clone(),
            email: existing.email.clone(),
            subject: identity.subject.clone(),
            name: identity.name.clone(),
            mfa,
            return_to: return_to.to_string(),
        };
        let set = federation::stash(
            state,
            headers,
            PRE_COOKIE,
            false,
            &format!("oidc-confirm:{token}"),
            &confirm,
            CONFIRM_TTL,
        )
        .await?;
        let (csrf, set2) = csrf::page_token(state, headers, None);
        let page = TwilioConfirmPage {
            chrome: Chrome {
                csrf,
                user_email: None,
                ..Chrome::default()
            },
            email: existing.email,
            token,
            has_password: existing.password_hash.is_some(),
            error: None,
        };
        return Ok(with_cookie(with_cookie(views::render(&page), set), set2));
    }
    let new = NewUser {
        email: email.clone(),
        name: identity.name.clone().unwrap_or_default(),
        password_hash: None,
    };
    let user = state
        .store
        .create_user_with_identity(&new, PROVIDER, &identity.subject, state.clock.now())
        .await?;
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

/// `POST /auth/twilio/confirm`: the password of the existing account that
/// has the Twilio email; on success the accounts are linked.
pub async fn confirm(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<ConfirmForm>,
) -> Result<Response, PageError> {
    if !csrf::verify(&state, &headers, None, f.csrf_token.as_deref()) {
        return Ok(csrf_refused());
    }
    let key = format!("oidc-confirm:{}", f.token);
    let expired = || {
        refused(
            400,
            "Start again",
            "This step expired or was started in another browser. Continue with Twilio again.",
        )
    };
    let Some(c) = federation::claim::<Confirm>(&state, &headers, PRE_COOKIE, &key).await? else {
        return Ok(expired());
    };
    let ip = client_ip(&state, peer, &headers);
    if let Gate::Locked(wait) = state.throttle.check(&c.email, ip).await? {
        return Ok(throttled_page(wait));
    }
    let user = state
        .store
        .user_by_id(&c.uid)
        .await?
        .ok_or(DomainError::Unauthenticated)?;
    if !state
        .hasher
        .verify(user.password_hash.as_deref(), &f.password)
        .await
    {
        if let Gate::Locked(wait) = state.throttle.failure(&c.email, ip).await? {
            return Ok(throttled_page(wait));
        }
        // Put the pending link back so the person can try again.
        let set =
            federation::stash(&state, &headers, PRE_COOKIE, false, &key, &c, CONFIRM_TTL).await?;
        let (csrf, set2) = csrf::page_token(&state, &headers, None);
        let page = TwilioConfirmPage {
            chrome: Chrome {
                csrf,
                user_email: None,
                ..Chrome::default()
            },
            email: c.email.clone(),
            token: f.token.clone(),
            has_password: true,
            error: Some("That password is not correct.".into()),
        };
        return Ok(with_cookie(
            with_cookie(
                (StatusCode::UNAUTHORIZED, views::render(&page)).into_response(),
                set,
            ),
            set2,
        ));
    }
    state.throttle.success(&c.email).await?;
    state
        .store
        .link_identity(
            PROVIDER,
            &c.subject,
            &user.id,
            Some(&c.email),
            state.clock.now(),
        )
        .await?;
    state.store.clear_password(&user.id).await?;
    audit_link(&state, &user, "user.twilio_linked", ip).await;
    if let Some(name) = c.name.as_deref().filter(|n| !n.trim().is_empty()) {
        state.store.set_user_name(&user.id, name.trim()).await?;
    }
    start_session(&state, &headers, &user, c.mfa, &c.return_to, ip).await
}

async fn audit_link(state: &AppState, user: &User, action: &str, ip: IpAddr) {
    audit::record(
        state.store.as_ref(),
        state.clock.now(),
        audit::Entry {
            workspace_id: None,
            actor: Actor::user(&user.id, &user.email),
            action,
            target: Some(&user.id),
            ip: Some(ip.to_string()),
            details: serde_json::json!({}),
        },
    )
    .await;
}

async fn link_done(
    state: &AppState,
    headers: &HeaderMap,
    identity: ExternalIdentity,
    uid: &str,
    ip: IpAddr,
) -> Result<Response, PageError> {
    let Some((_, session)) = current_session(state, headers)
        .await?
        .filter(|(_, s)| s.uid == uid)
    else {
        return Ok(refused(
            401,
            "Sign in again",
            "Your session ended before the Twilio account could be linked. Sign in and try again.",
        ));
    };
    match state
        .store
        .identity_user(PROVIDER, &identity.subject)
        .await?
    {
        Some(other) if other != uid => {
            return Ok(refused(
                409,
                "Already linked",
                "This Twilio account is already linked to another user.",
            ))
        }
        Some(_) => return Ok(see_other("/account?done=twilio_linked")),
        None => {}
    }
    if state
        .store
        .identities_of(uid)
        .await?
        .iter()
        .any(|(p, _)| p == PROVIDER)
    {
        return Ok(refused(
            409,
            "Already linked",
            "Your account is already linked to a Twilio account. Unlink it first.",
        ));
    }
    let user = state
        .store
        .user_by_id(&session.uid)
        .await?
        .ok_or(DomainError::Unauthenticated)?;
    state
        .store
        .link_identity(
            PROVIDER,
            &identity.subject,
            uid,
            identity.email.as_deref(),
            state.clock.now(),
        )
        .await?;
    state.store.clear_password(uid).await?;
    refresh_profile(state, &user, &identity).await;
    audit_link(state, &user, "user.twilio_linked", ip).await;
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
        return Ok(refused(
            400,
            "Not unlinked",
            &format!("Set a new password to unlink Twilio. {why}"),
        ));
    }
    let hash = state
        .hasher
        .hash(&f.new_password)
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    state
        .store
        .unlink_identity(PROVIDER, &user.id)
        .await
        .map_err(|e| match e {
            crate::store::StoreError::NotFound => {
                DomainError::Invalid("No Twilio account is linked.".into())
            }
            other => other.into(),
        })?;
    state
        .store
        .set_password_hash(&user.id, &hash, state.clock.now())
        .await?;
    let kept = crypto::sha256_hex(cookie_value.as_bytes());
    state.sessions.revoke_all(&user.id, Some(&kept)).await?;
    audit_link(
        &state,
        &user,
        "user.twilio_unlinked",
        client_ip(&state, peer, &headers),
    )
    .await;
    Ok(see_other("/account?done=twilio_unlinked"))
}
