//! The management REST API under `/api/v1` (SPEC section 7): who is calling
//! (session + CSRF, or a bearer API token), what they may do in a workspace,
//! and the shared JSON shapes. One file per resource.

pub mod audit_log;
pub mod groups;
pub mod invitations;
pub mod me;
pub mod members;
pub mod openapi;
pub mod resources;
pub mod settings;
pub mod sso;
pub mod tokens;

use super::csrf;
use super::errors::ApiError;
use super::http::{client_ip, current_session};
use super::AppState;
use crate::audit;
use crate::clock::rfc3339;
use crate::domain::access;
use crate::domain::model::{Actor, ApiToken, User, Workspace};
use crate::domain::roles::{self, Policy};
use crate::domain::DomainError;
use crate::session::Session;
use axum::http::{HeaderMap, Method};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::net::SocketAddr;

pub fn routes() -> Router<AppState> {
    let ws = "/api/v1/workspaces/{slug}";
    Router::new()
        .route("/api/v1/openapi.json", get(openapi::document))
        .route("/api/v1/me", get(me::me))
        .route(
            "/api/v1/workspaces",
            get(me::list_workspaces).post(me::create_workspace),
        )
        .route(
            &format!("{ws}/settings"),
            get(settings::get_settings).patch(settings::patch_settings),
        )
        .route(&format!("{ws}/roles"), get(me::roles))
        .route(&format!("{ws}/members"), get(members::list))
        .route(&format!("{ws}/members.csv"), get(members::csv))
        .route(
            &format!("{ws}/members/{{user_id}}"),
            get(members::show)
                .patch(members::update)
                .delete(members::remove),
        )
        .route(
            &format!("{ws}/members/{{user_id}}/mfa"),
            delete(settings::reset_member_mfa),
        )
        .route(
            &format!("{ws}/groups"),
            get(groups::list).post(groups::create),
        )
        .route(
            &format!("{ws}/groups/{{id}}"),
            get(groups::show)
                .patch(groups::update)
                .delete(groups::remove),
        )
        .route(
            &format!("{ws}/groups/{{id}}/members/{{user_id}}"),
            post(groups::add_member).delete(groups::remove_member),
        )
        .route(
            &format!("{ws}/invitations"),
            get(invitations::list).post(invitations::create),
        )
        .route(
            &format!("{ws}/invitations/{{id}}"),
            delete(invitations::revoke),
        )
        .route(
            &format!("{ws}/invitations/{{id}}/resend"),
            post(invitations::resend),
        )
        .route(
            &format!("{ws}/tokens"),
            get(tokens::list).post(tokens::create),
        )
        .route(&format!("{ws}/tokens/{{id}}"), delete(tokens::revoke))
        .route(
            &format!("{ws}/scim-tokens"),
            get(tokens::list_scim).post(tokens::create_scim),
        )
        .route(
            &format!("{ws}/scim-tokens/{{id}}"),
            delete(tokens::revoke_scim),
        )
        .route(
            &format!("{ws}/resources"),
            get(resources::list).post(resources::put),
        )
        .route(
            &format!("{ws}/resources/{{id}}"),
            get(resources::show).delete(resources::remove),
        )
        .route(
            &format!("{ws}/sso/connections"),
            get(sso::list).post(sso::create),
        )
        .route(
            &format!("{ws}/sso/connections/{{id}}"),
            get(sso::show).patch(sso::update).delete(sso::remove),
        )
        .route(
            &format!("{ws}/domains"),
            get(sso::list_domains).post(sso::create_domain),
        )
        .route(
            &format!("{ws}/domains/{{domain}}"),
            delete(sso::delete_domain),
        )
        .route(
            &format!("{ws}/domains/{{domain}}/verify"),
            post(sso::verify_domain),
        )
        .route(&format!("{ws}/audit-events"), get(audit_log::list))
        .route(&format!("{ws}/audit-events.csv"), get(audit_log::csv))
}

/// Who is calling.
pub enum Caller {
    User { user: User, session: Session },
    Token(ApiToken),
}

impl Caller {
    pub fn actor(&self) -> Actor {
        match self {
            Caller::User { user, .. } => Actor::user(&user.id, &user.email),
            Caller::Token(t) => Actor {
                kind: "token".into(),
                id: Some(t.id.clone()),
                email: None,
            },
        }
    }

    pub fn user(&self) -> Option<&User> {
        match self {
            Caller::User { user, .. } => Some(user),
            Caller::Token(_) => None,
        }
    }
}

