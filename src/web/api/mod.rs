//! The management REST API under `/api/v1` (SPEC section 7): who is calling
//! (session + CSRF, or a bearer API token), what they may do in a workspace,
//! and the shared JSON shapes. One file per resource.

pub mod audit_log;
pub mod groups;
pub mod invitations;
pub mod me;
pub mod members;
pub mod oidc_clients;
pub mod openapi;
pub mod resources;
pub mod settings;
pub mod sso;
pub mod tokens;

use super::csrf;
use super::errors::{self, ApiError};
use super::http::{client_ip, current_session};
use super::AppState;
use crate::clock::rfc3339;
use crate::domain::roles::Policy;
use crate::domain::DomainError;
use axum::handler::Handler;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware;
use axum::response::Response;
use axum::routing::{any, on, MethodFilter, MethodRouter};
use axum::Router;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::net::SocketAddr;

/// `/api/v1/workspaces/{slug}` followed by the rest of a path, as a
/// `&'static str` usable in both the route table and the OpenAPI table.
macro_rules! ws_path {
    ($rest:literal) => {
        concat!("/api/v1/workspaces/{slug}", $rest)
    };
}
pub(crate) use ws_path;

/// The HTTP methods the API routes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verb {
    Get,
    Post,
    Patch,
    Delete,
}

impl Verb {
    /// Lower case, as OpenAPI writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Get => "get",
            Verb::Post => "post",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
        }
    }

    /// Whether a session caller must send `X-CSRF-Token`.
    pub fn is_unsafe(self) -> bool {
        !matches!(self, Verb::Get)
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Patch => MethodFilter::PATCH,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// One route of the API: method, path template and handler.
pub struct Endpoint {
    pub verb: Verb,
    pub path: &'static str,
    pub router: MethodRouter<AppState>,
}

fn at<H, T>(verb: Verb, path: &'static str, handler: H) -> Endpoint
where
    H: Handler<T, AppState>,
    T: 'static,
{
    Endpoint {
        verb,
        path,
        router: on(verb.filter(), handler),
    }
}

/// The route table. Every entry has an operation in
/// [`openapi::OPERATIONS`] and the other way round (checked by tests), so
/// adding a route means adding a line here and an operation there.
pub fn endpoints() -> Vec<Endpoint> {
    use Verb::{Delete, Get, Patch, Post};
    vec![
        at(Get, "/api/v1/openapi.json", openapi::document),
        at(Get, "/api/v1/me", me::me),
        at(Get, "/api/v1/workspaces", me::list_workspaces),
        at(Post, "/api/v1/workspaces", me::create_workspace),
        at(Get, ws_path!("/settings"), settings::get_settings),
        at(Patch, ws_path!("/settings"), settings::patch_settings),
        at(Get, ws_path!("/roles"), me::roles),
        at(Get, ws_path!("/members"), members::list),
        at(Get, ws_path!("/members.csv"), members::csv),
        at(Get, ws_path!("/members/{user_id}"), members::show),
        at(Patch, ws_path!("/members/{user_id}"), members::update),
        at(Delete, ws_path!("/members/{user_id}"), members::remove),
        at(
            Delete,
            ws_path!("/members/{user_id}/mfa"),
            settings::reset_member_mfa,
        ),
        at(Get, ws_path!("/groups"), groups::list),
        at(Post, ws_path!("/groups"), groups::create),
        at(Get, ws_path!("/groups/{id}"), groups::show),
        at(Patch, ws_path!("/groups/{id}"), groups::update),
        at(Delete, ws_path!("/groups/{id}"), groups::remove),
        at(
            Post,
            ws_path!("/groups/{id}/members/{user_id}"),
            groups::add_member,
        ),
        at(
            Delete,
            ws_path!("/groups/{id}/members/{user_id}"),
            groups::remove_member,
        ),
        at(Get, ws_path!("/invitations"), invitations::list),
        at(Post, ws_path!("/invitations"), invitations::create),
        at(Delete, ws_path!("/invitations/{id}"), invitations::revoke),
        at(
            Post,
            ws_path!("/invitations/{id}/resend"),
            invitations::resend,
        ),
        at(Get, ws_path!("/tokens"), tokens::list),
        at(Post, ws_path!("/tokens"), tokens::create),
        at(Delete, ws_path!("/tokens/{id}"), tokens::revoke),
        at(Get, ws_path!("/scim-tokens"), tokens::list_scim),
        at(Post, ws_path!("/scim-tokens"), tokens::create_scim),
        at(Delete, ws_path!("/scim-tokens/{id}"), tokens::revoke_scim),
        at(Get, ws_path!("/resources"), resources::list),
        at(Post, ws_path!("/resources"), resources::put),
        at(Get, ws_path!("/resources/{id}"), resources::show),
        at(Delete, ws_path!("/resources/{id}"), resources::remove),
        at(Get, ws_path!("/sso/connections"), sso::list),
        at(Post, ws_path!("/sso/connections"), sso::create),
        at(Get, ws_path!("/sso/connections/{id}"), sso::show),
        at(Patch, ws_path!("/sso/connections/{id}"), sso::update),
        at(Delete, ws_path!("/sso/connections/{id}"), sso::remove),
        at(Get, ws_path!("/domains"), sso::list_domains),
        at(Post, ws_path!("/domains"), sso::create_domain),
        at(Delete, ws_path!("/domains/{domain}"), sso::delete_domain),
        at(
            Post,
            ws_path!("/domains/{domain}/verify"),
            sso::verify_domain,
        ),
        at(Get, ws_path!("/oidc-clients"), oidc_clients::list),
        at(Post, ws_path!("/oidc-clients"), oidc_clients::create),
        at(
            Delete,
            ws_path!("/oidc-clients/{client_id}"),
            oidc_clients::remove,
        ),
        at(Get, ws_path!("/audit-events"), audit_log::list),
        at(Get, ws_path!("/audit-events.csv"), audit_log::csv),
    ]
}

/// The (method, path template) pairs the API routes.
pub fn route_table() -> Vec<(Verb, &'static str)> {
    endpoints().iter().map(|e| (e.verb, e.path)).collect()
}

/// The path every workspace route starts with.
pub const WORKSPACE_PREFIX: &str = "/api/v1/workspaces/{slug}";

pub fn routes(state: AppState) -> Router<AppState> {
    let mut router = Router::new();
    let mut workspace = Router::new();
    for e in endpoints() {
        if e.path.starts_with(WORKSPACE_PREFIX) {
            workspace = workspace.route(e.path, e.router);
        } else {
            router = router.route(e.path, e.router);
        }
    }
    router
        .merge(workspace.route_layer(middleware::from_fn_with_state(state, gate)))
        // Anything else under /api/v1 is a JSON 404, not the HTML fallback.
        .route("/api/v1/{*rest}", any(unrouted))
        .route_layer(middleware::from_fn(refuse_nul_in_uri))
        .route_layer(middleware::map_response(problem_rejections))
}

/// The API's workspace door: every route under
/// `/api/v1/workspaces/{slug}` passes the one decision (SPEC 6b) before its
/// handler runs, so no route can skip it; the handler then asks for what
/// its operation needs (owner rights).
async fn gate(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>,
    axum::extract::Path(params): axum::extract::Path<std::collections::HashMap<String, String>>,
    req: axum::extract::Request,
    next: middleware::Next,
) -> Response {
    let slug = params.get("slug").map(String::as_str).unwrap_or_default();
    match workspace_ctx(&state, req.headers(), req.method(), peer, slug, Need::Read).await {
        Ok(ctx) => {
            let mut req = req;
            req.extensions_mut().insert(ctx);
            next.run(req).await
        }
        Err(e) => axum::response::IntoResponse::into_response(e),
    }
}

/// The request's [`Ctx`], as the gate decided it: a handler of a workspace
/// route takes it as an argument and asks only for owner rights on top.
impl axum::extract::FromRequestParts<AppState> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        parts.extensions.remove::<Ctx>().ok_or_else(|| {
            ApiError(DomainError::Internal(
                "a workspace handler ran without the workspace gate".into(),
            ))
        })
    }
}

