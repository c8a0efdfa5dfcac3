//! A SAML connection's page over real HTTP: every setting changed through
//! its forms and read back through the API, refusals (not an owner, a
//! forged form token, an unknown group, a bad certificate, a non-member
//! exemption) that write nothing, refused sign-ins explained with what to
//! fix at the IdP, and a test sign-in that leaves the owner's session alone.

use crate::saml::idp::{metadata_xml, world, Sign, Signer};
use crate::saml::template::Resp;
use crate::sso::{post_acs, response, saml_setup, start, users, Sso};
use crate::support::*;
use base64::Engine;
use iam_gateway::clock::Clock;
use serde_json::{json, Value};
use std::io::Read;

const WS: &str = "/api/v1/workspaces/acme";

fn conn_page(s: &Sso) -> String {
    format!("/w/acme/settings/sso/connections/{}", s.conn)
}

/// GETs `page` with `br` and posts `form` (plus that page's CSRF token) to
/// `action`.
async fn submit(
    br: &mut Browser,
    srv: &TestServer,
    page: &str,
    action: &str,
    form: &[(&str, &str)],
) -> Page {
    let shown = br.get(&srv.url(page)).await;
    assert_eq!(shown.status, 200, "{page}: {}", shown.body);
    let csrf = shown.csrf();
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    fields.push(("csrf_token", &csrf));
    br.post_form(&srv.url(action), &fields).await
}

async fn connection(s: &mut Sso) -> Value {
    let (st, c) = s
        .owner
        .call("GET", &format!("{WS}/sso/connections/{}", s.conn), None)
        .await;
    assert_eq!(st, 200, "{c}");
    c
}

async fn settings(s: &mut Sso) -> Value {
    let (st, v) = s.owner.call("GET", &format!("{WS}/settings"), None).await;
    assert_eq!(st, 200, "{v}");
    v
}

async fn events(s: &mut Sso, action: &str) -> Vec<Value> {
    let (_, v) = s
        .owner
        .call("GET", &format!("{WS}/audit-events?action={action}"), None)
        .await;
    v["items"].as_array().cloned().unwrap_or_default()
}

/// A self-signed RSA certificate whose validity ends `days` days from
/// `now` (negative: already expired), as PEM.
fn certificate(now: i64, days: i64) -> String {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509Builder, X509NameBuilder};
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "idp.corp.test").unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap();
    b.set_serial_number(&serial).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::from_unix(now - 30 * 86_400).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now + days * 86_400 + 3600).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    String::from_utf8(b.build().to_pem().unwrap()).unwrap()
}

/// (RelayState, request id) of a redirect to the test IdP.
fn authn_request(location: &str) -> (String, String) {
    let loc = url::Url::parse(location).unwrap();
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
        .unwrap();
    (q["RelayState"].clone(), id.to_string())
}

