//! The gateway as an OpenID Provider (SPEC section 13, SECURITY-CASES 38):
//! an app registered through the API signs a person in with the code flow
//! and PKCE, over real HTTP; the attacks an OP must refuse; back-channel
//! logout for every way a session ends, retried and durable.

use crate::support::*;
use iam_gateway::clock::Clock;
use iam_gateway::domain::roles::Policy;
use iam_gateway::service::tokens::Kind;
use serde_json::{json, Value};
use sha2::Digest;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const REDIRECT: &str = "http://127.0.0.1:9/app/callback";

pub struct Op {
    pub srv: TestServer,
    pub ws_id: String,
    pub api: String,
}

impl Op {
    /// A gateway whose apps may have back-channel URIs on this machine (the
    /// tests' receivers and Apache listen on 127.0.0.1).
    pub async fn start(backend: Backend) -> Op {
        Op::on(TestServer::start_with(private_networks(Options::new(backend))).await).await
    }

    /// Workspace `acme` with its owner, and an owner's API token, on `srv`.
    pub async fn on(srv: TestServer) -> Op {
        let (ws_id, _) = srv.bootstrap("acme", "owner@acme.test").await;
        let (_, api) = iam_gateway::service::tokens::mint(
            srv.store().as_ref(),
            srv.clock.now(),
            &ws_id,
            Kind::Api,
            "op tests",
            vec![Policy::workspace("workspace_owner")],
            None,
        )
        .await
        .unwrap();
        Op { srv, ws_id, api }
    }

