//! Workspace settings and the owner's reset of a member's 2FA.

use super::{parse_body, Ctx};
use crate::service::settings;
use crate::web::errors::ApiError;
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::Value;

pub use crate::service::settings::{settings_json, SettingsPatch, MAX_DURATION_DAYS};

pub async fn get_settings(
    State(_state): State<AppState>,
    ctx: Ctx,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(settings_json(&ctx.ws.settings)))
}

/// Applies a settings change after validating all of it: nothing is written
/// when any part is refused.
pub async fn patch_settings(
    State(state): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    ctx.require_owner()?;
    let patch: SettingsPatch = parse_body(&body)?;
    let next = settings::update(&state, &ctx, patch).await?;
    Ok(Json(settings_json(&next)))
}

/// An owner resets a member's two-factor authentication (audited).
pub async fn reset_member_mfa(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ctx.require_owner()?;
    crate::service::members::reset_mfa(&state, &ctx, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}
