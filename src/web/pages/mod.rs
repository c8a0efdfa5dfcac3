//! The workspace owner's pages: Access Management (users, user groups,
//! tokens), a member's page, a group's page, the SSO settings and the
//! audit log. Each page lives in its own file; this one holds what they
//! share: who is looking and what they may do, form parsing, field errors,
//! policy fields and the header's workspace switcher.
//!
//! The rules are the core's (`service/`): the gate makes the one decision
//! (`service::access::authorize`) before any handler and hands it over
//! through the [`WsPage`] extractor ([`OwnerForm`] for an owner's form
//! posts); handlers change things through the same service operations as
//! the REST API, so a page can never allow what the API refuses.

pub mod access;
pub mod apps;
pub mod audit;
pub mod forms;
pub mod group;
pub mod groups;
pub mod member;
pub mod sso;
pub mod sso_backend;
pub mod sso_connection;
pub mod sso_idp;
pub mod tokens;
pub mod users;

use super::api::Verb;
use super::api::{ctx_for, Caller, Ctx, Need};
use super::csrf;
use super::errors::PageError;
use super::http::current_session;
use super::login::{csrf_refused, see_other};
use super::views::{self, Chrome, MessagePage, NavWorkspace};
use super::AppState;
use crate::domain::model::User;
use crate::domain::roles::{self, Policy, Scope};
use crate::domain::DomainError;
use crate::service::members::{RoleSource, SourcedRole};
use crate::session::Session;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, MatchedPath, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use forms::Fields;
use std::net::SocketAddr;

/// One page route: method, path template and handler.
pub struct PageRoute {
    pub verb: Verb,
    pub path: &'static str,
    router: MethodRouter<AppState>,
}

fn page(verb: Verb, path: &'static str, router: MethodRouter<AppState>) -> PageRoute {
    PageRoute { verb, path, router }
}

