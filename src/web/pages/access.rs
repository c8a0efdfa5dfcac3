//! `/w/{slug}/access`: Access Management with the tabs Users, User Groups
//! and Tokens (`?tab=users|groups|tokens`), as in Segment.

use super::forms::{Errors, PolicyInput};
use super::{policy_text, role_items, role_options, summary, RoleItem, RoleOption, WsPage};
use crate::domain::model::{Group, MemberRow};
use crate::domain::roles;
use crate::domain::DomainError;
use crate::service::{groups, members, tokens};
use crate::store::MemberFilter;
use crate::web::errors::PageError;
use crate::web::login::see_other;
use crate::web::views::{self, Chrome};
use crate::web::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// Members per page of the Users tab.
pub const PAGE_SIZE: i64 = 50;

pub struct MemberItem {
    /// The user id, or the invitation id for a pending invitation.
    pub id: String,
    pub email: String,
    pub name: String,
    pub invited: bool,
    /// Effective roles, each with where it comes from.
    pub roles: Vec<RoleItem>,
    pub groups: String,
    pub last_login: String,
    pub is_self: bool,
}

pub struct GroupItem {
    pub id: String,
    pub name: String,
    pub description: String,
    pub roles: String,
    pub members: usize,
}

pub struct TokenItem {
    pub id: String,
    pub description: String,
    pub access: String,
    pub creator: String,
    pub created: String,
    pub last_used: String,
}

/// What the invitation form held.
#[derive(Default)]
pub struct InviteInput {
    pub email: String,
    pub policy: PolicyInput,
    pub group_ids: Vec<String>,
}

impl InviteInput {
    pub fn has_group(&self, id: &str) -> bool {
        self.group_ids.iter().any(|g| g == id)
    }
}

/// What the new group form held.
#[derive(Default)]
pub struct GroupInput {
    pub name: String,
    pub description: String,
    pub policy: PolicyInput,
}

/// What the new token form held.
#[derive(Default)]
pub struct TokenInput {
    pub description: String,
    /// workspace_owner or workspace_member
    pub access: String,
    pub policy: PolicyInput,
}

#[derive(Template)]
#[template(path = "access.html")]
pub struct AccessPage {
    pub chrome: Chrome,
    pub ws_name: String,
    pub slug: String,
    pub tab: String,
    /// Which entry of the workspace's navigation is current.
    pub section: &'static str,
    pub owner: bool,
    pub read_only_reason: String,
    pub notice: Option<String>,
    /// A refusal that belongs to the whole form rather than one field.
    pub form_error: Option<String>,
    pub errors: Errors,
    pub roles: Vec<RoleOption>,
    pub q: String,
    pub members: Vec<MemberItem>,
    pub next_page: Option<String>,
    pub member_count: usize,
    pub invited_count: usize,
    pub owner_count: i64,
    pub invite: InviteInput,
    pub groups: Vec<GroupItem>,
    pub new_group: GroupInput,
    pub tokens: Vec<TokenItem>,
    pub new_token: TokenInput,
    /// A token's secret, shown once right after it was made.
    pub new_secret: Option<String>,
}

impl AccessPage {
    pub fn render(&self, status: StatusCode) -> Response {
        (status, views::render(self)).into_response()
    }
}

/// "2025-01-31 14:05 UTC"
pub fn when(unix: i64) -> String {
    let t = crate::clock::rfc3339(unix);
    match (t.get(..10), t.get(11..16)) {
        (Some(d), Some(hm)) => format!("{d} {hm} UTC"),
        _ => t,
    }
}

pub fn tab_of(tab: Option<&str>) -> &'static str {
    match tab {
        Some("groups") => "groups",
        Some("tokens") => "tokens",
        _ => "users",
    }
}

fn member_item(m: &MemberRow, groups: &[Group], me: &str) -> MemberItem {
    let group_names: Vec<&str> = groups
        .iter()
        .filter(|g| m.group_ids.contains(&g.id))
        .map(|g| g.name.as_str())
        .collect();
    MemberItem {
        id: m.id.clone(),
        email: m.email.clone(),
        name: m.name.clone(),
        invited: m.invited,
        roles: role_items(&members::sourced_roles(&m.policies, &m.group_ids, groups)),
        groups: group_names.join(", "),
        last_login: m.last_login_at.map(when).unwrap_or_else(|| "Never".into()),
        is_self: !m.invited && m.id == me,
    }
}

