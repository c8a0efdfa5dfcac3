//! SPEC 6b, "one decision at every door": every workspace route the router
//! exposes (read from the same tables that build the router, so a new route
//! cannot be left out) through every door (page, API with a session, API
//! with a token, forward-auth) and every condition of the decision (not a
//! member, removed, Require SSO with a password session / an SSO session /
//! an exempt member, Require 2FA without / with a second factor, idle and
//! absolute timeouts). A route that skipped the decision would answer a
//! Require-SSO, Require-2FA or timed-out session like an allowed one, and
//! this test would name it.

use crate::support::*;
use iam_gateway::clock::Clock;
use iam_gateway::domain::model::{ApiToken, AuthMethod, WorkspaceSettings};
use iam_gateway::domain::roles::Policy;
use iam_gateway::store::SsoConnection;
use iam_gateway::web::api::Verb;
use serde_json::Value;

/// What the decision must answer, in each door's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Not refused by the decision (the handler answers as it will).
    Allowed,
    /// Not a member: API 404, page 404, forward-auth 403.
    Hidden,
    /// Past a workspace timeout: page 303 to sign in, API 401, forward-auth 401.
    SignIn,
    /// Require SSO: page 303 to the IdP, API 403 `sso-required`.
    Sso,
    /// Require 2FA: page 303 to add a second factor, API 403 `mfa-required`.
    Mfa,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    Page,
    ApiSession,
    ApiToken,
    ForwardAuth,
}

/// How a case's session is made.
#[derive(Debug, Clone, Copy)]
enum Who {
    /// A password session of the workspace's owner.
    Owner { mfa: bool },
    /// An SSO session through the workspace's own connection.
    OwnerViaSso,
    /// A password session of an exempt (second) owner.
    Exempt,
    /// A password session of someone who is not (or no longer) a member.
    Outsider,
    /// A password session of a member who was removed.
    Removed,
}

struct Condition {
    name: &'static str,
    settings: fn(&mut WorkspaceSettings, exempt: &str),
    who: Who,
    /// Seconds the clock moves between sign-in and the request.
    wait: i64,
    expect: Expect,
    /// What an API token of the workspace gets (tokens are not sessions).
    token: Option<Expect>,
}

fn conditions() -> Vec<Condition> {
    vec![
        Condition {
            name: "not a member",
            settings: |_, _| {},
            who: Who::Outsider,
            wait: 0,
            expect: Expect::Hidden,
            token: None,
        },
        Condition {
            name: "removed member",
            settings: |_, _| {},
            who: Who::Removed,
            wait: 0,
            expect: Expect::Hidden,
            token: None,
        },
        Condition {
            name: "Require SSO, password session",
            settings: |s, _| s.require_sso = true,
            who: Who::Owner { mfa: true },
            wait: 0,
            expect: Expect::Sso,
            token: Some(Expect::Allowed),
        },
        Condition {
            name: "Require SSO, SSO session",
            settings: |s, _| s.require_sso = true,
            who: Who::OwnerViaSso,
            wait: 0,
            expect: Expect::Allowed,
            token: None,
        },
        Condition {
            name: "Require SSO, exempt member",
            settings: |s, exempt| {
                s.require_sso = true;
                s.sso_exempt_user_ids = vec![exempt.to_string()];
            },
            who: Who::Exempt,
            wait: 0,
            expect: Expect::Allowed,
            token: None,
        },
        Condition {
            name: "Require 2FA, no second factor",
            settings: |s, _| s.require_mfa = true,
            who: Who::Owner { mfa: false },
            wait: 0,
            expect: Expect::Mfa,
            token: Some(Expect::Allowed),
        },
        Condition {
            name: "Require 2FA, second factor used",
            settings: |s, _| s.require_mfa = true,
            who: Who::Owner { mfa: true },
            wait: 0,
            expect: Expect::Allowed,
            token: None,
        },
        Condition {
            name: "idle timeout",
            settings: |s, _| s.idle_timeout = Some("5m".into()),
            who: Who::Owner { mfa: false },
            wait: 6 * 60,
            expect: Expect::SignIn,
            token: Some(Expect::Allowed),
        },
        Condition {
            name: "absolute timeout",
            settings: |s, _| s.absolute_timeout = Some("1h".into()),
            who: Who::Owner { mfa: false },
            wait: 61 * 60,
            expect: Expect::SignIn,
            token: None,
        },
    ]
}

/// One workspace set up for one condition.
struct Setup {
    slug: String,
    owner: String,
    exempt: String,
    outsider: String,
    removed: String,
    connection: String,
    token: String,
}

