//! Invitations: sent by mail, accepted at `/invitations/{token}`.

use super::{check_policies, parse_body, time, Ctx};
use crate::crypto;
use crate::domain::model::{valid_email, Invitation};
use crate::domain::roles::Policy;
use crate::domain::DomainError;
use crate::store::NewInvitation;
use crate::web::errors::ApiError;
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn invitation_json(i: &Invitation) -> Value {
    json!({
        "id": i.id,
        "email": i.email,
        "status": "invited",
        "policies": i.policies,
        "group_ids": i.group_ids,
        "invited_by": i.invited_by,
        "created_at": time(i.created_at),
        "expires_at": time(i.expires_at),
    })
}

async fn mail_invitation(
    state: &AppState,
    ctx: &Ctx,
    email: &str,
    token: &str,
) -> Result<(), ApiError> {
    let inviter = ctx
        .caller
        .user()
        .map(|u| {
            if u.name.is_empty() {
                u.email.clone()
            } else {
                u.name.clone()
            }
        })
        .unwrap_or_else(|| "A workspace owner".into());
    let link = format!("{}/invitations/{token}", state.cfg.public_url);
    let body = format!(
        "{inviter} invited you to the workspace \"{}\" on IAM Gateway.\n\nAccept the invitation:\n{link}\n\nThe link works once and expires in {} days.\n",
        ctx.ws.name,
        ctx.ws.settings.invitation_ttl_secs() / 86_400
    );
    state
        .mailer
        .send(email, &format!("You're invited to {}", ctx.ws.name), &body)
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    Ok(())
}

pub async fn list(State(state): State<AppState>, ctx: Ctx) -> Result<Json<Value>, ApiError> {
    let items = state
        .store
        .list_invitations(&ctx.ws.id, state.clock.now())
        .await?;
    Ok(Json(super::list(
        items.iter().map(invitation_json).collect(),
        None,
    )))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewInvite {
    pub email: String,
    #[serde(default)]
    pub policies: Vec<Policy>,
    #[serde(default)]
    pub group_ids: Vec<String>,
}

/// Invites someone by email with policies and/or groups (the workspace's
/// default role when neither is given), mails the link and audits it. The
/// API and the Access Management page both come here.
pub async fn invite(state: &AppState, ctx: &Ctx, req: NewInvite) -> Result<Invitation, ApiError> {
    if !valid_email(&req.email) {
        return Err(DomainError::Invalid("email: not an email address".into()).into());
    }
    check_policies(&req.policies)?;
    for g in &req.group_ids {
        state
            .store
            .get_group(&ctx.ws.id, g)
            .await?
            .ok_or_else(|| DomainError::Invalid(format!("no group `{g}` in this workspace")))?;
    }
    let policies = if req.policies.is_empty() && req.group_ids.is_empty() {
        super::me::default_policies(&ctx.ws)
    } else {
        req.policies
    };
    let token = crypto::random_token("")?;
    let now = state.clock.now();
    let inv = state
        .store
        .create_invitation(&NewInvitation {
            workspace_id: ctx.ws.id.clone(),
            email: req.email.trim().to_string(),
            token_hash: crypto::sha256_hex(token.as_bytes()),
            policies,
            group_ids: req.group_ids,
            invited_by: ctx.caller.user().map(|u| u.id.clone()),
            now,
            expires_at: now + ctx.ws.settings.invitation_ttl_secs(),
        })
        .await?;
    mail_invitation(state, ctx, &inv.email, &token).await?;
    ctx.audit(
        state,
        "invitation.created",
        Some(&inv.email),
        json!({"invitation_id": inv.id, "policies": inv.policies, "group_ids": inv.group_ids}),
    )
    .await;
    Ok(inv)
}

pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    ctx.require_owner()?;
    let req: NewInvite = parse_body(&body)?;
    let inv = invite(&state, &ctx, req).await?;
    Ok((StatusCode::CREATED, Json(invitation_json(&inv))))
}

/// Revokes an open invitation (audited).
pub async fn revoke_open(state: &AppState, ctx: &Ctx, id: &str) -> Result<(), ApiError> {
    state
        .store
        .revoke_invitation(&ctx.ws.id, id, state.clock.now())
        .await?;
    ctx.audit(state, "invitation.revoked", Some(id), json!({}))
        .await;
    Ok(())
}

pub async fn revoke(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ctx.require_owner()?;
    revoke_open(&state, &ctx, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new link (the old one stops working) and a fresh expiry, mailed again.
pub async fn resend_open(state: &AppState, ctx: &Ctx, id: &str) -> Result<Invitation, ApiError> {
    let inv = state
        .store
        .get_invitation(&ctx.ws.id, id)
        .await?
        .ok_or(DomainError::NotFound)?;
    if inv.accepted_at.is_some() || inv.revoked_at.is_some() {
        return Err(DomainError::Conflict(
            "this invitation was already accepted or revoked".into(),
        )
        .into());
    }
    let token = crypto::random_token("")?;
    let expires = state.clock.now() + ctx.ws.settings.invitation_ttl_secs();
    state
        .store
        .renew_invitation(
            &ctx.ws.id,
            id,
            &crypto::sha256_hex(token.as_bytes()),
            expires,
        )
        .await?;
    mail_invitation(state, ctx, &inv.email, &token).await?;
    ctx.audit(
        state,
        "invitation.resent",
        Some(&inv.email),
        json!({"invitation_id": id}),
    )
    .await;
    Ok(state
        .store
        .get_invitation(&ctx.ws.id, id)
        .await?
        .ok_or(DomainError::NotFound)?)
}

pub async fn resend(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    ctx.require_owner()?;
    let inv = resend_open(&state, &ctx, &id).await?;
    Ok(Json(invitation_json(&inv)))
}
