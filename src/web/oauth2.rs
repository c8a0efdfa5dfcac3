//! The OpenID Provider's endpoints (SPEC section 13): discovery, authorize,
//! token, userinfo, revocation and RP-initiated logout. Adapters only: the
//! rules are in [`crate::service::op`].

use super::forward_auth::urlencode;
use super::http::current_session;
use super::login::{see_other, with_cookie};
use super::views::{render, Chrome, MessagePage};
use super::AppState;
use crate::service::op::{
    self, AuthRequest, AuthorizeRefusal, ClientAuth, TokenError, TokenRequest,
};
use crate::store::oidc::OidcClient;
use askama::Template;
use axum::extract::{Query, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreErrorResponseType,
    CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType,
    CoreSubjectIdentifierType,
};
use openidconnect::{
    AdditionalProviderMetadata, AuthUrl, IssuerUrl, JsonWebKeySetUrl, ProviderMetadata,
    ResponseTypes, RevocationUrl, Scope, StandardErrorResponse, TokenUrl, UserInfoUrl,
};
use serde::{Deserialize, Serialize};

/// Discovery fields the core metadata type does not carry.
#[derive(Clone, Debug, Deserialize, Serialize)]
struct Extra {
    end_session_endpoint: String,
    revocation_endpoint: RevocationUrl,
    code_challenge_methods_supported: Vec<String>,
    backchannel_logout_supported: bool,
    backchannel_logout_session_supported: bool,
    authorization_response_iss_parameter_supported: bool,
}
impl AdditionalProviderMetadata for Extra {}

type Metadata = ProviderMetadata<
    Extra,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

fn metadata(base: &str) -> Result<Metadata, openidconnect::url::ParseError> {
    let at = |p: &str| format!("{base}{p}");
    let extra = Extra {
        end_session_endpoint: at("/oauth2/logout"),
        revocation_endpoint: RevocationUrl::new(at("/oauth2/revoke"))?,
        code_challenge_methods_supported: vec!["S256".into()],
        backchannel_logout_supported: true,
        backchannel_logout_session_supported: true,
        authorization_response_iss_parameter_supported: true,
    };
    let claims = [
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "sid",
        "email",
        "email_verified",
        "name",
        "workspace",
        "roles",
        "amr",
    ];
    Ok(Metadata::new(
        IssuerUrl::new(base.to_string())?,
        AuthUrl::new(at("/oauth2/authorize"))?,
        JsonWebKeySetUrl::new(at("/.well-known/jwks.json"))?,
        vec![ResponseTypes::new(vec![CoreResponseType::Code])],
        vec![CoreSubjectIdentifierType::Public],
        vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256],
        extra,
    )
    .set_token_endpoint(Some(TokenUrl::new(at("/oauth2/token"))?))
    .set_userinfo_endpoint(Some(UserInfoUrl::new(at("/oauth2/userinfo"))?))
    .set_grant_types_supported(Some(vec![
        CoreGrantType::AuthorizationCode,
        CoreGrantType::RefreshToken,
    ]))
    .set_token_endpoint_auth_methods_supported(Some(vec![
        CoreClientAuthMethod::ClientSecretBasic,
        CoreClientAuthMethod::ClientSecretPost,
        CoreClientAuthMethod::None,
    ]))
    .set_scopes_supported(Some(
        op::SCOPES
            .iter()
            .map(|s| Scope::new(s.to_string()))
            .collect(),
    ))
    .set_response_modes_supported(Some(vec![CoreResponseMode::Query]))
    .set_claims_supported(Some(
        claims
            .iter()
            .map(|c| CoreClaimName::new(c.to_string()))
            .collect(),
    )))
}

