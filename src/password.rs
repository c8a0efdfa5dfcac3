//! argon2id password hashing on a small bounded pool of blocking threads, so
//! a storm of sign-ins cannot starve the async workers (and forward-auth).

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane.
pub const M_COST_KIB: u32 = 19_456;
pub const T_COST: u32 = 2;
pub const P_COST: u32 = 1;

/// Longest password accepted, in bytes (longer is refused before hashing).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest password accepted for new passwords, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Lowest zxcvbn score (0–4) accepted for new passwords.
pub const MIN_STRENGTH: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password worker unavailable")]
    Pool,
}

#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    dummy_hash: Arc<String>,
}

fn argon() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    argon()?
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

fn verify_blocking(hash: &str, password: &str) -> bool {
    match argon() {
        Ok(a) => a.verify_password(password.as_bytes(), hash).is_ok(),
        Err(_) => false,
    }
}

/// Checks a new password against the policy; the reason is shown to the person.
pub fn check_policy(password: &str, email: &str) -> Result<(), String> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "Passwords can be at most {MAX_PASSWORD_BYTES} bytes long."
        ));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("Use at least {MIN_PASSWORD_CHARS} characters."));
    }
    if !email.is_empty() && password.eq_ignore_ascii_case(email.trim()) {
        return Err("Your password must not be your email address.".into());
    }
    let local = email.split('@').next().unwrap_or_default();
    let estimate = zxcvbn::zxcvbn(
        password,
        &[email, local, "iam", "gateway", "segment", "twilio"],
    );
    if (estimate.score() as u8) < MIN_STRENGTH {
        return Err(
            "This password is too easy to guess. Try a longer phrase of unrelated words.".into(),
        );
    }
    Ok(())
}

impl Hasher {
    /// `workers`: how many hashes may run at once (at least one).
    pub async fn new(workers: usize) -> Result<Self, PasswordError> {
        let dummy = tokio::task::spawn_blocking(|| {
            let seed = crate::crypto::random_token("").unwrap_or_default();
            hash_blocking(&seed)
        })
        .await
        .map_err(|_| PasswordError::Pool)??;
        Ok(Self {
            permits: Arc::new(Semaphore::new(workers.max(1))),
            dummy_hash: Arc::new(dummy),
        })
    }

    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| PasswordError::Pool)?;
        let pw = password.to_string();
        tokio::task::spawn_blocking(move || hash_blocking(&pw))
            .await
            .map_err(|_| PasswordError::Pool)?
    }

    /// Verifies `password` against `hash`; with no hash (unknown account or
    /// no password set) it verifies against a dummy hash so the answer takes
    /// as long and says the same.
    pub async fn verify(&self, hash: Option<&str>, password: &str) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let (target, real) = match hash {
            Some(h) => (h.to_string(), true),
            None => (self.dummy_hash.as_ref().clone(), false),
        };
        let pw = password.to_string();
        let ok = tokio::task::spawn_blocking(move || verify_blocking(&target, &pw))
            .await
            .unwrap_or(false);
        ok && real
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_the_required_cost_and_verify() {
        let h = Hasher::new(1).await.unwrap();
        let hash = h.hash("correct horse battery staple").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(h.verify(Some(&hash), "correct horse battery staple").await);
        assert!(
            !h.verify(Some(&hash), "Correct horse battery staple").await,
            "no case folding"
        );
        assert!(
            !h.verify(Some(&hash), "correct horse battery stapl").await,
            "no truncation"
        );
        assert!(
            !h.verify(None, "anything").await,
            "dummy hash never signs in"
        );
    }

    #[test]
    fn policy_refuses_short_long_and_email_passwords() {
        assert!(check_policy("short", "a@b.test").is_err());
        assert!(check_policy(&"x".repeat(MAX_PASSWORD_BYTES + 1), "a@b.test").is_err());
        assert!(check_policy("Ann@Corp.test", "ann@corp.test").is_err());
        assert!(check_policy("correct horse battery staple", "ann@corp.test").is_ok());
        assert!(
            check_policy("aaaaaaaaaaaaaaaa", "ann@corp.test").is_err(),
            "long but guessable"
        );
        assert!(
            check_policy("password12345", "ann@corp.test").is_err(),
            "common"
        );
    }
}
