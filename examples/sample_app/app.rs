//! A downstream app behind the gateway's forward-auth: the "sample app" of
//! `docker-compose.yml` and of the proxy tests (`tests/it/ops.rs`).
//!
//! It believes the `X-Auth-*` headers only once `X-Auth-Assertion` checks
//! out against the gateway's JWKS (ES256, issuer, audience, expiry) and
//! agrees with them; otherwise it answers 401. Every answer echoes the
//! `X-Auth-*` headers exactly as they arrived (all values of each), so a
//! test can see what the proxy let through.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::RwLock;

/// Where the gateway publishes its keys, and the issuer it signs as (its
/// `public_url`).
#[derive(Clone, Debug)]
pub struct Config {
    pub jwks_url: String,
    pub issuer: String,
}

#[derive(Clone)]
pub struct SampleApp(Arc<Inner>);

struct Inner {
    cfg: Config,
    http: reqwest::Client,
    keys: RwLock<HashMap<String, VerifyingKey>>,
    requests: AtomicU64,
}

impl SampleApp {
    pub fn new(cfg: Config) -> Self {
        Self(Arc::new(Inner {
            cfg,
            http: reqwest::Client::new(),
            keys: RwLock::new(HashMap::new()),
            requests: AtomicU64::new(0),
        }))
    }

    /// How many requests reached the app (any path, any outcome); the tests
    /// read it, the binary does not.
    #[allow(dead_code)]
    pub fn requests(&self) -> u64 {
        self.0.requests.load(Ordering::SeqCst)
    }

    pub fn router(&self) -> Router {
        Router::new().fallback(handle).with_state(self.clone())
    }

    /// The key with this `kid`, fetching the JWKS again when it is unknown
    /// (keys rotate).
    async fn key(&self, kid: &str) -> Result<VerifyingKey, String> {
        if let Some(k) = self.0.keys.read().await.get(kid) {
            return Ok(*k);
        }
        let jwks: Value = self
            .0
            .http
            .get(&self.0.cfg.jwks_url)
            .send()
            .await
            .map_err(|e| format!("fetching the JWKS: {e}"))?
            .json()
            .await
            .map_err(|e| format!("reading the JWKS: {e}"))?;
        let mut keys = self.0.keys.write().await;
        for jwk in jwks["keys"].as_array().into_iter().flatten() {
            if jwk["kty"] != "EC" || jwk["crv"] != "P-256" {
                continue;
            }
            let (Some(id), Some(x), Some(y)) = (
                jwk["kid"].as_str(),
                jwk["x"].as_str().and_then(b64),
                jwk["y"].as_str().and_then(b64),
            ) else {
                continue;
            };
            let mut sec1 = vec![4u8];
            sec1.extend(x);
            sec1.extend(y);
            if let Ok(k) = VerifyingKey::from_sec1_bytes(&sec1) {
                keys.insert(id.to_string(), k);
            }
        }
        keys.get(kid)
            .copied()
            .ok_or_else(|| format!("kid {kid} is not in the JWKS"))
    }

    /// The assertion's claims when it is genuine, current, meant for the
    /// workspace named in `X-Auth-Workspace` and agrees with the headers.
    async fn verify(&self, headers: &HeaderMap) -> Result<Value, String> {
        let token = single(headers, "x-auth-assertion")?;
        let parts: Vec<&str> = token.split('.').collect();
        let [head, body, sig] = parts[..] else {
            return Err("the assertion is not a compact JWS".into());
        };
        let header: Value = b64(head)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("unreadable JWS header")?;
        if header["alg"] != "ES256" {
            return Err(format!("unexpected alg {}", header["alg"]));
        }
        let kid = header["kid"].as_str().ok_or("no kid")?;
        let key = self.key(kid).await?;
        let sig = b64(sig)
            .and_then(|s| Signature::from_slice(&s).ok())
            .ok_or("unreadable signature")?;
        key.verify(format!("{head}.{body}").as_bytes(), &sig)
            .map_err(|_| "bad signature")?;
        let claims: Value = b64(body)
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("unreadable claims")?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if claims["iss"] != self.0.cfg.issuer.as_str() {
            return Err(format!(
                "issuer {} is not {}",
                claims["iss"], self.0.cfg.issuer
            ));
        }
        if claims["exp"].as_i64().is_none_or(|exp| exp <= now) {
            return Err("the assertion has expired".into());
        }
        let workspace = single(headers, "x-auth-workspace")?;
        if claims["aud"] != format!("iamgw:{workspace}").as_str() {
            return Err(format!("audience {} is not this workspace", claims["aud"]));
        }
        for (claim, name) in [
            ("sub", "x-auth-user-id"),
            ("email", "x-auth-email"),
            ("workspace", "x-auth-workspace"),
        ] {
            if claims[claim] != single(headers, name)?.as_str() {
                return Err(format!("{name} disagrees with the assertion"));
            }
        }
        Ok(claims)
    }
}

fn b64(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).ok()
}

/// The one value of a header; two copies mean someone added their own.
fn single(headers: &HeaderMap, name: &str) -> Result<String, String> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v
            .to_str()
            .map(str::to_string)
            .map_err(|_| format!("{name} is not text")),
        (None, _) => Err(format!("no {name}")),
        (Some(_), Some(_)) => Err(format!("{name} arrived more than once")),
    }
}

async fn handle(State(app): State<SampleApp>, req: Request) -> Response {
    app.0.requests.fetch_add(1, Ordering::SeqCst);
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in req.headers() {
        let name = name.as_str().to_ascii_lowercase();
        if name.starts_with("x-auth") || name.starts_with("x_auth") {
            seen.entry(name)
                .or_default()
                .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
        }
    }
    let x_auth: Map<String, Value> = seen.into_iter().map(|(k, v)| (k, json!(v))).collect();
    let path = req.uri().to_string();
    match app.verify(req.headers()).await {
        Ok(claims) => (
            StatusCode::OK,
            axum::Json(json!({
                "path": path,
                "verified": true,
                "claims": claims,
                "x_auth": x_auth,
            })),
        )
            .into_response(),
        Err(why) => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({
                "path": path,
                "verified": false,
                "error": why,
                "x_auth": x_auth,
            })),
        )
            .into_response(),
    }
}
