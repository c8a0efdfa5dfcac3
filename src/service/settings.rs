//! Workspace settings (SPEC section 6b): Require SSO and its exemptions,
//! Require 2FA, the default role, timeouts, invitation lifetime, retention.

use super::access::Caller;
use super::{Core, Ctx};
use crate::domain::duration;
use crate::domain::model::{Workspace, WorkspaceSettings};
use crate::domain::roles;
use crate::domain::DomainError;
use serde::Deserialize;
use serde_json::{json, Value};

/// The settings as the API shows them (and as the audit log records them).
pub fn settings_json(s: &WorkspaceSettings) -> Value {
    json!({
        "require_sso": s.require_sso,
        "sso_exempt_user_ids": s.sso_exempt_user_ids,
        "require_mfa": s.require_mfa,
        "default_role": s.default_role,
        "idle_timeout": s.idle_timeout,
        "absolute_timeout": s.absolute_timeout,
        "invitation_ttl": s.invitation_ttl,
        "audit_retention": s.audit_retention,
    })
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    pub require_sso: Option<bool>,
    pub sso_exempt_user_ids: Option<Vec<String>>,
    pub require_mfa: Option<bool>,
    pub default_role: Option<String>,
    /// `null` removes the workspace's own value.
    #[serde(default, deserialize_with = "double_option")]
    pub idle_timeout: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub absolute_timeout: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub invitation_ttl: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub audit_retention: Option<Option<String>>,
    /// (user id, exempt): one member added to or removed from the Require
    /// SSO exemptions, applied to the settings of the moment (the SSO
    /// page's member picker; not part of the API body).
    #[serde(skip)]
    pub exemption: Option<(String, bool)>,
}

/// The longest timeout, invitation lifetime or retention a workspace may
/// set: longer ones would put expiry times past what can be written as a
/// date (or overflow the arithmetic on them).
pub const MAX_DURATION_DAYS: u64 = 3650;
const MAX_DURATION_SECS: u64 = MAX_DURATION_DAYS * 86_400;

/// How many times a change is re-applied when another one was written
/// between its read and its write. Each round one writer wins, so this
/// bounds how many changes of the same workspace's settings may race
/// before one answers 409.
const ATTEMPTS: usize = 64;

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Validates all of a settings change, then writes it (owners; audited):
/// nothing is written when any part is refused. The write is a
/// compare-and-swap on the settings read, re-applied on the settings of
/// the moment when another change came between, so concurrent changes of
/// different fields are all kept.
pub async fn update(
    core: &Core,
    ctx: &Ctx,
    patch: SettingsPatch,
) -> Result<WorkspaceSettings, DomainError> {
    ctx.require_owner()?;
    let mut before = ctx.ws.settings.clone();
    let mut next = patched(core, ctx, &before, patch.clone()).await?;
    check_values(core, ctx, &patch).await?;
    for _ in 0..ATTEMPTS {
        let details = json!({"before": settings_json(&before), "after": settings_json(&next)});
        let swap = async {
            match core
                .store
                .swap_workspace_settings(&ctx.ws.id, &before, &next)
                .await?
            {
                true => Ok(()),
                false => Err(crate::store::StoreError::Conflict(STALE.into())),
            }
        };
        let slug = Some(ctx.ws.slug.as_str());
        match ctx
            .audited(core, "workspace.settings_updated", slug, details, swap)
            .await
        {
            Ok(()) => return Ok(next),
            Err(DomainError::Conflict(m)) if m == STALE => {
                tokio::task::yield_now().await;
                before = current(core, &ctx.ws).await?;
                next = patched(core, ctx, &before, patch.clone()).await?;
            }
            Err(e) => return Err(e),
        }
    }
    Err(DomainError::Conflict(
        "settings: changed by someone else meanwhile; try again".into(),
    ))
}

/// Why a compare-and-swap of the settings failed (never shown: retried).
const STALE: &str = "settings: changed since read";

async fn current(core: &Core, ws: &Workspace) -> Result<WorkspaceSettings, DomainError> {
    Ok(core
        .store
        .workspace_by_slug(&ws.slug)
        .await?
        .filter(|w| w.id == ws.id)
        .ok_or(DomainError::NotFound)?
        .settings)
}

/// The checks that do not depend on the settings of the moment.
async fn check_values(core: &Core, ctx: &Ctx, patch: &SettingsPatch) -> Result<(), DomainError> {
    if let Some(ids) = &patch.sso_exempt_user_ids {
        let mut others = Vec::new();
        for id in ids {
            if core.store.membership(&ctx.ws.id, id).await?.is_none() {
                others.push(id.as_str());
            }
        }
        if !others.is_empty() {
            return Err(DomainError::Invalid(format!(
                "sso_exempt_user_ids: only members of the workspace can be exempt; not members: {}",
                others.join(", ")
            )));
        }
    }
    if let Some((id, true)) = &patch.exemption {
        if core.store.membership(&ctx.ws.id, id).await?.is_none() {
            return Err(DomainError::Invalid(
                "sso_exempt_user_ids: only members of the workspace can be exempt".into(),
            ));
        }
    }
    if let Some(role) = &patch.default_role {
        check_default_role(role)?;
    }
    for (value, name) in [
        (&patch.idle_timeout, "idle_timeout"),
        (&patch.absolute_timeout, "absolute_timeout"),
        (&patch.invitation_ttl, "invitation_ttl"),
        (&patch.audit_retention, "audit_retention"),
    ] {
        if let Some(Some(text)) = value {
            check_duration(name, text)?;
        }
    }
    Ok(())
}

