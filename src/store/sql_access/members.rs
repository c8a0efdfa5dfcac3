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

/// A filter that keeps at most this many rows leads the member list: its
/// rows are found by their own index and sorted, instead of the workspace
/// being walked in email order (a handful in debug builds, so the tests
/// exercise both ways with small workspaces).
const SMALL_SET: i64 = if cfg!(debug_assertions) { 8 } else { 1000 };

/// Which filter's own index leads a member list (see [`SMALL_SET`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lead {
    Group,
    Email,
    Role,
}

impl Lead {
    /// The statement listing the user ids this filter keeps in workspace
    /// `$1` (a superset: the member query applies the filter itself too),
    /// with its value at bind number `n`.
    fn sql(self, backend: Backend, n: usize) -> String {
        let fts = |table: &str| {
            format!(
                "SELECT lm.user_id FROM {table} CROSS JOIN memberships lm \
                 WHERE {table} MATCH ${n} AND lm.rowid = {table}.rowid AND lm.workspace_id = $1"
            )
        };
        match (self, backend) {
            // (Only a group of this workspace: checked once, so SQLite
            // reads the group's members from its key alone.)
            (Lead::Group, _) => format!(
                "SELECT user_id FROM group_members WHERE group_id = ${n} \
                 AND EXISTS (SELECT 1 FROM user_groups g WHERE g.id = ${n} AND g.workspace_id = $1)"
            ),
            (Lead::Email, Backend::Sqlite) => fts("member_email_search"),
            (Lead::Role, Backend::Sqlite) => fts("member_role_search"),
            (Lead::Email, Backend::Postgres) => format!(
                "SELECT user_id FROM memberships WHERE workspace_id = $1 \
                 AND sort_email LIKE ${n} ESCAPE '\\'"
            ),
            (Lead::Role, Backend::Postgres) => format!(
                "SELECT user_id FROM memberships WHERE workspace_id = $1 \
                 AND CAST(policies AS jsonb) @> CAST(${n} AS jsonb)"
            ),
        }
    }

    /// The value [`Self::sql`] binds, or `None` when this filter is not
    /// set or has no index to offer (an email needle under three
    /// characters: trigrams cannot find it).
    fn value(self, backend: Backend, filter: &MemberFilter, email_search: bool) -> Option<String> {
        match self {
            Lead::Group => filter.group_id.clone(),
            Lead::Email => {
                let needle = normalize_email(filter.email.as_deref()?);
                if !email_search || needle.chars().count() < 3 {
                    return None;
                }
                Some(match backend {
                    Backend::Sqlite => super::super::search::fts_phrase(&needle),
                    Backend::Postgres => format!("%{}%", like_escape(&needle)),
                })
            }
            Lead::Role => {
                let role = filter.role.as_deref()?;
                Some(match backend {
                    // A phrase of the id's words (an id of no word at all
                    // has none to look up).
                    Backend::Sqlite if !role.chars().any(char::is_alphanumeric) => return None,
                    Backend::Sqlite => super::super::search::fts_phrase(role),
                    Backend::Postgres => serde_json::json!([{ "role": role }]).to_string(),
                })
            }
        }
    }
}

/// The columns of a member row ([`member_row`] reads them), from
/// `memberships m JOIN users u`.
pub(super) const MEMBER_COLUMNS: &str =
    "m.sort_email AS sort_email, m.user_id AS id, u.email AS email, \
     u.name AS name, CAST(0 AS BIGINT) AS invited, m.policies AS policies, \
     u.last_auth_method AS auth_method, u.totp_enabled_at AS totp_on, m.created_at AS created_at, \
     u.last_login_at AS last_login_at, CAST(NULL AS TEXT) AS grants";

