//! The User Groups tab's form: create a group with a first role.

use super::access::{build, GroupInput};
use super::forms::{refusal, Errors, PolicyInput};
use super::{seg, OwnerForm};
use crate::domain::DomainError;
use crate::service::groups::{self, NewGroup};
use crate::web::errors::PageError;
use crate::web::login::see_other;
use crate::web::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;

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

/// The group the form describes, or the errors by field.
fn new_group(input: &GroupInput) -> Result<NewGroup, Errors> {
    let mut errors = Errors::default();
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
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(NewGroup {
        name: input.name.clone(),
        description: input.description.clone(),
        policies: policy.into_iter().collect(),
    })
}

/// The core's refusal next to the field it concerns: a name taken (409)
/// or the role.
fn refused(e: DomainError) -> Result<(StatusCode, Errors), DomainError> {
    let conflict = matches!(e, DomainError::Conflict(_));
    let msg = refusal(e)?;
    Ok(if conflict {
        (StatusCode::CONFLICT, Errors::one("name", msg))
    } else {
        (StatusCode::BAD_REQUEST, Errors::one("role", msg))
    })
}

pub async fn create(
    State(state): State<AppState>,
    OwnerForm { wp, f }: OwnerForm,
) -> Result<Response, PageError> {
    let input = GroupInput {
        name: f.get("name").to_string(),
        description: f.get("description").to_string(),
        policy: PolicyInput::from_fields(&f),
    };
    let (status, errors) = match new_group(&input) {
        Ok(req) => match groups::create(&state, &wp.ctx, req).await {
            Ok(g) => {
                let url = format!("/w/{}/access/groups/{}", seg(wp.slug()), seg(&g.id));
                return Ok(see_other(&format!("{url}?done=created")));
            }
            Err(e) => refused(e)?,
        },
        Err(errors) => (StatusCode::BAD_REQUEST, errors),
    };
    let mut page = build(&state, &wp, "groups", "", None).await?;
    page.new_group = input;
    page.errors = errors;
    Ok(page.render(status))
}
