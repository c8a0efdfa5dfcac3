//! Workspace SSO end to end through the gateway's routes: SAML (responses
//! signed by xmlsec1 with the test IdP's key), OIDC, domains with a test DNS
//! server, home-realm discovery, JIT provisioning and Require SSO. Every
//! refusal asserts that no cookie was set and nothing was created.

use crate::access::Api;
use crate::dns_server::DnsServer;
use crate::oidc_fixture::{
    Fixture, Misbehaviour, CLIENT_ID as FIX_CLIENT_ID, CLIENT_SECRET as FIX_CLIENT_SECRET,
};
use crate::saml::idp::{metadata_xml, world, Sign, EMAIL_FMT};
use crate::saml::template::Resp;
use crate::support::*;
use base64::Engine;
use iam_gateway::clock::Clock;
use serde_json::{json, Value};
use std::io::Read;

pub struct Sso {
    pub srv: TestServer,
    pub dns: DnsServer,
    pub owner: Api,
    pub conn: String,
}

pub async fn users(srv: &TestServer) -> i64 {
    let url = srv.database_url.clone();
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect(&url)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&pool)
        .await
        .unwrap()
}

async fn links(srv: &TestServer) -> i64 {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .connect(&srv.database_url)
        .await
        .unwrap();
    sqlx::query_scalar("SELECT COUNT(*) FROM identity_links")
        .fetch_one(&pool)
        .await
        .unwrap()
}

/// Workspace `acme` (owner ann@acme.test) with a SAML connection to the test IdP.
pub async fn saml_setup(allow_idp_initiated: bool) -> Sso {
    let dns = DnsServer::start().await;
    let srv = TestServer::start_with(
        Options::new(Backend {
            db: Db::Sqlite,
            sessions: Sessions::Database,
        })
        .env("IAMGW_DNS__RESOLVER", &dns.addr.to_string()),
    )
    .await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let mut owner = Api::sign_in(&srv, "ann@acme.test").await;
    let meta = metadata_xml(&[&world().idp.cert_der], None);
    let (s, c) = owner.call("POST", "/api/v1/workspaces/acme/sso/connections", Some(json!({"type": "saml", "name": "Corp IdP", "idp_metadata_xml": meta, "allow_idp_initiated": allow_idp_initiated}))).await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(
        c["acs_url"],
        format!("{}/sso/saml/{}/acs", srv.base, c["id"].as_str().unwrap())
    );
    let conn = c["id"].as_str().unwrap().to_string();
    Sso {
        srv,
        dns,
        owner,
        conn,
    }
}