/// Every workspace page (`/w/{slug}/...`). All of them pass [`gate`], the
/// one decision, before their handler runs.
pub fn page_routes() -> Vec<PageRoute> {
    use Verb::{Get, Post};
    vec![
        page(Get, "/w/{slug}", get(access::workspace_home)),
        page(
            Get,
            "/w/{slug}/access/members.csv",
            get(super::api::members::page_csv),
        ),
        page(Get, "/w/{slug}/access", get(access::page)),
        page(Post, "/w/{slug}/access/invitations", post(users::invite)),
        page(
            Post,
            "/w/{slug}/access/invitations/{id}/resend",
            post(users::resend),
        ),
        page(
            Post,
            "/w/{slug}/access/invitations/{id}/revoke",
            post(users::revoke),
        ),
        page(Get, "/w/{slug}/access/users/{user_id}", get(member::page)),
        page(
            Post,
            "/w/{slug}/access/users/{user_id}/policies",
            post(member::add_policy),
        ),
        page(
            Post,
            "/w/{slug}/access/users/{user_id}/policies/remove",
            post(member::remove_policy),
        ),
        page(
            Post,
            "/w/{slug}/access/users/{user_id}/groups",
            post(member::set_groups),
        ),
        page(
            Post,
            "/w/{slug}/access/users/{user_id}/remove",
            post(member::remove),
        ),
        page(Post, "/w/{slug}/access/groups", post(groups::create)),
        page(Get, "/w/{slug}/access/groups/{id}", get(group::page)),
        page(Post, "/w/{slug}/access/groups/{id}/edit", post(group::edit)),
        page(
            Post,
            "/w/{slug}/access/groups/{id}/policies",
            post(group::add_policy),
        ),
        page(
            Post,
            "/w/{slug}/access/groups/{id}/policies/remove",
            post(group::remove_policy),
        ),
        page(
            Post,
            "/w/{slug}/access/groups/{id}/members",
            post(group::add_member),
        ),
        page(
            Post,
            "/w/{slug}/access/groups/{id}/members/remove",
            post(group::remove_member),
        ),
        page(
            Post,
            "/w/{slug}/access/groups/{id}/delete",
            post(group::delete),
        ),
        page(Post, "/w/{slug}/access/tokens", post(tokens::create)),
        page(
            Post,
            "/w/{slug}/access/tokens/{id}/revoke",
            post(tokens::revoke),
        ),
        page(Get, "/w/{slug}/audit", get(audit::page)),
        page(Get, "/w/{slug}/apps", get(apps::page)),
        page(Post, "/w/{slug}/apps", post(apps::create)),
        page(
            Post,
            "/w/{slug}/apps/{client_id}/delete",
            post(apps::delete),
        ),
        page(Get, "/w/{slug}/settings/sso", get(sso::page)),
        page(
            Post,
            "/w/{slug}/settings/sso/settings",
            post(sso::save_settings),
        ),
        page(
            Post,
            "/w/{slug}/settings/sso/connections",
            post(sso_idp::add_connection),
        ),
        page(
            Post,
            "/w/{slug}/settings/sso/connections/{id}/delete",
            post(sso_idp::delete_connection),
        ),
        page(
            Get,
            "/w/{slug}/settings/sso/connections/{id}",
            get(sso_connection::page),
        ),
        page(
            Post,
            "/w/{slug}/settings/sso/connections/{id}/edit",
            post(sso_connection::edit),
        ),
        page(
            Post,
            "/w/{slug}/settings/sso/connections/{id}/mappings",
            post(sso_connection::add_mapping),
        ),
        page(
            Post,
            "/w/{slug}/settings/sso/connections/{id}/mappings/remove",
            post(sso_connection::remove_mapping),
        ),
        page(
            Post,
            "/w/{slug}/settings/sso/connections/{id}/idp",
            post(sso_connection::replace_idp),
        ),
        page(
            Post,
            "/w/{slug}/settings/sso/connections/{id}/test",
            post(sso_connection::test_sign_in),
        ),
        page(
            Post,
            "/w/{slug}/settings/sso/exemptions",
            post(sso::add_exemption),
        ),
        page(
            Post,
            "/w/{slug}/settings/sso/exemptions/remove",
            post(sso::remove_exemption),
        ),
        page(
            Post,
            "/w/{slug}/settings/sso/domains",
            post(sso_idp::add_domain),
        ),
        page(
            Post,
            "/w/{slug}/settings/sso/domains/{domain}/verify",
            post(sso_idp::verify_domain),
        ),
        page(
            Post,
            "/w/{slug}/settings/sso/domains/{domain}/delete",
            post(sso_idp::delete_domain),
        ),
        page(
            Post,
            "/w/{slug}/settings/sso/scim-tokens",
            post(sso::create_scim_token),
        ),
        page(
            Post,
            "/w/{slug}/settings/sso/scim-tokens/{id}/revoke",
            post(sso::revoke_scim_token),
        ),
    ]
}

/// The (method, path template) pairs of the workspace pages.
pub fn route_table() -> Vec<(Verb, &'static str)> {
    page_routes().iter().map(|r| (r.verb, r.path)).collect()
}

pub fn routes(state: AppState) -> Router<AppState> {
    let mut router = Router::new();
    for r in page_routes() {
        router = router.route(r.path, r.router);
    }
    router.route_layer(middleware::from_fn_with_state(state, gate))
}

/// The workspace pages' door: the signed-in person, the workspace and the
/// one decision (SPEC 6b) before any handler: sign in again, go through the
/// workspace's IdP or add a second factor (each coming back here), or a page
/// saying why not. Form posts then check their CSRF token and owner rights.
async fn gate(
    axum::extract::State(state): axum::extract::State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(params): Path<std::collections::HashMap<String, String>>,
    req: Request,
    next: Next,
) -> Response {
    let here = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    let slug = params.get("slug").map(String::as_str).unwrap_or_default();
    match decide(&state, req.headers(), peer, slug, &here).await {
        // The handler gets this decision (the [`WsPage`] extractor), not a
        // second one: a second session look-up would no longer see the idle
        // time.
        Ok(wp) => {
            let mut req = req;
            req.extensions_mut().insert(wp);
            next.run(req).await
        }
        Err(refusal) => refusal,
    }
}

