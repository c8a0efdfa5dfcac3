//! The gateway's XML Signature verification (libxml2's C14N and OpenSSL on
//! the parsed tree) against an independent verifier, the `xmlsec1` CLI: every
//! accepted algorithm verifies, and for the same signed document, changed
//! in ways canonicalization does or does not see, both give the same
//! verdict. Then the bounds set before canonicalization runs, and values
//! read exactly as signed.

use super::idp::*;
use super::template::Resp;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use iam_gateway::connectors::saml::{
    parse_idp_metadata, validate_response, Expectations, SamlError,
};
use std::process::Command;

const C14N_10: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const C14N_10_COMMENTS: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments";
const C14N_11: &str = "http://www.w3.org/2006/12/xml-c14n11";
const C14N_11_COMMENTS: &str = "http://www.w3.org/2006/12/xml-c14n11#WithComments";
const ALL_C14N: [&str; 6] = [
    EXC_C14N,
    EXC_C14N_WITH_COMMENTS,
    C14N_10,
    C14N_10_COMMENTS,
    C14N_11,
    C14N_11_COMMENTS,
];
const RSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384";
const RSA_SHA512: &str = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512";
const ECDSA_SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384";
const SHA384: &str = "http://www.w3.org/2001/04/xmldsig-more#sha384";
const SHA512: &str = "http://www.w3.org/2001/04/xmlenc#sha512";

fn signer(c14n: &'static str) -> Signer<'static> {
    Signer {
        c14n,
        ..Signer::idp()
    }
}

/// The xmlsec1 CLI's verdict on the first signature of `xml`, with the
/// IdP's certificate as the only trusted key.
fn xmlsec_verifies(xml: &str) -> bool {
    let dir = &world().dir;
    let file = dir.join(format!("{}-verify.xml", uuid::Uuid::new_v4()));
    std::fs::write(&file, xml).unwrap();
    let out = Command::new("xmlsec1")
        .arg("--verify")
        .arg("--pubkey-cert-pem")
        .arg(&world().idp.cert_pem)
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:protocol:Response",
        ])
        .arg(&file)
        .output()
        .expect("the xmlsec1 CLI (Debian package xmlsec1) is needed by the SAML tests");
    let _ = std::fs::remove_file(&file);
    out.status.success()
}

#[test]
fn every_accepted_canonicalization_verifies_on_each_signed_element() {
    let original = validate_response(&b64(&Resp::new().signed(Sign::Assertion)), &expect())
        .unwrap()
        .name_id;
    for c14n in ALL_C14N {
        for what in [Sign::Assertion, Sign::Response, Sign::Both] {
            let xml = Resp::new().signed_by(what, &signer(c14n));
            let got = validate_response(&b64(&xml), &expect())
                .unwrap_or_else(|e| panic!("{c14n} {what:?}: refused: {e:?}"));
            assert_eq!(got.name_id, original, "{c14n} {what:?}");
        }
    }
}

#[test]
fn sha384_and_sha512_digests_and_signatures_verify() {
    let w = world();
    let ec_idp = parse_idp_metadata(&metadata_xml(&[&w.ec.cert_der], None)).unwrap();
    let cases = [
        (&w.idp, RSA_SHA384, SHA384, expect()),
        (&w.idp, RSA_SHA512, SHA512, expect()),
        (
            &w.ec,
            ECDSA_SHA384,
            SHA512,
            Expectations {
                idp: &ec_idp,
                ..expect()
            },
        ),
    ];
    for (keys, sig_alg, digest_alg, exp) in cases {
        let s = Signer {
            keys: Some(keys),
            sig_alg,
            digest_alg,
            ..Signer::idp()
        };
        let xml = Resp::new().signed_by(Sign::Both, &s);
        let got = validate_response(&b64(&xml), &exp);
        assert!(got.is_ok(), "{sig_alg} {digest_alg}: {got:?}");
    }
}

