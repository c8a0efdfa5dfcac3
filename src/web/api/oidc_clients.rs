//! The workspace's OpenID Connect clients (SPEC section 13).

use super::{parse_body, time, Ctx};
use crate::service::oidc_clients::{self, NewClient};
use crate::store::oidc::OidcClient;
use crate::web::errors::ApiError;
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

/// A client as the API shows it (never its secret).
pub fn client_json(c: &OidcClient) -> Value {
    json!({
        "client_id": c.id,
        "name": c.name,
        "public": c.secret_hash.is_none(),
        "redirect_uris": c.redirect_uris,
        "post_logout_redirect_uris": c.post_logout_redirect_uris,
        "backchannel_logout_uri": c.backchannel_logout_uri,
        "required_role": c.required_role,
        "created_by": c.created_by,
        "created_at": time(c.created_at),
    })
}

pub async fn list(State(state): State<AppState>, ctx: Ctx) -> Result<Json<Value>, ApiError> {
    let items = oidc_clients::list(&state, &ctx).await?;
    Ok(Json(super::list(
        items.iter().map(client_json).collect(),
        None,
    )))
}

pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    ctx.require_owner()?;
    let req: NewClient = parse_body(&body)?;
    let (client, secret) = oidc_clients::create(&state, &ctx, req).await?;
    let mut body = client_json(&client);
    if let Some(s) = secret {
        body["client_secret"] = json!(s);
    }
    Ok((StatusCode::CREATED, Json(body)))
}

pub async fn remove(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    oidc_clients::delete(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
