//! One suite, every durable backend: SQLite always, PostgreSQL when
//! IAMGW_TEST_DATABASE_URL is set.

use crate::support::*;
use iam_gateway::domain::roles::Policy;
use iam_gateway::store::{self, AccessStore, NewUser, Store, StoreError};

async fn stores() -> Vec<(Db, std::sync::Arc<store::sql::SqlStore>)> {
    let mut out = Vec::new();
    for db in [Db::Sqlite, Db::Postgres] {
        if db == Db::Postgres
            && needs(
                pg_url(),
                "IAMGW_TEST_DATABASE_URL is unset or empty: no PostgreSQL variant",
            )
            .is_none()
        {
            continue;
        }
        let url = fresh_database_url(db, &temp_dir()).await;
        out.push((db, store::open(&url).await.unwrap()));
    }
    out
}

fn new_user(email: &str) -> NewUser {
    NewUser {
        email: email.into(),
        name: "N".into(),
        password_hash: None,
    }
}

#[tokio::test]
async fn email_uniqueness_is_case_insensitive_and_enforced_by_the_database() {
    for (db, s) in stores().await {
        let u = s.create_user(&new_user("Ann@Corp.test"), 1).await.unwrap();
        assert_eq!(u.email, "Ann@Corp.test", "{db:?}: email kept as typed");
        let again = s.create_user(&new_user("ann@corp.TEST"), 1).await;
        assert!(
            matches!(again, Err(StoreError::Conflict(ref m)) if m.contains("email")),
            "{db:?}: {again:?}"
        );
        let found = s.user_by_email("ANN@corp.test").await.unwrap().unwrap();
        assert_eq!(found.id, u.id, "{db:?}");
        // Concurrent creation: exactly one wins, the rest get a conflict.
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let s2 = s.clone();
            tasks.push(tokio::spawn(async move {
                s2.create_user(&new_user("race@corp.test"), 1).await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(StoreError::Conflict(_)) => {}
                Err(e) => panic!("{db:?}: unexpected {e}"),
            }
        }
        assert_eq!(ok, 1, "{db:?}");
    }
}

#[tokio::test]
async fn bootstrap_is_all_or_nothing() {
    for (db, s) in stores().await {
        let (ws, owner) = s
            .bootstrap_workspace("acme", "Acme", &new_user("owner@acme.test"), 5)
            .await
            .unwrap();
        let m = s.membership(&ws.id, &owner.id).await.unwrap().unwrap();
        assert_eq!(
            m.policies,
            vec![Policy::workspace("workspace_owner")],
            "{db:?}"
        );
        // Same slug again with a new email: refused, and the user is not created.
        let err = s
            .bootstrap_workspace("acme", "Other", &new_user("new@acme.test"), 5)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict(ref m) if m.contains("slug")),
            "{db:?}: {err:?}"
        );
        assert!(
            s.user_by_email("new@acme.test").await.unwrap().is_none(),
            "{db:?}: half-written user"
        );
        // An existing user becomes owner of a second workspace.
        let (ws2, same) = s
            .bootstrap_workspace("beta", "Beta", &new_user("OWNER@acme.test"), 6)
            .await
            .unwrap();
        assert_eq!(same.id, owner.id, "{db:?}");
        let list = s.workspaces_of_user(&owner.id).await.unwrap();
        assert_eq!(
            list.iter()
                .map(|w| w.workspace.slug.as_str())
                .collect::<Vec<_>>(),
            vec!["acme", "beta"],
            "{db:?}"
        );
        assert_eq!(ws2.slug, "beta");
    }
}

#[tokio::test]
async fn memberships_hold_policies_and_can_change_and_end() {
    for (db, s) in stores().await {
        let ws = s.create_workspace("w1", "W1", 1).await.unwrap();
        let u = s.create_user(&new_user("m@w1.test"), 1).await.unwrap();
        let scoped: Policy =
            serde_json::from_str(r#"{"role":"source_admin","scope":{"type":"ids","ids":["s1"]}}"#)
                .unwrap();
        s.add_member(&ws.id, &u.id, std::slice::from_ref(&scoped), 1)
            .await
            .unwrap();
        assert!(
            matches!(
                s.add_member(&ws.id, &u.id, &[], 1).await,
                Err(StoreError::Conflict(_))
            ),
            "{db:?}"
        );
        assert_eq!(
            s.membership(&ws.id, &u.id).await.unwrap().unwrap().policies,
            vec![scoped],
            "{db:?}"
        );
        s.set_member_policies(&ws.id, &u.id, &[Policy::workspace("workspace_member")])
            .await
            .unwrap();
        assert_eq!(
            s.membership(&ws.id, &u.id).await.unwrap().unwrap().policies[0].role,
            "workspace_member"
        );
        let owner = s.create_user(&new_user("o@w1.test"), 1).await.unwrap();
        s.add_member(
            &ws.id,
            &owner.id,
            &[Policy::workspace("workspace_owner")],
            1,
        )
        .await
        .unwrap();
        s.remove_member_checked(&ws.id, &u.id).await.unwrap();
        assert!(
            s.membership(&ws.id, &u.id).await.unwrap().is_none(),
            "{db:?}"
        );
        assert!(
            matches!(
                s.remove_member_checked(&ws.id, &u.id).await,
                Err(StoreError::NotFound)
            ),
            "{db:?}"
        );
        assert!(
            matches!(
                s.remove_member_checked(&ws.id, &owner.id).await,
                Err(StoreError::Conflict(_))
            ),
            "{db:?}: the last owner stays"
        );
        assert!(
            s.user_by_id(&u.id).await.unwrap().is_some(),
            "{db:?}: the user remains"
        );
    }
}

#[tokio::test]
async fn action_tokens_are_single_use_and_expire() {
    for (db, s) in stores().await {
        let u = s.create_user(&new_user("t@x.test"), 1).await.unwrap();
        s.create_action_token("h1", "set_password", &u.id, 100, 200)
            .await
            .unwrap();
        assert_eq!(
            s.peek_action_token("h1", "set_password", 150)
                .await
                .unwrap(),
            Some(u.id.clone()),
            "{db:?}"
        );
        assert_eq!(
            s.consume_action_token("h1", "other", 150).await.unwrap(),
            None,
            "{db:?}: purpose bound"
        );
        assert_eq!(
            s.consume_action_token("h1", "set_password", 150)
                .await
                .unwrap(),
            Some(u.id.clone()),
            "{db:?}"
        );
        assert_eq!(
            s.consume_action_token("h1", "set_password", 151)
                .await
                .unwrap(),
            None,
            "{db:?}: used once"
        );
        s.create_action_token("h2", "set_password", &u.id, 100, 200)
            .await
            .unwrap();
        assert_eq!(
            s.consume_action_token("h2", "set_password", 200)
                .await
                .unwrap(),
            None,
            "{db:?}: expired"
        );
    }
}

#[tokio::test]
async fn migrations_are_idempotent() {
    for (db, s) in stores().await {
        s.migrate().await.unwrap_or_else(|e| panic!("{db:?}: {e}"));
        s.ping().await.unwrap();
    }
}