    pub async fn api_post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = client()
            .post(self.srv.url(&format!("/api/v1/workspaces/acme{path}")))
            .bearer_auth(&self.api)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Registers a client; returns its JSON (with the secret, if any).
    pub async fn register(&self, extra: Value) -> Value {
        let mut body = json!({"name": "Grafana", "redirect_uris": [REDIRECT]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, client) = self.api_post("/oidc-clients", body).await;
        assert_eq!(status, 201, "{client}");
        client
    }

    pub async fn count(&self, table: &str) -> i64 {
        let pool = sqlx::AnyPool::connect(&self.srv.database_url)
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    }
}

pub fn private_networks(o: Options) -> Options {
    o.env("IAMGW_OIDC__BACKCHANNEL_PRIVATE_NETWORKS", "true")
}

/// A PKCE verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    let verifier = format!("v{}", uuid::Uuid::new_v4().simple()).repeat(2);
    let challenge = iam_gateway::crypto::b64url(&sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub fn authorize_path(client_id: &str, redirect: &str, challenge: &str, extra: &str) -> String {
    format!(
        "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope={}&state=st-1&nonce=n-1&code_challenge={challenge}&code_challenge_method=S256{extra}",
        urlenc(client_id),
        urlenc(redirect),
        urlenc("openid email profile offline_access"),
    )
}

/// The query parameters of a redirect's Location.
pub fn location_params(page: &Page) -> std::collections::HashMap<String, String> {
    let loc = page.header("location").expect("a redirect");
    url::Url::parse(&loc)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Asks for a code as a browser that signs in on the way; returns the final
/// redirect to the app.
pub async fn sign_in_for_code(srv: &TestServer, b: &mut Browser, email: &str, path: &str) -> Page {
    let first = b.get(&srv.url(path)).await;
    if first.status == 302 {
        return first;
    }
    assert_eq!(first.status, 303, "{}", first.body);
    let login = first.header("location").unwrap();
    assert!(login.starts_with("/login?return_to="), "{login}");
    let done = b.sign_in(srv, email, PASSWORD, path).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.header("location").as_deref(), Some(path));
    b.get(&srv.url(path)).await
}

pub async fn token_request(
    srv: &TestServer,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut r = client().post(srv.url("/oauth2/token")).form(form);
    if let Some((id, secret)) = basic {
        r = r.basic_auth(id, Some(secret));
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

/// `grant_type=refresh_token` for the client `who` (HTTP Basic).
pub async fn refresh(
    srv: &TestServer,
    who: (&str, &str),
    refresh_token: &str,
) -> (u16, Value, reqwest::header::HeaderMap) {
    token_request(
        srv,
        Some(who),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// Waits (real time, 5 s at most) until `n` back-channel logouts were
/// delivered, as `/metrics` counts them; whether they were.
async fn delivered(srv: &TestServer, n: usize) -> bool {
    let want = format!("iamgw_backchannel_logouts{{state=\"delivered\"}} {n}");
    for _ in 0..100 {
        if metrics(srv).await.contains(&want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Claims of a JWT signed by a key of the gateway's JWKS (panics if not).
pub async fn verified_claims(srv: &TestServer, jwt: &str) -> Value {
    use p256::ecdsa::signature::Verifier;
    let jwks: Value = client()
        .get(srv.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value =
        serde_json::from_slice(&iam_gateway::crypto::b64url_decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .expect("signed with a published key");
    let mut point = vec![4u8];
    point.extend(iam_gateway::crypto::b64url_decode(key["x"].as_str().unwrap()).unwrap());
    point.extend(iam_gateway::crypto::b64url_decode(key["y"].as_str().unwrap()).unwrap());
    let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(&point).unwrap();
    let sig =
        p256::ecdsa::Signature::from_slice(&iam_gateway::crypto::b64url_decode(parts[2]).unwrap())
            .unwrap();
    vk.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("signature verifies");
    serde_json::from_slice(&iam_gateway::crypto::b64url_decode(parts[1]).unwrap()).unwrap()
}

async fn userinfo(srv: &TestServer, access: &str) -> (u16, Value) {
    let r = client()
        .get(srv.url("/oauth2/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

/// Signs `email` in and exchanges the code: (browser, tokens).
async fn signed_in_app(op: &Op, app: &Value, email: &str) -> (Browser, Value) {
    let (verifier, challenge) = pkce();
    let id = app["client_id"].as_str().unwrap();
    let mut b = Browser::new();
    let back = sign_in_for_code(
        &op.srv,
        &mut b,
        email,
        &authorize_path(id, REDIRECT, &challenge, ""),
    )
    .await;
    assert_eq!(back.status, 302, "{}", back.body);
    let code = location_params(&back)["code"].clone();
    let secret = app["client_secret"].as_str().unwrap();
    let (status, tokens, _) = token_request(
        &op.srv,
        Some((id, secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    (b, tokens)
}

#[tokio::test]
async fn discovery_names_every_endpoint_and_capability() {
    let srv = TestServer::start(sqlite()).await;
    let d: Value = client()
        .get(srv.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let base = &srv.base;
    assert_eq!(d["issuer"], json!(base));
    for (k, path) in [
        ("authorization_endpoint", "/oauth2/authorize"),
        ("token_endpoint", "/oauth2/token"),
        ("userinfo_endpoint", "/oauth2/userinfo"),
        ("jwks_uri", "/.well-known/jwks.json"),
        ("end_session_endpoint", "/oauth2/logout"),
        ("revocation_endpoint", "/oauth2/revoke"),
    ] {
        assert_eq!(d[k], json!(format!("{base}{path}")), "{k}");
    }
    assert_eq!(d["response_types_supported"], json!(["code"]));
    assert_eq!(
        d["grant_types_supported"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(d["code_challenge_methods_supported"], json!(["S256"]));
    assert!(d["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap()
        .contains(&json!("ES256")));
    assert_eq!(
        d["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    for s in ["openid", "email", "profile", "offline_access"] {
        assert!(
            d["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&json!(s)),
            "{s}"
        );
    }
    assert_eq!(d["subject_types_supported"], json!(["public"]));
    assert_eq!(d["backchannel_logout_supported"], json!(true));
    assert_eq!(d["backchannel_logout_session_supported"], json!(true));
    assert_eq!(
        d["authorization_response_iss_parameter_supported"],
        json!(true)
    );
}

#[tokio::test]
async fn an_app_signs_a_member_in_reads_userinfo_and_rotates_refresh_tokens() {
    for backend in matrix() {
        let op = Op::start(backend).await;
        let mia = op
            .srv
            .add_member(&op.ws_id, "mia@acme.test", &["workspace_member"])
            .await;
        let app = op.register(json!({})).await;
        let id = app["client_id"].as_str().unwrap();
        let secret = app["client_secret"].as_str().unwrap();
        assert!(secret.starts_with("iamgw_cs_"));

        // The list never shows the secret; it is stored hashed.
        let list: Value = client_get(&op, "/oidc-clients").await;
        assert_eq!(list["items"][0]["client_id"], json!(id));
        assert!(list["items"][0].get("client_secret").is_none());
        assert!(!list.to_string().contains(secret));

        let (verifier, challenge) = pkce();
        let path = authorize_path(id, REDIRECT, &challenge, "");
        let mut b = Browser::new();
        let back = sign_in_for_code(&op.srv, &mut b, "mia@acme.test", &path).await;
        assert_eq!(back.status, 302);
        let p = location_params(&back);
        assert!(back.header("location").unwrap().starts_with(REDIRECT));
        assert_eq!(p["state"], "st-1");
        assert_eq!(p["iss"], op.srv.base);
        let code = &p["code"];

        // client_secret_post this time.
        let (status, tokens, headers) = token_request(
            &op.srv,
            None,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
                ("client_id", id),
                ("client_secret", secret),
            ],
        )
        .await;
        assert_eq!(status, 200, "{tokens}");
        assert_eq!(headers.get("cache-control").unwrap(), "no-store");
        assert_eq!(tokens["token_type"], "Bearer");
        assert!(tokens["scope"].as_str().unwrap().contains("offline_access"));
        let claims = verified_claims(&op.srv, tokens["id_token"].as_str().unwrap()).await;
        assert_eq!(claims["iss"], json!(op.srv.base));
        assert_eq!(claims["sub"], json!(mia));
        assert_eq!(claims["aud"], json!(id));
        assert_eq!(claims["nonce"], "n-1");
        assert_eq!(claims["email"], "mia@acme.test");
        assert_eq!(claims["workspace"], "acme");
        assert_eq!(claims["roles"], json!(["workspace_member"]));
        assert_eq!(claims["amr"], json!(["pwd"]));
        let sid = claims["sid"].as_str().unwrap().to_string();
        // The same sid as the forward-auth assertion of this session.
        let verify = b.verify(&op.srv, "workspace=acme").await;
        let assertion = verified_claims(&op.srv, &verify.header("x-auth-assertion").unwrap()).await;
        assert_eq!(assertion["sid"], json!(sid));

        let (s, info) = userinfo(&op.srv, tokens["access_token"].as_str().unwrap()).await;
        assert_eq!(s, 200);
        assert_eq!(info["sub"], json!(mia));
        assert_eq!(info["roles"], json!(["workspace_member"]));
        assert_eq!(info["workspace"], "acme");

        // Refresh rotates; the spent token is refused and takes its family.
        let r1 = tokens["refresh_token"].as_str().unwrap();
        let (s, t2, _) = refresh(&op.srv, (id, secret), r1).await;
        assert_eq!(s, 200, "{t2}");
        let r2 = t2["refresh_token"].as_str().unwrap();
        assert_ne!(r1, r2);
        let (s, e, _) = refresh(&op.srv, (id, secret), r1).await;
        assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
        let (s, _, _) = refresh(&op.srv, (id, secret), r2).await;
        assert_eq!(s, 400, "the whole family is revoked");
        assert_eq!(
            userinfo(&op.srv, t2["access_token"].as_str().unwrap())
                .await
                .0,
            401
        );
        op.srv.stop().await;
    }
}

async fn client_get(op: &Op, path: &str) -> Value {
    client()
        .get(op.srv.url(&format!("/api/v1/workspaces/acme{path}")))
        .bearer_auth(&op.api)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn clients_are_registered_by_owners_with_exact_safe_uris_and_deleted_with_their_tokens() {
    let op = Op::start(sqlite()).await;
    for (bad, field) in [
        (
            json!({"name": "x", "redirect_uris": ["http://app.example.com/cb"]}),
            "redirect_uris",
        ),
        (
            json!({"name": "x", "redirect_uris": ["https://app.example.com/cb#frag"]}),
            "redirect_uris",
        ),
        (json!({"name": "x", "redirect_uris": []}), "redirect_uris"),
        (
            json!({"name": "x", "redirect_uris": [REDIRECT], "required_role": "root"}),
            "required_role",
        ),
        (json!({"name": "", "redirect_uris": [REDIRECT]}), "name"),
        (
            json!({"name": "x", "redirect_uris": [REDIRECT], "backchannel_logout_uri": "ftp://x/"}),
            "backchannel_logout_uri",
        ),
    ] {
        let (s, body) = op.api_post("/oidc-clients", bad).await;
        assert_eq!(s, 400, "{body}");
        assert!(body.to_string().contains(field), "{field}: {body}");
    }
    assert_eq!(op.count("oidc_clients").await, 0);

    // A member (not owner) may not.
    let (ws_id, _) = (op.ws_id.clone(), ());
    let (_, member_token) = iam_gateway::service::tokens::mint(
        op.srv.store().as_ref(),
        op.srv.clock.now(),
        &ws_id,
        Kind::Api,
        "member",
        vec![Policy::workspace("workspace_member")],
        None,
    )
    .await
    .unwrap();
    let r = client()
        .post(op.srv.url("/api/v1/workspaces/acme/oidc-clients"))
        .bearer_auth(&member_token)
        .json(&json!({"name": "x", "redirect_uris": [REDIRECT]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(op.count("oidc_clients").await, 0);

    // A public client has no secret; both are audited.
    let public = op.register(json!({"public": true})).await;
    assert!(public.get("client_secret").is_none());
    let app = op.register(json!({})).await;
    let id = app["client_id"].as_str().unwrap();
    let (_, tokens) = signed_in_app(&op, &app, "owner@acme.test").await;
    let r = client()
        .delete(
            op.srv
                .url(&format!("/api/v1/workspaces/acme/oidc-clients/{id}")),
        )
        .bearer_auth(&op.api)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Everything it was issued went with it.
    for table in ["oidc_grants", "oidc_codes", "oidc_tokens"] {
        assert_eq!(op.count(table).await, 0, "{table}");
    }
    assert_eq!(
        userinfo(&op.srv, tokens["access_token"].as_str().unwrap())
            .await
            .0,
        401
    );
    let audit = client_get(&op, "/audit-events").await.to_string();
    assert!(audit.contains("oidc_client.created") && audit.contains("oidc_client.deleted"));
    op.srv.stop().await;
}

#[tokio::test]
async fn the_provider_refuses_the_attacks_of_security_case_38() {
    let op = Op::start(sqlite()).await;
    let srv = &op.srv;
    op.srv
        .add_member(&op.ws_id, "mia@acme.test", &["workspace_member"])
        .await;
    let app = op
        .register(json!({"post_logout_redirect_uris": ["http://127.0.0.1:9/bye"]}))
        .await;
    let other = op.register(json!({"name": "Other"})).await;
    let id = app["client_id"].as_str().unwrap();
    let secret = app["client_secret"].as_str().unwrap();
    let (verifier, challenge) = pkce();
    let mut b = Browser::new();
    b.sign_in(srv, "mia@acme.test", PASSWORD, "/workspaces")
        .await;

    // Unregistered or prefix-matching redirect URIs: a page, no redirect.
    for bad in [
        "http://127.0.0.1:9/evil",
        "http://127.0.0.1:9/app/callback/x",
        "http://127.0.0.1:9/app/callbackx",
        "http://127.0.0.1:9/app/callback?x=1",
    ] {
        let page = b
            .get(&srv.url(&authorize_path(id, bad, &challenge, "")))
            .await;
        assert_eq!(page.status, 400, "{bad}");
        assert!(page.header("location").is_none(), "{bad}");
    }
    // Unknown client: the same.
    let page = b
        .get(&srv.url(&authorize_path("nobody", REDIRECT, &challenge, "")))
        .await;
    assert_eq!((page.status, page.header("location")), (400, None));

    // Missing and plain PKCE: an error page, no code, no redirect.
    let no_pkce = format!(
        "/oauth2/authorize?response_type=code&client_id={id}&redirect_uri={}&scope=openid&state=s",
        urlenc(REDIRECT)
    );
    for path in [
        no_pkce.clone(),
        format!("{no_pkce}&code_challenge={challenge}&code_challenge_method=plain"),
    ] {
        let page = b.get(&srv.url(&path)).await;
        assert_eq!(page.status, 400, "{}", page.body);
        assert!(page.header("location").is_none());
        assert!(
            page.body.contains("PKCE") || page.body.contains("S256"),
            "{}",
            page.body
        );
    }
    assert_eq!(
        op.count("oidc_codes").await,
        0,
        "nothing issued without PKCE"
    );

    let code_for = |b: &mut Browser| {
        let path = authorize_path(id, REDIRECT, &challenge, "");
        let b = b.clone();
        let url = srv.url(&path);
        async move {
            let mut b = b;
            let page = b.get(&url).await;
            assert_eq!(page.status, 302, "{}", page.body);
            location_params(&page)["code"].clone()
        }
    };
    let exchange = |code: String, verifier: String, who: (String, String)| async move {
        token_request(
            srv,
            Some((&who.0, &who.1)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", &verifier),
            ],
        )
        .await
    };
    let me = (id.to_string(), secret.to_string());

    // Wrong verifier.
    let code = code_for(&mut b).await;
    let (s, e, _) = exchange(code, format!("{verifier}x"), me.clone()).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
    assert!(e.get("access_token").is_none());

    // Another client's code.
    let code = code_for(&mut b).await;
    let them = (
        other["client_id"].as_str().unwrap().to_string(),
        other["client_secret"].as_str().unwrap().to_string(),
    );
    let (s, e, _) = exchange(code.clone(), verifier.clone(), them).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));

    // Wrong secret: 401 invalid_client, with WWW-Authenticate for Basic.
    let (s, e, h) = exchange(
        code.clone(),
        verifier.clone(),
        (id.to_string(), "iamgw_cs_wrong".into()),
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (401, Some("invalid_client")));
    assert!(h.get("www-authenticate").is_some());

    // The right client can still use it once; the second use is refused and
    // revokes what the first issued.
    let (s, first, _) = exchange(code.clone(), verifier.clone(), me.clone()).await;
    assert_eq!(s, 200, "{first}");
    let (s, e, _) = exchange(code, verifier.clone(), me.clone()).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(
        userinfo(srv, first["access_token"].as_str().unwrap())
            .await
            .0,
        401
    );
    let (s, _, _) = refresh(srv, (id, secret), first["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 400, "the replayed code's refresh token is revoked too");

    // An expired code.
    let code = code_for(&mut b).await;
    srv.clock.advance(Duration::from_secs(61));
    let (s, e, _) = exchange(code, verifier.clone(), me.clone()).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));

    // The ID token carries this request's nonce, never another's.
    let page = b
        .get(
            &srv.url(
                &authorize_path(id, REDIRECT, &challenge, "").replace("nonce=n-1", "nonce=n-2"),
            ),
        )
        .await;
    let code = location_params(&page)["code"].clone();
    let (_, t, _) = exchange(code, verifier.clone(), me.clone()).await;
    let claims = verified_claims(srv, t["id_token"].as_str().unwrap()).await;
    assert_eq!(claims["nonce"], "n-2");

    // An unregistered post_logout_redirect_uri: signed out, not redirected.
    let bye = format!(
        "/oauth2/logout?id_token_hint={}&post_logout_redirect_uri={}&state=z",
        t["id_token"].as_str().unwrap(),
        urlenc("http://127.0.0.1:9/evil")
    );
    let mut b2 = b.clone();
    let page = b2.get(&srv.url(&bye)).await;
    assert_eq!(page.status, 200);
    assert!(page.header("location").is_none());
    assert!(page.body.contains("Signed out"));
    op.srv.stop().await;
}

#[tokio::test]
async fn a_removed_member_and_a_password_session_in_a_require_sso_workspace_get_no_code() {
    let op = Op::start(sqlite()).await;
    let srv = &op.srv;
    let mia = srv
        .add_member(&op.ws_id, "mia@acme.test", &["workspace_member"])
        .await;
    let app = op
        .register(json!({"required_role": "workspace_member"}))
        .await;
    let id = app["client_id"].as_str().unwrap();
    let (_, challenge) = pkce();
    let (mut b, tokens) = signed_in_app(&op, &app, "mia@acme.test").await;
    let codes_before = op.count("oidc_codes").await;

    // Removed from the workspace: the refresh token and userinfo stop at
    // once, and a new authorization is access_denied.
    let r = client()
        .delete(srv.url(&format!("/api/v1/workspaces/acme/members/{mia}")))
        .bearer_auth(&op.api)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        userinfo(srv, tokens["access_token"].as_str().unwrap())
            .await
            .0,
        401
    );
    let secret = app["client_secret"].as_str().unwrap();
    let (s, _, _) = refresh(srv, (id, secret), tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(s, 400);
    let page = b
        .get(&srv.url(&authorize_path(id, REDIRECT, &challenge, "")))
        .await;
    assert_eq!(page.status, 302);
    assert_eq!(location_params(&page)["error"], "access_denied");
    assert_eq!(op.count("oidc_codes").await, codes_before);

    // A workspace that requires SSO: the owner's password session gets no
    // code; without an enabled connection it is access_denied.
    let mut settings = srv
        .store()
        .workspace_by_id(&op.ws_id)
        .await
        .unwrap()
        .unwrap()
        .settings;
    settings.require_sso = true;
    srv.store()
        .set_workspace_settings(&op.ws_id, &settings)
        .await
        .unwrap();
    let mut owner = Browser::new();
    owner
        .sign_in(srv, "owner@acme.test", PASSWORD, "/workspaces")
        .await;
    let page = owner
        .get(&srv.url(&authorize_path(id, REDIRECT, &challenge, "")))
        .await;
    assert_eq!(page.status, 302);
    assert_eq!(location_params(&page)["error"], "access_denied");
    // prompt=none without a session: login_required, no detour.
    let page = Browser::new()
        .get(&srv.url(&authorize_path(id, REDIRECT, &challenge, "&prompt=none")))
        .await;
    assert_eq!(page.status, 302);
    assert_eq!(location_params(&page)["error"], "login_required");
    assert_eq!(op.count("oidc_codes").await, codes_before);
    op.srv.stop().await;
}

/// An app's back-channel logout endpoint: keeps every logout token and
/// answers with the status set in `status`.
pub struct Receiver {
    pub url: String,
    pub tokens: Arc<Mutex<Vec<String>>>,
    pub status: Arc<AtomicU16>,
    /// How long the app takes to answer (ms).
    pub delay: Arc<std::sync::atomic::AtomicU64>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let tokens: Arc<Mutex<Vec<String>>> = Default::default();
        let status = Arc::new(AtomicU16::new(200));
        let delay = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (t, s, d) = (tokens.clone(), status.clone(), delay.clone());
        let app = axum::Router::new().route(
            "/backchannel",
            axum::routing::post(move |body: String| {
                let (t, s, d) = (t.clone(), s.clone(), d.clone());
                async move {
                    let wait = d.load(Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(wait)).await;
                    let code = s.load(Ordering::SeqCst);
                    if code == 200 {
                        let token = url::form_urlencoded::parse(body.as_bytes())
                            .find(|(k, _)| k == "logout_token")
                            .map(|(_, v)| v.into_owned())
                            .unwrap_or_default();
                        t.lock().unwrap().push(token);
                    }
                    axum::http::StatusCode::from_u16(code).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/backchannel", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url,
            tokens,
            status,
            delay,
        }
    }

    /// Waits (real time) for `n` delivered tokens.
    pub async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..100 {
            let got = self.tokens.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "only {} logout tokens arrived",
            self.tokens.lock().unwrap().len()
        );
    }
}

async fn metrics(srv: &TestServer) -> String {
    client()
        .get(srv.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_way_a_session_ends_reaches_the_app_by_back_channel_logout() {
    for backend in matrix() {
        let op = Op::start(backend).await;
        let srv = &op.srv;
        let mia = srv
            .add_member(&op.ws_id, "mia@acme.test", &["workspace_member"])
            .await;
        let rx = Receiver::start().await;
        let app = op.register(json!({"backchannel_logout_uri": rx.url})).await;
        let id = app["client_id"].as_str().unwrap().to_string();

        // 1. Sign-out at the gateway.
        let (mut b, tokens) = signed_in_app(&op, &app, "mia@acme.test").await;
        let sid = verified_claims(srv, tokens["id_token"].as_str().unwrap()).await["sid"].clone();
        let csrf = b.get(&srv.url("/account")).await.csrf();
        let out = b
            .post_form(&srv.url("/logout"), &[("csrf_token", &csrf)])
            .await;
        assert_eq!(out.status, 303);
        let got = rx.wait_for(1).await;
        let lt = verified_claims(srv, &got[0]).await;
        assert_eq!(lt["iss"], json!(srv.base));
        assert_eq!(lt["aud"], json!(id));
        assert_eq!(lt["sub"], json!(mia));
        assert_eq!(lt["sid"], sid);
        assert!(lt["jti"].is_string() && lt["iat"].is_i64() && lt["exp"].is_i64());
        assert!(lt["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
        assert!(lt.get("nonce").is_none());
        assert_eq!(
            userinfo(srv, tokens["access_token"].as_str().unwrap())
                .await
                .0,
            401
        );

        // 2. Removal from the workspace.
        signed_in_app(&op, &app, "mia@acme.test").await;
        let r = client()
            .delete(srv.url(&format!("/api/v1/workspaces/acme/members/{mia}")))
            .bearer_auth(&op.api)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
        rx.wait_for(2).await;

        // 3. Deactivation by the IdP through SCIM.
        let sam = srv
            .add_member(&op.ws_id, "sam@acme.test", &["workspace_member"])
            .await;
        signed_in_app(&op, &app, "sam@acme.test").await;
        let (_, scim) = iam_gateway::service::tokens::mint(
            srv.store().as_ref(),
            srv.clock.now(),
            &op.ws_id,
            Kind::Scim,
            "idp",
            vec![],
            None,
        )
        .await
        .unwrap();
        let r = client()
            .patch(srv.url(&format!("/scim/v2/Users/{sam}")))
            .bearer_auth(&scim)
            .json(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "value": {"active": false}}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let got = rx.wait_for(3).await;
        assert_eq!(verified_claims(srv, &got[2]).await["sub"], json!(sam));

        // 4. "Sign out everywhere" and a password change (owner's sessions).
        let (mut ob, _) = signed_in_app(&op, &app, "owner@acme.test").await;
        let (_, t2) = signed_in_app(&op, &app, "owner@acme.test").await;
        let csrf = ob.get(&srv.url("/account")).await.csrf();
        let r = ob
            .post_form(
                &srv.url("/account/sessions/revoke"),
                &[("csrf_token", &csrf)],
            )
            .await;
        assert!(r.status < 400, "{}", r.body);
        // Both of the owner's sessions had given the app an ID token.
        rx.wait_for(5).await;
        assert_eq!(
            userinfo(srv, t2["access_token"].as_str().unwrap()).await.0,
            401
        );

        // Every delivery is in the audit log and the metrics.
        let audit = client_get(&op, "/audit-events?action=oidc.logout_delivered").await;
        assert_eq!(audit["items"].as_array().unwrap().len(), 5, "{audit}");
        assert!(metrics(srv)
            .await
            .contains("iamgw_backchannel_logouts{state=\"delivered\"} 5"));
        op.srv.stop().await;
    }
}

#[tokio::test]
async fn a_failing_app_is_retried_with_backoff_and_a_restart_loses_no_logout() {
    let op = Op::start(sqlite()).await;
    op.srv
        .add_member(&op.ws_id, "mia@acme.test", &["workspace_member"])
        .await;
    let rx = Receiver::start().await;
    rx.status.store(503, Ordering::SeqCst);
    let app = op.register(json!({"backchannel_logout_uri": rx.url})).await;
    let (mut b, _) = signed_in_app(&op, &app, "mia@acme.test").await;
    let csrf = b.get(&op.srv.url("/account")).await.csrf();
    // The logout answers at once, whatever the app does.
    let out = b
        .post_form(&op.srv.url("/logout"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(out.status, 303);
    // Attempts fail and are rescheduled.
    for _ in 0..100 {
        if metrics(&op.srv)
            .await
            .contains("iamgw_backchannel_logouts{state=\"pending\"} 1")
        {
            let pool = sqlx::AnyPool::connect(&op.srv.database_url).await.unwrap();
            let attempts: i64 = sqlx::query_scalar("SELECT attempts FROM oidc_logouts")
                .fetch_one(&pool)
                .await
                .unwrap();
            pool.close().await;
            if attempts >= 1 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rx.tokens.lock().unwrap().is_empty());

    // The gateway stops with the logout still owed; a new process on the
    // same database delivers it once the app answers.
    let (dir, url) = (op.srv.dir.clone(), op.srv.database_url.clone());
    op.srv.stop().await;
    rx.status.store(200, Ordering::SeqCst);
    let mut opts = private_networks(Options::new(sqlite()));
    opts.dir = Some(dir);
    opts.database_url = Some(url);
    let srv = TestServer::start_with(opts).await;
    srv.clock.advance(Duration::from_secs(400));
    let got = rx.wait_for(1).await;
    assert_eq!(got.len(), 1);
    let m = metrics(&srv).await;
    assert!(
        m.contains("iamgw_backchannel_logouts{state=\"delivered\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("iamgw_backchannel_logouts{state=\"pending\"} 0"),
        "{m}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn rp_initiated_logout_signs_out_with_a_hint_and_asks_without_one() {
    let op = Op::start(sqlite()).await;
    let srv = &op.srv;
    let app = op
        .register(json!({"post_logout_redirect_uris": ["http://127.0.0.1:9/bye"]}))
        .await;
    let id = app["client_id"].as_str().unwrap();

    // Without a hint: a confirmation page; the session stays until confirmed.
    let (mut b, _) = signed_in_app(&op, &app, "owner@acme.test").await;
    let ask = format!(
        "/oauth2/logout?client_id={id}&post_logout_redirect_uri={}&state=s1",
        urlenc("http://127.0.0.1:9/bye")
    );
    let page = b.get(&srv.url(&ask)).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Sign out?"));
    assert_eq!(b.verify(srv, "workspace=acme").await.status, 200);
    let csrf = page.csrf();
    let done = b
        .post_form(
            &srv.url("/oauth2/logout"),
            &[
                ("csrf_token", &csrf),
                ("client_id", id),
                ("post_logout_redirect_uri", "http://127.0.0.1:9/bye"),
                ("state", "s1"),
            ],
        )
        .await;
    // Signed out; without a hint that proves the app, not sent anywhere
    // (the gateway would otherwise redirect for whoever names a client).
    assert_eq!(done.status, 200);
    assert!(done.header("location").is_none());
    assert!(done.body.contains("Signed out"));
    assert_eq!(b.verify(srv, "workspace=acme").await.status, 401);
    let page = Browser::new().get(&srv.url(&ask)).await;
    assert_eq!((page.status, page.header("location")), (200, None));

    // An app posting the parameters (no CSRF token) is handled like the GET.
    let (mut b, tokens) = signed_in_app(&op, &app, "owner@acme.test").await;
    let done = b
        .post_form(
            &srv.url("/oauth2/logout"),
            &[
                ("id_token_hint", tokens["id_token"].as_str().unwrap()),
                ("post_logout_redirect_uri", "http://127.0.0.1:9/bye"),
                ("state", "s3"),
            ],
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(
        done.header("location").as_deref(),
        Some("http://127.0.0.1:9/bye?state=s3")
    );
    assert_eq!(b.verify(srv, "workspace=acme").await.status, 401);

    // A forward-auth assertion (signed by the gateway too, same sid) is
    // not an ID token of a registered app: it does not sign out at once.
    let (mut b, _) = signed_in_app(&op, &app, "owner@acme.test").await;
    let assertion = b
        .verify(srv, "workspace=acme")
        .await
        .header("x-auth-assertion")
        .unwrap();
    let page = b
        .get(&srv.url(&format!("/oauth2/logout?id_token_hint={assertion}")))
        .await;
    assert!(page.body.contains("Sign out?"));
    assert_eq!(b.verify(srv, "workspace=acme").await.status, 200);

    // With this session's ID token as hint: at once.
    let (mut b, tokens) = signed_in_app(&op, &app, "owner@acme.test").await;
    let bye = format!(
        "/oauth2/logout?id_token_hint={}&post_logout_redirect_uri={}&state=s2",
        tokens["id_token"].as_str().unwrap(),
        urlenc("http://127.0.0.1:9/bye")
    );
    let done = b.get(&srv.url(&bye)).await;
    assert_eq!(done.status, 303);
    assert_eq!(
        done.header("location").as_deref(),
        Some("http://127.0.0.1:9/bye?state=s2")
    );
    assert_eq!(b.verify(srv, "workspace=acme").await.status, 401);

    // A forged hint (not signed by the gateway) does not sign anyone out.
    let (mut b, tokens) = signed_in_app(&op, &app, "owner@acme.test").await;
    let t = tokens["id_token"].as_str().unwrap();
    let forged = format!("{}x", t);
    let page = b
        .get(&srv.url(&format!("/oauth2/logout?id_token_hint={forged}")))
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Sign out?"));
    assert_eq!(b.verify(srv, "workspace=acme").await.status, 200);
    op.srv.stop().await;
}

/// Apache httpd with mod_auth_openidc on a free port, configured with only
/// the gateway's discovery URL, a registered client and a protected
/// location whose page shows the email and roles claims (server-side
/// includes). Stops when dropped.
struct Apache {
    child: std::process::Child,
    base: String,
    dir: std::path::PathBuf,
}

impl Drop for Apache {
    /// SIGTERM, so the parent stops its worker processes too (SIGKILL left
    /// them running, holding the port), then SIGKILL if it is still there
    /// after 5 s.
    fn drop(&mut self) {
        // SAFETY: a signal to the child this struct started and owns.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Apache {
    async fn start(bin: &std::path::Path, op: &Op) -> Apache {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let base = format!("http://127.0.0.1:{port}");
        let redirect = format!("{base}/protected/redirect_uri");
        let app = op
            .register(json!({
                "name": "Apache",
                "redirect_uris": [redirect],
                "backchannel_logout_uri": format!("{redirect}?logout=backchannel"),
            }))
            .await;
        let dir = temp_dir();
        std::fs::create_dir_all(dir.join("htdocs/protected")).unwrap();
        std::fs::write(
            dir.join("htdocs/protected/index.shtml"),
            "<html><body><p>email=<!--#echo var=\"OIDC_CLAIM_email\" --></p>\
             <p>roles=<!--#echo var=\"OIDC_CLAIM_roles\" --></p></body></html>\n",
        )
        .unwrap();
        let d = dir.display();
        let m = "/usr/lib/apache2/modules";
        let conf = format!(
            "ServerRoot {d}\n\
             ServerName 127.0.0.1\n\
             Listen 127.0.0.1:{port}\n\
             PidFile {d}/httpd.pid\n\
             DefaultRuntimeDir {d}\n\
             ErrorLog {d}/error.log\n\
             LogLevel warn auth_openidc:info\n\
             LoadModule mpm_event_module {m}/mod_mpm_event.so\n\
             LoadModule authz_core_module {m}/mod_authz_core.so\n\
             LoadModule authn_core_module {m}/mod_authn_core.so\n\
             LoadModule authz_user_module {m}/mod_authz_user.so\n\
             LoadModule mime_module {m}/mod_mime.so\n\
             LoadModule include_module {m}/mod_include.so\n\
             LoadModule auth_openidc_module {m}/mod_auth_openidc.so\n\
             User www-data\n\
             Group www-data\n\
             TypesConfig /etc/mime.types\n\
             DocumentRoot {d}/htdocs\n\
             AddType text/html .shtml\n\
             AddOutputFilter INCLUDES .shtml\n\
             <Directory {d}/htdocs>\n  Options +Includes\n  Require all granted\n</Directory>\n\
             OIDCProviderMetadataURL {gw}/.well-known/openid-configuration\n\
             OIDCClientID {id}\n\
             OIDCClientSecret {secret}\n\
             OIDCRedirectURI {redirect}\n\
             OIDCCryptoPassphrase {pass}\n\
             OIDCScope \"openid email profile\"\n\
             OIDCPKCEMethod S256\n\
             OIDCPassClaimsAs environment\n\
             <Location /protected>\n  AuthType openid-connect\n  Require valid-user\n</Location>\n",
            gw = op.srv.base,
            id = app["client_id"].as_str().unwrap(),
            secret = app["client_secret"].as_str().unwrap(),
            pass = uuid::Uuid::new_v4().simple(),
        );
        std::fs::write(dir.join("httpd.conf"), conf).unwrap();
        // Children run as www-data when the tests run as root.
        std::process::Command::new("chmod")
            .args(["-R", "a+rwX", &dir.display().to_string()])
            .status()
            .unwrap();
        let mut child = std::process::Command::new(bin)
            .args([
                "-f",
                &dir.join("httpd.conf").display().to_string(),
                "-DFOREGROUND",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap())
            .spawn()
            .unwrap();
        wait_for_port(port, &mut child, "apache2", &dir.join("stderr.log")).await;
        Apache { child, base, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

/// Follows redirects between Apache and the gateway as a browser does (one
/// cookie jar), signing in when the gateway asks; returns the last page.
async fn browse(b: &mut Browser, op: &Op, start: &str, email: &str) -> Page {
    browse_with(b, op, start, email, PASSWORD).await
}

async fn browse_with(b: &mut Browser, op: &Op, start: &str, email: &str, password: &str) -> Page {
    let mut url = start.to_string();
    for _ in 0..12 {
        let page = b.get(&url).await;
        let Some(loc) = page
            .header("location")
            .filter(|_| (300..400).contains(&page.status))
        else {
            return page;
        };
        let next = if loc.starts_with('/') {
            let u = url::Url::parse(&url).unwrap();
            format!(
                "{}://{}{loc}",
                u.scheme(),
                u.host_str().unwrap().to_string()
                    + &u.port().map(|p| format!(":{p}")).unwrap_or_default()
            )
        } else {
            loc.clone()
        };
        if let Some(rest) = next.strip_prefix(&op.srv.url("/login?return_to=")) {
            let back = url::form_urlencoded::parse(format!("r={rest}").as_bytes())
                .next()
                .unwrap()
                .1
                .into_owned();
            let done = b.sign_in(&op.srv, email, password, &back).await;
            assert_eq!(done.status, 303, "{}", done.body);
            url = op.srv.url(&back);
            continue;
        }
        url = next;
    }
    panic!("too many redirects from {start}");
}

/// Waits until `n` back-channel logouts were delivered, then checks that
/// Apache no longer serves the page from its own session.
async fn told_apache(op: &Op, apache: &Apache, b: &mut Browser, protected: &str, n: usize) {
    assert!(
        delivered(&op.srv, n).await,
        "back-channel logout {n} not delivered:\n{}",
        apache.log()
    );
    let next = b.get(protected).await;
    assert_eq!(next.status, 302, "{}", apache.log());
    let loc = next.header("location").unwrap();
    assert!(loc.starts_with(&op.srv.url("/oauth2/authorize?")), "{loc}");
}

#[tokio::test]
async fn apache_mod_auth_openidc_signs_a_person_in_and_hears_logout_password_change_and_removal() {
    let Some(bin) = needs_tool("apache2", "apache2 libapache2-mod-auth-openidc") else {
        return;
    };
    let module = std::path::Path::new("/usr/lib/apache2/modules/mod_auth_openidc.so");
    if needs(
        module.exists().then_some(()),
        "mod_auth_openidc is not installed (Debian package libapache2-mod-auth-openidc)",
    )
    .is_none()
    {
        return;
    }
    let op = Op::start(sqlite()).await;
    let mia = op
        .srv
        .add_member(&op.ws_id, "mia@acme.test", &["workspace_member"])
        .await;
    let apache = Apache::start(&bin, &op).await;
    let protected = format!("{}/protected/index.shtml", apache.base);

    // Not signed in anywhere: Apache sends the browser to the gateway, which
    // asks for a password and sends it back with a code.
    let mut b = Browser::new();
    let page = browse(&mut b, &op, &protected, "mia@acme.test").await;
    assert_eq!(page.status, 200, "{}\n{}", page.body, apache.log());
    assert!(page.body.contains("email=mia@acme.test"), "{}", page.body);
    assert!(
        page.body.contains("roles=workspace_member"),
        "{}",
        page.body
    );
    // Signed in at Apache: the page is served without the gateway.
    let again = b.get(&protected).await;
    assert_eq!(again.status, 200);

    // A sign-out at the gateway reaches Apache by back-channel logout, so
    // the next request to Apache is sent to sign in again.
    let csrf = b.get(&op.srv.url("/account")).await.csrf();
    let out = b
        .post_form(&op.srv.url("/logout"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(out.status, 303);
    told_apache(&op, &apache, &mut b, &protected, 1).await;

    // A password change on another device ends this browser's session:
    // Apache is told.
    let page = browse(&mut b, &op, &protected, "mia@acme.test").await;
    assert_eq!(page.status, 200, "{}", apache.log());
    let mut phone = Browser::new();
    phone
        .sign_in(&op.srv, "mia@acme.test", PASSWORD, "/account")
        .await;
    let csrf = phone.get(&op.srv.url("/account")).await.csrf();
    let changed = phone
        .post_form(
            &op.srv.url("/account/password"),
            &[
                ("csrf_token", &csrf),
                ("current_password", PASSWORD),
                ("new_password", "a brand new passphrase for mia"),
            ],
        )
        .await;
    assert!(changed.status < 400, "{}", changed.body);
    told_apache(&op, &apache, &mut b, &protected, 2).await;

    // Removed from the workspace: Apache is told, and the gateway no longer
    // lets this person into the app.
    let mut b = Browser::new();
    let page = browse_with(
        &mut b,
        &op,
        &protected,
        "mia@acme.test",
        "a brand new passphrase for mia",
    )
    .await;
    assert_eq!(page.status, 200, "{}", apache.log());
    let r = client()
        .delete(
            op.srv
                .url(&format!("/api/v1/workspaces/acme/members/{mia}")),
        )
        .bearer_auth(&op.api)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    told_apache(&op, &apache, &mut b, &protected, 3).await;
    // Apache sends the browser to the gateway, which still knows the person
    // but answers the app access_denied: no way back in.
    let to_gateway = b.get(&protected).await.header("location").unwrap();
    let refused = b.get(&to_gateway).await;
    assert_eq!(refused.status, 302);
    let p = location_params(&refused);
    assert_eq!(p["error"], "access_denied");
    assert!(!p.contains_key("code"));
    op.srv.stop().await;
}

#[tokio::test]
async fn owners_register_list_and_delete_apps_on_the_apps_page() {
    let op = Op::start(sqlite()).await;
    let srv = &op.srv;
    srv.add_member(&op.ws_id, "mia@acme.test", &["workspace_member"])
        .await;
    let mut b = Browser::new();
    b.sign_in(srv, "owner@acme.test", PASSWORD, "/workspaces")
        .await;
    let page = b.get(&srv.url("/w/acme/apps")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("No app is registered yet"));
    assert!(page
        .body
        .contains(&format!("{}/.well-known/openid-configuration", srv.base)));
    let csrf = page.csrf();

    // A refused form keeps what was typed and writes nothing.
    let bad = b
        .post_form(
            &srv.url("/w/acme/apps"),
            &[
                ("csrf_token", &csrf),
                ("name", "Grafana"),
                ("redirect_uris", "http://grafana.example.com/login"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body.contains("http is allowed only on a loopback host"),
        "{}",
        bad.body
    );
    assert!(bad.body.contains("http://grafana.example.com/login"));
    assert_eq!(op.count("oidc_clients").await, 0);

    // Registered: the secret is on this answer only.
    let made = b
        .post_form(
            &srv.url("/w/acme/apps"),
            &[
                ("csrf_token", &csrf),
                ("name", "Grafana"),
                (
                    "redirect_uris",
                    "https://grafana.example.com/login/generic_oauth\nhttp://127.0.0.1:3000/cb",
                ),
                ("backchannel_logout_uri", "https://grafana.example.com/bc"),
                ("required_role", "workspace_member"),
            ],
        )
        .await;
    assert_eq!(made.status, 200, "{}", made.body);
    let stored = srv.store().oidc_clients(&op.ws_id).await.unwrap();
    assert_eq!(stored.len(), 1);
    let app = &stored[0];
    assert_eq!(app.redirect_uris.len(), 2);
    assert_eq!(app.required_role.as_deref(), Some("workspace_member"));
    let secret_start = made
        .body
        .find("value=\"iamgw_cs_")
        .expect("the secret is shown")
        + 7;
    let secret: String = made.body[secret_start..]
        .chars()
        .take_while(|c| *c != '"')
        .collect();
    assert!(iam_gateway::service::oidc_clients::secret_matches(
        app, &secret
    ));
    let listed = b.get(&srv.url("/w/acme/apps")).await;
    assert!(listed.body.contains(&app.id) && !listed.body.contains(&secret));

    // A member may not see or change it; a forged form is refused.
    let mut m = Browser::new();
    m.sign_in(srv, "mia@acme.test", PASSWORD, "/workspaces")
        .await;
    assert_eq!(m.get(&srv.url("/w/acme/apps")).await.status, 403);
    let r = m
        .post_form(
            &srv.url(&format!("/w/acme/apps/{}/delete", app.id)),
            &[("csrf_token", "x")],
        )
        .await;
    assert!(r.status == 403, "{}", r.status);
    let r = b
        .post_form(
            &srv.url(&format!("/w/acme/apps/{}/delete", app.id)),
            &[("csrf_token", "forged")],
        )
        .await;
    assert!(r.status >= 400);
    assert_eq!(op.count("oidc_clients").await, 1);

    let gone = b
        .post_form(
            &srv.url(&format!("/w/acme/apps/{}/delete", app.id)),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(gone.status, 303);
    assert_eq!(op.count("oidc_clients").await, 0);
    op.srv.stop().await;
}

#[tokio::test]
async fn pruning_drops_what_can_no_longer_be_used_and_keeps_what_can() {
    for backend in matrix() {
        let op = Op::start(backend).await;
        let srv = &op.srv;
        let rx = Receiver::start().await;
        let app = op.register(json!({"backchannel_logout_uri": rx.url})).await;
        let (mut b, _) = signed_in_app(&op, &app, "owner@acme.test").await;
        let csrf = b.get(&srv.url("/account")).await.csrf();
        b.post_form(&srv.url("/logout"), &[("csrf_token", &csrf)])
            .await;
        rx.wait_for(1).await;
        assert!(delivered(srv, 1).await);
        let (_, live) = signed_in_app(&op, &app, "owner@acme.test").await;

        // Past the access tokens' and codes' lifetimes: they, and the
        // delivered logout, go; the refresh tokens stay usable.
        let before = srv.clock.now() + iam_gateway::service::op::ACCESS_TTL + 1;
        let gone = srv.store().prune_oidc(before).await.unwrap();
        assert_eq!(gone, 4, "two codes, one access token, one logout");
        assert_eq!(op.count("oidc_codes").await, 0);
        assert_eq!(op.count("oidc_logouts").await, 0);
        assert_eq!(
            userinfo(srv, live["access_token"].as_str().unwrap())
                .await
                .0,
            401
        );
        let id = app["client_id"].as_str().unwrap();
        let secret = app["client_secret"].as_str().unwrap();
        let (s, _, _) = refresh(srv, (id, secret), live["refresh_token"].as_str().unwrap()).await;
        assert_eq!(s, 200);
        op.srv.stop().await;
    }
}

#[tokio::test]
async fn two_instances_share_the_logout_outbox_and_deliver_each_logout_once() {
    let Some(_) = needs(pg_url(), "IAMGW_TEST_DATABASE_URL is unset or empty") else {
        return;
    };
    let dir = temp_dir();
    let url = fresh_pg_url().await;
    let backend = Backend {
        db: Db::Postgres,
        sessions: Sessions::Database,
    };
    let mut opts = private_networks(Options::new(backend));
    opts.database_url = Some(url.clone());
    opts.dir = Some(dir.clone());
    let a = TestServer::start_with(opts).await;
    let mut opts = private_networks(Options::new(backend)).env("IAMGW_PUBLIC_URL", &a.base);
    opts.database_url = Some(url);
    opts.dir = Some(dir);
    let b = TestServer::start_with(opts).await;
    let op = Op::on(a).await;
    let rx = Receiver::start().await;
    // A slow app: every delivery is still in flight when the other
    // instance next looks at the outbox (once a second).
    rx.delay.store(1500, Ordering::SeqCst);
    let app = op.register(json!({"backchannel_logout_uri": rx.url})).await;
    // Eight sessions of one person, each with an ID token for the app.
    let mut last = None;
    for _ in 0..8 {
        last = Some(signed_in_app(&op, &app, "owner@acme.test").await.0);
    }
    // "Sign out everywhere" on A: eight logouts, which both instances see.
    let mut br = last.unwrap();
    let csrf = br.get(&op.srv.url("/account")).await.csrf();
    let r = br
        .post_form(
            &op.srv.url("/account/sessions/revoke"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert!(r.status < 400);
    let got = rx.wait_for(8).await;
    // Both instances keep polling; nothing is sent twice.
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let got_now = rx.tokens.lock().unwrap().clone();
    assert_eq!(got_now.len(), 8, "each logout delivered once");
    let mut jtis = std::collections::HashSet::new();
    for t in &got {
        let c = verified_claims(&b, t).await;
        assert!(jtis.insert(c["jti"].as_str().unwrap().to_string()));
    }
    assert!(metrics(&b)
        .await
        .contains("iamgw_backchannel_logouts{state=\"delivered\"} 8"));
    b.stop().await;
    op.srv.stop().await;
}

#[tokio::test]
async fn back_channel_uris_into_the_gateways_network_are_refused_by_default() {
    let op = Op::on(TestServer::start(sqlite()).await).await;
    for uri in [
        "http://127.0.0.1:8081/console",
        "https://10.0.0.7/logout",
        "https://169.254.169.254/latest/meta-data",
        "https://localhost/bc",
    ] {
        let (s, body) = op
            .api_post(
                "/oidc-clients",
                json!({"name": "x", "redirect_uris": [REDIRECT], "backchannel_logout_uri": uri}),
            )
            .await;
        assert_eq!(s, 400, "{uri}: {body}");
        assert!(
            body.to_string().contains("backchannel_logout_uri"),
            "{body}"
        );
    }
    assert_eq!(op.count("oidc_clients").await, 0);
    let app = op
        .register(json!({"backchannel_logout_uri": "https://app.example.com/logout/backchannel"}))
        .await;
    assert_eq!(
        app["backchannel_logout_uri"],
        "https://app.example.com/logout/backchannel"
    );
    op.srv.stop().await;
}

#[tokio::test]
async fn signing_in_over_a_session_tells_the_apps_of_the_session_it_replaced() {
    let op = Op::start(sqlite()).await;
    let srv = &op.srv;
    let mia = srv
        .add_member(&op.ws_id, "mia@acme.test", &["workspace_member"])
        .await;
    let rx = Receiver::start().await;
    let app = op.register(json!({"backchannel_logout_uri": rx.url})).await;
    // Mia signs in to the app on a shared computer...
    let (mut b, tokens) = signed_in_app(&op, &app, "mia@acme.test").await;
    let sid = verified_claims(srv, tokens["id_token"].as_str().unwrap()).await["sid"].clone();
    // ...then the owner signs in in the same browser: Mia's session ends,
    // and the app is told.
    let done = b
        .sign_in(srv, "owner@acme.test", PASSWORD, "/workspaces")
        .await;
    assert_eq!(done.status, 303);
    let got = rx.wait_for(1).await;
    let lt = verified_claims(srv, &got[0]).await;
    assert_eq!((lt["sub"].clone(), lt["sid"].clone()), (json!(mia), sid));
    assert_eq!(
        userinfo(srv, tokens["access_token"].as_str().unwrap())
            .await
            .0,
        401
    );
    op.srv.stop().await;
}

#[tokio::test]
async fn an_app_that_never_answers_does_not_hold_up_another_apps_logouts() {
    let op = Op::start(sqlite()).await;
    let srv = &op.srv;
    let stuck = Receiver::start().await;
    stuck.delay.store(30_000, Ordering::SeqCst); // past the 5 s attempt timeout
    let quick = Receiver::start().await;
    let stuck_app = op
        .register(json!({"name": "Stuck", "backchannel_logout_uri": stuck.url}))
        .await;
    let quick_app = op
        .register(json!({"name": "Quick", "backchannel_logout_uri": quick.url}))
        .await;
    // More logouts owed to the stuck app than one look at the outbox takes.
    for _ in 0..36 {
        signed_in_app(&op, &stuck_app, "owner@acme.test").await;
    }
    let (mut b, _) = signed_in_app(&op, &quick_app, "owner@acme.test").await;
    let csrf = b.get(&srv.url("/account")).await.csrf();
    let r = b
        .post_form(
            &srv.url("/account/sessions/revoke"),
            &[("csrf_token", &csrf)],
        )
        .await;
    assert!(r.status < 400);
    // The quick app hears of it while the stuck one's attempts still hang.
    let got = quick.wait_for(1).await;
    assert_eq!(got.len(), 1);
    assert!(stuck.tokens.lock().unwrap().is_empty());
    op.srv.stop().await;
}

#[tokio::test]
async fn prompt_login_and_max_age_ask_for_a_fresh_sign_in_and_request_objects_are_refused() {
    let op = Op::start(sqlite()).await;
    let srv = &op.srv;
    let app = op.register(json!({})).await;
    let id = app["client_id"].as_str().unwrap();
    let (_, challenge) = pkce();
    let mut b = Browser::new();
    b.sign_in(srv, "owner@acme.test", PASSWORD, "/workspaces")
        .await;
    srv.clock.advance(Duration::from_secs(120));

    for extra in ["&prompt=login", "&max_age=60"] {
        let path = authorize_path(id, REDIRECT, &challenge, extra);
        let page = b.get(&srv.url(&path)).await;
        assert_eq!(page.status, 303, "{extra}: {}", page.body);
        let login = page.header("location").unwrap();
        let back = url::form_urlencoded::parse(login.trim_start_matches("/login?").as_bytes())
            .find(|(k, _)| k == "return_to")
            .unwrap()
            .1
            .into_owned();
        assert!(!back.contains("prompt=login"), "{back}");
        // Signing in again answers the request, with the new auth_time.
        let done = b.sign_in(srv, "owner@acme.test", PASSWORD, &back).await;
        assert_eq!(done.status, 303);
        let code_page = b.get(&srv.url(&back)).await;
        assert_eq!(code_page.status, 302, "{extra}: {}", code_page.body);
        assert!(location_params(&code_page).contains_key("code"));
        srv.clock.advance(Duration::from_secs(120));
    }
    // max_age still met: no detour.
    let page = b
        .get(&srv.url(&authorize_path(id, REDIRECT, &challenge, "&max_age=3600")))
        .await;
    assert_eq!(page.status, 302);
    // prompt=none with a stale session: login_required.
    let page = b
        .get(&srv.url(&authorize_path(
            id,
            REDIRECT,
            &challenge,
            "&prompt=none&max_age=1",
        )))
        .await;
    assert_eq!(location_params(&page)["error"], "login_required");

    // Request objects: a page, no redirect.
    let page = b
        .get(&srv.url(&authorize_path(id, REDIRECT, &challenge, "&request=eyJ")))
        .await;
    assert_eq!((page.status, page.header("location")), (400, None));
    assert!(page.body.contains("not supported"));

    // The same request POSTed, as OIDC Core allows.
    let path = authorize_path(id, REDIRECT, &challenge, "");
    let form = path.trim_start_matches("/oauth2/authorize?").to_string();
    let r = b
        .send(
            b.client
                .post(srv.url("/oauth2/authorize"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form),
        )
        .await;
    assert_eq!(r.status, 302, "{}", r.body);
    assert!(location_params(&r).contains_key("code"));
    op.srv.stop().await;
}

#[tokio::test]
async fn a_workspace_registers_at_most_a_hundred_apps() {
    let op = Op::start(sqlite()).await;
    for i in 0..iam_gateway::service::oidc_clients::MAX_CLIENTS {
        op.register(json!({"name": format!("App {i}")})).await;
    }
    let (s, body) = op
        .api_post(
            "/oidc-clients",
            json!({"name": "One too many", "redirect_uris": [REDIRECT]}),
        )
        .await;
    assert_eq!(s, 409, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("at most 100"));
    assert_eq!(op.count("oidc_clients").await, 100);
    op.srv.stop().await;
}
