//! The issuer's pages: one askama struct per `templates/twilio_*.html`, the
//! error page, and small response helpers. Internal details are logged,
//! never shown.

use crate::domain::DomainError;
use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// What every page's frame needs.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    pub csrf: String,
    /// The signed-in account's email, for the header.
    pub email: Option<String>,
}

pub fn render<T: Template>(page: &T) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "twilio issuer template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain")],
                "internal error",
            )
                .into_response()
        }
    }
}

/// `page` with a status.
pub fn render_status<T: Template>(status: StatusCode, page: &T) -> Response {
    let mut r = render(page);
    if r.status() == StatusCode::OK {
        *r.status_mut() = status;
    }
    r
}

/// A 303 to a local path or a URL.
pub fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// Appends `Set-Cookie` headers.
pub fn with_cookies(mut resp: Response, cookies: impl IntoIterator<Item = String>) -> Response {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

#[derive(Template)]
#[template(path = "twilio_login.html")]
pub struct SignInPage {
    pub chrome: Chrome,
    pub return_to: String,
    pub email: String,
    pub error: Option<String>,
    pub notice: Option<String>,
}

#[derive(Template)]
#[template(path = "twilio_totp.html")]
pub struct TotpStepPage {
    pub chrome: Chrome,
    pub return_to: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "twilio_message.html")]
pub struct MessagePage {
    pub chrome: Chrome,
    pub title: String,
    pub message: String,
    /// (href, label)
    pub link: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "twilio_account.html")]
pub struct AccountPage {
    pub chrome: Chrome,
    pub name: String,
    pub email: String,
    pub email_verified: bool,
    pub totp_enabled: bool,
    pub notice: Option<String>,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "twilio_totp_setup.html")]
pub struct TotpSetupPage {
    pub chrome: Chrome,
    pub secret: String,
    pub uri: String,
    pub error: Option<String>,
}

pub struct Product {
    pub name: &'static str,
    pub blurb: &'static str,
    /// Where the switcher entry leads; `None`: this console.
    pub href: Option<String>,
}

#[derive(Template)]
#[template(path = "twilio_console.html")]
pub struct ConsolePage {
    pub chrome: Chrome,
    pub name: String,
    pub products: Vec<Product>,
}

#[derive(Template)]
#[template(path = "twilio_set_password.html")]
pub struct SetPasswordPage {
    pub chrome: Chrome,
    pub email: String,
    pub error: Option<String>,
}

use crate::web::errors::status_of;

/// What may be shown to the person.
pub fn public_detail(e: &DomainError) -> String {
    match e {
        DomainError::Unavailable(m) => {
            tracing::error!(error = %m, "twilio issuer: backing service unavailable");
            "A backing service is unavailable; try again shortly.".into()
        }
        DomainError::Internal(m) => {
            tracing::error!(error = %m, "twilio issuer: request failed");
            "Something went wrong on our side.".into()
        }
        DomainError::Unauthenticated => "Sign in first.".into(),
        DomainError::NotFound => "Not found.".into(),
        other => other.to_string(),
    }
}

/// A message page with a status.
pub fn message(
    status: StatusCode,
    title: &str,
    text: &str,
    link: Option<(&str, &str)>,
) -> Response {
    let page = MessagePage {
        chrome: Chrome::default(),
        title: title.to_string(),
        message: text.to_string(),
        link: link.map(|(h, l)| (h.to_string(), l.to_string())),
    };
    render_status(status, &page)
}

/// The answer to a form whose CSRF token is missing or wrong.
pub fn csrf_refused() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "For your safety the form could not be accepted. Go back, reload the page and try again.",
        Some(("/login", "Go to sign-in")),
    )
}

/// A browser-facing error.
pub struct PageError(pub DomainError);

impl<E: Into<DomainError>> From<E> for PageError {
    fn from(e: E) -> Self {
        PageError(e.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let status = status_of(&self.0);
        message(
            status,
            status.canonical_reason().unwrap_or("Error"),
            &public_detail(&self.0),
            Some(("/console", "Go to the Console")),
        )
    }
}
