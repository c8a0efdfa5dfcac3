//! The gateway as an OpenID Provider (SPEC section 13): the authorization
//! code flow with PKCE for the workspace's clients. The access decision is
//! the one every door uses ([`super::access::authorize`]); this module adds
//! codes, tokens, ID tokens and the back-channel logouts owed when a
//! session ends.

use super::access::{authorize, Caller, Need};
use super::Core;
use crate::crypto;
use crate::domain::access::Requirement;
use crate::domain::model::{AuthMethod, User, Workspace};
use crate::domain::DomainError;
use crate::session::Session;
use crate::store::oidc::{GrantsOf, OidcClient, OidcCode, OidcGrant, OidcToken, TokenKind};
use serde_json::{json, Value};

/// How long a code may wait for its exchange.
pub const CODE_TTL: i64 = 60;
/// Access tokens and ID tokens.
pub const ACCESS_TTL: i64 = 600;
/// Refresh tokens (they die sooner with their session).
pub const REFRESH_TTL: i64 = 30 * 24 * 3600;

const ACCESS_PREFIX: &str = "iamgw_at_";
const REFRESH_PREFIX: &str = "iamgw_rt_";
const CODE_PREFIX: &str = "iamgw_ac_";

/// The scopes the provider knows; others are ignored.
pub const SCOPES: &[&str] = &["openid", "email", "profile", "offline_access"];

/// An authorization request as the app sent it.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct AuthRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
}

impl AuthRequest {
    pub fn prompt_none(&self) -> bool {
        self.prompt_has("none")
    }

    fn prompt_has(&self, value: &str) -> bool {
        self.prompt
            .as_deref()
            .is_some_and(|p| p.split(' ').any(|v| v == value))
    }
}

/// Why an authorization request gets no code.
#[derive(Debug)]
pub enum AuthorizeRefusal {
    /// Unknown client or unregistered redirect URI: a page, never a
    /// redirect (it could go anywhere).
    NoRedirect(String),
    /// An RFC 6749 error sent back to the registered redirect URI.
    Error {
        error: &'static str,
        description: String,
    },
    /// No (valid) session: sign in, then come back.
    SignIn,
    /// A session, but the app asks for a fresh sign-in (`prompt=login`, or
    /// `max_age` passed): sign in again, then come back.
    SignInAgain,
    /// The workspace wants its SSO (the connection to start, if enabled).
    Sso(Option<String>),
    /// The workspace wants a second factor first.
    Mfa,
    Unavailable(String),
}

/// A request whose client and redirect URI are known good: from here on,
/// errors go back to the app.
pub struct Checked {
    pub client: OidcClient,
    pub redirect_uri: String,
    pub state: Option<String>,
    scope: String,
    nonce: Option<String>,
    challenge: String,
    /// `prompt=login`.
    fresh_login: bool,
    /// `max_age`, seconds.
    max_age: Option<i64>,
}

impl Checked {
    /// The URL of the app's redirect URI with these parameters (and `state`
    /// and `iss`, RFC 9207) added to its query.
    pub fn redirect_with(&self, issuer: &str, params: &[(&str, &str)]) -> String {
        let mut url = match url::Url::parse(&self.redirect_uri) {
            Ok(u) => u,
            Err(_) => return self.redirect_uri.clone(),
        };
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
            if let Some(s) = &self.state {
                q.append_pair("state", s);
            }
            q.append_pair("iss", issuer);
        }
        url.to_string()
    }
}

fn refuse(error: &'static str, description: &str) -> AuthorizeRefusal {
    AuthorizeRefusal::Error {
        error,
        description: description.into(),
    }
}

