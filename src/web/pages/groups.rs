//! The User Groups tab's form: create a group with a first role.

use super::access::{build, GroupInput};
use super::forms::{refusal, Errors, Fields, PolicyInput};
use super::{open_for_change, seg};
use crate::web::api::groups::{self, NewGroup};
use crate::web::errors::PageError;
use crate::web::login::see_other;
use crate::web::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::net::SocketAddr;

/// Checks a group name as the API does, with the words a form needs.
pub fn name_error(name: &str) -> Option<&'static str> {
    groups::check_name(name)
        .err()
        .map(|_| "Give the group a name of 1 to 100 characters, on one line.")
}

pub fn description_error(description: &str) -> Option<&'static str> {
    (description.chars().count() > 500 || description.chars().any(char::is_control))
        .then_some("Keep the description to one line of at most 500 characters.")
}

pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = Fields::parse(&body);
    let back = format!("/w/{}/access?tab=groups", seg(&slug));
    let wp = match open_for_change(&state, &headers, peer, &slug, &back, f.csrf()).await? {
        Ok(wp) => wp,
        Err(r) => return Ok(r),
    };
    let input = GroupInput {
        name: f.get("name").to_string(),
        description: f.get("description").to_string(),
        policy: PolicyInput::from_fields(&f),
    };
    let mut errors = Errors::default();
    let mut status = StatusCode::BAD_REQUEST;
    if let Some(e) = name_error(&input.name) {
        errors.add("name", e);
    }
    if let Some(e) = description_error(&input.description) {
        errors.add("description", e);
    }
    let policy = input.policy.policy().unwrap_or_else(|(field, msg)| {
        errors.add(field, msg);
        None
    });
    if errors.is_empty() {
        let req = NewGroup {
            name: input.name.clone(),
            description: input.description.clone(),
            policies: policy.into_iter().collect(),
        };
        match groups::create_group(&state, &wp.ctx, req).await {
            Ok(g) => {
                return Ok(see_other(&format!(
                    "/w/{}/access/groups/{}?done=created",
                    seg(&slug),
                    seg(&g.id)
                )))
            }
            Err(e) => {
                if matches!(e.0, crate::domain::DomainError::Conflict(_)) {
                    status = StatusCode::CONFLICT;
                }
                let msg = refusal(e)?;
                errors.add(
                    if status == StatusCode::CONFLICT {
                        "name"
                    } else {
                        "role"
                    },
                    msg,
                );
            }
        }
    }
    let mut page = build(&state, &wp, "groups", "", None).await?;
    page.new_group = input;
    page.errors = errors;
    Ok(page.render(status))
}
