//! SCIM 2.0 provisioning over real HTTP (docs/scim.md): auth (no or wrong
//! bearer 401), users and groups (duplicate userName 409, deactivation 403 at
//! once on forward-auth), filters, PATCH shapes of Entra ID and
//! Okta, ETags, isolation between workspaces, and the effect on forward-auth.

use crate::access::Api;
use crate::support::*;
use iam_gateway::clock::Clock;
use serde_json::{json, Value};

const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    }

    /// Asserts the SCIM error shape and returns the scimType.
    fn error(&self, status: u16) -> Option<String> {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["schemas"], json!([ERROR]), "{}", self.body);
        assert_eq!(self.body["status"], json!(status.to_string()));
        assert!(self.body["detail"].is_string());
        assert!(self
            .header("content-type")
            .unwrap()
            .starts_with("application/scim+json"));
        self.body["scimType"].as_str().map(str::to_string)
    }
}

/// A SCIM client of one workspace.
struct Scim {
    base: String,
    token: String,
}

impl Scim {
    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        extra: &[(&str, &str)],
    ) -> Reply {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut req = client()
            .request(m, format!("{}/scim/v2{path}", self.base))
            .bearer_auth(&self.token);
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
                .body(b.to_string());
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        if !text.is_empty() {
            assert!(
                headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("application/scim+json"),
                "{method} {path}: {headers:?}"
            );
        }
        Reply {
            status,
            headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, &[]).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.send("POST", path, Some(body), &[]).await
    }

    async fn patch(&self, path: &str, ops: Value) -> Reply {
        self.send(
            "PATCH",
            path,
            Some(json!({"schemas": [PATCH], "Operations": ops})),
            &[],
        )
        .await
    }

    async fn create_user(&self, user_name: &str, extra: Value) -> String {
        let mut body = json!({"schemas": [USER], "userName": user_name});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = self.post("/Users", body).await;
        assert_eq!(r.status, 201, "{}", r.body);
        r.body["id"].as_str().unwrap().to_string()
    }

    /// `totalResults` and the `userName`s of a user query.
    async fn find(&self, query: &str) -> (i64, Vec<String>) {
        let r = self.get(&format!("/Users?{query}")).await;
        assert_eq!(r.status, 200, "{query}: {}", r.body);
        let names = r.body["Resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["userName"].as_str().unwrap_or_default().to_string())
            .collect();
        (r.body["totalResults"].as_i64().unwrap(), names)
    }
}

fn q(filter: &str) -> String {
    format!("filter={}", urlenc(filter))
}

