//! [`AccessStore`] for both SQL backends (portable SQL, `$N` placeholders).

use super::access::*;
use super::sql::{
    exec_one, insert_user, policies_from, policies_text, workspace_from, Backend, SqlStore, WS_COLS,
};
use super::{NewUser, StoreError, StoreResult};
use crate::crypto;
use crate::domain::model::{
    normalize_email, Actor, ApiToken, AuditEvent, EffectiveAccess, Group, Invitation, MemberRow,
    Resource, User, Workspace,
};
use crate::domain::roles::{Policy, WORKSPACE_OWNER};
use async_trait::async_trait;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Row, Transaction};

/// A value to bind to a dynamically built statement.
pub(crate) enum Bind {
    S(String),
    I(i64),
}

pub(crate) fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, Any, AnyArguments<'q>>,
    binds: &'q [Bind],
) -> sqlx::query::Query<'q, Any, AnyArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::S(s) => q.bind(s.as_str()),
            Bind::I(i) => q.bind(*i),
        };
    }
    q
}

fn json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn to_json<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Other(e.to_string()))
}

/// How `role` appears in a stored policy list (`[{"role":"x",...}]`):
/// the JSON-quoted id, so it matches that id and no other.
fn role_needle(role: &str) -> String {
    let quoted = serde_json::to_string(role).unwrap_or_default();
    format!("\"role\":{quoted}")
}

/// `LIKE` pattern (with `ESCAPE '\'`) for a role in a stored policy list:
/// `%` and `_` in the id are literal.
fn role_pattern(role: &str) -> String {
    format!("%{}%", like_escape(&role_needle(role)))
}

/// Escapes `%`, `_` and `\` for a LIKE with `ESCAPE '\'`.
pub(crate) fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

/// Serialises the row lock on a workspace, so owner counts are decided
/// one change at a time (portable: an UPDATE instead of FOR UPDATE).
pub(crate) async fn lock_workspace(
    tx: &mut Transaction<'_, Any>,
    workspace_id: &str,
) -> StoreResult<()> {
    exec_one(
        sqlx::query("UPDATE workspaces SET settings = settings WHERE id = $1").bind(workspace_id),
        &mut **tx,
    )
    .await
}

/// Members who are owners directly or through a group.
async fn owners_in(ex: &mut sqlx::AnyConnection, workspace_id: &str) -> StoreResult<i64> {
    let owner = role_pattern(WORKSPACE_OWNER);
    let row = sqlx::query(
        "SELECT COUNT(*) AS n FROM memberships m WHERE m.workspace_id = $1 AND (m.policies LIKE $2 ESCAPE '\\' OR EXISTS (\
           SELECT 1 FROM group_members gm JOIN user_groups g ON g.id = gm.group_id \
           WHERE gm.user_id = m.user_id AND gm.workspace_id = m.workspace_id AND g.policies LIKE $2 ESCAPE '\\'))",
    )
    .bind(workspace_id)
    .bind(&owner)
    .fetch_one(&mut *ex)
    .await?;
    row.try_get("n").map_err(StoreError::from)
}

pub(crate) async fn ensure_owner_left(
    tx: &mut Transaction<'_, Any>,
    workspace_id: &str,
) -> StoreResult<()> {
    if owners_in(tx, workspace_id).await? == 0 {
        return Err(StoreError::Conflict(
            "the workspace must keep at least one owner".into(),
        ));
    }
    Ok(())
}

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

fn resource_from(r: &AnyRow) -> StoreResult<Resource> {
    let labels: String = r.try_get("labels")?;
    Ok(Resource {
        id: r.try_get("id")?,
        kind: r.try_get("kind")?,
        name: r.try_get("name")?,
        labels: json_list(&labels),
    })
}

fn audit_from(r: &AnyRow) -> StoreResult<AuditEvent> {
    let details: String = r.try_get("details")?;
    Ok(AuditEvent {
        id: r.try_get("id")?,
        workspace_id: r.try_get("workspace_id")?,
        time: r.try_get("time")?,
        actor: Actor {
            kind: r.try_get("actor_type")?,
            id: r.try_get("actor_id")?,
            email: r.try_get("actor_email")?,
        },
        action: r.try_get("action")?,
        target: r.try_get("target")?,
        ip: r.try_get("ip")?,
        details: serde_json::from_str(&details).unwrap_or(serde_json::Value::Null),
    })
}

/// Cursors are opaque: base64url of the last row's sort key.
pub fn encode_cursor(parts: &[&str]) -> String {
    crypto::b64url(parts.join("\n").as_bytes())
}

