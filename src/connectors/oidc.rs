//! OpenID Connect relying party: authorization code flow with PKCE (S256),
//! used for Twilio Unified Login and for per-workspace OIDC SSO.
//!
//! The connector talks to its issuer only over HTTP through discovery
//! (`{issuer}/.well-known/openid-configuration`), with an HTTP client that
//! follows no redirects, has connect and total timeouts and bounds response
//! sizes ([`http`]). Discovery and keys are cached ([`provider`]).
//!
//! One sign-in:
//! 1. [`OidcConnector::begin`] returns the authorize URL (always
//!    `response_type=code`, an S256 `code_challenge`, `state` and `nonce` of
//!    256 random bits each) and a [`PendingAuth`]. The caller keeps the
//!    pending auth server-side, keyed by its state, bound to the browser by
//!    a cookie, for at most [`PENDING_TTL_SECS`], and takes it once.
//! 2. [`OidcConnector::complete`] checks the callback against it and returns
//!    the [`ExternalIdentity`]. In this order:
//!    * `state` present and equal to the pending one (constant time), the
//!      pending auth made by this connector and not older than
//!      [`PENDING_TTL_SECS`] → else 400;
//!    * RFC 9207: the callback's `iss`, when present, equals the issuer; when
//!      discovery advertises `authorization_response_iss_parameter_supported`
//!      it must be present → else 401;
//!    * an `error` callback becomes [`OidcError::ProviderError`];
//!    * the code is exchanged with the PKCE verifier (token endpoint refusal
//!      → 401, unreachable → 503);
//!    * the ID token: signature with the issuer's keys (asymmetric algorithms
//!      only: `none` and `HS*` refused), `iss` equal to the issuer, `aud`
//!      containing our client id, and with several audiences an `azp` equal
//!      to our client id, `exp` not past (injected clock), `iat` present and
//!      not in the future, `sub` present and non-empty, `nonce` equal to the
//!      pending one, `at_hash` (when present) matching the access token. An
//!      unknown `kid` causes one rate-limited JWKS re-fetch (key rotation);
//!      see [`provider`] for that and for tokens without `kid`;
//!    * userinfo, when the issuer has a userinfo endpoint: its `sub` must be
//!      the ID token's; its `email`, `email_verified`, `name` and `groups`
//!      take precedence over the ID token's.
//!
//! Nothing secret (client secret, code, tokens, PKCE verifier, nonce) is
//! logged or put into an error message; `Debug` output redacts them.

pub mod error;
pub mod http;
pub mod provider;
mod types;

pub use error::OidcError;
pub use provider::{CLOCK_SKEW_SECS, DISCOVERY_TTL_SECS, JWKS_REFETCH_INTERVAL_SECS};
pub use types::{CallbackParams, OidcClientConfig, PendingAuth, PENDING_TTL_SECS};

use crate::clock::Clock;
use crate::connectors::ExternalIdentity;
use crate::crypto;
use error::{sanitize, token_error};
use http::{HttpClient, HttpError};
use openidconnect::core::{CoreAuthPrompt, CoreAuthenticationFlow, CoreClientAuthMethod};
use openidconnect::{
    AccessToken, AccessTokenHash, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, SubjectIdentifier, TokenResponse, UserInfoError,
};
use provider::{Claims, Metadata, OClient, Provider, UserInfo, VerifiedToken};
use std::fmt;
use std::sync::Arc;

/// A relying party at one issuer. Share it (`Arc`) between requests: it
/// caches the discovery document and the issuer's keys.
pub struct OidcConnector {
    cfg: OidcClientConfig,
    issuer: IssuerUrl,
    client_id: ClientId,
    redirect_uri: RedirectUrl,
    scopes: Vec<String>,
    clock: Arc<dyn Clock>,
    provider: Provider,
}

