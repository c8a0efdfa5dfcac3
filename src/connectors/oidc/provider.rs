//! What the connector knows about its issuer: the discovery document and the
//! signing keys, both cached, and ID token verification against those keys.
//!
//! # Why the key handling wraps `openidconnect`
//!
//! `openidconnect` verifies an ID token against one fixed [`JsonWebKeySet`]
//! and, when the token's `kid` is not in it, only reports `NoMatchingKey`; it
//! does not re-fetch keys, and with several eligible keys and no `kid` it
//! reports `AmbiguousKeyId`. This module adds, around its verifier:
//!
//! * **Key rotation.** An unknown `kid` (or a key of the wrong type) causes
//!   one re-fetch of the issuer's JWKS, then one more verification attempt.
//!   Re-fetches are rate limited: at most one per
//!   [`JWKS_REFETCH_INTERVAL_SECS`] per connector, measured with the injected
//!   clock, so tokens with made-up `kid`s cannot turn the gateway into a
//!   request amplifier against the issuer. The JWKS fetched together with
//!   the discovery document does not count against that limit. Concurrent
//!   callers wait for the one re-fetch in progress and then use its result.
//! * **`kid` absent with several keys: try each key.** Every key in the
//!   issuer's own set is tried in turn and the first whose signature verifies
//!   wins; the claims checks are the same whichever key it was. Only keys the
//!   issuer publishes are ever tried, so this accepts nothing a single-key
//!   set would not. No re-fetch happens in that case.

use super::error::OidcError;
use super::http::{HttpClient, HttpError};
use crate::clock::Clock;
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreClaimName, CoreClaimType, CoreClientAuthMethod,
    CoreErrorResponseType, CoreGenderClaim, CoreGrantType, CoreJsonWebKey,
    CoreJweContentEncryptionAlgorithm, CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm,
    CoreResponseMode, CoreResponseType, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreSubjectIdentifierType, CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AdditionalProviderMetadata, ClaimsVerificationError, Client, DiscoveryError,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdToken, IdTokenClaims,
    IdTokenFields, IdTokenVerifier, IssuerUrl, JsonWebKeySet, Nonce, ProviderMetadata,
    SignatureVerificationError, StandardErrorResponse, StandardTokenResponse, UserInfoClaims,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Minimum time between two JWKS re-fetches caused by unknown keys.
pub const JWKS_REFETCH_INTERVAL_SECS: i64 = 60;
/// How long a discovery document (and the JWKS fetched with it) is used
/// before it is fetched again.
pub const DISCOVERY_TTL_SECS: i64 = 3600;
/// After a failed refresh, the last good document is used this long before
/// the next attempt.
const DISCOVERY_RETRY_SECS: i64 = 60;
/// Leeway for the issuer's clock: `exp` up to this far in the past and `iat`
/// up to this far in the future are tolerated.
pub const CLOCK_SKEW_SECS: i64 = 60;

/// Only asymmetric signatures: `none` and the HMAC algorithms are refused
/// whatever key they claim (an HS256 token "signed" with the issuer's public
/// key is the classic confusion attack).
pub(crate) const ALLOWED_ALGS: [CoreJwsSigningAlgorithm; 9] = [
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
    CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
    CoreJwsSigningAlgorithm::RsaSsaPssSha256,
    CoreJwsSigningAlgorithm::RsaSsaPssSha384,
    CoreJwsSigningAlgorithm::RsaSsaPssSha512,
    CoreJwsSigningAlgorithm::EcdsaP256Sha256,
    CoreJwsSigningAlgorithm::EcdsaP384Sha384,
    CoreJwsSigningAlgorithm::EdDsa,
];

/// Discovery fields beyond OpenID Connect Discovery 1.0 that we read.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct ExtraMetadata {
    /// RFC 9207: the issuer adds `iss` to its authorization responses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_response_iss_parameter_supported: Option<bool>,
}
impl AdditionalProviderMetadata for ExtraMetadata {}

/// Claims beyond the standard ones: `groups`, as an array of strings or a
/// single string (anything else is ignored rather than failing the token).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct ExtraClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<serde_json::Value>,
}
impl AdditionalClaims for ExtraClaims {}

