//! ES256 JSON Web Signatures. [`EsKey`] is one P-256 key (generate, seal for
//! storage, sign, publish); [`Signer`] holds the gateway's keys for
//! `X-Auth-Assertion` (and ID tokens), kept sealed in the database, rotated
//! as [`crate::keys`] describes, and published as a JWKS without private
//! parameters.

use crate::clock::Clock;
use crate::crypto;
use crate::domain::DomainError;
use crate::keys::{self, SEAL_PURPOSE};
use crate::store::sql::Db;
use crate::store::sql_keys::{self, KeyRow};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// One ES256 key with its key id.
#[derive(Clone)]
pub struct EsKey {
    pub kid: String,
    key: SigningKey,
}

impl EsKey {
    /// A fresh key; its kid is derived from the public key.
    pub fn generate() -> Result<EsKey, DomainError> {
        // A random 32-byte string is a valid scalar except with negligible
        // probability; try again in that case.
        for _ in 0..8 {
            let bytes = crypto::random_bytes::<32>()?;
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                let point = key.verifying_key().to_encoded_point(false);
                let kid = crypto::sha256_hex(point.as_bytes())[..16].to_string();
                return Ok(EsKey { kid, key });
            }
        }
        Err(DomainError::Internal(
            "could not generate a signing key".into(),
        ))
    }

    /// The private scalar sealed with the deployment secret for storage.
    pub fn seal(&self, secret: &[u8], purpose: &str) -> Result<String, DomainError> {
        Ok(crypto::seal(secret, purpose, &self.key.to_bytes())?)
    }

    pub fn open(
        kid: &str,
        sealed: &str,
        secret: &[u8],
        purpose: &str,
    ) -> Result<EsKey, DomainError> {
        let raw = crypto::open(secret, purpose, sealed).map_err(|_| {
            DomainError::Internal(format!(
                "signing key {kid} cannot be opened: is secret_key_file the one this database was created with?"
            ))
        })?;
        let key = SigningKey::from_slice(&raw)
            .map_err(|_| DomainError::Internal(format!("signing key {kid} is corrupt")))?;
        Ok(EsKey {
            kid: kid.to_string(),
            key,
        })
    }

    /// The public JWK (no private parameters).
    pub fn public_jwk(&self) -> Value {
        let point = self.key.verifying_key().to_encoded_point(false);
        let x = point.x().map(|x| crypto::b64url(x)).unwrap_or_default();
        let y = point.y().map(|y| crypto::b64url(y)).unwrap_or_default();
        json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": self.kid, "use": "sig", "alg": "ES256"})
    }

    /// A compact JWS (ES256) over `claims`.
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
        let input = format!(
            "{}.{}",
            crypto::b64url(header.to_string().as_bytes()),
            crypto::b64url(claims.to_string().as_bytes())
        );
        let sig: Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", crypto::b64url(&sig.to_bytes()))
    }
}

/// `{"keys": [...]}` for a set of keys.
pub fn jwks(keys: &[EsKey]) -> String {
    json!({"keys": keys.iter().map(EsKey::public_jwk).collect::<Vec<_>>()}).to_string()
}

/// The rows as last read, and the opened keys among them that may be
/// published or sign.
#[derive(Default)]
struct KeySet {
    rows: Vec<KeyRow>,
    keys: HashMap<String, EsKey>,
}

struct SignerInner {
    db: Db,
    secret: Vec<u8>,
    clock: Arc<dyn Clock>,
    keep_published: i64,
    set: RwLock<Arc<KeySet>>,
    /// Set when another process changed the keys (the invalidation channel).
    changed: Notify,
}

/// The gateway's signing keys, shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct Signer(Arc<SignerInner>);

impl Signer {
    /// Reads the keys, creating the first one (signing at once: nobody can
    /// have cached a JWKS yet) when there is none. Two instances starting
    /// together may both create one; both are published, and the schedule
    /// orders them alike everywhere, so the instances agree on the signer
    /// once each has read the other's.
    pub async fn load_or_create(
        db: Db,
        secret: &[u8],
        clock: Arc<dyn Clock>,
        keep_published: Duration,
    ) -> Result<Signer, DomainError> {
        let now = clock.now();
        let rows = sql_keys::all(&db).await?;
        if rows.iter().all(|r| r.retired_at.is_some()) {
            let (_, row) = keys::new_row(secret, now, now)?;
            sql_keys::insert(&db, &row).await?;
            tracing::info!(kid = %row.kid, "created the first signing key");
        }
        let signer = Signer(Arc::new(SignerInner {
            db,
            secret: secret.to_vec(),
            clock,
            keep_published: keep_published.as_secs() as i64,
            set: RwLock::new(Arc::new(KeySet::default())),
            changed: Notify::new(),
        }));
        signer.reload().await?;
        Ok(signer)
    }