/// 43 to 128 of the characters RFC 7636 allows in a verifier (and so in an
/// S256 challenge).
fn pkce_text(c: &str) -> bool {
    (43..=128).contains(&c.len())
        && c.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// The client and its redirect URI (compared exactly): until both are
/// known good, nothing is sent back to the app.
pub async fn check_request(core: &Core, req: &AuthRequest) -> Result<Checked, AuthorizeRefusal> {
    let no_redirect = |why: &str| AuthorizeRefusal::NoRedirect(why.into());
    let client_id = req
        .client_id
        .as_deref()
        .ok_or_else(|| no_redirect("The request names no client (client_id)."))?;
    let client = core
        .store
        .oidc_client(client_id)
        .await
        .map_err(|e| AuthorizeRefusal::Unavailable(e.to_string()))?
        .ok_or_else(|| no_redirect("This app is not registered with the gateway."))?;
    let redirect_uri = req
        .redirect_uri
        .as_deref()
        .filter(|r| client.redirect_uris.iter().any(|u| u == r))
        .ok_or_else(|| {
            no_redirect("The redirect_uri is not one this app registered, so the gateway will not send you there.")
        })?
        .to_string();
    Ok(Checked {
        client,
        redirect_uri,
        state: req.state.clone(),
        scope: String::new(),
        nonce: req.nonce.clone(),
        challenge: String::new(),
        fresh_login: false,
        max_age: None,
    })
}

/// The rest of the request, once errors can go back to the app: response
/// type, scopes, PKCE (S256 only), nonce.
pub fn check_params(checked: &mut Checked, req: &AuthRequest) -> Result<(), AuthorizeRefusal> {
    let fail = |e, d: &str| Err(refuse(e, d));
    if req.request.is_some() || req.request_uri.is_some() {
        return fail(
            "request_not_supported",
            "request objects (request, request_uri) are not supported",
        );
    }
    if req.prompt_has("none") && req.prompt_has("login") {
        return fail(
            "invalid_request",
            "prompt=none cannot be combined with login",
        );
    }
    checked.fresh_login = req.prompt_has("login");
    checked.max_age = match req.max_age.as_deref() {
        None => None,
        Some(m) => match m.parse::<i64>() {
            Ok(secs) if secs >= 0 => Some(secs),
            _ => return fail("invalid_request", "max_age must be a number of seconds"),
        },
    };
    if req.response_type.as_deref() != Some("code") {
        return fail("unsupported_response_type", "only response_type=code");
    }
    let scopes: Vec<&str> = req
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .filter(|s| SCOPES.contains(s))
        .collect();
    if !scopes.contains(&"openid") {
        return fail("invalid_scope", "the openid scope is required");
    }
    checked.scope = SCOPES
        .iter()
        .filter(|s| scopes.contains(s))
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    match (
        req.code_challenge.as_deref(),
        req.code_challenge_method.as_deref(),
    ) {
        (Some(c), Some("S256")) if pkce_text(c) => checked.challenge = c.to_string(),
        (Some(_), Some("S256")) => return fail("invalid_request", "malformed code_challenge"),
        (Some(_), _) => return fail("invalid_request", "code_challenge_method must be S256"),
        (None, _) => return fail("invalid_request", "PKCE (code_challenge) is required"),
    }
    if checked.nonce.as_deref().is_some_and(|n| n.len() > 512) {
        return fail("invalid_request", "nonce too long");
    }
    Ok(())
}

/// What a session and its person may do with this client: the one decision
/// (timeouts, Require SSO, Require 2FA, membership, the client's
/// `required_role`).
async fn decide(
    core: &Core,
    client: &OidcClient,
    user: User,
    session: Session,
) -> Result<(User, Session, Workspace, Vec<String>), DomainError> {
    let ws = core
        .store
        .workspace_by_id(&client.workspace_id)
        .await?
        .ok_or(DomainError::NotFound)?;
    let need = Need::Role(Requirement {
        role: client.required_role.as_deref(),
        resource: None,
        resource_labels: &[],
    });
    let caller = Caller::User { user, session };
    let grant = authorize(core.store.as_ref(), core.clock.now(), &caller, &ws, &need).await?;
    let Caller::User { user, session } = caller else {
        return Err(DomainError::Internal("caller changed".into()));
    };
    let roles = grant.policies.iter().map(|p| p.label()).collect();
    Ok((user, session, ws, roles))
}

fn amr(session: &Session) -> Vec<String> {
    let mut v = vec![match session.method {
        AuthMethod::Password => "pwd",
        AuthMethod::Twilio | AuthMethod::Sso(_) => "fed",
    }
    .to_string()];
    if session.mfa {
        v.push("mfa".into());
    }
    v
}

/// The decision for a checked request and the browser's session: a code,
/// as the redirect to send the browser to.
pub async fn authorize_code(
    core: &Core,
    checked: &Checked,
    signed_in: Option<(User, Session)>,
) -> Result<String, AuthorizeRefusal> {
    let Some((user, session)) = signed_in else {
        return Err(AuthorizeRefusal::SignIn);
    };
    let age = core.clock.now() - session.created;
    if checked.fresh_login || checked.max_age.is_some_and(|m| age > m) {
        return Err(AuthorizeRefusal::SignInAgain);
    }
    let (user, session, _, _) = match decide(core, &checked.client, user, session).await {
        Ok(d) => d,
        Err(DomainError::Unauthenticated) => return Err(AuthorizeRefusal::SignIn),
        Err(DomainError::SsoRequired(c)) => return Err(AuthorizeRefusal::Sso(c)),
        Err(DomainError::MfaRequired) => return Err(AuthorizeRefusal::Mfa),
        Err(DomainError::NotFound | DomainError::Forbidden(_)) => {
            return Err(refuse(
                "access_denied",
                "you do not have access to this app in its workspace",
            ))
        }
        Err(e) => return Err(AuthorizeRefusal::Unavailable(e.to_string())),
    };
    let now = core.clock.now();
    let code = crate::tokens::mint(CODE_PREFIX)
        .map_err(|e| AuthorizeRefusal::Unavailable(e.to_string()))?;
    let grant = OidcGrant {
        id: uuid::Uuid::now_v7().to_string(),
        client_id: checked.client.id.clone(),
        workspace_id: checked.client.workspace_id.clone(),
        user_id: user.id.clone(),
        session_key: session.key.clone(),
        sid: session.sid.clone(),
        scope: checked.scope.clone(),
        nonce: checked.nonce.clone(),
        auth_time: session.created,
        amr: amr(&session),
        created_at: now,
        revoked_at: None,
    };
    let row = OidcCode {
        hash: crate::tokens::hash(&code),
        grant_id: grant.id.clone(),
        redirect_uri: checked.redirect_uri.clone(),
        code_challenge: checked.challenge.clone(),
        expires_at: now + CODE_TTL,
        used_at: None,
    };
    core.store
        .create_oidc_grant(&grant, &row)
        .await
        .map_err(|e| AuthorizeRefusal::Unavailable(e.to_string()))?;
    Ok(checked.redirect_with(&core.cfg.public_url, &[("code", &code)]))
}

/// How the client authenticated at the token or revocation endpoint.
#[derive(Debug, Clone)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`).
    Basic { id: String, secret: String },
    /// In the form (`client_secret_post`, or `none` for a public client).
    Form { id: String, secret: Option<String> },
}