/// Starts SP-initiated sign-in; returns (RelayState, request id).
pub async fn start(br: &mut Browser, s: &Sso, return_to: &str) -> (String, String) {
    let r = br
        .get(&s.srv.url(&format!(
            "/sso/{}/start?return_to={}",
            s.conn,
            urlenc(return_to)
        )))
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let loc = url::Url::parse(&r.header("location").unwrap()).unwrap();
    let q: std::collections::HashMap<String, String> = loc.query_pairs().into_owned().collect();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(&q["SAMLRequest"])
        .unwrap();
    let mut xml = String::new();
    flate2::read::DeflateDecoder::new(&raw[..])
        .read_to_string(&mut xml)
        .unwrap();
    let id = xml
        .split("ID=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    (q["RelayState"].clone(), id)
}

/// A response from the test IdP to this gateway's connection.
pub fn response(s: &Sso, in_response_to: Option<&str>, email: &str) -> Resp {
    let now = s.srv.clock.now();
    let acs = s.srv.url(&format!("/sso/saml/{}/acs", s.conn));
    Resp {
        destination: Some(acs.clone()),
        recipient: acs,
        audiences: vec![s.srv.url(&format!("/sso/saml/{}/metadata", s.conn))],
        response_in_response_to: in_response_to.map(str::to_string),
        scd_in_response_to: in_response_to.map(str::to_string),
        name_id: email.into(),
        name_id_format: Some(EMAIL_FMT.into()),
        not_before: now - 30,
        not_on_or_after: now + 600,
        scd_not_on_or_after: now + 300,
        assertion_id: format!("_a{}", uuid::Uuid::new_v4().simple()),
        response_id: format!("_r{}", uuid::Uuid::new_v4().simple()),
        ..Resp::new()
    }
}

pub async fn post_acs(br: &mut Browser, s: &Sso, xml: &str, relay: Option<&str>) -> Page {
    let b64 = base64::engine::general_purpose::STANDARD.encode(xml);
    let mut form = vec![("SAMLResponse", b64.as_str())];
    if let Some(r) = relay {
        form.push(("RelayState", r));
    }
    br.post_form(&s.srv.url(&format!("/sso/saml/{}/acs", s.conn)), &form)
        .await
}

#[tokio::test]
async fn saml_sp_initiated_sign_in_provisions_a_member_and_refuses_replays() {
    let mut s = saml_setup(false).await;
    let mut br = Browser::new();
    let (relay, req) = start(&mut br, &s, "/w/acme/access").await;
    assert_eq!(req.len(), 33, "128-bit request id");
    let xml = response(&s, Some(&req), "carol@corp.test").signed(Sign::Assertion);
    let r = post_acs(&mut br, &s, &xml, Some(&relay)).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location").as_deref(), Some("/w/acme/access"));
    let v = br.verify(&s.srv, "workspace=acme").await;
    assert_eq!(v.status, 200);
    assert_eq!(v.header("x-auth-method"), Some(format!("sso:{}", s.conn)));
    assert_eq!(
        v.header("x-auth-roles").as_deref(),
        Some("minimal_access"),
        "JIT with the default role"
    );
    // The same response again (replay), from the same browser: refused.
    let before = users(&s.srv).await;
    let mut again = Browser::new();
    again.cookies = br.cookies.clone();
    again.cookies.remove("iamgw_session");
    let r = post_acs(&mut again, &s, &xml, Some(&relay)).await;
    assert_eq!(r.status, 401);
    assert!(again.session_cookie().is_none());
    assert_eq!(users(&s.srv).await, before);
    // Audit: the sign-in and the refusal.
    let (_, events) = s
        .owner
        .call(
            "GET",
            "/api/v1/workspaces/acme/audit-events?action=sso.refused",
            None,
        )
        .await;
    assert_eq!(events["items"].as_array().unwrap().len(), 1);

    // Removed from the workspace, carol signs in through the IdP again: her
    // link finds her, and she is provisioned anew with the default role (the
    // same account, no second user).
    let (_, me) = s
        .owner
        .call("GET", "/api/v1/workspaces/acme/members?email=carol", None)
        .await;
    let carol = me["items"][0]["user_id"].as_str().unwrap().to_string();
    let (st, _) = s
        .owner
        .call(
            "DELETE",
            &format!("/api/v1/workspaces/acme/members/{carol}"),
            None,
        )
        .await;
    assert!(st < 300, "{st}");
    assert_eq!(
        br.verify(&s.srv, "workspace=acme").await.status,
        403,
        "removed"
    );
    let mut back = Browser::new();
    let (relay, req) = start(&mut back, &s, "/w/acme/access").await;
    let xml = response(&s, Some(&req), "carol@corp.test").signed(Sign::Assertion);
    let r = post_acs(&mut back, &s, &xml, Some(&relay)).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let v = back.verify(&s.srv, "workspace=acme").await;
    assert_eq!(v.status, 200);
    assert_eq!(v.header("x-auth-user-id"), Some(carol));
    assert_eq!(v.header("x-auth-roles").as_deref(), Some("minimal_access"));
    assert_eq!(users(&s.srv).await, before);
}

/// Builds a response for (setup, request id).
type MakeResponse = Box<dyn Fn(&Sso, &str) -> String>;

#[tokio::test]
async fn saml_refusals_set_no_cookie_and_create_nothing() {
    let s = saml_setup(false).await;
    let base_users = users(&s.srv).await;
    let cases: Vec<(&str, u16, MakeResponse)> = vec![
        (
            "unsigned",
            401,
            Box::new(|s, req| response(s, Some(req), "dave@corp.test").signed(Sign::Nothing)),
        ),
        (
            "wrong audience",
            401,
            Box::new(|s, req| {
                Resp {
                    audiences: vec!["https://other-sp.test/metadata".into()],
                    ..response(s, Some(req), "dave@corp.test")
                }
                .signed(Sign::Assertion)
            }),
        ),
        (
            "wrong destination",
            401,
            Box::new(|s, req| {
                Resp {
                    destination: Some("https://other-sp.test/acs".into()),
                    ..response(s, Some(req), "dave@corp.test")
                }
                .signed(Sign::Response)
            }),
        ),
        (
            "expired",
            401,
            Box::new(|s, req| {
                let now = s.srv.clock.now();
                Resp {
                    not_on_or_after: now - 3600,
                    scd_not_on_or_after: now - 3600,
                    not_before: now - 7200,
                    ..response(s, Some(req), "dave@corp.test")
                }
                .signed(Sign::Assertion)
            }),
        ),
        (
            "unknown InResponseTo",
            401,
            Box::new(|s, _req| {
                response(
                    s,
                    Some("_ffffffffffffffffffffffffffffffff"),
                    "dave@corp.test",
                )
                .signed(Sign::Assertion)
            }),
        ),
        (
            "doctype",
            400,
            Box::new(|s, req| {
                let signed = response(s, Some(req), "dave@corp.test").signed(Sign::Assertion);
                signed.replacen(
                    "<samlp:Response",
                    "<!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><samlp:Response",
                    1,
                )
            }),
        ),
        (
            "comment in NameID",
            401,
            Box::new(|s, req| {
                let signed = response(s, Some(req), "dave@corp.test").signed(Sign::Assertion);
                signed.replacen("dave@corp.test<", "dave@corp.test<!---->.evil.test<", 1)
            }),
        ),
    ];
    for (what, status, make) in cases {
        let mut br = Browser::new();
        let (relay, req) = start(&mut br, &s, "/").await;
        let xml = make(&s, &req);
        let r = post_acs(&mut br, &s, &xml, Some(&relay)).await;
        assert_eq!(r.status, status, "{what}: {}", r.body);
        assert!(br.session_cookie().is_none(), "{what}: no session cookie");
        assert!(
            r.body.contains("Single sign-on refused"),
            "{what}: a page that says why"
        );
        assert_eq!(users(&s.srv).await, base_users, "{what}: nobody created");
        assert_eq!(links(&s.srv).await, 0, "{what}: nothing linked");
    }
    // A response made for one browser, posted from another: refused.
    let mut alice = Browser::new();
    let (relay, req) = start(&mut alice, &s, "/").await;
    let xml = response(&s, Some(&req), "dave@corp.test").signed(Sign::Assertion);
    let mut mallory = Browser::new();
    let r = post_acs(&mut mallory, &s, &xml, Some(&relay)).await;
    assert_eq!(r.status, 401, "other browser");
    assert_eq!(users(&s.srv).await, base_users);
    // IdP-initiated is off for this connection.
    let xml = response(&s, None, "dave@corp.test").signed(Sign::Assertion);
    assert_eq!(
        post_acs(&mut Browser::new(), &s, &xml, Some("/"))
            .await
            .status,
        401
    );
    assert_eq!(users(&s.srv).await, base_users);
}

#[tokio::test]
async fn idp_initiated_sign_in_only_where_allowed_and_relay_state_is_a_checked_return_to() {
    let s = saml_setup(true).await;
    let mut br = Browser::new();
    let xml = response(&s, None, "erin@corp.test").signed(Sign::Assertion);
    let r = post_acs(&mut br, &s, &xml, Some("//evil.test/steal")).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        r.header("location").as_deref(),
        Some("/workspaces"),
        "unchecked RelayState never reflected"
    );
    assert_eq!(br.verify(&s.srv, "workspace=acme").await.status, 200);
}

