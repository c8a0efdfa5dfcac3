//! API tokens (bearer access to this API) and SCIM tokens.

use super::{opt_time, parse_body, time, Ctx};
use crate::domain::model::ApiToken;
use crate::service::tokens::{self, Kind};
use crate::web::errors::ApiError;
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

pub use crate::service::tokens::NewToken;

pub fn token_json(t: &ApiToken) -> Value {
    json!({"id": t.id, "description": t.description, "policies": t.policies, "created_by": t.created_by, "created_at": time(t.created_at), "last_used_at": opt_time(t.last_used_at)})
}

pub async fn list(State(state): State<AppState>, ctx: Ctx) -> Result<Json<Value>, ApiError> {
    let items = tokens::list(&state, &ctx, Kind::Api).await?;
    Ok(Json(super::list(
        items.iter().map(token_json).collect(),
        None,
    )))
}

pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    ctx.require_owner()?;
    let req: NewToken = parse_body(&body)?;
    let (t, secret) = tokens::create_api(&state, &ctx, req).await?;
    let mut body = token_json(&t);
    body["token"] = json!(secret);
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn revoke(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    tokens::revoke(&state, &ctx, Kind::Api, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_scim(State(state): State<AppState>, ctx: Ctx) -> Result<Json<Value>, ApiError> {
    let items = tokens::list(&state, &ctx, Kind::Scim).await?;
    Ok(Json(super::list(
        items.iter().map(token_json).collect(),
        None,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewScimToken {
    #[serde(default)]
    pub description: String,
}

pub async fn create_scim(
    State(state): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    ctx.require_owner()?;
    let req: NewScimToken = if body.is_empty() {
        NewScimToken {
            description: String::new(),
        }
    } else {
        parse_body(&body)?
    };
    let (t, secret) = tokens::create_scim(&state, &ctx, &req.description).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": t.id, "description": t.description, "created_at": time(t.created_at), "token": secret}),
        ),
    ))
}

pub async fn revoke_scim(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    tokens::revoke(&state, &ctx, Kind::Scim, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
