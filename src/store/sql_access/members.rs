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
const MEMBER_COLUMNS: &str = "m.sort_email AS sort_email, m.user_id AS id, u.email AS email, \
     u.name AS name, CAST(0 AS BIGINT) AS invited, m.policies AS policies, \
     u.last_auth_method AS auth_method, u.totp_enabled_at AS totp_on, m.created_at AS created_at, \
     u.last_login_at AS last_login_at, CAST(NULL AS TEXT) AS grants";

/// The same columns for an open invitation, from `invitations i`.
const INVITATION_COLUMNS: &str = "i.email_norm AS sort_email, i.id AS id, i.email AS email, \
     '' AS name, CAST(1 AS BIGINT) AS invited, i.policies AS policies, \
     CAST(NULL AS TEXT) AS auth_method, CAST(NULL AS BIGINT) AS totp_on, \
     i.created_at AS created_at, CAST(NULL AS BIGINT) AS last_login_at, i.group_ids AS grants";

/// The open invitations of workspace `$1`, unexpired at bind number `now`.
fn open_invitations(now: usize) -> String {
    format!(
        "FROM invitations i WHERE i.workspace_id = $1 AND i.accepted_at IS NULL \
         AND i.revoked_at IS NULL AND i.expires_at > ${now}"
    )
}

