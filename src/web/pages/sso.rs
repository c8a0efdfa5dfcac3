//! `/w/{slug}/settings/sso`: SSO connections (with the SP metadata to give
//! the IdP), email domains and their TXT records, Require SSO with
//! exemptions, the default role, and SCIM tokens. The connection and domain
//! forms are in `sso_idp.rs` and go through `sso_backend`; the rest uses the
//! workspace settings and token functions the API uses.

use super::access::when;
use super::forms::{refusal, Errors};
use super::sso_backend::{self as backend, ConnectionView, DomainView, SsoError};
use super::{role_options, seg, OwnerForm, RoleOption, WsPage};
use crate::domain::model::Workspace;
use crate::domain::{roles, DomainError};
use crate::service::access::signed_in_through_sso;
use crate::service::settings::{update as apply_settings, SettingsPatch};
use crate::service::tokens::{self, Kind};
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

/// What the page says when SSO is not available on this gateway.
pub const NOT_AVAILABLE: &str =
    "SSO connections and domain verification are not available on this gateway. Nothing was saved.";

pub struct ConnectionRow {
    pub c: ConnectionView,
    /// A warning about the IdP certificate (expired, or within 30 days).
    pub cert_warning: Option<String>,
    pub entity_id: String,
    pub acs_url: String,
    pub redirect_uri: String,
}

pub struct ExemptRow {
    pub id: String,
    pub email: String,
    pub exempt: bool,
}

/// A member exempt from Require SSO.
pub struct ExemptionRow {
    pub user_id: String,
    /// Their email, or a note when they are no longer a user.
    pub email: String,
}

pub struct ScimRow {
    pub id: String,
    pub description: String,
    pub created: String,
    pub last_used: String,
}

/// What the connection and domain forms held.
#[derive(Default)]
pub struct SsoInput {
    pub kind: String,
    pub name: String,
    pub metadata_xml: String,
    pub metadata_url: String,
    pub issuer: String,
    pub client_id: String,
    pub domain: String,
    pub scim_description: String,
    pub exempt_email: String,
}

#[derive(Template)]
#[template(path = "sso.html")]
pub struct SsoPage {
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
    /// None: listed; Some(why): the connections could not be listed.
    pub connections_unavailable: Option<String>,
    pub connections: Vec<ConnectionRow>,
    pub domains_unavailable: Option<String>,
    pub domains: Vec<DomainView>,
    pub input: SsoInput,
    pub require_sso: bool,
    pub require_mfa: bool,
    pub default_role: String,
    /// Whether this session came through this workspace's SSO (needed to
    /// turn Require SSO on).
    pub session_from_sso: bool,
    /// The first 200 members (the exemption picker's suggestions).
    pub members: Vec<ExemptRow>,
    pub exemptions: Vec<ExemptionRow>,
    pub scim_url: String,
    pub scim_tokens: Vec<ScimRow>,
    pub new_scim_secret: Option<String>,
}

fn listed<T>(r: Result<Vec<T>, SsoError>) -> Result<(Vec<T>, Option<String>), DomainError> {
    match r {
        Ok(v) => Ok((v, None)),
        Err(SsoError::NotAvailable) => Ok((
            Vec::new(),
            Some(NOT_AVAILABLE.replace(" Nothing was saved.", "")),
        )),
        Err(SsoError::Invalid { message, .. }) | Err(SsoError::Refused(message)) => {
            Ok((Vec::new(), Some(message)))
        }
        Err(SsoError::Failed(e)) => Err(e),
    }
}

fn connection_rows(base: &str, now: i64, conns: Vec<ConnectionView>) -> Vec<ConnectionRow> {
    conns
        .into_iter()
        .map(|c| ConnectionRow {
            cert_warning: c.cert_expires.and_then(|t| {
                if t <= now {
                    Some(format!("IdP certificate expired on {}", when(t)))
                } else if t - now < 30 * 86_400 {
                    Some(format!("IdP certificate expires on {}", when(t)))
                } else {
                    None
                }
            }),
            entity_id: format!("{base}/sso/saml/{}/metadata", seg(&c.id)),
            acs_url: format!("{base}/sso/saml/{}/acs", seg(&c.id)),
            redirect_uri: format!("{base}/sso/oidc/{}/callback", seg(&c.id)),
            c,
        })
        .collect()
}

