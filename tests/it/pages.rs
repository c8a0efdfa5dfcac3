//! The owner's pages over real HTTP: CSRF refusal, read-only pages for
//! members (saying why), 404 for non-members, and forms whose bad input
//! comes back with the error next to the field and changes nothing.

use crate::dns_server::DnsServer;
use crate::support::*;
use iam_gateway::clock::Clock;
use iam_gateway::store::MemberFilter;

struct Acme {
    srv: TestServer,
    ws_id: String,
    owner_id: String,
}

async fn acme() -> Acme {
    let srv = TestServer::start(sqlite()).await;
    let (ws_id, owner_id) = srv.bootstrap("acme", "ann@acme.test").await;
    Acme {
        srv,
        ws_id,
        owner_id,
    }
}

async fn signed_in(srv: &TestServer, email: &str) -> Browser {
    let mut br = Browser::new();
    assert_eq!(br.sign_in(srv, email, PASSWORD, "/").await.status, 303);
    br
}

/// GETs `path` and posts `form` (plus the page's CSRF token) to `action`.
async fn submit(
    br: &mut Browser,
    srv: &TestServer,
    path: &str,
    action: &str,
    form: &[(&str, &str)],
) -> Page {
    let page = br.get(&srv.url(path)).await;
    assert_eq!(page.status, 200, "{path}: {}", page.body);
    let csrf = page.csrf();
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    fields.push(("csrf_token", &csrf));
    br.post_form(&srv.url(action), &fields).await
}

/// The field's error paragraph exists and the field points at it.
fn error_next_to(page: &Page, id: &str) {
    let err = format!("id=\"{id}-error\"");
    assert!(page.body.contains(&err), "no {err} in:\n{}", page.body);
    assert!(
        page.body
            .contains(&format!("aria-describedby=\"{id}-error\"")),
        "{id} does not point at its error"
    );
}

async fn invitations(a: &Acme) -> usize {
    a.srv
        .store()
        .list_invitations(&a.ws_id, a.srv.clock.now())
        .await
        .unwrap()
        .len()
}

#[tokio::test]
async fn a_form_without_the_right_csrf_token_is_refused_and_changes_nothing() {
    let a = acme().await;
    let mut owner = signed_in(&a.srv, "ann@acme.test").await;
    let url = a.srv.url("/w/acme/access/invitations");
    let form = [("email", "new@acme.test"), ("role", "workspace_member")];
    let none = owner.post_form(&url, &form).await;
    assert_eq!(none.status, 403);
    assert!(none.body.contains("This form has expired"));
    let mut wrong = form.to_vec();
    wrong.push(("csrf_token", "forged"));
    assert_eq!(owner.post_form(&url, &wrong).await.status, 403);
    // A real token from another person's session does not fit this one.
    a.srv
        .add_member(&a.ws_id, "mia@acme.test", &["workspace_owner"])
        .await;
    let mut other = signed_in(&a.srv, "mia@acme.test").await;
    let theirs = other.get(&a.srv.url("/w/acme/access")).await.csrf();
    let mut stolen = form.to_vec();
    stolen.push(("csrf_token", &theirs));
    assert_eq!(owner.post_form(&url, &stolen).await.status, 403);
    // A foreign Origin is refused even with the right token.
    let mine = owner.get(&a.srv.url("/w/acme/access")).await.csrf();
    let mut good = form.to_vec();
    good.push(("csrf_token", &mine));
    let req = owner
        .client
        .post(&url)
        .header("origin", "https://evil.test")
        .form(&good);
    assert_eq!(owner.send(req).await.status, 403);
    assert_eq!(invitations(&a).await, 0);
    for path in [
        "/w/acme/access/groups",
        "/w/acme/access/tokens",
        "/w/acme/settings/sso/settings",
        "/w/acme/settings/sso/scim-tokens",
    ] {
        let r = owner
            .post_form(&a.srv.url(path), &[("name", "x"), ("description", "x")])
            .await;
        assert_eq!(r.status, 403, "{path}");
    }
    assert!(a
        .srv
        .store()
        .list_groups(&a.ws_id)
        .await
        .unwrap()
        .is_empty());
    assert!(a
        .srv
        .store()
        .list_tokens(&a.ws_id, "api")
        .await
        .unwrap()
        .is_empty());
    // With the token, the same invitation goes through.
    let ok = owner.post_form(&url, &good).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(invitations(&a).await, 1);
}

