//! Password sign-in through the real pages, over HTTP, on every backend.

use crate::support::*;
use std::time::Duration;

#[tokio::test]
async fn sign_in_sets_a_safe_cookie_and_logout_ends_the_session() {
    for b in matrix() {
        let srv = TestServer::start(b).await;
        srv.bootstrap("acme", "ann@acme.test").await;
        let mut br = Browser::new();
        let done = br
            .sign_in(&srv, "Ann@Acme.test", PASSWORD, "/workspaces")
            .await;
        assert_eq!(done.status, 303, "{b:?}: {}", done.body);
        assert_eq!(done.header("location").as_deref(), Some("/workspaces"));
        let set = done.set_cookie("iamgw_session").expect("session cookie");
        for flag in ["HttpOnly", "SameSite=Lax", "Path=/"] {
            assert!(set.contains(flag), "{b:?}: {set} lacks {flag}");
        }
        assert!(!set.contains("Secure"), "plain http: no Secure flag");
        let value = br.session_cookie().unwrap();
        assert!(
            iam_gateway::crypto::b64url_decode(&value).unwrap().len() >= 32,
            "256-bit value"
        );
        assert!(
            !done.header("location").unwrap().contains(&value),
            "never in a URL"
        );

        let picker = br.get(&srv.url("/workspaces")).await;
        assert_eq!(picker.status, 200);
        assert!(
            picker.body.contains("acme") && picker.body.contains("Workspace Owner"),
            "{}",
            picker.body
        );

        let ok = br.verify(&srv, "workspace=acme").await;
        assert_eq!(ok.status, 200, "{b:?}");
        assert_eq!(ok.header("x-auth-email").as_deref(), Some("ann@acme.test"));

        let me = br.send(br.client.get(srv.url("/api/v1/me"))).await;
        assert_eq!(me.status, 200);
        let me: serde_json::Value = serde_json::from_str(&me.body).unwrap();
        assert_eq!(me["user"]["email"], "ann@acme.test");
        assert_eq!(me["workspaces"][0]["slug"], "acme");
        assert_eq!(me["workspaces"][0]["roles"][0], "workspace_owner");
        let csrf = me["csrf_token"].as_str().unwrap().to_string();

        let out = br
            .post_form(&srv.url("/logout"), &[("csrf_token", &csrf)])
            .await;
        assert_eq!(out.status, 303);
        assert!(out
            .set_cookie("iamgw_session")
            .unwrap()
            .contains("Max-Age=0"));
        let mut old = Browser::new();
        old.cookies.insert("iamgw_session".into(), value.clone());
        assert_eq!(
            old.verify(&srv, "workspace=acme").await.status,
            401,
            "{b:?}: dead after logout"
        );
        srv.stop().await;
    }
}