fn decode_cursor(c: &str) -> StoreResult<Vec<String>> {
    let raw = crypto::b64url_decode(c)
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| StoreError::Invalid("malformed cursor".into()))?;
    Ok(raw.split('\n').map(str::to_string).collect())
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
            sqlx::query("INSERT INTO memberships (workspace_id, user_id, policies, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(&ws)
                    .bind(user_id)
                    .bind(&granted)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
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

#[async_trait]
impl AccessStore for SqlStore {
    async fn effective_access(
        &self,
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
        .fetch_all(self.read())
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

    async fn list_members(
        &self,
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
            wheres.push(match self.backend() {
                Backend::Sqlite => format!("instr(t.policies, ${}) > 0", binds.len()),
                Backend::Postgres => format!("strpos(t.policies, ${}) > 0", binds.len()),
            });
        }
        if let Some(g) = &filter.group_id {
            binds.push(Bind::S(g.clone()));
            wheres.push(format!("EXISTS (SELECT 1 FROM group_members gm WHERE gm.group_id = ${} AND gm.user_id = t.id)", binds.len()));
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
            .fetch_all(self.read())
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
                .fetch_all(self.read())
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
                .fetch_optional(self.read())
                .await?
            {
                let g: String = row.try_get("group_ids")?;
                m.group_ids = json_list(&g);
            }
        }
        Ok(out)
    }

    async fn update_member(
        &self,
        workspace_id: &str,
        user_id: &str,
        policies: Option<&[Policy]>,
        group_ids: Option<&[String]>,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
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
        Ok(tx.commit().await?)
    }

    async fn remove_member_checked(&self, workspace_id: &str, user_id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
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
        Ok(tx.commit().await?)
    }

    async fn count_owners(&self, workspace_id: &str) -> StoreResult<i64> {
        let mut conn = self.read().acquire().await?;
        owners_in(&mut conn, workspace_id).await
    }

    async fn create_group(
        &self,
        workspace_id: &str,
        name: &str,
        description: &str,
        policies: &[Policy],
        now: i64,
    ) -> StoreResult<Group> {
        let id = uuid::Uuid::new_v4().to_string();
        sqlx::query("INSERT INTO user_groups (id, workspace_id, name, description, policies, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(&id)
            .bind(workspace_id)
            .bind(name.trim())
            .bind(description.trim())
            .bind(policies_text(policies)?)
            .bind(now)
            .execute(self.write())
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

    async fn get_group(&self, workspace_id: &str, group_id: &str) -> StoreResult<Option<Group>> {
        let row = sqlx::query("SELECT id, workspace_id, name, description, policies, created_at FROM user_groups WHERE workspace_id = $1 AND id = $2")
            .bind(workspace_id)
            .bind(group_id)
            .fetch_optional(self.read())
            .await?;
        let Some(row) = row else { return Ok(None) };
        let members =
            sqlx::query("SELECT user_id FROM group_members WHERE group_id = $1 ORDER BY user_id")
                .bind(group_id)
                .fetch_all(self.read())
                .await?;
        let ids = members
            .iter()
            .map(|r| r.try_get("user_id"))
            .collect::<Result<Vec<String>, _>>()?;
        Ok(Some(group_from(&row, ids)?))
    }

    async fn list_groups(&self, workspace_id: &str) -> StoreResult<Vec<Group>> {
        let rows = sqlx::query("SELECT id, workspace_id, name, description, policies, created_at FROM user_groups WHERE workspace_id = $1 ORDER BY name, id")
            .bind(workspace_id)
            .fetch_all(self.read())
            .await?;
        let members = sqlx::query(
            "SELECT group_id, user_id FROM group_members WHERE workspace_id = $1 ORDER BY user_id",
        )
        .bind(workspace_id)
        .fetch_all(self.read())
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let gid: String = r.try_get("id")?;
            let mut ids = Vec::new();
            for m in &members {
                let g: String = m.try_get("group_id")?;
                if g == gid {
                    ids.push(m.try_get("user_id")?);
                }
            }
            out.push(group_from(r, ids)?);
        }
        Ok(out)
    }

    async fn update_group(
        &self,
        workspace_id: &str,
        group_id: &str,
        name: Option<&str>,
        description: Option<&str>,
        policies: Option<&[Policy]>,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        lock_workspace(&mut tx, workspace_id).await?;
        let found =
            sqlx::query("SELECT 1 AS one FROM user_groups WHERE workspace_id = $1 AND id = $2")
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
        Ok(tx.commit().await?)
    }

    async fn delete_group(&self, workspace_id: &str, group_id: &str) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
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
        Ok(tx.commit().await?)
    }

    async fn add_group_member(
        &self,
        workspace_id: &str,
        group_id: &str,
        user_id: &str,
    ) -> StoreResult<()> {
        let done = sqlx::query(
            "INSERT INTO group_members (group_id, user_id, workspace_id) \
             SELECT g.id, m.user_id, g.workspace_id FROM user_groups g JOIN memberships m ON m.workspace_id = g.workspace_id \
             WHERE g.id = $1 AND g.workspace_id = $2 AND m.user_id = $3 \
             ON CONFLICT (group_id, user_id) DO NOTHING",
        )
        .bind(group_id)
        .bind(workspace_id)
        .bind(user_id)
        .execute(self.write())
        .await?;
        if done.rows_affected() == 0 {
            // Either already in the group (fine) or no such group/member.
            let present = sqlx::query("SELECT 1 AS one FROM group_members WHERE group_id = $1 AND user_id = $2 AND workspace_id = $3")
                .bind(group_id)
                .bind(user_id)
                .bind(workspace_id)
                .fetch_optional(self.read())
                .await?;
            if present.is_none() {
                return Err(StoreError::NotFound);
            }
        }
        Ok(())
    }

    async fn remove_group_member(
        &self,
        workspace_id: &str,
        group_id: &str,
        user_id: &str,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        lock_workspace(&mut tx, workspace_id).await?;
        exec_one(
            sqlx::query("DELETE FROM group_members WHERE workspace_id = $1 AND group_id = $2 AND user_id = $3").bind(workspace_id).bind(group_id).bind(user_id),
            &mut *tx,
        )
        .await?;
        ensure_owner_left(&mut tx, workspace_id).await?;
        Ok(tx.commit().await?)
    }

    async fn create_invitation(&self, inv: &NewInvitation) -> StoreResult<Invitation> {
        let email_norm = normalize_email(&inv.email);
        let mut tx = self.begin_write().await?;
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
        tx.commit().await?;
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

    async fn get_invitation(
        &self,
        workspace_id: &str,
        id: &str,
    ) -> StoreResult<Option<Invitation>> {
        let row = sqlx::query(&format!(
            "SELECT {INV_COLS} FROM invitations WHERE workspace_id = $1 AND id = $2"
        ))
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(self.read())
        .await?;
        row.as_ref().map(invitation_from).transpose()
    }

    async fn invitation_by_token(&self, token_hash: &str) -> StoreResult<Option<Invitation>> {
        let row = sqlx::query(&format!(
            "SELECT {INV_COLS} FROM invitations WHERE token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(self.read())
        .await?;
        row.as_ref().map(invitation_from).transpose()
    }

    async fn list_invitations(&self, workspace_id: &str, now: i64) -> StoreResult<Vec<Invitation>> {
        let rows = sqlx::query(&format!(
            "SELECT {INV_COLS} FROM invitations WHERE workspace_id = $1 AND accepted_at IS NULL AND revoked_at IS NULL AND expires_at > $2 ORDER BY email_norm"
        ))
        .bind(workspace_id)
        .bind(now)
        .fetch_all(self.read())
        .await?;
        rows.iter().map(invitation_from).collect()
    }

    async fn revoke_invitation(&self, workspace_id: &str, id: &str, now: i64) -> StoreResult<()> {
        exec_one(
            sqlx::query("UPDATE invitations SET revoked_at = $1 WHERE workspace_id = $2 AND id = $3 AND accepted_at IS NULL AND revoked_at IS NULL")
                .bind(now)
                .bind(workspace_id)
                .bind(id),
            self.write(),
        )
        .await
    }

    async fn renew_invitation(
        &self,
        workspace_id: &str,
        id: &str,
        token_hash: &str,
        expires_at: i64,
    ) -> StoreResult<()> {
        exec_one(
            sqlx::query("UPDATE invitations SET token_hash = $1, expires_at = $2 WHERE workspace_id = $3 AND id = $4 AND accepted_at IS NULL AND revoked_at IS NULL")
                .bind(token_hash)
                .bind(expires_at)
                .bind(workspace_id)
                .bind(id),
            self.write(),
        )
        .await
    }

    async fn accept_invitation(
        &self,
        invitation_id: &str,
        user_id: &str,
        now: i64,
    ) -> StoreResult<()> {
        let mut tx = self.begin_write().await?;
        accept_in_tx(&mut tx, invitation_id, user_id, now).await?;
        Ok(tx.commit().await?)
    }

    async fn accept_invitation_as_new_user(
        &self,
        invitation_id: &str,
        new: &NewUser,
        now: i64,
    ) -> StoreResult<User> {
        let mut tx = self.begin_write().await?;
        let user = insert_user(&mut *tx, new, now).await?;
        accept_in_tx(&mut tx, invitation_id, &user.id, now).await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn workspace_by_id(&self, id: &str) -> StoreResult<Option<Workspace>> {
        let row = sqlx::query(&format!("SELECT {WS_COLS} FROM workspaces WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.read())
            .await?;
        row.as_ref()
            .map(workspace_from)
            .transpose()
            .map_err(StoreError::from)
    }

    async fn create_token(&self, t: &ApiToken, token_hash: &str) -> StoreResult<()> {
        sqlx::query(
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
        .execute(self.write())
        .await?;
        Ok(())
    }

    async fn token_by_hash(&self, token_hash: &str, now: i64) -> StoreResult<Option<ApiToken>> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL"
        ))
        .bind(token_hash)
        .fetch_optional(self.read())
        .await?;
        let Some(t) = row.as_ref().map(token_from).transpose()? else {
            return Ok(None);
        };
        if t.last_used_at.is_none_or(|l| now - l >= 60) {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                .bind(now)
                .bind(&t.id)
                .execute(self.write())
                .await?;
        }
        Ok(Some(t))
    }

    async fn list_tokens(&self, workspace_id: &str, kind: &str) -> StoreResult<Vec<ApiToken>> {
        let rows = sqlx::query(&format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE workspace_id = $1 AND kind = $2 AND revoked_at IS NULL ORDER BY created_at, id"))
            .bind(workspace_id)
            .bind(kind)
            .fetch_all(self.read())
            .await?;
        rows.iter().map(token_from).collect()
    }

    async fn revoke_token(
        &self,
        workspace_id: &str,
        kind: &str,
        id: &str,
        now: i64,
    ) -> StoreResult<()> {
        exec_one(
            sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE workspace_id = $2 AND kind = $3 AND id = $4 AND revoked_at IS NULL").bind(now).bind(workspace_id).bind(kind).bind(id),
            self.write(),
        )
        .await
    }

    async fn put_resource(&self, workspace_id: &str, r: &Resource, now: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO resources (workspace_id, id, kind, name, labels, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (workspace_id, id) DO UPDATE SET kind = excluded.kind, name = excluded.name, labels = excluded.labels",
        )
        .bind(workspace_id)
        .bind(&r.id)
        .bind(&r.kind)
        .bind(&r.name)
        .bind(to_json(&r.labels)?)
        .bind(now)
        .execute(self.write())
        .await?;
        Ok(())
    }

    async fn get_resource(&self, workspace_id: &str, id: &str) -> StoreResult<Option<Resource>> {
        let row = sqlx::query(
            "SELECT id, kind, name, labels FROM resources WHERE workspace_id = $1 AND id = $2",
        )
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(self.read())
        .await?;
        row.as_ref().map(resource_from).transpose()
    }

    async fn list_resources(&self, workspace_id: &str) -> StoreResult<Vec<Resource>> {
        let rows = sqlx::query(
            "SELECT id, kind, name, labels FROM resources WHERE workspace_id = $1 ORDER BY id",
        )
        .bind(workspace_id)
        .fetch_all(self.read())
        .await?;
        rows.iter().map(resource_from).collect()
    }

    async fn delete_resource(&self, workspace_id: &str, id: &str) -> StoreResult<()> {
        exec_one(
            sqlx::query("DELETE FROM resources WHERE workspace_id = $1 AND id = $2")
                .bind(workspace_id)
                .bind(id),
            self.write(),
        )
        .await
    }

    async fn link_identity(
        &self,
        provider: &str,
        subject: &str,
        user_id: &str,
        email: Option<&str>,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query("INSERT INTO identity_links (provider, subject, user_id, email, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(provider)
            .bind(subject)
            .bind(user_id)
            .bind(email)
            .bind(now)
            .execute(self.write())
            .await?;
        Ok(())
    }

    async fn identity_user(&self, provider: &str, subject: &str) -> StoreResult<Option<String>> {
        let row =
            sqlx::query("SELECT user_id FROM identity_links WHERE provider = $1 AND subject = $2")
                .bind(provider)
                .bind(subject)
                .fetch_optional(self.read())
                .await?;
        row.map(|r| r.try_get("user_id"))
            .transpose()
            .map_err(StoreError::from)
    }

    async fn identities_of(&self, user_id: &str) -> StoreResult<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT provider, subject FROM identity_links WHERE user_id = $1 ORDER BY provider",
        )
        .bind(user_id)
        .fetch_all(self.read())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("provider")?, r.try_get("subject")?)))
            .collect()
    }

    async fn unlink_identity(&self, provider: &str, user_id: &str) -> StoreResult<()> {
        exec_one(
            sqlx::query("DELETE FROM identity_links WHERE provider = $1 AND user_id = $2")
                .bind(provider)
                .bind(user_id),
            self.write(),
        )
        .await
    }

    async fn create_user_with_identity(
        &self,
        new: &NewUser,
        provider: &str,
        subject: &str,
        now: i64,
    ) -> StoreResult<User> {
        let mut tx = self.begin_write().await?;
        let user = insert_user(&mut *tx, new, now).await?;
        sqlx::query("INSERT INTO identity_links (provider, subject, user_id, email, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(provider)
            .bind(subject)
            .bind(&user.id)
            .bind(&user.email)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(user)
    }

    async fn set_user_email(&self, user_id: &str, email: &str) -> StoreResult<()> {
        exec_one(
            sqlx::query("UPDATE users SET email = $1, email_norm = $2 WHERE id = $3")
                .bind(email.trim())
                .bind(normalize_email(email))
                .bind(user_id),
            self.write(),
        )
        .await
    }

    async fn clear_password(&self, user_id: &str) -> StoreResult<()> {
        exec_one(
            sqlx::query("UPDATE users SET password_hash = NULL WHERE id = $1").bind(user_id),
            self.write(),
        )
        .await
    }

    async fn set_last_auth_method(&self, user_id: &str, method: &str) -> StoreResult<()> {
        sqlx::query("UPDATE users SET last_auth_method = $1 WHERE id = $2")
            .bind(method)
            .bind(user_id)
            .execute(self.write())
            .await?;
        Ok(())
    }

    async fn list_audit(
        &self,
        workspace_id: &str,
        filter: &AuditFilter,
        cursor: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEvent>> {
        let mut binds = vec![Bind::S(workspace_id.to_string())];
        let mut wheres = vec!["workspace_id = $1".to_string()];
        if let Some(c) = cursor {
            let parts = decode_cursor(c)?;
            let (Some(t), Some(id)) = (
                parts.first().and_then(|t| t.parse::<i64>().ok()),
                parts.get(1),
            ) else {
                return Err(StoreError::Invalid("malformed cursor".into()));
            };
            binds.push(Bind::I(t));
            binds.push(Bind::S(id.clone()));
            let (a, b) = (binds.len() - 1, binds.len());
            wheres.push(format!("(time < ${a} OR (time = ${a} AND id < ${b}))"));
        }
        if let Some(a) = &filter.actor_id {
            binds.push(Bind::S(a.clone()));
            wheres.push(format!("actor_id = ${}", binds.len()));
        }
        if let Some(a) = &filter.action {
            binds.push(Bind::S(a.clone()));
            wheres.push(format!("action = ${}", binds.len()));
        }
        if let Some(t) = filter.since {
            binds.push(Bind::I(t));
            wheres.push(format!("time >= ${}", binds.len()));
        }
        if let Some(t) = filter.until {
            binds.push(Bind::I(t));
            wheres.push(format!("time < ${}", binds.len()));
        }
        binds.push(Bind::I(limit));
        let sql = format!(
            "SELECT id, workspace_id, time, actor_type, actor_id, actor_email, action, target, ip, details FROM audit_events WHERE {} ORDER BY time DESC, id DESC LIMIT ${}",
            wheres.join(" AND "),
            binds.len()
        );
        let rows = bind_all(sqlx::query(&sql), &binds)
            .fetch_all(self.read())
            .await?;
        rows.iter().map(audit_from).collect()
    }

    async fn purge_audit(&self, workspace_id: &str, before: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM audit_events WHERE workspace_id = $1 AND time < $2")
            .bind(workspace_id)
            .bind(before)
            .execute(self.write())
            .await?;
        Ok(done.rows_affected())
    }

    async fn list_workspaces(&self) -> StoreResult<Vec<Workspace>> {
        let rows = sqlx::query(&format!("SELECT {WS_COLS} FROM workspaces ORDER BY slug"))
            .fetch_all(self.read())
            .await?;
        rows.iter()
            .map(|r| workspace_from(r).map_err(StoreError::from))
            .collect()
    }
}
