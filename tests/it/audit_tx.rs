//! SPEC 6b: a change and its audit event commit together or not at all.
//! With the database refusing audit inserts, every audited change through
//! the API and SCIM fails and leaves every table as it was; with it
//! accepting them again, each change writes exactly its one event.

use crate::saml::idp::{metadata_xml, world};
use crate::support::*;
use iam_gateway::domain::roles::Policy;
use iam_gateway::service::tokens;
use serde_json::{json, Value};
use sqlx::{Executor, Row};

/// A direct connection to the test server's database (not the gateway's).
async fn db(srv: &TestServer) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&srv.database_url)
        .await
        .unwrap()
}

async fn refuse_audit(pool: &sqlx::AnyPool, db: Db, refuse: bool) {
    let sql: &[&str] = match (db, refuse) {
        (Db::Sqlite, true) => &["CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit refused'); END"],
        (Db::Sqlite, false) => &["DROP TRIGGER refuse_audit"],
        (Db::Postgres, true) => &[
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$",
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
        ],
        (Db::Postgres, false) => &["DROP TRIGGER refuse_audit ON audit_events"],
    };
    for s in sql {
        pool.execute(*s).await.unwrap();
    }
}

/// Every row of every table but the audit log and the session store, as
/// text, table by table.
async fn snapshot(pool: &sqlx::AnyPool, db: Db) -> Vec<(String, Vec<String>)> {
    let list = match db {
        Db::Sqlite => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '_sqlx%' ORDER BY name",
        Db::Postgres => "SELECT CAST(tablename AS TEXT) AS name FROM pg_tables WHERE schemaname = current_schema() AND tablename NOT LIKE '_sqlx%' ORDER BY tablename",
    };
    let tables: Vec<String> = sqlx::query(list)
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>("name"))
        .filter(|t| !["audit_events", "kv", "kv_index"].contains(&t.as_str()))
        .collect();
    let mut out = Vec::new();
    for t in tables {
        let sql = match db {
            Db::Sqlite => {
                let cols: Vec<String> =
                    sqlx::query(&format!("SELECT name FROM pragma_table_info('{t}')"))
                        .fetch_all(pool)
                        .await
                        .unwrap()
                        .iter()
                        .map(|r| format!("quote(\"{}\")", r.get::<String, _>("name")))
                        .collect();
                format!("SELECT {} AS row FROM \"{t}\"", cols.join(" || ',' || "))
            }
            Db::Postgres => format!("SELECT CAST(x AS TEXT) AS row FROM \"{t}\" x"),
        };
        let mut rows: Vec<String> = sqlx::query(&sql)
            .fetch_all(pool)
            .await
            .unwrap()
            .iter()
            .map(|r| r.try_get::<String, _>("row").unwrap_or_default())
            .collect();
        rows.sort();
        out.push((t, rows));
    }
    out
}

async fn audit_count(pool: &sqlx::AnyPool, action: &str) -> i64 {
    sqlx::query("SELECT COUNT(*) AS n FROM audit_events WHERE action = $1")
        .bind(action)
        .fetch_one(pool)
        .await
        .unwrap()
        .get::<i64, _>("n")
}

