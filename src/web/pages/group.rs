//! A user group's page (`/w/{slug}/access/groups/{id}`): its name, its
//! members and its roles, with the owner's forms to change them or delete
//! the group.

use super::access::PAGE_SIZE;
use super::forms::{refusal, Errors, Fields, PolicyInput};
use super::groups::{description_error, name_error};
use super::{policy_rows, role_options, seg, OwnerForm, PolicyRow, RoleOption, WsPage};
use crate::domain::model::Group;
use crate::domain::roles::Policy;
use crate::domain::DomainError;
use crate::service::groups::{self, GroupPatch};
use crate::store::MemberFilter;
use crate::web::errors::PageError;
use crate::web::login::see_other;
use crate::web::views::{self, Chrome};
use crate::web::AppState;
use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

pub struct GroupMember {
    pub id: String,
    pub email: String,
    pub name: String,
}

#[derive(Template)]
#[template(path = "group.html")]
pub struct GroupPage {
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
    pub id: String,
    pub name: String,
    pub description: String,
    /// What the rename form shows (the submitted text after a refusal).
    pub edit_name: String,
    pub edit_description: String,
    pub policies: Vec<PolicyRow>,
    /// A page of the members, in email order.
    pub members: Vec<GroupMember>,
    pub member_total: usize,
    /// The next page's cursor, when there is one.
    pub next_page: Option<String>,
    pub new_policy: PolicyInput,
    pub new_member: String,
}

/// The page for group `g`, its members from `cursor` on, a page at a
/// time with how many there are: a group of 50 000 is a page of them and a
/// link to the next, like the Access page's Users tab.
async fn build(
    state: &AppState,
    wp: &WsPage,
    g: &Group,
    cursor: Option<&str>,
) -> Result<GroupPage, DomainError> {
    let filter = MemberFilter {
        group_id: Some(g.id.clone()),
        ..MemberFilter::default()
    };
    let (rows, next) =
        crate::service::members::list(state, &wp.ctx, &filter, cursor, PAGE_SIZE).await?;
    let members = rows
        .into_iter()
        .map(|m| GroupMember {
            id: m.id,
            email: m.email,
            name: m.name,
        })
        .collect();
    Ok(GroupPage {
        chrome: wp.chrome.clone(),
        ws_name: wp.ctx.ws.name.clone(),
        slug: wp.ctx.ws.slug.clone(),
        section: "access",
        owner: wp.owner,
        read_only_reason: wp.read_only_reason(),
        notice: None,
        form_error: None,
        errors: Errors::default(),
        roles: role_options(),
        id: g.id.clone(),
        name: g.name.clone(),
        description: g.description.clone(),
        edit_name: g.name.clone(),
        edit_description: g.description.clone(),
        policies: policy_rows(&g.policies),
        members,
        member_total: groups::member_count(state, &wp.ctx, &g.id).await?,
        next_page: next.map(|c| seg(&c)),
        new_policy: PolicyInput::default(),
        new_member: String::new(),
    })
}

fn render(page: &GroupPage, status: StatusCode) -> Response {
    (status, views::render(page)).into_response()
}

fn group_url(slug: &str, id: &str) -> String {
    format!("/w/{}/access/groups/{}", seg(slug), seg(id))
}

fn no_group(wp: &WsPage) -> Response {
    wp.message(
        StatusCode::NOT_FOUND,
        "Group not found",
        "This user group does not exist (any more).",
        &format!("/w/{}/access?tab=groups", seg(wp.slug())),
    )
}

#[derive(Deserialize)]
pub struct Done {
    pub done: Option<String>,
    pub cursor: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    wp: WsPage,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<Done>,
) -> Result<Response, PageError> {
    let g = match groups::get_bare(&state, &wp.ctx, &id).await {
        Ok(g) => g,
        Err(DomainError::NotFound) => return Ok(no_group(&wp)),
        Err(e) => return Err(e.into()),
    };
    let mut page = build(&state, &wp, &g, q.cursor.as_deref()).await?;
    page.notice = match q.done.as_deref() {
        Some("created") => Some("Group created. Add its members below.".into()),
        Some("saved") => {
            Some("Saved. It applies to the group's members from their next request.".into())
        }
        _ => None,
    };
    Ok(render(&page, StatusCode::OK))
}

/// A change to one group from its page: the person may change the
/// workspace, the CSRF token matches and the group exists; otherwise the
/// answer to send instead is the rejection.
pub struct GroupForm {
    wp: WsPage,
    /// The group, without its members' ids.
    g: Group,
    f: Fields,
}

impl FromRequest<AppState> for GroupForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Path((_, id)) = Path::<(String, String)>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let OwnerForm { wp, f } =
            OwnerForm::from_request(Request::from_parts(parts, body), state).await?;
        match groups::get_bare(state, &wp.ctx, &id).await {
            Ok(g) => Ok(GroupForm { wp, g, f }),
            Err(DomainError::NotFound) => Err(no_group(&wp)),
            Err(e) => Err(PageError(e).into_response()),
        }
    }
}

/// The page again after a refusal, with what the form held.
async fn refused(
    state: &AppState,
    wp: &WsPage,
    g: &Group,
    status: StatusCode,
    fill: impl FnOnce(&mut GroupPage),
) -> Result<Response, PageError> {
    let mut page = build(state, wp, g, None).await?;
    fill(&mut page);
    Ok(render(&page, status))
}

