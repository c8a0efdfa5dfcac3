//! Search structures for the member list's filters (issue 16): a filter
//! that keeps few of a large workspace's members is answered from an index
//! of its own instead of a look at every member.
//!
//! * SQLite: two FTS5 tables over `memberships` (external content, kept in
//!   step by triggers): the normalised emails in trigrams (any substring of
//!   three characters or more), and the policies as words (a role id is one
//!   word). They are keyed by the memberships' row ids, which SQLite keeps
//!   through `VACUUM`, but a copy made row by row (`.dump` and a reload)
//!   renumbers: so each start checks that the indexes cover exactly the
//!   memberships' row ids, and rebuilds them when not.
//! * SQLite: the member order index of the migrations
//!   (`memberships_order_idx`) rebuilt wider, with each membership's
//!   `created_at`, `policies` and the copies of what the CSV shows of its
//!   member ([`super::member_copy`]) after its keys, so the member list and
//!   the members CSV read a page from the index alone. PostgreSQL keeps the
//!   narrower one: a membership's policies can pass its limit on an index
//!   entry's size.
//! * PostgreSQL: a trigram index on the emails (the `pg_trgm` extension;
//!   without it the email filter works as before, only without the index)
//!   and a `jsonb_path_ops` index on the policies.
//!
//! None of this is in `migrations/`: those run unchanged on both backends,
//! and these statements are each backend's own. Every statement here is
//! idempotent and runs after the migrations at each start.

use super::sql::{Backend, Db};
use super::StoreResult;
use sqlx::Row;

/// The SQLite search tables: each with the memberships column it indexes,
/// its tokenizer and further options. The role index keeps no per-row
/// sizes (`columnsize=0`: one row less to write with each membership
/// change); the email index keeps them, and they tell at each start
/// whether the indexes still cover the memberships (see [`prepare_sqlite`]).
const SQLITE_TABLES: [(&str, &str, &str, &str); 2] = [
    (
        "member_email_search",
        "sort_email",
        "'trigram case_sensitive 1'",
        "",
    ),
    (
        "member_role_search",
        "policies",
        "\"unicode61 tokenchars '_'\"",
        ", columnsize=0",
    ),
];

/// SQLite's member order index (see the module's notes), as
/// `sqlite_master` keeps it.
const SQLITE_MEMBER_ORDER: &str = "CREATE INDEX memberships_order_idx ON memberships \
     (workspace_id, sort_email, user_id, created_at, policies, shown_email, shown_name, \
     shown_auth_method, shown_totp_on, shown_last_login_at, shown_twilio, shown_groups)";

/// Creates (or checks) the search structures. Returns whether the email
/// substring index is there (the role index always is).
pub(crate) async fn prepare(db: &Db) -> StoreResult<bool> {
    match db.backend() {
        Backend::Sqlite => prepare_sqlite(db).await.map(|()| true),
        Backend::Postgres => prepare_postgres(db).await,
    }
}