async fn call(
    srv: &TestServer,
    token: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client().request(m, srv.url(path)).bearer_auth(token);
    if let Some(b) = body {
        let ct = if path.starts_with("/scim/") {
            "application/scim+json"
        } else {
            "application/json"
        };
        req = req.header("content-type", ct).body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_change_and_its_audit_event_commit_together_or_not_at_all() {
    for db_kind in [Db::Sqlite, Db::Postgres] {
        let Some(backend) = matrix().into_iter().find(|b| b.db == db_kind) else {
            continue;
        };
        let srv = TestServer::start(backend).await;
        let (ws_id, _) = srv.bootstrap("acme", "ann@acme.test").await;
        let mia = srv
            .add_member(&ws_id, "mia@acme.test", &["source_read_only"])
            .await;
        let kim = srv
            .add_member(&ws_id, "kim@acme.test", &["workspace_member"])
            .await;
        let (_, token) = tokens::mint(
            srv.state.store.as_ref(),
            iam_gateway::clock::Clock::now(srv.state.clock.as_ref()),
            &ws_id,
            tokens::Kind::Api,
            "audit tests",
            vec![Policy::workspace("workspace_owner")],
            None,
        )
        .await
        .unwrap();
        let ws = "/api/v1/workspaces/acme";
        // What the changes below work on.
        let (s, g) = call(
            &srv,
            &token,
            "POST",
            &format!("{ws}/groups"),
            Some(&json!({"name": "Eng"})),
        )
        .await;
        assert_eq!(s, 201, "{g}");
        let group = g["id"].as_str().unwrap().to_string();
        let (s, scim) = call(
            &srv,
            &token,
            "POST",
            &format!("{ws}/scim-tokens"),
            Some(&json!({"description": "IdP"})),
        )
        .await;
        assert_eq!(s, 201, "{scim}");
        let scim_token = scim["token"].as_str().unwrap().to_string();
        let (s, t) = call(
            &srv,
            &token,
            "POST",
            &format!("{ws}/tokens"),
            Some(&json!({"description": "old", "policies": [{"role": "workspace_member"}]})),
        )
        .await;
        assert_eq!(s, 201, "{t}");
        let old_token = t["id"].as_str().unwrap().to_string();
        let (s, i) = call(
            &srv,
            &token,
            "POST",
            &format!("{ws}/invitations"),
            Some(&json!({"email": "old@acme.test"})),
        )
        .await;
        assert_eq!(s, 201, "{i}");
        let invitation = i["id"].as_str().unwrap().to_string();
        let meta = metadata_xml(&[&world().idp.cert_der], None);
        let (s, c) = call(
            &srv,
            &token,
            "POST",
            &format!("{ws}/sso/connections"),
            Some(&json!({"type": "saml", "name": "Corp", "idp_metadata_xml": meta})),
        )
        .await;
        assert_eq!(s, 201, "{c}");
        let conn = c["id"].as_str().unwrap().to_string();
        for (path, body) in [
            (format!("{ws}/groups/{group}/members/{kim}"), None),
            (
                format!("{ws}/resources"),
                Some(json!({"id": "src-0", "kind": "source", "name": "Old", "labels": []})),
            ),
            (format!("{ws}/domains"), Some(json!({"domain": "old.test"}))),
        ] {
            let (s, answer) = call(&srv, &token, "POST", &path, body.as_ref()).await;
            assert!(s < 300, "{path}: {s} {answer}");
        }
        // The SCIM token's first use is recorded (last used): not a change.
        assert_eq!(
            call(&srv, &scim_token, "GET", "/scim/v2/Users", None)
                .await
                .0,
            200
        );

        let changes: Vec<(&str, String, Option<Value>, &str)> = vec![
            (
                "PATCH",
                format!("{ws}/settings"),
                Some(json!({"idle_timeout": "1h"})),
                "workspace.settings_updated",
            ),
            (
                "PATCH",
                format!("{ws}/members/{mia}"),
                Some(json!({"policies": [{"role": "source_admin"}]})),
                "member.updated",
            ),
            (
                "POST",
                format!("{ws}/groups"),
                Some(json!({"name": "Ops"})),
                "group.created",
            ),
            (
                "PATCH",
                format!("{ws}/groups/{group}"),
                Some(json!({"description": "builders"})),
                "group.updated",
            ),
            (
                "POST",
                format!("{ws}/groups/{group}/members/{mia}"),
                None,
                "group.member_added",
            ),
            (
                "POST",
                format!("{ws}/invitations"),
                Some(json!({"email": "neo@acme.test"})),
                "invitation.created",
            ),
            (
                "POST",
                format!("{ws}/invitations/{invitation}/resend"),
                None,
                "invitation.resent",
            ),
            (
                "DELETE",
                format!("{ws}/invitations/{invitation}"),
                None,
                "invitation.revoked",
            ),
            (
                "POST",
                format!("{ws}/tokens"),
                Some(json!({"description": "CI", "policies": [{"role": "workspace_member"}]})),
                "token.created",
            ),
            (
                "DELETE",
                format!("{ws}/tokens/{old_token}"),
                None,
                "token.revoked",
            ),
            (
                "POST",
                format!("{ws}/resources"),
                Some(
                    json!({"id": "src-1", "kind": "source", "name": "Web", "labels": ["env:prod"]}),
                ),
                "resource.registered",
            ),
            (
                "PATCH",
                format!("{ws}/sso/connections/{conn}"),
                Some(json!({"name": "Corp IdP"})),
                "sso.connection_updated",
            ),
            (
                "POST",
                format!("{ws}/domains"),
                Some(json!({"domain": "acme.test"})),
                "domain.added",
            ),
            (
                "POST",
                "/scim/v2/Users".to_string(),
                Some(
                    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "sam@acme.test"}),
                ),
                "scim.user.created",
            ),
            (
                "DELETE",
                format!("{ws}/groups/{group}/members/{kim}"),
                None,
                "group.member_removed",
            ),
            (
                "DELETE",
                format!("{ws}/resources/src-0"),
                None,
                "resource.deleted",
            ),
            (
                "DELETE",
                format!("{ws}/domains/old.test"),
                None,
                "domain.removed",
            ),
            (
                "POST",
                format!("{ws}/sso/connections"),
                Some(json!({"type": "saml", "name": "Second", "idp_metadata_xml": meta})),
                "sso.connection_created",
            ),
            (
                "POST",
                format!("{ws}/scim-tokens"),
                Some(json!({"description": "IdP 2"})),
                "scim_token.created",
            ),
            (
                "PATCH",
                format!("/scim/v2/Users/{kim}"),
                Some(
                    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "value": {"active": false}}]}),
                ),
                "scim.user.deactivated",
            ),
            (
                "POST",
                "/scim/v2/Groups".to_string(),
                Some(
                    json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "SCIM Eng"}),
                ),
                "scim.group.created",
            ),
            (
                "DELETE",
                format!("{ws}/groups/{group}"),
                None,
                "group.deleted",
            ),
            (
                "DELETE",
                format!("{ws}/sso/connections/{conn}"),
                None,
                "sso.connection_deleted",
            ),
            (
                "DELETE",
                format!("{ws}/members/{mia}"),
                None,
                "member.removed",
            ),
        ];
        let pool = db(&srv).await;
        refuse_audit(&pool, db_kind, true).await;
        for (method, path, body, action) in &changes {
            let before = snapshot(&pool, db_kind).await;
            let bearer = if path.starts_with("/scim/") {
                &scim_token
            } else {
                &token
            };
            let (status, answer) = call(&srv, bearer, method, path, body.as_ref()).await;
            assert!(status >= 500, "{db_kind:?} {method} {path} ({action}) answered {status} with its audit event refused: {answer}");
            assert_eq!(
                snapshot(&pool, db_kind).await,
                before,
                "{db_kind:?} {method} {path}: the change was kept without its audit event"
            );
        }
        refuse_audit(&pool, db_kind, false).await;
        for (method, path, body, action) in &changes {
            let events = audit_count(&pool, action).await;
            let bearer = if path.starts_with("/scim/") {
                &scim_token
            } else {
                &token
            };
            let (status, answer) = call(&srv, bearer, method, path, body.as_ref()).await;
            assert!(
                status < 300,
                "{db_kind:?} {method} {path}: {status} {answer}"
            );
            assert_eq!(
                audit_count(&pool, action).await,
                events + 1,
                "{db_kind:?} {method} {path}: one {action} event"
            );
        }
        pool.close().await;
        srv.stop().await;
    }
}