fn check_default_role(role: &str) -> Result<(), DomainError> {
    if roles::find(role).is_none() {
        return Err(DomainError::Invalid(format!(
            "default_role: unknown role `{role}`"
        )));
    }
    if role == roles::WORKSPACE_OWNER {
        return Err(DomainError::Invalid(
            "default_role: may not be workspace_owner (everyone provisioned by SSO or SCIM would become an owner)".into(),
        ));
    }
    Ok(())
}

fn check_duration(name: &str, text: &str) -> Result<(), DomainError> {
    let d = duration::parse(text).map_err(|e| DomainError::Invalid(format!("{name}: {e}")))?;
    if d.as_secs() > MAX_DURATION_SECS {
        return Err(DomainError::Invalid(format!(
            "{name}: at most {MAX_DURATION_DAYS}d"
        )));
    }
    Ok(())
}

/// `before` with the (checked) patch applied. Turning Require SSO on is
/// judged against `before`: only someone who just proved the workspace's
/// SSO works may turn it on, so nobody locks the workspace out (tokens
/// never can).
async fn patched(
    core: &Core,
    ctx: &Ctx,
    before: &WorkspaceSettings,
    patch: SettingsPatch,
) -> Result<WorkspaceSettings, DomainError> {
    let mut next = before.clone();
    if let Some(on) = patch.require_sso {
        if on && !before.require_sso {
            let from_sso = match &ctx.caller {
                Caller::User { session, .. } => {
                    super::access::signed_in_through_sso(core.store.as_ref(), session, &ctx.ws)
                        .await?
                }
                Caller::Token(_) => false,
            };
            if !from_sso {
                return Err(DomainError::Forbidden("Require SSO can be turned on only from a session signed in through this workspace's SSO".into()));
            }
        }
        next.require_sso = on;
    }
    if let Some(ids) = patch.sso_exempt_user_ids {
        next.sso_exempt_user_ids = ids;
    }
    if let Some((id, exempt)) = patch.exemption {
        next.sso_exempt_user_ids.retain(|x| *x != id);
        if exempt {
            next.sso_exempt_user_ids.push(id);
        }
    }
    if let Some(on) = patch.require_mfa {
        next.require_mfa = on;
    }
    if let Some(role) = patch.default_role {
        next.default_role = role;
    }
    for (value, slot) in [
        (patch.idle_timeout, &mut next.idle_timeout),
        (patch.absolute_timeout, &mut next.absolute_timeout),
        (patch.invitation_ttl, &mut next.invitation_ttl),
        (patch.audit_retention, &mut next.audit_retention),
    ] {
        if let Some(v) = value {
            *slot = v;
        }
    }
    Ok(next)
}

/// Exempts the member with this email from Require SSO (owners; audited
/// like any settings change). An email that is not a member's is refused.
pub async fn exempt(core: &Core, ctx: &Ctx, email: &str) -> Result<WorkspaceSettings, DomainError> {
    ctx.require_owner()?;
    let email = email.trim();
    let not_member =
        || DomainError::Invalid(format!("No member of this workspace has the email {email}"));
    let user = core
        .store
        .user_by_email(email)
        .await?
        .ok_or_else(not_member)?;
    if core.store.membership(&ctx.ws.id, &user.id).await?.is_none() {
        return Err(not_member());
    }
    let patch = SettingsPatch {
        exemption: Some((user.id, true)),
        ..SettingsPatch::default()
    };
    update(core, ctx, patch).await
}

/// Ends the Require SSO exemption of this user (owners; audited).
pub async fn unexempt(
    core: &Core,
    ctx: &Ctx,
    user_id: &str,
) -> Result<WorkspaceSettings, DomainError> {
    ctx.require_owner()?;
    if !ctx
        .ws
        .settings
        .sso_exempt_user_ids
        .iter()
        .any(|x| x == user_id)
    {
        return Err(DomainError::Conflict(
            "That person is not exempt from Require SSO (any more); reload the page".into(),
        ));
    }
    let patch = SettingsPatch {
        exemption: Some((user_id.to_string(), false)),
        ..SettingsPatch::default()
    };
    update(core, ctx, patch).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(e: DomainError) -> String {
        e.to_string()
    }

    #[test]
    fn refusals_name_the_field() {
        assert!(text(check_default_role("nope").unwrap_err()).starts_with("default_role: "));
        assert!(
            text(check_default_role(roles::WORKSPACE_OWNER).unwrap_err())
                .starts_with("default_role: ")
        );
        assert!(check_default_role(roles::WORKSPACE_MEMBER).is_ok());
        assert!(
            text(check_duration("idle_timeout", "soon").unwrap_err()).starts_with("idle_timeout: ")
        );
        assert_eq!(
            text(check_duration("audit_retention", "3651d").unwrap_err()),
            "audit_retention: at most 3650d"
        );
        assert!(check_duration("invitation_ttl", "3650d").is_ok());
    }
}