/// Workspace `slug` with owner `owner`, and a SCIM token minted through the
/// REST API by that owner.
async fn workspace(srv: &TestServer, slug: &str, owner: &str) -> (String, Api, Scim) {
    let (ws_id, _) = srv.bootstrap(slug, owner).await;
    let mut api = Api::sign_in(srv, owner).await;
    let (s, t) = api
        .call(
            "POST",
            &format!("/api/v1/workspaces/{slug}/scim-tokens"),
            Some(json!({"description": "IdP"})),
        )
        .await;
    assert_eq!(s, 201, "{t}");
    let token = t["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("iamgw_scim_"));
    (
        ws_id,
        api,
        Scim {
            base: srv.base.clone(),
            token,
        },
    )
}

#[tokio::test]
async fn only_the_workspace_scim_token_gets_in_and_failures_use_the_scim_error_schema() {
    let srv = TestServer::start(sqlite()).await;
    let (_, mut owner, scim) = workspace(&srv, "acme", "ann@acme.test").await;

    let anonymous = client()
        .get(srv.url("/scim/v2/Users"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(anonymous.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer"));
    let body: Value = anonymous.json().await.unwrap();
    assert_eq!(body["schemas"], json!([ERROR]));
    assert_eq!(body["status"], "401");

    let wrong = Scim {
        base: srv.base.clone(),
        token: iam_gateway::tokens::mint(iam_gateway::tokens::SCIM_PREFIX).unwrap(),
    };
    wrong.get("/Users").await.error(401);
    let garbage = Scim {
        base: srv.base.clone(),
        token: format!("{}x", scim.token),
    };
    garbage.get("/Users").await.error(401);

    // An API token of the same workspace, even an owner's, is not a SCIM token.
    let (_, t) = owner
        .call(
            "POST",
            "/api/v1/workspaces/acme/tokens",
            Some(json!({"description": "ci", "policies": [{"role": "workspace_owner"}]})),
        )
        .await;
    let api_token = Scim {
        base: srv.base.clone(),
        token: t["token"].as_str().unwrap().to_string(),
    };
    api_token.get("/Users").await.error(401);
    // Nor is a session cookie (the owner's browser), with or without CSRF.
    let page = owner
        .br
        .send(
            owner
                .br
                .client
                .get(srv.url("/scim/v2/Users"))
                .header("x-csrf-token", &owner.csrf),
        )
        .await;
    assert_eq!(page.status, 401);
    // And the SCIM token is no API token.
    assert_eq!(
        crate::access::bearer(
            &srv,
            &scim.token,
            "GET",
            "/api/v1/workspaces/acme/members",
            None
        )
        .await
        .0,
        401
    );

    assert_eq!(scim.get("/Users").await.status, 200);
    // Revoked: out at once.
    let (_, listed) = owner
        .call("GET", "/api/v1/workspaces/acme/scim-tokens", None)
        .await;
    let id = listed["items"][0]["id"].as_str().unwrap().to_string();
    assert!(
        !listed.to_string().contains(&scim.token),
        "secret never listed"
    );
    let (s, _) = owner
        .call(
            "DELETE",
            &format!("/api/v1/workspaces/acme/scim-tokens/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    scim.get("/Users").await.error(401);
}

#[tokio::test]
async fn discovery_endpoints_describe_users_groups_and_the_features() {
    let srv = TestServer::start(sqlite()).await;
    let (_, _, scim) = workspace(&srv, "acme", "ann@acme.test").await;
    let spc = scim.get("/ServiceProviderConfig").await;
    assert_eq!(spc.status, 200);
    assert_eq!(spc.body["patch"]["supported"], true);
    assert_eq!(spc.body["filter"]["supported"], true);
    assert_eq!(spc.body["etag"]["supported"], true);
    assert_eq!(spc.body["bulk"]["supported"], false);
    assert_eq!(
        spc.body["authenticationSchemes"][0]["type"],
        "oauthbearertoken"
    );

    let types = scim.get("/ResourceTypes").await;
    assert_eq!(types.body["totalResults"], 2);
    let user_type = scim.get("/ResourceTypes/User").await;
    assert_eq!(user_type.body["endpoint"], "/Users");
    assert_eq!(user_type.body["schemaExtensions"][0]["schema"], ENTERPRISE);

    let schemas = scim.get("/Schemas").await;
    let ids: Vec<&str> = schemas.body["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [USER, ENTERPRISE, GROUP]);
    let user = scim.get(&format!("/Schemas/{USER}")).await;
    let user_name = user.body["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "userName")
        .unwrap()
        .clone();
    assert_eq!(user_name["uniqueness"], "server");
    assert_eq!(user_name["caseExact"], false);
    assert!(!user.body.to_string().contains("\"password\""));

    scim.get("/Schemas/urn:nope").await.error(404);
    scim.get("/ResourceTypes/Nope").await.error(404);
    scim.get("/NoSuchEndpoint").await.error(404);
    scim.send("POST", "/ServiceProviderConfig", Some(json!({})), &[])
        .await
        .error(405);
    scim.send("DELETE", "/Schemas", None, &[]).await.error(405);
}

#[tokio::test]
async fn deactivation_ends_that_workspace_at_once_and_reactivation_restores_the_default_role() {
    for backend in matrix() {
        let srv = TestServer::start(backend).await;
        let (acme, mut owner, scim) = workspace(&srv, "acme", "ann@acme.test").await;
        let (beta, _) = srv.bootstrap("beta", "bob@beta.test").await;
        // Bob already has an account (and a password) through beta.
        let bob = srv
            .add_member(&beta, "bob@corp.test", &["workspace_member"])
            .await;

        // Provisioning his email makes the existing account a member: 201,
        // same user id, credentials untouched, default role.
        let r = scim
            .post(
                "/Users",
                json!({"schemas": [USER], "userName": "Bob@Corp.test", "externalId": "okta-bob",
                       "name": {"givenName": "Robert", "familyName": "Roe"}, "active": true,
                       "password": "Ignored-Because-SCIM-Never-Sets-Credentials-1"}),
            )
            .await;
        assert_eq!(r.status, 201, "{:?} {}", backend, r.body);
        assert_eq!(r.body["id"], bob);
        assert_eq!(r.body["userName"], "bob@corp.test");
        assert_eq!(r.body["active"], true);
        assert!(r.body.get("password").is_none());
        assert_eq!(
            r.header("location").unwrap(),
            format!("{}/scim/v2/Users/{bob}", srv.base)
        );
        assert_eq!(
            r.header("etag").unwrap(),
            r.body["meta"]["version"].as_str().unwrap()
        );
        let access = srv
            .store()
            .effective_access(&acme, &bob)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            access.direct,
            vec![iam_gateway::domain::roles::Policy::workspace(
                "minimal_access"
            )]
        );

        let mut br = Browser::new();
        assert_eq!(
            br.sign_in(&srv, "bob@corp.test", PASSWORD, "/")
                .await
                .status,
            303,
            "password unchanged"
        );
        let ok = br.verify(&srv, "workspace=acme").await;
        assert_eq!(ok.status, 200);
        assert_eq!(ok.header("x-auth-roles").as_deref(), Some("minimal_access"));

        // Entra ID deactivates with a string boolean.
        let r = scim
            .patch(
                &format!("/Users/{bob}"),
                json!([{"op": "Replace", "path": "active", "value": "False"}]),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["active"], false);
        assert_eq!(
            br.verify(&srv, "workspace=acme").await.status,
            403,
            "next request refused"
        );
        assert_eq!(
            br.verify(&srv, "workspace=beta").await.status,
            200,
            "other workspace untouched"
        );
        // On every instance: a second gateway on the same stores agrees.
        let other = TestServer::start_with(Options {
            database_url: Some(srv.database_url.clone()),
            dir: Some(srv.dir.clone()),
            ..Options::new(backend)
        })
        .await;
        assert_eq!(br.verify(&other, "workspace=acme").await.status, 403);
        assert_eq!(br.verify(&other, "workspace=beta").await.status, 200);
        other.stop().await;
        assert_eq!(
            scim.get(&format!("/Users/{bob}")).await.body["active"],
            false
        );
        assert!(
            srv.store().user_by_id(&bob).await.unwrap().is_some(),
            "account stays"
        );

        // Okta reactivates with a path-less replace: the default role again.
        owner
            .call(
                "PATCH",
                "/api/v1/workspaces/acme/settings",
                Some(json!({"default_role": "workspace_member"})),
            )
            .await;
        let r = scim
            .patch(
                &format!("/Users/{bob}"),
                json!([{"op": "replace", "value": {"active": true}}]),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["active"], true);
        let ok = br.verify(&srv, "workspace=acme").await;
        assert_eq!(ok.status, 200);
        assert_eq!(
            ok.header("x-auth-roles").as_deref(),
            Some("workspace_member")
        );

        // DELETE: membership gone, resource gone, account and beta intact.
        let r = scim
            .send("DELETE", &format!("/Users/{bob}"), None, &[])
            .await;
        assert_eq!(r.status, 204);
        assert_eq!(br.verify(&srv, "workspace=acme").await.status, 403);
        assert_eq!(br.verify(&srv, "workspace=beta").await.status, 200);
        scim.get(&format!("/Users/{bob}")).await.error(404);
        scim.send("DELETE", &format!("/Users/{bob}"), None, &[])
            .await
            .error(404);
        assert!(srv.store().user_by_id(&bob).await.unwrap().is_some());

        // Every change audited with the SCIM token as actor.
        let (_, events) = owner
            .call(
                "GET",
                "/api/v1/workspaces/acme/audit-events?limit=200",
                None,
            )
            .await;
        let scim_events: Vec<&Value> = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"].as_str().unwrap().starts_with("scim.user."))
            .collect();
        let actions: Vec<&str> = scim_events
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        for a in [
            "scim.user.created",
            "scim.user.deactivated",
            "scim.user.reactivated",
            "scim.user.deleted",
        ] {
            assert!(actions.contains(&a), "{a} in {actions:?}");
        }
        assert!(scim_events
            .iter()
            .all(|e| e["actor"]["type"] == "scim" && e["target"] == json!(bob)));
        assert!(
            !events.to_string().contains(&scim.token),
            "no secret in the audit log"
        );
        srv.stop().await;
    }
}

#[tokio::test]
async fn user_names_are_unique_in_any_case_and_must_be_given() {
    let srv = TestServer::start(sqlite()).await;
    let (_, _, scim) = workspace(&srv, "acme", "ann@acme.test").await;
    scim.create_user("Carol@Corp.test", json!({})).await;
    let r = scim
        .post(
            "/Users",
            json!({"schemas": [USER], "userName": "cAROL@corp.TEST"}),
        )
        .await;
    assert_eq!(r.error(409).as_deref(), Some("uniqueness"));
    // The owner, a member who was never provisioned, is taken too.
    let r = scim
        .post(
            "/Users",
            json!({"schemas": [USER], "userName": "ANN@acme.test"}),
        )
        .await;
    assert_eq!(r.error(409).as_deref(), Some("uniqueness"));
    let r = scim
        .post(
            "/Users",
            json!({"schemas": [USER], "displayName": "No name"}),
        )
        .await;
    assert_eq!(r.error(400).as_deref(), Some("invalidValue"));
    let r = scim
        .post(
            "/Users",
            json!({"schemas": [USER], "userName": "x@y.test", "active": "sometimes"}),
        )
        .await;
    assert_eq!(r.error(400).as_deref(), Some("invalidValue"));
    let r = scim
        .send(
            "POST",
            "/Users",
            None,
            &[("content-type", "application/scim+json")],
        )
        .await;
    assert_eq!(r.error(400).as_deref(), Some("invalidSyntax"));
    // userName is the account's email: not renamed through SCIM.
    let id = scim.create_user("dan@corp.test", json!({})).await;
    let r = scim
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": "userName", "value": "eve@corp.test"}]),
        )
        .await;
    assert_eq!(r.error(400).as_deref(), Some("mutability"));
    let r = scim
        .patch(
            &format!("/Users/{id}"),
            json!([{"op": "replace", "path": "userName", "value": "DAN@corp.test"}]),
        )
        .await;
    assert_eq!(r.status, 200, "same email, other case: fine");
}

#[tokio::test]
async fn filters_pagination_and_attribute_selection() {
    for backend in matrix() {
        let srv = TestServer::start(backend).await;
        let (_, _, scim) = workspace(&srv, "acme", "ann@acme.test").await;
        let t0 = srv.clock.now();
        for (i, (name, dept)) in [
            ("Alice", "Sales"),
            ("Bruno", "R&D"),
            ("Chloe", "Sales"),
            ("Dmitri", "Ops"),
        ]
        .iter()
        .enumerate()
        {
            srv.clock.advance(std::time::Duration::from_secs(60));
            scim.create_user(
                &format!("{}@Corp.test", name.to_lowercase()),
                json!({"externalId": format!("EXT-{i}"), "displayName": format!("{name} Example"),
                       "emails": [{"value": format!("{}@mail.test", name.to_lowercase()), "type": "work", "primary": true}],
                       "active": i != 3,
                       ENTERPRISE: {"department": dept}}),
            )
            .await;
        }
        let when = |secs: i64| iam_gateway::clock::rfc3339(t0 + secs);

        let cases: Vec<(String, Vec<&str>)> = vec![
            (
                r#"userName eq "ALICE@corp.TEST""#.into(),
                vec!["alice@Corp.test"],
            ),
            (
                r#"userName ne "alice@corp.test" and userName ew "corp.test""#.into(),
                vec!["bruno@Corp.test", "chloe@Corp.test", "dmitri@Corp.test"],
            ),
            (r#"externalId eq "EXT-1""#.into(), vec!["bruno@Corp.test"]),
            (r#"externalId eq "ext-1""#.into(), vec![]),
            (r#"displayName co "hloe""#.into(), vec!["chloe@Corp.test"]),
            (r#"displayName sw "d""#.into(), vec!["dmitri@Corp.test"]),
            (
                r#"emails.value ew "@mail.test" and not (emails.value sw "a")"#.into(),
                vec!["bruno@Corp.test", "chloe@Corp.test", "dmitri@Corp.test"],
            ),
            (
                r#"emails[type eq "work" and value co "bru"]"#.into(),
                vec!["bruno@Corp.test"],
            ),
            ("active eq false".into(), vec!["dmitri@Corp.test"]),
            (
                r#"active eq true and (userName sw "a" or userName sw "c")"#.into(),
                vec!["alice@Corp.test", "ann@acme.test", "chloe@Corp.test"],
            ),
            (
                "externalId pr and not (active eq true)".into(),
                vec!["dmitri@Corp.test"],
            ),
            (
                format!("meta.lastModified gt \"{}\"", when(150)),
                vec!["chloe@Corp.test", "dmitri@Corp.test"],
            ),
            (
                format!(
                    "meta.created lt \"{}\" and meta.created ge \"{}\"",
                    when(150),
                    when(60)
                ),
                vec!["alice@Corp.test", "bruno@Corp.test"],
            ),
            (
                format!("{ENTERPRISE}:department eq \"sales\""),
                vec!["alice@Corp.test", "chloe@Corp.test"],
            ),
            (r#"userName eq "nobody@corp.test""#.into(), vec![]),
        ];
        for (f, want) in cases {
            let (total, names) = scim.find(&q(&f)).await;
            assert_eq!(names, want, "{backend:?}: {f}");
            assert_eq!(total, want.len() as i64, "{f}");
        }

        // Pagination: 5 users (the owner too), pages of 2, exact and in Rust.
        let (total, page) = scim.find("startIndex=2&count=2").await;
        assert_eq!(
            (total, page),
            (
                5,
                vec!["ann@acme.test".to_string(), "bruno@Corp.test".to_string()]
            )
        );
        let (total, page) = scim
            .find(&format!(
                "{}&startIndex=2&count=1",
                q(r#"displayName co "Example""#)
            ))
            .await;
        assert_eq!((total, page), (4, vec!["bruno@Corp.test".to_string()]));
        let r = scim.get("/Users?count=0").await;
        assert_eq!(
            (
                r.body["totalResults"].as_i64(),
                r.body["Resources"].as_array().map(Vec::len)
            ),
            (Some(5), Some(0))
        );
        let r = scim.get("/Users?startIndex=99").await;
        assert_eq!(r.body["Resources"], json!([]));
        assert_eq!(r.body["startIndex"], 99);

        // Malformed or unsupported filters: 400 invalidFilter.
        for bad in [
            r#"userName eq"#,
            r#"userName eq "a" and ("#,
            r#"nickName xx "a""#,
            r#"bogus eq "a""#,
            "active gt true",
            r#"meta.lastModified gt "last week""#,
        ] {
            let r = scim.get(&format!("/Users?{}", q(bad))).await;
            assert_eq!(r.error(400).as_deref(), Some("invalidFilter"), "{bad}");
        }

        // attributes / excludedAttributes on lists, reads and .search.
        let r = scim
            .get(&format!(
                "/Users?{}&attributes=userName,emails.value",
                q(r#"userName eq "bruno@corp.test""#)
            ))
            .await;
        let u = &r.body["Resources"][0];
        assert_eq!(u["emails"], json!([{"value": "bruno@mail.test"}]));
        assert!(u["id"].is_string() && u.get("displayName").is_none() && u.get("meta").is_none());
        let id = u["id"].as_str().unwrap().to_string();
        let r = scim
            .get(&format!(
                "/Users/{id}?excludedAttributes=emails,{ENTERPRISE},meta"
            ))
            .await;
        assert!(
            r.body.get("emails").is_none()
                && r.body.get(ENTERPRISE).is_none()
                && r.body.get("meta").is_none()
        );
        assert_eq!(r.body["displayName"], "Bruno Example");
        let r = scim
            .post("/Users/.search", json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                   "filter": "displayName sw \"A\"", "attributes": ["displayName"], "startIndex": 1, "count": 10}))
            .await;
        assert_eq!(r.body["totalResults"], 1, "{}", r.body);
        assert_eq!(r.body["Resources"][0]["displayName"], "Alice Example");
        let r = scim
            .post("/.search", json!({"filter": "displayName sw \"Alice\" or displayName eq \"nobody\"", "count": 10}))
            .await;
        assert_eq!(r.body["totalResults"], 1, "{}", r.body);
        srv.stop().await;
    }
}

#[tokio::test]
async fn a_bad_patch_applies_nothing_and_stale_if_match_is_412() {
    let srv = TestServer::start(sqlite()).await;
    let (_, _, scim) = workspace(&srv, "acme", "ann@acme.test").await;
    let id = scim
        .create_user(
            "fay@corp.test",
            json!({"displayName": "Fay", "title": "Engineer"}),
        )
        .await;
    let path = format!("/Users/{id}");
    let before = scim.get(&path).await;
    let v1 = before.header("etag").unwrap();

    for (ops, kind) in [
        (
            json!([{"op": "replace", "path": "displayName", "value": "Changed"}, {"op": "replace", "path": "nonsense", "value": "x"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "replace", "path": "title", "value": "Boss"}, {"op": "add", "path": "emails[type eq \"work\"", "value": "x"}]),
            "invalidPath",
        ),
        (
            json!([{"op": "remove", "path": "title"}, {"op": "replace", "path": "id", "value": "mine"}]),
            "mutability",
        ),
        (
            json!([{"op": "replace", "path": "displayName", "value": "Changed"}, {"op": "remove"}]),
            "noTarget",
        ),
    ] {
        let r = scim.patch(&path, ops).await;
        assert_eq!(r.error(400).as_deref(), Some(kind));
    }
    let after = scim.get(&path).await;
    assert_eq!(after.body, before.body, "nothing applied");

    // If-Match: the current version passes, a stale one gets 412.
    let r = scim
        .send("PATCH", &path, Some(json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "Lead"}]})), &[("if-match", &v1)])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v2 = r.header("etag").unwrap();
    assert_ne!(v1, v2);
    let r = scim
        .send("PATCH", &path, Some(json!({"schemas": [PATCH], "Operations": [{"op": "replace", "path": "title", "value": "Stale"}]})), &[("if-match", &v1)])
        .await;
    assert_eq!(r.error(412), None, "412 has no scimType");
    let put = json!({"schemas": [USER], "userName": "fay@corp.test", "displayName": "Fay"});
    scim.send("PUT", &path, Some(put.clone()), &[("if-match", &v1)])
        .await
        .error(412);
    scim.send("DELETE", &path, None, &[("if-match", &v1)])
        .await
        .error(412);
    assert_eq!(scim.get(&path).await.body["title"], "Lead");
    // If-None-Match with the current version: 304.
    let r = scim
        .send("GET", &path, None, &[("if-none-match", &v2)])
        .await;
    assert_eq!(r.status, 304);
    // PUT replaces: title cleared, active kept when not asserted.
    let r = scim
        .send("PUT", &path, Some(put), &[("if-match", &v2)])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("title").is_none());
    assert_eq!(r.body["active"], true);
    let v3 = r.header("etag").unwrap();
    assert_eq!(
        scim.send("DELETE", &path, None, &[("if-match", &v3)])
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn another_workspaces_resources_are_not_found() {
    for backend in matrix() {
        let srv = TestServer::start(backend).await;
        let (_, _, acme) = workspace(&srv, "acme", "ann@acme.test").await;
        let (_, _, beta) = workspace(&srv, "beta", "bob@beta.test").await;
        let user = acme.create_user("gus@corp.test", json!({})).await;
        let r = acme
            .post(
                "/Groups",
                json!({"schemas": [GROUP], "displayName": "Eng", "members": [{"value": user}]}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        let group = r.body["id"].as_str().unwrap().to_string();

        for (method, path) in [
            ("GET", format!("/Users/{user}")),
            ("DELETE", format!("/Users/{user}")),
            ("GET", format!("/Groups/{group}")),
            ("DELETE", format!("/Groups/{group}")),
        ] {
            beta.send(method, &path, None, &[]).await.error(404);
        }
        beta.patch(
            &format!("/Users/{user}"),
            json!([{"op": "replace", "path": "active", "value": false}]),
        )
        .await
        .error(404);
        beta.send(
            "PUT",
            &format!("/Groups/{group}"),
            Some(json!({"schemas": [GROUP], "displayName": "Mine"})),
            &[],
        )
        .await
        .error(404);
        // Nor can beta put acme's user in its group, or find it.
        let r = beta
            .post(
                "/Groups",
                json!({"schemas": [GROUP], "displayName": "Steal", "members": [{"value": user}]}),
            )
            .await;
        assert_eq!(r.error(400).as_deref(), Some("invalidValue"));
        assert_eq!(beta.find(&q(r#"userName eq "gus@corp.test""#)).await.0, 0);
        // acme's view is intact.
        assert_eq!(
            acme.get(&format!("/Users/{user}")).await.body["active"],
            true
        );
        assert_eq!(
            acme.get(&format!("/Groups/{group}")).await.body["displayName"],
            "Eng"
        );
        srv.stop().await;
    }
}

#[tokio::test]
async fn groups_follow_okta_and_entra_and_deleting_one_keeps_its_members() {
    for backend in matrix() {
        let srv = TestServer::start(backend).await;
        let (acme, mut owner, scim) = workspace(&srv, "acme", "ann@acme.test").await;
        let u1 = scim.create_user("u1@corp.test", json!({})).await;
        let u2 = scim.create_user("u2@corp.test", json!({})).await;
        let u3 = scim.create_user("u3@corp.test", json!({})).await;

        // Okta creates the group empty, then pushes members.
        let r = scim.post("/Groups", json!({"schemas": [GROUP], "displayName": "Engineering", "externalId": "okta-g1", "members": []})).await;
        assert_eq!(r.status, 201, "{}", r.body);
        let g = r.body["id"].as_str().unwrap().to_string();
        let path = format!("/Groups/{g}");
        let r = scim.patch(&path, json!([{"op": "add", "path": "members", "value": [{"value": u1, "display": "u1@corp.test"}, {"value": u2}]}])).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["members"].as_array().unwrap().len(), 2);
        let r = scim
            .patch(
                &path,
                json!([{"op": "remove", "path": format!("members[value eq \"{u1}\"]")}]),
            )
            .await;
        assert_eq!(
            r.body["members"],
            json!([{"value": u2, "$ref": format!("{}/scim/v2/Users/{u2}", srv.base), "type": "User"}])
        );
        // Okta renames with a path-less replace that repeats the id.
        let r = scim
            .patch(
                &path,
                json!([{"op": "replace", "value": {"id": g, "displayName": "Eng"}}]),
            )
            .await;
        assert_eq!(r.body["displayName"], "Eng");
        // Entra ID: capitalised ops, Remove with a value list.
        let r = scim
            .patch(
                &path,
                json!([
            {"op": "Add", "path": "members", "value": [{"value": u3}]},
            {"op": "Remove", "path": "members", "value": [{"value": u2}]},
            {"op": "Replace", "path": "externalId", "value": "entra-g1"}]),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["members"][0]["value"], json!(u3));
        assert_eq!(r.body["members"].as_array().unwrap().len(), 1);
        assert_eq!(r.body["externalId"], "entra-g1");
        // The user shows the group; filters on members work.
        let user = scim.get(&format!("/Users/{u3}")).await;
        assert_eq!(user.body["groups"][0]["value"], json!(g));
        assert_eq!(user.body["groups"][0]["display"], "Eng");
        let r = scim
            .get(&format!(
                "/Groups?{}&excludedAttributes=members",
                q(&format!("id eq \"{g}\" and members[value eq \"{u3}\"]"))
            ))
            .await;
        assert_eq!(r.body["totalResults"], 1);
        assert!(r.body["Resources"][0].get("members").is_none());
        assert_eq!(
            scim.get(&format!("/Groups?{}", q("displayName eq \"eng\"")))
                .await
                .body["totalResults"],
            1
        );

        // The group is a user group with the default role; visible in the API.
        let (_, api_group) = owner
            .call("GET", &format!("/api/v1/workspaces/acme/groups/{g}"), None)
            .await;
        assert_eq!(api_group["name"], "Eng");
        assert_eq!(
            api_group["policies"],
            json!([{"role": "minimal_access", "scope": null}])
        );

        // Unique names, any case; members must be users of the workspace.
        let r = scim
            .post("/Groups", json!({"schemas": [GROUP], "displayName": "Eng"}))
            .await;
        assert_eq!(r.error(409).as_deref(), Some("uniqueness"));
        let r = scim
            .patch(
                &path,
                json!([{"op": "add", "path": "members", "value": [{"value": "no-such-user"}]}]),
            )
            .await;
        assert_eq!(r.error(400).as_deref(), Some("invalidValue"));
        assert_eq!(
            scim.get(&path).await.body["members"]
                .as_array()
                .unwrap()
                .len(),
            1,
            "nothing applied"
        );
        let r = scim.post("/Groups", json!({"schemas": [GROUP], "displayName": "Nested", "members": [{"value": g, "type": "Group"}]})).await;
        assert_eq!(r.error(400).as_deref(), Some("invalidValue"));

        // PUT replaces name and members.
        let r = scim.send("PUT", &path, Some(json!({"schemas": [GROUP], "displayName": "Platform", "members": [{"value": u1}, {"value": u2}]})), &[]).await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["members"].as_array().unwrap().len(), 2);
        assert!(r.body.get("externalId").is_none());

        // Deleting the group: its members stay in the workspace.
        assert_eq!(scim.send("DELETE", &path, None, &[]).await.status, 204);
        scim.get(&path).await.error(404);
        for u in [&u1, &u2, &u3] {
            assert!(srv
                .store()
                .effective_access(&acme, u)
                .await
                .unwrap()
                .is_some());
        }
        let (_, events) = owner
            .call(
                "GET",
                "/api/v1/workspaces/acme/audit-events?limit=200",
                None,
            )
            .await;
        let group_actions: Vec<&str> = events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["actor"]["type"] == "scim")
            .map(|e| e["action"].as_str().unwrap())
            .filter(|a| a.starts_with("scim.group."))
            .collect();
        for a in [
            "scim.group.created",
            "scim.group.updated",
            "scim.group.deleted",
        ] {
            assert!(group_actions.contains(&a), "{a}");
        }
        srv.stop().await;
    }
}

#[tokio::test]
async fn entra_and_okta_user_shapes() {
    let srv = TestServer::start(sqlite()).await;
    let (_, _, scim) = workspace(&srv, "acme", "ann@acme.test").await;
    // Entra ID's create, with the enterprise extension.
    let r = scim
        .post("/Users", json!({
            "schemas": [USER, ENTERPRISE],
            "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
            "userName": "Test_User_ab6490ee@corp.test",
            "active": true,
            "displayName": "Test User",
            "emails": [{"primary": true, "type": "work", "value": "Test_User_ab6490ee@corp.test"}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
            "roles": [],
            ENTERPRISE: {"employeeNumber": "42", "department": "R&D"}
        }))
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["schemas"], json!([USER, ENTERPRISE]));
    assert_eq!(r.body[ENTERPRISE]["department"], "R&D");
    let id = r.body["id"].as_str().unwrap().to_string();
    let path = format!("/Users/{id}");
    // The account takes the name; Entra's PATCH shapes.
    let account = srv.store().user_by_id(&id).await.unwrap().unwrap();
    assert_eq!(account.name, "Test User");
    let r = scim
        .patch(&path, json!([
            {"op": "Replace", "path": "displayName", "value": "Tess User"},
            {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "tess@corp.test"},
            {"op": "Replace", "path": "name.familyName", "value": "User"},
            {"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": "boss-id"},
            {"op": "Replace", "value": {"title": "Engineer", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "Ops"}},
            {"op": "Remove", "path": format!("{ENTERPRISE}:employeeNumber")},
            {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"},
        ]))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["displayName"], "Tess User");
    assert_eq!(
        r.body["emails"],
        json!([{"primary": true, "type": "work", "value": "tess@corp.test"}])
    );
    assert_eq!(r.body["name"]["familyName"], "User");
    assert_eq!(r.body["title"], "Engineer");
    assert_eq!(
        r.body[ENTERPRISE],
        json!({"department": "Ops", "manager": {"value": "boss-id"}})
    );
    assert_eq!(
        r.body["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 555 0100"}])
    );
    assert_eq!(
        srv.store().user_by_id(&id).await.unwrap().unwrap().name,
        "Tess User"
    );
    // Entra's existence check before creating.
    let (total, _) = scim
        .find(&q("userName eq \"test_user_ab6490ee@corp.test\""))
        .await;
    assert_eq!(total, 1);
    let (total, _) = scim
        .find(&q("externalId eq \"0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef\""))
        .await;
    assert_eq!(total, 1);

    // Okta: create, full PUT (with its password field), deactivate by PUT.
    let r = scim
        .post(
            "/Users",
            json!({
                "schemas": [USER], "userName": "okta.user@corp.test",
                "name": {"givenName": "Okta", "familyName": "User"},
                "emails": [{"primary": true, "value": "okta.user@corp.test", "type": "work"}],
                "displayName": "Okta User", "locale": "en-US", "externalId": "00u1", "groups": [],
                "password": "1mz050nq", "active": true
            }),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let okta = r.body["id"].as_str().unwrap().to_string();
    let mut full = r.body.clone();
    full["name"]["givenName"] = json!("Okay");
    full["active"] = json!(false);
    let r = scim
        .send("PUT", &format!("/Users/{okta}"), Some(full), &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["name"]["givenName"], "Okay");
    assert_eq!(r.body["active"], false);
    assert!(
        srv.store()
            .user_by_id(&okta)
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .is_none(),
        "no password set"
    );
    let (total, names) = scim.find(&q("active eq false")).await;
    assert_eq!((total, names), (1, vec!["okta.user@corp.test".to_string()]));
}

#[tokio::test]
async fn the_last_owner_cannot_be_deprovisioned() {
    let srv = TestServer::start(sqlite()).await;
    let (acme, _, scim) = workspace(&srv, "acme", "ann@acme.test").await;
    let r = scim.find(&q("userName eq \"ann@acme.test\"")).await;
    assert_eq!(r.0, 1);
    let ann = srv
        .store()
        .user_by_email("ann@acme.test")
        .await
        .unwrap()
        .unwrap()
        .id;
    let r = scim
        .patch(
            &format!("/Users/{ann}"),
            json!([{"op": "replace", "path": "active", "value": false}]),
        )
        .await;
    assert_eq!(r.error(409), None);
    scim.send("DELETE", &format!("/Users/{ann}"), None, &[])
        .await
        .error(409);
    assert!(srv
        .store()
        .effective_access(&acme, &ann)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        scim.get(&format!("/Users/{ann}")).await.body["active"],
        true
    );
}

#[tokio::test]
async fn the_cli_mints_a_working_scim_token() {
    let srv = TestServer::start(sqlite()).await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_iam-gateway"))
        .args([
            "scim-token",
            "create",
            "--workspace",
            "acme",
            "--description",
            "okta",
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
    assert!(token.starts_with("iamgw_scim_") && !token.contains(' '));
    let scim = Scim {
        base: srv.base.clone(),
        token,
    };
    assert_eq!(scim.get("/Users").await.status, 200);
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_iam-gateway"))
        .args(["scim-token", "create", "--workspace", "nope"])
        .env("IAMGW_DATABASE_URL", &srv.database_url)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
}