/// Resolves the caller: `Authorization: Bearer iamgw_…`, or the session
/// cookie (with `X-CSRF-Token` on unsafe methods).
pub async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Caller, ApiError> {
    if let Some(auth) = headers.get(axum::http::header::AUTHORIZATION) {
        let text = auth.to_str().unwrap_or_default();
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .map(str::trim)
            .unwrap_or_default();
        if !crate::tokens::well_formed(token, crate::tokens::API_PREFIX)
            || token.starts_with(crate::tokens::SCIM_PREFIX)
        {
            return Err(DomainError::Unauthenticated.into());
        }
        let t = state
            .store
            .token_by_hash(&crate::tokens::hash(token), state.clock.now())
            .await?
            .ok_or(DomainError::Unauthenticated)?;
        if t.kind != "api" {
            return Err(DomainError::Unauthenticated.into());
        }
        return Ok(Caller::Token(t));
    }
    let (_, session) = current_session(state, headers)
        .await?
        .ok_or(DomainError::Unauthenticated)?;
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let presented = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
        let expected = csrf::token_for_session(state, &session);
        if !presented.is_some_and(|p| crate::crypto::ct_eq(p.as_bytes(), expected.as_bytes())) {
            return Err(
                DomainError::Forbidden("missing or wrong X-CSRF-Token header".into()).into(),
            );
        }
    }
    let user = state
        .store
        .user_by_id(&session.uid)
        .await?
        .ok_or(DomainError::Unauthenticated)?;
    Ok(Caller::User { user, session })
}

/// What a request needs in the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Workspace Owner or Workspace Member: read the access settings.
    Read,
    /// Workspace Owner: change anything.
    Owner,
}

/// A request in one workspace, authorised.
pub struct Ctx {
    pub ws: Workspace,
    pub caller: Caller,
    pub ip: String,
}

impl Ctx {
    /// Writes an audit event for this workspace with this caller as actor.
    pub async fn audit(
        &self,
        state: &AppState,
        action: &str,
        target: Option<&str>,
        details: Value,
    ) {
        audit::record(
            state.store.as_ref(),
            state.clock.now(),
            audit::Entry {
                workspace_id: Some(&self.ws.id),
                actor: self.caller.actor(),
                action,
                target,
                ip: Some(self.ip.clone()),
                details,
            },
        )
        .await;
    }
}

/// Authorises a request in workspace `slug`. A token of another workspace
/// and non-members get 404 (the workspace is not revealed).
pub async fn workspace_ctx(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    peer: SocketAddr,
    slug: &str,
    need: Need,
) -> Result<Ctx, ApiError> {
    let caller = caller(state, headers, method).await?;
    let ws = state
        .store
        .workspace_by_slug(slug)
        .await?
        .ok_or(DomainError::NotFound)?;
    let policies: Vec<Policy> = match &caller {
        Caller::Token(t) if t.workspace_id == ws.id => t.policies.clone(),
        Caller::Token(_) => return Err(DomainError::NotFound.into()),
        Caller::User { user, .. } => state
            .store
            .effective_access(&ws.id, &user.id)
            .await?
            .ok_or(DomainError::NotFound)?
            .all(),
    };
    let allowed = match need {
        Need::Owner => access::is_owner(&policies),
        Need::Read => policies
            .iter()
            .any(|p| p.role == roles::WORKSPACE_OWNER || p.role == roles::WORKSPACE_MEMBER),
    };
    if !allowed {
        let what = if need == Need::Owner {
            "Only workspace owners can do this."
        } else {
            "Only workspace owners and members can see this."
        };
        return Err(DomainError::Forbidden(what.into()).into());
    }
    Ok(Ctx {
        ws,
        caller,
        ip: client_ip(state, peer, headers).to_string(),
    })
}

/// Parses a JSON body into `T`, answering 400 (problem+json) with the reason.
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(DomainError::Invalid("a JSON body is required".into()).into());
    }
    serde_json::from_slice(body)
        .map_err(|e| DomainError::Invalid(format!("invalid JSON body: {e}")).into())
}

/// Validates a list of policies against the catalog.
pub fn check_policies(policies: &[Policy]) -> Result<(), ApiError> {
    for p in policies {
        p.validate().map_err(DomainError::Invalid)?;
    }
    Ok(())
}

#[derive(Debug, serde::Deserialize)]
pub struct Page {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

impl Page {
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(50),
            Some(n) if (1..=200).contains(&n) => Ok(n),
            Some(_) => Err(DomainError::Invalid("limit must be between 1 and 200".into()).into()),
        }
    }
}

pub fn time(t: i64) -> Value {
    json!(rfc3339(t))
}

pub fn opt_time(t: Option<i64>) -> Value {
    t.map(time).unwrap_or(Value::Null)
}

/// `{"items": [...], "next_cursor": ...}`
pub fn list(items: Vec<Value>, next_cursor: Option<String>) -> Value {
    json!({"items": items, "next_cursor": next_cursor})
}
