//! SSO connections and domains under `/api/v1/workspaces/{slug}`.

use super::{parse_body, time, Ctx};
pub use crate::service::domains::NewDomain;
pub use crate::service::sso_admin::ConnectionBody;
use crate::service::{domains, sso_admin};
use crate::sso_config;
use crate::store::{Domain, SsoConnection};
use crate::web::errors::ApiError;
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

/// A connection as the API shows it (never the client secret).
pub fn connection_json(state: &AppState, c: &SsoConnection) -> Value {
    let mut v = json!({
        "id": c.id, "type": c.kind, "name": c.name, "enabled": c.enabled,
        "allow_idp_initiated": c.allow_idp_initiated,
        "start_url": format!("{}/sso/{}/start", state.cfg.public_url, c.id),
        "created_at": time(c.created_at), "updated_at": time(c.updated_at),
    });
    if c.kind == "saml" {
        if let Ok(cfg) = sso_config::saml(&c.config) {
            let sp = sso_config::sp_settings(&state.cfg.public_url, &c.id);
            v["sp_entity_id"] = json!(sp.entity_id);
            v["acs_url"] = json!(sp.acs_url);
            v["metadata_url"] = json!(sp.entity_id);
            v["idp_entity_id"] = json!(cfg.idp_entity_id);
            v["idp_sso_url"] = json!(cfg.idp_sso_url);
            v["idp_metadata_url"] = json!(cfg.idp_metadata_url);
            v["email_attribute"] = json!(cfg.email_attribute);
            v["name_attribute"] = json!(cfg.name_attribute);
            v["group_attribute"] = json!(cfg.group_attribute);
            v["group_mappings"] = json!(cfg.group_mappings);
            let certs: Vec<Value> = sso_admin::pinned_certificates(&cfg)
                .into_iter()
                .map(|c| json!({"subject": c.subject, "not_after": time(c.not_after)}))
                .collect();
            v["idp_certificates"] = json!(certs);
        }
    } else if let Ok(cfg) = sso_config::oidc(&c.config) {
        v["issuer"] = json!(cfg.issuer);
        v["client_id"] = json!(cfg.client_id);
        v["scopes"] = json!(cfg.scopes);
        v["redirect_uri"] = json!(sso_config::oidc_redirect_uri(&state.cfg.public_url, &c.id));
        v["group_mappings"] = json!(cfg.group_mappings);
    }
    v
}

pub async fn list(State(state): State<AppState>, ctx: Ctx) -> Result<Json<Value>, ApiError> {
    let items = sso_admin::list_connections(&state, &ctx).await?;
    Ok(Json(super::list(
        items.iter().map(|c| connection_json(&state, c)).collect(),
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
    let b: ConnectionBody = parse_body(&body)?;
    let c = sso_admin::create_connection(&state, &ctx, b).await?;
    Ok((StatusCode::CREATED, Json(connection_json(&state, &c))))
}

pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let c = sso_admin::get_connection(&state, &ctx, &id).await?;
    Ok(Json(connection_json(&state, &c)))
}

pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    // Owner rights, then the connection (404), then the body (400).
    ctx.require_owner()?;
    sso_admin::get_connection(&state, &ctx, &id).await?;
    let b: ConnectionBody = parse_body(&body)?;
    let c = sso_admin::update_connection(&state, &ctx, &id, b).await?;
    Ok(Json(connection_json(&state, &c)))
}

pub async fn remove(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    sso_admin::delete_connection(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn domain_json(d: &Domain) -> Value {
    json!({"domain": d.domain, "verified": d.verified_at.is_some(), "verified_at": d.verified_at.map(time), "verification_record": domains::verification_record(d), "created_at": time(d.created_at)})
}

pub async fn list_domains(
    State(state): State<AppState>,
    ctx: Ctx,
) -> Result<Json<Value>, ApiError> {
    let items = domains::list_domains(&state, &ctx).await?;
    Ok(Json(super::list(
        items.iter().map(domain_json).collect(),
        None,
    )))
}

pub async fn create_domain(
    State(state): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    // Before the body is read: a non-owner learns nothing from its checks.
    ctx.require_owner()?;
    let b: NewDomain = parse_body(&body)?;
    let d = domains::add_domain(&state, &ctx, &b.domain).await?;
    Ok((StatusCode::CREATED, Json(domain_json(&d))))
}

/// Looks up the TXT records of the domain and marks it verified when one
/// is `iamgw-verification=<token>`; 409 with the reason otherwise.
pub async fn verify_domain(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, domain)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let d = domains::verify_domain(&state, &ctx, &domain).await?;
    Ok(Json(domain_json(&d)))
}

pub async fn delete_domain(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, domain)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    domains::remove_domain(&state, &ctx, &domain).await?;
    Ok(StatusCode::NO_CONTENT)
}