impl ExtraClaims {
    pub(crate) fn group_list(&self) -> Option<Vec<String>> {
        match self.groups.as_ref()? {
            serde_json::Value::String(s) if !s.is_empty() => Some(vec![s.clone()]),
            serde_json::Value::Array(items) => Some(
                items
                    .iter()
                    .filter_map(|v| v.as_str())
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            _ => None,
        }
    }
}

pub(crate) type Metadata = ProviderMetadata<
    ExtraMetadata,
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
pub(crate) type Jwks = JsonWebKeySet<CoreJsonWebKey>;
pub(crate) type Token = IdToken<
    ExtraClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
pub(crate) type Claims = IdTokenClaims<ExtraClaims, CoreGenderClaim>;
type Fields = IdTokenFields<
    ExtraClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
pub(crate) type TokenResponse = StandardTokenResponse<Fields, CoreTokenType>;
pub(crate) type UserInfo = UserInfoClaims<ExtraClaims, CoreGenderClaim>;
pub(crate) type OClient = Client<
    ExtraClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

struct CachedMetadata {
    metadata: Arc<Metadata>,
    fetched_at: i64,
    /// When a failed refresh may be tried again (0: no failure pending).
    retry_at: i64,
}

struct KeyCache {
    jwks: Arc<Jwks>,
    /// Bumped on every change of `jwks`.
    generation: u64,
    /// The last re-fetch caused by an unknown key (the rate limit).
    last_refetch: Option<i64>,
}

/// Discovery document and keys of one issuer.
pub(crate) struct Provider {
    issuer: IssuerUrl,
    http: HttpClient,
    clock: Arc<dyn Clock>,
    metadata: tokio::sync::Mutex<Option<CachedMetadata>>,
    keys: tokio::sync::Mutex<KeyCache>,
}

/// The outcome of a successful ID token verification.
pub(crate) struct VerifiedToken {
    pub claims: Claims,
    pub key: CoreJsonWebKey,
    pub alg: CoreJwsSigningAlgorithm,
}

impl Provider {
    pub fn new(issuer: IssuerUrl, http: HttpClient, clock: Arc<dyn Clock>) -> Self {
        Self {
            issuer,
            http,
            clock,
            metadata: tokio::sync::Mutex::new(None),
            keys: tokio::sync::Mutex::new(KeyCache {
                jwks: Arc::new(Jwks::default()),
                generation: 0,
                last_refetch: None,
            }),
        }
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The discovery document, fetched over HTTP on first use and again
    /// after [`DISCOVERY_TTL_SECS`]. A failed refresh keeps the last good
    /// document (and logs); with none, the failure is returned.
    pub async fn metadata(&self) -> Result<Arc<Metadata>, OidcError> {
        let now = self.clock.now();
        let mut cached = self.metadata.lock().await;
        if let Some(c) = cached.as_ref() {
            if now < c.fetched_at + DISCOVERY_TTL_SECS || now < c.retry_at {
                return Ok(c.metadata.clone());
            }
        }
        match self.discover().await {
            Ok(metadata) => {
                let metadata = Arc::new(metadata);
                {
                    let mut keys = self.keys.lock().await;
                    keys.jwks = Arc::new(metadata.jwks().clone());
                    keys.generation += 1;
                }
                *cached = Some(CachedMetadata {
                    metadata: metadata.clone(),
                    fetched_at: now,
                    retry_at: 0,
                });
                Ok(metadata)
            }
            Err(e) => match cached.as_mut() {
                Some(c) => {
                    tracing::warn!(issuer = %self.issuer.as_str(), error = %e,
                        "OIDC discovery refresh failed; using the last good document");
                    c.retry_at = now + DISCOVERY_RETRY_SECS;
                    Ok(c.metadata.clone())
                }
                None => {
                    tracing::warn!(issuer = %self.issuer.as_str(), error = %e, "OIDC discovery failed");
                    Err(e)
                }
            },
        }
    }

    /// Fetches and checks the discovery document (its `issuer` must be
    /// exactly the configured issuer URL: `openidconnect` checks that) and
    /// the JWKS it names.
    async fn discover(&self) -> Result<Metadata, OidcError> {
        let metadata = Metadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| discovery_error(e, "discovery document"))?;
        if !metadata
            .response_types_supported()
            .iter()
            .any(|types| types.as_slice() == [CoreResponseType::Code])
        {
            return Err(OidcError::Discovery(
                "the issuer does not support the authorization code flow".into(),
            ));
        }
        if metadata.token_endpoint().is_none() {
            return Err(OidcError::Discovery(
                "the issuer publishes no token endpoint".into(),
            ));
        }
        // An https issuer must not send its tokens or keys over plain HTTP.
        if self.issuer.url().scheme() == "https" {
            let mut urls = vec![
                metadata.authorization_endpoint().url(),
                metadata.jwks_uri().url(),
            ];
            urls.extend(metadata.token_endpoint().map(|u| u.url()));
            urls.extend(metadata.userinfo_endpoint().map(|u| u.url()));
            if urls.iter().any(|u| u.scheme() != "https") {
                return Err(OidcError::Discovery(
                    "the issuer's endpoints are not all https".into(),
                ));
            }
        }
        Ok(metadata)
    }

