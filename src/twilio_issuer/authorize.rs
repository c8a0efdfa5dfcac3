//! `GET /oauth2/authorize`: the authorization code flow with PKCE S256
//! (RFC 6749 section 4.1, RFC 7636, OpenID Connect Core 3.1.2).
//!
//! A request naming an unknown client or a redirect URI that is not
//! registered exactly gets an error page (400) and is never redirected;
//! every other problem goes back to the client's redirect URI as an error.
//! Each authorization response carries `iss` (RFC 9207).

use super::views::{message, see_other, PageError};
use super::{accounts, enc, IssuerState};
use crate::crypto;
use crate::domain::DomainError;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How long a code may be exchanged after it is issued (checked with the
/// injected clock).
pub const CODE_TTL: i64 = 60;
/// Longest `nonce` accepted.
const MAX_NONCE: usize = 512;

/// What a code stands for; stored under the SHA-256 of the code.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CodeGrant {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub scope: Vec<String>,
    pub sub: String,
    pub auth_time: i64,
    pub amr: Vec<String>,
    pub issued_at: i64,
}

pub fn code_key(code: &str) -> String {
    format!("twi:c:{}", crypto::sha256_hex(code.as_bytes()))
}

/// The query, in order, with the names that appear more than once
/// (RFC 6749 3.1: parameters must not be repeated).
struct Params {
    pairs: Vec<(String, String)>,
    repeated: Vec<String>,
}

impl Params {
    fn parse(raw: &str) -> Params {
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.as_bytes())
            .into_owned()
            .collect();
        let mut repeated = Vec::new();
        for (i, (k, _)) in pairs.iter().enumerate() {
            if pairs[..i].iter().any(|(other, _)| other == k) && !repeated.contains(k) {
                repeated.push(k.clone());
            }
        }
        Params { pairs, repeated }
    }

    /// The value of a parameter given exactly once.
    fn one(&self, name: &str) -> Option<&str> {
        if self.repeated.iter().any(|r| r == name) {
            return None;
        }
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }
}

/// Where and how to answer once the redirect URI is trusted.
struct Reply<'a> {
    issuer: &'a str,
    redirect_uri: &'a str,
    state: Option<&'a str>,
}

impl Reply<'_> {
    fn redirect(&self, pairs: &[(&str, &str)]) -> Response {
        let mut url = match url::Url::parse(self.redirect_uri) {
            Ok(u) => u,
            Err(_) => {
                return message(
                    StatusCode::BAD_REQUEST,
                    "Invalid request",
                    "The application's redirect address is not a URL.",
                    None,
                )
            }
        };
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in pairs {
                q.append_pair(k, v);
            }
            if let Some(s) = self.state {
                q.append_pair("state", s);
            }
            q.append_pair("iss", self.issuer);
        }
        (
            StatusCode::FOUND,
            [
                (header::LOCATION, url.to_string()),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
        )
            .into_response()
    }

    fn error(&self, code: &str, description: &str) -> Response {
        self.redirect(&[("error", code), ("error_description", description)])
    }
}

fn refused_page(why: &str) -> Response {
    message(
        StatusCode::BAD_REQUEST,
        "This sign-in request cannot be used",
        &format!("The application that sent you here made an invalid request: {why}. Nothing was sent back to it."),
        None,
    )
}

/// A PKCE S256 challenge: base64url of a SHA-256, 43 characters.
fn valid_challenge(c: &str) -> bool {
    c.len() == 43 && crypto::b64url_decode(c).is_some_and(|b| b.len() == 32)
}

pub async fn authorize(
    State(st): State<IssuerState>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    match run(&st, &headers, raw.as_deref().unwrap_or("")).await {
        Ok(r) => r,
        Err(e) => PageError(e).into_response(),
    }
}