#[tokio::test]
async fn a_member_sees_read_only_pages_that_say_why_and_cannot_post() {
    let a = acme().await;
    a.srv
        .add_member(&a.ws_id, "mia@acme.test", &["workspace_member"])
        .await;
    a.srv
        .add_member(&a.ws_id, "min@acme.test", &["minimal_access"])
        .await;
    let mut mia = signed_in(&a.srv, "mia@acme.test").await;
    let users = mia.get(&a.srv.url("/w/acme/access")).await;
    assert_eq!(users.status, 200);
    assert!(users.body.contains("id=\"read-only\""));
    assert!(users
        .body
        .contains("only a Workspace Owner can manage access"));
    assert!(users.body.contains("ann@acme.test"), "members are listed");
    assert!(!users.body.contains("action=\"/w/acme/access/invitations\""));
    assert!(!users.body.contains("Download CSV"));
    let tokens = mia.get(&a.srv.url("/w/acme/access?tab=tokens")).await;
    assert!(tokens.body.contains("id=\"tokens-hidden\""));
    assert!(tokens.body.contains("visible to workspace owners only"));
    let member = mia
        .get(&a.srv.url(&format!("/w/acme/access/users/{}", a.owner_id)))
        .await;
    assert_eq!(member.status, 200);
    assert!(member.body.contains("id=\"read-only\""));
    assert!(!member.body.contains("/remove\""));
    let sso = mia.get(&a.srv.url("/w/acme/settings/sso")).await;
    assert_eq!(sso.status, 200);
    assert!(sso.body.contains("id=\"scim-hidden\""));
    assert!(sso.body.contains("<fieldset disabled>"));
    // Posting anyway: 403 with the reason, nothing made.
    let r = submit(
        &mut mia,
        &a.srv,
        "/w/acme/access",
        "/w/acme/access/invitations",
        &[("email", "x@acme.test")],
    )
    .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Only workspace owners can do this"));
    assert!(r.body.contains("only a Workspace Owner can manage access"));
    assert_eq!(invitations(&a).await, 0);
    assert_eq!(
        mia.get(&a.srv.url("/w/acme/access/members.csv"))
            .await
            .status,
        403
    );
    // Minimal access: not even reading, and told why.
    let mut min = signed_in(&a.srv, "min@acme.test").await;
    let page = min.get(&a.srv.url("/w/acme/access")).await;
    assert_eq!(page.status, 403);
    assert!(page
        .body
        .contains("Only workspace owners and members can see this."));
}

