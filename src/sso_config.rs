//! The kind-specific settings of an SSO connection, as stored in its
//! `config` JSON, and the SP endpoints each connection has.

use crate::connectors::saml::{IdpMetadata, SpSettings};
use crate::crypto;
use crate::domain::DomainError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SamlConfig {
    pub idp_entity_id: String,
    pub idp_sso_url: String,
    /// Pinned signing certificates (base64 DER).
    pub idp_certs: Vec<String>,
    #[serde(default)]
    pub idp_metadata_url: Option<String>,
    #[serde(default)]
    pub email_attribute: Option<String>,
    #[serde(default)]
    pub name_attribute: Option<String>,
    #[serde(default)]
    pub group_attribute: Option<String>,
    /// IdP group value → user group id.
    #[serde(default)]
    pub group_mappings: BTreeMap<String, String>,
}

impl SamlConfig {
    pub fn idp(&self) -> IdpMetadata {
        IdpMetadata {
            entity_id: self.idp_entity_id.clone(),
            sso_url: self.idp_sso_url.clone(),
            signing_certs_der: self
                .idp_certs
                .iter()
                .filter_map(|c| crypto::b64_decode(c))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OidcSsoConfig {
    pub issuer: String,
    pub client_id: String,
    /// Sealed with the deployment secret.
    pub client_secret_sealed: String,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub group_mappings: BTreeMap<String, String>,
}

pub const SECRET_PURPOSE: &str = "sso-client-secret";

impl OidcSsoConfig {
    pub fn client_secret(&self, secret: &[u8]) -> Result<String, DomainError> {
        String::from_utf8(crypto::open(
            secret,
            SECRET_PURPOSE,
            &self.client_secret_sealed,
        )?)
        .map_err(|e| DomainError::Internal(e.to_string()))
    }
}

/// Each SAML connection is its own SP.
pub fn sp_settings(public_url: &str, connection_id: &str) -> SpSettings {
    SpSettings {
        entity_id: format!("{public_url}/sso/saml/{connection_id}/metadata"),
        acs_url: format!("{public_url}/sso/saml/{connection_id}/acs"),
    }
}

pub fn oidc_redirect_uri(public_url: &str, connection_id: &str) -> String {
    format!("{public_url}/sso/oidc/{connection_id}/callback")
}

pub fn saml(config: &serde_json::Value) -> Result<SamlConfig, DomainError> {
    serde_json::from_value(config.clone())
        .map_err(|e| DomainError::Internal(format!("SAML connection settings unreadable: {e}")))
}

pub fn oidc(config: &serde_json::Value) -> Result<OidcSsoConfig, DomainError> {
    serde_json::from_value(config.clone())
        .map_err(|e| DomainError::Internal(format!("OIDC connection settings unreadable: {e}")))
}
