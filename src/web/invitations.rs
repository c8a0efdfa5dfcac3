//! Accepting an invitation at `/invitations/{token}`: a signed-in person
//! with the invited email accepts with one click; someone without an account
//! sets a name and password; an existing user signs in first. The rules are
//! `service::invitations`'; this shapes the page.

use super::csrf;
use super::errors::PageError;
use super::http::{client_ip, current_session};
use super::login::{csrf_refused, finish_sign_in, see_other, with_cookie};
use super::views::{self, Chrome, InvitationPage};
use super::AppState;
use crate::domain::DomainError;
use crate::service::invitations::{self, Offer, Opened};
use crate::session::Session;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use serde::Deserialize;
use std::net::SocketAddr;

/// What the invitation offers whoever is looking, and their session.
async fn offer(
    state: &AppState,
    headers: &HeaderMap,
    o: &Opened,
) -> Result<(Offer, Option<Session>), DomainError> {
    let session = current_session(state, headers).await?.map(|(_, s)| s);
    let offer = invitations::offer(state, &o.inv, session.as_ref()).await?;
    Ok((offer, session))
}

/// The page's kind and the email the visitor is signed in with, when it
/// is not the invited one.
fn kind_of(offer: &Offer) -> (&'static str, Option<String>) {
    match offer {
        Offer::Accept => ("accept", None),
        Offer::WrongAccount(e) => ("wrong_account", Some(e.clone())),
        Offer::SignInFirst => ("sign_in", None),
        Offer::CreateAccount => ("create", None),
    }
}

fn page(
    state: &AppState,
    headers: &HeaderMap,
    o: &Opened,
    offer: &Offer,
    session: Option<&Session>,
    error: Option<String>,
) -> Response {
    let (csrf, set) = csrf::page_token(state, headers, session);
    let (kind, signed_in_as) = kind_of(offer);
    let status = match error {
        Some(_) => StatusCode::BAD_REQUEST,
        None => StatusCode::OK,
    };
    let user_email = signed_in_as
        .clone()
        .or_else(|| session.map(|_| o.inv.email.clone()));
    let return_to = format!("/invitations/{}", o.token);
    let p = InvitationPage {
        chrome: Chrome {
            csrf,
            user_email,
            ..Chrome::default()
        },
        workspace: o.ws.name.clone(),
        email: o.inv.email.clone(),
        mode: kind.into(),
        signed_in_as,
        login_link: format!(
            "/login?return_to={}",
            super::forward_auth::urlencode(&return_to)
        ),
        error,
    };
    with_cookie((status, views::render(&p)).into_response(), set)
}

/// A workspace that requires SSO takes its invitations through its IdP:
/// signing in there accepts the open invitation for that email.
async fn through_idp(state: &AppState, o: &Opened) -> Result<Option<Response>, PageError> {
    if !o.ws.settings.require_sso {
        return Ok(None);
    }
    Ok(
        crate::service::access::first_enabled_connection(state.store.as_ref(), &o.ws.id)
            .await?
            .map(|c| see_other(&format!("/sso/{}/start?return_to=%2Fworkspaces", c.id))),
    )
}

pub async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, PageError> {
    let o = invitations::open(&state, &token).await?;
    if let Some(r) = through_idp(&state, &o).await? {
        return Ok(r);
    }
    let (offer, session) = offer(&state, &headers, &o).await?;
    Ok(page(&state, &headers, &o, &offer, session.as_ref(), None))
}

#[derive(Deserialize)]
pub struct AcceptForm {
    pub csrf_token: Option<String>,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub password: String,
}

/// Someone without an account sets a name and password: the account is
/// created, accepts, and is signed in; a refused name or password comes
/// back on the page.
async fn create_account(
    state: &AppState,
    headers: &HeaderMap,
    o: &Opened,
    f: &AcceptForm,
    ip: std::net::IpAddr,
) -> Result<Response, PageError> {
    if let Err(why) = invitations::check_new_account(&f.name, &f.password, &o.inv.email) {
        let offer = Offer::CreateAccount;
        return Ok(page(state, headers, o, &offer, None, Some(why.to_string())));
    }
    let ip_text = ip.to_string();
    let user = invitations::accept_new_account(state, o, &f.name, &f.password, &ip_text).await?;
    let via = crate::service::signin::Via::Password { mfa: false };
    Ok(finish_sign_in(state, headers, &user, via, "/workspaces", ip).await?)
}

pub async fn accept(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(f): Form<AcceptForm>,
) -> Result<Response, PageError> {
    let o = invitations::open(&state, &token).await?;
    if let Some(r) = through_idp(&state, &o).await? {
        return Ok(r);
    }
    let (offer, session) = offer(&state, &headers, &o).await?;
    if !csrf::verify(&state, &headers, session.as_ref(), f.csrf_token.as_deref()) {
        return Ok(csrf_refused());
    }
    let ip = client_ip(&state, peer, &headers);
    match (&offer, &session) {
        (Offer::Accept, Some(s)) => {
            invitations::accept_signed_in(&state, &o, s, &ip.to_string()).await?;
            Ok(see_other("/workspaces"))
        }
        (Offer::Accept, None) => Err(PageError(DomainError::Unauthenticated)),
        (Offer::CreateAccount, _) => create_account(&state, &headers, &o, &f, ip).await,
        (Offer::SignInFirst | Offer::WrongAccount(_), _) => {
            Ok(page(&state, &headers, &o, &offer, session.as_ref(), None))
        }
    }
}
