//! SSO connections and domains under `/api/v1/workspaces/{slug}`.

use super::{parse_body, time, Ctx};
use crate::connectors::saml::parse_idp_metadata;
use crate::crypto;
use crate::domain::DomainError;
use crate::sso_config::{self, OidcSsoConfig, SamlConfig};
use crate::store::{Domain, SsoConnection};
use crate::web::errors::ApiError;
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ConnectionBody {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub allow_idp_initiated: Option<bool>,
    pub idp_metadata_xml: Option<String>,
    pub idp_metadata_url: Option<String>,
    pub email_attribute: Option<String>,
    pub name_attribute: Option<String>,
    pub group_attribute: Option<String>,
    pub group_mappings: Option<BTreeMap<String, String>>,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scopes: Option<Vec<String>>,
}

fn invalid(m: impl Into<String>) -> ApiError {
    ApiError(DomainError::Invalid(m.into()))
}

fn unprocessable(m: String) -> ApiError {
    ApiError(DomainError::Unprocessable(m))
}

fn http_url(name: &str, u: &str) -> Result<(), ApiError> {
    match url::Url::parse(u) {
        Ok(p) if matches!(p.scheme(), "http" | "https") && p.host_str().is_some() => Ok(()),
        _ => Err(invalid(format!("{name}: not an http(s) URL"))),
    }
}

/// Fetches IdP metadata from a URL (no redirects, 10 s, 1 MiB).
async fn fetch_metadata(url: &str) -> Result<String, ApiError> {
    http_url("idp_metadata_url", url)?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    let resp = client
        .get(url)
        .send()
        .await
        .map_err(|e| unprocessable(format!("idp_metadata_url could not be fetched: {e}")))?;
    if !resp.status().is_success() {
        return Err(unprocessable(format!(
            "idp_metadata_url answered {}",
            resp.status()
        )));
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| unprocessable(format!("idp_metadata_url could not be read: {e}")))?;
    if bytes.len() > crate::connectors::saml::MAX_METADATA_LEN {
        return Err(unprocessable("the IdP metadata is too large".into()));
    }
    String::from_utf8(bytes.to_vec())
        .map_err(|_| unprocessable("the IdP metadata is not UTF-8".into()))
}

async fn check_mappings(
    state: &AppState,
    ws_id: &str,
    m: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    for gid in m.values() {
        state.store.get_group(ws_id, gid).await?.ok_or_else(|| {
            invalid(format!(
                "group_mappings: no group `{gid}` in this workspace"
            ))
        })?;
    }
    Ok(())
}

async fn saml_config(
    state: &AppState,
    ws_id: &str,
    b: &ConnectionBody,
    base: Option<SamlConfig>,
) -> Result<SamlConfig, ApiError> {
    let xml = match (&b.idp_metadata_xml, &b.idp_metadata_url) {
        (Some(x), _) => Some(x.clone()),
        (None, Some(u)) => Some(fetch_metadata(u).await?),
        (None, None) => None,
    };
    let mut cfg = match (xml, base) {
        (Some(x), base) => {
            let idp = parse_idp_metadata(&x).map_err(|e| {
                if e.status() == 422 {
                    unprocessable(e.reason())
                } else {
                    invalid(e.reason())
                }
            })?;
            let old = base.unwrap_or(SamlConfig {
                idp_entity_id: String::new(),
                idp_sso_url: String::new(),
                idp_certs: vec![],
                idp_metadata_url: None,
                email_attribute: None,
                name_attribute: None,
                group_attribute: None,
                group_mappings: BTreeMap::new(),
            });
            SamlConfig {
                idp_entity_id: idp.entity_id,
                idp_sso_url: idp.sso_url,
                idp_certs: idp
                    .signing_certs_der
                    .iter()
                    .map(|c| crypto::b64(c))
                    .collect(),
                idp_metadata_url: b.idp_metadata_url.clone().or(old.idp_metadata_url),
                ..old
            }
        }
        (None, Some(base)) => base,
        (None, None) => {
            return Err(invalid(
                "a SAML connection needs idp_metadata_xml or idp_metadata_url",
            ))
        }
    };
    if let Some(v) = &b.email_attribute {
        cfg.email_attribute = Some(v.clone()).filter(|s| !s.is_empty());
    }
    if let Some(v) = &b.name_attribute {
        cfg.name_attribute = Some(v.clone()).filter(|s| !s.is_empty());
    }
    if let Some(v) = &b.group_attribute {
        cfg.group_attribute = Some(v.clone()).filter(|s| !s.is_empty());
    }
    if let Some(m) = &b.group_mappings {
        check_mappings(state, ws_id, m).await?;
        cfg.group_mappings = m.clone();
    }
    Ok(cfg)
}

