//! The ACS validator: a base64 `SAMLResponse` in, a validated assertion or
//! a refusal out. Fails closed: anything not positively accepted is refused.

use super::assertion;
use super::signature;
use super::xml::{self, NS_ASSERTION, NS_PROTOCOL};
use super::{Expectations, SamlError, ValidatedAssertion};
use libxml::tree::Node;

/// The largest `SAMLResponse` form value accepted (base64 text).
pub const MAX_RESPONSE_B64_LEN: usize = 512 * 1024;

const SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";

/// Validates a `SAMLResponse` from the HTTP-POST binding against what this
/// SP expects. The caller still owns the replay cache (a replayed Response
/// is refused):
/// remember `issuer` + `assertion_id` until `not_on_or_after`.
pub fn validate_response(
    saml_response_b64: &str,
    exp: &Expectations,
) -> Result<ValidatedAssertion, SamlError> {
    if saml_response_b64.len() > MAX_RESPONSE_B64_LEN {
        return Err(SamlError::TooLarge {
            limit: MAX_RESPONSE_B64_LEN,
        });
    }
    let bytes = xml::base64_decode(saml_response_b64)
        .ok_or_else(|| SamlError::malformed("the SAMLResponse is not base64"))?;
    let text = xml::prepare(&bytes)?;
    let doc = xml::parse(&text)?;
    let root = xml::root(&doc)?;
    if !xml::is(&root, NS_PROTOCOL, "Response") {
        return Err(SamlError::malformed("the message is not a SAML Response"));
    }
    if xml::attr(&root, "Version").as_deref() != Some("2.0") {
        return Err(SamlError::invalid("the response is not SAML 2.0"));
    }
    check_status(&root)?;

    let shape = signature::check_shape(&root)?;
    let signed = signature::verify(&doc, shape, &exp.idp.signing_certs_der)?;

    // Response-level fields only restrict: when the Response itself is not
    // signed they cannot add anything, and the identity comes from the
    // signed assertion below.
    check_destination(&root, signed.response_signed, exp)?;
    if let Some(issuer) = xml::single_child(&root, NS_ASSERTION, "Issuer")? {
        assertion::check_issuer(&issuer, exp, "response")?;
    }
    if let Some(irt) = xml::attr(&root, "InResponseTo") {
        assertion::check_in_response_to(Some(&irt), exp)?;
    }

    let facts = assertion::read(&signed.assertion, exp)?;
    Ok(ValidatedAssertion {
        issuer: facts.issuer,
        assertion_id: facts.assertion_id,
        not_on_or_after: facts.not_on_or_after,
        in_response_to: facts.in_response_to,
        name_id: facts.name_id,
        name_id_format: facts.name_id_format,
        subject_key: facts.subject_key,
        email: facts.email,
        name: facts.name,
        groups: facts.groups,
        session_index: facts.session_index,
        attributes: facts.attributes,
    })
}

fn check_status(root: &Node) -> Result<(), SamlError> {
    let code = xml::single_child(root, NS_PROTOCOL, "Status")?
        .map(|status| xml::single_child(&status, NS_PROTOCOL, "StatusCode"))
        .transpose()?
        .flatten()
        .and_then(|code| xml::attr(&code, "Value"));
    match code.as_deref() {
        Some(SUCCESS) => Ok(()),
        Some(other) => Err(SamlError::invalid(format!(
            "the identity provider reported {other}"
        ))),
        None => Err(SamlError::invalid("the response has no status")),
    }
}

/// Destination must be this ACS URL; it is required when the Response is
/// signed (SAML bindings 3.5.5.2) and checked whenever present.
fn check_destination(
    root: &Node,
    response_signed: bool,
    exp: &Expectations,
) -> Result<(), SamlError> {
    match xml::attr(root, "Destination") {
        Some(d) if d == exp.sp.acs_url => Ok(()),
        Some(_) => Err(SamlError::invalid(
            "the response is addressed to another destination",
        )),
        None if response_signed => Err(SamlError::invalid(
            "the signed response names no destination",
        )),
        None => Ok(()),
    }
}
