//! Access management over the REST API: roles and scopes, groups,
//! invitations, members, tokens, CSV, audit (issue: access management).

use crate::smtp_sink::SmtpSink;
use crate::support::*;
use serde_json::{json, Value};
use std::time::Duration;

/// A signed-in browser plus its CSRF token, for cookie-authenticated API calls.
pub struct Api {
    pub br: Browser,
    pub csrf: String,
    pub base: String,
}

impl Api {
    pub async fn sign_in(srv: &TestServer, email: &str) -> Api {
        let mut br = Browser::new();
        assert_eq!(
            br.sign_in(srv, email, PASSWORD, "/").await.status,
            303,
            "sign in {email}"
        );
        let me: Value = serde_json::from_str(&br.get(&srv.url("/api/v1/me")).await.body).unwrap();
        Api {
            br,
            csrf: me["csrf_token"].as_str().unwrap().to_string(),
            base: srv.base.clone(),
        }
    }

    pub async fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = self
            .br
            .client
            .request(m, format!("{}{path}", self.base))
            .header("x-csrf-token", &self.csrf);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let page = self.br.send(req).await;
        (
            page.status,
            serde_json::from_str(&page.body).unwrap_or(Value::Null),
        )
    }
}

pub async fn bearer(
    srv: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client().request(m, srv.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn who_may_do_what_owner_member_tokens_and_other_workspaces() {
    let srv = TestServer::start(sqlite()).await;
    let (acme, _) = srv.bootstrap("acme", "ann@acme.test").await;
    srv.bootstrap("beta", "bob@beta.test").await;
    srv.add_member(&acme, "mia@acme.test", &["workspace_member"])
        .await;
    srv.add_member(&acme, "min@acme.test", &["minimal_access"])
        .await;
    let mut owner = Api::sign_in(&srv, "ann@acme.test").await;
    let mut member = Api::sign_in(&srv, "mia@acme.test").await;
    let mut minimal = Api::sign_in(&srv, "min@acme.test").await;

    let (s, g) = owner.call("POST", "/api/v1/workspaces/acme/groups", Some(json!({"name": "Eng", "policies": [{"role": "source_admin", "scope": {"type": "all"}}]}))).await;
    assert_eq!(s, 201, "{g}");
    assert!(g["id"].is_string());
    assert_eq!(
        member
            .call(
                "POST",
                "/api/v1/workspaces/acme/groups",
                Some(json!({"name": "Nope"}))
            )
            .await
            .0,
        403,
        "a member cannot change"
    );
    assert_eq!(
        member
            .call("GET", "/api/v1/workspaces/acme/members", None)
            .await
            .0,
        200,
        "a member can read"
    );
    assert_eq!(
        minimal
            .call("GET", "/api/v1/workspaces/acme/members", None)
            .await
            .0,
        403,
        "minimal access cannot read"
    );
    assert_eq!(
        owner
            .call("GET", "/api/v1/workspaces/beta/members", None)
            .await
            .0,
        404,
        "not a member of beta: not revealed"
    );

    // Tokens: the secret once, then only its record.
    let (s, t) = owner
        .call(
            "POST",
            "/api/v1/workspaces/acme/tokens",
            Some(json!({"description": "CI", "policies": [{"role": "workspace_owner"}]})),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let owner_token = t["token"].as_str().unwrap().to_string();
    assert!(owner_token.starts_with("iamgw_"));
    let (_, listed) = owner
        .call("GET", "/api/v1/workspaces/acme/tokens", None)
        .await;
    assert!(
        !listed.to_string().contains(&owner_token),
        "secret never listed"
    );
    assert_eq!(listed["items"][0]["description"], "CI");
    let (s, t) = owner
        .call(
            "POST",
            "/api/v1/workspaces/acme/tokens",
            Some(json!({"description": "read", "policies": [{"role": "workspace_member"}]})),
        )
        .await;
    assert_eq!(s, 201);
    let member_token = t["token"].as_str().unwrap().to_string();
    assert_eq!(
        owner
            .call(
                "POST",
                "/api/v1/workspaces/acme/tokens",
                Some(json!({"policies": [{"role": "source_admin"}]}))
            )
            .await
            .0,
        400,
        "needs owner or member"
    );

    assert_eq!(
        bearer(
            &srv,
            &owner_token,
            "POST",
            "/api/v1/workspaces/acme/groups",
            Some(json!({"name": "Ops"}))
        )
        .await
        .0,
        201
    );
    let padded = format!("\u{a0}{}", "x".repeat(100));
    for bad in ["\u{c}Ops", "Ops\n", "   ", "O\u{7}ps", padded.as_str()] {
        let (s, body) = bearer(
            &srv,
            &owner_token,
            "POST",
            "/api/v1/workspaces/acme/groups",
            Some(json!({ "name": bad })),
        )
        .await;
        assert_eq!(s, 400, "group name {bad:?}: {body}");
    }
    assert_eq!(
        bearer(
            &srv,
            &member_token,
            "POST",
            "/api/v1/workspaces/acme/groups",
            Some(json!({"name": "Ops2"}))
        )
        .await
        .0,
        403,
        "member token cannot change"
    );
    assert_eq!(
        bearer(
            &srv,
            &member_token,
            "GET",
            "/api/v1/workspaces/acme/groups",
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        bearer(
            &srv,
            &owner_token,
            "GET",
            "/api/v1/workspaces/beta/members",
            None
        )
        .await
        .0,
        404,
        "A's token on B"
    );
    assert_eq!(
        bearer(
            &srv,
            &owner_token,
            "PATCH",
            "/api/v1/workspaces/acme/settings",
            Some(json!({"require_sso": true}))
        )
        .await
        .0,
        403,
        "tokens cannot turn on Require SSO"
    );
    let mut typo = owner_token.clone();
    typo.pop();
    typo.push('x');
    let (s, problem) = bearer(&srv, &typo, "GET", "/api/v1/workspaces/acme/members", None).await;
    assert_eq!(s, 401);
    assert_eq!(problem["status"], 401);
    // Revoked → 401.
    let tid = listed["items"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        owner
            .call(
                "DELETE",
                &format!("/api/v1/workspaces/acme/tokens/{tid}"),
                None
            )
            .await
            .0,
        204
    );
    assert_eq!(
        bearer(
            &srv,
            &owner_token,
            "GET",
            "/api/v1/workspaces/acme/members",
            None
        )
        .await
        .0,
        401
    );
    // Cookie calls without the CSRF header are refused.
    let r = owner
        .br
        .send(
            owner
                .br
                .client
                .post(srv.url("/api/v1/workspaces/acme/groups"))
                .json(&json!({"name": "X"})),
        )
        .await;
    assert_eq!(r.status, 403);

    // Roles catalog.
    let (s, roles) = member
        .call("GET", "/api/v1/workspaces/acme/roles", None)
        .await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = roles["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    for id in [
        "workspace_owner",
        "workspace_member",
        "minimal_access",
        "source_admin",
        "warehouse_read_only",
    ] {
        assert!(ids.contains(&id), "{id}");
    }
    let src = roles["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "source_admin")
        .unwrap();
    assert_eq!(src["scopable"], true);
    assert!(src["name"].is_string() && src["description"].is_string());
}

#[tokio::test]
async fn effective_access_is_direct_plus_groups_with_ids_and_label_scopes() {
    for b in matrix() {
        let srv = TestServer::start(b).await;
        let (acme, _) = srv.bootstrap("acme", "ann@acme.test").await;
        let mia = srv
            .add_member(&acme, "mia@acme.test", &["minimal_access"])
            .await;
        let mut owner = Api::sign_in(&srv, "ann@acme.test").await;
        for (id, labels) in [
            ("src-prod", json!(["env:prod", "team:a"])),
            ("src-dev", json!(["env:dev", "team:a"])),
        ] {
            assert_eq!(
                owner
                    .call(
                        "POST",
                        "/api/v1/workspaces/acme/resources",
                        Some(json!({"id": id, "kind": "source", "name": id, "labels": labels}))
                    )
                    .await
                    .0,
                201
            );
        }
        let (_, g) = owner.call("POST", "/api/v1/workspaces/acme/groups", Some(json!({"name": "Prod admins", "policies": [{"role": "source_admin", "scope": {"type": "labels", "labels": ["env:prod"]}}]}))).await;
        let gid = g["id"].as_str().unwrap().to_string();
        let mut mb = Browser::new();
        mb.sign_in(&srv, "mia@acme.test", PASSWORD, "/").await;
        assert_eq!(
            mb.verify(&srv, "workspace=acme&role=source_admin&resource=src-prod")
                .await
                .status,
            403,
            "{b:?}: not yet"
        );
        assert_eq!(
            owner
                .call(
                    "POST",
                    &format!("/api/v1/workspaces/acme/groups/{gid}/members/{mia}"),
                    None
                )
                .await
                .0,
            204
        );
        let ok = mb
            .verify(&srv, "workspace=acme&role=source_admin&resource=src-prod")
            .await;
        assert_eq!(ok.status, 200, "{b:?}: through the group's label scope");
        assert!(ok
            .header("x-auth-roles")
            .unwrap()
            .contains("source_admin:labels=env:prod"));
        assert_eq!(
            mb.verify(
                &srv,
                "workspace=acme&role=source_read_only&resource=src-prod"
            )
            .await
            .status,
            200,
            "admin implies read-only"
        );
        assert_eq!(
            mb.verify(&srv, "workspace=acme&role=source_admin&resource=src-dev")
                .await
                .status,
            403,
            "{b:?}: other label"
        );
        assert_eq!(
            mb.verify(
                &srv,
                "workspace=acme&role=source_admin&resource=unregistered"
            )
            .await
            .status,
            403
        );
        // A direct id-scoped policy adds to the group's: highest access wins.
        let (s, _) = owner.call("PATCH", &format!("/api/v1/workspaces/acme/members/{mia}"), Some(json!({"policies": [{"role": "minimal_access"}, {"role": "source_read_only", "scope": {"type": "ids", "ids": ["src-dev"]}}]}))).await;
        assert_eq!(s, 200);
        assert_eq!(
            mb.verify(
                &srv,
                "workspace=acme&role=source_read_only&resource=src-dev"
            )
            .await
            .status,
            200
        );
        assert_eq!(
            mb.verify(&srv, "workspace=acme&role=source_admin&resource=src-dev")
                .await
                .status,
            403
        );
        assert_eq!(
            mb.verify(&srv, "workspace=acme&role=source_admin&resource=src-prod")
                .await
                .status,
            200,
            "group grant still applies"
        );
        let (_, shown) = owner
            .call(
                "GET",
                &format!("/api/v1/workspaces/acme/members/{mia}"),
                None,
            )
            .await;
        assert_eq!(shown["groups"][0]["id"], gid.as_str());
        assert_eq!(shown["effective_policies"].as_array().unwrap().len(), 3);
        // Deleting the group keeps the member with their own roles.
        assert_eq!(
            owner
                .call(
                    "DELETE",
                    &format!("/api/v1/workspaces/acme/groups/{gid}"),
                    None
                )
                .await
                .0,
            204
        );
        assert_eq!(
            mb.verify(&srv, "workspace=acme&role=source_admin&resource=src-prod")
                .await
                .status,
            403
        );
        assert_eq!(
            mb.verify(&srv, "workspace=acme").await.status,
            200,
            "{b:?}: still a member"
        );
        srv.stop().await;
    }
}

#[tokio::test]
async fn removal_takes_effect_on_the_next_forward_auth_request() {
    for b in matrix() {
        let srv = TestServer::start(b).await;
        let (acme, _) = srv.bootstrap("acme", "ann@acme.test").await;
        srv.bootstrap("beta", "mia@acme.test").await;
        let mia = srv
            .store()
            .user_by_email("mia@acme.test")
            .await
            .unwrap()
            .unwrap()
            .id;
        srv.store()
            .add_member(
                &acme,
                &mia,
                &[iam_gateway::domain::roles::Policy::workspace(
                    "workspace_member",
                )],
                0,
            )
            .await
            .unwrap();
        let mut mb = Browser::new();
        mb.sign_in(&srv, "mia@acme.test", PASSWORD, "/").await;
        assert_eq!(mb.verify(&srv, "workspace=acme").await.status, 200);
        let mut owner = Api::sign_in(&srv, "ann@acme.test").await;
        assert_eq!(
            owner
                .call(
                    "DELETE",
                    &format!("/api/v1/workspaces/acme/members/{mia}"),
                    None
                )
                .await
                .0,
            204
        );
        assert_eq!(mb.verify(&srv, "workspace=acme").await.status, 403, "{b:?}");
        assert_eq!(
            mb.verify(&srv, "workspace=beta").await.status,
            200,
            "{b:?}: other workspaces untouched"
        );
        srv.stop().await;
    }
}

#[tokio::test]
async fn the_last_owner_cannot_be_removed_or_demoted() {
    for b in matrix() {
        let srv = TestServer::start(b).await;
        let (acme, ann) = srv.bootstrap("acme", "ann@acme.test").await;
        let mut owner = Api::sign_in(&srv, "ann@acme.test").await;
        assert_eq!(
            owner
                .call(
                    "DELETE",
                    &format!("/api/v1/workspaces/acme/members/{ann}"),
                    None
                )
                .await
                .0,
            409,
            "{b:?}"
        );
        let (s, p) = owner
            .call(
                "PATCH",
                &format!("/api/v1/workspaces/acme/members/{ann}"),
                Some(json!({"policies": [{"role": "workspace_member"}]})),
            )
            .await;
        assert_eq!(s, 409, "{b:?}: {p}");
        assert_eq!(p["status"], 409);
        // Ownership through a group counts.
        let bob = srv
            .add_member(&acme, "bob@acme.test", &["minimal_access"])
            .await;
        let (_, g) = owner
            .call(
                "POST",
                "/api/v1/workspaces/acme/groups",
                Some(json!({"name": "Owners", "policies": [{"role": "workspace_owner"}]})),
            )
            .await;
        let gid = g["id"].as_str().unwrap();
        assert_eq!(
            owner
                .call(
                    "PATCH",
                    &format!("/api/v1/workspaces/acme/members/{bob}"),
                    Some(json!({"group_ids": [gid]}))
                )
                .await
                .0,
            200
        );
        assert_eq!(
            owner
                .call(
                    "PATCH",
                    &format!("/api/v1/workspaces/acme/members/{ann}"),
                    Some(json!({"policies": [{"role": "workspace_member"}]}))
                )
                .await
                .0,
            200,
            "{b:?}: bob owns through the group"
        );
        // Now bob is the only owner: emptying the group is refused.
        let mut bob_api = Api::sign_in(&srv, "bob@acme.test").await;
        assert_eq!(
            bob_api
                .call(
                    "PATCH",
                    &format!("/api/v1/workspaces/acme/groups/{gid}"),
                    Some(json!({"policies": []}))
                )
                .await
                .0,
            409
        );
        assert_eq!(
            bob_api
                .call(
                    "DELETE",
                    &format!("/api/v1/workspaces/acme/groups/{gid}/members/{bob}"),
                    None
                )
                .await
                .0,
            409
        );
        assert_eq!(
            bob_api
                .call(
                    "DELETE",
                    &format!("/api/v1/workspaces/acme/groups/{gid}"),
                    None
                )
                .await
                .0,
            409
        );
        assert_eq!(srv.store().count_owners(&acme).await.unwrap(), 1);
        srv.stop().await;
    }
}

fn link_in(mail: &str) -> String {
    let link = mail
        .split_whitespace()
        .find(|w| w.contains("/invitations/"))
        .unwrap();
    link[link.find("/invitations/").unwrap()..].to_string()
}

#[tokio::test]
async fn invitation_lifecycle_through_a_real_smtp_sink() {
    let sink = SmtpSink::start().await;
    for b in matrix() {
        let srv =
            TestServer::start_with(Options::new(b).env("IAMGW_MAIL__SMTP_URL", &sink.url())).await;
        let before = sink.count();
        srv.bootstrap("acme", "ann@acme.test").await;
        let mut owner = Api::sign_in(&srv, "ann@acme.test").await;
        let (_, g) = owner
            .call(
                "POST",
                "/api/v1/workspaces/acme/groups",
                Some(json!({"name": "Analysts", "policies": [{"role": "warehouse_read_only"}]})),
            )
            .await;
        let gid = g["id"].as_str().unwrap().to_string();
        // A group id that names no group, and one of another workspace:
        // refused, nothing kept.
        let (theirs, _) = srv.bootstrap("other", "olga@other.test").await;
        let their_group = srv
            .store()
            .create_group(&theirs, "Theirs", "", &[], 1)
            .await
            .unwrap();
        for bad in ["no-such-group", their_group.id.as_str()] {
            let (s, refused) = owner
                .call(
                    "POST",
                    "/api/v1/workspaces/acme/invitations",
                    Some(json!({"email": "Neo@Acme.test", "group_ids": [gid, bad]})),
                )
                .await;
            assert_eq!(s, 400, "{refused}");
            assert!(
                refused.to_string().contains(&format!("no group `{bad}`")),
                "{refused}"
            );
        }
        let (s, inv) = owner.call("POST", "/api/v1/workspaces/acme/invitations", Some(json!({"email": "Neo@Acme.test", "policies": [{"role": "source_read_only", "scope": null}], "group_ids": [gid]}))).await;
        assert_eq!(s, 201, "{inv} (the refused invitation left nothing behind)");
        assert_eq!(
            owner
                .call(
                    "POST",
                    "/api/v1/workspaces/acme/invitations",
                    Some(json!({"email": "neo@acme.test"}))
                )
                .await
                .0,
            409,
            "one open invitation per email"
        );
        assert_eq!(
            owner
                .call(
                    "POST",
                    "/api/v1/workspaces/acme/invitations",
                    Some(json!({"email": "ann@acme.test"}))
                )
                .await
                .0,
            409,
            "already a member"
        );
        let (_, members) = owner
            .call("GET", "/api/v1/workspaces/acme/members", None)
            .await;
        let invited = members["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["status"] == "invited")
            .expect("invited row");
        assert_eq!(invited["email"], "Neo@Acme.test");
        let mail = sink.wait_for(before + 1).await;
        assert!(mail.contains("acme"), "{mail}");
        let path = link_in(&mail);

        // The invited person sets a name and password and is signed in.
        let mut neo = Browser::new();
        let page = neo.get(&srv.url(&path)).await;
        assert_eq!(page.status, 200);
        assert!(page.body.contains("name=\"name\"") && page.body.contains("name=\"password\""));
        let weak = neo
            .post_form(
                &srv.url(&path),
                &[
                    ("name", "Neo"),
                    ("password", "short"),
                    ("csrf_token", &page.csrf()),
                ],
            )
            .await;
        assert_eq!(weak.status, 400);
        assert!(
            srv.store()
                .user_by_email("neo@acme.test")
                .await
                .unwrap()
                .is_none(),
            "{b:?}: refused form created nothing"
        );
        let done = neo
            .post_form(
                &srv.url(&path),
                &[
                    ("name", "Neo"),
                    ("password", PASSWORD),
                    ("csrf_token", &page.csrf()),
                ],
            )
            .await;
        assert_eq!(done.status, 303, "{}", done.body);
        let v = neo
            .verify(&srv, "workspace=acme&role=warehouse_read_only")
            .await;
        assert_eq!(v.status, 200, "{b:?}: group policy applies");
        assert!(v
            .header("x-auth-roles")
            .unwrap()
            .contains("source_read_only"));
        // Reuse refused.
        let mut other = Browser::new();
        assert_eq!(
            other.get(&srv.url(&path)).await.status,
            400,
            "{b:?}: single use"
        );

        // Expiry (7 days by default), then resend gives a working link.
        let (_, inv2) = owner
            .call(
                "POST",
                "/api/v1/workspaces/acme/invitations",
                Some(json!({"email": "late@acme.test"})),
            )
            .await;
        let late_mail = sink.wait_for(before + 2).await;
        srv.clock.advance(Duration::from_secs(7 * 86_400 + 1));
        let mut late = Browser::new();
        assert_eq!(
            late.get(&srv.url(&link_in(&late_mail))).await.status,
            400,
            "{b:?}: expired"
        );
        let mut owner = Api::sign_in(&srv, "ann@acme.test").await;
        let (s, _) = owner
            .call(
                "POST",
                &format!(
                    "/api/v1/workspaces/acme/invitations/{}/resend",
                    inv2["id"].as_str().unwrap()
                ),
                None,
            )
            .await;
        assert_eq!(s, 200);
        let fresh = link_in(&sink.wait_for(before + 3).await);
        assert_eq!(late.get(&srv.url(&fresh)).await.status, 200);
        // Revoked: dead.
        assert_eq!(
            owner
                .call(
                    "DELETE",
                    &format!(
                        "/api/v1/workspaces/acme/invitations/{}",
                        inv2["id"].as_str().unwrap()
                    ),
                    None
                )
                .await
                .0,
            204
        );
        assert_eq!(late.get(&srv.url(&fresh)).await.status, 400);

        // An existing user signs in first, then accepts with one click.
        srv.bootstrap("beta", "bob@beta.test").await;
        owner
            .call(
                "POST",
                "/api/v1/workspaces/acme/invitations",
                Some(json!({"email": "bob@beta.test", "policies": [{"role": "workspace_member"}]})),
            )
            .await;
        let path = link_in(&sink.wait_for(before + 4).await);
        let mut bob = Browser::new();
        let p = bob.get(&srv.url(&path)).await;
        assert!(p.body.contains("Sign in to accept"));
        bob.sign_in(&srv, "bob@beta.test", PASSWORD, &path).await;
        let p = bob.get(&srv.url(&path)).await;
        let r = bob
            .post_form(&srv.url(&path), &[("csrf_token", &p.csrf())])
            .await;
        assert_eq!(r.status, 303);
        assert_eq!(
            bob.verify(&srv, "workspace=acme&role=workspace_member")
                .await
                .status,
            200,
            "{b:?}"
        );
        assert_eq!(
            bob.verify(&srv, "workspace=beta&role=workspace_owner")
                .await
                .status,
            200
        );
        srv.stop().await;
    }
}

#[tokio::test]
async fn members_list_paginates_and_filters() {
    let srv = TestServer::start(sqlite()).await;
    let (acme, _) = srv.bootstrap("acme", "ann@acme.test").await;
    for i in 0..5 {
        srv.add_member(&acme, &format!("m{i}@acme.test"), &["workspace_member"])
            .await;
    }
    let mut owner = Api::sign_in(&srv, "ann@acme.test").await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=2&cursor={c}"),
            None => "?limit=2".into(),
        };
        let (s, page) = owner
            .call("GET", &format!("/api/v1/workspaces/acme/members{q}"), None)
            .await;
        assert_eq!(s, 200);
        for m in page["items"].as_array().unwrap() {
            seen.push(m["email"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "stable order, no duplicates");
    let (_, f) = owner
        .call("GET", "/api/v1/workspaces/acme/members?email=m3", None)
        .await;
    assert_eq!(f["items"].as_array().unwrap().len(), 1);
    let (_, f) = owner
        .call(
            "GET",
            "/api/v1/workspaces/acme/members?role=workspace_owner",
            None,
        )
        .await;
    assert_eq!(f["items"][0]["email"], "ann@acme.test");
    let m = &f["items"][0];
    for key in [
        "user_id",
        "email",
        "name",
        "status",
        "policies",
        "group_ids",
        "auth_method",
        "created_at",
        "last_login_at",
    ] {
        assert!(m.get(key).is_some(), "member lacks {key}");
    }
    assert_eq!(m["auth_method"], "password");
    assert_eq!(
        owner
            .call("GET", "/api/v1/workspaces/acme/members?limit=0", None)
            .await
            .0,
        400
    );
    assert_eq!(
        owner
            .call("GET", "/api/v1/workspaces/acme/members?cursor=%%%", None)
            .await
            .0,
        400
    );
}

/// Parses RFC 4180 text (quoted fields, doubled quotes, embedded newlines).
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

#[tokio::test]
async fn members_csv_is_quoted_neutralised_streamed_and_owner_only() {
    let srv = TestServer::start(sqlite()).await;
    let (acme, _) = srv.bootstrap("acme", "ann@acme.test").await;
    let tricky = srv
        .add_member(&acme, "tricky@acme.test", &["workspace_member"])
        .await;
    srv.store()
        .set_user_name(&tricky, "=HYPERLINK(\"http://evil\",\"x\"), \"Jr\"\nline2")
        .await
        .unwrap();
    srv.add_member(&acme, "plain@acme.test", &["minimal_access"])
        .await;
    let mut owner = Api::sign_in(&srv, "ann@acme.test").await;
    owner
        .call(
            "POST",
            "/api/v1/workspaces/acme/invitations",
            Some(json!({"email": "+invited@acme.test"})),
        )
        .await;
    let r = owner
        .br
        .send(
            owner
                .br
                .client
                .get(srv.url("/api/v1/workspaces/acme/members.csv")),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    let rows = parse_csv(&r.body);
    assert_eq!(rows[0].join(","), "user_id,email,name,status,roles,groups,auth_method,twilio_linked,mfa_enabled,created_at,last_login_at");
    let t = rows.iter().find(|r| r[1] == "tricky@acme.test").unwrap();
    assert_eq!(
        t[2], "'=HYPERLINK(\"http://evil\",\"x\"), \"Jr\"\nline2",
        "neutralised and quoted"
    );
    let inv = rows
        .iter()
        .find(|r| r[1].contains("invited@acme.test"))
        .unwrap();
    assert_eq!(inv[1], "'+invited@acme.test");
    assert_eq!(inv[3], "invited");
    let ann = rows.iter().find(|r| r[1] == "ann@acme.test").unwrap();
    assert_eq!(ann[4], "workspace_owner");
    assert_eq!(ann[6], "password");
    assert_eq!(ann[7], "false");
    // The browser download and the API give the same rows.
    let page = owner.br.get(&srv.url("/w/acme/access/members.csv")).await;
    assert_eq!(parse_csv(&page.body), rows);
    // Members are not owners: refused.
    let mut member = Api::sign_in(&srv, "tricky@acme.test").await;
    assert_eq!(
        member
            .call("GET", "/api/v1/workspaces/acme/members.csv", None)
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn ten_thousand_members_stream_out_in_chunks_and_the_cli_agrees() {
    let srv = TestServer::start(sqlite()).await;
    let (acme, _) = srv.bootstrap("acme", "ann@acme.test").await;
    // Bulk-load 10 000 members straight into the database.
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect(&srv.database_url)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    for i in 0..10_000 {
        let id = format!("bulk-{i:05}");
        sqlx::query(
            "INSERT INTO users (id, email, email_norm, name, created_at) VALUES (?, ?, ?, ?, 1)",
        )
        .bind(&id)
        .bind(format!("u{i:05}@bulk.test"))
        .bind(format!("u{i:05}@bulk.test"))
        .bind(format!("User, {i}"))
        .execute(&mut *tx)
        .await
        .unwrap();
        sqlx::query("INSERT INTO memberships (workspace_id, user_id, policies, created_at, sort_email) VALUES (?, ?, '[{\"role\":\"workspace_member\"}]', 1, ?)").bind(&acme).bind(&id).bind(format!("u{i:05}@bulk.test")).execute(&mut *tx).await.unwrap();
    }
    tx.commit().await.unwrap();
    let owner = Api::sign_in(&srv, "ann@acme.test").await;
    let resp = owner
        .br
        .client
        .get(srv.url("/api/v1/workspaces/acme/members.csv"))
        .header(
            "cookie",
            format!("iamgw_session={}", owner.br.session_cookie().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers().get("content-length").is_none(),
        "streamed, not buffered"
    );
    assert_eq!(
        resp.headers()
            .get("transfer-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("chunked")
    );
    let body = resp.text().await.unwrap();
    let rows = parse_csv(&body);
    assert_eq!(rows.len(), 1 + 10_001);
    assert!(rows.iter().any(|r| r[2] == "User, 9999"));
    // The CLI prints the same CSV.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iam-gateway"))
        .args(["export-members", "--workspace", "acme"])
        .env("IAMGW_DATABASE_URL", &srv.database_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        parse_csv(&String::from_utf8(out.stdout).unwrap()).len(),
        rows.len()
    );
}

#[tokio::test]
async fn every_change_is_audited_with_its_actor_and_can_be_filtered_and_exported() {
    let srv = TestServer::start(sqlite()).await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let mut owner = Api::sign_in(&srv, "ann@acme.test").await;
    let (_, t) = owner
        .call(
            "POST",
            "/api/v1/workspaces/acme/tokens",
            Some(json!({"description": "bot", "policies": [{"role": "workspace_owner"}]})),
        )
        .await;
    let token = t["token"].as_str().unwrap().to_string();
    bearer(
        &srv,
        &token,
        "POST",
        "/api/v1/workspaces/acme/groups",
        Some(json!({"name": "By bot"})),
    )
    .await;
    owner
        .call(
            "PATCH",
            "/api/v1/workspaces/acme/settings",
            Some(json!({"default_role": "workspace_member"})),
        )
        .await;
    let (s, events) = owner
        .call("GET", "/api/v1/workspaces/acme/audit-events", None)
        .await;
    assert_eq!(s, 200);
    let items = events["items"].as_array().unwrap();
    let by_bot = items
        .iter()
        .find(|e| e["action"] == "group.created")
        .unwrap();
    assert_eq!(by_bot["actor"]["type"], "token");
    assert_eq!(by_bot["actor"]["id"], t["id"]);
    assert_eq!(by_bot["workspace"], "acme");
    for key in [
        "id",
        "time",
        "workspace",
        "actor",
        "action",
        "target",
        "ip",
        "details",
    ] {
        assert!(by_bot.get(key).is_some(), "event lacks {key}");
    }
    let created = items
        .iter()
        .find(|e| e["action"] == "token.created")
        .unwrap();
    assert_eq!(created["actor"]["type"], "user");
    assert_eq!(created["actor"]["email"], "ann@acme.test");
    assert!(
        !events.to_string().contains(&token),
        "no secret in the audit log"
    );
    let (_, only) = owner
        .call(
            "GET",
            "/api/v1/workspaces/acme/audit-events?action=workspace.settings_updated",
            None,
        )
        .await;
    assert_eq!(only["items"].as_array().unwrap().len(), 1);
    let (_, none) = owner
        .call(
            "GET",
            "/api/v1/workspaces/acme/audit-events?since=2100-01-01T00:00:00Z",
            None,
        )
        .await;
    assert_eq!(none["items"].as_array().unwrap().len(), 0);
    let csv = owner
        .br
        .send(
            owner
                .br
                .client
                .get(srv.url("/api/v1/workspaces/acme/audit-events.csv")),
        )
        .await;
    assert_eq!(csv.status, 200);
    let rows = parse_csv(&csv.body);
    assert_eq!(rows[0][0], "id");
    assert!(rows
        .iter()
        .any(|r| r[6] == "group.created" && r[3] == "token"));
    // Retention: events older than the setting are purged.
    srv.clock.advance(Duration::from_secs(91 * 86_400));
    let purged = iam_gateway::app::purge_audit(
        srv.store().as_ref(),
        iam_gateway::clock::Clock::now(&srv.clock),
    )
    .await
    .unwrap();
    assert!(purged >= 3);
}

#[tokio::test]
async fn the_cli_mints_a_working_api_token() {
    let srv = TestServer::start(sqlite()).await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iam-gateway"))
        .args([
            "token",
            "create",
            "--workspace",
            "acme",
            "--role",
            "workspace_member",
            "--description",
            "cron",
        ])
        .env("IAMGW_DATABASE_URL", &srv.database_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(token.starts_with("iamgw_") && !token.contains(' '));
    assert_eq!(
        bearer(&srv, &token, "GET", "/api/v1/workspaces/acme/members", None)
            .await
            .0,
        200
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_iam-gateway"))
        .args([
            "token",
            "create",
            "--workspace",
            "acme",
            "--role",
            "source_admin",
        ])
        .env("IAMGW_DATABASE_URL", &srv.database_url)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
}

#[tokio::test]
async fn member_role_filters_match_the_role_id_exactly() {
    for backend in matrix() {
        let srv = TestServer::start(backend).await;
        let (acme, _) = srv.bootstrap("acme", "ann@acme.test").await;
        srv.add_member(&acme, "bob@acme.test", &["workspace_member"])
            .await;
        let mut owner = Api::sign_in(&srv, "ann@acme.test").await;
        assert_eq!(
            role_filter(&mut owner, "workspace_member").await,
            ["bob@acme.test"]
        );
        assert_eq!(
            role_filter(&mut owner, "workspace_owner").await,
            ["ann@acme.test"]
        );
        for wildcard in ["%", "_", "%member%", "workspace_membe_", "WORKSPACE_MEMBER"] {
            assert_eq!(
                role_filter(&mut owner, wildcard).await,
                Vec::<String>::new(),
                "{backend:?}: ?role={wildcard} is not a pattern"
            );
        }
        srv.stop().await;
    }
}

/// The emails `GET members?role=ROLE` lists.
async fn role_filter(api: &mut Api, role: &str) -> Vec<String> {
    let path = format!("/api/v1/workspaces/acme/members?role={}", urlenc(role));
    let (s, body) = api.call("GET", &path, None).await;
    assert_eq!(s, 200, "{role}: {body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap().to_string())
        .collect()
}
