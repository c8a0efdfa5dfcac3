//! One test per attack on the ACS: unsigned, altered, self-keyed or HMAC
//! signatures, NameID comments, validity window, Recipient/Destination,
//! InResponseTo, Audience/Issuer, DOCTYPE, several Assertions or a failed
//! Status.

use super::idp::*;
use super::template::Resp;
use iam_gateway::connectors::saml::{
    validate_response, Expectations, IdpMetadata, SamlError, MAX_RESPONSE_B64_LEN,
};

// ---- signatures (cases 2, 3, 4) ----

#[test]
fn unsigned_response_and_assertion_are_refused() {
    let reason = refused(&Resp::new().signed(Sign::Nothing));
    assert!(reason.contains("neither"), "{reason}");
}

#[test]
fn altered_digest_value_is_refused() {
    let signed = Resp::new().signed(Sign::Assertion);
    assert!(check(&signed).is_ok());
    refused(&flip_in(&signed, "DigestValue"));
}

#[test]
fn altered_signature_value_is_refused() {
    let signed = Resp::new().signed(Sign::Response);
    assert!(check(&signed).is_ok());
    refused(&flip_in(&signed, "SignatureValue"));
}

#[test]
fn content_changed_after_signing_is_refused() {
    for what in [Sign::Assertion, Sign::Response, Sign::Both] {
        let signed = Resp::new().signed(what);
        refused(&signed.replace("alice@corp.test", "victim@corp.test"));
    }
}

#[test]
fn signature_by_another_key_shipped_in_key_info_is_refused() {
    let w = world();
    let signer = Signer {
        keys: Some(&w.attacker),
        ..Signer::idp()
    };
    for what in [Sign::Assertion, Sign::Response] {
        let xml = Resp::new().signed_by(what, &signer);
        // The attacker's certificate really is in the message's KeyInfo...
        let in_key_info: String = cut(&xml, "<ds:X509Certificate>", "</ds:X509Certificate>")
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        assert!(in_key_info.contains(&b64_der(&w.attacker.cert_der)));
        // ...and is not trusted: only the pinned certificate verifies.
        let reason = refused(&xml);
        assert!(reason.contains("pinned certificate"), "{reason}");
    }
}

fn b64_der(der: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(der)
}

#[test]
fn hmac_sha256_signature_is_refused() {
    let signer = Signer {
        keys: None,
        hmac_key: Some(&world().hmac_key),
        sig_alg: HMAC_SHA256,
        digest_alg: SHA256,
        c14n: EXC_C14N,
    };
    let reason = refused(&Resp::new().signed_by(Sign::Assertion, &signer));
    assert!(reason.contains("hmac-sha256"), "{reason}");
}

#[test]
fn rsa_sha1_signature_is_refused() {
    let signer = Signer {
        sig_alg: RSA_SHA1,
        digest_alg: SHA1,
        ..Signer::idp()
    };
    let reason = refused(&Resp::new().signed_by(Sign::Assertion, &signer));
    assert!(reason.contains("rsa-sha1"), "{reason}");
}

#[test]
fn rsa_sha256_over_a_sha1_digest_is_refused() {
    let signer = Signer {
        digest_alg: SHA1,
        ..Signer::idp()
    };
    let reason = refused(&Resp::new().signed_by(Sign::Response, &signer));
    assert!(reason.contains("digest"), "{reason}");
}

#[test]
fn connection_without_pinned_certificate_never_skips_verification() {
    let idp = IdpMetadata {
        signing_certs_der: vec![],
        ..idp_meta().clone()
    };
    let exp = Expectations {
        idp: &idp,
        ..expect()
    };
    refused_with(&Resp::new().signed(Sign::Assertion), &exp);
}

// ---- NameID comment (case 5) ----

#[track_caller]
fn never_the_victim(xml: &str) {
    let v = check(xml).unwrap();
    assert_eq!(v.name_id, "victim@corp.test.evil.test");
    assert_eq!(v.email.as_deref(), Some("victim@corp.test.evil.test"));
    assert_eq!(v.subject_key, "victim@corp.test.evil.test");
}

#[test]
fn name_id_comment_added_after_signing_never_yields_the_victim() {
    // The attacker owns victim@corp.test.evil.test and gets it signed, then
    // adds a comment, which exclusive c14n ignores, so the signature still
    // holds (CVE-2017-11427 family). The whole text is read: the attacker
    // signs in as themself, never as the victim.
    let mut r = Resp::new();
    r.name_id = "victim@corp.test.evil.test".into();
    for what in [Sign::Assertion, Sign::Response] {
        let signed = r.signed(what);
        let tampered = signed.replace(
            "victim@corp.test.evil.test",
            "victim@corp.test<!---->.evil.test",
        );
        assert_ne!(signed, tampered);
        never_the_victim(&tampered);
    }
}

