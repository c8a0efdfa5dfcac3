//! "Does this session still exist?" for forward-auth cache hits, asked of
//! the store in batches: every request waiting for an answer joins the next
//! round trip, and one round trip answers all of them (Redis: one pipeline;
//! SQL: one `IN (...)` query per few hundred keys).
//!
//! Waiting costs no allocation per request: everyone in a round shares
//! one result and one wake-up list.
//!
//! The answer a request gets always comes from a read that *began after the
//! request arrived*: a request that comes in while a round trip is in flight
//! waits for the following one. So batching changes how many reads the
//! store serves, never what a request can observe: a logout finished
//! before the request arrived is always seen, and an unreachable store is
//! an error for every request of the batch (503), never a stale "yes".

use super::{KvError, KvStore};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One round trip: the keys found, once known, and everyone waiting for it.
type Round = crate::round::Round<Result<HashSet<String>, KvError>>;

#[derive(Default)]
struct Pending {
    /// A round-trip task is running (and will pick up `keys` next).
    running: bool,
    keys: HashSet<String>,
    /// The round that will ask for `keys`.
    round: Arc<Round>,
}

pub struct ExistsBatcher {
    kv: Arc<dyn KvStore>,
    pending: Mutex<Pending>,
    /// Checks asked and round trips made (for tests and metrics).
    checks: AtomicU64,
    rounds: AtomicU64,
}

impl ExistsBatcher {
    pub fn new(kv: Arc<dyn KvStore>) -> Arc<Self> {
        Arc::new(Self {
            kv,
            pending: Mutex::new(Pending::default()),
            checks: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
        })
    }

    pub fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    pub fn checks(&self) -> u64 {
        self.checks.load(Ordering::Relaxed)
    }

    /// Whether `key` exists, answered by the next round trip.
    pub async fn exists(self: &Arc<Self>, key: &str) -> Result<bool, KvError> {
        self.checks.fetch_add(1, Ordering::Relaxed);
        let (round, start) = {
            let mut p = self
                .pending
                .lock()
                .map_err(|_| KvError::Unavailable("session check state poisoned".into()))?;
            if !p.keys.contains(key) {
                p.keys.insert(key.to_string());
            }
            (p.round.clone(), !std::mem::replace(&mut p.running, true))
        };
        if start {
            // A task of its own, not the caller's future: a caller that goes
            // away (client disconnected) must not strand the others.
            tokio::spawn(self.clone().drive());
        }
        match round.outcome().await {
            Some(Ok(found)) => Ok(found.contains(key)),
            Some(Err(e)) => Err(e.clone()),
            None => Err(KvError::Unavailable("session check abandoned".into())),
        }
    }

    async fn drive(self: Arc<Self>) {
        loop {
            let (round, keys) = match self.pending.lock() {
                Ok(mut p) if p.keys.is_empty() => {
                    p.running = false;
                    return;
                }
                Ok(mut p) => {
                    let keys: Vec<String> = std::mem::take(&mut p.keys).into_iter().collect();
                    (std::mem::take(&mut p.round), keys)
                }
                Err(_) => return,
            };
            self.rounds.fetch_add(1, Ordering::Relaxed);
            let found = self.kv.exists_many(&keys).await.map(|present| {
                keys.into_iter()
                    .zip(present)
                    .filter_map(|(k, here)| here.then_some(k))
                    .collect()
            });
            round.finish(found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::memory::MemoryKv;
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_checks_share_round_trips_and_see_deletes() {
        let kv: Arc<dyn KvStore> = Arc::new(MemoryKv::default());
        kv.set("a", "1", Duration::from_secs(60)).await.unwrap();
        let b = ExistsBatcher::new(kv.clone());
        let mut tasks = Vec::new();
        for i in 0..200 {
            let b = b.clone();
            let key = if i % 2 == 0 { "a" } else { "b" };
            tasks.push(tokio::spawn(async move { (key, b.exists(key).await) }));
        }
        for t in tasks {
            let (key, r) = t.await.unwrap();
            assert_eq!(r.unwrap(), key == "a", "{key}");
        }
        assert!(
            b.rounds() < 200,
            "200 concurrent checks took {} round trips",
            b.rounds()
        );
        kv.delete("a").await.unwrap();
        assert!(
            !b.exists("a").await.unwrap(),
            "a delete before the check is seen"
        );
    }
}
