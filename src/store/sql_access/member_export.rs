//! The members CSV's rows: every member and open invitation of a
//! workspace in the member list's order, as one snapshot, streamed to the
//! response through a channel of a few batches (SQLite: pages read as JSON;
//! PostgreSQL: one joined statement).

use super::members::{
    after_place, open_invitations, MemberFields, INVITATION_COLUMNS, MEMBER_COLUMNS,
};
use super::*;

/// The columns of [`MemberFields`] from an export page's rows aliased `t`
/// ([`export_page_query`]).
const EXPORT_FIELDS: &str = "t.sort_email, t.id, t.email, t.name, t.invited, t.policies, \
     t.auth_method, t.totp_on, t.created_at, t.last_login_at, t.grants, t.twilio, t.group_list";

/// [`MEMBER_COLUMNS`] with the Twilio link and the groups, from SQLite's
/// copies in the memberships `m` ([`crate::store::member_copy`]).
const COPIED_MEMBER_COLUMNS: &str = "m.sort_email AS sort_email, m.user_id AS id, \
     m.shown_email AS email, m.shown_name AS name, CAST(0 AS BIGINT) AS invited, \
     m.policies AS policies, m.shown_auth_method AS auth_method, m.shown_totp_on AS totp_on, \
     m.created_at AS created_at, m.shown_last_login_at AS last_login_at, \
     CAST(NULL AS TEXT) AS grants, m.shown_twilio AS twilio, m.shown_groups AS group_list";

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
/// reads its own rows, not a page of invitations as well. The members' arm
/// reads what it shows from the memberships' copies
/// ([`crate::store::member_copy`]), all in the order index: no look-up
/// per member. The aggregate takes the rows as the compound statement
/// gives them, in order (an `ORDER BY` inside `json_group_array` sorted
/// each page again and cost about a tenth of the download); [`page_rows`]
/// checks that order.
fn export_page_query(after: bool) -> String {
    let (member_after, invite_after) = if after {
        let (members, invitations) = after_place(4, 5);
        (format!(" AND {members}"), format!(" AND {invitations}"))
    } else {
        (String::new(), String::new())
    };
    format!(
        "SELECT json_group_array(json_array({EXPORT_FIELDS})) AS page \
         FROM (SELECT {COPIED_MEMBER_COLUMNS} \
               FROM memberships m WHERE m.workspace_id = $1{member_after} \
               UNION ALL \
               SELECT {INVITATION_COLUMNS}, CAST(0 AS BIGINT), CAST(NULL AS TEXT) {}{invite_after} \
               ORDER BY 1, 2 LIMIT $3) t",
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
