//! The one seam between the SSO settings page and the SSO connections and
//! domains logic (`/api/v1/workspaces/{slug}/sso/connections`, `/domains`),
//! which is built separately.
//!
//! **Not wired yet.** Every function here answers
//! [`SsoError::NotAvailable`], and the page tells the person so; nothing is
//! pretended. To wire it, replace each body with a call to the same shared
//! functions the REST API handlers use (so the page and the API keep one set
//! of rules, audit events included: `ctx.audit`), and map their refusals to
//! [`SsoError::Invalid`] (a field at fault) or [`SsoError::Refused`]
//! (anything else the person should read). The page needs nothing else.

use crate::domain::DomainError;
use crate::web::api::Ctx;
use crate::web::AppState;

/// A connection as the page lists it.
#[derive(Debug, Clone)]
pub struct ConnectionView {
    pub id: String,
    pub name: String,
    /// "saml" or "oidc"
    pub kind: String,
    pub enabled: bool,
    /// SAML: the IdP's entity ID; OIDC: the issuer.
    pub idp: String,
}

/// A domain as the page lists it.
#[derive(Debug, Clone)]
pub struct DomainView {
    pub domain: String,
    pub verified: bool,
    /// `iamgw-verification=<token>`, to publish as a TXT record at the domain.
    pub verification_record: String,
}

/// What the "add connection" forms ask for (SPEC section 7's bodies).
#[derive(Debug, Clone)]
pub enum NewConnection {
    Saml {
        name: String,
        /// Exactly one of `metadata_xml` and `metadata_url` is set.
        metadata_xml: Option<String>,
        metadata_url: Option<String>,
    },
    Oidc {
        name: String,
        issuer: String,
        client_id: String,
        client_secret: String,
    },
}

#[derive(Debug)]
pub enum SsoError {
    /// The SSO logic is not connected to the pages yet.
    NotAvailable,
    /// A form field is at fault: the field's name as the form posts it
    /// (`name`, `metadata_xml`, `metadata_url`, `issuer`, `client_id`,
    /// `client_secret`, `domain`) and what to say next to it.
    Invalid {
        field: &'static str,
        message: String,
    },
    /// Refused for a reason the person should read (e.g. the TXT record was
    /// not found, or the domain belongs to another workspace).
    Refused(String),
    /// Anything else (database down...): shown as an error page.
    Failed(DomainError),
}

pub async fn list_connections(
    _state: &AppState,
    _ctx: &Ctx,
) -> Result<Vec<ConnectionView>, SsoError> {
    Err(SsoError::NotAvailable)
}

/// Creates a connection; the returned view carries its new id.
pub async fn create_connection(
    _state: &AppState,
    _ctx: &Ctx,
    _new: NewConnection,
) -> Result<ConnectionView, SsoError> {
    Err(SsoError::NotAvailable)
}

pub async fn delete_connection(_state: &AppState, _ctx: &Ctx, _id: &str) -> Result<(), SsoError> {
    Err(SsoError::NotAvailable)
}

pub async fn list_domains(_state: &AppState, _ctx: &Ctx) -> Result<Vec<DomainView>, SsoError> {
    Err(SsoError::NotAvailable)
}

/// Claims a domain; the view carries the TXT record to publish.
pub async fn add_domain(
    _state: &AppState,
    _ctx: &Ctx,
    _domain: &str,
) -> Result<DomainView, SsoError> {
    Err(SsoError::NotAvailable)
}

/// Looks the TXT record up now; `Refused(reason)` when it is not there.
pub async fn verify_domain(
    _state: &AppState,
    _ctx: &Ctx,
    _domain: &str,
) -> Result<DomainView, SsoError> {
    Err(SsoError::NotAvailable)
}

pub async fn delete_domain(_state: &AppState, _ctx: &Ctx, _domain: &str) -> Result<(), SsoError> {
    Err(SsoError::NotAvailable)
}
