//! Workspace settings and the owner's reset of a member's 2FA.

use super::{parse_body, Caller, Ctx};
use crate::domain::duration;
use crate::domain::model::WorkspaceSettings;
use crate::domain::roles;
use crate::domain::DomainError;
use crate::web::errors::ApiError;
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

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

pub async fn get_settings(
    State(_state): State<AppState>,
    ctx: Ctx,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(settings_json(&ctx.ws.settings)))
}

#[derive(Deserialize, Default)]
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
}

/// The longest timeout, invitation lifetime or retention a workspace may
/// set: longer ones would put expiry times past what can be written as a
/// date (or overflow the arithmetic on them).
pub const MAX_DURATION_DAYS: u64 = 3650;
const MAX_DURATION_SECS: u64 = MAX_DURATION_DAYS * 86_400;

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// Applies a settings change after validating all of it: nothing is written
/// when any part is refused.
pub async fn patch_settings(
    State(state): State<AppState>,
    ctx: Ctx,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    ctx.require_owner()?;
    let patch: SettingsPatch = parse_body(&body)?;
    let next = apply_settings(&state, &ctx, patch).await?;
    Ok(Json(settings_json(&next)))
}

/// Validates all of a settings change, then writes it (audited): nothing is
/// written when any part is refused.
pub async fn apply_settings(
    state: &AppState,
    ctx: &Ctx,
    patch: SettingsPatch,
) -> Result<WorkspaceSettings, ApiError> {
    let ws = &ctx.ws;
    let mut next = ws.settings.clone();
    if let Some(on) = patch.require_sso {
        if on && !ws.settings.require_sso {
            // Only someone who just proved the workspace's SSO works may turn
            // it on, so nobody locks the workspace out (tokens never can).
            let from_sso = match &ctx.caller {
                Caller::User { session, .. } => {
                    crate::service::access::signed_in_through_sso(state.store.as_ref(), session, ws)
                        .await?
                }
                Caller::Token(_) => false,
            };
            if !from_sso {
                return Err(DomainError::Forbidden("Require SSO can be turned on only from a session signed in through this workspace's SSO".into()).into());
            }
        }
        next.require_sso = on;
    }
    if let Some(ids) = patch.sso_exempt_user_ids {
        let mut others = Vec::new();
        for id in &ids {
            if state.store.membership(&ws.id, id).await?.is_none() {
                others.push(id.as_str());
            }
        }
        if !others.is_empty() {
            return Err(DomainError::Invalid(format!(
                "sso_exempt_user_ids: only members of the workspace can be exempt; not members: {}",
                others.join(", ")
            ))
            .into());
        }
        next.sso_exempt_user_ids = ids;
    }
    if let Some(on) = patch.require_mfa {
        next.require_mfa = on;
    }
    if let Some(role) = patch.default_role {
        if roles::find(&role).is_none() {
            return Err(
                DomainError::Invalid(format!("default_role: unknown role `{role}`")).into(),
            );
        }
        if role == roles::WORKSPACE_OWNER {
            return Err(DomainError::Invalid(
                "default_role: may not be workspace_owner (everyone provisioned by SSO or SCIM would become an owner)".into(),
            )
            .into());
        }
        next.default_role = role;
    }
    for (value, slot, name) in [
        (patch.idle_timeout, &mut next.idle_timeout, "idle_timeout"),
        (
            patch.absolute_timeout,
            &mut next.absolute_timeout,
            "absolute_timeout",
        ),
        (
            patch.invitation_ttl,
            &mut next.invitation_ttl,
            "invitation_ttl",
        ),
        (
            patch.audit_retention,
            &mut next.audit_retention,
            "audit_retention",
        ),
    ] {
        if let Some(v) = value {
            if let Some(text) = &v {
                let d = duration::parse(text)
                    .map_err(|e| DomainError::Invalid(format!("{name}: {e}")))?;
                if d.as_secs() > MAX_DURATION_SECS {
                    return Err(DomainError::Invalid(format!(
                        "{name}: at most {MAX_DURATION_DAYS}d"
                    ))
                    .into());
                }
            }
            *slot = v;
        }
    }
    state.store.set_workspace_settings(&ws.id, &next).await?;
    ctx.audit(
        state,
        "workspace.settings_updated",
        Some(&ws.slug),
        json!({"before": settings_json(&ws.settings), "after": settings_json(&next)}),
    )
    .await;
    Ok(next)
}

/// An owner resets a member's two-factor authentication (audited).
pub async fn reset_member_mfa(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ctx.require_owner()?;
    state
        .store
        .membership(&ctx.ws.id, &user_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    state.store.disable_totp(&user_id).await?;
    ctx.audit(&state, "member.mfa_reset", Some(&user_id), json!({}))
        .await;
    Ok(StatusCode::NO_CONTENT)
}
