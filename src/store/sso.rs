//! Storage for workspace SSO: connections and domains.

use super::StoreResult;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// A stored SSO connection; `config` is the kind-specific JSON document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SsoConnection {
    pub id: String,
    pub workspace_id: String,
    /// `saml` or `oidc`.
    pub kind: String,
    pub name: String,
    pub enabled: bool,
    pub allow_idp_initiated: bool,
    pub config: serde_json::Value,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Domain {
    pub domain: String,
    pub workspace_id: String,
    pub token: String,
    pub verified_at: Option<i64>,
    pub created_at: i64,
}

#[async_trait]
pub trait SsoStore: Send + Sync + 'static {
    async fn create_connection(&self, c: &SsoConnection) -> StoreResult<()>;
    /// Writes `c` if the stored connection is still the version read
    /// (`read_updated_at`); false when another change came first. NotFound
    /// when it is gone.
    async fn update_connection(&self, c: &SsoConnection, read_updated_at: i64)
        -> StoreResult<bool>;
    async fn get_connection(&self, id: &str) -> StoreResult<Option<SsoConnection>>;
    /// A connection with its workspace, in one statement (every SSO
    /// sign-in's first look-up).
    async fn connection_with_workspace(
        &self,
        id: &str,
    ) -> StoreResult<Option<(SsoConnection, crate::domain::model::Workspace)>>;
    async fn list_connections(&self, workspace_id: &str) -> StoreResult<Vec<SsoConnection>>;
    async fn delete_connection(&self, workspace_id: &str, id: &str) -> StoreResult<()>;

    /// Claims a domain for a workspace (Conflict when any workspace has it).
    async fn create_domain(&self, d: &Domain) -> StoreResult<()>;
    async fn get_domain(&self, domain: &str) -> StoreResult<Option<Domain>>;
    async fn list_domains(&self, workspace_id: &str) -> StoreResult<Vec<Domain>>;
    async fn mark_domain_verified(&self, domain: &str, now: i64) -> StoreResult<()>;
    async fn delete_domain(&self, workspace_id: &str, domain: &str) -> StoreResult<()>;
}
