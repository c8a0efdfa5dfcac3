//! Checks on the signed Assertion and the identity read from it: the whole
//! text of the NameID (a comment inside never truncates it), the validity
//! window with a small skew, Recipient/Destination, InResponseTo, Audience
//! and Issuer, then the attribute mapping.
//! Every value here comes from the signed content only.

use super::xml::{self, NS_ASSERTION};
use super::{Expectations, SamlError};
use libxml::tree::Node;

const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
const ENTITY_FORMAT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:entity";
pub const EMAIL_FORMAT: &str = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress";
const TRANSIENT_FORMAT: &str = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient";

const EMAIL_ATTRIBUTES: &[&str] = &[
    "email",
    "mail",
    "urn:oid:0.9.2342.19200300.100.1.3",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
];
const NAME_ATTRIBUTES: &[&str] = &["displayName", "name", "urn:oid:2.16.840.1.113730.3.1.241"];
const DEFAULT_GROUP_ATTRIBUTE: &str = "groups";

/// What the signed Assertion says, once every check passed.
pub struct Facts {
    pub issuer: String,
    pub assertion_id: String,
    pub not_on_or_after: i64,
    pub in_response_to: Option<String>,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub subject_key: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub session_index: Option<String>,
    /// Every attribute of the assertion: (name, values), in document order.
    pub attributes: Vec<(String, Vec<String>)>,
}

fn child(node: &Node, local: &str) -> Result<Option<Node>, SamlError> {
    xml::single_child(node, NS_ASSERTION, local)
}

fn required(node: &Node, local: &str) -> Result<Node, SamlError> {
    child(node, local)?.ok_or_else(|| SamlError::invalid(format!("the assertion has no {local}")))
}

/// An `xs:dateTime` as Unix seconds (fractions dropped).
pub fn instant(value: &str, what: &str) -> Result<i64, SamlError> {
    time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| SamlError::invalid(format!("{what} is not a valid time")))
}

fn time_attr(node: &Node, name: &str, what: &str) -> Result<Option<i64>, SamlError> {
    xml::attr(node, name)
        .map(|v| instant(&v, &format!("{what} {name}")))
        .transpose()
}

/// `NotBefore` / `NotOnOrAfter` of `node` against `now`, with the skew.
/// Returns `NotOnOrAfter` when present.
fn window(node: &Node, exp: &Expectations, what: &str) -> Result<Option<i64>, SamlError> {
    let skew = skew(exp);
    if let Some(nb) = time_attr(node, "NotBefore", what)? {
        if exp.now.saturating_add(skew) < nb {
            return Err(SamlError::invalid(format!("{what} is not valid yet")));
        }
    }
    let noa = time_attr(node, "NotOnOrAfter", what)?;
    if let Some(noa) = noa {
        if exp.now.saturating_sub(skew) >= noa {
            return Err(SamlError::invalid(format!("{what} has expired")));
        }
    }
    Ok(noa)
}

/// The configured clock skew; a negative one counts as none.
fn skew(exp: &Expectations) -> i64 {
    exp.clock_skew_secs.max(0)
}

/// An Issuer element equal to the connection's IdP entity id.
pub fn check_issuer(issuer: &Node, exp: &Expectations, what: &str) -> Result<String, SamlError> {
    let format = xml::attr(issuer, "Format");
    let value = xml::text(issuer).unwrap_or_default();
    if value != exp.idp.entity_id || format.is_some_and(|f| f != ENTITY_FORMAT) {
        return Err(SamlError::invalid(format!(
            "the {what} issuer is not this connection's identity provider"
        )));
    }
    Ok(value)
}

