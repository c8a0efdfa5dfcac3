//! SSO administration: a workspace's SAML and OpenID Connect connections
//! (create, update, delete) and the checks of their configuration. The REST
//! API and the SSO settings page both come here, so they keep one set of
//! rules and audit events.

use super::{Core, Ctx};
use crate::connectors::saml::{
    certificate_facts, parse_idp_metadata, parse_signing_certificate, CertificateFacts, SamlError,
};
use crate::crypto;
use crate::domain::DomainError;
use crate::sso_config::{self, OidcSsoConfig, SamlConfig};
use crate::store::SsoConnection;
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeMap;

/// What creating or updating a connection may set (SPEC section 7); on an
/// update, what is absent stays as it was.
#[derive(Deserialize, Default, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct ConnectionBody {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub name: Option<String>,
    pub enabled: Option<bool>,
    pub allow_idp_initiated: Option<bool>,
    pub idp_metadata_xml: Option<String>,
    pub idp_metadata_url: Option<String>,
    /// SAML: the IdP's signing certificate (PEM or base64 DER), replacing
    /// the pinned ones (applied after any metadata in the same body).
    pub idp_certificate: Option<String>,
    pub email_attribute: Option<String>,
    pub name_attribute: Option<String>,
    pub group_attribute: Option<String>,
    pub group_mappings: Option<BTreeMap<String, String>>,
    /// One mapping added, re-pointed or removed (the pages): applied to the
    /// mappings as stored when the change is written, so that two owners
    /// editing mappings at once both keep their edit.
    #[serde(skip)]
    pub mapping_edit: Option<MappingEdit>,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scopes: Option<Vec<String>>,
}

fn invalid(m: impl Into<String>) -> DomainError {
    DomainError::Invalid(m.into())
}

fn unprocessable(m: String) -> DomainError {
    DomainError::Unprocessable(m)
}

fn http_url(name: &str, u: &str) -> Result<(), DomainError> {
    match url::Url::parse(u) {
        Ok(p) if matches!(p.scheme(), "http" | "https") && p.host_str().is_some() => Ok(()),
        _ => Err(invalid(format!("{name}: not an http(s) URL"))),
    }
}

