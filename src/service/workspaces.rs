//! A person's workspaces, as `/api/v1/me` shows them.

use super::Core;
use crate::domain::model::Workspace;
use crate::domain::roles::Policy;
use crate::domain::DomainError;

/// One workspace of a person: their own policies there and their effective
/// ones (own and through groups).
pub struct Membership {
    pub workspace: Workspace,
    pub policies: Vec<Policy>,
    pub effective: Vec<Policy>,
}

/// The workspaces `user_id` is a member of.
pub async fn of_user(core: &Core, user_id: &str) -> Result<Vec<Membership>, DomainError> {
    let mut out = Vec::new();
    for w in core.store.workspaces_of_user(user_id).await? {
        let effective = core
            .store
            .effective_access(&w.workspace.id, user_id)
            .await?
            .unwrap_or_default()
            .all();
        out.push(Membership {
            workspace: w.workspace,
            policies: w.policies,
            effective,
        });
    }
    Ok(out)
}
