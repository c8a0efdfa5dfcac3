//! Twilio accounts in the `twilio_accounts` table. Uniqueness of the email
//! comes from the `twilio_accounts_email_key` constraint (a 409-style
//! [`DomainError::Conflict`]), never from a check before the write. Every
//! change that must not race (TOTP steps, one-time links) is one
//! conditional `UPDATE`.

use crate::crypto;
use crate::domain::model::{normalize_email, valid_email};
use crate::domain::DomainError;
use crate::password::{check_policy, Hasher};
use crate::store::sql::map_err;
use crate::store::sql::Db;
use crate::store::StoreError;
use sqlx::any::AnyRow;
use sqlx::Row;

/// How long a set-password link printed by `add-account` stays valid.
pub const PASSWORD_LINK_TTL: i64 = 24 * 3600;
/// Longest display name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 100;

#[derive(Clone)]
pub struct Account {
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
    pub password_hash: Option<String>,
    /// Sealed base32 secret (see [`seal_totp`]).
    pub totp_secret: Option<String>,
    pub totp_enabled: bool,
    pub totp_last_step: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("sub", &self.sub)
            .field("email", &self.email)
            .field("totp_enabled", &self.totp_enabled)
            .finish_non_exhaustive()
    }
}

/// A freshly created account.
pub struct Created {
    pub sub: String,
    /// The one-time set-password token, when no password was given.
    pub password_link: Option<String>,
}

const COLS: &str = "sub, email, email_verified_at, name, password_hash, totp_secret, \
                    totp_enabled_at, totp_last_step, created_at, updated_at";

