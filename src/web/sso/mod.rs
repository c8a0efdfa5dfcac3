//! Workspace SSO in the browser: SP-initiated start, the SAML ACS and SP
//! metadata, the OIDC callback, and what they share.

pub mod oidc;
pub mod saml;
pub mod test;

use super::errors::Halt;
use super::federation::{self, refused};
use super::login::{finish_sign_in, see_other, with_cookie};
use super::AppState;
use crate::audit;
use crate::connectors::oidc::{OidcClientConfig, OidcConnector};
use crate::domain::model::{Actor, Workspace};
use crate::domain::{return_to, DomainError};
use crate::mapping::{self, MapError, SsoIdentity};
use crate::service::sso::SsoKind;
use crate::service::sso_attempts::RefusalCode;
use crate::sso_config;
use crate::store::SsoConnection;
use async_trait::async_trait;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// The cookie that binds an SSO round trip to the browser that started it.
pub const PRE_COOKIE: &str = "iamgw_sso";

/// An enabled connection and its workspace, or a refusal page.
pub async fn enabled_connection(
    state: &AppState,
    id: &str,
) -> Result<(SsoConnection, Workspace), Halt> {
    let gone = || {
        Halt::from(refused(
            404,
            "Unknown sign-in",
            "This single sign-on connection does not exist or is turned off.",
        ))
    };
    match state.store.connection_with_workspace(id).await? {
        Some((conn, ws)) if conn.enabled => Ok((conn, ws)),
        _ => Err(gone()),
    }
}

/// A verified identity from the IdP, and where the person goes next.
pub struct Verified {
    pub identity: SsoIdentity,
    pub return_to: String,
    /// A test sign-in started by this owner (user id): reported, not
    /// signed in.
    pub tester: Option<String>,
    /// SAML: every attribute the assertion carried (for a test's report).
    pub attributes: Vec<(String, Vec<String>)>,
}

/// Why an IdP's answer was not accepted: refused (recorded, with the status
/// and reason shown), or an error on our side.
pub enum Refusal {
    Refused { status: u16, reason: String },
    Failed(DomainError),
}

impl Refusal {
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Refusal::Refused {
            status,
            reason: reason.into(),
        }
    }
}

impl<E: Into<DomainError>> From<E> for Refusal {
    fn from(e: E) -> Self {
        Refusal::Failed(e.into())
    }
}

/// One SSO connector (as Dex has them): sends the browser to the IdP, and
/// turns the IdP's answer into a verified identity. [`SsoKind`] says which
/// one serves a connection.
#[async_trait]
pub trait Connector: Sync {
    /// What the IdP sends back (the SAML form post, the OIDC callback query).
    type Answer: Send;

    /// Redirects to the IdP, keeping `return_to` for the way back, and
    /// `tester` (an owner's user id) for a test sign-in.
    async fn start(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        conn: &SsoConnection,
        return_to: String,
        tester: Option<String>,
    ) -> Result<Response, Halt>;

    /// Verifies the IdP's answer for `conn`.
    async fn finish(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        conn: &SsoConnection,
        answer: Self::Answer,
    ) -> Result<Verified, Refusal>;
}

/// Keeps `pending` (bound to this browser, for `ttl`) under `key` and
/// sends the browser to the IdP at `url`. `cross_site_post`: the answer
/// comes back as a cross-site POST (SAML).
pub async fn to_idp<T: Serialize + Sync>(
    state: &AppState,
    headers: &HeaderMap,
    cross_site_post: bool,
    (key, pending, ttl): (&str, &T, Duration),
    url: &str,
) -> Result<Response, Halt> {
    let set = federation::stash(
        state,
        headers,
        PRE_COOKIE,
        cross_site_post,
        key,
        pending,
        ttl,
    )
    .await?;
    Ok(with_cookie(see_other(url), set))
}

/// The IdP's answer for connection `id`, through its connector: a refusal
/// is recorded and shown; a verified identity is signed in.
pub async fn finish<C: Connector>(
    connector: &C,
    state: &AppState,
    headers: &HeaderMap,
    ip: IpAddr,
    id: &str,
    answer: C::Answer,
) -> Result<Response, Halt> {
    let (conn, ws) = enabled_connection(state, id).await?;
    match connector.finish(state, headers, &conn, answer).await {
        Ok(v) if v.tester.is_some() => test::report(state, &conn, v, ip).await,
        Ok(v) => complete(state, headers, &conn, &ws, v.identity, &v.return_to, ip).await,
        Err(Refusal::Refused { status, reason }) => {
            Ok(refuse(state, &conn, ip, status, &reason).await)
        }
        Err(Refusal::Failed(e)) => Err(e.into()),
    }
}