#[test]
fn name_id_comment_signed_with_comments_c14n_never_yields_the_victim() {
    // The comment is there when the IdP signs, with c14n WithComments; a
    // `#id` reference still drops comments from what is digested.
    let mut r = Resp::new();
    r.name_id = "victim@corp.test<!---->.evil.test".into();
    let signer = Signer {
        c14n: EXC_C14N_WITH_COMMENTS,
        ..Signer::idp()
    };
    for what in [Sign::Assertion, Sign::Response] {
        never_the_victim(&r.signed_by(what, &signer));
    }
}

// ---- one assertion, success status (case 12) ----

#[test]
fn second_assertion_is_refused_even_when_both_are_signed() {
    let first = Resp::new().signed_assertion();
    let second = Resp {
        assertion_id: "_assertion-2".into(),
        name_id: "bob@corp.test".into(),
        ..Resp::new()
    }
    .signed_assertion();
    let reason = refused(&Resp::new().response("", &format!("{first}{second}")));
    assert!(reason.contains("exactly one assertion"), "{reason}");
}

#[test]
fn encrypted_assertion_is_refused() {
    let enc = "<saml:EncryptedAssertion><xenc:EncryptedData \
               xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\"/></saml:EncryptedAssertion>";
    let reason = refused(&Resp::new().response("", enc));
    assert!(reason.contains("encrypted"), "{reason}");
}

#[test]
fn status_other_than_success_is_refused() {
    let mut r = Resp::new();
    r.status = "urn:oasis:names:tc:SAML:2.0:status:Requester".into();
    let reason = refused(&r.signed(Sign::Response));
    assert!(reason.contains("status:Requester"), "{reason}");
}

// ---- time (case 7) ----

#[test]
fn expired_assertion_is_refused() {
    let mut r = Resp::new();
    r.not_on_or_after = NOW - SKEW - 1;
    let reason = refused(&r.signed(Sign::Assertion));
    assert!(reason.contains("expired"), "{reason}");
}

#[test]
fn expired_subject_confirmation_is_refused() {
    let mut r = Resp::new();
    r.scd_not_on_or_after = NOW - SKEW;
    let reason = refused(&r.signed(Sign::Assertion));
    assert!(reason.contains("expired"), "{reason}");
}

#[test]
fn not_yet_valid_assertion_is_refused() {
    let mut r = Resp::new();
    r.not_before = NOW + SKEW + 1;
    let reason = refused(&r.signed(Sign::Assertion));
    assert!(reason.contains("not valid yet"), "{reason}");
}

// ---- recipient, destination (case 8) ----

#[test]
fn wrong_recipient_is_refused() {
    let mut r = Resp::new();
    r.recipient = "https://other-sp.test/acs".into();
    let reason = refused(&r.signed(Sign::Assertion));
    assert!(reason.contains("recipient"), "{reason}");
}

#[test]
fn wrong_destination_is_refused() {
    let mut r = Resp::new();
    r.destination = Some("https://gw.test/sso/saml/c2/acs".into());
    let reason = refused(&r.signed(Sign::Response));
    assert!(reason.contains("destination"), "{reason}");
}

#[test]
fn signed_response_without_destination_is_refused() {
    let mut r = Resp::new();
    r.destination = None;
    refused(&r.signed(Sign::Response));
}

// ---- InResponseTo (case 9) ----

#[test]
fn unknown_in_response_to_is_refused() {
    let mut r = Resp::new();
    r.response_in_response_to = Some("_another-request".into());
    r.scd_in_response_to = Some("_another-request".into());
    let reason = refused(&r.signed(Sign::Assertion));
    assert!(reason.contains("did not make"), "{reason}");
}

#[test]
fn unknown_in_response_to_in_the_signed_assertion_alone_is_refused() {
    let mut r = Resp::new();
    r.scd_in_response_to = Some("_another-request".into());
    refused(&r.signed(Sign::Both));
}

#[test]
fn unsolicited_response_is_refused_when_idp_initiated_is_off() {
    let xml = Resp::unsolicited().signed(Sign::Assertion);
    let exp = Expectations {
        in_response_to: None,
        allow_idp_initiated: false,
        ..expect()
    };
    let reason = refused_with(&xml, &exp);
    assert!(reason.contains("unsolicited"), "{reason}");
}

