//! The management REST API under `/api/v1`.

use super::csrf;
use super::errors::ApiError;
use super::http::current_session;
use super::AppState;
use crate::clock::rfc3339;
use crate::domain::DomainError;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

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
