//! Forward-auth for downstream apps (SPEC section 6): `/auth/verify` (nginx
//! `auth_request`) and `/auth/forward` (Traefik / Caddy: browsers without a
//! session are sent to sign in).

use super::http::{current_session, original_url, OriginalUrl};
use super::AppState;
use crate::domain::access::Requirement;
use crate::domain::model::{User, Workspace};
use crate::domain::roles::{self, Policy};
use crate::domain::DomainError;
use crate::fastpath::{Allowed, FastPath};
use crate::service::access::{authorize, Caller, Need};
use crate::session::Session;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::net::SocketAddr;

/// How long an assertion is valid.
pub const ASSERTION_TTL: i64 = 60;

/// The longest a forward-auth decision may take before it is a 503.
const DECIDE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(3);

#[derive(Default)]
pub struct Params {
    pub workspace: Option<String>,
    pub role: Option<String>,
    pub resource: Option<String>,
}

impl Params {
    /// `workspace`, `role` and `resource` from a query string; each at most
    /// once (a repeated one could mean different things to different
    /// parsers), other parameters ignored.
    fn parse(query: &str) -> Result<Params, &'static str> {
        let mut p = Params::default();
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            let slot = match k.as_ref() {
                "workspace" => &mut p.workspace,
                "role" => &mut p.role,
                "resource" => &mut p.resource,
                _ => continue,
            };
            if slot.replace(v.into_owned()).is_some() {
                return Err("a query parameter is repeated");
            }
        }
        Ok(p)
    }
}

/// The decision, before it is shaped for one proxy style.
enum Outcome {
    /// Identity headers, and until when (injected clock) this may be reused.
    Allow(IdentityHeaders, i64),
    Unauthenticated,
    /// Valid session, but this workspace wants more (`mfa_required`).
    Challenge {
        reason: &'static str,
        location: String,
    },
    Forbidden,
    Unavailable,
    BadRequest(&'static str),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Allow(..) => "allow",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::Challenge { reason, .. } => reason,
            Outcome::Forbidden => "forbidden",
            Outcome::Unavailable => "unavailable",
            Outcome::BadRequest(_) => "bad_request",
        }
    }
}

async fn decide(
    state: &AppState,
    params: &Params,
    headers: &HeaderMap,
    original: Option<&str>,
) -> Outcome {
    let (caller, workspace) = match caller_and_workspace(state, params, headers).await {
        Ok(found) => found,
        Err(outcome) => return outcome,
    };
    let now = state.clock.now();
    let need = Need::Role(Requirement {
        role: params.role.as_deref(),
        resource: params.resource.as_deref(),
        resource_labels: &[],
    });
    match authorize(state.store.as_ref(), now, &caller, &workspace, &need).await {
        Ok(grant) => match caller {
            Caller::User { user, session } => {
                allowed(state, now, user, &session, workspace, &grant.policies)
            }
            Caller::Token(_) => Outcome::Unavailable,
        },
        Err(refusal) => refused(state, refusal, original),
    }
}

/// The request's signed-in person and the workspace it names, or why not.
async fn caller_and_workspace(
    state: &AppState,
    params: &Params,
    headers: &HeaderMap,
) -> Result<(Caller, Workspace), Outcome> {
    let session = match current_session(state, headers).await {
        Ok(Some((_, s))) => s,
        Ok(None) => return Err(Outcome::Unauthenticated),
        Err(e) => {
            tracing::warn!(error = %e, "session store unreachable");
            return Err(Outcome::Unavailable);
        }
    };
    let Some(slug) = params.workspace.as_deref().filter(|s| !s.is_empty()) else {
        return Err(Outcome::BadRequest("the workspace parameter is required"));
    };
    if params
        .role
        .as_deref()
        .is_some_and(|r| roles::find(r).is_none())
    {
        return Err(Outcome::BadRequest("unknown role"));
    }
    let user = match state.store.user_by_id(&session.uid).await {
        Ok(Some(u)) => u,
        Ok(None) => return Err(Outcome::Unauthenticated),
        Err(_) => return Err(Outcome::Unavailable),
    };
    match state.store.workspace_by_slug(slug).await {
        Ok(Some(w)) => Ok((Caller::User { user, session }, w)),
        Ok(None) => Err(Outcome::Forbidden),
        Err(_) => Err(Outcome::Unavailable),
    }
}