/// InResponseTo against the request this browser made (`None` means none):
/// returns the value to report.
pub fn check_in_response_to(
    found: Option<&str>,
    exp: &Expectations,
) -> Result<Option<String>, SamlError> {
    match (exp.in_response_to, found) {
        (Some(expected), Some(got)) if got == expected => Ok(Some(got.to_string())),
        (Some(_), Some(_)) => Err(SamlError::invalid(
            "the response answers a request this browser did not make",
        )),
        (Some(_), None) => Err(SamlError::invalid(
            "the response does not say which request it answers",
        )),
        (None, Some(_)) => Err(SamlError::invalid(
            "the response answers a request this browser did not make",
        )),
        (None, None) if exp.allow_idp_initiated => Ok(None),
        (None, None) => Err(SamlError::invalid(
            "unsolicited responses are not enabled for this connection",
        )),
    }
}

/// Validates the signed assertion and reads the identity from it.
pub fn read(assertion: &Node, exp: &Expectations) -> Result<Facts, SamlError> {
    if xml::attr(assertion, "Version").as_deref() != Some("2.0") {
        return Err(SamlError::invalid("the assertion is not SAML 2.0"));
    }
    let assertion_id = xml::attr(assertion, "ID").unwrap_or_default();
    let issuer = check_issuer(&required(assertion, "Issuer")?, exp, "assertion")?;

    let conditions = required(assertion, "Conditions")?;
    let conditions_noa = check_conditions(&conditions, exp)?;

    let subject = required(assertion, "Subject")?;
    let (confirmation_noa, in_response_to) = check_confirmations(&subject, exp)?;
    let name_id_node = child(&subject, "NameID")?
        .ok_or_else(|| SamlError::invalid("the subject has no NameID"))?;
    let name_id = xml::text(&name_id_node)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| SamlError::invalid("the NameID is empty or not plain text"))?;
    let name_id_format = xml::attr(&name_id_node, "Format");

    let authn = xml::children(assertion, NS_ASSERTION, "AuthnStatement");
    let first_authn = authn
        .first()
        .ok_or_else(|| SamlError::invalid("the assertion has no AuthnStatement"))?;
    for statement in &authn {
        if let Some(end) = time_attr(statement, "SessionNotOnOrAfter", "the session")? {
            if exp.now.saturating_sub(skew(exp)) >= end {
                return Err(SamlError::invalid(
                    "the identity provider session has expired",
                ));
            }
        }
    }
    let session_index = xml::attr(first_authn, "SessionIndex");

    let attributes = Attributes::read(assertion);
    let email = if name_id_format.as_deref() == Some(EMAIL_FORMAT) {
        Some(name_id.clone())
    } else if let Some(configured) = exp.email_attribute {
        attributes.first(configured)
    } else {
        EMAIL_ATTRIBUTES.iter().find_map(|n| attributes.first(n))
    };
    if let Some(e) = &email {
        if !looks_like_email(e) {
            return Err(SamlError::invalid("the email address is not valid"));
        }
    }
    let name = match exp.name_attribute {
        Some(configured) => attributes.first(configured),
        None => NAME_ATTRIBUTES.iter().find_map(|n| attributes.first(n)),
    };
    let groups = attributes.all(exp.group_attribute.unwrap_or(DEFAULT_GROUP_ATTRIBUTE));

    let subject_key = if name_id_format.as_deref() == Some(TRANSIENT_FORMAT) {
        email.clone().ok_or_else(|| {
            SamlError::invalid("the NameID is transient and no email identifies the person")
        })?
    } else {
        name_id.clone()
    };

    // The assertion stops being acceptable at the earlier NotOnOrAfter
    // (plus the skew): the replay cache must hold it at least that long.
    let not_on_or_after = match conditions_noa {
        Some(c) => c.min(confirmation_noa),
        None => confirmation_noa,
    }
    .saturating_add(skew(exp));

    Ok(Facts {
        issuer,
        assertion_id,
        not_on_or_after,
        in_response_to,
        name_id,
        name_id_format,
        subject_key,
        email,
        name,
        groups,
        session_index,
        attributes: attributes.0,
    })
}

