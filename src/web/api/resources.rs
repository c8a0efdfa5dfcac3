//! Workspace resources (id, kind, name, labels) that scoped roles refer to.

use super::{parse_body, Ctx};
use crate::domain::model::Resource;
use crate::domain::DomainError;
use crate::web::errors::ApiError;
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

fn check(r: &Resource) -> Result<(), ApiError> {
    // Lengths in characters, as JSON Schema's maxLength counts them.
    let chars = |s: &str| s.chars().count();
    let ok_text = |s: &str, max: usize| {
        !s.trim().is_empty() && chars(s) <= max && !s.chars().any(char::is_control)
    };
    if !ok_text(&r.id, 200) || !ok_text(&r.kind, 50) || chars(&r.name) > 200 {
        return Err(DomainError::Invalid(
            "id (≤200) and kind (≤50) are required; name ≤200 characters".into(),
        )
        .into());
    }
    if r.labels.iter().any(|l| !l.contains(':') || chars(l) > 200) {
        return Err(DomainError::Invalid("labels are written key:value".into()).into());
    }
    Ok(())
}

pub async fn list(State(state): State<AppState>, ctx: Ctx) -> Result<Json<Value>, ApiError> {
    let items = state.store.list_resources(&ctx.ws.id).await?;
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
    check(&r)?;
    state
        .store
        .put_resource(&ctx.ws.id, &r, state.clock.now())
        .await?;
    ctx.audit(
        &state,
        "resource.registered",
        Some(&r.id),
        json!({"kind": r.kind, "labels": r.labels}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(json!(r))))
}

pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let r = state
        .store
        .get_resource(&ctx.ws.id, &id)
        .await?
        .ok_or(DomainError::NotFound)?;
    Ok(Json(json!(r)))
}

pub async fn remove(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ctx.require_owner()?;
    state.store.delete_resource(&ctx.ws.id, &id).await?;
    ctx.audit(&state, "resource.deleted", Some(&id), json!({}))
        .await;
    Ok(StatusCode::NO_CONTENT)
}
