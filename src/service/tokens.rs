//! Rules for API tokens and policies.

use crate::domain::roles::{self, Policy};
use crate::domain::DomainError;

/// Validates a list of policies against the catalog.
pub fn check_policies(policies: &[Policy]) -> Result<(), DomainError> {
    for p in policies {
        p.validate().map_err(DomainError::Invalid)?;
    }
    Ok(())
}

/// An API token's policies: valid, and including Workspace Owner or
/// Workspace Member (the roles the management API reads).
pub fn check_token_policies(policies: &[Policy]) -> Result<(), DomainError> {
    check_policies(policies)?;
    if !policies
        .iter()
        .any(|p| p.role == roles::WORKSPACE_OWNER || p.role == roles::WORKSPACE_MEMBER)
    {
        return Err(DomainError::Invalid(
            "an API token needs the workspace_owner or workspace_member role".into(),
        ));
    }
    Ok(())
}
