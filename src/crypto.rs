//! Small cryptographic helpers: randomness, hashing, MACs, constant-time
//! comparison and authenticated encryption of secrets at rest.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the operating system's random source failed")]
    Random,
    #[error("sealed data could not be opened (wrong secret key or corrupted data)")]
    Open,
}

/// `N` bytes from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|_| CryptoError::Random)?;
    Ok(buf)
}

/// A 256-bit random token, base64url without padding, with an optional prefix.
pub fn random_token(prefix: &str) -> Result<String, CryptoError> {
    let bytes = random_bytes::<32>()?;
    Ok(format!("{prefix}{}", b64url(&bytes)))
}

pub fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64url_decode(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub fn b64_decode(s: &str) -> Option<Vec<u8>> {
    STANDARD.decode(s.trim()).ok()
}

/// SHA-256 of `data` as lowercase hex: how tokens and session ids are stored.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 0x0f) as usize] as char);
    }
    out
}

/// HMAC-SHA256 of `parts`, each length-prefixed so parts cannot run together.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0u8; 32],
    };
    for p in parts {
        mac.update(&(p.len() as u64).to_be_bytes());
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// Constant-time equality of two byte strings.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// AES-256-GCM with a key derived from the deployment secret for `purpose`.
pub fn seal(secret: &[u8], purpose: &str, plaintext: &[u8]) -> Result<String, CryptoError> {
    let key = hmac_sha256(secret, &[b"iamgw seal", purpose.as_bytes()]);
    let cipher = Aes256Gcm::new(&key.into());
    let nonce_bytes = random_bytes::<12>()?;
    let ct = cipher
        .encrypt(&Nonce::from(nonce_bytes), plaintext)
        .map_err(|_| CryptoError::Open)?;
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&ct);
    Ok(b64(&out))
}

pub fn open(secret: &[u8], purpose: &str, sealed: &str) -> Result<Vec<u8>, CryptoError> {
    let raw = b64_decode(sealed).ok_or(CryptoError::Open)?;
    if raw.len() < 12 {
        return Err(CryptoError::Open);
    }
    let key = hmac_sha256(secret, &[b"iamgw seal", purpose.as_bytes()]);
    let cipher = Aes256Gcm::new(&key.into());
    let (nonce, ct) = raw.split_at(12);
    let nonce: [u8; 12] = nonce.try_into().map_err(|_| CryptoError::Open)?;
    cipher
        .decrypt(&Nonce::from(nonce), ct)
        .map_err(|_| CryptoError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_and_distinct() {
        let a = random_token("iamgw_").unwrap();
        let b = random_token("iamgw_").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("iamgw_"));
        assert_eq!(b64url_decode(&a["iamgw_".len()..]).unwrap().len(), 32);
    }

    #[test]
    fn seal_round_trips_and_refuses_other_secret_or_purpose() {
        let sealed = seal(b"k1", "p", b"hello").unwrap();
        assert_eq!(open(b"k1", "p", &sealed).unwrap(), b"hello");
        assert!(open(b"k2", "p", &sealed).is_err());
        assert!(open(b"k1", "q", &sealed).is_err());
    }

    #[test]
    fn hmac_parts_do_not_run_together() {
        assert_ne!(
            hmac_sha256(b"k", &[b"ab", b"c"]),
            hmac_sha256(b"k", &[b"a", b"bc"])
        );
    }

    #[test]
    fn sha256_hex_matches_known_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
