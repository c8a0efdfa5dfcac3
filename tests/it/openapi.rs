//! The OpenAPI document at /api/v1/openapi.json, and what the API answers to
//! input it cannot read (each a finding of scripts/api-fuzz or of the
//! document's checks, kept here as a regression test).

use crate::support::*;
use iam_gateway::domain::roles::Policy;
use iam_gateway::web::api::{openapi, tokens, NO_SUCH_ROUTE};
use serde_json::{json, Value};

/// A workspace `acme` with an owner, and an owner API token of it.
async fn setup() -> (TestServer, String, String) {
    setup_on(sqlite()).await
}

async fn setup_on(backend: Backend) -> (TestServer, String, String) {
    let srv = TestServer::start(backend).await;
    let (ws_id, owner_id) = srv.bootstrap("acme", "ann@acme.test").await;
    let (_, secret) = tokens::mint(
        &srv.state,
        &ws_id,
        "api",
        "openapi tests",
        vec![Policy::workspace("workspace_owner")],
        None,
    )
    .await
    .unwrap();
    (srv, secret, owner_id)
}

struct Answer {
    status: u16,
    content_type: String,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn send(
    srv: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<(&str, Vec<u8>)>,
) -> Answer {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client().request(m, srv.url(path)).bearer_auth(token);
    if let Some((content_type, bytes)) = body {
        req = req.header("content-type", content_type).body(bytes);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let content_type = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let text = r.text().await.unwrap();
    Answer {
        status,
        content_type,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

fn json_body(v: Value) -> Option<(&'static str, Vec<u8>)> {
    Some(("application/json", v.to_string().into_bytes()))
}

/// A problem+json answer with this status.
fn assert_problem(a: &Answer, status: u16, what: &str) {
    assert_eq!(a.status, status, "{what}: {:?}", a.body);
    assert_eq!(a.content_type, "application/problem+json", "{what}");
    assert_eq!(a.body["status"], status, "{what}");
    for field in ["type", "title", "detail"] {
        assert!(a.body[field].is_string(), "{what}: {field} in {:?}", a.body);
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_every_operation_in_it_is_routed() {
    let (srv, token, _) = setup().await;
    let r = client()
        .get(srv.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "served without credentials");
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let doc: Value = r.json().await.unwrap();
    assert_eq!(doc, openapi::build());
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(
        doc["components"]["securitySchemes"]["cookieAuth"]["name"],
        "iamgw_session"
    );

    // Every documented operation reaches a handler: never 405, never the
    // "no such route" 404, and answers a status the document lists.
    let mut count = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            count += 1;
            let url = path
                .replace("{slug}", "acme")
                .replace("{user_id}", "nobody")
                .replace("{id}", "nothing");
            let body = op.get("requestBody").and_then(|_| json_body(json!({})));
            let a = send(&srv, &token, &method.to_uppercase(), &url, body).await;
            let what = format!("{method} {path}");
            assert_ne!(a.status, 405, "{what}");
            assert_ne!(a.body["detail"], NO_SUCH_ROUTE, "{what}");
            assert!(
                op["responses"].get(a.status.to_string()).is_some(),
                "{what}: {} is not documented",
                a.status
            );
            if a.status >= 400 {
                assert_problem(&a, a.status, &what);
            }
        }
    }
    assert_eq!(count, openapi::OPERATIONS.len());
}

/// axum's own rejections (unreadable query or path, wrong method, body too
/// large, unrouted path) were plain text or empty; the API answers them as
/// problem+json like every other error.
#[tokio::test]
async fn rejections_before_the_handler_are_problem_json() {
    let (srv, token, _) = setup().await;
    let a = send(
        &srv,
        &token,
        "GET",
        "/api/v1/workspaces/acme/members?limit=abc",
        None,
    )
    .await;
    assert_problem(&a, 400, "query of the wrong type");
    assert!(a.body["detail"].as_str().unwrap().contains("limit"));

    let a = send(
        &srv,
        &token,
        "GET",
        "/api/v1/workspaces/acme/audit-events?limit=1&limit=2",
        None,
    )
    .await;
    assert_problem(&a, 400, "repeated query parameter");

    let a = send(
        &srv,
        &token,
        "GET",
        "/api/v1/workspaces/acme/groups/%FF",
        None,
    )
    .await;
    assert_problem(&a, 400, "path parameter that is not UTF-8");

    let a = send(&srv, &token, "PUT", "/api/v1/workspaces/acme/groups", None).await;
    assert_problem(&a, 405, "method not allowed");
    let allow = a.headers["allow"].to_str().unwrap().to_string();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");

    let big = json!({"name": "x".repeat(70 * 1024)});
    let a = send(
        &srv,
        &token,
        "POST",
        "/api/v1/workspaces/acme/groups",
        json_body(big),
    )
    .await;
    assert_problem(&a, 413, "body too large");

    let a = send(&srv, &token, "GET", "/api/v1/workspaces/acme/nothing", None).await;
    assert_problem(&a, 404, "unrouted API path");
    assert_eq!(a.body["detail"], NO_SUCH_ROUTE);

    // Outside the API the plain fallback stays.
    let r = client().get(srv.url("/nothing-here")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_ne!(r.headers()["content-type"], "application/problem+json");
}

/// Found by schemathesis: `PATCH members/{id}` with the body `[null, null]`
/// answered 200 (serde reads a struct from an array of its fields).
#[tokio::test]
async fn a_body_must_be_a_json_object() {
    let (srv, token, owner) = setup().await;
    let path = format!("/api/v1/workspaces/acme/members/{owner}");
    let a = send(&srv, &token, "PATCH", &path, json_body(json!([null, null]))).await;
    assert_problem(&a, 400, "array body");
    assert!(a.body["detail"].as_str().unwrap().contains("JSON object"));
    for (method, path, body) in [
        ("POST", "/api/v1/workspaces/acme/groups", json!(["Eng"])),
        ("PATCH", "/api/v1/workspaces/acme/settings", json!([true])),
        ("POST", "/api/v1/workspaces/acme/tokens", json!("x")),
        ("POST", "/api/v1/workspaces/acme/resources", json!(null)),
    ] {
        let a = send(&srv, &token, method, path, json_body(body)).await;
        assert_problem(&a, 400, path);
    }
    // Objects still work, whitespace before them included.
    let a = send(
        &srv,
        &token,
        "POST",
        "/api/v1/workspaces/acme/groups",
        Some(("application/json", b" \n{\"name\": \"Eng\"}".to_vec())),
    )
    .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
}

/// Found by schemathesis: a huge `invitation_ttl` (e.g. `99999999999d`) was
/// accepted, and invitations then answered `"expires_at": ""` (a date past
/// what RFC 3339 can write). Settings durations are now at most 3650 days.
#[tokio::test]
async fn settings_durations_are_bounded_so_expiry_times_stay_dates() {
    let (srv, token, _) = setup().await;
    let settings = "/api/v1/workspaces/acme/settings";
    for field in [
        "idle_timeout",
        "absolute_timeout",
        "invitation_ttl",
        "audit_retention",
    ] {
        for huge in ["3651d", "99999999999d", "18446744073709551615s"] {
            let a = send(
                &srv,
                &token,
                "PATCH",
                settings,
                json_body(json!({ field: huge })),
            )
            .await;
            assert_problem(&a, 400, &format!("{field}={huge}"));
            assert!(a.body["detail"].as_str().unwrap().contains(field));
        }
    }
    let a = send(
        &srv,
        &token,
        "PATCH",
        settings,
        json_body(json!({"invitation_ttl": "3650d"})),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["invitation_ttl"], "3650d");

    let a = send(
        &srv,
        &token,
        "POST",
        "/api/v1/workspaces/acme/invitations",
        json_body(json!({"email": "new@acme.test"})),
    )
    .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let expires = a.body["expires_at"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{expires}"
    );
}

/// Found by schemathesis (positive data): `?cursor=` (empty, as in
/// `?cursor=&limit=`) answered 400 "malformed cursor"; it is the first page.
#[tokio::test]
async fn an_empty_cursor_is_the_first_page() {
    let (srv, token, _) = setup().await;
    // An audit event, so both lists have an item.
    let g = send(
        &srv,
        &token,
        "POST",
        "/api/v1/workspaces/acme/groups",
        json_body(json!({"name": "Eng"})),
    )
    .await;
    assert_eq!(g.status, 201);
    for path in [
        "/api/v1/workspaces/acme/members",
        "/api/v1/workspaces/acme/audit-events",
    ] {
        let first = send(&srv, &token, "GET", &format!("{path}?limit=1"), None).await;
        let empty = send(
            &srv,
            &token,
            "GET",
            &format!("{path}?cursor=&limit=1"),
            None,
        )
        .await;
        assert_eq!(empty.status, 200, "{path}: {:?}", empty.body);
        assert_eq!(empty.body["items"].as_array().unwrap().len(), 1, "{path}");
        assert_eq!(empty.body["items"], first.body["items"], "{path}");
        let bad = send(&srv, &token, "GET", &format!("{path}?cursor=%25%25"), None).await;
        assert_problem(&bad, 400, "a cursor that is not one");
    }
}

/// Found by schemathesis (positive data): resource `id`, `kind`, `name` and
/// labels were limited in bytes while the document (JSON Schema maxLength)
/// counts characters; they are now counted in characters.
#[tokio::test]
async fn resource_text_limits_count_characters() {
    let (srv, token, _) = setup().await;
    let path = "/api/v1/workspaces/acme/resources";
    let ok = json!({
        "id": "é".repeat(200),
        "kind": "é".repeat(50),
        "name": "é".repeat(200),
        "labels": [format!("k:{}", "é".repeat(198))],
    });
    let a = send(&srv, &token, "POST", path, json_body(ok.clone())).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(a.body, ok);
    for (field, value) in [
        ("id", json!("é".repeat(201))),
        ("kind", json!("é".repeat(51))),
        ("name", json!("é".repeat(201))),
        ("labels", json!([format!("k:{}", "é".repeat(199))])),
    ] {
        let mut body = ok.clone();
        body[field] = value;
        let a = send(&srv, &token, "POST", path, json_body(body)).await;
        assert_problem(&a, 400, field);
    }
}

/// Found by scripts/api-fuzz on PostgreSQL: a NUL character in a body
/// string, a path or query parameter, or inside a cursor reached the
/// database, which refused it ("invalid byte sequence"), and the API
/// answered 500. NUL is now refused with 400 on every backend.
#[tokio::test]
async fn nul_characters_are_refused_before_the_database() {
    for backend in matrix() {
        let (srv, token, _) = setup_on(backend).await;
        let ws = "/api/v1/workspaces/acme";
        for (method, path, body) in [
            (
                "POST",
                "/resources",
                json!({"id": "r", "kind": "k", "name": "a\u{0}b", "labels": []}),
            ),
            (
                "POST",
                "/resources",
                json!({"id": "r", "kind": "k", "name": "", "labels": [], "x\u{0}": 1}),
            ),
            (
                "POST",
                "/invitations",
                json!({"email": "new@acme.test", "group_ids": ["g\u{0}"]}),
            ),
            (
                "POST",
                "/tokens",
                json!({"description": "\u{0}", "policies": [{"role": "workspace_member"}]}),
            ),
            (
                "PATCH",
                "/settings",
                json!({"sso_exempt_user_ids": ["\u{0}"]}),
            ),
        ] {
            let a = send(
                &srv,
                &token,
                method,
                &format!("{ws}{path}"),
                json_body(body.clone()),
            )
            .await;
            assert_problem(&a, 400, &format!("{backend:?} {method} {path} {body}"));
            assert!(a.body["detail"].as_str().unwrap().contains("NUL"));
        }
        let nul_cursor = iam_gateway::crypto::b64url(b"a\0b");
        for path in [
            "/groups/%00".to_string(),
            "/members/a%00b".to_string(),
            "/members?email=%00".to_string(),
            "/audit-events?action=x%00".to_string(),
            format!("/members?cursor={nul_cursor}"),
            format!("/audit-events?cursor={nul_cursor}"),
        ] {
            let a = send(&srv, &token, "GET", &format!("{ws}{path}"), None).await;
            assert_problem(&a, 400, &format!("{backend:?} GET {path}"));
        }
        srv.stop().await;
    }
}

/// Found by schemathesis: when the only owner is an owner through a group,
/// deleting the group or taking the owner out of it answers 409 ("the
/// workspace must keep at least one owner"), which the document did not list
/// for those two operations. Every refusal here is a documented status, and
/// nothing changed.
#[tokio::test]
async fn the_last_owner_through_a_group_is_kept_with_a_documented_409() {
    let (srv, token, owner) = setup().await;
    let doc = openapi::build();
    let documented = |method: &str, template: &str, status: u16| {
        let op = &doc["paths"][template][method.to_lowercase()];
        assert!(op.is_object(), "{method} {template} is not in the document");
        assert!(
            op["responses"][status.to_string()].is_object(),
            "{method} {template} answers {status}, which its responses do not list"
        );
    };
    let ws = "/api/v1/workspaces/acme";
    let a = send(
        &srv,
        &token,
        "POST",
        &format!("{ws}/groups"),
        json_body(json!({"name": "Owners", "policies": [{"role": "workspace_owner"}]})),
    )
    .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let group = a.body["id"].as_str().unwrap().to_string();
    let a = send(
        &srv,
        &token,
        "PATCH",
        &format!("{ws}/members/{owner}"),
        json_body(json!({"policies": [], "group_ids": [group]})),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);

    let template = "/api/v1/workspaces/{slug}";
    for (method, path, body, op_path) in [
        (
            "DELETE",
            format!("{ws}/groups/{group}"),
            None,
            format!("{template}/groups/{{id}}"),
        ),
        (
            "DELETE",
            format!("{ws}/groups/{group}/members/{owner}"),
            None,
            format!("{template}/groups/{{id}}/members/{{user_id}}"),
        ),
        (
            "PATCH",
            format!("{ws}/groups/{group}"),
            json_body(json!({"policies": [{"role": "workspace_viewer"}]})),
            format!("{template}/groups/{{id}}"),
        ),
        (
            "PATCH",
            format!("{ws}/members/{owner}"),
            json_body(json!({"group_ids": []})),
            format!("{template}/members/{{user_id}}"),
        ),
        (
            "DELETE",
            format!("{ws}/members/{owner}"),
            None,
            format!("{template}/members/{{user_id}}"),
        ),
    ] {
        let a = send(&srv, &token, method, &path, body).await;
        assert_problem(&a, 409, &path);
        assert!(
            a.body["detail"].as_str().unwrap().contains("owner"),
            "{path}: {:?}",
            a.body
        );
        documented(method, &op_path, 409);
    }
    // Nothing changed: the group still holds the owner role and its member.
    let a = send(&srv, &token, "GET", &format!("{ws}/groups/{group}"), None).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        a.body["policies"][0]["role"], "workspace_owner",
        "{:?}",
        a.body
    );
    let a = send(&srv, &token, "GET", &format!("{ws}/members/{owner}"), None).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["groups"][0]["id"], group.as_str(), "{:?}", a.body);
}
