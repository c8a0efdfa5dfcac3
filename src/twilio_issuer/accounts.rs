//! Twilio accounts: checks, hashing and sealing here, the SQL behind
//! [`TwilioIssuerStore`]. Uniqueness of the email comes from the
//! `twilio_accounts_email_key` constraint (a 409-style
//! [`DomainError::Conflict`]), never from a check before the write. Every
//! change that must not race (TOTP steps, one-time links) is one
//! conditional `UPDATE` in the store.

use crate::crypto;
use crate::domain::model::valid_email;
use crate::domain::DomainError;
use crate::password::{check_policy, Hasher};
pub use crate::store::twilio_issuer::Account;
use crate::store::twilio_issuer::NewAccount;
use crate::store::{StoreError, TwilioIssuerStore};

/// How long a set-password link printed by `add-account` stays valid.
pub const PASSWORD_LINK_TTL: i64 = 24 * 3600;
/// Longest display name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 100;

/// A freshly created account.
pub struct Created {
    pub sub: String,
    /// The one-time set-password token, when no password was given.
    pub password_link: Option<String>,
}

fn db_err(e: StoreError) -> DomainError {
    match e {
        // The only unique column a write can collide on is the email.
        StoreError::Conflict(_) => {
            DomainError::Conflict("another Twilio account already uses this email address".into())
        }
        other => other.into(),
    }
}

/// A new subject: "US" and 128 random bits in hex, like a Twilio user SID.
fn new_sub() -> Result<String, DomainError> {
    Ok(format!("US{}", crypto::hex(&crypto::random_bytes::<16>()?)))
}

