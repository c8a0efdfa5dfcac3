//! Askama templates, one struct per page (templates/<name>.html).

use askama::Template;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// What every page's frame needs.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    pub csrf: String,
    pub user_email: Option<String>,
    /// The signed-in person's workspaces, for the header's switcher.
    pub workspaces: Vec<NavWorkspace>,
    /// The workspace the page is about, if any.
    pub current_workspace: Option<String>,
    /// The Twilio Console's address, for a person whose account is linked
    /// to Twilio: the header offers the Twilio product switcher (Segment,
    /// and back to the Console).
    pub twilio_console: Option<String>,
}

/// One entry of the header's workspace switcher.
#[derive(Debug, Clone, Default)]
pub struct NavWorkspace {
    pub slug: String,
    pub name: String,
    pub current: bool,
}

impl Chrome {
    pub fn anonymous() -> Self {
        Self::default()
    }
}

pub fn render<T: Template>(page: &T) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain")],
                "internal error",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "login_email.html")]
pub struct LoginEmailPage {
    pub chrome: Chrome,
    /// Show "Continue with Twilio".
    pub twilio: bool,
    pub return_to: String,
    pub email: String,
    pub error: Option<String>,
    pub notice: Option<String>,
}

/// Shown instead of an immediate redirect when sign-in must continue at a
/// workspace's identity provider (e.g. Require SSO blocked another method).
#[derive(Template)]
#[template(path = "login_sso.html")]
pub struct SsoNoticePage {
    pub chrome: Chrome,
    pub workspace: String,
    /// Where to continue: `/sso/{connection_id}/start?return_to=…`.
    pub continue_url: String,
    pub reason: Option<String>,
}

#[derive(Template)]
#[template(path = "login_password.html")]
pub struct LoginPasswordPage {
    pub chrome: Chrome,
    pub return_to: String,
    pub email: String,
    pub error: Option<String>,
}

pub struct WorkspaceRow {
    pub slug: String,
    pub name: String,
    /// The person's effective roles there, each with where it comes from.
    pub roles: Vec<super::pages::RoleItem>,
}

#[derive(Template)]
#[template(path = "workspaces.html")]
pub struct WorkspacesPage {
    pub chrome: Chrome,
    pub name: String,
    pub workspaces: Vec<WorkspaceRow>,
}

#[derive(Template)]
#[template(path = "set_password.html")]
pub struct SetPasswordPage {
    pub chrome: Chrome,
    pub email: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    pub chrome: Chrome,
    pub title: String,
    pub message: String,
    /// (href, label)
    pub link: Option<(String, String)>,
}

#[derive(Template)]
#[template(path = "login_mfa.html")]
pub struct MfaPage {
    pub chrome: Chrome,
    pub email: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "forgot.html")]
pub struct ForgotPage {
    pub chrome: Chrome,
    pub sent: bool,
}

#[derive(Template)]
#[template(path = "account.html")]
pub struct AccountPage {
    pub chrome: Chrome,
    pub name: String,
    pub email: String,
    pub has_password: bool,
    pub mfa_enabled: bool,
    /// This session proved a second factor.
    pub session_mfa: bool,
    pub recovery_left: i64,
    /// This person's live sessions, this one first.
    pub sessions: Vec<SessionRow>,
    pub method: String,
    pub notice: Option<String>,
    /// The workspace page that sent the person here for a second factor
    /// (validated): enrolling or stepping up goes back there.
    pub return_to: Option<String>,
    /// Twilio sign-in is configured on this gateway.
    pub twilio_available: bool,
    /// The linked Twilio account's subject, if any.
    pub twilio_subject: Option<String>,
}

pub struct SessionRow {
    pub current: bool,
    pub method: String,
    pub started: String,
    pub last_seen: String,
}

#[derive(Template)]
#[template(path = "mfa_setup.html")]
pub struct MfaSetupPage {
    pub chrome: Chrome,
    pub uri: String,
    pub secret: String,
    /// Rendered by the server from `uri`.
    pub qr_svg: String,
    pub error: Option<String>,
    /// Where to go once 2FA is on (validated), carried through the form.
    pub return_to: Option<String>,
}

#[derive(Template)]
#[template(path = "recovery_codes.html")]
pub struct RecoveryCodesPage {
    pub chrome: Chrome,
    pub codes: Vec<String>,
    /// Where "Done" goes: the page that asked for a second factor, or the
    /// account page.
    pub next: String,
}

#[derive(Template)]
#[template(path = "invitation.html")]
pub struct InvitationPage {
    pub chrome: Chrome,
    pub workspace: String,
    pub email: String,
    /// accept | wrong_account | sign_in | create
    pub mode: String,
    pub signed_in_as: Option<String>,
    pub login_link: String,
    pub error: Option<String>,
}

#[derive(Template)]
#[template(path = "twilio_confirm.html")]
pub struct TwilioConfirmPage {
    pub chrome: Chrome,
    pub email: String,
    pub token: String,
    pub has_password: bool,
    pub error: Option<String>,
}
