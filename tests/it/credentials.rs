//! TOTP two-factor, recovery codes, brute-force protection, password policy,
//! password change and reset (issue: credentials hardening).

use crate::smtp_sink::SmtpSink;
use crate::support::*;
use iam_gateway::clock::Clock;
use iam_gateway::totp;
use std::time::Duration;

fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    let i = body
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in page"))
        + start.len();
    let j = body[i..].find(end).unwrap() + i;
    &body[i..j]
}

/// Turns on TOTP for the signed-in browser through the account pages;
/// returns the base32 secret and the recovery codes.
async fn enrol(srv: &TestServer, br: &mut Browser) -> (String, Vec<String>) {
    let account = br.get(&srv.url("/account")).await;
    assert_eq!(account.status, 200);
    let setup = br
        .post_form(
            &srv.url("/account/mfa/setup"),
            &[("csrf_token", &account.csrf())],
        )
        .await;
    assert_eq!(setup.status, 200, "{}", setup.body);
    let secret = between(&setup.body, "<code id=\"totp-secret\">", "</code>").to_string();
    let uri = between(&setup.body, "<code id=\"otpauth-uri\">", "</code>").replace("&amp;", "&");
    assert!(
        uri.starts_with("otpauth://totp/") && uri.contains(&format!("secret={secret}")),
        "{uri}"
    );
    assert!(
        setup.body.contains("<svg"),
        "QR code rendered by the server"
    );
    let raw = totp::base32_decode(&secret).unwrap();
    // A wrong code first: refused, nothing turned on.
    let wrong = br
        .post_form(
            &srv.url("/account/mfa/confirm"),
            &[("code", "000000"), ("csrf_token", &setup.csrf())],
        )
        .await;
    assert_eq!(wrong.status, 401);
    let before = br.session_cookie().unwrap();
    let code = totp::code_at_step(&raw, totp::step_of(srv.clock.now()));
    let done = br
        .post_form(
            &srv.url("/account/mfa/confirm"),
            &[("code", &code), ("csrf_token", &wrong.csrf())],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_ne!(
        br.session_cookie().unwrap(),
        before,
        "privilege change rotates the session"
    );
    let list = between(
        &done.body,
        "<ul class=\"codes\" id=\"recovery-codes\">",
        "</ul>",
    );
    let codes: Vec<String> = list
        .split("<code>")
        .skip(1)
        .map(|c| c.split("</code>").next().unwrap().to_string())
        .collect();
    assert_eq!(codes.len(), 10);
    (secret, codes)
}

async fn password_step(srv: &TestServer, br: &mut Browser, email: &str) -> Page {
    br.sign_in(srv, email, PASSWORD, "/workspaces").await
}

async fn mfa_step(srv: &TestServer, br: &mut Browser, code: &str) -> Page {
    let page = br.get(&srv.url("/login/mfa")).await;
    assert_eq!(page.status, 200, "pending second step");
    br.post_form(
        &srv.url("/login/mfa"),
        &[("code", code), ("csrf_token", &page.csrf())],
    )
    .await
}

#[tokio::test]
async fn totp_enrolment_then_sign_in_needs_a_fresh_code() {
    for b in matrix() {
        let srv = TestServer::start(b).await;
        srv.bootstrap("acme", "ann@acme.test").await;
        let mut br = Browser::new();
        assert_eq!(
            password_step(&srv, &mut br, "ann@acme.test").await.status,
            303
        );
        let (secret, codes) = enrol(&srv, &mut br).await;
        let raw = totp::base32_decode(&secret).unwrap();

        // Next sign-in: the password alone gives no session.
        srv.clock.advance(Duration::from_secs(60));
        let mut b2 = Browser::new();
        let step1 = password_step(&srv, &mut b2, "ann@acme.test").await;
        assert_eq!(step1.status, 303);
        assert_eq!(step1.header("location").as_deref(), Some("/login/mfa"));
        assert!(
            step1.set_cookie("iamgw_session").is_none(),
            "{b:?}: no session before the second factor"
        );
        let now = srv.clock.now();
        let code = totp::code_at_step(&raw, totp::step_of(now));
        let ok = mfa_step(&srv, &mut b2, &code).await;
        assert_eq!(ok.status, 303, "{b:?}: {}", ok.body);
        assert_eq!(ok.header("location").as_deref(), Some("/workspaces"));
        assert_eq!(b2.verify(&srv, "workspace=acme").await.status, 200);

        // The same code again (replay) is refused, as is the previous step's.
        let mut b3 = Browser::new();
        password_step(&srv, &mut b3, "ann@acme.test").await;
        assert_eq!(
            mfa_step(&srv, &mut b3, &code).await.status,
            401,
            "{b:?}: replayed code"
        );
        let older = totp::code_at_step(&raw, totp::step_of(now) - 1);
        assert_eq!(
            mfa_step(&srv, &mut b3, &older).await.status,
            401,
            "{b:?}: step before the last accepted"
        );
        // One step of skew ahead is fine; two are not.
        let far = totp::code_at_step(&raw, totp::step_of(now) + 2);
        assert_eq!(
            mfa_step(&srv, &mut b3, &far).await.status,
            401,
            "{b:?}: outside the skew window"
        );
        let next = totp::code_at_step(&raw, totp::step_of(now) + 1);
        assert_eq!(
            mfa_step(&srv, &mut b3, &next).await.status,
            303,
            "{b:?}: +1 step skew"
        );

        // A recovery code works once.
        let mut b4 = Browser::new();
        password_step(&srv, &mut b4, "ann@acme.test").await;
        assert_eq!(
            mfa_step(&srv, &mut b4, &codes[0].to_uppercase())
                .await
                .status,
            303,
            "{b:?}: recovery code"
        );
        let mut b5 = Browser::new();
        password_step(&srv, &mut b5, "ann@acme.test").await;
        assert_eq!(
            mfa_step(&srv, &mut b5, &codes[0]).await.status,
            401,
            "{b:?}: recovery code used twice"
        );
        srv.stop().await;
    }
}

#[tokio::test]
async fn turning_two_factor_off_needs_a_code() {
    let srv = TestServer::start(sqlite()).await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let mut br = Browser::new();
    password_step(&srv, &mut br, "ann@acme.test").await;
    let (_, codes) = enrol(&srv, &mut br).await;
    let page = br.get(&srv.url("/account")).await;
    let refused = br
        .post_form(
            &srv.url("/account/mfa/disable"),
            &[("code", "123456"), ("csrf_token", &page.csrf())],
        )
        .await;
    assert_eq!(refused.status, 401);
    assert!(srv
        .store()
        .user_by_email("ann@acme.test")
        .await
        .unwrap()
        .unwrap()
        .mfa_enabled());
    let off = br
        .post_form(
            &srv.url("/account/mfa/disable"),
            &[("code", &codes[1]), ("csrf_token", &page.csrf())],
        )
        .await;
    assert_eq!(off.status, 303);
    assert!(!srv
        .store()
        .user_by_email("ann@acme.test")
        .await
        .unwrap()
        .unwrap()
        .mfa_enabled());
    // Password alone signs in again.
    let mut b2 = Browser::new();
    let r = password_step(&srv, &mut b2, "ann@acme.test").await;
    assert_eq!(r.header("location").as_deref(), Some("/workspaces"));
}

#[tokio::test]
async fn repeated_failures_are_throttled_softly_even_for_the_right_password() {
    for b in matrix() {
        let srv = TestServer::start(b).await;
        srv.bootstrap("acme", "ann@acme.test").await;
        for account in ["ann@acme.test", "ghost@acme.test"] {
            let mut br = Browser::new();
            for i in 1..=5 {
                let r = br
                    .sign_in(&srv, account, "wrong password, sorry", "/")
                    .await;
                assert_eq!(r.status, 401, "{b:?} {account}: failure {i}");
            }
            let sixth = br
                .sign_in(&srv, account, "wrong password, sorry", "/")
                .await;
            assert_eq!(sixth.status, 429, "{b:?} {account}: 6th failure");
            let wait: i64 = sixth.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=60).contains(&wait), "first wait at most 60 s: {wait}");
            if account == "ann@acme.test" {
                let right = br.sign_in(&srv, account, PASSWORD, "/").await;
                assert_eq!(
                    right.status, 429,
                    "{b:?}: locked even with the right password"
                );
                assert!(right.set_cookie("iamgw_session").is_none());
                srv.clock.advance(Duration::from_secs(wait as u64 + 1));
                // Growing: the next failure waits longer.
                let again = br
                    .sign_in(&srv, account, "wrong password, sorry", "/")
                    .await;
                assert_eq!(again.status, 429);
                let wait2: i64 = again.header("retry-after").unwrap().parse().unwrap();
                assert!(wait2 > wait, "{wait2} > {wait}");
                srv.clock.advance(Duration::from_secs(wait2 as u64 + 1));
                let ok = br.sign_in(&srv, account, PASSWORD, "/").await;
                assert_eq!(ok.status, 303, "{b:?}: soft lock released");
            }
        }
        srv.stop().await;
    }
}

