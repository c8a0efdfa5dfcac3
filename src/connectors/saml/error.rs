//! Why a SAML input was refused, and the HTTP status the caller answers with.

/// Every refusal of the SAML core. `status()` is what the ACS or the
/// connection API answers; `reason()` is plain words for the refusal page
/// and the audit event (never secrets, never the raw message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SamlError {
    /// Not decodable or not a SAML message at all (400).
    #[error("malformed SAML message: {0}")]
    Malformed(String),
    /// A DOCTYPE (or any other DTD markup) was present; refused before any
    /// entity could be parsed (400).
    #[error("DOCTYPE refused")]
    DoctypeRefused,
    /// Larger than the accepted bound (413).
    #[error("SAML message larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// A well-formed message that fails validation: signature, conditions,
    /// audience, issuer, destination, request binding... (401).
    #[error("invalid SAML response: {0}")]
    Invalid(String),
    /// IdP metadata without any signing certificate: the connection cannot be
    /// created, since an ACS without a pinned certificate would not verify
    /// anything (422).
    #[error("the identity provider metadata has no signing certificate")]
    NoSigningCertificate,
    /// IdP metadata that parses but lacks what a connection needs (422).
    #[error("unusable identity provider metadata: {0}")]
    Metadata(String),
    /// A local failure, such as the random source (500).
    #[error("internal error: {0}")]
    Internal(String),
}

impl SamlError {
    /// The HTTP status the caller answers with.
    pub fn status(&self) -> u16 {
        match self {
            SamlError::Malformed(_) | SamlError::DoctypeRefused => 400,
            SamlError::TooLarge { .. } => 413,
            SamlError::Invalid(_) => 401,
            SamlError::NoSigningCertificate | SamlError::Metadata(_) => 422,
            SamlError::Internal(_) => 500,
        }
    }

    /// Plain words for the person in front of the browser and the audit log.
    pub fn reason(&self) -> String {
        match self {
            SamlError::Malformed(why) => format!("The SAML message could not be read: {why}."),
            SamlError::DoctypeRefused => {
                "The SAML message contains a document type declaration, which is never accepted."
                    .to_string()
            }
            SamlError::TooLarge { limit } => {
                format!("The SAML message is larger than the {limit} bytes accepted.")
            }
            SamlError::Invalid(why) => format!("The sign-in response was refused: {why}."),
            SamlError::NoSigningCertificate => {
                "The identity provider metadata has no signing certificate, so its responses \
                 could not be verified."
                    .to_string()
            }
            SamlError::Metadata(why) => {
                format!("The identity provider metadata cannot be used: {why}.")
            }
            SamlError::Internal(why) => format!("Internal error: {why}."),
        }
    }

    pub(crate) fn malformed(why: impl Into<String>) -> Self {
        SamlError::Malformed(why.into())
    }

    pub(crate) fn invalid(why: impl Into<String>) -> Self {
        SamlError::Invalid(why.into())
    }

    pub(crate) fn metadata(why: impl Into<String>) -> Self {
        SamlError::Metadata(why.into())
    }
}
