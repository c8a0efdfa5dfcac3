use super::*;
use crate::web::api::{groups, invitations, me, members, route_table, settings, tokens};
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;

#[test]
fn every_route_is_documented_and_every_operation_is_routed() {
    let routed: Vec<(Verb, &str)> = route_table();
    let documented: Vec<(Verb, &str)> = OPERATIONS.iter().map(|o| (o.verb, o.path)).collect();
    let routed_set: BTreeSet<_> = routed.iter().copied().collect();
    let documented_set: BTreeSet<_> = documented.iter().copied().collect();
    assert_eq!(routed.len(), routed_set.len(), "a route is listed twice");
    assert_eq!(
        documented.len(),
        documented_set.len(),
        "an operation is listed twice"
    );
    let undocumented: Vec<_> = routed_set.difference(&documented_set).collect();
    let unrouted: Vec<_> = documented_set.difference(&routed_set).collect();
    assert!(
        undocumented.is_empty(),
        "routes without an operation: {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "operations without a route: {unrouted:?}"
    );
}

#[test]
fn operation_ids_are_unique_and_links_point_at_real_parameters() {
    let ids: BTreeSet<_> = OPERATIONS.iter().map(|o| o.id).collect();
    assert_eq!(ids.len(), OPERATIONS.len(), "duplicate operationId");
    for op in OPERATIONS {
        for link in op.links {
            let target = OPERATIONS
                .iter()
                .find(|o| o.id == link.operation)
                .unwrap_or_else(|| panic!("{}: link to unknown {}", op.id, link.operation));
            let params = target.path_params();
            assert!(params.contains(&link.parameter), "{}: {}", op.id, link.name);
            assert!(params.contains(&"slug"), "links pass the slug on");
        }
    }
}

fn walk_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                out.push(r.clone());
            }
            m.values().for_each(|x| walk_refs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| walk_refs(x, out)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves_and_every_schema_is_used() {
    let doc = build();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut refs = Vec::new();
    walk_refs(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in &refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("external $ref {r}"));
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }
    let used: BTreeSet<_> = refs.iter().map(String::as_str).collect();
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        let r = format!("#/components/schemas/{name}");
        assert!(used.contains(r.as_str()), "schema {name} is never used");
    }
}

#[test]
fn paths_declare_their_parameters_and_unsafe_methods_the_csrf_header() {
    let doc = build();
    for op in OPERATIONS {
        let o = &doc["paths"][op.path][op.verb.as_str()];
        assert_eq!(o["operationId"], op.id);
        let params = o["parameters"].as_array().cloned().unwrap_or_default();
        for p in op.path_params() {
            assert!(
                params
                    .iter()
                    .any(|x| x["in"] == "path" && x["name"] == p && x["required"] == true),
                "{}: path parameter {p}",
                op.id
            );
        }
        let csrf = params
            .iter()
            .any(|x| x["$ref"] == "#/components/parameters/CsrfToken");
        assert_eq!(
            csrf,
            op.verb.is_unsafe() && op.auth == Auth::Any,
            "{}: X-CSRF-Token",
            op.id
        );
        let responses = o["responses"].as_object().unwrap();
        if op.auth != Auth::Public {
            assert!(responses.contains_key("401"), "{}: 401", op.id);
        }
        for (status, r) in responses {
            if status.starts_with('4') {
                let name = r["$ref"].as_str().unwrap();
                let problem =
                    &doc.pointer(&name[1..]).unwrap()["content"]["application/problem+json"];
                assert!(problem.is_object(), "{}: {status} is problem+json", op.id);
            }
        }
    }
    for p in [
        "/api/v1/workspaces/{slug}/sso/connections",
        "/api/v1/workspaces/{slug}/domains/{domain}/verify",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} is documented");
    }
}

fn rejects_unknown<T: DeserializeOwned>(valid: Value) -> bool {
    let mut with_extra = valid.clone();
    with_extra["not_a_field"] = json!(1);
    serde_json::from_value::<T>(valid).is_ok() && serde_json::from_value::<T>(with_extra).is_err()
}

#[test]
fn closed_request_schemas_match_the_handlers_deny_unknown_fields() {
    let closed: &[(&str, bool)] = &[
        (
            "NewWorkspace",
            rejects_unknown::<me::NewWorkspace>(json!({"slug": "ab"})),
        ),
        (
            "SettingsPatch",
            rejects_unknown::<settings::SettingsPatch>(json!({})),
        ),
        (
            "MemberPatch",
            rejects_unknown::<members::MemberPatch>(json!({})),
        ),
        (
            "NewGroup",
            rejects_unknown::<groups::NewGroup>(json!({"name": "n"})),
        ),
        (
            "NewSsoConnection",
            rejects_unknown::<crate::web::api::sso::ConnectionBody>(json!({"type": "saml"})),
        ),
        (
            "SsoConnectionPatch",
            rejects_unknown::<crate::web::api::sso::ConnectionBody>(json!({})),
        ),
        (
            "NewDomain",
            rejects_unknown::<crate::web::api::sso::NewDomain>(json!({"domain": "a.test"})),
        ),
        (
            "GroupPatch",
            rejects_unknown::<groups::GroupPatch>(json!({})),
        ),
        (
            "NewInvitation",
            rejects_unknown::<invitations::NewInvite>(json!({"email": "a@b.c"})),
        ),
        (
            "NewToken",
            rejects_unknown::<tokens::NewToken>(json!({"policies": []})),
        ),
        (
            "NewScimToken",
            rejects_unknown::<tokens::NewScimToken>(json!({})),
        ),
        (
            "Resource",
            rejects_unknown::<crate::domain::model::Resource>(
                json!({"id": "i", "kind": "k", "name": "", "labels": []}),
            ),
        ),
    ];
    let schemas = schemas::components();
    for (name, rejects) in closed {
        let says_closed = schemas[*name]["additionalProperties"] == json!(false);
        assert_eq!(says_closed, *rejects, "{name}: additionalProperties");
    }
}

#[test]
fn policy_inputs_follow_the_role_catalog() {
    let schema = schemas::components()["PolicyInput"].clone();
    let mut listed: Vec<&str> = schema["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["properties"]["role"]["enum"].as_array().unwrap().clone())
        .map(|v| crate::domain::roles::find(v.as_str().unwrap()).unwrap().id)
        .collect();
    listed.sort_unstable();
    let mut catalog: Vec<&str> = crate::domain::roles::CATALOG.iter().map(|r| r.id).collect();
    catalog.sort_unstable();
    assert_eq!(listed, catalog);
}

#[test]
fn error_statuses_follow_the_kind_of_operation() {
    let by_id = |id: &str| OPERATIONS.iter().find(|o| o.id == id).unwrap();
    assert_eq!(by_id("getOpenApi").error_statuses(), Vec::<u16>::new());
    assert_eq!(by_id("getMe").error_statuses(), vec![401]);
    assert_eq!(
        by_id("listGroups").error_statuses(),
        vec![400, 401, 403, 404]
    );
    assert_eq!(
        by_id("createGroup").error_statuses(),
        vec![400, 401, 403, 404, 409, 413]
    );
}