/// Fetches IdP metadata from a URL (no redirects, 10 s, 1 MiB).
async fn fetch_metadata(url: &str) -> Result<String, DomainError> {
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

/// The mappings, once every group they point at is known to be a group of
/// this workspace.
async fn checked_mappings(
    core: &Core,
    ws_id: &str,
    m: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, DomainError> {
    let unknown = super::groups::first_unknown(core, ws_id, m.values().map(String::as_str)).await?;
    for (value, gid) in m {
        if value.trim().is_empty() || value.len() > 200 || value.chars().any(char::is_control) {
            return Err(invalid(
                "group_mappings: an IdP value is 1 to 200 characters, no control characters",
            ));
        }
        if unknown == Some(gid.as_str()) {
            return Err(invalid(format!(
                "group_mappings: no group `{gid}` in this workspace"
            )));
        }
    }
    Ok(m.clone())
}

/// The IdP part of a SAML configuration from metadata (pasted, or fetched
/// from its URL), over `base` (what the connection had); `base` unchanged
/// when the body gives no metadata.
async fn saml_idp(b: &ConnectionBody, base: Option<SamlConfig>) -> Result<SamlConfig, DomainError> {
    let xml = match (&b.idp_metadata_xml, &b.idp_metadata_url) {
        (Some(x), _) => x.clone(),
        (None, Some(u)) => fetch_metadata(u).await?,
        (None, None) => {
            return base.ok_or_else(|| {
                invalid("a SAML connection needs idp_metadata_xml or idp_metadata_url")
            })
        }
    };
    let idp = parse_idp_metadata(&xml).map_err(|e| {
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
    Ok(SamlConfig {
        idp_entity_id: idp.entity_id,
        idp_sso_url: idp.sso_url,
        idp_certs: idp
            .signing_certs_der
            .iter()
            .map(|c| crypto::b64(c))
            .collect(),
        idp_metadata_url: b.idp_metadata_url.clone().or(old.idp_metadata_url),
        ..old
    })
}

/// A checked SAML configuration from the body over `base`.
async fn saml_config(
    core: &Core,
    ws_id: &str,
    b: &ConnectionBody,
    base: Option<SamlConfig>,
) -> Result<SamlConfig, DomainError> {
    let mut cfg = saml_idp(b, base).await?;
    if let Some(text) = &b.idp_certificate {
        let der = parse_signing_certificate(text).map_err(|e| match e {
            SamlError::Metadata(why) => invalid(format!("idp_certificate: {why}")),
            other => invalid(format!("idp_certificate: {}", other.reason())),
        })?;
        cfg.idp_certs = vec![crypto::b64(&der)];
    }
    let attribute = |name: &str, v: &Option<String>| -> Result<(), DomainError> {
        match v {
            Some(v) if v.len() > 200 || v.chars().any(char::is_control) => Err(invalid(format!(
                "{name}: at most 200 characters, no control characters"
            ))),
            _ => Ok(()),
        }
    };
    attribute("email_attribute", &b.email_attribute)?;
    attribute("name_attribute", &b.name_attribute)?;
    attribute("group_attribute", &b.group_attribute)?;
    let set = |slot: &mut Option<String>, v: &Option<String>| {
        if let Some(v) = v {
            *slot = Some(v.clone()).filter(|s| !s.is_empty());
        }
    };
    set(&mut cfg.email_attribute, &b.email_attribute);
    set(&mut cfg.name_attribute, &b.name_attribute);
    set(&mut cfg.group_attribute, &b.group_attribute);
    if let Some(m) = &b.group_mappings {
        cfg.group_mappings = checked_mappings(core, ws_id, m).await?;
    }
    Ok(cfg)
}

/// The signing certificates a SAML configuration pins, with their expiry
/// (unreadable ones are left out).
pub fn pinned_certificates(cfg: &SamlConfig) -> Vec<CertificateFacts> {
    cfg.idp_certs
        .iter()
        .filter_map(|c| crypto::b64_decode(c))
        .filter_map(|der| certificate_facts(&der))
        .collect()
}

/// The client secret, sealed: the new one when given, else the one `base` had.
fn sealed_secret(
    core: &Core,
    b: &ConnectionBody,
    base: Option<&OidcSsoConfig>,
) -> Result<String, DomainError> {
    match (&b.client_secret, base) {
        (Some(s), _) if !s.is_empty() => Ok(crypto::seal(
            &core.secret,
            sso_config::SECRET_PURPOSE,
            s.as_bytes(),
        )?),
        (_, Some(base)) => Ok(base.client_secret_sealed.clone()),
        _ => Err(invalid("client_secret is required")),
    }
}

/// A checked OpenID Connect configuration from the body over `base`.
async fn oidc_config(
    core: &Core,
    ws_id: &str,
    b: &ConnectionBody,
    base: Option<OidcSsoConfig>,
) -> Result<OidcSsoConfig, DomainError> {
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
    if b.idp_certificate.is_some() {
        return Err(invalid(
            "idp_certificate: only SAML connections pin a certificate",
        ));
    }
    let client_secret_sealed = sealed_secret(core, b, base.as_ref())?;
    let scopes = b
        .scopes
        .clone()
        .or_else(|| base.as_ref().map(|c| c.scopes.clone()))
        .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]);
    if !scopes.iter().any(|s| s == "openid") {
        return Err(invalid("scopes must include openid"));
    }
    let group_mappings = match &b.group_mappings {
        Some(m) => checked_mappings(core, ws_id, m).await?,
        None => base.map(|c| c.group_mappings).unwrap_or_default(),
    };
    Ok(OidcSsoConfig {
        issuer: issuer.trim_end_matches('/').to_string(),
        client_id,
        client_secret_sealed,
        scopes,
        group_mappings,
    })
}

fn to_json<T: serde::Serialize>(v: T) -> Result<serde_json::Value, DomainError> {
    serde_json::to_value(v).map_err(|e| DomainError::Internal(e.to_string()))
}

/// The workspace's connections.
pub async fn list_connections(core: &Core, ctx: &Ctx) -> Result<Vec<SsoConnection>, DomainError> {
    Ok(core.store.list_connections(&ctx.ws.id).await?)
}

/// A connection of this workspace; `NotFound` for another workspace's.
pub async fn get_connection(
    core: &Core,
    ctx: &Ctx,
    id: &str,
) -> Result<SsoConnection, DomainError> {
    core.store
        .get_connection(id)
        .await?
        .filter(|c| c.workspace_id == ctx.ws.id)
        .ok_or(DomainError::NotFound)
}

/// Checks and creates a connection (owners; audited).
pub async fn create_connection(
    core: &Core,
    ctx: &Ctx,
    b: ConnectionBody,
) -> Result<SsoConnection, DomainError> {
    ctx.require_owner()?;
    let name = b
        .name
        .clone()
        .filter(|n| !n.trim().is_empty() && n.len() <= 100 && !n.chars().any(char::is_control))
        .ok_or_else(|| invalid("name: 1 to 100 characters, no control characters"))?;
    let config = match b.kind.as_deref() {
        Some("saml") => to_json(saml_config(core, &ctx.ws.id, &b, None).await?)?,
        Some("oidc") => to_json(oidc_config(core, &ctx.ws.id, &b, None).await?)?,
        _ => return Err(invalid("type must be saml or oidc")),
    };
    let now = core.clock.now();
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
    let details = json!({"type": c.kind, "name": c.name, "enabled": c.enabled});
    let action = "sso.connection_created";
    ctx.audited(
        core,
        action,
        Some(&c.id),
        details,
        core.store.create_connection(&c),
    )
    .await?;
    Ok(c)
}

/// What an update changed, by field name (the audit event names the
/// fields, never the values of secrets or certificates).
fn changed_fields(before: &SsoConnection, after: &SsoConnection) -> Vec<String> {
    let mut out = Vec::new();
    if before.name != after.name {
        out.push("name".to_string());
    }
    if before.enabled != after.enabled {
        out.push("enabled".to_string());
    }
    if before.allow_idp_initiated != after.allow_idp_initiated {
        out.push("allow_idp_initiated".to_string());
    }
    let empty = serde_json::Map::new();
    let old = before.config.as_object().unwrap_or(&empty);
    let new = after.config.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        if old.get(k) != new.get(k) {
            out.push(match k.as_str() {
                "idp_certs" => "idp_certificates".to_string(),
                "client_secret_sealed" => "client_secret".to_string(),
                other => other.to_string(),
            });
        }
    }
    out
}

/// Changes a connection of this workspace (owners; audited); its type
/// cannot change.
/// An edit of one group mapping.
#[derive(Debug, Clone)]
pub enum MappingEdit {
    /// IdP value → user group id.
    Put(String, String),
    /// Removes the mapping of this IdP value (NotFound when there is none).
    Remove(String),
}

/// The connection's stored group mappings.
pub fn mappings_of(c: &SsoConnection) -> BTreeMap<String, String> {
    c.config
        .get("group_mappings")
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default()
}

/// Writes through a change made meanwhile are retried this many times.
const UPDATE_ATTEMPTS: usize = 16;

/// Applies `b` to the connection (owners; audited). The write is a
/// compare-and-swap on the version read: a concurrent change is never
/// overwritten; `b` is applied again to the newer version.
pub async fn update_connection(
    core: &Core,
    ctx: &Ctx,
    id: &str,
    b: ConnectionBody,
) -> Result<SsoConnection, DomainError> {
    ctx.require_owner()?;
    for _ in 0..UPDATE_ATTEMPTS {
        if let Some(c) = update_once(core, ctx, id, b.clone()).await? {
            return Ok(c);
        }
    }
    Err(DomainError::Conflict(
        "the connection is being changed by someone else; try again".into(),
    ))
}

/// One attempt of [`update_connection`]: None when another change came
/// between the read and the write.
async fn update_once(
    core: &Core,
    ctx: &Ctx,
    id: &str,
    mut b: ConnectionBody,
) -> Result<Option<SsoConnection>, DomainError> {
    let mut c = get_connection(core, ctx, id).await?;
    let before = c.clone();
    if let Some(edit) = b.mapping_edit.take() {
        let mut maps = mappings_of(&c);
        match edit {
            MappingEdit::Put(value, group) => {
                maps.insert(value, group);
            }
            MappingEdit::Remove(value) => {
                if maps.remove(&value).is_none() {
                    return Err(DomainError::NotFound);
                }
            }
        }
        b.group_mappings = Some(maps);
    }
    if b.kind.as_deref().is_some_and(|k| k != c.kind) {
        return Err(invalid("the type of a connection cannot change"));
    }
    if let Some(n) = &b.name {
        if n.trim().is_empty() || n.len() > 100 || n.chars().any(char::is_control) {
            return Err(invalid("name: 1 to 100 characters, no control characters"));
        }
        c.name = n.trim().to_string();
    }
    c.config = if c.kind == "saml" {
        let base = sso_config::saml(&c.config)?;
        to_json(saml_config(core, &ctx.ws.id, &b, Some(base)).await?)?
    } else {
        let base = sso_config::oidc(&c.config)?;
        to_json(oidc_config(core, &ctx.ws.id, &b, Some(base)).await?)?
    };
    c.enabled = b.enabled.unwrap_or(c.enabled);
    c.allow_idp_initiated = b.allow_idp_initiated.unwrap_or(c.allow_idp_initiated);
    c.updated_at = core.clock.now().max(c.updated_at + 1);
    let details = json!({
        "name": c.name, "enabled": c.enabled, "allow_idp_initiated": c.allow_idp_initiated,
        "changed": changed_fields(&before, &c),
    });
    // A stale write is an error inside the change, so that no audit event
    // is written for it.
    const STALE: &str = "stale connection";
    let write = async {
        match core.store.update_connection(&c, before.updated_at).await? {
            true => Ok(()),
            false => Err(crate::store::StoreError::Conflict(STALE.into())),
        }
    };
    let action = "sso.connection_updated";
    match ctx.audited(core, action, Some(&c.id), details, write).await {
        Ok(()) => Ok(Some(c)),
        Err(DomainError::Conflict(m)) if m == STALE => Ok(None),
        Err(e) => Err(e),
    }
}

/// Deletes a connection of this workspace (owners; audited).
pub async fn delete_connection(core: &Core, ctx: &Ctx, id: &str) -> Result<(), DomainError> {
    ctx.require_owner()?;
    let action = "sso.connection_deleted";
    ctx.audited(
        core,
        action,
        Some(id),
        json!({}),
        core.store.delete_connection(&ctx.ws.id, id),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host_and_the_error_names_the_field() {
        assert!(http_url("issuer", "https://idp.example.com").is_ok());
        assert!(http_url("issuer", "http://idp.example.com/x").is_ok());
        for bad in ["ftp://idp.example.com", "https://", "idp.example.com", ""] {
            let e = http_url("issuer", bad).unwrap_err();
            assert!(e.to_string().starts_with("issuer:"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_body_refuses_unknown_fields() {
        let r: Result<ConnectionBody, _> =
            serde_json::from_value(serde_json::json!({"type": "saml", "nope": 1}));
        assert!(r.is_err());
    }
}
