//! The one access decision (SPEC sections 6 and 6b): who is calling, in
//! which workspace, asking for what. Forward-auth, the workspace pages, the
//! REST API and the OpenID Provider all ask [`authorize`] and only translate
//! its answer into their own shape (401/403 and headers, a 303, a problem,
//! an OAuth error).

use crate::domain::access::{self as rules, Requirement};
use crate::domain::model::{ApiToken, AuthMethod, User, Workspace, WorkspaceSettings};
use crate::domain::roles::{self, Policy};
use crate::domain::DomainError;
use crate::session::Session;
use crate::store::{SsoConnection, Store};

/// Who is calling: a signed-in person, or an API token of one workspace.
#[derive(Clone)]
pub enum Caller {
    User { user: User, session: Session },
    Token(ApiToken),
}

impl Caller {
    pub fn actor(&self) -> crate::domain::model::Actor {
        match self {
            Caller::User { user, .. } => crate::domain::model::Actor::user(&user.id, &user.email),
            Caller::Token(t) => crate::domain::model::Actor {
                kind: "token".into(),
                id: Some(t.id.clone()),
                email: None,
            },
        }
    }

    pub fn user(&self) -> Option<&User> {
        match self {
            Caller::User { user, .. } => Some(user),
            Caller::Token(_) => None,
        }
    }
}

/// Why a member who is not an owner is refused a change.
pub const OWNERS_ONLY: &str = "Only workspace owners can do this.";

/// What a request needs in the workspace.
#[derive(Debug, Clone)]
pub enum Need<'a> {
    /// Workspace Owner or Workspace Member: read the access settings.
    Read,
    /// Workspace Owner: change anything.
    Owner,
    /// Membership, or a role (possibly on a resource): forward-auth and the
    /// OpenID Provider's `required_role`.
    Role(Requirement<'a>),
}

/// An allowed request: the caller's policies in the workspace.
#[derive(Debug, Clone)]
pub struct Grant {
    pub policies: Vec<Policy>,
    /// Whether the caller is a Workspace Owner (may change things).
    pub owner: bool,
}

/// The decision. Refusals are domain errors: `NotFound` (not a member, or a
/// token of another workspace: the workspace is not revealed),
/// `Unauthenticated` (past the workspace's idle or absolute timeout),
/// `SsoRequired`, `MfaRequired`, `Forbidden` (a member without the role),
/// `Unavailable` (a store did not answer).
///
/// The rules are checked in this order, so that nothing about a workspace
/// leaks to a non-member and a person is asked to sign in properly before
/// being told what their role does not allow.
pub async fn authorize(
    store: &dyn Store,
    now: i64,
    caller: &Caller,
    ws: &Workspace,
    need: &Need<'_>,
) -> Result<Grant, DomainError> {
    let policies = match caller {
        Caller::Token(t) if t.workspace_id == ws.id && t.kind == "api" => t.policies.clone(),
        Caller::Token(_) => return Err(DomainError::NotFound),
        Caller::User { user, .. } => store
            .effective_access(&ws.id, &user.id)
            .await?
            .ok_or(DomainError::NotFound)?
            .all(),
    };
    // API tokens are not sessions: timeouts, Require SSO and Require 2FA
    // apply to people (as in Segment).
    if let Caller::User { user, session } = caller {
        session_rules(store, now, user, session, ws).await?;
    }
    let allowed = match need {
        Need::Owner => rules::is_owner(&policies),
        Need::Read => policies
            .iter()
            .any(|p| p.role == roles::WORKSPACE_OWNER || p.role == roles::WORKSPACE_MEMBER),
        Need::Role(req) => {
            let labels = resource_labels(store, ws, req).await?;
            rules::allows(
                &policies,
                &Requirement {
                    resource_labels: &labels,
                    ..req.clone()
                },
            )
        }
    };
    if !allowed {
        return Err(DomainError::Forbidden(
            match need {
                Need::Owner => OWNERS_ONLY,
                Need::Read => "Only workspace owners and members can see this.",
                Need::Role(_) => "Your roles in this workspace do not allow this.",
            }
            .into(),
        ));
    }
    Ok(Grant {
        owner: rules::is_owner(&policies),
        policies,
    })
}

/// The workspace's rules for a session: timeouts, Require SSO (unless
/// exempt), Require 2FA.
async fn session_rules(
    store: &dyn Store,
    now: i64,
    user: &User,
    session: &Session,
    ws: &Workspace,
) -> Result<(), DomainError> {
    if outlived_timeouts(&ws.settings, session, now) {
        return Err(DomainError::Unauthenticated);
    }
    if ws.settings.require_sso
        && !ws.settings.sso_exempt_user_ids.contains(&user.id)
        && !signed_in_through_sso(store, session, ws).await?
    {
        let connection = first_enabled_connection(store, &ws.id).await?;
        return Err(DomainError::SsoRequired(connection.map(|c| c.id)));
    }
    if ws.settings.require_mfa && !satisfies_mfa(session) {
        return Err(DomainError::MfaRequired);
    }
    Ok(())
}

/// Whether the session came from one of this workspace's SSO connections.
pub async fn signed_in_through_sso(
    store: &dyn Store,
    session: &Session,
    ws: &Workspace,
) -> Result<bool, DomainError> {
    Ok(match &session.method {
        AuthMethod::Sso(conn) => {
            store.sso_connection_workspace(conn).await?.as_deref() == Some(ws.id.as_str())
        }
        _ => false,
    })
}

/// Label scopes need the resource's labels; an unregistered resource has none.
async fn resource_labels(
    store: &dyn Store,
    ws: &Workspace,
    req: &Requirement<'_>,
) -> Result<Vec<String>, DomainError> {
    match (req.resource, req.role.and_then(roles::find)) {
        (Some(r), Some(def)) if def.scopable => Ok(store
            .get_resource(&ws.id, r)
            .await?
            .map(|r| r.labels)
            .unwrap_or_default()),
        _ => Ok(req.resource_labels.to_vec()),
    }
}

/// Password sessions need a second factor; SSO sessions follow their IdP;
/// Twilio sessions count when Twilio says 2FA was used.
fn satisfies_mfa(s: &Session) -> bool {
    s.mfa || matches!(s.method, AuthMethod::Sso(_))
}

/// A workspace may set tighter idle and absolute timeouts than the gateway.
fn outlived_timeouts(settings: &WorkspaceSettings, s: &Session, now: i64) -> bool {
    settings
        .idle_timeout_secs()
        .is_some_and(|idle| s.idle_secs >= idle)
        || settings
            .absolute_timeout_secs()
            .is_some_and(|abs| now - s.created >= abs)
}

/// The workspace's first enabled SSO connection: where Require SSO and
/// home-realm discovery send people.
pub async fn first_enabled_connection(
    store: &dyn Store,
    workspace_id: &str,
) -> Result<Option<SsoConnection>, DomainError> {
    Ok(store
        .list_connections(workspace_id)
        .await?
        .into_iter()
        .find(|c| c.enabled))
}
