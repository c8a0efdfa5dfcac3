//! The simulated Twilio Unified Login issuer: a standard
//! OpenID Connect provider (authorization code + PKCE S256) with its own
//! accounts, sign-in with TOTP, `/account` and `/console`, served on its own
//! listener. The gateway talks to it only over HTTP, through discovery.
//!
//! Files, one idea each:
//! * [`accounts`]: the `twilio_accounts` table.
//! * [`keys`]: ES256 keys, rotation and the JWKS.
//! * [`sessions`], [`csrf`]: the issuer's browser session and form tokens.
//! * [`discovery`]: `/.well-known/openid-configuration`, `/oauth2/jwks`.
//! * [`authorize`]: `/oauth2/authorize` and authorization codes.
//! * [`token`]: `/oauth2/token` and `/oauth2/userinfo`.
//! * [`login`]: sign-in, the TOTP step, sign-out, set-password links.
//! * [`account`]: `/account` (name, email, password, TOTP).
//! * [`console`]: `/console` and its product switcher.
//! * [`views`]: askama pages (`templates/twilio_*.html`) and the error page.

pub mod account;
pub mod accounts;
pub mod authorize;
pub mod console;
pub mod csrf;
pub mod discovery;
pub mod keys;
pub mod login;
pub mod sessions;
pub mod token;
pub mod views;

use crate::clock::Clock;
use crate::crypto;
use crate::domain::DomainError;
use crate::password::Hasher;
use crate::session::KvStore;
use crate::store::TwilioIssuerStore;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use std::ops::Deref;
use std::sync::Arc;

/// A relying party allowed to use the issuer.
#[derive(Clone)]
pub struct ClientRegistration {
    pub client_id: String,
    pub client_secret: String,
    /// Compared exactly (no prefix or pattern matching).
    pub redirect_uris: Vec<String>,
}

impl std::fmt::Debug for ClientRegistration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRegistration")
            .field("client_id", &self.client_id)
            .field("client_secret", &"********")
            .field("redirect_uris", &self.redirect_uris)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct IssuerOptions {
    /// Where browsers and relying parties reach the issuer; the `iss` value.
    pub public_url: String,
    pub clients: Vec<ClientRegistration>,
    /// Where the console's "Segment" entry leads (the gateway's
    /// `/login/twilio?return_to=/workspaces`).
    pub handoff_url: String,
    /// How its password hashing shares the CPU (`password.hash_priority`).
    pub hash_priority: crate::password::Priority,
}

pub struct Inner {
    /// Without a trailing slash.
    pub public_url: String,
    /// The public origin, for `Origin` checks.
    pub origin: String,
    /// Cookies get `Secure` when the public URL is https.
    pub secure: bool,
    pub clients: Vec<ClientRegistration>,
    pub handoff_url: String,
    pub store: Arc<dyn TwilioIssuerStore>,
    pub kv: Arc<dyn KvStore>,
    pub clock: Arc<dyn Clock>,
    /// The deployment secret (MAC and sealing keys derive from it).
    pub secret: Vec<u8>,
    pub hasher: Hasher,
    pub keys: keys::KeyRing,
}

#[derive(Clone)]
pub struct IssuerState(pub Arc<Inner>);

impl Deref for IssuerState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The client secret of the embedded setup when `twilio.client_secret` is
/// empty: derived from the deployment secret, so the gateway and the issuer
/// agree without anyone writing it down.
pub fn embedded_client_secret(secret: &[u8]) -> String {
    crypto::b64url(&crypto::hmac_sha256(
        secret,
        &[b"twilio-issuer embedded client secret"],
    ))
}

fn http_url(what: &str, value: &str) -> Result<url::Url, DomainError> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => Ok(u),
        _ => Err(DomainError::Invalid(format!(
            "{what}: `{value}` is not an http:// or https:// URL"
        ))),
    }
}

fn check_options(opts: &IssuerOptions) -> Result<url::Url, DomainError> {
    let public = http_url("public_url", opts.public_url.trim_end_matches('/'))?;
    if public.query().is_some() || public.fragment().is_some() {
        return Err(DomainError::Invalid(
            "public_url: must not have a query or fragment".into(),
        ));
    }
    http_url("handoff_url", &opts.handoff_url)?;
    for c in &opts.clients {
        if c.client_id.is_empty() || c.client_secret.is_empty() {
            return Err(DomainError::Invalid(
                "every client needs a client_id and a client_secret".into(),
            ));
        }
        if c.redirect_uris.is_empty() {
            return Err(DomainError::Invalid(format!(
                "client {} has no redirect_uri",
                c.client_id
            )));
        }
        for uri in &c.redirect_uris {
            if http_url("redirect_uri", uri)?.fragment().is_some() {
                return Err(DomainError::Invalid(format!(
                    "redirect_uri `{uri}` must not have a fragment"
                )));
            }
        }
    }
    Ok(public)
}

/// Checks the options, opens the keys (creating the first one) and returns
/// the state [`router`] serves. `store` must be migrated already.
pub async fn build(
    store: Arc<dyn TwilioIssuerStore>,
    kv: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
    secret: Vec<u8>,
    opts: IssuerOptions,
) -> Result<IssuerState, DomainError> {
    let public = check_options(&opts)?;
    if secret.len() < 32 {
        return Err(DomainError::Invalid(
            "the deployment secret must have at least 32 bytes".into(),
        ));
    }
    let hasher = Hasher::with_priority(opts.hash_priority)
        .await
        .map_err(|e| DomainError::Internal(e.to_string()))?;
    let keys = keys::KeyRing::load_or_create(store.clone(), &secret, clock.now()).await?;
    Ok(IssuerState(Arc::new(Inner {
        public_url: opts.public_url.trim_end_matches('/').to_string(),
        origin: public.origin().ascii_serialization(),
        secure: public.scheme() == "https",
        clients: opts.clients,
        handoff_url: opts.handoff_url,
        store,
        kv,
        clock,
        secret,
        hasher,
        keys,
    })))
}