/// `GET /.well-known/openid-configuration`.
pub async fn discovery(State(state): State<AppState>) -> Response {
    match metadata(&state.cfg.public_url) {
        Ok(m) => ([(header::CACHE_CONTROL, "public, max-age=300")], Json(m)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "public_url does not make discovery URLs");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

fn page(status: StatusCode, title: &str, message: &str) -> Response {
    let mut resp = render(&MessagePage {
        chrome: Chrome::anonymous(),
        title: title.into(),
        message: message.into(),
        link: Some(("/workspaces".into(), "Your workspaces".into())),
    });
    *resp.status_mut() = status;
    resp
}

/// `GET /oauth2/authorize`.
pub async fn authorize(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    authorization(&state, &headers, raw.unwrap_or_default()).await
}

/// `POST /oauth2/authorize` (form-encoded parameters, OIDC Core 3.1.2.1).
pub async fn authorize_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: String,
) -> Response {
    authorization(&state, &headers, body).await
}

async fn authorization(state: &AppState, headers: &HeaderMap, raw: String) -> Response {
    let req: AuthRequest = match serde_urlencoded_once(&raw) {
        Ok(r) => r,
        Err(why) => return page(StatusCode::BAD_REQUEST, "This sign-in link is broken", &why),
    };
    let mut checked = match op::check_request(state, &req).await {
        Ok(c) => c,
        Err(refusal) => return refused(state, None, &req, &raw, refusal),
    };
    // A malformed request gets a page, not a redirect: anyone can register
    // an app (as the owner of a workspace of their own), and the gateway
    // must not bounce browsers to it unasked (RFC 9700 4.11.2).
    if let Err(refusal) = op::check_params(&mut checked, &req) {
        return refused(state, None, &req, &raw, refusal);
    }
    let signed_in = match signed_in(state, headers).await {
        Ok(s) => s,
        Err(e) => {
            return refused(
                state,
                Some(&checked),
                &req,
                &raw,
                AuthorizeRefusal::Unavailable(e),
            )
        }
    };
    match op::authorize_code(state, &checked, signed_in).await {
        Ok(location) => found(&location),
        Err(refusal) => refused(state, Some(&checked), &req, &raw, refusal),
    }
}

/// The query's parameters, each at most once (RFC 6749 3.1).
fn serde_urlencoded_once(raw: &str) -> Result<AuthRequest, String> {
    let mut seen = std::collections::HashSet::new();
    let mut map = serde_json::Map::new();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if !seen.insert(k.to_string()) {
            return Err(format!("The parameter {k} appears more than once."));
        }
        map.insert(k.into_owned(), serde_json::Value::String(v.into_owned()));
    }
    serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| e.to_string())
}

async fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<(crate::domain::model::User, crate::session::Session)>, String> {
    let Some((_, session)) = current_session(state, headers)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let user = state
        .store
        .user_by_id(&session.uid)
        .await
        .map_err(|e| e.to_string())?;
    Ok(user.map(|u| (u, session)))
}

