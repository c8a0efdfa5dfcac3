//! `/w/{slug}/audit`: the workspace's audit log for its owners, newest
//! first, each event in plain words (`service::audit_log::lines`), with
//! filters (actor, action, target, from/to), an "Older" link and the CSV
//! download of the same selection.

use super::access::when;
use super::{seg, WsPage};
use crate::domain::DomainError;
use crate::service::audit_log::{self, AuditQuery, ACTIONS};
use crate::web::errors::PageError;
use crate::web::forward_auth::urlencode;
use crate::web::views::{self, Chrome};
use crate::web::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// Events per page unless `?limit=` says otherwise (1 to 200).
pub const PAGE_SIZE: i64 = 50;

/// The page's query: the filters as typed, the cursor and the page size.
#[derive(Deserialize, Default, Clone)]
pub struct Filters {
    #[serde(default)]
    pub actor: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub target: String,
    /// A day (`2026-01-31`, from its start, UTC), RFC 3339 or Unix seconds.
    #[serde(default)]
    pub from: String,
    /// A day (up to its end, UTC), RFC 3339 or Unix seconds.
    #[serde(default)]
    pub to: String,
    pub cursor: Option<String>,
    pub limit: Option<String>,
}

fn some(s: &str) -> Option<String> {
    Some(s.trim().to_string()).filter(|s| !s.is_empty())
}

/// A day as Unix seconds at its start (or its end, `end`); anything else
/// as typed, for the core to read.
fn day_bound(v: &str, end: bool) -> Option<String> {
    let v = some(v)?;
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    match time::Date::parse(&v, fmt) {
        Ok(d) => {
            let start = d.midnight().assume_utc().unix_timestamp();
            Some((start + if end { 86_400 } else { 0 }).to_string())
        }
        Err(_) => Some(v),
    }
}

impl Filters {
    /// The core's query for these filters (empty fields filter nothing).
    pub fn query(&self) -> AuditQuery {
        AuditQuery {
            cursor: None,
            limit: None,
            actor: some(&self.actor),
            action: some(&self.action),
            target: some(&self.target),
            since: day_bound(&self.from, false),
            until: day_bound(&self.to, true),
        }
    }

    pub fn limit(&self) -> i64 {
        self.limit
            .as_deref()
            .and_then(|l| l.parse::<i64>().ok())
            .map(|l| l.clamp(1, 200))
            .unwrap_or(PAGE_SIZE)
    }

    /// The filters as a query string (`actor=…&action=…`), for the API's
    /// CSV (`since`/`until`) or this page (`from`/`to`).
    fn query_string(&self, api: bool) -> String {
        let q = self.query();
        let (from, to) = if api {
            (q.since.clone(), q.until.clone())
        } else {
            (some(&self.from), some(&self.to))
        };
        let (since, until) = if api {
            ("since", "until")
        } else {
            ("from", "to")
        };
        [
            ("actor", q.actor),
            ("action", q.action),
            ("target", q.target),
            (since, from),
            (until, to),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", urlencode(&v))))
        .collect::<Vec<_>>()
        .join("&")
    }
}

pub struct EventRow {
    pub time: String,
    pub iso: String,
    pub text: String,
    pub action: String,
    pub ip: String,
}

pub struct ActionOption {
    pub id: &'static str,
    pub label: &'static str,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub struct AuditPage {
    pub chrome: Chrome,
    pub ws_name: String,
    pub slug: String,
    pub section: &'static str,
    pub owner: bool,
    pub read_only_reason: String,
    pub notice: Option<String>,
    pub form_error: Option<String>,
    pub f: Filters,
    pub actions: Vec<ActionOption>,
    pub events: Vec<EventRow>,
    /// The "Older" link, when there are older events.
    pub older: Option<String>,
    pub csv_url: String,
    pub filtered: bool,
}

/// The page for these filters: a refused filter (a time that cannot be
/// read) comes back as the page's error, a stale cursor starts over.
async fn build(state: &AppState, wp: &WsPage, f: Filters) -> Result<AuditPage, DomainError> {
    let slug = wp.slug().to_string();
    let mut page = AuditPage {
        chrome: wp.chrome.clone(),
        ws_name: wp.ctx.ws.name.clone(),
        section: "audit",
        owner: wp.owner,
        read_only_reason: wp.read_only_reason(),
        notice: None,
        form_error: None,
        actions: ACTIONS
            .iter()
            .map(|(id, label)| ActionOption { id, label })
            .collect(),
        events: Vec::new(),
        older: None,
        csv_url: format!(
            "/api/v1/workspaces/{}/audit-events.csv?{}",
            seg(&slug),
            f.query_string(true)
        ),
        filtered: !f.query_string(false).is_empty(),
        slug,
        f,
    };
    let filter = match page.f.query().filter() {
        Ok(filter) => filter,
        Err(DomainError::Invalid(why)) => {
            let why = why
                .replacen("since:", "From:", 1)
                .replacen("until:", "To:", 1);
            page.form_error = Some(why);
            return Ok(page);
        }
        Err(e) => return Err(e),
    };
    let limit = page.f.limit();
    let cursor = page.f.cursor.as_deref().filter(|c| !c.is_empty());
    let (lines, next) = match audit_log::lines(state, &wp.ctx, &filter, cursor, limit).await {
        Err(DomainError::Invalid(_)) if cursor.is_some() => {
            audit_log::lines(state, &wp.ctx, &filter, None, limit).await?
        }
        other => other?,
    };
    page.events = lines
        .into_iter()
        .map(|l| EventRow {
            time: when(l.event.time),
            iso: crate::clock::rfc3339(l.event.time),
            text: l.text,
            action: l.event.action,
            ip: l.event.ip.unwrap_or_default(),
        })
        .collect();
    page.older = next.map(|c| {
        let mut q = page.f.query_string(false);
        if !q.is_empty() {
            q.push('&');
        }
        format!(
            "/w/{}/audit?{q}limit={limit}&cursor={}",
            seg(&page.slug),
            urlencode(&c)
        )
    });
    Ok(page)
}

/// `GET /w/{slug}/audit` (owners; others get the read-only 403 page).
pub async fn page(
    State(state): State<AppState>,
    wp: WsPage,
    Query(f): Query<Filters>,
) -> Result<Response, PageError> {
    if !wp.owner {
        return Ok(wp.not_owner(&format!("/w/{}/access", seg(wp.slug()))));
    }
    let page = build(&state, &wp, f).await?;
    let status = if page.form_error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok((status, views::render(&page)).into_response())
}