#[test]
fn an_ecdsa_signature_does_not_verify_with_an_rsa_certificate_or_the_other_way_round() {
    let w = world();
    let ec = Signer {
        keys: Some(&w.ec),
        sig_alg: ECDSA_SHA256,
        ..Signer::idp()
    };
    // Pinned: the RSA certificate only; signed with the EC key.
    let reason = refused(&Resp::new().signed_by(Sign::Assertion, &ec));
    assert!(reason.contains("does not verify"), "{reason}");
    // Pinned: the EC certificate only; signed with the RSA key.
    let ec_idp = parse_idp_metadata(&metadata_xml(&[&w.ec.cert_der], None)).unwrap();
    let exp = Expectations {
        idp: &ec_idp,
        ..expect()
    };
    let reason = refused_with(&Resp::new().signed(Sign::Assertion), &exp);
    assert!(reason.contains("does not verify"), "{reason}");
}

/// The response with its assertion signed by the real IdP, the reference's
/// canonicalization transform replaced by `transform`, and the unsigned
/// response changed by `edit` before signing.
fn signed_with_c14n_transform(transform: &str, edit: impl Fn(String) -> String) -> String {
    let r = Resp::new();
    let s = Signer::idp();
    let tmpl = sig_template(&format!("#{}", r.assertion_id), &s).replacen(
        &format!("<ds:Transform Algorithm=\"{EXC_C14N}\"/>"),
        transform,
        1,
    );
    xmlsec_sign(&edit(r.response("", &r.assertion(&tmpl))), &s)
}

#[test]
fn a_reference_without_a_canonicalization_transform_is_read_as_inclusive_c14n() {
    let xml = signed_with_c14n_transform("", |x| x);
    assert!(!xml.contains(&format!("<ds:Transform Algorithm=\"{EXC_C14N}\"/>")));
    assert!(validate_response(&b64(&xml), &expect()).is_ok());
    // Inclusive: a namespace declared on the Response is part of what the
    // assertion's signature covers, used or not.
    let changed = xml.replacen(
        "<samlp:Response ",
        "<samlp:Response xmlns:extra=\"urn:extra\" ",
        1,
    );
    assert!(!xmlsec_verifies(&changed));
    let reason = refused(&changed);
    assert!(reason.contains("does not verify"), "{reason}");
}

#[test]
fn an_exclusive_c14n_prefix_list_is_part_of_what_is_signed() {
    let xml = signed_with_c14n_transform(
        &format!(
            "<ds:Transform Algorithm=\"{EXC_C14N}\"><ec:InclusiveNamespaces \
             xmlns:ec=\"{EXC_C14N}\" PrefixList=\"xs #default\"/></ds:Transform>"
        ),
        |x| {
            x.replacen(
                "<samlp:Response ",
                "<samlp:Response xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" ",
                1,
            )
        },
    );
    assert!(xml.contains("PrefixList=\"xs #default\""));
    assert!(validate_response(&b64(&xml), &expect()).is_ok());
    // The listed prefix is not used inside the assertion, so only the list
    // puts its declaration under the signature.
    let changed = xml.replacen("http://www.w3.org/2001/XMLSchema", "urn:other", 1);
    assert!(!xmlsec_verifies(&changed));
    let reason = refused(&changed);
    assert!(reason.contains("does not verify"), "{reason}");
}

