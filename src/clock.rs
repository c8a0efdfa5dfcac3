//! Time is a parameter: domain code asks a [`Clock`], never the system.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> i64;

    /// Milliseconds since the Unix epoch (the session stores' expiry).
    fn now_ms(&self) -> i64 {
        self.now().saturating_mul(1000)
    }
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }

    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that starts at the real time and moves only when told to
/// (tests drive idle and absolute expiry, and the session stores' TTLs,
/// with it). It keeps milliseconds.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now_ms: Arc<AtomicI64>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    pub fn new() -> Self {
        Self {
            now_ms: Arc::new(AtomicI64::new(SystemClock.now_ms())),
        }
    }

    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.now_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }

    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

/// RFC 3339 text for a Unix time in seconds (UTC).
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_by_milliseconds_and_only_when_told() {
        let c = ManualClock::new();
        let (s0, ms0) = (c.now(), c.now_ms());
        assert_eq!(s0, ms0.div_euclid(1000));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.now_ms(), ms0, "real time does not move it");
        c.advance(Duration::from_millis(1500));
        assert_eq!(c.now_ms(), ms0 + 1500);
        assert_eq!(c.now(), (ms0 + 1500).div_euclid(1000));
        let sys = SystemClock;
        assert!((sys.now_ms().div_euclid(1000) - sys.now()).abs() <= 1);
    }
}
