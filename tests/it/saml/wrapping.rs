//! XML Signature Wrapping (XSW1–XSW8 as SAML Raider builds them) and
//! signatures that do not cover their own parent. In each,
//! the IdP really signed something for alice; the attacker rearranges it so
//! that a naive reader would take `victim@corp.test` from unsigned content.

use super::idp::*;
use super::template::Resp;

fn evil() -> Resp {
    Resp {
        response_id: "_evil-response".into(),
        assertion_id: "_evil-assertion".into(),
        name_id: "victim@corp.test".into(),
        ..Resp::new()
    }
}

/// Strips the closing tag of `element_xml` so children can be appended.
fn open(element_xml: &str, close: &str) -> String {
    element_xml.strip_suffix(close).unwrap().to_string()
}

/// The real IdP-signed Response (signature on the Response).
fn signed_response() -> (String, String) {
    let signed = Resp::new().signed(Sign::Response);
    let sig = cut(&signed, "<ds:Signature", "</ds:Signature>").to_string();
    let unsigned = without_signature(body(&signed));
    (sig, unsigned)
}

/// The real IdP-signed Assertion, its signature, and the Assertion without it.
fn signed_assertion() -> (String, String, String) {
    let assertion = Resp::new().signed_assertion();
    let sig = cut(&assertion, "<ds:Signature", "</ds:Signature>").to_string();
    let unsigned = without_signature(&assertion);
    (assertion, sig, unsigned)
}

#[test]
fn xsw1_original_response_inside_the_signature_of_an_evil_response() {
    let (sig, original) = signed_response();
    let sig = sig.replace("</ds:Signature>", &format!("{original}</ds:Signature>"));
    let xml = evil().response(&sig, &evil().assertion(""));
    refused(&xml);
}

#[test]
fn xsw2_original_response_beside_a_detached_signature() {
    let (sig, original) = signed_response();
    let xml = evil().response(&format!("{original}{sig}"), &evil().assertion(""));
    refused(&xml);
}

#[test]
fn xsw3_evil_assertion_before_the_signed_one() {
    let (signed, _, _) = signed_assertion();
    let xml = Resp::new().response("", &format!("{}{signed}", evil().assertion("")));
    refused(&xml);
}

#[test]
fn xsw4_signed_assertion_wrapped_inside_the_evil_one() {
    let (signed, _, _) = signed_assertion();
    let wrapper = open(&evil().assertion(""), "</saml:Assertion>");
    let xml = Resp::new().response("", &format!("{wrapper}{signed}</saml:Assertion>"));
    refused(&xml);
}

#[test]
fn xsw5_evil_assertion_carries_the_signature_original_appended_at_the_end() {
    let (_, sig, original) = signed_assertion();
    let xml = Resp::new().response("", &format!("{}{original}", evil().assertion(&sig)));
    refused(&xml);
}

#[test]
fn xsw6_original_assertion_inside_the_signature_of_the_evil_one() {
    let (_, sig, original) = signed_assertion();
    let sig = sig.replace("</ds:Signature>", &format!("{original}</ds:Signature>"));
    let xml = Resp::new().response("", &evil().assertion(&sig));
    refused(&xml);
}

#[test]
fn xsw7_signed_assertion_hidden_in_extensions() {
    let (signed, _, _) = signed_assertion();
    let ext = format!("<samlp:Extensions>{signed}</samlp:Extensions>");
    let xml = Resp::new().response(&ext, &evil().assertion(""));
    refused(&xml);
}

#[test]
fn xsw8_original_assertion_in_a_signature_object() {
    let (_, sig, original) = signed_assertion();
    let sig = sig.replace(
        "</ds:Signature>",
        &format!("<ds:Object>{original}</ds:Object></ds:Signature>"),
    );
    let xml = Resp::new().response("", &evil().assertion(&sig));
    refused(&xml);
}

#[test]
fn evil_assertion_reusing_the_signed_id_is_refused() {
    let (signed, _, _) = signed_assertion();
    let twin = Resp {
        name_id: "victim@corp.test".into(),
        ..Resp::new()
    };
    let xml = Resp::new().response("", &format!("{}{signed}", twin.assertion("")));
    refused(&xml);
}

#[test]
fn signed_assertion_moved_out_of_the_response_root_is_refused() {
    // One assertion only, but not a direct child of the Response.
    let (signed, _, _) = signed_assertion();
    let xml = Resp::new().response(
        "",
        &format!("<samlp:Extensions>{signed}</samlp:Extensions>"),
    );
    let reason = refused(&xml);
    assert!(reason.contains("direct child"), "{reason}");
}

#[test]
fn response_signature_placed_inside_the_assertion_does_not_count() {
    // Cryptographically valid (the IdP key signed the whole Response), but
    // the signature does not reference the element that carries it.
    let r = Resp::new();
    let tmpl = sig_template(&format!("#{}", r.response_id), &Signer::idp());
    let xml = xmlsec_sign(&r.response("", &r.assertion(&tmpl)), &Signer::idp());
    let reason = refused(&xml);
    assert!(reason.contains("reference"), "{reason}");
}

#[test]
fn whole_document_reference_does_not_count() {
    let r = Resp::new();
    let xml = xmlsec_sign(
        &r.response(&sig_template("", &Signer::idp()), &r.assertion("")),
        &Signer::idp(),
    );
    let reason = refused(&xml);
    assert!(reason.contains("reference"), "{reason}");
}
