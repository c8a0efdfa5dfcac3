//! The axum application: routes, shared state and middleware.

pub mod account;
pub use crate::{fastpath, metrics};
pub mod api;
pub mod csrf;
pub mod errors;
pub mod federation;
pub mod forward_auth;
pub mod http;
pub mod invitations;
pub mod login;
pub mod mfa;
pub mod oauth2;
pub mod ops;
pub mod pages;
pub mod sso;
pub mod twilio;
pub mod views;

pub use crate::service::Core;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// The web layer's state: the core ([`crate::service::Core`]) shared by
/// every handler.
#[derive(Clone)]
pub struct AppState(pub Arc<Core>);

impl Deref for AppState {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.0
    }
}

/// Largest request body accepted (forms and JSON).
pub const BODY_LIMIT: usize = 64 * 1024;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(login::home))
        .route("/login", get(login::login_page).post(login::login_email))
        .route("/login/password", post(login::login_password))
        .route("/login/twilio", get(twilio::start))
        .route("/auth/twilio/callback", get(twilio::callback))
        .route("/auth/twilio/confirm", post(twilio::confirm))
        .route("/account/twilio/link", post(twilio::link))
        .route("/account/twilio/unlink", post(twilio::unlink))
        .route("/sso/{id}/start", get(sso::start))
        .route("/sso/saml/{id}/acs", post(sso::saml::acs))
        .route("/sso/saml/{id}/metadata", get(sso::saml::metadata))
        .route("/sso/oidc/{id}/callback", get(sso::oidc::callback))
        .route("/login/mfa", get(mfa::mfa_page).post(mfa::mfa_submit))
        .route(
            "/login/forgot",
            get(login::forgot_page).post(login::forgot_submit),
        )
        .route(
            "/reset-password/{token}",
            get(login::reset_password_page).post(login::reset_password),
        )
        .route(
            "/invitations/{token}",
            get(invitations::show).post(invitations::accept),
        )
        .route("/account", get(account::page))
        .route("/account/profile", post(account::profile))
        .route("/account/password", post(account::change_password))
        .route("/account/mfa/setup", post(account::mfa_setup))
        .route("/account/mfa/confirm", post(account::mfa_confirm))
        .route("/account/mfa/disable", post(account::mfa_disable))
        .route("/account/mfa/step-up", post(account::mfa_step_up))
        .route(
            "/account/mfa/recovery-codes",
            post(account::mfa_new_recovery_codes),
        )
        .route("/account/sessions/revoke", post(account::revoke_sessions))
        .route("/logout", post(login::logout))
        .route("/workspaces", get(login::workspaces))
        .route(
            "/set-password/{token}",
            get(login::set_password_page).post(login::set_password),
        )
        .route("/auth/verify", get(forward_auth::verify))
        .route("/auth/forward", get(forward_auth::forward))
        .route("/.well-known/jwks.json", get(ops::jwks))
        .route("/.well-known/openid-configuration", get(oauth2::discovery))
        .route(
            "/oauth2/authorize",
            get(oauth2::authorize).post(oauth2::authorize_post),
        )
        .route("/oauth2/token", post(oauth2::token))
        .route(
            "/oauth2/userinfo",
            get(oauth2::userinfo).post(oauth2::userinfo),
        )
        .route("/oauth2/revoke", post(oauth2::revoke))
        .route(
            "/oauth2/logout",
            get(oauth2::logout).post(oauth2::logout_confirmed),
        )
        .merge(api::routes(state.clone()))
        .merge(pages::routes(state.clone()))
        .merge(crate::scim::routes())
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/static/app.css", get(ops::stylesheet))
        .route("/static/app.js", get(ops::script))
        // Inside `observe` (its latency includes the sync) and
        // `security_headers` (a 503 for a failed sync carries them too).
        .route_layer(middleware::from_fn(durable_answer))
        .route_layer(middleware::from_fn_with_state(state.clone(), observe))
        .fallback(ops::not_found)
        .layer(middleware::from_fn(security_headers))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// Every request's writes are on disk before its answer leaves, through one
/// shared sync for all of them (SQLite group commit:
/// [`crate::store::group_commit::one_wait`]). When that sync fails the
/// answer is replaced by a 503: what the request did may not be on disk.
pub async fn durable_answer(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let machine = ["/api/", "/scim/", "/oauth2/"]
        .iter()
        .any(|p| path.starts_with(p));
    match crate::store::group_commit::one_wait(next.run(req)).await {
        Ok(resp) => resp,
        Err(e) => {
            let e = crate::domain::DomainError::Unavailable(e.to_string());
            if machine {
                errors::ApiError(e).into_response()
            } else {
                errors::PageError(e).into_response()
            }
        }
    }
}

/// Metrics and one log line per request (path without the query string, so
/// no token or return_to ends up in logs).
async fn observe(
    axum::extract::State(state): axum::extract::State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().clone();
    let request_id = request_id();
    let span = tracing::info_span!("request", id = %request_id, method = %method, route = %route);
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    state
        .metrics
        .observe_request(&route, method.as_str(), status, elapsed);
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let latency_ms = elapsed.as_secs_f64() * 1000.0;
    if route == "/healthz" || route == "/metrics" {
        // Probes: metrics only.
    } else if FORWARD_AUTH_ROUTES.contains(&route.as_str()) && status < 300 {
        // Allowed forward-auth checks come with every request a downstream
        // app serves: counted in the metrics, logged only at debug level
        // (refusals and errors stay at info).
        tracing::debug!(parent: &span, status, latency_ms, "handled");
    } else {
        tracing::info!(parent: &span, status, latency_ms, "handled");
    }
    resp
}

const FORWARD_AUTH_ROUTES: &[&str] = &["/auth/verify", "/auth/forward"];

/// A request id for logs and `X-Request-Id`: unique within the process and
/// unpredictable across restarts, without a system call per request (it is
/// not a secret, so no cryptographic randomness is needed).
fn request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static SEED: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        crate::crypto::random_bytes::<8>()
            .map(u64::from_le_bytes)
            .unwrap_or_default()
    });
    // splitmix64 of seed + counter: a bijection, so ids never repeat
    // within a process, and they do not reveal the request count.
    let mut z = seed.wrapping_add(
        NEXT.fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    format!("{:016x}", z ^ (z >> 31))
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let is_html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
        );
    }
    resp
}