/// A signed-in person looking at one workspace, authorised to read it.
#[derive(Clone)]
pub struct WsPage {
    pub ctx: Ctx,
    pub user: User,
    pub session: Session,
    /// Workspace Owner: may change things. Everyone else reads.
    pub owner: bool,
    pub chrome: Chrome,
}

impl WsPage {
    pub fn slug(&self) -> &str {
        &self.ctx.ws.slug
    }

    /// The text read-only pages show to say why.
    pub fn read_only_reason(&self) -> String {
        format!(
            "You can look but not change anything here: only a Workspace Owner can manage access in {}. Ask an owner if you need a change.",
            self.ctx.ws.name
        )
    }

    /// A page saying something went wrong, in this workspace's frame.
    pub fn message(&self, status: StatusCode, title: &str, text: &str, back: &str) -> Response {
        let page = MessagePage {
            chrome: self.chrome.clone(),
            title: title.into(),
            message: text.into(),
            link: Some((back.into(), "Go back".into())),
        };
        (status, views::render(&page)).into_response()
    }

    /// 403 for a change attempted without owner rights.
    pub fn not_owner(&self, back: &str) -> Response {
        self.message(
            StatusCode::FORBIDDEN,
            "Only workspace owners can do this",
            &self.read_only_reason(),
            back,
        )
    }
}

/// The header's workspace switcher, the Twilio product switcher (for a
/// Twilio-linked account) and the CSRF token, for a signed-in person.
pub async fn signed_in_chrome(
    state: &AppState,
    session: &Session,
    user: &User,
    current: Option<&str>,
) -> Result<Chrome, DomainError> {
    let workspaces = state
        .store
        .workspaces_of_user(&user.id)
        .await?
        .into_iter()
        .map(|w| NavWorkspace {
            current: current == Some(w.workspace.slug.as_str()),
            slug: w.workspace.slug,
            name: w.workspace.name,
        })
        .collect();
    Ok(Chrome {
        csrf: csrf::token_for_session(state, session),
        user_email: Some(user.email.clone()),
        workspaces,
        current_workspace: current.map(str::to_string),
        twilio_console: crate::service::twilio::console_for(state, &user.id).await?,
    })
}

/// The one decision for a workspace page: the signed-in person, the
/// workspace and [`crate::service::access::authorize`]. A refusal is the
/// answer to send: a redirect to sign in (or to the IdP, or to add a second
/// factor), 404 for a non-member (the workspace is not revealed), 403 with
/// the reason for the rest.
async fn decide(
    state: &AppState,
    headers: &HeaderMap,
    peer: SocketAddr,
    slug: &str,
    here: &str,
) -> Result<WsPage, Response> {
    let (user, session) = signed_in(state, headers, here).await?;
    let chrome = signed_in_chrome(state, &session, &user, None)
        .await
        .map_err(|e| PageError(e).into_response())?;
    // Pages read with GET rules: a form's csrf_token is checked by
    // [`OwnerForm`], not the API's X-CSRF-Token header.
    let caller = Caller::User {
        user: user.clone(),
        session: session.clone(),
    };
    let ctx = match ctx_for(state, caller, headers, peer, slug, Need::Read).await {
        Ok(ctx) => ctx,
        Err(e) => return Err(refused(e.0, chrome, here).unwrap_or_else(|e| e.into_response())),
    };
    Ok(WsPage {
        chrome: in_workspace(chrome, &ctx.ws.slug),
        owner: ctx.owner,
        ctx,
        user,
        session,
    })
}

