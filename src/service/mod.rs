//! The core: business rules and operations below the doors. Nothing here
//! knows HTTP; `web/` (pages, API, forward-auth, SCIM), the CLI and the
//! OpenID Provider call into it and translate its answers.

pub mod access;
pub mod account;
pub mod audit_log;
pub mod audit_words;
pub mod backchannel;
pub mod domains;
pub mod groups;
pub mod invitations;
pub mod members;
pub mod oidc_clients;
pub mod op;
pub mod resources;
pub mod settings;
pub mod signin;
pub mod sso;
pub mod sso_admin;
pub mod sso_attempts;
pub mod tokens;
pub mod twilio;
pub mod workspaces;

use crate::clock::Clock;
use crate::config::Config;
use crate::jwt::Signer;
use crate::password::Hasher;
use crate::session::SessionManager;
use crate::store::Store;
use std::sync::Arc;

/// The core's dependencies: the store, session store, clock, signer,
/// hasher, mailer, throttle, the forward-auth cache and the channel that
/// carries revocations to every instance. Operations are functions of the
/// service modules taking `&Core`; the web layer holds it as `AppState`.
pub struct Core {
    pub cfg: Config,
    pub store: Arc<dyn Store>,
    pub sessions: SessionManager,
    pub signer: Signer,
    pub hasher: Hasher,
    pub metrics: crate::metrics::Metrics,
    pub throttle: crate::throttle::Throttle,
    pub mailer: crate::mail::Mailer,
    /// The Twilio Unified Login relying party (None when `twilio.mode = off`).
    pub twilio: Option<Arc<crate::connectors::oidc::OidcConnector>>,
    /// The forward-auth cache and how revocations reach every instance.
    pub fast: Arc<crate::fastpath::FastPath>,
    pub invalidate: crate::invalidation::Channel,
    /// OIDC SSO relying parties by connection id (with the connection's
    /// `updated_at`, so a change rebuilds it).
    pub sso_oidc: std::sync::Mutex<
        std::collections::HashMap<String, (i64, Arc<crate::connectors::oidc::OidcConnector>)>,
    >,
    pub clock: Arc<dyn Clock>,
    /// The deployment secret (MAC and sealing keys derive from it).
    pub secret: Vec<u8>,
    /// Wakes the back-channel logout delivery ([`backchannel`]) when
    /// logouts were queued.
    pub logouts: Arc<tokio::sync::Notify>,
}

impl Core {
    /// Access may have shrunk (a logout, a removal, a changed role, a new
    /// password...): this instance drops its forward-auth cache and tells
    /// every other one, before the operation answers.
    pub async fn access_changed(&self) {
        self.invalidate.publish(&self.fast).await;
    }

    /// Ends the session of this cookie value (a logout) on every instance.
    pub async fn end_session(&self, cookie_value: &str) -> Result<(), crate::domain::DomainError> {
        self.sessions.revoke(cookie_value).await?;
        self.session_gone(cookie_value).await;
        Ok(())
    }

    /// The session of this cookie value is gone (ended or replaced): every
    /// instance drops its cached decisions, and the grants it gave apps end
    /// (they are told by back-channel logout).
    async fn session_gone(&self, cookie_value: &str) {
        self.access_changed().await;
        let key = crate::crypto::sha256_hex(cookie_value.as_bytes());
        op::grants_ended(self, crate::store::oidc::GrantsOf::Session(&key)).await;
    }

    /// Starts a session for `uid`, replacing the one of the cookie value the
    /// browser presented (a sign-in, a second factor confirmed): the
    /// replaced session ends like a logout, on every instance and for the
    /// apps it signed in to (back-channel logout).
    pub async fn start_session(
        &self,
        uid: &str,
        method: crate::domain::model::AuthMethod,
        mfa: bool,
        previous: Option<&str>,
    ) -> Result<(String, crate::session::Session), crate::domain::DomainError> {
        let started = self.sessions.login(uid, method, mfa, previous).await?;
        if let Some(prev) = previous {
            self.session_gone(prev).await;
        }
        Ok(started)
    }

    /// Ends every session of this person but `keep` (a new password, an
    /// unlinked identity, "sign out everywhere") on every instance.
    pub async fn end_sessions_of(
        &self,
        user_id: &str,
        keep: Option<&str>,
    ) -> Result<usize, crate::domain::DomainError> {
        let ended = self.sessions.revoke_all(user_id, keep).await?;
        self.access_changed().await;
        op::grants_ended(
            self,
            crate::store::oidc::GrantsOf::UserExcept(user_id, keep),
        )
        .await;
        Ok(ended)
    }
}

/// A request in one workspace, authorised by [`access::authorize`]: what
/// every workspace operation is given.
#[derive(Clone)]
pub struct Ctx {
    pub ws: crate::domain::model::Workspace,
    pub caller: access::Caller,
    /// The client's address, for the audit log.
    pub ip: String,
    /// Whether the caller is a Workspace Owner.
    pub owner: bool,
}

impl Ctx {
    /// Writes an audit event for this workspace with this caller as actor.
    pub async fn audit(
        &self,
        core: &Core,
        action: &str,
        target: Option<&str>,
        details: serde_json::Value,
    ) {
        crate::audit::record(
            core.store.as_ref(),
            core.clock.now(),
            self.entry(action, target, details),
        )
        .await;
    }

    /// An audit entry for this workspace with this caller as actor.
    fn entry<'a>(
        &'a self,
        action: &'a str,
        target: Option<&'a str>,
        details: serde_json::Value,
    ) -> crate::audit::Entry<'a> {
        crate::audit::Entry {
            workspace_id: Some(&self.ws.id),
            actor: self.caller.actor(),
            action,
            target,
            ip: Some(self.ip.clone()),
            details,
        }
    }

    /// Runs `change` (store writes) as one audited change of this workspace:
    /// the audit event (`action`, `target`, `details`, this caller as actor)
    /// commits in the change's own transaction, so neither exists without
    /// the other, and then every instance drops its forward-auth cache
    /// (the change may have taken access away).
    pub async fn audited<T, F>(
        &self,
        core: &Core,
        action: &str,
        target: Option<&str>,
        details: serde_json::Value,
        change: F,
    ) -> Result<T, crate::domain::DomainError>
    where
        F: std::future::Future<Output = Result<T, crate::store::StoreError>>,
    {
        let event = self.entry(action, target, details).event(core.clock.now());
        let out = crate::audit::with_change(core.store.as_ref(), event, change).await?;
        core.access_changed().await;
        Ok(out)
    }

    /// `Forbidden` unless the caller is a Workspace Owner.
    pub fn require_owner(&self) -> Result<(), crate::domain::DomainError> {
        if self.owner {
            Ok(())
        } else {
            Err(crate::domain::DomainError::Forbidden(
                access::OWNERS_ONLY.into(),
            ))
        }
    }
}
