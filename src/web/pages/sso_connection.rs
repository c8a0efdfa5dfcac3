//! `/w/{slug}/settings/sso/connections/{id}`: one SSO connection, every
//! setting of it (enabled, IdP-initiated sign-in, attribute names, group
//! mappings, the IdP metadata or certificate with its expiry) and its recent
//! sign-in attempts, each refusal with what to fix at the IdP. Changes go
//! through `sso_backend` (the core operations the API uses).

use super::access::when;
use super::forms::Errors;
use super::sso_backend::{self as backend, SsoError};
use super::{seg, OwnerForm, WsPage};
use crate::domain::DomainError;
use crate::service::sso_admin::{pinned_certificates, ConnectionBody, MappingEdit};
use crate::service::sso_attempts::{self, OurSide};
use crate::sso_config;
use crate::store::SsoConnection;
use crate::web::errors::PageError;
use crate::web::login::see_other;
use crate::web::views::{self, Chrome};
use crate::web::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// How many attempts the page lists.
const ATTEMPTS_SHOWN: i64 = 25;
/// A certificate expiring within this many days is warned about.
const WARN_DAYS: i64 = 30;

pub struct ConnView {
    pub id: String,
    pub name: String,
    pub enabled: bool,
}

pub struct CertRow {
    pub subject: String,
    pub expires: String,
    /// "ok", "soon" (within 30 days) or "expired".
    pub state: &'static str,
    pub days: i64,
}

pub struct MappingRow {
    pub value: String,
    pub group_name: String,
}

pub struct AttemptRow {
    pub when: String,
    pub accepted: bool,
    pub test: bool,
    pub who: String,
    pub ip: Option<String>,
    pub groups: Vec<String>,
    /// A test: the email the IdP sent ("" when none).
    pub sent_email: String,
    pub reason: String,
    pub code: Option<&'static str>,
    pub fix: Option<String>,
}

/// What the forms held.
#[derive(Default)]
pub struct ConnInput {
    pub name: String,
    pub enabled: bool,
    pub allow_idp_initiated: bool,
    pub email_attribute: String,
    pub name_attribute: String,
    pub group_attribute: String,
    pub idp_value: String,
    pub group_id: String,
    pub metadata_xml: String,
    pub metadata_url: String,
    pub certificate: String,
}

#[derive(Template)]
#[template(path = "sso_connection.html")]
pub struct ConnectionPage {
    pub chrome: Chrome,
    pub ws_name: String,
    pub slug: String,
    pub section: &'static str,
    pub owner: bool,
    pub read_only_reason: String,
    pub notice: Option<String>,
    pub form_error: Option<String>,
    pub errors: Errors,
    pub conn: ConnView,
    pub saml: bool,
    pub entity_id: String,
    pub acs_url: String,
    pub idp_entity_id: String,
    pub idp_sso_url: String,
    pub idp_metadata_url: Option<String>,
    pub client_id: String,
    pub certificates: Vec<CertRow>,
    pub mappings: Vec<MappingRow>,
    /// (id, name) of the workspace's groups.
    pub groups: Vec<(String, String)>,
    pub attempts: Vec<AttemptRow>,
    pub input: ConnInput,
}

fn cert_rows(cfg: &sso_config::SamlConfig, now: i64) -> Vec<CertRow> {
    pinned_certificates(cfg)
        .into_iter()
        .map(|c| {
            let left = c.not_after - now;
            let days = left.div_euclid(86_400);
            let state = if left <= 0 {
                "expired"
            } else if days < WARN_DAYS {
                "soon"
            } else {
                "ok"
            };
            CertRow {
                subject: c.subject,
                expires: when(c.not_after),
                state,
                days,
            }
        })
        .collect()
}

