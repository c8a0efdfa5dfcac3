//! Sessions in two layers: a tiny key-value-with-TTL store (memory,
//! database, Redis) and one [`manager::SessionManager`] that owns the cookie,
//! hashing and expiry.

pub mod batch;
pub mod database;
pub mod manager;
pub mod memory;
pub mod redis;

use async_trait::async_trait;
use std::time::Duration;

pub use manager::{Session, SessionManager};

#[derive(Debug, Clone, thiserror::Error)]
pub enum KvError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
}

/// Key-value with expiry, plus small sets ("indexes") used to find every
/// session of one user. Memory and database stores expire entries by the
/// clock they are given (the gateway's injected clock); Redis by its own
/// server-side TTL. The manager applies its idle and absolute rules on top
/// with the injected clock.
#[async_trait]
pub trait KvStore: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<String>, KvError>;
    /// Which of `keys` exist (unexpired), in order: one round trip where the
    /// backend allows it.
    async fn exists_many(&self, keys: &[String]) -> Result<Vec<bool>, KvError> {
        let mut found = Vec::with_capacity(keys.len());
        for k in keys {
            found.push(self.get(k).await?.is_some());
        }
        Ok(found)
    }
    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), KvError>;
    /// Sets only when absent (or expired); true when this call set it.
    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, KvError>;
    /// Gets and deletes atomically: single-use values.
    async fn take(&self, key: &str) -> Result<Option<String>, KvError>;
    async fn delete(&self, key: &str) -> Result<(), KvError>;
    /// Adds `member` to the set `index`, which lives at least `ttl` more;
    /// returns how many members the set has now.
    async fn index_add(&self, index: &str, member: &str, ttl: Duration) -> Result<usize, KvError>;
    /// [`Self::set`] of `key`, then [`Self::index_add`] of `member` to
    /// `index` (for `index_ttl`): a new session and its entry in its
    /// person's index. A store may run both in one trip; the set comes
    /// first either way. Returns the index's size.
    async fn set_and_index_add(
        &self,
        (key, value, ttl): (&str, &str, Duration),
        (index, member, index_ttl): (&str, &str, Duration),
    ) -> Result<usize, KvError> {
        self.set(key, value, ttl).await?;
        self.index_add(index, member, index_ttl).await
    }
    async fn index_members(&self, index: &str) -> Result<Vec<String>, KvError>;
    async fn index_remove(&self, index: &str, members: &[String]) -> Result<(), KvError>;
    /// Adds one to the counter at `key` (created at 1 with `ttl` when absent
    /// or expired; an existing counter keeps its expiry) and returns it.
    async fn incr(&self, key: &str, ttl: Duration) -> Result<i64, KvError>;
    async fn ping(&self) -> Result<(), KvError>;
}

/// Indexes smaller than this are never pruned.
const PRUNE_FROM: usize = 16;

/// Adds `member` (whose value lives at `value_key(member)`) to the set
/// `index`, and drops the members whose values are gone when the set has
/// just reached a power of two of at least [`PRUNE_FROM`] members. So the
/// pruning, one round trip for every member, runs once each time the set
/// doubles, not at every sign-in. (The size each sign-in reads is counted
/// by the store: on a database, from an index of the live members, a few
/// microseconds for a handful of sessions and about 0.1 ms for 2 000.)
pub async fn index_add_pruned(
    kv: &dyn KvStore,
    index: &str,
    member: &str,
    ttl: Duration,
    value_key: impl Fn(&str) -> String,
) -> Result<(), KvError> {
    let size = kv.index_add(index, member, ttl).await?;
    prune_when_doubled(kv, index, size, value_key).await
}

/// The pruning of [`index_add_pruned`], for an index that has just grown to
/// `size` members.
pub async fn prune_when_doubled(
    kv: &dyn KvStore,
    index: &str,
    size: usize,
    value_key: impl Fn(&str) -> String,
) -> Result<(), KvError> {
    if size < PRUNE_FROM || !size.is_power_of_two() {
        return Ok(());
    }
    let members = kv.index_members(index).await?;
    let keys: Vec<String> = members.iter().map(|m| value_key(m)).collect();
    let live = kv.exists_many(&keys).await?;
    let dead: Vec<String> = members
        .into_iter()
        .zip(live)
        .filter_map(|(m, live)| (!live).then_some(m))
        .collect();
    if dead.is_empty() {
        return Ok(());
    }
    kv.index_remove(index, &dead).await
}

pub(crate) fn ttl_ms(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis())
        .unwrap_or(i64::MAX / 2)
        .max(1)
}
