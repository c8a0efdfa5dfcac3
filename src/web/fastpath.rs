//! The forward-auth cache: allowed decisions (identity headers and the
//! signed assertion) by session and request, reused for at most half the
//! assertion's life and never past the session's own expiry. Only "allow"
//! is cached; any revocation flushes every instance's cache (see
//! [`crate::invalidation`]), and while that channel is down the cache is
//! not used at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::RwLock;

/// Entries kept at most; past this the cache starts again empty.
const CAPACITY: usize = 100_000;

#[derive(Clone)]
pub struct Allowed {
    /// The session's storage key: every hit checks the session still exists
    /// (one key look-up), so logouts and an unreachable store are seen at once.
    pub session_key: String,
    pub headers: Vec<(&'static str, String)>,
    /// Unix time (injected clock) after which the entry is not used.
    pub until: i64,
}

#[derive(Default)]
pub struct FastPath {
    entries: RwLock<HashMap<String, (u64, Allowed)>>,
    /// Bumped by every flush; entries of older generations are dead.
    generation: AtomicU64,
    healthy: AtomicBool,
    pub hits: AtomicU64,
}

impl FastPath {
    pub fn key(session_key: &str, query: &str) -> String {
        format!("{session_key}\n{query}")
    }

    pub fn set_healthy(&self, up: bool) {
        self.healthy.store(up, Ordering::SeqCst);
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    /// Forgets everything (a revocation somewhere).
    pub fn flush(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut m) = self.entries.write() {
            m.clear();
        }
    }

    pub fn get(&self, key: &str, now: i64) -> Option<Allowed> {
        if !self.is_healthy() {
            return None;
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let m = self.entries.read().ok()?;
        let (g, a) = m.get(key)?;
        if *g != generation || now >= a.until {
            return None;
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(a.clone())
    }

    /// Stores a decision computed under generation `generation` (read before
    /// the decision was made, so a flush that raced it wins).
    pub fn put(&self, key: String, generation: u64, allowed: Allowed) {
        if !self.is_healthy() || generation != self.generation.load(Ordering::SeqCst) {
            return;
        }
        if let Ok(mut m) = self.entries.write() {
            if m.len() >= CAPACITY {
                m.clear();
            }
            m.insert(key, (generation, allowed));
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(until: i64) -> Allowed {
        Allowed {
            session_key: "s".into(),
            headers: vec![("x-auth-email", "a@b.test".into())],
            until,
        }
    }

    #[test]
    fn entries_expire_flush_and_are_ignored_while_unhealthy() {
        let f = FastPath::default();
        f.put("k".into(), f.generation(), allowed(100));
        assert!(
            f.get("k", 50).is_none(),
            "not healthy yet: nothing stored or served"
        );
        f.set_healthy(true);
        f.put("k".into(), f.generation(), allowed(100));
        assert!(f.get("k", 50).is_some());
        assert!(f.get("k", 100).is_none(), "expired");
        let g = f.generation();
        f.flush();
        assert!(f.get("k", 50).is_none(), "flushed");
        f.put("k".into(), g, allowed(100));
        assert!(
            f.get("k", 50).is_none(),
            "a decision made before the flush is not stored"
        );
        f.put("k".into(), f.generation(), allowed(100));
        f.set_healthy(false);
        assert!(
            f.get("k", 50).is_none(),
            "bypassed while the channel is down"
        );
    }
}
