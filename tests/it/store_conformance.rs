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

/// The one value `sql` answers, read on the store's writer connection.
async fn scalar<T>(s: &store::sql::SqlStore, sql: &str) -> T
where
    T: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any> + Send + Unpin,
{
    sqlx::query_scalar(sql)
        .fetch_one(s.db().write())
        .await
        .unwrap()
}

/// Ann (an owner), Bob and Cy (members) in workspace `ws`: their ids.
async fn ann_bob_cy(s: &store::sql::SqlStore, ws: &str) -> [String; 3] {
    let mut ids = Vec::new();
    for e in ["ann@x.test", "bob@x.test", "cy@x.test"] {
        let u = s.create_user(&new_user(e), 1).await.unwrap();
        let role = if ids.is_empty() {
            "workspace_owner"
        } else {
            "workspace_member"
        };
        s.add_member(ws, &u.id, &[Policy::workspace(role)], 1)
            .await
            .unwrap();
        ids.push(u.id);
    }
    [ids.remove(0), ids.remove(0), ids.remove(0)]
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

/// SQLite commits through group commit: its writer commits without
/// syncing (`synchronous = NORMAL`) and each write is answered only after a
/// sync of the log that began after it; concurrent writes share those
/// syncs. 64 sign-ups at once are each answered, took at least one sync
/// and at most one each, and are all there for the next process.
#[tokio::test]
async fn concurrent_sqlite_writes_are_answered_after_shared_syncs() {
    let url = fresh_database_url(Db::Sqlite, &temp_dir()).await;
    let s = store::open(&url).await.unwrap();
    let before = s
        .db()
        .sync_rounds()
        .expect("a SQLite file commits through group commit");
    let mode: i64 = scalar(&s, "PRAGMA synchronous").await;
    assert_eq!(mode, 1, "the writer leaves syncing to group commit");
    let writes: Vec<_> = (0..64)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.create_user(&new_user(&format!("gc{i}@example.test")), 1)
                    .await
            })
        })
        .collect();
    for w in writes {
        w.await.unwrap().unwrap();
    }
    let rounds = s.db().sync_rounds().unwrap() - before;
    assert!((1..=64).contains(&rounds), "{rounds} syncs for 64 writes");
    s.close().await;
    let again = store::open(&url).await.unwrap();
    for i in 0..64 {
        assert!(
            again
                .user_by_email(&format!("gc{i}@example.test"))
                .await
                .unwrap()
                .is_some(),
            "sign-up {i}"
        );
    }
}

#[tokio::test]
async fn audit_events_recorded_at_once_are_written_together_and_each_is_kept() {
    use iam_gateway::domain::model::{Actor, AuditEvent};
    for (db, s) in stores().await {
        let ws = s
            .bootstrap_workspace("acme", "Acme", &new_user("owner@acme.test"), 1)
            .await
            .unwrap()
            .0
            .id;
        let event = |i: usize| AuditEvent {
            id: format!("ev-{i:03}"),
            workspace_id: Some(ws.clone()),
            time: 1_000 + i as i64,
            actor: Actor {
                kind: "user".into(),
                id: Some(format!("u{i}")),
                email: Some(format!("p{i}@acme.test")),
            },
            action: "member.updated".into(),
            target: Some(format!("t{i}")),
            ip: i.is_multiple_of(2).then(|| "10.0.0.1".into()),
            details: serde_json::json!({"n": i, "quote": "it's \"x\""}),
        };
        let before = s.audit_statements();
        let writes: Vec<_> = (0..240)
            .map(|i| {
                let (s, e) = (s.clone(), event(i));
                tokio::spawn(async move { s.record_audit(&e).await })
            })
            .collect();
        for w in writes {
            w.await.unwrap().unwrap();
        }
        let statements = s.audit_statements() - before;
        assert!(
            (3..240).contains(&statements),
            "{db:?}: {statements} statements for 240 events at once"
        );
        let mut seen: Vec<_> = whole_audit_log(&s, &ws)
            .await
            .into_iter()
            .filter(|e| e.id.starts_with("ev-"))
            .collect();
        seen.sort_by(|a, b| a.id.cmp(&b.id));
        assert_eq!(seen.len(), 240, "{db:?}");
        for (i, e) in seen.iter().enumerate() {
            let want = event(i);
            assert_eq!(
                (
                    &e.id,
                    e.time,
                    &e.actor.id,
                    &e.actor.email,
                    &e.target,
                    &e.ip,
                    &e.details
                ),
                (
                    &want.id,
                    want.time,
                    &want.actor.id,
                    &want.actor.email,
                    &want.target,
                    &want.ip,
                    &want.details
                ),
                "{db:?}"
            );
        }
        // One event alone is written, and answered, without waiting for others.
        s.record_audit(&event(999)).await.unwrap();
        assert_eq!(s.audit_statements() - before, statements + 1, "{db:?}");

        // A batch that cannot be written (here one of its events reuses an
        // id) is written not at all, and each caller learns whether its own
        // event is kept: answered Ok exactly when its row is there.
        let second = |i: usize| AuditEvent {
            id: if i == 239 {
                "ev-999".into()
            } else {
                format!("ev2-{i:03}")
            },
            ..event(i)
        };
        let writes: Vec<_> = (0..240)
            .map(|i| {
                let (s, e) = (s.clone(), second(i));
                tokio::spawn(async move { s.record_audit(&e).await })
            })
            .collect();
        let mut answered_ok = Vec::new();
        for (i, w) in writes.into_iter().enumerate() {
            if w.await.unwrap().is_ok() {
                answered_ok.push(format!("ev2-{i:03}"));
            }
        }
        assert!(
            answered_ok.len() < 239,
            "{db:?}: the failed batch answered Ok"
        );
        let mut kept: Vec<_> = whole_audit_log(&s, &ws)
            .await
            .into_iter()
            .map(|e| e.id)
            .filter(|id| id.starts_with("ev2-"))
            .collect();
        kept.sort();
        assert_eq!(
            kept, answered_ok,
            "{db:?}: rows kept against calls answered Ok"
        );
    }
}

