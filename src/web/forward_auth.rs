//! Forward-auth for downstream apps (SPEC section 6): `/auth/verify` (nginx
//! `auth_request`) and `/auth/forward` (Traefik / Caddy: browsers without a
//! session are sent to sign in).

use super::http::{current_session, original_url, OriginalUrl};
use super::AppState;
use crate::domain::access::{self, Requirement};
use crate::domain::roles;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;

/// How long an assertion is valid.
pub const ASSERTION_TTL: i64 = 60;

#[derive(Deserialize)]
pub struct Params {
    pub workspace: Option<String>,
    pub role: Option<String>,
    pub resource: Option<String>,
}

/// The decision, before it is shaped for one proxy style.
enum Outcome {
    Allow(Vec<(&'static str, String)>),
    Unauthenticated,
    Forbidden,
    Unavailable,
    BadRequest(&'static str),
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Allow(_) => "allow",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::Forbidden => "forbidden",
            Outcome::Unavailable => "unavailable",
            Outcome::BadRequest(_) => "bad_request",
        }
    }
}

async fn decide(state: &AppState, params: &Params, headers: &HeaderMap) -> Outcome {
    let session = match current_session(state, headers).await {
        Ok(Some((_, s))) => s,
        Ok(None) => return Outcome::Unauthenticated,
        Err(e) => {
            tracing::warn!(error = %e, "session store unreachable");
            return Outcome::Unavailable;
        }
    };
    let Some(slug) = params.workspace.as_deref().filter(|s| !s.is_empty()) else {
        return Outcome::BadRequest("the workspace parameter is required");
    };
    if let Some(role) = params.role.as_deref() {
        if roles::find(role).is_none() {
            return Outcome::BadRequest("unknown role");
        }
    }
    let user = match state.store.user_by_id(&session.uid).await {
        Ok(Some(u)) => u,
        Ok(None) => return Outcome::Unauthenticated,
        Err(_) => return Outcome::Unavailable,
    };
    let workspace = match state.store.workspace_by_slug(slug).await {
        Ok(Some(w)) => w,
        Ok(None) => return Outcome::Forbidden,
        Err(_) => return Outcome::Unavailable,
    };
    let membership = match state.store.membership(&workspace.id, &user.id).await {
        Ok(Some(m)) => m,
        Ok(None) => return Outcome::Forbidden,
        Err(_) => return Outcome::Unavailable,
    };
    let req = Requirement {
        role: params.role.as_deref(),
        resource: params.resource.as_deref(),
        resource_labels: &[],
    };
    if !access::allows(&membership.policies, &req) {
        return Outcome::Forbidden;
    }
    let roles: Vec<String> = membership.policies.iter().map(|p| p.label()).collect();
    let now = state.clock.now();
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
    Outcome::Allow(vec![
        ("x-auth-user-id", user.id),
        ("x-auth-email", user.email),
        ("x-auth-name", user.name),
        ("x-auth-workspace", workspace.slug),
        ("x-auth-roles", roles.join(",")),
        ("x-auth-method", session.method.as_header()),
        ("x-auth-assertion", assertion),
    ])
}

fn allow_response(headers: Vec<(&'static str, String)>) -> Response {
    let mut resp = StatusCode::OK.into_response();
    for (name, value) in headers {
        // Values that cannot be a header (control characters) are dropped
        // rather than passed on half-written.
        let v = HeaderValue::from_bytes(value.as_bytes())
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        resp.headers_mut().insert(HeaderName::from_static(name), v);
    }
    resp
}

fn status_only(status: StatusCode, reason: Option<&str>) -> Response {
    let mut resp = (status, reason.unwrap_or_default().to_string()).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

pub async fn verify(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    if let OriginalUrl::Malformed = original_url(&state, peer, &headers) {
        state.metrics.forward_auth("malformed");
        return status_only(StatusCode::UNAUTHORIZED, None);
    }
    let outcome = decide(&state, &params, &headers).await;
    state.metrics.forward_auth(outcome.label());
    shape(outcome, None)
}

pub async fn forward(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Response {
    let original = match original_url(&state, peer, &headers) {
        OriginalUrl::Malformed => {
            state.metrics.forward_auth("malformed");
            return status_only(StatusCode::UNAUTHORIZED, None);
        }
        OriginalUrl::Valid(u) => Some(u.to_string()),
        OriginalUrl::Unknown => None,
    };
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let outcome = decide(&state, &params, &headers).await;
    state.metrics.forward_auth(outcome.label());
    let login = wants_html.then(|| match &original {
        Some(u) => format!("{}/login?return_to={}", state.cfg.public_url, urlencode(u)),
        None => format!("{}/login", state.cfg.public_url),
    });
    shape(outcome, login)
}

fn shape(outcome: Outcome, login_redirect: Option<String>) -> Response {
    match outcome {
        Outcome::Allow(h) => allow_response(h),
        Outcome::Unauthenticated => match login_redirect {
            Some(to) => (StatusCode::FOUND, [(header::LOCATION, to)]).into_response(),
            None => status_only(StatusCode::UNAUTHORIZED, None),
        },
        Outcome::Forbidden => status_only(StatusCode::FORBIDDEN, None),
        Outcome::Unavailable => status_only(StatusCode::SERVICE_UNAVAILABLE, None),
        Outcome::BadRequest(why) => status_only(StatusCode::BAD_REQUEST, Some(why)),
    }
}

/// Percent-encodes everything but unreserved characters.
pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
