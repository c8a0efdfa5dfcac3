//! Members: list (with open invitations), show, change, remove, CSV.

use super::{opt_time, parse_body, time, Ctx, Page};
use crate::domain::model::MemberRow;
use crate::domain::DomainError;
use crate::service::members;
use crate::store::MemberFilter;
use crate::web::errors::ApiError;
use crate::web::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

pub fn member_json(m: &MemberRow) -> Value {
    json!({
        "user_id": if m.invited { Value::Null } else { json!(m.id) },
        "invitation_id": if m.invited { json!(m.id) } else { Value::Null },
        "email": m.email,
        "name": m.name,
        "status": if m.invited { "invited" } else { "active" },
        "policies": m.policies,
        "group_ids": m.group_ids,
        "auth_method": m.auth_method,
        "created_at": time(m.created_at),
        "last_login_at": opt_time(m.last_login_at),
    })
}

#[derive(Debug, Deserialize)]
pub struct ListQuery {
    pub cursor: Option<String>,
    pub limit: Option<i64>,
    pub email: Option<String>,
    pub role: Option<String>,
    pub group_id: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    ctx: Ctx,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = Page {
        cursor: None,
        limit: q.limit,
    }
    .limit()?;
    let filter = MemberFilter {
        email: q.email,
        role: q.role,
        group_id: q.group_id,
        include_invited: true,
    };
    let cursor = super::cursor(q.cursor.as_deref())?;
    let (rows, next) = members::list(&state, &ctx, &filter, cursor, limit).await?;
    Ok(Json(super::list(
        rows.iter().map(member_json).collect(),
        next,
    )))
}

/// One member with direct policies, group policies and effective access.
pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, user_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let (user, access) = members::show(&state, &ctx, &user_id).await?;
    Ok(Json(json!({
        "user_id": user.id,
        "email": user.email,
        "name": user.name,
        "status": "active",
        "policies": access.direct,
        "groups": access.groups.iter().map(|(id, p)| json!({"id": id, "policies": p})).collect::<Vec<_>>(),
        "group_ids": access.groups.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        "effective_policies": access.all(),
        "mfa_enabled": user.mfa_enabled(),
        "created_at": time(user.created_at),
        "last_login_at": opt_time(user.last_login_at),
    })))
}

/// Replaces a member's policies and/or groups; the last owner stays (409).
pub async fn update(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, user_id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    ctx.require_owner()?;
    let patch: MemberPatch = parse_body(&body)?;
    let access = members::update(&state, &ctx, &user_id, patch).await?;
    Ok(Json(
        json!({"user_id": user_id, "policies": access.direct, "group_ids": access.groups.iter().map(|(g, _)| g.clone()).collect::<Vec<_>>()}),
    ))
}

/// Removes a member: their access to this workspace ends at the next
/// request; the user and their other workspaces stay.
pub async fn remove(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    ctx.require_owner()?;
    members::remove(&state, &ctx, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub use crate::service::members::{csv_record, csv_stream, MemberPatch, CSV_HEADER};

/// The members CSV as a download (owners; audited).
pub async fn csv_response(state: &AppState, ctx: &Ctx) -> Result<Response, DomainError> {
    let stream = members::export(state, ctx).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}-members.csv\"", ctx.ws.slug),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// `members.csv` (owners only).
pub async fn csv(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(_slug): Path<String>,
) -> Result<Response, ApiError> {
    ctx.require_owner()?;
    Ok(csv_response(&state, &ctx).await?)
}

/// `/w/{slug}/access/members.csv` for the browser (session cookie; owners).
pub async fn page_csv(
    State(state): State<AppState>,
    wp: crate::web::pages::WsPage,
) -> Result<Response, crate::web::errors::PageError> {
    Ok(csv_response(&state, &wp.ctx).await?)
}
