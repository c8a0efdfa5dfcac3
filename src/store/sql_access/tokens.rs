//! API and SCIM tokens (the secret is kept only as a hash).

use super::*;

const TOKEN_COLS: &str =
    "id, workspace_id, kind, description, policies, created_by, created_at, last_used_at";

fn token_from(r: &AnyRow) -> StoreResult<ApiToken> {
    let policies: String = r.try_get("policies")?;
    Ok(ApiToken {
        id: r.try_get("id")?,
        workspace_id: r.try_get("workspace_id")?,
        kind: r.try_get("kind")?,
        description: r.try_get("description")?,
        policies: policies_from(&policies)?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        last_used_at: r.try_get("last_used_at")?,
    })
}

pub(super) async fn create_token(s: &SqlStore, t: &ApiToken, token_hash: &str) -> StoreResult<()> {
    s.exec_write(sqlx::query(
        "INSERT INTO api_tokens (id, workspace_id, token_hash, kind, description, policies, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&t.id)
    .bind(&t.workspace_id)
    .bind(token_hash)
    .bind(&t.kind)
    .bind(&t.description)
    .bind(policies_text(&t.policies)?)
    .bind(&t.created_by)
    .bind(t.created_at)
    , None)
    .await?;
    Ok(())
}

pub(super) async fn token_by_hash(
    s: &SqlStore,
    token_hash: &str,
    now: i64,
) -> StoreResult<Option<ApiToken>> {
    let row = sqlx::query(&format!(
        "SELECT {TOKEN_COLS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
    ))
    .bind(token_hash)
    .fetch_optional(s.read())
    .await?;
    let Some(t) = row.as_ref().map(token_from).transpose()? else {
        return Ok(None);
    };
    if t.last_used_at.is_none_or(|l| now - l >= 60) {
        s.exec_write(
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&t.id),
            None,
        )
        .await?;
    }
    Ok(Some(t))
}

pub(super) async fn list_tokens(
    s: &SqlStore,
    workspace_id: &str,
    kind: &str,
) -> StoreResult<Vec<ApiToken>> {
    let rows = sqlx::query(&format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE workspace_id = $1 AND kind = $2 AND revoked_at IS NULL ORDER BY created_at, id"))
        .bind(workspace_id)
        .bind(kind)
        .fetch_all(s.read())
        .await?;
    rows.iter().map(token_from).collect()
}

pub(super) async fn revoke_token(
    s: &SqlStore,
    workspace_id: &str,
    kind: &str,
    id: &str,
    now: i64,
) -> StoreResult<()> {
    s.write_one(
        sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE workspace_id = $2 AND kind = $3 AND id = $4 AND revoked_at IS NULL").bind(now).bind(workspace_id).bind(kind).bind(id))
    .await
}
