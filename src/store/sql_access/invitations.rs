//! Invitations: create, look up, revoke, renew, and accept (for an
//! existing user or a new one).

use super::*;

const INV_COLS: &str = "id, workspace_id, email, policies, group_ids, invited_by, created_at, expires_at, accepted_at, revoked_at";

fn invitation_from(r: &AnyRow) -> StoreResult<Invitation> {
    let policies: String = r.try_get("policies")?;
    let groups: String = r.try_get("group_ids")?;
    Ok(Invitation {
        id: r.try_get("id")?,
        workspace_id: r.try_get("workspace_id")?,
        email: r.try_get("email")?,
        policies: policies_from(&policies)?,
        group_ids: json_list(&groups),
        invited_by: r.try_get("invited_by")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        accepted_at: r.try_get("accepted_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

/// Accepts an open invitation inside a transaction (see
/// [`AccessStore::accept_invitation`]).
async fn accept_in_tx(
    tx: &mut Transaction<'_, Any>,
    invitation_id: &str,
    user_id: &str,
    now: i64,
) -> StoreResult<()> {
    exec_one(
            sqlx::query("UPDATE invitations SET accepted_at = $1 WHERE id = $2 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $1").bind(now).bind(invitation_id),
            &mut **tx,
        )
        .await?;
    let row =
        sqlx::query("SELECT workspace_id, policies, group_ids FROM invitations WHERE id = $1")
            .bind(invitation_id)
            .fetch_one(&mut **tx)
            .await?;
    let ws: String = row.try_get("workspace_id")?;
    let granted: String = row.try_get("policies")?;
    let groups: String = row.try_get("group_ids")?;
    let existing =
        sqlx::query("SELECT policies FROM memberships WHERE workspace_id = $1 AND user_id = $2")
            .bind(&ws)
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?;
    match existing {
        Some(r) => {
            let have: String = r.try_get("policies")?;
            let mut merged = policies_from(&have)?;
            for p in policies_from(&granted)? {
                if !merged.contains(&p) {
                    merged.push(p);
                }
            }
            sqlx::query(
                "UPDATE memberships SET policies = $1 WHERE workspace_id = $2 AND user_id = $3",
            )
            .bind(policies_text(&merged)?)
            .bind(&ws)
            .bind(user_id)
            .execute(&mut **tx)
            .await?;
        }
        None => {
            insert_member(tx, &ws, user_id, &policies_from(&granted)?, now).await?;
        }
    }
    for g in json_list(&groups) {
        // Groups deleted since the invitation was sent are skipped.
        sqlx::query(
                "INSERT INTO group_members (group_id, user_id, workspace_id) SELECT id, $2, workspace_id FROM user_groups WHERE id = $1 AND workspace_id = $3 \
                 ON CONFLICT (group_id, user_id) DO NOTHING",
            )
            .bind(&g)
            .bind(user_id)
            .bind(&ws)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(super) async fn create_invitation(
    s: &SqlStore,
    inv: &NewInvitation,
) -> StoreResult<Invitation> {
    let email_norm = normalize_email(&inv.email);
    let mut tx = s.begin_write().await?;
    let member = sqlx::query("SELECT 1 AS one FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.workspace_id = $1 AND u.email_norm = $2")
        .bind(&inv.workspace_id)
        .bind(&email_norm)
        .fetch_optional(&mut *tx)
        .await?;
    if member.is_some() {
        return Err(StoreError::Conflict(
            "this person is already a member of the workspace".into(),
        ));
    }
    sqlx::query(
        "UPDATE invitations SET revoked_at = $1 WHERE workspace_id = $2 AND email_norm = $3 \
         AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at <= $1",
    )
    .bind(inv.now)
    .bind(&inv.workspace_id)
    .bind(&email_norm)
    .execute(&mut *tx)
    .await?;
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO invitations (id, workspace_id, email, email_norm, token_hash, policies, group_ids, invited_by, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&id)
    .bind(&inv.workspace_id)
    .bind(inv.email.trim())
    .bind(&email_norm)
    .bind(&inv.token_hash)
    .bind(policies_text(&inv.policies)?)
    .bind(to_json(&inv.group_ids)?)
    .bind(&inv.invited_by)
    .bind(inv.now)
    .bind(inv.expires_at)
    .execute(&mut *tx)
    .await?;
    let facts = serde_json::json!({"invitation_id": id});
    s.commit_noting(tx, None, Some(facts)).await?;
    Ok(Invitation {
        id,
        workspace_id: inv.workspace_id.clone(),
        email: inv.email.trim().into(),
        policies: inv.policies.clone(),
        group_ids: inv.group_ids.clone(),
        invited_by: inv.invited_by.clone(),
        created_at: inv.now,
        expires_at: inv.expires_at,
        accepted_at: None,
        revoked_at: None,
    })
}

pub(super) async fn get_invitation(
    s: &SqlStore,
    workspace_id: &str,
    id: &str,
) -> StoreResult<Option<Invitation>> {
    let row = sqlx::query(&format!(
        "SELECT {INV_COLS} FROM invitations WHERE workspace_id = $1 AND id = $2"
    ))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(s.read())
    .await?;
    row.as_ref().map(invitation_from).transpose()
}

pub(super) async fn invitation_by_token(
    s: &SqlStore,
    token_hash: &str,
) -> StoreResult<Option<Invitation>> {
    let row = sqlx::query(&format!(
        "SELECT {INV_COLS} FROM invitations WHERE token_hash = $1"
    ))
    .bind(token_hash)
    .fetch_optional(s.read())
    .await?;
    row.as_ref().map(invitation_from).transpose()
}

pub(super) async fn list_invitations(
    s: &SqlStore,
    workspace_id: &str,
    now: i64,
) -> StoreResult<Vec<Invitation>> {
    let rows = sqlx::query(&format!(
        "SELECT {INV_COLS} FROM invitations WHERE workspace_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2 ORDER BY email_norm"
    ))
    .bind(workspace_id)
    .bind(now)
    .fetch_all(s.read())
    .await?;
    rows.iter().map(invitation_from).collect()
}

pub(super) async fn revoke_invitation(
    s: &SqlStore,
    workspace_id: &str,
    id: &str,
    now: i64,
) -> StoreResult<()> {
    s.write_one(
        sqlx::query("UPDATE invitations SET revoked_at = $1 WHERE workspace_id = $2 AND id = $3 AND accepted_at IS NULL AND revoked_at IS NULL")
            .bind(now)
            .bind(workspace_id)
            .bind(id))
    .await
}

pub(super) async fn renew_invitation(
    s: &SqlStore,
    workspace_id: &str,
    id: &str,
    token_hash: &str,
    expires_at: i64,
) -> StoreResult<()> {
    s.write_one(
        sqlx::query("UPDATE invitations SET token_hash = $1, expires_at = $2 WHERE workspace_id = $3 AND id = $4 AND accepted_at IS NULL AND revoked_at IS NULL")
            .bind(token_hash)
            .bind(expires_at)
            .bind(workspace_id)
            .bind(id))
    .await
}

pub(super) async fn accept_invitation(
    s: &SqlStore,
    invitation_id: &str,
    user_id: &str,
    now: i64,
) -> StoreResult<()> {
    let mut tx = s.begin_write().await?;
    accept_in_tx(&mut tx, invitation_id, user_id, now).await?;
    s.commit(tx).await
}

pub(super) async fn accept_invitation_as_new_user(
    s: &SqlStore,
    invitation_id: &str,
    new: &NewUser,
    now: i64,
) -> StoreResult<User> {
    let mut tx = s.begin_write().await?;
    let user = insert_user(&mut *tx, new, now).await?;
    accept_in_tx(&mut tx, invitation_id, &user.id, now).await?;
    s.commit(tx).await?;
    Ok(user)
}
