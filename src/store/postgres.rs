//! PostgreSQL, the scale-out backend shared by several gateway instances.

use super::sql::{Backend, Db, SqlStore};
use super::{StoreError, StoreResult};
use sqlx::any::AnyPoolOptions;
use std::time::Duration;

pub async fn connect(url: &str) -> StoreResult<SqlStore> {
    sqlx::any::install_default_drivers();
    let pool = AnyPoolOptions::new()
        .max_connections(16)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(3))
        .connect(url)
        .await
        .map_err(|e| StoreError::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
    Ok(SqlStore::new(Db::single(pool, Backend::Postgres)))
}
