//! IdP metadata in, SP metadata out, and the AuthnRequest redirect.

use super::idp::*;
use flate2::read::DeflateDecoder;
use iam_gateway::connectors::saml::{
    authn_request_redirect, parse_idp_metadata, sp_metadata_xml, SamlError, SpSettings,
};
use libxml::parser::Parser;
use libxml::tree::Node;
use std::io::Read;

fn elements(node: &Node, ns: &str, local: &str) -> Vec<Node> {
    let mut out = Vec::new();
    for c in node.get_child_elements() {
        if c.get_name() == local && c.get_namespace().map(|n| n.get_href()).as_deref() == Some(ns) {
            out.push(c.clone());
        }
        out.extend(elements(&c, ns, local));
    }
    out
}

const MD: &str = "urn:oasis:names:tc:SAML:2.0:metadata";

#[test]
fn idp_metadata_gives_entity_redirect_endpoint_and_pinned_certificates() {
    let w = world();
    let m = parse_idp_metadata(&metadata_xml(&[&w.idp.cert_der, &w.ec.cert_der], None)).unwrap();
    assert_eq!(m.entity_id, IDP_ENTITY);
    assert_eq!(
        m.sso_url, IDP_SSO,
        "the HTTP-Redirect one, not the POST one"
    );
    assert_eq!(
        m.signing_certs_der,
        vec![w.idp.cert_der.clone(), w.ec.cert_der.clone()]
    );
}

#[test]
fn idp_metadata_inside_entities_descriptor_is_read() {
    let inner = metadata_xml(&[&world().idp.cert_der], Some("signing"));
    let inner = body(&inner);
    let xml = format!("<md:EntitiesDescriptor xmlns:md=\"{MD}\">{inner}</md:EntitiesDescriptor>");
    assert_eq!(parse_idp_metadata(&xml).unwrap().entity_id, IDP_ENTITY);
}

#[test]
fn idp_metadata_without_signing_certificate_is_refused_with_422() {
    for xml in [
        metadata_xml(&[], None),
        metadata_xml(&[&world().idp.cert_der], Some("encryption")),
    ] {
        let err = parse_idp_metadata(&xml).unwrap_err();
        assert_eq!(err, SamlError::NoSigningCertificate);
        assert_eq!(err.status(), 422);
    }
}

#[test]
fn idp_metadata_with_doctype_is_refused() {
    let xml = metadata_xml(&[&world().idp.cert_der], None).replacen(
        "<md:EntityDescriptor",
        "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><md:EntityDescriptor",
        1,
    );
    assert_eq!(
        parse_idp_metadata(&xml).unwrap_err(),
        SamlError::DoctypeRefused
    );
}

#[test]
fn idp_metadata_with_a_broken_certificate_is_refused() {
    let err = parse_idp_metadata(&metadata_xml(&[&b"not a certificate"[..]], None)).unwrap_err();
    assert!(matches!(err, SamlError::Metadata(_)), "{err:?}");
    assert_eq!(err.status(), 422);
}

#[test]
fn sp_metadata_has_the_required_descriptor() {
    let sp = SpSettings {
        entity_id: "https://gw.test/sso/saml/a&b/metadata".into(),
        acs_url: "https://gw.test/sso/saml/a&b/acs".into(),
    };
    let xml = sp_metadata_xml(&sp);
    let doc = Parser::default().parse_string(&xml).unwrap();
    let root = doc.get_root_element().unwrap();
    assert_eq!(root.get_name(), "EntityDescriptor");
    assert_eq!(
        root.get_attribute("entityID").as_deref(),
        Some(sp.entity_id.as_str())
    );
    let sso = elements(&root, MD, "SPSSODescriptor");
    assert_eq!(sso.len(), 1);
    let d = &sso[0];
    assert_eq!(
        d.get_attribute("AuthnRequestsSigned").as_deref(),
        Some("false")
    );
    assert_eq!(
        d.get_attribute("WantAssertionsSigned").as_deref(),
        Some("true")
    );
    assert!(d
        .get_attribute("protocolSupportEnumeration")
        .unwrap()
        .contains("urn:oasis:names:tc:SAML:2.0:protocol"));
    let formats = elements(d, MD, "NameIDFormat");
    assert_eq!(formats.len(), 1);
    assert_eq!(formats[0].get_content(), EMAIL_FMT);
    let acs = elements(d, MD, "AssertionConsumerService");
    assert_eq!(acs.len(), 1);
    assert_eq!(
        acs[0].get_attribute("Binding").as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST")
    );
    assert_eq!(
        acs[0].get_attribute("Location").as_deref(),
        Some(sp.acs_url.as_str())
    );
}

#[test]
fn authn_request_redirect_carries_a_128_bit_id_and_a_decodable_request() {
    let relay = "/apps/x?y=1&z=a b";
    let (url, id) = authn_request_redirect(sp(), idp_meta(), Some(relay)).unwrap();
    let hex = id.strip_prefix('_').expect("an NCName id");
    assert_eq!(hex.len(), 32);
    assert!(hex.chars().all(|c| c.is_ascii_hexdigit()));

    let url = url::Url::parse(&url).unwrap();
    assert_eq!(url.host_str(), Some("idp.test"));
    assert_eq!(url.path(), "/sso");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(
        pairs[0],
        ("tenant".into(), "t1".into()),
        "the IdP's own query is kept"
    );
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(get("RelayState").as_deref(), Some(relay));
    assert!(!url.as_str().contains("a b"), "RelayState is url-encoded");

    use base64::Engine;
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(get("SAMLRequest").unwrap())
        .unwrap();
    let mut xml = String::new();
    DeflateDecoder::new(&deflated[..])
        .read_to_string(&mut xml)
        .unwrap();
    let doc = Parser::default().parse_string(&xml).unwrap();
    let req = doc.get_root_element().unwrap();
    assert_eq!(req.get_name(), "AuthnRequest");
    assert_eq!(req.get_attribute("ID").as_deref(), Some(id.as_str()));
    assert_eq!(req.get_attribute("Version").as_deref(), Some("2.0"));
    assert_eq!(
        req.get_attribute("AssertionConsumerServiceURL").as_deref(),
        Some(ACS)
    );
    assert_eq!(req.get_attribute("Destination").as_deref(), Some(IDP_SSO));
    assert_eq!(
        req.get_attribute("ProtocolBinding").as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST")
    );
    let issuer = elements(&req, "urn:oasis:names:tc:SAML:2.0:assertion", "Issuer");
    assert_eq!(issuer.len(), 1);
    assert_eq!(issuer[0].get_content(), SP_ENTITY);
}

#[test]
fn authn_request_ids_are_fresh_and_relay_state_is_bounded() {
    let (_, a) = authn_request_redirect(sp(), idp_meta(), None).unwrap();
    let (url, b) = authn_request_redirect(sp(), idp_meta(), None).unwrap();
    assert_ne!(a, b);
    assert!(!url.contains("RelayState"));
    let long = "x".repeat(81);
    assert!(authn_request_redirect(sp(), idp_meta(), Some(&long)).is_err());
}
