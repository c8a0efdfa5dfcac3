//! TOTP (RFC 6238, HMAC-SHA1, 6 digits, 30-second steps) with replay
//! protection: a code is accepted once, and never for a step at or before
//! the last accepted one.

use crate::crypto;
use hmac::{Hmac, Mac};
use sha1::Sha1;

pub const STEP_SECONDS: i64 = 30;
pub const DIGITS: u32 = 6;
/// Steps of clock skew accepted on either side.
pub const SKEW_STEPS: i64 = 1;

const B32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding (what authenticator apps expect).
pub fn base32_encode(data: &[u8]) -> String {
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in data {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            out.push(B32[((buffer >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(B32[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '=' && *c != '-')
    {
        let v = B32
            .iter()
            .position(|&x| x as char == c.to_ascii_uppercase())? as u32;
        buffer = (buffer << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push(((buffer >> (bits - 8)) & 0xff) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

/// A new 160-bit secret, base32.
pub fn new_secret() -> Result<String, crypto::CryptoError> {
    Ok(base32_encode(&crypto::random_bytes::<20>()?))
}

/// The code for one time step.
pub fn code_at_step(secret: &[u8], step: i64) -> String {
    let mut mac = match <Hmac<Sha1> as Mac>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(&(step as u64).to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = (h[h.len() - 1] & 0x0f) as usize;
    let bin = (u32::from(h[offset] & 0x7f) << 24)
        | (u32::from(h[offset + 1]) << 16)
        | (u32::from(h[offset + 2]) << 8)
        | u32::from(h[offset + 3]);
    format!(
        "{:0width$}",
        bin % 10u32.pow(DIGITS),
        width = DIGITS as usize
    )
}

pub fn step_of(unix: i64) -> i64 {
    unix.div_euclid(STEP_SECONDS)
}

/// Checks `code` at time `now`; returns the matched step when it is newer
/// than `last_step`. The caller must store that step before answering.
pub fn verify(secret_b32: &str, code: &str, now: i64, last_step: Option<i64>) -> Option<i64> {
    let secret = base32_decode(secret_b32)?;
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let current = step_of(now);
    let mut matched = None;
    // Check every candidate step so timing does not depend on which matched.
    for step in (current - SKEW_STEPS)..=(current + SKEW_STEPS) {
        if crypto::ct_eq(code_at_step(&secret, step).as_bytes(), code.as_bytes()) {
            matched = Some(step);
        }
    }
    matched.filter(|s| last_step.is_none_or(|last| *s > last))
}

/// The `otpauth://` URI authenticator apps read (as text or a QR code).
pub fn otpauth_uri(issuer: &str, account: &str, secret_b32: &str) -> String {
    let enc = |s: &str| -> String {
        url::form_urlencoded::byte_serialize(s.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={}&period={}",
        enc(issuer),
        enc(account),
        secret_b32,
        enc(issuer),
        DIGITS,
        STEP_SECONDS
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, 8-digit codes truncated to our 6 digits.
        let secret = b"12345678901234567890";
        for (t, code8) in [
            (59i64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
        ] {
            assert_eq!(code_at_step(secret, step_of(t)), code8[2..], "t={t}");
        }
    }

    #[test]
    fn base32_round_trips() {
        for data in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            assert_eq!(base32_decode(&base32_encode(data)).unwrap(), data);
        }
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
    }

    #[test]
    fn accepts_skew_of_one_step_and_refuses_replay() {
        let secret = new_secret().unwrap();
        let raw = base32_decode(&secret).unwrap();
        let now = 1_700_000_000;
        let prev = code_at_step(&raw, step_of(now) - 1);
        let next = code_at_step(&raw, step_of(now) + 1);
        let far = code_at_step(&raw, step_of(now) + 2);
        assert_eq!(verify(&secret, &prev, now, None), Some(step_of(now) - 1));
        assert_eq!(verify(&secret, &next, now, None), Some(step_of(now) + 1));
        assert_eq!(verify(&secret, &far, now, None), None);
        let cur = code_at_step(&raw, step_of(now));
        let used = verify(&secret, &cur, now, None).unwrap();
        assert_eq!(
            verify(&secret, &cur, now, Some(used)),
            None,
            "same code twice"
        );
        assert_eq!(verify(&secret, &prev, now, Some(used)), None, "older step");
        assert_eq!(verify(&secret, "12345", now, None), None);
        assert!(otpauth_uri("IAM Gateway", "a@b.test", &secret)
            .starts_with("otpauth://totp/IAM%20Gateway:a%40b.test?secret="));
    }
}
