//! The one seam between the SSO settings page and the SSO connections and
//! domains logic: it calls the same core operations as the REST API
//! (`service::sso_admin` and `service::domains`), so the page and the API
//! keep one set of rules and audit events, and turns their refusals into
//! words for the form:
//! [`SsoError::Invalid`] names the field at fault, [`SsoError::Refused`]
//! is anything else the person should read. [`SsoError::NotAvailable`]
//! remains for a gateway without SSO; the page then says so.

use super::forms::sentence;
use crate::domain::DomainError;
use crate::service::sso_admin::{self, ConnectionBody};
use crate::service::{domains, Ctx};
use crate::sso_config;
use crate::store::{Domain, SsoConnection};
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
    /// SAML: when the first of its pinned certificates expires.
    pub cert_expires: Option<i64>,
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
    /// SSO is not available on this gateway.
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

/// The form field an API message is about, from the field it names first.
fn field_of(message: &str, fallback: &'static str) -> &'static str {
    const FIELDS: [(&str, &str); 12] = [
        ("email_attribute", "email_attribute"),
        ("name_attribute", "name_attribute"),
        ("group_attribute", "group_attribute"),
        ("group_mappings", "group_id"),
        ("idp_certificate", "certificate"),
        ("name", "name"),
        ("idp_metadata_url", "metadata_url"),
        ("idp_metadata_xml", "metadata_xml"),
        ("issuer", "issuer"),
        ("client_id", "client_id"),
        ("client_secret", "client_secret"),
        ("domain", "domain"),
    ];
    FIELDS
        .iter()
        .find(|(api, _)| message.starts_with(api))
        .map(|(_, form)| *form)
        .unwrap_or(fallback)
}

/// The API message without its leading `field_name: ` (the page shows it
/// next to the field already).
fn without_field_name(m: &str) -> &str {
    match m.split_once(": ") {
        Some((head, rest))
            if !head.is_empty() && head.chars().all(|c| c.is_ascii_lowercase() || c == '_') =>
        {
            rest
        }
        _ => m,
    }
}

/// A core refusal for the page; `fallback` is the field blamed when the
/// message names none (e.g. the metadata the person gave).
fn refused(e: DomainError, fallback: &'static str) -> SsoError {
    match e {
        DomainError::Invalid(m) | DomainError::Unprocessable(m) => SsoError::Invalid {
            field: field_of(&m, fallback),
            message: sentence(without_field_name(&m)),
        },
        DomainError::Conflict(m) | DomainError::Forbidden(m) => SsoError::Refused(sentence(&m)),
        DomainError::NotFound => {
            SsoError::Refused("That no longer exists; reload the page.".into())
        }
        other => SsoError::Failed(other),
    }
}

fn failed(e: impl Into<DomainError>) -> SsoError {
    SsoError::Failed(e.into())
}

fn connection_view(c: &SsoConnection) -> ConnectionView {
    let saml = if c.kind == "saml" {
        sso_config::saml(&c.config).ok()
    } else {
        None
    };
    let cert_expires = saml.as_ref().and_then(|cfg| {
        sso_admin::pinned_certificates(cfg)
            .iter()
            .map(|c| c.not_after)
            .min()
    });
    let idp = if c.kind == "saml" {
        saml.map(|cfg| cfg.idp_entity_id).unwrap_or_default()
    } else {
        sso_config::oidc(&c.config)
            .map(|cfg| cfg.issuer)
            .unwrap_or_default()
    };
    ConnectionView {
        id: c.id.clone(),
        name: c.name.clone(),
        kind: c.kind.clone(),
        enabled: c.enabled,
        idp,
        cert_expires,
    }
}

fn domain_view(d: &Domain) -> DomainView {
    DomainView {
        domain: d.domain.clone(),
        verified: d.verified_at.is_some(),
        verification_record: domains::verification_record(d),
    }
}

pub async fn list_connections(
    state: &AppState,
    ctx: &Ctx,
) -> Result<Vec<ConnectionView>, SsoError> {
    let items = sso_admin::list_connections(state, ctx)
        .await
        .map_err(failed)?;
    Ok(items.iter().map(connection_view).collect())
}

/// The core's body for a form's connection, and the field blamed for a
/// refusal that names none.
fn body_of(new: NewConnection) -> (ConnectionBody, &'static str) {
    match new {
        NewConnection::Saml {
            name,
            metadata_xml,
            metadata_url,
        } => {
            let fallback = if metadata_xml.is_some() {
                "metadata_xml"
            } else {
                "metadata_url"
            };
            let body = ConnectionBody {
                kind: Some("saml".into()),
                name: Some(name),
                idp_metadata_xml: metadata_xml,
                idp_metadata_url: metadata_url,
                ..ConnectionBody::default()
            };
            (body, fallback)
        }
        NewConnection::Oidc {
            name,
            issuer,
            client_id,
            client_secret,
        } => {
            let body = ConnectionBody {
                kind: Some("oidc".into()),
                name: Some(name),
                issuer: Some(issuer),
                client_id: Some(client_id),
                client_secret: Some(client_secret),
                ..ConnectionBody::default()
            };
            (body, "issuer")
        }
    }
}

/// Creates a connection; the returned view carries its new id.
pub async fn create_connection(
    state: &AppState,
    ctx: &Ctx,
    new: NewConnection,
) -> Result<ConnectionView, SsoError> {
    let (body, fallback) = body_of(new);
    let c = sso_admin::create_connection(state, ctx, body)
        .await
        .map_err(|e| refused(e, fallback))?;
    Ok(connection_view(&c))
}

/// A connection of this workspace (`Refused` when there is none).
pub async fn get_connection(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
) -> Result<SsoConnection, SsoError> {
    sso_admin::get_connection(state, ctx, id)
        .await
        .map_err(|e| refused(e, "name"))
}

/// Changes a connection with the API's body; `fallback` is the field
/// blamed for a refusal that names none.
pub async fn update_connection(
    state: &AppState,
    ctx: &Ctx,
    id: &str,
    body: ConnectionBody,
    fallback: &'static str,
) -> Result<SsoConnection, SsoError> {
    sso_admin::update_connection(state, ctx, id, body)
        .await
        .map_err(|e| refused(e, fallback))
}

pub async fn delete_connection(state: &AppState, ctx: &Ctx, id: &str) -> Result<(), SsoError> {
    sso_admin::delete_connection(state, ctx, id)
        .await
        .map_err(|e| refused(e, "name"))
}

pub async fn list_domains(state: &AppState, ctx: &Ctx) -> Result<Vec<DomainView>, SsoError> {
    let items = domains::list_domains(state, ctx).await.map_err(failed)?;
    Ok(items.iter().map(domain_view).collect())
}

/// Claims a domain; the view carries the TXT record to publish.
pub async fn add_domain(state: &AppState, ctx: &Ctx, domain: &str) -> Result<DomainView, SsoError> {
    let d = domains::add_domain(state, ctx, domain)
        .await
        .map_err(|e| refused(e, "domain"))?;
    Ok(domain_view(&d))
}

/// Looks the TXT record up now; `Refused(reason)` when it is not there.
pub async fn verify_domain(
    state: &AppState,
    ctx: &Ctx,
    domain: &str,
) -> Result<DomainView, SsoError> {
    let d = domains::verify_domain(state, ctx, domain)
        .await
        .map_err(|e| refused(e, "domain"))?;
    Ok(domain_view(&d))
}

pub async fn delete_domain(state: &AppState, ctx: &Ctx, domain: &str) -> Result<(), SsoError> {
    domains::remove_domain(state, ctx, domain)
        .await
        .map_err(|e| refused(e, "domain"))
}

#[cfg(test)]
mod tests {
    use super::field_of;

    #[test]
    fn api_messages_name_the_form_field() {
        assert_eq!(field_of("name: 1 to 100 characters", "x"), "name");
        assert_eq!(
            field_of("idp_metadata_url answered 404", "x"),
            "metadata_url"
        );
        assert_eq!(field_of("issuer: not an http(s) URL", "x"), "issuer");
        assert_eq!(
            field_of("name_attribute: at most 200 characters", "x"),
            "name_attribute"
        );
        assert_eq!(
            field_of("group_mappings: no group `g` in this workspace", "x"),
            "group_id"
        );
        assert_eq!(field_of("client_secret is required", "x"), "client_secret");
        assert_eq!(
            field_of("the metadata has no signing certificate", "metadata_xml"),
            "metadata_xml"
        );
    }
}
