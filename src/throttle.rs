//! Brute-force protection for the password and second-factor steps.
//! Failures are counted per account and per client IP in the session store
//! backend, so every instance sees the same counters.
//! From the 6th failure in 15 minutes for an account (the 21st for an IP)
//! the answer is 429 with a wait that starts at 30 s and doubles up to
//! 15 minutes: a soft lock, never a long lockout an attacker can impose.

use crate::clock::Clock;
use crate::crypto;
use crate::session::{KvError, KvStore};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub const WINDOW: Duration = Duration::from_secs(15 * 60);
pub const ACCOUNT_FREE_FAILURES: i64 = 5;
pub const IP_FREE_FAILURES: i64 = 20;
pub const FIRST_WAIT_SECS: i64 = 30;
pub const MAX_WAIT_SECS: i64 = 15 * 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Open,
    /// Try again in this many seconds.
    Locked(i64),
}

#[derive(Clone)]
pub struct Throttle {
    kv: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
    /// Keys the counter names, so the store holds no emails or addresses
    /// and deployments sharing one Redis never share counters.
    secret: Arc<Vec<u8>>,
}

/// The wait after the `n`th failure when `free` failures are allowed.
pub fn wait_after(n: i64, free: i64) -> i64 {
    if n <= free {
        return 0;
    }
    let doublings = (n - free - 1).clamp(0, 20) as u32;
    FIRST_WAIT_SECS
        .saturating_mul(1i64 << doublings)
        .min(MAX_WAIT_SECS)
}

impl Throttle {
    pub fn new(kv: Arc<dyn KvStore>, clock: Arc<dyn Clock>, secret: &[u8]) -> Self {
        Self {
            kv,
            clock,
            secret: Arc::new(secret.to_vec()),
        }
    }

    /// An opaque, deployment-specific name for a counter subject.
    pub fn subject_id(&self, kind: &str, subject: &str) -> String {
        crypto::b64url(&crypto::hmac_sha256(
            &self.secret,
            &[b"throttle", kind.as_bytes(), subject.as_bytes()],
        ))
    }

    fn account_id(&self, account: &str) -> String {
        self.subject_id("account", &crate::domain::model::normalize_email(account))
    }

    async fn lock_left(&self, key: &str) -> Result<i64, KvError> {
        let until = self
            .kv
            .get(key)
            .await?
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        Ok((until - self.clock.now()).max(0))
    }

    /// Whether an attempt for this account from this address may proceed.
    pub async fn check(&self, account: &str, ip: IpAddr) -> Result<Gate, KvError> {
        let a = self
            .lock_left(&format!("bf:lock:a:{}", self.account_id(account)))
            .await?;
        let i = self
            .lock_left(&format!(
                "bf:lock:ip:{}",
                self.subject_id("ip", &ip.to_string())
            ))
            .await?;
        Ok(match a.max(i) {
            0 => Gate::Open,
            n => Gate::Locked(n),
        })
    }

    /// Counts a failure; returns the gate for the next attempt.
    pub async fn failure(&self, account: &str, ip: IpAddr) -> Result<Gate, KvError> {
        let aid = self.account_id(account);
        let iid = self.subject_id("ip", &ip.to_string());
        let na = self.kv.incr(&format!("bf:n:a:{aid}"), WINDOW).await?;
        let ni = self.kv.incr(&format!("bf:n:ip:{iid}"), WINDOW).await?;
        let wait = wait_after(na, ACCOUNT_FREE_FAILURES).max(wait_after(ni, IP_FREE_FAILURES));
        let now = self.clock.now();
        for (key, w) in [
            (
                format!("bf:lock:a:{aid}"),
                wait_after(na, ACCOUNT_FREE_FAILURES),
            ),
            (
                format!("bf:lock:ip:{iid}"),
                wait_after(ni, IP_FREE_FAILURES),
            ),
        ] {
            if w > 0 {
                self.kv
                    .set(
                        &key,
                        &(now + w).to_string(),
                        Duration::from_secs(w as u64 + 60),
                    )
                    .await?;
            }
        }
        Ok(if wait > 0 {
            Gate::Locked(wait)
        } else {
            Gate::Open
        })
    }

    /// A successful sign-in clears the account's counter (not the IP's).
    pub async fn success(&self, account: &str) -> Result<(), KvError> {
        let aid = self.account_id(account);
        self.kv.delete(&format!("bf:n:a:{aid}")).await?;
        self.kv.delete(&format!("bf:lock:a:{aid}")).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::session::memory::MemoryKv;

    #[test]
    fn waits_start_at_most_at_a_minute_and_grow_to_a_cap() {
        assert_eq!(wait_after(5, 5), 0);
        assert_eq!(wait_after(6, 5), 30);
        assert_eq!(wait_after(7, 5), 60);
        assert_eq!(wait_after(8, 5), 120);
        assert_eq!(wait_after(60, 5), MAX_WAIT_SECS);
        assert_eq!(wait_after(21, 20), 30);
    }

    #[tokio::test]
    async fn locks_from_the_sixth_failure_and_releases_after_the_wait() {
        let clock = ManualClock::new();
        let t = Throttle::new(Arc::new(MemoryKv::new()), Arc::new(clock.clone()), b"k");
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..5 {
            assert_eq!(t.check("Ann@x.test", ip).await.unwrap(), Gate::Open);
            assert_eq!(t.failure("ann@x.test", ip).await.unwrap(), Gate::Open);
        }
        assert_eq!(t.failure("ANN@x.test", ip).await.unwrap(), Gate::Locked(30));
        assert_eq!(t.check("ann@x.test", ip).await.unwrap(), Gate::Locked(30));
        assert_eq!(
            t.check("bob@x.test", "192.0.2.2".parse().unwrap())
                .await
                .unwrap(),
            Gate::Open,
            "others unaffected"
        );
        clock.advance(Duration::from_secs(31));
        assert_eq!(
            t.check("ann@x.test", ip).await.unwrap(),
            Gate::Open,
            "soft lock released"
        );
        assert_eq!(
            t.failure("ann@x.test", ip).await.unwrap(),
            Gate::Locked(60),
            "grows"
        );
        t.success("ann@x.test").await.unwrap();
        assert_eq!(t.check("ann@x.test", ip).await.unwrap(), Gate::Open);
    }
}
