//! From an identity asserted by a workspace's IdP to a gateway user who is a
//! member of that workspace: link, JIT-provision, accept an open invitation,
//! sync mapped groups. Refusals create nothing.

use crate::domain::model::{email_domain, normalize_email, User, Workspace};
use crate::domain::roles::Policy;
use crate::domain::DomainError;
use crate::store::{NewUser, SsoConnection, Store};
use std::collections::BTreeMap;

/// What the connector established.
#[derive(Debug, Clone)]
pub struct SsoIdentity {
    /// NameID (or the email when the NameID is transient); OIDC `sub`.
    pub subject: String,
    pub email: Option<String>,
    /// SAML: the IdP vouches for the email; OIDC: `email_verified`.
    pub email_verified: bool,
    pub name: Option<String>,
    pub groups: Vec<String>,
}

/// A refusal by policy (403) with the reason in plain words.
#[derive(Debug)]
pub enum MapError {
    Refused(String),
    Store(DomainError),
}

impl From<crate::store::StoreError> for MapError {
    fn from(e: crate::store::StoreError) -> Self {
        MapError::Store(e.into())
    }
}

async fn domain_verified_by(
    store: &dyn Store,
    email: &str,
    workspace_id: &str,
) -> Result<bool, MapError> {
    Ok(store
        .get_domain(&email_domain(email))
        .await?
        .is_some_and(|d| d.workspace_id == workspace_id && d.verified_at.is_some()))
}

/// Finds or makes the user for `id` and makes them a member of `ws`.
pub async fn provision(
    core: &crate::service::Core,
    ws: &Workspace,
    conn: &SsoConnection,
    id: &SsoIdentity,
    mappings: &BTreeMap<String, String>,
    now: i64,
) -> Result<User, MapError> {
    let store = core.store.as_ref();
    let provider = format!("sso:{}", conn.id);
    // A link's user always exists (its rows go with the user).
    // A returning person's link, user and membership are one read.
    let (user, member) = match store.linked_member(&provider, &id.subject, &ws.id).await? {
        Some(found) => found,
        None => {
            let Some(email) = id
                .email
                .as_deref()
                .filter(|e| crate::domain::model::valid_email(e))
            else {
                return Err(MapError::Refused(
                    "your identity provider did not send an email address".into(),
                ));
            };
            let on_verified_domain = domain_verified_by(store, email, &ws.id).await?;
            if !id.email_verified && !on_verified_domain {
                return Err(MapError::Refused(format!("the email {email} is not verified by your identity provider and its domain is not verified by this workspace")));
            }
            match store.user_by_email(email).await? {
                Some(existing) => {
                    if !on_verified_domain {
                        return Err(MapError::Refused(format!(
                            "an account for {email} already exists, and this workspace has not verified the domain {}, so it cannot be linked",
                            email_domain(email)
                        )));
                    }
                    store
                        .link_identity(&provider, &id.subject, &existing.id, Some(email), now)
                        .await?;
                    let member = store.membership(&ws.id, &existing.id).await?.is_some();
                    (existing, member)
                }
                None => {
                    let new = NewUser {
                        email: email.to_string(),
                        name: id.name.clone().unwrap_or_default(),
                        password_hash: None,
                    };
                    let user = store
                        .create_user_with_identity(&new, &provider, &id.subject, now)
                        .await?;
                    (user, false)
                }
            }
        }
    };
    if !member {
        let invitation = store
            .list_invitations(&ws.id, now)
            .await?
            .into_iter()
            .find(|i| normalize_email(&i.email) == normalize_email(&user.email));
        match invitation {
            Some(inv) => store.accept_invitation(&inv.id, &user.id, now).await?,
            None => {
                store
                    .add_member(
                        &ws.id,
                        &user.id,
                        &[Policy::workspace(&ws.settings.default_role)],
                        now,
                    )
                    .await?
            }
        }
    }
    if sync_groups(store, ws, &user, &id.groups, mappings).await? {
        core.access_changed().await;
    }
    Ok(user)
}

/// Mapped groups follow the IdP: member of each mapped group whose value the
/// IdP asserted, not of the others. Unmapped groups are left alone.
/// Returns whether the person left a group (access may have shrunk).
async fn sync_groups(
    store: &dyn Store,
    ws: &Workspace,
    user: &User,
    asserted: &[String],
    mappings: &BTreeMap<String, String>,
) -> Result<bool, MapError> {
    let mut removed = false;
    for (value, group_id) in mappings {
        let want = asserted.iter().any(|g| g == value);
        let result = if want {
            store.add_group_member(&ws.id, group_id, &user.id).await
        } else {
            store.remove_group_member(&ws.id, group_id, &user.id).await
        };
        match result {
            Ok(()) if !want => removed = true,
            Ok(()) | Err(crate::store::StoreError::NotFound) => {}
            Err(crate::store::StoreError::Conflict(m)) => {
                tracing::warn!(group = %group_id, reason = %m, "group mapping not applied")
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(removed)
}
