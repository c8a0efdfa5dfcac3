//! User groups: their policies apply to their members.

use super::{parse_body, time, Ctx};
use crate::domain::model::Group;
use crate::service::groups;
use crate::web::errors::ApiError;
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

pub use crate::service::groups::{check_name, GroupPatch, NewGroup};

pub fn group_json(g: &Group) -> Value {
    json!({"id": g.id, "name": g.name, "description": g.description, "policies": g.policies, "member_ids": g.member_ids, "created_at": time(g.created_at)})
}

pub async fn list(State(state): State<AppState>, ctx: Ctx) -> Result<Json<Value>, ApiError> {
    let groups = groups::list(&state, &ctx).await?;
    Ok(Json(super::list(
        groups.iter().map(group_json).collect(),
        None,
    )))
}

pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    ctx.require_owner()?;
    let req: NewGroup = parse_body(&body)?;
    let g = groups::create(&state, &ctx, req).await?;
    Ok((StatusCode::CREATED, Json(group_json(&g))))
}

pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let g = groups::get(&state, &ctx, &id).await?;
    Ok(Json(group_json(&g)))
}

pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    ctx.require_owner()?;
    let req: GroupPatch = parse_body(&body)?;
    let g = groups::update(&state, &ctx, &id, req).await?;
    Ok(Json(group_json(&g)))
}

/// Deletes a group; its members stay in the workspace with their own roles.
pub async fn remove(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ctx.require_owner()?;
    groups::delete(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn add_member(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id, user_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    ctx.require_owner()?;
    groups::set_member(&state, &ctx, &id, &user_id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove_member(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id, user_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    ctx.require_owner()?;
    groups::set_member(&state, &ctx, &id, &user_id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
