//! The domain's one error enum; the web layer maps it to HTTP in one place.

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    #[error("{0}")]
    Invalid(String),
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    Conflict(String),
    /// Well-formed but unusable (422), e.g. IdP metadata without a signing certificate.
    #[error("{0}")]
    Unprocessable(String),
    #[error("not signed in")]
    Unauthenticated,
    #[error("{0}")]
    Forbidden(String),
    /// The workspace requires SSO through its IdP (the connection to use,
    /// when one is enabled) and this session did not come from it.
    #[error("This workspace requires signing in through its single sign-on (SSO).")]
    SsoRequired(Option<String>),
    /// The workspace requires a second factor this session has not used.
    #[error("This workspace requires two-factor authentication for this session.")]
    MfaRequired,
    #[error("a backing service is unavailable")]
    Unavailable(String),
    #[error("internal error")]
    Internal(String),
}

impl From<crate::store::StoreError> for DomainError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Conflict(what) => DomainError::Conflict(what),
            crate::store::StoreError::NotFound => DomainError::NotFound,
            crate::store::StoreError::Invalid(m) => DomainError::Invalid(m),
            crate::store::StoreError::Unavailable(m) => DomainError::Unavailable(m),
            crate::store::StoreError::Other(m) => DomainError::Internal(m),
        }
    }
}

impl From<crate::session::KvError> for DomainError {
    fn from(e: crate::session::KvError) -> Self {
        DomainError::Unavailable(e.to_string())
    }
}

impl From<crate::crypto::CryptoError> for DomainError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        DomainError::Internal(e.to_string())
    }
}
