//! Workspace resources (id, kind, name, labels) that scoped roles refer to.

use super::{parse_body, Ctx};
use crate::domain::model::Resource;
use crate::service::resources;
use crate::web::errors::ApiError;
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

pub async fn list(State(state): State<AppState>, ctx: Ctx) -> Result<Json<Value>, ApiError> {
    let items = resources::list(&state, &ctx).await?;
    Ok(Json(super::list(
        items.iter().map(|r| json!(r)).collect(),
        None,
    )))
}

/// Registers or updates a resource.
pub async fn put(
    State(state): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    ctx.require_owner()?;
    let r: Resource = parse_body(&body)?;
    resources::put(&state, &ctx, &r).await?;
    Ok((StatusCode::CREATED, Json(json!(r))))
}

pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let r = resources::get(&state, &ctx, &id).await?;
    Ok(Json(json!(r)))
}

pub async fn remove(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ctx.require_owner()?;
    resources::delete(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
