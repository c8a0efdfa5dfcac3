//! The workspace audit log: list with filters, and CSV.

use super::{time, Ctx};
use crate::domain::csv;
use crate::domain::model::AuditEvent;
use crate::domain::DomainError;
use crate::store::AuditFilter;
use crate::web::errors::ApiError;
use crate::web::AppState;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn event_json(e: &AuditEvent, slug: &str) -> Value {
    json!({"id": e.id, "time": time(e.time), "workspace": slug, "actor": e.actor, "action": e.action, "target": e.target, "ip": e.ip, "details": e.details})
}

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
    pub actor: Option<String>,
    pub action: Option<String>,
    /// RFC 3339 or Unix seconds.
    pub since: Option<String>,
    pub until: Option<String>,
}

fn parse_time(name: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    let Some(v) = v.as_deref().filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    if let Ok(n) = v.parse::<i64>() {
        return Ok(Some(n));
    }
    time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map(|t| Some(t.unix_timestamp()))
        .map_err(|_| {
            DomainError::Invalid(format!(
                "{name}: use RFC 3339 (2026-01-31T12:00:00Z) or Unix seconds"
            ))
            .into()
        })
}

impl AuditQuery {
    fn filter(&self) -> Result<AuditFilter, ApiError> {
        Ok(AuditFilter {
            actor_id: self.actor.clone(),
            action: self.action.clone(),
            since: parse_time("since", &self.since)?,
            until: parse_time("until", &self.until)?,
        })
    }
}

pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(_slug): Path<String>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    ctx.require_owner()?;
    let limit = super::Page {
        cursor: None,
        limit: q.limit,
    }
    .limit()?;
    let rows = state
        .store
        .list_audit(
            &ctx.ws.id,
            &q.filter()?,
            super::cursor(q.cursor.as_deref())?,
            limit + 1,
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let page: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let next = if more {
        page.last()
            .map(|e| crate::store::sql_access::encode_cursor(&[&e.time.to_string(), &e.id]))
    } else {
        None
    };
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
    let filter = q.filter()?;
    let mut out = csv::row(&[
        "id",
        "time",
        "workspace",
        "actor_type",
        "actor_id",
        "actor_email",
        "action",
        "target",
        "ip",
        "details",
    ]);
    let mut cursor: Option<String> = None;
    loop {
        let rows = state
            .store
            .list_audit(&ctx.ws.id, &filter, cursor.as_deref(), 500)
            .await?;
        for e in &rows {
            out.push_str(&csv::row(&[
                e.id.clone(),
                crate::clock::rfc3339(e.time),
                ctx.ws.slug.clone(),
                e.actor.kind.clone(),
                e.actor.id.clone().unwrap_or_default(),
                e.actor.email.clone().unwrap_or_default(),
                e.action.clone(),
                e.target.clone().unwrap_or_default(),
                e.ip.clone().unwrap_or_default(),
                e.details.to_string(),
            ]));
        }
        if rows.len() < 500 {
            break;
        }
        cursor = rows
            .last()
            .map(|e| crate::store::sql_access::encode_cursor(&[&e.time.to_string(), &e.id]));
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}-audit.csv\"", ctx.ws.slug),
            ),
        ],
        out,
    )
        .into_response())
}
