//! `/api/v1/me`, the caller's workspaces, and the role catalog.

use super::{caller, parse_body, Caller, Ctx};
use crate::clock::rfc3339;
use crate::domain::model::{valid_slug, NewUserPlaceholder};
use crate::domain::roles;
use crate::domain::DomainError;
use crate::service::workspaces::{self, Membership};
use crate::web::csrf;
use crate::web::errors::ApiError;
use crate::web::http::current_session;
use crate::web::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

fn membership_json(m: &Membership) -> Value {
    json!({
        "id": m.workspace.id,
        "slug": m.workspace.slug,
        "name": m.workspace.name,
        "policies": m.policies,
        "roles": m.effective.iter().map(|p| p.label()).collect::<Vec<_>>(),
    })
}

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
    let workspaces = workspaces::of_user(&state, &user.id).await?;
    Ok(Json(json!({
        "user": {
            "id": user.id,
            "email": user.email,
            "name": user.name,
            "mfa_enabled": user.mfa_enabled(),
            "created_at": rfc3339(user.created_at),
            "last_login_at": user.last_login_at.map(rfc3339),
        },
        "auth_method": session.method.as_header(),
        "workspaces": workspaces.iter().map(membership_json).collect::<Vec<_>>(),
        "csrf_token": csrf::token_for_session(&state, &session),
    })))
}

fn workspace_json(w: &crate::domain::model::Workspace) -> Value {
    json!({"id": w.id, "slug": w.slug, "name": w.name, "created_at": rfc3339(w.created_at)})
}

pub async fn list_workspaces(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let items = match caller(&state, &headers, &method).await? {
        Caller::User { user, .. } => state
            .store
            .workspaces_of_user(&user.id)
            .await?
            .iter()
            .map(|w| workspace_json(&w.workspace))
            .collect(),
        Caller::Token(t) => state
            .store
            .list_workspaces()
            .await?
            .iter()
            .filter(|w| w.id == t.workspace_id)
            .map(workspace_json)
            .collect(),
    };
    Ok(Json(super::list(items, None)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWorkspace {
    pub slug: String,
    pub name: Option<String>,
}

/// Creates a workspace with the signed-in caller as its owner.
pub async fn create_workspace(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Caller::User { user, .. } = caller(&state, &headers, &method).await? else {
        return Err(DomainError::Forbidden(
            "API tokens belong to one workspace and cannot create others".into(),
        )
        .into());
    };
    let req: NewWorkspace = parse_body(&body)?;
    if !valid_slug(&req.slug) {
        return Err(DomainError::Invalid(
            "slug: 2-63 of a-z, 0-9 and -, not starting or ending with -".into(),
        )
        .into());
    }
    let name = req.name.unwrap_or_else(|| req.slug.clone());
    let owner = NewUserPlaceholder::existing(&user);
    let (ws, _) = state
        .store
        .bootstrap_workspace(&req.slug, name.trim(), &owner, state.clock.now())
        .await?;
    crate::audit::record(
        state.store.as_ref(),
        state.clock.now(),
        crate::audit::Entry {
            workspace_id: Some(&ws.id),
            actor: crate::domain::model::Actor::user(&user.id, &user.email),
            action: "workspace.created",
            target: Some(&ws.slug),
            ip: None,
            details: json!({}),
        },
    )
    .await;
    Ok((StatusCode::CREATED, Json(workspace_json(&ws))))
}

/// The role catalog: `{"id", "name", "description", "scopable"}`.
pub async fn roles(State(_state): State<AppState>, _ctx: Ctx) -> Result<Json<Value>, ApiError> {
    let items = roles::CATALOG.iter().map(|r| json!({"id": r.id, "name": r.name, "description": r.description, "scopable": r.scopable})).collect();
    Ok(Json(super::list(items, None)))
}
