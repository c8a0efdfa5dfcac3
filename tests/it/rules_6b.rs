//! SPEC 6b's other rules (SECURITY-CASES 35 and 36): a Twilio-linked
//! account gets no gateway password, name or second factor back, and the
//! workspace settings refuse an owner default role and non-member
//! exemptions, writing nothing.

use crate::support::*;
use iam_gateway::clock::Clock;
use iam_gateway::domain::model::{ApiToken, AuthMethod};
use iam_gateway::domain::roles::Policy;
use iam_gateway::totp;

#[tokio::test]
async fn a_twilio_linked_account_cannot_set_a_gateway_password_name_or_second_factor() {
    let srv = TestServer::start(sqlite()).await;
    let (_, uid) = srv.bootstrap("acme", "linked@acme.test").await;
    let store = srv.store();
    store
        .link_identity(
            "twilio",
            "US123",
            &uid,
            Some("linked@acme.test"),
            srv.clock.now(),
        )
        .await
        .unwrap();
    let before = store.user_by_id(&uid).await.unwrap().unwrap();

    // Signed in (through Twilio), the account page's forms refuse with 409.
    let (value, session) = srv
        .state
        .sessions
        .login(&uid, AuthMethod::Twilio, true, None)
        .await
        .unwrap();
    let csrf = iam_gateway::web::csrf::token_for_session(&srv.state, &session);
    let cookie = format!("{}={value}", srv.state.sessions.cookie_name());
    for (path, form) in [
        (
            "/account/password",
            vec![
                ("current_password", ""),
                ("new_password", "a brand new long passphrase"),
            ],
        ),
        ("/account/profile", vec![("name", "Someone Else")]),
        ("/account/mfa/setup", vec![]),
    ] {
        let mut form = form;
        form.push(("csrf_token", csrf.as_str()));
        let r = client()
            .post(srv.url(path))
            .header("cookie", &cookie)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 409, "{path}");
        assert!(
            r.text().await.unwrap().contains("managed in Twilio"),
            "{path}"
        );
    }

    // A reset link (say, mailed before the account was linked) is refused too.
    let token = "reset-token-for-a-linked-account";
    let now = srv.clock.now();
    store
        .create_action_token(
            &iam_gateway::crypto::sha256_hex(token.as_bytes()),
            iam_gateway::web::login::RESET_PASSWORD,
            &uid,
            now,
            now + 3600,
        )
        .await
        .unwrap();
    let mut b = Browser::new();
    let page = b.get(&srv.url(&format!("/reset-password/{token}"))).await;
    let csrf = page.csrf();
    let r = b
        .post_form(
            &srv.url(&format!("/reset-password/{token}")),
            &[
                ("password", "a brand new long passphrase"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.body);

    // Nothing changed: same password hash (none gained), same name, no 2FA.
    let after = store.user_by_id(&uid).await.unwrap().unwrap();
    assert_eq!(after.password_hash, before.password_hash);
    assert_eq!(after.name, before.name);
    assert!(after.totp_secret.is_none() && !after.mfa_enabled());
    srv.stop().await;
}

#[tokio::test]
async fn settings_refuse_an_owner_default_role_and_exemptions_of_non_members() {
    let srv = TestServer::start(sqlite()).await;
    let (ws_id, owner) = srv.bootstrap("acme", "owner@acme.test").await;
    let (_, outsider) = srv.bootstrap("other", "outsider@other.test").await;
    let token = iam_gateway::tokens::mint(iam_gateway::tokens::API_PREFIX).unwrap();
    srv.store()
        .create_token(
            &ApiToken {
                id: "tok".into(),
                workspace_id: ws_id.clone(),
                kind: "api".into(),
                description: "settings".into(),
                policies: vec![Policy::workspace("workspace_owner")],
                created_by: None,
                created_at: srv.clock.now(),
                last_used_at: None,
            },
            &iam_gateway::tokens::hash(&token),
        )
        .await
        .unwrap();
    let patch = |body: serde_json::Value| {
        client()
            .patch(srv.url("/api/v1/workspaces/acme/settings"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let r = patch(serde_json::json!({"default_role": "workspace_owner", "require_mfa": true}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("default_role"));
    let r = patch(serde_json::json!({"sso_exempt_user_ids": [owner, outsider]}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains(&outsider));
    let ws = srv
        .store()
        .workspace_by_slug("acme")
        .await
        .unwrap()
        .unwrap();
    assert!(
        !ws.settings.require_mfa,
        "nothing of a refused change is written"
    );
    assert!(ws.settings.sso_exempt_user_ids.is_empty());
    assert_ne!(ws.settings.default_role, "workspace_owner");
    // Members can be exempt.
    let r = patch(serde_json::json!({"sso_exempt_user_ids": [owner]}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    srv.stop().await;
}

/// The value of the hidden `return_to` field of a form, HTML-decoded.
fn hidden_return_to(body: &str) -> Option<String> {
    let marker = "name=\"return_to\" value=\"";
    let start = body.find(marker)? + marker.len();
    let end = body[start..].find('"')? + start;
    Some(html_decode(&body[start..end]))
}

fn html_decode(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x2F;", "/")
        .replace("&#47;", "/")
        .replace("&#x3d;", "=")
        .replace("&#x3f;", "?")
        .replace("&amp;", "&")
}

fn between<'a>(body: &'a str, start: &str, end: &str) -> &'a str {
    let i = body
        .find(start)
        .unwrap_or_else(|| panic!("{start} not in page"))
        + start.len();
    let j = body[i..].find(end).unwrap() + i;
    &body[i..j]
}

/// A workspace that requires 2FA, an owner signed in with a password only
/// who is sent from `page` to enrol; returns where the workspace sent them.
async fn sent_to_enrol(srv: &TestServer, br: &mut Browser, page: &str) -> String {
    let store = srv.store();
    let ws = store.workspace_by_slug("acme").await.unwrap().unwrap();
    let mut settings = ws.settings.clone();
    settings.require_mfa = true;
    store
        .set_workspace_settings(&ws.id, &settings)
        .await
        .unwrap();
    let r = br.get(&srv.url(page)).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let to = r.header("location").unwrap();
    assert_eq!(
        to,
        format!("/account?return_to={}#two-factor", urlenc(page)),
        "SPEC 6b: to the page that enrols, with the way back"
    );
    to
}

#[tokio::test]
async fn require_2fa_enrolment_goes_back_to_the_workspace_page_that_asked() {
    let srv = TestServer::start(sqlite()).await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let mut br = Browser::new();
    let r = br
        .sign_in(&srv, "ann@acme.test", PASSWORD, "/workspaces")
        .await;
    assert_eq!(r.status, 303);
    let page = "/w/acme/access";
    let to = sent_to_enrol(&srv, &mut br, page).await;

    // The account page carries the way back into the enrolment form.
    let account = br.get(&srv.url(to.split('#').next().unwrap())).await;
    assert_eq!(account.status, 200);
    assert_eq!(hidden_return_to(&account.body).as_deref(), Some(page));
    let setup = br
        .post_form(
            &srv.url("/account/mfa/setup"),
            &[("csrf_token", &account.csrf()), ("return_to", page)],
        )
        .await;
    assert_eq!(setup.status, 200, "{}", setup.body);
    assert_eq!(hidden_return_to(&setup.body).as_deref(), Some(page));
    let secret = between(&setup.body, "<code id=\"totp-secret\">", "</code>");
    let raw = totp::base32_decode(secret).unwrap();
    let code = totp::code_at_step(&raw, totp::step_of(srv.clock.now()));
    let done = br
        .post_form(
            &srv.url("/account/mfa/confirm"),
            &[
                ("code", &code),
                ("csrf_token", &setup.csrf()),
                ("return_to", page),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(
        done.body.contains("id=\"recovery-codes\""),
        "codes shown once"
    );
    // "Done" leads back to the page that asked, which now opens.
    let codes = &done.body[done.body.find("id=\"recovery-codes\"").unwrap()..];
    let next = html_decode(between(codes, "<p><a href=\"", "\" id=\"done\""));
    assert_eq!(next, page);
    let back = br.get(&srv.url(&next)).await;
    assert_eq!(back.status, 200, "{}", back.body);
    srv.stop().await;
}

#[tokio::test]
async fn require_2fa_step_up_goes_back_and_a_foreign_return_to_does_not() {
    let srv = TestServer::start(sqlite()).await;
    let (_, uid) = srv.bootstrap("acme", "ann@acme.test").await;
    let mut br = Browser::new();
    br.sign_in(&srv, "ann@acme.test", PASSWORD, "/workspaces")
        .await;
    // 2FA turned on elsewhere: this session has no second factor.
    let secret = totp::new_secret().unwrap();
    let store = srv.store();
    let sealed = iam_gateway::crypto::seal(&srv.state.secret, "totp", secret.as_bytes()).unwrap();
    store.set_pending_totp(&uid, &sealed).await.unwrap();
    store
        .enable_totp(&uid, srv.clock.now(), 0, &[])
        .await
        .unwrap();
    let page = "/w/acme/access";
    let to = sent_to_enrol(&srv, &mut br, page).await;
    let account = br.get(&srv.url(to.split('#').next().unwrap())).await;
    assert!(account.body.contains("action=\"/account/mfa/step-up\""));
    assert_eq!(hidden_return_to(&account.body).as_deref(), Some(page));
    let raw = totp::base32_decode(&secret).unwrap();
    let code = totp::code_at_step(&raw, totp::step_of(srv.clock.now()));
    let wrong = br
        .post_form(
            &srv.url("/account/mfa/step-up"),
            &[
                ("code", "000000"),
                ("csrf_token", &account.csrf()),
                ("return_to", page),
            ],
        )
        .await;
    assert_eq!(wrong.status, 401);
    let ok = br
        .post_form(
            &srv.url("/account/mfa/step-up"),
            &[
                ("code", &code),
                ("csrf_token", &account.csrf()),
                ("return_to", page),
            ],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(ok.header("location").as_deref(), Some(page));
    assert_eq!(br.get(&srv.url(page)).await.status, 200);

    // return_to is validated as everywhere else: never off-site.
    let evil = br
        .get(&srv.url("/account?return_to=https%3A%2F%2Fevil.test%2F"))
        .await;
    assert_eq!(evil.status, 200);
    assert!(!evil.body.contains("evil.test"), "{}", evil.body);
    srv.stop().await;
}
