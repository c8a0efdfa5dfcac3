//! Which signature counts, what it covers, and the signed content the rest
//! of validation reads. Wrapped, altered, unsigned or self-keyed (KeyInfo)
//! content is refused, and so is more than one Assertion.
//!
//! Three layers, each enough to stop the XML Signature Wrapping family:
//! 1. shape: one Assertion in the whole document, a direct child of the
//!    Response; signatures only as direct children of the Response or of
//!    that Assertion; unique `ID`s, no `xml:id`; no `ds:Object`;
//! 2. each signature is an enveloped signature of its own parent, referenced
//!    by the parent's `ID`, with allow-listed algorithms and transforms only;
//! 3. samael's `reduce_xml_to_signed` verifies every signature with the
//!    pinned certificates only (never the message's KeyInfo) and returns the
//!    content those signatures cover; identity data is read from that output
//!    and nowhere else.
//!
//! Layer 3 uses `ReduceMode::PreDigest`: the exact canonical bytes xmlsec
//! digested (the Response's when both are signed), so what is read is
//! byte for byte what was signed, comments already dropped by c14n, with
//! no tree pruning or re-rooting by samael in between.

use super::xml::{self, NS_ASSERTION, NS_DSIG, NS_PROTOCOL, NS_XML};
use super::SamlError;
use libxml::tree::{Document, Node};
use samael::crypto::{
    AllowedSignatureAlgorithm, CertificateDer, CryptoProvider, ReduceMode, XmlSec,
};
use std::collections::HashSet;

/// RSA and ECDSA with SHA-256 or better: nothing else verifies.
const ALLOWED: &[AllowedSignatureAlgorithm] = &[
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
];

const C14N: &[&str] = &[
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
    "http://www.w3.org/2006/12/xml-c14n11",
    "http://www.w3.org/2006/12/xml-c14n11#WithComments",
];
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const NS_EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";

/// The parts of a Response that the signature rules talk about.
pub struct Shape {
    pub response_id: String,
    pub assertion_id: String,
    pub response_signed: bool,
    pub assertion_signed: bool,
}

/// The verified content: the one Assertion as the signatures cover it.
pub struct Signed {
    pub assertion: Node,
    pub response_signed: bool,
    _doc: Document,
}

/// Layers 1 and 2, on the whole received document.
pub fn check_shape(root: &Node) -> Result<Shape, SamlError> {
    let mut assertions = Vec::new();
    let mut signatures = Vec::new();
    let mut ids = HashSet::new();
    for node in xml::descendants(root) {
        if xml::is(&node, NS_ASSERTION, "EncryptedAssertion") {
            return Err(SamlError::invalid("encrypted assertions are not supported"));
        }
        if xml::is(&node, NS_ASSERTION, "Assertion") {
            assertions.push(node.clone());
        }
        if xml::is(&node, NS_DSIG, "Signature") {
            signatures.push(node.clone());
        }
        if xml::is(&node, NS_DSIG, "Object") {
            return Err(SamlError::invalid("signature objects are not accepted"));
        }
        check_ids(&node, &mut ids)?;
    }
    if assertions.len() != 1 {
        return Err(SamlError::invalid(format!(
            "the response must carry exactly one assertion, it carries {}",
            assertions.len()
        )));
    }
    let assertion = assertions.remove(0);
    if assertion.get_parent().as_ref() != Some(root) {
        return Err(SamlError::invalid(
            "the assertion is not a direct child of the response",
        ));
    }
    let response_id = required_id(root, "response")?;
    let assertion_id = required_id(&assertion, "assertion")?;

    let (mut response_signed, mut assertion_signed) = (false, false);
    for sig in &signatures {
        let parent = sig.get_parent();
        let (slot, id) = if parent.as_ref() == Some(root) {
            (&mut response_signed, &response_id)
        } else if parent.as_ref() == Some(&assertion) {
            (&mut assertion_signed, &assertion_id)
        } else {
            return Err(SamlError::invalid(
                "a signature sits somewhere other than on the response or its assertion",
            ));
        };
        if *slot {
            return Err(SamlError::invalid("an element carries two signatures"));
        }
        *slot = true;
        check_signature(sig, id)?;
    }
    if !response_signed && !assertion_signed {
        return Err(SamlError::invalid(
            "neither the response nor its assertion is signed",
        ));
    }
    Ok(Shape {
        response_id,
        assertion_id,
        response_signed,
        assertion_signed,
    })
}