/// Every audit event of `ws`, read a page of 100 at a time.
async fn whole_audit_log(
    s: &store::sql::SqlStore,
    ws: &str,
) -> Vec<iam_gateway::domain::model::AuditEvent> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = s
            .list_audit(ws, &Default::default(), cursor.as_deref(), 100)
            .await
            .unwrap();
        let n = page.len();
        cursor = page
            .last()
            .map(|e| store::sql_access::encode_cursor(&[&e.time.to_string(), &e.id]));
        all.extend(page);
        if n < 100 {
            return all;
        }
    }
}

/// Walks the member list `page` rows at a time and returns every row's id.
async fn walk_members(
    s: &store::sql::SqlStore,
    ws: &str,
    filter: &store::MemberFilter,
    page: i64,
    now: i64,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let rows = s
            .list_members(ws, filter, cursor.as_deref(), page, now)
            .await
            .unwrap();
        out.extend(rows.iter().map(|(_, m)| m.id.clone()));
        if (rows.len() as i64) < page {
            return out;
        }
        cursor = rows.last().map(|(c, _)| c.clone());
    }
}

#[tokio::test]
async fn the_member_list_pages_through_every_filter_and_the_csv_stream_agrees() {
    use futures_util::StreamExt as _;
    use std::collections::{BTreeMap, BTreeSet};
    let now = 1_000;
    for (db, s) in stores().await {
        let ws = s.create_workspace("acme", "Acme", 1).await.unwrap();
        let other = s.create_workspace("beta", "Beta", 1).await.unwrap();
        let billing = [
            Policy::workspace("workspace_member"),
            Policy::workspace("billing_admin"),
        ];
        let member = [Policy::workspace("workspace_member")];
        // Emails that order differently by case, with LIKE's wildcards in
        // them, and numbered ones to fill pages.
        let mut emails: Vec<String> = [
            "Zed@x.test",
            "amy@x.test",
            "b_o@x.test",
            "b%o@x.test",
            "bxo@x.test",
            "a.b+c@x.test",
        ]
        .iter()
        .map(|e| e.to_string())
        .collect();
        emails.extend((0..16).map(|i| format!("m{:02}@x.test", (i * 7) % 16)));
        // Reference: id -> (email_norm, is billing admin, groups).
        let mut reference: BTreeMap<String, (String, bool, Vec<String>)> = BTreeMap::new();
        let small = s.create_group(&ws.id, "Small", "", &[], 1).await.unwrap();
        let big = s.create_group(&ws.id, "Big", "", &[], 1).await.unwrap();
        let foreign = s
            .create_group(&other.id, "Theirs", "", &[], 1)
            .await
            .unwrap();
        // An owner, so that roles may change.
        let owner = s.create_user(&new_user("owner@x.test"), 1).await.unwrap();
        let owns = [
            Policy::workspace("workspace_owner"),
            Policy::workspace("workspace_member"),
        ];
        s.add_member(&ws.id, &owner.id, &owns, 1).await.unwrap();
        reference.insert(owner.id, ("owner@x.test".into(), false, Vec::new()));
        // The one member with a Twilio link.
        let mut linked = String::new();
        for (i, e) in emails.iter().enumerate() {
            let u = s.create_user(&new_user(e), 1).await.unwrap();
            if i == 2 {
                s.link_identity("twilio", "tw-b_o", &u.id, None, 1)
                    .await
                    .unwrap();
                linked = u.id.clone();
            }
            let is_billing = i % 5 == 0;
            let policies: &[Policy] = if is_billing { &billing } else { &member };
            s.add_member(&ws.id, &u.id, policies, 1).await.unwrap();
            let mut groups = Vec::new();
            // Big: more than the debug builds' small-group limit (8), so
            // both ways of answering a group filter are exercised.
            if i % 2 == 0 {
                s.add_group_member(&ws.id, &big.id, &u.id).await.unwrap();
                groups.push(big.id.clone());
            }
            if i % 7 == 3 {
                s.add_group_member(&ws.id, &small.id, &u.id).await.unwrap();
                groups.push(small.id.clone());
            }
            if i == 4 {
                // Also in another workspace and its group: that group
                // filters nothing here.
                s.add_member(&other.id, &u.id, &member, 1).await.unwrap();
                s.add_group_member(&other.id, &foreign.id, &u.id)
                    .await
                    .unwrap();
            }
            groups.sort();
            reference.insert(u.id, (e.to_lowercase(), is_billing, groups));
        }
        // An email change moves the member in the order (and in the email
        // search index).
        let moved = s.user_by_email("amy@x.test").await.unwrap().unwrap();
        s.set_user_email(&moved.id, "zz-amy@x.test").await.unwrap();
        reference.get_mut(&moved.id).unwrap().0 = "zz-amy@x.test".into();
        // A role given and one taken away, a member removed: the role
        // search index follows each.
        let promoted = s.user_by_email("m01@x.test").await.unwrap().unwrap();
        s.update_member(&ws.id, &promoted.id, Some(&billing), None)
            .await
            .unwrap();
        reference.get_mut(&promoted.id).unwrap().1 = true;
        let demoted = s.user_by_email("Zed@x.test").await.unwrap().unwrap();
        assert!(reference[&demoted.id].1, "Zed starts as a billing admin");
        s.update_member(&ws.id, &demoted.id, Some(&member), None)
            .await
            .unwrap();
        reference.get_mut(&demoted.id).unwrap().1 = false;
        let removed = s.user_by_email("m15@x.test").await.unwrap().unwrap();
        assert!(reference[&removed.id].1, "m15 starts as a billing admin");
        s.remove_member_checked(&ws.id, &removed.id).await.unwrap();
        reference.remove(&removed.id);
        // Invitations: two open, one revoked, one expired.
        let mut invited = BTreeMap::new();
        for (e, expires, revoke) in [
            ("b_invited@x.test", now + 100, false),
            ("m05-invited@x.test", now + 100, false),
            ("revoked@x.test", now + 100, true),
            ("expired@x.test", now - 1, false),
        ] {
            let inv = s
                .create_invitation(&store::NewInvitation {
                    workspace_id: ws.id.clone(),
                    email: e.into(),
                    token_hash: format!("hash-{e}"),
                    policies: billing.to_vec(),
                    group_ids: vec![small.id.clone()],
                    invited_by: None,
                    now: 1,
                    expires_at: expires,
                })
                .await
                .unwrap();
            if revoke {
                s.revoke_invitation(&ws.id, &inv.id, 2).await.unwrap();
            } else if expires > now {
                invited.insert(inv.id, e.to_string());
            }
        }
        let filters: Vec<(&str, store::MemberFilter)> = vec![
            (
                "all",
                store::MemberFilter {
                    include_invited: true,
                    ..Default::default()
                },
            ),
            ("members", store::MemberFilter::default()),
            (
                "email b",
                store::MemberFilter {
                    email: Some("B".into()),
                    include_invited: true,
                    ..Default::default()
                },
            ),
            (
                "email _",
                store::MemberFilter {
                    email: Some("_".into()),
                    include_invited: true,
                    ..Default::default()
                },
            ),
            (
                "email %",
                store::MemberFilter {
                    email: Some("%".into()),
                    include_invited: true,
                    ..Default::default()
                },
            ),
            (
                "billing",
                store::MemberFilter {
                    role: Some("billing_admin".into()),
                    include_invited: true,
                    ..Default::default()
                },
            ),
            (
                "every member's role",
                store::MemberFilter {
                    role: Some("workspace_member".into()),
                    include_invited: true,
                    ..Default::default()
                },
            ),
            (
                "a role no one has",
                store::MemberFilter {
                    role: Some("no_such_role".into()),
                    ..Default::default()
                },
            ),
            (
                "a role id of quotes and no word",
                store::MemberFilter {
                    role: Some("\" -".into()),
                    ..Default::default()
                },
            ),
            (
                "billing and email m",
                store::MemberFilter {
                    role: Some("billing_admin".into()),
                    email: Some("m".into()),
                    ..Default::default()
                },
            ),
            (
                // Three characters, few rows: the email index leads.
                "email m05",
                store::MemberFilter {
                    email: Some("M05".into()),
                    include_invited: true,
                    ..Default::default()
                },
            ),
            (
                "email of the new address",
                store::MemberFilter {
                    email: Some("zz-am".into()),
                    ..Default::default()
                },
            ),
            (
                "email everyone",
                store::MemberFilter {
                    email: Some("@x.test".into()),
                    include_invited: true,
                    ..Default::default()
                },
            ),
            (
                "small and email",
                store::MemberFilter {
                    group_id: Some(small.id.clone()),
                    email: Some("x.test".into()),
                    ..Default::default()
                },
            ),
            (
                "small",
                store::MemberFilter {
                    group_id: Some(small.id.clone()),
                    include_invited: true,
                    ..Default::default()
                },
            ),
            (
                "big",
                store::MemberFilter {
                    group_id: Some(big.id.clone()),
                    ..Default::default()
                },
            ),
            (
                "foreign",
                store::MemberFilter {
                    group_id: Some(foreign.id.clone()),
                    ..Default::default()
                },
            ),
        ];
        if db == Db::Sqlite {
            // A database copied row by row renumbers the memberships: the
            // search index no longer matches them. The next start finds out
            // and rebuilds it (here: an emptied index).
            for table in ["member_email_search", "member_role_search"] {
                sqlx::query(&format!(
                    "INSERT INTO {table} ({table}) VALUES ('delete-all')"
                ))
                .execute(s.db().write())
                .await
                .unwrap();
            }
            // A database from before the wider member order index (the
            // migration's own): the next start widens it.
            for step in [
                "DROP INDEX memberships_order_idx",
                "CREATE INDEX memberships_order_idx ON memberships (workspace_id, sort_email, user_id)",
            ] {
                sqlx::query(step).execute(s.db().write()).await.unwrap();
            }
            s.migrate().await.unwrap();
            let order: String = scalar(
                &s,
                "SELECT sql FROM sqlite_master WHERE name = 'memberships_order_idx'",
            )
            .await;
            assert!(
                order.contains("created_at, policies, shown_email")
                    && order.ends_with("shown_twilio, shown_groups)"),
                "the list and the CSV read a page from the index alone: {order}"
            );
        }
        for (name, f) in &filters {
            let mut want: BTreeSet<String> = reference
                .iter()
                .filter(|(_, (email, billing, groups))| {
                    f.email
                        .as_ref()
                        .is_none_or(|e| email.contains(&e.to_lowercase()))
                        && f.role.as_deref().is_none_or(|r| {
                            r == "workspace_member" || (r == "billing_admin" && *billing)
                        })
                        && f.group_id.as_ref().is_none_or(|g| groups.contains(g))
                })
                .map(|(id, _)| id.clone())
                .collect();
            if f.include_invited && f.group_id.is_none() {
                // Invitations grant billing_admin; groups never filter them in.
                want.extend(
                    invited
                        .iter()
                        .filter(|(_, e)| {
                            f.email
                                .as_ref()
                                .is_none_or(|x| e.contains(&x.to_lowercase()))
                        })
                        .map(|(id, _)| id.clone()),
                );
            }
            let whole = walk_members(&s, &ws.id, f, 1000, now).await;
            assert_eq!(
                whole.iter().cloned().collect::<BTreeSet<_>>(),
                want,
                "{db:?} {name}: the right rows"
            );
            assert_eq!(whole.len(), want.len(), "{db:?} {name}: each row once");
            for page in [1, 3, 7] {
                assert_eq!(
                    walk_members(&s, &ws.id, f, page, now).await,
                    whole,
                    "{db:?} {name}: pages of {page} walk the same rows in the same order"
                );
            }
        }
        // Rows carry their groups; the order is by email (byte order on
        // SQLite; PostgreSQL orders by its collation, which the pages follow).
        let all = s
            .list_members(&ws.id, &filters[0].1, None, 1000, now)
            .await
            .unwrap();
        for (_, m) in &all {
            assert_eq!(m.twilio_linked, m.id == linked, "{db:?} {}", m.email);
            match reference.get(&m.id) {
                Some((_, _, groups)) => assert_eq!(&m.group_ids, groups, "{db:?} {}", m.email),
                None => {
                    assert!(m.invited, "{db:?}");
                    assert_eq!(
                        m.group_ids,
                        vec![small.id.clone()],
                        "{db:?}: what the invitation grants"
                    );
                }
            }
        }
        if db == Db::Sqlite {
            let order: Vec<String> = all.iter().map(|(_, m)| m.email.to_lowercase()).collect();
            let mut sorted = order.clone();
            sorted.sort();
            assert_eq!(order, sorted, "email order");
            assert_eq!(order.last().map(String::as_str), Some("zz-amy@x.test"));
        }
        // The CSV's stream gives the same rows, every column, in the same
        // order (over several of its pages).
        let streamed: Vec<iam_gateway::domain::model::MemberRow> = s
            .member_stream(&ws.id, now)
            .map(|m| m.unwrap())
            .collect()
            .await;
        assert!(streamed.len() > 20, "{db:?}: {} rows", streamed.len());
        assert_eq!(
            streamed,
            all.into_iter().map(|(_, m)| m).collect::<Vec<_>>(),
            "{db:?}"
        );
    }
}

