//! User groups: their policies apply to their members.

use super::{check_policies, parse_body, time, Ctx};
use crate::domain::model::Group;
use crate::domain::roles::Policy;
use crate::domain::DomainError;
use crate::web::errors::ApiError;
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn group_json(g: &Group) -> Value {
    json!({"id": g.id, "name": g.name, "description": g.description, "policies": g.policies, "member_ids": g.member_ids, "created_at": time(g.created_at)})
}

pub fn check_name(name: &str) -> Result<(), ApiError> {
    // Length and control characters are checked on the name as sent, not
    // on what trimming leaves (a form feed or a no-break space before it,
    // say): what the API documents is what it accepts.
    if name.trim().is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(
            DomainError::Invalid("name: 1 to 100 characters, no line breaks".into()).into(),
        );
    }
    Ok(())
}

pub async fn list(State(state): State<AppState>, ctx: Ctx) -> Result<Json<Value>, ApiError> {
    let groups = state.store.list_groups(&ctx.ws.id).await?;
    Ok(Json(super::list(
        groups.iter().map(group_json).collect(),
        None,
    )))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewGroup {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub policies: Vec<Policy>,
}

/// Checks and creates a group (audited).
pub async fn create_group(state: &AppState, ctx: &Ctx, req: NewGroup) -> Result<Group, ApiError> {
    check_name(&req.name)?;
    check_policies(&req.policies)?;
    let g = state
        .store
        .create_group(
            &ctx.ws.id,
            req.name.trim(),
            &req.description,
            &req.policies,
            state.clock.now(),
        )
        .await?;
    ctx.audit(
        state,
        "group.created",
        Some(&g.id),
        json!({"name": g.name, "policies": g.policies}),
    )
    .await;
    Ok(g)
}

pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    ctx.require_owner()?;
    let req: NewGroup = parse_body(&body)?;
    let g = create_group(&state, &ctx, req).await?;
    Ok((StatusCode::CREATED, Json(group_json(&g))))
}

pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let g = state
        .store
        .get_group(&ctx.ws.id, &id)
        .await?
        .ok_or(DomainError::NotFound)?;
    Ok(Json(group_json(&g)))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GroupPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub policies: Option<Vec<Policy>>,
}

/// Checks and applies a change to a group (audited); returns the group after it.
pub async fn update_group(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    req: GroupPatch,
) -> Result<Group, ApiError> {
    if let Some(n) = &req.name {
        check_name(n)?;
    }
    if let Some(p) = &req.policies {
        check_policies(p)?;
    }
    let name = req.name.as_deref().map(str::trim);
    state
        .store
        .update_group(
            &ctx.ws.id,
            id,
            name,
            req.description.as_deref(),
            req.policies.as_deref(),
        )
        .await?;
    ctx.audit(
        state,
        "group.updated",
        Some(id),
        json!({"name": name, "description": req.description, "policies": req.policies}),
    )
    .await;
    Ok(state
        .store
        .get_group(&ctx.ws.id, id)
        .await?
        .ok_or(DomainError::NotFound)?)
}

pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    ctx.require_owner()?;
    let req: GroupPatch = parse_body(&body)?;
    let g = update_group(&state, &ctx, &id, req).await?;
    Ok(Json(group_json(&g)))
}

/// Deletes a group (audited); its members stay with their own roles.
pub async fn delete_group(state: &AppState, ctx: &Ctx, id: &str) -> Result<(), ApiError> {
    state.store.delete_group(&ctx.ws.id, id).await?;
    ctx.audit(state, "group.deleted", Some(id), json!({})).await;
    Ok(())
}

/// Adds (`add`) or removes a workspace member to or from a group (audited).
pub async fn set_group_member(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    user_id: &str,
    add: bool,
) -> Result<(), ApiError> {
    if add {
        state
            .store
            .add_group_member(&ctx.ws.id, id, user_id)
            .await?;
    } else {
        state
            .store
            .remove_group_member(&ctx.ws.id, id, user_id)
            .await?;
    }
    ctx.audit(
        state,
        if add {
            "group.member_added"
        } else {
            "group.member_removed"
        },
        Some(id),
        json!({"user_id": user_id}),
    )
    .await;
    Ok(())
}

/// Deletes a group; its members stay in the workspace with their own roles.
pub async fn remove(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ctx.require_owner()?;
    delete_group(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn add_member(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id, user_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    ctx.require_owner()?;
    set_group_member(&state, &ctx, &id, &user_id, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn remove_member(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id, user_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    ctx.require_owner()?;
    set_group_member(&state, &ctx, &id, &user_id, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
