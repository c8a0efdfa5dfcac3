//! SSO connections' kinds: what the store keeps as a string, parsed once.

use crate::domain::DomainError;

/// The kind of a workspace SSO connection. The store keeps it as `saml` or
/// `oidc`; any other stored value is an error, never a guess.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SsoKind {
    Saml,
    Oidc,
}

impl SsoKind {
    /// The kind stored for a connection.
    pub fn parse(stored: &str) -> Result<Self, DomainError> {
        match stored {
            "saml" => Ok(SsoKind::Saml),
            "oidc" => Ok(SsoKind::Oidc),
            other => Err(DomainError::Invalid(format!(
                "kind: unknown SSO connection kind {other:?}"
            ))),
        }
    }

    /// What the store keeps.
    pub fn as_str(self) -> &'static str {
        match self {
            SsoKind::Saml => "saml",
            SsoKind::Oidc => "oidc",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_kinds_round_trip_and_anything_else_is_refused() {
        for k in [SsoKind::Saml, SsoKind::Oidc] {
            assert_eq!(SsoKind::parse(k.as_str()).unwrap(), k);
        }
        for bad in ["", "OIDC", "saml2", "ldap"] {
            let e = SsoKind::parse(bad).unwrap_err();
            assert!(e.to_string().contains("kind"), "{e}");
        }
    }
}
