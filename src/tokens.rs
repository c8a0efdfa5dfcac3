//! Bearer token format: a type prefix, 256 random bits (base64url) and a
//! 6-character checksum, so typos and foreign strings are refused without a
//! database look-up and leaked tokens are recognisable by secret scanners.
//! Only the SHA-256 of a token is stored.

use crate::crypto;

pub const API_PREFIX: &str = "iamgw_";
pub const SCIM_PREFIX: &str = "iamgw_scim_";
const RANDOM_LEN: usize = 43;
const CHECK_LEN: usize = 6;

fn checksum(random: &str) -> String {
    crypto::b64url(crypto::sha256_hex(random.as_bytes()).as_bytes())[..CHECK_LEN].to_string()
}

pub fn mint(prefix: &str) -> Result<String, crypto::CryptoError> {
    let random = crypto::b64url(&crypto::random_bytes::<32>()?);
    Ok(format!("{prefix}{random}{}", checksum(&random)))
}

/// Whether `token` has this prefix, the right length and a valid checksum.
pub fn well_formed(token: &str, prefix: &str) -> bool {
    let Some(rest) = token.strip_prefix(prefix) else {
        return false;
    };
    if rest.len() != RANDOM_LEN + CHECK_LEN || !rest.is_ascii() {
        return false;
    }
    let (random, check) = rest.split_at(RANDOM_LEN);
    crypto::b64url_decode(random).is_some_and(|b| b.len() == 32)
        && crypto::ct_eq(checksum(random).as_bytes(), check.as_bytes())
}

pub fn hash(token: &str) -> String {
    crypto::sha256_hex(token.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_well_formed_and_typos_are_not() {
        let t = mint(API_PREFIX).unwrap();
        assert!(t.starts_with("iamgw_") && well_formed(&t, API_PREFIX));
        let mut typo = t.clone().into_bytes();
        let i = API_PREFIX.len() + 5;
        typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
        assert!(!well_formed(&String::from_utf8(typo).unwrap(), API_PREFIX));
        assert!(!well_formed(&t[..t.len() - 1], API_PREFIX));
        let s = mint(SCIM_PREFIX).unwrap();
        assert!(well_formed(&s, SCIM_PREFIX) && !well_formed(&t, SCIM_PREFIX));
    }
}

/// Property tests: the shape check never panics, accepts what `mint`
/// makes, and refuses any one-character change of it.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn foreign_strings_are_refused_without_a_panic(s in any::<String>(), tail in "[A-Za-z0-9_-]{49}") {
            prop_assert!(!well_formed(&s, API_PREFIX));
            let _ = well_formed(&format!("{API_PREFIX}{s}"), API_PREFIX);
            // Right prefix and length, random body: the checksum refuses it
            // (but for one chance in 2^36).
            let forged = format!("{API_PREFIX}{tail}");
            prop_assert!(!well_formed(&forged, API_PREFIX));
        }

        #[test]
        fn a_one_character_change_is_refused(
            at in any::<prop::sample::Index>(),
            c in "[A-Za-z0-9_-]",
            scim in any::<bool>(),
        ) {
            let prefix = if scim { SCIM_PREFIX } else { API_PREFIX };
            let t = mint(prefix).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert!(well_formed(&t, prefix));
            let i = prefix.len() + at.index(t.len() - prefix.len());
            let mut changed = t.clone();
            changed.replace_range(i..=i, &c);
            prop_assert_eq!(well_formed(&changed, prefix), changed == t);
        }
    }
}