/// Time window and audience; any condition we cannot evaluate refuses.
fn check_conditions(conditions: &Node, exp: &Expectations) -> Result<Option<i64>, SamlError> {
    let noa = window(conditions, exp, "the assertion")?;
    let mut restrictions = 0;
    for c in conditions.get_child_elements() {
        if xml::is(&c, NS_ASSERTION, "AudienceRestriction") {
            restrictions += 1;
            let ours = xml::children(&c, NS_ASSERTION, "Audience")
                .iter()
                .any(|a| xml::text(a).as_deref() == Some(exp.sp.entity_id.as_str()));
            if !ours {
                return Err(SamlError::invalid(
                    "the assertion is meant for another service",
                ));
            }
        } else if !(xml::is(&c, NS_ASSERTION, "OneTimeUse")
            || xml::is(&c, NS_ASSERTION, "ProxyRestriction"))
        {
            return Err(SamlError::invalid(
                "the assertion has a condition that is not understood",
            ));
        }
    }
    if restrictions == 0 {
        return Err(SamlError::invalid("the assertion names no audience"));
    }
    Ok(noa)
}

/// Every bearer SubjectConfirmation must hold (and one must exist):
/// Recipient is the ACS URL, the window is open, InResponseTo matches.
/// Returns the earliest NotOnOrAfter and the InResponseTo value.
fn check_confirmations(
    subject: &Node,
    exp: &Expectations,
) -> Result<(i64, Option<String>), SamlError> {
    let mut earliest: Option<i64> = None;
    let mut in_response_to = None;
    for sc in xml::children(subject, NS_ASSERTION, "SubjectConfirmation") {
        if xml::attr(&sc, "Method").as_deref() != Some(BEARER) {
            continue;
        }
        let data = child(&sc, "SubjectConfirmationData")?
            .ok_or_else(|| SamlError::invalid("the subject confirmation has no data"))?;
        if xml::attr(&data, "Recipient").as_deref() != Some(exp.sp.acs_url.as_str()) {
            return Err(SamlError::invalid(
                "the assertion is addressed to another recipient",
            ));
        }
        let noa = window(&data, exp, "the subject confirmation")?
            .ok_or_else(|| SamlError::invalid("the subject confirmation has no NotOnOrAfter"))?;
        in_response_to = check_in_response_to(xml::attr(&data, "InResponseTo").as_deref(), exp)?;
        earliest = Some(earliest.map_or(noa, |e: i64| e.min(noa)));
    }
    let earliest =
        earliest.ok_or_else(|| SamlError::invalid("the subject has no bearer confirmation"))?;
    Ok((earliest, in_response_to))
}

fn looks_like_email(value: &str) -> bool {
    let mut parts = value.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Attribute values by Name, in document order, across AttributeStatements.
struct Attributes(Vec<(String, Vec<String>)>);

impl Attributes {
    fn read(assertion: &Node) -> Self {
        let mut out = Vec::new();
        for statement in xml::children(assertion, NS_ASSERTION, "AttributeStatement") {
            for attribute in xml::children(&statement, NS_ASSERTION, "Attribute") {
                let Some(name) = xml::attr(&attribute, "Name") else {
                    continue;
                };
                let values = xml::children(&attribute, NS_ASSERTION, "AttributeValue")
                    .iter()
                    .filter_map(xml::text)
                    .filter(|v| !v.is_empty())
                    .collect();
                out.push((name, values));
            }
        }
        Attributes(out)
    }

    fn first(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .find_map(|(_, v)| v.first().cloned())
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .flat_map(|(_, v)| v.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_parse_with_and_without_fractions() {
        assert_eq!(instant("1970-01-01T00:01:00Z", "t").unwrap(), 60);
        assert_eq!(instant("1970-01-01T00:01:00.999Z", "t").unwrap(), 60);
        assert!(instant("yesterday", "t").is_err());
    }

    #[test]
    fn email_shape() {
        assert!(looks_like_email("a@corp.test"));
        assert!(!looks_like_email("a@b@corp.test"));
        assert!(!looks_like_email("a b@corp.test"));
        assert!(!looks_like_email("@corp.test"));
        assert!(!looks_like_email("a@corp"));
    }
}