impl fmt::Debug for OidcConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcConnector")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl OidcConnector {
    /// Checks the configuration; contacts nobody (discovery happens on first
    /// use).
    pub fn new(cfg: OidcClientConfig, clock: Arc<dyn Clock>) -> Result<Self, OidcError> {
        let issuer = IssuerUrl::new(cfg.issuer_url.clone())
            .map_err(|_| OidcError::Internal("the issuer URL is not a valid URL".into()))?;
        let u = issuer.url();
        if !matches!(u.scheme(), "https" | "http")
            || u.query().is_some()
            || u.fragment().is_some()
            || u.host().is_none()
        {
            return Err(OidcError::Internal(
                "the issuer URL must be http(s) with a host and no query or fragment".into(),
            ));
        }
        let redirect_uri = RedirectUrl::new(cfg.redirect_uri.clone())
            .map_err(|_| OidcError::Internal("the redirect URI is not a valid URL".into()))?;
        if cfg.client_id.is_empty() {
            return Err(OidcError::Internal("the client id is empty".into()));
        }
        let mut scopes: Vec<String> = Vec::new();
        for s in &cfg.scopes {
            let s = s.trim();
            if s.is_empty() || s == "openid" || scopes.iter().any(|x| x == s) {
                continue;
            }
            if s.chars()
                .any(|c| c.is_whitespace() || c == '"' || c == '\\')
            {
                return Err(OidcError::Internal(format!("scope `{s}` is not valid")));
            }
            scopes.push(s.to_string());
        }
        if cfg.scopes.is_empty() {
            scopes = vec!["email".into(), "profile".into()];
        }
        let http = HttpClient::new().map_err(|e| OidcError::Internal(e.to_string()))?;
        Ok(Self {
            client_id: ClientId::new(cfg.client_id.clone()),
            provider: Provider::new(issuer.clone(), http, clock.clone()),
            cfg,
            issuer,
            redirect_uri,
            scopes,
            clock,
        })
    }

    /// The issuer identifier this connector trusts.
    pub fn issuer(&self) -> &str {
        self.issuer.as_str()
    }

    /// Authorize URL (with an S256 `code_challenge`, `state`, `nonce`, and
    /// `prompt` when given: `none`, `login`, `consent` or `select_account`)
    /// and what the caller must keep server-side (single use, short TTL,
    /// bound to the browser).
    pub async fn begin(&self, prompt: Option<&str>) -> Result<(String, PendingAuth), OidcError> {
        let prompt = prompt.map(parse_prompt).transpose()?;
        let metadata = self.provider.metadata().await?;
        let client = self.client(&metadata);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let state = random_secret()?;
        let nonce = random_secret()?;
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                {
                    let state = state.clone();
                    move || CsrfToken::new(state)
                },
                {
                    let nonce = nonce.clone();
                    move || Nonce::new(nonce)
                },
            )
            .set_pkce_challenge(challenge);
        for scope in &self.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        if let Some(p) = prompt {
            request = request.add_prompt(p);
        }
        let (url, _, _) = request.url();
        let pending = PendingAuth {
            state,
            nonce,
            pkce_verifier: verifier.secret().clone(),
            created_at: self.clock.now(),
            issuer: self.cfg.issuer_url.clone(),
            client_id: self.cfg.client_id.clone(),
            redirect_uri: self.cfg.redirect_uri.clone(),
        };
        Ok((url.to_string(), pending))
    }

    /// Validates the callback against the pending auth and returns the
    /// identity. Refusals are logged (reason and issuer only).
    pub async fn complete(
        &self,
        pending: &PendingAuth,
        params: &CallbackParams,
    ) -> Result<ExternalIdentity, OidcError> {
        let result = self.complete_inner(pending, params).await;
        if let Err(e) = &result {
            tracing::info!(issuer = %self.issuer.as_str(), status = e.status(), error = %e,
                "OIDC sign-in refused");
        }
        result
    }

    async fn complete_inner(
        &self,
        pending: &PendingAuth,
        params: &CallbackParams,
    ) -> Result<ExternalIdentity, OidcError> {
        self.check_pending(pending, params)?;
        let metadata = self.provider.metadata().await?;
        self.check_iss_parameter(&metadata, params)?;
        if let Some(error) = params.error.as_deref() {
            return Err(OidcError::ProviderError {
                error: sanitize(error),
                description: params
                    .error_description
                    .as_deref()
                    .map(sanitize)
                    .filter(|d| !d.is_empty()),
            });
        }
        let code = params
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| OidcError::Malformed("it carries no authorization code".into()))?;

        let client = self.client_with_keys(&metadata).await;
        let token_response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|_| OidcError::Discovery("the issuer has no token endpoint".into()))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.pkce_verifier.clone()))
            .request_async(self.provider.http())
            .await
            .map_err(token_error)?;
        let id_token = token_response
            .id_token()
            .ok_or_else(|| OidcError::Invalid("the token endpoint returned no ID token".into()))?;
        let nonce = Nonce::new(pending.nonce.clone());
        let verified = self
            .provider
            .verify_id_token(&metadata, &self.client_id, id_token, &nonce)
            .await?;
        self.check_more_claims(&verified, token_response.access_token())?;

        // Built again: a key rotation seen while verifying the ID token must
        // reach the verifier of a signed userinfo response too.
        let client = self.client_with_keys(&metadata).await;
        let userinfo = self
            .userinfo(
                &client,
                token_response.access_token(),
                verified.claims.subject(),
            )
            .await?;
        Ok(self.identity(&verified.claims, userinfo.as_ref()))
    }

    /// An `openidconnect` client for the cached discovery document and the
    /// current keys.
    async fn client_with_keys(&self, metadata: &Metadata) -> OClient {
        let jwks = self.provider.current_jwks().await;
        self.client(&metadata.clone().set_jwks(jwks.as_ref().clone()))
    }

    fn client(&self, metadata: &Metadata) -> OClient {
        let secret = (!self.cfg.client_secret.is_empty())
            .then(|| ClientSecret::new(self.cfg.client_secret.clone()));
        let client =
            OClient::from_provider_metadata(metadata.clone(), self.client_id.clone(), secret)
                .set_redirect_uri(self.redirect_uri.clone());
        // client_secret_basic unless the issuer says it only takes
        // client_secret_post.
        let methods = metadata.token_endpoint_auth_methods_supported();
        let post_only = methods.is_some_and(|m| {
            !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
                && m.contains(&CoreClientAuthMethod::ClientSecretPost)
        });
        if post_only {
            client.set_auth_type(AuthType::RequestBody)
        } else {
            client.set_auth_type(AuthType::BasicAuth)
        }
    }

    /// The state: present, equal (constant time), from this connection, not
    /// expired (else 400).
    fn check_pending(
        &self,
        pending: &PendingAuth,
        params: &CallbackParams,
    ) -> Result<(), OidcError> {
        let state = params
            .state
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| OidcError::BadState("the answer carries no state".into()))?;
        if pending.state.is_empty() || !crypto::ct_eq(state.as_bytes(), pending.state.as_bytes()) {
            return Err(OidcError::BadState(
                "the state does not match this browser's sign-in".into(),
            ));
        }
        if pending.issuer != self.cfg.issuer_url
            || pending.client_id != self.cfg.client_id
            || pending.redirect_uri != self.cfg.redirect_uri
        {
            return Err(OidcError::BadState(
                "the sign-in was started for another connection".into(),
            ));
        }
        let age = self.clock.now() - pending.created_at;
        if age > PENDING_TTL_SECS {
            return Err(OidcError::BadState("the sign-in took too long".into()));
        }
        Ok(())
    }

    /// RFC 9207: an `iss` in the authorization response must be this issuer;
    /// it must be there when the issuer advertises it (mix-up defence).
    fn check_iss_parameter(
        &self,
        metadata: &Metadata,
        params: &CallbackParams,
    ) -> Result<(), OidcError> {
        let advertised = metadata
            .additional_metadata()
            .authorization_response_iss_parameter_supported
            == Some(true);
        match params.iss.as_deref() {
            Some(iss) if crypto::ct_eq(iss.as_bytes(), self.issuer.as_str().as_bytes()) => Ok(()),
            Some(_) => Err(OidcError::Invalid(
                "the authorization response comes from another issuer".into(),
            )),
            None if advertised => Err(OidcError::Invalid(
                "the authorization response does not name its issuer".into(),
            )),
            None => Ok(()),
        }
    }

    /// Checks `openidconnect` leaves to the relying party: `azp` with several
    /// audiences, a non-empty `sub`, and `at_hash` when present.
    fn check_more_claims(
        &self,
        verified: &VerifiedToken,
        access_token: &AccessToken,
    ) -> Result<(), OidcError> {
        let claims = &verified.claims;
        let azp = claims.authorized_party().map(|a| a.as_str());
        if claims.audiences().len() > 1 && azp.is_none() {
            return Err(OidcError::Invalid(
                "the ID token has several audiences and no authorized party".into(),
            ));
        }
        if let Some(azp) = azp {
            if azp != self.client_id.as_str() {
                return Err(OidcError::Invalid(
                    "the ID token was issued to another client (azp)".into(),
                ));
            }
        }
        if claims.subject().as_str().is_empty() {
            return Err(OidcError::Invalid(
                "the ID token has an empty subject".into(),
            ));
        }
        if let Some(expected) = claims.access_token_hash() {
            let actual = AccessTokenHash::from_token(access_token, &verified.alg, &verified.key)
                .map_err(|_| {
                    OidcError::Invalid("the ID token's at_hash cannot be checked".into())
                })?;
            if !crypto::ct_eq(actual.as_bytes(), expected.as_bytes()) {
                return Err(OidcError::Invalid(
                    "the ID token does not match the access token (at_hash)".into(),
                ));
            }
        }
        Ok(())
    }

    /// Userinfo, when the issuer has the endpoint; its `sub` must be the ID
    /// token's (else 401).
    async fn userinfo(
        &self,
        client: &OClient,
        access_token: &AccessToken,
        subject: &SubjectIdentifier,
    ) -> Result<Option<UserInfo>, OidcError> {
        let Ok(request) = client.user_info(access_token.clone(), Some(subject.clone())) else {
            return Ok(None);
        };
        match request.request_async(self.provider.http()).await {
            Ok(info) => Ok(Some(info)),
            Err(UserInfoError::ClaimsVerification(ClaimsVerificationError::InvalidSubject(_))) => {
                Err(OidcError::Invalid(
                    "the userinfo endpoint describes another person than the ID token".into(),
                ))
            }
            Err(UserInfoError::ClaimsVerification(_)) => Err(OidcError::Invalid(
                "the userinfo response failed verification".into(),
            )),
            Err(UserInfoError::Request(HttpError::Unreachable(m))) => {
                Err(OidcError::Unavailable(m))
            }
            Err(UserInfoError::Response(status, _, _)) if status.is_server_error() => Err(
                OidcError::Unavailable(format!("the userinfo endpoint answered {status}")),
            ),
            Err(UserInfoError::Response(status, _, _)) => Err(OidcError::Invalid(format!(
                "the userinfo endpoint answered {}",
                status.as_u16()
            ))),
            Err(_) => Err(OidcError::Invalid(
                "the userinfo response is not valid".into(),
            )),
        }
    }

    fn identity(&self, claims: &Claims, userinfo: Option<&UserInfo>) -> ExternalIdentity {
        let (email, email_verified) = match userinfo.and_then(|u| u.email().map(|e| (u, e))) {
            Some((u, e)) => (Some(e.to_string()), u.email_verified().unwrap_or(false)),
            None => (
                claims.email().map(|e| e.to_string()),
                claims.email().is_some() && claims.email_verified().unwrap_or(false),
            ),
        };
        let name = userinfo
            .and_then(|u| u.name())
            .and_then(|n| n.get(None))
            .or_else(|| claims.name().and_then(|n| n.get(None)))
            .map(|n| n.to_string());
        let groups = userinfo
            .and_then(|u| u.additional_claims().group_list())
            .or_else(|| claims.additional_claims().group_list())
            .unwrap_or_default();
        let amr = claims
            .auth_method_refs()
            .map(|v| v.iter().map(|a| a.to_string()).collect())
            .unwrap_or_default();
        ExternalIdentity {
            issuer: self.issuer.as_str().to_string(),
            subject: claims.subject().to_string(),
            email,
            email_verified,
            name,
            groups,
            amr,
        }
    }
}

