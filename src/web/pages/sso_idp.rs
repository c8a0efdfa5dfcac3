//! The SSO page's connection and domain forms. They check their input,
//! then go through `sso_backend` (the core operations the API uses); its refusals
//! come back on the page, next to the field at fault when it names one.

use super::forms::{Errors, Fields};
use super::sso::{build, here, render, SsoInput, NOT_AVAILABLE};
use super::sso_backend::{self as backend, NewConnection, SsoError};
use super::OwnerForm;
use super::WsPage;
use crate::web::errors::PageError;
use crate::web::login::see_other;
use crate::web::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

/// The page again after a refusal of the connection or domain backend.
async fn backend_refused(
    state: &AppState,
    wp: &WsPage,
    e: SsoError,
    input: SsoInput,
) -> Result<Response, PageError> {
    let mut page = build(state, wp).await?;
    page.input = input;
    let status = match e {
        SsoError::NotAvailable => {
            page.form_error = Some(NOT_AVAILABLE.into());
            StatusCode::NOT_IMPLEMENTED
        }
        SsoError::Invalid { field, message } => {
            page.errors.add(field, message);
            StatusCode::BAD_REQUEST
        }
        SsoError::Refused(why) => {
            page.form_error = Some(why);
            StatusCode::CONFLICT
        }
        SsoError::Failed(e) => return Err(e.into()),
    };
    Ok(render(&page, status))
}

fn https_url(u: &str) -> bool {
    url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "https" | "http"))
}

/// The OpenID Connect form's connection, each missing field noted.
fn oidc_form(f: &Fields, input: &SsoInput, errors: &mut Errors) -> NewConnection {
    if !https_url(&input.issuer) {
        errors.add(
            "issuer",
            "Enter the issuer URL, like https://idp.example.com.",
        );
    }
    if input.client_id.is_empty() {
        errors.add("client_id", "Enter the client ID the IdP gave you.");
    }
    if f.get("client_secret").is_empty() {
        errors.add("client_secret", "Enter the client secret the IdP gave you.");
    }
    NewConnection::Oidc {
        name: input.name.clone(),
        issuer: input.issuer.clone(),
        client_id: input.client_id.clone(),
        client_secret: f.get("client_secret").to_string(),
    }
}

/// The SAML form's connection: pasted metadata or its URL, not both.
fn saml_form(input: &SsoInput, errors: &mut Errors) -> NewConnection {
    match (input.metadata_xml.is_empty(), input.metadata_url.is_empty()) {
        (true, true) => errors.add(
            "metadata_xml",
            "Paste the IdP's metadata XML, or give its URL below.",
        ),
        (false, false) => errors.add(
            "metadata_url",
            "Give either pasted metadata or a URL, not both.",
        ),
        (true, false) if !https_url(&input.metadata_url) => errors.add(
            "metadata_url",
            "Enter the metadata URL, like https://idp.example.com/metadata.",
        ),
        _ => {}
    }
    NewConnection::Saml {
        name: input.name.clone(),
        metadata_xml: Some(input.metadata_xml.clone()).filter(|x| !x.is_empty()),
        metadata_url: Some(input.metadata_url.clone()).filter(|x| !x.is_empty()),
    }
}

/// What the "add connection" form holds, the connection it asks for, and
/// what is wrong with it, field by field.
fn connection_form(f: &Fields) -> (SsoInput, NewConnection, Errors) {
    let input = SsoInput {
        kind: f.get("kind").to_string(),
        name: f.get("name").to_string(),
        metadata_xml: f.get("metadata_xml").to_string(),
        metadata_url: f.get("metadata_url").to_string(),
        issuer: f.get("issuer").to_string(),
        client_id: f.get("client_id").to_string(),
        ..SsoInput::default()
    };
    let mut errors = Errors::default();
    if input.name.is_empty() || input.name.chars().count() > 100 {
        errors.add("name", "Give the connection a name of 1 to 100 characters.");
    }
    let new = match input.kind.as_str() {
        "oidc" => oidc_form(f, &input, &mut errors),
        _ => saml_form(&input, &mut errors),
    };
    (input, new, errors)
}

pub async fn add_connection(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    OwnerForm { wp, f }: OwnerForm,
) -> Result<Response, PageError> {
    let (input, new, errors) = connection_form(&f);
    if !errors.is_empty() {
        let mut page = build(&state, &wp).await?;
        page.input = input;
        page.errors = errors;
        return Ok(render(&page, StatusCode::BAD_REQUEST));
    }
    match backend::create_connection(&state, &wp.ctx, new).await {
        Ok(_) => Ok(see_other(&format!("{}?done=connection", here(&slug)))),
        Err(e) => backend_refused(&state, &wp, e, input).await,
    }
}

pub async fn delete_connection(
    State(state): State<AppState>,
    Path((slug, id)): Path<(String, String)>,
    OwnerForm { wp, .. }: OwnerForm,
) -> Result<Response, PageError> {
    match backend::delete_connection(&state, &wp.ctx, &id).await {
        Ok(()) => Ok(see_other(&format!("{}?done=deleted", here(&slug)))),
        Err(e) => backend_refused(&state, &wp, e, SsoInput::default()).await,
    }
}

pub async fn add_domain(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    OwnerForm { wp, f }: OwnerForm,
) -> Result<Response, PageError> {
    let domain = f.get("domain").to_ascii_lowercase();
    let input = SsoInput {
        domain: domain.clone(),
        ..SsoInput::default()
    };
    let looks_like_domain = crate::service::domains::valid_domain(domain.trim_end_matches('.'));
    if !looks_like_domain {
        let mut page = build(&state, &wp).await?;
        page.input = input;
        page.errors
            .add("domain", "Enter a domain name, like corp.example.com.");
        return Ok(render(&page, StatusCode::BAD_REQUEST));
    }
    match backend::add_domain(&state, &wp.ctx, &domain).await {
        Ok(_) => Ok(see_other(&format!("{}?done=domain", here(&slug)))),
        Err(e) => backend_refused(&state, &wp, e, input).await,
    }
}

pub async fn verify_domain(
    State(state): State<AppState>,
    Path((slug, domain)): Path<(String, String)>,
    OwnerForm { wp, .. }: OwnerForm,
) -> Result<Response, PageError> {
    match backend::verify_domain(&state, &wp.ctx, &domain).await {
        Ok(_) => Ok(see_other(&format!("{}?done=verified", here(&slug)))),
        Err(e) => backend_refused(&state, &wp, e, SsoInput::default()).await,
    }
}

pub async fn delete_domain(
    State(state): State<AppState>,
    Path((slug, domain)): Path<(String, String)>,
    OwnerForm { wp, .. }: OwnerForm,
) -> Result<Response, PageError> {
    match backend::delete_domain(&state, &wp.ctx, &domain).await {
        Ok(()) => Ok(see_other(&format!("{}?done=deleted", here(&slug)))),
        Err(e) => backend_refused(&state, &wp, e, SsoInput::default()).await,
    }
}
