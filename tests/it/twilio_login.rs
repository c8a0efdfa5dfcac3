//! Twilio Unified Login on the gateway: hand-off from the console, linking,
//! silent-link refusal, prompt=none, and hostile issuers — with cookie jars
//! on both origins and real HTTP only.

use crate::access::Api;
use crate::oidc_fixture::{
    Fixture, Misbehaviour, CLIENT_ID as FIX_CLIENT_ID, CLIENT_SECRET as FIX_CLIENT_SECRET,
};
use crate::support::*;
use iam_gateway::clock::Clock;
use iam_gateway::twilio_issuer::ClientRegistration;
use serde_json::{json, Value};

const SECRET: &str = "pair-client-secret";

struct Pair {
    gw: TestServer,
    iss: IssuerServer,
}

/// A gateway whose Twilio issuer is a separate simulated issuer (external
/// mode: discovery over HTTP, like the real one).
async fn pair(b: Backend) -> Pair {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw_base = format!("http://{}", listener.local_addr().unwrap());
    let dir = temp_dir();
    let db = fresh_database_url(b.db, &dir).await;
    let client = ClientRegistration {
        client_id: "segment".into(),
        client_secret: SECRET.into(),
        redirect_uris: vec![format!("{gw_base}/auth/twilio/callback")],
    };
    let iss = IssuerServer::start_with_client(
        b,
        dir,
        db,
        client,
        format!("{gw_base}/login/twilio?return_to=%2Fworkspaces"),
    )
    .await;
    let gw = TestServer::start_with(Options {
        listener: Some(listener),
        ..Options::new(b)
            .env("IAMGW_TWILIO__MODE", "external")
            .env("IAMGW_TWILIO__ISSUER_URL", &iss.base)
            .env("IAMGW_TWILIO__CLIENT_ID", "segment")
            .env("IAMGW_TWILIO__CLIENT_SECRET", SECRET)
    })
    .await;
    Pair { gw, iss }
}

/// Follows redirects across origins (GET), as a browser would; returns the
/// last page and its URL.
async fn navigate(br: &mut Browser, start: &str) -> (Page, String) {
    let mut url = url::Url::parse(start).unwrap();
    for _ in 0..10 {
        let page = br.get(url.as_str()).await;
        if !(300..400).contains(&page.status) {
            return (page, url.to_string());
        }
        url = url.join(&page.header("location").unwrap()).unwrap();
    }
    panic!("too many redirects from {start}");
}

async fn issuer_sign_in(br: &mut Browser, iss: &IssuerServer, email: &str) {
    let page = br.get(&iss.url("/login?return_to=%2Fconsole")).await;
    let done = br
        .post_form(
            &iss.url("/login"),
            &[
                ("email", email),
                ("password", PASSWORD),
                ("csrf_token", &page.csrf()),
                ("return_to", "/console"),
            ],
        )
        .await;
    assert_eq!(
        done.header("location").as_deref(),
        Some("/console"),
        "signed in at Twilio"
    );
}

async fn me(br: &mut Browser, gw: &TestServer) -> Value {
    serde_json::from_str(&br.get(&gw.url("/api/v1/me")).await.body).unwrap()
}

#[tokio::test]
async fn the_console_hands_a_signed_in_twilio_user_to_the_gateway_without_a_second_sign_in() {
    for b in matrix() {
        let Pair { gw, iss } = pair(b).await;
        iss.add_account("tina@twilio.test", "Tina Twilio").await;
        let mut br = Browser::new();
        issuer_sign_in(&mut br, &iss, "tina@twilio.test").await;
        let console = br.get(&iss.url("/console")).await;
        let href = console
            .body
            .split("href=\"")
            .find(|s| s.contains("data-product=\"Segment\""))
            .map(|s| s.split('"').next().unwrap().replace("&amp;", "&"))
            .expect("Segment in the product switcher");
        assert!(href.starts_with(&gw.base), "{href}");
        let (page, url) = navigate(&mut br, &href).await;
        assert_eq!(url, gw.url("/workspaces"), "{b:?}: landed on the gateway");
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(
            br.session_cookie().is_some(),
            "{b:?}: signed in with no credentials posted to the gateway"
        );
        let who = me(&mut br, &gw).await;
        assert_eq!(who["user"]["email"], "tina@twilio.test");
        assert_eq!(who["user"]["name"], "Tina Twilio");
        assert_eq!(who["auth_method"], "twilio");
        assert_eq!(
            who["workspaces"].as_array().unwrap().len(),
            0,
            "a new user has no workspaces"
        );
        // ...and can accept invitations to the email Twilio verified.
        gw.bootstrap("acme", "ann@acme.test").await;
        let mut owner = Api::sign_in(&gw, "ann@acme.test").await;
        let (s, _) = owner.call("POST", "/api/v1/workspaces/acme/invitations", Some(json!({"email": "tina@twilio.test", "policies": [{"role": "workspace_member"}]}))).await;
        assert_eq!(s, 201);
        // No SMTP configured: the invitation waits in the outbox.
        let body = outbox_body(&gw, "tina@twilio.test").await;
        let link = body
            .split_whitespace()
            .find(|w| w.contains("/invitations/"))
            .unwrap();
        let path = &link[link.find("/invitations/").unwrap()..];
        let p = br.get(&gw.url(path)).await;
        assert!(p.body.contains("Accept invitation"), "{}", p.body);
        let r = br
            .post_form(&gw.url(path), &[("csrf_token", &p.csrf())])
            .await;
        assert_eq!(r.status, 303);
        let v = br.verify(&gw, "workspace=acme").await;
        assert_eq!(v.status, 200);
        assert_eq!(v.header("x-auth-method").as_deref(), Some("twilio"));
        gw.stop().await;
        iss.stop().await;
    }
}