/// The same columns for an open invitation, from `invitations i`.
pub(super) const INVITATION_COLUMNS: &str =
    "i.email_norm AS sort_email, i.id AS id, i.email AS email, \
     '' AS name, CAST(1 AS BIGINT) AS invited, i.policies AS policies, \
     CAST(NULL AS TEXT) AS auth_method, CAST(NULL AS BIGINT) AS totp_on, \
     i.created_at AS created_at, CAST(NULL AS BIGINT) AS last_login_at, i.group_ids AS grants";

/// The open invitations of workspace `$1`, unexpired at bind number `now`.
pub(super) fn open_invitations(now: usize) -> String {
    format!(
        "FROM invitations i WHERE i.workspace_id = $1 AND i.accepted_at IS NULL \
         AND i.revoked_at IS NULL AND i.expires_at > ${now}"
    )
}

/// A member's Twilio link and groups in workspace `$1`, looked up by the
/// member id `id` (nothing for an invitation's id).
pub(super) fn lookups(backend: Backend, id: &str) -> String {
    let aggregate = match backend {
        Backend::Sqlite => "group_concat(gm.group_id, ',')",
        Backend::Postgres => "string_agg(gm.group_id, ',')",
    };
    format!(
        "CAST(CASE WHEN EXISTS (SELECT 1 FROM identity_links l WHERE l.user_id = {id} AND l.provider = 'twilio') \
              THEN 1 ELSE 0 END AS BIGINT) AS twilio, \
         (SELECT {aggregate} FROM group_members gm WHERE gm.workspace_id = $1 AND gm.user_id = {id}) AS group_list"
    )
}

/// The conditions that keep, in the members' arm and in the invitations'
/// arm, the rows after the place whose email and id are bound at `$a` and
/// `$b`, in the list's order.
pub(super) fn after_place(a: usize, b: usize) -> (String, String) {
    (
        format!("(m.sort_email, m.user_id) > (${a}, ${b})"),
        format!("(i.email_norm, i.id) > (${a}, ${b})"),
    )
}

