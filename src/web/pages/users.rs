//! The Users tab's forms: invite a team member, resend or revoke an
//! invitation. Changing or removing a member is on the member's page
//! (`member.rs`).

use super::access::{build, InviteInput};
use super::forms::{refusal, Errors, Fields, PolicyInput};
use super::{open_for_change, seg, WsPage};
use crate::domain::model::valid_email;
use crate::domain::DomainError;
use crate::service::invitations::{self, NewInvite};
use crate::web::errors::{ApiError, PageError};
use crate::web::login::see_other;
use crate::web::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::net::SocketAddr;

fn users_tab(slug: &str) -> String {
    format!("/w/{}/access?tab=users", seg(slug))
}

/// The Users tab again with a refusal at the top.
async fn refused(
    state: &AppState,
    wp: &WsPage,
    status: StatusCode,
    why: String,
) -> Result<Response, PageError> {
    let mut page = build(state, wp, "users", "", None).await?;
    page.form_error = Some(why);
    Ok(page.render(status))
}

/// A refused invitation next to the field at fault; the page's status.
fn invite_refused(e: DomainError, errors: &mut Errors) -> Result<StatusCode, DomainError> {
    let status = if matches!(e, DomainError::Conflict(_)) {
        StatusCode::CONFLICT
    } else {
        StatusCode::BAD_REQUEST
    };
    let msg = refusal(ApiError(e))?;
    let field = if msg.contains("group") {
        "group_ids"
    } else if msg.starts_with("Email") || status == StatusCode::CONFLICT {
        "email"
    } else {
        "role"
    };
    errors.add(field, msg);
    Ok(status)
}

/// What the invite form asks for, or what is wrong with it, field by field.
fn invite_form(input: &InviteInput) -> Result<NewInvite, Errors> {
    let mut errors = Errors::default();
    if !valid_email(&input.email) {
        errors.add("email", "Enter an email address, like name@company.com.");
    }
    let policy = input.policy.policy().unwrap_or_else(|(field, msg)| {
        errors.add(field, msg);
        None
    });
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(NewInvite {
        email: input.email.clone(),
        policies: policy.into_iter().collect(),
        group_ids: input.group_ids.clone(),
    })
}

/// "Invite Team Member": email plus a role (with its scope) and/or groups.
/// A refused form comes back with each error next to its field and nothing
/// sent or stored.
pub async fn invite(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = Fields::parse(&body);
    let back = users_tab(&slug);
    let wp = match open_for_change(&state, &headers, peer, &slug, &back, f.csrf()).await? {
        Ok(wp) => wp,
        Err(r) => return Ok(r),
    };
    let input = InviteInput {
        email: f.get("email").to_string(),
        policy: PolicyInput::from_fields(&f),
        group_ids: f.all("group_ids"),
    };
    let (errors, status) = match invite_form(&input) {
        Err(errors) => (errors, StatusCode::BAD_REQUEST),
        Ok(req) => match invitations::invite(&state, &wp.ctx, req).await {
            Ok(_) => return Ok(see_other(&format!("{back}&done=invited"))),
            Err(e) => {
                let mut errors = Errors::default();
                let status = invite_refused(e, &mut errors)?;
                (errors, status)
            }
        },
    };
    let mut page = build(&state, &wp, "users", "", None).await?;
    page.invite = input;
    page.errors = errors;
    Ok(page.render(status))
}

pub async fn resend(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((slug, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = Fields::parse(&body);
    let back = users_tab(&slug);
    let wp = match open_for_change(&state, &headers, peer, &slug, &back, f.csrf()).await? {
        Ok(wp) => wp,
        Err(r) => return Ok(r),
    };
    match invitations::resend(&state, &wp.ctx, &id).await {
        Ok(_) => Ok(see_other(&format!("{back}&done=resent"))),
        Err(e) => {
            let why = refusal(ApiError(e))?;
            refused(&state, &wp, StatusCode::CONFLICT, why).await
        }
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((slug, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = Fields::parse(&body);
    let back = users_tab(&slug);
    let wp = match open_for_change(&state, &headers, peer, &slug, &back, f.csrf()).await? {
        Ok(wp) => wp,
        Err(r) => return Ok(r),
    };
    match invitations::revoke(&state, &wp.ctx, &id).await {
        Ok(()) => Ok(see_other(&format!("{back}&done=revoked"))),
        Err(e) => {
            let why = refusal(ApiError(e))?;
            refused(&state, &wp, StatusCode::CONFLICT, why).await
        }
    }
}
