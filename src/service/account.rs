//! Rules about a person's own account.

use super::Core;
use crate::audit;
use crate::crypto;
use crate::domain::model::{Actor, User};
use crate::domain::DomainError;
use crate::session::Session;
use crate::store::Store;
use crate::totp;

/// The identity provider name of Twilio Unified Login links.
pub const TWILIO_PROVIDER: &str = "twilio";

/// Whether the account is linked to Twilio: then its password, name and
/// second factor are managed in Twilio (SPEC 6b), and the gateway refuses to
/// set them.
pub async fn twilio_linked(store: &dyn Store, user_id: &str) -> Result<bool, DomainError> {
    Ok(store
        .identities_of(user_id)
        .await?
        .iter()
        .any(|(provider, _)| provider == TWILIO_PROVIDER))
}

/// `Conflict` when the account is Twilio-linked; what the password, reset,
/// name and 2FA operations check first.
pub async fn ensure_managed_here(store: &dyn Store, user_id: &str) -> Result<(), DomainError> {
    if twilio_linked(store, user_id).await? {
        return Err(DomainError::Conflict(MANAGED_IN_TWILIO.into()));
    }
    Ok(())
}

/// What a Twilio-linked person is told when they try to change what Twilio
/// manages.
pub const MANAGED_IN_TWILIO: &str = "Your account is linked to Twilio: your password, name and two-factor authentication are managed in Twilio. Change them in the Twilio Console, or unlink Twilio from your account page first.";

/// Purpose of a one-time link that sets a first password (a new account).
pub const SET_PASSWORD: &str = "set_password";
/// Purpose of a one-time link that resets a forgotten password.
pub const RESET_PASSWORD: &str = "reset_password";

/// How many recovery codes a person gets.
pub const RECOVERY_CODES: usize = 10;

/// The event of a change to a person's own account (no workspace).
fn self_event(
    core: &Core,
    user: &User,
    action: &str,
    ip: &str,
) -> crate::domain::model::AuditEvent {
    audit::Entry {
        workspace_id: None,
        actor: Actor::user(&user.id, &user.email),
        action,
        target: Some(&user.id),
        ip: Some(ip.to_string()),
        details: serde_json::json!({}),
    }
    .event(core.clock.now())
}

/// Runs a change to a person's own account with its audit event: they
/// commit together (see [`crate::audit::bound`]).
pub async fn audited_self<T, F>(
    core: &Core,
    user: &User,
    action: &str,
    ip: &str,
    change: F,
) -> Result<T, DomainError>
where
    F: std::future::Future<Output = Result<T, crate::store::StoreError>>,
{
    let event = self_event(core, user, action, ip);
    Ok(audit::with_change(core.store.as_ref(), event, change).await?)
}

/// Lower case without spaces or dashes: how recovery codes are compared.
pub fn normalize_recovery_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Ten fresh codes (100 bits each) for display, and their hashes to store.
pub fn new_recovery_codes() -> Result<(Vec<String>, Vec<String>), DomainError> {
    let mut shown = Vec::new();
    let mut hashes = Vec::new();
    for _ in 0..RECOVERY_CODES {
        let raw = totp::base32_encode(&crypto::random_bytes::<13>()?).to_ascii_lowercase();
        let code: String = raw.chars().take(20).collect();
        hashes.push(crypto::sha256_hex(code.as_bytes()));
        let groups: Vec<String> = code
            .as_bytes()
            .chunks(5)
            .map(|c| String::from_utf8_lossy(c).to_string())
            .collect();
        shown.push(groups.join("-"));
    }
    Ok((shown, hashes))
}

/// The TOTP secret kept for the person (pending or confirmed), opened.
pub fn totp_secret(core: &Core, user: &User) -> Result<Option<String>, DomainError> {
    match user.totp_secret.as_deref() {
        None => Ok(None),
        Some(sealed) => Ok(Some(
            String::from_utf8(crypto::open(&core.secret, "totp", sealed)?)
                .map_err(|e| DomainError::Internal(e.to_string()))?,
        )),
    }
}

/// Checks a TOTP code (claiming its step, so it works once) or a recovery
/// code (marking it used). True when the code proves the second factor.
pub async fn check_second_factor(
    core: &Core,
    user: &User,
    code: &str,
) -> Result<bool, DomainError> {
    if !user.mfa_enabled() {
        return Ok(false);
    }
    let Some(secret) = totp_secret(core, user)? else {
        return Ok(false);
    };
    let now = core.clock.now();
    if let Some(step) = totp::verify(&secret, code, now, user.totp_last_step) {
        return Ok(core.store.claim_totp_step(&user.id, step).await?);
    }
    let normalized = normalize_recovery_code(code);
    if normalized.len() >= 16 {
        return Ok(core
            .store
            .use_recovery_code(&user.id, &crypto::sha256_hex(normalized.as_bytes()), now)
            .await?);
    }
    Ok(false)
}

/// Makes a new TOTP secret, pending until confirmed; returns it.
pub async fn begin_totp(core: &Core, user: &User) -> Result<String, DomainError> {
    let secret = totp::new_secret()?;
    let sealed = crypto::seal(&core.secret, "totp", secret.as_bytes())?;
    core.store.set_pending_totp(&user.id, &sealed).await?;
    Ok(secret)
}

/// Two-factor turned on: the recovery codes to show once, and the cookie
/// value of the upgraded session.
pub struct TotpEnabled {
    pub codes: Vec<String>,
    pub cookie_value: String,
}