fn from_row(r: &AnyRow) -> Result<Account, sqlx::Error> {
    Ok(Account {
        sub: r.try_get("sub")?,
        email: r.try_get("email")?,
        email_verified: r.try_get::<Option<i64>, _>("email_verified_at")?.is_some(),
        name: r.try_get("name")?,
        password_hash: r.try_get("password_hash")?,
        totp_secret: r.try_get("totp_secret")?,
        totp_enabled: r.try_get::<Option<i64>, _>("totp_enabled_at")?.is_some(),
        totp_last_step: r.try_get("totp_last_step")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn db_err(e: sqlx::Error) -> DomainError {
    match map_err(e) {
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
    db: &Db,
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
    sqlx::query(
        "INSERT INTO twilio_accounts (sub, email, email_norm, email_verified_at, name, password_hash, \
         password_link_hash, password_link_expires_at, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $4, $4)",
    )
    .bind(&sub)
    .bind(&email)
    .bind(normalize_email(&email))
    .bind(now)
    .bind(&name)
    .bind(hash)
    .bind(link.as_ref().map(|t| crypto::sha256_hex(t.as_bytes())))
    .bind(link.as_ref().map(|_| now + PASSWORD_LINK_TTL))
    .execute(db.write())
    .await
    .map_err(db_err)?;
    Ok(Created {
        sub,
        password_link: link,
    })
}

pub async fn by_sub(db: &Db, sub: &str) -> Result<Option<Account>, DomainError> {
    let row = sqlx::query(&format!(
        "SELECT {COLS} FROM twilio_accounts WHERE sub = $1"
    ))
    .bind(sub)
    .fetch_optional(db.read())
    .await
    .map_err(db_err)?;
    row.as_ref().map(from_row).transpose().map_err(db_err)
}

pub async fn by_email(db: &Db, email: &str) -> Result<Option<Account>, DomainError> {
    let row = sqlx::query(&format!(
        "SELECT {COLS} FROM twilio_accounts WHERE email_norm = $1"
    ))
    .bind(normalize_email(email))
    .fetch_optional(db.read())
    .await
    .map_err(db_err)?;
    row.as_ref().map(from_row).transpose().map_err(db_err)
}

fn one_row(done: sqlx::any::AnyQueryResult) -> Result<(), DomainError> {
    if done.rows_affected() == 0 {
        Err(DomainError::NotFound)
    } else {
        Ok(())
    }
}

pub async fn set_name(db: &Db, sub: &str, name: &str, now: i64) -> Result<(), DomainError> {
    let done = sqlx::query("UPDATE twilio_accounts SET name = $1, updated_at = $2 WHERE sub = $3")
        .bind(name)
        .bind(now)
        .bind(sub)
        .execute(db.write())
        .await
        .map_err(db_err)?;
    one_row(done)
}

/// Changes the email. A different address is unverified until proven
/// (this simulation sends no mail, so it stays unverified); only a change of
/// case keeps the verification.
pub async fn set_email(db: &Db, sub: &str, email: &str, now: i64) -> Result<(), DomainError> {
    let done = sqlx::query(
        "UPDATE twilio_accounts SET email = $1, email_norm = $2, updated_at = $3, \
         email_verified_at = CASE WHEN email_norm = $2 THEN email_verified_at ELSE NULL END \
         WHERE sub = $4",
    )
    .bind(email)
    .bind(normalize_email(email))
    .bind(now)
    .bind(sub)
    .execute(db.write())
    .await
    .map_err(db_err)?;
    one_row(done)
}

pub async fn set_password(db: &Db, sub: &str, hash: &str, now: i64) -> Result<(), DomainError> {
    let done = sqlx::query(
        "UPDATE twilio_accounts SET password_hash = $1, password_link_hash = NULL, \
         password_link_expires_at = NULL, updated_at = $2 WHERE sub = $3",
    )
    .bind(hash)
    .bind(now)
    .bind(sub)
    .execute(db.write())
    .await
    .map_err(db_err)?;
    one_row(done)
}

/// Replaces the account's set-password link; returns the new token.
pub async fn new_password_link(db: &Db, sub: &str, now: i64) -> Result<String, DomainError> {
    let token = crypto::random_token("")?;
    let done = sqlx::query(
        "UPDATE twilio_accounts SET password_link_hash = $1, password_link_expires_at = $2 \
         WHERE sub = $3",
    )
    .bind(crypto::sha256_hex(token.as_bytes()))
    .bind(now + PASSWORD_LINK_TTL)
    .bind(sub)
    .execute(db.write())
    .await
    .map_err(db_err)?;
    one_row(done)?;
    Ok(token)
}

/// The account of a live set-password link, without using it.
pub async fn by_password_link(
    db: &Db,
    token: &str,
    now: i64,
) -> Result<Option<Account>, DomainError> {
    let row = sqlx::query(&format!(
        "SELECT {COLS} FROM twilio_accounts WHERE password_link_hash = $1 \
         AND password_link_expires_at > $2"
    ))
    .bind(crypto::sha256_hex(token.as_bytes()))
    .bind(now)
    .fetch_optional(db.read())
    .await
    .map_err(db_err)?;
    row.as_ref().map(from_row).transpose().map_err(db_err)
}

/// Sets the password through a live link and kills the link, atomically;
/// `false` when the link was dead or used meanwhile.
pub async fn use_password_link(
    db: &Db,
    token: &str,
    hash: &str,
    now: i64,
) -> Result<bool, DomainError> {
    let done = sqlx::query(
        "UPDATE twilio_accounts SET password_hash = $1, password_link_hash = NULL, \
         password_link_expires_at = NULL, updated_at = $2 \
         WHERE password_link_hash = $3 AND password_link_expires_at > $2",
    )
    .bind(hash)
    .bind(now)
    .bind(crypto::sha256_hex(token.as_bytes()))
    .execute(db.write())
    .await
    .map_err(db_err)?;
    Ok(done.rows_affected() == 1)
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
pub async fn start_totp(db: &Db, sub: &str, sealed: &str, now: i64) -> Result<bool, DomainError> {
    let done = sqlx::query(
        "UPDATE twilio_accounts SET totp_secret = $1, totp_last_step = NULL, updated_at = $2 \
         WHERE sub = $3 AND totp_enabled_at IS NULL",
    )
    .bind(sealed)
    .bind(now)
    .bind(sub)
    .execute(db.write())
    .await
    .map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}

/// Turns the pending enrolment `sealed` on, recording the step of the
/// confirming code; `false` when the enrolment changed meanwhile.
pub async fn enable_totp(
    db: &Db,
    sub: &str,
    sealed: &str,
    step: i64,
    now: i64,
) -> Result<bool, DomainError> {
    let done = sqlx::query(
        "UPDATE twilio_accounts SET totp_enabled_at = $1, totp_last_step = $2, updated_at = $1 \
         WHERE sub = $3 AND totp_secret = $4 AND totp_enabled_at IS NULL",
    )
    .bind(now)
    .bind(step)
    .bind(sub)
    .bind(sealed)
    .execute(db.write())
    .await
    .map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}

/// Records `step` as used when it is newer than the last accepted one; the
/// one place a TOTP code is accepted, so two requests cannot both use a code.
pub async fn accept_totp_step(db: &Db, sub: &str, step: i64) -> Result<bool, DomainError> {
    let done = sqlx::query(
        "UPDATE twilio_accounts SET totp_last_step = $1 WHERE sub = $2 \
         AND totp_enabled_at IS NOT NULL AND (totp_last_step IS NULL OR totp_last_step < $1)",
    )
    .bind(step)
    .bind(sub)
    .execute(db.write())
    .await
    .map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}

/// Turns TOTP off with a code of `step` that was not used before.
pub async fn disable_totp(db: &Db, sub: &str, step: i64, now: i64) -> Result<bool, DomainError> {
    let done = sqlx::query(
        "UPDATE twilio_accounts SET totp_secret = NULL, totp_enabled_at = NULL, \
         totp_last_step = NULL, updated_at = $1 WHERE sub = $2 \
         AND totp_enabled_at IS NOT NULL AND (totp_last_step IS NULL OR totp_last_step < $3)",
    )
    .bind(now)
    .bind(sub)
    .bind(step)
    .execute(db.write())
    .await
    .map_err(db_err)?;
    Ok(done.rows_affected() == 1)
}
