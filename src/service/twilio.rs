//! Twilio Unified Login accounts: finding, creating, linking and unlinking
//! the gateway account of a Twilio identity.

use super::account::{audited_self, twilio_linked, TWILIO_PROVIDER};
use super::Core;
use crate::config::TwilioMode;
use crate::connectors::ExternalIdentity;
use crate::domain::model::User;
use crate::domain::DomainError;
use crate::store::NewUser;

/// The Twilio Console of this gateway's Twilio issuer (`{issuer}/console`),
/// where the header's product switcher leads a person whose account is
/// linked; `None` when Twilio sign-in is off.
pub fn console_url(cfg: &crate::config::Config) -> Option<String> {
    let issuer = match cfg.twilio.mode {
        TwilioMode::Embedded => &cfg.twilio_issuer.public_url,
        TwilioMode::External => &cfg.twilio.issuer_url,
        TwilioMode::Off => return None,
    };
    Some(format!("{issuer}/console"))
}

/// The Twilio Console for the header of `user_id`'s pages: only when their
/// account is linked to Twilio (and Twilio sign-in is on).
pub async fn console_for(core: &Core, user_id: &str) -> Result<Option<String>, DomainError> {
    let Some(url) = console_url(&core.cfg) else {
        return Ok(None);
    };
    Ok(twilio_linked(core.store.as_ref(), user_id)
        .await?
        .then_some(url))
}

/// Whether Twilio says a second factor was used.
pub fn used_second_factor(identity: &ExternalIdentity) -> bool {
    identity
        .amr
        .iter()
        .any(|m| matches!(m.as_str(), "otp" | "mfa" | "hwk" | "swk" | "sms"))
}

/// Name and email follow Twilio at every sign-in of a linked user (a
/// failure is logged, not fatal).
pub async fn refresh_profile(core: &Core, user: &User, identity: &ExternalIdentity) {
    let mut changed = false;
    if let Some(name) = identity
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty() && *n != user.name)
    {
        match core.store.set_user_name(&user.id, name).await {
            Ok(()) => changed = true,
            Err(e) => tracing::warn!(error = %e, "could not update the name from Twilio"),
        }
    }
    if let Some(email) = identity
        .email
        .as_deref()
        .filter(|e| identity.email_verified && !e.eq_ignore_ascii_case(&user.email))
    {
        match core.store.set_user_email(&user.id, email).await {
            Ok(()) => changed = true,
            Err(e) => {
                tracing::warn!(error = %e, "could not take the email from Twilio (already used by another user?)")
            }
        }
    }
    if changed {
        // Name and email travel in the identity headers forward-auth caches.
        core.access_changed().await;
    }
}

/// The account linked to this Twilio identity, its profile refreshed.
pub async fn linked_user(
    core: &Core,
    identity: &ExternalIdentity,
) -> Result<Option<User>, DomainError> {
    // A link's user always exists (its rows go with the user).
    let Some(user) = core
        .store
        .linked_user(TWILIO_PROVIDER, &identity.subject)
        .await?
    else {
        return Ok(None);
    };
    refresh_profile(core, &user, identity).await;
    Ok(Some(user))
}

/// A new account for a Twilio identity with a verified `email` no account
/// has, linked to it (no password).
pub async fn create_user(
    core: &Core,
    identity: &ExternalIdentity,
    email: &str,
) -> Result<User, DomainError> {
    let new = NewUser {
        email: email.to_string(),
        name: identity.name.clone().unwrap_or_default(),
        password_hash: None,
    };
    Ok(core
        .store
        .create_user_with_identity(&new, TWILIO_PROVIDER, &identity.subject, core.clock.now())
        .await?)
}

/// Links `user` to the Twilio identity `subject`: from now on the password
/// is Twilio's (the gateway's is cleared).
pub async fn link(
    core: &Core,
    user: &User,
    subject: &str,
    email: Option<&str>,
    ip: &str,
) -> Result<(), DomainError> {
    let now = core.clock.now();
    let link = core
        .store
        .link_identity(TWILIO_PROVIDER, subject, &user.id, email, now);
    audited_self(core, user, "user.twilio_linked", ip, link).await?;
    core.store.clear_password(&user.id).await?;
    Ok(())
}

/// Why linking the signed-in account `uid` to a Twilio identity stops:
/// `Ok(true)` when it is already linked to this very identity.
pub async fn already_linked(core: &Core, uid: &str, subject: &str) -> Result<bool, DomainError> {
    match core.store.identity_user(TWILIO_PROVIDER, subject).await? {
        Some(other) if other != uid => Err(DomainError::Conflict(
            "This Twilio account is already linked to another user.".into(),
        )),
        Some(_) => Ok(true),
        None if twilio_linked(core.store.as_ref(), uid).await? => Err(DomainError::Conflict(
            "Your account is already linked to a Twilio account. Unlink it first.".into(),
        )),
        None => Ok(false),
    }
}

/// Unlinks Twilio from `user`, who gets `new_password` (its policy already
/// checked) to keep a way to sign in; every other session ends (the one
/// whose cookie value is `kept_cookie` stays).
pub async fn unlink(
    core: &Core,
    user: &User,
    new_password: &str,
    kept_cookie: &str,
    ip: &str,
) -> Result<(), DomainError> {
    let hash = super::account::hash_password(core, new_password).await?;
    let unlink = core.store.unlink_identity(TWILIO_PROVIDER, &user.id);
    audited_self(core, user, "user.twilio_unlinked", ip, unlink)
        .await
        .map_err(|e| match e {
            DomainError::NotFound => DomainError::Invalid("No Twilio account is linked.".into()),
            other => other,
        })?;
    let kept = crate::crypto::sha256_hex(kept_cookie.as_bytes());
    super::account::store_password(core, user, &hash, Some(&kept), None).await?;
    Ok(())
}