/// The signed-in person and their session, or a redirect to sign in
/// (coming back to `here`).
async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
    here: &str,
) -> Result<(User, Session), Response> {
    let fail = |e: DomainError| PageError(e).into_response();
    let found = current_session(state, headers)
        .await
        .map_err(|e| fail(e.into()))?;
    let Some((_, session)) = found else {
        return Err(see_other(&format!(
            "/login?return_to={}",
            super::forward_auth::urlencode(here)
        )));
    };
    let user = state
        .store
        .user_by_id(&session.uid)
        .await
        .map_err(|e| fail(e.into()))?;
    match user {
        Some(user) => Ok((user, session)),
        None => Err(see_other("/login")),
    }
}

/// The header's chrome with workspace `slug` as the current one.
fn in_workspace(chrome: Chrome, slug: &str) -> Chrome {
    Chrome {
        current_workspace: Some(slug.to_string()),
        workspaces: chrome
            .workspaces
            .into_iter()
            .map(|mut w| {
                w.current = w.slug == slug;
                w
            })
            .collect(),
        ..chrome
    }
}

/// The pages' shape of a refusal by the one decision (SPEC 6b): sign in
/// again, go through the workspace's IdP, or add a second factor, each
/// coming back to `here`; a page saying why for the rest.
fn refused(e: DomainError, chrome: Chrome, here: &str) -> Result<Response, PageError> {
    let back = super::forward_auth::urlencode(here);
    let (status, title, text) = match e {
        DomainError::Unauthenticated => {
            return Ok(see_other(&format!("/login?return_to={back}")));
        }
        DomainError::SsoRequired(Some(connection)) => {
            return Ok(see_other(&format!(
                "/sso/{}/start?return_to={back}",
                seg(&connection)
            )));
        }
        DomainError::SsoRequired(None) => (
            StatusCode::FORBIDDEN,
            "Single sign-on required",
            "This workspace requires signing in through its single sign-on, and no SSO connection is enabled. Ask a workspace owner.".to_string(),
        ),
        DomainError::MfaRequired => {
            return Ok(see_other(&format!("/account?return_to={back}#two-factor")));
        }
        DomainError::Forbidden(why) => (
            StatusCode::FORBIDDEN,
            "No access to this page",
            format!("{why} Your role in this workspace does not include reading its access settings; ask a workspace owner."),
        ),
        DomainError::NotFound => (
            StatusCode::NOT_FOUND,
            "Workspace not found",
            "There is no workspace here that you are a member of.".to_string(),
        ),
        other => return Err(PageError(other)),
    };
    let page = MessagePage {
        chrome,
        title: title.into(),
        message: text,
        link: Some(("/workspaces".into(), "Your workspaces".into())),
    };
    Ok((status, views::render(&page)).into_response())
}

/// Why `wp` may not post this form, if it may not: the form's token is not
/// this session's (expired form), or the person is not an owner.
fn change_refused(
    state: &AppState,
    headers: &HeaderMap,
    wp: &WsPage,
    csrf_token: Option<&str>,
    back: &str,
) -> Option<Response> {
    if !csrf::verify(state, headers, Some(&wp.session), csrf_token) {
        return Some(csrf_refused());
    }
    if !wp.owner {
        return Some(wp.not_owner(back));
    }
    None
}

/// The gate's decision for this request: a workspace page's handler takes
/// it as an argument.
impl FromRequestParts<AppState> for WsPage {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut Parts, _state: &AppState) -> Result<Self, PageError> {
        parts.extensions.remove::<WsPage>().ok_or_else(|| {
            PageError(DomainError::Internal(
                "a workspace page ran without the workspace gate".into(),
            ))
        })
    }
}

/// A form posted to a workspace page by an owner with this session's form
/// token: the page and the form's fields. Otherwise the rejection is the
/// answer (the expired-form page, or 403 read-only linking back to the page
/// the form is on).
pub struct OwnerForm {
    pub wp: WsPage,
    pub f: Fields,
}

impl FromRequest<AppState> for OwnerForm {
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let wp = WsPage::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let back = form_back(&mut parts, state).await;
        let headers = parts.headers.clone();
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let f = Fields::parse(&body);
        match change_refused(state, &headers, &wp, f.csrf(), &back) {
            Some(refusal) => Err(refusal),
            None => Ok(OwnerForm { wp, f }),
        }
    }
}

