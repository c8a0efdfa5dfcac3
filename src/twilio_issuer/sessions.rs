//! The issuer's own browser sessions (cookie `twilio_session`) and the short
//! pending state between the password and the TOTP step (cookie
//! `twilio_mfa`). Cookie values are 256-bit random; the [`KvStore`] sees only
//! their SHA-256. Keys start with `twi:` so they never meet the gateway's.
//!
//! [`KvStore`]: crate::session::KvStore

use super::IssuerState;
use crate::crypto;
use crate::domain::DomainError;
use crate::web::http::cookie;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub const SESSION_COOKIE: &str = "twilio_session";
pub const MFA_COOKIE: &str = "twilio_mfa";
/// Absolute lifetime of an issuer session.
pub const SESSION_TTL: i64 = 12 * 3600;
/// Time allowed between the password and the TOTP code.
pub const MFA_TTL: i64 = 5 * 60;
/// Wrong TOTP codes allowed for one password sign-in.
pub const MFA_MAX_ATTEMPTS: u32 = 5;

/// A signed-in browser.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IssuerSession {
    /// SHA-256 hex of the cookie value (the storage key); never stored.
    #[serde(skip)]
    pub key: String,
    pub sub: String,
    /// When the person authenticated (the `auth_time` claim).
    pub auth_time: i64,
    /// How: `["pwd"]` or `["pwd", "otp"]`.
    pub amr: Vec<String>,
}

/// Password accepted, TOTP code still due.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingMfa {
    pub sub: String,
    pub started: i64,
    pub attempts: u32,
}

fn session_key(hash: &str) -> String {
    format!("twi:s:{hash}")
}

fn user_index(sub: &str) -> String {
    format!("twi:u:{sub}")
}

fn mfa_key(hash: &str) -> String {
    format!("twi:m:{hash}")
}

fn ttl(secs: i64) -> Duration {
    Duration::from_secs(secs.max(1) as u64)
}

/// Values we hand out are 43 base64url characters; anything else is not ours.
fn plausible(value: &str) -> bool {
    value.len() == 43 && crypto::b64url_decode(value).is_some()
}

fn to_json<T: Serialize>(v: &T) -> Result<String, DomainError> {
    serde_json::to_string(v).map_err(|e| DomainError::Internal(e.to_string()))
}

