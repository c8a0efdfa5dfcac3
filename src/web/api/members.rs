//! Members: list (with open invitations), show, change, remove, CSV.

use super::{check_policies, opt_time, parse_body, time, Ctx, Page};
use crate::domain::model::MemberRow;
use crate::domain::roles::Policy;
use crate::domain::DomainError;
use crate::store::MemberFilter;
use crate::web::errors::ApiError;
use crate::web::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;

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
    let rows = state
        .store
        .list_members(
            &ctx.ws.id,
            &filter,
            super::cursor(q.cursor.as_deref())?,
            limit + 1,
            state.clock.now(),
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let page: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let next = if more {
        page.last().map(|(c, _)| c.clone())
    } else {
        None
    };
    Ok(Json(super::list(
        page.iter().map(|(_, m)| member_json(m)).collect(),
        next,
    )))
}

/// One member with direct policies, group policies and effective access.
pub async fn show(
    State(state): State<AppState>,
    ctx: Ctx,
    Path((_, user_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let access = state
        .store
        .effective_access(&ctx.ws.id, &user_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let user = state
        .store
        .user_by_id(&user_id)
        .await?
        .ok_or(DomainError::NotFound)?;
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MemberPatch {
    pub policies: Option<Vec<Policy>>,
    pub group_ids: Option<Vec<String>>,
}

/// Replaces a member's policies and/or groups (audited); the last owner
/// stays (409).
pub async fn update_member(
    state: &AppState,
    ctx: &Ctx,
    user_id: &str,
    patch: MemberPatch,
) -> Result<(), ApiError> {
    if let Some(p) = &patch.policies {
        check_policies(p)?;
    }
    state
        .store
        .update_member(
            &ctx.ws.id,
            user_id,
            patch.policies.as_deref(),
            patch.group_ids.as_deref(),
        )
        .await?;
    ctx.audit(
        state,
        "member.updated",
        Some(user_id),
        json!({"policies": patch.policies, "group_ids": patch.group_ids}),
    )
    .await;
    Ok(())
}

/// Removes a member (audited); refuses the last owner (409).
pub async fn remove_member(state: &AppState, ctx: &Ctx, user_id: &str) -> Result<(), ApiError> {
    state
        .store
        .remove_member_checked(&ctx.ws.id, user_id)
        .await?;
    ctx.audit(state, "member.removed", Some(user_id), json!({}))
        .await;
    Ok(())
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
    update_member(&state, &ctx, &user_id, patch).await?;
    let access = state
        .store
        .effective_access(&ctx.ws.id, &user_id)
        .await?
        .ok_or(DomainError::NotFound)?;
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
    remove_member(&state, &ctx, &user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub use crate::service::members::{csv_record, csv_stream, CSV_HEADER};

pub fn csv_response(state: &AppState, ws: &crate::domain::model::Workspace) -> Response {
    let stream = csv_stream(state.store.clone(), ws.id.clone(), state.clock.now());
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}-members.csv\"", ws.slug),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// `members.csv` (owners only).
pub async fn csv(
    State(state): State<AppState>,
    ctx: Ctx,
    Path(_slug): Path<String>,
) -> Result<Response, ApiError> {
    ctx.require_owner()?;
    ctx.audit(&state, "members.exported", Some(&ctx.ws.slug), json!({}))
        .await;
    Ok(csv_response(&state, &ctx.ws))
}

/// `/w/{slug}/access/members.csv` for the browser (session cookie; owners).
pub async fn page_csv(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(slug): Path<String>,
) -> Result<Response, crate::web::errors::PageError> {
    let here = format!("/w/{}/access/members.csv", crate::web::pages::seg(&slug));
    let wp = match crate::web::pages::open(&state, &headers, peer, &slug, &here).await? {
        Ok(wp) => wp,
        Err(r) => return Ok(r),
    };
    let ctx = wp.ctx;
    ctx.require_owner()?;
    ctx.audit(&state, "members.exported", Some(&ctx.ws.slug), json!({}))
        .await;
    Ok(csv_response(&state, &ctx.ws))
}
