//! A small hostile OpenID Connect provider for the relying-party tests: a
//! real HTTP server on 127.0.0.1:0 with discovery, an authorize endpoint that
//! redirects straight back with a code, token (PKCE S256 and client secret
//! checked), userinfo and JWKS. One [`Misbehaviour`] at a time chooses the
//! fault it commits; it can be changed while it runs.
//!
//! Keys are made here: ES256 with `iam_gateway::jwt::EsKey`, RS256 with the
//! `rsa` crate (generated once per test binary: RSA key generation is slow).

#![allow(dead_code)]

use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use iam_gateway::clock::{Clock, ManualClock};
use iam_gateway::connectors::oidc::{CallbackParams, OidcClientConfig, OidcConnector, PendingAuth};
use iam_gateway::jwt::EsKey;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::oneshot;

pub const CLIENT_ID: &str = "iam-gateway";
pub const CLIENT_SECRET: &str = "client-s3cret";
/// Never contacted: the tests read the redirect instead of following it.
pub const REDIRECT_URI: &str = "http://127.0.0.1:9/auth/callback";
pub const SUBJECT: &str = "user-123";
pub const EMAIL: &str = "ada@corp.test";
pub const EVIL_ISSUER: &str = "http://evil.test";

/// The one fault the provider commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Misbehaviour {
    /// None: a well-behaved provider signing ES256 ID tokens (with at_hash).
    Honest,
    /// Well-behaved, signing RS256.
    Rs256,
    // Forged or unsigned ID tokens: 401.
    AlgNone,
    /// A validly signed token whose payload is then swapped (sub "admin").
    BadSignature,
    /// HS256 keyed with the PEM of the issuer's published RSA public key.
    Hs256WithPublicKey,
    // Issuer or audience wrong: refused.
    IdTokenIssWrong,
    DiscoveryIssuerMismatch,
    AudMissing,
    AudWrong,
    SeveralAudNoAzp,
    SeveralAudOtherAzp,
    /// Several audiences with `azp` = our client id: acceptable.
    SeveralAudWithAzp,
    // Nonce, `exp`, `iat`, `sub`: 401.
    NonceWrong,
    NonceMissing,
    /// Every ID token carries the first nonce this provider ever saw.
    NonceReplayed,
    Expired,
    IatMissing,
    IatInFuture,
    SubMissing,
    // Key rotation: one rate-limited JWKS re-fetch for an unknown `kid`.
    /// The JWKS serves the old key on its first fetch and the new key on
    /// every later one; after that first fetch, tokens are signed with the
    /// new key.
    RotateKey,
    /// Tokens signed with a key (and kid) never published.
    UnpublishedKid,
    /// Several RSA keys published; RS256 tokens without `kid`, signed with
    /// the second one.
    NoKidSeveralKeys,
    // Userinfo `sub` must be the ID token's.
    UserinfoSubMismatch,
    /// Discovery names no userinfo endpoint.
    NoUserinfo,
    // The authorization response's `iss` (RFC 9207).
    /// Discovery advertises `authorization_response_iss_parameter_supported`
    /// and the callback carries the right `iss`.
    IssParam,
    /// Advertised, but the callback has no `iss`.
    IssParamOmitted,
    /// Advertised, and the callback's `iss` is another issuer.
    IssParamWrong,
    // Others
    /// The authorize endpoint answers with this OAuth error.
    ErrorCallback(&'static str),
    /// The token endpoint refuses every code (invalid_grant).
    TokenEndpointError,
    /// at_hash does not match the access token.
    BadAtHash,
}

pub struct RsaTestKey {
    pub kid: String,
    pub key: RsaPrivateKey,
    pub public_pem: String,
}

impl RsaTestKey {
    fn generate(kid: &str) -> RsaTestKey {
        let mut rng = rsa::rand_core::OsRng;
        let key = RsaPrivateKey::new(&mut rng, 2048).unwrap();
        let public_pem = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        RsaTestKey {
            kid: kid.to_string(),
            key,
            public_pem,
        }
    }

