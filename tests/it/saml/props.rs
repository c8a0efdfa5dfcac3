//! Property tests on the ACS entry point (`validate_response`): arbitrary
//! bytes and mutated real responses are never accepted as anyone else, and
//! never panic. A mutation may only be accepted when it leaves the signed
//! content alone (e.g. whitespace between unsigned elements), and then it
//! yields exactly the original identity.

use super::idp::*;
use super::template::Resp;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use iam_gateway::connectors::saml::{validate_response, ValidatedAssertion};
use proptest::prelude::*;
use std::sync::OnceLock;

/// Real signed responses (xmlsec1 runs once per kind) and what they carry.
fn originals() -> &'static Vec<(String, ValidatedAssertion)> {
    static O: OnceLock<Vec<(String, ValidatedAssertion)>> = OnceLock::new();
    O.get_or_init(|| {
        [Sign::Assertion, Sign::Response, Sign::Both]
            .into_iter()
            .map(|what| {
                let xml = Resp::new().signed(what);
                let v = validate_response(&b64(&xml), &expect()).unwrap();
                (xml, v)
            })
            .collect()
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Delete(usize, usize),
    Insert(usize, Vec<u8>),
    Duplicate(usize, usize),
    /// Replaces one occurrence of a meaningful word with another.
    Swap(usize, &'static str, &'static str),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<prop::sample::Index>();
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), 1usize..40).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (
            any::<usize>(),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 1..8),
                proptest::sample::select(
                    &[
                        " ",
                        "\n",
                        "<!-- x -->",
                        "&amp;",
                        "]]>",
                        "<",
                        "\"",
                        "xmlns=\"\"",
                        "<saml:Assertion>",
                        "&#x0;"
                    ][..]
                )
                .prop_map(|s| s.as_bytes().to_vec()),
            ]
        )
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1usize..400).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        (
            at,
            proptest::sample::select(
                &[
                    ("alice", "mallory"),
                    ("corp.test", "evil.test"),
                    ("admins", "owners"),
                    ("_assertion-1", "_assertion-2"),
                    ("Success", "Failure"),
                    ("2.0", "1.1"),
                ][..]
            )
        )
            .prop_map(|(i, (a, b))| Mutation::Swap(i.index(1 << 16), a, b)),
    ]
}

fn apply(xml: &str, m: &Mutation) -> Vec<u8> {
    let mut b = xml.as_bytes().to_vec();
    let n = b.len();
    match m {
        Mutation::Set(i, v) => b[i % n] = *v,
        Mutation::Delete(i, len) => {
            let s = i % n;
            b.drain(s..(s + len).min(n));
        }
        Mutation::Insert(i, bytes) => {
            let s = i % (n + 1);
            b.splice(s..s, bytes.iter().copied());
        }
        Mutation::Duplicate(i, len) => {
            let s = i % n;
            let piece = b[s..(s + len).min(n)].to_vec();
            b.splice(s..s, piece);
        }
        Mutation::Swap(k, from, to) => {
            let hits: Vec<usize> = xml.match_indices(from).map(|(i, _)| i).collect();
            if !hits.is_empty() {
                let s = hits[k % hits.len()];
                b.splice(s..s + from.len(), to.bytes());
            }
        }
    }
    b
}

proptest! {
    #[test]
    fn arbitrary_bytes_are_refused(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        prop_assert!(validate_response(&STANDARD.encode(&bytes), &expect()).is_err());
    }

    #[test]
    fn arbitrary_form_values_are_refused(text in any::<String>()) {
        prop_assert!(validate_response(&text, &expect()).is_err());
    }

    #[test]
    fn mutated_responses_never_yield_another_identity(
        which in 0usize..3,
        ms in proptest::collection::vec(mutation(), 1..4),
    ) {
        let (xml, original) = &originals()[which];
        let mut text = xml.clone();
        let mut bytes = Vec::new();
        for m in &ms {
            bytes = apply(&text, m);
            text = String::from_utf8_lossy(&bytes).to_string();
        }
        match validate_response(&STANDARD.encode(&bytes), &expect()) {
            Err(_) => {}
            Ok(v) => prop_assert_eq!(&v, original, "accepted a changed identity after {:?}", ms),
        }
    }
}
