//! The session manager: owns the cookie, the hashing of its value, and the
//! idle and absolute timeouts. Backends only see `s:<sha256 of cookie>`.

use super::batch::ExistsBatcher;
use super::{KvError, KvStore};
use crate::clock::Clock;
use crate::crypto;
use crate::domain::model::AuthMethod;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// A signed-in session as stored (never contains the cookie value).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// sha256 hex of the cookie value: the storage key.
    #[serde(skip)]
    pub key: String,
    pub uid: String,
    /// Public session id (`sid` claim); unrelated to the cookie value.
    pub sid: String,
    pub created: i64,
    pub seen: i64,
    pub method: AuthMethod,
    /// Whether a second factor was used (or asserted by the IdP).
    #[serde(default)]
    pub mfa: bool,
    /// Seconds since the previous request of this session (set by lookup,
    /// before the idle window slides), for tighter per-workspace timeouts.
    #[serde(skip)]
    pub idle_secs: i64,
}

#[derive(Clone)]
pub struct SessionManager {
    kv: Arc<dyn KvStore>,
    checks: Arc<ExistsBatcher>,
    clock: Arc<dyn Clock>,
    idle: Duration,
    absolute: Duration,
    secure: bool,
}

/// The cookie value is 32 random bytes, base64url: 43 characters.
const COOKIE_VALUE_LEN: usize = 43;

fn skey(hash: &str) -> String {
    format!("s:{hash}")
}

fn ukey(uid: &str) -> String {
    format!("u:{uid}")
}

impl SessionManager {
    pub fn new(
        kv: Arc<dyn KvStore>,
        clock: Arc<dyn Clock>,
        idle: Duration,
        absolute: Duration,
        secure: bool,
    ) -> Self {
        Self {
            checks: ExistsBatcher::new(kv.clone()),
            kv,
            clock,
            idle,
            absolute,
            secure,
        }
    }

    pub fn kv(&self) -> &Arc<dyn KvStore> {
        &self.kv
    }

