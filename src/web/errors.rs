//! One domain error, two adapters: RFC 9457 problem+json for the API and a
//! plain page for browsers. Internal details are logged, never shown.

use super::views::{self, MessagePage};
use crate::domain::DomainError;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The HTTP status of a domain error (one mapping for every adapter).
pub fn status_of(e: &DomainError) -> StatusCode {
    match e {
        DomainError::Invalid(_) => StatusCode::BAD_REQUEST,
        DomainError::NotFound => StatusCode::NOT_FOUND,
        DomainError::Conflict(_) => StatusCode::CONFLICT,
        DomainError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
        DomainError::Unauthenticated => StatusCode::UNAUTHORIZED,
        DomainError::Forbidden(_) | DomainError::SsoRequired(_) | DomainError::MfaRequired => {
            StatusCode::FORBIDDEN
        }
        DomainError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        DomainError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What may be shown to the caller.
fn public_detail(e: &DomainError) -> String {
    match e {
        DomainError::Unavailable(m) | DomainError::Internal(m) => {
            tracing::error!(error = %m, "request failed");
            match e {
                DomainError::Unavailable(_) => {
                    "A backing service is unavailable; try again shortly.".into()
                }
                _ => "Something went wrong on our side.".into(),
            }
        }
        DomainError::Unauthenticated => "Sign in first.".into(),
        DomainError::NotFound => "Not found.".into(),
        other => other.to_string(),
    }
}

pub struct ApiError(pub DomainError);

impl<E: Into<DomainError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

pub fn problem(status: StatusCode, detail: &str) -> Response {
    let kind = status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace(' ', "-");
    typed_problem(status, &kind, detail)
}

/// A problem whose `type` is `urn:iamgw:problem/<kind>`: the status's
/// reason phrase, or a reason of its own (`sso-required`, `mfa-required`).
pub fn typed_problem(status: StatusCode, kind: &str, detail: &str) -> Response {
    let body = json!({
        "type": format!("urn:iamgw:problem/{kind}"),
        "title": status.canonical_reason().unwrap_or("Error"),
        "status": status.as_u16(),
        "detail": detail,
    });
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        let detail = public_detail(&self.0);
        let mut r = match &self.0 {
            DomainError::SsoRequired(_) => typed_problem(status, "sso-required", &detail),
            DomainError::MfaRequired => typed_problem(status, "mfa-required", &detail),
            _ => problem(status, &detail),
        };
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        r
    }
}

pub struct PageError(pub DomainError);

impl<E: Into<DomainError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        let title = status.canonical_reason().unwrap_or("Error").to_string();
        let page = MessagePage {
            chrome: views::Chrome::anonymous(),
            title,
            message: public_detail(&self.0),
            link: Some(("/login".into(), "Go to sign-in".into())),
        };
        (status, views::render(&page)).into_response()
    }
}

/// Where a page handler stops early: with a ready answer (a redirect, a
/// refusal page, "form expired") or with an error shown as a page. Handlers
/// return `Result<Response, Halt>` and stop with `?`.
pub enum Halt {
    Reply(Box<Response>),
    Error(PageError),
}

impl<E: Into<DomainError>> From<E> for Halt {
    fn from(e: E) -> Self {
        Halt::Error(PageError(e.into()))
    }
}

impl From<PageError> for Halt {
    fn from(e: PageError) -> Self {
        Halt::Error(e)
    }
}

impl From<Response> for Halt {
    fn from(r: Response) -> Self {
        Halt::Reply(Box::new(r))
    }
}

impl IntoResponse for Halt {
    fn into_response(self) -> Response {
        match self {
            Halt::Reply(r) => *r,
            Halt::Error(e) => e.into_response(),
        }
    }
}
