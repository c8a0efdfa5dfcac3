//! The Tokens tab's forms: create an API token (its secret shown once, on
//! the page that answers the form) and revoke one.

use super::access::{build, TokenInput};
use super::forms::{refusal, Errors, PolicyInput};
use super::{seg, OwnerForm};
use crate::domain::roles::{self, Policy};
use crate::service::tokens::{self, Kind, NewToken};
use crate::web::errors::PageError;
use crate::web::login::see_other;
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

fn tokens_tab(slug: &str) -> String {
    format!("/w/{}/access?tab=tokens", seg(slug))
}

/// The token the form describes, or the errors by field.
fn new_token(input: &TokenInput) -> Result<NewToken, Errors> {
    let mut errors = Errors::default();
    let d = &input.description;
    if d.is_empty() || d.chars().count() > 200 || d.chars().any(char::is_control) {
        errors.add(
            "description",
            "Describe what uses this token, in at most 200 characters on one line.",
        );
    }
    if input.access != roles::WORKSPACE_OWNER && input.access != roles::WORKSPACE_MEMBER {
        errors.add("access", "Choose Workspace Member or Workspace Owner.");
    }
    let extra = input.policy.policy().unwrap_or_else(|(field, msg)| {
        errors.add(field, msg);
        None
    });
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut policies = vec![Policy::workspace(&input.access)];
    policies.extend(extra.filter(|p| !policies.contains(p)));
    Ok(NewToken {
        description: input.description.clone(),
        policies,
    })
}

pub async fn create(
    State(state): State<AppState>,
    OwnerForm { wp, f }: OwnerForm,
) -> Result<Response, PageError> {
    let input = TokenInput {
        description: f.get("description").to_string(),
        access: f.get("access").to_string(),
        policy: PolicyInput::from_fields(&f),
    };
    let made = match new_token(&input) {
        Ok(req) => match tokens::create_api(&state, &wp.ctx, req).await {
            Ok((_, secret)) => Ok(secret),
            Err(e) => Err(Errors::one("access", refusal(e)?)),
        },
        Err(errors) => Err(errors),
    };
    let mut page = build(&state, &wp, "tokens", "", None).await?;
    match made {
        Ok(secret) => {
            page.new_secret = Some(secret);
            page.notice = Some("Token created.".into());
            Ok(page.render(StatusCode::OK))
        }
        Err(errors) => {
            page.new_token = input;
            page.errors = errors;
            Ok(page.render(StatusCode::BAD_REQUEST))
        }
    }
}

pub async fn revoke(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    OwnerForm { wp, .. }: OwnerForm,
) -> Result<Response, PageError> {
    match tokens::revoke(&state, &wp.ctx, Kind::Api, &id).await {
        Ok(()) => Ok(see_other(&format!(
            "{}&done=token_revoked",
            tokens_tab(wp.slug())
        ))),
        Err(e) => {
            let why = refusal(e)?;
            let mut page = build(&state, &wp, "tokens", "", None).await?;
            page.form_error = Some(why);
            Ok(page.render(StatusCode::NOT_FOUND))
        }
    }
}