impl IssuerState {
    /// Creates an account; returns its `sub`. Without a password nobody can
    /// sign in to it until one is set through [`IssuerState::password_link`].
    pub async fn add_account(
        &self,
        email: &str,
        name: &str,
        password: Option<&str>,
    ) -> Result<String, DomainError> {
        let created = accounts::create(
            self.store.as_ref(),
            &self.hasher,
            self.clock.now(),
            email,
            name,
            password,
        )
        .await?;
        Ok(created.sub)
    }

    /// A fresh one-time set-password link (24 hours) for an account; any
    /// earlier link of that account stops working.
    pub async fn password_link(&self, sub: &str) -> Result<String, DomainError> {
        let token = accounts::new_password_link(self.store.as_ref(), sub, self.clock.now()).await?;
        Ok(format!("{}/set-password/{token}", self.public_url))
    }

    /// Adds a signing key: published at once, and it signs from now on.
    /// Returns its kid.
    pub async fn rotate_key(&self) -> Result<String, DomainError> {
        let kid = self.keys.rotate(self.clock.now()).await?;
        tracing::info!(event = "twilio_key_rotated", kid = %kid, "issuer signing key added");
        Ok(kid)
    }

    /// Removes key `kid` from the JWKS (tokens it signed no longer verify).
    pub async fn retire_key(&self, kid: &str) -> Result<(), DomainError> {
        self.keys.retire(kid, self.clock.now()).await?;
        tracing::info!(event = "twilio_key_retired", kid = %kid, "issuer signing key retired");
        Ok(())
    }

    pub(crate) fn client(&self, client_id: &str) -> Option<&ClientRegistration> {
        self.clients.iter().find(|c| c.client_id == client_id)
    }
}

/// The issuer's routes. Serve with
/// `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router(state: IssuerState) -> Router {
    Router::new()
        .route("/", get(console::home))
        .route(
            "/.well-known/openid-configuration",
            get(discovery::configuration),
        )
        .route("/oauth2/jwks", get(discovery::jwks))
        .route("/oauth2/authorize", get(authorize::authorize))
        .route("/oauth2/token", post(token::token))
        .route(
            "/oauth2/userinfo",
            get(token::userinfo).post(token::userinfo),
        )
        .route("/login", get(login::page).post(login::submit))
        .route(
            "/login/totp",
            get(login::totp_page).post(login::totp_submit),
        )
        .route("/logout", post(login::logout))
        .route(
            "/set-password/{token}",
            get(login::set_password_page).post(login::set_password),
        )
        .route("/account", get(account::page))
        .route("/account/profile", post(account::profile))
        .route("/account/email", post(account::email))
        .route("/account/password", post(account::password))
        .route(
            "/account/totp",
            get(account::totp_page).post(account::totp_enable),
        )
        .route("/account/totp/disable", post(account::totp_disable))
        .route("/console", get(console::console))
        .route("/static/twilio.css", get(discovery::stylesheet))
        .route("/healthz", get(discovery::healthz))
        .fallback(discovery::not_found)
        .layer(middleware::from_fn(crate::web::durable_answer))
        .layer(middleware::from_fn(security_headers))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let is_html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if is_html {
        // No form-action: a sign-in form's redirect chain ends at the
        // relying party's redirect_uri, which form-action would block.
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
            ),
        );
    }
    resp
}

/// A safe local destination after sign-in: a relative path on the issuer;
/// anything else (`//evil.test`, `/\evil.test`, another origin,
/// `javascript:`) becomes `/console`, never an off-site redirect.
pub fn local_return_to(raw: Option<&str>) -> String {
    const DEFAULT: &str = "/console";
    match raw {
        Some(r) if r.is_ascii() => {
            let clean = crate::domain::return_to::sanitize(Some(r), &[]);
            if clean == r && r.starts_with('/') {
                clean
            } else {
                DEFAULT.into()
            }
        }
        _ => DEFAULT.into(),
    }
}

/// Percent-encodes a query value.
pub(crate) fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_to_stays_on_the_issuer() {
        assert_eq!(
            local_return_to(Some("/oauth2/authorize?a=b")),
            "/oauth2/authorize?a=b"
        );
        for bad in [
            "//evil.test",
            "/\\evil.test",
            "https://evil.test/",
            "javascript:alert(1)",
            "%09//evil.test",
            "/%2f/evil.test",
            "/caf\u{e9}",
        ] {
            assert_eq!(local_return_to(Some(bad)), "/console", "{bad}");
        }
        assert_eq!(local_return_to(None), "/console");
    }

    #[test]
    fn embedded_client_secret_is_stable_and_secret_dependent() {
        let a = embedded_client_secret(&[1u8; 32]);
        assert_eq!(a, embedded_client_secret(&[1u8; 32]));
        assert_ne!(a, embedded_client_secret(&[2u8; 32]));
        assert_eq!(crypto::b64url_decode(&a).map(|b| b.len()), Some(32));
    }

    #[test]
    fn client_debug_masks_the_secret() {
        let c = ClientRegistration {
            client_id: "segment".into(),
            client_secret: "hunter2-hunter2".into(),
            redirect_uris: vec!["http://x.test/cb".into()],
        };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
