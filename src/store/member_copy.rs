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
//! ([`COPY_FROM_SOURCES`]), whichever code path or tool wrote. A sign-in
//! (last sign-in and its method) costs one more row update per workspace
//! of the person's.
//!
//! None of this is in `migrations/` (they run unchanged on both backends;
//! PostgreSQL's export joins the sources in one statement, which its
//! driver streams without a hand-over per row). Each start adds what is
//! missing and, when a trigger was missing or differs from this build's,
//! recomputes every copy: a database the triggers did not watch is brought
//! back in step before it is read.

use super::StoreResult;
use sqlx::Row;

/// The copied columns, added to `memberships` (their names in the export).
pub(crate) const COLUMNS: [(&str, &str); 7] = [
    ("shown_email", "TEXT"),
    ("shown_name", "TEXT"),
    ("shown_auth_method", "TEXT"),
    ("shown_totp_on", "BIGINT"),
    ("shown_last_login_at", "BIGINT"),
    ("shown_twilio", "BIGINT NOT NULL DEFAULT 0"),
    ("shown_groups", "TEXT"),
];

/// The `SET` list that recomputes a `memberships` row's copies from the
/// sources (the same values the member list joins in).
const COPY_FROM_SOURCES: &str = "(shown_email, shown_name, shown_auth_method, shown_totp_on, \
     shown_last_login_at) = (SELECT u.email, u.name, u.last_auth_method, u.totp_enabled_at, \
     u.last_login_at FROM users u WHERE u.id = memberships.user_id), \
     shown_twilio = EXISTS (SELECT 1 FROM identity_links l \
     WHERE l.user_id = memberships.user_id AND l.provider = 'twilio'), \
     shown_groups = (SELECT group_concat(gm.group_id, ',') FROM group_members gm \
     WHERE gm.workspace_id = memberships.workspace_id AND gm.user_id = memberships.user_id)";

/// Each trigger: its name, what fires it, and the memberships whose copies
/// it recomputes (one `WHERE` a statement).
const TRIGGERS: [(&str, &str, &[&str]); 9] = [
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
        .map(|w| format!(" UPDATE memberships SET {COPY_FROM_SOURCES} WHERE {w};"))
        .collect();
    format!("CREATE TRIGGER {name} {event} BEGIN{body} END")
}

/// Adds the copied columns and the triggers where missing, and recomputes
/// every copy when a trigger was missing or not this build's (in `tx`, the
/// start's own transaction).
pub(crate) async fn prepare_sqlite(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> StoreResult<()> {
    let present: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info('memberships')")
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get("name"))
        .collect::<Result<_, _>>()?;
    for (column, kind) in COLUMNS {
        if !present.iter().any(|p| p == column) {
            sqlx::query(&format!(
                "ALTER TABLE memberships ADD COLUMN {column} {kind}"
            ))
            .execute(&mut **tx)
            .await?;
        }
    }
    let mut recompute = false;
    for trigger in TRIGGERS {
        let want = trigger_sql(trigger);
        let have: Option<String> =
            sqlx::query("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = $1")
                .bind(trigger.0)
                .fetch_optional(&mut **tx)
                .await?
                .map(|r| r.try_get("sql"))
                .transpose()?;
        if have.as_deref() != Some(want.as_str()) {
            sqlx::query(&format!("DROP TRIGGER IF EXISTS {}", trigger.0))
                .execute(&mut **tx)
                .await?;
            sqlx::query(&want).execute(&mut **tx).await?;
            recompute = true;
        }
    }
    if recompute {
        tracing::info!("copying the members' shown columns into their memberships");
        sqlx::query(&format!("UPDATE memberships SET {COPY_FROM_SOURCES}"))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}