/// An allowed request: identity headers with a signed assertion, reusable
/// for half the assertion's life and never past the session's or the
/// workspace's own timeouts.
fn allowed(
    state: &AppState,
    now: i64,
    user: User,
    session: &Session,
    workspace: Workspace,
    policies: &[Policy],
) -> Outcome {
    let roles: Vec<String> = policies.iter().map(|p| p.label()).collect();
    let claims = json!({
        "iss": state.cfg.public_url,
        "aud": format!("iamgw:{}", workspace.slug),
        "sub": user.id,
        "iat": now,
        "exp": now + ASSERTION_TTL,
        "email": user.email,
        "name": user.name,
        "workspace": workspace.slug,
        "roles": roles,
        "auth_method": session.method.as_header(),
        "sid": session.sid,
    });
    let assertion = match state.signer.sign(&claims) {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "signing the assertion failed");
            return Outcome::Unavailable;
        }
    };
    let ws = &workspace.settings;
    let idle = (state.cfg.session.idle_timeout.as_secs() as i64)
        .min(ws.idle_timeout_secs().unwrap_or(i64::MAX / 4));
    let absolute = (state.cfg.session.absolute_timeout.as_secs() as i64)
        .min(ws.absolute_timeout_secs().unwrap_or(i64::MAX / 4));
    let until = (now + ASSERTION_TTL / 2)
        .min(session.seen + idle)
        .min(session.created + absolute);
    Outcome::Allow(
        identity_headers([
            ("x-auth-user-id", user.id),
            ("x-auth-email", user.email),
            ("x-auth-name", user.name),
            ("x-auth-workspace", workspace.slug),
            ("x-auth-roles", roles.join(",")),
            ("x-auth-method", session.method.as_header()),
            ("x-auth-assertion", assertion),
        ]),
        until,
    )
}

pub use crate::fastpath::IdentityHeaders;

