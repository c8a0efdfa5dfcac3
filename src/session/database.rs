//! Sessions in the gateway's own database (the default): tables `kv` and
//! `kv_index`; expired rows are swept by [`DbKv::sweep`].

use super::{ttl_ms, KvError, KvStore};
use crate::clock::{Clock, SystemClock};
use crate::store::sql::{Backend, Db};
use async_trait::async_trait;
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;

pub struct DbKv {
    db: Db,
    clock: Arc<dyn Clock>,
}

/// Keys per `IN (...)` list: one statement for each this many.
const IN_LIST: usize = 500;

/// The placeholders of an `IN` list of `n` values bound after `$1`:
/// `$2, $3, ...`.
fn in_list(n: usize) -> String {
    (2..n + 2)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;
type AnyScalar<'q> = sqlx::query::QueryScalar<'q, sqlx::Any, i64, sqlx::any::AnyArguments<'q>>;

/// Sets `key` to `value` until `expires_at` (ms), created or replaced.
fn set_query<'q>(key: &'q str, value: &'q str, expires_at: i64) -> AnyQuery<'q> {
    sqlx::query(
        "INSERT INTO kv (key, value, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
    )
    .bind(key)
    .bind(value)
    .bind(expires_at)
}

/// Adds `member` to `index` until `expires_at` and answers the index's
/// size in the same statement.
///
/// SQLite reads the size from `kv_index_size`, which triggers keep
/// ([`prepare_sqlite`]): the count before this statement's own trigger
/// (SQLite computes `RETURNING` for the row before the other `AFTER`
/// triggers fire), plus one when the row is new (`fresh`: 1 as inserted, 0
/// once the conflict path updated it). One look-up however many sessions the
/// person has; counting the live entries instead cost a sign-in 0.1 ms for
/// every 2 000 of them (issue 16).
///
/// PostgreSQL counts the other live members (which it reads the same way
/// whether or not the sub-query sees the new row), plus this one.
fn index_add_query<'q>(
    backend: Backend,
    index: &'q str,
    member: &'q str,
    expires_at: i64,
    now: i64,
) -> AnyScalar<'q> {
    match backend {
        Backend::Sqlite => sqlx::query_scalar(
            "INSERT INTO kv_index (ikey, member, expires_at, fresh) VALUES ($1, $2, $3, 1) \
             ON CONFLICT (ikey, member) DO UPDATE SET expires_at = excluded.expires_at, fresh = 0 \
             RETURNING fresh + COALESCE((SELECT n FROM kv_index_size WHERE ikey = $1), 0)",
        )
        .bind(index)
        .bind(member)
        .bind(expires_at),
        Backend::Postgres => sqlx::query_scalar(
            "INSERT INTO kv_index (ikey, member, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (ikey, member) DO UPDATE SET expires_at = excluded.expires_at \
             RETURNING 1 + (SELECT COUNT(*) FROM kv_index o \
               WHERE o.ikey = $1 AND o.member <> $2 AND o.expires_at > $4)",
        )
        .bind(index)
        .bind(member)
        .bind(expires_at)
        .bind(now),
    }
}

/// SQLite only, at start (in the caller's transaction): the size of every
/// index kept in `kv_index_size` by triggers on `kv_index`, and recounted
/// from `kv_index` itself, so that whatever was written without the
/// triggers (an older build, a copy made row by row) is counted right. An
/// index's size counts its entries until they are deleted (expired ones
/// until the sweep), which is what deciding when to prune needs.
pub(crate) async fn prepare_sqlite(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
) -> Result<(), sqlx::Error> {
    let has_fresh =
        sqlx::query("SELECT 1 AS one FROM pragma_table_info('kv_index') WHERE name = 'fresh'")
            .fetch_optional(&mut **tx)
            .await?
            .is_some();
    if !has_fresh {
        sqlx::query("ALTER TABLE kv_index ADD COLUMN fresh INTEGER NOT NULL DEFAULT 0")
            .execute(&mut **tx)
            .await?;
    }
    for statement in [
        "CREATE TABLE IF NOT EXISTS kv_index_size \
         (ikey TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID",
        "CREATE TRIGGER IF NOT EXISTS kv_index_size_added AFTER INSERT ON kv_index BEGIN \
         INSERT INTO kv_index_size (ikey, n) VALUES (new.ikey, 1) \
         ON CONFLICT (ikey) DO UPDATE SET n = n + 1; END",
        "CREATE TRIGGER IF NOT EXISTS kv_index_size_removed AFTER DELETE ON kv_index BEGIN \
         DELETE FROM kv_index_size WHERE ikey = old.ikey AND n <= 1; \
         UPDATE kv_index_size SET n = n - 1 WHERE ikey = old.ikey; END",
        "CREATE TRIGGER IF NOT EXISTS kv_index_size_moved AFTER UPDATE OF ikey ON kv_index BEGIN \
         DELETE FROM kv_index_size WHERE ikey = old.ikey AND n <= 1; \
         UPDATE kv_index_size SET n = n - 1 WHERE ikey = old.ikey; \
         INSERT INTO kv_index_size (ikey, n) VALUES (new.ikey, 1) \
         ON CONFLICT (ikey) DO UPDATE SET n = n + 1; END",
        "DELETE FROM kv_index_size",
        "INSERT INTO kv_index_size (ikey, n) SELECT ikey, COUNT(*) FROM kv_index GROUP BY ikey",
    ] {
        sqlx::query(statement).execute(&mut **tx).await?;
    }
    Ok(())
}