fn parse_prompt(p: &str) -> Result<CoreAuthPrompt, OidcError> {
    match p {
        "none" => Ok(CoreAuthPrompt::None),
        "login" => Ok(CoreAuthPrompt::Login),
        "consent" => Ok(CoreAuthPrompt::Consent),
        "select_account" => Ok(CoreAuthPrompt::SelectAccount),
        _ => Err(OidcError::Internal(format!(
            "prompt `{}` is not supported",
            sanitize(p)
        ))),
    }
}

/// 256 random bits, base64url.
fn random_secret() -> Result<String, OidcError> {
    crypto::random_token("").map_err(|e| OidcError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_checked() {
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
        let good = OidcClientConfig {
            issuer_url: "https://issuer.test".into(),
            client_id: "c".into(),
            client_secret: "s".into(),
            redirect_uri: "https://rp.test/cb".into(),
            scopes: vec!["openid".into(), "email".into(), "email".into()],
        };
        let c = OidcConnector::new(good.clone(), clock.clone()).unwrap();
        assert_eq!(c.scopes, vec!["email".to_string()]);
        for bad in [
            OidcClientConfig {
                issuer_url: "ftp://issuer.test".into(),
                ..good.clone()
            },
            OidcClientConfig {
                issuer_url: "https://issuer.test/?a=b".into(),
                ..good.clone()
            },
            OidcClientConfig {
                client_id: String::new(),
                ..good.clone()
            },
            OidcClientConfig {
                redirect_uri: "not a url".into(),
                ..good.clone()
            },
            OidcClientConfig {
                scopes: vec!["a b".into()],
                ..good.clone()
            },
        ] {
            assert_eq!(
                OidcConnector::new(bad, clock.clone()).unwrap_err().status(),
                500
            );
        }
    }
}
