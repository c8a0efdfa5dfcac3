//! The Apps page (`/w/{slug}/apps`, owners): the workspace's OpenID Connect
//! clients. Lists them, registers one (its secret shown once, on the page
//! that answers the form) and deletes one.

use super::forms::refusal;
use super::{role_options, seg, OwnerForm, RoleOption, WsPage};
use crate::service::oidc_clients::{self, NewClient};
use crate::store::oidc::OidcClient;
use crate::web::errors::PageError;
use crate::web::login::see_other;
use crate::web::views::{self, Chrome};
use crate::web::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// What the registration form held (kept when it is refused).
#[derive(Default)]
pub struct AppInput {
    pub name: String,
    pub redirect_uris: String,
    pub post_logout_redirect_uris: String,
    pub backchannel_logout_uri: String,
    pub public: bool,
    pub required_role: String,
}

/// A new client's id and secret, shown once.
pub struct Created {
    pub name: String,
    pub client_id: String,
    pub secret: Option<String>,
}

#[derive(Template)]
#[template(path = "apps.html")]
pub struct AppsPage {
    pub chrome: Chrome,
    pub ws_name: String,
    pub slug: String,
    pub section: &'static str,
    pub owner: bool,
    pub read_only_reason: String,
    pub notice: Option<String>,
    pub form_error: Option<String>,
    pub apps: Vec<OidcClient>,
    pub discovery_url: String,
    pub roles: Vec<RoleOption>,
    pub input: AppInput,
    pub created: Option<Created>,
}

impl AppsPage {
    fn render(&self, status: StatusCode) -> Response {
        (status, views::render(self)).into_response()
    }
}

async fn build(state: &AppState, wp: &WsPage) -> Result<AppsPage, PageError> {
    Ok(AppsPage {
        chrome: wp.chrome.clone(),
        ws_name: wp.ctx.ws.name.clone(),
        slug: wp.slug().to_string(),
        section: "apps",
        owner: wp.owner,
        read_only_reason: wp.read_only_reason(),
        notice: None,
        form_error: None,
        apps: oidc_clients::list(state, &wp.ctx).await?,
        discovery_url: format!("{}/.well-known/openid-configuration", state.cfg.public_url),
        roles: role_options(),
        input: AppInput::default(),
        created: None,
    })
}

#[derive(serde::Deserialize)]
pub struct Done {
    done: Option<String>,
}

/// `GET /w/{slug}/apps` (owners; others get the read-only 403 page).
pub async fn page(
    State(state): State<AppState>,
    wp: WsPage,
    Query(q): Query<Done>,
) -> Result<Response, PageError> {
    if !wp.owner {
        return Ok(wp.not_owner(&format!("/w/{}/access", seg(wp.slug()))));
    }
    let mut page = build(&state, &wp).await?;
    if q.done.as_deref() == Some("deleted") {
        page.notice = Some("App deleted: its sign-ins and tokens no longer work.".into());
    }
    Ok(page.render(StatusCode::OK))
}

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `POST /w/{slug}/apps`: registers an app.
pub async fn create(
    State(state): State<AppState>,
    OwnerForm { wp, f }: OwnerForm,
) -> Result<Response, PageError> {
    let input = AppInput {
        name: f.get("name").to_string(),
        redirect_uris: f.get("redirect_uris").to_string(),
        post_logout_redirect_uris: f.get("post_logout_redirect_uris").to_string(),
        backchannel_logout_uri: f.get("backchannel_logout_uri").trim().to_string(),
        public: f.get("public") == "on",
        required_role: f.get("required_role").to_string(),
    };
    let req = NewClient {
        name: input.name.clone(),
        redirect_uris: lines(&input.redirect_uris),
        post_logout_redirect_uris: lines(&input.post_logout_redirect_uris),
        backchannel_logout_uri: Some(input.backchannel_logout_uri.clone())
            .filter(|u| !u.is_empty()),
        public: input.public,
        required_role: Some(input.required_role.clone()).filter(|r| !r.is_empty()),
    };
    let made = oidc_clients::create(&state, &wp.ctx, req).await;
    let mut page = build(&state, &wp).await?;
    match made {
        Ok((client, secret)) => {
            page.notice = Some(format!("App {} registered.", client.name));
            page.created = Some(Created {
                name: client.name,
                client_id: client.id,
                secret,
            });
            Ok(page.render(StatusCode::OK))
        }
        Err(e) => {
            page.form_error = Some(refusal(e)?);
            page.input = input;
            Ok(page.render(StatusCode::BAD_REQUEST))
        }
    }
}

/// `POST /w/{slug}/apps/{client_id}/delete`.
pub async fn delete(
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    OwnerForm { wp, .. }: OwnerForm,
) -> Result<Response, PageError> {
    match oidc_clients::delete(&state, &wp.ctx, &id).await {
        Ok(()) => Ok(see_other(&format!(
            "/w/{}/apps?done=deleted",
            seg(wp.slug())
        ))),
        Err(e) => {
            let why = refusal(e)?;
            let mut page = build(&state, &wp).await?;
            page.form_error = Some(why);
            Ok(page.render(StatusCode::NOT_FOUND))
        }
    }
}