async fn attempt(srv: &TestServer, who: &str, xff: &str) -> u16 {
    let mut br = Browser::new();
    let p = br.get(&srv.url("/login")).await;
    let req = br
        .client
        .post(srv.url("/login/password"))
        .header("x-forwarded-for", xff)
        .form(&[
            ("email", who),
            ("password", "wrong password, sorry"),
            ("csrf_token", p.csrf().as_str()),
        ]);
    br.send(req).await.status
}

#[tokio::test]
async fn the_client_address_comes_from_x_forwarded_for_only_behind_trusted_proxies() {
    let srv = TestServer::start(sqlite()).await;
    srv.bootstrap("acme", "ann@acme.test").await;
    // 20 failures from one client address, spread over accounts so no
    // account lock is reached; the 21st is refused.
    for i in 0..20 {
        let who = format!("user{}@acme.test", i % 4);
        assert_eq!(attempt(&srv, &who, "203.0.113.9").await, 401, "failure {i}");
    }
    assert_eq!(attempt(&srv, "user9@acme.test", "203.0.113.9").await, 429);
    assert_eq!(
        attempt(&srv, "user9@acme.test", "203.0.113.10").await,
        401,
        "another client is not throttled"
    );
    // Behind no trusted proxy, X-Forwarded-For is ignored: all from 127.0.0.1.
    let direct =
        TestServer::start_with(Options::new(sqlite()).env("IAMGW_TRUSTED_PROXIES", "[]")).await;
    for i in 0..20 {
        let who = format!("user{}@acme.test", i % 4);
        let xff = format!("198.51.100.{i}");
        assert_eq!(attempt(&direct, &who, &xff).await, 401, "failure {i}");
    }
    assert_eq!(
        attempt(&direct, "user9@acme.test", "198.51.100.99").await,
        429,
        "spoofed X-Forwarded-For does not escape the IP limit"
    );
}

