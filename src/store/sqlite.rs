//! SQLite, the embedded default.
//!
//! Durability: WAL journal, and an acknowledged commit survives both a
//! killed process and a power cut. A file database commits through group
//! commit ([`super::group_commit`]): the writer runs `synchronous =
//! NORMAL` and each write waits for a shared sync of the log, which is
//! `FULL`'s guarantee at a fraction of its fsyncs. Where the log is not WAL
//! (the database refused it) or there is no file, `synchronous = FULL`.
//!
//! Concurrency: SQLite has one writer at a time. Every write of this
//! process goes through one writer connection (requests queue for it in
//! order, see [`Db`]) and write transactions begin `IMMEDIATE`;
//! `busy_timeout` makes the writer wait for another process (the CLI)
//! instead of failing. Reads use their own pool and run alongside it.

use super::sql::{Backend, Db, SqlStore};
use super::{StoreError, StoreResult};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Executor};
use std::time::Duration;

/// Readers at once.
const READERS: u32 = 8;

pub async fn connect(url: &str) -> StoreResult<SqlStore> {
    sqlx::any::install_default_drivers();
    ensure_parent_dir(url)?;
    let url = with_create_mode(url);
    // Group commit needs a file to sync and the log in WAL mode: a first
    // connection (which creates the file) turns WAL on and says whether it
    // took; the writer's connections are then all set up alike.
    let group = match file_path(&url) {
        Some(path) if wal_mode(&url).await? => Some(
            super::group_commit::GroupCommit::start(path.as_ref()).map_err(|e| {
                StoreError::Unavailable(format!("cannot start the SQLite sync thread: {e}"))
            })?,
        ),
        _ => None,
    };
    let role = if group.is_some() {
        Role::GroupWriter
    } else {
        Role::Writer
    };
    let write = pool(&url, 1, Duration::from_secs(10), role).await?;
    // In debug builds (the tests) a write sent to a reader fails loudly.
    let readers = if cfg!(debug_assertions) {
        Role::QueryOnly
    } else {
        Role::Reader
    };
    let read = pool(&url, READERS, Duration::from_secs(5), readers).await?;
    let db = Db::new(read, write, Backend::Sqlite);
    Ok(SqlStore::new(match group {
        Some(g) => db.with_group_commit(g),
        None => db,
    }))
}

/// Whether the database's log is (or could be made) WAL.
async fn wal_mode(url: &str) -> StoreResult<bool> {
    use sqlx::Connection;
    let unavailable =
        |e: sqlx::Error| StoreError::Unavailable(format!("cannot open SQLite database: {e}"));
    let mut conn = AnyConnection::connect(url).await.map_err(unavailable)?;
    conn.execute("PRAGMA busy_timeout = 5000")
        .await
        .map_err(unavailable)?;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
        .fetch_one(&mut conn)
        .await
        .map_err(unavailable)?;
    let _ = conn.close().await;
    Ok(mode.eq_ignore_ascii_case("wal"))
}

/// What a pool's connections are for.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    /// The writer, syncing each commit itself.
    Writer,
    /// The writer under group commit: commits unsynced, see the module.
    GroupWriter,
    Reader,
    /// A reader that refuses writes (debug builds).
    QueryOnly,
}

async fn pool(url: &str, size: u32, wait: Duration, role: Role) -> StoreResult<AnyPool> {
    AnyPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(wait)
        // sqlx pings a pooled connection before lending it by default:
        // for SQLite a second hand-over to the connection's thread for
        // every statement, and nothing to find (a local file does not
        // drop connections; a failing statement still reports its error).
        .test_before_acquire(false)
        .after_connect(move |conn, _| Box::pin(async move { setup(conn, role).await }))
        .connect(url)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database: {e}")))
}

async fn setup(conn: &mut AnyConnection, role: Role) -> Result<(), sqlx::Error> {
    conn.execute("PRAGMA journal_mode = WAL").await?;
    conn.execute(if role == Role::GroupWriter {
        "PRAGMA synchronous = NORMAL"
    } else {
        "PRAGMA synchronous = FULL"
    })
    .await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    conn.execute("PRAGMA busy_timeout = 5000").await?;
    // Reads map the file instead of copying each page through a syscall
    // into a small per-connection cache (issue 16: a 100 000-member CSV
    // spent most of its time in pread). Mapped pages are the kernel's page
    // cache, shared by every connection, not the process's own memory.
    conn.execute("PRAGMA mmap_size = 268435456").await?;
    if role == Role::QueryOnly {
        conn.execute("PRAGMA query_only = ON").await?;
    }
    Ok(())
}

fn file_path(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    (!path.is_empty() && path != ":memory:").then_some(path)
}

fn ensure_parent_dir(url: &str) -> StoreResult<()> {
    if let Some(parent) = file_path(url).and_then(|p| std::path::Path::new(p).parent()) {
        if !parent.as_os_str().is_empty() {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
    }
    Ok(())
}

fn with_create_mode(url: &str) -> String {
    if url.contains("mode=") {
        url.to_string()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_file_path_in_urls() {
        assert_eq!(file_path("sqlite://data/x.db"), Some("data/x.db"));
        assert_eq!(file_path("sqlite:data/x.db?mode=rwc"), Some("data/x.db"));
        assert_eq!(file_path("sqlite::memory:"), None);
        assert_eq!(with_create_mode("sqlite://a.db"), "sqlite://a.db?mode=rwc");
    }
}
