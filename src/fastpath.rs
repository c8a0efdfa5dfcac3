//! The forward-auth cache: allowed decisions (identity headers and the
//! signed assertion) by session and request, reused for at most half the
//! assertion's life and never past the session's own expiry. Only "allow"
//! is cached; any revocation flushes every instance's cache (see
//! [`crate::invalidation`]), and while that channel is down, or its
//! heartbeat is late, the cache is not used at all.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{OnceLock, RwLock};
use std::time::Instant;

/// The identity headers of an allowed request, built once and shared by
/// every cache hit (cloning one is a reference count, not a copy).
pub type IdentityHeaders = std::sync::Arc<[(axum::http::HeaderName, axum::http::HeaderValue)]>;

/// Entries kept at most; past this the cache starts again empty.
const CAPACITY: usize = 100_000;

#[derive(Clone)]
pub struct Allowed {
    pub headers: IdentityHeaders,
    /// Unix time (injected clock) after which the entry is not used.
    pub until: i64,
}

/// A channel whose own heartbeat has not come back for this long is
/// treated as down (a hung Redis or PostgreSQL keeps its connections open).
pub const HEARTBEAT_DEADLINE_MS: u64 = 600;

/// Milliseconds on a monotonic clock (since the first call in this process).
fn mono_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

#[derive(Default)]
pub struct FastPath {
    entries: RwLock<HashMap<String, (u64, Allowed)>>,
    /// Bumped by every flush; entries of older generations are dead.
    generation: AtomicU64,
    /// The revocation channel is subscribed.
    healthy: AtomicBool,
    /// The channel must also prove itself with heartbeats (shared stores).
    heartbeat_required: AtomicBool,
    /// When this instance last received its own heartbeat ([`mono_ms`]).
    last_beat: AtomicU64,
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
        self.healthy.load(Ordering::SeqCst) && self.beat_on_time()
    }

    /// From now on the cache is used only while heartbeats keep arriving.
    pub fn require_heartbeat(&self) {
        self.heartbeat_required.store(true, Ordering::SeqCst);
    }

    fn beat_on_time(&self) -> bool {
        !self.heartbeat_required.load(Ordering::SeqCst)
            || mono_ms().saturating_sub(self.last_beat.load(Ordering::SeqCst))
                <= HEARTBEAT_DEADLINE_MS
    }

    /// This instance's heartbeat came back through the channel: every
    /// message published before it has been seen. After a late beat the
    /// cache starts again empty.
    pub fn beat(&self) {
        if !self.beat_on_time() {
            self.flush();
        }
        self.last_beat.store(mono_ms(), Ordering::SeqCst);
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
            headers: vec![(
                axum::http::HeaderName::from_static("x-auth-email"),
                axum::http::HeaderValue::from_static("a@b.test"),
            )]
            .into(),
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

    #[test]
    fn a_late_heartbeat_bypasses_the_cache_and_empties_it() {
        let f = FastPath::default();
        f.set_healthy(true);
        f.require_heartbeat();
        f.beat();
        f.put("k".into(), f.generation(), allowed(100));
        assert!(f.get("k", 50).is_some(), "beat on time");
        // As if the last beat were older than the deadline.
        f.last_beat.store(0, Ordering::SeqCst);
        std::thread::sleep(std::time::Duration::from_millis(HEARTBEAT_DEADLINE_MS + 50));
        assert!(f.get("k", 50).is_none(), "late: bypassed");
        f.put("k2".into(), f.generation(), allowed(100));
        f.beat();
        assert!(f.get("k", 50).is_none(), "emptied when beats resume");
        assert!(f.get("k2", 50).is_none(), "nothing stored while late");
    }
}