#[tokio::test]
async fn brute_force_counters_are_shared_by_instances_on_one_redis() {
    if needs(redis_url(), "IAMGW_TEST_REDIS_URL is unset or empty").is_none() {
        return;
    }
    // One deployment: PostgreSQL when there is one (as in production).
    let db = if needs(
        pg_url(),
        "IAMGW_TEST_DATABASE_URL is unset or empty: on SQLite instead",
    )
    .is_some()
    {
        Db::Postgres
    } else {
        Db::Sqlite
    };
    let dir = temp_dir();
    let url = fresh_database_url(db, &dir).await;
    let b = Backend {
        db,
        sessions: Sessions::Redis,
    };
    let a = TestServer::start_with(Options {
        database_url: Some(url.clone()),
        dir: Some(dir.clone()),
        ..Options::new(b)
    })
    .await;
    let bb = TestServer::start_with(Options {
        database_url: Some(url),
        dir: Some(dir),
        ..Options::new(b)
    })
    .await;
    let email = format!("shared-{}@acme.test", uuid::Uuid::new_v4().simple());
    for i in 0..5 {
        let srv = if i % 2 == 0 { &a } else { &bb };
        let mut br = Browser::new();
        assert_eq!(
            br.sign_in(srv, &email, "wrong password, sorry", "/")
                .await
                .status,
            401
        );
    }
    let mut br = Browser::new();
    assert_eq!(
        br.sign_in(&bb, &email, "wrong password, sorry", "/")
            .await
            .status,
        429,
        "sixth failure across instances"
    );
    let mut br = Browser::new();
    assert_eq!(
        br.sign_in(&a, &email, "wrong password, sorry", "/")
            .await
            .status,
        429,
        "lock seen by the other instance"
    );
}

