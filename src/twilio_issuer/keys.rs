//! The issuer's ES256 signing keys, in `twilio_issuer_keys`. Every active key
//! is published in the JWKS; the newest one (highest `seq`) signs. Rotation
//! without downtime: [`KeyRing::rotate`] adds a key (published and signing at
//! once, while tokens signed by the older keys still verify), and
//! [`KeyRing::retire`] later unpublishes an old one.
//!
//! Keys are read from the database for each use, so every instance of the
//! issuer sees a rotation at once; opened keys are cached by kid.

use crate::crypto;
use crate::domain::DomainError;
use crate::jwt::EsKey;
use crate::store::{StoreError, TwilioIssuerStore};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;

const SEAL_PURPOSE: &str = "twilio-issuer-key";

pub struct KeyRing {
    store: Arc<dyn TwilioIssuerStore>,
    secret: Vec<u8>,
    opened: Mutex<HashMap<String, EsKey>>,
}

fn db(e: StoreError) -> DomainError {
    e.into()
}

impl KeyRing {
    /// Opens the ring, creating the first key when there is none.
    pub async fn load_or_create(
        store: Arc<dyn TwilioIssuerStore>,
        secret: &[u8],
        now: i64,
    ) -> Result<KeyRing, DomainError> {
        let ring = KeyRing {
            store,
            secret: secret.to_vec(),
            opened: Mutex::new(HashMap::new()),
        };
        if ring.active().await?.is_empty() {
            match ring.insert_new(now).await {
                Ok(_) => {}
                // Another instance created the first key at the same moment.
                Err(DomainError::Conflict(_)) if !ring.active().await?.is_empty() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(ring)
    }

    async fn insert_new(&self, now: i64) -> Result<String, DomainError> {
        let key = EsKey::generate()?;
        self.store
            .twilio_insert_key(
                &key.kid,
                &key.seal(&self.secret, SEAL_PURPOSE)?,
                &key.public_jwk().to_string(),
                now,
            )
            .await
            .map_err(|e| match e {
                StoreError::Conflict(_) => {
                    DomainError::Conflict("another key was added at the same time".into())
                }
                other => other.into(),
            })?;
        let kid = key.kid.clone();
        if let Ok(mut cache) = self.opened.lock() {
            cache.insert(kid.clone(), key);
        }
        Ok(kid)
    }

    /// The active keys, oldest first.
    pub async fn active(&self) -> Result<Vec<EsKey>, DomainError> {
        let rows = self.store.twilio_active_keys().await.map_err(db)?;
        let mut out = Vec::with_capacity(rows.len());
        for (kid, sealed) in rows {
            let cached = self.opened.lock().ok().and_then(|c| c.get(&kid).cloned());
            let key = match cached {
                Some(k) => k,
                None => {
                    let k = EsKey::open(&kid, &sealed, &self.secret, SEAL_PURPOSE)?;
                    if let Ok(mut c) = self.opened.lock() {
                        c.insert(kid.clone(), k.clone());
                    }
                    k
                }
            };
            out.push(key);
        }
        Ok(out)
    }

    /// The key that signs now: the newest active one.
    pub async fn signing_key(&self) -> Result<EsKey, DomainError> {
        self.active()
            .await?
            .pop()
            .ok_or_else(|| DomainError::Internal("the Twilio issuer has no active key".into()))
    }

    /// `{"keys": [...]}` of every active key, public parameters only.
    pub async fn jwks(&self) -> Result<String, DomainError> {
        Ok(crate::jwt::jwks(&self.active().await?))
    }

    /// Adds a new key, which is published and signs from now on.
    pub async fn rotate(&self, now: i64) -> Result<String, DomainError> {
        // Two rotations at the same moment collide on `seq`; one retry.
        match self.insert_new(now).await {
            Err(DomainError::Conflict(_)) => self.insert_new(now).await,
            other => other,
        }
    }

    /// Unpublishes `kid`. The last active key cannot be retired.
    pub async fn retire(&self, kid: &str, now: i64) -> Result<(), DomainError> {
        let retired = self.store.twilio_retire_key(kid, now).await.map_err(db)?;
        if retired {
            if let Ok(mut c) = self.opened.lock() {
                c.remove(kid);
            }
            return Ok(());
        }
        if self.active().await?.iter().any(|k| k.kid == kid) {
            return Err(DomainError::Invalid(format!(
                "key {kid} is the only active key; rotate first"
            )));
        }
        Err(DomainError::NotFound)
    }
}

/// `at_hash` (OIDC Core 3.1.3.6): the left half of SHA-256 of the access
/// token, base64url.
pub fn at_hash(access_token: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(access_token.as_bytes());
    crypto::b64url(&digest[..16])
}
