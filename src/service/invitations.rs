//! Invitations: an owner invites someone by email (with policies and/or
//! groups), resends or revokes the invitation; the invited person accepts
//! it through the link, signed in with that email or creating an account.

use super::{Core, Ctx};
use crate::crypto;
use crate::domain::model::{normalize_email, Actor, AuditEvent, Invitation, User, Workspace};
use crate::domain::roles::Policy;
use crate::domain::DomainError;
use crate::session::Session;
use crate::store::{NewInvitation, NewUser, StoreError};
use serde::Deserialize;
use serde_json::json;

/// What inviting someone takes.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct NewInvite {
    pub email: String,
    #[serde(default)]
    pub policies: Vec<Policy>,
    #[serde(default)]
    pub group_ids: Vec<String>,
}

/// Default policies for a workspace (its default role).
pub fn default_policies(ws: &Workspace) -> Vec<Policy> {
    vec![Policy::workspace(&ws.settings.default_role)]
}

/// Mails the invitation link.
async fn mail_invitation(
    core: &Core,
    ctx: &Ctx,
    email: &str,
    token: &str,
) -> Result<(), DomainError> {
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
    let link = format!("{}/invitations/{token}", core.cfg.public_url);
    let body = format!(
        "{inviter} invited you to the workspace \"{}\" on IAM Gateway.\n\nAccept the invitation:\n{link}\n\nThe link works once and expires in {} days.\n",
        ctx.ws.name,
        ctx.ws.settings.invitation_ttl_secs() / 86_400
    );
    core.mailer
        .send(email, &format!("You're invited to {}", ctx.ws.name), &body)
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))
}

/// The workspace's open invitations.
pub async fn list(core: &Core, ctx: &Ctx) -> Result<Vec<Invitation>, DomainError> {
    Ok(core
        .store
        .list_invitations(&ctx.ws.id, core.clock.now())
        .await?)
}

/// Checks an invitation's email, policies and groups; the policies it
/// grants (the workspace's default role when neither policies nor groups
/// are given).
async fn checked_policies(
    core: &Core,
    ctx: &Ctx,
    req: &NewInvite,
) -> Result<Vec<Policy>, DomainError> {
    if !crate::domain::model::valid_email(&req.email) {
        return Err(DomainError::Invalid("email: not an email address".into()));
    }
    super::tokens::check_policies(&req.policies)?;
    let ids = req.group_ids.iter().map(String::as_str);
    if let Some(g) = super::groups::first_unknown(core, &ctx.ws.id, ids).await? {
        return Err(DomainError::Invalid(format!(
            "no group `{g}` in this workspace"
        )));
    }
    Ok(if req.policies.is_empty() && req.group_ids.is_empty() {
        default_policies(&ctx.ws)
    } else {
        req.policies.clone()
    })
}

/// Invites someone by email with policies and/or groups (owners), mails
/// the link and audits it.
pub async fn invite(core: &Core, ctx: &Ctx, req: NewInvite) -> Result<Invitation, DomainError> {
    ctx.require_owner()?;
    let policies = checked_policies(core, ctx, &req).await?;
    let token = crypto::random_token("")?;
    let now = core.clock.now();
    let new = NewInvitation {
        workspace_id: ctx.ws.id.clone(),
        email: req.email.trim().to_string(),
        token_hash: crypto::sha256_hex(token.as_bytes()),
        policies: policies.clone(),
        group_ids: req.group_ids.clone(),
        invited_by: ctx.caller.user().map(|u| u.id.clone()),
        now,
        expires_at: now + ctx.ws.settings.invitation_ttl_secs(),
    };
    let create = core.store.create_invitation(&new);
    // The store adds the invitation's id to the event's details.
    let details = json!({"policies": policies, "group_ids": req.group_ids});
    let target = req.email.trim();
    let inv = ctx
        .audited(core, "invitation.created", Some(target), details, create)
        .await?;
    mail_invitation(core, ctx, &inv.email, &token).await?;
    Ok(inv)
}

/// Revokes an open invitation (owners; audited).
pub async fn revoke(core: &Core, ctx: &Ctx, id: &str) -> Result<(), DomainError> {
    ctx.require_owner()?;
    let change = core
        .store
        .revoke_invitation(&ctx.ws.id, id, core.clock.now());
    ctx.audited(core, "invitation.revoked", Some(id), json!({}), change)
        .await
}

/// A new link (the old one stops working) and a fresh expiry, mailed again
/// (owners; audited); the invitation as it now is.
pub async fn resend(core: &Core, ctx: &Ctx, id: &str) -> Result<Invitation, DomainError> {
    ctx.require_owner()?;
    let inv = core
        .store
        .get_invitation(&ctx.ws.id, id)
        .await?
        .ok_or(DomainError::NotFound)?;
    if inv.accepted_at.is_some() || inv.revoked_at.is_some() {
        return Err(DomainError::Conflict(
            "this invitation was already accepted or revoked".into(),
        ));
    }
    let token = crypto::random_token("")?;
    let expires = core.clock.now() + ctx.ws.settings.invitation_ttl_secs();
    let hash = crypto::sha256_hex(token.as_bytes());
    let change = core.store.renew_invitation(&ctx.ws.id, id, &hash, expires);
    let details = json!({"invitation_id": id});
    ctx.audited(core, "invitation.resent", Some(&inv.email), details, change)
        .await?;
    mail_invitation(core, ctx, &inv.email, &token).await?;
    core.store
        .get_invitation(&ctx.ws.id, id)
        .await?
        .ok_or(DomainError::NotFound)
}

