//! SQLite only: each membership keeps a copy of what the members CSV shows
//! about its member besides the membership itself (the user's email, name,
//! last sign-in and its method, whether a second factor is on, the Twilio
//! link, the member's groups in the workspace), so the export walks one
//! index (`memberships_order_idx`, which carries the copies) with no
//! look-up per member. At 100 000 members the look-ups (users by id, the
//! Twilio link, the groups) were about two thirds of the download's time
//! (issue 16).
//!
//! Triggers keep the copies in step, inside the statement that changes the
//! source, so a copy can never be seen out of step with what it copies:
//! each recomputes the touched memberships' copies from the sources
//! ([`SOURCES`]), whichever code path or tool wrote. Two writes fire no
//! trigger that could see them: the hidden delete of an `INSERT OR REPLACE`
//! and anything written while the triggers were not there; each start
//! compares every copy with its sources and recomputes them all when one
//! differs. The price is on the writes: a sign-in (last sign-in and its
//! method) updates one more row per workspace of the person's, and each
//! change to what the CSV shows rewrites the member's entry in the wide
//! member order index (deleting a group of 50 000 members rewrites 50 000).
//!
//! None of this is in `migrations/` (they run unchanged on both backends;
//! PostgreSQL's export joins the sources in one statement, which its
//! driver streams without a hand-over per row).

use super::StoreResult;
use sqlx::Row;

/// The copied columns, added to `memberships` (their names in the export).
pub(crate) const COLUMNS: [(&str, &str); 7] = [
    ("shown_email", "TEXT"),
    ("shown_name", "TEXT"),
    ("shown_auth_method", "TEXT"),
    ("shown_totp_on", "BIGINT"),
    ("shown_last_login_at", "BIGINT"),
    ("shown_twilio", "BIGINT"),
    ("shown_groups", "TEXT"),
];

/// The copied columns as one row value.
const SHOWN: &str = "(shown_email, shown_name, shown_auth_method, shown_totp_on, \
     shown_last_login_at, shown_twilio, shown_groups)";

/// What [`SHOWN`] copies, for the `memberships` row at hand: the same values
/// the member list joins in. Only syntax an older `sqlite3` understands
/// (no `ORDER BY` inside the aggregate, which needs 3.44: Debian 12's
/// `sqlite3` is 3.40, and a trigger it cannot parse makes it refuse the
/// whole file). The groups come in the order of the index the look-up
/// walks, the same for every copy and for the comparison at start; readers
/// sort them.
const SOURCES: &str = "(SELECT u.email, u.name, u.last_auth_method, u.totp_enabled_at, \
     u.last_login_at, EXISTS (SELECT 1 FROM identity_links l \
     WHERE l.user_id = u.id AND l.provider = 'twilio'), \
     (SELECT group_concat(gm.group_id, ',') FROM group_members gm \
     WHERE gm.workspace_id = memberships.workspace_id AND gm.user_id = u.id) \
     FROM users u WHERE u.id = memberships.user_id)";