    fn snapshot(&self) -> Arc<KeySet> {
        match self.0.set.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Reads the keys again; keeps the current set when that fails.
    pub async fn reload(&self) -> Result<(), DomainError> {
        let rows = sql_keys::all(&self.0.db).await?;
        let now = self.0.clock.now();
        let states = keys::schedule(&rows, now, self.0.keep_published);
        if !states.contains(&keys::State::Signing) {
            return Err(DomainError::Internal(
                "no signing key in the database (every key is retired)".into(),
            ));
        }
        let old = self.snapshot();
        let mut opened = HashMap::new();
        for (row, state) in rows.iter().zip(&states) {
            if !state.published() {
                continue;
            }
            let key = match old.keys.get(&row.kid) {
                Some(k) => k.clone(),
                None => EsKey::open(
                    &row.kid,
                    &row.sealed_private_key,
                    &self.0.secret,
                    SEAL_PURPOSE,
                )?,
            };
            opened.insert(row.kid.clone(), key);
        }
        let set = Arc::new(KeySet { rows, keys: opened });
        match self.0.set.write() {
            Ok(mut s) => *s = set,
            Err(poisoned) => *poisoned.into_inner() = set,
        }
        Ok(())
    }

    /// Re-reads the keys every `every`, and at once after [`Self::changed`];
    /// stops when the last clone of this signer is dropped.
    pub fn spawn_refresh(&self, every: Duration) {
        let weak: Weak<SignerInner> = Arc::downgrade(&self.0);
        tokio::spawn(async move {
            loop {
                {
                    let Some(inner) = weak.upgrade() else { return };
                    tokio::select! {
                        _ = tokio::time::sleep(every) => {}
                        _ = inner.changed.notified() => {}
                    }
                }
                let Some(inner) = weak.upgrade() else { return };
                if let Err(e) = Signer(inner).reload().await {
                    tracing::warn!(error = %e, "re-reading the signing keys failed; keeping the ones loaded");
                }
            }
        });
    }

    /// Another process rotated or retired a key: re-read them now.
    pub fn changed(&self) {
        self.0.changed.notify_one();
    }

    /// The key that signs now and the published ones.
    fn current(&self) -> (Arc<KeySet>, Vec<keys::State>) {
        let set = self.snapshot();
        let states = keys::schedule(&set.rows, self.0.clock.now(), self.0.keep_published);
        (set, states)
    }

    /// A compact JWS (ES256) over `claims` with the key that signs now.
    pub fn sign(&self, claims: &Value) -> Result<String, DomainError> {
        let (set, states) = self.current();
        set.rows
            .iter()
            .zip(&states)
            .find(|(_, s)| **s == keys::State::Signing)
            .and_then(|(r, _)| set.keys.get(&r.kid))
            .map(|k| k.sign(claims))
            .ok_or_else(|| DomainError::Internal("no signing key".into()))
    }

    /// The claims of a compact JWS signed by one of the published keys, if
    /// its signature verifies (no other check: the caller judges the claims).
    pub fn verify(&self, token: &str) -> Option<Value> {
        use p256::ecdsa::signature::Verifier as _;
        let mut parts = token.split('.');
        let (h, c, sig) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&crypto::b64url_decode(h)?).ok()?;
        if header.get("alg")?.as_str()? != "ES256" {
            return None;
        }
        let kid = header.get("kid")?.as_str()?;
        let (set, states) = self.current();
        let published = set
            .rows
            .iter()
            .zip(&states)
            .any(|(r, s)| r.kid == kid && s.published());
        let key = set.keys.get(kid).filter(|_| published)?;
        let sig = Signature::from_slice(&crypto::b64url_decode(sig)?).ok()?;
        key.key
            .verifying_key()
            .verify(format!("{h}.{c}").as_bytes(), &sig)
            .ok()?;
        serde_json::from_slice(&crypto::b64url_decode(c)?).ok()
    }

    /// `{"keys": [...]}` of the published keys (next, signing, previous),
    /// public parameters only.
    pub fn jwks_json(&self) -> String {
        let (set, states) = self.current();
        let published: Vec<EsKey> = set
            .rows
            .iter()
            .zip(&states)
            .filter(|(_, s)| s.published())
            .filter_map(|(r, _)| set.keys.get(&r.kid).cloned())
            .collect();
        jwks(&published)
    }
}
