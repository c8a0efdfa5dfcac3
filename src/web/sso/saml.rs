//! SAML: AuthnRequest (HTTP-Redirect), the ACS (HTTP-POST; SP- and
//! IdP-initiated), SP metadata. The checks that are not in the validator
//! live here: the request id bound to the browser (single
//! use, 10 minutes), the replay cache shared by all instances, RelayState.

use super::{Connector, Refusal, Verified, PRE_COOKIE};
use crate::connectors::saml::{
    authn_request_redirect, sp_metadata_xml, validate_response, Expectations, ValidatedAssertion,
};
use crate::crypto;
use crate::domain::{return_to, DomainError};
use crate::mapping::SsoIdentity;
use crate::service::sso::SsoKind;
use crate::sso_config;
use crate::store::SsoConnection;
use crate::web::errors::{Halt, PageError};
use crate::web::federation;
use crate::web::http::client_ip;
use crate::web::AppState;
use async_trait::async_trait;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::time::Duration;

/// How long an AuthnRequest may stay unanswered.
const REQUEST_TTL: Duration = Duration::from_secs(600);
/// The size of a RelayState handle (random, base64url in the form).
const HANDLE_BYTES: usize = 16;
/// Allowed clock difference with the IdP.
pub const CLOCK_SKEW_SECS: i64 = 120;

#[derive(Serialize, Deserialize)]
struct Outstanding {
    connection_id: String,
    request_id: String,
    return_to: String,
    /// A test sign-in by this owner (user id): the answer is reported to
    /// them, nobody is signed in.
    #[serde(default)]
    tester: Option<String>,
}

#[derive(Deserialize)]
pub struct AcsForm {
    #[serde(rename = "SAMLResponse", default)]
    pub saml_response: String,
    #[serde(rename = "RelayState")]
    pub relay_state: Option<String>,
}

/// The SAML connector.
pub struct Saml;

#[async_trait]
impl Connector for Saml {
    type Answer = AcsForm;

    async fn start(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        conn: &SsoConnection,
        return_to: String,
        tester: Option<String>,
    ) -> Result<Response, Halt> {
        let cfg = sso_config::saml(&conn.config)?;
        let sp = sso_config::sp_settings(&state.cfg.public_url, &conn.id);
        // RelayState is an opaque handle; return_to stays server-side.
        let handle = crypto::b64url(&crypto::random_bytes::<HANDLE_BYTES>()?);
        let (url, request_id) =
            authn_request_redirect(&sp, &cfg.idp(), Some(&handle)).map_err(|e| {
                federation::refused(e.status(), "Single sign-on unavailable", &e.reason())
            })?;
        let out = Outstanding {
            connection_id: conn.id.clone(),
            request_id,
            return_to,
            tester,
        };
        let key = format!("saml:{handle}");
        super::to_idp(state, headers, true, (&key, &out, REQUEST_TTL), &url).await
    }

    async fn finish(
        &self,
        state: &AppState,
        headers: &HeaderMap,
        conn: &SsoConnection,
        f: AcsForm,
    ) -> Result<Verified, Refusal> {
        if f.saml_response.is_empty() {
            return Err(Refusal::new(400, "The request carried no SAML response."));
        }
        let cfg = sso_config::saml(&conn.config)?;
        let sp = sso_config::sp_settings(&state.cfg.public_url, &conn.id);
        let idp = cfg.idp();
        let (expected, return_to, tester) = expected_request(state, headers, conn, &f).await?;
        let exp = Expectations {
            sp: &sp,
            idp: &idp,
            in_response_to: expected.as_deref(),
            allow_idp_initiated: conn.allow_idp_initiated,
            now: state.clock.now(),
            clock_skew_secs: CLOCK_SKEW_SECS,
            email_attribute: cfg.email_attribute.as_deref(),
            name_attribute: cfg.name_attribute.as_deref(),
            group_attribute: cfg.group_attribute.as_deref(),
        };
        let assertion = validate_response(&f.saml_response, &exp)
            .map_err(|e| Refusal::new(e.status(), e.reason()))?;
        first_use(state, &assertion).await?;
        let identity = SsoIdentity {
            subject: assertion.subject_key,
            email: assertion.email,
            email_verified: true,
            name: assertion.name,
            groups: assertion.groups,
        };
        Ok(Verified {
            identity,
            return_to,
            tester,
            attributes: assertion.attributes,
        })
    }
}

/// SP-initiated when RelayState names a request this browser made for this
/// connection: its request id, return_to and tester (a test sign-in). Otherwise unsolicited (allowed
/// only where the connection says so, and then RelayState is a return_to,
/// validated as one).
async fn expected_request(
    state: &AppState,
    headers: &HeaderMap,
    conn: &SsoConnection,
    f: &AcsForm,
) -> Result<(Option<String>, String, Option<String>), DomainError> {
    // A handle is what `start` made (random bytes, base64url): anything
    // else (an IdP-initiated RelayState such as "/") names no request, and
    // is not looked up.
    let is_handle = |r: &&str| {
        r.len() <= 64 && crypto::b64url_decode(r).is_some_and(|b| b.len() == HANDLE_BYTES)
    };
    let outstanding = match f.relay_state.as_deref().filter(is_handle) {
        Some(handle) => {
            let key = format!("saml:{handle}");
            federation::claim::<Outstanding>(state, headers, PRE_COOKIE, &key)
                .await?
                .filter(|o| o.connection_id == conn.id)
        }
        None => None,
    };
    Ok(match outstanding {
        Some(o) => (Some(o.request_id), o.return_to, o.tester),
        None => (
            None,
            return_to::sanitize(f.relay_state.as_deref(), &state.cfg.allowed_return_origins),
            None,
        ),
    })
}

/// The replay cache, shared by every instance: issuer + assertion id, kept
/// until the assertion could no longer be accepted anyway.
async fn first_use(state: &AppState, assertion: &ValidatedAssertion) -> Result<(), Refusal> {
    let seen = format!(
        "saml-seen:{}",
        crypto::sha256_hex(format!("{}\n{}", assertion.issuer, assertion.assertion_id).as_bytes())
    );
    let ttl = Duration::from_secs(
        (assertion.not_on_or_after - state.clock.now()).clamp(60, 86_400) as u64,
    );
    if !state.sessions.kv().set_nx(&seen, "1", ttl).await? {
        return Err(Refusal::new(401, "This SAML response was already used."));
    }
    Ok(())
}

/// `POST /sso/saml/{connection_id}/acs`.
pub async fn acs(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<AcsForm>,
) -> Result<Response, Halt> {
    let ip = client_ip(&state, peer, &headers);
    super::finish(&Saml, &state, &headers, ip, &id, f).await
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
        .filter(|c| SsoKind::parse(&c.kind).ok() == Some(SsoKind::Saml))
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