fn unavailable(e: sqlx::Error) -> KvError {
    KvError::Unavailable(e.to_string())
}

impl DbKv {
    /// Writes go through the store's writer (see [`Db`]); expiry by the
    /// system clock.
    pub fn new(db: Db) -> Self {
        Self::with_clock(db, Arc::new(SystemClock))
    }

    /// Expiry by `clock` (the gateway's injected clock).
    pub fn with_clock(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self { db, clock }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Deletes expired rows; run periodically.
    pub async fn sweep(&self) -> Result<u64, KvError> {
        let now = self.now_ms();
        let a = sqlx::query("DELETE FROM kv WHERE expires_at <= $1")
            .bind(now)
            .execute(self.db.write())
            .await
            .map_err(unavailable)?;
        self.db.durable().await.map_err(unavailable)?;
        let b = sqlx::query("DELETE FROM kv_index WHERE expires_at <= $1")
            .bind(now)
            .execute(self.db.write())
            .await
            .map_err(unavailable)?;
        self.db.durable().await.map_err(unavailable)?;
        Ok(a.rows_affected() + b.rows_affected())
    }
}

#[async_trait]
impl KvStore for DbKv {
    async fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        let row = sqlx::query("SELECT value FROM kv WHERE key = $1 AND expires_at > $2")
            .bind(key)
            .bind(self.now_ms())
            .fetch_optional(self.db.read())
            .await
            .map_err(unavailable)?;
        row.map(|r| r.try_get("value"))
            .transpose()
            .map_err(unavailable)
    }