#[tokio::test]
async fn linking_moves_sign_in_to_twilio_and_the_profile_follows_it() {
    let Pair { gw, iss } = pair(sqlite()).await;
    gw.bootstrap("acme", "ann@acme.test").await;
    iss.add_account("ann.t@twilio.test", "Ann from Twilio")
        .await;
    let mut br = Browser::new();
    assert_eq!(
        br.sign_in(&gw, "ann@acme.test", PASSWORD, "/").await.status,
        303
    );
    let account = br.get(&gw.url("/account")).await;
    assert!(account.body.contains("Link Twilio account"));
    let start = br
        .post_form(
            &gw.url("/account/twilio/link"),
            &[("csrf_token", &account.csrf())],
        )
        .await;
    assert_eq!(start.status, 303);
    let authorize = start.header("location").unwrap();
    assert!(authorize.starts_with(&iss.base) && authorize.contains("code_challenge_method=S256"));
    // Not signed in at Twilio yet: its sign-in page, then back to the gateway.
    let (login, login_url) = navigate(&mut br, &authorize).await;
    assert!(login_url.starts_with(&iss.url("/login")), "{login_url}");
    let return_to = url::Url::parse(&login_url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "return_to")
        .unwrap()
        .1
        .to_string();
    let done = br
        .post_form(
            &iss.url("/login"),
            &[
                ("email", "ann.t@twilio.test"),
                ("password", PASSWORD),
                ("csrf_token", &login.csrf()),
                ("return_to", &return_to),
            ],
        )
        .await;
    let next = url::Url::parse(&iss.base)
        .unwrap()
        .join(&done.header("location").unwrap())
        .unwrap();
    let (page, url) = navigate(&mut br, next.as_str()).await;
    assert!(url.starts_with(&gw.url("/account")), "{url}: {}", page.body);
    assert!(page.body.contains("Linked to Twilio account"));
    // The gateway password no longer signs Ann in.
    let mut other = Browser::new();
    assert_eq!(
        other
            .sign_in(&gw, "ann@acme.test", PASSWORD, "/")
            .await
            .status,
        401
    );
    // A name change at Twilio shows at the next Twilio sign-in.
    let iss_account = br.get(&iss.url("/account")).await;
    let r = br
        .post_form(
            &iss.url("/account/profile"),
            &[("name", "Ann Renamed"), ("csrf_token", &iss_account.csrf())],
        )
        .await;
    assert_eq!(r.status, 303);
    let mut fresh = Browser::new();
    fresh.cookies = br.cookies.clone();
    fresh.cookies.remove("iamgw_session");
    let (_, url) = navigate(&mut fresh, &gw.url("/login/twilio?return_to=%2Fworkspaces")).await;
    assert_eq!(url, gw.url("/workspaces"));
    let who = me(&mut fresh, &gw).await;
    assert_eq!(who["user"]["name"], "Ann Renamed");
    assert_eq!(
        who["user"]["email"], "ann.t@twilio.test",
        "email follows Twilio (verified)"
    );
    let v = fresh
        .verify(&gw, "workspace=acme&role=workspace_owner")
        .await;
    assert_eq!(v.status, 200, "same user, same workspaces");
    // Unlinking needs a new password; then the password works again.
    let account = fresh.get(&gw.url("/account")).await;
    let weak = fresh
        .post_form(
            &gw.url("/account/twilio/unlink"),
            &[("new_password", "short"), ("csrf_token", &account.csrf())],
        )
        .await;
    assert_eq!(weak.status, 400);
    let ok = fresh
        .post_form(
            &gw.url("/account/twilio/unlink"),
            &[
                ("new_password", "a brand new passphrase here"),
                ("csrf_token", &account.csrf()),
            ],
        )
        .await;
    assert_eq!(ok.status, 303);
    assert_eq!(
        Browser::new()
            .sign_in(&gw, "ann.t@twilio.test", "a brand new passphrase here", "/")
            .await
            .status,
        303
    );
}

