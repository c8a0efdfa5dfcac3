//! The workspace audit log: list with filters, and CSV.

use super::{time, Ctx};
use crate::domain::model::AuditEvent;
use crate::service::audit_log;
pub use crate::service::audit_log::AuditQuery;
use crate::web::errors::ApiError;
use crate::web::AppState;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

pub fn event_json(e: &AuditEvent, slug: &str) -> Value {
    json!({"id": e.id, "time": time(e.time), "workspace": slug, "actor": e.actor, "action": e.action, "target": e.target, "ip": e.ip, "details": e.details})
}

pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(_slug): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    // Before the query is read: a non-owner learns nothing from its checks.
    ctx.require_owner()?;
    let limit = super::Page {
        cursor: None,
        limit: q.limit,
    }
    .limit()?;
    let filter = q.filter()?;
    let cursor = super::cursor(q.cursor.as_deref())?;
    let (page, next) = audit_log::list(&state, &ctx, &filter, cursor, limit).await?;
    Ok(Json(super::list(
        page.iter().map(|e| event_json(e, &ctx.ws.slug)).collect(),
        next,
    )))
}

pub async fn csv(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(_slug): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Result<Response, ApiError> {
    ctx.require_owner()?;
    let out = audit_log::csv(&state, &ctx, &q.filter()?).await?;
    let disposition = format!("attachment; filename=\"{}-audit.csv\"", ctx.ws.slug);
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        out,
    )
        .into_response())
}
