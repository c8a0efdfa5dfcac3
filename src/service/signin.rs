//! The one sign-in completion: password (with or without a second factor),
//! Twilio Unified Login and workspace SSO all end here. It starts the
//! session (ending the one the browser presented), records the sign-in on
//! the account, counts it, and writes its audit event; the door turns the
//! answer into a cookie and a redirect.

use super::Core;
use crate::audit;
use crate::domain::model::{Actor, AuthMethod, User};
use crate::domain::DomainError;

/// How the person proved who they are.
pub enum Via {
    /// The gateway password; `mfa` when a second factor followed it.
    Password { mfa: bool },
    /// Twilio Unified Login; `mfa` when Twilio says a second factor was used.
    Twilio { mfa: bool },
    /// A workspace's SSO connection (SAML or OIDC).
    Sso {
        connection_id: String,
        workspace_id: String,
        /// The connection's kind, for the audit log.
        kind: super::sso::SsoKind,
        /// The groups the IdP asserted, for the audit log.
        groups: Vec<String>,
    },
}

impl Via {
    fn method(&self) -> AuthMethod {
        match self {
            Via::Password { .. } => AuthMethod::Password,
            Via::Twilio { .. } => AuthMethod::Twilio,
            Via::Sso { connection_id, .. } => AuthMethod::Sso(connection_id.clone()),
        }
    }

    fn mfa(&self) -> bool {
        match self {
            Via::Password { mfa } | Via::Twilio { mfa } => *mfa,
            Via::Sso { .. } => false,
        }
    }

    /// The metric's and the log's name of the method.
    fn name(&self) -> &'static str {
        match self {
            Via::Password { .. } => "password",
            Via::Twilio { .. } => "twilio",
            Via::Sso { .. } => "sso",
        }
    }
}

/// A completed sign-in: the new session's cookie value, and where to go.
pub struct Completed {
    pub cookie_value: String,
    pub return_to: String,
}

/// Completes the sign-in of `user` (already authenticated `via`): a new
/// session replacing `previous` (the cookie the browser presented), the
/// last login and method on the account, the metric and the audit event.
/// `return_to` must already be validated.
pub async fn complete(
    core: &Core,
    user: &User,
    via: Via,
    previous: Option<&str>,
    ip: &str,
    return_to: &str,
) -> Result<Completed, DomainError> {
    let method = via.method();
    let mfa = via.mfa();
    let (cookie_value, _) = core
        .start_session(&user.id, method.clone(), mfa, previous)
        .await?;
    let now = core.clock.now();
    core.store
        .record_login(&user.id, now, &method.as_header())
        .await?;
    core.metrics.signin(via.name(), "success");
    tracing::info!(event = "signin", method = via.name(), user_id = %user.id, mfa, "signed in");
    let (workspace_id, action, target, details) = match &via {
        Via::Sso {
            connection_id,
            workspace_id,
            kind,
            groups,
        } => (
            Some(workspace_id.as_str()),
            "sso.signed_in",
            connection_id.as_str(),
            serde_json::json!({"connection": connection_id, "kind": kind.as_str(), "groups": groups}),
        ),
        other => (
            None,
            "user.signed_in",
            user.id.as_str(),
            serde_json::json!({"method": other.name(), "mfa": mfa}),
        ),
    };
    // audit-after: the session exists only once the store has answered.
    audit::record(
        core.store.as_ref(),
        now,
        audit::Entry {
            workspace_id,
            actor: Actor::user(&user.id, &user.email),
            action,
            target: Some(target),
            ip: Some(ip.to_string()),
            details,
        },
    )
    .await;
    Ok(Completed {
        cookie_value,
        return_to: return_to.to_string(),
    })
}

/// The answer to a guess at a secret (password, second factor), throttled
/// per account and address.
pub enum Guess {
    Right,
    /// Wrong; `locked` when this failure locked the account or address.
    Wrong {
        locked: Option<i64>,
    },
    /// Locked before the guess was even checked.
    Locked(i64),
}

/// Checks `right` (not run when `account` or `ip` is locked) and counts a
/// wrong guess against both.
pub async fn throttled<F>(
    core: &Core,
    account: &str,
    ip: std::net::IpAddr,
    right: F,
) -> Result<Guess, DomainError>
where
    F: std::future::Future<Output = Result<bool, DomainError>>,
{
    use crate::throttle::Gate;
    if let Gate::Locked(wait) = core.throttle.check(account, ip).await? {
        return Ok(Guess::Locked(wait));
    }
    if right.await? {
        return Ok(Guess::Right);
    }
    let locked = match core.throttle.failure(account, ip).await? {
        Gate::Locked(wait) => Some(wait),
        Gate::Open => None,
    };
    Ok(Guess::Wrong { locked })
}

/// What a password sign-in attempt found.
pub enum PasswordCheck {
    Verified(User),
    TooLong,
    /// Throttled: try again in this many seconds.
    Locked(i64),
    Incorrect,
}

/// The password step: the same work for unknown accounts and wrong
/// passwords, failures throttled per account and per address.
pub async fn check_password(
    core: &Core,
    email: &str,
    password: &str,
    ip: std::net::IpAddr,
) -> Result<PasswordCheck, DomainError> {
    if password.len() > crate::password::MAX_PASSWORD_BYTES {
        core.metrics.signin("password", "refused");
        return Ok(PasswordCheck::TooLong);
    }
    let mut found = None;
    let guess = throttled(core, email, ip, async {
        found = if crate::domain::model::valid_email(email) {
            core.store.user_by_email(email).await?
        } else {
            None
        };
        let hash = found
            .as_ref()
            .and_then(|u: &User| u.password_hash.as_deref());
        let ok = core.hasher.verify(hash, password).await;
        if !ok {
            core.metrics.signin("password", "failure");
            tracing::info!(
                event = "signin_failed",
                method = "password",
                "password sign-in failed"
            );
        }
        Ok(ok && found.is_some())
    })
    .await?;
    Ok(match (guess, found) {
        (Guess::Right, Some(user)) => PasswordCheck::Verified(user),
        (Guess::Locked(wait), _) => {
            core.metrics.signin("password", "throttled");
            PasswordCheck::Locked(wait)
        }
        (Guess::Wrong { locked: Some(wait) }, _) => PasswordCheck::Locked(wait),
        _ => PasswordCheck::Incorrect,
    })
}
