//! Members: the effective access of one, the member list (with open
//! invitations, filters and cursor), role and group changes, removal.

use super::*;

async fn set_user_groups(
    tx: &mut Transaction<'_, Any>,
    workspace_id: &str,
    user_id: &str,
    group_ids: &[String],
) -> StoreResult<()> {
    sqlx::query("DELETE FROM group_members WHERE workspace_id = $1 AND user_id = $2")
        .bind(workspace_id)
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    for g in group_ids {
        let done = sqlx::query(
            "INSERT INTO group_members (group_id, user_id, workspace_id) \
             SELECT id, $2, workspace_id FROM user_groups WHERE id = $1 AND workspace_id = $3",
        )
        .bind(g)
        .bind(user_id)
        .bind(workspace_id)
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "no group `{g}` in this workspace"
            )));
        }
    }
    Ok(())
}

pub(super) async fn effective_access(
    s: &SqlStore,
    workspace_id: &str,
    user_id: &str,
) -> StoreResult<Option<EffectiveAccess>> {
    let rows = sqlx::query(
        "SELECT m.policies AS direct, g.id AS group_id, g.policies AS group_policies FROM memberships m \
         LEFT JOIN group_members gm ON gm.user_id = m.user_id AND gm.workspace_id = m.workspace_id \
         LEFT JOIN user_groups g ON g.id = gm.group_id \
         WHERE m.workspace_id = $1 AND m.user_id = $2",
    )
    .bind(workspace_id)
    .bind(user_id)
    .fetch_all(s.read())
    .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let direct: String = first.try_get("direct")?;
    let mut access = EffectiveAccess {
        direct: policies_from(&direct)?,
        groups: Vec::new(),
    };
    for r in &rows {
        let gid: Option<String> = r.try_get("group_id")?;
        let gp: Option<String> = r.try_get("group_policies")?;
        if let (Some(gid), Some(gp)) = (gid, gp) {
            access.groups.push((gid, policies_from(&gp)?));
        }
    }
    Ok(Some(access))
}

pub(super) async fn list_members(
    s: &SqlStore,
    workspace_id: &str,
    filter: &MemberFilter,
    cursor: Option<&str>,
    limit: i64,
    now: i64,
) -> StoreResult<Vec<(String, MemberRow)>> {
    let mut binds = vec![
        Bind::S(workspace_id.to_string()),
        Bind::I(now),
        Bind::I(i64::from(
            filter.include_invited && filter.group_id.is_none(),
        )),
    ];
    let mut wheres: Vec<String> = Vec::new();
    if let Some(c) = cursor {
        let parts = decode_cursor(c)?;
        let (Some(e), Some(id)) = (parts.first(), parts.get(1)) else {
            return Err(StoreError::Invalid("malformed cursor".into()));
        };
        binds.push(Bind::S(e.clone()));
        binds.push(Bind::S(id.clone()));
        let (a, b) = (binds.len() - 1, binds.len());
        wheres.push(format!(
            "(t.sort_email > ${a} OR (t.sort_email = ${a} AND t.id > ${b}))"
        ));
    }
    if let Some(e) = filter.email.as_deref().filter(|e| !e.is_empty()) {
        binds.push(Bind::S(format!("%{}%", like_escape(&normalize_email(e)))));
        wheres.push(format!("t.sort_email LIKE ${} ESCAPE '\\'", binds.len()));
    }
    if let Some(role) = &filter.role {
        // A substring test, case-sensitive on both databases (SQLite's
        // LIKE folds case): the role id matches exactly.
        binds.push(Bind::S(role_needle(role)));
        wheres.push(match s.backend() {
            Backend::Sqlite => format!("instr(t.policies, ${}) > 0", binds.len()),
            Backend::Postgres => format!("strpos(t.policies, ${}) > 0", binds.len()),
        });
    }
    if let Some(g) = &filter.group_id {
        binds.push(Bind::S(g.clone()));
        wheres.push(format!(
            "EXISTS (SELECT 1 FROM group_members gm WHERE gm.group_id = ${} AND gm.user_id = t.id)",
            binds.len()
        ));
    }
    binds.push(Bind::I(limit));
    let sql = format!(
        "SELECT * FROM (\
           SELECT u.email_norm AS sort_email, u.id AS id, u.email AS email, u.name AS name, CAST(0 AS BIGINT) AS invited, \
                  m.policies AS policies, u.last_auth_method AS auth_method, u.totp_enabled_at AS totp_on, \
                  m.created_at AS created_at, u.last_login_at AS last_login_at, \
                  (SELECT COUNT(*) FROM identity_links l WHERE l.user_id = u.id AND l.provider = 'twilio') AS twilio \
           FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.workspace_id = $1 \
           UNION ALL \
           SELECT i.email_norm, i.id, i.email, '', CAST(1 AS BIGINT), i.policies, CAST(NULL AS TEXT), CAST(NULL AS BIGINT), \
                  i.created_at, CAST(NULL AS BIGINT), CAST(0 AS BIGINT) \
           FROM invitations i WHERE i.workspace_id = $1 AND i.accepted_at IS NULL AND i.revoked_at IS NULL \
             AND i.expires_at > $2 AND $3 = 1\
         ) t {} ORDER BY t.sort_email, t.id LIMIT ${}",
        if wheres.is_empty() { String::new() } else { format!("WHERE {}", wheres.join(" AND ")) },
        binds.len()
    );
    let rows = bind_all(sqlx::query(&sql), &binds)
        .fetch_all(s.read())
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut user_ids = Vec::new();
    for r in &rows {
        let policies: String = r.try_get("policies")?;
        let invited: i64 = r.try_get("invited")?;
        let sort: String = r.try_get("sort_email")?;
        let id: String = r.try_get("id")?;
        let twilio: i64 = r.try_get("twilio")?;
        let totp: Option<i64> = r.try_get("totp_on")?;
        if invited == 0 {
            user_ids.push(id.clone());
        }
        out.push((
            encode_cursor(&[&sort, &id]),
            MemberRow {
                id,
                email: r.try_get("email")?,
                name: r.try_get("name")?,
                invited: invited == 1,
                policies: policies_from(&policies)?,
                group_ids: Vec::new(),
                auth_method: r.try_get("auth_method")?,
                twilio_linked: twilio > 0,
                mfa_enabled: totp.is_some(),
                created_at: r.try_get("created_at")?,
                last_login_at: r.try_get("last_login_at")?,
            },
        ));
    }
    if !user_ids.is_empty() {
        let mut binds = vec![Bind::S(workspace_id.to_string())];
        let mut marks = Vec::new();
        for id in &user_ids {
            binds.push(Bind::S(id.clone()));
            marks.push(format!("${}", binds.len()));
        }
        let sql = format!("SELECT user_id, group_id FROM group_members WHERE workspace_id = $1 AND user_id IN ({}) ORDER BY group_id", marks.join(", "));
        let rows = bind_all(sqlx::query(&sql), &binds)
            .fetch_all(s.read())
            .await?;
        for r in rows {
            let uid: String = r.try_get("user_id")?;
            let gid: String = r.try_get("group_id")?;
            if let Some((_, m)) = out.iter_mut().find(|(_, m)| !m.invited && m.id == uid) {
                m.group_ids.push(gid);
            }
        }
    }
    // Invitations show the groups they will grant.
    for (_, m) in out.iter_mut().filter(|(_, m)| m.invited) {
        if let Some(row) = sqlx::query("SELECT group_ids FROM invitations WHERE id = $1")
            .bind(&m.id)
            .fetch_optional(s.read())
            .await?
        {
            let g: String = row.try_get("group_ids")?;
            m.group_ids = json_list(&g);
        }
    }
    Ok(out)
}