/// A member's Twilio link and groups in workspace `$1`, looked up by the
/// member id `id` (nothing for an invitation's id).
fn lookups(backend: Backend, id: &str) -> String {
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
        let (a, b) = (binds.len() - 1, binds.len());
        member_where.push(format!("(m.sort_email, m.user_id) > (${a}, ${b})"));
        invite_where.push(format!("(i.email_norm, i.id) > (${a}, ${b})"));
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
/// (and of [`EXPORT_FIELDS`], which the export reads as JSON arrays).
#[derive(serde::Deserialize)]
struct MemberFields {
    sort_email: String,
    id: String,
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

/// The columns of [`MemberFields`] from a [`member_query`] aliased `t`.
const EXPORT_FIELDS: &str = "t.sort_email, t.id, t.email, t.name, t.invited, t.policies, \
     t.auth_method, t.totp_on, t.created_at, t.last_login_at, t.grants, t.twilio, t.group_list";

impl MemberFields {
    fn from_row(r: &AnyRow) -> StoreResult<Self> {
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
    fn place(&self) -> (&str, &str) {
        (&self.sort_email, &self.id)
    }

    /// The row's place as a cursor, for the next page.
    fn cursor(&self) -> String {
        encode_cursor(&[&self.sort_email, &self.id])
    }

    /// The member row.
    fn into_member(self) -> StoreResult<MemberRow> {
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

/// How long the members CSV waits for its reader to take the next rows
/// before it gives up and frees its database connection.
const EXPORT_STALL: std::time::Duration = std::time::Duration::from_secs(10);

/// How many rows the export reads (SQLite) or hands over (both) at a time
/// (a handful in debug builds, so the tests walk several pages). With the
/// channel's few batches, a download holds a few thousand rows at most.
const EXPORT_PAGE: usize = if cfg!(debug_assertions) { 7 } else { 256 };

/// What the export task hands to the response.
enum Export {
    Rows(Vec<MemberRow>),
    /// A page of the SQLite export as SQLite wrote it (a JSON array of
    /// [`EXPORT_FIELDS`] arrays), read into rows on the response's side
    /// while the task reads the next page, with the place (email and id)
    /// of the previous page's last row.
    Page {
        after: Option<(String, String)>,
        page: String,
    },
    Failed(StoreError),
    Done,
}

/// The rows of an [`Export::Page`], each of which must come after `after`
/// and the row before it in the list's order: the page's statement orders
/// its rows, but SQLite does not promise that an aggregate keeps the order
/// of its input, so a page out of order ends the export with an error
/// rather than a list with rows missing or twice.
fn page_rows(after: Option<(String, String)>, page: &str) -> StoreResult<Vec<MemberRow>> {
    let fields: Vec<MemberFields> = serde_json::from_str(page).map_err(unreadable_page)?;
    let places = after
        .as_ref()
        .map(|(email, id)| (email.as_str(), id.as_str()))
        .into_iter()
        .chain(fields.iter().map(MemberFields::place));
    if !places.clone().zip(places.skip(1)).all(|(a, b)| a < b) {
        return Err(StoreError::Other(
            "a members export page is out of order".into(),
        ));
    }
    fields.into_iter().map(MemberFields::into_member).collect()
}

fn unreadable_page(e: serde_json::Error) -> StoreError {
    StoreError::Other(format!("a members export page is unreadable: {e}"))
}

/// The export task's end of its channel to the response.
struct ExportSender(tokio::sync::mpsc::Sender<Export>);

impl ExportSender {
    /// Hands `msg` over; false when the reader left or stalled for
    /// [`EXPORT_STALL`].
    async fn send(&self, msg: Export) -> bool {
        matches!(
            tokio::time::timeout(EXPORT_STALL, self.0.send(msg)).await,
            Ok(Ok(()))
        )
    }
}

/// Every member and open invitation in email order, for the CSV, as one
/// snapshot of the workspace: a member who joins, leaves or changes address
/// during the download shows as they were when it began, once. A spawned
/// task reads the rows ([`export_pages`] on SQLite, [`export_joined`] on
/// PostgreSQL) and hands them over a channel of a few batches, so memory
/// stays flat whatever the workspace size. The task gives up when the
/// reader leaves or stalls for [`EXPORT_STALL`] (a slow download cannot
/// hold one of the few read connections, and an old snapshot, for long).
/// The stream ends with an error unless the task read every row: an export
/// cut short never looks complete.
pub(super) fn member_stream(
    s: &SqlStore,
    workspace_id: &str,
    now: i64,
) -> futures_util::stream::BoxStream<'static, StoreResult<MemberRow>> {
    use futures_util::StreamExt as _;
    let (tx, rx) = tokio::sync::mpsc::channel::<Export>(4);
    let pool = s.read().clone();
    let backend = s.backend();
    let ws = workspace_id.to_string();
    tokio::spawn(async move {
        let out = ExportSender(tx);
        let read = match backend {
            Backend::Sqlite => export_pages(&pool, &ws, now, &out).await,
            Backend::Postgres => export_joined(&pool, &ws, now, &out).await,
        };
        match read {
            Ok(true) => {
                out.send(Export::Done).await;
            }
            Ok(false) => {
                tracing::info!(workspace = %ws, "members export stopped: the reader left or stalled");
            }
            Err(e) => {
                out.send(Export::Failed(e)).await;
            }
        }
    });
    futures_util::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Some(Export::Rows(rows)) => Some((Ok(rows), Some(rx))),
            Some(Export::Page { after, page }) => match page_rows(after, &page) {
                Ok(rows) => Some((Ok(rows), Some(rx))),
                Err(e) => Some((Err(e), None)),
            },
            Some(Export::Failed(e)) => Some((Err(e), None)),
            Some(Export::Done) => None,
            None => Some((
                Err(StoreError::Other("the members export ended early".into())),
                None,
            )),
        }
    })
    .flat_map(|batch| {
        futures_util::stream::iter(match batch {
            Ok(rows) => rows.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        })
    })
    .boxed()
}

/// One page of the SQLite export: every member and open invitation of
/// workspace `$1` (unexpired at `$2`) after the place `($4, $5)` when there
/// is one, in the list's order, at most `$3`, as a single row `page`: a
/// JSON array of [`EXPORT_FIELDS`] arrays. Unlike [`member_query`] (which
/// limits each arm on its own, then sorts what both return), the two arms
/// are one compound statement ordered and limited as a whole: SQLite
/// merges the two index walks and stops both at the page's end, so a page
/// reads its own rows, not a page of invitations as well. The Twilio link
/// and the groups are looked up in the members' arm, for the rows the
/// merge takes. The aggregate takes the rows as the compound statement
/// gives them, in order (an `ORDER BY` inside `json_group_array` sorted
/// each page again and cost about a tenth of the download); [`page_rows`]
/// checks that order.
fn export_page_query(after: bool) -> String {
    let (member_after, invite_after) = if after {
        (
            " AND (m.sort_email, m.user_id) > ($4, $5)",
            " AND (i.email_norm, i.id) > ($4, $5)",
        )
    } else {
        ("", "")
    };
    format!(
        "SELECT json_group_array(json_array({EXPORT_FIELDS})) AS page \
         FROM (SELECT {MEMBER_COLUMNS}, {} \
               FROM memberships m JOIN users u ON u.id = m.user_id \
               WHERE m.workspace_id = $1{member_after} \
               UNION ALL \
               SELECT {INVITATION_COLUMNS}, CAST(0 AS BIGINT), CAST(NULL AS TEXT) {}{invite_after} \
               ORDER BY 1, 2 LIMIT $3) t",
        lookups(Backend::Sqlite, "m.user_id"),
        open_invitations(2)
    )
}

/// SQLite: the export's pages ([`export_page_query`], [`EXPORT_PAGE`] rows
/// each, in the member list's order) one after another in one read
/// transaction (one snapshot). Each page comes back as a single row, a
/// JSON array of the page's rows: SQLite's driver hands every result row
/// over from its own thread, and 100 000 hand-overs (a wake-up and a task
/// switch each) cost more than the statement. The task reads only a
/// page's last row (the next page's place) and hands the page over as it
/// came, so the response reads it into rows on another core while SQLite
/// works on the next one. Returns whether every row was handed over.
async fn export_pages(
    pool: &sqlx::AnyPool,
    workspace_id: &str,
    now: i64,
    out: &ExportSender,
) -> StoreResult<bool> {
    let limit = i64::try_from(EXPORT_PAGE).unwrap_or(i64::MAX);
    let (first, next) = (export_page_query(false), export_page_query(true));
    let mut snapshot = pool.begin().await?;
    // The last row handed over: its email and id.
    let mut place: Option<(String, String)> = None;
    loop {
        let query = sqlx::query(if place.is_some() { &next } else { &first })
            .bind(workspace_id)
            .bind(now)
            .bind(limit);
        let query = match &place {
            Some((email, id)) => query.bind(email.as_str()).bind(id.as_str()),
            None => query,
        };
        let page: String = query.fetch_one(&mut *snapshot).await?.try_get("page")?;
        // Only the last row is read here, for the next page's place: the
        // response reads the rest while SQLite works on that page.
        let rows: Vec<&serde_json::value::RawValue> =
            serde_json::from_str(&page).map_err(unreadable_page)?;
        let last_page = rows.len() < EXPORT_PAGE;
        let Some(last) = rows.last() else {
            return Ok(true);
        };
        let last: MemberFields = serde_json::from_str(last.get()).map_err(unreadable_page)?;
        drop(rows);
        let after = place.replace((last.sort_email, last.id));
        if !out.send(Export::Page { after, page }).await {
            return Ok(false);
        }
        if last_page {
            return Ok(true);
        }
    }
}

/// PostgreSQL: one statement (one snapshot) with the member list's columns
/// and order, the groups and Twilio links joined in once (100 000 sub-plan
/// runs, or 100 pages of the list, cost it more than two aggregates and a
/// sort), read row by row and handed over in batches of [`EXPORT_PAGE`].
/// Returns whether every row was handed over.
async fn export_joined(
    pool: &sqlx::AnyPool,
    workspace_id: &str,
    now: i64,
    out: &ExportSender,
) -> StoreResult<bool> {
    use futures_util::StreamExt as _;
    let sql = format!(
        "SELECT {MEMBER_COLUMNS}, \
           CAST(CASE WHEN tw.user_id IS NULL THEN 0 ELSE 1 END AS BIGINT) AS twilio, \
           g.group_list AS group_list \
         FROM memberships m JOIN users u ON u.id = m.user_id \
         LEFT JOIN (SELECT DISTINCT user_id FROM identity_links WHERE provider = 'twilio') tw \
           ON tw.user_id = m.user_id \
         LEFT JOIN (SELECT user_id, string_agg(group_id, ',') AS group_list FROM group_members \
                    WHERE workspace_id = $1 GROUP BY user_id) g ON g.user_id = m.user_id \
         WHERE m.workspace_id = $1 \
         UNION ALL \
         SELECT {INVITATION_COLUMNS}, CAST(0 AS BIGINT), CAST(NULL AS TEXT) {} \
         ORDER BY sort_email, id",
        open_invitations(2)
    );
    let mut rows = sqlx::query(&sql).bind(workspace_id).bind(now).fetch(pool);
    let mut batch = Vec::with_capacity(EXPORT_PAGE);
    while let Some(row) = rows.next().await {
        batch.push(MemberFields::from_row(&row?)?.into_member()?);
        if batch.len() == EXPORT_PAGE
            && !out
                .send(Export::Rows(std::mem::replace(
                    &mut batch,
                    Vec::with_capacity(EXPORT_PAGE),
                )))
                .await
        {
            return Ok(false);
        }
    }
    Ok(batch.is_empty() || out.send(Export::Rows(batch)).await)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A page as SQLite writes it: one row per (email, id).
    fn page(places: &[(&str, &str)]) -> String {
        let rows: Vec<serde_json::Value> = places
            .iter()
            .map(|(email, id)| {
                serde_json::json!([
                    email,
                    id,
                    email,
                    "",
                    0,
                    r#"[{"role":"workspace_member"}]"#,
                    null,
                    null,
                    1,
                    null,
                    null,
                    0,
                    null
                ])
            })
            .collect();
        serde_json::Value::Array(rows).to_string()
    }

    fn emails(rows: &[MemberRow]) -> Vec<&str> {
        rows.iter().map(|r| r.email.as_str()).collect()
    }

    #[test]
    fn a_page_in_order_after_its_place_reads_into_rows() {
        let after = Some(("a@x.test".to_string(), "9".to_string()));
        let rows = page_rows(
            after,
            &page(&[("b@x.test", "2"), ("b@x.test", "3"), ("c@x.test", "1")]),
        )
        .unwrap();
        assert_eq!(emails(&rows), ["b@x.test", "b@x.test", "c@x.test"]);
        assert_eq!(rows[1].id, "3");
        assert!(page_rows(None, "[]").unwrap().is_empty());
    }

    #[test]
    fn a_page_out_of_order_or_not_after_its_place_is_refused() {
        let refused = |after: Option<(&str, &str)>, places: &[(&str, &str)]| {
            let after = after.map(|(e, i)| (e.to_string(), i.to_string()));
            matches!(page_rows(after, &page(places)), Err(StoreError::Other(m)) if m.contains("out of order"))
        };
        // Two rows swapped, a row twice, a page that starts at or before
        // the previous page's last row.
        assert!(refused(None, &[("b@x.test", "1"), ("a@x.test", "1")]));
        assert!(refused(None, &[("a@x.test", "2"), ("a@x.test", "1")]));
        assert!(refused(None, &[("a@x.test", "1"), ("a@x.test", "1")]));
        assert!(refused(Some(("b@x.test", "1")), &[("b@x.test", "1")]));
        assert!(refused(Some(("b@x.test", "1")), &[("a@x.test", "5")]));
        assert!(!refused(Some(("b@x.test", "1")), &[("b@x.test", "10")]));
    }

    #[test]
    fn an_unreadable_page_is_an_error() {
        assert!(page_rows(None, "[[\"a@x.test\"]]").is_err());
        assert!(page_rows(None, "not json").is_err());
    }
}