#[test]
fn response_without_in_response_to_is_refused_when_a_request_is_pending() {
    refused(&Resp::unsolicited().signed(Sign::Assertion));
}

#[test]
fn answer_to_some_request_is_refused_when_this_browser_made_none() {
    let exp = Expectations {
        in_response_to: None,
        allow_idp_initiated: true,
        ..expect()
    };
    refused_with(&Resp::new().signed(Sign::Assertion), &exp);
}

// ---- audience, issuer (case 10) ----

#[test]
fn missing_audience_is_refused() {
    let mut r = Resp::new();
    r.audiences.clear();
    let reason = refused(&r.signed(Sign::Assertion));
    assert!(reason.contains("no audience"), "{reason}");
}

#[test]
fn other_audience_is_refused() {
    let mut r = Resp::new();
    r.audiences = vec!["https://gw.test/sso/saml/c2/metadata".into()];
    let reason = refused(&r.signed(Sign::Assertion));
    assert!(reason.contains("another service"), "{reason}");
}

#[test]
fn wrong_assertion_issuer_is_refused() {
    let mut r = Resp::new();
    r.issuer = "https://evil.test/saml".into();
    let reason = refused(&r.signed(Sign::Assertion));
    assert!(reason.contains("issuer"), "{reason}");
}

#[test]
fn wrong_response_issuer_is_refused() {
    let mut r = Resp::new();
    r.response_issuer = Some("https://evil.test/saml".into());
    let reason = refused(&r.signed(Sign::Response));
    assert!(reason.contains("issuer"), "{reason}");
}

// ---- DOCTYPE and size (case 11) ----

fn with_doctype(dtd: &str) -> String {
    let signed = Resp::new().signed(Sign::Assertion);
    format!("<?xml version=\"1.0\"?>\n{dtd}\n{}", body(&signed))
}

#[track_caller]
fn doctype_refused(xml: &str) {
    let err = validate_response(&b64(xml), &expect()).unwrap_err();
    assert_eq!(err, SamlError::DoctypeRefused);
    assert_eq!(err.status(), 400);
}

#[test]
fn doctype_with_external_entity_xxe_is_refused() {
    let xml =
        with_doctype("<!DOCTYPE samlp:Response [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>")
            .replace("alice@corp.test", "&xxe;");
    doctype_refused(&xml);
}

#[test]
fn doctype_billion_laughs_is_refused() {
    let mut dtd = String::from("<!DOCTYPE samlp:Response [<!ENTITY lol0 \"lol\">");
    for i in 1..10 {
        let p = i - 1;
        dtd.push_str(&format!(
            "<!ENTITY lol{i} \"&lol{p};&lol{p};&lol{p};&lol{p};&lol{p};&lol{p};&lol{p};&lol{p};&lol{p};&lol{p};\">"
        ));
    }
    dtd.push_str("]>");
    doctype_refused(&with_doctype(&dtd).replace("Alice Example", "&lol9;"));
}

#[test]
fn doctype_declaring_id_aliases_is_refused() {
    // CVE-2025-23369: a DTD that makes another attribute an ID.
    doctype_refused(&with_doctype(
        "<!DOCTYPE samlp:Response [<!ATTLIST saml:Assertion Alias ID #IMPLIED>]>",
    ));
}

#[test]
fn oversize_response_is_refused_before_decoding() {
    let big = "A".repeat(MAX_RESPONSE_B64_LEN + 4);
    let err = validate_response(&big, &expect()).unwrap_err();
    assert!(matches!(err, SamlError::TooLarge { .. }), "{err:?}");
    assert_eq!(err.status(), 413);
}

#[test]
fn garbage_is_malformed() {
    for input in [
        "not base64 at all!",
        &b64("<not-closed>"),
        &b64("<a:Response xmlns:a='urn:x'/>"),
    ] {
        let err = validate_response(input, &expect()).unwrap_err();
        assert!(matches!(err, SamlError::Malformed(_)), "{err:?}");
        assert_eq!(err.status(), 400);
    }
}

#[test]
fn other_encodings_are_malformed() {
    let signed = body(&Resp::new().signed(Sign::Assertion)).to_string();
    let latin1 = format!("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>{signed}");
    let utf16: Vec<u8> = signed
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    for bytes in [latin1.into_bytes(), utf16] {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        let err = validate_response(&encoded, &expect()).unwrap_err();
        assert!(matches!(err, SamlError::Malformed(_)), "{err:?}");
    }
}
