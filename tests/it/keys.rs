//! Signing-key rotation under load: two gateway instances on one database,
//! a downstream app that verifies `X-Auth-Assertion` against a JWKS it
//! caches for the JWKS's max-age (and never re-fetches early), and
//! `iam-gateway keys rotate` run as an operator would run it.

use crate::support::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use iam_gateway::clock::Clock;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use serde_json::Value;
use std::collections::HashMap;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const BIN: &str = env!("CARGO_BIN_EXE_iam-gateway");
const MAX_AGE: i64 = 300;

/// A downstream app's verifier: fetches the JWKS, keeps it for MAX_AGE
/// seconds of its clock, and refuses a token whose kid it does not hold.
struct CachingVerifier {
    url: String,
    keys: HashMap<String, VerifyingKey>,
    fetched_at: i64,
    fetches: usize,
}

fn decode(part: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(part).unwrap()
}

async fn fetch_jwks(url: &str) -> HashMap<String, VerifyingKey> {
    let resp = client().get(url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["cache-control"].to_str().unwrap(),
        format!("public, max-age={MAX_AGE}")
    );
    let set: Value = resp.json().await.unwrap();
    set["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            assert!(k.get("d").is_none(), "no private parameters");
            let x = decode(k["x"].as_str().unwrap());
            let y = decode(k["y"].as_str().unwrap());
            let point = p256::EncodedPoint::from_affine_coordinates(
                x.as_slice().into(),
                y.as_slice().into(),
                false,
            );
            (
                k["kid"].as_str().unwrap().to_string(),
                VerifyingKey::from_encoded_point(&point).unwrap(),
            )
        })
        .collect()
}

async fn published(srv: &TestServer) -> Vec<String> {
    let mut kids: Vec<String> = fetch_jwks(&srv.url("/.well-known/jwks.json"))
        .await
        .into_keys()
        .collect();
    kids.sort();
    kids
}

/// The kid of a compact JWS, and whether it verifies with `keys` at `now`.
fn check(token: &str, keys: &HashMap<String, VerifyingKey>, now: i64) -> Result<String, String> {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&decode(parts[0])).unwrap();
    let claims: Value = serde_json::from_slice(&decode(parts[1])).unwrap();
    let kid = header["kid"].as_str().unwrap().to_string();
    let key = keys.get(&kid).ok_or_else(|| format!("unknown kid {kid}"))?;
    let sig = Signature::from_slice(&decode(parts[2])).unwrap();
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .map_err(|_| format!("bad signature by {kid}"))?;
    let exp = claims["exp"].as_i64().unwrap();
    if exp <= now {
        return Err(format!("expired at {exp}, now {now}"));
    }
    Ok(kid)
}

impl CachingVerifier {
    async fn new(url: String, now: i64) -> Self {
        let keys = fetch_jwks(&url).await;
        CachingVerifier {
            url,
            keys,
            fetched_at: now,
            fetches: 1,
        }
    }

    async fn verify(&mut self, token: &str, now: i64) -> Result<String, String> {
        if now - self.fetched_at >= MAX_AGE {
            self.keys = fetch_jwks(&self.url).await;
            self.fetched_at = now;
            self.fetches += 1;
        }
        check(token, &self.keys, now)
    }
}

/// `iam-gateway keys ...` against the instances' database and secret.
async fn keys_cli(srv: &TestServer, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("keys")
        .args(args)
        .current_dir(&srv.dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("IAMGW_")) {
        cmd.env_remove(k);
    }
    cmd.env("IAMGW_DATABASE_URL", &srv.database_url)
        .env(
            "IAMGW_SECRET_KEY_FILE",
            srv.dir.join("secret.key").display().to_string(),
        )
        .env("IAMGW_SESSION__STORE", "database")
        .env("IAMGW_TWILIO__MODE", "off")
        .env("IAMGW_KEYS__KEEP_PUBLISHED", "2m");
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// Moves the instances' clocks forward to `t`.
fn set_clock(servers: &[&TestServer], t: i64) {
    for s in servers {
        let d = t - s.clock.now();
        if d > 0 {
            s.clock.advance(std::time::Duration::from_secs(d as u64));
        }
    }
}

fn line_of<'a>(list: &'a str, kid: &str) -> &'a str {
    list.lines()
        .find(|l| l.starts_with(kid))
        .unwrap_or_else(|| panic!("{kid} not listed in {list}"))
}