/// The members CSV shows each member as the member list does after every
/// kind of change to what it shows (SQLite's export reads copies kept in
/// the memberships; the list reads the sources), and a SQLite database
/// whose copies went out of step while nothing kept them is brought back
/// in step at the next start.
#[tokio::test]
async fn the_members_export_shows_every_change_the_member_list_shows() {
    use futures_util::StreamExt as _;
    let member = [Policy::workspace("workspace_member")];
    let all = store::MemberFilter {
        include_invited: true,
        ..Default::default()
    };
    for (db, s) in stores().await {
        let ws = s.create_workspace("acme", "Acme", 1).await.unwrap();
        let other = s.create_workspace("beta", "Beta", 1).await.unwrap();
        let agrees = |step: &'static str| {
            let (s, ws, all) = (s.clone(), ws.id.clone(), all.clone());
            async move {
                let listed: Vec<_> = s
                    .list_members(&ws, &all, None, 1000, 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|(_, m)| m)
                    .collect();
                let exported: Vec<_> = s.member_stream(&ws, 10).map(|m| m.unwrap()).collect().await;
                assert_eq!(exported, listed, "{db:?}: after {step}");
                exported
            }
        };
        let [ann, bob, cy] = ann_bob_cy(&s, &ws.id).await;
        s.add_member(&other.id, &ann, &member, 1).await.unwrap();
        let g1 = s.create_group(&ws.id, "One", "", &[], 1).await.unwrap();
        let g2 = s.create_group(&ws.id, "Two", "", &[], 1).await.unwrap();
        let theirs = s
            .create_group(&other.id, "Theirs", "", &[], 1)
            .await
            .unwrap();
        agrees("adding members").await;

        s.set_user_name(&ann, "Ann Lee").await.unwrap();
        let rows = agrees("a new name").await;
        assert_eq!(rows[0].name, "Ann Lee", "{db:?}");
        s.set_user_email(&bob, "Bobby@X.test").await.unwrap();
        let rows = agrees("a new email").await;
        assert_eq!(rows[1].email, "Bobby@X.test", "{db:?}");
        s.record_login(&cy, 500, "saml").await.unwrap();
        let rows = agrees("a sign-in").await;
        assert_eq!(
            (rows[2].last_login_at, rows[2].auth_method.as_deref()),
            (Some(500), Some("saml")),
            "{db:?}"
        );
        s.set_pending_totp(&ann, "sealed").await.unwrap();
        s.enable_totp(&ann, 600, 1, &[]).await.unwrap();
        assert!(agrees("2FA on").await[0].mfa_enabled, "{db:?}");
        s.disable_totp(&ann).await.unwrap();
        assert!(!agrees("2FA off").await[0].mfa_enabled, "{db:?}");
        s.link_identity("twilio", "tw-bob", &bob, None, 1)
            .await
            .unwrap();
        s.link_identity("sso:corp", "bob-at-corp", &cy, None, 1)
            .await
            .unwrap();
        let rows = agrees("a Twilio link and an SSO link").await;
        assert_eq!(
            rows.iter().map(|m| m.twilio_linked).collect::<Vec<_>>(),
            [false, true, false],
            "{db:?}"
        );
        s.unlink_identity("twilio", &bob).await.unwrap();
        assert!(
            !agrees("the Twilio link undone").await[1].twilio_linked,
            "{db:?}"
        );
        s.add_group_member(&ws.id, &g1.id, &ann).await.unwrap();
        s.add_group_member(&ws.id, &g2.id, &ann).await.unwrap();
        s.add_group_member(&ws.id, &g2.id, &cy).await.unwrap();
        s.add_group_member(&other.id, &theirs.id, &ann)
            .await
            .unwrap();
        let rows = agrees("groups joined").await;
        let mut both = vec![g1.id.clone(), g2.id.clone()];
        both.sort();
        assert_eq!(rows[0].group_ids, both, "{db:?}: not the other workspace's");
        // The groups with their members, and without (what the CSV reads).
        let mut two = vec![ann.clone(), cy.clone()];
        two.sort();
        let listed = s.list_groups(&ws.id).await.unwrap();
        let members: Vec<(&str, Vec<String>)> = listed
            .iter()
            .map(|g| (g.name.as_str(), g.member_ids.clone()))
            .collect();
        assert_eq!(
            members,
            [("One", vec![ann.clone()]), ("Two", two)],
            "{db:?}"
        );
        let mut counts = s.group_member_counts(&ws.id).await.unwrap();
        counts.sort();
        let mut want = vec![(g1.id.clone(), 1), (g2.id.clone(), 2)];
        want.sort();
        assert_eq!(counts, want, "{db:?}: the other workspace's group left out");
        let bare = s.list_groups_without_member_ids(&ws.id).await.unwrap();
        assert_eq!(bare.len(), 2, "{db:?}");
        for (b, g) in bare.iter().zip(&listed) {
            assert_eq!((&b.id, &b.name, &b.policies), (&g.id, &g.name, &g.policies));
            assert!(b.member_ids.is_empty(), "{db:?}");
        }
        s.remove_group_member(&ws.id, &g1.id, &ann).await.unwrap();
        assert_eq!(
            agrees("a group left").await[0].group_ids,
            vec![g2.id.clone()]
        );
        s.delete_group(&ws.id, &g2.id).await.unwrap();
        let rows = agrees("a group deleted").await;
        assert!(rows.iter().all(|m| m.group_ids.is_empty()), "{db:?}");
        // An open invitation of `email` with a group, made at `now`.
        let invite = |email: &'static str, group: String, now: i64| {
            let (s, ws) = (s.clone(), ws.id.clone());
            async move {
                s.create_invitation(&store::NewInvitation {
                    workspace_id: ws,
                    email: email.into(),
                    token_hash: format!("hash-{email}"),
                    policies: vec![Policy::workspace("workspace_member")],
                    group_ids: vec![group],
                    invited_by: None,
                    now,
                    expires_at: 100,
                })
                .await
                .unwrap()
            }
        };
        // Invited with a group, accepted by a user who was not a member.
        let inv = invite("dee@x.test", g1.id.clone(), 1).await;
        agrees("an invitation").await;
        let dee = s
            .accept_invitation_as_new_user(&inv.id, &new_user("dee@x.test"), 2)
            .await
            .unwrap();
        let rows = agrees("an accepted invitation").await;
        let dee_row = rows.iter().find(|m| m.id == dee.id).unwrap();
        assert_eq!(dee_row.group_ids, vec![g1.id.clone()], "{db:?}");
        // Removed and added back: nothing of the old groups comes back
        // unless the sources say so.
        s.remove_member_checked(&ws.id, &dee.id).await.unwrap();
        agrees("a member removed").await;
        s.add_member(&ws.id, &dee.id, &member, 3).await.unwrap();
        agrees("a member added back").await;
        // A member's groups replaced at once.
        let g3 = s.create_group(&ws.id, "Three", "", &[], 1).await.unwrap();
        s.update_member(&ws.id, &dee.id, None, Some(&[g1.id.clone(), g3.id.clone()]))
            .await
            .unwrap();
        s.update_member(&ws.id, &bob, None, Some(std::slice::from_ref(&g3.id)))
            .await
            .unwrap();
        s.update_member(&ws.id, &dee.id, None, Some(std::slice::from_ref(&g3.id)))
            .await
            .unwrap();
        let rows = agrees("groups replaced").await;
        assert_eq!(rows[1].group_ids, vec![g3.id.clone()], "{db:?}");
        // An existing user (linked to Twilio before joining) accepts an
        // invitation with a group.
        let eve = s
            .create_user_with_identity(&new_user("eve@x.test"), "twilio", "tw-eve", 4)
            .await
            .unwrap();
        let inv = invite("eve@x.test", g3.id.clone(), 4).await;
        s.accept_invitation(&inv.id, &eve.id, 5).await.unwrap();
        let rows = agrees("an existing user's accepted invitation").await;
        let eve_row = rows.iter().find(|m| m.id == eve.id).unwrap();
        assert!(eve_row.twilio_linked, "{db:?}");
        assert_eq!(eve_row.group_ids, vec![g3.id.clone()], "{db:?}");

        if db == Db::Sqlite {
            let run = |steps: &'static [&'static str]| {
                let s = s.clone();
                async move {
                    for step in steps {
                        sqlx::query(step).execute(s.db().write()).await.unwrap();
                    }
                }
            };
            let copy_of = |email: &'static str| {
                let s = s.clone();
                async move {
                    sqlx::query_scalar::<_, String>(
                        "SELECT m.shown_name FROM memberships m JOIN users u ON u.id = m.user_id \
                         WHERE u.email_norm = $1",
                    )
                    .bind(email)
                    .fetch_one(s.db().write())
                    .await
                    .unwrap()
                }
            };
            // Copies that went out of step while nothing kept them (a
            // trigger dropped, another one changed, one left over from
            // another build, rows changed by hand): the next start puts
            // the triggers back as this build has them and every copy in
            // step.
            run(&[
                "DROP TRIGGER member_copy_user",
                "DROP TRIGGER member_copy_group_joined",
                "CREATE TRIGGER member_copy_group_joined AFTER INSERT ON group_members BEGIN SELECT 1; END",
                "CREATE TRIGGER member_copy_old AFTER DELETE ON users BEGIN SELECT 1; END",
                "UPDATE memberships SET shown_name = 'stale', shown_twilio = 1, shown_groups = 'x'",
                "UPDATE users SET name = 'Changed unseen' WHERE email_norm = 'cy@x.test'",
            ])
            .await;
            s.add_group_member(&ws.id, &g1.id, &cy).await.unwrap();
            s.migrate().await.unwrap();
            let rows = agrees("a start after the copies went out of step").await;
            assert_eq!(rows[2].name, "Changed unseen");
            assert_eq!(rows[2].group_ids, vec![g1.id.clone()]);
            let left_over: i64 = scalar(
                &s,
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'member_copy_old'",
            )
            .await;
            assert_eq!(
                left_over, 0,
                "a trigger this build does not have is dropped"
            );
            s.set_user_name(&cy, "Cy again").await.unwrap();
            s.remove_group_member(&ws.id, &g1.id, &cy).await.unwrap();
            s.add_group_member(&ws.id, &g3.id, &cy).await.unwrap();
            let rows = agrees("the triggers back").await;
            assert_eq!(rows[2].name, "Cy again");
            // A Twilio link moved to another person by INSERT OR REPLACE:
            // its hidden delete fires no trigger, so Eve's copy stays
            // linked until the next start compares the copies.
            run(&[
                "INSERT OR REPLACE INTO identity_links (provider, subject, user_id, created_at) \
                 SELECT 'twilio', 'tw-eve', id, 9 FROM users WHERE email_norm = 'cy@x.test'",
            ])
            .await;
            s.migrate().await.unwrap();
            let rows = agrees("a start after an INSERT OR REPLACE").await;
            assert!(rows[2].twilio_linked);
            assert!(!rows.iter().find(|m| m.id == eve.id).unwrap().twilio_linked);
            // A membership loaded before its user (a copy made table by
            // table with foreign keys off): the user's insert fills the
            // copy.
            let mut one = s.db().write().acquire().await.unwrap();
            for step in [
                "PRAGMA foreign_keys = OFF".to_string(),
                format!(
                    "INSERT INTO memberships (workspace_id, user_id, policies, created_at, sort_email) \
                     VALUES ('{}', 'late-user', '[{{\"role\":\"workspace_member\"}}]', 7, 'fay@x.test')",
                    ws.id
                ),
                "INSERT INTO users (id, email, email_norm, name, created_at) \
                 VALUES ('late-user', 'Fay@x.test', 'fay@x.test', 'Fay', 7)"
                    .to_string(),
                "PRAGMA foreign_keys = ON".to_string(),
            ] {
                sqlx::query(&step).execute(&mut *one).await.unwrap();
            }
            drop(one);
            assert_eq!(copy_of("fay@x.test").await, "Fay");
            agrees("a user loaded after their membership").await;
            // The distribution's own SQLite (Debian 12's is 3.40, through
            // Python) still opens the file: a trigger in syntax it does not
            // know would make it refuse the whole schema.
            if let Some(python) = needs_tool("python3", "python3") {
                let file: String = scalar(
                    &s,
                    "SELECT file FROM pragma_database_list WHERE name = 'main'",
                )
                .await;
                let out = std::process::Command::new(python)
                    .args([
                        "-c",
                        "import sqlite3, sys\n\
                         c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
                         print(c.execute('SELECT COUNT(*) FROM memberships').fetchone()[0])",
                        &file,
                    ])
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "python3's sqlite3 could not read the database: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "7");
            }
        }
        assert_eq!(cy, agrees("the end").await[2].id, "{db:?}");
    }
}