/// Members of a workspace (and, unless a group is asked for, its open
/// invitations) in email order, filtered, after `cursor`, at most `limit`:
/// one statement whose two arms each walk an index in that order
/// (`memberships_order_idx`, `invitations_open_order_idx`) and stop at
/// `limit`, so a page costs its rows, not the workspace's size. With
/// `lead` (a filter that keeps few rows, and its [`Lead::value`]), that
/// filter's rows are found first and sorted. Returns the statement and its
/// binds.
fn member_query(
    backend: Backend,
    workspace_id: &str,
    filter: &MemberFilter,
    cursor: Option<&str>,
    limit: i64,
    now: i64,
    lead: Option<(Lead, String)>,
) -> StoreResult<(String, Vec<Bind>)> {
    let mut binds = vec![Bind::S(workspace_id.to_string())];
    let mut member_where: Vec<String> = Vec::new();
    let mut invite_where: Vec<String> = Vec::new();
    // Substring tests that do not fold case or treat any character as a
    // wildcard (emails are stored normalised, the needle is normalised).
    // PostgreSQL gets a LIKE with the needle escaped: its planner estimates
    // how many rows a LIKE keeps from the column's statistics, and so walks
    // the email index for a common needle but scans and sorts the few rows
    // of a rare one (it cannot estimate `strpos`). SQLite's LIKE folds ASCII
    // case, so it keeps `instr`.
    let contains = |col: &str, needle: String, binds: &mut Vec<Bind>| match backend {
        Backend::Sqlite => {
            binds.push(Bind::S(needle));
            format!("instr({col}, ${}) > 0", binds.len())
        }
        Backend::Postgres => {
            binds.push(Bind::S(format!("%{}%", like_escape(&needle))));
            format!("{col} LIKE ${} ESCAPE '\\'", binds.len())
        }
    };
    if let Some(c) = cursor {
        let parts = decode_cursor(c)?;
        let (Some(e), Some(id)) = (parts.first(), parts.get(1)) else {
            return Err(StoreError::Invalid("malformed cursor".into()));
        };
        binds.push(Bind::S(e.clone()));
        binds.push(Bind::S(id.clone()));
        let (members_after, invitations_after) = after_place(binds.len() - 1, binds.len());
        member_where.push(members_after);
        invite_where.push(invitations_after);
    }
    if let Some(e) = filter.email.as_deref().filter(|e| !e.is_empty()) {
        let needle = normalize_email(e);
        member_where.push(contains("m.sort_email", needle.clone(), &mut binds));
        invite_where.push(contains("i.email_norm", needle, &mut binds));
    }
    if let Some(role) = &filter.role {
        // The JSON-quoted role id: matches that id exactly, no other.
        member_where.push(contains("m.policies", role_needle(role), &mut binds));
        invite_where.push(contains("i.policies", role_needle(role), &mut binds));
    }
    if let Some(g) = &filter.group_id {
        binds.push(Bind::S(g.clone()));
        let n = binds.len();
        // Only a group of this workspace, only its members.
        member_where.push(format!(
            "EXISTS (SELECT 1 FROM user_groups g WHERE g.id = ${n} AND g.workspace_id = $1) \
             AND EXISTS (SELECT 1 FROM group_members gx WHERE gx.group_id = ${n} AND gx.user_id = m.user_id)"
        ));
    }
    // Without a lead, the workspace in email order, each member checked: a
    // page is found after about limit × workspace / matches rows. With
    // one, the few rows it keeps are found by its index and sorted (CROSS
    // JOIN keeps SQLite from walking the workspace in email order instead;
    // MATERIALIZED keeps PostgreSQL from folding the lead back in).
    let (with, from) = match lead {
        Some((lead, value)) => {
            binds.push(Bind::S(value));
            member_where.push("m.user_id = x.user_id".to_string());
            (
                format!(
                    "WITH lead AS MATERIALIZED ({}) ",
                    lead.sql(backend, binds.len())
                ),
                "lead x CROSS JOIN memberships m JOIN users u ON u.id = m.user_id",
            )
        }
        None => (
            String::new(),
            "memberships m JOIN users u ON u.id = m.user_id",
        ),
    };
    let and = |w: &[String]| w.iter().map(|c| format!(" AND {c}")).collect::<String>();
    let members = format!(
        "SELECT {MEMBER_COLUMNS} FROM {from} WHERE m.workspace_id = $1{}",
        and(&member_where)
    );
    let invitations = if filter.include_invited && filter.group_id.is_none() {
        binds.push(Bind::I(now));
        Some(format!(
            "SELECT {INVITATION_COLUMNS} {}{}",
            open_invitations(binds.len()),
            and(&invite_where)
        ))
    } else {
        None
    };
    // Each arm ordered and limited on its own index (so PostgreSQL walks the
    // index too), then merged and limited; the Twilio link and the groups
    // are looked up for the page's own rows only, after the limit.
    binds.push(Bind::I(limit));
    let l = binds.len();
    let mut union =
        format!("SELECT * FROM ({members} ORDER BY m.sort_email, m.user_id LIMIT ${l}) a");
    if let Some(inv) = invitations {
        union.push_str(&format!(
            " UNION ALL SELECT * FROM ({inv} ORDER BY i.email_norm, i.id LIMIT ${l}) b"
        ));
    }
    let sql = format!(
        "{with}SELECT t.*, {} FROM ({union}) t ORDER BY t.sort_email, t.id LIMIT ${l}",
        lookups(backend, "t.id")
    );
    Ok((sql, binds))
}

/// The values of one row of [`member_query`], in the order of its columns
/// (and of the members CSV's JSON arrays, [`super::member_export`]).
#[derive(serde::Deserialize)]
pub(super) struct MemberFields {
    pub(super) sort_email: String,
    pub(super) id: String,
    email: String,
    name: String,
    invited: i64,
    policies: String,
    auth_method: Option<String>,
    totp_on: Option<i64>,
    created_at: i64,
    last_login_at: Option<i64>,
    /// An invitation's groups to grant (a JSON list).
    grants: Option<String>,
    twilio: i64,
    /// A member's groups (comma-separated).
    group_list: Option<String>,
}