/// Checks a display name; the reason is shown to the person.
pub fn check_name(name: &str) -> Result<String, DomainError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DomainError::Invalid("Enter a name.".into()));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(DomainError::Invalid(format!(
            "Names can be at most {MAX_NAME_CHARS} characters long."
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(DomainError::Invalid(
            "Names cannot contain control characters.".into(),
        ));
    }
    Ok(name.to_string())
}

/// Checks an email address; the reason is shown to the person.
pub fn check_email(email: &str) -> Result<String, DomainError> {
    let email = email.trim();
    if !valid_email(email) {
        return Err(DomainError::Invalid(
            "Enter a valid email address, like name@company.com.".into(),
        ));
    }
    Ok(email.to_string())
}

/// Creates an account. With a password it can sign in at once; without one
/// nobody can sign in until the returned one-time link sets a password. The
/// email counts as verified: whoever creates accounts vouches for it.
pub async fn create(
    store: &dyn TwilioIssuerStore,
    hasher: &Hasher,
    now: i64,
    email: &str,
    name: &str,
    password: Option<&str>,
) -> Result<Created, DomainError> {
    let email = check_email(email)?;
    let name = check_name(name)?;
    let (hash, link) = match password {
        Some(pw) => {
            check_policy(pw, &email).map_err(DomainError::Invalid)?;
            let h = hasher
                .hash(pw)
                .await
                .map_err(|e| DomainError::Internal(e.to_string()))?;
            (Some(h), None)
        }
        None => (None, Some(crypto::random_token("")?)),
    };
    let sub = new_sub()?;
    let link_hash = link.as_ref().map(|t| crypto::sha256_hex(t.as_bytes()));
    store
        .twilio_create_account(&NewAccount {
            sub: &sub,
            email: &email,
            name: &name,
            password_hash: hash.as_deref(),
            link_hash: link_hash.as_deref(),
            link_expires_at: link.as_ref().map(|_| now + PASSWORD_LINK_TTL),
            now,
        })
        .await
        .map_err(db_err)?;
    Ok(Created {
        sub,
        password_link: link,
    })
}

pub async fn by_sub(
    store: &dyn TwilioIssuerStore,
    sub: &str,
) -> Result<Option<Account>, DomainError> {
    store.twilio_account_by_sub(sub).await.map_err(db_err)
}

pub async fn by_email(
    store: &dyn TwilioIssuerStore,
    email: &str,
) -> Result<Option<Account>, DomainError> {
    store.twilio_account_by_email(email).await.map_err(db_err)
}

fn one_row(applied: bool) -> Result<(), DomainError> {
    if applied {
        Ok(())
    } else {
        Err(DomainError::NotFound)
    }
}

pub async fn set_name(
    store: &dyn TwilioIssuerStore,
    sub: &str,
    name: &str,
    now: i64,
) -> Result<(), DomainError> {
    one_row(
        store
            .twilio_set_name(sub, name, now)
            .await
            .map_err(db_err)?,
    )
}

/// Changes the email. A different address is unverified until proven
/// (this simulation sends no mail, so it stays unverified); only a change of
/// case keeps the verification.
pub async fn set_email(
    store: &dyn TwilioIssuerStore,
    sub: &str,
    email: &str,
    now: i64,
) -> Result<(), DomainError> {
    one_row(
        store
            .twilio_set_email(sub, email, now)
            .await
            .map_err(db_err)?,
    )
}

pub async fn set_password(
    store: &dyn TwilioIssuerStore,
    sub: &str,
    hash: &str,
    now: i64,
) -> Result<(), DomainError> {
    one_row(
        store
            .twilio_set_password(sub, hash, now)
            .await
            .map_err(db_err)?,
    )
}

/// Replaces the account's set-password link; returns the new token.
pub async fn new_password_link(
    store: &dyn TwilioIssuerStore,
    sub: &str,
    now: i64,
) -> Result<String, DomainError> {
    let token = crypto::random_token("")?;
    let link_hash = crypto::sha256_hex(token.as_bytes());
    one_row(
        store
            .twilio_set_password_link(sub, &link_hash, now + PASSWORD_LINK_TTL)
            .await
            .map_err(db_err)?,
    )?;
    Ok(token)
}

/// The account of a live set-password link, without using it.
pub async fn by_password_link(
    store: &dyn TwilioIssuerStore,
    token: &str,
    now: i64,
) -> Result<Option<Account>, DomainError> {
    store
        .twilio_account_by_password_link(&crypto::sha256_hex(token.as_bytes()), now)
        .await
        .map_err(db_err)
}

/// Sets the password through a live link and kills the link, atomically;
/// `false` when the link was dead or used meanwhile.
pub async fn use_password_link(
    store: &dyn TwilioIssuerStore,
    token: &str,
    hash: &str,
    now: i64,
) -> Result<bool, DomainError> {
    store
        .twilio_use_password_link(&crypto::sha256_hex(token.as_bytes()), hash, now)
        .await
        .map_err(db_err)
}

/// The sealing purpose binds a sealed TOTP secret to its account, so a
/// sealed value copied to another row does not open.
fn totp_purpose(sub: &str) -> String {
    format!("twilio-totp:{sub}")
}

pub fn seal_totp(secret: &[u8], sub: &str, secret_b32: &str) -> Result<String, DomainError> {
    Ok(crypto::seal(
        secret,
        &totp_purpose(sub),
        secret_b32.as_bytes(),
    )?)
}

pub fn open_totp(secret: &[u8], sub: &str, sealed: &str) -> Result<String, DomainError> {
    let raw = crypto::open(secret, &totp_purpose(sub), sealed)
        .map_err(|_| DomainError::Internal(format!("the TOTP secret of {sub} cannot be opened")))?;
    String::from_utf8(raw).map_err(|_| DomainError::Internal("TOTP secret is not text".into()))
}

/// Stores a pending enrolment (only while TOTP is off); `false` otherwise.
pub async fn start_totp(
    store: &dyn TwilioIssuerStore,
    sub: &str,
    sealed: &str,
    now: i64,
) -> Result<bool, DomainError> {
    store
        .twilio_start_totp(sub, sealed, now)
        .await
        .map_err(db_err)
}

/// Turns the pending enrolment `sealed` on, recording the step of the
/// confirming code; `false` when the enrolment changed meanwhile.
pub async fn enable_totp(
    store: &dyn TwilioIssuerStore,
    sub: &str,
    sealed: &str,
    step: i64,
    now: i64,
) -> Result<bool, DomainError> {
    store
        .twilio_enable_totp(sub, sealed, step, now)
        .await
        .map_err(db_err)
}

/// Records `step` as used when it is newer than the last accepted one; the
/// one place a TOTP code is accepted, so two requests cannot both use a code.
pub async fn accept_totp_step(
    store: &dyn TwilioIssuerStore,
    sub: &str,
    step: i64,
) -> Result<bool, DomainError> {
    store
        .twilio_accept_totp_step(sub, step)
        .await
        .map_err(db_err)
}

/// Turns TOTP off with a code of `step` that was not used before.
pub async fn disable_totp(
    store: &dyn TwilioIssuerStore,
    sub: &str,
    step: i64,
    now: i64,
) -> Result<bool, DomainError> {
    store
        .twilio_disable_totp(sub, step, now)
        .await
        .map_err(db_err)
}