/// On SQLite (group commit) the writes of one request share one sync: a
/// password sign-in writes its session, the session's index entry, the
/// last login and the audit event, and is answered after exactly one sync
/// round, which covers all of them. A write outside a request still waits
/// for a sync of its own.
#[tokio::test]
async fn a_sign_in_is_answered_after_one_sync_for_all_its_writes() {
    let srv = TestServer::start(sqlite()).await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let rounds = || {
        srv.sql
            .db()
            .sync_rounds()
            .expect("a SQLite file commits through group commit")
    };
    let signed_in = || async {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE action = 'user.signed_in'")
                .fetch_one(srv.sql.db().read())
                .await
                .unwrap();
        n
    };
    let mut br = Browser::new();
    let page = br.get(&srv.url("/login")).await;
    let step = br
        .post_form(
            &srv.url("/login"),
            &[("email", "ann@acme.test"), ("csrf_token", &page.csrf())],
        )
        .await;
    assert_eq!(step.status, 200, "{}", step.body);
    assert_eq!(signed_in().await, 0);
    let before = rounds();
    let done = br
        .post_form(
            &srv.url("/login/password"),
            &[
                ("email", "ann@acme.test"),
                ("password", PASSWORD),
                ("csrf_token", &step.csrf()),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(rounds() - before, 1, "one sync, after every write");
    assert_eq!(br.verify(&srv, "workspace=acme").await.status, 200);
    let ann = srv
        .store()
        .user_by_email("ann@acme.test")
        .await
        .unwrap()
        .unwrap();
    assert!(ann.last_login_at.is_some(), "the last login was written");
    assert_eq!(signed_in().await, 1, "the audit event was written");

    let before = rounds();
    srv.sql.db().durable().await.unwrap();
    assert_eq!(rounds() - before, 1, "outside a request, a wait of its own");
    srv.stop().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_email_answer_the_same() {
    for b in matrix() {
        let srv = TestServer::start(b).await;
        srv.bootstrap("acme", "ann@acme.test").await;
        let mut br = Browser::new();
        let wrong = br
            .sign_in(
                &srv,
                "ann@acme.test",
                "not the password at all",
                "/workspaces",
            )
            .await;
        let unknown = br
            .sign_in(
                &srv,
                "nobody@acme.test",
                "not the password at all",
                "/workspaces",
            )
            .await;
        assert_eq!(wrong.status, 401, "{b:?}");
        assert_eq!(unknown.status, wrong.status);
        assert_eq!(
            wrong.body.replace("ann@acme.test", "X"),
            unknown.body.replace("nobody@acme.test", "X"),
            "{b:?}: same page"
        );
        assert!(
            wrong.set_cookie("iamgw_session").is_none()
                && unknown.set_cookie("iamgw_session").is_none()
        );
        assert!(wrong.body.contains("Incorrect email or password"));
        // The email step never reveals it either.
        let p = br.get(&srv.url("/login")).await;
        let csrf = p.csrf();
        let known = br
            .post_form(
                &srv.url("/login"),
                &[("email", "ann@acme.test"), ("csrf_token", &csrf)],
            )
            .await;
        let unknown = br
            .post_form(
                &srv.url("/login"),
                &[("email", "nobody@acme.test"), ("csrf_token", &csrf)],
            )
            .await;
        assert_eq!(known.status, unknown.status);
        assert_eq!(
            known.body.replace("ann@acme.test", "X"),
            unknown.body.replace("nobody@acme.test", "X")
        );
        srv.stop().await;
    }
}

#[tokio::test]
async fn a_planted_session_cookie_is_replaced_at_sign_in() {
    for b in matrix() {
        let srv = TestServer::start(b).await;
        let (ws, _) = srv.bootstrap("acme", "ann@acme.test").await;
        srv.add_member(&ws, "mallory@acme.test", &["minimal_access"])
            .await;
        // Mallory signs in and plants her cookie in the victim's browser.
        let mut mallory = Browser::new();
        assert_eq!(
            mallory
                .sign_in(&srv, "mallory@acme.test", PASSWORD, "/")
                .await
                .status,
            303
        );
        let planted = mallory.session_cookie().unwrap();
        let mut victim = Browser::new();
        victim
            .cookies
            .insert("iamgw_session".into(), planted.clone());
        let done = victim
            .sign_in(&srv, "ann@acme.test", PASSWORD, "/workspaces")
            .await;
        assert_eq!(done.status, 303, "{b:?}");
        let fresh = victim.session_cookie().unwrap();
        assert_ne!(fresh, planted, "{b:?}: new value at login");
        let v = victim.verify(&srv, "workspace=acme").await;
        assert_eq!(v.header("x-auth-email").as_deref(), Some("ann@acme.test"));
        assert_eq!(
            mallory.verify(&srv, "workspace=acme").await.status,
            401,
            "{b:?}: planted session ended"
        );
        srv.stop().await;
    }
}

#[tokio::test]
async fn idle_and_absolute_timeouts_follow_the_clock() {
    for b in matrix() {
        let srv = TestServer::start_with(
            Options::new(b)
                .env("IAMGW_SESSION__IDLE_TIMEOUT", "1h")
                .env("IAMGW_SESSION__ABSOLUTE_TIMEOUT", "3h"),
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
        for _ in 0..3 {
            srv.clock.advance(Duration::from_secs(55 * 60));
            assert_eq!(
                br.verify(&srv, "workspace=acme").await.status,
                200,
                "{b:?}: active within idle"
            );
        }
        srv.clock.advance(Duration::from_secs(20 * 60));
        assert_eq!(
            br.verify(&srv, "workspace=acme").await.status,
            401,
            "{b:?}: absolute"
        );
        let mut br = Browser::new();
        assert_eq!(
            br.sign_in(&srv, "ann@acme.test", PASSWORD, "/")
                .await
                .status,
            303
        );
        srv.clock.advance(Duration::from_secs(61 * 60));
        assert_eq!(
            br.verify(&srv, "workspace=acme").await.status,
            401,
            "{b:?}: idle"
        );
        srv.stop().await;
    }
}

#[tokio::test]
async fn return_to_outside_the_allow_list_becomes_the_default_page() {
    let b = sqlite();
    let srv = TestServer::start_with(
        Options::new(b).env("IAMGW_ALLOWED_RETURN_ORIGINS", "https://app.example.com"),
    )
    .await;
    srv.bootstrap("acme", "ann@acme.test").await;
    for (asked, expected) in [
        ("//evil.test", "/workspaces"),
        ("/\\evil.test", "/workspaces"),
        ("%09//evil.test", "/workspaces"),
        ("https://app.example.com.evil.test/", "/workspaces"),
        ("javascript:alert(1)", "/workspaces"),
        (
            "https://app.example.com/dash",
            "https://app.example.com/dash",
        ),
        ("/w/acme/access", "/w/acme/access"),
    ] {
        let mut br = Browser::new();
        let done = br.sign_in(&srv, "ann@acme.test", PASSWORD, asked).await;
        assert_eq!(done.status, 303);
        assert_eq!(
            done.header("location").as_deref(),
            Some(expected),
            "return_to {asked:?}"
        );
    }
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused_and_change_nothing() {
    let b = sqlite();
    let srv = TestServer::start(b).await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let mut br = Browser::new();
    br.get(&srv.url("/login")).await;
    let r = br
        .post_form(
            &srv.url("/login/password"),
            &[("email", "ann@acme.test"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(r.set_cookie("iamgw_session").is_none());
    // A cross-site page replaying a token of its own browser: wrong Origin.
    let page = br.get(&srv.url("/login")).await;
    let csrf = page.csrf();
    let req = br
        .client
        .post(srv.url("/login/password"))
        .header("origin", "https://evil.test")
        .form(&[
            ("email", "ann@acme.test"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ]);
    let r = br.send(req).await;
    assert_eq!(r.status, 403);
    assert!(r.set_cookie("iamgw_session").is_none());
    // Logout without a token does not end the session.
    assert_eq!(
        br.sign_in(&srv, "ann@acme.test", PASSWORD, "/")
            .await
            .status,
        303
    );
    let r = br.post_form(&srv.url("/logout"), &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(br.verify(&srv, "workspace=acme").await.status, 200);
    let user = srv
        .store()
        .user_by_email("ann@acme.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        srv.state
            .sessions
            .sessions_of(&user.id)
            .await
            .unwrap()
            .len(),
        1,
        "nothing persisted by refused posts"
    );
}

#[tokio::test]
async fn a_huge_password_is_refused_quickly_with_400() {
    let srv = TestServer::start(sqlite()).await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let big = "p".repeat(10 * 1024);
    let mut br = Browser::new();
    let r = br.sign_in(&srv, "ann@acme.test", &big, "/").await;
    assert_eq!(r.status, 400);
    assert!(r.set_cookie("iamgw_session").is_none());
}

#[tokio::test]
async fn me_requires_a_session_and_answers_problem_json() {
    let srv = TestServer::start(sqlite()).await;
    let r = client().get(srv.url("/api/v1/me")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], 401);
    assert!(body["type"].is_string() && body["title"].is_string() && body["detail"].is_string());
}

#[tokio::test]
async fn every_page_carries_a_csrf_meta_tag_and_security_headers() {
    let srv = TestServer::start(sqlite()).await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let mut br = Browser::new();
    let login = br.get(&srv.url("/login")).await;
    assert!(!login.csrf().is_empty());
    assert_eq!(login.header("x-frame-options").as_deref(), Some("DENY"));
    assert!(login
        .header("content-security-policy")
        .unwrap()
        .contains("frame-ancestors 'none'"));
    br.sign_in(&srv, "ann@acme.test", PASSWORD, "/").await;
    let picker = br.get(&srv.url("/workspaces")).await;
    assert!(!picker.csrf().is_empty());
    // Not signed in: the picker sends you to sign in.
    let r = Browser::new().get(&srv.url("/workspaces")).await;
    assert_eq!(r.status, 303);
    assert!(r.header("location").unwrap().starts_with("/login"));
}