/// Changes made after signing; whether each breaks the signature depends
/// on what canonicalization keeps.
fn tamperings(xml: &str) -> Vec<(&'static str, String)> {
    let name_id = "alice@corp.test</saml:NameID>";
    vec![
        ("nothing", xml.to_string()),
        (
            "the NameID",
            xml.replacen(name_id, "alicf@corp.test</saml:NameID>", 1),
        ),
        (
            "a comment inside the NameID",
            xml.replacen(name_id, "alice@corp<!-- x -->.test</saml:NameID>", 1),
        ),
        (
            "the NameID as CDATA",
            xml.replacen(name_id, "<![CDATA[alice@corp.test]]></saml:NameID>", 1),
        ),
        (
            "a character reference in the NameID",
            xml.replacen(name_id, "&#97;lice@corp.test</saml:NameID>", 1),
        ),
        (
            "whitespace between the Response's children",
            xml.replacen("<samlp:Status>", "\n  <samlp:Status>", 1),
        ),
        (
            "whitespace inside the Assertion",
            xml.replacen("<saml:Subject>", "\n<saml:Subject>", 1),
        ),
        (
            "the Assertion's attributes reordered and single-quoted",
            xml.replacen(
                "<saml:Assertion ID=\"_assertion-1\" Version=\"2.0\"",
                "<saml:Assertion Version='2.0' ID='_assertion-1'",
                1,
            ),
        ),
        (
            "a redundant declaration of a used prefix on the Assertion",
            xml.replacen(
                "<saml:Assertion ",
                "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ",
                1,
            ),
        ),
        (
            "an unused namespace declared on the Assertion",
            xml.replacen(
                "<saml:Assertion ",
                "<saml:Assertion xmlns:foo=\"urn:foo\" ",
                1,
            ),
        ),
        (
            "an unused namespace declared on the Response",
            xml.replacen(
                "<samlp:Response ",
                "<samlp:Response xmlns:foo=\"urn:foo\" ",
                1,
            ),
        ),
        ("the DigestValue", flip_in(xml, "DigestValue")),
        ("the SignatureValue", flip_in(xml, "SignatureValue")),
    ]
}

