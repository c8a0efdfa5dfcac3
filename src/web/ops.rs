//! Operations endpoints and static assets.

use super::AppState;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub async fn healthz() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// Ready when the database and the session store both answer.
pub async fn readyz(State(state): State<AppState>) -> Response {
    // A store that hangs (connections open, no answers) is as unready as
    // one that refuses: each check gets a deadline, both run at once.
    let deadline = std::time::Duration::from_secs(2);
    let (db, sessions) = tokio::join!(
        tokio::time::timeout(deadline, state.store.ping()),
        tokio::time::timeout(deadline, state.sessions.kv().ping()),
    );
    let (db, sessions) = (matches!(db, Ok(Ok(()))), matches!(sessions, Ok(Ok(()))));
    let status = if db && sessions {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if status == StatusCode::OK { "ready" } else { "not_ready" },
        "database": if db { "ok" } else { "unreachable" },
        "session_store": if sessions { "ok" } else { "unreachable" },
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

pub async fn metrics(State(state): State<AppState>) -> Response {
    let mut body = state.metrics.render();
    let (checks, rounds) = state.sessions.existence_checks();
    body.push_str(&format!(
        "# HELP iamgw_session_checks_total Session existence checks of forward-auth cache hits.\n\
         # TYPE iamgw_session_checks_total counter\n\
         iamgw_session_checks_total {checks}\n\
         # HELP iamgw_session_check_round_trips_total Session store round trips those checks took (they are batched).\n\
         # TYPE iamgw_session_check_round_trips_total counter\n\
         iamgw_session_check_round_trips_total {rounds}\n"
    ));
    // The back-channel logout outbox, shared by every instance.
    match state.store.logout_counts().await {
        Ok(c) => body.push_str(&format!(
            "# HELP iamgw_backchannel_logouts Back-channel logouts by state (pending: waiting or being retried).\n\
             # TYPE iamgw_backchannel_logouts gauge\n\
             iamgw_backchannel_logouts{{state=\"pending\"}} {}\n\
             iamgw_backchannel_logouts{{state=\"delivered\"}} {}\n\
             iamgw_backchannel_logouts{{state=\"failed\"}} {}\n",
            c.pending, c.delivered, c.failed
        )),
        Err(e) => tracing::warn!(error = %e, "back-channel logout counts unavailable"),
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        body,
    )
        .into_response()
}

pub async fn jwks(State(state): State<AppState>) -> Response {
    let cache = format!("public, max-age={}", crate::keys::JWKS_MAX_AGE_SECS);
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json".to_string()),
            (header::CACHE_CONTROL, cache),
        ],
        state.signer.jwks_json().to_string(),
    )
        .into_response()
}

pub async fn stylesheet() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/app.css"),
    )
        .into_response()
}

/// The pages' one script: small enhancements; every form works without it.
pub async fn script() -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../static/app.js"),
    )
        .into_response()
}

pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain")],
        "not found",
    )
        .into_response()
}
