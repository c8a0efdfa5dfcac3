//! [`SsoStore`] for both SQL backends.

use super::sql::SqlStore;
use super::sso::*;
use super::{StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::any::AnyRow;
use sqlx::Row;

const CONN_COLS: &str =
    "id, workspace_id, kind, name, enabled_at, allow_idp_initiated, config, created_at, updated_at";

fn connection_from(r: &AnyRow) -> StoreResult<SsoConnection> {
    let config: String = r.try_get("config")?;
    let enabled: Option<i64> = r.try_get("enabled_at")?;
    let idp: Option<i64> = r.try_get("allow_idp_initiated")?;
    Ok(SsoConnection {
        id: r.try_get("id")?,
        workspace_id: r.try_get("workspace_id")?,
        kind: r.try_get("kind")?,
        name: r.try_get("name")?,
        enabled: enabled.is_some(),
        allow_idp_initiated: idp.is_some(),
        config: serde_json::from_str(&config)
            .map_err(|e| StoreError::Other(format!("connection config unreadable: {e}")))?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn domain_from(r: &AnyRow) -> StoreResult<Domain> {
    Ok(Domain {
        domain: r.try_get("domain")?,
        workspace_id: r.try_get("workspace_id")?,
        token: r.try_get("token")?,
        verified_at: r.try_get("verified_at")?,
        created_at: r.try_get("created_at")?,
    })
}

fn flag(on: bool, at: i64) -> Option<i64> {
    on.then_some(at)
}

#[async_trait]
impl SsoStore for SqlStore {
    async fn create_connection(&self, c: &SsoConnection) -> StoreResult<()> {
        self.exec_write(
            sqlx::query(&format!(
            "INSERT INTO sso_connections ({CONN_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
            .bind(&c.id)
            .bind(&c.workspace_id)
            .bind(&c.kind)
            .bind(&c.name)
            .bind(flag(c.enabled, c.updated_at))
            .bind(flag(c.allow_idp_initiated, c.updated_at))
            .bind(c.config.to_string())
            .bind(c.created_at)
            .bind(c.updated_at),
            None,
        )
        .await?;
        Ok(())
    }

    async fn update_connection(
        &self,
        c: &SsoConnection,
        read_updated_at: i64,
    ) -> StoreResult<bool> {
        let changed = self
            .exec_write(
                sqlx::query("UPDATE sso_connections SET name = $1, enabled_at = $2, allow_idp_initiated = $3, config = $4, updated_at = $5 WHERE id = $6 AND workspace_id = $7 AND updated_at = $8")
                    .bind(&c.name)
                    .bind(flag(c.enabled, c.updated_at))
                    .bind(flag(c.allow_idp_initiated, c.updated_at))
                    .bind(c.config.to_string())
                    .bind(c.updated_at)
                    .bind(&c.id)
                    .bind(&c.workspace_id)
                    .bind(read_updated_at),
                None,
            )
            .await?;
        if changed > 0 {
            return Ok(true);
        }
        // Gone, or changed since it was read.
        match self.get_connection(&c.id).await? {
            Some(now) if now.workspace_id == c.workspace_id => Ok(false),
            _ => Err(StoreError::NotFound),
        }
    }

    async fn get_connection(&self, id: &str) -> StoreResult<Option<SsoConnection>> {
        let row = sqlx::query(&format!(
            "SELECT {CONN_COLS} FROM sso_connections WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.read())
        .await?;
        row.as_ref().map(connection_from).transpose()
    }

    async fn connection_with_workspace(
        &self,
        id: &str,
    ) -> StoreResult<Option<(SsoConnection, crate::domain::model::Workspace)>> {
        let conn_cols = super::sql::qualified(CONN_COLS, "c", None);
        let ws_cols = super::sql::qualified(super::sql::WS_COLS, "w", Some("ws_"));
        let row = sqlx::query(&format!(
            "SELECT {conn_cols}, {ws_cols} FROM sso_connections c \
             JOIN workspaces w ON w.id = c.workspace_id WHERE c.id = $1"
        ))
        .bind(id)
        .fetch_optional(self.read())
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some((
            connection_from(&row)?,
            super::sql::workspace_from_prefixed(&row, "ws_")?,
        )))
    }

    async fn list_connections(&self, workspace_id: &str) -> StoreResult<Vec<SsoConnection>> {
        let rows = sqlx::query(&format!("SELECT {CONN_COLS} FROM sso_connections WHERE workspace_id = $1 ORDER BY created_at, id"))
            .bind(workspace_id)
            .fetch_all(self.read())
            .await?;
        rows.iter().map(connection_from).collect()
    }

    async fn delete_connection(&self, workspace_id: &str, id: &str) -> StoreResult<()> {
        self.write_one(
            sqlx::query("DELETE FROM sso_connections WHERE workspace_id = $1 AND id = $2")
                .bind(workspace_id)
                .bind(id),
        )
        .await
    }

    async fn create_domain(&self, d: &Domain) -> StoreResult<()> {
        self.exec_write(sqlx::query("INSERT INTO domains (domain, workspace_id, token, verified_at, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&d.domain)
            .bind(&d.workspace_id)
            .bind(&d.token)
            .bind(d.verified_at)
            .bind(d.created_at)
            , None)
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => StoreError::Conflict("this domain is already claimed by a workspace".into()),
                other => other,
            })?;
        Ok(())
    }

    async fn get_domain(&self, domain: &str) -> StoreResult<Option<Domain>> {
        let row = sqlx::query("SELECT domain, workspace_id, token, verified_at, created_at FROM domains WHERE domain = $1").bind(domain).fetch_optional(self.read()).await?;
        row.as_ref().map(domain_from).transpose()
    }

    async fn list_domains(&self, workspace_id: &str) -> StoreResult<Vec<Domain>> {
        let rows = sqlx::query("SELECT domain, workspace_id, token, verified_at, created_at FROM domains WHERE workspace_id = $1 ORDER BY domain")
            .bind(workspace_id)
            .fetch_all(self.read())
            .await?;
        rows.iter().map(domain_from).collect()
    }

    async fn mark_domain_verified(&self, domain: &str, now: i64) -> StoreResult<()> {
        self.write_one(
            sqlx::query(
                "UPDATE domains SET verified_at = COALESCE(verified_at, $1) WHERE domain = $2",
            )
            .bind(now)
            .bind(domain),
        )
        .await
    }

    async fn delete_domain(&self, workspace_id: &str, domain: &str) -> StoreResult<()> {
        self.write_one(
            sqlx::query("DELETE FROM domains WHERE workspace_id = $1 AND domain = $2")
                .bind(workspace_id)
                .bind(domain),
        )
        .await
    }
}
