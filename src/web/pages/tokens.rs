//! The Tokens tab's forms: create an API token (its secret shown once, on
//! the page that answers the form) and revoke one.

use super::access::{build, TokenInput};
use super::forms::{refusal, Errors, Fields, PolicyInput};
use super::{open_for_change, seg};
use crate::domain::roles;
use crate::web::api::tokens::{self, NewToken};
use crate::web::errors::PageError;
use crate::web::login::see_other;
use crate::web::AppState;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use std::net::SocketAddr;

fn tokens_tab(slug: &str) -> String {
    format!("/w/{}/access?tab=tokens", seg(slug))
}

pub async fn create(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(slug): Path<String>,
    body: Bytes,
) -> Result<Response, PageError> {
    let f = Fields::parse(&body);
    let back = tokens_tab(&slug);
    let wp = match open_for_change(&state, &headers, peer, &slug, &back, f.csrf()).await? {
        Ok(wp) => wp,
        Err(r) => return Ok(r),
    };
    let input = TokenInput {
        description: f.get("description").to_string(),
        access: f.get("access").to_string(),
        policy: PolicyInput::from_fields(&f),
    };
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
    let mut page_secret = None;
    if errors.is_empty() {
        let mut policies = vec![roles::Policy::workspace(&input.access)];
        policies.extend(extra.filter(|p| !policies.contains(p)));
        let req = NewToken {
            description: input.description.clone(),
            policies,
        };
        match tokens::create_api_token(&state, &wp.ctx, req).await {
            Ok((_, secret)) => page_secret = Some(secret),
            Err(e) => errors.add("access", refusal(e)?),
        }
    }
    let mut page = build(&state, &wp, "tokens", "", None).await?;
    match page_secret {
        Some(secret) => {
            page.new_secret = Some(secret);
            page.notice = Some("Token created.".into());
            Ok(page.render(StatusCode::OK))
        }
        None => {
            page.new_token = input;
            page.errors = errors;
            Ok(page.render(StatusCode::BAD_REQUEST))
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
    let back = tokens_tab(&slug);
    let wp = match open_for_change(&state, &headers, peer, &slug, &back, f.csrf()).await? {
        Ok(wp) => wp,
        Err(r) => return Ok(r),
    };
    match tokens::revoke_kind(&state, &wp.ctx, "api", &id).await {
        Ok(()) => Ok(see_other(&format!("{back}&done=token_revoked"))),
        Err(e) => {
            let why = refusal(e)?;
            let mut page = build(&state, &wp, "tokens", "", None).await?;
            page.form_error = Some(why);
            Ok(page.render(StatusCode::NOT_FOUND))
        }
    }
}
