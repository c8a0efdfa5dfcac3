//! SAML 2.0 service provider core: IdP metadata, SP metadata, AuthnRequest
//! (HTTP-Redirect) and a fail-closed Response validator (HTTP-POST).
//!
//! Pure library code: the caller wires routes and cookies, keeps the request
//! id server-side, and owns the replay cache (the same Response twice is
//! refused, on every instance) keyed on
//! [`ValidatedAssertion::issuer`] + [`ValidatedAssertion::assertion_id`]
//! until [`ValidatedAssertion::not_on_or_after`].
//!
//! * [`xml`]: the single parser (libxml2) and the DTD gate; [`native`]:
//!   libxml2's set-up;
//! * [`signature`]: which signature counts and what it covers (XSW defence);
//!   [`dsig`]: the cryptography (libxml2's C14N, OpenSSL), on the same tree;
//! * [`assertion`]: conditions, confirmation, issuer, attribute mapping;
//! * [`response`]: [`validate_response`], the ACS entry point;
//! * [`metadata`], [`request`]: metadata in and out, the AuthnRequest.
//!
//! Not supported (refused, never ignored): EncryptedAssertion, EncryptedID,
//! DTDs, signatures other than RSA/ECDSA with SHA-256 or better.

mod assertion;
mod dsig;
mod error;
mod metadata;
mod native;
mod request;
mod response;
mod signature;
mod xml;

pub use error::SamlError;
pub use metadata::{
    certificate_facts, parse_idp_metadata, parse_signing_certificate, sp_metadata_xml,
    CertificateFacts, MAX_METADATA_LEN,
};
pub use request::{authn_request_redirect, MAX_RELAY_STATE_LEN};
pub use response::{validate_response, MAX_RESPONSE_B64_LEN};

/// What a SAML connection pins about its IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    pub entity_id: String,
    /// The HTTP-Redirect SingleSignOnService location.
    pub sso_url: String,
    /// DER certificates; only these verify responses (never a KeyInfo).
    pub signing_certs_der: Vec<Vec<u8>>,
}

/// This connection as an SP: each connection is its own SP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpSettings {
    /// `{public_url}/sso/saml/{id}/metadata`
    pub entity_id: String,
    /// `{public_url}/sso/saml/{id}/acs`
    pub acs_url: String,
}

/// What the ACS expects of one response.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    pub sp: &'a SpSettings,
    pub idp: &'a IdpMetadata,
    /// The request id kept for this browser; `None` = unsolicited.
    pub in_response_to: Option<&'a str>,
    /// Whether unsolicited (IdP-initiated) responses are accepted.
    pub allow_idp_initiated: bool,
    /// Unix seconds.
    pub now: i64,
    pub clock_skew_secs: i64,
    pub email_attribute: Option<&'a str>,
    pub name_attribute: Option<&'a str>,
    /// Default `groups`.
    pub group_attribute: Option<&'a str>,
}

/// The identity a valid response carries, all read from signed content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatedAssertion {
    pub issuer: String,
    pub assertion_id: String,
    /// Unix seconds after which the assertion is no longer accepted (the
    /// earliest NotOnOrAfter plus the skew): the replay cache keeps
    /// `issuer` + `assertion_id` until then.
    pub not_on_or_after: i64,
    pub in_response_to: Option<String>,
    /// The whole text content of the NameID.
    pub name_id: String,
    pub name_id_format: Option<String>,
    /// The NameID, or the email when the NameID is transient.
    pub subject_key: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub groups: Vec<String>,
    pub session_index: Option<String>,
    /// Every attribute the assertion carried: (name, values).
    pub attributes: Vec<(String, Vec<String>)>,
}