    pub fn public_jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "n": URL_SAFE_NO_PAD.encode(self.key.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(self.key.e().to_bytes_be()),
            "kid": self.kid,
            "use": "sig",
            "alg": "RS256",
        })
    }

    /// RS256 over `header` and `claims` as given (the header may lack kid).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = signing_input(header, claims);
        let digest = Sha256::digest(input.as_bytes());
        let sig = self
            .key
            .sign(Pkcs1v15Sign::new::<Sha256>(), &digest)
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// Two RSA keys shared by every fixture of this test binary.
pub fn rsa_keys() -> &'static [RsaTestKey; 2] {
    static KEYS: OnceLock<[RsaTestKey; 2]> = OnceLock::new();
    KEYS.get_or_init(|| [RsaTestKey::generate("rsa-0"), RsaTestKey::generate("rsa-1")])
}

fn signing_input(header: &Value, claims: &Value) -> String {
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

fn hs256(key: &[u8], header: &Value, claims: &Value) -> String {
    use hmac::{Hmac, Mac};
    let input = signing_input(header, claims);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap();
    mac.update(input.as_bytes());
    format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

fn now() -> i64 {
    iam_gateway::clock::SystemClock.now()
}

fn random() -> String {
    iam_gateway::crypto::random_token("").unwrap()
}

struct Grant {
    nonce: Option<String>,
    challenge: String,
    redirect_uri: String,
}

struct Shared {
    issuer: String,
    misbehaviour: Mutex<Misbehaviour>,
    es_primary: EsKey,
    es_rotated: EsKey,
    es_unpublished: EsKey,
    /// RotateKey: the JWKS has been fetched once and now serves the new key.
    rotated: AtomicBool,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
    token_requests: AtomicUsize,
    userinfo_requests: AtomicUsize,
    codes: Mutex<HashMap<String, Grant>>,
    access_tokens: Mutex<HashMap<String, String>>,
    first_nonce: Mutex<Option<String>>,
    last_authorize: Mutex<HashMap<String, String>>,
    /// The last access token and ID token issued.
    last_tokens: Mutex<Option<(String, String)>>,
    /// The redirect URI the authorize endpoint accepts.
    redirect_uri: Mutex<String>,
}

impl Shared {
    fn misbehaviour(&self) -> Misbehaviour {
        self.misbehaviour.lock().unwrap().clone()
    }
}

pub struct Fixture {
    pub issuer: String,
    shared: Arc<Shared>,
    http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl Fixture {
    pub async fn start(misbehaviour: Misbehaviour) -> Fixture {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            misbehaviour: Mutex::new(misbehaviour),
            es_primary: EsKey::generate().unwrap(),
            es_rotated: EsKey::generate().unwrap(),
            es_unpublished: EsKey::generate().unwrap(),
            rotated: AtomicBool::new(false),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
            token_requests: AtomicUsize::new(0),
            userinfo_requests: AtomicUsize::new(0),
            codes: Mutex::new(HashMap::new()),
            access_tokens: Mutex::new(HashMap::new()),
            first_nonce: Mutex::new(None),
            last_authorize: Mutex::new(HashMap::new()),
            last_tokens: Mutex::new(None),
            redirect_uri: Mutex::new(REDIRECT_URI.to_string()),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .route("/jwks", get(jwks))
            .with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
        });
        Fixture {
            issuer,
            shared,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            stop: Some(tx),
        }
    }

    /// Accepts another redirect URI (a whole gateway as the client).
    pub fn set_redirect_uri(&self, uri: &str) {
        *self.shared.redirect_uri.lock().unwrap() = uri.to_string();
    }

    /// Changes the fault from now on.
    pub fn set(&self, misbehaviour: Misbehaviour) {
        *self.shared.misbehaviour.lock().unwrap() = misbehaviour;
    }

    pub fn jwks_fetches(&self) -> usize {
        self.shared.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn discovery_fetches(&self) -> usize {
        self.shared.discovery_fetches.load(Ordering::SeqCst)
    }

    pub fn token_requests(&self) -> usize {
        self.shared.token_requests.load(Ordering::SeqCst)
    }

    pub fn userinfo_requests(&self) -> usize {
        self.shared.userinfo_requests.load(Ordering::SeqCst)
    }

    /// The last (access token, ID token) the token endpoint issued.
    pub fn last_tokens(&self) -> Option<(String, String)> {
        self.shared.last_tokens.lock().unwrap().clone()
    }

    /// The query of the last authorization request.
    pub fn last_authorize(&self) -> HashMap<String, String> {
        self.shared.last_authorize.lock().unwrap().clone()
    }

    pub fn config(&self) -> OidcClientConfig {
        OidcClientConfig {
            issuer_url: self.issuer.clone(),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uri: REDIRECT_URI.into(),
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
        }
    }

    pub fn connector(&self, clock: &ManualClock) -> OidcConnector {
        OidcConnector::new(self.config(), Arc::new(clock.clone())).unwrap()
    }

    /// Plays the browser: follows the authorize URL to the provider and
    /// reads the redirect back to the relying party.
    pub async fn authorize(&self, url: &str) -> CallbackParams {
        let resp = self.http.get(url).send().await.unwrap();
        let status = resp.status();
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_string());
        let Some(location) = location else {
            panic!(
                "authorize answered {status} without a redirect: {}",
                resp.text().await.unwrap_or_default()
            );
        };
        assert!(
            location.starts_with(REDIRECT_URI),
            "redirects to the redirect URI: {location}"
        );
        let url = url::Url::parse(&location).unwrap();
        let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
        CallbackParams {
            code: q.get("code").cloned(),
            state: q.get("state").cloned(),
            iss: q.get("iss").cloned(),
            error: q.get("error").cloned(),
            error_description: q.get("error_description").cloned(),
        }
    }

    /// `begin` + the browser's round trip: what `complete` gets.
    pub async fn sign_in(&self, connector: &OidcConnector) -> (PendingAuth, CallbackParams) {
        let (url, pending) = connector.begin(None).await.unwrap();
        let params = self.authorize(&url).await;
        (pending, params)
    }
}

async fn discovery(State(s): State<Arc<Shared>>) -> Response {
    s.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    let m = s.misbehaviour();
    let iss = &s.issuer;
    let mut doc = json!({
        "issuer": if m == Misbehaviour::DiscoveryIssuerMismatch { EVIL_ISSUER } else { iss.as_str() },
        "authorization_endpoint": format!("{iss}/authorize"),
        "token_endpoint": format!("{iss}/token"),
        "userinfo_endpoint": format!("{iss}/userinfo"),
        "jwks_uri": format!("{iss}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        "scopes_supported": ["openid", "email", "profile"],
    });
    if m == Misbehaviour::NoUserinfo {
        doc.as_object_mut().unwrap().remove("userinfo_endpoint");
    }
    if matches!(
        m,
        Misbehaviour::IssParam | Misbehaviour::IssParamOmitted | Misbehaviour::IssParamWrong
    ) {
        doc["authorization_response_iss_parameter_supported"] = json!(true);
    }
    Json(doc).into_response()
}

async fn jwks(State(s): State<Arc<Shared>>) -> Response {
    let n = s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let rsa = rsa_keys();
    let keys = match s.misbehaviour() {
        Misbehaviour::RotateKey => {
            // The provider rotates right after its first key set was
            // fetched: from then on it signs with, and serves, the new key.
            let served = if n == 0 {
                vec![s.es_primary.public_jwk()]
            } else {
                vec![s.es_rotated.public_jwk()]
            };
            s.rotated.store(true, Ordering::SeqCst);
            served
        }
        Misbehaviour::NoKidSeveralKeys => vec![
            s.es_primary.public_jwk(),
            rsa[0].public_jwk(),
            rsa[1].public_jwk(),
        ],
        _ => vec![s.es_primary.public_jwk(), rsa[0].public_jwk()],
    };
    Json(json!({ "keys": keys })).into_response()
}

async fn authorize(
    State(s): State<Arc<Shared>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    *s.last_authorize.lock().unwrap() = q.clone();
    let get = |k: &str| q.get(k).cloned().unwrap_or_default();
    let problems: Vec<&str> = [
        (get("client_id") != CLIENT_ID, "client_id"),
        (get("response_type") != "code", "response_type"),
        (
            get("redirect_uri") != *s.redirect_uri.lock().unwrap(),
            "redirect_uri",
        ),
        (
            get("code_challenge_method") != "S256",
            "code_challenge_method",
        ),
        (get("code_challenge").len() != 43, "code_challenge"),
        (get("state").is_empty(), "state"),
        (get("nonce").is_empty(), "nonce"),
        (
            !get("scope").split(' ').any(|s| s == "openid"),
            "scope openid",
        ),
    ]
    .into_iter()
    .filter(|(bad, _)| *bad)
    .map(|(_, what)| what)
    .collect();
    if !problems.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            format!("bad authorization request: {problems:?}"),
        )
            .into_response();
    }
    let m = s.misbehaviour();
    let mut back = url::Url::parse(&get("redirect_uri")).unwrap();
    {
        let mut pairs = back.query_pairs_mut();
        if let Misbehaviour::ErrorCallback(error) = &m {
            pairs.append_pair("error", error);
            pairs.append_pair("error_description", "The user is not signed in\nhere");
        } else {
            let code = random();
            s.codes.lock().unwrap().insert(
                code.clone(),
                Grant {
                    nonce: q.get("nonce").cloned(),
                    challenge: get("code_challenge"),
                    redirect_uri: get("redirect_uri"),
                },
            );
            pairs.append_pair("code", &code);
        }
        pairs.append_pair("state", &get("state"));
        match m {
            Misbehaviour::IssParam => {
                pairs.append_pair("iss", &s.issuer);
            }
            Misbehaviour::IssParamWrong => {
                pairs.append_pair("iss", EVIL_ISSUER);
            }
            _ => {}
        }
    }
    (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, back.to_string())],
    )
        .into_response()
}