/// `ID` values are what references point at: each must be unique, and no
/// other ID mechanism (`xml:id`, namespaced `ID`) may create aliases.
fn check_ids(node: &Node, seen: &mut HashSet<String>) -> Result<(), SamlError> {
    for (ns, name) in xml::attribute_names(node) {
        match (ns.as_deref(), name.as_str()) {
            (Some(NS_XML), "id") => {
                return Err(SamlError::invalid("xml:id attributes are not accepted"))
            }
            (Some(_), "ID") => {
                return Err(SamlError::invalid(
                    "namespaced ID attributes are not accepted",
                ))
            }
            (None, "ID") => {
                let value = xml::attr(node, "ID").unwrap_or_default();
                if !seen.insert(value) {
                    return Err(SamlError::invalid("two elements share one ID"));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn required_id(node: &Node, what: &str) -> Result<String, SamlError> {
    xml::attr(node, "ID")
        .filter(|id| !id.is_empty())
        .ok_or_else(|| SamlError::invalid(format!("the {what} has no ID")))
}

fn algorithm(node: &Node) -> String {
    xml::attr(node, "Algorithm").unwrap_or_default()
}

fn only(node: &Node, local: &str) -> Result<Node, SamlError> {
    let mut found = xml::children(node, NS_DSIG, local);
    if found.len() != 1 {
        return Err(SamlError::invalid(format!(
            "the signature needs exactly one {local}"
        )));
    }
    Ok(found.remove(0))
}

/// Layer 2: an enveloped signature over `#parent_id` and nothing else, with
/// allow-listed algorithms only (HMAC, SHA-1, XPath and XSLT refused here,
/// before any cryptography runs).
fn check_signature(sig: &Node, parent_id: &str) -> Result<(), SamlError> {
    let signed_info = only(sig, "SignedInfo")?;
    let kids = signed_info.get_child_elements();
    let names: Vec<String> = kids.iter().map(|k| k.get_name()).collect();
    if names != ["CanonicalizationMethod", "SignatureMethod", "Reference"]
        || kids.iter().any(|k| !xml::is(k, NS_DSIG, &k.get_name()))
    {
        return Err(SamlError::invalid(
            "the signature must sign exactly one reference",
        ));
    }
    if !C14N.contains(&algorithm(&kids[0]).as_str()) {
        return Err(SamlError::invalid(
            "the signature uses an unsupported canonicalization",
        ));
    }
    let method = algorithm(&kids[1]);
    if !ALLOWED.iter().any(|a| a.signature_uri() == method)
        || !kids[1].get_child_elements().is_empty()
    {
        return Err(SamlError::invalid(format!(
            "the signature algorithm {method} is not accepted (RSA or ECDSA with SHA-256 or better only)"
        )));
    }
    let reference = &kids[2];
    if xml::attr(reference, "URI").as_deref() != Some(&format!("#{parent_id}")) {
        return Err(SamlError::invalid(
            "the signature does not reference the element that carries it",
        ));
    }
    check_reference(reference)
}

fn check_reference(reference: &Node) -> Result<(), SamlError> {
    for child in reference.get_child_elements() {
        if xml::is(&child, NS_DSIG, "Transforms") {
            let transforms = child.get_child_elements();
            if transforms.is_empty() || transforms.len() > 2 {
                return Err(SamlError::invalid("unexpected signature transforms"));
            }
            for t in transforms {
                let alg = algorithm(&t);
                let inner_ok = t
                    .get_child_elements()
                    .iter()
                    .all(|c| xml::is(c, NS_EXC_C14N, "InclusiveNamespaces"));
                if !xml::is(&t, NS_DSIG, "Transform")
                    || !(alg == ENVELOPED || C14N.contains(&alg.as_str()))
                    || !inner_ok
                {
                    return Err(SamlError::invalid(format!(
                        "the signature transform {alg} is not accepted"
                    )));
                }
            }
        } else if xml::is(&child, NS_DSIG, "DigestMethod") {
            let alg = algorithm(&child);
            if !ALLOWED.iter().any(|a| a.digest_uri() == alg) {
                return Err(SamlError::invalid(format!(
                    "the digest algorithm {alg} is not accepted (SHA-256 or better only)"
                )));
            }
        } else if !xml::is(&child, NS_DSIG, "DigestValue") {
            return Err(SamlError::invalid(
                "unexpected content in a signature reference",
            ));
        }
    }
    Ok(())
}

/// Layer 3: every signature verifies with a pinned certificate, and the
/// assertion is taken from the content the signatures cover.
pub fn verify(text: &str, shape: &Shape, certs_der: &[Vec<u8>]) -> Result<Signed, SamlError> {
    if certs_der.is_empty() {
        // samael would skip verification: never.
        return Err(SamlError::invalid(
            "the connection has no pinned signing certificate",
        ));
    }
    let certs: Vec<CertificateDer> = certs_der
        .iter()
        .cloned()
        .map(CertificateDer::from)
        .collect();
    if let Some(first) = certs.first() {
        super::native::quiet_xmlsec(first);
    }
    let reduced = XmlSec::reduce_xml_to_signed_with_allowed_algorithms(
        text,
        &certs,
        ReduceMode::PreDigest,
        Some(ALLOWED),
    )
    .map_err(|e| {
        tracing::debug!(error = %e, "SAML signature verification failed");
        SamlError::invalid(
            "the signature does not verify with the identity provider's pinned certificate",
        )
    })?;

    let doc = xml::prepare(reduced.as_bytes())
        .and_then(|t| xml::parse(&t))
        .map_err(|_| not_covered())?;
    let root = xml::root(&doc).map_err(|_| not_covered())?;
    let assertion = if shape.response_signed {
        if !xml::is(&root, NS_PROTOCOL, "Response")
            || xml::attr(&root, "ID").as_deref() != Some(shape.response_id.as_str())
        {
            return Err(not_covered());
        }
        let mut found = xml::children(&root, NS_ASSERTION, "Assertion");
        if found.len() != 1 {
            return Err(not_covered());
        }
        found.remove(0)
    } else if shape.assertion_signed && xml::is(&root, NS_ASSERTION, "Assertion") {
        root
    } else {
        return Err(not_covered());
    };
    if xml::attr(&assertion, "ID").as_deref() != Some(shape.assertion_id.as_str()) {
        return Err(not_covered());
    }
    Ok(Signed {
        assertion,
        response_signed: shape.response_signed,
        _doc: doc,
    })
}

fn not_covered() -> SamlError {
    SamlError::invalid("the signed content is not the response's assertion")
}
