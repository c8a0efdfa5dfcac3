//! SQLite, the embedded default.
//!
//! Durability: WAL journal with `synchronous = FULL`, so an acknowledged
//! commit survives both a killed process and a power cut; `busy_timeout`
//! lets concurrent writers wait instead of failing.

use super::sql::{Backend, SqlStore};
use super::{StoreError, StoreResult};
use sqlx::any::AnyPoolOptions;
use sqlx::Executor;
use std::time::Duration;

pub async fn connect(url: &str) -> StoreResult<SqlStore> {
    sqlx::any::install_default_drivers();
    ensure_parent_dir(url)?;
    let url = with_create_mode(url);
    let pool = AnyPoolOptions::new()
        .max_connections(8)
        .acquire_timeout(Duration::from_secs(5))
        .after_connect(|conn, _| {
            Box::pin(async move {
                conn.execute("PRAGMA journal_mode = WAL").await?;
                conn.execute("PRAGMA synchronous = FULL").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                conn.execute("PRAGMA busy_timeout = 5000").await?;
                Ok(())
            })
        })
        .connect(&url)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot open SQLite database: {e}")))?;
    Ok(SqlStore::new(pool, Backend::Sqlite))
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