    async fn exists_many(&self, keys: &[String]) -> Result<Vec<bool>, KvError> {
        let mut present = std::collections::HashSet::new();
        for chunk in keys.chunks(IN_LIST) {
            let sql = format!(
                "SELECT key FROM kv WHERE expires_at > $1 AND key IN ({})",
                in_list(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(self.now_ms());
            for key in chunk {
                q = q.bind(key);
            }
            for row in q.fetch_all(self.db.read()).await.map_err(unavailable)? {
                present.insert(row.try_get::<String, _>("key").map_err(unavailable)?);
            }
        }
        Ok(keys.iter().map(|k| present.contains(k)).collect())
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), KvError> {
        set_query(key, value, self.now_ms() + ttl_ms(ttl))
            .execute(self.db.write())
            .await
            .map_err(unavailable)?;
        self.db.durable().await.map_err(unavailable)?;
        Ok(())
    }

    /// Both statements on one connection taken from the pool once: the
    /// pool's hand-back (a ping on SQLite's connection thread, see
    /// docs/benchmarks.md) is paid once for a new session.
    async fn set_and_index_add(
        &self,
        (key, value, ttl): (&str, &str, Duration),
        (index, member, index_ttl): (&str, &str, Duration),
    ) -> Result<usize, KvError> {
        let now = self.now_ms();
        let mut conn = self.db.write().acquire().await.map_err(unavailable)?;
        set_query(key, value, now + ttl_ms(ttl))
            .execute(&mut *conn)
            .await
            .map_err(unavailable)?;
        let size = index_add_query(
            self.db.backend(),
            index,
            member,
            now + ttl_ms(index_ttl),
            now,
        )
        .fetch_one(&mut *conn)
        .await
        .map_err(unavailable)?;
        drop(conn);
        self.db.durable().await.map_err(unavailable)?;
        Ok(usize::try_from(size).unwrap_or(0))
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, KvError> {
        let now = self.now_ms();
        let done = sqlx::query(
            "INSERT INTO kv (key, value, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at \
             WHERE kv.expires_at <= $4",
        )
        .bind(key)
        .bind(value)
        .bind(now + ttl_ms(ttl))
        .bind(now)
        .execute(self.db.write())
        .await
        .map_err(unavailable)?;
        self.db.durable().await.map_err(unavailable)?;
        Ok(done.rows_affected() == 1)
    }

    async fn take(&self, key: &str) -> Result<Option<String>, KvError> {
        let row = sqlx::query("DELETE FROM kv WHERE key = $1 RETURNING value, expires_at")
            .bind(key)
            .fetch_optional(self.db.write())
            .await
            .map_err(unavailable)?;
        self.db.durable().await.map_err(unavailable)?;
        let Some(row) = row else { return Ok(None) };
        let expires: i64 = row.try_get("expires_at").map_err(unavailable)?;
        if expires <= self.now_ms() {
            return Ok(None);
        }
        row.try_get("value").map(Some).map_err(unavailable)
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        sqlx::query("DELETE FROM kv WHERE key = $1")
            .bind(key)
            .execute(self.db.write())
            .await
            .map_err(unavailable)?;
        self.db.durable().await.map_err(unavailable)?;
        Ok(())
    }

    async fn index_add(&self, index: &str, member: &str, ttl: Duration) -> Result<usize, KvError> {
        let now = self.now_ms();
        let size = index_add_query(self.db.backend(), index, member, now + ttl_ms(ttl), now)
            .fetch_one(self.db.write())
            .await
            .map_err(unavailable)?;
        self.db.durable().await.map_err(unavailable)?;
        Ok(usize::try_from(size).unwrap_or(0))
    }

    async fn index_members(&self, index: &str) -> Result<Vec<String>, KvError> {
        let rows = sqlx::query("SELECT member FROM kv_index WHERE ikey = $1 AND expires_at > $2")
            .bind(index)
            .bind(self.now_ms())
            .fetch_all(self.db.read())
            .await
            .map_err(unavailable)?;
        rows.iter()
            .map(|r| r.try_get("member"))
            .collect::<Result<_, _>>()
            .map_err(unavailable)
    }

    async fn index_remove(&self, index: &str, members: &[String]) -> Result<(), KvError> {
        for chunk in members.chunks(IN_LIST) {
            let sql = format!(
                "DELETE FROM kv_index WHERE ikey = $1 AND member IN ({})",
                in_list(chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(index);
            for m in chunk {
                q = q.bind(m);
            }
            q.execute(self.db.write()).await.map_err(unavailable)?;
            self.db.durable().await.map_err(unavailable)?;
        }
        Ok(())
    }

    async fn incr(&self, key: &str, ttl: Duration) -> Result<i64, KvError> {
        let now = self.now_ms();
        // One statement: a live counter goes up by one, an absent or expired
        // one starts again at 1 with a new expiry. Counters are stored as
        // decimal text like every other value.
        let row = sqlx::query(
            "INSERT INTO kv (key, value, expires_at) VALUES ($1, '1', $2) \
             ON CONFLICT (key) DO UPDATE SET \
               value = CASE WHEN kv.expires_at > $3 THEN CAST(CAST(kv.value AS BIGINT) + 1 AS TEXT) ELSE '1' END, \
               expires_at = CASE WHEN kv.expires_at > $3 THEN kv.expires_at ELSE excluded.expires_at END \
             RETURNING value",
        )
        .bind(key)
        .bind(now + ttl_ms(ttl))
        .bind(now)
        .fetch_one(self.db.write())
        .await
        .map_err(unavailable)?;
        self.db.durable().await.map_err(unavailable)?;
        let v: String = row.try_get("value").map_err(unavailable)?;
        v.parse()
            .map_err(|_| KvError::Unavailable(format!("counter {key} is not a number")))
    }

    async fn ping(&self) -> Result<(), KvError> {
        sqlx::query("SELECT 1")
            .execute(self.db.read())
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
