//! In-process store: tests and single-process deployments.

use super::{ttl_ms, KvError, KvStore};
use crate::clock::{Clock, SystemClock};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct MemoryKv {
    inner: Mutex<Inner>,
    clock: Arc<dyn Clock>,
}

impl Default for MemoryKv {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Default)]
struct Inner {
    values: HashMap<String, (String, i64)>,
    indexes: HashMap<String, (HashSet<String>, i64)>,
    writes: u64,
}

impl Inner {
    /// Drops expired entries now and then, so memory stays bounded.
    fn sweep(&mut self, now: i64) {
        self.writes += 1;
        if self.writes.is_multiple_of(1024) {
            self.values.retain(|_, (_, exp)| *exp > now);
            self.indexes.retain(|_, (_, exp)| *exp > now);
        }
    }
}

impl MemoryKv {
    /// Expiry by the system clock.
    pub fn new() -> Self {
        Self::with_clock(Arc::new(SystemClock))
    }

    /// Expiry by `clock` (the gateway's injected clock).
    pub fn with_clock(clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            clock,
        }
    }

    fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, KvError> {
        self.inner
            .lock()
            .map_err(|_| KvError::Unavailable("memory store poisoned".into()))
    }
}

#[async_trait]
impl KvStore for MemoryKv {
    async fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        let now = self.now_ms();
        Ok(self
            .lock()?
            .values
            .get(key)
            .filter(|(_, e)| *e > now)
            .map(|(v, _)| v.clone()))
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), KvError> {
        let now = self.now_ms();
        let mut g = self.lock()?;
        g.sweep(now);
        g.values
            .insert(key.to_string(), (value.to_string(), now + ttl_ms(ttl)));
        Ok(())
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, KvError> {
        let now = self.now_ms();
        let mut g = self.lock()?;
        g.sweep(now);
        if g.values.get(key).is_some_and(|(_, e)| *e > now) {
            return Ok(false);
        }
        g.values
            .insert(key.to_string(), (value.to_string(), now + ttl_ms(ttl)));
        Ok(true)
    }

    async fn take(&self, key: &str) -> Result<Option<String>, KvError> {
        let now = self.now_ms();
        Ok(self
            .lock()?
            .values
            .remove(key)
            .filter(|(_, e)| *e > now)
            .map(|(v, _)| v))
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.lock()?.values.remove(key);
        Ok(())
    }

    async fn index_add(&self, index: &str, member: &str, ttl: Duration) -> Result<usize, KvError> {
        let now = self.now_ms();
        let mut g = self.lock()?;
        g.sweep(now);
        let entry = g
            .indexes
            .entry(index.to_string())
            .or_insert_with(|| (HashSet::new(), 0));
        if entry.1 <= now {
            entry.0.clear();
        }
        entry.0.insert(member.to_string());
        entry.1 = entry.1.max(now + ttl_ms(ttl));
        Ok(entry.0.len())
    }

    async fn index_members(&self, index: &str) -> Result<Vec<String>, KvError> {
        let now = self.now_ms();
        Ok(self
            .lock()?
            .indexes
            .get(index)
            .filter(|(_, e)| *e > now)
            .map(|(s, _)| s.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn index_remove(&self, index: &str, members: &[String]) -> Result<(), KvError> {
        let mut g = self.lock()?;
        if let Some((set, _)) = g.indexes.get_mut(index) {
            for m in members {
                set.remove(m);
            }
        }
        Ok(())
    }

    async fn incr(&self, key: &str, ttl: Duration) -> Result<i64, KvError> {
        let now = self.now_ms();
        let mut g = self.lock()?;
        g.sweep(now);
        let next = match g.values.get(key).filter(|(_, e)| *e > now) {
            Some((v, exp)) => (v.parse::<i64>().unwrap_or(0) + 1, *exp),
            None => (1, now + ttl_ms(ttl)),
        };
        g.values
            .insert(key.to_string(), (next.0.to_string(), next.1));
        Ok(next.0)
    }

    async fn ping(&self) -> Result<(), KvError> {
        self.lock().map(|_| ())
    }
}
