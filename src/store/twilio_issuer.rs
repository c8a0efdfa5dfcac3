//! The simulated Twilio issuer's tables: `twilio_accounts` and
//! `twilio_issuer_keys`. Checks, hashing and sealing stay in
//! `crate::twilio_issuer`; this is only the SQL. Every change that must not
//! race (TOTP steps, one-time links) is one conditional `UPDATE`, reported
//! as whether it applied.

use super::sql::SqlStore;
use super::StoreResult;
use crate::domain::model::normalize_email;
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Clone)]
pub struct Account {
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    pub name: String,
    pub password_hash: Option<String>,
    /// Sealed base32 secret.
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

/// A new account row (email verified at `now`).
pub struct NewAccount<'a> {
    pub sub: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: Option<&'a str>,
    /// SHA-256 of a one-time set-password token, and its expiry.
    pub link_hash: Option<&'a str>,
    pub link_expires_at: Option<i64>,
    pub now: i64,
}

#[async_trait]
pub trait TwilioIssuerStore: Send + Sync + 'static {
    /// Conflict when another account has the email.
    async fn twilio_create_account(&self, a: &NewAccount<'_>) -> StoreResult<()>;
    async fn twilio_account_by_sub(&self, sub: &str) -> StoreResult<Option<Account>>;
    async fn twilio_account_by_email(&self, email: &str) -> StoreResult<Option<Account>>;
    async fn twilio_set_name(&self, sub: &str, name: &str, now: i64) -> StoreResult<bool>;
    /// A new address loses the verification; a change of case keeps it.
    async fn twilio_set_email(&self, sub: &str, email: &str, now: i64) -> StoreResult<bool>;
    /// Sets the password hash and kills any set-password link.
    async fn twilio_set_password(&self, sub: &str, hash: &str, now: i64) -> StoreResult<bool>;
    async fn twilio_set_password_link(
        &self,
        sub: &str,
        link_hash: &str,
        expires_at: i64,
    ) -> StoreResult<bool>;
    async fn twilio_account_by_password_link(
        &self,
        link_hash: &str,
        now: i64,
    ) -> StoreResult<Option<Account>>;
    /// Sets the password through a live link and kills the link, atomically.
    async fn twilio_use_password_link(
        &self,
        link_hash: &str,
        hash: &str,
        now: i64,
    ) -> StoreResult<bool>;
    /// Stores a pending enrolment, only while TOTP is off.
    async fn twilio_start_totp(&self, sub: &str, sealed: &str, now: i64) -> StoreResult<bool>;
    /// Turns the pending enrolment `sealed` on with the confirming step.
    async fn twilio_enable_totp(
        &self,
        sub: &str,
        sealed: &str,
        step: i64,
        now: i64,
    ) -> StoreResult<bool>;
    /// Records `step` when newer than the last accepted one.
    async fn twilio_accept_totp_step(&self, sub: &str, step: i64) -> StoreResult<bool>;
    /// Turns TOTP off with a step not used before.
    async fn twilio_disable_totp(&self, sub: &str, step: i64, now: i64) -> StoreResult<bool>;

    /// Adds a signing key after the newest (Conflict when another was added
    /// at the same moment).
    async fn twilio_insert_key(
        &self,
        kid: &str,
        sealed_private_key: &str,
        public_jwk: &str,
        now: i64,
    ) -> StoreResult<()>;
    /// The active keys, oldest first: (kid, sealed private key).
    async fn twilio_active_keys(&self) -> StoreResult<Vec<(String, String)>>;
    /// Retires `kid` unless it is the last active key.
    async fn twilio_retire_key(&self, kid: &str, now: i64) -> StoreResult<bool>;
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

impl SqlStore {
    async fn twilio_account_where(
        &self,
        cond: &str,
        a: &str,
        b: Option<i64>,
    ) -> StoreResult<Option<Account>> {
        let sql = format!("SELECT {COLS} FROM twilio_accounts WHERE {cond}");
        let mut query = sqlx::query(&sql).bind(a);
        if let Some(b) = b {
            query = query.bind(b);
        }
        let row = query.fetch_optional(self.read()).await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }
}

/// Whether an UPDATE touched one row.
fn applied(done: sqlx::any::AnyQueryResult) -> bool {
    done.rows_affected() == 1
}

#[async_trait]
impl TwilioIssuerStore for SqlStore {
    async fn twilio_create_account(&self, a: &NewAccount<'_>) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO twilio_accounts (sub, email, email_norm, email_verified_at, name, password_hash, \
             password_link_hash, password_link_expires_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $4, $4)",
        )
        .bind(a.sub)
        .bind(a.email)
        .bind(normalize_email(a.email))
        .bind(a.now)
        .bind(a.name)
        .bind(a.password_hash)
        .bind(a.link_hash)
        .bind(a.link_expires_at)
        .execute(self.write())
        .await?;
        self.db().durable().await?;
        Ok(())
    }

    async fn twilio_account_by_sub(&self, sub: &str) -> StoreResult<Option<Account>> {
        self.twilio_account_where("sub = $1", sub, None).await
    }

    async fn twilio_account_by_email(&self, email: &str) -> StoreResult<Option<Account>> {
        self.twilio_account_where("email_norm = $1", &normalize_email(email), None)
            .await
    }

    async fn twilio_set_name(&self, sub: &str, name: &str, now: i64) -> StoreResult<bool> {
        let done =
            sqlx::query("UPDATE twilio_accounts SET name = $1, updated_at = $2 WHERE sub = $3")
                .bind(name)
                .bind(now)
                .bind(sub)
                .execute(self.write())
                .await?;
        self.db().durable().await?;
        Ok(applied(done))
    }

    async fn twilio_set_email(&self, sub: &str, email: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE twilio_accounts SET email = $1, email_norm = $2, updated_at = $3, \
             email_verified_at = CASE WHEN email_norm = $2 THEN email_verified_at ELSE NULL END \
             WHERE sub = $4",
        )
        .bind(email)
        .bind(normalize_email(email))
        .bind(now)
        .bind(sub)
        .execute(self.write())
        .await?;
        self.db().durable().await?;
        Ok(applied(done))
    }

    async fn twilio_set_password(&self, sub: &str, hash: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE twilio_accounts SET password_hash = $1, password_link_hash = NULL, \
             password_link_expires_at = NULL, updated_at = $2 WHERE sub = $3",
        )
        .bind(hash)
        .bind(now)
        .bind(sub)
        .execute(self.write())
        .await?;
        self.db().durable().await?;
        Ok(applied(done))
    }

    async fn twilio_set_password_link(
        &self,
        sub: &str,
        link_hash: &str,
        expires_at: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE twilio_accounts SET password_link_hash = $1, password_link_expires_at = $2 \
             WHERE sub = $3",
        )
        .bind(link_hash)
        .bind(expires_at)
        .bind(sub)
        .execute(self.write())
        .await?;
        self.db().durable().await?;
        Ok(applied(done))
    }

    async fn twilio_account_by_password_link(
        &self,
        link_hash: &str,
        now: i64,
    ) -> StoreResult<Option<Account>> {
        self.twilio_account_where(
            "password_link_hash = $1 AND password_link_expires_at > $2",
            link_hash,
            Some(now),
        )
        .await
    }

    async fn twilio_use_password_link(
        &self,
        link_hash: &str,
        hash: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE twilio_accounts SET password_hash = $1, password_link_hash = NULL, \
             password_link_expires_at = NULL, updated_at = $2 \
             WHERE password_link_hash = $3 AND password_link_expires_at > $2",
        )
        .bind(hash)
        .bind(now)
        .bind(link_hash)
        .execute(self.write())
        .await?;
        self.db().durable().await?;
        Ok(applied(done))
    }

    async fn twilio_start_totp(&self, sub: &str, sealed: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE twilio_accounts SET totp_secret = $1, totp_last_step = NULL, updated_at = $2 \
             WHERE sub = $3 AND totp_enabled_at IS NULL",
        )
        .bind(sealed)
        .bind(now)
        .bind(sub)
        .execute(self.write())
        .await?;
        self.db().durable().await?;
        Ok(applied(done))
    }

    async fn twilio_enable_totp(
        &self,
        sub: &str,
        sealed: &str,
        step: i64,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE twilio_accounts SET totp_enabled_at = $1, totp_last_step = $2, updated_at = $1 \
             WHERE sub = $3 AND totp_secret = $4 AND totp_enabled_at IS NULL",
        )
        .bind(now)
        .bind(step)
        .bind(sub)
        .bind(sealed)
        .execute(self.write())
        .await?;
        self.db().durable().await?;
        Ok(applied(done))
    }

    async fn twilio_accept_totp_step(&self, sub: &str, step: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE twilio_accounts SET totp_last_step = $1 WHERE sub = $2 \
             AND totp_enabled_at IS NOT NULL AND (totp_last_step IS NULL OR totp_last_step < $1)",
        )
        .bind(step)
        .bind(sub)
        .execute(self.write())
        .await?;
        self.db().durable().await?;
        Ok(applied(done))
    }

    async fn twilio_disable_totp(&self, sub: &str, step: i64, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE twilio_accounts SET totp_secret = NULL, totp_enabled_at = NULL, \
             totp_last_step = NULL, updated_at = $1 WHERE sub = $2 \
             AND totp_enabled_at IS NOT NULL AND (totp_last_step IS NULL OR totp_last_step < $3)",
        )
        .bind(now)
        .bind(sub)
        .bind(step)
        .execute(self.write())
        .await?;
        self.db().durable().await?;
        Ok(applied(done))
    }

    async fn twilio_insert_key(
        &self,
        kid: &str,
        sealed_private_key: &str,
        public_jwk: &str,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO twilio_issuer_keys (kid, seq, private_key, public_jwk, created_at) \
             SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4 FROM twilio_issuer_keys",
        )
        .bind(kid)
        .bind(sealed_private_key)
        .bind(public_jwk)
        .bind(now)
        .execute(self.write())
        .await?;
        self.db().durable().await?;
        Ok(())
    }

    async fn twilio_active_keys(&self) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT kid, private_key FROM twilio_issuer_keys WHERE retired_at IS NULL ORDER BY seq",
        )
        .fetch_all(self.read())
        .await?;
        Ok(rows
            .iter()
            .map(|r| Ok((r.try_get("kid")?, r.try_get("private_key")?)))
            .collect::<Result<_, sqlx::Error>>()?)
    }

    async fn twilio_retire_key(&self, kid: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE twilio_issuer_keys SET retired_at = $1 WHERE kid = $2 AND retired_at IS NULL \
             AND EXISTS (SELECT 1 FROM twilio_issuer_keys o WHERE o.retired_at IS NULL AND o.kid <> $2)",
        )
        .bind(now)
        .bind(kid)
        .execute(self.write())
        .await?;
        self.db().durable().await?;
        Ok(applied(done))
    }
}
