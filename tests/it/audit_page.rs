//! The owner's audit log page (`/w/{slug}/audit`): changes made through the
//! API read back in plain words, newest first; filters by action, actor and
//! target; paging with "Older"; the CSV link; 403 for a member who is not
//! an owner.

use crate::access::{bearer, Api};
use crate::support::*;
use serde_json::json;
use std::time::Duration;

/// One second later: events in distinct seconds have one order.
fn tick(srv: &TestServer) {
    srv.clock.advance(Duration::from_secs(1));
}

/// The rows of the page's event table.
fn rows(body: &str) -> usize {
    body.matches("<tr data-action=").count()
}

/// The `href` of the element with this id, unescaped.
fn href_of(body: &str, id: &str) -> Option<String> {
    let at = body.find(&format!("id=\"{id}\""))?;
    let tag_start = body[..at].rfind('<')?;
    let tag = &body[tag_start..tag_start + body[tag_start..].find('>')?];
    let h = tag.find("href=\"")? + 6;
    let end = tag[h..].find('"')?;
    Some(tag[h..h + end].replace("&amp;", "&").replace("&#38;", "&"))
}

#[tokio::test]
async fn an_owner_reads_the_audit_log_in_plain_words_with_filters_paging_and_csv() {
    for backend in matrix() {
        audit_page_on(backend).await;
    }
}

