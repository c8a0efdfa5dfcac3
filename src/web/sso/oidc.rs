//! OIDC SSO: the same rules as the Twilio connector (code + PKCE, nonce,
//! state bound to the browser, full id_token validation).

use super::{complete, enabled_connection, oidc_connector, refuse, PRE_COOKIE};
use crate::connectors::oidc::{CallbackParams, PendingAuth, PENDING_TTL_SECS};
use crate::mapping::SsoIdentity;
use crate::store::SsoConnection;
use crate::web::errors::PageError;
use crate::web::federation;
use crate::web::http::client_ip;
use crate::web::login::{see_other, with_cookie};
use crate::web::AppState;
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
}

pub async fn begin(
    state: &AppState,
    headers: &HeaderMap,
    conn: &SsoConnection,
    return_to: String,
) -> Result<Response, PageError> {
    let rp = oidc_connector(state, conn)?;
    let (url, pending) = match rp.begin(None).await {
        Ok(x) => x,
        Err(e) => {
            return Ok(federation::refused(
                e.status(),
                "Single sign-on unavailable",
                &e.reason(),
            ))
        }
    };
    let key = format!("sso-oidc:{}", pending.state);
    let started = Started {
        connection_id: conn.id.clone(),
        pending,
        return_to,
    };
    let set = federation::stash(
        state,
        headers,
        PRE_COOKIE,
        false,
        &key,
        &started,
        Duration::from_secs(PENDING_TTL_SECS as u64),
    )
    .await?;
    Ok(with_cookie(see_other(&url), set))
}

/// `GET /sso/oidc/{connection_id}/callback`.
pub async fn callback(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(params): Query<CallbackParams>,
) -> Result<Response, PageError> {
    let (conn, ws) = match enabled_connection(&state, &id).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let ip = client_ip(&state, peer, &headers);
    let Some(st) = params
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 256)
    else {
        return Ok(refuse(
            &state,
            &conn,
            ip,
            400,
            "The sign-in answer carried no state.",
        )
        .await);
    };
    let Some(started) =
        federation::claim::<Started>(&state, &headers, PRE_COOKIE, &format!("sso-oidc:{st}"))
            .await?
            .filter(|s| s.connection_id == conn.id)
    else {
        return Ok(refuse(&state, &conn, ip, 400, "This sign-in could not be matched to your browser: it is unknown, was already used, or was started in another browser.").await);
    };
    let rp = oidc_connector(&state, &conn)?;
    let identity = match rp.complete(&started.pending, &params).await {
        Ok(i) => i,
        Err(e) => return Ok(refuse(&state, &conn, ip, e.status(), &e.reason()).await),
    };
    let sso = SsoIdentity {
        subject: identity.subject,
        email: identity.email,
        email_verified: identity.email_verified,
        name: identity.name,
        groups: identity.groups,
    };
    complete(&state, &headers, &conn, &ws, sso, &started.return_to, ip).await
}
