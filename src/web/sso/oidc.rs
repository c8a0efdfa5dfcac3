//! OIDC SSO: the same rules as the Twilio connector (code + PKCE, nonce,
//! state bound to the browser, full id_token validation).

use super::{oidc_connector, Connector, Refusal, Verified, PRE_COOKIE};
use crate::connectors::oidc::{CallbackParams, PendingAuth, PENDING_TTL_SECS};
use crate::mapping::SsoIdentity;
use crate::store::SsoConnection;
use crate::web::errors::Halt;
use crate::web::federation;
use crate::web::http::client_ip;
use crate::web::AppState;
use async_trait::async_trait;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Serialize, Deserialize)]
struct Started {
    connection_id: String,
    pending: PendingAuth,
    return_to: String,
    /// A test sign-in by this owner (user id).
    #[serde(default)]
    tester: Option<String>,
}

/// The OIDC connector.
pub struct Oidc;

#[async_trait]
impl Connector for Oidc {
    type Answer = CallbackParams;

    async fn start(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        conn: &SsoConnection,
        return_to: String,
        tester: Option<String>,
    ) -> Result<Response, Halt> {
        let rp = oidc_connector(state, conn)?;
        let (url, pending) = rp.begin(None).await.map_err(|e| {
            federation::refused(e.status(), "Single sign-on unavailable", &e.reason())
        })?;
        let key = format!("sso-oidc:{}", pending.state);
        let started = Started {
            connection_id: conn.id.clone(),
            pending,
            return_to,
            tester,
        };
        let ttl = Duration::from_secs(PENDING_TTL_SECS as u64);
        super::to_idp(state, headers, false, (&key, &started, ttl), &url).await
    }

    async fn finish(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        conn: &SsoConnection,
        params: CallbackParams,
    ) -> Result<Verified, Refusal> {
        let Some(st) = params
            .state
            .as_deref()
            .filter(|s| !s.is_empty() && s.len() <= 256)
        else {
            return Err(Refusal::new(400, "The sign-in answer carried no state."));
        };
        let key = format!("sso-oidc:{st}");
        let Some(started) = federation::claim::<Started>(state, headers, PRE_COOKIE, &key)
            .await?
            .filter(|s| s.connection_id == conn.id)
        else {
            return Err(Refusal::new(400, "This sign-in could not be matched to your browser: it is unknown, was already used, or was started in another browser."));
        };
        let rp = oidc_connector(state, conn)?;
        let identity = rp
            .complete(&started.pending, &params)
            .await
            .map_err(|e| Refusal::new(e.status(), e.reason()))?;
        let identity = SsoIdentity {
            subject: identity.subject,
            email: identity.email,
            email_verified: identity.email_verified,
            name: identity.name,
            groups: identity.groups,
        };
        Ok(Verified {
            identity,
            return_to: started.return_to,
            tester: started.tester,
            attributes: Vec::new(),
        })
    }
}

/// `GET /sso/oidc/{connection_id}/callback`.
pub async fn callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Result<Response, Halt> {
    let ip = client_ip(&state, peer, &headers);
    super::finish(&Oidc, &state, &headers, ip, &id, params).await
}
