//! A member's page (`/w/{slug}/access/users/{user_id}`): their own
//! policies, their groups and those groups' policies, the effective access
//! that results, and the owner's forms to change it or remove them.

use super::access::when;
use super::forms::{refusal, Errors, Fields, PolicyInput};
use super::{
    policy_rows, policy_text, role_options, seg, OwnerForm, PolicyRow, RoleOption, WsPage,
};
use crate::domain::roles::Policy;
use crate::domain::DomainError;
use crate::service::members::{self, MemberPatch};
use crate::web::errors::PageError;
use crate::web::login::see_other;
use crate::web::views::{self, Chrome};
use crate::web::AppState;
use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

pub struct MemberGroup {
    pub id: String,
    pub name: String,
    pub roles: Vec<String>,
    pub member: bool,
}

#[derive(Template)]
#[template(path = "member.html")]
pub struct MemberPage {
    pub chrome: Chrome,
    pub ws_name: String,
    pub slug: String,
    pub section: &'static str,
    pub owner: bool,
    pub read_only_reason: String,
    pub notice: Option<String>,
    pub form_error: Option<String>,
    pub errors: Errors,
    pub roles: Vec<RoleOption>,
    pub user_id: String,
    pub name: String,
    pub email: String,
    pub mfa: bool,
    pub last_login: String,
    pub is_self: bool,
    pub direct: Vec<PolicyRow>,
    pub groups: Vec<MemberGroup>,
    /// Effective roles, each with where it comes from.
    pub effective: Vec<super::RoleItem>,
    pub new_policy: PolicyInput,
}

/// The page, or None when `user_id` is not a member of this workspace.
async fn build(
    state: &AppState,
    wp: &WsPage,
    user_id: &str,
) -> Result<Option<MemberPage>, DomainError> {
    let ws = &wp.ctx.ws;
    let Some(access) = state.store.effective_access(&ws.id, user_id).await? else {
        return Ok(None);
    };
    let Some(user) = state.store.user_by_id(user_id).await? else {
        return Ok(None);
    };
    let all_groups = state.store.list_groups_without_member_ids(&ws.id).await?;
    let group_ids: Vec<String> = access.groups.iter().map(|(id, _)| id.clone()).collect();
    let effective = crate::service::members::sourced_roles(&access.direct, &group_ids, &all_groups);
    let groups = all_groups
        .into_iter()
        .map(|g| MemberGroup {
            member: access.groups.iter().any(|(id, _)| *id == g.id),
            roles: g.policies.iter().map(policy_text).collect(),
            id: g.id,
            name: g.name,
        })
        .collect();
    Ok(Some(MemberPage {
        chrome: wp.chrome.clone(),
        ws_name: ws.name.clone(),
        slug: ws.slug.clone(),
        section: "access",
        owner: wp.owner,
        read_only_reason: wp.read_only_reason(),
        notice: None,
        form_error: None,
        errors: Errors::default(),
        roles: role_options(),
        user_id: user.id.clone(),
        is_self: user.id == wp.user.id,
        name: user.name.clone(),
        email: user.email.clone(),
        mfa: user.mfa_enabled(),
        last_login: user
            .last_login_at
            .map(when)
            .unwrap_or_else(|| "Never".into()),
        direct: policy_rows(&access.direct),
        groups,
        effective: super::role_items(&effective),
        new_policy: PolicyInput::default(),
    }))
}

fn not_a_member(wp: &WsPage) -> Response {
    wp.message(
        StatusCode::NOT_FOUND,
        "Not a member",
        "This person is not a member of this workspace (any more).",
        &format!("/w/{}/access?tab=users", seg(wp.slug())),
    )
}

fn render(page: &MemberPage, status: StatusCode) -> Response {
    (status, views::render(page)).into_response()
}

#[derive(Deserialize)]
pub struct Done {
    pub done: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    wp: WsPage,
    Path((_, user_id)): Path<(String, String)>,
    Query(q): Query<Done>,
) -> Result<Response, PageError> {
    let Some(mut page) = build(&state, &wp, &user_id).await? else {
        return Ok(not_a_member(&wp));
    };
    page.notice = match q.done.as_deref() {
        Some("policies") => Some("Roles saved. They apply from the next request.".into()),
        Some("groups") => Some("Groups saved. They apply from the next request.".into()),
        _ => None,
    };
    Ok(render(&page, StatusCode::OK))
}

