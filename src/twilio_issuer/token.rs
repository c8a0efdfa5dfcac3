//! `POST /oauth2/token` (authorization_code grant, client_secret_basic or
//! client_secret_post, PKCE S256) and `GET|POST /oauth2/userinfo`. Errors are
//! RFC 6749 section 5.2 JSON; nothing is cached.

use super::accounts::{self, Account};
use super::authorize::{code_key, CodeGrant, CODE_TTL};
use super::keys::at_hash;
use super::{ClientRegistration, IssuerState};
use crate::crypto;
use crate::domain::DomainError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Lifetime of access tokens.
pub const ACCESS_TOKEN_TTL: i64 = 3600;
/// Lifetime of id_tokens.
pub const ID_TOKEN_TTL: i64 = 600;

/// What an access token stands for; stored under its SHA-256.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct AccessGrant {
    sub: String,
    client_id: String,
    scope: Vec<String>,
    expires_at: i64,
}

fn token_key(token: &str) -> String {
    format!("twi:t:{}", crypto::sha256_hex(token.as_bytes()))
}

/// Remembers, for a redeemed code, the access token it produced, so a
/// second use of the code revokes that token (RFC 6749 4.1.2).
fn used_code_key(code: &str) -> String {
    format!("twi:cu:{}", crypto::sha256_hex(code.as_bytes()))
}

fn no_store(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = json!({"error": error, "error_description": description});
    let mut r = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    no_store(&mut r);
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"twilio-issuer\""),
        );
    }
    r
}

fn bad(error: &str, description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, error, description)
}

fn invalid_client(description: &str) -> Response {
    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description)
}

fn server_error(e: DomainError) -> Response {
    let status = match e {
        DomainError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let detail = super::views::public_detail(&e);
    oauth_error(
        status,
        if status == StatusCode::SERVICE_UNAVAILABLE {
            "temporarily_unavailable"
        } else {
            "server_error"
        },
        &detail,
    )
}

/// `application/x-www-form-urlencoded` decoding of one component
/// (`+` is a space, `%XX` a byte); `None` when not UTF-8 or malformed.
fn form_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let text = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(text, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// `Authorization: Basic` credentials (RFC 6749 2.3.1): `Ok(None)` when
/// absent, `Err` when present but unreadable.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, ()> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let text = value.to_str().map_err(|_| ())?;
    let Some((scheme, rest)) = text.trim().split_once(' ') else {
        return Err(());
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(());
    }
    let raw = crypto::b64_decode(rest).ok_or(())?;
    let pair = String::from_utf8(raw).map_err(|_| ())?;
    let (id, secret) = pair.split_once(':').ok_or(())?;
    Ok(Some((
        form_decode(id).ok_or(())?,
        form_decode(secret).ok_or(())?,
    )))
}

/// The client whose id and secret these are. Every registration is
/// compared, in constant time over fixed-length digests.
fn authenticate<'a>(
    st: &'a IssuerState,
    client_id: &str,
    secret: &str,
) -> Option<&'a ClientRegistration> {
    let presented = crypto::sha256_hex(secret.as_bytes());
    let mut found = None;
    for c in &st.clients {
        let expected = crypto::sha256_hex(c.client_secret.as_bytes());
        let secret_ok = crypto::ct_eq(expected.as_bytes(), presented.as_bytes());
        if secret_ok && c.client_id == client_id {
            found = Some(c);
        }
    }
    found
}

/// An RFC 7636 code_verifier: 43-128 unreserved characters.
fn valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    use sha2::{Digest, Sha256};
    let computed = crypto::b64url(&Sha256::digest(verifier.as_bytes()));
    crypto::ct_eq(computed.as_bytes(), challenge.as_bytes())
}

/// The claims that depend on the granted scope.
fn profile_claims(account: &Account, scope: &[String], out: &mut Map<String, Value>) {
    if scope.iter().any(|s| s == "email") {
        out.insert("email".into(), json!(account.email));
        out.insert("email_verified".into(), json!(account.email_verified));
    }
    if scope.iter().any(|s| s == "profile") {
        out.insert("name".into(), json!(account.name));
    }
}

pub async fn token(State(st): State<IssuerState>, headers: HeaderMap, body: Bytes) -> Response {
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_type {
        return bad(
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    }
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    for (i, (k, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(o, _)| o == k) {
            return bad("invalid_request", &format!("the {k} parameter is repeated"));
        }
    }
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };

    let Ok(basic) = basic_credentials(&headers) else {
        return invalid_client("the Authorization header is not valid Basic credentials");
    };
    let (client_id, secret) = match (basic, get("client_secret")) {
        (Some(_), Some(_)) => {
            return bad(
                "invalid_request",
                "use one client authentication method, not both",
            )
        }
        (Some((id, secret)), None) => {
            if get("client_id").is_some_and(|b| b != id) {
                return bad(
                    "invalid_request",
                    "client_id differs from the authenticated client",
                );
            }
            (id, secret)
        }
        (None, Some(secret)) => match get("client_id") {
            Some(id) => (id.to_string(), secret.to_string()),
            None => return invalid_client("client_id is required with client_secret"),
        },
        (None, None) => return invalid_client("client authentication is required"),
    };
    let Some(client) = authenticate(&st, &client_id, &secret) else {
        tracing::info!(
            event = "twilio_client_auth_failed",
            "client authentication failed"
        );
        return invalid_client("unknown client or wrong client secret");
    };

    match get("grant_type") {
        None => return bad("invalid_request", "grant_type is required"),
        Some("authorization_code") => {}
        Some(_) => {
            return bad(
                "unsupported_grant_type",
                "only authorization_code is supported",
            )
        }
    }
    let (Some(code), Some(redirect_uri), Some(verifier)) =
        (get("code"), get("redirect_uri"), get("code_verifier"))
    else {
        return bad(
            "invalid_request",
            "code, redirect_uri and code_verifier are required",
        );
    };
    match redeem(&st, client, code, redirect_uri, verifier).await {
        Ok(r) => r,
        Err(e) => server_error(e),
    }
}