/// Owners are counted once each, directly or through a group of the same
/// workspace (not another workspace's owner group), and the last owner,
/// even one through a group, cannot be removed.
#[tokio::test]
async fn owners_are_counted_directly_and_through_their_workspace_groups() {
    let owner = [Policy::workspace("workspace_owner")];
    let member = [Policy::workspace("workspace_member")];
    for (db, s) in stores().await {
        let ws = s.create_workspace("acme", "Acme", 1).await.unwrap();
        let other = s.create_workspace("beta", "Beta", 1).await.unwrap();
        let ids = ann_bob_cy(&s, &ws.id).await;
        let [ann, bob, cy] = [&ids[0], &ids[1], &ids[2]];
        s.add_member(&other.id, bob, &member, 1).await.unwrap();
        let owners = s
            .create_group(&ws.id, "Owners", "", &owner, 1)
            .await
            .unwrap();
        let theirs = s
            .create_group(&other.id, "Owners", "", &owner, 1)
            .await
            .unwrap();
        s.add_group_member(&ws.id, &owners.id, cy).await.unwrap();
        // Ann twice (directly and through the group): once.
        s.add_group_member(&ws.id, &owners.id, ann).await.unwrap();
        s.add_group_member(&other.id, &theirs.id, bob)
            .await
            .unwrap();
        assert_eq!(s.count_owners(&ws.id).await.unwrap(), 2, "{db:?}");
        assert_eq!(s.count_owners(&other.id).await.unwrap(), 1, "{db:?}");
        s.remove_group_member(&ws.id, &owners.id, ann)
            .await
            .unwrap();
        s.update_member(&ws.id, ann, Some(&member), None)
            .await
            .unwrap();
        assert_eq!(s.count_owners(&ws.id).await.unwrap(), 1, "{db:?}");
        assert!(
            matches!(
                s.remove_member_checked(&ws.id, cy).await,
                Err(StoreError::Conflict(_))
            ),
            "{db:?}: the last owner, through a group, stays"
        );
        s.remove_member_checked(&ws.id, bob).await.unwrap();
        assert_eq!(s.count_owners(&ws.id).await.unwrap(), 1, "{db:?}");
    }
}

