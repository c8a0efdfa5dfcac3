//! Operations (issue 9): the gateway behind a real nginx and in front of a
//! real downstream app, the Traefik/Caddy forward-auth shape, two instances
//! on one PostgreSQL and one Redis, and what happens when Redis, PostgreSQL
//! or the process itself fails.
//!
//! Every server binds 127.0.0.1 on a free port and is stopped when its
//! guard is dropped. The nginx tests use `deploy/nginx/templates/`, the
//! very file `docker-compose.yml` mounts.

use crate::access::Api;
use crate::support::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../../examples/sample_app/app.rs"]
#[allow(dead_code)]
mod sample_app;

use sample_app::SampleApp;

const BIN: &str = env!("CARGO_BIN_EXE_iam-gateway");

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Kills (SIGKILL) and reaps a child process when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} {pid}");
}

// ---------------------------------------------------------------------------
// The downstream app and nginx.

/// The sample app (`examples/sample_app`) on a free port, trusting `srv`.
async fn start_app(srv: &TestServer) -> (SampleApp, String) {
    let app = SampleApp::new(sample_app::Config {
        jwks_url: srv.url("/.well-known/jwks.json"),
        issuer: srv.state.cfg.public_url.clone(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let router = app.router();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (app, addr)
}

/// `deploy/nginx/templates/iam-gateway.conf.template` with its variables
/// filled in, as the nginx image's envsubst step does.
fn render_nginx_template(vars: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/nginx/templates/iam-gateway.conf.template");
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (k, v) in vars {
        text = text.replace(&format!("${{{k}}}"), v);
    }
    assert!(
        !text.contains("${"),
        "a template variable was left unset:\n{text}"
    );
    text
}

struct Nginx {
    base: String,
    master: Child,
    _dir: PathBuf,
}

impl Drop for Nginx {
    /// SIGTERM to the master, which stops its workers and exits (a SIGKILL
    /// would leave the workers running, still listening); SIGKILL only if
    /// it has not exited within 5 s.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.master.id().to_string()])
            .status();
        for _ in 0..100 {
            if let Ok(Some(_)) = self.master.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.master.kill();
        let _ = self.master.wait();
    }
}

impl Nginx {
    /// Debian's nginx on `port` with the deployment template, or None when
    /// nginx is not installed (a recorded skip; a failure in CI).
    async fn start(port: u16, gateway: &str, app: &str, workspace: &str) -> Option<Nginx> {
        let bin = needs_tool("nginx", "nginx")?;
        let dir = temp_dir();
        let listen = format!("127.0.0.1:{port}");
        let site = render_nginx_template(&[
            ("IAMGW_NGINX_LISTEN", &listen),
            ("IAMGW_GATEWAY_UPSTREAM", gateway),
            ("IAMGW_APP_UPSTREAM", app),
            ("IAMGW_WORKSPACE", workspace),
        ]);
        std::fs::write(dir.join("iam-gateway.conf"), site).unwrap();
        let tmp = dir.join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        // Workers may run as another user when the tests run as root.
        Command::new("chmod")
            .args(["-R", "a+rwx", &dir.display().to_string()])
            .status()
            .unwrap();
        let d = dir.display();
        let main = format!(
            "worker_processes 1;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
               access_log off;\n\
               client_body_temp_path {d}/tmp/body;\n\
               proxy_temp_path {d}/tmp/proxy;\n\
               fastcgi_temp_path {d}/tmp/fastcgi;\n\
               uwsgi_temp_path {d}/tmp/uwsgi;\n\
               scgi_temp_path {d}/tmp/scgi;\n\
               include {d}/iam-gateway.conf;\n\
             }}\n"
        );
        std::fs::write(dir.join("nginx.conf"), main).unwrap();
        let log = dir.join("error.log");
        let child = Command::new(bin)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(&log)
            .arg("-g")
            .arg(format!("daemon off; pid {d}/nginx.pid;"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut nginx = Nginx {
            base: format!("http://{listen}"),
            master: child,
            _dir: dir,
        };
        wait_for_port(port, &mut nginx.master, "nginx", &log).await;
        Some(nginx)
    }
}

/// Values of one header, all copies.
fn header_values(h: &reqwest::header::HeaderMap, name: &str) -> Vec<String> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// The CSRF token of a signed-in browser.
async fn csrf_of(br: &mut Browser, srv: &TestServer) -> String {
    let me: Value = serde_json::from_str(&br.get(&srv.url("/api/v1/me")).await.body).unwrap();
    me["csrf_token"].as_str().unwrap().to_string()
}

async fn logout(br: &mut Browser, srv: &TestServer) {
    let csrf = csrf_of(br, srv).await;
    let r = br
        .post_form(&srv.url("/logout"), &[("csrf_token", &csrf)])
        .await;
    assert_eq!(r.status, 303, "logout: {}", r.body);
}

#[tokio::test]
async fn nginx_auth_request_guards_the_app_and_drops_spoofed_identity_headers() {
    let port = free_port();
    let front = format!("http://127.0.0.1:{port}");
    let backend = *matrix().last().unwrap();
    let srv =
        TestServer::start_with(Options::new(backend).env("IAMGW_ALLOWED_RETURN_ORIGINS", &front))
            .await;
    let (_, ann) = srv.bootstrap("acme", "ann@acme.test").await;
    srv.bootstrap("beta", "bob@beta.test").await;
    let (app, app_addr) = start_app(&srv).await;
    let gateway = srv.base.trim_start_matches("http://").to_string();
    let Some(nginx) = Nginx::start(port, &gateway, &app_addr, "acme").await else {
        return;
    };
    let target = format!("{}/reports/q3?year=2024&team=a%26b", nginx.base);

    // Not signed in: a 302 to the gateway's sign-in that comes back here;
    // nothing reaches the app, whatever headers the client made up.
    for accept in ["text/html,application/xhtml+xml", "application/json"] {
        let r = client()
            .get(&target)
            .header("accept", accept)
            .header("x-auth-email", "mallory@evil.test")
            .header("x-auth-user-id", "usr_admin")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{backend:?} {accept}");
        assert_eq!(
            r.headers()["location"].to_str().unwrap(),
            format!("{}/login?return_to={}", srv.base, urlenc(&target))
        );
    }
    assert_eq!(app.requests(), 0, "the app saw an unauthenticated request");

    // Sign in on the gateway's pages; they send the browser back to the app.
    let mut br = Browser::new();
    let r = br.sign_in(&srv, "ann@acme.test", PASSWORD, &target).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location").as_deref(), Some(target.as_str()));

    // Signed in, with spoofed identity headers of every spelling: the app
    // sees the gateway's values, once each, and the assertion verifies
    // against the JWKS.
    let req = br
        .client
        .get(&target)
        .header("x-auth-email", "mallory@evil.test")
        .header("X-Auth-User-Id", "usr_admin")
        .header("x-auth-roles", "workspace_owner,superuser")
        .header("x-auth-workspace", "beta")
        .header("x-auth-assertion", "forged.forged.forged")
        .header("x_auth_email", "mallory@evil.test");
    let page = br.send(req).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body: Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(body["verified"], true, "{body}");
    assert_eq!(body["path"], "/reports/q3?year=2024&team=a%26b");
    let seen = &body["x_auth"];
    assert_eq!(seen["x-auth-email"], json!(["ann@acme.test"]));
    assert_eq!(seen["x-auth-user-id"], json!([ann]));
    assert_eq!(seen["x-auth-name"], json!(["Owner of acme"]));
    assert_eq!(seen["x-auth-workspace"], json!(["acme"]));
    assert_eq!(seen["x-auth-roles"], json!(["workspace_owner"]));
    assert_eq!(seen["x-auth-method"], json!(["password"]));
    assert_eq!(seen["x-auth-assertion"].as_array().unwrap().len(), 1);
    assert!(seen.get("x_auth_email").is_none(), "{seen}");
    assert!(
        !page.body.contains("mallory") && !page.body.contains("forged"),
        "{}",
        page.body
    );
    assert_eq!(body["claims"]["sub"], ann.as_str());
    assert_eq!(body["claims"]["aud"], "iamgw:acme");

    // The app refuses identity it cannot verify: straight to the app (past
    // the proxy) with the genuine assertion but another e-mail, a tampered
    // assertion, or none.
    let assertion = seen["x-auth-assertion"][0].as_str().unwrap().to_string();
    let direct = format!("http://{app_addr}/reports");
    let honest = |email: &str, assertion: &str| {
        client()
            .get(&direct)
            .header("x-auth-user-id", ann.as_str())
            .header("x-auth-email", email)
            .header("x-auth-workspace", "acme")
            .header("x-auth-assertion", assertion)
    };
    assert_eq!(
        honest("ann@acme.test", &assertion)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        honest("mallory@evil.test", &assertion)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let mut parts: Vec<String> = assertion.split('.').map(str::to_string).collect();
    let mut claims: Value =
        serde_json::from_slice(&iam_gateway::crypto::b64url_decode(&parts[1]).unwrap()).unwrap();
    claims["email"] = json!("mallory@evil.test");
    parts[1] = iam_gateway::crypto::b64url(claims.to_string().as_bytes());
    let tampered = parts.join(".");
    let r = honest("mallory@evil.test", &tampered).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let why: Value = r.json().await.unwrap();
    assert_eq!(why["error"], "bad signature");
    let r = client()
        .get(&direct)
        .header("x-auth-email", "ann@acme.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Signed in but not a member of this workspace: 403, the app sees nothing.
    let app_before = app.requests();
    let mut bob = Browser::new();
    assert_eq!(
        bob.sign_in(&srv, "bob@beta.test", PASSWORD, "/")
            .await
            .status,
        303
    );
    let r = bob.send(bob.client.get(&target)).await;
    assert_eq!(r.status, 403);
    assert_eq!(app.requests(), app_before, "a 403 reached the app");

    // Signed out: back to the sign-in redirect.
    logout(&mut br, &srv).await;
    let r = br.send(br.client.get(&target)).await;
    assert_eq!(r.status, 302);
    assert_eq!(app.requests(), app_before);
}

/// Debian's caddy on `port` with `deploy/caddy/Caddyfile` (read as is;
/// Caddy takes the addresses from the environment), or None when caddy is
/// not installed (a recorded skip; a failure in CI).
async fn start_caddy(port: u16, gateway: &str, app: &str, workspace: &str) -> Option<Guard> {
    let bin = needs_tool("caddy", "caddy")?;
    let dir = temp_dir();
    let log = dir.join("caddy.log");
    let caddyfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/caddy/Caddyfile");
    let mut child = Command::new(bin)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(caddyfile)
        .env("IAMGW_CADDY_SITE", format!("http://127.0.0.1:{port}"))
        .env("IAMGW_CADDY_BIND", "127.0.0.1")
        .env("IAMGW_GATEWAY_UPSTREAM", gateway)
        .env("IAMGW_APP_UPSTREAM", app)
        .env("IAMGW_WORKSPACE", workspace)
        .env("HOME", &dir)
        .env("XDG_CONFIG_HOME", &dir)
        .env("XDG_DATA_HOME", &dir)
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child, "caddy", &log).await;
    Some(Guard(child))
}

#[tokio::test]
async fn caddy_forward_auth_guards_the_app_and_drops_spoofed_identity_headers() {
    let port = free_port();
    let front = format!("http://127.0.0.1:{port}");
    let srv =
        TestServer::start_with(Options::new(sqlite()).env("IAMGW_ALLOWED_RETURN_ORIGINS", &front))
            .await;
    let (_, ann) = srv.bootstrap("acme", "ann@acme.test").await;
    srv.bootstrap("beta", "bob@beta.test").await;
    let (app, app_addr) = start_app(&srv).await;
    let gateway = srv.base.trim_start_matches("http://").to_string();
    let Some(_caddy) = start_caddy(port, &gateway, &app_addr, "acme").await else {
        return;
    };
    let target = format!("{front}/reports/q3?year=2024&team=a%26b");
    let r = client()
        .get(&target)
        .header("accept", "text/html")
        .header("x-auth-email", "mallory@evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("{}/login?return_to={}", srv.base, urlenc(&target))
    );
    let r = client()
        .get(&target)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "API clients get 401, not a redirect");
    assert_eq!(app.requests(), 0);

    let mut br = Browser::new();
    let r = br.sign_in(&srv, "ann@acme.test", PASSWORD, &target).await;
    assert_eq!(r.header("location").as_deref(), Some(target.as_str()));
    let req = br
        .client
        .get(&target)
        .header("x-auth-email", "mallory@evil.test")
        .header("x-auth-user-id", "usr_admin")
        .header("x-auth-assertion", "forged.forged.forged");
    let page = br.send(req).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body: Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(body["verified"], true, "{body}");
    assert_eq!(body["path"], "/reports/q3?year=2024&team=a%26b");
    assert_eq!(body["x_auth"]["x-auth-email"], json!(["ann@acme.test"]));
    assert_eq!(body["x_auth"]["x-auth-user-id"], json!([ann]));
    assert!(!page.body.contains("mallory") && !page.body.contains("forged"));

    let seen = app.requests();
    let mut bob = Browser::new();
    bob.sign_in(&srv, "bob@beta.test", PASSWORD, "/").await;
    let r = bob.send(bob.client.get(&target)).await;
    assert_eq!(r.status, 403);
    assert_eq!(app.requests(), seen, "a 403 reached the app");
}

/// The headers Traefik (`forwardAuth`) and Caddy (`forward_auth`) send to
/// the auth server for `GET https://app.example.com/reports?q=1&x=2`: the
/// client's own headers (cookie, accept, and whatever it invented) plus the
/// X-Forwarded-* set. Caddy also keeps the client's Host.
fn proxied_request(
    style: &str,
    url: &str,
    client_headers: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let mut r = client()
        .get(url)
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "app.example.com")
        .header("x-forwarded-uri", "/reports?q=1&x=2")
        .header("x-forwarded-for", "203.0.113.7");
    if style == "caddy" {
        r = r.header("host", "app.example.com");
    }
    for (k, v) in client_headers {
        r = r.header(*k, *v);
    }
    r
}

#[tokio::test]
async fn forward_style_answers_traefik_and_caddy_shaped_requests() {
    let origin = "https://app.example.com";
    let original = "https://app.example.com/reports?q=1&x=2";
    let srv =
        TestServer::start_with(Options::new(sqlite()).env("IAMGW_ALLOWED_RETURN_ORIGINS", origin))
            .await;
    let (_, ann) = srv.bootstrap("acme", "ann@acme.test").await;
    srv.bootstrap("beta", "bob@beta.test").await;
    let (_app, app_addr) = start_app(&srv).await;
    let forward = srv.url("/auth/forward?workspace=acme");
    let spoof = ("x-auth-email", "mallory@evil.test");
    for style in ["traefik", "caddy"] {
        // A browser without a session: sent to sign in, coming back to the
        // original URL (percent-encoded whole).
        let r = proxied_request(style, &forward, &[("accept", "text/html"), spoof])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 302, "{style}");
        assert_eq!(
            r.headers()["location"].to_str().unwrap(),
            format!("{}/login?return_to={}", srv.base, urlenc(original))
        );
        assert!(r.headers().get("x-auth-email").is_none());
        // An API client without a session: 401.
        let r = proxied_request(style, &forward, &[("accept", "application/json"), spoof])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{style}");

        let mut br = Browser::new();
        let r = br.sign_in(&srv, "ann@acme.test", PASSWORD, original).await;
        assert_eq!(r.status, 303);
        assert_eq!(r.header("location").as_deref(), Some(original));
        let cookie = format!("iamgw_session={}", br.session_cookie().unwrap());
        let r = proxied_request(
            style,
            &forward,
            &[("accept", "text/html"), ("cookie", &cookie), spoof],
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 200, "{style}");
        let h = r.headers().clone();
        assert_eq!(header_values(&h, "x-auth-email"), ["ann@acme.test"]);
        assert_eq!(header_values(&h, "x-auth-user-id"), [ann.as_str()]);
        // The proxy copies these onto the request to the app
        // (authResponseHeaders / copy_headers), replacing the client's.
        let mut to_app = client().get(format!("http://{app_addr}/reports"));
        for name in [
            "x-auth-user-id",
            "x-auth-email",
            "x-auth-name",
            "x-auth-workspace",
            "x-auth-roles",
            "x-auth-method",
            "x-auth-assertion",
        ] {
            to_app = to_app.header(name, h[name].clone());
        }
        let seen: Value = to_app.send().await.unwrap().json().await.unwrap();
        assert_eq!(seen["verified"], true, "{seen}");
        assert_eq!(seen["claims"]["email"], "ann@acme.test");

        // Signed in elsewhere only: 403, for browsers too (no redirect loop).
        let mut bob = Browser::new();
        bob.sign_in(&srv, "bob@beta.test", PASSWORD, "/").await;
        let cookie = format!("iamgw_session={}", bob.session_cookie().unwrap());
        let r = proxied_request(
            style,
            &forward,
            &[("accept", "text/html"), ("cookie", &cookie)],
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 403, "{style}");
    }
}

// ---------------------------------------------------------------------------
// Two instances on one PostgreSQL and one Redis.

#[tokio::test]
async fn two_instances_share_sessions_revocations_and_the_saml_replay_cache() {
    if needs(pg_url(), "IAMGW_TEST_DATABASE_URL is unset or empty").is_none() {
        return;
    }
    // Revocations travel by Redis pub/sub with Redis sessions, by
    // PostgreSQL LISTEN/NOTIFY with database sessions.
    let mut backends = vec![Sessions::Database];
    if needs(
        redis_url(),
        "IAMGW_TEST_REDIS_URL is unset or empty: no Redis sessions",
    )
    .is_some()
    {
        backends.insert(0, Sessions::Redis);
    }
    for sessions in backends {
        two_instances(Backend {
            db: Db::Postgres,
            sessions,
        })
        .await;
    }
}

async fn two_instances(backend: Backend) {
    use crate::saml::idp::{metadata_xml, world, Sign, EMAIL_FMT};
    use crate::saml::template::Resp;
    use iam_gateway::clock::Clock;
    let dir = temp_dir();
    let url = fresh_pg_url().await;
    // One deployment: one database, one Redis, one secret key file, one
    // public URL (as behind a load balancer).
    let a = TestServer::start_with(Options {
        database_url: Some(url.clone()),
        dir: Some(dir.clone()),
        ..Options::new(backend)
    })
    .await;
    let b = TestServer::start_with(Options {
        database_url: Some(url),
        dir: Some(dir),
        ..Options::new(backend).env("IAMGW_PUBLIC_URL", &a.base)
    })
    .await;
    let (acme, _) = a.bootstrap("acme", "ann@acme.test").await;
    let mia = a
        .add_member(
            &acme,
            "mia@acme.test",
            &[iam_gateway::domain::roles::WORKSPACE_MEMBER],
        )
        .await;

    // Signed in on A, let through by B (and its view is warm from now on).
    let mut owner = Api::sign_in(&a, "ann@acme.test").await;
    let mut ann = Browser::new();
    assert_eq!(
        ann.sign_in(&a, "ann@acme.test", PASSWORD, "/").await.status,
        303
    );
    let mut mia_br = Browser::new();
    assert_eq!(
        mia_br
            .sign_in(&a, "mia@acme.test", PASSWORD, "/")
            .await
            .status,
        303
    );
    for _ in 0..3 {
        let r = ann.verify(&b, "workspace=acme").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-auth-email").as_deref(), Some("ann@acme.test"));
        assert_eq!(mia_br.verify(&b, "workspace=acme").await.status, 200);
        assert_eq!(owner.br.verify(&b, "workspace=acme").await.status, 200);
    }

    // Sign-out on A: B refuses that session on the very next request, and
    // only that one.
    // (B learns of it through the revocation channel, which delivers
    // asynchronously: "at once" is the channel's delivery time, well under
    // PROPAGATION even on a loaded machine.)
    let ann_cookie = ann.session_cookie().unwrap();
    logout(&mut ann, &a).await;
    let status = settles_on(401, || async {
        client()
            .get(b.url("/auth/verify?workspace=acme"))
            .header("cookie", format!("iamgw_session={ann_cookie}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
    .await;
    assert_eq!(
        status, 401,
        "{backend:?}: signed-out session refused on B at once"
    );
    assert_eq!(owner.br.verify(&b, "workspace=acme").await.status, 200);

    // Removal on A: 403 on B at once.
    let (s, _) = owner
        .call(
            "DELETE",
            &format!("/api/v1/workspaces/acme/members/{mia}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let mia_cookie = mia_br.session_cookie().unwrap();
    let status = settles_on(403, || async {
        client()
            .get(b.url("/auth/verify?workspace=acme"))
            .header("cookie", format!("iamgw_session={mia_cookie}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
    .await;
    assert_eq!(
        status, 403,
        "{backend:?}: removed on A, refused on B at once"
    );

    // The SAML replay cache is shared: a response accepted by A is refused
    // by B.
    let meta = metadata_xml(&[&world().idp.cert_der], None);
    let (s, c) = owner
        .call(
            "POST",
            "/api/v1/workspaces/acme/sso/connections",
            Some(json!({"type": "saml", "name": "Corp IdP", "idp_metadata_xml": meta, "allow_idp_initiated": true})),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let conn = c["id"].as_str().unwrap();
    let acs = format!("{}/sso/saml/{conn}/acs", a.base);
    let now = a.clock.now();
    let xml = Resp {
        destination: Some(acs.clone()),
        recipient: acs,
        audiences: vec![format!("{}/sso/saml/{conn}/metadata", a.base)],
        response_in_response_to: None,
        scd_in_response_to: None,
        name_id: "erin@corp.test".into(),
        name_id_format: Some(EMAIL_FMT.into()),
        not_before: now - 30,
        not_on_or_after: now + 600,
        scd_not_on_or_after: now + 300,
        assertion_id: format!("_a{}", uuid::Uuid::new_v4().simple()),
        response_id: format!("_r{}", uuid::Uuid::new_v4().simple()),
        ..Resp::new()
    }
    .signed(Sign::Assertion);
    let saml = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &xml);
    let (first, erin) = post_saml(&a, conn, &saml).await;
    assert_eq!(first.status, 303, "{}", first.body);
    assert_eq!(erin.verify(&b, "workspace=acme").await.status, 200);
    let (replay, thief) = post_saml(&b, conn, &saml).await;
    assert_eq!(replay.status, 401, "replayed on the other instance");
    assert!(thief.session_cookie().is_none());
    assert!(replay.body.contains("already used"), "{}", replay.body);
    a.stop().await;
    b.stop().await;
}

/// How long a revocation on one instance may take to reach another through
/// the revocation channel (pub/sub or LISTEN/NOTIFY deliver asynchronously;
/// `session.revocation_check = "every_request"` closes even this window).
const PROPAGATION: Duration = Duration::from_millis(500);

/// Asks `status` until it answers `want` or [`PROPAGATION`] has passed;
/// returns the last answer.
async fn settles_on<F, Fut>(want: u16, status: F) -> u16
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let start = Instant::now();
    loop {
        let got = status().await;
        if got == want || start.elapsed() > PROPAGATION {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Posts a base64 SAMLResponse to `srv`'s ACS from a fresh browser.
async fn post_saml(srv: &TestServer, conn: &str, saml: &str) -> (Page, Browser) {
    let mut br = Browser::new();
    let page = br
        .post_form(
            &srv.url(&format!("/sso/saml/{conn}/acs")),
            &[("SAMLResponse", saml), ("RelayState", "/")],
        )
        .await;
    (page, br)
}

// ---------------------------------------------------------------------------
// Failure behaviour.

/// How long the gateway may take to notice that a store went away. A store
/// it talks to on every request is noticed by that request; a channel it
/// only listens to (cache invalidation) is noticed asynchronously. Requests
/// that start later than this after the failure must not be let through.
const DETECTION_GRACE: Duration = Duration::from_secs(1);

/// One forward-auth request of a [`Flow`]: when it started (since the flow
/// began), its status (0: no HTTP answer) and how long it took.
#[derive(Clone, Copy, Debug)]
struct Sample {
    at: Duration,
    status: u16,
    took: Duration,
}

/// A few clients asking `/auth/verify` with one cookie, in a loop (bounded
/// in count), while the test breaks things.
struct Flow {
    t0: Instant,
    stop: Arc<std::sync::atomic::AtomicBool>,
    log: Arc<Mutex<Vec<Sample>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Flow {
    fn start(url: String, cookie: String, workers: usize) -> Flow {
        let t0 = Instant::now();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .unwrap();
        let tasks = (0..workers)
            .map(|_| {
                let (url, cookie, stop, log, http) = (
                    url.clone(),
                    cookie.clone(),
                    stop.clone(),
                    log.clone(),
                    http.clone(),
                );
                tokio::spawn(async move {
                    for _ in 0..5000 {
                        if stop.load(std::sync::atomic::Ordering::SeqCst) {
                            break;
                        }
                        let at = t0.elapsed();
                        let started = Instant::now();
                        let status = match http
                            .get(&url)
                            .header("cookie", format!("iamgw_session={cookie}"))
                            .send()
                            .await
                        {
                            Ok(r) => r.status().as_u16(),
                            Err(_) => 0,
                        };
                        log.lock().unwrap().push(Sample {
                            at,
                            status,
                            took: started.elapsed(),
                        });
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                })
            })
            .collect();
        Flow {
            t0,
            stop,
            log,
            tasks,
        }
    }

    fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    async fn finish(self) -> Vec<Sample> {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        for t in self.tasks {
            t.await.unwrap();
        }
        let mut log = self.log.lock().unwrap().clone();
        log.sort_by_key(|s| s.at);
        log
    }
}

/// Asserts that every request that both started and ended within
/// `[from, to)` answered `want`, and that there were at least `min`.
fn expect_window(log: &[Sample], from: Duration, to: Duration, min: usize, want: u16, what: &str) {
    let inside: Vec<&Sample> = log
        .iter()
        .filter(|s| s.at >= from && s.at + s.took < to)
        .collect();
    assert!(
        inside.len() >= min,
        "{what}: only {} requests within {from:?}..{to:?}: {log:?}",
        inside.len()
    );
    assert!(
        inside.iter().all(|s| s.status == want),
        "{what}: expected {want} within {from:?}..{to:?}: {inside:?}"
    );
    let slowest = inside.iter().map(|s| s.took).max().unwrap_or_default();
    eprintln!(
        "{what}: {} requests, all {want}, slowest {slowest:?}",
        inside.len()
    );
}

/// `/healthz` answers at once; `/readyz` says which store is missing.
async fn assert_alive_but_not_ready(srv: &TestServer, missing: &str) {
    let t = Instant::now();
    let h = client().get(srv.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "healthz took {:?}",
        t.elapsed()
    );
    let r = client().get(srv.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body[missing], "unreachable", "{body}");
}

async fn wait_ready(srv: &TestServer, within: Duration) {
    let t = Instant::now();
    while t.elapsed() < within {
        if let Ok(r) = client().get(srv.url("/readyz")).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not ready again within {within:?}");
}

/// A private redis-server with an append-only file (fsync always), so a
/// restart keeps the sessions.
struct PrivateRedis {
    bin: PathBuf,
    port: u16,
    dir: PathBuf,
    child: Option<Guard>,
}

impl PrivateRedis {
    async fn start() -> Option<PrivateRedis> {
        let bin = needs_tool("redis-server", "redis-server")?;
        let mut r = PrivateRedis {
            bin,
            port: free_port(),
            dir: temp_dir(),
            child: None,
        };
        r.run().await;
        Some(r)
    }

    async fn run(&mut self) {
        let log = self.dir.join("redis.log");
        let mut child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        wait_for_port(self.port, &mut child, "redis-server", &log).await;
        self.child = Some(Guard(child));
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().0.id()
    }

    /// SIGKILL: no goodbye to its clients.
    fn kill(&mut self) {
        self.child = None;
    }
}

/// A three-node Redis Cluster (no replicas) on free ports; every node is
/// killed when this is dropped.
struct PrivateCluster {
    ports: Vec<u16>,
    _nodes: Vec<Guard>,
}

impl PrivateCluster {
    async fn start() -> Option<PrivateCluster> {
        let bin = needs_tool("redis-server", "redis-server")?;
        let cli = needs_tool("redis-cli", "redis-tools")?;
        let dir = temp_dir();
        let (mut ports, mut nodes) = (Vec::new(), Vec::new());
        for i in 0..3 {
            let port = free_port();
            let log = dir.join(format!("node{i}.log"));
            let mut child = Command::new(&bin)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .arg("--dir")
                .arg(&dir)
                .arg("--logfile")
                .arg(&log)
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            wait_for_port(port, &mut child, "redis-server (cluster node)", &log).await;
            ports.push(port);
            nodes.push(Guard(child));
        }
        let created = Command::new(&cli)
            .args(["--cluster", "create"])
            .args(ports.iter().map(|p| format!("127.0.0.1:{p}")))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        for port in &ports {
            let mut ok = false;
            for _ in 0..100 {
                let info = Command::new(&cli)
                    .args(["-p", &port.to_string(), "cluster", "info"])
                    .output()
                    .unwrap();
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    ok = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(ok, "cluster node {port} never reached cluster_state:ok");
        }
        Some(PrivateCluster {
            ports,
            _nodes: nodes,
        })
    }

    /// One node's URL: the gateway finds out it is a cluster.
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.ports[0])
    }

    /// Every node, comma-separated: the seeds of a cluster.
    fn seeds(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_cluster_holds_sessions_counters_and_revocations() {
    use iam_gateway::session::redis::RedisKv;
    use iam_gateway::session::KvStore;
    let Some(cluster) = PrivateCluster::start().await else {
        return;
    };
    for url in [cluster.url(), cluster.seeds()] {
        let kv = RedisKv::new(&url).unwrap();
        assert!(kv.is_cluster().await.unwrap(), "{url} is a cluster");
        // Keys spread over every node's slots.
        let tag = uuid::Uuid::new_v4();
        let keys: Vec<String> = (0..40).map(|i| format!("t:{tag}:{i}")).collect();
        for key in &keys[..20] {
            kv.set(key, "v", Duration::from_secs(60)).await.unwrap();
        }
        let found = kv.exists_many(&keys).await.unwrap();
        assert_eq!(found, (0..40).map(|i| i < 20).collect::<Vec<_>>(), "{url}");
        assert_eq!(kv.take(&keys[0]).await.unwrap().as_deref(), Some("v"));
        assert_eq!(kv.take(&keys[0]).await.unwrap(), None, "single use");
        assert!(kv
            .set_nx(&keys[0], "w", Duration::from_secs(60))
            .await
            .unwrap());
        assert!(!kv
            .set_nx(&keys[0], "x", Duration::from_secs(60))
            .await
            .unwrap());
        let counter = format!("c:{tag}");
        for want in 1..=3 {
            assert_eq!(
                kv.incr(&counter, Duration::from_secs(60)).await.unwrap(),
                want
            );
        }
        let index = format!("i:{tag}");
        kv.index_add(&index, "m1", Duration::from_secs(60))
            .await
            .unwrap();
        kv.index_add(&index, "m2", Duration::from_secs(60))
            .await
            .unwrap();
        let mut members = kv.index_members(&index).await.unwrap();
        members.sort();
        assert_eq!(members, vec!["m1", "m2"]);
        kv.ping().await.unwrap();
    }
    let with_db = RedisKv::new(&format!("{}/3", cluster.url())).unwrap();
    let refused = with_db.is_cluster().await.unwrap_err().to_string();
    assert!(refused.contains("database 0"), "{refused}");

    // The gateway on the cluster: sessions, the revocation channel, logout.
    let srv = TestServer::start_with(
        Options::new(Backend {
            db: Db::Sqlite,
            sessions: Sessions::Redis,
        })
        .env("IAMGW_SESSION__REDIS_URL", &cluster.seeds()),
    )
    .await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let mut br = Browser::new();
    assert_eq!(
        br.sign_in(&srv, "ann@acme.test", PASSWORD, "/")
            .await
            .status,
        303
    );
    for _ in 0..50 {
        if srv.state.fast.is_healthy() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        srv.state.fast.is_healthy(),
        "revocation channel up on the cluster"
    );
    assert_eq!(br.verify(&srv, "workspace=acme").await.status, 200);
    assert_eq!(br.verify(&srv, "workspace=acme").await.status, 200);
    let stale = br.session_cookie().unwrap();
    logout(&mut br, &srv).await;
    let mut old = Browser::new();
    old.cookies.insert("iamgw_session".into(), stale);
    assert_eq!(old.verify(&srv, "workspace=acme").await.status, 401);
    let r = client().get(srv.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_while_requests_flow_is_503_never_200_and_heals_by_itself() {
    let Some(mut redis) = PrivateRedis::start().await else {
        return;
    };
    let srv = TestServer::start_with(
        Options::new(Backend {
            db: Db::Sqlite,
            sessions: Sessions::Redis,
        })
        .env("IAMGW_SESSION__REDIS_URL", &redis.url()),
    )
    .await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let mut br = Browser::new();
    assert_eq!(
        br.sign_in(&srv, "ann@acme.test", PASSWORD, "/")
            .await
            .status,
        303
    );
    assert_eq!(br.verify(&srv, "workspace=acme").await.status, 200);
    let flow = Flow::start(
        srv.url("/auth/verify?workspace=acme"),
        br.session_cookie().unwrap(),
        4,
    );
    tokio::time::sleep(Duration::from_millis(600)).await;

    // A hung Redis (SIGSTOP: connections open, no answers).
    let t_stop = flow.now();
    signal(redis.pid(), "STOP");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_alive_but_not_ready(&srv, "session_store").await;
    let t_cont = flow.now();
    signal(redis.pid(), "CONT");
    tokio::time::sleep(Duration::from_millis(2500)).await;

    // A dead Redis (SIGKILL), then started again on its append-only file.
    let t_kill = flow.now();
    redis.kill();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_alive_but_not_ready(&srv, "session_store").await;
    let t_restart = flow.now();
    redis.run().await;
    wait_ready(&srv, Duration::from_secs(15)).await;
    let t_ready = flow.now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let end = flow.now();
    let log = flow.finish().await;

    let report = format!("{log:?}");
    for s in &log {
        assert!(
            s.status == 200 || s.status == 503,
            "only 200 or 503, never a lost session or an error: {s:?}\n{report}"
        );
        assert!(s.took < Duration::from_secs(5), "a request hung: {s:?}");
    }
    expect_window(&log, Duration::ZERO, t_stop, 4, 200, "before");
    expect_window(&log, t_stop + DETECTION_GRACE, t_cont, 2, 503, "Redis hung");
    expect_window(
        &log,
        t_cont + Duration::from_secs(1),
        t_kill,
        2,
        200,
        "Redis resumed",
    );
    expect_window(
        &log,
        t_kill + DETECTION_GRACE,
        t_restart,
        2,
        503,
        "Redis dead",
    );
    expect_window(&log, t_ready, end, 4, 200, "Redis back");
    srv.stop().await;
}

/// A private PostgreSQL cluster (Debian's initdb and pg_ctl) in a temp dir,
/// run as the `postgres` user when the tests run as root.
struct PrivatePg {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    runuser: Option<PathBuf>,
    running: bool,
}

impl PrivatePg {
    async fn start() -> Option<PrivatePg> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.path().join("bin"))
                    .collect()
            })
            .unwrap_or_default();
        dirs.retain(|d| d.join("initdb").is_file() && d.join("pg_ctl").is_file());
        dirs.sort();
        let bin = needs(
            dirs.pop(),
            "no /usr/lib/postgresql/*/bin/initdb (Debian package postgresql)",
        )?;
        let dir = temp_dir();
        let runuser = if is_root() {
            let ok = Command::new("chown")
                .args(["-R", "postgres:", &dir.display().to_string()])
                .status()
                .unwrap()
                .success();
            assert!(ok, "chown the cluster directory to postgres");
            Some(find_tool("runuser").expect("runuser (util-linux)"))
        } else {
            None
        };
        let pg = PrivatePg {
            bin,
            dir,
            port: free_port(),
            runuser,
            running: false,
        };
        let data = pg.dir.join("data").display().to_string();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let mut pg = pg;
        pg.start_again();
        Some(pg)
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let exe = self.bin.join(tool);
        let mut cmd = match &self.runuser {
            Some(ru) => {
                let mut c = Command::new(ru);
                c.args(["-u", "postgres", "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        // pg_ctl waits for the server: let the gateway and the flow run meanwhile.
        let out =
            tokio::task::block_in_place(|| cmd.args(args).current_dir(&self.dir).output()).unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.join("pg.log")).unwrap_or_default()
        );
    }

    fn start_again(&mut self) {
        let d = self.dir.display().to_string();
        let opts = format!(
            "-p {} -k {d} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                &format!("{d}/data"),
                "-l",
                &format!("{d}/pg.log"),
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        self.running = true;
    }

    /// Sends `sig` to the postmaster and every backend: STOP makes a
    /// server that keeps its connections open and answers nothing.
    fn signal_all(&self, sig: &str) {
        let pidfile = std::fs::read_to_string(self.dir.join("data/postmaster.pid")).unwrap();
        let pid = pidfile.lines().next().unwrap().trim().to_string();
        let children = Command::new("pgrep").args(["-P", &pid]).output().unwrap();
        for child in String::from_utf8_lossy(&children.stdout).split_whitespace() {
            signal(child.parse().unwrap(), sig);
        }
        signal(pid.parse().unwrap(), sig);
    }

    /// Stops it the way a crash would (immediate: no checkpoint, clients
    /// cut off).
    fn crash(&mut self) {
        let data = self.dir.join("data").display().to_string();
        self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        self.running = false;
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePg {
    fn drop(&mut self) {
        if self.running {
            self.crash();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_outage_is_503_with_health_up_and_heals_without_a_restart() {
    let Some(mut pg) = PrivatePg::start().await else {
        return;
    };
    let srv = TestServer::start_with(Options {
        database_url: Some(pg.url()),
        ..Options::new(Backend {
            db: Db::Postgres,
            sessions: Sessions::Database,
        })
    })
    .await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let mut br = Browser::new();
    assert_eq!(
        br.sign_in(&srv, "ann@acme.test", PASSWORD, "/")
            .await
            .status,
        303
    );
    assert_eq!(br.verify(&srv, "workspace=acme").await.status, 200);
    let cookie = br.session_cookie().unwrap();
    let flow = Flow::start(srv.url("/auth/verify?workspace=acme"), cookie.clone(), 2);
    let mut late = Browser::new();
    let csrf = late.get(&srv.url("/login")).await.csrf();
    tokio::time::sleep(Duration::from_millis(600)).await;

    // A hung PostgreSQL first (SIGSTOP: connections open, no answers).
    let t_freeze = flow.now();
    pg.signal_all("STOP");
    // Long enough that requests which start after the grace also end (503,
    // at the gateway's 3 s deadline) before the server resumes.
    tokio::time::sleep(Duration::from_millis(7500)).await;
    assert_alive_but_not_ready(&srv, "database").await;
    let t_thaw = flow.now();
    pg.signal_all("CONT");
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let t_stop = flow.now();
    pg.crash();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_alive_but_not_ready(&srv, "database").await;
    let r = late
        .post_form(
            &srv.url("/login/password"),
            &[
                ("email", "ann@acme.test"),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(r.status, 503, "sign-in says it cannot, {}", r.body);
    assert!(late.session_cookie().is_none());
    let r = client()
        .get(srv.url("/auth/forward?workspace=acme"))
        .header("accept", "text/html")
        .header("cookie", format!("iamgw_session={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503, "a browser is not sent to sign in either");
    let t_start = flow.now();
    pg.start_again();
    wait_ready(&srv, Duration::from_secs(20)).await;
    let t_ready = flow.now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let end = flow.now();
    let log = flow.finish().await;

    let report = format!("{log:?}");
    for s in &log {
        assert!(
            s.status == 200 || s.status == 503,
            "only 200 or 503: {s:?}\n{report}"
        );
        assert!(s.took < Duration::from_secs(8), "a request hung: {s:?}");
    }
    expect_window(&log, Duration::ZERO, t_freeze, 2, 200, "before");
    expect_window(
        &log,
        t_freeze + DETECTION_GRACE,
        t_thaw,
        1,
        503,
        "PostgreSQL hung",
    );
    expect_window(
        &log,
        t_thaw + Duration::from_millis(1500),
        t_stop,
        1,
        200,
        "PostgreSQL resumed",
    );
    expect_window(
        &log,
        t_stop + DETECTION_GRACE,
        t_start,
        1,
        503,
        "PostgreSQL down",
    );
    expect_window(&log, t_ready, end, 2, 200, "PostgreSQL back, same session");
    srv.stop().await;
}

// ---------------------------------------------------------------------------
// SQLite durability.

/// The real binary with the default configuration in `dir`, on free ports.
fn gateway_env(dir: &Path, port: u16, issuer_port: u16) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_remove("IAMGW_DATABASE_URL")
        .env("IAMGW_LISTEN", format!("127.0.0.1:{port}"))
        .env("IAMGW_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env(
            "IAMGW_TWILIO_ISSUER__LISTEN",
            format!("127.0.0.1:{issuer_port}"),
        )
        .env(
            "IAMGW_TWILIO_ISSUER__PUBLIC_URL",
            format!("http://127.0.0.1:{issuer_port}"),
        )
        .env(
            "IAMGW_TWILIO__ISSUER_URL",
            format!("http://127.0.0.1:{issuer_port}"),
        );
    c
}

async fn serve(dir: &Path, port: u16, issuer_port: u16) -> Guard {
    let log = dir.join("serve.log");
    let mut child = gateway_env(dir, port, issuer_port)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_for_port(port, &mut child, "iam-gateway serve", &log).await;
    Guard(child)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_9_during_a_write_burst_loses_no_acknowledged_write() {
    use std::io::Write;
    let dir = temp_dir();
    let (port, issuer_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let mut boot = gateway_env(&dir, port, issuer_port)
        .args([
            "bootstrap",
            "--workspace",
            "acme",
            "--owner-email",
            "ann@acme.test",
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    boot.stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    assert!(boot.wait().unwrap().success());
    let out = gateway_env(&dir, port, issuer_port)
        .args([
            "token",
            "create",
            "--workspace",
            "acme",
            "--role",
            "workspace_owner",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        dir.join("data/iam-gateway.db").is_file(),
        "the default database is data/iam-gateway.db"
    );

    let gw = serve(&dir, port, issuer_port).await;
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let (acked, http, token, url) = (
                acked.clone(),
                http.clone(),
                token.clone(),
                format!("{base}/api/v1/workspaces/acme/groups"),
            );
            tokio::spawn(async move {
                for i in 0..500 {
                    let name = format!("burst {w}-{i}");
                    match http
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"name": name}))
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == 201 => acked.lock().unwrap().push(name),
                        Ok(r) => panic!("write {name}: {}", r.status()),
                        // The process is gone: this write was never acknowledged.
                        Err(_) => break,
                    }
                }
            })
        })
        .collect();
    let t = Instant::now();
    while acked.lock().unwrap().len() < 60 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the burst is too slow"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(gw); // SIGKILL, mid-burst
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 60);
    assert!(
        acked.len() < 6 * 500,
        "the burst ended before the kill; nothing was tested"
    );

    let gw = serve(&dir, port, issuer_port).await;
    let r = http
        .get(format!("{base}/api/v1/workspaces/acme/groups"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let list: Value = r.json().await.unwrap();
    let names: std::collections::HashSet<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    let lost: Vec<&String> = acked
        .iter()
        .filter(|n| !names.contains(n.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged writes lost: {lost:?}",
        lost.len(),
        acked.len()
    );
    drop(gw);
}

/// Runs `iam-gateway ARGS` in `dir` (default configuration); its stdout.
fn cli(dir: &Path, port: u16, issuer_port: u16, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = gateway_env(dir, port, issuer_port)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_kill_9_during_concurrent_writes_on_every_path_loses_no_acknowledged_write() {
    use crate::concurrency::{self as load, Target, CLIENTS};
    use iam_gateway::store::{NewUser, Store};
    use std::sync::atomic::Ordering;
    let dir = temp_dir();
    let (port, issuer_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    cli(
        &dir,
        port,
        issuer_port,
        &[
            "bootstrap",
            "--workspace",
            "acme",
            "--owner-email",
            "ann@acme.test",
            "--password-stdin",
        ],
        Some(&format!("{PASSWORD}\n")),
    );
    let api_token = cli(
        &dir,
        port,
        issuer_port,
        &[
            "token",
            "create",
            "--workspace",
            "acme",
            "--role",
            "workspace_owner",
        ],
        None,
    );
    let scim_token = cli(
        &dir,
        port,
        issuer_port,
        &["scim-token", "create", "--workspace", "acme"],
        None,
    );
    // The members the clients sign in as, written before the gateway starts.
    let url = format!("sqlite://{}", dir.join("data/iam-gateway.db").display());
    let store = iam_gateway::store::open(&url).await.unwrap();
    let hash = iam_gateway::password::Hasher::new(1)
        .await
        .unwrap()
        .hash(PASSWORD)
        .await
        .unwrap();
    let ws = store.workspace_by_slug("acme").await.unwrap().unwrap();
    for c in 0..CLIENTS {
        let new = NewUser {
            email: load::person(c),
            name: format!("P{c}"),
            password_hash: Some(hash.clone()),
        };
        let user = store.create_user(&new, 0).await.unwrap();
        let member = [iam_gateway::domain::roles::Policy::workspace(
            "workspace_member",
        )];
        store
            .add_member(&ws.id, &user.id, &member, 0)
            .await
            .unwrap();
    }
    store.close().await;

    let gw = serve(&dir, port, issuer_port).await;
    let target = Arc::new(Target {
        base: base.clone(),
        scim_token,
        api_token,
        progress: Default::default(),
    });
    let running = tokio::spawn(load::load(target.clone()));
    let t = Instant::now();
    // About a quarter of the load is through: kill it.
    while target.progress.load(Ordering::Relaxed) < CLIENTS * load::STEPS / 4 {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the load is too slow"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(gw); // SIGKILL
    let runs = running.await.unwrap();
    let bad = load::unexpected(&runs);
    assert!(bad.is_empty(), "answers before the kill: {bad:#?}");
    let cut = runs.iter().filter(|r| r.cut).count();
    assert!(
        cut > 0,
        "the load ended before the kill; nothing was tested"
    );
    let acked: usize = runs.iter().map(|r| r.acked.len()).sum();
    eprintln!("killed with {acked} effects acknowledged; {cut} of {CLIENTS} clients cut");

    let gw = serve(&dir, port, issuer_port).await;
    let (seen, idle) = load::observe(&target, &runs).await;
    let lost = load::lost_writes(&runs, &seen);
    assert!(
        lost.is_empty(),
        "{} acknowledged writes lost ({cut} of {CLIENTS} clients cut, {acked} effects acknowledged): {lost:#?}",
        lost.len()
    );
    let extra = load::unexplained(&runs, &seen);
    assert!(extra.is_empty(), "state nobody wrote: {extra:#?}");
    let written: Vec<&String> = runs
        .iter()
        .flat_map(|r| r.settings_acked.iter().chain(&r.settings_in_flight))
        .collect();
    if runs.iter().any(|r| !r.settings_acked.is_empty()) {
        assert!(written.contains(&&idle), "idle_timeout {idle}: not written");
    }
    drop(gw);
}

// ---------------------------------------------------------------------------
// docker-compose.yml stays wired like the tested configuration.

#[test]
fn compose_runs_the_tested_nginx_template_with_every_variable_set() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
    let template =
        std::fs::read_to_string(root.join("deploy/nginx/templates/iam-gateway.conf.template"))
            .unwrap();
    assert!(
        compose.contains("./deploy/nginx/templates:/etc/nginx/templates:ro"),
        "nginx mounts the tested template"
    );
    let vars: std::collections::BTreeSet<&str> = template
        .split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name))
        .collect();
    assert_eq!(
        vars.iter().copied().collect::<Vec<_>>(),
        [
            "IAMGW_APP_UPSTREAM",
            "IAMGW_GATEWAY_UPSTREAM",
            "IAMGW_NGINX_LISTEN",
            "IAMGW_WORKSPACE"
        ],
        "the tests fill in exactly these"
    );
    let nginx = compose
        .split("\n  nginx:\n")
        .nth(1)
        .expect("an nginx service");
    for v in vars {
        assert!(nginx.contains(&format!("{v}:")), "compose's nginx sets {v}");
    }
    for needed in [
        "IAMGW_ALLOWED_RETURN_ORIGINS",
        "IAMGW_TRUSTED_PROXIES",
        "entrypoint: [\"sample-app\"]",
        "SAMPLE_APP_JWKS_URL",
    ] {
        assert!(compose.contains(needed), "compose sets {needed}");
    }
}

// ---------------------------------------------------------------------------
// Listening on a Unix domain socket (`listen = "unix:/path"`).

/// One HTTP/1.1 GET over a Unix socket (`Connection: close`): status,
/// lower-cased headers, body.
async fn unix_get(
    sock: &Path,
    target: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(sock).await.unwrap();
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn header_of(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn cookie_header(br: &Browser) -> String {
    br.cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `srv`'s gateway also served on a Unix socket in `dir` (mode 0660);
/// dropping the sender stops it, and the socket file goes with it.
async fn serve_on_unix(
    srv: &TestServer,
    dir: &Path,
) -> (
    PathBuf,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let sock = dir.join("gw.sock");
    let listener = iam_gateway::unix_socket::UnixSocketListener::bind(&sock).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let state = srv.state.clone();
    let task = tokio::spawn(async move {
        let _ = iam_gateway::app::serve_unix(state, listener, async move {
            let _ = rx.await;
        })
        .await;
    });
    (sock, tx, task)
}

#[tokio::test]
async fn unix_socket_answers_healthz_and_forward_auth_for_a_signed_in_session() {
    use std::os::unix::fs::PermissionsExt;
    let srv = TestServer::start(sqlite()).await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let dir = temp_dir();
    let (sock, stop, task) = serve_on_unix(&srv, &dir).await;
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660, "socket mode {mode:o}");

    let (status, _, body) = unix_get(&sock, "/healthz", &[]).await;
    assert_eq!(status, 200, "{body}");

    let verify = "/auth/verify?workspace=acme";
    let original = ("x-original-url", "http://127.0.0.1/reports");
    let (status, _, _) = unix_get(&sock, verify, &[original]).await;
    assert_eq!(status, 401, "anonymous over the socket");

    let mut br = Browser::new();
    let r = br.sign_in(&srv, "ann@acme.test", PASSWORD, "/").await;
    assert_eq!(r.status, 303, "{}", r.body);
    let cookie = cookie_header(&br);
    let (status, headers, body) = unix_get(&sock, verify, &[original, ("cookie", &cookie)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        header_of(&headers, "x-auth-email").as_deref(),
        Some("ann@acme.test")
    );
    assert!(header_of(&headers, "x-auth-assertion").is_some());

    // A clean stop removes the socket file.
    drop(stop);
    task.await.unwrap();
    assert!(!sock.exists(), "the socket file outlived the server");
}

#[tokio::test]
async fn unix_socket_peer_counts_as_127_0_0_1_for_forwarded_for_trust() {
    use iam_gateway::unix_socket::UNIX_PEER;
    // The default trusted_proxies (127.0.0.1/32) trusts a Unix peer ...
    let srv = TestServer::start(sqlite()).await;
    assert_eq!(UNIX_PEER.ip().to_string(), "127.0.0.1");
    let mut h = axum::http::HeaderMap::new();
    h.insert("x-forwarded-for", "203.0.113.7".parse().unwrap());
    assert_eq!(
        iam_gateway::web::http::client_ip(&srv.state, UNIX_PEER, &h).to_string(),
        "203.0.113.7"
    );
    // ... and without 127.0.0.1 in trusted_proxies it is not believed.
    let strict = TestServer::start_with(
        Options::new(sqlite()).env("IAMGW_TRUSTED_PROXIES", "[\"10.0.0.1\"]"),
    )
    .await;
    assert_eq!(
        iam_gateway::web::http::client_ip(&strict.state, UNIX_PEER, &h).to_string(),
        "127.0.0.1"
    );
}

#[tokio::test]
async fn serve_on_a_unix_socket_replaces_a_stale_file_and_removes_it_on_sigterm() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir();
    let sock = dir.join("gw.sock");
    // A previous run killed hard left its socket file behind.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());

    let gateway = |cmd: &str| {
        let mut c = Command::new(BIN);
        c.current_dir(&dir)
            .env_remove("IAMGW_DATABASE_URL")
            .env("IAMGW_LISTEN", format!("unix:{}", sock.display()))
            .env("IAMGW_PUBLIC_URL", "http://127.0.0.1")
            .env("IAMGW_TWILIO__MODE", "off")
            .arg(cmd);
        c
    };
    let log = dir.join("serve.log");
    let mut child = gateway("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::os::unix::net::UnixStream::connect(&sock).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "serve exited ({status}):\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(start.elapsed() < Duration::from_secs(20), "never listened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let (status, _, body) = unix_get(&sock, "/healthz", &[]).await;
    assert_eq!(status, 200, "{body}");

    // A second instance on the same, live socket refuses to start.
    let second = gateway("serve").output().unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );

    signal(child.id(), "TERM");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no exit on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
    assert!(!sock.exists(), "the socket file outlived a clean shutdown");

    // check-config names `listen` when the socket's directory is missing.
    let out = gateway("check-config")
        .env(
            "IAMGW_LISTEN",
            format!("unix:{}/nope/gw.sock", dir.display()),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listen: ") && err.contains("does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn nginx_auth_request_reaches_the_gateway_over_a_unix_socket() {
    let port = free_port();
    let srv = TestServer::start(sqlite()).await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let (app, app_addr) = start_app(&srv).await;
    // The deployment recipe (docs/configuration.md): a setgid directory of
    // the proxy's group, so the 0660 socket is the proxy's to connect to.
    let dir = temp_dir().join("run");
    std::fs::create_dir_all(&dir).unwrap();
    if is_root() {
        let d = dir.display().to_string();
        for (cmd, arg) in [("chown", "root:nogroup"), ("chmod", "2750")] {
            let ok = Command::new(cmd)
                .args([arg, &d])
                .status()
                .unwrap()
                .success();
            assert!(ok, "{cmd} {arg} {d}");
        }
    }
    let (sock, _stop, _task) = serve_on_unix(&srv, &dir).await;
    let upstream = format!("unix:{}", sock.display());
    let Some(nginx) = Nginx::start(port, &upstream, &app_addr, "acme").await else {
        return;
    };
    let target = format!("{}/reports/q3", nginx.base);

    // Anonymous: the gateway says 401 over the socket, nginx sends the
    // browser to sign in, nothing reaches the app.
    let r = client()
        .get(&target)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with(&format!("{}/login?return_to=", srv.base)));
    assert_eq!(app.requests(), 0, "the app saw an anonymous request");

    // Signed in: through to the app, with the gateway's identity headers.
    let mut br = Browser::new();
    let r = br.sign_in(&srv, "ann@acme.test", PASSWORD, "/").await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = br.send(br.client.get(&target)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(app.requests(), 1);
    assert!(r.body.contains("ann@acme.test"), "{}", r.body);
}