#[test]
fn the_gateway_and_xmlsec1_agree_on_every_tampering_under_every_canonicalization() {
    let mut checked = 0;
    for c14n in ALL_C14N {
        for what in [Sign::Assertion, Sign::Response] {
            let xml = Resp::new().signed_by(what, &signer(c14n));
            for (change, tampered) in tamperings(&xml) {
                let ours = validate_response(&b64(&tampered), &expect());
                let theirs = xmlsec_verifies(&tampered);
                assert_eq!(
                    ours.is_ok(),
                    theirs,
                    "{c14n}, {what:?} signed, {change} changed: gateway {ours:?}, xmlsec1 {theirs}"
                );
                if let Ok(v) = ours {
                    assert_eq!(v.name_id, "alice@corp.test", "{c14n} {what:?} {change}");
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 6 * 2 * 13);
}

/// `n` namespace declarations (`xmlns:n0="urn:n0"` ...) as attribute text.
fn declarations(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!(" xmlns:n{i}=\"urn:n{i}\""))
        .collect()
}

#[track_caller]
fn malformed(xml: &str) -> String {
    let err = validate_response(&b64(xml), &expect()).unwrap_err();
    assert!(matches!(err, SamlError::Malformed(_)), "{err:?}");
    assert_eq!(err.status(), 400);
    err.reason()
}

#[test]
fn namespace_declarations_are_bounded_in_every_scope_before_canonicalization() {
    let xml = Resp::new().signed(Sign::Assertion);
    // 29 unused declarations on the Response: exclusive C14N leaves them
    // out of the assertion's signature, and with the 2 SAML ones and the
    // signature's own (ds) that is 32 in scope at the signature: the limit.
    let within = xml.replacen(
        "<samlp:Response ",
        &format!("<samlp:Response{} ", declarations(0, 29)),
        1,
    );
    assert!(validate_response(&b64(&within), &expect()).is_ok());
    // One more anywhere in that scope is refused, as malformed, whether on
    // the root or further down (each element counts its ancestors').
    let on_root = xml.replacen(
        "<samlp:Response ",
        &format!("<samlp:Response{} ", declarations(0, 31)),
        1,
    );
    assert!(malformed(&on_root).contains("namespaces"));
    let split = within.replacen(
        "<saml:NameID",
        &format!("<saml:NameID{}", declarations(100, 2)),
        1,
    );
    assert!(malformed(&split).contains("namespaces"));
    // Thousands of declarations (what would make canonicalization take
    // minutes) are refused by the same check.
    let bomb = xml.replacen(
        "<samlp:Response ",
        &format!("<samlp:Response{} ", declarations(0, 2_000)),
        1,
    );
    assert!(malformed(&bomb).contains("namespaces"));
}

#[test]
fn a_response_with_more_elements_than_any_response_needs_is_refused() {
    let xml = Resp::new().signed(Sign::Assertion);
    let filler = |n: usize| format!("<samlp:Extensions>{}</samlp:Extensions>", "<x/>".repeat(n));
    // Within the limit the extra elements are outside what is signed.
    let within = xml.replacen(
        "<samlp:Status>",
        &format!("{}<samlp:Status>", filler(9_000)),
        1,
    );
    assert!(validate_response(&b64(&within), &expect()).is_ok());
    let over = xml.replacen(
        "<samlp:Status>",
        &format!("{}<samlp:Status>", filler(10_001)),
        1,
    );
    assert!(malformed(&over).contains("elements"));
}

#[test]
fn deep_nesting_is_bounded_with_the_namespaces_in_scope() {
    let xml = Resp::new().signed(Sign::Assertion);
    // 200 levels and 3 000 leaves (inclusive C14N walks every leaf's
    // ancestors for every namespace in scope) are refused before any
    // canonicalization; 20 levels with the same leaves are not.
    let nested = |levels: usize| {
        format!(
            "<samlp:Extensions>{}{}{}</samlp:Extensions><samlp:Status>",
            "<x>".repeat(levels),
            "<y/>".repeat(3_000),
            "</x>".repeat(levels)
        )
    };
    let deep = xml.replacen("<samlp:Status>", &nested(200), 1);
    assert!(malformed(&deep).contains("nested too deeply"));
    let shallow = xml.replacen("<samlp:Status>", &nested(20), 1);
    assert!(validate_response(&b64(&shallow), &expect()).is_ok());
}

#[test]
fn unicode_spaces_around_a_signed_value_are_part_of_it() {
    // U+00A0 is whitespace to Rust's trim but signed content to C14N.
    let mut r = Resp::new();
    r.name_id = "alice@corp.test\u{a0}".into();
    let reason = refused(&r.signed(Sign::Assertion));
    assert!(reason.contains("email"), "{reason}");
    let mut r = Resp::new();
    r.name_id = "\u{3000}alice-persistent ".into();
    r.name_id_format = Some(PERSISTENT_FMT.into());
    r.attributes = vec![("mail".into(), vec!["alice@corp.test".into()])];
    let got = validate_response(&b64(&r.signed(Sign::Assertion)), &expect()).unwrap();
    assert_eq!(got.name_id, "\u{3000}alice-persistent");
}

#[test]
fn an_ecdsa_value_longer_than_the_curve_is_refused() {
    let w = world();
    let ec_idp = parse_idp_metadata(&metadata_xml(&[&w.ec.cert_der], None)).unwrap();
    let exp = Expectations {
        idp: &ec_idp,
        ..expect()
    };
    let s = Signer {
        keys: Some(&w.ec),
        sig_alg: ECDSA_SHA256,
        ..Signer::idp()
    };
    let xml = Resp::new().signed_by(Sign::Assertion, &s);
    assert!(validate_response(&b64(&xml), &exp).is_ok());
    // r and s each left-padded with a zero byte: the same numbers, but not
    // XML Signature's encoding for P-256 (32 bytes each).
    let value = cut(&xml, "<ds:SignatureValue>", "</ds:SignatureValue>");
    let inner = &value["<ds:SignatureValue>".len()..value.len() - "</ds:SignatureValue>".len()];
    let raw = STANDARD
        .decode(inner.split_whitespace().collect::<String>())
        .unwrap();
    assert_eq!(raw.len(), 64);
    let padded = [&[0u8][..], &raw[..32], &[0u8][..], &raw[32..]].concat();
    let changed = xml.replacen(
        value,
        &format!(
            "<ds:SignatureValue>{}</ds:SignatureValue>",
            STANDARD.encode(padded)
        ),
        1,
    );
    let reason = refused_with(&changed, &exp);
    assert!(reason.contains("does not verify"), "{reason}");
}