/// The first 200 members, each marked exempt from Require SSO or not.
async fn exempt_rows(state: &AppState, ws: &Workspace) -> Result<Vec<ExemptRow>, DomainError> {
    let filter = MemberFilter::default();
    Ok(state
        .store
        .list_members(&ws.id, &filter, None, 200, state.clock.now())
        .await?
        .into_iter()
        .map(|(_, m)| ExemptRow {
            exempt: ws.settings.sso_exempt_user_ids.contains(&m.id),
            id: m.id,
            email: m.email,
        })
        .collect())
}

/// Everyone exempt from Require SSO, by email.
async fn exemption_rows(
    state: &AppState,
    ws: &Workspace,
) -> Result<Vec<ExemptionRow>, DomainError> {
    let ids = &ws.settings.sso_exempt_user_ids;
    let emails: std::collections::HashMap<String, String> =
        state.store.user_emails(ids).await?.into_iter().collect();
    let mut rows: Vec<ExemptionRow> = ids
        .iter()
        .map(|id| ExemptionRow {
            user_id: id.clone(),
            email: emails
                .get(id)
                .cloned()
                .unwrap_or_else(|| "(an account that no longer exists)".into()),
        })
        .collect();
    rows.sort_by(|a, b| a.email.cmp(&b.email));
    Ok(rows)
}

/// The workspace's SCIM tokens (owners only see them).
async fn scim_rows(state: &AppState, wp: &WsPage) -> Result<Vec<ScimRow>, DomainError> {
    if !wp.owner {
        return Ok(Vec::new());
    }
    let tokens = state.store.list_tokens(&wp.ctx.ws.id, "scim").await?;
    Ok(tokens
        .into_iter()
        .map(|t| ScimRow {
            description: if t.description.is_empty() {
                "(no description)".into()
            } else {
                t.description.clone()
            },
            created: when(t.created_at),
            last_used: t.last_used_at.map(when).unwrap_or_else(|| "Never".into()),
            id: t.id,
        })
        .collect())
}

pub(super) async fn build(state: &AppState, wp: &WsPage) -> Result<SsoPage, DomainError> {
    let ws = &wp.ctx.ws;
    let base = state.cfg.public_url.trim_end_matches('/').to_string();
    let (conns, connections_unavailable) = listed(backend::list_connections(state, &wp.ctx).await)?;
    let (domains, domains_unavailable) = listed(backend::list_domains(state, &wp.ctx).await)?;
    let session_from_sso = signed_in_through_sso(state.store.as_ref(), &wp.session, ws).await?;
    Ok(SsoPage {
        chrome: wp.chrome.clone(),
        ws_name: ws.name.clone(),
        slug: ws.slug.clone(),
        section: "sso",
        owner: wp.owner,
        read_only_reason: wp.read_only_reason(),
        notice: None,
        form_error: None,
        errors: Errors::default(),
        roles: role_options(),
        connections_unavailable,
        connections: connection_rows(&base, state.clock.now(), conns),
        domains_unavailable,
        domains,
        input: SsoInput {
            kind: "saml".into(),
            ..SsoInput::default()
        },
        require_sso: ws.settings.require_sso,
        require_mfa: ws.settings.require_mfa,
        default_role: ws.settings.default_role.clone(),
        session_from_sso,
        members: exempt_rows(state, ws).await?,
        exemptions: exemption_rows(state, ws).await?,
        scim_url: format!("{base}/scim/v2"),
        scim_tokens: scim_rows(state, wp).await?,
        new_scim_secret: None,
    })
}

pub(super) fn render(page: &SsoPage, status: StatusCode) -> Response {
    (status, views::render(page)).into_response()
}

pub(super) fn here(slug: &str) -> String {
    format!("/w/{}/settings/sso", seg(slug))
}

#[derive(Deserialize)]
pub struct Done {
    pub done: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    wp: WsPage,
    Query(q): Query<Done>,
) -> Result<Response, PageError> {
    let mut page = build(&state, &wp).await?;
    page.notice = match q.done.as_deref() {
        Some("settings") => Some("Settings saved.".into()),
        Some("connection") => Some("Connection saved.".into()),
        Some("domain") => Some("Domain saved.".into()),
        Some("verified") => Some("Domain verified.".into()),
        Some("deleted") => Some("Deleted.".into()),
        Some("exempted") => Some("Exemption added.".into()),
        Some("unexempted") => Some("Exemption removed.".into()),
        Some("scim_revoked") => Some("SCIM token revoked. It stopped working at once.".into()),
        _ => None,
    };
    Ok(render(&page, StatusCode::OK))
}

