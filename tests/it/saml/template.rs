//! SAML Response templates with every field a test may want to change, and
//! the signing of them by `xmlsec1`.

use super::idp::*;

/// One Response with one Assertion; `Resp::new()` is a valid answer to
/// `REQ_ID` for alice@corp.test.
#[derive(Clone, Debug)]
pub struct Resp {
    pub response_id: String,
    pub assertion_id: String,
    pub destination: Option<String>,
    pub response_in_response_to: Option<String>,
    pub response_issuer: Option<String>,
    pub status: String,
    pub issuer: String,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub recipient: String,
    pub scd_in_response_to: Option<String>,
    pub scd_not_on_or_after: i64,
    pub not_before: i64,
    pub not_on_or_after: i64,
    /// Empty: no AudienceRestriction at all.
    pub audiences: Vec<String>,
    pub attributes: Vec<(String, Vec<String>)>,
    pub session_index: Option<String>,
}

impl Resp {
    pub fn new() -> Self {
        Resp {
            response_id: "_resp-1".into(),
            assertion_id: "_assertion-1".into(),
            destination: Some(ACS.into()),
            response_in_response_to: Some(REQ_ID.into()),
            response_issuer: Some(IDP_ENTITY.into()),
            status: "urn:oasis:names:tc:SAML:2.0:status:Success".into(),
            issuer: IDP_ENTITY.into(),
            name_id: "alice@corp.test".into(),
            name_id_format: Some(EMAIL_FMT.into()),
            recipient: ACS.into(),
            scd_in_response_to: Some(REQ_ID.into()),
            scd_not_on_or_after: NOW + 300,
            not_before: NOW - 30,
            not_on_or_after: NOW + 600,
            audiences: vec![SP_ENTITY.into()],
            attributes: vec![
                ("displayName".into(), vec!["Alice Example".into()]),
                ("groups".into(), vec!["engineering".into(), "admins".into()]),
            ],
            session_index: Some("_session-1".into()),
        }
    }

    /// For IdP-initiated sign-in: no InResponseTo anywhere.
    pub fn unsolicited() -> Self {
        Resp {
            response_in_response_to: None,
            scd_in_response_to: None,
            ..Resp::new()
        }
    }

    /// The Assertion element, with `sig` (a template or a signature) after
    /// its Issuer.
    pub fn assertion(&self, sig: &str) -> String {
        let opt = |name: &str, v: &Option<String>| {
            v.as_ref()
                .map(|v| format!(" {name}=\"{v}\""))
                .unwrap_or_default()
        };
        let audience = if self.audiences.is_empty() {
            String::new()
        } else {
            let list: String = self
                .audiences
                .iter()
                .map(|a| format!("<saml:Audience>{a}</saml:Audience>"))
                .collect();
            format!("<saml:AudienceRestriction>{list}</saml:AudienceRestriction>")
        };
        let attributes: String = self
            .attributes
            .iter()
            .map(|(name, values)| {
                let vs: String = values
                    .iter()
                    .map(|v| format!("<saml:AttributeValue>{v}</saml:AttributeValue>"))
                    .collect();
                format!("<saml:Attribute Name=\"{name}\">{vs}</saml:Attribute>")
            })
            .collect();
        let attribute_statement = if attributes.is_empty() {
            String::new()
        } else {
            format!("<saml:AttributeStatement>{attributes}</saml:AttributeStatement>")
        };
        format!(
            concat!(
                "<saml:Assertion ID=\"{id}\" Version=\"2.0\" IssueInstant=\"{now}\">",
                "<saml:Issuer>{issuer}</saml:Issuer>{sig}",
                "<saml:Subject><saml:NameID{fmt}>{name_id}</saml:NameID>",
                "<saml:SubjectConfirmation Method=\"urn:oasis:names:tc:SAML:2.0:cm:bearer\">",
                "<saml:SubjectConfirmationData{irt} NotOnOrAfter=\"{scd_noa}\" Recipient=\"{recipient}\"/>",
                "</saml:SubjectConfirmation></saml:Subject>",
                "<saml:Conditions NotBefore=\"{nb}\" NotOnOrAfter=\"{noa}\">{audience}</saml:Conditions>",
                "<saml:AuthnStatement AuthnInstant=\"{now}\"{session}><saml:AuthnContext>",
                "<saml:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport</saml:AuthnContextClassRef>",
                "</saml:AuthnContext></saml:AuthnStatement>{attributes}</saml:Assertion>"
            ),
            id = self.assertion_id,
            now = t(0),
            issuer = self.issuer,
            sig = sig,
            fmt = opt("Format", &self.name_id_format),
            name_id = self.name_id,
            irt = opt("InResponseTo", &self.scd_in_response_to),
            scd_noa = rfc(self.scd_not_on_or_after),
            recipient = self.recipient,
            nb = rfc(self.not_before),
            noa = rfc(self.not_on_or_after),
            audience = audience,
            session = opt("SessionIndex", &self.session_index),
            attributes = attribute_statement,
        )
    }

    /// The Response element around `inner` (assertions and anything else),
    /// with `sig` after its Issuer.
    pub fn response(&self, sig: &str, inner: &str) -> String {
        let opt = |name: &str, v: &Option<String>| {
            v.as_ref()
                .map(|v| format!(" {name}=\"{v}\""))
                .unwrap_or_default()
        };
        let issuer = self
            .response_issuer
            .as_ref()
            .map(|i| format!("<saml:Issuer>{i}</saml:Issuer>"))
            .unwrap_or_default();
        format!(
            concat!(
                "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" ",
                "xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"{id}\" Version=\"2.0\" ",
                "IssueInstant=\"{now}\"{dest}{irt}>{issuer}{sig}",
                "<samlp:Status><samlp:StatusCode Value=\"{status}\"/></samlp:Status>{inner}</samlp:Response>"
            ),
            id = self.response_id,
            now = t(0),
            dest = opt("Destination", &self.destination),
            irt = opt("InResponseTo", &self.response_in_response_to),
            issuer = issuer,
            sig = sig,
            status = self.status,
            inner = inner,
        )
    }

    /// The Response signed as `what` by the real IdP key (RSA-SHA256).
    pub fn signed(&self, what: Sign) -> String {
        self.signed_by(what, &Signer::idp())
    }

    /// The Response signed as `what` by `s`, through `xmlsec1`.
    pub fn signed_by(&self, what: Sign, s: &Signer) -> String {
        let a_tmpl = sig_template(&format!("#{}", self.assertion_id), s);
        let r_tmpl = sig_template(&format!("#{}", self.response_id), s);
        match what {
            Sign::Nothing => self.response("", &self.assertion("")),
            Sign::Assertion => xmlsec_sign(&self.response("", &self.assertion(&a_tmpl)), s),
            Sign::Response => xmlsec_sign(&self.response(&r_tmpl, &self.assertion("")), s),
            Sign::Both => {
                let inner = xmlsec_sign(&self.response("", &self.assertion(&a_tmpl)), s);
                let signed_assertion = cut(&inner, "<saml:Assertion", "</saml:Assertion>");
                xmlsec_sign(&self.response(&r_tmpl, signed_assertion), s)
            }
        }
    }

    /// Only the signed Assertion element (signed by the real IdP).
    pub fn signed_assertion(&self) -> String {
        let signed = self.signed(Sign::Assertion);
        cut(&signed, "<saml:Assertion", "</saml:Assertion>").to_string()
    }
}

fn rfc(unix: i64) -> String {
    iam_gateway::clock::rfc3339(unix)
}
