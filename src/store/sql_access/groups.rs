//! User groups and their members.

use super::*;

fn group_from(r: &AnyRow, members: Vec<String>) -> StoreResult<Group> {
    let policies: String = r.try_get("policies")?;
    Ok(Group {
        id: r.try_get("id")?,
        workspace_id: r.try_get("workspace_id")?,
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        policies: policies_from(&policies)?,
        member_ids: members,
        created_at: r.try_get("created_at")?,
    })
}

pub(super) async fn create_group(
    s: &SqlStore,
    workspace_id: &str,
    name: &str,
    description: &str,
    policies: &[Policy],
    now: i64,
) -> StoreResult<Group> {
    let id = uuid::Uuid::new_v4().to_string();
    s.exec_write(sqlx::query("INSERT INTO user_groups (id, workspace_id, name, description, policies, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(&id)
        .bind(workspace_id)
        .bind(name.trim())
        .bind(description.trim())
        .bind(policies_text(policies)?)
        .bind(now)
        , Some(&id))
        .await?;
    Ok(Group {
        id,
        workspace_id: workspace_id.into(),
        name: name.trim().into(),
        description: description.trim().into(),
        policies: policies.to_vec(),
        member_ids: Vec::new(),
        created_at: now,
    })
}

pub(super) async fn get_group(
    s: &SqlStore,
    workspace_id: &str,
    group_id: &str,
) -> StoreResult<Option<Group>> {
    let row = sqlx::query("SELECT id, workspace_id, name, description, policies, created_at FROM user_groups WHERE workspace_id = $1 AND id = $2")
        .bind(workspace_id)
        .bind(group_id)
        .fetch_optional(s.read())
        .await?;
    let Some(row) = row else { return Ok(None) };
    let members =
        sqlx::query("SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY user_id")
            .bind(group_id)
            .fetch_all(s.read())
            .await?;
    let ids = members
        .iter()
        .map(|r| r.try_get("user_id"))
        .collect::<Result<Vec<String>, _>>()?;
    Ok(Some(group_from(&row, ids)?))
}

/// The workspace's groups by name, each with its members when `members`
/// (one more statement that reads every group membership of the
/// workspace, which at scale is most of the cost).
pub(super) async fn list_groups(
    s: &SqlStore,
    workspace_id: &str,
    members: bool,
) -> StoreResult<Vec<Group>> {
    let rows = sqlx::query("SELECT id, workspace_id, name, description, policies, created_at FROM user_groups WHERE workspace_id = $1 ORDER BY name, id")
        .bind(workspace_id)
        .fetch_all(s.read())
        .await?;
    let mut of_group: std::collections::HashMap<String, Vec<String>> =
        std::collections::HashMap::new();
    if members {
        let links = sqlx::query(
            "SELECT group_id, user_id FROM group_members WHERE workspace_id = $1 ORDER BY user_id",
        )
        .bind(workspace_id)
        .fetch_all(s.read())
        .await?;
        for m in &links {
            of_group
                .entry(m.try_get("group_id")?)
                .or_default()
                .push(m.try_get("user_id")?);
        }
    }
    rows.iter()
        .map(|r| {
            let id: String = r.try_get("id")?;
            group_from(r, of_group.remove(&id).unwrap_or_default())
        })
        .collect()
}

pub(super) async fn member_counts(
    s: &SqlStore,
    workspace_id: &str,
) -> StoreResult<Vec<(String, i64)>> {
    let rows = sqlx::query(
        "SELECT group_id, COUNT(*) AS n FROM group_members WHERE workspace_id = $1 GROUP BY group_id",
    )
    .bind(workspace_id)
    .fetch_all(s.read())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("group_id")?, r.try_get("n")?)))
        .collect()
}

pub(super) async fn update_group(
    s: &SqlStore,
    workspace_id: &str,
    group_id: &str,
    name: Option<&str>,
    description: Option<&str>,
    policies: Option<&[Policy]>,
) -> StoreResult<()> {
    let mut tx = s.begin_write().await?;
    lock_workspace(&mut tx, workspace_id).await?;
    let found = sqlx::query("SELECT 1 AS one FROM user_groups WHERE workspace_id = $1 AND id = $2")
        .bind(workspace_id)
        .bind(group_id)
        .fetch_optional(&mut *tx)
        .await?;
    if found.is_none() {
        return Err(StoreError::NotFound);
    }
    if let Some(n) = name {
        sqlx::query("UPDATE user_groups SET name = $1 WHERE id = $2")
            .bind(n.trim())
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(d) = description {
        sqlx::query("UPDATE user_groups SET description = $1 WHERE id = $2")
            .bind(d.trim())
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
    }
    if let Some(p) = policies {
        sqlx::query("UPDATE user_groups SET policies = $1 WHERE id = $2")
            .bind(policies_text(p)?)
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        ensure_owner_left(&mut tx, workspace_id).await?;
    }
    s.commit(tx).await
}

pub(super) async fn delete_group(
    s: &SqlStore,
    workspace_id: &str,
    group_id: &str,
) -> StoreResult<()> {
    let mut tx = s.begin_write().await?;
    lock_workspace(&mut tx, workspace_id).await?;
    exec_one(
        sqlx::query("DELETE FROM user_groups WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(group_id),
        &mut *tx,
    )
    .await?;
    sqlx::query("DELETE FROM group_members WHERE group_id = $1")
        .bind(group_id)
        .execute(&mut *tx)
        .await?;
    ensure_owner_left(&mut tx, workspace_id).await?;
    s.commit(tx).await
}

pub(super) async fn add_group_member(
    s: &SqlStore,
    workspace_id: &str,
    group_id: &str,
    user_id: &str,
) -> StoreResult<()> {
    let done = s.exec_write(sqlx::query(
        "INSERT INTO group_members (group_id, user_id, workspace_id) \
         SELECT g.id, m.user_id, g.workspace_id FROM user_groups g JOIN memberships m ON m.workspace_id = g.workspace_id \
         WHERE g.id = $1 AND g.workspace_id = $2 AND m.user_id = $3 \
         ON CONFLICT (group_id, user_id) DO NOTHING",
    )
    .bind(group_id)
    .bind(workspace_id)
    .bind(user_id)
    , None)
    .await?;
    if done == 0 {
        // Either already in the group (fine) or no such group/member.
        let present = sqlx::query("SELECT 1 AS one FROM group_members WHERE group_id = $1 AND user_id = $2 AND workspace_id = $3")
            .bind(group_id)
            .bind(user_id)
            .bind(workspace_id)
            .fetch_optional(s.read())
            .await?;
        if present.is_none() {
            return Err(StoreError::NotFound);
        }
    }
    Ok(())
}

pub(super) async fn remove_group_member(
    s: &SqlStore,
    workspace_id: &str,
    group_id: &str,
    user_id: &str,
) -> StoreResult<()> {
    let mut tx = s.begin_write().await?;
    lock_workspace(&mut tx, workspace_id).await?;
    exec_one(
        sqlx::query(
            "DELETE FROM group_members WHERE workspace_id = $1 AND group_id = $2 AND user_id = $3",
        )
        .bind(workspace_id)
        .bind(group_id)
        .bind(user_id),
        &mut *tx,
    )
    .await?;
    ensure_owner_left(&mut tx, workspace_id).await?;
    s.commit(tx).await
}