/// What a request to no API route gets.
pub const NO_SUCH_ROUTE: &str = "No such API route.";

async fn unrouted() -> Response {
    errors::problem(StatusCode::NOT_FOUND, NO_SUCH_ROUTE)
}

/// Turns every error response that is not already problem+json (axum's
/// rejections of a path, query or body it cannot read, 405, 413) into
/// problem+json, keeping its status and headers (e.g. `Allow`).
async fn problem_rejections(resp: Response) -> Response {
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|t| !t.is_empty() && !status.is_server_error());
    let detail = text.unwrap_or_else(|| match status {
        StatusCode::METHOD_NOT_ALLOWED => "This method is not allowed here.".to_string(),
        s => s.canonical_reason().unwrap_or("Error").to_string(),
    });
    let fresh = errors::problem(status, &detail);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    Response::from_parts(parts, fresh.into_body())
}

pub use crate::service::access::{Caller, Need};

/// Resolves the caller: `Authorization: Bearer iamgw_…`, or the session
/// cookie (with `X-CSRF-Token` on unsafe methods).
pub async fn caller(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
) -> Result<Caller, ApiError> {
    if let Some(auth) = headers.get(axum::http::header::AUTHORIZATION) {
        let text = auth.to_str().unwrap_or_default();
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .map(str::trim)
            .unwrap_or_default();
        if !crate::tokens::well_formed(token, crate::tokens::API_PREFIX)
            || token.starts_with(crate::tokens::SCIM_PREFIX)
        {
            return Err(DomainError::Unauthenticated.into());
        }
        let t = state
            .store
            .token_by_hash(&crate::tokens::hash(token), state.clock.now())
            .await?
            .ok_or(DomainError::Unauthenticated)?;
        if t.kind != "api" {
            return Err(DomainError::Unauthenticated.into());
        }
        return Ok(Caller::Token(t));
    }
    let (_, session) = current_session(state, headers)
        .await?
        .ok_or(DomainError::Unauthenticated)?;
    if !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        let presented = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
        let expected = csrf::token_for_session(state, &session);
        if !presented.is_some_and(|p| crate::crypto::ct_eq(p.as_bytes(), expected.as_bytes())) {
            return Err(
                DomainError::Forbidden("missing or wrong X-CSRF-Token header".into()).into(),
            );
        }
    }
    let user = state
        .store
        .user_by_id(&session.uid)
        .await?
        .ok_or(DomainError::Unauthenticated)?;
    Ok(Caller::User { user, session })
}

