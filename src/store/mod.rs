//! Durable data behind one trait. Both backends ([`sqlite`], [`postgres`])
//! share the portable SQL in [`sql`]; they differ in how they connect.

pub mod access;
pub(crate) mod audit_batch;
pub mod group_commit;
pub(crate) mod member_copy;
pub mod oidc;
pub mod postgres;
pub mod scim;
pub(crate) mod search;
pub mod sql;
pub mod sql_access;
pub mod sql_keys;
pub mod sql_sso;
pub mod sqlite;
pub mod sso;
pub mod twilio_issuer;

use crate::domain::model::{AuditEvent, Membership, User, Workspace, WorkspaceSettings};
use crate::domain::roles::Policy;
use async_trait::async_trait;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint refused the write; the text names what.
    #[error("{0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    /// The request itself is malformed (e.g. a bad cursor).
    #[error("{0}")]
    Invalid(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone)]
pub struct OutboxMail {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub created_at: i64,
}

/// A workspace and the user's own policies in it.
#[derive(Debug, Clone)]
pub struct WorkspaceAccess {
    pub workspace: Workspace,
    pub policies: Vec<Policy>,
}

pub use access::{AccessStore, AuditFilter, MemberFilter, NewInvitation};
pub use oidc::OidcStore;
pub use scim::ScimStore;
pub use sso::{Domain, SsoConnection, SsoStore};
pub use twilio_issuer::TwilioIssuerStore;

#[async_trait]
pub trait Store: AccessStore + ScimStore + SsoStore + OidcStore + Send + Sync + 'static {
    /// Cheap round trip for readiness.
    async fn ping(&self) -> StoreResult<()>;

    async fn create_user(&self, new: &NewUser, now: i64) -> StoreResult<User>;
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>>;
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    async fn set_password_hash(&self, user_id: &str, hash: &str, now: i64) -> StoreResult<()>;
    async fn set_user_name(&self, user_id: &str, name: &str) -> StoreResult<()>;

    /// Stores a sealed TOTP secret awaiting confirmation (2FA still off).
    async fn set_pending_totp(&self, user_id: &str, sealed_secret: &str) -> StoreResult<()>;
    /// Turns 2FA on with the confirmed secret, records the step used to
    /// confirm it and replaces the recovery codes, in one transaction.
    async fn enable_totp(
        &self,
        user_id: &str,
        now: i64,
        step: i64,
        recovery_hashes: &[String],
    ) -> StoreResult<()>;
    /// Turns 2FA off and drops the secret and recovery codes.
    async fn disable_totp(&self, user_id: &str) -> StoreResult<()>;
    /// Records `step` as used if it is newer than the last one; false when
    /// the code was already used (replay), atomically across instances.
    async fn claim_totp_step(&self, user_id: &str, step: i64) -> StoreResult<bool>;
    async fn replace_recovery_codes(&self, user_id: &str, hashes: &[String]) -> StoreResult<()>;
    /// Marks an unused recovery code used; false when unknown or used.
    async fn use_recovery_code(&self, user_id: &str, hash: &str, now: i64) -> StoreResult<bool>;
    async fn unused_recovery_codes(&self, user_id: &str) -> StoreResult<i64>;

    /// The workspace an SSO connection belongs to (none until SSO exists).
    async fn sso_connection_workspace(&self, connection_id: &str) -> StoreResult<Option<String>>;
    async fn set_workspace_settings(
        &self,
        workspace_id: &str,
        settings: &WorkspaceSettings,
    ) -> StoreResult<()>;

    /// Compare-and-swap: writes `after` only if the stored settings are
    /// still `before` (as read); false when they changed meanwhile.
    async fn swap_workspace_settings(
        &self,
        workspace_id: &str,
        before: &WorkspaceSettings,
        after: &WorkspaceSettings,
    ) -> StoreResult<bool>;

    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()>;

    async fn enqueue_mail(&self, mail: &OutboxMail) -> StoreResult<()>;
    async fn mail_sent(&self, id: &str, now: i64) -> StoreResult<()>;
    async fn mail_failed(&self, id: &str, error: &str) -> StoreResult<()>;
    /// A sign-in's mark on the account: when, and by which method (the
    /// `X-Auth-Method` value).
    async fn record_login(&self, user_id: &str, now: i64, method: &str) -> StoreResult<()>;

    async fn create_workspace(&self, slug: &str, name: &str, now: i64) -> StoreResult<Workspace>;
    async fn workspace_by_slug(&self, slug: &str) -> StoreResult<Option<Workspace>>;

    /// Adds a member; `Conflict` when already one.
    async fn add_member(
        &self,
        workspace_id: &str,
        user_id: &str,
        policies: &[Policy],
        now: i64,
    ) -> StoreResult<()>;
    async fn membership(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<Membership>>;
    async fn set_member_policies(
        &self,
        workspace_id: &str,
        user_id: &str,
        policies: &[Policy],
    ) -> StoreResult<()>;
    async fn workspaces_of_user(&self, user_id: &str) -> StoreResult<Vec<WorkspaceAccess>>;

    /// Creates a workspace and makes `email` its owner (creating the user if
    /// needed), in one transaction: all or nothing.
    async fn bootstrap_workspace(
        &self,
        slug: &str,
        name: &str,
        owner: &NewUser,
        now: i64,
    ) -> StoreResult<(Workspace, User)>;

    /// Stores the hash of a one-time link token.
    async fn create_action_token(
        &self,
        token_hash: &str,
        purpose: &str,
        user_id: &str,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// Marks a live token used and returns its user, atomically.
    async fn consume_action_token(
        &self,
        token_hash: &str,
        purpose: &str,
        now: i64,
    ) -> StoreResult<Option<String>>;
    /// Returns the user of a live token without using it.
    async fn peek_action_token(
        &self,
        token_hash: &str,
        purpose: &str,
        now: i64,
    ) -> StoreResult<Option<String>>;
}

/// Opens the store named by a `database_url` and runs migrations.
pub async fn open(database_url: &str) -> StoreResult<Arc<sql::SqlStore>> {
    let store = if database_url.starts_with("sqlite:") {
        sqlite::connect(database_url).await?
    } else {
        postgres::connect(database_url).await?
    };
    store.migrate().await?;
    Ok(Arc::new(store))
}