fn oauth_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

fn form_urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn token(
    State(s): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    s.token_requests.fetch_add(1, Ordering::SeqCst);
    let m = s.misbehaviour();
    // client_secret_basic (RFC 6749 2.3.1: form-encoded, then base64).
    let expected = format!(
        "Basic {}",
        STANDARD.encode(format!(
            "{}:{}",
            form_urlencode(CLIENT_ID),
            form_urlencode(CLIENT_SECRET)
        ))
    );
    if headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        != Some(&expected)
    {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if f.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    if m == Misbehaviour::TokenEndpointError {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    // Codes are single use.
    let Some(grant) = f
        .get("code")
        .and_then(|c| s.codes.lock().unwrap().remove(c))
    else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    if f.get("redirect_uri") != Some(&grant.redirect_uri) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    if URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) != grant.challenge {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }

    let access_token = random();
    s.access_tokens
        .lock()
        .unwrap()
        .insert(access_token.clone(), SUBJECT.to_string());
    let id_token = id_token(&s, &m, grant.nonce, &access_token);
    *s.last_tokens.lock().unwrap() = Some((access_token.clone(), id_token.clone()));
    Json(json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": 300,
        "id_token": id_token,
    }))
    .into_response()
}

/// The first half of SHA-256 of the access token, base64url (ES256/RS256).
fn at_hash(access_token: &str) -> String {
    let digest = Sha256::digest(access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

fn id_token(s: &Shared, m: &Misbehaviour, nonce: Option<String>, access_token: &str) -> String {
    let now = now();
    let nonce = if *m == Misbehaviour::NonceReplayed {
        let mut first = s.first_nonce.lock().unwrap();
        if first.is_none() {
            *first = nonce.clone();
        }
        first.clone()
    } else {
        nonce
    };
    let mut claims = json!({
        "iss": s.issuer,
        "sub": SUBJECT,
        "aud": CLIENT_ID,
        "exp": now + 300,
        "iat": now,
        "nonce": nonce,
        "email": EMAIL,
        "email_verified": true,
        "name": "Ada Lovelace",
        "amr": ["pwd", "otp"],
        "groups": ["from-id-token"],
        "at_hash": at_hash(access_token),
    });
    let c = claims.as_object_mut().unwrap();
    match m {
        Misbehaviour::IdTokenIssWrong => {
            c.insert("iss".into(), json!(EVIL_ISSUER));
        }
        Misbehaviour::AudMissing => {
            c.remove("aud");
        }
        Misbehaviour::AudWrong => {
            c.insert("aud".into(), json!("another-client"));
        }
        Misbehaviour::SeveralAudNoAzp => {
            c.insert("aud".into(), json!([CLIENT_ID, "another-client"]));
        }
        Misbehaviour::SeveralAudOtherAzp => {
            c.insert("aud".into(), json!([CLIENT_ID, "another-client"]));
            c.insert("azp".into(), json!("another-client"));
        }
        Misbehaviour::SeveralAudWithAzp => {
            c.insert("aud".into(), json!([CLIENT_ID, "another-client"]));
            c.insert("azp".into(), json!(CLIENT_ID));
        }
        Misbehaviour::NonceWrong => {
            c.insert("nonce".into(), json!(random()));
        }
        Misbehaviour::NonceMissing => {
            c.remove("nonce");
        }
        Misbehaviour::Expired => {
            c.insert("exp".into(), json!(now - 600));
            c.insert("iat".into(), json!(now - 900));
        }
        Misbehaviour::IatMissing => {
            c.remove("iat");
        }
        Misbehaviour::IatInFuture => {
            c.insert("iat".into(), json!(now + 3600));
            c.insert("exp".into(), json!(now + 7200));
        }
        Misbehaviour::SubMissing => {
            c.remove("sub");
        }
        Misbehaviour::BadAtHash => {
            c.insert("at_hash".into(), json!(at_hash("another access token")));
        }
        _ => {}
    }
    let rsa = rsa_keys();
    match m {
        Misbehaviour::Rs256 => rsa[0].sign(
            &json!({"alg": "RS256", "typ": "JWT", "kid": rsa[0].kid}),
            &claims,
        ),
        Misbehaviour::NoKidSeveralKeys => {
            rsa[1].sign(&json!({"alg": "RS256", "typ": "JWT"}), &claims)
        }
        Misbehaviour::AlgNone => {
            format!(
                "{}.",
                signing_input(&json!({"alg": "none", "typ": "JWT"}), &claims)
            )
        }
        Misbehaviour::Hs256WithPublicKey => hs256(
            rsa[0].public_pem.as_bytes(),
            &json!({"alg": "HS256", "typ": "JWT", "kid": rsa[0].kid}),
            &claims,
        ),
        Misbehaviour::BadSignature => {
            let signed = s.es_primary.sign(&claims);
            let mut forged = claims.clone();
            forged["sub"] = json!("admin");
            let parts: Vec<&str> = signed.split('.').collect();
            format!(
                "{}.{}.{}",
                parts[0],
                URL_SAFE_NO_PAD.encode(forged.to_string()),
                parts[2]
            )
        }
        Misbehaviour::RotateKey if s.rotated.load(Ordering::SeqCst) => s.es_rotated.sign(&claims),
        Misbehaviour::UnpublishedKid => s.es_unpublished.sign(&claims),
        _ => s.es_primary.sign(&claims),
    }
}

async fn userinfo(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    s.userinfo_requests.fetch_add(1, Ordering::SeqCst);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_string();
    let Some(sub) = s.access_tokens.lock().unwrap().get(&token).cloned() else {
        return (StatusCode::UNAUTHORIZED, "invalid_token").into_response();
    };
    let sub = if s.misbehaviour() == Misbehaviour::UserinfoSubMismatch {
        "someone-else".to_string()
    } else {
        sub
    };
    Json(json!({
        "sub": sub,
        "email": EMAIL,
        "email_verified": true,
        "name": "Ada Lovelace (userinfo)",
        "groups": ["engineering", "admins"],
    }))
    .into_response()
}

/// A clock for the connector, starting at the real time (the provider's).
pub fn clock() -> ManualClock {
    ManualClock::new()
}