async fn oidc_config(
    state: &AppState,
    ws_id: &str,
    b: &ConnectionBody,
    base: Option<OidcSsoConfig>,
) -> Result<OidcSsoConfig, ApiError> {
    let issuer = b
        .issuer
        .clone()
        .or_else(|| base.as_ref().map(|c| c.issuer.clone()))
        .ok_or_else(|| invalid("issuer is required"))?;
    http_url("issuer", &issuer)?;
    let client_id = b
        .client_id
        .clone()
        .or_else(|| base.as_ref().map(|c| c.client_id.clone()))
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| invalid("client_id is required"))?;
    let sealed = match (&b.client_secret, &base) {
        (Some(s), _) if !s.is_empty() => {
            crypto::seal(&state.secret, sso_config::SECRET_PURPOSE, s.as_bytes())?
        }
        (_, Some(base)) => base.client_secret_sealed.clone(),
        _ => return Err(invalid("client_secret is required")),
    };
    let scopes = b
        .scopes
        .clone()
        .or_else(|| base.as_ref().map(|c| c.scopes.clone()))
        .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        return Err(invalid("scopes must include openid"));
    }
    let group_mappings = match &b.group_mappings {
        Some(m) => {
            check_mappings(state, ws_id, m).await?;
            m.clone()
        }
        None => base.map(|c| c.group_mappings).unwrap_or_default(),
    };
    Ok(OidcSsoConfig {
        issuer: issuer.trim_end_matches('/').to_string(),
        client_id,
        client_secret_sealed: sealed,
        scopes,
        group_mappings,
    })
}

pub async fn list(State(state): State<AppState>, ctx: Ctx) -> Result<Json<Value>, ApiError> {
    let items = state.store.list_connections(&ctx.ws.id).await?;
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
    ctx.require_owner()?;
    let b: ConnectionBody = parse_body(&body)?;
    let c = create_connection(&state, &ctx, b).await?;
    Ok((StatusCode::CREATED, Json(connection_json(&state, &c))))
}

/// Checks and creates a connection (audited); the API and the SSO page.
pub async fn create_connection(
    state: &AppState,
    ctx: &Ctx,
    b: ConnectionBody,
) -> Result<SsoConnection, ApiError> {
    let name = b
        .name
        .clone()
        .filter(|n| !n.trim().is_empty() && n.len() <= 100 && !n.chars().any(char::is_control))
        .ok_or_else(|| invalid("name: 1 to 100 characters, no control characters"))?;
    let config = match b.kind.as_deref() {
        Some("saml") => serde_json::to_value(saml_config(state, &ctx.ws.id, &b, None).await?),
        Some("oidc") => serde_json::to_value(oidc_config(state, &ctx.ws.id, &b, None).await?),
        _ => return Err(invalid("type must be saml or oidc")),
    }
    .map_err(|e| DomainError::Internal(e.to_string()))?;
    let now = state.clock.now();
    let c = SsoConnection {
        id: uuid::Uuid::new_v4().simple().to_string(),
        workspace_id: ctx.ws.id.clone(),
        kind: b.kind.clone().unwrap_or_default(),
        name: name.trim().to_string(),
        enabled: b.enabled.unwrap_or(true),
        allow_idp_initiated: b.allow_idp_initiated.unwrap_or(false),
        config,
        created_at: now,
        updated_at: now,
    };
    state.store.create_connection(&c).await?;
    ctx.audit(
        state,
        "sso.connection_created",
        Some(&c.id),
        json!({"type": c.kind, "name": c.name, "enabled": c.enabled}),
    )
    .await;
    Ok(c)
}

async fn owned(state: &AppState, ws_id: &str, id: &str) -> Result<SsoConnection, ApiError> {
    Ok(state
        .store
        .get_connection(id)
        .await?
        .filter(|c| c.workspace_id == ws_id)
        .ok_or(DomainError::NotFound)?)
}

pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(connection_json(
        &state,
        &owned(&state, &ctx.ws.id, &id).await?,
    )))
}

pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    ctx.require_owner()?;
    let mut c = owned(&state, &ctx.ws.id, &id).await?;
    let b: ConnectionBody = parse_body(&body)?;
    if b.kind.as_deref().is_some_and(|k| k != c.kind) {
        return Err(invalid("the type of a connection cannot change"));
    }
    if let Some(n) = &b.name {
        if n.trim().is_empty() || n.len() > 100 {
            return Err(invalid("name: 1 to 100 characters"));
        }
        c.name = n.trim().to_string();
    }
    c.config = if c.kind == "saml" {
        serde_json::to_value(
            saml_config(&state, &ctx.ws.id, &b, Some(sso_config::saml(&c.config)?)).await?,
        )
    } else {
        serde_json::to_value(
            oidc_config(&state, &ctx.ws.id, &b, Some(sso_config::oidc(&c.config)?)).await?,
        )
    }
    .map_err(|e| DomainError::Internal(e.to_string()))?;
    if let Some(e) = b.enabled {
        c.enabled = e;
    }
    if let Some(a) = b.allow_idp_initiated {
        c.allow_idp_initiated = a;
    }
    c.updated_at = state.clock.now().max(c.updated_at + 1);
    state.store.update_connection(&c).await?;
    ctx.audit(
        &state,
        "sso.connection_updated",
        Some(&c.id),
        json!({"name": c.name, "enabled": c.enabled, "allow_idp_initiated": c.allow_idp_initiated}),
    )
    .await;
    Ok(Json(connection_json(&state, &c)))
}