impl MemberFields {
    pub(super) fn from_row(r: &AnyRow) -> StoreResult<Self> {
        Ok(Self {
            sort_email: r.try_get("sort_email")?,
            id: r.try_get("id")?,
            email: r.try_get("email")?,
            name: r.try_get("name")?,
            invited: r.try_get("invited")?,
            policies: r.try_get("policies")?,
            auth_method: r.try_get("auth_method")?,
            totp_on: r.try_get("totp_on")?,
            created_at: r.try_get("created_at")?,
            last_login_at: r.try_get("last_login_at")?,
            grants: r.try_get("grants")?,
            twilio: r.try_get("twilio")?,
            group_list: r.try_get("group_list")?,
        })
    }

    /// The row's place in the list: its normalised email, then its id.
    pub(super) fn place(&self) -> (&str, &str) {
        (&self.sort_email, &self.id)
    }

    /// The row's place as a cursor, for the next page.
    fn cursor(&self) -> String {
        encode_cursor(&[&self.sort_email, &self.id])
    }

    /// The member row.
    pub(super) fn into_member(self) -> StoreResult<MemberRow> {
        let group_ids = match (self.grants, self.group_list) {
            (Some(g), _) => json_list(&g),
            (None, Some(g)) => {
                let mut ids: Vec<String> = g.split(',').map(str::to_string).collect();
                ids.sort();
                ids
            }
            (None, None) => Vec::new(),
        };
        Ok(MemberRow {
            email: self.email,
            name: self.name,
            invited: self.invited == 1,
            policies: policies_from(&self.policies)?,
            group_ids,
            auth_method: self.auth_method,
            twilio_linked: self.twilio > 0,
            mfa_enabled: self.totp_on.is_some(),
            created_at: self.created_at,
            last_login_at: self.last_login_at,
            id: self.id,
        })
    }
}

/// A row of [`member_query`] with its cursor.
fn member_row(r: &AnyRow) -> StoreResult<(String, MemberRow)> {
    let fields = MemberFields::from_row(r)?;
    Ok((fields.cursor(), fields.into_member()?))
}

pub(super) async fn list_members(
    s: &SqlStore,
    workspace_id: &str,
    filter: &MemberFilter,
    cursor: Option<&str>,
    limit: i64,
    now: i64,
) -> StoreResult<Vec<(String, MemberRow)>> {
    // Each filter with an index of its own counts its rows (up to one past
    // SMALL_SET); the smallest small one leads.
    let mut lead: Option<(i64, Lead, String)> = None;
    // PostgreSQL plans these statements for their values each time: a
    // prepared statement's generic plan, chosen after a few rare needles,
    // reads a common needle's every row from the trigram index.
    let persistent = s.backend() == Backend::Sqlite;
    for candidate in [Lead::Group, Lead::Email, Lead::Role] {
        let Some(value) = candidate.value(s.backend(), filter, s.email_search()) else {
            continue;
        };
        let n: i64 = sqlx::query(&format!(
            "SELECT COUNT(*) AS n FROM ({} LIMIT $3) t",
            candidate.sql(s.backend(), 2)
        ))
        .bind(workspace_id)
        .bind(&value)
        .bind(SMALL_SET + 1)
        .persistent(persistent)
        .fetch_one(s.read())
        .await?
        .try_get("n")?;
        if n <= SMALL_SET && lead.as_ref().is_none_or(|(best, ..)| n < *best) {
            lead = Some((n, candidate, value));
        }
    }
    let (sql, binds) = member_query(
        s.backend(),
        workspace_id,
        filter,
        cursor,
        limit,
        now,
        lead.map(|(_, lead, value)| (lead, value)),
    )?;
    let rows = bind_all(sqlx::query(&sql), &binds)
        .persistent(persistent)
        .fetch_all(s.read())
        .await?;
    rows.iter().map(member_row).collect()
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