async fn audit_page_on(backend: Backend) {
    let srv = TestServer::start(backend).await;
    let (ws_id, _) = srv.bootstrap("acme", "ann@acme.test").await;
    let mia = srv
        .add_member(&ws_id, "mia@acme.test", &["workspace_member"])
        .await;
    let sam = srv
        .add_member(&ws_id, "sam@acme.test", &["workspace_member"])
        .await;
    let mut ann = Api::sign_in(&srv, "ann@acme.test").await;
    let w = "/api/v1/workspaces/acme";

    // Changes through the API, as Ann and as an API token.
    let (s, g) = ann
        .call(
            "POST",
            &format!("{w}/groups"),
            Some(json!({"name": "Editors"})),
        )
        .await;
    assert_eq!(s, 201, "{g}");
    tick(&srv);
    let gid = g["id"].as_str().unwrap().to_string();
    let (s, _) = ann
        .call("POST", &format!("{w}/groups/{gid}/members/{mia}"), None)
        .await;
    assert!(s < 300, "{s}");
    tick(&srv);
    let (s, _) = ann
        .call("DELETE", &format!("{w}/members/{sam}"), None)
        .await;
    assert!(s < 300, "{s}");
    tick(&srv);
    let body = json!({"description": "deploy bot", "policies": [{"role": "workspace_member"}]});
    let (s, t) = ann.call("POST", &format!("{w}/tokens"), Some(body)).await;
    assert_eq!(s, 201, "{t}");
    tick(&srv);
    let tid = t["id"].as_str().unwrap().to_string();
    let (s, _) = ann.call("DELETE", &format!("{w}/tokens/{tid}"), None).await;
    assert!(s < 300, "{s}");
    tick(&srv);
    let body = json!({"description": "ops", "policies": [{"role": "workspace_owner"}]});
    let (s, ops) = ann.call("POST", &format!("{w}/tokens"), Some(body)).await;
    assert_eq!(s, 201, "{ops}");
    tick(&srv);
    let ops_id = ops["id"].as_str().unwrap().to_string();
    let (s, _) = bearer(
        &srv,
        ops["token"].as_str().unwrap(),
        "POST",
        &format!("{w}/groups"),
        Some(json!({"name": "Via token"})),
    )
    .await;
    assert_eq!(s, 201);
    let total = 7;

    // The page, as the owner: every event in words, newest first.
    let br = &mut ann.br;
    let access = br.get(&srv.url("/w/acme/access")).await;
    assert!(access.body.contains("href=\"/w/acme/audit\""), "linked");
    let page = br.get(&srv.url("/w/acme/audit")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let b = &page.body;
    assert!(b.contains("<caption"), "a table with a caption");
    assert!(b.contains("<label for=\"audit-actor\">"));
    assert_eq!(rows(b), total);
    let lines = [
        "API token “ops” created the group “Via token”",
        "ann@acme.test created the API token “ops”",
        "ann@acme.test revoked the API token “deploy bot”",
        "ann@acme.test created the API token “deploy bot”",
        "ann@acme.test removed sam@acme.test from the workspace",
        "ann@acme.test added mia@acme.test to the group “Editors”",
        "ann@acme.test created the group “Editors”",
    ];
    let mut last = 0;
    for l in lines {
        let at = b.find(l).unwrap_or_else(|| panic!("no “{l}” in:\n{b}"));
        assert!(at >= last, "{l} is out of order");
        last = at;
    }
    assert!(!b.contains(&sam), "the removed member is named by email");
    assert!(!b.contains("audit-older"), "one page holds them all");

    // Filters: by action, by actor (email or token id), by target (email).
    let p = br
        .get(&srv.url("/w/acme/audit?action=member.removed"))
        .await;
    assert_eq!(rows(&p.body), 1);
    assert!(p.body.contains("removed sam@acme.test"));
    assert!(p
        .body
        .contains("<option value=\"member.removed\" selected>"));
    let csv = href_of(&p.body, "audit-csv").unwrap();
    assert_eq!(
        csv,
        "/api/v1/workspaces/acme/audit-events.csv?action=member.removed"
    );
    let c = br.get(&srv.url(&csv)).await;
    assert_eq!(c.status, 200);
    assert!(c.header("content-type").unwrap().starts_with("text/csv"));
    assert_eq!(c.body.lines().count(), 2, "{}", c.body);
    assert!(c.body.contains("member.removed"));
    let p = br
        .get(&srv.url("/w/acme/audit?actor=ann%40acme.test"))
        .await;
    assert_eq!(rows(&p.body), total - 1);
    assert!(!p.body.contains("Via token"));
    let p = br
        .get(&srv.url(&format!("/w/acme/audit?actor={ops_id}")))
        .await;
    assert_eq!(rows(&p.body), 1);
    assert!(p.body.contains("Via token"));
    let p = br
        .get(&srv.url("/w/acme/audit?target=sam%40acme.test"))
        .await;
    assert_eq!(rows(&p.body), 1, "{}", p.body);
    let p = br
        .get(&srv.url("/w/acme/audit?action=group.created&from=2000-01-01&to=2000-01-02"))
        .await;
    assert_eq!(rows(&p.body), 0);
    assert!(p.body.contains("No events match these filters."));
    let p = br.get(&srv.url("/w/acme/audit?from=yesterday")).await;
    assert_eq!(p.status, 400);
    assert!(p.body.contains("From: use RFC 3339"), "{}", p.body);

    // Paging: two at a time, "Older" until the end, nothing twice.
    let mut url = "/w/acme/audit?limit=2".to_string();
    let mut seen = Vec::new();
    for _ in 0..10 {
        let p = br.get(&srv.url(&url)).await;
        assert_eq!(p.status, 200);
        let n = rows(&p.body);
        assert!((1..=2).contains(&n));
        for l in lines {
            if p.body.contains(l) {
                assert!(!seen.contains(&l), "{l} twice");
                seen.push(l);
            }
        }
        match href_of(&p.body, "audit-older") {
            Some(next) => url = next,
            None => break,
        }
    }
    assert_eq!(seen, lines, "every event once, newest first");
    let p = br
        .get(&srv.url("/w/acme/audit?limit=2&cursor=forged"))
        .await;
    assert_eq!(rows(&p.body), 2, "a bad cursor starts over");

    // A member who is not an owner: the read-only 403, and no link.
    let mut mia_br = Browser::new();
    mia_br.sign_in(&srv, "mia@acme.test", PASSWORD, "/").await;
    let p = mia_br.get(&srv.url("/w/acme/audit")).await;
    assert_eq!(p.status, 403);
    assert!(p.body.contains("Only workspace owners can do this"));
    assert!(!p.body.contains("removed sam@acme.test"));
    let access = mia_br.get(&srv.url("/w/acme/access")).await;
    assert!(!access.body.contains("/w/acme/audit\""));
    srv.stop().await;
}
