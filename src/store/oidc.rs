//! The OpenID Provider's durable state (SPEC section 13): clients, grants
//! (one authorization of one client in one gateway session) with their
//! code and tokens, and the back-channel logout outbox. Codes and tokens
//! are kept as SHA-256 hex only.

use super::sql::SqlStore;
use super::{StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone)]
pub struct OidcClient {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    /// None: a public client (PKCE only, no secret).
    pub secret_hash: Option<String>,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub required_role: Option<String>,
    pub created_by: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct OidcGrant {
    pub id: String,
    pub client_id: String,
    pub workspace_id: String,
    pub user_id: String,
    pub session_key: String,
    pub sid: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct OidcCode {
    pub hash: String,
    pub grant_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }
}

#[derive(Debug, Clone)]
pub struct OidcToken {
    pub hash: String,
    pub grant_id: String,
    pub kind: TokenKind,
    pub expires_at: i64,
    pub spent_at: Option<i64>,
}

/// Which grants end (their sessions ended, or the person lost access).
#[derive(Debug, Clone)]
pub enum GrantsOf<'a> {
    /// One gateway session (its storage key).
    Session(&'a str),
    /// Every session of a person but one (storage key).
    UserExcept(&'a str, Option<&'a str>),
    /// A person's grants for the clients of one workspace.
    UserInWorkspace(&'a str, &'a str),
}

/// A back-channel logout waiting for delivery.
#[derive(Debug, Clone)]
pub struct PendingLogout {
    pub id: String,
    pub client_id: String,
    pub workspace_id: String,
    pub uri: String,
    pub sub: String,
    pub sid: String,
    pub attempts: i64,
    pub next_at: i64,
}

/// Outbox counts: waiting, delivered, given up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogoutCounts {
    pub pending: i64,
    pub delivered: i64,
    pub failed: i64,
}

#[async_trait]
pub trait OidcStore: Send + Sync + 'static {
    async fn create_oidc_client(&self, c: &OidcClient) -> StoreResult<()>;
    async fn oidc_clients(&self, workspace_id: &str) -> StoreResult<Vec<OidcClient>>;
    async fn oidc_client(&self, id: &str) -> StoreResult<Option<OidcClient>>;
    /// Deletes a client and everything it was issued (NotFound if none).
    async fn delete_oidc_client(&self, workspace_id: &str, id: &str) -> StoreResult<()>;

    /// Stores a grant and its code together.
    async fn create_oidc_grant(&self, g: &OidcGrant, code: &OidcCode) -> StoreResult<()>;
    async fn oidc_code(&self, hash: &str) -> StoreResult<Option<(OidcCode, OidcGrant)>>;
    /// Marks a code used; false when it already was (a replay).
    async fn use_oidc_code(&self, hash: &str, now: i64) -> StoreResult<bool>;
    /// Stores tokens issued for a grant (and that it issued an ID token).
    async fn issue_oidc_tokens(
        &self,
        grant_id: &str,
        tokens: &[OidcToken],
        now: i64,
    ) -> StoreResult<()>;
    async fn oidc_token(&self, hash: &str) -> StoreResult<Option<(OidcToken, OidcGrant)>>;
    /// Marks a refresh token spent; false when it already was (a reuse).
    async fn spend_oidc_token(&self, hash: &str, now: i64) -> StoreResult<bool>;
    /// Revokes a grant: every token it issued stops working.
    async fn revoke_oidc_grant(&self, grant_id: &str, now: i64) -> StoreResult<()>;
    /// Deletes one access token (revocation).
    async fn delete_oidc_token(&self, hash: &str) -> StoreResult<()>;

    /// Ends the selected grants and, in the same transaction, queues a
    /// back-channel logout for every (client with a logout URI, session)
    /// that received an ID token; returns how many were queued.
    async fn end_oidc_grants(&self, which: GrantsOf<'_>, now: i64) -> StoreResult<usize>;
    /// Logouts due for an attempt.
    async fn due_logouts(&self, now: i64, limit: i64) -> StoreResult<Vec<PendingLogout>>;
    /// Takes a due logout for this instance (moves its next attempt to
    /// `lease_until`); false when another instance took it first.
    async fn claim_logout(&self, l: &PendingLogout, lease_until: i64) -> StoreResult<bool>;
    async fn logout_delivered(&self, id: &str, now: i64) -> StoreResult<()>;
    /// Records a failed attempt; `next_at` None gives up.
    async fn logout_attempt_failed(
        &self,
        id: &str,
        error: &str,
        next_at: Option<i64>,
        now: i64,
    ) -> StoreResult<()>;
    async fn logout_counts(&self) -> StoreResult<LogoutCounts>;
    /// Deletes what can no longer be used or told: codes and tokens
    /// expired before `before`, grants ended before it with nothing left,
    /// logouts delivered or given up before it. Returns the rows deleted.
    async fn prune_oidc(&self, before: i64) -> StoreResult<u64>;
}

