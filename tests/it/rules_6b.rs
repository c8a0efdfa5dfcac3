//! SPEC 6b's other rules (SECURITY-CASES 35 and 36): a Twilio-linked
//! account gets no gateway password, name or second factor back, and the
//! workspace settings refuse an owner default role and non-member
//! exemptions, writing nothing.

use crate::support::*;
use iam_gateway::clock::Clock;
use iam_gateway::domain::model::{ApiToken, AuthMethod};
use iam_gateway::domain::roles::Policy;

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