/// The same for a person's own account: a password change whose audit
/// event is refused changes nothing (the old password still signs in).
#[tokio::test]
async fn a_password_change_and_its_audit_event_commit_together() {
    for db_kind in [Db::Sqlite, Db::Postgres] {
        let Some(backend) = matrix().into_iter().find(|b| b.db == db_kind) else {
            continue;
        };
        let srv = TestServer::start(backend).await;
        srv.bootstrap("acme", "ann@acme.test").await;
        let mut br = Browser::new();
        br.sign_in(&srv, "ann@acme.test", PASSWORD, "/").await;
        let me: Value = serde_json::from_str(&br.get(&srv.url("/api/v1/me")).await.body).unwrap();
        let csrf = me["csrf_token"].as_str().unwrap().to_string();
        let form = [
            ("csrf_token", csrf.as_str()),
            ("current_password", PASSWORD),
            ("new_password", "a brand new long passphrase"),
        ];
        let pool = db(&srv).await;
        refuse_audit(&pool, db_kind, true).await;
        let before = snapshot(&pool, db_kind).await;
        let r = br.post_form(&srv.url("/account/password"), &form).await;
        assert!(r.status >= 500, "{db_kind:?}: {} {}", r.status, r.body);
        assert_eq!(snapshot(&pool, db_kind).await, before, "{db_kind:?}");
        let mut other = Browser::new();
        let r = other.sign_in(&srv, "ann@acme.test", PASSWORD, "/").await;
        assert_eq!(
            r.status, 303,
            "{db_kind:?}: the old password still signs in"
        );

        refuse_audit(&pool, db_kind, false).await;
        let r = br.post_form(&srv.url("/account/password"), &form).await;
        assert!(r.status < 400, "{db_kind:?}: {} {}", r.status, r.body);
        assert_eq!(audit_count(&pool, "user.password_changed").await, 1);
        pool.close().await;
        srv.stop().await;
    }
}