#[tokio::test]
async fn a_twilio_identity_is_never_linked_silently_to_an_existing_account() {
    for b in matrix() {
        let Pair { gw, iss } = pair(b).await;
        gw.bootstrap("acme", "bob@acme.test").await;
        iss.add_account("bob@acme.test", "Bob").await;
        let users_before = count_users(&gw).await;
        let mut br = Browser::new();
        issuer_sign_in(&mut br, &iss, "bob@acme.test").await;
        let (page, url) = navigate(&mut br, &gw.url("/login/twilio?return_to=%2Fworkspaces")).await;
        assert_eq!(page.status, 200, "{url}");
        assert!(
            page.body.contains("Link your Twilio account"),
            "{}",
            page.body
        );
        assert!(
            br.session_cookie().is_none(),
            "{b:?}: no session before proving the account"
        );
        let bob = gw
            .store()
            .user_by_email("bob@acme.test")
            .await
            .unwrap()
            .unwrap();
        assert!(
            gw.store().identities_of(&bob.id).await.unwrap().is_empty(),
            "{b:?}: nothing linked"
        );
        assert_eq!(count_users(&gw).await, users_before, "nothing created");
        let token = page
            .body
            .split("name=\"token\" value=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let wrong = br
            .post_form(
                &gw.url("/auth/twilio/confirm"),
                &[
                    ("token", &token),
                    ("password", "not bob's password"),
                    ("csrf_token", &page.csrf()),
                ],
            )
            .await;
        assert_eq!(wrong.status, 401);
        assert!(
            gw.store().identities_of(&bob.id).await.unwrap().is_empty(),
            "{b:?}: still nothing linked"
        );
        assert!(br.session_cookie().is_none());
        let right = br
            .post_form(
                &gw.url("/auth/twilio/confirm"),
                &[
                    ("token", &token),
                    ("password", PASSWORD),
                    ("csrf_token", &wrong.csrf()),
                ],
            )
            .await;
        assert_eq!(right.status, 303, "{}", right.body);
        assert_eq!(gw.store().identities_of(&bob.id).await.unwrap().len(), 1);
        assert_eq!(
            br.verify(&gw, "workspace=acme")
                .await
                .header("x-auth-method")
                .as_deref(),
            Some("twilio")
        );
        gw.stop().await;
        iss.stop().await;
    }
}

async fn outbox_body(gw: &TestServer, to: &str) -> String {
    let url = gw.database_url.clone();
    let q = "SELECT body FROM outbox WHERE to_addr = $1 ORDER BY created_at DESC";
    if url.starts_with("sqlite") {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .connect(&url)
            .await
            .unwrap();
        sqlx::query_scalar(q)
            .bind(to)
            .fetch_one(&pool)
            .await
            .unwrap()
    } else {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect(&url)
            .await
            .unwrap();
        sqlx::query_scalar(q)
            .bind(to)
            .fetch_one(&pool)
            .await
            .unwrap()
    }
}

async fn count_users(gw: &TestServer) -> usize {
    // Every user is a member somewhere or was created by Twilio sign-in;
    // count through the store's email look-up of a known list is not enough,
    // so ask the database directly.
    let url = gw.database_url.clone();
    if url.starts_with("sqlite") {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .connect(&url)
            .await
            .unwrap();
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(&pool)
            .await
            .unwrap();
        n as usize
    } else {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect(&url)
            .await
            .unwrap();
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
            .fetch_one(&pool)
            .await
            .unwrap();
        n as usize
    }
}

#[tokio::test]
async fn prompt_none_without_a_twilio_session_is_refused_with_nothing_set() {
    let Pair { gw, iss } = pair(sqlite()).await;
    let mut br = Browser::new();
    let (page, url) = navigate(&mut br, &gw.url("/login/twilio?prompt=none")).await;
    assert!(url.starts_with(&gw.url("/auth/twilio/callback")), "{url}");
    assert_eq!(page.status, 401);
    assert!(
        page.body.contains("login_required")
            || page.body.contains("not signed in")
            || page.body.contains("sign"),
        "{}",
        page.body
    );
    assert!(br.session_cookie().is_none());
    assert_eq!(count_users(&gw).await, 0);
    iss.stop().await;
}

#[tokio::test]
async fn state_bound_to_another_browser_or_replayed_is_refused() {
    let Pair { gw, iss } = pair(sqlite()).await;
    iss.add_account("eve@twilio.test", "Eve").await;
    let mut attacker = Browser::new();
    issuer_sign_in(&mut attacker, &iss, "eve@twilio.test").await;
    let start = attacker.get(&gw.url("/login/twilio")).await;
    let authorize = start.header("location").unwrap();
    let back = attacker.get(&authorize).await;
    let callback = url::Url::parse(&iss.base)
        .unwrap()
        .join(&back.header("location").unwrap())
        .unwrap();
    assert!(callback
        .as_str()
        .starts_with(&gw.url("/auth/twilio/callback")));
    // The victim's browser opens the attacker's callback (login CSRF): refused.
    let mut victim = Browser::new();
    let r = victim.get(callback.as_str()).await;
    assert_eq!(r.status, 400);
    assert!(victim.session_cookie().is_none());
    // The state was single use: the attacker cannot finish it either now.
    let r = attacker.get(callback.as_str()).await;
    assert_eq!(r.status, 400);
    let r = Browser::new()
        .get(&gw.url("/auth/twilio/callback?code=x"))
        .await;
    assert_eq!(r.status, 400, "state missing");
    assert_eq!(count_users(&gw).await, 0, "nothing persisted");
}

#[tokio::test]
async fn hostile_issuers_are_refused_through_the_gateway_with_nothing_persisted() {
    for m in [
        Misbehaviour::Honest,
        Misbehaviour::AlgNone,
        Misbehaviour::BadSignature,
        Misbehaviour::Hs256WithPublicKey,
        Misbehaviour::IdTokenIssWrong,
        Misbehaviour::AudWrong,
        Misbehaviour::SeveralAudNoAzp,
        Misbehaviour::NonceWrong,
        Misbehaviour::Expired,
        Misbehaviour::SubMissing,
        Misbehaviour::UnpublishedKid,
        Misbehaviour::UserinfoSubMismatch,
        Misbehaviour::IssParamWrong,
    ] {
        let fixture = Fixture::start(m.clone()).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gw_base = format!("http://{}", listener.local_addr().unwrap());
        fixture.set_redirect_uri(&format!("{gw_base}/auth/twilio/callback"));
        let gw = TestServer::start_with(Options {
            listener: Some(listener),
            ..Options::new(sqlite())
                .env("IAMGW_TWILIO__MODE", "external")
                .env("IAMGW_TWILIO__ISSUER_URL", &fixture.issuer)
                .env("IAMGW_TWILIO__CLIENT_ID", FIX_CLIENT_ID)
                .env("IAMGW_TWILIO__CLIENT_SECRET", FIX_CLIENT_SECRET)
        })
        .await;
        let mut br = Browser::new();
        let (page, url) = navigate(&mut br, &gw.url("/login/twilio")).await;
        if matches!(m, Misbehaviour::Honest) {
            // The same path with an honest issuer signs in (so this test can fail).
            assert_eq!(url, gw.url("/workspaces"), "{}", page.body);
            assert!(br.session_cookie().is_some());
            continue;
        }
        assert!(
            url.starts_with(&gw.url("/auth/twilio/callback")),
            "{m:?}: {url}"
        );
        assert!(
            (400..500).contains(&page.status),
            "{m:?}: {} {}",
            page.status,
            page.body
        );
        assert!(br.session_cookie().is_none(), "{m:?}: no session cookie");
        assert_eq!(count_users(&gw).await, 0, "{m:?}: no user created");
    }
}

/// Tina signs in at Twilio and picks Segment in the console: a gateway
/// account linked to her Twilio identity, made a member of `acme`.
async fn linked_member(gw: &TestServer, iss: &IssuerServer, ws_id: &str) -> Browser {
    iss.add_account("tina@twilio.test", "Tina Twilio").await;
    let mut tina = Browser::new();
    issuer_sign_in(&mut tina, iss, "tina@twilio.test").await;
    let (_, url) = navigate(&mut tina, &gw.url("/login/twilio?return_to=%2Fworkspaces")).await;
    assert_eq!(url, gw.url("/workspaces"));
    let uid = gw
        .store()
        .user_by_email("tina@twilio.test")
        .await
        .unwrap()
        .unwrap()
        .id;
    let member = [iam_gateway::domain::roles::Policy::workspace(
        "workspace_member",
    )];
    gw.store()
        .add_member(ws_id, &uid, &member, gw.clock.now())
        .await
        .unwrap();
    tina
}

#[tokio::test]
async fn a_linked_account_gets_the_twilio_product_switcher_on_every_page_and_an_unlinked_one_does_not(
) {
    let Pair { gw, iss } = pair(sqlite()).await;
    let (ws_id, _) = gw.bootstrap("acme", "ann@acme.test").await;
    let mut tina = linked_member(&gw, &iss, &ws_id).await;
    let mut ann = Browser::new();
    assert_eq!(
        ann.sign_in(&gw, "ann@acme.test", PASSWORD, "/")
            .await
            .status,
        303
    );
    let console = format!("href=\"{}/console\"", iss.base);
    // Pages of every kind: the picker, the account, workspace pages (one a
    // member may only read), and a refusal page in the gateway's frame.
    for (path, status) in [
        ("/workspaces", 200),
        ("/account", 200),
        ("/w/acme/access", 200),
        ("/w/acme/access?tab=groups", 200),
        ("/w/acme/settings/sso", 200),
        ("/w/nowhere/access", 404),
    ] {
        let page = tina.get(&gw.url(path)).await;
        assert_eq!(page.status, status, "{path}: {}", page.body);
        assert!(
            page.body.contains("id=\"product-switcher\""),
            "{path}: no product switcher for a linked account:\n{}",
            page.body
        );
        assert!(
            page.body.contains(&console),
            "{path}: no way back to {console}"
        );
        let page = ann.get(&gw.url(path)).await;
        assert_eq!(page.status, status, "{path}: {}", page.body);
        assert!(
            !page.body.contains("product-switcher") && !page.body.contains("/console\""),
            "{path}: an unlinked account is offered the Twilio console:\n{}",
            page.body
        );
    }
    // The link leads to the issuer's console, where Tina is still signed in.
    let back = tina.get(&iss.url("/console")).await;
    assert_eq!(back.status, 200);
    assert!(
        back.body.contains("data-product=\"Segment\""),
        "{}",
        back.body
    );
}

#[tokio::test]
async fn a_linked_accounts_page_shows_name_email_and_two_factor_as_managed_by_twilio_without_forms()
{
    let Pair { gw, iss } = pair(sqlite()).await;
    let (ws_id, _) = gw.bootstrap("acme", "ann@acme.test").await;
    let mut tina = linked_member(&gw, &iss, &ws_id).await;
    let page = tina.get(&gw.url("/account")).await;
    assert_eq!(page.status, 200);
    let body = &page.body;
    assert!(
        body.contains("Tina Twilio") && body.contains("tina@twilio.test"),
        "{body}"
    );
    assert!(body.contains("id=\"managed-by-twilio\""), "{body}");
    assert!(body.contains("id=\"two-factor-twilio\""), "{body}");
    assert!(body.contains("Managed by Twilio"), "{body}");
    for form in [
        "action=\"/account/profile\"",
        "action=\"/account/password\"",
        "action=\"/account/mfa/setup\"",
        "action=\"/account/mfa/disable\"",
        "action=\"/account/mfa/recovery-codes\"",
    ] {
        assert!(!body.contains(form), "a linked account is offered {form}");
    }
    assert!(body.contains("action=\"/account/twilio/unlink\""));
    // The same page of an unlinked account keeps its forms.
    let mut ann = Browser::new();
    assert_eq!(
        ann.sign_in(&gw, "ann@acme.test", PASSWORD, "/")
            .await
            .status,
        303
    );
    let mine = ann.get(&gw.url("/account")).await;
    for form in [
        "action=\"/account/profile\"",
        "action=\"/account/password\"",
        "action=\"/account/mfa/setup\"",
    ] {
        assert!(mine.body.contains(form), "an unlinked account lacks {form}");
    }
    assert!(!mine.body.contains("managed-by-twilio"));
    // And posting the name form anyway is refused, nothing saved.
    let r = tina
        .post_form(
            &gw.url("/account/profile"),
            &[("name", "Someone Else"), ("csrf_token", &page.csrf())],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);
    let user = gw
        .store()
        .user_by_email("tina@twilio.test")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.name, "Tina Twilio");
}
