//! API tokens (bearer access to this API) and SCIM tokens.

use super::{opt_time, parse_body, time, Ctx};
use crate::domain::model::ApiToken;
use crate::domain::roles::Policy;
use crate::domain::DomainError;
use crate::tokens;
use crate::web::errors::ApiError;
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn token_json(t: &ApiToken) -> Value {
    json!({"id": t.id, "description": t.description, "policies": t.policies, "created_by": t.created_by, "created_at": time(t.created_at), "last_used_at": opt_time(t.last_used_at)})
}

/// A token needs at least Workspace Owner or Workspace Member.
pub fn check_token_policies(policies: &[Policy]) -> Result<(), ApiError> {
    Ok(crate::service::tokens::check_token_policies(policies)?)
}

/// Mints and stores a token; returns the record and the secret (shown once).
pub async fn mint(
    state: &AppState,
    workspace_id: &str,
    kind: &str,
    description: &str,
    policies: Vec<Policy>,
    created_by: Option<String>,
) -> Result<(ApiToken, String), DomainError> {
    let prefix = if kind == "scim" {
        tokens::SCIM_PREFIX
    } else {
        tokens::API_PREFIX
    };
    let secret = tokens::mint(prefix)?;
    let t = ApiToken {
        id: uuid::Uuid::new_v4().to_string(),
        workspace_id: workspace_id.to_string(),
        kind: kind.to_string(),
        description: description.trim().to_string(),
        policies,
        created_by,
        created_at: state.clock.now(),
        last_used_at: None,
    };
    state.store.create_token(&t, &tokens::hash(&secret)).await?;
    Ok((t, secret))
}

pub async fn list(State(state): State<AppState>, ctx: Ctx) -> Result<Json<Value>, ApiError> {
    ctx.require_owner()?;
    let items = state.store.list_tokens(&ctx.ws.id, "api").await?;
    Ok(Json(super::list(
        items.iter().map(token_json).collect(),
        None,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    #[serde(default)]
    pub description: String,
    pub policies: Vec<Policy>,
}

/// Checks and mints an API token with the caller as creator (audited);
/// returns the record and the secret, which is shown once.
pub async fn create_api_token(
    state: &AppState,
    ctx: &Ctx,
    req: NewToken,
) -> Result<(ApiToken, String), ApiError> {
    if req.description.chars().count() > 200 {
        return Err(DomainError::Invalid("description: at most 200 characters".into()).into());
    }
    check_token_policies(&req.policies)?;
    let creator = ctx.caller.actor().id;
    let (t, secret) = mint(
        state,
        &ctx.ws.id,
        "api",
        &req.description,
        req.policies,
        creator,
    )
    .await?;
    ctx.audit(
        state,
        "token.created",
        Some(&t.id),
        json!({"description": t.description, "policies": t.policies}),
    )
    .await;
    Ok((t, secret))
}

/// Revokes an API (`kind` "api") or SCIM ("scim") token of this workspace (audited).
pub async fn revoke_kind(
    state: &AppState,
    ctx: &Ctx,
    kind: &str,
    id: &str,
) -> Result<(), ApiError> {
    state
        .store
        .revoke_token(&ctx.ws.id, kind, id, state.clock.now())
        .await?;
    let action = if kind == "scim" {
        "scim_token.revoked"
    } else {
        "token.revoked"
    };
    ctx.audit(state, action, Some(id), json!({})).await;
    Ok(())
}

/// Mints a SCIM token (audited); the secret is shown once.
pub async fn create_scim_token(
    state: &AppState,
    ctx: &Ctx,
    description: &str,
) -> Result<(ApiToken, String), ApiError> {
    if description.chars().count() > 200 {
        return Err(DomainError::Invalid("description: at most 200 characters".into()).into());
    }
    let creator = ctx.caller.actor().id;
    let (t, secret) = mint(state, &ctx.ws.id, "scim", description, Vec::new(), creator).await?;
    ctx.audit(
        state,
        "scim_token.created",
        Some(&t.id),
        json!({"description": t.description}),
    )
    .await;
    Ok((t, secret))
}

pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    ctx.require_owner()?;
    let req: NewToken = parse_body(&body)?;
    let (t, secret) = create_api_token(&state, &ctx, req).await?;
    let mut body = token_json(&t);
    body["token"] = json!(secret);
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn revoke(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ctx.require_owner()?;
    revoke_kind(&state, &ctx, "api", &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list_scim(State(state): State<AppState>, ctx: Ctx) -> Result<Json<Value>, ApiError> {
    ctx.require_owner()?;
    let items = state.store.list_tokens(&ctx.ws.id, "scim").await?;
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
    let (t, secret) = create_scim_token(&state, &ctx, &req.description).await?;
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
    ctx.require_owner()?;
    revoke_kind(&state, &ctx, "scim", &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