/// The page for one tab, with empty forms; handlers fill in what a refused
/// form held before rendering it again.
pub async fn build(
    state: &AppState,
    wp: &WsPage,
    tab: &str,
    q: &str,
    cursor: Option<&str>,
) -> Result<AccessPage, DomainError> {
    let ws = &wp.ctx.ws;
    let counted = groups::list_counted(state, &wp.ctx).await?;
    let groups: Vec<GroupItem> = counted
        .iter()
        .map(|(g, members)| GroupItem {
            roles: summary(&g.policies),
            members: *members,
            id: g.id.clone(),
            name: g.name.clone(),
            description: g.description.clone(),
        })
        .collect();
    let all_groups: Vec<Group> = counted.into_iter().map(|(g, _)| g).collect();
    let mut page = AccessPage {
        chrome: wp.chrome.clone(),
        ws_name: ws.name.clone(),
        slug: ws.slug.clone(),
        tab: tab.to_string(),
        section: "access",
        owner: wp.owner,
        read_only_reason: wp.read_only_reason(),
        notice: None,
        form_error: None,
        errors: Errors::default(),
        roles: role_options(),
        q: q.to_string(),
        members: Vec::new(),
        next_page: None,
        member_count: 0,
        invited_count: 0,
        owner_count: state.store.count_owners(&ws.id).await?,
        invite: InviteInput::default(),
        groups: Vec::new(),
        new_group: GroupInput::default(),
        tokens: Vec::new(),
        new_token: TokenInput {
            access: roles::WORKSPACE_MEMBER.into(),
            ..TokenInput::default()
        },
        new_secret: None,
    };
    match tab {
        "users" => fill_users(state, wp, &mut page, &all_groups, cursor).await?,
        "tokens" if wp.owner => fill_tokens(state, wp, &mut page).await?,
        _ => {}
    }
    page.groups = groups;
    Ok(page)
}

/// The Users tab: a page of members and invitations matching `page.q`.
async fn fill_users(
    state: &AppState,
    wp: &WsPage,
    page: &mut AccessPage,
    groups: &[Group],
    cursor: Option<&str>,
) -> Result<(), DomainError> {
    let filter = MemberFilter {
        email: Some(page.q.clone()).filter(|q| !q.is_empty()),
        include_invited: true,
        ..MemberFilter::default()
    };
    let (rows, next) = members::list(state, &wp.ctx, &filter, cursor, PAGE_SIZE).await?;
    page.next_page = next.map(|c| super::seg(&c));
    for m in &rows {
        if m.invited {
            page.invited_count += 1;
        } else {
            page.member_count += 1;
        }
        page.members.push(member_item(m, groups, &wp.user.id));
    }
    Ok(())
}

/// The Tokens tab (owners): the API tokens with who made them.
async fn fill_tokens(
    state: &AppState,
    wp: &WsPage,
    page: &mut AccessPage,
) -> Result<(), DomainError> {
    for t in tokens::list(state, &wp.ctx, tokens::Kind::Api).await? {
        let creator = match &t.created_by {
            Some(uid) => state
                .store
                .user_by_id(uid)
                .await?
                .map(|u| u.email)
                .unwrap_or_else(|| "A former member".into()),
            None => "Command line".into(),
        };
        page.tokens.push(TokenItem {
            access: t
                .policies
                .iter()
                .map(policy_text)
                .collect::<Vec<_>>()
                .join(", "),
            description: if t.description.is_empty() {
                "(no description)".into()
            } else {
                t.description.clone()
            },
            creator,
            created: when(t.created_at),
            last_used: t.last_used_at.map(when).unwrap_or_else(|| "Never".into()),
            id: t.id,
        });
    }
    Ok(())
}

/// What a `done=` query parameter says after a successful change.
fn notice(done: Option<&str>) -> Option<String> {
    let text = match done? {
        "invited" => "Invitation sent.",
        "resent" => "Invitation sent again with a new link.",
        "revoked" => "Invitation revoked.",
        "removed" => "Member removed. Their access to this workspace ended at once.",
        "group_deleted" => "Group deleted. Its members keep their own roles.",
        "token_revoked" => "Token revoked. It stopped working at once.",
        _ => return None,
    };
    Some(text.into())
}

#[derive(Deserialize)]
pub struct AccessQuery {
    pub tab: Option<String>,
    pub q: Option<String>,
    pub cursor: Option<String>,
    pub done: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    wp: WsPage,
    Query(query): Query<AccessQuery>,
) -> Result<Response, PageError> {
    let tab = tab_of(query.tab.as_deref());
    let q = query.q.as_deref().unwrap_or("").trim();
    let mut page = match build(&state, &wp, tab, q, query.cursor.as_deref()).await {
        Ok(p) => p,
        Err(DomainError::Invalid(_)) => {
            // A stale or forged cursor: start from the first page.
            build(&state, &wp, tab, q, None).await?
        }
        Err(e) => return Err(e.into()),
    };
    page.notice = notice(query.done.as_deref());
    Ok(page.render(StatusCode::OK))
}

/// `/w/{slug}`: the workspace opens on Access Management.
pub async fn workspace_home(Path(slug): Path<String>) -> Response {
    see_other(&format!("/w/{}/access", super::seg(&slug)))
}