impl IssuerState {
    fn cookie_header(&self, name: &str, value: &str, max_age: i64) -> String {
        format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{}",
            if self.secure { "; Secure" } else { "" }
        )
    }

    pub(crate) fn session_cookie(&self, value: &str) -> String {
        self.cookie_header(SESSION_COOKIE, value, SESSION_TTL)
    }

    pub(crate) fn mfa_cookie(&self, value: &str) -> String {
        self.cookie_header(MFA_COOKIE, value, MFA_TTL)
    }

    pub(crate) fn clear_cookie(&self, name: &str) -> String {
        self.cookie_header(name, "", 0)
    }

    /// Starts a session. A session presented with the request is ended
    /// first, so a planted cookie never becomes a signed-in one.
    pub(crate) async fn start_session(
        &self,
        sub: &str,
        amr: Vec<String>,
        headers: &HeaderMap,
    ) -> Result<String, DomainError> {
        if let Some(old) = cookie(headers, SESSION_COOKIE) {
            self.end_session(old).await?;
        }
        let value = crypto::random_token("")?;
        let key = crypto::sha256_hex(value.as_bytes());
        let session = IssuerSession {
            key: key.clone(),
            sub: sub.to_string(),
            auth_time: self.clock.now(),
            amr,
        };
        self.kv
            .set(&session_key(&key), &to_json(&session)?, ttl(SESSION_TTL))
            .await?;
        crate::session::index_add_pruned(
            &*self.kv,
            &user_index(sub),
            &key,
            ttl(SESSION_TTL),
            session_key,
        )
        .await?;
        Ok(value)
    }

    /// The live session of this request, if any.
    pub(crate) async fn session(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<IssuerSession>, DomainError> {
        let Some(value) = cookie(headers, SESSION_COOKIE).filter(|v| plausible(v)) else {
            return Ok(None);
        };
        let key = crypto::sha256_hex(value.as_bytes());
        let Some(json) = self.kv.get(&session_key(&key)).await? else {
            return Ok(None);
        };
        let Ok(mut s) = serde_json::from_str::<IssuerSession>(&json) else {
            self.kv.delete(&session_key(&key)).await?;
            return Ok(None);
        };
        if self.clock.now() >= s.auth_time + SESSION_TTL {
            self.kv.delete(&session_key(&key)).await?;
            return Ok(None);
        }
        s.key = key;
        Ok(Some(s))
    }

    pub(crate) async fn end_session(&self, value: &str) -> Result<(), DomainError> {
        let key = crypto::sha256_hex(value.as_bytes());
        if let Some(json) = self.kv.take(&session_key(&key)).await? {
            if let Ok(s) = serde_json::from_str::<IssuerSession>(&json) {
                self.kv.index_remove(&user_index(&s.sub), &[key]).await?;
            }
        }
        Ok(())
    }

    /// Ends every session of `sub` but the one stored under `keep`.
    pub(crate) async fn end_other_sessions(
        &self,
        sub: &str,
        keep: Option<&str>,
    ) -> Result<(), DomainError> {
        let mut gone = Vec::new();
        for member in self.kv.index_members(&user_index(sub)).await? {
            if Some(member.as_str()) != keep {
                self.kv.delete(&session_key(&member)).await?;
                gone.push(member);
            }
        }
        self.kv.index_remove(&user_index(sub), &gone).await?;
        Ok(())
    }

    /// Records that `sub` passed the password step; returns the cookie value.
    pub(crate) async fn start_mfa(&self, sub: &str) -> Result<String, DomainError> {
        let value = crypto::random_token("")?;
        let pending = PendingMfa {
            sub: sub.to_string(),
            started: self.clock.now(),
            attempts: 0,
        };
        self.kv
            .set(
                &mfa_key(&crypto::sha256_hex(value.as_bytes())),
                &to_json(&pending)?,
                ttl(MFA_TTL),
            )
            .await?;
        Ok(value)
    }

    /// The pending TOTP step of this request: (cookie value, state).
    pub(crate) async fn pending_mfa(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<(String, PendingMfa)>, DomainError> {
        let Some(value) = cookie(headers, MFA_COOKIE).filter(|v| plausible(v)) else {
            return Ok(None);
        };
        let key = mfa_key(&crypto::sha256_hex(value.as_bytes()));
        let Some(json) = self.kv.get(&key).await? else {
            return Ok(None);
        };
        match serde_json::from_str::<PendingMfa>(&json) {
            Ok(p) if self.clock.now() < p.started + MFA_TTL && p.attempts < MFA_MAX_ATTEMPTS => {
                Ok(Some((value.to_string(), p)))
            }
            _ => {
                self.kv.delete(&key).await?;
                Ok(None)
            }
        }
    }

    /// Counts a wrong code; `false` when no attempts are left (the pending
    /// state is then gone and the person starts over).
    pub(crate) async fn mfa_failed(
        &self,
        value: &str,
        mut pending: PendingMfa,
    ) -> Result<bool, DomainError> {
        let key = mfa_key(&crypto::sha256_hex(value.as_bytes()));
        pending.attempts += 1;
        if pending.attempts >= MFA_MAX_ATTEMPTS {
            self.kv.delete(&key).await?;
            return Ok(false);
        }
        let left = pending.started + MFA_TTL - self.clock.now();
        self.kv.set(&key, &to_json(&pending)?, ttl(left)).await?;
        Ok(true)
    }

    /// Uses up the pending state; `None` when another request already did.
    pub(crate) async fn finish_mfa(&self, value: &str) -> Result<Option<PendingMfa>, DomainError> {
        let key = mfa_key(&crypto::sha256_hex(value.as_bytes()));
        Ok(self
            .kv
            .take(&key)
            .await?
            .and_then(|json| serde_json::from_str(&json).ok()))
    }
}