async fn wait_until_published(servers: &[&TestServer], kid: &str) {
    for _ in 0..100 {
        let mut all = true;
        for s in servers {
            all &= published(s).await.iter().any(|k| k == kid);
        }
        if all {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{kid} was not published by every instance within 10 s");
}

async fn rotation_under_load(db: Db) {
    // On PostgreSQL the periodic re-read is slow on purpose: the
    // notification must carry the change. SQLite has no channel between
    // processes; there the re-read does.
    let refresh = if db == Db::Postgres { "5m" } else { "1s" };
    let backend = Backend {
        db,
        sessions: Sessions::Database,
    };
    let opts = |o: Options| {
        o.env("IAMGW_KEYS__REFRESH", refresh)
            .env("IAMGW_KEYS__KEEP_PUBLISHED", "2m")
    };
    let a = TestServer::start_with(opts(Options::new(backend))).await;
    let mut ob = opts(Options::new(backend));
    ob.database_url = Some(a.database_url.clone());
    ob.dir = Some(a.dir.clone());
    let b = TestServer::start_with(ob).await;
    let both = [&a, &b];
    a.bootstrap("acme", "ann@acme.test").await;
    let mut br = Browser::new();
    assert_eq!(
        br.sign_in(&a, "ann@acme.test", PASSWORD, "/").await.status,
        303
    );
    let t0 = a.clock.now();
    set_clock(&both, t0);
    let first = published(&a).await;
    assert_eq!(first.len(), 1, "one key before any rotation");
    assert_eq!(published(&b).await, first, "both instances agree");
    let k1 = first[0].clone();

    // Load: forward-auth on both instances in turn, every assertion checked
    // by an app that cached the JWKS before the rotation.
    let verifier = Arc::new(tokio::sync::Mutex::new(
        CachingVerifier::new(a.url("/.well-known/jwks.json"), t0).await,
    ));
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicUsize::new(0));
    let by_kid: Arc<Mutex<HashMap<String, usize>>> = Default::default();
    let clock = a.clock.clone();
    let urls = [
        a.url("/auth/verify?workspace=acme"),
        b.url("/auth/verify?workspace=acme"),
    ];
    let cookie = format!("iamgw_session={}", br.session_cookie().unwrap());
    let load = {
        let (verifier, stop, served, by_kid) = (
            verifier.clone(),
            stop.clone(),
            served.clone(),
            by_kid.clone(),
        );
        tokio::spawn(async move {
            let http = client();
            let mut i = 0usize;
            while !stop.load(Ordering::SeqCst) {
                // The app's time when the request leaves: the test moves the
                // clocks while requests are in flight.
                let now = clock.now();
                let r = http
                    .get(&urls[i % 2])
                    .header("cookie", &cookie)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "forward-auth answered {}", r.status());
                let token = r.headers()["x-auth-assertion"]
                    .to_str()
                    .unwrap()
                    .to_string();
                let kid = verifier
                    .lock()
                    .await
                    .verify(&token, now)
                    .await
                    .unwrap_or_else(|e| panic!("the app refused an assertion: {e}"));
                *by_kid.lock().unwrap().entry(kid).or_default() += 1;
                served.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        })
    };
    let kid_of = |token: &str| -> String {
        let header: Value =
            serde_json::from_slice(&decode(token.split('.').next().unwrap())).unwrap();
        header["kid"].as_str().unwrap().to_string()
    };
    let assertion = |srv: &TestServer| {
        let br = br.clone();
        let url = srv.url("/auth/verify?workspace=acme");
        async move {
            let mut b2 = Browser::new();
            b2.cookies
                .insert("iamgw_session".into(), br.session_cookie().unwrap());
            let p = b2.get(&url).await;
            assert_eq!(p.status, 200);
            p.header("x-auth-assertion").unwrap()
        }
    };

    // The operator rotates: the new key is published by both instances
    // (no restart) and does not sign yet.
    let out = keys_cli(&a, &["rotate"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let k2 = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_ne!(k2, k1);
    wait_until_published(&both, &k2).await;
    let rows = iam_gateway::store::sql_keys::all(
        iam_gateway::store::open(&a.database_url)
            .await
            .unwrap()
            .db(),
    )
    .await
    .unwrap();
    let act = rows.iter().find(|r| r.kid == k2).unwrap().activates_at;
    assert!(act >= t0 + 600, "signs 10 minutes after it is published");
    let list = keys_cli(&a, &["list"]).await;
    let text = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(line_of(&text, &k1).contains("signing"), "{text}");
    assert!(line_of(&text, &k2).contains("next"), "{text}");
    assert_eq!(kid_of(&assertion(&b).await), k1, "the old key still signs");
    // A second rotation while one is pending is refused.
    let again = keys_cli(&a, &["rotate"]).await;
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already waiting"));

    // The app's cache expires before the new key signs, so it learns it.
    set_clock(&both, act - 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    set_clock(&both, act - 30);
    let old = assertion(&a).await;
    assert_eq!(kid_of(&old), k1);

    // The new key signs; the old key's tokens verify until they expire, with
    // the app's cached set and with a fresh one from either instance.
    set_clock(&both, act + 10);
    let mut switched = false;
    for _ in 0..50 {
        if kid_of(&assertion(&a).await) == k2 && kid_of(&assertion(&b).await) == k2 {
            switched = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(switched, "both instances sign with the new key");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let now = a.clock.now();
    assert_eq!(
        verifier.lock().await.verify(&old, now).await,
        Ok(k1.clone())
    );
    for s in both {
        let fresh = fetch_jwks(&s.url("/.well-known/jwks.json")).await;
        assert_eq!(check(&old, &fresh, now), Ok(k1.clone()));
    }
    assert!(check(&old, &HashMap::new(), act + 31).is_err());

    // Once every token of the old key has expired, it is unpublished.
    set_clock(&both, act + 121);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    for s in both {
        assert_eq!(published(s).await, vec![k2.clone()]);
    }
    let counts = by_kid.lock().unwrap().clone();
    assert!(counts.get(&k1).copied().unwrap_or(0) > 0, "{counts:?}");
    assert!(counts.get(&k2).copied().unwrap_or(0) > 0, "{counts:?}");
    assert!(served.load(Ordering::SeqCst) > 20, "{counts:?}");
    assert!(
        verifier.lock().await.fetches <= 3,
        "the app re-fetched only when its cache expired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_under_load_loses_no_request_and_old_assertions_verify_until_they_expire() {
    rotation_under_load(Db::Sqlite).await;
    // On PostgreSQL the instances learn of it by notification.
    if pg_url().is_some() {
        rotation_under_load(Db::Postgres).await;
    }
}

async fn wait_for_published(srv: &TestServer, want: &[&str]) {
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    for _ in 0..100 {
        if published(srv).await == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the JWKS is {:?}, not {want:?}", published(srv).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_key_is_replaced_at_once_and_unpublished_without_a_restart() {
    let srv =
        TestServer::start_with(Options::new(matrix()[0]).env("IAMGW_KEYS__REFRESH", "1s")).await;
    srv.bootstrap("acme", "ann@acme.test").await;
    let mut br = Browser::new();
    assert_eq!(
        br.sign_in(&srv, "ann@acme.test", PASSWORD, "/")
            .await
            .status,
        303
    );
    let k1 = published(&srv).await.remove(0);
    let text = String::from_utf8_lossy(&keys_cli(&srv, &["list"]).await.stdout).to_string();
    assert!(line_of(&text, &k1).contains("signing"), "{text}");

    let refused = keys_cli(&srv, &["retire", &k1]).await;
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("rotate --now"));
    let unknown = keys_cli(&srv, &["retire", "nope"]).await;
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no key nope"));

    let out = keys_cli(&srv, &["rotate", "--now"]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let k2 = String::from_utf8_lossy(&out.stdout).trim().to_string();
    wait_for_published(&srv, &[&k1, &k2]).await;
    // The session's next decision is signed with the new key.
    srv.clock.advance(std::time::Duration::from_secs(31));
    let token = br
        .verify(&srv, "workspace=acme")
        .await
        .header("x-auth-assertion")
        .unwrap();
    let keys = fetch_jwks(&srv.url("/.well-known/jwks.json")).await;
    assert_eq!(check(&token, &keys, srv.clock.now()), Ok(k2.clone()));

    let out = keys_cli(&srv, &["retire", &k1]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for_published(&srv, &[&k2]).await;
    let text = String::from_utf8_lossy(&keys_cli(&srv, &["list"]).await.stdout).to_string();
    assert!(line_of(&text, &k1).contains("retired"), "{text}");
    assert!(line_of(&text, &k2).contains("signing"), "{text}");
}