pub async fn remove(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ctx.require_owner()?;
    delete_connection(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a connection of this workspace (audited).
pub async fn delete_connection(state: &AppState, ctx: &Ctx, id: &str) -> Result<(), ApiError> {
    state.store.delete_connection(&ctx.ws.id, id).await?;
    ctx.audit(state, "sso.connection_deleted", Some(id), json!({}))
        .await;
    Ok(())
}

pub fn domain_json(d: &Domain) -> Value {
    json!({"domain": d.domain, "verified": d.verified_at.is_some(), "verified_at": d.verified_at.map(time), "verification_record": format!("iamgw-verification={}", d.token), "created_at": time(d.created_at)})
}

/// A plausible DNS name: labels of letters, digits and hyphens, a dot.
pub fn valid_domain(d: &str) -> bool {
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewDomain {
    pub domain: String,
}

pub async fn list_domains(
    State(state): State<AppState>,
    ctx: Ctx,
) -> Result<Json<Value>, ApiError> {
    let items = state.store.list_domains(&ctx.ws.id).await?;
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
    ctx.require_owner()?;
    let b: NewDomain = parse_body(&body)?;
    let d = add_domain(&state, &ctx, &b.domain).await?;
    Ok((StatusCode::CREATED, Json(domain_json(&d))))
}

/// Claims a domain for this workspace (audited); it still has to be verified.
pub async fn add_domain(state: &AppState, ctx: &Ctx, domain: &str) -> Result<Domain, ApiError> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    if !valid_domain(&domain) {
        return Err(invalid("domain: not a domain name like corp.example"));
    }
    let d = Domain {
        domain,
        workspace_id: ctx.ws.id.clone(),
        token: crypto::random_token("")?,
        verified_at: None,
        created_at: state.clock.now(),
    };
    state.store.create_domain(&d).await?;
    ctx.audit(state, "domain.added", Some(&d.domain), json!({}))
        .await;
    Ok(d)
}

/// Looks up the TXT records of the domain and marks it verified when one
/// is `iamgw-verification=<token>`; 409 with the reason otherwise.
pub async fn verify_domain(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, domain)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    ctx.require_owner()?;
    let d = check_domain(&state, &ctx, &domain).await?;
    Ok(Json(domain_json(&d)))
}

/// Verifies a domain of this workspace by its TXT record (audited); the
/// domain as it is after the check.
pub async fn check_domain(state: &AppState, ctx: &Ctx, domain: &str) -> Result<Domain, ApiError> {
    let d = state
        .store
        .get_domain(&domain.trim().to_ascii_lowercase())
        .await?
        .filter(|d| d.workspace_id == ctx.ws.id)
        .ok_or(DomainError::NotFound)?;
    if d.verified_at.is_none() {
        let server = crate::dns::resolver(state.cfg.dns_resolver)
            .map_err(|e| DomainError::Unavailable(e.to_string()))?;
        let records = crate::dns::txt(server, &d.domain).await.map_err(|e| {
            DomainError::Conflict(format!(
                "the TXT records of {} could not be read: {e}",
                d.domain
            ))
        })?;
        let expected = format!("iamgw-verification={}", d.token);
        if !records
            .iter()
            .any(|r| crypto::ct_eq(r.trim().as_bytes(), expected.as_bytes()))
        {
            return Err(DomainError::Conflict(format!(
                "no TXT record `{expected}` found at {} yet (DNS changes can take a while)",
                d.domain
            ))
            .into());
        }
        state
            .store
            .mark_domain_verified(&d.domain, state.clock.now())
            .await?;
        ctx.audit(state, "domain.verified", Some(&d.domain), json!({}))
            .await;
    }
    let d = state
        .store
        .get_domain(&d.domain)
        .await?
        .ok_or(DomainError::NotFound)?;
    Ok(d)
}

pub async fn delete_domain(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, domain)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ctx.require_owner()?;
    remove_domain(&state, &ctx, &domain).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a domain of this workspace (audited).
pub async fn remove_domain(state: &AppState, ctx: &Ctx, domain: &str) -> Result<(), ApiError> {
    let domain = domain.trim().to_ascii_lowercase();
    state.store.delete_domain(&ctx.ws.id, &domain).await?;
    ctx.audit(state, "domain.removed", Some(&domain), json!({}))
        .await;
    Ok(())
}