    /// The issuer's keys as currently cached.
    pub async fn current_jwks(&self) -> Arc<Jwks> {
        self.keys.lock().await.jwks.clone()
    }

    async fn current_keys(&self) -> (Arc<Jwks>, u64) {
        let keys = self.keys.lock().await;
        (keys.jwks.clone(), keys.generation)
    }

    /// One rate-limited re-fetch of the JWKS. `seen` is the generation the
    /// caller verified against: if the keys changed since, the new set is
    /// returned without fetching. `None`: rate limited, nothing fetched.
    async fn refetch_keys(
        &self,
        metadata: &Metadata,
        seen: u64,
    ) -> Result<Option<Arc<Jwks>>, OidcError> {
        let mut keys = self.keys.lock().await;
        if keys.generation != seen {
            return Ok(Some(keys.jwks.clone()));
        }
        let now = self.clock.now();
        if let Some(last) = keys.last_refetch {
            if now < last + JWKS_REFETCH_INTERVAL_SECS {
                tracing::info!(issuer = %self.issuer.as_str(),
                    "unknown signing key, JWKS re-fetch rate limited");
                return Ok(None);
            }
        }
        // Counted before fetching: failures are rate limited too.
        keys.last_refetch = Some(now);
        tracing::info!(issuer = %self.issuer.as_str(), "unknown signing key, re-fetching JWKS");
        let jwks = Jwks::fetch_async(metadata.jwks_uri(), &self.http)
            .await
            .map_err(|e| discovery_error(e, "key set"))?;
        keys.jwks = Arc::new(jwks);
        keys.generation += 1;
        Ok(Some(keys.jwks.clone()))
    }

    /// Verifies an ID token's signature and claims (issuer, audience,
    /// expiry with the injected clock, `iat` not in the future, nonce) with
    /// the cached keys, re-fetching them once (rate limited) when the token
    /// names a key that is not there.
    pub async fn verify_id_token(
        &self,
        metadata: &Metadata,
        client_id: &openidconnect::ClientId,
        token: &Token,
        nonce: &Nonce,
    ) -> Result<VerifiedToken, OidcError> {
        let (jwks, generation) = self.current_keys().await;
        match self.verify_with(&jwks, client_id, token, nonce) {
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => match self.refetch_keys(metadata, generation).await? {
                Some(jwks) => self
                    .verify_with(&jwks, client_id, token, nonce)
                    .map_err(|e| claims_error(&self.issuer, e)),
                None => Err(OidcError::Invalid(
                    "the ID token is signed with a key the issuer does not publish".into(),
                )),
            },
            other => other.map_err(|e| claims_error(&self.issuer, e)),
        }
    }

    fn verifier(
        &self,
        client_id: &openidconnect::ClientId,
        jwks: Jwks,
    ) -> IdTokenVerifier<'static, CoreJsonWebKey> {
        let now = self.clock.now();
        IdTokenVerifier::new_public_client(client_id.clone(), self.issuer.clone(), jwks)
            .set_allowed_algs(ALLOWED_ALGS)
            // Several audiences are let through here and decided by the
            // `azp` rule in the connector (it must then name us).
            .set_other_audience_verifier_fn(|_| true)
            // `exp` is compared with the injected clock, with leeway.
            .set_time_fn(move || unix_to_system(now - CLOCK_SKEW_SECS).into())
            .set_issue_time_verifier_fn(move |iat| {
                if iat.timestamp() > now + CLOCK_SKEW_SECS {
                    Err("the ID token is issued in the future".to_string())
                } else {
                    Ok(())
                }
            })
    }