async fn set_up(srv: &TestServer, n: usize, c: &Condition) -> Setup {
    let slug = format!("door{n}");
    let (ws_id, owner) = srv.bootstrap(&slug, &format!("owner{n}@door.test")).await;
    let exempt = srv
        .add_member(
            &ws_id,
            &format!("exempt{n}@door.test"),
            &["workspace_owner"],
        )
        .await;
    let removed = srv
        .add_member(
            &ws_id,
            &format!("removed{n}@door.test"),
            &["workspace_member"],
        )
        .await;
    let (_, outsider) = srv
        .bootstrap(&format!("elsewhere{n}"), &format!("outsider{n}@door.test"))
        .await;
    let store = srv.store();
    let now = srv.clock.now();
    let connection = format!("conn-{slug}");
    store
        .create_connection(&SsoConnection {
            id: connection.clone(),
            workspace_id: ws_id.clone(),
            kind: "oidc".into(),
            name: "Door IdP".into(),
            enabled: true,
            allow_idp_initiated: false,
            config: serde_json::json!({}),
            created_at: now,
            updated_at: now,
        })
        .await
        .unwrap();
    let token = iam_gateway::tokens::mint(iam_gateway::tokens::API_PREFIX).unwrap();
    store
        .create_token(
            &ApiToken {
                id: format!("tok-{slug}"),
                workspace_id: ws_id.clone(),
                kind: "api".into(),
                description: "door test".into(),
                policies: vec![Policy::workspace("workspace_owner")],
                created_by: Some(owner.clone()),
                created_at: now,
                last_used_at: None,
            },
            &iam_gateway::tokens::hash(&token),
        )
        .await
        .unwrap();
    // The removal goes through the API, as an owner would do it.
    let r = client()
        .delete(srv.url(&format!("/api/v1/workspaces/{slug}/members/{removed}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "removing a member");
    let ws = store.workspace_by_slug(&slug).await.unwrap().unwrap();
    let mut settings = ws.settings.clone();
    (c.settings)(&mut settings, &exempt);
    store
        .set_workspace_settings(&ws_id, &settings)
        .await
        .unwrap();
    Setup {
        slug,
        owner,
        exempt,
        outsider,
        removed,
        connection,
        token,
    }
}

/// A fresh session for the case, and its CSRF token; then the clock moves.
async fn session(srv: &TestServer, s: &Setup, c: &Condition) -> (String, String) {
    let (uid, method, mfa) = match c.who {
        Who::Owner { mfa } => (&s.owner, AuthMethod::Password, mfa),
        Who::OwnerViaSso => (&s.owner, AuthMethod::Sso(s.connection.clone()), false),
        Who::Exempt => (&s.exempt, AuthMethod::Password, true),
        Who::Outsider => (&s.outsider, AuthMethod::Password, true),
        Who::Removed => (&s.removed, AuthMethod::Password, true),
    };
    let (value, sess) = srv
        .state
        .sessions
        .login(uid, method, mfa, None)
        .await
        .unwrap();
    let csrf = iam_gateway::web::csrf::token_for_session(&srv.state, &sess);
    srv.clock
        .advance(std::time::Duration::from_secs(c.wait as u64));
    (value, csrf)
}

/// A route's path with its parameters filled: the workspace's slug, and ids
/// that name nothing (so an allowed request changes nothing).
fn fill(template: &str, slug: &str) -> String {
    template
        .replace("{slug}", slug)
        .replace("{user_id}", "no-such-user")
        .replace("{domain}", "no-such-domain.test")
        .replace("{id}", "no-such-id")
        .replace("{client_id}", "no-such-client")
}

fn method(v: Verb) -> reqwest::Method {
    match v {
        Verb::Get => reqwest::Method::GET,
        Verb::Post => reqwest::Method::POST,
        Verb::Patch => reqwest::Method::PATCH,
        Verb::Delete => reqwest::Method::DELETE,
    }
}

struct Answer {
    status: u16,
    location: String,
    reason: String,
    problem_type: String,
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let r = req.send().await.unwrap();
    let h = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (status, location, reason) = (r.status().as_u16(), h("location"), h("x-auth-reason"));
    let body = r.text().await.unwrap_or_default();
    let problem_type = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["type"].as_str().map(str::to_string))
        .unwrap_or_default();
    Answer {
        status,
        location,
        reason,
        problem_type,
    }
}

/// Whether the answer is what the decision must give at this door; the
/// reason when it is not.
fn judge(door: Door, expect: Expect, a: &Answer, here: &str, s: &Setup) -> Result<(), String> {
    let back = urlenc(here);
    let ok = match (door, expect) {
        (Door::ForwardAuth, Expect::Allowed) => a.status == 200,
        (Door::ForwardAuth, Expect::Hidden) => a.status == 403,
        (Door::ForwardAuth, Expect::SignIn) => a.status == 401 && a.reason.is_empty(),
        (Door::ForwardAuth, Expect::Sso) => a.status == 401 && a.reason == "sso_required",
        (Door::ForwardAuth, Expect::Mfa) => a.status == 401 && a.reason == "mfa_required",
        (Door::Page, Expect::Allowed) => {
            a.status != 401
                && (a.status != 404 || here.contains("no-such"))
                && !(a.status == 303
                    && ["/login", "/sso/", "/account"]
                        .iter()
                        .any(|p| a.location.starts_with(p)))
        }
        (Door::Page, Expect::Hidden) => a.status == 404,
        (Door::Page, Expect::SignIn) => {
            a.status == 303 && a.location == format!("/login?return_to={back}")
        }
        (Door::Page, Expect::Sso) => {
            a.status == 303 && a.location == format!("/sso/{}/start?return_to={back}", s.connection)
        }
        (Door::Page, Expect::Mfa) => {
            a.status == 303
                && a.location
                    .starts_with(&format!("/account?return_to={back}"))
        }
        (_, Expect::Allowed) => {
            a.status != 401
                && !a.problem_type.ends_with("/sso-required")
                && !a.problem_type.ends_with("/mfa-required")
                && (a.status != 404 || here.contains("no-such"))
        }
        (_, Expect::Hidden) => a.status == 404,
        (_, Expect::SignIn) => a.status == 401,
        (_, Expect::Sso) => a.status == 403 && a.problem_type.ends_with("/sso-required"),
        (_, Expect::Mfa) => a.status == 403 && a.problem_type.ends_with("/mfa-required"),
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "status {} location {:?} reason {:?} type {:?}",
            a.status, a.location, a.reason, a.problem_type
        ))
    }
}