#[tokio::test]
async fn an_existing_account_is_linked_only_on_a_domain_the_workspace_verified() {
    let mut s = saml_setup(false).await;
    let (acme, _) = (
        s.srv
            .store()
            .workspace_by_slug("acme")
            .await
            .unwrap()
            .unwrap()
            .id,
        (),
    );
    s.srv
        .add_member(&acme, "frank@corp.test", &["workspace_member"])
        .await;
    let mut br = Browser::new();
    let (relay, req) = start(&mut br, &s, "/").await;
    let r = post_acs(
        &mut br,
        &s,
        &response(&s, Some(&req), "frank@corp.test").signed(Sign::Assertion),
        Some(&relay),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(br.session_cookie().is_none());
    assert_eq!(links(&s.srv).await, 0);
    // Claim and verify corp.test through DNS.
    let (st, d) = s
        .owner
        .call(
            "POST",
            "/api/v1/workspaces/acme/domains",
            Some(json!({"domain": "Corp.Test"})),
        )
        .await;
    assert_eq!(st, 201, "{d}");
    let record = d["verification_record"].as_str().unwrap().to_string();
    assert!(record.starts_with("iamgw-verification="));
    let (st, why) = s
        .owner
        .call(
            "POST",
            "/api/v1/workspaces/acme/domains/corp.test/verify",
            None,
        )
        .await;
    assert_eq!(st, 409, "{why}");
    s.dns.set_txt("corp.test", &["v=spf1 -all", &record]);
    let (st, ok) = s
        .owner
        .call(
            "POST",
            "/api/v1/workspaces/acme/domains/corp.test/verify",
            None,
        )
        .await;
    assert_eq!(st, 200, "{ok}");
    assert_eq!(ok["verified"], true);
    // Another workspace cannot claim it.
    s.srv.bootstrap("beta", "bob@beta.test").await;
    let mut bob = Api::sign_in(&s.srv, "bob@beta.test").await;
    let (st, _) = bob
        .call(
            "POST",
            "/api/v1/workspaces/beta/domains",
            Some(json!({"domain": "corp.test"})),
        )
        .await;
    assert_eq!(st, 409, "already claimed");
    // Now the existing account is linked, keeps its role, and signs in.
    let mut br = Browser::new();
    let (relay, req) = start(&mut br, &s, "/").await;
    let r = post_acs(
        &mut br,
        &s,
        &response(&s, Some(&req), "frank@corp.test").signed(Sign::Assertion),
        Some(&relay),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(links(&s.srv).await, 1);
    assert_eq!(
        br.verify(&s.srv, "workspace=acme&role=workspace_member")
            .await
            .status,
        200
    );
    // Home-realm discovery: corp.test emails go straight to the IdP.
    let mut hrd = Browser::new();
    let p = hrd
        .get(&s.srv.url("/login?return_to=%2Fw%2Facme%2Faccess"))
        .await;
    let r = hrd
        .post_form(
            &s.srv.url("/login"),
            &[
                ("email", "someone@corp.test"),
                ("csrf_token", &p.csrf()),
                ("return_to", "/w/acme/access"),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some(format!(
            "/sso/{}/start?return_to=%2Fw%2Facme%2Faccess",
            s.conn
        ))
    );
    let r = hrd
        .post_form(
            &s.srv.url("/login"),
            &[("email", "someone@other.test"), ("csrf_token", &p.csrf())],
        )
        .await;
    assert_eq!(r.status, 200, "other domains get the password step");
}

#[tokio::test]
async fn an_open_invitation_is_accepted_by_sso_sign_in_with_its_policies() {
    let mut s = saml_setup(false).await;
    let (st, _) = s.owner.call("POST", "/api/v1/workspaces/acme/invitations", Some(json!({"email": "gina@corp.test", "policies": [{"role": "source_admin", "scope": {"type": "all"}}]}))).await;
    assert_eq!(st, 201);
    let mut br = Browser::new();
    let (relay, req) = start(&mut br, &s, "/").await;
    let r = post_acs(
        &mut br,
        &s,
        &response(&s, Some(&req), "gina@corp.test").signed(Sign::Response),
        Some(&relay),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        br.verify(&s.srv, "workspace=acme&role=source_admin&resource=x")
            .await
            .status,
        200
    );
    let (_, members) = s
        .owner
        .call("GET", "/api/v1/workspaces/acme/members?email=gina", None)
        .await;
    assert_eq!(members["items"].as_array().unwrap().len(), 1);
    assert_eq!(members["items"][0]["status"], "active");
}

#[tokio::test]
async fn require_sso_needs_an_sso_session_to_turn_on_and_then_sends_others_to_the_idp() {
    let mut s = saml_setup(false).await;
    let acme = s
        .srv
        .store()
        .workspace_by_slug("acme")
        .await
        .unwrap()
        .unwrap()
        .id;
    s.srv.bootstrap("beta", "ann@acme.test").await;
    let (st, _) = s
        .owner
        .call(
            "PATCH",
            "/api/v1/workspaces/acme/settings",
            Some(json!({"require_sso": true})),
        )
        .await;
    assert_eq!(st, 403, "a password session cannot turn it on");
    // The owner signs in through the IdP (an existing account: verify the domain first).
    let (_, d) = s
        .owner
        .call(
            "POST",
            "/api/v1/workspaces/acme/domains",
            Some(json!({"domain": "acme.test"})),
        )
        .await;
    s.dns
        .set_txt("acme.test", &[d["verification_record"].as_str().unwrap()]);
    assert_eq!(
        s.owner
            .call(
                "POST",
                "/api/v1/workspaces/acme/domains/acme.test/verify",
                None
            )
            .await
            .0,
        200
    );
    let mut sso_owner = Browser::new();
    let (relay, req) = start(&mut sso_owner, &s, "/").await;
    let r = post_acs(
        &mut sso_owner,
        &s,
        &response(&s, Some(&req), "ann@acme.test").signed(Sign::Assertion),
        Some(&relay),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let me: Value =
        serde_json::from_str(&sso_owner.get(&s.srv.url("/api/v1/me")).await.body).unwrap();
    let csrf = me["csrf_token"].as_str().unwrap();
    let exempt = s
        .srv
        .add_member(&acme, "robot@robots.test", &["workspace_member"])
        .await;
    let p = sso_owner
        .send(
            sso_owner
                .client
                .patch(s.srv.url("/api/v1/workspaces/acme/settings"))
                .header("x-csrf-token", csrf)
                .json(&json!({"require_sso": true, "sso_exempt_user_ids": [exempt]})),
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.body);
    // Password sessions: 401 sso_required for acme, fine for beta.
    let v = s.owner.br.verify(&s.srv, "workspace=acme").await;
    assert_eq!(v.status, 401);
    assert_eq!(v.header("x-auth-reason").as_deref(), Some("sso_required"));
    assert!(v
        .header("location")
        .unwrap()
        .starts_with(&s.srv.url(&format!("/sso/{}/start", s.conn))));
    assert_eq!(
        s.owner.br.verify(&s.srv, "workspace=beta").await.status,
        200,
        "other workspaces unaffected"
    );
    assert_eq!(
        sso_owner.verify(&s.srv, "workspace=acme").await.status,
        200,
        "the SSO session is fine"
    );
    let mut robot = Browser::new();
    robot
        .sign_in(&s.srv, "robot@robots.test", PASSWORD, "/")
        .await;
    assert_eq!(
        robot.verify(&s.srv, "workspace=acme").await.status,
        200,
        "exempt user"
    );
}

#[tokio::test]
async fn saml_connections_need_a_signing_certificate_and_publish_sp_metadata() {
    let mut s = saml_setup(false).await;
    let no_cert = metadata_xml(&[], None);
    let (st, p) = s
        .owner
        .call(
            "POST",
            "/api/v1/workspaces/acme/sso/connections",
            Some(json!({"type": "saml", "name": "Broken", "idp_metadata_xml": no_cert})),
        )
        .await;
    assert_eq!(st, 422, "{p}");
    let r = client()
        .get(s.srv.url(&format!("/sso/saml/{}/metadata", s.conn)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let xml = r.text().await.unwrap();
    for needle in [
        "AuthnRequestsSigned=\"false\"",
        "WantAssertionsSigned=\"true\"",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST",
        &format!("/sso/saml/{}/acs", s.conn),
        &format!("entityID=\"{}/sso/saml/{}/metadata\"", s.srv.base, s.conn),
    ] {
        assert!(xml.contains(needle), "metadata lacks {needle}");
    }
    // Disabled connection: start refused.
    let (st, _) = s
        .owner
        .call(
            "PATCH",
            &format!("/api/v1/workspaces/acme/sso/connections/{}", s.conn),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(
        Browser::new()
            .get(&s.srv.url(&format!("/sso/{}/start", s.conn)))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn oidc_sso_signs_in_through_discovery_as_a_member_of_the_workspace() {
    let fixture = Fixture::start(Misbehaviour::Honest).await;
    let srv = TestServer::start(sqlite()).await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let mut owner = Api::sign_in(&srv, "ann@acme.test").await;
    let (st, c) = owner.call("POST", "/api/v1/workspaces/acme/sso/connections", Some(json!({"type": "oidc", "name": "Corp OIDC", "issuer": fixture.issuer, "client_id": FIX_CLIENT_ID, "client_secret": FIX_CLIENT_SECRET, "scopes": ["openid", "email", "profile"]}))).await;
    assert_eq!(st, 201, "{c}");
    assert!(
        !c.to_string().contains(FIX_CLIENT_SECRET),
        "secret never shown"
    );
    let id = c["id"].as_str().unwrap().to_string();
    fixture.set_redirect_uri(&srv.url(&format!("/sso/oidc/{id}/callback")));
    let mut br = Browser::new();
    let mut url =
        url::Url::parse(&srv.url(&format!("/sso/{id}/start?return_to=%2Fworkspaces"))).unwrap();
    let mut page = br.get(url.as_str()).await;
    while (300..400).contains(&page.status) {
        url = url.join(&page.header("location").unwrap()).unwrap();
        page = br.get(url.as_str()).await;
    }
    assert_eq!(url.as_str(), srv.url("/workspaces"), "{}", page.body);
    let v = br.verify(&srv, "workspace=acme").await;
    assert_eq!(v.status, 200);
    assert_eq!(v.header("x-auth-method"), Some(format!("sso:{id}")));
}

#[tokio::test]
async fn idp_groups_map_to_user_groups_and_follow_the_idp() {
    let mut s = saml_setup(false).await;
    let (_, g) = s.owner.call("POST", "/api/v1/workspaces/acme/groups", Some(json!({"name": "Engineering", "policies": [{"role": "function_admin", "scope": {"type": "all"}}]}))).await;
    let gid = g["id"].as_str().unwrap().to_string();
    let (st, c) = s
        .owner
        .call(
            "PATCH",
            &format!("/api/v1/workspaces/acme/sso/connections/{}", s.conn),
            Some(json!({"group_mappings": {"engineering": gid}})),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["group_mappings"]["engineering"], gid.as_str());
    let (st, _) = s
        .owner
        .call(
            "PATCH",
            &format!("/api/v1/workspaces/acme/sso/connections/{}", s.conn),
            Some(json!({"group_mappings": {"x": "no-such-group"}})),
        )
        .await;
    assert_eq!(st, 400, "mappings must name this workspace's groups");
    // The default response asserts groups [engineering, admins].
    let mut br = Browser::new();
    let (relay, req) = start(&mut br, &s, "/").await;
    assert_eq!(
        post_acs(
            &mut br,
            &s,
            &response(&s, Some(&req), "hana@corp.test").signed(Sign::Assertion),
            Some(&relay)
        )
        .await
        .status,
        303
    );
    assert_eq!(
        br.verify(&s.srv, "workspace=acme&role=function_admin&resource=f1")
            .await
            .status,
        200,
        "through the mapped group"
    );
    // Next sign-in without the group: removed from the mapped group.
    let mut br = Browser::new();
    let (relay, req) = start(&mut br, &s, "/").await;
    let resp = Resp {
        attributes: vec![("groups".into(), vec!["sales".into()])],
        ..response(&s, Some(&req), "hana@corp.test")
    };
    assert_eq!(
        post_acs(&mut br, &s, &resp.signed(Sign::Assertion), Some(&relay))
            .await
            .status,
        303
    );
    assert_eq!(
        br.verify(&s.srv, "workspace=acme&role=function_admin&resource=f1")
            .await
            .status,
        403
    );
    assert_eq!(br.verify(&s.srv, "workspace=acme").await.status, 200);
}

/// A connection whose stored kind is neither `saml` nor `oidc` is an error
/// at every SSO door, never taken for OIDC.
#[tokio::test]
async fn an_unknown_connection_kind_is_refused_not_taken_for_oidc() {
    let srv = TestServer::start(sqlite()).await;
    let (ws_id, _) = srv.bootstrap("acme", "ann@acme.test").await;
    let now = srv.clock.now();
    srv.store()
        .create_connection(&iam_gateway::store::SsoConnection {
            id: "conn-ldap".into(),
            workspace_id: ws_id,
            kind: "ldap".into(),
            name: "Not a kind".into(),
            enabled: true,
            allow_idp_initiated: true,
            config: json!({}),
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    let mut br = Browser::new();
    let r = br
        .get(&srv.url("/sso/conn-ldap/start?return_to=%2Fworkspaces"))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body.contains("unknown SSO connection kind"),
        "refused for its kind, not tried as OIDC: {}",
        r.body
    );
    assert!(r.header("location").is_none(), "no redirect to any IdP");
    assert!(r.set_cookie("iamgw_sso").is_none(), "nothing stashed");
    let r = br.get(&srv.url("/sso/saml/conn-ldap/metadata")).await;
    assert_eq!(r.status, 404);
    assert_eq!(users(&srv).await, 1, "nobody provisioned");
    srv.stop().await;
}
