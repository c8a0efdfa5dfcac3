//! The simulated Twilio issuer, over real HTTP on its own listener, driven as
//! a browser and a relying party would drive it. id_tokens are verified
//! against `/oauth2/jwks` with the `p256` crate, independently of the
//! issuer's own signing code.

use crate::support::*;
use iam_gateway::clock::Clock;
use iam_gateway::crypto;
use iam_gateway::totp;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_iam-gateway");

struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce() -> Pkce {
    let verifier = crypto::random_token("").unwrap();
    let challenge = crypto::b64url(&Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// An authorization request path: code flow, PKCE S256, all scopes, with
/// `extra` parameters added or (when the value is empty) removed.
fn authorize_path(challenge: &str, state: &str, nonce: &str, extra: &[(&str, &str)]) -> String {
    let mut params: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", ISSUER_CLIENT_ID),
        ("redirect_uri", ISSUER_REDIRECT_URI),
        ("scope", "openid email profile"),
        ("state", state),
        ("nonce", nonce),
        ("code_challenge", challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        params.retain(|(name, _)| name != k);
        if !v.is_empty() {
            params.push((k, v));
        }
    }
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    format!("/oauth2/authorize?{}", s.finish())
}

/// The query of an authorization response sent to the registered redirect URI.
fn redirect_params(page: &Page) -> HashMap<String, String> {
    assert_eq!(page.status, 302, "an authorization response: {}", page.body);
    let location = page.header("location").expect("a Location");
    assert!(
        location.starts_with(&format!("{ISSUER_REDIRECT_URI}?")),
        "goes to the registered redirect URI: {location}"
    );
    url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

fn query_of(path_and_query: &str) -> HashMap<String, String> {
    url::Url::parse(&format!("http://x.test{path_and_query}"))
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

/// The text of the `<code id="...">` element on a page, HTML entities for
/// `&` decoded.
fn code_element(body: &str, id: &str) -> String {
    let marker = format!("<code id=\"{id}\"");
    let at = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {id}: {body}"));
    let start = at + body[at..].find('>').unwrap() + 1;
    let end = body[start..].find("</code>").unwrap();
    body[start..start + end]
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// Starts at `path` (an authorization request) without a session, signs in
/// on the issuer's own page, and returns the page the sign-in leads to
/// (a 303 back to the authorization request, or to the TOTP step).
async fn sign_in_from(
    br: &mut Browser,
    srv: &IssuerServer,
    path: &str,
    email: &str,
    password: &str,
) -> Page {
    let first = br.get(&srv.url(path)).await;
    assert_eq!(first.status, 303, "to the sign-in page: {}", first.body);
    let login_path = first.header("location").unwrap();
    assert!(login_path.starts_with("/login?return_to="), "{login_path}");
    let return_to = query_of(&login_path)["return_to"].clone();
    assert_eq!(return_to, path, "back to the same authorization request");
    let page = br.get(&srv.url(&login_path)).await;
    assert_eq!(page.status, 200);
    let csrf = page.csrf();
    br.post_form(
        &srv.url("/login"),
        &[
            ("email", email),
            ("password", password),
            ("csrf_token", &csrf),
            ("return_to", &return_to),
        ],
    )
    .await
}

/// The whole front channel without 2FA: authorization request, sign-in,
/// back to the request, code. Returns the authorization response's query.
async fn code_via_sign_in(
    br: &mut Browser,
    srv: &IssuerServer,
    path: &str,
    email: &str,
) -> HashMap<String, String> {
    let done = sign_in_from(br, srv, path, email, PASSWORD).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.header("location").as_deref(), Some(path));
    redirect_params(&br.get(&srv.url(path)).await)
}

enum ClientAuth<'a> {
    Basic(&'a str, &'a str),
    Post(&'a str, &'a str),
}

struct TokenReply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    json: Value,
}

async fn exchange(
    srv: &IssuerServer,
    code: &str,
    verifier: &str,
    redirect_uri: &str,
    auth: ClientAuth<'_>,
) -> TokenReply {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    let mut req = client().post(srv.url("/oauth2/token"));
    match auth {
        ClientAuth::Basic(id, secret) => {
            let enc = |s: &str| urlenc(s);
            let creds = crypto::b64(format!("{}:{}", enc(id), enc(secret)).as_bytes());
            req = req.header("authorization", format!("Basic {creds}"));
        }
        ClientAuth::Post(id, secret) => {
            form.push(("client_id", id));
            form.push(("client_secret", secret));
        }
    }
    let resp = req.form(&form).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let json = resp.json().await.unwrap();
    TokenReply {
        status,
        headers,
        json,
    }
}

fn b64json(part: &str) -> Value {
    serde_json::from_slice(&crypto::b64url_decode(part).unwrap()).unwrap()
}

/// Verifies an id_token's ES256 signature with the key its `kid` names in
/// the issuer's JWKS; returns (header, claims).
async fn verify_id_token(srv: &IssuerServer, jwt: &str) -> (Value, Value) {
    let jwks: Value = client()
        .get(srv.url("/oauth2/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = b64json(parts[0]);
    assert_eq!(header["alg"], "ES256");
    let kid = header["kid"].as_str().unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("kid {kid} not in the JWKS: {jwks}"));
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    assert!(jwk.get("d").is_none(), "no private parameters published");
    let x = crypto::b64url_decode(jwk["x"].as_str().unwrap()).unwrap();
    let y = crypto::b64url_decode(jwk["y"].as_str().unwrap()).unwrap();
    assert_eq!((x.len(), y.len()), (32, 32));
    let sec1: Vec<u8> = [&[4u8][..], &x, &y].concat();
    let key = VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    let sig = Signature::from_slice(&crypto::b64url_decode(parts[2]).unwrap()).unwrap();
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("the id_token signature verifies with the published key");
    (header, b64json(parts[1]))
}

async fn userinfo(srv: &IssuerServer, token: &str, post: bool) -> (u16, Value) {
    let req = if post {
        client().post(srv.url("/oauth2/userinfo"))
    } else {
        client().get(srv.url("/oauth2/userinfo"))
    };
    let resp = req.bearer_auth(token).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn discovery_advertises_the_code_flow_with_pkce_and_rfc9207() {
    let srv = IssuerServer::start(sqlite()).await;
    let resp = client()
        .get(srv.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let d: Value = resp.json().await.unwrap();
    assert_eq!(d["issuer"], srv.base);
    for (k, path) in [
        ("authorization_endpoint", "/oauth2/authorize"),
        ("token_endpoint", "/oauth2/token"),
        ("userinfo_endpoint", "/oauth2/userinfo"),
        ("jwks_uri", "/oauth2/jwks"),
    ] {
        assert_eq!(d[k], srv.url(path), "{k}");
    }
    assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        d["token_endpoint_auth_methods_supported"],
        serde_json::json!(["client_secret_basic", "client_secret_post"])
    );
    assert_eq!(
        d["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    for s in ["openid", "email", "profile"] {
        assert!(d["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&Value::from(s)));
    }
    for c in ["sub", "email", "email_verified", "name", "amr"] {
        assert!(d["claims_supported"]
            .as_array()
            .unwrap()
            .contains(&Value::from(c)));
    }
    let jwks: Value = client()
        .get(srv.url("/oauth2/jwks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert!(keys[0].get("d").is_none());
    srv.stop().await;
}

#[tokio::test]
async fn code_flow_with_pkce_through_the_sign_in_page_gives_a_verifiable_id_token() {
    for b in matrix() {
        let srv = IssuerServer::start(b).await;
        let sub = srv.add_account("Ann@Twilio.test", "Ann Example").await;
        let p = pkce();
        let path = authorize_path(&p.challenge, "st-123", "n-456", &[]);
        let mut br = Browser::new();

        let done = sign_in_from(&mut br, &srv, &path, "ann@twilio.test", PASSWORD).await;
        assert_eq!(done.status, 303, "{b:?}: {}", done.body);
        let set = done
            .set_cookie("twilio_session")
            .expect("issuer session cookie");
        for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(set.contains(flag), "{set} lacks {flag}");
        }
        assert!(!set.contains("Secure"), "plain http: no Secure flag");
        let q = redirect_params(&br.get(&srv.url(&path)).await);
        assert_eq!(q["state"], "st-123");
        assert_eq!(q["iss"], srv.base, "RFC 9207 iss");
        let code = q["code"].clone();
        assert_eq!(
            crypto::b64url_decode(&code).unwrap().len(),
            32,
            "256-bit code"
        );

        let t = exchange(
            &srv,
            &code,
            &p.verifier,
            ISSUER_REDIRECT_URI,
            ClientAuth::Basic(ISSUER_CLIENT_ID, ISSUER_CLIENT_SECRET),
        )
        .await;
        assert_eq!(t.status, 200, "{b:?}: {}", t.json);
        assert_eq!(
            t.headers.get("cache-control").unwrap().to_str().unwrap(),
            "no-store"
        );
        assert_eq!(t.json["token_type"], "Bearer");
        assert!(t.json["expires_in"].as_i64().unwrap() > 0);
        let access = t.json["access_token"].as_str().unwrap().to_string();
        let (header, claims) = verify_id_token(&srv, t.json["id_token"].as_str().unwrap()).await;
        assert_eq!(header["typ"], "JWT");
        let now = srv.clock.now();
        assert_eq!(claims["iss"], srv.base);
        assert_eq!(claims["sub"], sub.as_str());
        assert_eq!(claims["aud"], ISSUER_CLIENT_ID);
        assert_eq!(claims["azp"], ISSUER_CLIENT_ID);
        assert_eq!(claims["nonce"], "n-456");
        assert_eq!(claims["email"], "Ann@Twilio.test");
        assert_eq!(claims["email_verified"], true);
        assert_eq!(claims["name"], "Ann Example");
        assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
        assert_eq!(claims["iat"].as_i64(), Some(now));
        assert!(claims["exp"].as_i64().unwrap() > now);
        assert!(claims["auth_time"].as_i64().unwrap() <= now);
        let at_hash = crypto::b64url(&Sha256::digest(access.as_bytes())[..16]);
        assert_eq!(claims["at_hash"], at_hash.as_str());

        for post in [false, true] {
            let (status, info) = userinfo(&srv, &access, post).await;
            assert_eq!(status, 200, "{b:?} post={post}");
            assert_eq!(info["sub"], sub.as_str());
            assert_eq!(info["email"], "Ann@Twilio.test");
            assert_eq!(info["email_verified"], true);
            assert_eq!(info["name"], "Ann Example");
        }
        let (status, _) = userinfo(&srv, "not-a-token", false).await;
        assert_eq!(status, 401);
        let bare = client()
            .get(srv.url("/oauth2/userinfo"))
            .send()
            .await
            .unwrap();
        assert_eq!(bare.status(), 401);
        assert!(bare.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));

        // The same code again: invalid_grant, and the token it gave is revoked.
        let again = exchange(
            &srv,
            &code,
            &p.verifier,
            ISSUER_REDIRECT_URI,
            ClientAuth::Basic(ISSUER_CLIENT_ID, ISSUER_CLIENT_SECRET),
        )
        .await;
        assert_eq!(again.status, 400, "{b:?}");
        assert_eq!(again.json["error"], "invalid_grant");
        assert_eq!(
            userinfo(&srv, &access, false).await.0,
            401,
            "{b:?}: access token revoked after code reuse"
        );

        // Signed in now: the next authorization request needs no page.
        let p2 = pkce();
        let path2 = authorize_path(&p2.challenge, "st-2", "n-2", &[("prompt", "none")]);
        let q2 = redirect_params(&br.get(&srv.url(&path2)).await);
        assert!(
            q2.contains_key("code"),
            "prompt=none with a session: {q2:?}"
        );
        assert_eq!(q2["state"], "st-2");
        srv.stop().await;
    }
}

#[tokio::test]
async fn token_endpoint_refuses_wrong_verifier_wrong_redirect_uri_and_old_codes() {
    for b in matrix() {
        let srv = IssuerServer::start(b).await;
        srv.add_account("bob@twilio.test", "Bob").await;
        let mut br = Browser::new();
        let p = pkce();
        let path = authorize_path(&p.challenge, "s", "n", &[]);
        let first = code_via_sign_in(&mut br, &srv, &path, "bob@twilio.test").await;
        let basic = || ClientAuth::Basic(ISSUER_CLIENT_ID, ISSUER_CLIENT_SECRET);

        let wrong = pkce();
        let t = exchange(
            &srv,
            &first["code"],
            &wrong.verifier,
            ISSUER_REDIRECT_URI,
            basic(),
        )
        .await;
        assert_eq!(
            (t.status, t.json["error"].as_str()),
            (400, Some("invalid_grant")),
            "{b:?}: wrong verifier"
        );
        // That attempt used the code up: the right verifier is too late.
        let t = exchange(
            &srv,
            &first["code"],
            &p.verifier,
            ISSUER_REDIRECT_URI,
            basic(),
        )
        .await;
        assert_eq!(t.json["error"], "invalid_grant", "{b:?}: single use");

        let q = redirect_params(&br.get(&srv.url(&path)).await);
        let t = exchange(
            &srv,
            &q["code"],
            &p.verifier,
            "http://127.0.0.1:9/other",
            basic(),
        )
        .await;
        assert_eq!(
            (t.status, t.json["error"].as_str()),
            (400, Some("invalid_grant")),
            "{b:?}: wrong redirect_uri"
        );

        let q = redirect_params(&br.get(&srv.url(&path)).await);
        srv.clock.advance(Duration::from_secs(61));
        let t = exchange(&srv, &q["code"], &p.verifier, ISSUER_REDIRECT_URI, basic()).await;
        assert_eq!(
            (t.status, t.json["error"].as_str()),
            (400, Some("invalid_grant")),
            "{b:?}: code used after 61 s"
        );

        // Within the 60 seconds it works (the clock decides, not the store).
        let q = redirect_params(&br.get(&srv.url(&path)).await);
        srv.clock.advance(Duration::from_secs(59));
        let t = exchange(&srv, &q["code"], &p.verifier, ISSUER_REDIRECT_URI, basic()).await;
        assert_eq!(t.status, 200, "{b:?}: {}", t.json);

        let t = exchange(
            &srv,
            "made-up-code",
            &p.verifier,
            ISSUER_REDIRECT_URI,
            basic(),
        )
        .await;
        assert_eq!(t.json["error"], "invalid_grant");
        srv.stop().await;
    }
}

#[tokio::test]
async fn both_client_auth_methods_work_and_a_wrong_secret_is_invalid_client() {
    let srv = IssuerServer::start(sqlite()).await;
    srv.add_account("cy@twilio.test", "Cy").await;
    let mut br = Browser::new();
    let p = pkce();
    let path = authorize_path(&p.challenge, "s", "n", &[]);
    let mut codes =
        vec![code_via_sign_in(&mut br, &srv, &path, "cy@twilio.test").await["code"].clone()];
    for _ in 0..4 {
        codes.push(redirect_params(&br.get(&srv.url(&path)).await)["code"].clone());
    }

    let t = exchange(
        &srv,
        &codes[0],
        &p.verifier,
        ISSUER_REDIRECT_URI,
        ClientAuth::Post(ISSUER_CLIENT_ID, ISSUER_CLIENT_SECRET),
    )
    .await;
    assert_eq!(t.status, 200, "client_secret_post: {}", t.json);
    let t = exchange(
        &srv,
        &codes[1],
        &p.verifier,
        ISSUER_REDIRECT_URI,
        ClientAuth::Basic(ISSUER_CLIENT_ID, ISSUER_CLIENT_SECRET),
    )
    .await;
    assert_eq!(t.status, 200, "client_secret_basic: {}", t.json);

    for auth in [
        ClientAuth::Basic(ISSUER_CLIENT_ID, "wrong-secret"),
        ClientAuth::Post(ISSUER_CLIENT_ID, "wrong-secret"),
        ClientAuth::Post("someone-else", ISSUER_CLIENT_SECRET),
    ] {
        let t = exchange(&srv, &codes[2], &p.verifier, ISSUER_REDIRECT_URI, auth).await;
        assert_eq!(t.status, 401);
        assert_eq!(t.json["error"], "invalid_client");
        assert!(t.headers.contains_key("www-authenticate"));
    }
    // A failed client authentication does not burn the code.
    let t = exchange(
        &srv,
        &codes[2],
        &p.verifier,
        ISSUER_REDIRECT_URI,
        ClientAuth::Basic(ISSUER_CLIENT_ID, ISSUER_CLIENT_SECRET),
    )
    .await;
    assert_eq!(t.status, 200, "{}", t.json);

    // No client authentication at all.
    let resp = client()
        .post(srv.url("/oauth2/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", codes[3].as_str()),
            ("redirect_uri", ISSUER_REDIRECT_URI),
            ("code_verifier", p.verifier.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    // Both methods at once.
    let resp = client()
        .post(srv.url("/oauth2/token"))
        .basic_auth(ISSUER_CLIENT_ID, Some(ISSUER_CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", codes[3].as_str()),
            ("redirect_uri", ISSUER_REDIRECT_URI),
            ("code_verifier", p.verifier.as_str()),
            ("client_id", ISSUER_CLIENT_ID),
            ("client_secret", ISSUER_CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    // Other grant types, and a missing verifier.
    let resp = client()
        .post(srv.url("/oauth2/token"))
        .basic_auth(ISSUER_CLIENT_ID, Some(ISSUER_CLIENT_SECRET))
        .form(&[
            ("grant_type", "password"),
            ("username", "cy@twilio.test"),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "unsupported_grant_type"
    );
    let resp = client()
        .post(srv.url("/oauth2/token"))
        .basic_auth(ISSUER_CLIENT_ID, Some(ISSUER_CLIENT_SECRET))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", codes[3].as_str()),
            ("redirect_uri", ISSUER_REDIRECT_URI),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"],
        "invalid_request"
    );
    srv.stop().await;
}

#[tokio::test]
async fn authorization_errors_redirect_only_to_registered_uris() {
    let srv = IssuerServer::start(sqlite()).await;
    let p = pkce();
    let mut br = Browser::new();

    // prompt=none without an issuer session.
    let q = redirect_params(
        &br.get(&srv.url(&authorize_path(
            &p.challenge,
            "st-9",
            "n",
            &[("prompt", "none")],
        )))
        .await,
    );
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["state"], "st-9");
    assert_eq!(q["iss"], srv.base);
    assert!(!q.contains_key("code"));

    // An unregistered redirect_uri or client: an error page, never a redirect.
    for extra in [
        ("redirect_uri", "https://evil.test/cb"),
        ("redirect_uri", "http://127.0.0.1:9/auth/twilio/callback/"),
        ("redirect_uri", ""),
        ("client_id", "unknown-client"),
    ] {
        let page = br
            .get(&srv.url(&authorize_path(&p.challenge, "s", "n", &[extra])))
            .await;
        assert_eq!(page.status, 400, "{extra:?}");
        assert!(page.header("location").is_none(), "{extra:?}: no redirect");
        assert!(page
            .header("content-type")
            .unwrap()
            .starts_with("text/html"));
        assert!(!page.body.contains("evil.test"));
    }

    // Trusted redirect URI, bad request: the error goes back to the client.
    for (extra, error) in [
        (
            vec![("code_challenge", ""), ("code_challenge_method", "")],
            "invalid_request",
        ),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge_method", "")], "invalid_request"),
        (vec![("code_challenge", "too-short")], "invalid_request"),
        (vec![("scope", "email profile")], "invalid_scope"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("prompt", "none login")], "invalid_request"),
    ] {
        let q = redirect_params(
            &br.get(&srv.url(&authorize_path(&p.challenge, "st-e", "n", &extra)))
                .await,
        );
        assert_eq!(q["error"], error, "{extra:?}");
        assert_eq!(q["state"], "st-e");
        assert_eq!(q["iss"], srv.base);
    }
    // A repeated parameter.
    let dup = format!(
        "{}&scope=openid",
        authorize_path(&p.challenge, "st-d", "n", &[])
    );
    assert_eq!(
        redirect_params(&br.get(&srv.url(&dup)).await)["error"],
        "invalid_request"
    );
    srv.stop().await;
}

#[tokio::test]
async fn sign_in_page_needs_csrf_and_answers_unknown_email_like_wrong_password() {
    let srv = IssuerServer::start(sqlite()).await;
    srv.add_account("dee@twilio.test", "Dee").await;
    let mut br = Browser::new();
    let page = br.get(&srv.url("/login")).await;
    let csrf = page.csrf();
    let no_csrf = br
        .post_form(
            &srv.url("/login"),
            &[("email", "dee@twilio.test"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(no_csrf.status, 403);
    assert!(no_csrf.set_cookie("twilio_session").is_none());
    let cross = br
        .send(
            br.client
                .post(srv.url("/login"))
                .header("origin", "http://evil.test")
                .form(&[
                    ("email", "dee@twilio.test"),
                    ("password", PASSWORD),
                    ("csrf_token", csrf.as_str()),
                ]),
        )
        .await;
    assert_eq!(cross.status, 403, "foreign Origin");
    // Chromium's `Origin: null` (the pages' no-referrer policy): the token
    // decides, as it does without the header.
    let client = br.client.clone();
    let opaque = |token: &str| {
        client
            .post(srv.url("/login"))
            .header("origin", "null")
            .form(&[
                ("email", "dee@twilio.test"),
                ("password", "not the password"),
                ("csrf_token", token),
            ])
    };
    let forged = br.send(opaque("forged")).await;
    assert_eq!(forged.status, 403, "Origin: null with a forged token");
    let opaque_ok = br.send(opaque(&csrf)).await;
    assert_eq!(
        opaque_ok.status, 401,
        "Origin: null with the page's token reaches the password check"
    );

    let wrong = br
        .post_form(
            &srv.url("/login"),
            &[
                ("email", "dee@twilio.test"),
                ("password", "not the password"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    let unknown = br
        .post_form(
            &srv.url("/login"),
            &[
                ("email", "nobody@twilio.test"),
                ("password", "not the password"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(unknown.status, 401);
    assert!(wrong.body.contains("Incorrect email or password."));
    assert_eq!(
        wrong.body.replace("dee@twilio.test", "X"),
        unknown.body.replace("nobody@twilio.test", "X"),
        "same answer"
    );
    // An off-site return_to is replaced.
    let ok = br
        .post_form(
            &srv.url("/login"),
            &[
                ("email", "dee@twilio.test"),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
                ("return_to", "//evil.test/x"),
            ],
        )
        .await;
    assert_eq!(ok.status, 303);
    assert_eq!(ok.header("location").as_deref(), Some("/console"));
    srv.stop().await;
}

/// Enrols TOTP through /account for a signed-in browser; returns the secret.
async fn enrol_totp(br: &mut Browser, srv: &IssuerServer) -> String {
    let setup = br.get(&srv.url("/account/totp")).await;
    assert_eq!(setup.status, 200, "{}", setup.body);
    let secret = code_element(&setup.body, "totp-secret");
    let uri = code_element(&setup.body, "totp-uri");
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")));
    let code = totp_code(&secret, srv.clock.now());
    let csrf = setup.csrf();
    let wrong = br
        .post_form(
            &srv.url("/account/totp"),
            &[("code", "000000"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(wrong.status, 400, "a wrong code does not enable 2FA");
    let done = br
        .post_form(
            &srv.url("/account/totp"),
            &[("code", &code), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.header("location").as_deref(),
        Some("/account?done=totp_on")
    );
    secret
}

fn totp_code(secret: &str, now: i64) -> String {
    totp::code_at_step(&totp::base32_decode(secret).unwrap(), totp::step_of(now))
}

async fn logout(br: &mut Browser, srv: &IssuerServer) {
    let page = br.get(&srv.url("/console")).await;
    let out = br
        .post_form(&srv.url("/logout"), &[("csrf_token", &page.csrf())])
        .await;
    assert_eq!(out.status, 303);
    assert!(!br.cookies.contains_key("twilio_session"));
}

#[tokio::test]
async fn totp_sign_in_adds_otp_to_amr_and_a_replayed_code_is_refused() {
    for b in matrix() {
        let srv = IssuerServer::start(b).await;
        let sub = srv.add_account("eve@twilio.test", "Eve").await;
        let mut br = Browser::new();
        let p = pkce();
        let path = authorize_path(&p.challenge, "s", "n", &[]);
        code_via_sign_in(&mut br, &srv, &path, "eve@twilio.test").await;
        let secret = enrol_totp(&mut br, &srv).await;
        let account = br.get(&srv.url("/account")).await;
        assert!(account
            .body
            .contains("Two-factor authentication is <strong>on</strong>"));
        logout(&mut br, &srv).await;

        // The enrolment code's step is used: sign in with the next step's code.
        srv.clock.advance(Duration::from_secs(30));
        let code = totp_code(&secret, srv.clock.now());
        let step = sign_in_from(&mut br, &srv, &path, "eve@twilio.test", PASSWORD).await;
        assert_eq!(step.status, 303);
        assert!(
            step.set_cookie("twilio_session").is_none(),
            "no session before the code"
        );
        let totp_path = step.header("location").unwrap();
        assert!(totp_path.starts_with("/login/totp?"), "{totp_path}");
        let form = br.get(&srv.url(&totp_path)).await;
        assert_eq!(form.status, 200);
        let return_to = query_of(&totp_path)["return_to"].clone();
        let done = br
            .post_form(
                &srv.url("/login/totp"),
                &[
                    ("code", &code),
                    ("csrf_token", &form.csrf()),
                    ("return_to", &return_to),
                ],
            )
            .await;
        assert_eq!(done.status, 303, "{b:?}: {}", done.body);
        assert_eq!(done.header("location").as_deref(), Some(path.as_str()));
        let q = redirect_params(&br.get(&srv.url(&path)).await);
        let t = exchange(
            &srv,
            &q["code"],
            &p.verifier,
            ISSUER_REDIRECT_URI,
            ClientAuth::Basic(ISSUER_CLIENT_ID, ISSUER_CLIENT_SECRET),
        )
        .await;
        assert_eq!(t.status, 200);
        let (_, claims) = verify_id_token(&srv, t.json["id_token"].as_str().unwrap()).await;
        assert_eq!(claims["amr"], serde_json::json!(["pwd", "otp"]), "{b:?}");
        assert_eq!(claims["sub"], sub.as_str());

        // Same code again, in the same 30 seconds: refused.
        logout(&mut br, &srv).await;
        let step = sign_in_from(&mut br, &srv, &path, "eve@twilio.test", PASSWORD).await;
        let totp_path = step.header("location").unwrap();
        let form = br.get(&srv.url(&totp_path)).await;
        let replay = br
            .post_form(
                &srv.url("/login/totp"),
                &[
                    ("code", &code),
                    ("csrf_token", &form.csrf()),
                    ("return_to", &return_to),
                ],
            )
            .await;
        assert_eq!(replay.status, 401, "{b:?}: replayed TOTP code");
        assert!(replay.set_cookie("twilio_session").is_none());
        // The next step's code works.
        srv.clock.advance(Duration::from_secs(30));
        let fresh = totp_code(&secret, srv.clock.now());
        let ok = br
            .post_form(
                &srv.url("/login/totp"),
                &[
                    ("code", &fresh),
                    ("csrf_token", &form.csrf()),
                    ("return_to", &return_to),
                ],
            )
            .await;
        assert_eq!(ok.status, 303, "{b:?}: {}", ok.body);
        assert!(ok.set_cookie("twilio_session").is_some());

        // Turning 2FA off needs a current, unused code.
        let account = br.get(&srv.url("/account")).await;
        let csrf = account.csrf();
        let reused = br
            .post_form(
                &srv.url("/account/totp/disable"),
                &[("code", &fresh), ("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(reused.status, 401, "{b:?}");
        srv.clock.advance(Duration::from_secs(30));
        let off = br
            .post_form(
                &srv.url("/account/totp/disable"),
                &[
                    ("code", &totp_code(&secret, srv.clock.now())),
                    ("csrf_token", &csrf),
                ],
            )
            .await;
        assert_eq!(off.status, 303);
        assert!(br
            .get(&srv.url("/account"))
            .await
            .body
            .contains("Two-factor authentication is <strong>off</strong>"));
        srv.stop().await;
    }
}

#[tokio::test]
async fn account_changes_show_in_the_next_id_token() {
    for b in matrix() {
        let srv = IssuerServer::start(b).await;
        let sub = srv.add_account("fay@twilio.test", "Fay").await;
        srv.add_account("taken@twilio.test", "Other").await;
        let mut br = Browser::new();
        let p = pkce();
        let path = authorize_path(&p.challenge, "s", "n", &[]);
        code_via_sign_in(&mut br, &srv, &path, "fay@twilio.test").await;

        let page = br.get(&srv.url("/account")).await;
        assert_eq!(page.status, 200);
        let csrf = page.csrf();
        let renamed = br
            .post_form(
                &srv.url("/account/profile"),
                &[("name", "Fay Renamed"), ("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(renamed.status, 303, "{}", renamed.body);
        let no_csrf = br
            .post_form(&srv.url("/account/profile"), &[("name", "Mallory")])
            .await;
        assert_eq!(no_csrf.status, 403);
        let empty = br
            .post_form(
                &srv.url("/account/profile"),
                &[("name", "  "), ("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(empty.status, 400);

        // Email: the current password is required, and emails are unique.
        let no_pw = br
            .post_form(
                &srv.url("/account/email"),
                &[
                    ("email", "fay.new@twilio.test"),
                    ("current_password", "wrong password!"),
                    ("csrf_token", &csrf),
                ],
            )
            .await;
        assert_eq!(no_pw.status, 401);
        let taken = br
            .post_form(
                &srv.url("/account/email"),
                &[
                    ("email", "TAKEN@twilio.test"),
                    ("current_password", PASSWORD),
                    ("csrf_token", &csrf),
                ],
            )
            .await;
        assert_eq!(taken.status, 409, "{}", taken.body);
        let moved = br
            .post_form(
                &srv.url("/account/email"),
                &[
                    ("email", "fay.new@twilio.test"),
                    ("current_password", PASSWORD),
                    ("csrf_token", &csrf),
                ],
            )
            .await;
        assert_eq!(moved.status, 303);

        let q = redirect_params(&br.get(&srv.url(&path)).await);
        let t = exchange(
            &srv,
            &q["code"],
            &p.verifier,
            ISSUER_REDIRECT_URI,
            ClientAuth::Post(ISSUER_CLIENT_ID, ISSUER_CLIENT_SECRET),
        )
        .await;
        let (_, claims) = verify_id_token(&srv, t.json["id_token"].as_str().unwrap()).await;
        assert_eq!(claims["sub"], sub.as_str(), "{b:?}: same subject");
        assert_eq!(claims["name"], "Fay Renamed", "{b:?}");
        assert_eq!(claims["email"], "fay.new@twilio.test");
        assert_eq!(
            claims["email_verified"], false,
            "a new address is not verified"
        );

        // Password: current one required, policy applied, then it works.
        let weak = br
            .post_form(
                &srv.url("/account/password"),
                &[
                    ("current_password", PASSWORD),
                    ("new_password", "short"),
                    ("csrf_token", &csrf),
                ],
            )
            .await;
        assert_eq!(weak.status, 400);
        let bad_current = br
            .post_form(
                &srv.url("/account/password"),
                &[
                    ("current_password", "nope nope nope"),
                    ("new_password", "a brand new passphrase"),
                    ("csrf_token", &csrf),
                ],
            )
            .await;
        assert_eq!(bad_current.status, 401);
        let changed = br
            .post_form(
                &srv.url("/account/password"),
                &[
                    ("current_password", PASSWORD),
                    ("new_password", "a brand new passphrase"),
                    ("csrf_token", &csrf),
                ],
            )
            .await;
        assert_eq!(changed.status, 303);
        let mut other = Browser::new();
        let old = sign_in_from(&mut other, &srv, &path, "fay.new@twilio.test", PASSWORD).await;
        assert_eq!(old.status, 401, "old password refused");
        let page = other.get(&srv.url("/login")).await;
        let new = other
            .post_form(
                &srv.url("/login"),
                &[
                    ("email", "fay.new@twilio.test"),
                    ("password", "a brand new passphrase"),
                    ("csrf_token", &page.csrf()),
                ],
            )
            .await;
        assert_eq!(new.status, 303);
        srv.stop().await;
    }
}

#[tokio::test]
async fn key_rotation_publishes_the_new_key_signs_with_it_and_retires_the_old() {
    for b in matrix() {
        let srv = IssuerServer::start(b).await;
        srv.add_account("gus@twilio.test", "Gus").await;
        let mut br = Browser::new();
        let p = pkce();
        let path = authorize_path(&p.challenge, "s", "n", &[]);
        let q = code_via_sign_in(&mut br, &srv, &path, "gus@twilio.test").await;
        let basic = || ClientAuth::Basic(ISSUER_CLIENT_ID, ISSUER_CLIENT_SECRET);
        let t = exchange(&srv, &q["code"], &p.verifier, ISSUER_REDIRECT_URI, basic()).await;
        let old_token = t.json["id_token"].as_str().unwrap().to_string();
        let (h, _) = verify_id_token(&srv, &old_token).await;
        let old_kid = h["kid"].as_str().unwrap().to_string();

        let new_kid = srv.state.rotate_key().await.unwrap();
        assert_ne!(new_kid, old_kid);
        let jwks: Value = client()
            .get(srv.url("/oauth2/jwks"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids.len(), 2, "{b:?}: both keys published");
        assert!(kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()));
        verify_id_token(&srv, &old_token).await; // still verifies

        let q = redirect_params(&br.get(&srv.url(&path)).await);
        let t = exchange(&srv, &q["code"], &p.verifier, ISSUER_REDIRECT_URI, basic()).await;
        let (h, _) = verify_id_token(&srv, t.json["id_token"].as_str().unwrap()).await;
        assert_eq!(h["kid"], new_kid.as_str(), "{b:?}: signed with the new key");

        srv.state.retire_key(&old_kid).await.unwrap();
        let jwks: Value = client()
            .get(srv.url("/oauth2/jwks"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap())
            .collect();
        assert_eq!(kids, vec![new_kid.as_str()], "{b:?}: old key retired");
        assert!(
            srv.state.retire_key(&new_kid).await.is_err(),
            "the last key stays"
        );
        assert!(srv.state.retire_key("no-such-kid").await.is_err());
        srv.stop().await;
    }
}

#[tokio::test]
async fn console_lists_segment_with_the_handoff_link() {
    let srv = IssuerServer::start(sqlite()).await;
    srv.add_account("hal@twilio.test", "Hal").await;
    let mut br = Browser::new();
    let anon = br.get(&srv.url("/console")).await;
    assert_eq!(anon.status, 303);
    assert_eq!(
        anon.header("location").as_deref(),
        Some("/login?return_to=%2Fconsole")
    );
    let page = br.get(&srv.url("/login?return_to=%2Fconsole")).await;
    let done = br
        .post_form(
            &srv.url("/login"),
            &[
                ("email", "hal@twilio.test"),
                ("password", PASSWORD),
                ("csrf_token", &page.csrf()),
                ("return_to", "/console"),
            ],
        )
        .await;
    assert_eq!(done.header("location").as_deref(), Some("/console"));
    let console = br.get(&srv.url("/console")).await;
    assert_eq!(console.status, 200);
    assert!(console.body.contains("Product switcher"));
    assert!(console.body.contains("Welcome, Hal"));
    assert!(
        console.body.contains(&format!(
            "href=\"{ISSUER_HANDOFF_URL}\" data-product=\"Segment\""
        )),
        "{}",
        console.body
    );
    let css = client()
        .get(srv.url("/static/twilio.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    srv.stop().await;
}

fn run_cli(
    dir: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    stdin: Option<&str>,
) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("IAMGW_")) {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn is_sub(s: &str) -> bool {
    s.len() == 34 && s.starts_with("US") && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn add_account_cli_prints_the_sub_and_the_account_signs_in() {
    let dir = temp_dir();
    let db = format!("sqlite://{}", dir.join("gw.db").display());
    let env = [("IAMGW_DATABASE_URL", db.as_str())];
    let base = [
        "twilio-issuer",
        "add-account",
        "--email",
        "ivy@twilio.test",
        "--name",
        "Ivy Example",
    ];

    let with_pw: Vec<&str> = base.iter().copied().chain(["--password-stdin"]).collect();
    let out = run_cli(&dir, &with_pw, &env, Some(&format!("{PASSWORD}\n")));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let sub = stdout.trim().to_string();
    assert!(is_sub(&sub), "only the sub on stdout: {stdout:?}");
    assert_eq!(stdout, format!("{sub}\n"));

    let again = run_cli(
        &dir,
        &[
            "twilio-issuer",
            "add-account",
            "--email",
            "IVY@twilio.test",
            "--name",
            "Ivy",
        ],
        &env,
        None,
    );
    assert_eq!(again.status.code(), Some(1), "duplicate email");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already uses this email"));
    assert!(again.stdout.is_empty());
    let bad = run_cli(
        &dir,
        &[
            "twilio-issuer",
            "add-account",
            "--email",
            "not-an-email",
            "--name",
            "X",
        ],
        &env,
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
    let weak = run_cli(
        &dir,
        &[
            "twilio-issuer",
            "add-account",
            "--email",
            "w@twilio.test",
            "--name",
            "W",
            "--password-stdin",
        ],
        &env,
        Some("short\n"),
    );
    assert_eq!(weak.status.code(), Some(1));
    let usage = run_cli(
        &dir,
        &["twilio-issuer", "add-account", "--email", "x@twilio.test"],
        &env,
        None,
    );
    assert_eq!(usage.status.code(), Some(2), "--name missing");

    // Without a password: a sub on stdout, a one-time link on stderr.
    let out = run_cli(
        &dir,
        &[
            "twilio-issuer",
            "add-account",
            "--email",
            "jo@twilio.test",
            "--name",
            "Jo",
        ],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    let jo_sub = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(is_sub(&jo_sub));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let token = stderr
        .split("/set-password/")
        .nth(1)
        .expect("a set-password link on stderr")
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();

    let srv = IssuerServer::start_on(sqlite(), dir.clone(), db.clone()).await;
    let mut br = Browser::new();
    let p = pkce();
    let path = authorize_path(&p.challenge, "s", "n", &[]);
    let q = code_via_sign_in(&mut br, &srv, &path, "ivy@twilio.test").await;
    let t = exchange(
        &srv,
        &q["code"],
        &p.verifier,
        ISSUER_REDIRECT_URI,
        ClientAuth::Basic(ISSUER_CLIENT_ID, ISSUER_CLIENT_SECRET),
    )
    .await;
    let (_, claims) = verify_id_token(&srv, t.json["id_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], sub.as_str());
    assert_eq!(claims["name"], "Ivy Example");

    let mut jo = Browser::new();
    let login = jo.get(&srv.url("/login")).await;
    let refused = jo
        .post_form(
            &srv.url("/login"),
            &[
                ("email", "jo@twilio.test"),
                ("password", ""),
                ("csrf_token", &login.csrf()),
            ],
        )
        .await;
    assert_eq!(refused.status, 401, "no password: no sign-in");
    let link = jo.get(&srv.url(&format!("/set-password/{token}"))).await;
    assert_eq!(link.status, 200);
    assert!(link.body.contains("jo@twilio.test"));
    let set = jo
        .post_form(
            &srv.url(&format!("/set-password/{token}")),
            &[("password", PASSWORD), ("csrf_token", &link.csrf())],
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    let reuse = jo.get(&srv.url(&format!("/set-password/{token}"))).await;
    assert_eq!(reuse.status, 400, "single use");
    let login = jo.get(&srv.url("/login")).await;
    let ok = jo
        .post_form(
            &srv.url("/login"),
            &[
                ("email", "jo@twilio.test"),
                ("password", PASSWORD),
                ("csrf_token", &login.csrf()),
            ],
        )
        .await;
    assert_eq!(ok.status, 303);
    srv.stop().await;
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Spawns the binary with only the given IAMGW_ variables.
fn spawn(dir: &std::path::Path, args: &[&str], env: &[(&str, String)]) -> std::process::Child {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("IAMGW_")) {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_until_up(url: &str) {
    for _ in 0..150 {
        if let Ok(r) = client().get(url).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} never came up");
}

fn terminate(child: &mut std::process::Child) {
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}

#[tokio::test]
async fn serve_runs_the_embedded_issuer_with_the_gateway_registered_and_twilio_issuer_runs_alone() {
    let dir = temp_dir();
    let (gw_port, tw_port) = (free_port(), free_port());
    let gw = format!("http://127.0.0.1:{gw_port}");
    let tw = format!("http://127.0.0.1:{tw_port}");
    let env = vec![
        ("IAMGW_LISTEN", format!("127.0.0.1:{gw_port}")),
        ("IAMGW_PUBLIC_URL", gw.clone()),
        (
            "IAMGW_TWILIO_ISSUER__LISTEN",
            format!("127.0.0.1:{tw_port}"),
        ),
        ("IAMGW_TWILIO_ISSUER__PUBLIC_URL", tw.clone()),
    ];
    let out = run_cli(
        &dir,
        &[
            "twilio-issuer",
            "add-account",
            "--email",
            "kim@twilio.test",
            "--name",
            "Kim",
            "--password-stdin",
        ],
        &[],
        Some(PASSWORD),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let mut child = spawn(&dir, &["serve"], &env);
    wait_until_up(&format!("{gw}/readyz")).await;
    wait_until_up(&format!("{tw}/healthz")).await;
    let d: Value = client()
        .get(format!("{tw}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(d["issuer"], tw.as_str());

    // The gateway is the registered client, with its callback as redirect URI
    // and, with no client_secret configured, the secret derived from the
    // deployment secret.
    let callback = format!("{gw}/auth/twilio/callback");
    let p = pkce();
    let mut path = authorize_path(&p.challenge, "s", "n", &[]);
    path = path.replace(&urlenc(ISSUER_REDIRECT_URI), &urlenc(&callback));
    let mut br = Browser::new();
    let first = br.get(&format!("{tw}{path}")).await;
    assert_eq!(first.status, 303, "registered: {}", first.body);
    let key = std::fs::read_to_string(dir.join("data/secret.key")).unwrap();
    let secret =
        iam_gateway::twilio_issuer::embedded_client_secret(&crypto::b64_decode(&key).unwrap());
    let form = [
        ("grant_type", "authorization_code"),
        ("code", "bogus"),
        ("redirect_uri", callback.as_str()),
        ("code_verifier", p.verifier.as_str()),
    ];
    let right = client()
        .post(format!("{tw}/oauth2/token"))
        .basic_auth("segment", Some(&secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(
        right.status(),
        400,
        "client authenticated; only the code is bad"
    );
    let wrong = client()
        .post(format!("{tw}/oauth2/token"))
        .basic_auth("segment", Some("guess"))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    // The account made by the CLI signs in; the console hands over to the gateway.
    let login = br.get(&format!("{tw}/login")).await;
    let done = br
        .post_form(
            &format!("{tw}/login"),
            &[
                ("email", "kim@twilio.test"),
                ("password", PASSWORD),
                ("csrf_token", &login.csrf()),
                ("return_to", "/console"),
            ],
        )
        .await;
    assert_eq!(done.status, 303);
    let console = br.get(&format!("{tw}/console")).await;
    assert!(
        console.body.contains(&format!(
            "href=\"{gw}/login/twilio?return_to=%2Fworkspaces\""
        )),
        "{}",
        console.body
    );
    terminate(&mut child);

    // `twilio-issuer` alone: the issuer, not the gateway.
    let mut child = spawn(&dir, &["twilio-issuer"], &env);
    wait_until_up(&format!("{tw}/.well-known/openid-configuration")).await;
    assert!(
        client().get(format!("{gw}/readyz")).send().await.is_err(),
        "no gateway"
    );
    terminate(&mut child);
}