/// The members CSV is one snapshot: a member who joins, leaves or changes
/// address while the download runs does not show up twice, half or not at
/// all; the export shows the workspace as it was when the download began.
#[tokio::test]
async fn the_members_export_reads_one_snapshot_while_members_change() {
    use futures_util::StreamExt as _;
    let member = [Policy::workspace("workspace_member")];
    let owner = [Policy::workspace("workspace_owner")];
    for (db, s) in stores().await {
        let ws = s.create_workspace("acme", "Acme", 1).await.unwrap();
        let mut ids = Vec::new();
        // Far more rows than the export reads ahead (a few pages).
        for i in 0..120 {
            let u = s
                .create_user(&new_user(&format!("m{i:03}@x.test")), 1)
                .await
                .unwrap();
            let policies: &[Policy] = if i == 0 { &owner } else { &member };
            s.add_member(&ws.id, &u.id, policies, 1).await.unwrap();
            ids.push(u.id);
        }
        let mut stream = s.member_stream(&ws.id, 10);
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.email, "m000@x.test", "{db:?}");
        // While the export waits for its reader: one member leaves from
        // far down the list, one joins at its end, one moves to its start
        // from the end.
        s.remove_member_checked(&ws.id, &ids[110]).await.unwrap();
        let late = s.create_user(&new_user("zz-late@x.test"), 2).await.unwrap();
        s.add_member(&ws.id, &late.id, &member, 2).await.unwrap();
        s.set_user_email(&ids[119], "a-moved@x.test").await.unwrap();
        let mut emails = vec![first.email];
        while let Some(m) = stream.next().await {
            emails.push(m.unwrap().email);
        }
        let want: Vec<String> = (0..120).map(|i| format!("m{i:03}@x.test")).collect();
        assert_eq!(emails, want, "{db:?}: the workspace as the download began");
        // The next download sees the changes.
        let after: Vec<String> = s
            .member_stream(&ws.id, 10)
            .map(|m| m.unwrap().email)
            .collect()
            .await;
        assert_eq!(after.len(), 120, "{db:?}");
        assert_eq!(after[0], "a-moved@x.test", "{db:?}");
        assert_eq!(after.last().map(String::as_str), Some("zz-late@x.test"));
        assert!(!after.contains(&"m110@x.test".to_string()), "{db:?}");
    }
}

