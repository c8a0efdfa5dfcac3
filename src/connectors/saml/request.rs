//! SP-initiated sign-in: an AuthnRequest sent with the HTTP-Redirect binding.

use super::xml::{self, NS_ASSERTION, NS_PROTOCOL};
use super::{IdpMetadata, SamlError, SpSettings};
use crate::clock::{Clock, SystemClock};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use flate2::write::DeflateEncoder;
use flate2::Compression;
use std::io::Write;

const HTTP_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";
/// SAML bindings 3.4.3: RelayState MUST NOT exceed 80 bytes.
pub const MAX_RELAY_STATE_LEN: usize = 80;

/// Builds the redirect to the IdP and returns it with the request id, which
/// the caller keeps server-side (single use, bound to the browser) and
/// later passes as `Expectations::in_response_to`. The id carries 128
/// random bits: `_` followed by 32 lowercase hex digits.
pub fn authn_request_redirect(
    sp: &SpSettings,
    idp: &IdpMetadata,
    relay_state: Option<&str>,
) -> Result<(String, String), SamlError> {
    if relay_state.is_some_and(|r| r.len() > MAX_RELAY_STATE_LEN) {
        return Err(SamlError::malformed(format!(
            "RelayState is longer than {MAX_RELAY_STATE_LEN} bytes"
        )));
    }
    let random =
        crate::crypto::random_bytes::<16>().map_err(|e| SamlError::Internal(e.to_string()))?;
    let id = format!("_{}", crate::crypto::hex(&random));
    let xml = authn_request_xml(sp, idp, &id, &crate::clock::rfc3339(SystemClock.now()));

    let mut deflate = DeflateEncoder::new(Vec::new(), Compression::default());
    deflate
        .write_all(xml.as_bytes())
        .map_err(|e| SamlError::Internal(e.to_string()))?;
    let deflated = deflate
        .finish()
        .map_err(|e| SamlError::Internal(e.to_string()))?;

    let mut url = url::Url::parse(&idp.sso_url)
        .map_err(|_| SamlError::metadata("the SingleSignOnService URL is not a URL"))?;
    {
        let mut query = url.query_pairs_mut();
        query.append_pair("SAMLRequest", &STANDARD.encode(deflated));
        if let Some(rs) = relay_state {
            query.append_pair("RelayState", rs);
        }
    }
    Ok((url.into(), id))
}

fn authn_request_xml(sp: &SpSettings, idp: &IdpMetadata, id: &str, issue_instant: &str) -> String {
    format!(
        concat!(
            "<samlp:AuthnRequest xmlns:samlp=\"{p}\" xmlns:saml=\"{a}\" ID=\"{id}\" ",
            "Version=\"2.0\" IssueInstant=\"{instant}\" Destination=\"{dest}\" ",
            "AssertionConsumerServiceURL=\"{acs}\" ProtocolBinding=\"{post}\">",
            "<saml:Issuer>{issuer}</saml:Issuer>",
            "<samlp:NameIDPolicy AllowCreate=\"true\"/>",
            "</samlp:AuthnRequest>"
        ),
        p = NS_PROTOCOL,
        a = NS_ASSERTION,
        id = id,
        instant = issue_instant,
        dest = xml::escape(&idp.sso_url),
        acs = xml::escape(&sp.acs_url),
        post = HTTP_POST,
        issuer = xml::escape(&sp.entity_id),
    )
}
