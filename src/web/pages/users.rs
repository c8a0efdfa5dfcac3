//! The Users tab's forms: invite a team member, resend or revoke an
//! invitation. Changing or removing a member is on the member's page
//! (`member.rs`).

use super::access::{build, InviteInput};
use super::forms::{refusal, Errors, PolicyInput, Refused};
use super::{seg, OwnerForm, WsPage};
use crate::domain::model::valid_email;
use crate::domain::DomainError;
use crate::service::invitations::{self, NewInvite};
use crate::web::errors::PageError;
use crate::web::login::see_other;
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

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

/// Where the invitation service's refusal goes on the form, and with what
/// status (409 for someone already a member or invited).
fn invite_refused(e: impl Refused, errors: &mut Errors) -> Result<StatusCode, DomainError> {
    let e = e.domain();
    let status = if matches!(e, DomainError::Conflict(_)) {
        StatusCode::CONFLICT
    } else {
        StatusCode::BAD_REQUEST
    };
    let msg = refusal(e)?;
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

/// "Invite Team Member": email plus a role (with its scope) and/or groups.
/// A refused form comes back with each error next to its field and nothing
/// sent or stored.
pub async fn invite(
    State(state): State<AppState>,
    OwnerForm { wp, f }: OwnerForm,
) -> Result<Response, PageError> {
    let input = InviteInput {
        email: f.get("email").to_string(),
        policy: PolicyInput::from_fields(&f),
        group_ids: f.all("group_ids"),
    };
    let mut errors = Errors::default();
    let mut status = StatusCode::BAD_REQUEST;
    if !valid_email(&input.email) {
        errors.add("email", "Enter an email address, like name@company.com.");
    }
    let policy = input.policy.policy().unwrap_or_else(|(field, msg)| {
        errors.add(field, msg);
        None
    });
    if errors.is_empty() {
        let req = NewInvite {
            email: input.email.clone(),
            policies: policy.into_iter().collect(),
            group_ids: input.group_ids.clone(),
        };
        match invitations::invite(&state, &wp.ctx, req).await {
            Ok(_) => return Ok(see_other(&format!("{}&done=invited", users_tab(wp.slug())))),
            Err(e) => status = invite_refused(e, &mut errors)?,
        }
    }
    let mut page = build(&state, &wp, "users", "", None).await?;
    page.invite = input;
    page.errors = errors;
    Ok(page.render(status))
}

pub async fn resend(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    OwnerForm { wp, .. }: OwnerForm,
) -> Result<Response, PageError> {
    match invitations::resend(&state, &wp.ctx, &id).await {
        Ok(_) => Ok(see_other(&format!("{}&done=resent", users_tab(wp.slug())))),
        Err(e) => {
            let why = refusal(e)?;
            refused(&state, &wp, StatusCode::CONFLICT, why).await
        }
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    OwnerForm { wp, .. }: OwnerForm,
) -> Result<Response, PageError> {
    match invitations::revoke(&state, &wp.ctx, &id).await {
        Ok(()) => Ok(see_other(&format!("{}&done=revoked", users_tab(wp.slug())))),
        Err(e) => {
            let why = refusal(e)?;
            refused(&state, &wp, StatusCode::CONFLICT, why).await
        }
    }
}