/// The joined look-ups of an SSO sign-in read what the separate ones do,
/// on every backend: a connection with its workspace, and the user linked
/// to an identity (none for an unknown subject or connection).
#[tokio::test]
async fn sso_sign_in_look_ups_join_what_was_written() {
    use iam_gateway::store::{SsoConnection, SsoStore};
    for (db, s) in stores().await {
        let ws = s.create_workspace("acme", "Acme", 1).await.unwrap();
        let conn = SsoConnection {
            id: format!("conn-{}", uuid::Uuid::new_v4()),
            workspace_id: ws.id.clone(),
            kind: "saml".into(),
            name: "Corp IdP".into(),
            enabled: true,
            allow_idp_initiated: true,
            config: serde_json::json!({"entity_id": "https://idp.corp.test"}),
            created_at: 5,
            updated_at: 6,
        };
        s.create_connection(&conn).await.unwrap();
        let (c, w) = s
            .connection_with_workspace(&conn.id)
            .await
            .unwrap()
            .expect("the connection");
        assert_eq!(
            (
                c.id.as_str(),
                c.name.as_str(),
                c.enabled,
                c.allow_idp_initiated
            ),
            (conn.id.as_str(), "Corp IdP", true, true),
            "{db:?}"
        );
        assert_eq!(c.config, conn.config, "{db:?}");
        assert_eq!((c.created_at, c.updated_at), (5, 6), "{db:?}");
        let alone = s.workspace_by_id(&ws.id).await.unwrap().unwrap();
        assert_eq!(
            (w.id, w.slug, w.name, w.created_at),
            (alone.id, alone.slug, alone.name, alone.created_at),
            "{db:?}: the workspace, not the connection's columns"
        );
        assert!(s
            .connection_with_workspace("conn-unknown")
            .await
            .unwrap()
            .is_none());

        let ann = s.create_user(&new_user("ann@corp.test"), 1).await.unwrap();
        let provider = format!("sso:{}", conn.id);
        s.link_identity(&provider, "subject-ann", &ann.id, Some("ann@corp.test"), 7)
            .await
            .unwrap();
        let found = s
            .linked_user(&provider, "subject-ann")
            .await
            .unwrap()
            .expect("the linked user");
        assert_eq!(
            (found.id.as_str(), found.email.as_str(), found.created_at),
            (ann.id.as_str(), "ann@corp.test", 1),
            "{db:?}: the user's columns, not the link's"
        );
        assert!(s
            .linked_user(&provider, "subject-bob")
            .await
            .unwrap()
            .is_none());
        assert!(s
            .linked_user("sso:other", "subject-ann")
            .await
            .unwrap()
            .is_none());

        // The same look-up with the person's membership of the workspace:
        // not a member, then a member, of this workspace only.
        let member_of = |ws: String| {
            let (s, provider) = (s.clone(), provider.clone());
            async move {
                s.linked_member(&provider, "subject-ann", &ws)
                    .await
                    .unwrap()
                    .map(|(u, member)| (u.id, member))
            }
        };
        assert_eq!(
            member_of(ws.id.clone()).await,
            Some((ann.id.clone(), false)),
            "{db:?}"
        );
        let other = s.create_workspace("other", "Other", 1).await.unwrap();
        s.add_member(
            &other.id,
            &ann.id,
            &[Policy::workspace("workspace_member")],
            8,
        )
        .await
        .unwrap();
        assert_eq!(
            member_of(ws.id.clone()).await,
            Some((ann.id.clone(), false)),
            "{db:?}"
        );
        assert_eq!(
            member_of(other.id.clone()).await,
            Some((ann.id.clone(), true)),
            "{db:?}"
        );
        s.add_member(&ws.id, &ann.id, &[Policy::workspace("workspace_member")], 9)
            .await
            .unwrap();
        assert_eq!(
            member_of(ws.id.clone()).await,
            Some((ann.id.clone(), true)),
            "{db:?}"
        );
        assert!(s
            .linked_member("sso:other", "subject-ann", &ws.id)
            .await
            .unwrap()
            .is_none());
    }
}
