//! The management REST API under `/api/v1`.

use super::csrf;
use super::errors::ApiError;
use super::http::client_ip;
use super::http::current_session;
use super::AppState;
use crate::audit;
use crate::clock::rfc3339;
use crate::domain::access;
use crate::domain::duration;
use crate::domain::model::{Actor, AuthMethod, Workspace, WorkspaceSettings};
use crate::domain::roles;
use crate::domain::DomainError;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// The signed-in user, their workspaces and roles, and the CSRF token.
pub async fn me(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, session) = current_session(&state, &headers)
        .await?
        .ok_or(DomainError::Unauthenticated)?;
    let user = state
        .store
        .user_by_id(&session.uid)
        .await?
        .ok_or(DomainError::Unauthenticated)?;
    let workspaces: Vec<Value> = state
        .store
        .workspaces_of_user(&user.id)
        .await?
        .into_iter()
        .map(|w| {
            json!({
                "id": w.workspace.id,
                "slug": w.workspace.slug,
                "name": w.workspace.name,
                "policies": w.policies,
                "roles": w.policies.iter().map(|p| p.label()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(Json(json!({
        "user": {
            "id": user.id,
            "email": user.email,
            "name": user.name,
            "created_at": rfc3339(user.created_at),
            "last_login_at": user.last_login_at.map(rfc3339),
        },
        "auth_method": session.method.as_header(),
        "workspaces": workspaces,
        "csrf_token": csrf::token_for_session(&state, &session),
    })))
}

/// Who is calling the API. Only session callers for now (API tokens come
/// with access management).
pub struct Caller {
    pub user: crate::domain::model::User,
    pub session: crate::session::Session,
}

/// The caller from the session cookie; unsafe methods also need the
/// `X-CSRF-Token` header.
pub async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    unsafe_method: bool,
) -> Result<Caller, ApiError> {
    let (_, session) = current_session(state, headers)
        .await?
        .ok_or(DomainError::Unauthenticated)?;
    if unsafe_method {
        let presented = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
        let expected = csrf::token_for_session(state, &session);
        if !presented.is_some_and(|p| crate::crypto::ct_eq(p.as_bytes(), expected.as_bytes())) {
            return Err(
                DomainError::Forbidden("missing or wrong X-CSRF-Token header".into()).into(),
            );
        }
    }
    let user = state
        .store
        .user_by_id(&session.uid)
        .await?
        .ok_or(DomainError::Unauthenticated)?;
    Ok(Caller { user, session })
}

/// The workspace, when the caller is one of its owners. Non-members get 404
/// (workspaces are not revealed), members without the role 403.
pub async fn owned_workspace(
    state: &AppState,
    caller: &Caller,
    slug: &str,
) -> Result<Workspace, ApiError> {
    let ws = state
        .store
        .workspace_by_slug(slug)
        .await?
        .ok_or(DomainError::NotFound)?;
    let m = state
        .store
        .membership(&ws.id, &caller.user.id)
        .await?
        .ok_or(DomainError::NotFound)?;
    if !access::is_owner(&m.policies) {
        return Err(DomainError::Forbidden("only workspace owners can do this".into()).into());
    }
    Ok(ws)
}

fn settings_json(s: &WorkspaceSettings) -> Value {
    json!({
        "require_sso": s.require_sso,
        "sso_exempt_user_ids": s.sso_exempt_user_ids,
        "require_mfa": s.require_mfa,
        "default_role": s.default_role,
        "idle_timeout": s.idle_timeout,
        "absolute_timeout": s.absolute_timeout,
    })
}

pub async fn get_settings(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let c = caller(&state, &headers, false).await?;
    let ws = owned_workspace(&state, &c, &slug).await?;
    Ok(Json(settings_json(&ws.settings)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub require_sso: Option<bool>,
    pub sso_exempt_user_ids: Option<Vec<String>>,
    pub require_mfa: Option<bool>,
    pub default_role: Option<String>,
    /// `null` removes the workspace's own timeout.
    #[serde(default, deserialize_with = "double_option")]
    pub idle_timeout: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub absolute_timeout: Option<Option<String>>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Applies a settings change after validating all of it (nothing is written
/// when any part is refused).
pub async fn patch_settings(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let c = caller(&state, &headers, true).await?;
    let ws = owned_workspace(&state, &c, &slug).await?;
    let patch: SettingsPatch = serde_json::from_slice(&body)
        .map_err(|e| DomainError::Invalid(format!("invalid settings: {e}")))?;
    let mut next = ws.settings.clone();
    if let Some(on) = patch.require_sso {
        if on && !ws.settings.require_sso {
            // Only someone who just proved the workspace's SSO works may turn
            // it on, so nobody locks the workspace out.
            let from_sso = matches!(&c.session.method, AuthMethod::Sso(conn) if state.store.sso_connection_workspace(conn).await?.as_deref() == Some(ws.id.as_str()));
            if !from_sso {
                return Err(DomainError::Forbidden("Require SSO can be turned on only from a session signed in through this workspace's SSO".into()).into());
            }
        }
        next.require_sso = on;
    }
    if let Some(ids) = patch.sso_exempt_user_ids {
        next.sso_exempt_user_ids = ids;
    }
    if let Some(on) = patch.require_mfa {
        next.require_mfa = on;
    }
    if let Some(role) = patch.default_role {
        if roles::find(&role).is_none() {
            return Err(DomainError::Invalid(format!("unknown role `{role}`")).into());
        }
        next.default_role = role;
    }
    for (value, slot, name) in [
        (patch.idle_timeout, &mut next.idle_timeout, "idle_timeout"),
        (
            patch.absolute_timeout,
            &mut next.absolute_timeout,
            "absolute_timeout",
        ),
    ] {
        if let Some(v) = value {
            if let Some(text) = &v {
                duration::parse(text).map_err(|e| DomainError::Invalid(format!("{name}: {e}")))?;
            }
            *slot = v;
        }
    }
    state.store.set_workspace_settings(&ws.id, &next).await?;
    audit::record(
        state.store.as_ref(),
        state.clock.now(),
        audit::Entry {
            workspace_id: Some(&ws.id),
            actor: Actor::user(&c.user.id, &c.user.email),
            action: "workspace.settings_updated",
            target: Some(&ws.slug),
            ip: Some(client_ip(&state, peer, &headers).to_string()),
            details: json!({"before": settings_json(&ws.settings), "after": settings_json(&next)}),
        },
    )
    .await;
    Ok(Json(settings_json(&next)))
}

/// An owner resets a member's two-factor authentication (audited).
pub async fn reset_member_mfa(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((slug, user_id)): Path<(String, String)>,
) -> Result<axum::http::StatusCode, ApiError> {
    let c = caller(&state, &headers, true).await?;
    let ws = owned_workspace(&state, &c, &slug).await?;
    state
        .store
        .membership(&ws.id, &user_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    state.store.disable_totp(&user_id).await?;
    audit::record(
        state.store.as_ref(),
        state.clock.now(),
        audit::Entry {
            workspace_id: Some(&ws.id),
            actor: Actor::user(&c.user.id, &c.user.email),
            action: "member.mfa_reset",
            target: Some(&user_id),
            ip: Some(client_ip(&state, peer, &headers).to_string()),
            details: json!({}),
        },
    )
    .await;
    Ok(axum::http::StatusCode::NO_CONTENT)
}