#[tokio::test]
async fn require_mfa_refuses_password_only_sessions_until_enrolled() {
    for b in matrix() {
        let srv = TestServer::start(b).await;
        let (acme, _) = srv.bootstrap("acme", "ann@acme.test").await;
        srv.bootstrap("beta", "ann@acme.test").await;
        let _ = acme;
        let mut br = Browser::new();
        password_step(&srv, &mut br, "ann@acme.test").await;
        let me: serde_json::Value =
            serde_json::from_str(&br.get(&srv.url("/api/v1/me")).await.body).unwrap();
        let csrf = me["csrf_token"].as_str().unwrap().to_string();
        // Without the CSRF header: refused, nothing changed.
        let r = br
            .send(
                br.client
                    .patch(srv.url("/api/v1/workspaces/acme/settings"))
                    .json(&serde_json::json!({"require_mfa": true})),
            )
            .await;
        assert_eq!(r.status, 403);
        let r = br
            .send(
                br.client
                    .patch(srv.url("/api/v1/workspaces/acme/settings"))
                    .header("x-csrf-token", &csrf)
                    .json(&serde_json::json!({"require_mfa": true})),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        // Require SSO cannot be turned on from a password session.
        let r = br
            .send(
                br.client
                    .patch(srv.url("/api/v1/workspaces/acme/settings"))
                    .header("x-csrf-token", &csrf)
                    .json(&serde_json::json!({"require_sso": true})),
            )
            .await;
        assert_eq!(r.status, 403);
        let v = br.verify(&srv, "workspace=acme").await;
        assert_eq!(v.status, 401, "{b:?}");
        assert_eq!(v.header("x-auth-reason").as_deref(), Some("mfa_required"));
        assert!(v
            .header("location")
            .unwrap()
            .ends_with("/account#two-factor"));
        assert_eq!(
            br.verify(&srv, "workspace=beta").await.status,
            200,
            "{b:?}: other workspace unaffected"
        );
        enrol(&srv, &mut br).await;
        assert_eq!(
            br.verify(&srv, "workspace=acme").await.status,
            200,
            "{b:?}: the upgraded session satisfies it"
        );
        srv.stop().await;
    }
}

#[tokio::test]
async fn a_password_change_ends_every_other_session() {
    for b in matrix() {
        let srv = TestServer::start(b).await;
        srv.bootstrap("acme", "ann@acme.test").await;
        let mut a = Browser::new();
        let mut other = Browser::new();
        password_step(&srv, &mut a, "ann@acme.test").await;
        password_step(&srv, &mut other, "ann@acme.test").await;
        let old_a = a.session_cookie().unwrap();
        let page = a.get(&srv.url("/account")).await;
        let weak = a
            .post_form(
                &srv.url("/account/password"),
                &[
                    ("current_password", PASSWORD),
                    ("new_password", "password12345"),
                    ("csrf_token", &page.csrf()),
                ],
            )
            .await;
        assert_eq!(weak.status, 400, "policy: too easy to guess");
        let wrong = a
            .post_form(
                &srv.url("/account/password"),
                &[
                    ("current_password", "not it at all"),
                    ("new_password", "a brand new passphrase here"),
                    ("csrf_token", &page.csrf()),
                ],
            )
            .await;
        assert_eq!(wrong.status, 401);
        assert_eq!(
            other.verify(&srv, "workspace=acme").await.status,
            200,
            "refused changes end nothing"
        );
        let done = a
            .post_form(
                &srv.url("/account/password"),
                &[
                    ("current_password", PASSWORD),
                    ("new_password", "a brand new passphrase here"),
                    ("csrf_token", &page.csrf()),
                ],
            )
            .await;
        assert_eq!(done.status, 303, "{}", done.body);
        assert_eq!(
            other.verify(&srv, "workspace=acme").await.status,
            401,
            "{b:?}: other session ended"
        );
        assert_ne!(a.session_cookie().unwrap(), old_a);
        assert_eq!(
            a.verify(&srv, "workspace=acme").await.status,
            200,
            "{b:?}: this browser carries on with a new cookie"
        );
        let mut stale = Browser::new();
        stale.cookies.insert("iamgw_session".into(), old_a);
        assert_eq!(stale.verify(&srv, "workspace=acme").await.status, 401);
        let mut fresh = Browser::new();
        assert_eq!(
            fresh
                .sign_in(&srv, "ann@acme.test", "a brand new passphrase here", "/")
                .await
                .status,
            303
        );
        srv.stop().await;
    }
}

#[tokio::test]
async fn forgot_password_mails_a_single_use_link_that_resets_it() {
    let sink = SmtpSink::start().await;
    let srv =
        TestServer::start_with(Options::new(sqlite()).env("IAMGW_MAIL__SMTP_URL", &sink.url()))
            .await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let mut signed_in = Browser::new();
    password_step(&srv, &mut signed_in, "ann@acme.test").await;

    let mut br = Browser::new();
    let form = br.get(&srv.url("/login/forgot")).await;
    let unknown = br
        .post_form(
            &srv.url("/login/forgot"),
            &[("email", "nobody@acme.test"), ("csrf_token", &form.csrf())],
        )
        .await;
    let known = br
        .post_form(
            &srv.url("/login/forgot"),
            &[("email", "Ann@acme.test"), ("csrf_token", &form.csrf())],
        )
        .await;
    assert_eq!(unknown.status, known.status);
    assert_eq!(
        unknown.body, known.body,
        "same answer whether or not the account exists"
    );
    let mail = sink.wait_for(1).await;
    assert!(mail.contains("ann@acme.test"), "{mail}");
    let link = mail
        .split_whitespace()
        .find(|w| w.contains("/reset-password/"))
        .unwrap()
        .to_string();
    let path = &link[link.find("/reset-password/").unwrap()..];
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sink.count(), 1, "no mail for the unknown address");

    let page = br.get(&srv.url(path)).await;
    assert_eq!(page.status, 200);
    let weak = br
        .post_form(
            &srv.url(path),
            &[
                ("password", "aaaaaaaaaaaaaaaa"),
                ("csrf_token", &page.csrf()),
            ],
        )
        .await;
    assert_eq!(weak.status, 400);
    let done = br
        .post_form(
            &srv.url(path),
            &[
                ("password", "a brand new passphrase here"),
                ("csrf_token", &page.csrf()),
            ],
        )
        .await;
    assert_eq!(done.status, 200);
    let again = br
        .post_form(
            &srv.url(path),
            &[
                ("password", "yet another new passphrase"),
                ("csrf_token", &page.csrf()),
            ],
        )
        .await;
    assert_eq!(again.status, 400, "single use");
    assert_eq!(
        signed_in.verify(&srv, "workspace=acme").await.status,
        401,
        "reset ends existing sessions"
    );
    assert_eq!(
        Browser::new()
            .sign_in(&srv, "ann@acme.test", "a brand new passphrase here", "/")
            .await
            .status,
        303
    );

    // Links expire after an hour.
    let form = br.get(&srv.url("/login/forgot")).await;
    br.post_form(
        &srv.url("/login/forgot"),
        &[("email", "ann@acme.test"), ("csrf_token", &form.csrf())],
    )
    .await;
    let mail = sink.wait_for(2).await;
    let link = mail
        .split_whitespace()
        .find(|w| w.contains("/reset-password/"))
        .unwrap()
        .to_string();
    srv.clock.advance(Duration::from_secs(3601));
    assert_eq!(
        br.get(&srv.url(&link[link.find("/reset-password/").unwrap()..]))
            .await
            .status,
        400
    );
}