async fn apply(
    state: &AppState,
    wp: &WsPage,
    g: &Group,
    patch: GroupPatch,
) -> Result<Response, PageError> {
    match groups::update(state, &wp.ctx, &g.id, patch).await {
        Ok(_) => Ok(see_other(&format!(
            "{}?done=saved",
            group_url(wp.slug(), &g.id)
        ))),
        Err(e) => {
            let why = refusal(e)?;
            refused(state, wp, g, StatusCode::CONFLICT, |p| {
                p.form_error = Some(why)
            })
            .await
        }
    }
}

pub async fn edit(
    State(state): State<AppState>,
    GroupForm { wp, g, f }: GroupForm,
) -> Result<Response, PageError> {
    let (name, description) = (f.get("name").to_string(), f.get("description").to_string());
    let mut errors = Errors::default();
    if let Some(e) = name_error(&name) {
        errors.add("name", e);
    }
    if let Some(e) = description_error(&description) {
        errors.add("description", e);
    }
    if !errors.is_empty() {
        return refused(&state, &wp, &g, StatusCode::BAD_REQUEST, |p| {
            p.errors = errors;
            p.edit_name = name;
            p.edit_description = description;
        })
        .await;
    }
    let patch = GroupPatch {
        name: Some(name),
        description: Some(description),
        policies: None,
    };
    apply(&state, &wp, &g, patch).await
}

pub async fn add_policy(
    State(state): State<AppState>,
    GroupForm { wp, g, f }: GroupForm,
) -> Result<Response, PageError> {
    let input = PolicyInput::from_fields(&f);
    let policy = match input.policy() {
        Ok(Some(p)) => p,
        other => {
            let errors = match other {
                Err((field, msg)) => Errors::one(field, msg),
                _ => Errors::one("role", "Choose a role to add."),
            };
            return refused(&state, &wp, &g, StatusCode::BAD_REQUEST, |p| {
                p.errors = errors;
                p.new_policy = input;
            })
            .await;
        }
    };
    let mut policies = g.policies.clone();
    if !policies.contains(&policy) {
        policies.push(policy);
    }
    let patch = GroupPatch {
        policies: Some(policies),
        ..GroupPatch::default()
    };
    apply(&state, &wp, &g, patch).await
}

pub async fn remove_policy(
    State(state): State<AppState>,
    GroupForm { wp, g, f }: GroupForm,
) -> Result<Response, PageError> {
    let Ok(gone) = serde_json::from_str::<Policy>(f.get("policy")) else {
        return refused(&state, &wp, &g, StatusCode::BAD_REQUEST, |p| {
            p.form_error =
                Some("That role could not be read; reload the page and try again.".into())
        })
        .await;
    };
    let patch = GroupPatch {
        policies: Some(g.policies.iter().filter(|p| **p != gone).cloned().collect()),
        ..GroupPatch::default()
    };
    apply(&state, &wp, &g, patch).await
}

pub async fn add_member(
    State(state): State<AppState>,
    GroupForm { wp, g, f }: GroupForm,
) -> Result<Response, PageError> {
    let email = f.get("email").to_string();
    let Some(user) = crate::service::members::by_email(&state, &wp.ctx, &email).await? else {
        let msg = if email.is_empty() {
            "Enter the email of a member of this workspace."
        } else {
            "Nobody with this email is a member of this workspace. Invite them first."
        };
        return refused(&state, &wp, &g, StatusCode::BAD_REQUEST, |p| {
            p.errors = Errors::one("email", msg);
            p.new_member = email;
        })
        .await;
    };
    match groups::set_member(&state, &wp.ctx, &g.id, &user.id, true).await {
        Ok(()) => Ok(see_other(&format!(
            "{}?done=saved",
            group_url(wp.slug(), &g.id)
        ))),
        Err(e) => {
            let why = refusal(e)?;
            refused(&state, &wp, &g, StatusCode::CONFLICT, |p| {
                p.errors = Errors::one("email", why);
                p.new_member = email;
            })
            .await
        }
    }
}

pub async fn remove_member(
    State(state): State<AppState>,
    GroupForm { wp, g, f }: GroupForm,
) -> Result<Response, PageError> {
    match groups::set_member(&state, &wp.ctx, &g.id, f.get("user_id"), false).await {
        Ok(()) => Ok(see_other(&format!(
            "{}?done=saved",
            group_url(wp.slug(), &g.id)
        ))),
        Err(e) => {
            let why = refusal(e)?;
            refused(&state, &wp, &g, StatusCode::CONFLICT, |p| {
                p.form_error = Some(why)
            })
            .await
        }
    }
}

pub async fn delete(
    State(state): State<AppState>,
    GroupForm { wp, g, .. }: GroupForm,
) -> Result<Response, PageError> {
    match groups::delete(&state, &wp.ctx, &g.id).await {
        Ok(()) => Ok(see_other(&format!(
            "/w/{}/access?tab=groups&done=group_deleted",
            seg(wp.slug())
        ))),
        Err(e) => {
            let why = refusal(e)?;
            refused(&state, &wp, &g, StatusCode::CONFLICT, |p| {
                p.form_error = Some(why)
            })
            .await
        }
    }
}