fn found(location: &str) -> Response {
    let mut resp = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A refusal in the shape the browser needs: a page (no redirect), an
/// error redirect to the app, or a detour (sign-in, SSO, 2FA) that comes
/// back to this same request.
fn refused(
    state: &AppState,
    checked: Option<&op::Checked>,
    req: &AuthRequest,
    raw: &str,
    refusal: AuthorizeRefusal,
) -> Response {
    let back = urlencode(&format!("/oauth2/authorize?{raw}"));
    let issuer = &state.cfg.public_url;
    let error = |code: &str, text: &str| match checked {
        Some(c) => found(&c.redirect_with(issuer, &[("error", code), ("error_description", text)])),
        None => page(StatusCode::BAD_REQUEST, "This sign-in link is broken", text),
    };
    match refusal {
        AuthorizeRefusal::NoRedirect(why) => {
            page(StatusCode::BAD_REQUEST, "This app cannot sign you in", &why)
        }
        AuthorizeRefusal::Error {
            error: code,
            description,
        } => error(code, &description),
        AuthorizeRefusal::SignIn | AuthorizeRefusal::SignInAgain | AuthorizeRefusal::Sso(None)
            if req.prompt_none() =>
        {
            error("login_required", "sign-in is required")
        }
        AuthorizeRefusal::Sso(Some(_)) | AuthorizeRefusal::Mfa if req.prompt_none() => {
            error("interaction_required", "the workspace asks for more")
        }
        AuthorizeRefusal::SignIn => see_other(&format!("/login?return_to={back}")),
        // Back to the same request without `prompt=login` (the new sign-in
        // answers it; `max_age` is met by the new session).
        AuthorizeRefusal::SignInAgain => {
            let again = without_prompt_login(raw);
            see_other(&format!(
                "/login?return_to={}",
                urlencode(&format!("/oauth2/authorize?{again}"))
            ))
        }
        AuthorizeRefusal::Sso(Some(connection)) => see_other(&format!(
            "/sso/{}/start?return_to={back}",
            super::pages::seg(&connection)
        )),
        AuthorizeRefusal::Sso(None) => error(
            "access_denied",
            "the workspace requires SSO and has no SSO connection enabled",
        ),
        AuthorizeRefusal::Mfa => see_other(&format!("/account?return_to={back}#two-factor")),
        AuthorizeRefusal::Unavailable(e) => {
            tracing::warn!(error = %e, "authorization request failed");
            page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again in a moment",
                "The gateway could not complete this sign-in right now.",
            )
        }
    }
}

/// The query without `login` in `prompt` (dropped when nothing is left).
fn without_prompt_login(raw: &str) -> String {
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        if k == "prompt" {
            let rest: Vec<&str> = v
                .split(' ')
                .filter(|p| *p != "login" && !p.is_empty())
                .collect();
            if !rest.is_empty() {
                out.append_pair("prompt", &rest.join(" "));
            }
            continue;
        }
        out.append_pair(&k, &v);
    }
    out.finish()
}

/// The client's credentials: HTTP Basic, or the form's `client_id` (and
/// `client_secret`). Both at once is refused (RFC 6749 2.3.1).
fn client_auth(
    headers: &HeaderMap,
    client_id: Option<&str>,
    client_secret: Option<&str>,
) -> Result<ClientAuth, TokenError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("basic").then_some(rest.trim())
        });
    match basic {
        Some(b64) => {
            if client_secret.is_some() {
                return Err(TokenError::InvalidRequest(
                    "use one client authentication method".into(),
                ));
            }
            let bad = TokenError::InvalidClient { basic: true };
            let raw = crate::crypto::b64_decode(b64).ok_or(bad)?;
            let text =
                String::from_utf8(raw).map_err(|_| TokenError::InvalidClient { basic: true })?;
            let (id, secret) = text
                .split_once(':')
                .ok_or(TokenError::InvalidClient { basic: true })?;
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            if client_id.is_some_and(|c| c != decode(id)) {
                return Err(TokenError::InvalidClient { basic: true });
            }
            Ok(ClientAuth::Basic {
                id: decode(id),
                secret: decode(secret),
            })
        }
        None => Ok(ClientAuth::Form {
            id: client_id
                .ok_or(TokenError::InvalidClient { basic: false })?
                .to_string(),
            secret: client_secret.map(str::to_string),
        }),
    }
}

fn token_error(e: TokenError) -> Response {
    let kind = match &e {
        TokenError::InvalidClient { .. } => CoreErrorResponseType::InvalidClient,
        TokenError::InvalidRequest(_) => CoreErrorResponseType::InvalidRequest,
        TokenError::InvalidGrant(_) => CoreErrorResponseType::InvalidGrant,
        TokenError::UnsupportedGrantType => CoreErrorResponseType::UnsupportedGrantType,
        TokenError::Unavailable(_) => {
            CoreErrorResponseType::Extension("temporarily_unavailable".into())
        }
    };
    if let TokenError::Unavailable(why) = &e {
        tracing::warn!(error = %why, "token request failed");
    }
    let status = match &e {
        TokenError::InvalidClient { .. } => StatusCode::UNAUTHORIZED,
        TokenError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    };
    let body = StandardErrorResponse::new(kind, Some(e.description()), None);
    let mut resp = (status, no_store(), Json(body)).into_response();
    if let TokenError::InvalidClient { .. } = e {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"iam-gateway\""),
        );
    }
    resp
}

fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ]
}

/// `POST /oauth2/token`.
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(req)) = form else {
        return token_error(TokenError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded".into(),
        ));
    };
    let auth = match client_auth(
        &headers,
        req.client_id.as_deref(),
        req.client_secret.as_deref(),
    ) {
        Ok(a) => a,
        Err(e) => return token_error(e),
    };
    let client = match op::authenticate_client(&state, &auth).await {
        Ok(c) => c,
        Err(e) => return token_error(e),
    };
    match op::token(&state, &client, &req).await {
        Ok(body) => (StatusCode::OK, no_store(), Json(body)).into_response(),
        Err(e) => token_error(e),
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// `GET`/`POST /oauth2/userinfo` with `Authorization: Bearer`.
pub async fn userinfo(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let unauthorized = || {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer error=\"invalid_token\"")],
            Json(serde_json::json!({"error": "invalid_token"})),
        )
            .into_response()
    };
    let Some(token) = bearer(&headers) else {
        return unauthorized();
    };
    match op::userinfo(&state, token).await {
        Ok(Some(claims)) => (StatusCode::OK, no_store(), Json(claims)).into_response(),
        Ok(None) => unauthorized(),
        Err(e) => {
            tracing::warn!(error = %e, "userinfo failed");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

#[derive(Deserialize)]
pub struct RevokeForm {
    token: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
}

/// `POST /oauth2/revoke` (RFC 7009).
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<RevokeForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(f)) = form else {
        return token_error(TokenError::InvalidRequest("a form body is required".into()));
    };
    let auth = match client_auth(&headers, f.client_id.as_deref(), f.client_secret.as_deref()) {
        Ok(a) => a,
        Err(e) => return token_error(e),
    };
    let client = match op::authenticate_client(&state, &auth).await {
        Ok(c) => c,
        Err(e) => return token_error(e),
    };
    let Some(token) = f.token else {
        return token_error(TokenError::InvalidRequest("token is required".into()));
    };
    match op::revoke(&state, &client, &token).await {
        Ok(()) => (StatusCode::OK, no_store()).into_response(),
        Err(e) => token_error(TokenError::Unavailable(e.to_string())),
    }
}

#[derive(Deserialize, Default)]
pub struct LogoutParams {
    id_token_hint: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    client_id: Option<String>,
    csrf_token: Option<String>,
}

#[derive(Template)]
#[template(path = "oauth2_logout.html")]
struct ConfirmLogoutPage {
    chrome: Chrome,
    app: Option<String>,
    client_id: String,
    id_token_hint: String,
    post_logout_redirect_uri: String,
    state: String,
}

/// The app a logout request proves: a registered client named by the
/// `aud` of an ID token the gateway signed (`id_token_hint`), matching
/// `client_id` when that is given too. Only such a request may be sent back
/// to a `post_logout_redirect_uri`, or end a session without asking.
async fn hinted_app(state: &AppState, p: &LogoutParams) -> Option<(OidcClient, serde_json::Value)> {
    let claims = p
        .id_token_hint
        .as_deref()
        .filter(|t| !t.is_empty())
        .and_then(|t| op::hinted_claims(state, t))
        .filter(|c| c["iss"].as_str() == Some(state.cfg.public_url.as_str()))?;
    let aud = claims["aud"].as_str()?;
    if p.client_id
        .as_deref()
        .is_some_and(|c| !c.is_empty() && c != aud)
    {
        return None;
    }
    let client = state.store.oidc_client(aud).await.ok().flatten()?;
    Some((client, claims))
}

fn unavailable_logout() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Try again in a moment",
        "The gateway could not sign you out right now.",
    )
}