/// Creates the FTS5 tables and their triggers where missing, and rebuilds
/// an index that is new or no longer covers the memberships: both are
/// keyed by the memberships' row ids, and a copy of the database made row
/// by row renumbers those (both indexes at once, so the email index's
/// per-row sizes, one per indexed row id, tell for both).
async fn prepare_sqlite(db: &Db) -> StoreResult<()> {
    let mut tx = db.begin().await?;
    let mut rebuild = Vec::new();
    for (table, column, tokenizer, options) in SQLITE_TABLES {
        let existed = sqlx::query("SELECT 1 AS one FROM sqlite_master WHERE name = $1")
            .bind(table)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        sqlx::query(&format!(
            "CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING fts5({column}, \
             content='memberships', content_rowid='rowid', tokenize={tokenizer}{options})"
        ))
        .execute(&mut *tx)
        .await?;
        let add =
            format!("INSERT INTO {table} (rowid, {column}) VALUES (new.rowid, new.{column});");
        let remove = format!(
            "INSERT INTO {table} ({table}, rowid, {column}) VALUES ('delete', old.rowid, old.{column});"
        );
        for (name, event, body) in [
            ("insert", "INSERT".to_string(), add.clone()),
            ("delete", "DELETE".to_string(), remove.clone()),
            (
                "update",
                format!("UPDATE OF {column}"),
                format!("{remove} {add}"),
            ),
        ] {
            sqlx::query(&format!(
                "CREATE TRIGGER IF NOT EXISTS {table}_{name} AFTER {event} ON memberships \
                 BEGIN {body} END"
            ))
            .execute(&mut *tx)
            .await?;
        }
        if !existed {
            rebuild.push(table);
        }
    }
    let covered = sqlx::query(
        "SELECT (SELECT COUNT(*) FROM memberships) = (SELECT COUNT(*) FROM member_email_search_docsize) \
           AND NOT EXISTS (SELECT 1 FROM memberships m WHERE NOT EXISTS \
                           (SELECT 1 FROM member_email_search_docsize d WHERE d.id = m.rowid)) AS ok",
    )
    .fetch_one(&mut *tx)
    .await?
    .try_get::<i64, _>("ok")?
        == 1;
    if !covered {
        rebuild = SQLITE_TABLES.iter().map(|t| t.0).collect();
    }
    for table in rebuild {
        tracing::info!(index = table, "building the member search index");
        sqlx::query(&format!("INSERT INTO {table} ({table}) VALUES ('rebuild')"))
            .execute(&mut *tx)
            .await?;
    }
    super::member_copy::prepare_sqlite(&mut tx).await?;
    crate::session::database::prepare_sqlite(&mut tx).await?;
    let order: Option<String> = sqlx::query(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'memberships_order_idx'",
    )
    .fetch_optional(&mut *tx)
    .await?
    .map(|r| r.try_get("sql"))
    .transpose()?;
    if order.as_deref() != Some(SQLITE_MEMBER_ORDER) {
        tracing::info!("building the member order index");
        sqlx::query("DROP INDEX IF EXISTS memberships_order_idx")
            .execute(&mut *tx)
            .await?;
        sqlx::query(SQLITE_MEMBER_ORDER).execute(&mut *tx).await?;
    }
    db.commit(tx).await?;
    Ok(())
}

async fn prepare_postgres(db: &Db) -> StoreResult<bool> {
    let pool = db.write();
    sqlx::query(
        "CREATE INDEX IF NOT EXISTS memberships_roles_idx ON memberships \
         USING gin ((CAST(policies AS jsonb)) jsonb_path_ops)",
    )
    .execute(pool)
    .await?;
    let trgm_schema = || async {
        sqlx::query(
            "SELECT CAST(n.nspname AS TEXT) AS schema FROM pg_extension e \
             JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_trgm'",
        )
        .fetch_optional(pool)
        .await?
        .map(|r| r.try_get::<String, _>("schema"))
        .transpose()
    };
    let mut schema = trgm_schema().await?;
    if schema.is_none() {
        // A trusted extension: a database owner may create it. Another
        // process may be creating it at the same moment, so look again
        // whatever this answers.
        if let Err(e) = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            .execute(pool)
            .await
        {
            tracing::debug!(error = %e, "CREATE EXTENSION pg_trgm");
        }
        schema = trgm_schema().await?;
    }
    let Some(schema) = schema else {
        tracing::warn!(
            "PostgreSQL's pg_trgm extension is not available: the member list's email \
             filter reads every member of the workspace (install it, or let the gateway's \
             database user create it, for an index)"
        );
        return Ok(false);
    };
    let created = sqlx::query(&format!(
        "CREATE INDEX IF NOT EXISTS memberships_email_trgm_idx ON memberships \
         USING gin (sort_email \"{}\".gin_trgm_ops)",
        schema.replace('"', "\"\"")
    ))
    .execute(pool)
    .await;
    if let Err(e) = created {
        tracing::warn!(error = %e, "no trigram index for the member list's email filter");
    }
    email_index_present(db).await
}

/// Whether this schema has the email trigram index (PostgreSQL).
async fn email_index_present(db: &Db) -> StoreResult<bool> {
    Ok(sqlx::query(
        "SELECT 1 AS one FROM pg_indexes WHERE schemaname = current_schema() \
         AND indexname = 'memberships_email_trgm_idx'",
    )
    .fetch_optional(db.read())
    .await?
    .is_some())
}

/// The FTS5 query for `text` as one phrase (its double quotes doubled).
pub(crate) fn fts_phrase(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}