fn identity_headers<const N: usize>(values: [(&'static str, String); N]) -> IdentityHeaders {
    values
        .into_iter()
        .map(|(name, value)| {
            // Values that cannot be a header (control characters) are sent
            // empty rather than half-written.
            let v = HeaderValue::from_bytes(value.as_bytes())
                .unwrap_or_else(|_| HeaderValue::from_static(""));
            (HeaderName::from_static(name), v)
        })
        .collect()
}

/// Forward-auth's shape of a refusal by the one decision.
fn refused(state: &AppState, refusal: DomainError, original: Option<&str>) -> Outcome {
    let back = original
        .map(|u| format!("?return_to={}", urlencode(u)))
        .unwrap_or_default();
    match refusal {
        DomainError::Unauthenticated => Outcome::Unauthenticated,
        DomainError::NotFound | DomainError::Forbidden(_) => Outcome::Forbidden,
        DomainError::SsoRequired(connection) => Outcome::Challenge {
            reason: "sso_required",
            location: match connection {
                Some(id) => format!("{}/sso/{id}/start{back}", state.cfg.public_url),
                None => format!("{}/login{back}", state.cfg.public_url),
            },
        },
        DomainError::MfaRequired => Outcome::Challenge {
            reason: "mfa_required",
            location: format!("{}/account#two-factor", state.cfg.public_url),
        },
        _ => Outcome::Unavailable,
    }
}

fn allow_response(headers: IdentityHeaders) -> Response {
    let mut resp = StatusCode::OK.into_response();
    let h = resp.headers_mut();
    // Room for these and the headers every response gets, in one allocation.
    h.reserve(headers.len() + 8);
    for (name, value) in headers.iter() {
        h.insert(name.clone(), value.clone());
    }
    resp
}

fn status_only(status: StatusCode, reason: Option<&str>) -> Response {
    let mut resp = (status, reason.unwrap_or_default().to_string()).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The decision, from the cache when this session was allowed the same
/// request moments ago (and nothing was revoked since).
/// A cached decision. A logout anywhere flushed this cache through the
/// revocation channel, whose heartbeat also proves the store still answers.
/// With `revocation_check = "every_request"` a shared store is read too
/// (batched): then even a logout whose flush is still in flight is seen.
async fn reuse(state: &AppState, session_key: &str, hit: Allowed) -> Outcome {
    if state.invalidate.is_local() || !state.cfg.session.check_every_request {
        return Outcome::Allow(hit.headers, hit.until);
    }
    match state.sessions.exists(session_key).await {
        Ok(true) => Outcome::Allow(hit.headers, hit.until),
        Ok(false) => Outcome::Unauthenticated,
        Err(_) => Outcome::Unavailable,
    }
}

async fn cached_decide(
    state: &AppState,
    headers: &HeaderMap,
    original: Option<&str>,
    query: &str,
) -> Outcome {
    let session_key = crate::web::http::cookie(headers, state.sessions.cookie_name())
        .map(|v| crate::crypto::sha256_hex(v.as_bytes()));
    let key = session_key.as_deref().map(|s| FastPath::key(s, query));
    if let (Some(k), Some(sk)) = (key.as_deref(), session_key.as_deref()) {
        if let Some(hit) = state.fast.get(k, state.clock.now()) {
            return reuse(state, sk, hit).await;
        }
    }
    let generation = state.fast.generation();
    let params = match Params::parse(query) {
        Ok(p) => p,
        Err(why) => return Outcome::BadRequest(why),
    };
    // A store that hangs must not hang the proxy in front of every app.
    let outcome = match tokio::time::timeout(
        DECIDE_DEADLINE,
        decide(state, &params, headers, original),
    )
    .await
    {
        Ok(o) => o,
        Err(_) => {
            tracing::warn!("forward-auth decision timed out (a store is not answering)");
            Outcome::Unavailable
        }
    };
    if let (Some(k), Outcome::Allow(h, until)) = (key, &outcome) {
        state.fast.put(
            k,
            generation,
            Allowed {
                headers: h.clone(),
                until: *until,
            },
        );
    }
    outcome
}

pub async fn verify(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    answer(&state, peer, query.as_deref(), &headers, false).await
}

pub async fn forward(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    answer(&state, peer, query.as_deref(), &headers, wants_html).await
}

/// Both proxy styles: the original URL, the decision (from the cache when
/// it may be), counted and shaped; with `send_to_login`, a browser without
/// a session is redirected to sign in instead of getting a 401.
async fn answer(
    state: &AppState,
    peer: SocketAddr,
    query: Option<&str>,
    headers: &HeaderMap,
    send_to_login: bool,
) -> Response {
    let original = match original_url(state, peer, headers) {
        OriginalUrl::Malformed => {
            state.metrics.forward_auth("malformed");
            return status_only(StatusCode::UNAUTHORIZED, None);
        }
        OriginalUrl::Valid(u) => Some(u.to_string()),
        OriginalUrl::Unknown => None,
    };
    let outcome = cached_decide(
        state,
        headers,
        original.as_deref(),
        query.unwrap_or_default(),
    )
    .await;
    state.metrics.forward_auth(outcome.label());
    let login = send_to_login.then(|| match &original {
        Some(u) => format!("{}/login?return_to={}", state.cfg.public_url, urlencode(u)),
        None => format!("{}/login", state.cfg.public_url),
    });
    shape(outcome, login)
}

fn shape(outcome: Outcome, login_redirect: Option<String>) -> Response {
    match outcome {
        Outcome::Allow(h, _) => allow_response(h),
        Outcome::Unauthenticated => match login_redirect {
            Some(to) => (StatusCode::FOUND, [(header::LOCATION, to)]).into_response(),
            None => status_only(StatusCode::UNAUTHORIZED, None),
        },
        Outcome::Challenge { reason, location } => {
            let mut resp = match login_redirect {
                Some(_) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
                None => {
                    let mut r = status_only(StatusCode::UNAUTHORIZED, None);
                    if let Ok(v) = HeaderValue::from_str(&location) {
                        r.headers_mut().insert(header::LOCATION, v);
                    }
                    r
                }
            };
            resp.headers_mut()
                .insert("x-auth-reason", HeaderValue::from_static(reason));
            resp
        }
        Outcome::Forbidden => status_only(StatusCode::FORBIDDEN, None),
        Outcome::Unavailable => status_only(StatusCode::SERVICE_UNAVAILABLE, None),
        Outcome::BadRequest(why) => status_only(StatusCode::BAD_REQUEST, Some(why)),
    }
}

/// Percent-encodes everything but unreserved characters.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