    fn verify_with(
        &self,
        jwks: &Jwks,
        client_id: &openidconnect::ClientId,
        token: &Token,
        nonce: &Nonce,
    ) -> Result<VerifiedToken, ClaimsVerificationError> {
        let alg = token
            .signing_alg()
            .map_err(ClaimsVerificationError::SignatureVerification)?
            .clone();
        let verifier = self.verifier(client_id, jwks.clone());
        match token.claims(&verifier, nonce) {
            Ok(claims) => {
                let key = token
                    .signing_key(&verifier)
                    .map_err(ClaimsVerificationError::SignatureVerification)?
                    .clone();
                Ok(VerifiedToken {
                    claims: claims.clone(),
                    key,
                    alg,
                })
            }
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::AmbiguousKeyId(_),
            )) => {
                // No `kid` (or a shared one) and several eligible keys: try
                // each of the issuer's keys.
                let mut last = SignatureVerificationError::NoMatchingKey;
                for key in jwks.keys() {
                    let single = self.verifier(client_id, Jwks::new(vec![key.clone()]));
                    match token.claims(&single, nonce) {
                        Ok(claims) => {
                            return Ok(VerifiedToken {
                                claims: claims.clone(),
                                key: key.clone(),
                                alg,
                            })
                        }
                        Err(ClaimsVerificationError::SignatureVerification(e)) => {
                            if !matches!(e, SignatureVerificationError::NoMatchingKey) {
                                last = e;
                            }
                        }
                        Err(other) => return Err(other),
                    }
                }
                // Trying each key found none: that is a bad signature, not a
                // missing key, so it does not cause a re-fetch.
                Err(ClaimsVerificationError::SignatureVerification(match last {
                    SignatureVerificationError::NoMatchingKey => {
                        SignatureVerificationError::CryptoError("no key verifies".into())
                    }
                    other => other,
                }))
            }
            Err(e) => Err(e),
        }
    }
}

pub(crate) fn unix_to_system(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

/// `openidconnect`'s verdict in plain words; the detail (issuer and audience
/// values, times: nothing secret) goes to the log.
fn claims_error(issuer: &IssuerUrl, e: ClaimsVerificationError) -> OidcError {
    let detail = match &e {
        ClaimsVerificationError::SignatureVerification(s) => format!("{e}: {s}"),
        other => other.to_string(),
    };
    tracing::info!(issuer = %issuer.as_str(), detail = %detail, "ID token refused");
    let why = match e {
        ClaimsVerificationError::Expired(_) => "the ID token has expired or is not yet valid",
        ClaimsVerificationError::InvalidAudience(_) => "the ID token is meant for another client",
        ClaimsVerificationError::InvalidIssuer(_) => "the ID token was issued by another issuer",
        ClaimsVerificationError::InvalidNonce(_) => {
            "the ID token does not belong to this sign-in (nonce)"
        }
        ClaimsVerificationError::InvalidSubject(_) => "the ID token's subject is not valid",
        ClaimsVerificationError::SignatureVerification(s) => match s {
            SignatureVerificationError::NoSignature => "the ID token is not signed",
            SignatureVerificationError::DisallowedAlg(_)
            | SignatureVerificationError::UnsupportedAlg(_) => {
                "the ID token is signed with an algorithm that is not allowed"
            }
            SignatureVerificationError::NoMatchingKey => {
                "the ID token is signed with a key the issuer does not publish"
            }
            _ => "the ID token's signature is not valid",
        },
        _ => "the ID token is not valid",
    };
    OidcError::Invalid(why.into())
}

/// Discovery or JWKS failures: unreachable or 5xx is 503-class, anything
/// else an unusable issuer (502-class).
fn discovery_error(e: DiscoveryError<HttpError>, what: &str) -> OidcError {
    match e {
        DiscoveryError::Request(HttpError::Unreachable(m)) => OidcError::Unavailable(m),
        DiscoveryError::Request(other) => {
            OidcError::Discovery(format!("the issuer's {what} could not be read: {other}"))
        }
        DiscoveryError::Response(status, _, msg) if status.is_server_error() => {
            OidcError::Unavailable(format!("the issuer's {what} answered {status}: {msg}"))
        }
        DiscoveryError::Response(status, _, msg) => OidcError::Discovery(format!(
            "the issuer's {what} answered {}: {msg}",
            status.as_u16()
        )),
        DiscoveryError::Parse(err) => OidcError::Discovery(format!(
            "the issuer's {what} is not valid (at `{}`)",
            err.path()
        )),
        DiscoveryError::Validation(_) => OidcError::Discovery(
            "the discovery document names another issuer than the configured one".into(),
        ),
        other => OidcError::Discovery(format!("the issuer's {what} is not usable: {other}")),
    }
}