pub use crate::service::Ctx;

/// Authorises a request in workspace `slug` with the one decision
/// (`service::access::authorize`): a token of another workspace and
/// non-members get 404 (the workspace is not revealed); sessions past the
/// workspace's timeouts 401; Require SSO and Require 2FA 403 with their own
/// problem types.
pub async fn workspace_ctx(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    peer: SocketAddr,
    slug: &str,
    need: Need<'_>,
) -> Result<Ctx, ApiError> {
    let caller = caller(state, headers, method).await?;
    ctx_for(state, caller, headers, peer, slug, need).await
}

/// [`workspace_ctx`] for a caller already known (one session look-up per
/// request: a second one would no longer see the idle time).
pub async fn ctx_for(
    state: &AppState,
    caller: Caller,
    headers: &HeaderMap,
    peer: SocketAddr,
    slug: &str,
    need: Need<'_>,
) -> Result<Ctx, ApiError> {
    let ws = state
        .store
        .workspace_by_slug(slug)
        .await?
        .ok_or(DomainError::NotFound)?;
    let grant = crate::service::access::authorize(
        state.store.as_ref(),
        state.clock.now(),
        &caller,
        &ws,
        &need,
    )
    .await?;
    Ok(Ctx {
        ws,
        caller,
        ip: client_ip(state, peer, headers).to_string(),
        owner: grant.owner,
    })
}

/// Parses a JSON object body into `T`, answering 400 (problem+json) with
/// the reason. Only an object is accepted (serde would otherwise also read a
/// struct from an array of its fields in order).
pub fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.is_empty() {
        return Err(DomainError::Invalid("a JSON body is required".into()).into());
    }
    let invalid = |e: serde_json::Error| DomainError::Invalid(format!("invalid JSON body: {e}"));
    let value: Value = serde_json::from_slice(body).map_err(invalid)?;
    if !value.is_object() {
        return Err(DomainError::Invalid("the body must be a JSON object".into()).into());
    }
    if has_nul(&value) {
        return Err(DomainError::Invalid(NUL_REFUSED.into()).into());
    }
    // Parsed again from the bytes, so errors say where they are.
    Ok(serde_json::from_slice(body).map_err(invalid)?)
}

/// Why text with a NUL character is refused: PostgreSQL cannot store it,
/// and no name, id or description needs one.
const NUL_REFUSED: &str = "text must not contain NUL (\\u0000) characters";

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// A `?cursor=` as the handlers pass it to the store: none when absent or
/// empty (the first page); 400 when it cannot be one the API handed out.
pub fn cursor(raw: Option<&str>) -> Result<Option<&str>, ApiError> {
    let Some(c) = raw.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let readable = crate::crypto::b64url_decode(c)
        .and_then(|b| String::from_utf8(b).ok())
        .is_some_and(|text| !text.contains('\0'));
    if !readable {
        return Err(DomainError::Invalid("malformed cursor".into()).into());
    }
    Ok(Some(c))
}

/// Refuses a path or query with a percent-encoded NUL before any handler
/// passes it to the database.
async fn refuse_nul_in_uri(req: axum::extract::Request, next: middleware::Next) -> Response {
    let uri = req.uri();
    let nul = |s: &str| s.contains("%00");
    if nul(uri.path()) || uri.query().is_some_and(nul) {
        return errors::problem(StatusCode::BAD_REQUEST, NUL_REFUSED);
    }
    next.run(req).await
}

/// Validates a list of policies against the catalog.
pub fn check_policies(policies: &[Policy]) -> Result<(), ApiError> {
    Ok(crate::service::tokens::check_policies(policies)?)
}

#[derive(Debug, serde::Deserialize)]
pub struct Page {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

impl Page {
    pub fn limit(&self) -> Result<i64, ApiError> {
        match self.limit {
            None => Ok(50),
            Some(n) if (1..=200).contains(&n) => Ok(n),
            Some(_) => Err(DomainError::Invalid("limit must be between 1 and 200".into()).into()),
        }
    }
}

pub fn time(t: i64) -> Value {
    json!(rfc3339(t))
}

pub fn opt_time(t: Option<i64>) -> Value {
    t.map(time).unwrap_or(Value::Null)
}

/// `{"items": [...], "next_cursor": ...}`
pub fn list(items: Vec<Value>, next_cursor: Option<String>) -> Value {
    json!({"items": items, "next_cursor": next_cursor})
}