pub(super) async fn update_member(
    s: &SqlStore,
    workspace_id: &str,
    user_id: &str,
    policies: Option<&[Policy]>,
    group_ids: Option<&[String]>,
) -> StoreResult<()> {
    let mut tx = s.begin_write().await?;
    lock_workspace(&mut tx, workspace_id).await?;
    if let Some(p) = policies {
        exec_one(
            sqlx::query(
                "UPDATE memberships SET policies = $1 WHERE workspace_id = $2 AND user_id = $3",
            )
            .bind(policies_text(p)?)
            .bind(workspace_id)
            .bind(user_id),
            &mut *tx,
        )
        .await?;
    } else {
        let found = sqlx::query(
            "SELECT 1 AS one FROM memberships WHERE workspace_id = $1 AND user_id = $2",
        )
        .bind(workspace_id)
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Err(StoreError::NotFound);
        }
    }
    if let Some(g) = group_ids {
        set_user_groups(&mut tx, workspace_id, user_id, g).await?;
    }
    ensure_owner_left(&mut tx, workspace_id).await?;
    s.commit(tx).await
}

pub(super) async fn remove_member_checked(
    s: &SqlStore,
    workspace_id: &str,
    user_id: &str,
) -> StoreResult<()> {
    let mut tx = s.begin_write().await?;
    lock_workspace(&mut tx, workspace_id).await?;
    sqlx::query("DELETE FROM group_members WHERE workspace_id = $1 AND user_id = $2")
        .bind(workspace_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    exec_one(
        sqlx::query("DELETE FROM memberships WHERE workspace_id = $1 AND user_id = $2")
            .bind(workspace_id)
            .bind(user_id),
        &mut *tx,
    )
    .await?;
    ensure_owner_left(&mut tx, workspace_id).await?;
    s.commit(tx).await
}

pub(super) async fn count_owners(s: &SqlStore, workspace_id: &str) -> StoreResult<i64> {
    let mut conn = s.read().acquire().await?;
    owners_in(&mut conn, workspace_id).await
}