const CLIENT_COLS: &str = "id, workspace_id, name, secret_hash, redirect_uris, post_logout_redirect_uris, backchannel_logout_uri, required_role, created_by, created_at";
const GRANT_COLS: &str = "g.id, g.client_id, g.workspace_id, g.user_id, g.session_key, g.sid, g.scope, g.nonce, g.auth_time, g.amr, g.created_at, g.revoked_at";
/// Due logouts of one app taken per look at the outbox.
const PER_APP: i64 = 4;
const LOGOUT_COLS: &str = "id, client_id, workspace_id, uri, sub, sid, attempts, next_at";

fn list(text: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Other(format!("stored list unreadable: {e}")))
}

fn list_text(v: &[String]) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Other(e.to_string()))
}

fn client_from(r: &AnyRow) -> StoreResult<OidcClient> {
    Ok(OidcClient {
        id: r.try_get("id")?,
        workspace_id: r.try_get("workspace_id")?,
        name: r.try_get("name")?,
        secret_hash: r.try_get("secret_hash")?,
        redirect_uris: list(&r.try_get::<String, _>("redirect_uris")?)?,
        post_logout_redirect_uris: list(&r.try_get::<String, _>("post_logout_redirect_uris")?)?,
        backchannel_logout_uri: r.try_get("backchannel_logout_uri")?,
        required_role: r.try_get("required_role")?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

fn grant_from(r: &AnyRow) -> StoreResult<OidcGrant> {
    Ok(OidcGrant {
        id: r.try_get("id")?,
        client_id: r.try_get("client_id")?,
        workspace_id: r.try_get("workspace_id")?,
        user_id: r.try_get("user_id")?,
        session_key: r.try_get("session_key")?,
        sid: r.try_get("sid")?,
        scope: r.try_get("scope")?,
        nonce: r.try_get("nonce")?,
        auth_time: r.try_get("auth_time")?,
        amr: list(&r.try_get::<String, _>("amr")?)?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

fn logout_from(r: &AnyRow) -> StoreResult<PendingLogout> {
    Ok(PendingLogout {
        id: r.try_get("id")?,
        client_id: r.try_get("client_id")?,
        workspace_id: r.try_get("workspace_id")?,
        uri: r.try_get("uri")?,
        sub: r.try_get("sub")?,
        sid: r.try_get("sid")?,
        attempts: r.try_get("attempts")?,
        next_at: r.try_get("next_at")?,
    })
}

/// The WHERE clause (on `oidc_grants g`) and its two arguments.
fn grants_where<'a>(which: &GrantsOf<'a>) -> (&'static str, &'a str, Option<&'a str>) {
    match which {
        GrantsOf::Session(key) => ("g.session_key = $1 AND $2 IS NULL", key, None),
        GrantsOf::UserExcept(uid, keep) => (
            "g.user_id = $1 AND ($2 IS NULL OR g.session_key <> $2)",
            uid,
            *keep,
        ),
        GrantsOf::UserInWorkspace(uid, ws) => {
            ("g.user_id = $1 AND g.workspace_id = $2", uid, Some(ws))
        }
    }
}

#[async_trait]
impl OidcStore for SqlStore {
    async fn create_oidc_client(&self, c: &OidcClient) -> StoreResult<()> {
        self.exec_write(
            sqlx::query(&format!(
                "INSERT INTO oidc_clients ({CLIENT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ))
            .bind(&c.id)
            .bind(&c.workspace_id)
            .bind(&c.name)
            .bind(&c.secret_hash)
            .bind(list_text(&c.redirect_uris)?)
            .bind(list_text(&c.post_logout_redirect_uris)?)
            .bind(&c.backchannel_logout_uri)
            .bind(&c.required_role)
            .bind(&c.created_by)
            .bind(c.created_at),
            Some(&c.id),
        )
        .await?;
        Ok(())
    }

    async fn oidc_clients(&self, workspace_id: &str) -> StoreResult<Vec<OidcClient>> {
        let rows = sqlx::query(&format!(
            "SELECT {CLIENT_COLS} FROM oidc_clients WHERE workspace_id = $1 ORDER BY created_at, id"
        ))
        .bind(workspace_id)
        .fetch_all(self.read())
        .await?;
        rows.iter().map(client_from).collect()
    }

    async fn oidc_client(&self, id: &str) -> StoreResult<Option<OidcClient>> {
        let row = sqlx::query(&format!(
            "SELECT {CLIENT_COLS} FROM oidc_clients WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.read())
        .await?;
        row.as_ref().map(client_from).transpose()
    }

    async fn delete_oidc_client(&self, workspace_id: &str, id: &str) -> StoreResult<()> {
        // Its grants, codes and tokens go with it (ON DELETE CASCADE; SQLite
        // connections turn foreign keys on).
        self.write_one(
            sqlx::query("DELETE FROM oidc_clients WHERE workspace_id = $1 AND id = $2")
                .bind(workspace_id)
                .bind(id),
        )
        .await
    }

    async fn create_oidc_grant(&self, g: &OidcGrant, code: &OidcCode) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("INSERT INTO oidc_grants (id, client_id, workspace_id, user_id, session_key, sid, scope, nonce, auth_time, amr, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
            .bind(&g.id)
            .bind(&g.client_id)
            .bind(&g.workspace_id)
            .bind(&g.user_id)
            .bind(&g.session_key)
            .bind(&g.sid)
            .bind(&g.scope)
            .bind(&g.nonce)
            .bind(g.auth_time)
            .bind(list_text(&g.amr)?)
            .bind(g.created_at)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO oidc_codes (hash, grant_id, redirect_uri, code_challenge, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&code.hash)
            .bind(&g.id)
            .bind(&code.redirect_uri)
            .bind(&code.code_challenge)
            .bind(code.expires_at)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await
    }

    async fn oidc_code(&self, hash: &str) -> StoreResult<Option<(OidcCode, OidcGrant)>> {
        let row = sqlx::query(&format!(
            "SELECT c.hash AS c_hash, c.redirect_uri, c.code_challenge, c.expires_at, c.used_at, {GRANT_COLS} FROM oidc_codes c JOIN oidc_grants g ON g.id = c.grant_id WHERE c.hash = $1"
        ))
        .bind(hash)
        .fetch_optional(self.read())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let grant = grant_from(&r)?;
        let code = OidcCode {
            hash: r.try_get("c_hash")?,
            grant_id: grant.id.clone(),
            redirect_uri: r.try_get("redirect_uri")?,
            code_challenge: r.try_get("code_challenge")?,
            expires_at: r.try_get("expires_at")?,
            used_at: r.try_get("used_at")?,
        };
        Ok(Some((code, grant)))
    }

    async fn use_oidc_code(&self, hash: &str, now: i64) -> StoreResult<bool> {
        let n =
            sqlx::query("UPDATE oidc_codes SET used_at = $1 WHERE hash = $2 AND used_at IS NULL")
                .bind(now)
                .bind(hash)
                .execute(self.write())
                .await?
                .rows_affected();
        self.db().durable().await?;
        Ok(n == 1)
    }

    async fn issue_oidc_tokens(
        &self,
        grant_id: &str,
        tokens: &[OidcToken],
        now: i64,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        for t in tokens {
            sqlx::query("INSERT INTO oidc_tokens (hash, grant_id, kind, expires_at) VALUES ($1, $2, $3, $4)")
                .bind(&t.hash)
                .bind(grant_id)
                .bind(t.kind.as_str())
                .bind(t.expires_at)
                .execute(&mut *tx)
                .await?;
        }
        // Only a live grant gets tokens: one revoked meanwhile (a replayed
        // code, an ended session) issues nothing.
        let live = sqlx::query("UPDATE oidc_grants SET id_token_at = COALESCE(id_token_at, $1) WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(grant_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if live == 0 {
            return Err(StoreError::NotFound);
        }
        self.commit(tx).await
    }

    async fn oidc_token(&self, hash: &str) -> StoreResult<Option<(OidcToken, OidcGrant)>> {
        let row = sqlx::query(&format!(
            "SELECT t.hash AS t_hash, t.kind, t.expires_at, t.spent_at, {GRANT_COLS} FROM oidc_tokens t JOIN oidc_grants g ON g.id = t.grant_id WHERE t.hash = $1"
        ))
        .bind(hash)
        .fetch_optional(self.read())
        .await?;
        let Some(r) = row else { return Ok(None) };
        let grant = grant_from(&r)?;
        let kind: String = r.try_get("kind")?;
        let token = OidcToken {
            hash: r.try_get("t_hash")?,
            grant_id: grant.id.clone(),
            kind: if kind == "refresh" {
                TokenKind::Refresh
            } else {
                TokenKind::Access
            },
            expires_at: r.try_get("expires_at")?,
            spent_at: r.try_get("spent_at")?,
        };
        Ok(Some((token, grant)))
    }

    async fn spend_oidc_token(&self, hash: &str, now: i64) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE oidc_tokens SET spent_at = $1 WHERE hash = $2 AND spent_at IS NULL",
        )
        .bind(now)
        .bind(hash)
        .execute(self.write())
        .await?
        .rows_affected();
        self.db().durable().await?;
        Ok(n == 1)
    }

    async fn revoke_oidc_grant(&self, grant_id: &str, now: i64) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query("UPDATE oidc_grants SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
            .bind(now)
            .bind(grant_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM oidc_tokens WHERE grant_id = $1 AND kind = 'access'")
            .bind(grant_id)
            .execute(&mut *tx)
            .await?;
        // Refresh tokens stay (spent), so a later reuse is still recognised.
        sqlx::query("UPDATE oidc_tokens SET spent_at = COALESCE(spent_at, $1) WHERE grant_id = $2")
            .bind(now)
            .bind(grant_id)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await
    }

    async fn delete_oidc_token(&self, hash: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM oidc_tokens WHERE hash = $1")
            .bind(hash)
            .execute(self.write())
            .await?;
        self.db().durable().await?;
        Ok(())
    }

    async fn end_oidc_grants(&self, which: GrantsOf<'_>, now: i64) -> StoreResult<usize> {
        let (cond, a, b) = grants_where(&which);
        let mut tx = self.begin_write().await?;
        // The (client, session) pairs to tell, before the grants are marked.
        let rows = sqlx::query(&format!(
            "SELECT DISTINCT g.client_id, g.workspace_id, g.user_id, g.sid, c.backchannel_logout_uri FROM oidc_grants g JOIN oidc_clients c ON c.id = g.client_id WHERE {cond} AND g.id_token_at IS NOT NULL AND g.logged_out_at IS NULL AND c.backchannel_logout_uri IS NOT NULL"
        ))
        .bind(a)
        .bind(b)
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            sqlx::query(&format!("INSERT INTO oidc_logouts ({LOGOUT_COLS}, created_at) VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $7)"))
                .bind(uuid::Uuid::new_v4().to_string())
                .bind(r.try_get::<String, _>("client_id")?)
                .bind(r.try_get::<String, _>("workspace_id")?)
                .bind(r.try_get::<String, _>("backchannel_logout_uri")?)
                .bind(r.try_get::<String, _>("user_id")?)
                .bind(r.try_get::<String, _>("sid")?)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        let sub = format!("SELECT g.id FROM oidc_grants g WHERE {cond}");
        sqlx::query(&format!(
            "DELETE FROM oidc_tokens WHERE kind = 'access' AND grant_id IN ({sub})"
        ))
        .bind(a)
        .bind(b)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "UPDATE oidc_tokens SET spent_at = COALESCE(spent_at, $3) WHERE grant_id IN ({sub})"
        ))
        .bind(a)
        .bind(b)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "UPDATE oidc_grants SET revoked_at = COALESCE(revoked_at, $3), logged_out_at = COALESCE(logged_out_at, $3) WHERE id IN ({sub})"
        ))
        .bind(a)
        .bind(b)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        self.commit(tx).await?;
        Ok(rows.len())
    }

    async fn due_logouts(&self, now: i64, limit: i64) -> StoreResult<Vec<PendingLogout>> {
        // At most a few per app: an app that never answers cannot keep
        // every other app's logouts waiting behind its own.
        let rows = sqlx::query(&format!(
            "SELECT {LOGOUT_COLS} FROM (SELECT {LOGOUT_COLS}, ROW_NUMBER() OVER (PARTITION BY client_id ORDER BY next_at) AS rn FROM oidc_logouts WHERE next_at <= $1 AND delivered_at IS NULL AND failed_at IS NULL) due WHERE rn <= {PER_APP} ORDER BY next_at LIMIT $2"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(self.read())
        .await?;
        rows.iter().map(logout_from).collect()
    }

    async fn claim_logout(&self, l: &PendingLogout, lease_until: i64) -> StoreResult<bool> {
        let n = sqlx::query("UPDATE oidc_logouts SET next_at = $1 WHERE id = $2 AND next_at = $3 AND delivered_at IS NULL AND failed_at IS NULL")
            .bind(lease_until)
            .bind(&l.id)
            .bind(l.next_at)
            .execute(self.write())
            .await?
            .rows_affected();
        self.db().durable().await?;
        Ok(n == 1)
    }

    async fn logout_delivered(&self, id: &str, now: i64) -> StoreResult<()> {
        self.write_one(
            sqlx::query("UPDATE oidc_logouts SET delivered_at = $1, attempts = attempts + 1, last_error = NULL WHERE id = $2")
                .bind(now)
                .bind(id),
        )
        .await
    }

    async fn logout_attempt_failed(
        &self,
        id: &str,
        error: &str,
        next_at: Option<i64>,
        now: i64,
    ) -> StoreResult<()> {
        let q = match next_at {
            Some(at) => sqlx::query("UPDATE oidc_logouts SET attempts = attempts + 1, last_error = $1, next_at = $2 WHERE id = $3")
                .bind(error)
                .bind(at)
                .bind(id),
            None => sqlx::query("UPDATE oidc_logouts SET attempts = attempts + 1, last_error = $1, failed_at = $2 WHERE id = $3")
                .bind(error)
                .bind(now)
                .bind(id),
        };
        self.write_one(q).await
    }

    async fn prune_oidc(&self, before: i64) -> StoreResult<u64> {
        let mut tx = self.begin_write().await?;
        let mut n = 0;
        for q in [
            "DELETE FROM oidc_codes WHERE expires_at < $1",
            "DELETE FROM oidc_tokens WHERE expires_at < $1",
            "DELETE FROM oidc_grants WHERE (revoked_at < $1 OR created_at < $1) AND id NOT IN (SELECT grant_id FROM oidc_tokens) AND id NOT IN (SELECT grant_id FROM oidc_codes)",
            "DELETE FROM oidc_logouts WHERE delivered_at < $1 OR failed_at < $1",
        ] {
            n += sqlx::query(q).bind(before).execute(&mut *tx).await?.rows_affected();
        }
        self.commit(tx).await?;
        Ok(n)
    }

    async fn logout_counts(&self) -> StoreResult<LogoutCounts> {
        let r = sqlx::query("SELECT COALESCE(SUM(CASE WHEN delivered_at IS NULL AND failed_at IS NULL THEN 1 ELSE 0 END), 0) AS pending, COALESCE(SUM(CASE WHEN delivered_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS delivered, COALESCE(SUM(CASE WHEN failed_at IS NOT NULL THEN 1 ELSE 0 END), 0) AS failed FROM oidc_logouts")
            .fetch_one(self.read())
            .await?;
        Ok(LogoutCounts {
            pending: r.try_get("pending")?,
            delivered: r.try_get("delivered")?,
            failed: r.try_get("failed")?,
        })
    }
}