/// What a link that no longer works says.
pub const GONE: &str = "This invitation is no longer valid: it was used, revoked or has expired. Ask a workspace owner to send a new one.";

fn gone() -> DomainError {
    DomainError::Invalid(GONE.into())
}

/// An open invitation and its workspace, found by the link's token.
pub struct Opened {
    pub token: String,
    pub inv: Invitation,
    pub ws: Workspace,
}

/// The open invitation a link's token stands for; [`GONE`] when it was
/// used, revoked or has expired.
pub async fn open(core: &Core, token: &str) -> Result<Opened, DomainError> {
    let inv = core
        .store
        .invitation_by_token(&crypto::sha256_hex(token.as_bytes()))
        .await?
        .ok_or_else(gone)?;
    if !inv.is_open(core.clock.now()) {
        return Err(gone());
    }
    let ws = core
        .store
        .workspace_by_id(&inv.workspace_id)
        .await?
        .ok_or_else(gone)?;
    Ok(Opened {
        token: token.to_string(),
        inv,
        ws,
    })
}

/// What the invitation page offers, decided from who is looking.
pub enum Offer {
    /// Signed in with the invited email: accept with one click.
    Accept,
    /// Signed in with another email (this one).
    WrongAccount(String),
    /// Not signed in, and the invited email has an account: sign in first.
    SignInFirst,
    /// Not signed in, and no account yet: set a name and password.
    CreateAccount,
}

/// What the invitation offers the holder of `session` (none: not signed in).
pub async fn offer(
    core: &Core,
    inv: &Invitation,
    session: Option<&Session>,
) -> Result<Offer, DomainError> {
    if let Some(s) = session {
        let user = core
            .store
            .user_by_id(&s.uid)
            .await?
            .ok_or(DomainError::Unauthenticated)?;
        return Ok(
            if normalize_email(&user.email) == normalize_email(&inv.email) {
                Offer::Accept
            } else {
                Offer::WrongAccount(user.email)
            },
        );
    }
    Ok(if core.store.user_by_email(&inv.email).await?.is_some() {
        Offer::SignInFirst
    } else {
        Offer::CreateAccount
    })
}

/// A store refusal of an acceptance: the invitation went away meanwhile.
fn accept_failed(e: StoreError) -> DomainError {
    match e {
        StoreError::NotFound => gone(),
        other => other.into(),
    }
}

/// The `invitation.accepted` event, with the accepting person as actor.
fn accepted_event(core: &Core, inv: &Invitation, user: &User, ip: &str) -> AuditEvent {
    crate::audit::Entry {
        workspace_id: Some(&inv.workspace_id),
        actor: Actor::user(&user.id, &user.email),
        action: "invitation.accepted",
        target: Some(&user.id),
        ip: Some(ip.to_string()),
        details: json!({"invitation_id": inv.id, "policies": inv.policies, "group_ids": inv.group_ids}),
    }
    .event(core.clock.now())
}

/// The signed-in person accepts the invitation for their email (audited).
pub async fn accept_signed_in(
    core: &Core,
    o: &Opened,
    session: &Session,
    ip: &str,
) -> Result<User, DomainError> {
    let user = core
        .store
        .user_by_id(&session.uid)
        .await?
        .ok_or(DomainError::Unauthenticated)?;
    if normalize_email(&user.email) != normalize_email(&o.inv.email) {
        return Err(DomainError::Forbidden(
            "this invitation is for another email address".into(),
        ));
    }
    let event = accepted_event(core, &o.inv, &user, ip);
    let accept = core
        .store
        .accept_invitation(&o.inv.id, &user.id, core.clock.now());
    crate::audit::with_change(core.store.as_ref(), event, accept)
        .await
        .map_err(accept_failed)?;
    Ok(user)
}

/// `Invalid` with what to tell the person when the name or password of a
/// new account is refused.
pub fn check_new_account(name: &str, password: &str, email: &str) -> Result<(), DomainError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(DomainError::Invalid(
            "Enter your name (at most 200 characters).".into(),
        ));
    }
    crate::password::check_policy(password, email).map_err(DomainError::Invalid)
}

/// Someone without an account accepts: the account is created with the
/// invited email, this name and password, and joins (audited).
pub async fn accept_new_account(
    core: &Core,
    o: &Opened,
    name: &str,
    password: &str,
    ip: &str,
) -> Result<User, DomainError> {
    check_new_account(name, password, &o.inv.email)?;
    let hash = core
        .hasher
        .hash(password)
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    let new = NewUser {
        email: o.inv.email.clone(),
        name: name.trim().to_string(),
        password_hash: Some(hash),
    };
    let user = core
        .store
        .accept_invitation_as_new_user(&o.inv.id, &new, core.clock.now())
        .await
        .map_err(accept_failed)?;
    // audit-after: the actor is the account the acceptance creates.
    crate::audit::write(
        core.store.as_ref(),
        &accepted_event(core, &o.inv, &user, ip),
    )
    .await;
    Ok(user)
}

#[cfg(test)]
mod tests {
    use super::check_new_account;

    #[test]
    fn a_new_account_needs_a_name_and_a_strong_password() {
        let strong = "correct horse battery staple";
        assert!(check_new_account("Ada", strong, "ada@example.com").is_ok());
        for name in ["", "   ", "a\u{7}b", &"x".repeat(201)] {
            let e = check_new_account(name, strong, "ada@example.com").unwrap_err();
            assert_eq!(e.to_string(), "Enter your name (at most 200 characters).");
        }
        assert!(check_new_account("Ada", "short", "ada@example.com").is_err());
    }
}