/// Each trigger: its name, what fires it, and the memberships whose copies
/// it recomputes (one `WHERE` a statement).
const TRIGGERS: [(&str, &str, &[&str]); 10] = [
    (
        "member_copy_new",
        "AFTER INSERT ON memberships",
        &["rowid = new.rowid"],
    ),
    (
        "member_copy_moved",
        "AFTER UPDATE OF workspace_id, user_id ON memberships",
        &["rowid = new.rowid"],
    ),
    (
        // A user written after their memberships (a copy made row by row
        // with foreign keys off).
        "member_copy_user_new",
        "AFTER INSERT ON users",
        &["user_id = new.id"],
    ),
    (
        "member_copy_user",
        "AFTER UPDATE OF email, name, last_auth_method, totp_enabled_at, last_login_at ON users",
        &["user_id = new.id"],
    ),
    (
        "member_copy_group_joined",
        "AFTER INSERT ON group_members",
        &["workspace_id = new.workspace_id AND user_id = new.user_id"],
    ),
    (
        "member_copy_group_left",
        "AFTER DELETE ON group_members",
        &["workspace_id = old.workspace_id AND user_id = old.user_id"],
    ),
    (
        "member_copy_group_moved",
        "AFTER UPDATE ON group_members",
        &[
            "workspace_id = old.workspace_id AND user_id = old.user_id",
            "workspace_id = new.workspace_id AND user_id = new.user_id",
        ],
    ),
    (
        "member_copy_link_added",
        "AFTER INSERT ON identity_links WHEN new.provider = 'twilio'",
        &["user_id = new.user_id"],
    ),
    (
        "member_copy_link_gone",
        "AFTER DELETE ON identity_links WHEN old.provider = 'twilio'",
        &["user_id = old.user_id"],
    ),
    (
        // A change of provider or user may move a Twilio link from one
        // person to another.
        "member_copy_link_moved",
        "AFTER UPDATE OF provider, user_id ON identity_links \
         WHEN old.provider = 'twilio' OR new.provider = 'twilio'",
        &["user_id = old.user_id", "user_id = new.user_id"],
    ),
];

/// A trigger's `CREATE` statement, as `sqlite_master` keeps it.
fn trigger_sql((name, event, targets): (&str, &str, &[&str])) -> String {
    let body: String = targets
        .iter()
        .map(|w| format!(" UPDATE memberships SET {SHOWN} = {SOURCES} WHERE {w};"))
        .collect();
    format!("CREATE TRIGGER {name} {event} BEGIN{body} END")
}

/// Adds the copied columns and the triggers where missing or not this
/// build's, drops triggers of this module's that this build does not have,
/// and recomputes every copy when any of that happened or any copy differs
/// from its sources (in `tx`, the start's own transaction). The comparison
/// reads every membership (about 0.25 s for 100 000 on SQLite): it catches
/// what no trigger sees, such as an `INSERT OR REPLACE` made by hand (whose
/// hidden delete fires no trigger) or a copy loaded with the triggers off.
pub(crate) async fn prepare_sqlite(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> StoreResult<()> {
    let present: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info('memberships')")
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get("name"))
        .collect::<Result<_, _>>()?;
    let mut recompute = false;
    for (column, kind) in COLUMNS {
        if !present.iter().any(|p| p == column) {
            sqlx::query(&format!(
                "ALTER TABLE memberships ADD COLUMN {column} {kind}"
            ))
            .execute(&mut **tx)
            .await?;
            recompute = true;
        }
    }
    let existing: Vec<(String, String)> = sqlx::query(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'member\\_copy\\_%' ESCAPE '\\'",
    )
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("name")?, r.try_get("sql")?)))
    .collect::<Result<_, sqlx::Error>>()?;
    for (name, _) in &existing {
        if !TRIGGERS.iter().any(|t| t.0 == name.as_str()) {
            sqlx::query(&format!("DROP TRIGGER \"{}\"", name.replace('"', "\"\"")))
                .execute(&mut **tx)
                .await?;
        }
    }
    for trigger in TRIGGERS {
        let want = trigger_sql(trigger);
        let have = existing.iter().find(|(name, _)| name == trigger.0);
        if have.map(|(_, sql)| sql.as_str()) != Some(want.as_str()) {
            sqlx::query(&format!("DROP TRIGGER IF EXISTS {}", trigger.0))
                .execute(&mut **tx)
                .await?;
            sqlx::query(&want).execute(&mut **tx).await?;
            recompute = true;
        }
    }
    if !recompute {
        recompute = sqlx::query(&format!(
            "SELECT EXISTS (SELECT 1 FROM memberships WHERE {SHOWN} IS NOT {SOURCES}) AS stale"
        ))
        .fetch_one(&mut **tx)
        .await?
        .try_get::<i64, _>("stale")?
            == 1;
    }
    if recompute {
        tracing::info!("copying the members' shown columns into their memberships");
        sqlx::query(&format!("UPDATE memberships SET {SHOWN} = {SOURCES}"))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