/// The page for connection `c`, its forms holding the stored values.
async fn build(
    state: &AppState,
    wp: &WsPage,
    c: &SsoConnection,
) -> Result<ConnectionPage, DomainError> {
    let base = state.cfg.public_url.trim_end_matches('/').to_string();
    let saml = c.kind != "oidc";
    let groups: Vec<(String, String)> = state
        .store
        .list_groups_without_member_ids(&wp.ctx.ws.id)
        .await?
        .into_iter()
        .map(|g| (g.id, g.name))
        .collect();
    let mut input = ConnInput {
        name: c.name.clone(),
        enabled: c.enabled,
        allow_idp_initiated: c.allow_idp_initiated,
        ..ConnInput::default()
    };
    let now = state.clock.now();
    let sp = sso_config::sp_settings(&base, &c.id);
    let (entity_id, acs_url, idp, idp_sso_url, idp_metadata_url, client_id, certificates, maps) =
        if saml {
            let cfg = sso_config::saml(&c.config)?;
            input.email_attribute = cfg.email_attribute.clone().unwrap_or_default();
            input.name_attribute = cfg.name_attribute.clone().unwrap_or_default();
            input.group_attribute = cfg.group_attribute.clone().unwrap_or_default();
            (
                sp.entity_id,
                sp.acs_url,
                cfg.idp_entity_id.clone(),
                cfg.idp_sso_url.clone(),
                cfg.idp_metadata_url.clone(),
                String::new(),
                cert_rows(&cfg, now),
                cfg.group_mappings,
            )
        } else {
            let cfg = sso_config::oidc(&c.config)?;
            (
                cfg.client_id.clone(),
                sso_config::oidc_redirect_uri(&base, &c.id),
                cfg.issuer,
                String::new(),
                None,
                cfg.client_id,
                Vec::new(),
                cfg.group_mappings,
            )
        };
    let group_name = |id: &str| {
        groups
            .iter()
            .find(|(g, _)| g == id)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| "(a deleted group)".into())
    };
    let mappings = maps
        .iter()
        .map(|(value, gid)| MappingRow {
            value: value.clone(),
            group_name: group_name(gid),
        })
        .collect();
    let attempts = if wp.owner {
        let ours = OurSide {
            kind: &c.kind,
            entity_id: &entity_id,
            acs_url: &acs_url,
            idp: &idp,
        };
        sso_attempts::recent(state, &wp.ctx, c, ATTEMPTS_SHOWN)
            .await?
            .into_iter()
            .map(|a| AttemptRow {
                when: when(a.time),
                accepted: a.accepted,
                test: a.test,
                who: a.email.unwrap_or_default(),
                ip: a.ip,
                groups: a.groups,
                sent_email: a.sent_email.unwrap_or_default(),
                reason: a.reason.unwrap_or_default(),
                code: a.code.map(|c| c.as_str()),
                fix: a.code.and_then(|c| sso_attempts::fix(c, &ours)),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(ConnectionPage {
        chrome: wp.chrome.clone(),
        ws_name: wp.ctx.ws.name.clone(),
        slug: wp.ctx.ws.slug.clone(),
        section: "sso",
        owner: wp.owner,
        read_only_reason: wp.read_only_reason(),
        notice: None,
        form_error: None,
        errors: Errors::default(),
        conn: ConnView {
            id: c.id.clone(),
            name: c.name.clone(),
            enabled: c.enabled,
        },
        saml,
        entity_id,
        acs_url,
        idp_entity_id: idp,
        idp_sso_url,
        idp_metadata_url,
        client_id,
        certificates,
        mappings,
        groups,
        attempts,
        input,
    })
}

fn render(page: &ConnectionPage, status: StatusCode) -> Response {
    (status, views::render(page)).into_response()
}

fn here(slug: &str, id: &str) -> String {
    format!("/w/{}/settings/sso/connections/{}", seg(slug), seg(id))
}

/// The connection, or the "no longer exists" page.
async fn connection_or_gone(
    state: &AppState,
    wp: &WsPage,
    id: &str,
) -> Result<Result<SsoConnection, Response>, PageError> {
    match backend::get_connection(state, &wp.ctx, id).await {
        Ok(c) => Ok(Ok(c)),
        Err(SsoError::Failed(e)) => Err(e.into()),
        Err(_) => Ok(Err(wp.message(
            StatusCode::NOT_FOUND,
            "Connection not found",
            "This SSO connection does not exist in this workspace (it may have been deleted).",
            &super::sso::here(wp.slug()),
        ))),
    }
}

#[derive(serde::Deserialize)]
pub struct Done {
    pub done: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    wp: WsPage,
    Query(q): Query<Done>,
) -> Result<Response, PageError> {
    let c = match connection_or_gone(&state, &wp, &id).await? {
        Ok(c) => c,
        Err(gone) => return Ok(gone),
    };
    let mut page = build(&state, &wp, &c).await?;
    page.notice = match q.done.as_deref() {
        Some("settings") => Some("Settings saved.".into()),
        Some("mapping") => Some("Group mapping saved.".into()),
        Some("mapping_removed") => Some("Group mapping removed.".into()),
        Some("idp") => Some("Identity provider updated.".into()),
        _ => None,
    };
    Ok(render(&page, StatusCode::OK))
}

/// Applies `body` to the connection; on a refusal, the page again with
/// the form's input and the error next to its field (nothing was saved).
async fn apply(
    state: &AppState,
    wp: &WsPage,
    c: &SsoConnection,
    body: ConnectionBody,
    fallback: &'static str,
    keep: impl FnOnce(&mut ConnInput),
    done: &str,
) -> Result<Response, PageError> {
    match backend::update_connection(state, &wp.ctx, &c.id, body, fallback).await {
        Ok(_) => Ok(see_other(&format!(
            "{}?done={done}",
            here(wp.slug(), &c.id)
        ))),
        Err(e) => {
            let mut page = build(state, wp, c).await?;
            keep(&mut page.input);
            let status = match e {
                SsoError::Invalid { field, message } => {
                    page.errors.add(field, message);
                    StatusCode::BAD_REQUEST
                }
                SsoError::Refused(why) => {
                    page.form_error = Some(why);
                    StatusCode::CONFLICT
                }
                SsoError::NotAvailable => {
                    page.form_error = Some(super::sso::NOT_AVAILABLE.into());
                    StatusCode::NOT_IMPLEMENTED
                }
                SsoError::Failed(e) => return Err(e.into()),
            };
            Ok(render(&page, status))
        }
    }
}

/// The page again with field errors found before calling the core.
async fn invalid(
    state: &AppState,
    wp: &WsPage,
    c: &SsoConnection,
    errors: Errors,
    keep: impl FnOnce(&mut ConnInput),
) -> Result<Response, PageError> {
    let mut page = build(state, wp, c).await?;
    keep(&mut page.input);
    page.errors = errors;
    Ok(render(&page, StatusCode::BAD_REQUEST))
}

fn one_line(v: &str, max: usize) -> bool {
    v.chars().count() <= max && !v.chars().any(char::is_control)
}

/// Name, enabled, IdP-initiated sign-in and (SAML) the attribute names.
pub async fn edit(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    OwnerForm { wp, f }: OwnerForm,
) -> Result<Response, PageError> {
    let c = match connection_or_gone(&state, &wp, &id).await? {
        Ok(c) => c,
        Err(gone) => return Ok(gone),
    };
    let saml = c.kind != "oidc";
    let form = ConnInput {
        name: f.get("name").to_string(),
        enabled: f.get("enabled") == "on",
        allow_idp_initiated: f.get("allow_idp_initiated") == "on",
        email_attribute: f.get("email_attribute").to_string(),
        name_attribute: f.get("name_attribute").to_string(),
        group_attribute: f.get("group_attribute").to_string(),
        ..ConnInput::default()
    };
    let mut errors = Errors::default();
    if form.name.is_empty() || !one_line(&form.name, 100) {
        errors.add("name", "Give the connection a name of 1 to 100 characters.");
    }
    for (field, v) in [
        ("email_attribute", &form.email_attribute),
        ("name_attribute", &form.name_attribute),
        ("group_attribute", &form.group_attribute),
    ] {
        if !one_line(v, 200) {
            errors.add(field, "Use at most 200 characters on one line.");
        }
    }
    let keep = |i: &mut ConnInput| {
        i.name = form.name.clone();
        i.enabled = form.enabled;
        i.allow_idp_initiated = form.allow_idp_initiated;
        i.email_attribute = form.email_attribute.clone();
        i.name_attribute = form.name_attribute.clone();
        i.group_attribute = form.group_attribute.clone();
    };
    if !errors.is_empty() {
        return invalid(&state, &wp, &c, errors, keep).await;
    }
    let body = ConnectionBody {
        name: Some(form.name.clone()),
        enabled: Some(form.enabled),
        allow_idp_initiated: saml.then_some(form.allow_idp_initiated),
        email_attribute: saml.then(|| form.email_attribute.clone()),
        name_attribute: saml.then(|| form.name_attribute.clone()),
        group_attribute: saml.then(|| form.group_attribute.clone()),
        ..ConnectionBody::default()
    };
    apply(&state, &wp, &c, body, "name", keep, "settings").await
}

/// Adds (or re-points) one mapping: IdP value → user group.
pub async fn add_mapping(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    OwnerForm { wp, f }: OwnerForm,
) -> Result<Response, PageError> {
    let c = match connection_or_gone(&state, &wp, &id).await? {
        Ok(c) => c,
        Err(gone) => return Ok(gone),
    };
    let value = f.get("idp_value").to_string();
    let group = f.get("group_id").to_string();
    let mut errors = Errors::default();
    if value.is_empty() || !one_line(&value, 200) {
        errors.add(
            "idp_value",
            "Enter the group value the IdP sends, 1 to 200 characters on one line.",
        );
    }
    if group.is_empty() {
        errors.add("group_id", "Choose the user group to put these people in.");
    }
    let keep = |i: &mut ConnInput| {
        i.idp_value = value.clone();
        i.group_id = group.clone();
    };
    if !errors.is_empty() {
        return invalid(&state, &wp, &c, errors, keep).await;
    }
    let body = ConnectionBody {
        mapping_edit: Some(MappingEdit::Put(value.clone(), group.clone())),
        ..ConnectionBody::default()
    };
    apply(&state, &wp, &c, body, "group_id", keep, "mapping").await
}

pub async fn remove_mapping(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    OwnerForm { wp, f }: OwnerForm,
) -> Result<Response, PageError> {
    let c = match connection_or_gone(&state, &wp, &id).await? {
        Ok(c) => c,
        Err(gone) => return Ok(gone),
    };
    let body = ConnectionBody {
        mapping_edit: Some(MappingEdit::Remove(f.get("idp_value").to_string())),
        ..ConnectionBody::default()
    };
    apply(&state, &wp, &c, body, "group_id", |_| {}, "mapping_removed").await
}

/// The IdP's side: new metadata (pasted or by URL), or a new signing
/// certificate alone (SAML).
pub async fn replace_idp(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    OwnerForm { wp, f }: OwnerForm,
) -> Result<Response, PageError> {
    let c = match connection_or_gone(&state, &wp, &id).await? {
        Ok(c) => c,
        Err(gone) => return Ok(gone),
    };
    let xml = f.get("metadata_xml").to_string();
    let url = f.get("metadata_url").to_string();
    let cert = f.get("certificate").to_string();
    let keep = |i: &mut ConnInput| {
        i.metadata_xml = xml.clone();
        i.metadata_url = url.clone();
        i.certificate = cert.clone();
    };
    let given = [&xml, &url, &cert].iter().filter(|v| !v.is_empty()).count();
    let problem = if c.kind == "oidc" {
        Some((
            "metadata_xml",
            "OpenID Connect connections have no metadata to replace here.",
        ))
    } else if given == 0 {
        Some((
            "metadata_xml",
            "Paste the IdP's new metadata, give its URL, or paste its new signing certificate.",
        ))
    } else if given > 1 {
        Some(("metadata_url", "Give only one of the three."))
    } else if !url.is_empty() && !url.starts_with("https://") && !url.starts_with("http://") {
        Some((
            "metadata_url",
            "Enter the metadata URL, like https://idp.example.com/metadata.",
        ))
    } else {
        None
    };
    if let Some((field, message)) = problem {
        return invalid(&state, &wp, &c, Errors::one(field, message), keep).await;
    }
    let (body, fallback) = if !cert.is_empty() {
        let body = ConnectionBody {
            idp_certificate: Some(cert.clone()),
            ..ConnectionBody::default()
        };
        (body, "certificate")
    } else if !xml.is_empty() {
        let body = ConnectionBody {
            idp_metadata_xml: Some(xml.clone()),
            ..ConnectionBody::default()
        };
        (body, "metadata_xml")
    } else {
        let body = ConnectionBody {
            idp_metadata_url: Some(url.clone()),
            ..ConnectionBody::default()
        };
        (body, "metadata_url")
    };
    apply(&state, &wp, &c, body, fallback, keep, "idp").await
}

/// Starts a test sign-in: the browser goes to the IdP; its answer comes
/// back as a report of what it sent, and this session is left as it is.
pub async fn test_sign_in(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    OwnerForm { wp, .. }: OwnerForm,
) -> Result<Response, PageError> {
    let c = match connection_or_gone(&state, &wp, &id).await? {
        Ok(c) => c,
        Err(gone) => return Ok(gone),
    };
    if !c.enabled {
        let mut page = build(&state, &wp, &c).await?;
        page.form_error = Some("Enable the connection to test it.".into());
        return Ok(render(&page, StatusCode::CONFLICT));
    }
    let back = here(wp.slug(), &c.id);
    Ok(
        match crate::web::sso::start_test(&state, &headers, &c, &wp.user.id, back).await {
            Ok(r) => r,
            Err(halt) => halt.into_response(),
        },
    )
}
