//! Rules for API tokens and policies.

use super::{Core, Ctx};
use crate::domain::model::{Actor, ApiToken};
use crate::domain::roles::{self, Policy};
use crate::domain::DomainError;
use crate::store::Store;
use serde::Deserialize;
use serde_json::json;

/// Validates a list of policies against the catalog.
pub fn check_policies(policies: &[Policy]) -> Result<(), DomainError> {
    for p in policies {
        p.validate()
            .map_err(|e| DomainError::Invalid(format!("policies: {e}")))?;
    }
    Ok(())
}

/// An API token's policies: valid, and including Workspace Owner or
/// Workspace Member (the roles the management API reads).
pub fn check_token_policies(policies: &[Policy]) -> Result<(), DomainError> {
    check_policies(policies)?;
    if !policies
        .iter()
        .any(|p| p.role == roles::WORKSPACE_OWNER || p.role == roles::WORKSPACE_MEMBER)
    {
        return Err(DomainError::Invalid(
            "policies: an API token needs the workspace_owner or workspace_member role".into(),
        ));
    }
    Ok(())
}

/// What a token is for: the management API or SCIM provisioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Api,
    Scim,
}

impl Kind {
    /// As the store keeps it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Api => "api",
            Kind::Scim => "scim",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Kind::Api => crate::tokens::API_PREFIX,
            Kind::Scim => crate::tokens::SCIM_PREFIX,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    #[serde(default)]
    pub description: String,
    pub policies: Vec<Policy>,
}

/// A token's description: at most 200 characters.
pub fn check_description(description: &str) -> Result<(), DomainError> {
    if description.chars().count() > 200 {
        return Err(DomainError::Invalid(
            "description: at most 200 characters".into(),
        ));
    }
    Ok(())
}

/// A new token's record and secret (not stored yet).
fn prepare(
    workspace_id: &str,
    kind: Kind,
    description: &str,
    policies: Vec<Policy>,
    created_by: Option<String>,
    now: i64,
) -> Result<(ApiToken, String), DomainError> {
    let secret = crate::tokens::mint(kind.prefix())?;
    let t = ApiToken {
        id: uuid::Uuid::new_v4().to_string(),
        workspace_id: workspace_id.to_string(),
        kind: kind.as_str().to_string(),
        description: description.trim().to_string(),
        policies,
        created_by,
        created_at: now,
        last_used_at: None,
    };
    Ok((t, secret))
}

/// Mints and stores a token (no checks, no audit: for callers that did
/// both); returns the record and the secret (shown once).
pub async fn mint(
    store: &dyn Store,
    now: i64,
    workspace_id: &str,
    kind: Kind,
    description: &str,
    policies: Vec<Policy>,
    created_by: Option<String>,
) -> Result<(ApiToken, String), DomainError> {
    let (t, secret) = prepare(workspace_id, kind, description, policies, created_by, now)?;
    store
        .create_token(&t, &crate::tokens::hash(&secret))
        .await?;
    Ok((t, secret))
}

/// The workspace's tokens of one kind (owners).
pub async fn list(core: &Core, ctx: &Ctx, kind: Kind) -> Result<Vec<ApiToken>, DomainError> {
    ctx.require_owner()?;
    Ok(core.store.list_tokens(&ctx.ws.id, kind.as_str()).await?)
}

/// Checks and mints an API token with the caller as creator (owners;
/// audited); returns the record and the secret, which is shown once.
pub async fn create_api(
    core: &Core,
    ctx: &Ctx,
    req: NewToken,
) -> Result<(ApiToken, String), DomainError> {
    ctx.require_owner()?;
    check_description(&req.description)?;
    check_token_policies(&req.policies)?;
    let creator = ctx.caller.actor().id;
    let (t, secret) = prepare(
        &ctx.ws.id,
        Kind::Api,
        &req.description,
        req.policies,
        creator,
        core.clock.now(),
    )?;
    let details = json!({"description": t.description, "policies": t.policies});
    let hash = crate::tokens::hash(&secret);
    let change = core.store.create_token(&t, &hash);
    ctx.audited(core, "token.created", Some(&t.id), details, change)
        .await?;
    Ok((t, secret))
}

/// Mints a SCIM token (owners; audited); the secret is shown once.
pub async fn create_scim(
    core: &Core,
    ctx: &Ctx,
    description: &str,
) -> Result<(ApiToken, String), DomainError> {
    ctx.require_owner()?;
    check_description(description)?;
    let creator = ctx.caller.actor().id;
    let (t, secret) = prepare(
        &ctx.ws.id,
        Kind::Scim,
        description,
        Vec::new(),
        creator,
        core.clock.now(),
    )?;
    let details = json!({"description": t.description});
    let hash = crate::tokens::hash(&secret);
    let change = core.store.create_token(&t, &hash);
    ctx.audited(core, "scim_token.created", Some(&t.id), details, change)
        .await?;
    Ok((t, secret))
}

/// Revokes a token of this workspace (owners; audited).
pub async fn revoke(core: &Core, ctx: &Ctx, kind: Kind, id: &str) -> Result<(), DomainError> {
    ctx.require_owner()?;
    let action = match kind {
        Kind::Api => "token.revoked",
        Kind::Scim => "scim_token.revoked",
    };
    let change = core
        .store
        .revoke_token(&ctx.ws.id, kind.as_str(), id, core.clock.now());
    ctx.audited(core, action, Some(id), json!({}), change).await
}

/// A token minted from the command line (no caller: the system is the
/// actor; audited with `"via": "cli"`). API tokens need Workspace Owner or
/// Workspace Member among their policies.
pub async fn create_from_cli(
    store: &dyn Store,
    now: i64,
    workspace_id: &str,
    kind: Kind,
    description: &str,
    policies: Vec<Policy>,
) -> Result<String, DomainError> {
    check_description(description)?;
    if kind == Kind::Api {
        check_token_policies(&policies)?;
    }
    let (t, secret) = prepare(workspace_id, kind, description, policies, None, now)?;
    let details = match kind {
        Kind::Api => json!({"description": t.description, "policies": t.policies, "via": "cli"}),
        Kind::Scim => json!({"description": t.description, "via": "cli"}),
    };
    let action = match kind {
        Kind::Api => "token.created",
        Kind::Scim => "scim_token.created",
    };
    let event = crate::audit::Entry {
        workspace_id: Some(workspace_id),
        actor: Actor::system(),
        action,
        target: Some(&t.id),
        ip: None,
        details,
    }
    .event(now);
    let hash = crate::tokens::hash(&secret);
    crate::audit::with_change(store, event, store.create_token(&t, &hash)).await?;
    Ok(secret)
}