async fn run(st: &IssuerState, headers: &HeaderMap, raw: &str) -> Result<Response, DomainError> {
    let p = Params::parse(raw);
    let Some(client) = p.one("client_id").and_then(|id| st.client(id)) else {
        return Ok(refused_page("the client_id is missing or unknown"));
    };
    let Some(redirect_uri) = p
        .one("redirect_uri")
        .filter(|u| client.redirect_uris.iter().any(|r| r == u))
    else {
        return Ok(refused_page(
            "the redirect_uri is missing or not registered for this application",
        ));
    };
    let reply = Reply {
        issuer: &st.public_url,
        redirect_uri,
        state: p
            .pairs
            .iter()
            .find(|(k, _)| k == "state")
            .map(|(_, v)| v.as_str()),
    };
    if let Some(name) = p.repeated.first() {
        return Ok(reply.error(
            "invalid_request",
            &format!("the {name} parameter is repeated"),
        ));
    }
    if p.has("request") {
        return Ok(reply.error("request_not_supported", "request objects are not supported"));
    }
    if p.has("request_uri") {
        return Ok(reply.error("request_uri_not_supported", "request_uri is not supported"));
    }
    match p.one("response_type") {
        None => return Ok(reply.error("invalid_request", "response_type is required")),
        Some("code") => {}
        Some(_) => {
            return Ok(reply.error(
                "unsupported_response_type",
                "only response_type=code is supported",
            ))
        }
    }
    if p.one("response_mode").is_some_and(|m| m != "query") {
        return Ok(reply.error("invalid_request", "only response_mode=query is supported"));
    }
    let requested: Vec<&str> = p
        .one("scope")
        .unwrap_or("")
        .split_ascii_whitespace()
        .collect();
    if !requested.contains(&"openid") {
        return Ok(reply.error("invalid_scope", "the scope must include openid"));
    }
    let scope: Vec<String> = super::discovery::SCOPES
        .iter()
        .filter(|s| requested.contains(s))
        .map(|s| s.to_string())
        .collect();
    if p.one("code_challenge_method") != Some("S256") {
        return Ok(reply.error(
            "invalid_request",
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        ));
    }
    let Some(challenge) = p.one("code_challenge").filter(|c| valid_challenge(c)) else {
        return Ok(reply.error(
            "invalid_request",
            "code_challenge must be the base64url SHA-256 of the code_verifier",
        ));
    };
    let nonce = p.one("nonce").map(str::to_string);
    if nonce
        .as_deref()
        .is_some_and(|n| n.is_empty() || n.len() > MAX_NONCE || n.chars().any(char::is_control))
    {
        return Ok(reply.error(
            "invalid_request",
            "the nonce is empty, too long or malformed",
        ));
    }
    let prompts: Vec<&str> = p
        .one("prompt")
        .unwrap_or("")
        .split_ascii_whitespace()
        .collect();
    if prompts
        .iter()
        .any(|v| !matches!(*v, "none" | "login" | "consent" | "select_account"))
        || (prompts.contains(&"none") && prompts.len() > 1)
    {
        return Ok(reply.error("invalid_request", "unsupported prompt value"));
    }
    let max_age = match p.one("max_age").map(str::parse::<i64>) {
        None => None,
        Some(Ok(n)) if n >= 0 => Some(n),
        Some(_) => return Ok(reply.error("invalid_request", "max_age must be a number of seconds")),
    };

    let now = st.clock.now();
    let session = match st.session(headers).await? {
        Some(s) if accounts::by_sub(st.store.as_ref(), &s.sub).await?.is_some() => Some(s),
        _ => None,
    };
    let fresh_enough = |auth_time: i64| max_age.is_none_or(|m| now - auth_time <= m);
    let session = session.filter(|s| !prompts.contains(&"login") && fresh_enough(s.auth_time));
    let Some(session) = session else {
        if prompts.contains(&"none") {
            return Ok(reply.error("login_required", "the person is not signed in"));
        }
        return Ok(see_other(&format!(
            "/login?return_to={}",
            enc(&after_login(&p.pairs))
        )));
    };

    let code = crypto::random_token("")?;
    let grant = CodeGrant {
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_string(),
        code_challenge: challenge.to_string(),
        nonce,
        scope,
        sub: session.sub.clone(),
        auth_time: session.auth_time,
        amr: session.amr.clone(),
        issued_at: now,
    };
    let json = serde_json::to_string(&grant).map_err(|e| DomainError::Internal(e.to_string()))?;
    // The store's own expiry is a backstop; the clock check at the token
    // endpoint is what enforces the 60 seconds.
    st.kv
        .set(
            &code_key(&code),
            &json,
            Duration::from_secs(2 * CODE_TTL as u64),
        )
        .await?;
    tracing::info!(event = "twilio_code_issued", client_id = %grant.client_id, sub = %grant.sub, "authorization code issued");
    Ok(reply.redirect(&[("code", &code)]))
}

/// The same authorization request, to come back to after signing in; a
/// `prompt=login` is dropped so the fresh sign-in satisfies it.
fn after_login(pairs: &[(String, String)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if k == "prompt" {
            let rest: Vec<&str> = v
                .split_ascii_whitespace()
                .filter(|x| *x != "login")
                .collect();
            if !rest.is_empty() {
                s.append_pair(k, &rest.join(" "));
            }
        } else {
            s.append_pair(k, v);
        }
    }
    format!("/oauth2/authorize?{}", s.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_parameters_are_found() {
        let p = Params::parse("a=1&b=2&a=3&c=&b=4");
        assert_eq!(p.repeated, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(p.one("a"), None);
        assert_eq!(p.one("c"), Some(""));
    }

    #[test]
    fn after_login_drops_only_prompt_login() {
        let pairs = vec![
            ("client_id".to_string(), "x y".to_string()),
            ("prompt".to_string(), "login consent".to_string()),
        ];
        assert_eq!(
            after_login(&pairs),
            "/oauth2/authorize?client_id=x+y&prompt=consent"
        );
        let only = vec![("prompt".to_string(), "login".to_string())];
        assert_eq!(after_login(&only), "/oauth2/authorize?");
    }

    #[test]
    fn challenges_are_s256_sized() {
        let c = crypto::b64url(&[7u8; 32]);
        assert!(valid_challenge(&c));
        assert!(!valid_challenge(
            "plain-verifier-plain-verifier-plain-verifier"
        ));
        assert!(!valid_challenge(""));
    }
}