async fn redeem(
    st: &IssuerState,
    client: &ClientRegistration,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
) -> Result<Response, DomainError> {
    const INVALID: &str = "the code is invalid, expired, already used or not for this request";
    // Single use: whatever follows, this code is gone.
    let Some(json) = st.kv.take(&code_key(code)).await? else {
        if let Some(token_hash) = st.kv.take(&used_code_key(code)).await? {
            st.kv.delete(&format!("twi:t:{token_hash}")).await?;
            tracing::warn!(event = "twilio_code_reused", client_id = %client.client_id, "authorization code used twice; its access token is revoked");
        }
        return Ok(bad("invalid_grant", INVALID));
    };
    let grant: CodeGrant =
        serde_json::from_str(&json).map_err(|e| DomainError::Internal(e.to_string()))?;
    let now = st.clock.now();
    if grant.client_id != client.client_id
        || now > grant.issued_at + CODE_TTL
        || grant.redirect_uri != redirect_uri
        || !valid_verifier(verifier)
        || !pkce_matches(verifier, &grant.code_challenge)
    {
        return Ok(bad("invalid_grant", INVALID));
    }
    let Some(account) = accounts::by_sub(st.store.as_ref(), &grant.sub).await? else {
        return Ok(bad("invalid_grant", INVALID));
    };

    let access_token = crypto::random_token("")?;
    let access = AccessGrant {
        sub: account.sub.clone(),
        client_id: client.client_id.clone(),
        scope: grant.scope.clone(),
        expires_at: now + ACCESS_TOKEN_TTL,
    };
    let ttl = Duration::from_secs(ACCESS_TOKEN_TTL as u64);
    let access_json =
        serde_json::to_string(&access).map_err(|e| DomainError::Internal(e.to_string()))?;
    st.kv
        .set(&token_key(&access_token), &access_json, ttl)
        .await?;
    st.kv
        .set(
            &used_code_key(code),
            &crypto::sha256_hex(access_token.as_bytes()),
            ttl,
        )
        .await?;

    let mut claims = Map::new();
    claims.insert("iss".into(), json!(st.public_url));
    claims.insert("sub".into(), json!(account.sub));
    claims.insert("aud".into(), json!(client.client_id));
    claims.insert("azp".into(), json!(client.client_id));
    claims.insert("iat".into(), json!(now));
    claims.insert("exp".into(), json!(now + ID_TOKEN_TTL));
    claims.insert("auth_time".into(), json!(grant.auth_time));
    claims.insert("amr".into(), json!(grant.amr));
    claims.insert("at_hash".into(), json!(at_hash(&access_token)));
    if let Some(n) = &grant.nonce {
        claims.insert("nonce".into(), json!(n));
    }
    profile_claims(&account, &grant.scope, &mut claims);
    let id_token = st.keys.signing_key().await?.sign(&Value::Object(claims));

    tracing::info!(event = "twilio_tokens_issued", client_id = %client.client_id, sub = %account.sub, "tokens issued");
    let body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": ACCESS_TOKEN_TTL,
        "id_token": id_token,
        "scope": grant.scope.join(" "),
    });
    let mut r = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    no_store(&mut r);
    Ok(r)
}

fn bearer_refused(error: Option<&str>) -> Response {
    let challenge = match error {
        Some(e) => format!("Bearer realm=\"twilio-issuer\", error=\"{e}\""),
        None => "Bearer realm=\"twilio-issuer\"".to_string(),
    };
    let mut r = (
        StatusCode::UNAUTHORIZED,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": error.unwrap_or("invalid_request"), "error_description": "a valid Bearer access token is required"}).to_string(),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&challenge) {
        r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    no_store(&mut r);
    r
}

/// OpenID Connect Core 5.3: the claims of the token's subject, as allowed
/// by its scope. The token travels in `Authorization: Bearer`.
pub async fn userinfo(State(st): State<IssuerState>, headers: HeaderMap) -> Response {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim().to_string())
        .filter(|t| !t.is_empty());
    let Some(token) = token else {
        return bearer_refused(None);
    };
    match lookup(&st, &token).await {
        Ok(Some(body)) => {
            let mut r = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response();
            no_store(&mut r);
            r
        }
        Ok(None) => bearer_refused(Some("invalid_token")),
        Err(e) => server_error(e),
    }
}

async fn lookup(st: &IssuerState, token: &str) -> Result<Option<Value>, DomainError> {
    let Some(json) = st.kv.get(&token_key(token)).await? else {
        return Ok(None);
    };
    let Ok(grant) = serde_json::from_str::<AccessGrant>(&json) else {
        return Ok(None);
    };
    if st.clock.now() >= grant.expires_at {
        return Ok(None);
    }
    let Some(account) = accounts::by_sub(st.store.as_ref(), &grant.sub).await? else {
        return Ok(None);
    };
    let mut out = Map::new();
    out.insert("sub".into(), json!(account.sub));
    profile_claims(&account, &grant.scope, &mut out);
    Ok(Some(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding_of_basic_credentials() {
        assert_eq!(form_decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(form_decode("%3A%25").as_deref(), Some(":%"));
        assert_eq!(form_decode("%zz"), None);
        assert_eq!(form_decode("%4"), None);
    }

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        assert!(pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(!pkce_matches(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        ));
        assert!(valid_verifier(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!valid_verifier("short"));
    }
}