#[tokio::test]
async fn an_owner_can_reset_a_members_two_factor_and_it_is_audited() {
    let srv = TestServer::start(sqlite()).await;
    let (acme, _) = srv.bootstrap("acme", "ann@acme.test").await;
    let mia = srv
        .add_member(&acme, "mia@acme.test", &["workspace_member"])
        .await;
    let mut mb = Browser::new();
    password_step(&srv, &mut mb, "mia@acme.test").await;
    enrol(&srv, &mut mb).await;
    // Mia (not an owner) cannot reset anyone.
    let me: serde_json::Value =
        serde_json::from_str(&mb.get(&srv.url("/api/v1/me")).await.body).unwrap();
    let r = mb
        .send(
            mb.client
                .delete(srv.url(&format!("/api/v1/workspaces/acme/members/{mia}/mfa")))
                .header("x-csrf-token", me["csrf_token"].as_str().unwrap()),
        )
        .await;
    assert_eq!(r.status, 403);
    let mut owner = Browser::new();
    password_step(&srv, &mut owner, "ann@acme.test").await;
    let me: serde_json::Value =
        serde_json::from_str(&owner.get(&srv.url("/api/v1/me")).await.body).unwrap();
    let r = owner
        .send(
            owner
                .client
                .delete(srv.url(&format!("/api/v1/workspaces/acme/members/{mia}/mfa")))
                .header("x-csrf-token", me["csrf_token"].as_str().unwrap()),
        )
        .await;
    assert_eq!(r.status, 204);
    assert!(!srv
        .store()
        .user_by_id(&mia)
        .await
        .unwrap()
        .unwrap()
        .mfa_enabled());
    let sql = srv.database_url.clone();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect(&sql)
        .await
        .unwrap();
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'member.mfa_reset' AND target = ?",
    )
    .bind(&mia)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(n, 1);
}