/// RFC 6749 section 5.2 errors.
#[derive(Debug)]
pub enum TokenError {
    /// 401; `basic` says the client tried HTTP Basic (the answer then
    /// carries `WWW-Authenticate`).
    InvalidClient {
        basic: bool,
    },
    InvalidRequest(String),
    InvalidGrant(String),
    UnsupportedGrantType,
    Unavailable(String),
}

impl TokenError {
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::InvalidClient { .. } => "invalid_client",
            TokenError::InvalidRequest(_) => "invalid_request",
            TokenError::InvalidGrant(_) => "invalid_grant",
            TokenError::UnsupportedGrantType => "unsupported_grant_type",
            TokenError::Unavailable(_) => "temporarily_unavailable",
        }
    }

    pub fn description(&self) -> String {
        match self {
            TokenError::InvalidClient { .. } => "client authentication failed".into(),
            TokenError::InvalidRequest(d) | TokenError::InvalidGrant(d) => d.clone(),
            TokenError::UnsupportedGrantType => {
                "grant_type must be authorization_code or refresh_token".into()
            }
            TokenError::Unavailable(_) => "try again later".into(),
        }
    }
}

fn unavailable<E: std::fmt::Display>(e: E) -> TokenError {
    TokenError::Unavailable(e.to_string())
}

/// The client, if it authenticated as its registration requires.
pub async fn authenticate_client(core: &Core, auth: &ClientAuth) -> Result<OidcClient, TokenError> {
    let (id, secret, basic) = match auth {
        ClientAuth::Basic { id, secret } => (id, Some(secret.as_str()), true),
        ClientAuth::Form { id, secret } => (id, secret.as_deref(), false),
    };
    let invalid = TokenError::InvalidClient { basic };
    let client = core
        .store
        .oidc_client(id)
        .await
        .map_err(unavailable)?
        .ok_or(invalid)?;
    let ok = match (&client.secret_hash, secret) {
        (Some(_), Some(s)) => super::oidc_clients::secret_matches(&client, s),
        (None, None) => true,
        _ => false,
    };
    if ok {
        Ok(client)
    } else {
        Err(TokenError::InvalidClient { basic })
    }
}

/// The token request's parameters (form-encoded).
#[derive(Debug, Default, serde::Deserialize)]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub refresh_token: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
}

/// The token endpoint: a code or a refresh token for fresh tokens.
pub async fn token(
    core: &Core,
    client: &OidcClient,
    req: &TokenRequest,
) -> Result<Value, TokenError> {
    match req.grant_type.as_deref() {
        Some("authorization_code") => exchange_code(core, client, req).await,
        Some("refresh_token") => refresh(core, client, req).await,
        Some(_) => Err(TokenError::UnsupportedGrantType),
        None => Err(TokenError::InvalidRequest("grant_type is required".into())),
    }
}