/// Confirms the pending authenticator with a first `code` (None when it
/// does not match): turns 2FA on, makes recovery codes, and upgrades the
/// session `cookie` (a new value).
pub async fn confirm_totp(
    core: &Core,
    user: &User,
    secret: &str,
    code: &str,
    session: &Session,
    cookie: &str,
    ip: &str,
) -> Result<Option<TotpEnabled>, DomainError> {
    let now = core.clock.now();
    let Some(step) = totp::verify(secret, code, now, None) else {
        return Ok(None);
    };
    let (codes, hashes) = new_recovery_codes()?;
    let enable = core.store.enable_totp(&user.id, now, step, &hashes);
    audited_self(core, user, "user.mfa_enabled", ip, enable).await?;
    let (cookie_value, _) = core
        .start_session(&user.id, session.method.clone(), true, Some(cookie))
        .await?;
    Ok(Some(TotpEnabled {
        codes,
        cookie_value,
    }))
}

/// The stored form of a new password (its policy already checked).
pub async fn hash_password(core: &Core, password: &str) -> Result<String, DomainError> {
    core.hasher
        .hash(password)
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))
}

/// Stores a new password hash (with the audit event `action`, when given)
/// and ends every session of the person but `keep` (a session key hash).
pub async fn store_password(
    core: &Core,
    user: &User,
    hash: &str,
    keep: Option<&str>,
    audit: Option<(&str, &str)>,
) -> Result<(), DomainError> {
    let set = core
        .store
        .set_password_hash(&user.id, hash, core.clock.now());
    match audit {
        Some((action, ip)) => audited_self(core, user, action, ip, set).await?,
        None => set.await?,
    }
    core.end_sessions_of(&user.id, keep).await?;
    Ok(())
}

/// Sets a new password (its policy already checked): every session of the
/// person ends, and a new one like `session` starts; returns its cookie
/// value.
pub async fn change_password(
    core: &Core,
    user: &User,
    session: &Session,
    new_password: &str,
    ip: &str,
) -> Result<String, DomainError> {
    let hash = hash_password(core, new_password).await?;
    let audit = Some(("user.password_changed", ip));
    store_password(core, user, &hash, None, audit).await?;
    let (value, _) = core
        .sessions
        .login(&user.id, session.method.clone(), session.mfa, None)
        .await?;
    Ok(value)
}

/// How long a "forgot password" link works.
pub const RESET_TTL_SECS: i64 = 3600;

/// What a dead one-time link says.
pub const LINK_DEAD: &str =
    "This link is invalid, was already used, or has expired. Ask for a new one.";

/// Sets `user`'s password (its policy already checked) from the one-time
/// link `token` of `purpose`: the hash first, then the link is used
/// (atomically: only one request wins), then the password is stored, every
/// session of the person ends and their sign-in lock is lifted.
pub async fn set_password_from_link(
    core: &Core,
    user: &User,
    token: &str,
    purpose: &str,
    password: &str,
    ip: &str,
) -> Result<(), DomainError> {
    let hash = hash_password(core, password).await?;
    let token_hash = crypto::sha256_hex(token.as_bytes());
    let now = core.clock.now();
    let used_by = core
        .store
        .consume_action_token(&token_hash, purpose, now)
        .await?;
    if used_by.as_deref() != Some(user.id.as_str()) {
        return Err(DomainError::Invalid(LINK_DEAD.into()));
    }
    let action = if purpose == RESET_PASSWORD {
        "user.password_reset"
    } else {
        "user.password_set"
    };
    store_password(core, user, &hash, None, Some((action, ip))).await?;
    core.throttle.success(&user.email).await?;
    tracing::info!(event = "password_set", user_id = %user.id, purpose, "password set from a one-time link");
    Ok(())
}

/// "Forgot password": mails a one-hour reset link when the account exists
/// and its password is managed here, at most three per account per 15
/// minutes. Says nothing about which happened.
pub async fn send_reset_link(core: &Core, email: &str) -> Result<(), DomainError> {
    if !crate::domain::model::valid_email(email) {
        return Ok(());
    }
    let subject = crate::domain::model::normalize_email(email);
    let counter = format!("reset:n:{}", core.throttle.subject_id("reset", &subject));
    let window = std::time::Duration::from_secs(900);
    if core.sessions.kv().incr(&counter, window).await? > 3 {
        return Ok(());
    }
    let Some(user) = core.store.user_by_email(email).await? else {
        return Ok(());
    };
    // A Twilio-linked account's password is managed in Twilio: no link.
    if twilio_linked(core.store.as_ref(), &user.id).await? {
        return Ok(());
    }
    let token = crypto::random_token("")?;
    let now = core.clock.now();
    let token_hash = crypto::sha256_hex(token.as_bytes());
    core.store
        .create_action_token(
            &token_hash,
            RESET_PASSWORD,
            &user.id,
            now,
            now + RESET_TTL_SECS,
        )
        .await?;
    let link = format!("{}/reset-password/{token}", core.cfg.public_url);
    let body = format!(
        "Someone asked to reset the password of {} on IAM Gateway.\n\nSet a new password within one hour:\n{link}\n\nIf it wasn't you, ignore this message; your password stays as it is.\n",
        user.email
    );
    core.mailer
        .send(&user.email, "Reset your IAM Gateway password", &body)
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_distinct_grouped_and_normalise_to_what_is_hashed() {
        let (shown, hashes) = new_recovery_codes().unwrap();
        assert_eq!(shown.len(), RECOVERY_CODES);
        let mut uniq = hashes.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), RECOVERY_CODES);
        assert_eq!(shown[0].len(), 23);
        assert_eq!(
            crypto::sha256_hex(normalize_recovery_code(&shown[0].to_uppercase()).as_bytes()),
            hashes[0]
        );
    }
}