/// The page a form of this route is on (where "Go back" leads).
async fn form_back(parts: &mut Parts, state: &AppState) -> String {
    let template = parts
        .extensions
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let params =
        Path::<std::collections::HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| p)
            .unwrap_or_default();
    let p = |k: &str| seg(params.get(k).map(String::as_str).unwrap_or_default());
    let ws = format!("/w/{}", p("slug"));
    let rest = template.strip_prefix("/w/{slug}").unwrap_or_default();
    if rest.starts_with("/access/users/{user_id}") {
        format!("{ws}/access/users/{}", p("user_id"))
    } else if rest.starts_with("/access/groups/{id}") {
        format!("{ws}/access/groups/{}", p("id"))
    } else if rest.starts_with("/access/groups") {
        format!("{ws}/access?tab=groups")
    } else if rest.starts_with("/access/tokens") {
        format!("{ws}/access?tab=tokens")
    } else if rest.starts_with("/apps") {
        format!("{ws}/apps")
    } else if rest.starts_with("/settings/sso/connections/{id}") && !rest.ends_with("/delete") {
        format!("{ws}/settings/sso/connections/{}", p("id"))
    } else if rest.starts_with("/settings/sso") {
        format!("{ws}/settings/sso")
    } else {
        format!("{ws}/access?tab=users")
    }
}

/// Roles as `<option>`s: (id, name, description, scopable).
pub struct RoleOption {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub scopable: bool,
}

pub fn role_options() -> Vec<RoleOption> {
    roles::CATALOG
        .iter()
        .map(|r| RoleOption {
            id: r.id,
            name: r.name,
            description: r.description,
            scopable: r.scopable,
        })
        .collect()
}

pub fn role_name(id: &str) -> String {
    roles::find(id)
        .map(|d| d.name.to_string())
        .unwrap_or_else(|| id.to_string())
}

/// "Source Admin on labels env:prod", in words.
pub fn policy_text(p: &Policy) -> String {
    let name = role_name(&p.role);
    match &p.scope {
        None => name,
        Some(Scope::All) => format!("{name} on all resources"),
        Some(Scope::Ids { ids }) => format!("{name} on {}", ids.join(", ")),
        Some(Scope::Labels { labels }) => format!("{name} on labels {}", labels.join(", ")),
    }
}

/// A policy shown in a list, with the value its remove form posts.
pub struct PolicyRow {
    pub text: String,
    /// The policy's JSON, posted back to remove exactly this one.
    pub value: String,
    pub owner: bool,
}

pub fn policy_rows(ps: &[Policy]) -> Vec<PolicyRow> {
    ps.iter()
        .map(|p| PolicyRow {
            text: policy_text(p),
            value: serde_json::to_string(p).unwrap_or_default(),
            owner: p.role == roles::WORKSPACE_OWNER,
        })
        .collect()
}

/// The roles of some policies, in words, comma-separated.
pub fn summary(ps: &[Policy]) -> String {
    if ps.is_empty() {
        return "No role".into();
    }
    ps.iter().map(policy_text).collect::<Vec<_>>().join(", ")
}

/// An effective role in a roles column, with where it comes from.
pub struct RoleItem {
    /// "Source Admin on labels env:prod"
    pub text: String,
    /// "direct", "via group “Prod admins”", or both.
    pub source: String,
}

/// Effective roles in words, each with its sources.
pub fn role_items(roles: &[SourcedRole]) -> Vec<RoleItem> {
    roles
        .iter()
        .map(|r| RoleItem {
            text: policy_text(&r.policy),
            source: r
                .sources
                .iter()
                .map(|s| match s {
                    RoleSource::Direct => "direct".to_string(),
                    RoleSource::Group(name) => format!("via group “{name}”"),
                })
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect()
}

/// `/w/{slug}/…` percent-encoded for a path segment.
pub fn seg(s: &str) -> String {
    super::forward_auth::urlencode(s)
}