fn verifier_matches(verifier: &str, challenge: &str) -> bool {
    use sha2::Digest;
    let computed = crypto::b64url(&sha2::Sha256::digest(verifier.as_bytes()));
    pkce_text(verifier) && crypto::ct_eq(computed.as_bytes(), challenge.as_bytes())
}

/// A parameter the grant needs, or `invalid_request`.
fn required<'a>(value: &'a Option<String>, what: &str) -> Result<&'a str, TokenError> {
    value
        .as_deref()
        .ok_or_else(|| TokenError::InvalidRequest(format!("{what} is required")))
}

/// A code or refresh token presented a second time: the grant it belongs
/// to (every token it issued) is revoked, and the answer is `invalid_grant`.
async fn replayed(core: &Core, grant_id: &str, now: i64, why: &str) -> Result<Value, TokenError> {
    core.store
        .revoke_oidc_grant(grant_id, now)
        .await
        .map_err(unavailable)?;
    Err(TokenError::InvalidGrant(why.into()))
}

async fn exchange_code(
    core: &Core,
    client: &OidcClient,
    req: &TokenRequest,
) -> Result<Value, TokenError> {
    let bad = |d: &str| Err(TokenError::InvalidGrant(d.into()));
    let code = required(&req.code, "code")?;
    let verifier = required(&req.code_verifier, "code_verifier (PKCE)")?;
    let now = core.clock.now();
    let hash = crate::tokens::hash(code);
    let Some((row, grant)) = core.store.oidc_code(&hash).await.map_err(unavailable)? else {
        return bad("unknown code");
    };
    if grant.client_id != client.id {
        return bad("the code was issued to another client");
    }
    if !core
        .store
        .use_oidc_code(&hash, now)
        .await
        .map_err(unavailable)?
    {
        let why = "the code was already used; the tokens it issued are revoked";
        return replayed(core, &grant.id, now, why).await;
    }
    if row.expires_at <= now {
        return bad("the code has expired");
    }
    if req.redirect_uri.as_deref() != Some(row.redirect_uri.as_str()) {
        return bad("redirect_uri differs from the authorization request's");
    }
    if !verifier_matches(verifier, &row.code_challenge) {
        return bad("code_verifier does not match the code_challenge");
    }
    issue(core, client, &grant, now).await
}

async fn refresh(
    core: &Core,
    client: &OidcClient,
    req: &TokenRequest,
) -> Result<Value, TokenError> {
    let bad = |d: &str| Err(TokenError::InvalidGrant(d.into()));
    let presented = required(&req.refresh_token, "refresh_token")?;
    let now = core.clock.now();
    let hash = crate::tokens::hash(presented);
    let Some((tok, grant)) = core.store.oidc_token(&hash).await.map_err(unavailable)? else {
        return bad("unknown refresh token");
    };
    if tok.kind != TokenKind::Refresh || grant.client_id != client.id {
        return bad("unknown refresh token");
    }
    if grant.revoked_at.is_some() {
        return bad("the refresh token was revoked");
    }
    if tok.spent_at.is_some()
        || !core
            .store
            .spend_oidc_token(&hash, now)
            .await
            .map_err(unavailable)?
    {
        let why = "the refresh token was already used; its family is revoked";
        return replayed(core, &grant.id, now, why).await;
    }
    if tok.expires_at <= now {
        return bad("the refresh token has expired");
    }
    issue(core, client, &grant, now).await
}

/// The grant's session and person, if both still stand and the person may
/// still use this client.
async fn still_allowed(
    core: &Core,
    client: &OidcClient,
    grant: &OidcGrant,
) -> Result<(User, Session, Workspace, Vec<String>), DomainError> {
    let session = core
        .sessions
        .by_key(&grant.session_key)
        .await?
        .ok_or(DomainError::Unauthenticated)?;
    let user = core
        .store
        .user_by_id(&grant.user_id)
        .await?
        .ok_or(DomainError::Unauthenticated)?;
    decide(core, client, user, session).await
}

