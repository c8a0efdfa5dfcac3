//! Forward-auth (`/auth/verify`, `/auth/forward`) over real HTTP.

use crate::support::*;
use iam_gateway::crypto::b64url_decode;
use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::Value;

/// Verifies a compact ES256 JWS against a JWKS document; returns the claims.
fn verify_jwt(token: &str, jwks: &Value) -> Value {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&b64url_decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    let kid = header["kid"].as_str().unwrap();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("kid in JWKS");
    let mut sec1 = vec![4u8];
    sec1.extend(b64url_decode(jwk["x"].as_str().unwrap()).unwrap());
    sec1.extend(b64url_decode(jwk["y"].as_str().unwrap()).unwrap());
    let key = VerifyingKey::from_sec1_bytes(&sec1).unwrap();
    let sig = Signature::from_slice(&b64url_decode(parts[2]).unwrap()).unwrap();
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("signature verifies");
    serde_json::from_slice(&b64url_decode(parts[1]).unwrap()).unwrap()
}

#[tokio::test]
async fn allowed_requests_get_identity_headers_and_a_verifiable_assertion() {
    for b in matrix() {
        let srv = TestServer::start(b).await;
        let (_, uid) = srv.bootstrap("acme", "ann@acme.test").await;
        let mut br = Browser::new();
        assert_eq!(
            br.sign_in(&srv, "ann@acme.test", PASSWORD, "/")
                .await
                .status,
            303
        );
        let r = br
            .verify(&srv, "workspace=acme&role=source_admin&resource=src1")
            .await;
        assert_eq!(r.status, 200, "{b:?}");
        assert_eq!(r.header("x-auth-user-id").as_deref(), Some(uid.as_str()));
        assert_eq!(r.header("x-auth-email").as_deref(), Some("ann@acme.test"));
        assert_eq!(r.header("x-auth-name").as_deref(), Some("Owner of acme"));
        assert_eq!(r.header("x-auth-workspace").as_deref(), Some("acme"));
        assert_eq!(r.header("x-auth-roles").as_deref(), Some("workspace_owner"));
        assert_eq!(r.header("x-auth-method").as_deref(), Some("password"));
        let jwks: Value = client()
            .get(srv.url("/.well-known/jwks.json"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for k in jwks["keys"].as_array().unwrap() {
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(k.get(private).is_none(), "JWKS publishes {private}");
            }
        }
        let claims = verify_jwt(&r.header("x-auth-assertion").unwrap(), &jwks);
        assert_eq!(claims["iss"], srv.base.as_str());
        assert_eq!(claims["aud"], "iamgw:acme");
        assert_eq!(claims["sub"], uid.as_str());
        assert_eq!(claims["email"], "ann@acme.test");
        assert_eq!(claims["workspace"], "acme");
        assert_eq!(claims["roles"], serde_json::json!(["workspace_owner"]));
        assert_eq!(claims["auth_method"], "password");
        let (iat, exp) = (
            claims["iat"].as_i64().unwrap(),
            claims["exp"].as_i64().unwrap(),
        );
        assert!(exp > iat && exp - iat <= 60);
        let sid = claims["sid"].as_str().unwrap();
        let cookie = br.session_cookie().unwrap();
        assert!(
            sid.len() >= 16
                && sid != cookie
                && sid != iam_gateway::crypto::sha256_hex(cookie.as_bytes())
        );
        srv.stop().await;
    }
}

#[tokio::test]
async fn members_get_403_outside_their_workspace_or_role() {
    for b in matrix() {
        let srv = TestServer::start(b).await;
        let (acme, _) = srv.bootstrap("acme", "ann@acme.test").await;
        srv.bootstrap("beta", "bob@beta.test").await;
        srv.add_member(&acme, "mia@acme.test", &["source_read_only"])
            .await;
        let mut mia = Browser::new();
        assert_eq!(
            mia.sign_in(&srv, "mia@acme.test", PASSWORD, "/")
                .await
                .status,
            303
        );
        assert_eq!(
            mia.verify(&srv, "workspace=acme").await.status,
            200,
            "{b:?}"
        );
        assert_eq!(
            mia.verify(&srv, "workspace=acme&role=source_read_only")
                .await
                .status,
            200
        );
        assert_eq!(
            mia.verify(&srv, "workspace=acme&role=source_admin")
                .await
                .status,
            403
        );
        assert_eq!(
            mia.verify(&srv, "workspace=acme&role=workspace_owner")
                .await
                .status,
            403
        );
        assert_eq!(
            mia.verify(&srv, "workspace=beta").await.status,
            403,
            "{b:?}: not a member of B"
        );
        assert_eq!(mia.verify(&srv, "workspace=nope").await.status, 403);
        assert_eq!(
            mia.verify(&srv, "workspace=acme&role=no_such_role")
                .await
                .status,
            400
        );
        assert_eq!(mia.verify(&srv, "").await.status, 400);
        assert_eq!(
            mia.verify(&srv, "workspace=beta&workspace=acme")
                .await
                .status,
            400,
            "{b:?}: a repeated parameter is refused, not resolved either way"
        );
        // Removal (by an owner, through the API) ends access at once.
        let mia_id = srv
            .store()
            .user_by_email("mia@acme.test")
            .await
            .unwrap()
            .unwrap()
            .id;
        let mut owner = crate::access::Api::sign_in(&srv, "ann@acme.test").await;
        assert_eq!(
            owner
                .call(
                    "DELETE",
                    &format!("/api/v1/workspaces/acme/members/{mia_id}"),
                    None
                )
                .await
                .0,
            204
        );
        assert_eq!(
            mia.verify(&srv, "workspace=acme").await.status,
            403,
            "{b:?}"
        );
        srv.stop().await;
    }
}

#[tokio::test]
async fn missing_tampered_or_garbage_cookies_get_401() {
    let srv = TestServer::start(sqlite()).await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let none = client()
        .get(srv.url("/auth/verify?workspace=acme"))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    let mut br = Browser::new();
    br.sign_in(&srv, "ann@acme.test", PASSWORD, "/").await;
    let good = br.session_cookie().unwrap();
    let mut flipped = good.clone().into_bytes();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    for bad in [
        String::from_utf8(flipped).unwrap(),
        format!("{good}x"),
        "../../etc".into(),
        String::new(),
    ] {
        let r = client()
            .get(srv.url("/auth/verify?workspace=acme"))
            .header("cookie", format!("iamgw_session={bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "cookie {bad:?}");
    }
}

#[tokio::test]
async fn forward_style_redirects_browsers_to_sign_in_with_the_original_url() {
    let srv = TestServer::start(sqlite()).await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let c = client();
    let r = c
        .get(srv.url("/auth/forward?workspace=acme"))
        .header("accept", "text/html,application/xhtml+xml")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "app.example.com")
        .header("x-forwarded-uri", "/reports?q=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!(
            "{}/login?return_to=https%3A%2F%2Fapp.example.com%2Freports%3Fq%3D1",
            srv.base
        )
    );
    // Not a browser: 401.
    let r = c
        .get(srv.url("/auth/forward?workspace=acme"))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // X-Original-URL works too; a malformed one is 401, for either style.
    let r = c
        .get(srv.url("/auth/forward?workspace=acme"))
        .header("accept", "text/html")
        .header("x-original-url", "https://app.example.com/x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    for path in [
        "/auth/forward?workspace=acme",
        "/auth/verify?workspace=acme",
    ] {
        let r = c
            .get(srv.url(path))
            .header("accept", "text/html")
            .header("x-original-url", "not a url")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    // With a session, /auth/forward answers 200 with the headers.
    let mut br = Browser::new();
    br.sign_in(&srv, "ann@acme.test", PASSWORD, "/").await;
    let r = br
        .send(
            br.client
                .get(srv.url("/auth/forward?workspace=acme"))
                .header("accept", "text/html"),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-auth-workspace").as_deref(), Some("acme"));
}

#[tokio::test]
async fn forwarded_headers_from_untrusted_peers_are_ignored() {
    let srv =
        TestServer::start_with(Options::new(sqlite()).env("IAMGW_TRUSTED_PROXIES", "[]")).await;
    let r = client()
        .get(srv.url("/auth/forward?workspace=acme"))
        .header("accept", "text/html")
        .header("x-original-url", "https://evil.test/phish")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("{}/login", srv.base),
        "untrusted X-Original-URL not used"
    );
    let r = client()
        .get(srv.url("/auth/verify?workspace=acme"))
        .header("x-original-url", "garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn an_unreachable_session_store_answers_503_never_200() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dead = format!("redis://127.0.0.1:{port}");
    let srv = TestServer::start_with(
        Options::new(Backend {
            db: Db::Sqlite,
            sessions: Sessions::Redis,
        })
        .env("IAMGW_SESSION__REDIS_URL", &dead),
    )
    .await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let cookie = iam_gateway::crypto::random_token("").unwrap();
    let r = client()
        .get(srv.url("/auth/verify?workspace=acme"))
        .header("cookie", format!("iamgw_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let r = client()
        .get(srv.url("/auth/forward?workspace=acme"))
        .header("accept", "text/html")
        .header("cookie", format!("iamgw_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        client()
            .get(srv.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let ready = client().get(srv.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["session_store"], "unreachable");
    assert_eq!(body["database"], "ok");
    // Sign-in cannot complete either, and says so instead of pretending.
    let mut br = Browser::new();
    let r = br.sign_in(&srv, "ann@acme.test", PASSWORD, "/").await;
    assert_eq!(r.status, 503);
    assert!(r.set_cookie("iamgw_session").is_none());
}

#[tokio::test]
async fn redis_sessions_recover_when_redis_comes_back() {
    // A private redis-server on a free port, stopped and restarted mid-test.
    let Some(bin) = needs_tool("redis-server", "redis-server") else {
        return;
    };
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let log = temp_dir().join("redis.log");
    let start = || {
        std::process::Command::new(&bin)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--logfile")
            .arg(&log)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut redis = start();
    wait_for_port(port, &mut redis, "redis-server", &log).await;
    let url = format!("redis://127.0.0.1:{port}");
    let srv = TestServer::start_with(
        Options::new(Backend {
            db: Db::Sqlite,
            sessions: Sessions::Redis,
        })
        .env("IAMGW_SESSION__REDIS_URL", &url),
    )
    .await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let mut br = Browser::new();
    assert_eq!(
        br.sign_in(&srv, "ann@acme.test", PASSWORD, "/")
            .await
            .status,
        303
    );
    assert_eq!(br.verify(&srv, "workspace=acme").await.status, 200);
    redis.kill().unwrap();
    redis.wait().unwrap();
    // The revocation channel notices the dead Redis asynchronously (within
    // a second, docs/operations.md); until then a cached decision may
    // answer. From then on every answer is 503.
    let killed = std::time::Instant::now();
    while srv.state.fast.is_healthy() {
        assert!(
            killed.elapsed() < std::time::Duration::from_secs(1),
            "the revocation channel did not notice the dead Redis within 1 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        br.verify(&srv, "workspace=acme").await.status,
        503,
        "store down: 503, never 200"
    );
    assert_eq!(
        client()
            .get(srv.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    // Redis comes back empty (nothing kept on disk): the session is gone, so
    // 401 — and the gateway is ready again without a restart.
    let mut redis = start();
    let mut ready = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if client()
            .get(srv.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            == 200
        {
            ready = true;
            break;
        }
    }
    assert!(ready, "ready again after Redis returned");
    assert_eq!(br.verify(&srv, "workspace=acme").await.status, 401);
    let mut br = Browser::new();
    assert_eq!(
        br.sign_in(&srv, "ann@acme.test", PASSWORD, "/")
            .await
            .status,
        303
    );
    assert_eq!(br.verify(&srv, "workspace=acme").await.status, 200);
    redis.kill().unwrap();
    let _ = redis.wait();
}

#[tokio::test]
async fn metrics_count_requests_signins_and_decisions() {
    let srv = TestServer::start(sqlite()).await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let mut br = Browser::new();
    br.sign_in(&srv, "ann@acme.test", "wrong password here", "/")
        .await;
    br.sign_in(&srv, "ann@acme.test", PASSWORD, "/").await;
    br.verify(&srv, "workspace=acme").await;
    client()
        .get(srv.url("/auth/verify?workspace=acme"))
        .send()
        .await
        .unwrap();
    let text = client()
        .get(srv.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for needle in [
        "iamgw_signins_total{method=\"password\",outcome=\"failure\"} 1",
        "iamgw_signins_total{method=\"password\",outcome=\"success\"} 1",
        "iamgw_forward_auth_decisions_total{outcome=\"allow\"} 1",
        "iamgw_forward_auth_decisions_total{outcome=\"unauthenticated\"} 1",
        "iamgw_http_requests_total{route=\"/auth/verify\",method=\"GET\",status=\"200\"} 1",
        "iamgw_http_request_duration_seconds_bucket{route=\"/login/password\"",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
}

#[tokio::test]
async fn allowed_decisions_are_reused_briefly_and_any_revocation_drops_them() {
    for b in matrix() {
        let srv = TestServer::start(b).await;
        let (acme, _) = srv.bootstrap("acme", "ann@acme.test").await;
        let mia = srv
            .add_member(&acme, "mia@acme.test", &["source_admin"])
            .await;
        let mut br = Browser::new();
        br.sign_in(&srv, "mia@acme.test", PASSWORD, "/").await;
        // The cache is bypassed until the invalidation channel is up, and
        // while a heartbeat is late (a loaded machine): a pair of requests
        // with the channel healthy throughout must be a miss then a hit.
        let hit = |srv: &TestServer| {
            srv.state
                .fast
                .hits
                .load(std::sync::atomic::Ordering::SeqCst)
        };
        let mut pair = None;
        for _ in 0..5 {
            channel_up(&srv).await;
            let first = br.verify(&srv, "workspace=acme&role=source_admin").await;
            let hits = hit(&srv);
            let second = br.verify(&srv, "workspace=acme&role=source_admin").await;
            assert_eq!(second.status, 200);
            if hit(&srv) == hits + 1 {
                pair = Some((first, second));
                break;
            }
        }
        let (first, second) = pair.unwrap_or_else(|| panic!("{b:?}: never served from the cache"));
        assert_eq!(
            first.header("x-auth-assertion"),
            second.header("x-auth-assertion"),
            "assertion reused within half its life"
        );
        srv.clock.advance(std::time::Duration::from_secs(31));
        let third = br.verify(&srv, "workspace=acme&role=source_admin").await;
        assert_ne!(
            third.header("x-auth-assertion"),
            second.header("x-auth-assertion"),
            "{b:?}: a fresh assertion after 30 s"
        );
        // A role change through the API is seen on the next request.
        let mut owner = crate::access::Api::sign_in(&srv, "ann@acme.test").await;
        let (s, _) = owner
            .call(
                "PATCH",
                &format!("/api/v1/workspaces/acme/members/{mia}"),
                Some(serde_json::json!({"policies": [{"role": "source_read_only"}]})),
            )
            .await;
        assert_eq!(s, 200);
        assert_eq!(
            br.verify(&srv, "workspace=acme&role=source_admin")
                .await
                .status,
            403,
            "{b:?}: demotion seen at once"
        );
        // Logout is seen at once too (it flushes every instance's cache).
        br.verify(&srv, "workspace=acme&role=source_read_only")
            .await;
        let me: serde_json::Value =
            serde_json::from_str(&br.get(&srv.url("/api/v1/me")).await.body).unwrap();
        let stale = br.session_cookie().unwrap();
        br.post_form(
            &srv.url("/logout"),
            &[("csrf_token", me["csrf_token"].as_str().unwrap())],
        )
        .await;
        let mut old = Browser::new();
        old.cookies.insert("iamgw_session".into(), stale);
        assert_eq!(
            old.verify(&srv, "workspace=acme&role=source_read_only")
                .await
                .status,
            401,
            "{b:?}"
        );
        srv.stop().await;
    }
}

/// Waits until the revocation channel is live and its heartbeat on time.
async fn channel_up(srv: &TestServer) {
    for _ in 0..50 {
        if srv.state.fast.is_healthy() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("invalidation channel never came up");
}

#[tokio::test]
async fn cache_hits_read_the_session_store_only_when_configured_to() {
    // Shared stores only: one process on SQLite needs no channel at all.
    for b in matrix()
        .into_iter()
        .filter(|b| b.db != Db::Sqlite || b.sessions == Sessions::Redis)
    {
        for strict in [false, true] {
            let mode = if strict { "every_request" } else { "channel" };
            let srv = TestServer::start_with(
                Options::new(b).env("IAMGW_SESSION__REVOCATION_CHECK", mode),
            )
            .await;
            srv.bootstrap("acme", "ann@acme.test").await;
            let mut br = Browser::new();
            br.sign_in(&srv, "ann@acme.test", PASSWORD, "/").await;
            // A late heartbeat on a loaded machine bypasses the cache (as
            // designed); retry until three requests in a row ran with the
            // channel healthy and at least two of them were cache hits.
            let hits = |srv: &TestServer| {
                srv.state
                    .fast
                    .hits
                    .load(std::sync::atomic::Ordering::SeqCst)
            };
            let mut served = None;
            for _ in 0..5 {
                channel_up(&srv).await;
                let (checks_before, _) = srv.state.sessions.existence_checks();
                let hits_before = hits(&srv);
                for _ in 0..3 {
                    assert_eq!(br.verify(&srv, "workspace=acme").await.status, 200);
                }
                let served_hits = hits(&srv) - hits_before;
                if served_hits >= 2 {
                    let (checks, rounds) = srv.state.sessions.existence_checks();
                    served = Some((served_hits, checks - checks_before, checks, rounds));
                    break;
                }
            }
            let (served_hits, checks, total_checks, rounds) =
                served.unwrap_or_else(|| panic!("{b:?}: never served from the cache"));
            if !strict {
                assert_eq!(checks, 0, "{b:?}: channel mode reads nothing per hit");
                srv.stop().await;
                continue;
            }
            assert_eq!(checks, served_hits, "{b:?}: every cache hit was checked");
            assert!(rounds >= 1 && rounds <= total_checks, "{b:?}");
            // The session disappears behind the gateway's back (no flush on
            // the channel): the very next hit sees it.
            let key = iam_gateway::crypto::sha256_hex(br.session_cookie().unwrap().as_bytes());
            srv.state
                .sessions
                .kv()
                .delete(&format!("s:{key}"))
                .await
                .unwrap();
            assert_eq!(
                br.verify(&srv, "workspace=acme").await.status,
                401,
                "{b:?}: every_request sees a session gone without a flush"
            );
            let metrics = br.get(&srv.url("/metrics")).await.body;
            let (total_checks, _) = srv.state.sessions.existence_checks();
            assert!(
                metrics.contains(&format!("iamgw_session_checks_total {total_checks}")),
                "{b:?}: {metrics}"
            );
            srv.stop().await;
        }
    }
}

/// Cache invalidation belongs to the core operation, not to HTTP: a member
/// removed by calling the core directly (as the CLI or any other non-HTTP
/// path would) is refused on the very next forward-auth request, although
/// the allowed decision was being served from the cache.
#[tokio::test]
async fn a_removal_outside_http_drops_cached_decisions_at_once() {
    use iam_gateway::domain::roles::Policy;
    use iam_gateway::service::{access::Caller, members, tokens, Ctx};
    let srv = TestServer::start(sqlite()).await;
    let (acme, _) = srv.bootstrap("acme", "ann@acme.test").await;
    let mia = srv
        .add_member(&acme, "mia@acme.test", &["source_admin"])
        .await;
    let mut br = Browser::new();
    br.sign_in(&srv, "mia@acme.test", PASSWORD, "/").await;
    channel_up(&srv).await;
    let hits = || {
        srv.state
            .fast
            .hits
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    assert_eq!(br.verify(&srv, "workspace=acme").await.status, 200);
    let before = hits();
    assert_eq!(br.verify(&srv, "workspace=acme").await.status, 200);
    assert_eq!(hits(), before + 1, "the second answer came from the cache");

    let now = iam_gateway::clock::Clock::now(srv.state.clock.as_ref());
    let (token, _) = tokens::mint(
        srv.state.store.as_ref(),
        now,
        &acme,
        tokens::Kind::Api,
        "ops",
        vec![Policy::workspace("workspace_owner")],
        None,
    )
    .await
    .unwrap();
    let ws = srv
        .state
        .store
        .workspace_by_id(&acme)
        .await
        .unwrap()
        .unwrap();
    let ctx = Ctx {
        ws,
        caller: Caller::Token(token),
        ip: "127.0.0.1".into(),
        owner: true,
    };
    members::remove(&srv.state, &ctx, &mia).await.unwrap();
    assert_eq!(
        br.verify(&srv, "workspace=acme").await.status,
        403,
        "removed without HTTP, refused at once"
    );
}
