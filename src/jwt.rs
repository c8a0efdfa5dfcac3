//! ES256 JSON Web Signatures. [`EsKey`] is one P-256 key (generate, seal for
//! storage, sign, publish); [`Signer`] holds the gateway's active keys for
//! `X-Auth-Assertion`, kept in the database and published as a JWKS without
//! private parameters.

use crate::crypto;
use crate::domain::DomainError;
use crate::store::{Store, StoredSigningKey};
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{json, Value};

const SEAL_PURPOSE: &str = "signing-key";

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

pub struct Signer {
    /// Oldest first; the first one signs, all are published.
    keys: Vec<EsKey>,
    jwks: String,
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
            let key = EsKey::generate()?;
            let record = StoredSigningKey {
                kid: key.kid.clone(),
                alg: "ES256".into(),
                sealed_private_key: key.seal(secret, SEAL_PURPOSE)?,
                public_jwk: key.public_jwk().to_string(),
                created_at: now,
            };
            store.insert_signing_key(&record).await?;
            stored = store.signing_keys().await?;
        }
        let keys = stored
            .iter()
            .map(|s| EsKey::open(&s.kid, &s.sealed_private_key, secret, SEAL_PURPOSE))
            .collect::<Result<Vec<_>, _>>()?;
        let jwks = jwks(&keys);
        Ok(Signer { keys, jwks })
    }

    /// A compact JWS (ES256) over `claims` with the current key.
    pub fn sign(&self, claims: &Value) -> Result<String, DomainError> {
        let k = self
            .keys
            .first()
            .ok_or_else(|| DomainError::Internal("no signing key".into()))?;
        Ok(k.sign(claims))
    }

    /// `{"keys": [...]}` with public parameters only.
    pub fn jwks_json(&self) -> &str {
        &self.jwks
    }
}
