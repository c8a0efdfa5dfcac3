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
//! 3. [`super::dsig`] verifies every signature with the pinned
//!    certificates only (never the message's KeyInfo), digesting the very
//!    element that carries it; identity data is read from the signed
//!    Assertion (itself, or the one inside the signed Response) and nowhere
//!    else, by whole text content, so a comment cannot cut a value short.

use super::dsig::{
    self, algorithm, c14n_method, digest_method, only, signature_method, ENVELOPED, NS_EXC_C14N,
};
use super::xml::{self, NS_ASSERTION, NS_DSIG, NS_XML};
use super::SamlError;
use libxml::tree::{Document, Node};
use std::collections::{HashMap, HashSet};

/// The parts of a Response that the signature rules talk about.
pub struct Shape {
    assertion_id: String,
    response_signed: bool,
    /// The signatures, each checked by layer 2 (one or two).
    signatures: Vec<Node>,
    assertion: Node,
}

/// The verified content: the one Assertion, covered by a signature.
pub struct Signed {
    pub assertion: Node,
    pub response_signed: bool,
}

/// The most elements a response may hold: a SAML response with a few
/// hundred attribute values has a few hundred elements.
pub const MAX_ELEMENTS: usize = 10_000;
/// The most namespace declarations in scope at any one element (its own and
/// its ancestors'). Real responses have a handful. Canonicalization visits
/// every in-scope declaration at every element of the document, squared in
/// its inclusive forms, so thousands of declarations would cost a posted
/// response, signed or not, minutes of CPU.
pub const MAX_NAMESPACES_IN_SCOPE: usize = 32;
/// What the inclusive canonicalizations may cost, counted as libxml2 works:
/// at every element of the document (signed or not) it walks the element's
/// ancestors and, for each namespace in scope, looks it up and asks the
/// visibility callback, which walk up again. The sum over all elements of
/// depth × (1 + namespaces in scope) bounds that. A response with a few
/// hundred attribute values counts a few thousand; 250 nested levels under
/// 32 declarations with 9 700 leaves counted 80 million and took 0.35 s a
/// pass. This bound is about 2 ms a pass.
pub const MAX_C14N_WORK: usize = 500_000;

/// Bounds what canonicalizing `elements` can cost, before any of it runs.
fn check_size(elements: &[Node]) -> Result<(), SamlError> {
    if elements.len() > MAX_ELEMENTS {
        return Err(SamlError::malformed(format!(
            "the response holds more than {MAX_ELEMENTS} elements"
        )));
    }
    // Document order: a parent's counts are known before its children's:
    // (namespaces in scope, depth).
    let mut seen: HashMap<usize, (usize, usize)> = HashMap::with_capacity(elements.len());
    let mut work = 0usize;
    for node in elements {
        let ptr = node.node_ptr();
        // SAFETY: read-only walks of a live element's namespace list and
        // parent pointer.
        let (own, parent) = unsafe {
            let mut own = 0;
            let mut ns = (*ptr).nsDef;
            while !ns.is_null() {
                own += 1;
                ns = (*ns).next;
            }
            (own, (*ptr).parent as usize)
        };
        let (above, parent_depth) = seen.get(&parent).copied().unwrap_or((0, 0));
        let (total, depth) = (own + above, parent_depth + 1);
        if total > MAX_NAMESPACES_IN_SCOPE {
            return Err(SamlError::malformed(format!(
                "the response declares more than {MAX_NAMESPACES_IN_SCOPE} namespaces in one scope"
            )));
        }
        work = work.saturating_add(depth.saturating_mul(1 + total));
        if work > MAX_C14N_WORK {
            return Err(SamlError::malformed(
                "the response is nested too deeply for its size",
            ));
        }
        seen.insert(ptr as usize, (total, depth));
    }
    Ok(())
}

/// Layers 1 and 2, on the whole received document.
pub fn check_shape(root: &Node) -> Result<Shape, SamlError> {
    let mut assertions = Vec::new();
    let mut signatures = Vec::new();
    let mut ids = HashSet::new();
    let elements = xml::descendants(root);
    check_size(&elements)?;
    for node in elements {
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
        assertion_id,
        response_signed,
        signatures,
        assertion,
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
    if c14n_method(&algorithm(&kids[0])).is_none() {
        return Err(SamlError::invalid(
            "the signature uses an unsupported canonicalization",
        ));
    }
    let method = algorithm(&kids[1]);
    if signature_method(&method).is_none() || !kids[1].get_child_elements().is_empty() {
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
                    || !(alg == ENVELOPED || c14n_method(&alg).is_some())
                    || !inner_ok
                {
                    return Err(SamlError::invalid(format!(
                        "the signature transform {alg} is not accepted"
                    )));
                }
            }
        } else if xml::is(&child, NS_DSIG, "DigestMethod") {
            let alg = algorithm(&child);
            if digest_method(&alg).is_none() {
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

/// Layer 3: every signature verifies with a pinned certificate, over the
/// element that carries it; the assertion read is the signed one.
pub fn verify(doc: &Document, shape: Shape, certs_der: &[Vec<u8>]) -> Result<Signed, SamlError> {
    if certs_der.is_empty() {
        return Err(SamlError::invalid(
            "the connection has no pinned signing certificate",
        ));
    }
    let keys = dsig::keys_for(certs_der)?;
    if shape.signatures.is_empty() {
        return Err(not_covered());
    }
    for sig in &shape.signatures {
        dsig::verify_enveloped(doc, sig, &keys)?;
    }
    if xml::attr(&shape.assertion, "ID").as_deref() != Some(shape.assertion_id.as_str()) {
        return Err(not_covered());
    }
    Ok(Signed {
        assertion: shape.assertion,
        response_signed: shape.response_signed,
    })
}

fn not_covered() -> SamlError {
    SamlError::invalid("the signed content is not the response's assertion")
}