/// `GET /oauth2/logout` (RP-initiated logout), and a `POST` of the same
/// parameters from an app: with an `id_token_hint` the gateway signed for
/// a registered app and this browser's session, it signs out at once;
/// otherwise the person confirms (a link on another site cannot sign anyone
/// out). Then back to the app's registered `post_logout_redirect_uri` only
/// when the hint proved the app, else a signed-out page.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(p): Query<LogoutParams>,
) -> Response {
    logout_request(&state, &headers, p).await
}

async fn logout_request(state: &AppState, headers: &HeaderMap, p: LogoutParams) -> Response {
    let hinted = hinted_app(state, &p).await;
    let session = match current_session(state, headers).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "session store unreachable");
            return unavailable_logout();
        }
    };
    let Some((value, session)) = session else {
        return after_logout(state, hinted.as_ref().map(|h| &h.0), &p, None).await;
    };
    if let Some((client, claims)) = &hinted {
        if claims["sid"].as_str() == Some(session.sid.as_str()) {
            return after_logout(state, Some(client), &p, Some(&value)).await;
        }
    }
    let app = hinted.as_ref().map(|(c, _)| c.name.clone());
    let email = state
        .store
        .user_by_id(&session.uid)
        .await
        .ok()
        .flatten()
        .map(|u| u.email);
    render(&ConfirmLogoutPage {
        chrome: Chrome {
            csrf: super::csrf::token_for_session(state, &session),
            user_email: email,
            ..Default::default()
        },
        app,
        client_id: p.client_id.clone().unwrap_or_default(),
        id_token_hint: p.id_token_hint.clone().unwrap_or_default(),
        post_logout_redirect_uri: p.post_logout_redirect_uri.clone().unwrap_or_default(),
        state: p.state.clone().unwrap_or_default(),
    })
}

/// `POST /oauth2/logout`: the person's confirmation (with the page's CSRF
/// token), or an app posting the logout parameters (without one: handled
/// as the `GET`).
pub async fn logout_confirmed(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(p): Form<LogoutParams>,
) -> Response {
    if p.csrf_token.is_none() {
        return logout_request(&state, &headers, p).await;
    }
    let session = match current_session(&state, &headers).await {
        Ok(s) => s,
        Err(_) => return unavailable_logout(),
    };
    if !super::csrf::verify(
        &state,
        &headers,
        session.as_ref().map(|(_, s)| s),
        p.csrf_token.as_deref(),
    ) {
        return page(
            StatusCode::FORBIDDEN,
            "Sign-out not confirmed",
            "This form expired or did not come from this gateway. Open the app and sign out again.",
        );
    }
    let hinted = hinted_app(&state, &p).await;
    let value = session.map(|(v, _)| v);
    after_logout(&state, hinted.as_ref().map(|h| &h.0), &p, value.as_deref()).await
}

/// Ends the session (if any), then sends the browser to the app's
/// registered post-logout URI or shows that it is signed out.
async fn after_logout(
    state: &AppState,
    client: Option<&OidcClient>,
    p: &LogoutParams,
    session_value: Option<&str>,
) -> Response {
    if let Some(v) = session_value {
        if let Err(e) = state.end_session(v).await {
            tracing::warn!(error = %e, "sign-out failed");
            return unavailable_logout();
        }
    }
    let clear = session_value.map(|_| state.sessions.clear_cookie_header());
    let target = p
        .post_logout_redirect_uri
        .as_deref()
        .filter(|u| !u.is_empty())
        .filter(|u| client.is_some_and(|c| c.post_logout_redirect_uris.iter().any(|r| r == u)));
    let resp = match target.and_then(|u| url::Url::parse(u).ok()) {
        Some(mut url) => {
            if let Some(s) = p.state.as_deref().filter(|s| !s.is_empty()) {
                url.query_pairs_mut().append_pair("state", s);
            }
            see_other(url.as_str())
        }
        None => page(
            StatusCode::OK,
            "Signed out",
            "You are signed out of IAM Gateway.",
        ),
    };
    with_cookie(resp, clear)
}
