//! SQLite, the embedded default.
//!
//! Durability: WAL journal with `synchronous = FULL`, so an acknowledged
//! commit survives both a killed process and a power cut.
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
    // The writer first: it creates the file and turns WAL on.
    let write = pool(&url, 1, Duration::from_secs(10), false).await?;
    // In debug builds (the tests) a write sent to a reader fails loudly.
    let read = pool(
        &url,
        READERS,
        Duration::from_secs(5),
        cfg!(debug_assertions),
    )
    .await?;
    Ok(SqlStore::new(Db::new(read, write, Backend::Sqlite)))
}

async fn pool(url: &str, size: u32, wait: Duration, query_only: bool) -> StoreResult<AnyPool> {
    AnyPoolOptions::new()
        .max_connections(size)
        .acquire_timeout(wait)
        .after_connect(move |conn, _| Box::pin(async move { setup(conn, query_only).await }))
        .connect(url)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database: {e}")))
}

async fn setup(conn: &mut AnyConnection, query_only: bool) -> Result<(), sqlx::Error> {
    conn.execute("PRAGMA journal_mode = WAL").await?;
    conn.execute("PRAGMA synchronous = FULL").await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    conn.execute("PRAGMA busy_timeout = 5000").await?;
    // Reads map the file instead of copying each page through a syscall
    // into a small per-connection cache (issue 16: a 100 000-member CSV
    // spent most of its time in pread). Mapped pages are the kernel's page
    // cache, shared by every connection, not the process's own memory.
    conn.execute("PRAGMA mmap_size = 268435456").await?;
    if query_only {
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
