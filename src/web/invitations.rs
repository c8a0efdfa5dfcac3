//! Accepting an invitation at `/invitations/{token}`: a signed-in person
//! with the invited email accepts with one click; someone without an account
//! sets a name and password; an existing user signs in first.

use super::csrf;
use super::errors::PageError;
use super::http::{client_ip, current_session};
use super::login::{csrf_refused, finish_sign_in, see_other, with_cookie};
use super::views::{self, Chrome, InvitationPage};
use super::AppState;
use crate::audit;
use crate::crypto;
use crate::domain::model::{normalize_email, Actor, Invitation, Workspace};
use crate::domain::DomainError;
use crate::password::check_policy;
use crate::store::NewUser;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use std::net::SocketAddr;

fn gone() -> PageError {
    PageError(DomainError::Invalid("This invitation is no longer valid: it was used, revoked or has expired. Ask a workspace owner to send a new one.".into()))
}

/// An open invitation, its workspace and the token it was opened with.
struct Opened {
    token: String,
    inv: Invitation,
    ws: Workspace,
}

async fn open_invitation(state: &AppState, token: &str) -> Result<Opened, PageError> {
    let inv = state
        .store
        .invitation_by_token(&crypto::sha256_hex(token.as_bytes()))
        .await?
        .ok_or_else(gone)?;
    if !inv.is_open(state.clock.now()) {
        return Err(gone());
    }
    let ws = state
        .store
        .workspace_by_id(&inv.workspace_id)
        .await?
        .ok_or_else(gone)?;
    Ok(Opened {
        token: token.to_string(),
        inv,
        ws,
    })
}

/// What the page offers, decided from who is looking.
enum Mode {
    Accept,
    WrongAccount(String),
    SignInFirst,
    CreateAccount,
}

async fn mode(
    state: &AppState,
    headers: &HeaderMap,
    inv: &Invitation,
) -> Result<(Mode, Option<crate::session::Session>), DomainError> {
    if let Some((_, s)) = current_session(state, headers).await? {
        let user = state
            .store
            .user_by_id(&s.uid)
            .await?
            .ok_or(DomainError::Unauthenticated)?;
        let m = if normalize_email(&user.email) == normalize_email(&inv.email) {
            Mode::Accept
        } else {
            Mode::WrongAccount(user.email)
        };
        return Ok((m, Some(s)));
    }
    Ok((
        if state.store.user_by_email(&inv.email).await?.is_some() {
            Mode::SignInFirst
        } else {
            Mode::CreateAccount
        },
        None,
    ))
}

fn page(
    state: &AppState,
    headers: &HeaderMap,
    o: &Opened,
    mode: &Mode,
    session: Option<&crate::session::Session>,
    error: Option<String>,
) -> Response {
    let (token, inv, ws) = (&o.token, &o.inv, &o.ws);
    let (csrf, set) = csrf::page_token(state, headers, session);
    let (kind, signed_in_as) = match mode {
        Mode::Accept => ("accept", None),
        Mode::WrongAccount(e) => ("wrong_account", Some(e.clone())),
        Mode::SignInFirst => ("sign_in", None),
        Mode::CreateAccount => ("create", None),
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let p = InvitationPage {
        chrome: Chrome {
            csrf,
            user_email: signed_in_as
                .clone()
                .or_else(|| session.map(|_| inv.email.clone())),
            ..Chrome::default()
        },
        workspace: ws.name.clone(),
        email: inv.email.clone(),
        mode: kind.into(),
        signed_in_as,
        login_link: format!(
            "/login?return_to={}",
            super::forward_auth::urlencode(&format!("/invitations/{token}"))
        ),
        error,
    };
    with_cookie((status, views::render(&p)).into_response(), set)
}

/// A workspace that requires SSO takes its invitations through its IdP:
/// signing in there accepts the open invitation for that email.
async fn through_idp(state: &AppState, o: &Opened) -> Result<Option<Response>, PageError> {
    if !o.ws.settings.require_sso {
        return Ok(None);
    }
    Ok(super::sso::first_enabled(state, &o.ws.id)
        .await?
        .map(|c| see_other(&format!("/sso/{}/start?return_to=%2Fworkspaces", c.id))))
}

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let o = open_invitation(&state, &token).await?;
    if let Some(r) = through_idp(&state, &o).await? {
        return Ok(r);
    }
    let (m, session) = mode(&state, &headers, &o.inv).await?;
    Ok(page(&state, &headers, &o, &m, session.as_ref(), None))
}

#[derive(Deserialize)]
pub struct AcceptForm {
    pub csrf_token: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub password: String,
}

pub async fn accept(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(f): Form<AcceptForm>,
) -> Result<Response, PageError> {
    let o = open_invitation(&state, &token).await?;
    if let Some(r) = through_idp(&state, &o).await? {
        return Ok(r);
    }
    let (m, session) = mode(&state, &headers, &o.inv).await?;
    if !csrf::verify(&state, &headers, session.as_ref(), f.csrf_token.as_deref()) {
        return Ok(csrf_refused());
    }
    let now = state.clock.now();
    let ip = client_ip(&state, peer, &headers);
    let (inv, ws) = (&o.inv, &o.ws);
    let (user, signed_in) = match m {
        Mode::Accept => {
            let Some(s) = &session else {
                return Err(PageError(DomainError::Unauthenticated));
            };
            let user = state
                .store
                .user_by_id(&s.uid)
                .await?
                .ok_or(DomainError::Unauthenticated)?;
            state
                .store
                .accept_invitation(&inv.id, &user.id, now)
                .await
                .map_err(|e| match e {
                    crate::store::StoreError::NotFound => gone(),
                    other => other.into(),
                })?;
            (user, true)
        }
        Mode::CreateAccount => {
            let name = f.name.trim();
            if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
                return Ok(page(
                    &state,
                    &headers,
                    &o,
                    &m,
                    None,
                    Some("Enter your name (at most 200 characters).".into()),
                ));
            }
            if let Err(why) = check_policy(&f.password, &inv.email) {
                return Ok(page(&state, &headers, &o, &m, None, Some(why)));
            }
            let hash = state
                .hasher
                .hash(&f.password)
                .await
                .map_err(|e| DomainError::Internal(e.to_string()))?;
            let new = NewUser {
                email: inv.email.clone(),
                name: name.to_string(),
                password_hash: Some(hash),
            };
            let user = state
                .store
                .accept_invitation_as_new_user(&inv.id, &new, now)
                .await
                .map_err(|e| match e {
                    crate::store::StoreError::NotFound => gone(),
                    other => other.into(),
                })?;
            (user, false)
        }
        Mode::SignInFirst | Mode::WrongAccount(_) => {
            return Ok(page(&state, &headers, &o, &m, session.as_ref(), None))
        }
    };
    audit::record(
        state.store.as_ref(),
        now,
        audit::Entry {
            workspace_id: Some(&ws.id),
            actor: Actor::user(&user.id, &user.email),
            action: "invitation.accepted",
            target: Some(&user.id),
            ip: Some(ip.to_string()),
            details: serde_json::json!({"invitation_id": inv.id, "policies": inv.policies, "group_ids": inv.group_ids}),
        },
    )
    .await;
    if signed_in {
        return Ok(see_other("/workspaces"));
    }
    let via = crate::service::signin::Via::Password { mfa: false };
    Ok(finish_sign_in(&state, &headers, &user, via, "/workspaces", ip).await?)
}
