//! Property tests on the request headers that carry credentials, through a
//! running gateway: whatever a client puts in `Cookie` or `Authorization`,
//! the answer is the credential's (200) only when the real one is there,
//! else 401, never a server error. `PROPTEST_CASES` runs them longer.

use crate::access::Api;
use crate::support::*;
use axum::http::{HeaderMap, HeaderValue};
use iam_gateway::web::http::cookie;
use proptest::prelude::*;
use serde_json::json;
use std::sync::OnceLock;

struct Env {
    rt: tokio::runtime::Runtime,
    srv: TestServer,
    session: String,
    api_token: String,
    scim_token: String,
}

/// One gateway for every case: workspace `acme`, a signed-in owner, an API
/// token and a SCIM token.
fn env() -> &'static Env {
    static E: OnceLock<Env> = OnceLock::new();
    E.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (srv, session, api_token, scim_token) = rt.block_on(async {
            let srv = TestServer::start(matrix()[0]).await;
            srv.bootstrap("acme", "ann@acme.test").await;
            let mut owner = Api::sign_in(&srv, "ann@acme.test").await;
            let session = owner.br.session_cookie().unwrap();
            let (s, t) = owner
                .call(
                    "POST",
                    "/api/v1/workspaces/acme/tokens",
                    Some(json!({"description": "p", "policies": [{"role": "workspace_owner"}]})),
                )
                .await;
            assert_eq!(s, 201, "{t}");
            let (s, st) = owner
                .call(
                    "POST",
                    "/api/v1/workspaces/acme/scim-tokens",
                    Some(json!({"description": "p"})),
                )
                .await;
            assert_eq!(s, 201, "{st}");
            (
                srv,
                session,
                t["token"].as_str().unwrap().to_string(),
                st["token"].as_str().unwrap().to_string(),
            )
        });
        Env {
            rt,
            srv,
            session,
            api_token,
            scim_token,
        }
    })
}

/// The status of GET `path` with one raw header.
fn status(path: &str, name: &str, value: &[u8]) -> Option<u16> {
    let e = env();
    let value = HeaderValue::from_bytes(value).ok()?;
    let url = e.srv.url(path);
    let name = name.to_string();
    Some(e.rt.block_on(async move {
        client()
            .get(url)
            .header(name, value)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }))
}

/// Header text: printable ASCII, separators, and bytes that are not text.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        proptest::sample::select(
            &[
                "Bearer ",
                "bearer ",
                "BEARER ",
                "Basic ",
                "Bearer",
                " ",
                "\t",
                ";",
                "=",
                ",",
                "iamgw_",
                "iamgw_scim_",
                "iamgw_session",
                "iamgw_session=",
                "__Host-iamgw_session=",
                "\"",
                "%20",
                "\u{e9}",
            ][..]
        )
        .prop_map(|s| s.as_bytes().to_vec()),
        "[ -~]{0,12}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..4),
    ];
    proptest::collection::vec(piece, 0..8).prop_map(|p| p.concat())
}

/// Places `secret` somewhere in `noise` (or not), as a client might.
fn with_secret(noise: Vec<u8>, secret: &str, at: prop::sample::Index, put: bool) -> Vec<u8> {
    let mut v = noise;
    if put {
        let i = at.index(v.len() + 1);
        v.splice(i..i, secret.bytes());
    }
    v
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig {
        // Each case is an HTTP round trip: fewer by default.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    /// `cookie()` finds the first pair with exactly that name (around which
    /// only spaces may stand), its value trimmed; look-alike names never
    /// count.
    #[test]
    fn cookie_header_parsing_finds_the_first_exact_name(
        pairs in proptest::collection::vec((
            prop_oneof![
                proptest::sample::select(&[
                    "iamgw_session", " iamgw_session", "iamgw_session ", "IAMGW_SESSION",
                    "xiamgw_session", "iamgw_sessionx", "__Host-iamgw_session", "iamgw_csrf",
                ][..]).prop_map(str::to_string),
                "[ a-z_=;-]{0,8}",
            ],
            "[ -~]{0,10}",
        ), 0..6),
        raw in "[ -~]{0,40}",
    ) {
        let text: String = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ");
        let mut h = HeaderMap::new();
        h.insert("cookie", HeaderValue::from_str(&text).unwrap());
        h.append("cookie", HeaderValue::from_str(&raw).unwrap());
        let want = text
            .split(';')
            .chain(raw.split(';'))
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| *k == "iamgw_session")
            .map(|(_, v)| v.trim());
        prop_assert_eq!(cookie(&h, "iamgw_session"), want);
    }

    #[test]
    fn forward_auth_admits_only_the_real_session_cookie(
        noise in header_bytes(),
        at in any::<prop::sample::Index>(),
        put in any::<bool>(),
    ) {
        let e = env();
        let pair = format!("iamgw_session={}", e.session);
        let value = with_secret(noise, &pair, at, put);
        if let Some(s) = status("/auth/verify?workspace=acme", "cookie", &value) {
            prop_assert!(s == 200 || s == 401, "{} for {:?}", s, String::from_utf8_lossy(&value));
            if s == 200 {
                prop_assert!(contains(&value, &e.session));
            }
        }
    }

    #[test]
    fn the_api_admits_only_the_real_bearer_token(
        noise in header_bytes(),
        at in any::<prop::sample::Index>(),
        put in any::<bool>(),
    ) {
        let e = env();
        let value = with_secret(noise, &e.api_token, at, put);
        if let Some(s) = status("/api/v1/workspaces/acme/members", "authorization", &value) {
            prop_assert!(s == 200 || s == 401, "{} for {:?}", s, String::from_utf8_lossy(&value));
            if s == 200 {
                prop_assert!(contains(&value, &e.api_token));
            }
        }
    }

    #[test]
    fn scim_admits_only_the_real_bearer_token(
        noise in header_bytes(),
        at in any::<prop::sample::Index>(),
        put in any::<bool>(),
    ) {
        let e = env();
        let value = with_secret(noise, &e.scim_token, at, put);
        if let Some(s) = status("/scim/v2/Users", "authorization", &value) {
            prop_assert!(s == 200 || s == 401, "{} for {:?}", s, String::from_utf8_lossy(&value));
            if s == 200 {
                prop_assert!(contains(&value, &e.scim_token));
            }
        }
    }

    #[test]
    fn well_formed_credentials_in_the_usual_spellings_are_admitted(
        scheme in proptest::sample::select(&["Bearer", "bearer"][..]),
        pad in "[ ]{0,3}",
    ) {
        let e = env();
        let api = format!("{scheme} {pad}{}{pad}", e.api_token);
        prop_assert_eq!(status("/api/v1/workspaces/acme/members", "authorization", api.as_bytes()), Some(200));
        let scim = format!("{scheme} {}{pad}", e.scim_token);
        prop_assert_eq!(status("/scim/v2/Users", "authorization", scim.as_bytes()), Some(200));
        let c = format!("other=1;{pad}iamgw_session={}{pad}; x=y", e.session);
        prop_assert_eq!(status("/auth/verify?workspace=acme", "cookie", c.as_bytes()), Some(200));
    }
}