/// The OIDC relying party of a connection, kept while the connection is
/// unchanged (it caches discovery and keys).
pub fn oidc_connector(
    state: &AppState,
    conn: &SsoConnection,
) -> Result<Arc<OidcConnector>, DomainError> {
    if let Ok(cache) = state.sso_oidc.lock() {
        if let Some((at, rp)) = cache.get(&conn.id) {
            if *at == conn.updated_at {
                return Ok(rp.clone());
            }
        }
    }
    let cfg = sso_config::oidc(&conn.config)?;
    let rp = Arc::new(
        OidcConnector::new(
            OidcClientConfig {
                issuer_url: cfg.issuer.clone(),
                client_id: cfg.client_id.clone(),
                client_secret: cfg.client_secret(&state.secret)?,
                redirect_uri: sso_config::oidc_redirect_uri(&state.cfg.public_url, &conn.id),
                scopes: cfg.scopes.clone(),
            },
            state.clock.clone(),
        )
        .map_err(|e| DomainError::Internal(e.reason()))?,
    );
    if let Ok(mut cache) = state.sso_oidc.lock() {
        cache.insert(conn.id.clone(), (conn.updated_at, rp.clone()));
    }
    Ok(rp)
}

#[derive(Deserialize)]
pub struct StartQuery {
    pub return_to: Option<String>,
}

/// `GET /sso/{connection_id}/start?return_to=…`: SP-initiated sign-in,
/// through the connector of the connection's kind.
pub async fn start(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<StartQuery>,
) -> Result<Response, Halt> {
    let (conn, _ws) = enabled_connection(&state, &id).await?;
    let return_to = return_to::sanitize(q.return_to.as_deref(), &state.cfg.allowed_return_origins);
    match SsoKind::parse(&conn.kind)? {
        SsoKind::Saml => {
            saml::Saml
                .start(&state, &headers, &conn, return_to, None)
                .await
        }
        SsoKind::Oidc => {
            oidc::Oidc
                .start(&state, &headers, &conn, return_to, None)
                .await
        }
    }
}

/// A test sign-in through `conn` by the owner `tester`: the browser goes
/// to the IdP, and the answer comes back as a report of what the IdP sent
/// (to `back` from there), signing nobody in.
pub async fn start_test(
    state: &AppState,
    headers: &HeaderMap,
    conn: &SsoConnection,
    tester: &str,
    back: String,
) -> Result<Response, Halt> {
    let tester = Some(tester.to_string());
    match SsoKind::parse(&conn.kind)? {
        SsoKind::Saml => saml::Saml.start(state, headers, conn, back, tester).await,
        SsoKind::Oidc => oidc::Oidc.start(state, headers, conn, back, tester).await,
    }
}

/// Records a refused SSO sign-in and answers with its page (no cookie).
pub async fn refuse(
    state: &AppState,
    conn: &SsoConnection,
    ip: IpAddr,
    status: u16,
    reason: &str,
) -> Response {
    state.metrics.signin("sso", "refused");
    tracing::info!(connection = %conn.id, status, reason, "SSO sign-in refused");
    audit::record(
        state.store.as_ref(),
        state.clock.now(),
        audit::Entry {
            workspace_id: Some(&conn.workspace_id),
            actor: Actor::system(),
            action: "sso.refused",
            target: Some(&conn.id),
            ip: Some(ip.to_string()),
            details: serde_json::json!({
                "reason": reason,
                "status": status,
                "code": RefusalCode::of_reason(reason).as_str(),
                "connection": conn.id,
            }),
        },
    )
    .await;
    refused(status, "Single sign-on refused", reason)
}

/// Provisions the person in the connection's workspace and starts the
/// session (method `sso:<connection id>`).
pub async fn complete(
    state: &AppState,
    headers: &HeaderMap,
    conn: &SsoConnection,
    ws: &Workspace,
    identity: SsoIdentity,
    return_to: &str,
    ip: IpAddr,
) -> Result<Response, Halt> {
    let now = state.clock.now();
    // Both kinds keep `group_mappings` (IdP value → group id) in their config.
    let mappings: BTreeMap<String, String> = conn
        .config
        .get("group_mappings")
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default();
    let user = match mapping::provision(state, ws, conn, &identity, &mappings, now).await {
        Ok(u) => u,
        Err(MapError::Refused(reason)) => {
            let why = format!("You cannot sign in here: {reason}.");
            return Ok(refuse(state, conn, ip, 403, &why).await);
        }
        Err(MapError::Store(e)) => return Err(e.into()),
    };
    let via = crate::service::signin::Via::Sso {
        connection_id: conn.id.clone(),
        workspace_id: ws.id.clone(),
        kind: SsoKind::parse(&conn.kind)?,
        groups: identity.groups,
    };
    Ok(finish_sign_in(state, headers, &user, via, return_to, ip).await?)
}

/// The first enabled connection of a workspace (where Require SSO and
/// home-realm discovery send people).
pub async fn first_enabled(
    state: &AppState,
    workspace_id: &str,
) -> Result<Option<SsoConnection>, DomainError> {
    crate::service::access::first_enabled_connection(state.store.as_ref(), workspace_id).await
}

pub use federation::stash;