/// The member's page again with a refusal at the top.
async fn refused(
    state: &AppState,
    wp: &WsPage,
    user_id: &str,
    why: String,
) -> Result<Response, PageError> {
    let Some(mut page) = build(state, wp, user_id).await? else {
        return Ok(not_a_member(wp));
    };
    page.form_error = Some(why);
    Ok(render(&page, StatusCode::CONFLICT))
}

/// Applies a change to the member; a refusal (such as taking the last
/// owner's role) comes back on the page and nothing changes.
async fn change(
    state: &AppState,
    wp: &WsPage,
    user_id: &str,
    patch: MemberPatch,
    done: &str,
) -> Result<Response, PageError> {
    match members::update(state, &wp.ctx, user_id, patch).await {
        Ok(_) => Ok(see_other(&format!(
            "/w/{}/access/users/{}?done={done}",
            seg(wp.slug()),
            seg(user_id)
        ))),
        Err(e) => {
            let why = refusal(e)?;
            refused(state, wp, user_id, why).await
        }
    }
}

/// A change to one member from their page: the person may change the
/// workspace, the CSRF token matches and `user_id` is a member (with these
/// direct policies); otherwise the rejection is the answer.
pub struct MemberForm {
    wp: WsPage,
    f: Fields,
    user_id: String,
    direct: Vec<Policy>,
}

impl FromRequest<AppState> for MemberForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Path((_, user_id)) = Path::<(String, String)>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let OwnerForm { wp, f } =
            OwnerForm::from_request(Request::from_parts(parts, body), state).await?;
        match members::access(state, &wp.ctx, &user_id).await {
            Ok(access) => Ok(MemberForm {
                wp,
                f,
                user_id,
                direct: access.direct,
            }),
            Err(DomainError::NotFound) => Err(not_a_member(&wp)),
            Err(e) => Err(PageError(e).into_response()),
        }
    }
}

pub async fn add_policy(
    State(state): State<AppState>,
    MemberForm {
        wp,
        f,
        user_id,
        mut direct,
    }: MemberForm,
) -> Result<Response, PageError> {
    let input = PolicyInput::from_fields(&f);
    let errors = match input.policy() {
        Ok(Some(policy)) => {
            if !direct.contains(&policy) {
                direct.push(policy);
            }
            let patch = MemberPatch {
                policies: Some(direct),
                group_ids: None,
            };
            return change(&state, &wp, &user_id, patch, "policies").await;
        }
        Ok(None) => Errors::one("role", "Choose a role to add."),
        Err((field, msg)) => Errors::one(field, msg),
    };
    let Some(mut page) = build(&state, &wp, &user_id).await? else {
        return Ok(not_a_member(&wp));
    };
    page.new_policy = input;
    page.errors = errors;
    Ok(render(&page, StatusCode::BAD_REQUEST))
}

pub async fn remove_policy(
    State(state): State<AppState>,
    MemberForm {
        wp,
        f,
        user_id,
        direct,
    }: MemberForm,
) -> Result<Response, PageError> {
    let Ok(gone) = serde_json::from_str::<Policy>(f.get("policy")) else {
        return Ok(wp.message(
            StatusCode::BAD_REQUEST,
            "Nothing changed",
            "That role could not be read; reload the page and try again.",
            &format!("/w/{}/access/users/{}", seg(wp.slug()), seg(&user_id)),
        ));
    };
    let patch = MemberPatch {
        policies: Some(direct.into_iter().filter(|p| *p != gone).collect()),
        group_ids: None,
    };
    change(&state, &wp, &user_id, patch, "policies").await
}

pub async fn set_groups(
    State(state): State<AppState>,
    MemberForm { wp, f, user_id, .. }: MemberForm,
) -> Result<Response, PageError> {
    let patch = MemberPatch {
        policies: None,
        group_ids: Some(f.all("group_ids")),
    };
    change(&state, &wp, &user_id, patch, "groups").await
}

/// Removes the member: their access to this workspace ends at their next
/// request. The last owner cannot be removed.
pub async fn remove(
    State(state): State<AppState>,
    MemberForm { wp, user_id, .. }: MemberForm,
) -> Result<Response, PageError> {
    match members::remove(&state, &wp.ctx, &user_id).await {
        Ok(()) if user_id == wp.user.id => Ok(see_other("/workspaces")),
        Ok(()) => Ok(see_other(&format!(
            "/w/{}/access?tab=users&done=removed",
            seg(wp.slug())
        ))),
        Err(e) => {
            let why = refusal(e)?;
            refused(&state, &wp, &user_id, why).await
        }
    }
}
