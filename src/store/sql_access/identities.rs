//! Identities linked to users (Twilio, SSO) and the user fields they
//! change: email, password removal, last sign-in method.

use super::*;

pub(super) async fn link_identity(
    s: &SqlStore,
    provider: &str,
    subject: &str,
    user_id: &str,
    email: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    s.exec_write(sqlx::query("INSERT INTO identity_links (provider, subject, user_id, email, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(provider)
        .bind(subject)
        .bind(user_id)
        .bind(email)
        .bind(now)
        , None)
        .await?;
    Ok(())
}

pub(super) async fn identity_user(
    s: &SqlStore,
    provider: &str,
    subject: &str,
) -> StoreResult<Option<String>> {
    let row =
        sqlx::query("SELECT user_id FROM identity_links WHERE provider = $1 AND subject = $2")
            .bind(provider)
            .bind(subject)
            .fetch_optional(s.read())
            .await?;
    row.map(|r| r.try_get("user_id"))
        .transpose()
        .map_err(StoreError::from)
}

pub(super) async fn linked_user(
    s: &SqlStore,
    provider: &str,
    subject: &str,
) -> StoreResult<Option<User>> {
    let cols = crate::store::sql::qualified(crate::store::sql::USER_COLS, "u", None);
    let row = sqlx::query(&format!(
        "SELECT {cols} FROM identity_links l JOIN users u ON u.id = l.user_id \
         WHERE l.provider = $1 AND l.subject = $2"
    ))
    .bind(provider)
    .bind(subject)
    .fetch_optional(s.read())
    .await?;
    row.as_ref()
        .map(crate::store::sql::user_from)
        .transpose()
        .map_err(StoreError::from)
}

pub(super) async fn linked_member(
    s: &SqlStore,
    provider: &str,
    subject: &str,
    workspace_id: &str,
) -> StoreResult<Option<(User, bool)>> {
    let cols = crate::store::sql::qualified(crate::store::sql::USER_COLS, "u", None);
    let row = sqlx::query(&format!(
        "SELECT {cols}, CAST(CASE WHEN EXISTS (SELECT 1 FROM memberships m \
           WHERE m.workspace_id = $3 AND m.user_id = u.id) THEN 1 ELSE 0 END AS BIGINT) AS is_member \
         FROM identity_links l JOIN users u ON u.id = l.user_id \
         WHERE l.provider = $1 AND l.subject = $2"
    ))
    .bind(provider)
    .bind(subject)
    .bind(workspace_id)
    .fetch_optional(s.read())
    .await?;
    let Some(row) = row else { return Ok(None) };
    let member: i64 = row.try_get("is_member")?;
    Ok(Some((crate::store::sql::user_from(&row)?, member == 1)))
}

pub(super) async fn identities_of(
    s: &SqlStore,
    user_id: &str,
) -> StoreResult<Vec<(String, String)>> {
    let rows = sqlx::query(
        "SELECT provider, subject FROM identity_links WHERE user_id = $1 ORDER BY provider",
    )
    .bind(user_id)
    .fetch_all(s.read())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("provider")?, r.try_get("subject")?)))
        .collect()
}

pub(super) async fn unlink_identity(
    s: &SqlStore,
    provider: &str,
    user_id: &str,
) -> StoreResult<()> {
    s.write_one(
        sqlx::query("DELETE FROM identity_links WHERE provider = $1 AND user_id = $2")
            .bind(provider)
            .bind(user_id),
    )
    .await
}

pub(super) async fn create_user_with_identity(
    s: &SqlStore,
    new: &NewUser,
    provider: &str,
    subject: &str,
    now: i64,
) -> StoreResult<User> {
    let mut tx = s.begin_write().await?;
    let user = insert_user(&mut *tx, new, now).await?;
    sqlx::query("INSERT INTO identity_links (provider, subject, user_id, email, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(provider)
        .bind(subject)
        .bind(&user.id)
        .bind(&user.email)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    s.commit(tx).await?;
    Ok(user)
}

/// Changes a user's email and, in the same transaction, the sort key of
/// their memberships (the member list's order).
pub(super) async fn set_user_email(s: &SqlStore, user_id: &str, email: &str) -> StoreResult<()> {
    let norm = normalize_email(email);
    let mut tx = s.begin_write().await?;
    exec_one(
        sqlx::query("UPDATE users SET email = $1, email_norm = $2 WHERE id = $3")
            .bind(email.trim())
            .bind(&norm)
            .bind(user_id),
        &mut *tx,
    )
    .await?;
    sqlx::query("UPDATE memberships SET sort_email = $1 WHERE user_id = $2")
        .bind(&norm)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    s.commit(tx).await
}

pub(super) async fn clear_password(s: &SqlStore, user_id: &str) -> StoreResult<()> {
    s.write_one(sqlx::query("UPDATE users SET password_hash = NULL WHERE id = $1").bind(user_id))
        .await
}