#[tokio::test]
async fn a_non_member_gets_404_and_a_stranger_is_sent_to_sign_in() {
    let a = acme().await;
    a.srv.bootstrap("beta", "bob@beta.test").await;
    let mut bob = signed_in(&a.srv, "bob@beta.test").await;
    for path in [
        "/w/acme/access",
        "/w/acme/access?tab=tokens",
        &format!("/w/acme/access/users/{}", a.owner_id),
        "/w/acme/settings/sso",
        "/w/nowhere/access",
    ] {
        let r = bob.get(&a.srv.url(path)).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(!r.body.contains("ann@acme.test"), "{path} reveals nothing");
    }
    let csrf = bob.get(&a.srv.url("/w/beta/access")).await.csrf();
    let r = bob
        .post_form(
            &a.srv.url("/w/acme/access/invitations"),
            &[("email", "x@acme.test"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(invitations(&a).await, 0);
    // In their own workspace, the header's switcher lists only theirs.
    let own = bob.get(&a.srv.url("/w/beta/access")).await;
    assert!(own
        .body
        .contains("href=\"/w/beta/access\" aria-current=\"page\""));
    assert!(!own.body.contains("/w/acme/"));
    let mut stranger = Browser::new();
    let r = stranger.get(&a.srv.url("/w/acme/access?tab=groups")).await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location").as_deref(),
        Some("/login?return_to=%2Fw%2Facme%2Faccess%3Ftab%3Dgroups")
    );
}

#[tokio::test]
async fn bad_input_comes_back_next_to_its_field_and_changes_nothing() {
    let a = acme().await;
    let mut ann = signed_in(&a.srv, "ann@acme.test").await;
    let srv = &a.srv;

    let r = submit(
        &mut ann,
        srv,
        "/w/acme/access",
        "/w/acme/access/invitations",
        &[("email", "not-an-email"), ("role", "workspace_member")],
    )
    .await;
    assert_eq!(r.status, 400);
    error_next_to(&r, "invite-email");
    assert!(r.body.contains("value=\"not-an-email\""), "input kept");
    let r = submit(
        &mut ann,
        srv,
        "/w/acme/access",
        "/w/acme/access/invitations",
        &[
            ("email", "new@acme.test"),
            ("role", "source_admin"),
            ("scope", "labels"),
            ("scope_values", "prod"),
        ],
    )
    .await;
    assert_eq!(r.status, 400);
    error_next_to(&r, "invite-scope-values");
    let r = submit(
        &mut ann,
        srv,
        "/w/acme/access",
        "/w/acme/access/invitations",
        &[("email", "ann@acme.test")],
    )
    .await;
    assert_eq!(r.status, 409, "already a member");
    error_next_to(&r, "invite-email");
    assert_eq!(invitations(&a).await, 0);

    let r = submit(
        &mut ann,
        srv,
        "/w/acme/access?tab=groups",
        "/w/acme/access/groups",
        &[("name", "  "), ("role", "billing_admin"), ("scope", "ids")],
    )
    .await;
    assert_eq!(r.status, 400);
    error_next_to(&r, "group-name");
    error_next_to(&r, "group-scope");
    assert!(srv.store().list_groups(&a.ws_id).await.unwrap().is_empty());

    let r = submit(
        &mut ann,
        srv,
        "/w/acme/access?tab=tokens",
        "/w/acme/access/tokens",
        &[("description", ""), ("access", "billing_admin")],
    )
    .await;
    assert_eq!(r.status, 400);
    error_next_to(&r, "token-description");
    error_next_to(&r, "token-access");
    assert!(srv
        .store()
        .list_tokens(&a.ws_id, "api")
        .await
        .unwrap()
        .is_empty());

    let member_page = format!("/w/acme/access/users/{}", a.owner_id);
    let r = submit(
        &mut ann,
        srv,
        &member_page,
        &format!("{member_page}/policies"),
        &[("role", "nope")],
    )
    .await;
    assert_eq!(r.status, 400);
    error_next_to(&r, "member-role");
    // Taking the last owner's role is refused on the page; nothing changes.
    let owner_policy = r#"{"role":"workspace_owner","scope":null}"#;
    let r = submit(
        &mut ann,
        srv,
        &member_page,
        &format!("{member_page}/policies/remove"),
        &[("policy", owner_policy)],
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("id=\"form-error\""));
    assert_eq!(srv.store().count_owners(&a.ws_id).await.unwrap(), 1);

    let before = srv
        .store()
        .workspace_by_slug("acme")
        .await
        .unwrap()
        .unwrap()
        .settings;
    let r = submit(
        &mut ann,
        srv,
        "/w/acme/settings/sso",
        "/w/acme/settings/sso/settings",
        &[("default_role", "emperor"), ("require_mfa", "on")],
    )
    .await;
    assert_eq!(r.status, 400);
    error_next_to(&r, "default-role");
    // Require SSO needs a session that came through the workspace's SSO.
    let r = submit(
        &mut ann,
        srv,
        "/w/acme/settings/sso",
        "/w/acme/settings/sso/settings",
        &[("default_role", "workspace_member"), ("require_sso", "on")],
    )
    .await;
    assert_eq!(r.status, 403);
    error_next_to(&r, "require-sso");
    let after = srv
        .store()
        .workspace_by_slug("acme")
        .await
        .unwrap()
        .unwrap()
        .settings;
    assert_eq!(before, after);

    // A connection form with bad input: the error by the field, nothing
    // stored, and the secret never echoed.
    let r = submit(
        &mut ann,
        srv,
        "/w/acme/settings/sso",
        "/w/acme/settings/sso/connections",
        &[
            ("kind", "oidc"),
            ("name", "Okta"),
            ("issuer", "not a url"),
            ("client_id", "abc"),
            ("client_secret", "shh-very-secret"),
        ],
    )
    .await;
    assert_eq!(r.status, 400);
    error_next_to(&r, "conn-issuer");
    assert!(
        !r.body.contains("shh-very-secret"),
        "a secret is never echoed"
    );
    let r = submit(
        &mut ann,
        srv,
        "/w/acme/settings/sso",
        "/w/acme/settings/sso/connections",
        &[
            ("kind", "saml"),
            ("name", "Corp"),
            ("metadata_xml", "<not-metadata/>"),
        ],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    error_next_to(&r, "conn-metadata-xml");
    assert!(srv
        .store()
        .list_connections(&a.ws_id)
        .await
        .unwrap()
        .is_empty());
    let r = submit(
        &mut ann,
        srv,
        "/w/acme/settings/sso",
        "/w/acme/settings/sso/domains",
        &[("domain", "not a domain")],
    )
    .await;
    assert_eq!(r.status, 400);
    error_next_to(&r, "domain");
    assert!(srv.store().list_domains(&a.ws_id).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_sso_page_adds_connections_and_verifies_domains_with_the_api_rules() {
    let dns = DnsServer::start().await;
    let srv = TestServer::start_with(
        Options::new(sqlite()).env("IAMGW_DNS__RESOLVER", &dns.addr.to_string()),
    )
    .await;
    let (ws_id, _) = srv.bootstrap("acme", "ann@acme.test").await;
    let mut ann = signed_in(&srv, "ann@acme.test").await;
    let page = "/w/acme/settings/sso";
    let r = submit(
        &mut ann,
        &srv,
        page,
        "/w/acme/settings/sso/connections",
        &[
            ("kind", "oidc"),
            ("name", "Okta"),
            ("issuer", "https://idp.example.com"),
            ("client_id", "abc"),
            ("client_secret", "shh-very-secret"),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let conns = srv.store().list_connections(&ws_id).await.unwrap();
    assert_eq!(conns.len(), 1);
    let shown = ann.get(&srv.url(page)).await;
    assert!(shown.body.contains("data-connection=\"Okta\""));
    assert!(shown
        .body
        .contains(&format!("{}/sso/oidc/{}/callback", srv.base, conns[0].id)));
    assert!(!shown.body.contains("shh-very-secret"));

    let r = submit(
        &mut ann,
        &srv,
        page,
        "/w/acme/settings/sso/domains",
        &[("domain", "Corp.Test")],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let d = srv.store().list_domains(&ws_id).await.unwrap();
    let record = format!("iamgw-verification={}", d[0].token);
    let shown = ann.get(&srv.url(page)).await;
    assert!(shown.body.contains(&record), "the TXT record to publish");
    assert!(shown.body.contains("Not verified"));
    // Not published yet: the reason, and still unverified.
    let verify = "/w/acme/settings/sso/domains/corp.test/verify";
    let r = submit(&mut ann, &srv, page, verify, &[]).await;
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.body.contains("id=\"form-error\""));
    assert!(r.body.contains("No TXT record"));
    dns.set_txt("corp.test", &[&record]);
    let r = submit(&mut ann, &srv, page, verify, &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let shown = ann.get(&srv.url(page)).await;
    assert!(shown
        .body
        .contains("<span class=\"pill ok\">Verified</span>"));

    let r = submit(
        &mut ann,
        &srv,
        page,
        &format!("/w/acme/settings/sso/connections/{}/delete", conns[0].id),
        &[],
    )
    .await;
    assert_eq!(r.status, 303);
    assert!(srv
        .store()
        .list_connections(&ws_id)
        .await
        .unwrap()
        .is_empty());
    let events = srv
        .store()
        .list_audit(&ws_id, &Default::default(), None, 50)
        .await
        .unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for want in [
        "sso.connection_created",
        "domain.added",
        "domain.verified",
        "sso.connection_deleted",
    ] {
        assert!(actions.contains(&want), "{want} in {actions:?}");
    }
}

#[tokio::test]
async fn owner_forms_use_the_api_rules_and_audit_like_it() {
    let a = acme().await;
    let mut ann = signed_in(&a.srv, "ann@acme.test").await;
    let srv = &a.srv;
    let r = submit(
        &mut ann,
        srv,
        "/w/acme/access?tab=groups",
        "/w/acme/access/groups",
        &[
            ("name", "Prod"),
            ("role", "source_admin"),
            ("scope", "labels"),
            ("scope_values", "env:prod, team:a"),
        ],
    )
    .await;
    assert_eq!(r.status, 303);
    let groups = srv.store().list_groups(&a.ws_id).await.unwrap();
    assert_eq!(groups.len(), 1);
    assert_eq!(
        groups[0].policies[0].label(),
        "source_admin:labels=env:prod|team:a"
    );
    let group_id = groups[0].id.clone();
    let r = submit(
        &mut ann,
        srv,
        "/w/acme/access",
        "/w/acme/access/invitations",
        &[("email", "new@acme.test"), ("group_ids", &group_id)],
    )
    .await;
    assert_eq!(r.status, 303);
    let inv = srv
        .store()
        .list_invitations(&a.ws_id, srv.clock.now())
        .await
        .unwrap();
    assert_eq!(inv[0].group_ids, vec![group_id]);
    assert!(inv[0].policies.is_empty(), "groups only: no default role");
    let list = ann.get(&srv.url("/w/acme/access?q=new%40")).await;
    assert!(list.body.contains("data-email=\"new@acme.test\""));
    assert!(
        !list.body.contains("data-email=\"ann@acme.test\""),
        "search"
    );
    let r = submit(
        &mut ann,
        srv,
        "/w/acme/access",
        &format!("/w/acme/access/invitations/{}/revoke", inv[0].id),
        &[],
    )
    .await;
    assert_eq!(r.status, 303);
    assert_eq!(invitations(&a).await, 0);
    let events = srv
        .store()
        .list_audit(&a.ws_id, &Default::default(), None, 50)
        .await
        .unwrap();
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for want in ["group.created", "invitation.created", "invitation.revoked"] {
        assert!(actions.contains(&want), "{want} in {actions:?}");
    }
    let rows = srv
        .store()
        .list_members(&a.ws_id, &MemberFilter::default(), None, 10, 0)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
}

/// A large group's page shows its members a page at a time, in email
/// order, with how many there are and a link to the next page.
#[tokio::test]
async fn a_large_group_page_shows_its_members_a_page_at_a_time() {
    use iam_gateway::domain::roles::Policy;
    let a = acme().await;
    let srv = &a.srv;
    let store = srv.store();
    let g = store
        .create_group(&a.ws_id, "Everyone", "", &[], 1)
        .await
        .unwrap();
    for i in 0..55 {
        let u = store
            .create_user(
                &iam_gateway::store::NewUser {
                    email: format!("m{:02}@acme.test", (i * 7) % 55),
                    name: String::new(),
                    password_hash: None,
                },
                1,
            )
            .await
            .unwrap();
        store
            .add_member(&a.ws_id, &u.id, &[Policy::workspace("workspace_member")], 1)
            .await
            .unwrap();
        store
            .add_group_member(&a.ws_id, &g.id, &u.id)
            .await
            .unwrap();
    }
    let mut ann = signed_in(srv, "ann@acme.test").await;
    let emails = |body: &str| -> Vec<String> {
        let table = body
            .split("id=\"group-members\"")
            .nth(1)
            .and_then(|t| t.split("</table>").next())
            .unwrap_or_default();
        table
            .split("<span class=\"muted small\">")
            .skip(1)
            .filter_map(|s| s.split('<').next())
            .map(str::to_string)
            .collect()
    };
    let first = ann
        .get(&srv.url(&format!("/w/acme/access/groups/{}", g.id)))
        .await;
    assert_eq!(first.status, 200);
    assert!(
        first.body.contains("55 member(s) · 50 on this page"),
        "{}",
        first.body
    );
    let want: Vec<String> = (0..55).map(|i| format!("m{i:02}@acme.test")).collect();
    assert_eq!(emails(&first.body), want[..50].to_vec());
    let next = first
        .body
        .split("id=\"group-members-next\"")
        .next()
        .and_then(|b| b.rsplit("href=\"").next())
        .and_then(|h| h.split('"').next())
        .expect("a link to the next page")
        .replace("&amp;", "&");
    let second = ann.get(&srv.url(&next)).await;
    assert_eq!(second.status, 200);
    assert_eq!(emails(&second.body), want[50..].to_vec());
    assert!(!second.body.contains("group-members-next"), "the last page");
}

#[tokio::test]
async fn the_group_page_forms_rename_change_roles_and_members_and_delete() {
    let a = acme().await;
    let srv = &a.srv;
    let mia = srv
        .add_member(&a.ws_id, "mia@acme.test", &["workspace_member"])
        .await;
    let mut ann = signed_in(srv, "ann@acme.test").await;
    let r = submit(
        &mut ann,
        srv,
        "/w/acme/access?tab=groups",
        "/w/acme/access/groups",
        &[("name", "Eng"), ("role", "source_admin"), ("scope", "all")],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let group = srv.store().list_groups(&a.ws_id).await.unwrap().remove(0);
    let page = format!("/w/acme/access/groups/{}", group.id);
    let action = |what: &str| format!("{page}/{what}");
    let current = || async { srv.store().get_group(&a.ws_id, &group.id).await.unwrap() };

    let r = submit(
        &mut ann,
        srv,
        &page,
        &action("edit"),
        &[("name", "Platform"), ("description", "Runs it")],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(current().await.unwrap().name, "Platform");

    let r = submit(
        &mut ann,
        srv,
        &page,
        &action("policies"),
        &[("role", "engage_read_only"), ("scope", "all")],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let policies = current().await.unwrap().policies;
    assert_eq!(policies.len(), 2, "{policies:?}");
    let engage = serde_json::to_string(&policies[1]).unwrap();
    let r = submit(
        &mut ann,
        srv,
        &page,
        &action("policies/remove"),
        &[("policy", &engage)],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(current().await.unwrap().policies.len(), 1);

    let r = submit(
        &mut ann,
        srv,
        &page,
        &action("members"),
        &[("email", "mia@acme.test")],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(current().await.unwrap().member_ids, vec![mia.clone()]);
    // The Access page counts the group's members.
    let list = ann.get(&srv.url("/w/acme/access?tab=groups")).await;
    let row = list
        .body
        .split("<tr data-group=\"Platform\">")
        .nth(1)
        .and_then(|r| r.split("</tr>").next())
        .unwrap_or_default()
        .to_string();
    assert!(row.contains("<td>1</td>"), "one member: {row}");
    let r = submit(
        &mut ann,
        srv,
        &page,
        &action("members"),
        &[("email", "nobody@acme.test")],
    )
    .await;
    assert_eq!(r.status, 400, "not a member of the workspace");
    let r = submit(
        &mut ann,
        srv,
        &page,
        &action("members/remove"),
        &[("user_id", &mia)],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(current().await.unwrap().member_ids.is_empty());

    // Without the CSRF token, or as a member who may only read: nothing changes.
    let r = ann
        .post_form(&srv.url(&action("edit")), &[("name", "Forged")])
        .await;
    assert_eq!(r.status, 403);
    let mut member = signed_in(srv, "mia@acme.test").await;
    let r = submit(&mut member, srv, &page, &action("delete"), &[]).await;
    assert_eq!(r.status, 403, "a member cannot delete groups");
    assert_eq!(current().await.unwrap().name, "Platform");
    // An unknown group is a 404 page, not an error.
    let r = submit(
        &mut ann,
        srv,
        &page,
        "/w/acme/access/groups/no-such-group/delete",
        &[],
    )
    .await;
    assert_eq!(r.status, 404);

    let r = submit(&mut ann, srv, &page, &action("delete"), &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(current().await.is_none());
}

/// The text of the table row that holds `marker` (a `data-…` attribute),
/// tags dropped and blanks squeezed.
fn row_text(body: &str, marker: &str) -> String {
    text_until(body, marker, "</tr>")
}

/// The text from `marker` to the next `end`, tags dropped and blanks
/// squeezed.
fn text_until(body: &str, marker: &str, end: &str) -> String {
    let start = body
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in:\n{body}"));
    let row = &body[start..];
    let row = &row[..row.find(end).unwrap()];
    let mut text = String::new();
    let mut in_tag = false;
    for c in row.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[tokio::test]
async fn the_users_tab_member_page_and_workspace_list_show_effective_roles_with_their_source() {
    use iam_gateway::domain::roles::{Policy, Scope};
    let a = acme().await;
    let store = a.srv.store();
    let mia = a
        .srv
        .add_member(&a.ws_id, "mia@acme.test", &["workspace_member"])
        .await;
    let mut prod = Policy::workspace("source_admin");
    prod.scope = Some(Scope::Labels {
        labels: vec!["env:prod".into()],
    });
    let now = a.srv.clock.now();
    let admins = store
        .create_group(&a.ws_id, "Prod admins", "", &[prod], now)
        .await
        .unwrap();
    // A role Mia also has directly: shown once, with both sources.
    let members = store
        .create_group(
            &a.ws_id,
            "Everyone",
            "",
            &[Policy::workspace("workspace_member")],
            now,
        )
        .await
        .unwrap();
    store
        .update_member(
            &a.ws_id,
            &mia,
            None,
            Some(&[admins.id.clone(), members.id.clone()]),
        )
        .await
        .unwrap();
    let mut owner = signed_in(&a.srv, "ann@acme.test").await;
    let tab = owner.get(&a.srv.url("/w/acme/access?tab=users")).await;
    assert_eq!(tab.status, 200);
    assert!(tab.body.contains(">Effective roles<"), "{}", tab.body);
    let row = row_text(&tab.body, "data-email=\"mia@acme.test\"");
    assert!(
        row.contains("Workspace Member direct, via group “Everyone”"),
        "{row}"
    );
    assert!(
        row.contains("Source Admin on labels env:prod via group “Prod admins”"),
        "{row}"
    );
    assert_eq!(row.matches("Workspace Member").count(), 1, "{row}");
    let row = row_text(&tab.body, "data-email=\"ann@acme.test\"");
    assert!(row.contains("Workspace Owner direct"), "{row}");
    assert!(!row.contains("via group"), "{row}");
    // Her member page too.
    let page = owner
        .get(&a.srv.url(&format!("/w/acme/access/users/{mia}")))
        .await;
    let effective = text_until(&page.body, "id=\"effective-access\"", "</ul>");
    assert!(
        effective.contains("Workspace Member direct, via group “Everyone”"),
        "{effective}"
    );
    assert!(
        effective.contains("Source Admin on labels env:prod via group “Prod admins”"),
        "{effective}"
    );
    // Mia's own list of workspaces says the same.
    let mut br = signed_in(&a.srv, "mia@acme.test").await;
    let list = br.get(&a.srv.url("/workspaces")).await;
    assert_eq!(list.status, 200);
    let row = row_text(&list.body, "data-workspace=\"acme\"");
    assert!(
        row.contains("Workspace Member direct, via group “Everyone”"),
        "{row}"
    );
    assert!(
        row.contains("Source Admin on labels env:prod via group “Prod admins”"),
        "{row}"
    );
    // Out of the group, the role it gave is gone from both pages.
    store
        .update_member(
            &a.ws_id,
            &mia,
            None,
            Some(std::slice::from_ref(&members.id)),
        )
        .await
        .unwrap();
    let list = br.get(&a.srv.url("/workspaces")).await;
    let row = row_text(&list.body, "data-workspace=\"acme\"");
    assert!(!row.contains("Source Admin"), "{row}");
    let tab = owner.get(&a.srv.url("/w/acme/access?tab=users")).await;
    let row = row_text(&tab.body, "data-email=\"mia@acme.test\"");
    assert!(!row.contains("Source Admin"), "{row}");
}