#[tokio::test]
async fn every_workspace_route_and_door_applies_the_one_decision() {
    let api: Vec<(Verb, &str)> = iam_gateway::web::api::route_table()
        .into_iter()
        .filter(|(_, p)| p.starts_with(iam_gateway::web::api::WORKSPACE_PREFIX))
        .collect();
    let pages = iam_gateway::web::pages::route_table();
    assert!(api.len() >= 40 && pages.len() >= 25, "route tables shrank");
    for backend in matrix() {
        let srv = TestServer::start(backend).await;
        let http = client();
        let mut failures = Vec::new();
        let mut checked = 0usize;
        for (n, c) in conditions().iter().enumerate() {
            let s = set_up(&srv, n, c).await;
            let mut cases: Vec<(Door, Verb, String, Expect)> = Vec::new();
            for (v, p) in &pages {
                cases.push((Door::Page, *v, fill(p, &s.slug), c.expect));
            }
            for (v, p) in &api {
                cases.push((Door::ApiSession, *v, fill(p, &s.slug), c.expect));
                if let Some(t) = c.token {
                    cases.push((Door::ApiToken, *v, fill(p, &s.slug), t));
                }
            }
            cases.push((
                Door::ForwardAuth,
                Verb::Get,
                format!("/auth/verify?workspace={}", s.slug),
                c.expect,
            ));
            for (door, verb, path, expect) in cases {
                let req = http.request(method(verb), srv.url(&path));
                let req = if door == Door::ApiToken {
                    req.bearer_auth(&s.token)
                } else {
                    let (cookie, csrf) = session(&srv, &s, c).await;
                    let req = req.header(
                        "cookie",
                        format!("{}={cookie}", srv.state.sessions.cookie_name()),
                    );
                    match (door, verb) {
                        (Door::ApiSession, Verb::Get) => req,
                        (Door::ApiSession, _) => req
                            .header("x-csrf-token", csrf)
                            .header("content-type", "application/json")
                            .body("{}"),
                        (Door::Page, Verb::Post) => req.form(&[("csrf_token", csrf.as_str())]),
                        _ => req,
                    }
                };
                let answer = send(req).await;
                checked += 1;
                if let Err(why) = judge(door, expect, &answer, &path, &s) {
                    failures.push(format!(
                        "{backend:?} / {} / {door:?} {verb:?} {path}: expected {expect:?}, got {why}",
                        c.name
                    ));
                }
            }
            // The removed member is gone for good; the outsider never was.
            let _ = (&s.removed, &s.outsider);
        }
        assert!(checked > 500, "only {checked} cases ran");
        assert!(
            failures.is_empty(),
            "{} of {checked} cases refused or allowed wrongly:\n{}",
            failures.len(),
            failures.join("\n")
        );
        srv.stop().await;
    }
}
