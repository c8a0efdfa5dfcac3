//! Responses the ACS accepts, and what it reads from them.

use super::idp::*;
use super::template::Resp;
use iam_gateway::connectors::saml::{parse_idp_metadata, validate_response, Expectations};

#[test]
fn signed_assertion_is_accepted_and_read() {
    let v = check(&Resp::new().signed(Sign::Assertion)).unwrap();
    assert_eq!(v.issuer, IDP_ENTITY);
    assert_eq!(v.assertion_id, "_assertion-1");
    assert_eq!(v.in_response_to.as_deref(), Some(REQ_ID));
    assert_eq!(v.name_id, "alice@corp.test");
    assert_eq!(v.name_id_format.as_deref(), Some(EMAIL_FMT));
    assert_eq!(v.subject_key, "alice@corp.test");
    assert_eq!(v.email.as_deref(), Some("alice@corp.test"));
    assert_eq!(v.name.as_deref(), Some("Alice Example"));
    assert_eq!(v.groups, ["engineering", "admins"]);
    assert_eq!(v.session_index.as_deref(), Some("_session-1"));
    // The earlier NotOnOrAfter (subject confirmation, +300) plus the skew:
    // how long the caller's replay cache keeps issuer + assertion id.
    assert_eq!(v.not_on_or_after, NOW + 300 + SKEW);
}

#[test]
fn signed_response_containing_the_assertion_is_accepted() {
    let v = check(&Resp::new().signed(Sign::Response)).unwrap();
    assert_eq!(v.name_id, "alice@corp.test");
    assert_eq!(v.assertion_id, "_assertion-1");
}

#[test]
fn response_and_assertion_both_signed_is_accepted() {
    let v = check(&Resp::new().signed(Sign::Both)).unwrap();
    assert_eq!(v.email.as_deref(), Some("alice@corp.test"));
}

#[test]
fn ecdsa_p256_sha256_from_a_pinned_ec_certificate_is_accepted() {
    let w = world();
    let idp = parse_idp_metadata(&metadata_xml(&[&w.ec.cert_der], None)).unwrap();
    let signer = Signer {
        keys: Some(&w.ec),
        hmac_key: None,
        sig_alg: ECDSA_SHA256,
        digest_alg: SHA256,
        c14n: EXC_C14N,
    };
    let xml = Resp::new().signed_by(Sign::Assertion, &signer);
    let exp = Expectations {
        idp: &idp,
        ..expect()
    };
    assert_eq!(
        validate_response(&b64(&xml), &exp).unwrap().name_id,
        "alice@corp.test"
    );
}

#[test]
fn idp_initiated_is_accepted_where_allowed() {
    let xml = Resp::unsolicited().signed(Sign::Assertion);
    let exp = Expectations {
        in_response_to: None,
        allow_idp_initiated: true,
        ..expect()
    };
    let v = validate_response(&b64(&xml), &exp).unwrap();
    assert_eq!(v.in_response_to, None);
    assert_eq!(v.subject_key, "alice@corp.test");
}

#[test]
fn persistent_name_id_takes_the_email_from_the_first_known_attribute() {
    let mut r = Resp::new();
    r.name_id = "u-8c1f2a".into();
    r.name_id_format = Some(PERSISTENT_FMT.into());
    r.attributes = vec![
        (
            "urn:oid:0.9.2342.19200300.100.1.3".into(),
            vec!["oid@corp.test".into()],
        ),
        ("mail".into(), vec!["alice@corp.test".into()]),
        (
            "urn:oid:2.16.840.1.113730.3.1.241".into(),
            vec!["Alice E.".into()],
        ),
    ];
    let v = check(&r.signed(Sign::Assertion)).unwrap();
    // `mail` comes before the OID in the attribute mapping's order of preference.
    assert_eq!(v.email.as_deref(), Some("alice@corp.test"));
    assert_eq!(v.subject_key, "u-8c1f2a");
    assert_eq!(v.name_id_format.as_deref(), Some(PERSISTENT_FMT));
    assert_eq!(v.name.as_deref(), Some("Alice E."));
    assert!(v.groups.is_empty());
}

#[test]
fn transient_name_id_uses_the_email_attribute_as_subject() {
    let mut r = Resp::new();
    r.name_id = "_transient-77".into();
    r.name_id_format = Some(TRANSIENT_FMT.into());
    r.attributes = vec![(
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress".into(),
        vec!["alice@corp.test".into()],
    )];
    let v = check(&r.signed(Sign::Response)).unwrap();
    assert_eq!(v.name_id, "_transient-77");
    assert_eq!(v.subject_key, "alice@corp.test");
    assert_eq!(v.email.as_deref(), Some("alice@corp.test"));
}

#[test]
fn transient_name_id_without_email_is_refused() {
    let mut r = Resp::new();
    r.name_id = "_transient-77".into();
    r.name_id_format = Some(TRANSIENT_FMT.into());
    let reason = refused(&r.signed(Sign::Assertion));
    assert!(reason.contains("transient"), "{reason}");
}

#[test]
fn configured_attribute_names_win() {
    let mut r = Resp::new();
    r.name_id = "u-1".into();
    r.name_id_format = None;
    r.attributes = vec![
        ("email".into(), vec!["other@corp.test".into()]),
        ("corpMail".into(), vec!["alice@corp.test".into()]),
        ("fullName".into(), vec!["Alice Configured".into()]),
        ("displayName".into(), vec!["Not This".into()]),
        ("memberOf".into(), vec!["g1".into(), "g2".into()]),
        ("groups".into(), vec!["not-these".into()]),
    ];
    let exp = Expectations {
        email_attribute: Some("corpMail"),
        name_attribute: Some("fullName"),
        group_attribute: Some("memberOf"),
        ..expect()
    };
    let v = validate_response(&b64(&r.signed(Sign::Assertion)), &exp).unwrap();
    assert_eq!(v.email.as_deref(), Some("alice@corp.test"));
    assert_eq!(v.name.as_deref(), Some("Alice Configured"));
    assert_eq!(v.groups, ["g1", "g2"]);
}

#[test]
fn small_clock_differences_within_the_skew_are_accepted() {
    let mut r = Resp::new();
    r.not_before = NOW + SKEW - 5;
    r.scd_not_on_or_after = NOW - SKEW + 5;
    assert!(check(&r.signed(Sign::Assertion)).is_ok());
}

#[test]
fn base64_wrapped_in_lines_is_accepted() {
    let encoded = b64(&Resp::new().signed(Sign::Assertion));
    let wrapped: Vec<String> = encoded
        .as_bytes()
        .chunks(76)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    assert!(validate_response(&wrapped.join("\r\n"), &expect()).is_ok());
}
