//! Invitations: sent by mail, accepted at `/invitations/{token}`.

use super::{parse_body, time, Ctx};
use crate::domain::model::Invitation;
use crate::service::invitations;
pub use crate::service::invitations::NewInvite;
use crate::web::errors::ApiError;
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

pub fn invitation_json(i: &Invitation) -> Value {
    json!({
        "id": i.id,
        "email": i.email,
        "status": "invited",
        "policies": i.policies,
        "group_ids": i.group_ids,
        "invited_by": i.invited_by,
        "created_at": time(i.created_at),
        "expires_at": time(i.expires_at),
    })
}

pub async fn list(State(state): State<AppState>, ctx: Ctx) -> Result<Json<Value>, ApiError> {
    let items = invitations::list(&state, &ctx).await?;
    Ok(Json(super::list(
        items.iter().map(invitation_json).collect(),
        None,
    )))
}

pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // Before the body is read: a non-owner learns nothing from its checks.
    ctx.require_owner()?;
    let req: NewInvite = parse_body(&body)?;
    let inv = invitations::invite(&state, &ctx, req).await?;
    Ok((StatusCode::CREATED, Json(invitation_json(&inv))))
}

pub async fn revoke(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    invitations::revoke(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn resend(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let inv = invitations::resend(&state, &ctx, &id).await?;
    Ok(Json(invitation_json(&inv)))
}
