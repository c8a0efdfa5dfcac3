//! An owner's test sign-in through a connection: what the IdP sent,
//! reported to the owner who started it (`templates/sso_test.html`),
//! signing nobody in and creating nothing.

use super::Verified;
use crate::audit;
use crate::domain::model::Actor;
use crate::store::SsoConnection;
use crate::web::errors::Halt;
use crate::web::views::{self, Chrome};
use crate::web::AppState;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

/// One attribute as a test sign-in reports it.
pub struct ReportedAttribute {
    pub name: String,
    pub values: String,
}

/// A group the IdP sent, and the user group it maps to.
pub struct ReportedGroup {
    pub value: String,
    pub maps_to: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "sso_test.html")]
pub struct TestReportPage {
    pub chrome: Chrome,
    pub connection: String,
    pub subject: String,
    pub email: String,
    pub name: String,
    pub groups: Vec<ReportedGroup>,
    pub attributes: Vec<ReportedAttribute>,
    pub back: String,
}

/// What a test sign-in's IdP sent, reported to the owner who started it;
/// recorded as `sso.tested`. Nobody is signed in, created or changed.
pub async fn report(
    state: &AppState,
    conn: &SsoConnection,
    v: Verified,
    ip: IpAddr,
) -> Result<Response, Halt> {
    let mappings: BTreeMap<String, String> = conn
        .config
        .get("group_mappings")
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default();
    let group_names: HashMap<String, String> = state
        .store
        .list_groups_without_member_ids(&conn.workspace_id)
        .await?
        .into_iter()
        .map(|g| (g.id, g.name))
        .collect();
    let groups = v
        .identity
        .groups
        .iter()
        .map(|value| ReportedGroup {
            value: value.clone(),
            maps_to: mappings
                .get(value)
                .map(|gid| group_names.get(gid).cloned().unwrap_or_else(|| gid.clone())),
        })
        .collect();
    let tester = v.tester.clone().unwrap_or_default();
    let tester_email = state
        .store
        .user_by_id(&tester)
        .await?
        .map(|u| u.email)
        .unwrap_or_default();
    audit::record(
        state.store.as_ref(),
        state.clock.now(),
        audit::Entry {
            workspace_id: Some(&conn.workspace_id),
            actor: Actor::user(&tester, &tester_email),
            action: "sso.tested",
            target: Some(&conn.id),
            ip: Some(ip.to_string()),
            details: serde_json::json!({
                "connection": conn.id,
                "email": v.identity.email,
                "groups": v.identity.groups,
            }),
        },
    )
    .await;
    let page = TestReportPage {
        chrome: Chrome::anonymous(),
        connection: conn.name.clone(),
        subject: v.identity.subject,
        email: v.identity.email.unwrap_or_default(),
        name: v.identity.name.unwrap_or_default(),
        groups,
        attributes: v
            .attributes
            .into_iter()
            .map(|(name, values)| ReportedAttribute {
                name,
                values: values.join(", "),
            })
            .collect(),
        back: v.return_to,
    };
    let mut resp = views::render(&page);
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}
