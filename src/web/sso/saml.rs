//! SAML: AuthnRequest (HTTP-Redirect), the ACS (HTTP-POST; SP- and
//! IdP-initiated), SP metadata. The checks samael leaves to us that are not
//! in the validator live here: the request id bound to the browser (single
//! use, 10 minutes), the replay cache shared by all instances, RelayState.

use super::{complete, enabled_connection, refuse, PRE_COOKIE};
use crate::connectors::saml::{
    authn_request_redirect, sp_metadata_xml, validate_response, Expectations,
};
use crate::crypto;
use crate::domain::return_to;
use crate::mapping::SsoIdentity;
use crate::sso_config;
use crate::store::SsoConnection;
use crate::web::errors::PageError;
use crate::web::federation;
use crate::web::http::client_ip;
use crate::web::login::{see_other, with_cookie};
use crate::web::AppState;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// How long an AuthnRequest may stay unanswered.
const REQUEST_TTL: Duration = Duration::from_secs(600);
/// Allowed clock difference with the IdP.
pub const CLOCK_SKEW_SECS: i64 = 120;

#[derive(Serialize, Deserialize)]
struct Outstanding {
    connection_id: String,
    request_id: String,
    return_to: String,
}

pub async fn begin(
    state: &AppState,
    headers: &HeaderMap,
    conn: &SsoConnection,
    return_to: String,
) -> Result<Response, PageError> {
    let cfg = sso_config::saml(&conn.config)?;
    let sp = sso_config::sp_settings(&state.cfg.public_url, &conn.id);
    // RelayState is an opaque handle; return_to stays server-side.
    let handle = crypto::b64url(&crypto::random_bytes::<16>()?);
    let (url, request_id) = match authn_request_redirect(&sp, &cfg.idp(), Some(&handle)) {
        Ok(x) => x,
        Err(e) => {
            return Ok(federation::refused(
                e.status(),
                "Single sign-on unavailable",
                &e.reason(),
            ))
        }
    };
    let out = Outstanding {
        connection_id: conn.id.clone(),
        request_id,
        return_to,
    };
    let set = federation::stash(
        state,
        headers,
        PRE_COOKIE,
        true,
        &format!("saml:{handle}"),
        &out,
        REQUEST_TTL,
    )
    .await?;
    Ok(with_cookie(see_other(&url), set))
}

#[derive(Deserialize)]
pub struct AcsForm {
    #[serde(rename = "SAMLResponse", default)]
    pub saml_response: String,
    #[serde(rename = "RelayState")]
    pub relay_state: Option<String>,
}

/// `POST /sso/saml/{connection_id}/acs`.
pub async fn acs(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<AcsForm>,
) -> Result<Response, PageError> {
    let (conn, ws) = match enabled_connection(&state, &id).await? {
        Ok(x) => x,
        Err(r) => return Ok(r),
    };
    let ip = client_ip(&state, peer, &headers);
    if f.saml_response.is_empty() {
        return Ok(refuse(
            &state,
            &conn,
            ip,
            400,
            "The request carried no SAML response.",
        )
        .await);
    }
    let cfg = sso_config::saml(&conn.config)?;
    let sp = sso_config::sp_settings(&state.cfg.public_url, &conn.id);
    let idp = cfg.idp();
    // SP-initiated when RelayState names a request this browser made for this
    // connection; otherwise unsolicited (allowed only where the connection
    // says so, and then RelayState is a return_to, validated as one).
    let outstanding = match f
        .relay_state
        .as_deref()
        .filter(|r| !r.is_empty() && r.len() <= 64)
    {
        Some(handle) => federation::claim::<Outstanding>(
            &state,
            &headers,
            PRE_COOKIE,
            &format!("saml:{handle}"),
        )
        .await?
        .filter(|o| o.connection_id == conn.id),
        None => None,
    };
    let (expected, return_to) = match &outstanding {
        Some(o) => (Some(o.request_id.as_str()), o.return_to.clone()),
        None => (
            None,
            return_to::sanitize(f.relay_state.as_deref(), &state.cfg.allowed_return_origins),
        ),
    };
    let exp = Expectations {
        sp: &sp,
        idp: &idp,
        in_response_to: expected,
        allow_idp_initiated: conn.allow_idp_initiated,
        now: state.clock.now(),
        clock_skew_secs: CLOCK_SKEW_SECS,
        email_attribute: cfg.email_attribute.as_deref(),
        name_attribute: cfg.name_attribute.as_deref(),
        group_attribute: cfg.group_attribute.as_deref(),
    };
    let assertion = match validate_response(&f.saml_response, &exp) {
        Ok(a) => a,
        Err(e) => return Ok(refuse(&state, &conn, ip, e.status(), &e.reason()).await),
    };
    // Replay cache, shared by every instance: issuer + assertion id, kept
    // until the assertion could no longer be accepted anyway.
    let seen = format!(
        "saml-seen:{}",
        crypto::sha256_hex(format!("{}\n{}", assertion.issuer, assertion.assertion_id).as_bytes())
    );
    let ttl = Duration::from_secs(
        (assertion.not_on_or_after - state.clock.now()).clamp(60, 86_400) as u64,
    );
    if !state.sessions.kv().set_nx(&seen, "1", ttl).await? {
        return Ok(refuse(
            &state,
            &conn,
            ip,
            401,
            "This SAML response was already used.",
        )
        .await);
    }
    let identity = SsoIdentity {
        subject: assertion.subject_key.clone(),
        email: assertion.email.clone(),
        email_verified: true,
        name: assertion.name.clone(),
        groups: assertion.groups.clone(),
    };
    complete(&state, &headers, &conn, &ws, identity, &return_to, ip).await
}

/// `GET /sso/saml/{connection_id}/metadata`: this connection's SP metadata.
pub async fn metadata(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let Some(conn) = state
        .store
        .get_connection(&id)
        .await?
        .filter(|c| c.kind == "saml")
    else {
        return Ok((StatusCode::NOT_FOUND, "not found").into_response());
    };
    let xml = sp_metadata_xml(&sso_config::sp_settings(&state.cfg.public_url, &conn.id));
    Ok((
        [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
        xml,
    )
        .into_response())
}