    /// `__Host-iamgw_session` on https, `iamgw_session` otherwise.
    pub fn cookie_name(&self) -> &'static str {
        if self.secure {
            "__Host-iamgw_session"
        } else {
            "iamgw_session"
        }
    }

    pub fn set_cookie_header(&self, value: &str) -> String {
        format!(
            "{}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}{}",
            self.cookie_name(),
            value,
            self.absolute.as_secs(),
            if self.secure { "; Secure" } else { "" }
        )
    }

    pub fn clear_cookie_header(&self) -> String {
        format!(
            "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
            self.cookie_name(),
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// Starts a session. Any session presented with the request is ended
    /// first, so a planted cookie never becomes a signed-in one (fixation).
    pub async fn login(
        &self,
        uid: &str,
        method: AuthMethod,
        mfa: bool,
        previous: Option<&str>,
    ) -> Result<(String, Session), KvError> {
        if let Some(prev) = previous {
            self.revoke(prev).await?;
        }
        let value = crypto::random_token("").map_err(|e| KvError::Unavailable(e.to_string()))?;
        let sid = crypto::b64url(
            &crypto::random_bytes::<16>().map_err(|e| KvError::Unavailable(e.to_string()))?,
        );
        let now = self.clock.now();
        let session = Session {
            key: crypto::sha256_hex(value.as_bytes()),
            uid: uid.to_string(),
            sid,
            created: now,
            seen: now,
            method,
            mfa,
            idle_secs: 0,
        };
        let (json, ttl) = self.encode(&session)?;
        let index = ukey(uid);
        let size = self
            .kv
            .set_and_index_add(
                (&skey(&session.key), &json, ttl),
                (&index, &session.key, self.absolute),
            )
            .await?;
        super::prune_when_doubled(&*self.kv, &index, size, skey).await?;
        Ok((value, session))
    }

    /// The stored form of `s` and how long it may live from now.
    fn encode(&self, s: &Session) -> Result<(String, Duration), KvError> {
        let json = serde_json::to_string(s).map_err(|e| KvError::Unavailable(e.to_string()))?;
        let now = self.clock.now();
        let ends =
            (s.seen + self.idle.as_secs() as i64).min(s.created + self.absolute.as_secs() as i64);
        Ok((json, Duration::from_secs((ends - now).max(1) as u64)))
    }

    async fn write(&self, s: &Session) -> Result<(), KvError> {
        let (json, ttl) = self.encode(s)?;
        self.kv.set(&skey(&s.key), &json, ttl).await
    }

    /// Finds the live session for a cookie value, applying both timeouts and
    /// sliding the idle window. `Ok(None)`: no valid session.
    pub async fn lookup(&self, cookie_value: &str) -> Result<Option<Session>, KvError> {
        if cookie_value.len() != COOKIE_VALUE_LEN || crypto::b64url_decode(cookie_value).is_none() {
            return Ok(None);
        }
        let key = crypto::sha256_hex(cookie_value.as_bytes());
        let Some(json) = self.kv.get(&skey(&key)).await? else {
            return Ok(None);
        };
        let Ok(mut s) = serde_json::from_str::<Session>(&json) else {
            self.kv.delete(&skey(&key)).await?;
            return Ok(None);
        };
        s.key = key;
        let now = self.clock.now();
        s.idle_secs = (now - s.seen).max(0);
        let idle = self.idle.as_secs() as i64;
        if now >= s.created + self.absolute.as_secs() as i64 || now >= s.seen + idle {
            self.kv.delete(&skey(&s.key)).await?;
            return Ok(None);
        }
        // Slide the idle window, but write at most once a minute (or every
        // quarter of the idle timeout, if shorter) to keep reads cheap.
        if now - s.seen >= (idle / 4).clamp(1, 60) {
            s.seen = now;
            self.write(&s).await?;
        }
        Ok(Some(s))
    }

    /// The live session with this storage key, read only (the idle window
    /// does not slide: an app's token use is not the person's activity).
    pub async fn by_key(&self, key: &str) -> Result<Option<Session>, KvError> {
        let Some(json) = self.kv.get(&skey(key)).await? else {
            return Ok(None);
        };
        let Ok(mut s) = serde_json::from_str::<Session>(&json) else {
            return Ok(None);
        };
        s.key = key.to_string();
        let now = self.clock.now();
        s.idle_secs = (now - s.seen).max(0);
        let live = now < s.created + self.absolute.as_secs() as i64
            && now < s.seen + self.idle.as_secs() as i64;
        Ok(live.then_some(s))
    }

    /// Whether the session with this storage key still exists (cheap: no
    /// expiry logic, no write). Errors when the store cannot answer.
    pub async fn exists(&self, key: &str) -> Result<bool, KvError> {
        self.checks.exists(&skey(key)).await
    }

    /// Checks made by [`Self::exists`] and the round trips they took.
    pub fn existence_checks(&self) -> (u64, u64) {
        (self.checks.checks(), self.checks.rounds())
    }

    /// Ends the session of this cookie value, if any.
    pub async fn revoke(&self, cookie_value: &str) -> Result<(), KvError> {
        let key = crypto::sha256_hex(cookie_value.as_bytes());
        if let Some(json) = self.kv.take(&skey(&key)).await? {
            if let Ok(s) = serde_json::from_str::<Session>(&json) {
                self.kv.index_remove(&ukey(&s.uid), &[key]).await?;
            }
        }
        Ok(())
    }

    /// Ends every session of a user except `keep` (a storage key), in time
    /// proportional to that user's sessions.
    pub async fn revoke_all(&self, uid: &str, keep: Option<&str>) -> Result<usize, KvError> {
        let members = self.kv.index_members(&ukey(uid)).await?;
        let mut gone = Vec::new();
        for m in members {
            if Some(m.as_str()) == keep {
                continue;
            }
            self.kv.delete(&skey(&m)).await?;
            gone.push(m);
        }
        self.kv.index_remove(&ukey(uid), &gone).await?;
        Ok(gone.len())
    }

    /// Session storage keys of a user (for "active sessions" views).
    pub async fn sessions_of(&self, uid: &str) -> Result<Vec<Session>, KvError> {
        let mut out = Vec::new();
        for m in self.kv.index_members(&ukey(uid)).await? {
            if let Some(json) = self.kv.get(&skey(&m)).await? {
                if let Ok(mut s) = serde_json::from_str::<Session>(&json) {
                    s.key = m;
                    out.push(s);
                }
            }
        }
        Ok(out)
    }
}
