//! The access-management half of the store: groups, invitations, tokens,
//! resources, linked identities, member listing and the audit log.

use super::StoreResult;
use crate::domain::model::{
    ApiToken, AuditEvent, EffectiveAccess, Group, Invitation, MemberRow, Resource,
};
use crate::domain::roles::Policy;
use async_trait::async_trait;

/// Filters for the member list.
#[derive(Debug, Clone, Default)]
pub struct MemberFilter {
    /// Substring of the email (case-insensitive).
    pub email: Option<String>,
    /// A role id among the direct policies.
    pub role: Option<String>,
    pub group_id: Option<String>,
    /// Include open invitations.
    pub include_invited: bool,
}

/// Filters for the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// The actor's id or email, exactly.
    pub actor_id: Option<String>,
    pub action: Option<String>,
    /// Any of these targets, exactly (empty: any target).
    pub targets: Vec<String>,
    pub since: Option<i64>,
    pub until: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub workspace_id: String,
    pub email: String,
    pub token_hash: String,
    pub policies: Vec<Policy>,
    pub group_ids: Vec<String>,
    pub invited_by: Option<String>,
    pub now: i64,
    pub expires_at: i64,
}

#[async_trait]
pub trait AccessStore: Send + Sync + 'static {
    /// A member's own policies and their groups' (None: not a member).
    async fn effective_access(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> StoreResult<Option<EffectiveAccess>>;
    /// Members (and open invitations) ordered by email, after `cursor`
    /// (the last row's sort key), at most `limit`.
    async fn list_members(
        &self,
        workspace_id: &str,
        filter: &MemberFilter,
        cursor: Option<&str>,
        limit: i64,
        now: i64,
    ) -> StoreResult<Vec<(String, MemberRow)>>;
    /// Every member and open invitation of a workspace in the order of
    /// [`Self::list_members`], read as one stream and one snapshot (the
    /// members CSV).
    fn member_stream(
        &self,
        workspace_id: &str,
        now: i64,
    ) -> futures_util::stream::BoxStream<'static, StoreResult<MemberRow>>;
    /// Replaces policies and/or groups of a member in one transaction;
    /// refuses (Conflict) to leave the workspace without an owner.
    async fn update_member(
        &self,
        workspace_id: &str,
        user_id: &str,
        policies: Option<&[Policy]>,
        group_ids: Option<&[String]>,
    ) -> StoreResult<()>;
    /// Removes a member and their group memberships; refuses the last owner.
    async fn remove_member_checked(&self, workspace_id: &str, user_id: &str) -> StoreResult<()>;
    async fn count_owners(&self, workspace_id: &str) -> StoreResult<i64>;

    async fn create_group(
        &self,
        workspace_id: &str,
        name: &str,
        description: &str,
        policies: &[Policy],
        now: i64,
    ) -> StoreResult<Group>;
    async fn get_group(&self, workspace_id: &str, group_id: &str) -> StoreResult<Option<Group>>;
    /// The workspace's groups by name, each with its members' ids.
    async fn list_groups(&self, workspace_id: &str) -> StoreResult<Vec<Group>>;
    /// [`Self::list_groups`] with every `member_ids` left empty, for what
    /// needs only the groups' ids, names and roles: it does not read the
    /// group memberships (half of a 100 000-member workspace in one group
    /// made the members CSV read 50 000 rows and hold them at once).
    async fn list_groups_without_member_ids(&self, workspace_id: &str) -> StoreResult<Vec<Group>>;
    /// How many members each group of the workspace has (groups without
    /// members are left out), counted by the database.
    async fn group_member_counts(&self, workspace_id: &str) -> StoreResult<Vec<(String, i64)>>;
    async fn update_group(
        &self,
        workspace_id: &str,
        group_id: &str,
        name: Option<&str>,
        description: Option<&str>,
        policies: Option<&[Policy]>,
    ) -> StoreResult<()>;
    async fn delete_group(&self, workspace_id: &str, group_id: &str) -> StoreResult<()>;
    /// Adds a member of the workspace to a group (NotFound if not a member).
    async fn add_group_member(
        &self,
        workspace_id: &str,
        group_id: &str,
        user_id: &str,
    ) -> StoreResult<()>;
    async fn remove_group_member(
        &self,
        workspace_id: &str,
        group_id: &str,
        user_id: &str,
    ) -> StoreResult<()>;

    /// Creates an invitation; an expired open one for the same email is
    /// closed first. Conflict when an open one exists.
    async fn create_invitation(&self, inv: &NewInvitation) -> StoreResult<Invitation>;
    async fn get_invitation(&self, workspace_id: &str, id: &str)
        -> StoreResult<Option<Invitation>>;
    async fn invitation_by_token(&self, token_hash: &str) -> StoreResult<Option<Invitation>>;
    async fn list_invitations(&self, workspace_id: &str, now: i64) -> StoreResult<Vec<Invitation>>;
    async fn revoke_invitation(&self, workspace_id: &str, id: &str, now: i64) -> StoreResult<()>;
    /// New token and expiry for an open invitation.
    async fn renew_invitation(
        &self,
        workspace_id: &str,
        id: &str,
        token_hash: &str,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// Accepts an open invitation for `user_id` in one transaction: marks it
    /// accepted (once), adds the membership (or merges into an existing one)
    /// and the group memberships.
    async fn accept_invitation(
        &self,
        invitation_id: &str,
        user_id: &str,
        now: i64,
    ) -> StoreResult<()>;
    /// Creates the invited person's user and accepts, all or nothing.
    async fn accept_invitation_as_new_user(
        &self,
        invitation_id: &str,
        new: &super::NewUser,
        now: i64,
    ) -> StoreResult<crate::domain::model::User>;
    async fn workspace_by_id(
        &self,
        id: &str,
    ) -> StoreResult<Option<crate::domain::model::Workspace>>;

    async fn create_token(&self, t: &ApiToken, token_hash: &str) -> StoreResult<()>;
    /// A live token by the hash of its secret (updates last use, at most once a minute).
    async fn token_by_hash(&self, token_hash: &str, now: i64) -> StoreResult<Option<ApiToken>>;
    async fn list_tokens(&self, workspace_id: &str, kind: &str) -> StoreResult<Vec<ApiToken>>;
    async fn revoke_token(
        &self,
        workspace_id: &str,
        kind: &str,
        id: &str,
        now: i64,
    ) -> StoreResult<()>;

    async fn put_resource(&self, workspace_id: &str, r: &Resource, now: i64) -> StoreResult<()>;
    async fn get_resource(&self, workspace_id: &str, id: &str) -> StoreResult<Option<Resource>>;
    async fn list_resources(&self, workspace_id: &str) -> StoreResult<Vec<Resource>>;
    async fn delete_resource(&self, workspace_id: &str, id: &str) -> StoreResult<()>;

    async fn link_identity(
        &self,
        provider: &str,
        subject: &str,
        user_id: &str,
        email: Option<&str>,
        now: i64,
    ) -> StoreResult<()>;
    async fn identity_user(&self, provider: &str, subject: &str) -> StoreResult<Option<String>>;
    /// The user linked to this external identity, read with the link in one
    /// statement (the look-up of an SSO or Twilio sign-in).
    async fn linked_user(
        &self,
        provider: &str,
        subject: &str,
    ) -> StoreResult<Option<crate::store::User>>;
    /// [`Self::linked_user`], and whether that user is a member of
    /// `workspace_id`, in the same statement (an SSO sign-in asks both).
    async fn linked_member(
        &self,
        provider: &str,
        subject: &str,
        workspace_id: &str,
    ) -> StoreResult<Option<(crate::store::User, bool)>>;
    async fn identities_of(&self, user_id: &str) -> StoreResult<Vec<(String, String)>>;
    async fn unlink_identity(&self, provider: &str, user_id: &str) -> StoreResult<()>;
    /// Creates a user already linked to an external identity, all or nothing.
    async fn create_user_with_identity(
        &self,
        new: &super::NewUser,
        provider: &str,
        subject: &str,
        now: i64,
    ) -> StoreResult<crate::domain::model::User>;
    /// Changes a user's email (Conflict when another user has it).
    async fn set_user_email(&self, user_id: &str, email: &str) -> StoreResult<()>;
    /// Removes the password: the account signs in only through its linked
    /// identity from now on.
    async fn clear_password(&self, user_id: &str) -> StoreResult<()>;

    async fn list_audit(
        &self,
        workspace_id: &str,
        filter: &AuditFilter,
        cursor: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<AuditEvent>>;
    /// The emails of these users (any that exist), in one query: the audit
    /// log page names the people its events are about.
    async fn user_emails(&self, ids: &[String]) -> StoreResult<Vec<(String, String)>>;
    /// Deletes events older than `before`; returns how many.
    async fn purge_audit(&self, workspace_id: &str, before: i64) -> StoreResult<u64>;

    async fn list_workspaces(&self) -> StoreResult<Vec<crate::domain::model::Workspace>>;
}
