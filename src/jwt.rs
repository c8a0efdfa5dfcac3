//! ES256 signing of `X-Auth-Assertion`, with keys kept in the database (the
//! private half sealed with the deployment secret) and published as a JWKS
//! without private parameters.

use crate::crypto;
use crate::domain::DomainError;
use crate::store::{Store, StoredSigningKey};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Value};

const SEAL_PURPOSE: &str = "signing-key";

struct ActiveKey {
    kid: String,
    key: SigningKey,
}

pub struct Signer {
    /// Oldest first; the first one signs, all are published.
    keys: Vec<ActiveKey>,
    jwks: String,
}

fn random_signing_key() -> Result<SigningKey, DomainError> {
    // A random 32-byte string is a valid scalar except with negligible
    // probability; try again in that case.
    for _ in 0..8 {
        let bytes = crypto::random_bytes::<32>()?;
        if let Ok(k) = SigningKey::from_slice(&bytes) {
            return Ok(k);
        }
    }
    Err(DomainError::Internal(
        "could not generate a signing key".into(),
    ))
}

fn public_jwk(kid: &str, key: &SigningKey) -> Value {
    let point = key.verifying_key().to_encoded_point(false);
    let x = point.x().map(|x| crypto::b64url(x)).unwrap_or_default();
    let y = point.y().map(|y| crypto::b64url(y)).unwrap_or_default();
    json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256"})
}

impl Signer {
    /// Loads the active keys, creating the first one if there is none. Two
    /// instances starting together may both create one; both are then
    /// published and the oldest signs, so they agree.
    pub async fn load_or_create(
        store: &dyn Store,
        secret: &[u8],
        now: i64,
    ) -> Result<Signer, DomainError> {
        let mut stored = store.signing_keys().await?;
        if stored.is_empty() {
            let key = random_signing_key()?;
            let point = key.verifying_key().to_encoded_point(false);
            let kid = crypto::sha256_hex(point.as_bytes())[..16].to_string();
            let record = StoredSigningKey {
                kid: kid.clone(),
                alg: "ES256".into(),
                sealed_private_key: crypto::seal(secret, SEAL_PURPOSE, &key.to_bytes())?,
                public_jwk: public_jwk(&kid, &key).to_string(),
                created_at: now,
            };
            store.insert_signing_key(&record).await?;
            stored = store.signing_keys().await?;
        }
        let mut keys = Vec::new();
        for s in &stored {
            let raw = crypto::open(secret, SEAL_PURPOSE, &s.sealed_private_key).map_err(|_| {
                DomainError::Internal(format!(
                    "signing key {} cannot be opened: is secret_key_file the one this database was created with?",
                    s.kid
                ))
            })?;
            let key = SigningKey::from_slice(&raw)
                .map_err(|_| DomainError::Internal(format!("signing key {} is corrupt", s.kid)))?;
            keys.push(ActiveKey {
                kid: s.kid.clone(),
                key,
            });
        }
        let jwks =
            json!({"keys": keys.iter().map(|k| public_jwk(&k.kid, &k.key)).collect::<Vec<_>>()})
                .to_string();
        Ok(Signer { keys, jwks })
    }

    /// A compact JWS (ES256) over `claims`.
    pub fn sign(&self, claims: &Value) -> Result<String, DomainError> {
        let k = self
            .keys
            .first()
            .ok_or_else(|| DomainError::Internal("no signing key".into()))?;
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": k.kid});
        let input = format!(
            "{}.{}",
            crypto::b64url(header.to_string().as_bytes()),
            crypto::b64url(claims.to_string().as_bytes())
        );
        let sig: Signature = k.key.sign(input.as_bytes());
        Ok(format!("{input}.{}", crypto::b64url(&sig.to_bytes())))
    }

    /// `{"keys": [...]}` with public parameters only.
    pub fn jwks_json(&self) -> &str {
        &self.jwks
    }
}