#[tokio::test]
async fn every_connection_setting_changes_through_its_page_and_reads_back_through_the_api() {
    let mut s = saml_setup(false).await;
    let (_, g) = s
        .owner
        .call(
            "POST",
            &format!("{WS}/groups"),
            Some(json!({"name": "Engineers"})),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_string();
    let page = conn_page(&s);
    let shown = s.owner.br.get(&s.srv.url(&page)).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert!(shown
        .body
        .contains(&format!("{}/sso/saml/{}/metadata", s.srv.base, s.conn)));
    assert!(shown
        .body
        .contains(&format!("<option value=\"{gid}\">Engineers</option>")));

    // Settings: name, disabled, IdP-initiated on, attribute names.
    let r = submit(
        &mut s.owner.br,
        &s.srv,
        &page,
        &format!("{page}/edit"),
        &[
            ("name", "Okta prod"),
            ("allow_idp_initiated", "on"),
            ("email_attribute", "mail"),
            ("name_attribute", "cn"),
            ("group_attribute", "memberOf"),
        ],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some(format!("{page}?done=settings")));
    let c = connection(&mut s).await;
    assert_eq!(c["name"], "Okta prod");
    assert_eq!(c["enabled"], false);
    assert_eq!(c["allow_idp_initiated"], true);
    assert_eq!(c["email_attribute"], "mail");
    assert_eq!(c["name_attribute"], "cn");
    assert_eq!(c["group_attribute"], "memberOf");
    // Disabled: nobody can start a sign-in through it.
    let st = Browser::new()
        .get(&s.srv.url(&format!("/sso/{}/start", s.conn)))
        .await
        .status;
    assert_eq!(st, 404);
    // Back on, IdP-initiated off, attributes back to the defaults.
    let r = submit(
        &mut s.owner.br,
        &s.srv,
        &page,
        &format!("{page}/edit"),
        &[("name", "Okta prod"), ("enabled", "on")],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let c = connection(&mut s).await;
    assert_eq!(c["enabled"], true);
    assert_eq!(c["allow_idp_initiated"], false);
    assert_eq!(c["email_attribute"], Value::Null);
    assert_eq!(c["group_attribute"], Value::Null);
    let changed = events(&mut s, "sso.connection_updated").await;
    assert_eq!(changed.len(), 2);
    let fields = |e: &Value| -> Vec<String> {
        serde_json::from_value(e["details"]["changed"].clone()).unwrap()
    };
    assert_eq!(
        fields(&changed[1]),
        [
            "name",
            "enabled",
            "allow_idp_initiated",
            "email_attribute",
            "group_attribute",
            "name_attribute"
        ]
    );
    assert_eq!(
        fields(&changed[0]),
        [
            "enabled",
            "allow_idp_initiated",
            "email_attribute",
            "group_attribute",
            "name_attribute"
        ],
        "the name did not change"
    );

    // A group mapping, picked from the workspace's groups; then removed.
    let r = submit(
        &mut s.owner.br,
        &s.srv,
        &page,
        &format!("{page}/mappings"),
        &[("idp_value", "engineering"), ("group_id", &gid)],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(
        connection(&mut s).await["group_mappings"],
        json!({"engineering": gid})
    );
    let shown = s.owner.br.get(&s.srv.url(&page)).await;
    assert!(shown
        .body
        .contains("<code>engineering</code></td><td>Engineers</td>"));
    let r = submit(
        &mut s.owner.br,
        &s.srv,
        &page,
        &format!("{page}/mappings/remove"),
        &[("idp_value", "engineering")],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(connection(&mut s).await["group_mappings"], json!({}));

    // The certificate: one that expires in 10 days is pinned, and warned about.
    let pem = certificate(s.srv.clock.now(), 10);
    let r = submit(
        &mut s.owner.br,
        &s.srv,
        &page,
        &format!("{page}/idp"),
        &[("certificate", &pem)],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let c = connection(&mut s).await;
    let certs = c["idp_certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0]["subject"], "idp.corp.test");
    let shown = s.owner.br.get(&s.srv.url(&page)).await;
    assert!(
        shown.body.contains("id=\"cert-warning-1\""),
        "{}",
        shown.body
    );
    assert!(shown.body.contains("expires on"));
    assert!(shown.body.contains("(in 10 days)"), "{}", shown.body);
    let list = s.owner.br.get(&s.srv.url("/w/acme/settings/sso")).await;
    assert!(list.body.contains("IdP certificate expires on"));
    // The IdP no longer verifies: its responses are now refused.
    let mut br = Browser::new();
    let (relay, req) = start(&mut br, &s, "/").await;
    let xml = response(&s, Some(&req), "carol@corp.test").signed(Sign::Assertion);
    assert_eq!(post_acs(&mut br, &s, &xml, Some(&relay)).await.status, 401);
    // New metadata puts the IdP's own certificate back: no warning.
    let meta = metadata_xml(&[&world().idp.cert_der], None);
    let r = submit(
        &mut s.owner.br,
        &s.srv,
        &page,
        &format!("{page}/idp"),
        &[("metadata_xml", &meta)],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let shown = s.owner.br.get(&s.srv.url(&page)).await;
    assert!(!shown.body.contains("cert-warning"));
    assert!(shown.body.contains("<span class=\"pill ok\">Valid</span>"));
    let mut br = Browser::new();
    let (relay, req) = start(&mut br, &s, "/").await;
    let xml = response(&s, Some(&req), "carol@corp.test").signed(Sign::Assertion);
    assert_eq!(post_acs(&mut br, &s, &xml, Some(&relay)).await.status, 303);
    // An expired certificate says so.
    let expired = certificate(s.srv.clock.now(), -2);
    let r = submit(
        &mut s.owner.br,
        &s.srv,
        &page,
        &format!("{page}/idp"),
        &[("certificate", &expired)],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let shown = s.owner.br.get(&s.srv.url(&page)).await;
    assert!(shown.body.contains("expired on"), "{}", shown.body);
    assert!(shown
        .body
        .contains("<span class=\"pill bad\">Expired</span>"));
}

#[tokio::test]
async fn refused_connection_forms_and_exemptions_write_nothing() {
    let mut s = saml_setup(false).await;
    let ws_id = s
        .srv
        .store()
        .workspace_by_slug("acme")
        .await
        .unwrap()
        .unwrap()
        .id;
    let mia = s
        .srv
        .add_member(&ws_id, "mia@acme.test", &["workspace_member"])
        .await;
    let (_, g) = s
        .owner
        .call(
            "POST",
            &format!("{WS}/groups"),
            Some(json!({"name": "Engineers"})),
        )
        .await;
    assert!(g["id"].is_string());
    let page = conn_page(&s);
    let before = connection(&mut s).await;
    let updates = events(&mut s, "sso.connection_updated").await.len();

    // A member who is not an owner: read-only page, and 403 on any post.
    let mut member = Browser::new();
    assert_eq!(
        member
            .sign_in(&s.srv, "mia@acme.test", PASSWORD, "/")
            .await
            .status,
        303
    );
    let shown = member.get(&s.srv.url(&page)).await;
    assert_eq!(shown.status, 200);
    assert!(shown.body.contains("id=\"read-only\""));
    assert!(shown.body.contains("id=\"attempts-hidden\""));
    assert!(!shown.body.contains("Save settings"));
    assert!(!shown.body.contains("Test sign-in</button>"));
    let csrf = shown.csrf();
    for (action, form) in [
        ("edit", vec![("name", "Hijacked"), ("enabled", "on")]),
        ("mappings", vec![("idp_value", "x"), ("group_id", "y")]),
        ("idp", vec![("certificate", "x")]),
    ] {
        let mut f = form.clone();
        f.push(("csrf_token", &csrf));
        let r = member
            .post_form(&s.srv.url(&format!("{page}/{action}")), &f)
            .await;
        assert_eq!(r.status, 403, "{action}");
        assert!(r.body.contains("Only workspace owners can do this"));
    }
    let r = member
        .post_form(
            &s.srv.url("/w/acme/settings/sso/exemptions"),
            &[("email", "mia@acme.test"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(r.status, 403);

    // The owner without the right form token.
    let r = s
        .owner
        .br
        .post_form(
            &s.srv.url(&format!("{page}/edit")),
            &[("name", "Forged"), ("csrf_token", "forged")],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("This form has expired"));

    // A group that is not this workspace's.
    let r = submit(
        &mut s.owner.br,
        &s.srv,
        &page,
        &format!("{page}/mappings"),
        &[("idp_value", "engineering"), ("group_id", "no-such-group")],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("id=\"group-id-error\""));
    assert!(r
        .body
        .contains("No group `no-such-group` in this workspace"));
    assert!(r.body.contains("value=\"engineering\""), "input kept");
    // No group chosen, an empty name, a certificate that is not one,
    // metadata and a certificate at once.
    let r = submit(
        &mut s.owner.br,
        &s.srv,
        &page,
        &format!("{page}/mappings"),
        &[("idp_value", "engineering"), ("group_id", "")],
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("Choose the user group"));
    let r = submit(
        &mut s.owner.br,
        &s.srv,
        &page,
        &format!("{page}/edit"),
        &[("name", ""), ("enabled", "on")],
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("id=\"conn-name-error\""));
    let r = submit(
        &mut s.owner.br,
        &s.srv,
        &page,
        &format!("{page}/idp"),
        &[(
            "certificate",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
        )],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("id=\"certificate-error\""));
    assert!(r.body.contains("not a PEM X.509 certificate"));
    let r = submit(
        &mut s.owner.br,
        &s.srv,
        &page,
        &format!("{page}/idp"),
        &[("metadata_xml", "<x/>"), ("certificate", "x")],
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("Give only one of the three."));
    let r = submit(
        &mut s.owner.br,
        &s.srv,
        &page,
        &format!("{page}/idp"),
        &[("metadata_xml", "<not-metadata/>")],
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("id=\"metadata-xml-error\""));

    let after = connection(&mut s).await;
    for k in [
        "name",
        "enabled",
        "group_mappings",
        "idp_certificates",
        "idp_entity_id",
        "updated_at",
    ] {
        assert_eq!(after[k], before[k], "{k} unchanged");
    }
    assert_eq!(
        events(&mut s, "sso.connection_updated").await.len(),
        updates
    );

    // Exemptions by email: a non-member is refused, nothing written.
    s.srv.bootstrap("other", "olga@other.test").await;
    let settings_updates = events(&mut s, "workspace.settings_updated").await.len();
    for email in ["olga@other.test", "nobody@acme.test"] {
        let r = submit(
            &mut s.owner.br,
            &s.srv,
            "/w/acme/settings/sso",
            "/w/acme/settings/sso/exemptions",
            &[("email", email)],
        )
        .await;
        assert_eq!(r.status, 400, "{email}: {}", r.body);
        assert!(r.body.contains("id=\"exempt-email-error\""));
        assert!(r.body.contains(&format!(
            "No member of this workspace has the email {email}"
        )));
    }
    assert_eq!(settings(&mut s).await["sso_exempt_user_ids"], json!([]));
    assert_eq!(
        events(&mut s, "workspace.settings_updated").await.len(),
        settings_updates
    );
    // A member, by email (any case): exempt; then the exemption ends.
    let r = submit(
        &mut s.owner.br,
        &s.srv,
        "/w/acme/settings/sso",
        "/w/acme/settings/sso/exemptions",
        &[("email", "Mia@Acme.test")],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(settings(&mut s).await["sso_exempt_user_ids"], json!([mia]));
    let shown = s.owner.br.get(&s.srv.url("/w/acme/settings/sso")).await;
    assert!(shown.body.contains("<tr><td>mia@acme.test</td>"));
    // Saving the sign-in policy leaves the exemptions alone.
    let r = submit(
        &mut s.owner.br,
        &s.srv,
        "/w/acme/settings/sso",
        "/w/acme/settings/sso/settings",
        &[("default_role", "workspace_member")],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(settings(&mut s).await["sso_exempt_user_ids"], json!([mia]));
    let r = submit(
        &mut s.owner.br,
        &s.srv,
        "/w/acme/settings/sso",
        "/w/acme/settings/sso/exemptions/remove",
        &[("user_id", &mia)],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(settings(&mut s).await["sso_exempt_user_ids"], json!([]));
}

#[tokio::test]
async fn refused_sign_ins_are_explained_on_the_connection_page_with_what_to_fix() {
    let mut s = saml_setup(false).await;
    let page = conn_page(&s);
    let entity_id = format!("{}/sso/saml/{}/metadata", s.srv.base, s.conn);
    let acs = format!("{}/sso/saml/{}/acs", s.srv.base, s.conn);
    // A response for another SP (wrong audience).
    let mut br = Browser::new();
    let (relay, req) = start(&mut br, &s, "/").await;
    let xml = Resp {
        audiences: vec!["https://other-sp.test/metadata".into()],
        ..response(&s, Some(&req), "dave@corp.test")
    }
    .signed(Sign::Assertion);
    assert_eq!(post_acs(&mut br, &s, &xml, Some(&relay)).await.status, 401);
    // Sent to another ACS URL.
    let mut br = Browser::new();
    let (relay, req) = start(&mut br, &s, "/").await;
    let xml = Resp {
        destination: Some("https://other-sp.test/acs".into()),
        ..response(&s, Some(&req), "dave@corp.test")
    }
    .signed(Sign::Response);
    assert_eq!(post_acs(&mut br, &s, &xml, Some(&relay)).await.status, 401);
    // Unsigned.
    let mut br = Browser::new();
    let (relay, req) = start(&mut br, &s, "/").await;
    let xml = response(&s, Some(&req), "dave@corp.test").signed(Sign::Nothing);
    assert_eq!(post_acs(&mut br, &s, &xml, Some(&relay)).await.status, 401);
    // Signed by a key the connection does not trust.
    let mut br = Browser::new();
    let (relay, req) = start(&mut br, &s, "/").await;
    let attacker = Signer {
        keys: Some(&world().attacker),
        ..Signer::idp()
    };
    let xml = response(&s, Some(&req), "dave@corp.test").signed_by(Sign::Assertion, &attacker);
    assert_eq!(post_acs(&mut br, &s, &xml, Some(&relay)).await.status, 401);
    // Issued by an IdP whose clock is ten minutes ahead.
    let mut br = Browser::new();
    let (relay, req) = start(&mut br, &s, "/").await;
    let ahead = s.srv.clock.now() + 600;
    let xml = Resp {
        not_before: ahead - 30,
        not_on_or_after: ahead + 600,
        scd_not_on_or_after: ahead + 300,
        ..response(&s, Some(&req), "dave@corp.test")
    }
    .signed(Sign::Assertion);
    assert_eq!(post_acs(&mut br, &s, &xml, Some(&relay)).await.status, 401);
    // And one that is accepted.
    let mut br = Browser::new();
    let (relay, req) = start(&mut br, &s, "/").await;
    let xml = response(&s, Some(&req), "carol@corp.test").signed(Sign::Assertion);
    assert_eq!(post_acs(&mut br, &s, &xml, Some(&relay)).await.status, 303);

    // The audit events carry the connection and a reason code.
    let refused = events(&mut s, "sso.refused").await;
    let codes: Vec<&str> = refused
        .iter()
        .map(|e| e["details"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "clock_skew",
            "untrusted_signature",
            "unsigned",
            "destination",
            "audience"
        ],
        "newest first"
    );
    assert!(refused
        .iter()
        .all(|e| e["details"]["connection"] == json!(s.conn)));

    let shown = s.owner.br.get(&s.srv.url(&page)).await;
    assert_eq!(shown.status, 200);
    let b = &shown.body;
    assert!(b.contains("data-code=\"audience\""), "{b}");
    assert!(b.contains("the assertion is meant for another service"));
    assert!(b.contains(&format!(
        "Set the Audience (also called SP Entity ID or Audience URI) of this app in your IdP to {entity_id}."
    )));
    assert!(b.contains("data-code=\"destination\""));
    assert!(b.contains(&format!("of this app in your IdP to {acs}.")));
    assert!(b.contains("data-code=\"unsigned\""));
    assert!(b.contains("Turn on signing in your IdP"));
    assert!(b.contains("<span class=\"pill ok\">Signed in</span>"));
    assert!(b.contains("carol@corp.test"));
    assert!(b.contains("data-code=\"untrusted_signature\""));
    assert!(b.contains("Replace the IdP certificate (or metadata) on this page"));
    assert!(b.contains("data-code=\"clock_skew\""));
    assert!(b.contains("keep time with NTP"));
    assert_eq!(
        b.matches("<span class=\"pill bad\">Refused</span>").count(),
        5
    );
}

#[tokio::test]
async fn a_test_sign_in_reports_what_the_idp_sent_and_leaves_the_session_alone() {
    let mut s = saml_setup(false).await;
    let (_, g) = s
        .owner
        .call(
            "POST",
            &format!("{WS}/groups"),
            Some(json!({"name": "Engineers"})),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_string();
    let (st, _) = s
        .owner
        .call(
            "PATCH",
            &format!("{WS}/sso/connections/{}", s.conn),
            Some(json!({"group_mappings": {"engineering": gid}})),
        )
        .await;
    assert_eq!(st, 200);
    let page = conn_page(&s);
    let session = s.owner.br.session_cookie().unwrap();
    let people = users(&s.srv).await;
    let r = submit(&mut s.owner.br, &s.srv, &page, &format!("{page}/test"), &[]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let (relay, req) = authn_request(&r.header("location").unwrap());
    let xml = Resp {
        attributes: vec![
            ("displayName".into(), vec!["Tess Tester".into()]),
            ("groups".into(), vec!["engineering".into(), "admins".into()]),
        ],
        ..response(&s, Some(&req), "tess@corp.test")
    }
    .signed(Sign::Assertion);
    let mut owner = std::mem::take(&mut s.owner.br);
    let r = post_acs(&mut owner, &s, &xml, Some(&relay)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Test sign-in succeeded"));
    assert!(r.body.contains("tess@corp.test"));
    assert!(r.body.contains("Tess Tester"));
    assert!(r
        .body
        .contains("<code>engineering</code></td><td>Engineers</td>"));
    assert!(r
        .body
        .contains("<code>admins</code></td><td><span class=\"muted\">not mapped</span>"));
    assert!(r.body.contains(&format!("href=\"{page}\"")));
    // Nobody created, no new session; the owner's session is as it was.
    assert!(r.set_cookie("iamgw_session").is_none());
    assert_eq!(owner.session_cookie(), Some(session));
    assert_eq!(users(&s.srv).await, people);
    let v = owner.verify(&s.srv, "workspace=acme").await;
    assert_eq!(v.status, 200);
    assert_eq!(v.header("x-auth-method").as_deref(), Some("password"));
    s.owner.br = owner;
    // Recorded, and listed with the attempts.
    let tested = events(&mut s, "sso.tested").await;
    assert_eq!(tested.len(), 1);
    assert_eq!(tested[0]["actor"]["email"], "ann@acme.test");
    assert_eq!(events(&mut s, "sso.signed_in").await.len(), 0);
    let shown = s.owner.br.get(&s.srv.url(&page)).await;
    assert!(shown.body.contains("Test passed"));
    assert!(shown
        .body
        .contains("Test by ann@acme.test; the IdP sent tess@corp.test"));
    // The same answer cannot be used again, test or not.
    let mut again = Browser::new();
    assert_eq!(
        post_acs(&mut again, &s, &xml, Some(&relay)).await.status,
        401
    );
}

/// Two owners editing a connection's group mappings at once both keep
/// their edit: each page form changes one mapping, applied to the
/// connection as stored (a compare-and-swap write, retried).
#[tokio::test]
async fn concurrent_mapping_edits_from_the_page_are_all_kept() {
    let mut s = saml_setup(false).await;
    let (_, g) = s
        .owner
        .call(
            "POST",
            &format!("{WS}/groups"),
            Some(json!({"name": "Engineers"})),
        )
        .await;
    let gid = g["id"].as_str().unwrap().to_string();
    let page = conn_page(&s);
    let csrf = s.owner.br.get(&s.srv.url(&page)).await.csrf();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut br = s.owner.br.clone();
        let url = s.srv.url(&format!("{page}/mappings"));
        let (csrf, gid) = (csrf.clone(), gid.clone());
        tasks.push(tokio::spawn(async move {
            let value = format!("team-{i}");
            br.post_form(
                &url,
                &[
                    ("idp_value", &value),
                    ("group_id", &gid),
                    ("csrf_token", &csrf),
                ],
            )
            .await
            .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 303);
    }
    let maps = connection(&mut s).await["group_mappings"].clone();
    assert_eq!(maps.as_object().unwrap().len(), 16, "{maps}");
    assert_eq!(events(&mut s, "sso.connection_updated").await.len(), 16);
}
