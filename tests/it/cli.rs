//! The binary's verbs, run as a person would run them.

use crate::support::*;
use std::io::Write;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_iam-gateway");

/// Runs the binary in `dir` with only the given IAMGW_ variables.
fn run(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("IAMGW_")) {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).to_string()
}

#[test]
fn check_config_reports_every_problem_at_once_with_exit_1() {
    let dir = temp_dir();
    std::fs::write(
        dir.join("bad.toml"),
        "listen = \"nowhere\"\ncolour = \"blue\"\n[session]\nstore = \"disk\"\n",
    )
    .unwrap();
    let out = run(
        &dir,
        &["check-config", "--config", "bad.toml"],
        &[("IAMGW_SESSION__IDLE_TIMEOUT", "forever")],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    for needle in ["listen", "colour", "session.store", "session.idle_timeout"] {
        assert!(err.contains(needle), "{needle} missing from: {err}");
    }
}

#[test]
fn check_config_prints_the_effective_config_with_secrets_masked() {
    let dir = temp_dir();
    std::fs::write(dir.join("ok.toml"), "database_url = \"postgres://gw:pg-secret-1@db/iam\"\n[twilio]\nclient_secret = \"tw-secret-2\"\n").unwrap();
    let out = run(
        &dir,
        &["check-config", "--config", "ok.toml"],
        &[("IAMGW_SESSION__STORE", "memory")],
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("store = \"memory\""), "env wins: {shown}");
    assert!(
        !shown.contains("pg-secret-1") && !shown.contains("tw-secret-2"),
        "{shown}"
    );
    assert!(shown.contains("********"));
}

#[test]
fn usage_errors_exit_2() {
    let out = run(&temp_dir(), &["bootstrap", "--workspace"], &[], None);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn bootstrap_prints_a_one_time_link_that_sets_the_password() {
    let dir = temp_dir();
    let db = format!("sqlite://{}", dir.join("gw.db").display());
    let env = [
        ("IAMGW_DATABASE_URL", db.as_str()),
        ("IAMGW_SECRET_KEY_FILE", "secret.key"),
    ];
    let out = run(
        &dir,
        &[
            "bootstrap",
            "--workspace",
            "acme",
            "--owner-email",
            "ann@acme.test",
        ],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let token = stdout
        .split("/set-password/")
        .nth(1)
        .expect("a link")
        .trim()
        .to_string();
    // Same slug again: exit 1 with a reason, nothing changed.
    let again = run(
        &dir,
        &[
            "bootstrap",
            "--workspace",
            "acme",
            "--owner-email",
            "zed@acme.test",
        ],
        &env,
        None,
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("already exists"));

    let srv = TestServer::start_with(Options {
        database_url: Some(db.clone()),
        dir: Some(dir.clone()),
        ..Options::new(sqlite())
    })
    .await;
    assert!(
        srv.store()
            .user_by_email("zed@acme.test")
            .await
            .unwrap()
            .is_none(),
        "failed bootstrap wrote nothing"
    );
    let mut br = Browser::new();
    let page = br.get(&srv.url(&format!("/set-password/{token}"))).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("ann@acme.test"));
    let csrf = page.csrf();
    let short = br
        .post_form(
            &srv.url(&format!("/set-password/{token}")),
            &[("password", "short"), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(short.status, 400, "policy enforced");
    let done = br
        .post_form(
            &srv.url(&format!("/set-password/{token}")),
            &[("password", PASSWORD), ("csrf_token", &csrf)],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let reuse = br
        .post_form(
            &srv.url(&format!("/set-password/{token}")),
            &[
                ("password", "another long passphrase"),
                ("csrf_token", &csrf),
            ],
        )
        .await;
    assert_eq!(reuse.status, 400, "single use");
    assert_eq!(
        br.sign_in(&srv, "ann@acme.test", PASSWORD, "/")
            .await
            .status,
        303
    );
    assert_eq!(
        br.verify(&srv, "workspace=acme&role=workspace_owner")
            .await
            .status,
        200
    );
}

#[test]
fn bootstrap_with_password_stdin_and_the_secret_key_is_private() {
    let dir = temp_dir();
    let db = format!("sqlite://{}", dir.join("gw.db").display());
    let env = [
        ("IAMGW_DATABASE_URL", db.as_str()),
        ("IAMGW_SECRET_KEY_FILE", "keys/secret.key"),
    ];
    let weak = run(
        &dir,
        &[
            "bootstrap",
            "--workspace",
            "acme",
            "--owner-email",
            "ann@acme.test",
            "--password-stdin",
        ],
        &env,
        Some("short\n"),
    );
    assert_eq!(weak.status.code(), Some(1));
    let out = run(
        &dir,
        &[
            "bootstrap",
            "--workspace",
            "acme",
            "--owner-email",
            "ann@acme.test",
            "--password-stdin",
        ],
        &env,
        Some(&format!("{PASSWORD}\n")),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("set-password"));
    let migrate = run(&dir, &["migrate"], &env, None);
    assert_eq!(migrate.status.code(), Some(0));
    // `migrate` and `bootstrap` don't need the secret; `serve` creates it 0600.
    let _ = std::fs::remove_file(dir.join("keys/secret.key"));
}

#[tokio::test]
async fn serve_with_no_config_uses_the_embedded_default_and_drains_on_sigterm() {
    let dir = temp_dir();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let issuer_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let issuer = format!("127.0.0.1:{issuer_port}");
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("IAMGW_")) {
        cmd.env_remove(k);
    }
    let mut child = cmd
        .arg("serve")
        .current_dir(&dir)
        .env("IAMGW_LISTEN", &listen)
        .env("IAMGW_TWILIO_ISSUER__LISTEN", &issuer)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if let Ok(r) = client().get(format!("http://{listen}/readyz")).send().await {
            up = r.status() == 200;
            if up {
                break;
            }
        }
    }
    assert!(up, "serve came up");
    assert!(
        dir.join("data/iam-gateway.db").exists(),
        "SQLite under ./data"
    );
    let key = dir.join("data/secret.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    unsafe_kill(child.id(), "TERM");
    let status = child.wait().unwrap();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(
        out.contains("open http://127.0.0.1:8080/login"),
        "prints the URL to open: {out}"
    );
}

fn unsafe_kill(pid: u32, sig: &str) {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn demo_prints_its_credentials_works_end_to_end_and_is_idempotent() {
    let dir = temp_dir();
    let (gp, ip) = (free_port(), free_port());
    let gw = format!("http://127.0.0.1:{gp}");
    let iss = format!("http://127.0.0.1:{ip}");
    let start = || {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("IAMGW_")) {
            cmd.env_remove(k);
        }
        cmd.arg("demo")
            .current_dir(&dir)
            .env("IAMGW_LISTEN", format!("127.0.0.1:{gp}"))
            .env("IAMGW_PUBLIC_URL", &gw)
            .env("IAMGW_TWILIO_ISSUER__LISTEN", format!("127.0.0.1:{ip}"))
            .env("IAMGW_TWILIO_ISSUER__PUBLIC_URL", &iss)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let wait_ready = |url: String| async move {
        for _ in 0..150 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if let Ok(r) = client().get(&url).send().await {
                if r.status() == 200 {
                    return;
                }
            }
        }
        panic!("{url} not ready");
    };
    let mut outputs = Vec::new();
    for round in 0..2 {
        let mut child = start();
        wait_ready(format!("{gw}/readyz")).await;
        wait_ready(format!("{iss}/healthz")).await;
        if round == 0 {
            // The member signs in with the printed password.
            let mut member = Browser::new();
            let page = member.get(&format!("{gw}/login")).await;
            let step = member
                .post_form(
                    &format!("{gw}/login"),
                    &[("email", "member@acme.test"), ("csrf_token", &page.csrf())],
                )
                .await;
            let done = member
                .post_form(
                    &format!("{gw}/login/password"),
                    &[
                        ("email", "member@acme.test"),
                        ("password", "acme demo passphrase for local use"),
                        ("csrf_token", &step.csrf()),
                    ],
                )
                .await;
            assert_eq!(done.status, 303, "{}", done.body);
            // The owner goes through the Twilio console's product switcher.
            let mut owner = Browser::new();
            let login = owner
                .get(&format!("{iss}/login?return_to=%2Fconsole"))
                .await;
            owner
                .post_form(
                    &format!("{iss}/login"),
                    &[
                        ("email", "owner@acme.test"),
                        ("password", "acme demo passphrase for local use"),
                        ("csrf_token", &login.csrf()),
                        ("return_to", "/console"),
                    ],
                )
                .await;
            let mut url =
                url::Url::parse(&format!("{gw}/login/twilio?return_to=%2Fworkspaces")).unwrap();
            let mut page = owner.get(url.as_str()).await;
            while (300..400).contains(&page.status) {
                url = url.join(&page.header("location").unwrap()).unwrap();
                page = owner.get(url.as_str()).await;
            }
            assert_eq!(url.as_str(), format!("{gw}/workspaces"));
            assert!(page.body.contains("Workspace Owner"), "{}", page.body);
        }
        unsafe_kill(child.id(), "TERM");
        assert!(child.wait().unwrap().success());
        let mut out = String::new();
        std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
        assert!(
            out.contains("member@acme.test / acme demo passphrase for local use"),
            "{out}"
        );
        assert!(out.contains(&format!("{iss}/console")), "{out}");
        outputs.push(
            out.lines()
                .filter(|l| !l.contains("listening"))
                .map(str::to_string)
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        outputs[0], outputs[1],
        "idempotent: the same data and output the second time"
    );
}

#[tokio::test]
async fn serve_speaks_https_with_tls_configured_and_cookies_become_host_prefixed_and_secure() {
    let dir = temp_dir();
    let port = free_port();
    let base = format!("https://127.0.0.1:{port}");
    let certs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("certs");
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("IAMGW_")) {
        cmd.env_remove(k);
    }
    let mut child = cmd
        .arg("serve")
        .current_dir(&dir)
        .env("IAMGW_LISTEN", format!("127.0.0.1:{port}"))
        .env("IAMGW_PUBLIC_URL", &base)
        .env("IAMGW_TWILIO__MODE", "off")
        .env("IAMGW_TLS__CERT", certs.join("dev-only-localhost.crt"))
        .env("IAMGW_TLS__KEY", certs.join("dev-only-localhost.key"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ca = reqwest::Certificate::from_pem(
        &std::fs::read(certs.join("dev-only-localhost.crt")).unwrap(),
    )
    .unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(ca)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut ok = false;
    let mut last = String::new();
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        match https.get(format!("{base}/healthz")).send().await {
            Ok(r) => {
                ok = r.status() == 200;
                break;
            }
            Err(e) => last = format!("{e:?}"),
        }
    }
    assert!(ok, "healthz over https: {last}");
    let login = https.get(format!("{base}/login")).send().await.unwrap();
    let set = login
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.starts_with("__Host-iamgw_csrf=") && set.contains("; Secure") && set.contains("Path=/"),
        "{set}"
    );
    // Plain HTTP to the TLS port gets nothing useful.
    assert!(client()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true));
    unsafe_kill(child.id(), "TERM");
    assert!(child.wait().unwrap().success());
}

#[tokio::test]
async fn logs_are_json_lines_with_iamgw_log_format_json_and_carry_no_secrets() {
    let dir = temp_dir();
    let port = free_port();
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("IAMGW_")) {
        cmd.env_remove(k);
    }
    let mut child = cmd
        .arg("serve")
        .current_dir(&dir)
        .env("IAMGW_LISTEN", format!("127.0.0.1:{port}"))
        .env("IAMGW_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("IAMGW_TWILIO__MODE", "off")
        .env("IAMGW_LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if client().get(format!("{base}/readyz")).send().await.is_ok() {
            break;
        }
    }
    // A sign-in attempt with a password and a return_to in the query.
    let mut br = Browser::new();
    let p = br
        .get(&format!("{base}/login?return_to=%2Fsecret-path"))
        .await;
    br.post_form(
        &format!("{base}/login/password"),
        &[
            ("email", "x@y.test"),
            ("password", "hunter2-very-secret"),
            ("csrf_token", &p.csrf()),
        ],
    )
    .await;
    unsafe_kill(child.id(), "TERM");
    child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() >= 3, "{err}");
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        assert!(
            v.get("level").is_some() && v.get("timestamp").is_some(),
            "{l}"
        );
    }
    assert!(
        err.contains("\"route\":\"/login/password\"") || err.contains("/login/password"),
        "requests are logged: {err}"
    );
    assert!(
        !err.contains("hunter2-very-secret")
            && !err.contains("csrf")
            && !err.contains("secret-path"),
        "no secrets or query strings in logs"
    );
}
