//! SCIM error responses (RFC 7644 section 3.12): the error schema, a status
//! (as a string) and, for 400 and 409, a `scimType`.

use crate::domain::DomainError;
use crate::store::StoreError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
pub const CONTENT_TYPE: &str = "application/scim+json";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScimError {
    pub status: StatusCode,
    pub scim_type: Option<&'static str>,
    pub detail: String,
}

impl ScimError {
    pub fn new(
        status: StatusCode,
        scim_type: Option<&'static str>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
        }
    }

    pub fn bad(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Some(scim_type), detail)
    }

    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::bad("invalidFilter", detail)
    }

    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::bad("invalidPath", detail)
    }

    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad("invalidValue", detail)
    }

    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::bad("invalidSyntax", detail)
    }

    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::bad("mutability", detail)
    }

    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::bad("noTarget", detail)
    }

    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, Some("uniqueness"), detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, None, detail)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            None,
            "A valid SCIM bearer token is required.",
        )
    }

    /// `If-Match` named another version (RFC 7644 section 3.14).
    pub fn precondition_failed() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            None,
            "The resource has changed since the version given in If-Match.",
        )
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "Something went wrong on our side.",
        )
    }
}

impl From<StoreError> for ScimError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ScimError::not_found("Resource not found."),
            StoreError::Conflict(what) if what.contains("owner") => {
                ScimError::new(StatusCode::CONFLICT, None, what)
            }
            StoreError::Conflict(what) => ScimError::uniqueness(what),
            StoreError::Invalid(what) => ScimError::invalid_value(what),
            StoreError::Unavailable(m) => {
                tracing::error!(error = %m, "SCIM request failed: store unavailable");
                ScimError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    None,
                    "A backing service is unavailable; try again shortly.",
                )
            }
            StoreError::Other(m) => {
                tracing::error!(error = %m, "SCIM request failed");
                ScimError::internal()
            }
        }
    }
}

impl From<DomainError> for ScimError {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Invalid(m) | DomainError::Unprocessable(m) => ScimError::invalid_value(m),
            DomainError::NotFound => ScimError::not_found("Resource not found."),
            DomainError::Conflict(m) => ScimError::uniqueness(m),
            DomainError::Unauthenticated => ScimError::unauthorized(),
            DomainError::Forbidden(m) => ScimError::new(StatusCode::FORBIDDEN, None, m),
            e @ (DomainError::SsoRequired(_) | DomainError::MfaRequired) => {
                ScimError::new(StatusCode::FORBIDDEN, None, e.to_string())
            }
            DomainError::Unavailable(m) | DomainError::Internal(m) => {
                tracing::error!(error = %m, "SCIM request failed");
                ScimError::internal()
            }
        }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            body.to_string(),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"scim\""),
            );
        }
        resp
    }
}

pub type ScimResult<T> = Result<T, ScimError>;