/// The settings form again after a refusal: Require SSO refused (403) is
/// said next to it, anything else next to the default role (400).
async fn settings_refused(
    state: &AppState,
    wp: &WsPage,
    e: DomainError,
) -> Result<Response, PageError> {
    let forbidden = matches!(e, DomainError::Forbidden(_));
    let why = refusal(e)?;
    let mut page = build(state, wp).await?;
    let (field, status) = if forbidden {
        ("require_sso", StatusCode::FORBIDDEN)
    } else {
        ("default_role", StatusCode::BAD_REQUEST)
    };
    page.errors.add(field, why);
    Ok(render(&page, status))
}

/// Require SSO, its exemptions, two-factor and the default role.
pub async fn save_settings(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    OwnerForm { wp, f }: OwnerForm,
) -> Result<Response, PageError> {
    let role = f.get("default_role").to_string();
    if roles::find(&role).is_none() {
        let mut page = build(&state, &wp).await?;
        page.errors
            .add("default_role", "Choose a role from the list.");
        return Ok(render(&page, StatusCode::BAD_REQUEST));
    }
    // The exemptions have their own forms (by email), not this one.
    let patch = SettingsPatch {
        require_sso: Some(f.get("require_sso") == "on"),
        require_mfa: Some(f.get("require_mfa") == "on"),
        default_role: Some(role),
        ..SettingsPatch::default()
    };
    match apply_settings(&state, &wp.ctx, patch).await {
        Ok(_) => Ok(see_other(&format!("{}?done=settings", here(&slug)))),
        Err(e) => settings_refused(&state, &wp, e).await,
    }
}

pub async fn create_scim_token(
    State(state): State<AppState>,
    OwnerForm { wp, f }: OwnerForm,
) -> Result<Response, PageError> {
    let description = f.get("description").to_string();
    if description.chars().count() > 200 || description.chars().any(char::is_control) {
        let mut page = build(&state, &wp).await?;
        page.input.scim_description = description;
        page.errors.add(
            "scim_description",
            "Use at most 200 characters on one line.",
        );
        return Ok(render(&page, StatusCode::BAD_REQUEST));
    }
    let (_, secret) = match tokens::create_scim(&state, &wp.ctx, &description).await {
        Ok(x) => x,
        Err(e) => {
            let why = refusal(e)?;
            let mut page = build(&state, &wp).await?;
            page.errors.add("scim_description", why);
            return Ok(render(&page, StatusCode::BAD_REQUEST));
        }
    };
    let mut page = build(&state, &wp).await?;
    page.new_scim_secret = Some(secret);
    page.notice = Some("SCIM token created.".into());
    Ok(render(&page, StatusCode::OK))
}

pub async fn revoke_scim_token(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    OwnerForm { wp, .. }: OwnerForm,
) -> Result<Response, PageError> {
    match tokens::revoke(&state, &wp.ctx, Kind::Scim, &id).await {
        Ok(()) => Ok(see_other(&format!("{}?done=scim_revoked", here(&slug)))),
        Err(e) => {
            let why = refusal(e)?;
            let mut page = build(&state, &wp).await?;
            page.form_error = Some(why);
            Ok(render(&page, StatusCode::NOT_FOUND))
        }
    }
}

/// Exempts a member, picked by email, from Require SSO.
pub async fn add_exemption(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    OwnerForm { wp, f }: OwnerForm,
) -> Result<Response, PageError> {
    let email = f.get("email").to_string();
    let problem = if email.is_empty() {
        Some("Enter the email of the member to exempt.".to_string())
    } else {
        match crate::service::settings::exempt(&state, &wp.ctx, &email).await {
            Ok(_) => None,
            Err(e) => Some(refusal(e)?),
        }
    };
    match problem {
        None => Ok(see_other(&format!(
            "{}?done=exempted#exemptions",
            here(&slug)
        ))),
        Some(why) => {
            let mut page = build(&state, &wp).await?;
            page.input.exempt_email = email;
            page.errors.add("exempt_email", why);
            Ok(render(&page, StatusCode::BAD_REQUEST))
        }
    }
}

/// Ends a member's exemption from Require SSO.
pub async fn remove_exemption(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    OwnerForm { wp, f }: OwnerForm,
) -> Result<Response, PageError> {
    match crate::service::settings::unexempt(&state, &wp.ctx, f.get("user_id")).await {
        Ok(_) => Ok(see_other(&format!(
            "{}?done=unexempted#exemptions",
            here(&slug)
        ))),
        Err(e) => {
            let why = refusal(e)?;
            let mut page = build(&state, &wp).await?;
            page.form_error = Some(why);
            Ok(render(&page, StatusCode::CONFLICT))
        }
    }
}