/// Fresh tokens for a grant whose session and access still stand.
async fn issue(
    core: &Core,
    client: &OidcClient,
    grant: &OidcGrant,
    now: i64,
) -> Result<Value, TokenError> {
    let (user, session, ws, roles) = match still_allowed(core, client, grant).await {
        Ok(d) => d,
        Err(DomainError::Unavailable(e) | DomainError::Internal(e)) => {
            return Err(TokenError::Unavailable(e))
        }
        Err(_) => {
            core.store
                .revoke_oidc_grant(&grant.id, now)
                .await
                .map_err(unavailable)?;
            return Err(TokenError::InvalidGrant(
                "the session has ended or no longer has access to this app".into(),
            ));
        }
    };
    let access = crate::tokens::mint(ACCESS_PREFIX).map_err(unavailable)?;
    let mut rows = vec![OidcToken {
        hash: crate::tokens::hash(&access),
        grant_id: grant.id.clone(),
        kind: TokenKind::Access,
        expires_at: now + ACCESS_TTL,
        spent_at: None,
    }];
    let offline = grant.scope.split(' ').any(|s| s == "offline_access");
    let refresh_token = if offline {
        let r = crate::tokens::mint(REFRESH_PREFIX).map_err(unavailable)?;
        rows.push(OidcToken {
            hash: crate::tokens::hash(&r),
            grant_id: grant.id.clone(),
            kind: TokenKind::Refresh,
            expires_at: now + REFRESH_TTL,
            spent_at: None,
        });
        Some(r)
    } else {
        None
    };
    let mut claims = json!({
        "iss": core.cfg.public_url,
        "sub": user.id,
        "aud": client.id,
        "iat": now,
        "exp": now + ACCESS_TTL,
        "auth_time": grant.auth_time,
        "sid": session.sid,
        "email": user.email,
        "email_verified": true,
        "name": user.name,
        "workspace": ws.slug,
        "roles": roles,
        "amr": grant.amr,
    });
    if let Some(n) = &grant.nonce {
        claims["nonce"] = json!(n);
    }
    let id_token = core
        .signer
        .sign(&claims)
        .map_err(|e| TokenError::Unavailable(e.to_string()))?;
    match core.store.issue_oidc_tokens(&grant.id, &rows, now).await {
        Ok(()) => {}
        Err(crate::store::StoreError::NotFound) => {
            return Err(TokenError::InvalidGrant("the grant was revoked".into()))
        }
        Err(e) => return Err(unavailable(e)),
    }
    let mut body = json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": ACCESS_TTL,
        "id_token": id_token,
        "scope": grant.scope,
    });
    if let Some(r) = refresh_token {
        body["refresh_token"] = json!(r);
    }
    Ok(body)
}

/// The claims `/oauth2/userinfo` answers for an access token; None when the
/// token, its session or the person's access is gone.
pub async fn userinfo(core: &Core, access_token: &str) -> Result<Option<Value>, DomainError> {
    let now = core.clock.now();
    let Some((tok, grant)) = core
        .store
        .oidc_token(&crate::tokens::hash(access_token))
        .await?
    else {
        return Ok(None);
    };
    if tok.kind != TokenKind::Access || tok.expires_at <= now || grant.revoked_at.is_some() {
        return Ok(None);
    }
    let Some(client) = core.store.oidc_client(&grant.client_id).await? else {
        return Ok(None);
    };
    match still_allowed(core, &client, &grant).await {
        Ok((user, _, ws, roles)) => Ok(Some(json!({
            "sub": user.id,
            "email": user.email,
            "email_verified": true,
            "name": user.name,
            "workspace": ws.slug,
            "roles": roles,
        }))),
        Err(e @ (DomainError::Unavailable(_) | DomainError::Internal(_))) => Err(e),
        Err(_) => Ok(None),
    }
}

/// RFC 7009: a refresh token revokes its whole grant, an access token
/// itself; unknown tokens and other clients' tokens are ignored (the answer
/// is the same).
pub async fn revoke(core: &Core, client: &OidcClient, token: &str) -> Result<(), DomainError> {
    let hash = crate::tokens::hash(token);
    let Some((tok, grant)) = core.store.oidc_token(&hash).await? else {
        return Ok(());
    };
    if grant.client_id != client.id {
        return Ok(());
    }
    match tok.kind {
        TokenKind::Refresh => {
            core.store
                .revoke_oidc_grant(&grant.id, core.clock.now())
                .await?
        }
        TokenKind::Access => core.store.delete_oidc_token(&hash).await?,
    }
    Ok(())
}

/// Sessions ended or access lost: the grants stop working and every app
/// that received an ID token in them is told by back-channel logout (queued
/// durably, delivered in the background: this returns at once).
pub async fn grants_ended(core: &Core, which: GrantsOf<'_>) {
    match core.store.end_oidc_grants(which, core.clock.now()).await {
        Ok(0) => {}
        Ok(_) => core.logouts.notify_one(),
        Err(e) => tracing::error!(error = %e, "ending OpenID grants failed"),
    }
}

/// An ID token this gateway signed for one of its clients (for
/// `id_token_hint`): its claims, if the signature verifies. Expiry is not
/// checked (a hint may be old).
pub fn hinted_claims(core: &Core, id_token: &str) -> Option<Value> {
    core.signer.verify(id_token)
}
