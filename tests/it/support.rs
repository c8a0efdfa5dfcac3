//! Test harness: real servers on free 127.0.0.1 ports, real HTTP, real
//! backends (SQLite always; PostgreSQL and Redis when
//! IAMGW_TEST_DATABASE_URL / IAMGW_TEST_REDIS_URL are set).
//!
//! A test that needs something this machine lacks (a URL above, nginx,
//! redis-server...) goes through [`needs`]: with `CI` set it fails; locally
//! it is skipped and the skip is recorded for scripts/test to list.

#![allow(dead_code)]

use iam_gateway::app;
use iam_gateway::clock::{Clock, ManualClock};
use iam_gateway::config::Config;
use iam_gateway::store::{NewUser, Store};
use iam_gateway::web::AppState;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use tokio::sync::oneshot;

pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sessions {
    Database,
    Redis,
    Memory,
}

#[derive(Debug, Clone, Copy)]
pub struct Backend {
    pub db: Db,
    pub sessions: Sessions,
}

/// SQLite with database sessions: what every machine runs.
pub fn sqlite() -> Backend {
    Backend {
        db: Db::Sqlite,
        sessions: Sessions::Database,
    }
}

/// Every combination this machine can run: SQLite with database sessions
/// always; PostgreSQL and Redis when their URLs are given (a missing one is
/// a recorded skip, or a failure in CI: see [`needs`]).
pub fn matrix() -> Vec<Backend> {
    let mut out = vec![sqlite()];
    let pg = needs(
        pg_url(),
        "IAMGW_TEST_DATABASE_URL is unset or empty: no PostgreSQL variant",
    )
    .is_some();
    let redis = needs(
        redis_url(),
        "IAMGW_TEST_REDIS_URL is unset or empty: no Redis variant",
    )
    .is_some();
    if pg {
        out.push(Backend {
            db: Db::Postgres,
            sessions: Sessions::Database,
        });
    }
    if redis {
        out.push(Backend {
            db: if pg { Db::Postgres } else { Db::Sqlite },
            sessions: Sessions::Redis,
        });
    }
    out
}

pub fn pg_url() -> Option<String> {
    std::env::var("IAMGW_TEST_DATABASE_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

pub fn redis_url() -> Option<String> {
    std::env::var("IAMGW_TEST_REDIS_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

// ---------------------------------------------------------------------------
// What a test needs from the machine.

/// A CI run: `CI` set (as CI services set it) to anything but `0`/`false`.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Where skips are recorded, one `test<TAB>reason` line each; scripts/test
/// empties it before the cargo tests and lists it at the end.
pub fn skip_log() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests")
}

/// `found` when the test's dependency is there. When it is missing
/// (`None`): with `CI` set the test fails, so CI never passes by skipping;
/// otherwise the skip is recorded (see [`skip_log`]) and the caller returns.
pub fn needs<T>(found: Option<T>, missing: &str) -> Option<T> {
    if found.is_none() {
        let test = std::thread::current()
            .name()
            .unwrap_or("(unnamed test)")
            .to_string();
        assert!(
            !in_ci(),
            "{test}: {missing}. With CI set every test must run, none may skip: install \
             what it needs (scripts/install-deps test) and set the test URLs (scripts/test does)"
        );
        eprintln!("SKIPPED {test}: {missing}");
        let line = format!("{test}\t{missing}\n");
        let log = skip_log();
        let _ = std::fs::create_dir_all(log.parent().unwrap());
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
    found
}

/// An executable from PATH or the sbin directories (nginx lives in
/// /usr/sbin, which is not on every user's PATH).
pub fn find_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let mut dirs: Vec<&str> = path.split(':').collect();
    dirs.extend(["/usr/sbin", "/sbin", "/usr/local/sbin"]);
    dirs.into_iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// [`find_tool`], through [`needs`]: `Some(path)`, or a recorded skip (a
/// failure in CI) naming the Debian package to install.
pub fn needs_tool(name: &str, package: &str) -> Option<PathBuf> {
    needs(
        find_tool(name),
        &format!("{name} is not installed (Debian package {package}; scripts/install-deps test)"),
    )
}

/// Polls until `port` on 127.0.0.1 accepts connections (10 s at most);
/// fails at once, with its log, if `child` exits first.
pub async fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Path) {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(10) {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited ({status}) before listening:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("{what} is not listening on {port}");
}

pub fn temp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("iamgw-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A fresh PostgreSQL schema; returns a URL whose search_path points at it.
pub async fn fresh_pg_url() -> String {
    let base = pg_url().expect("IAMGW_TEST_DATABASE_URL");
    let schema = format!("iamgw_t_{}", uuid::Uuid::new_v4().simple());
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&base)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

pub async fn fresh_database_url(db: Db, dir: &std::path::Path) -> String {
    match db {
        Db::Sqlite => format!("sqlite://{}", dir.join("gw.db").display()),
        Db::Postgres => fresh_pg_url().await,
    }
}

pub struct Options {
    pub backend: Backend,
    pub env: Vec<(String, String)>,
    /// Reuse this database (two instances on one store).
    pub database_url: Option<String>,
    pub dir: Option<PathBuf>,
    /// A listener bound in advance (when another server must know the URL).
    pub listener: Option<tokio::net::TcpListener>,
}

impl Options {
    pub fn new(backend: Backend) -> Self {
        Self {
            backend,
            env: Vec::new(),
            database_url: None,
            dir: None,
            listener: None,
        }
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.to_string(), v.to_string()));
        self
    }
}

pub struct TestServer {
    pub base: String,
    pub state: AppState,
    pub clock: ManualClock,
    pub dir: PathBuf,
    pub database_url: String,
    /// The SQL store under `state.store` (its connections, group commit).
    pub sql: Arc<iam_gateway::store::sql::SqlStore>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl TestServer {
    pub async fn start(backend: Backend) -> TestServer {
        Self::start_with(Options::new(backend)).await
    }

    pub async fn start_with(opts: Options) -> TestServer {
        let dir = opts.dir.clone().unwrap_or_else(temp_dir);
        let database_url = match opts.database_url.clone() {
            Some(u) => u,
            None => fresh_database_url(opts.backend.db, &dir).await,
        };
        let listener = match opts.listener {
            Some(l) => l,
            None => tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let mut env: Vec<(String, String)> = vec![
            ("IAMGW_PUBLIC_URL".into(), base.clone()),
            ("IAMGW_LISTEN".into(), addr.to_string()),
            ("IAMGW_DATABASE_URL".into(), database_url.clone()),
            (
                "IAMGW_SECRET_KEY_FILE".into(),
                dir.join("secret.key").display().to_string(),
            ),
            ("IAMGW_TWILIO__MODE".into(), "off".into()),
        ];
        match opts.backend.sessions {
            Sessions::Database => env.push(("IAMGW_SESSION__STORE".into(), "database".into())),
            Sessions::Memory => env.push(("IAMGW_SESSION__STORE".into(), "memory".into())),
            Sessions::Redis => {
                env.push(("IAMGW_SESSION__STORE".into(), "redis".into()));
                env.push((
                    "IAMGW_SESSION__REDIS_URL".into(),
                    redis_url().unwrap_or_default(),
                ));
            }
        }
        for (k, v) in opts.env {
            env.retain(|(name, _)| *name != k);
            env.push((k, v));
        }
        let cfg = Config::load(None, env).unwrap_or_else(|e| panic!("test config: {e:?}"));
        let clock = ManualClock::new();
        let gw = app::build(cfg, Arc::new(clock.clone())).await.unwrap();
        let state = gw.state.clone();
        let sql = gw.sql.clone();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = app::serve(gw.state, listener, async move {
                let _ = rx.await;
            })
            .await;
            gw.sql.close().await;
        });
        TestServer {
            base,
            state,
            clock,
            dir,
            database_url,
            sql,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.state.store
    }

    /// Creates workspace `slug` with `email` as owner (password PASSWORD).
    pub async fn bootstrap(&self, slug: &str, email: &str) -> (String, String) {
        let hash = self.state.hasher.hash(PASSWORD).await.unwrap();
        let (ws, user) = self
            .store()
            .bootstrap_workspace(
                slug,
                slug,
                &NewUser {
                    email: email.into(),
                    name: format!("Owner of {slug}"),
                    password_hash: Some(hash),
                },
                self.clock.now(),
            )
            .await
            .unwrap();
        (ws.id, user.id)
    }

    /// Adds a user with PASSWORD and the given roles in workspace `ws_id`.
    pub async fn add_member(&self, ws_id: &str, email: &str, roles: &[&str]) -> String {
        let hash = self.state.hasher.hash(PASSWORD).await.unwrap();
        let user = self
            .store()
            .create_user(
                &NewUser {
                    email: email.into(),
                    name: email.split('@').next().unwrap().into(),
                    password_hash: Some(hash),
                },
                self.clock.now(),
            )
            .await
            .unwrap();
        let policies: Vec<_> = roles
            .iter()
            .map(|r| iam_gateway::domain::roles::Policy::workspace(r))
            .collect();
        self.store()
            .add_member(ws_id, &user.id, &policies, self.clock.now())
            .await
            .unwrap();
        user.id
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// A minimal browser: keeps cookies per name, never follows redirects.
#[derive(Clone)]
pub struct Browser {
    pub client: reqwest::Client,
    pub cookies: HashMap<String, String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).to_string())
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect()
    }

    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
    }

    /// The `<meta name="csrf-token">` of an HTML page.
    pub fn csrf(&self) -> String {
        let marker = "<meta name=\"csrf-token\" content=\"";
        let start = self.body.find(marker).expect("page has a csrf meta tag") + marker.len();
        let end = self.body[start..].find('"').unwrap();
        self.body[start..start + end].to_string()
    }
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

impl Browser {
    pub fn new() -> Self {
        Self {
            client: client(),
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn absorb(&mut self, headers: &reqwest::header::HeaderMap) {
        for v in headers.get_all("set-cookie") {
            let text = v.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            if val.is_empty() || text.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), val.to_string());
            }
        }
    }

    pub async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let mut req = req;
        if !self.cookies.is_empty() {
            req = req.header("cookie", self.cookie_header());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.absorb(&headers);
        let body = resp.text().await.unwrap();
        Page {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let r = self.client.get(url);
        self.send(r).await
    }

    pub async fn post_form(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let r = self.client.post(url).form(form);
        self.send(r).await
    }

    /// Signs in through the real pages; returns the final response.
    pub async fn sign_in(
        &mut self,
        srv: &TestServer,
        email: &str,
        password: &str,
        return_to: &str,
    ) -> Page {
        let page = self
            .get(&srv.url(&format!("/login?return_to={}", urlenc(return_to))))
            .await;
        assert_eq!(page.status, 200);
        let csrf = page.csrf();
        let step = self
            .post_form(
                &srv.url("/login"),
                &[
                    ("email", email),
                    ("csrf_token", &csrf),
                    ("return_to", return_to),
                ],
            )
            .await;
        assert_eq!(step.status, 200, "email step: {}", step.body);
        let csrf = step.csrf();
        self.post_form(
            &srv.url("/login/password"),
            &[
                ("email", email),
                ("password", password),
                ("csrf_token", &csrf),
                ("return_to", return_to),
            ],
        )
        .await
    }

    pub fn session_cookie(&self) -> Option<String> {
        self.cookies.get("iamgw_session").cloned()
    }

    /// `/auth/verify` with only this browser's session cookie.
    pub async fn verify(&self, srv: &TestServer, query: &str) -> Page {
        let mut b = Browser {
            client: self.client.clone(),
            cookies: HashMap::new(),
        };
        if let Some(c) = self.session_cookie() {
            b.cookies.insert("iamgw_session".into(), c);
        }
        b.get(&srv.url(&format!("/auth/verify?{query}"))).await
    }
}

pub fn urlenc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// ---------------------------------------------------------------------------
// The simulated Twilio issuer on its own listener.

use iam_gateway::session::database::DbKv;
use iam_gateway::session::memory::MemoryKv;
use iam_gateway::session::redis::RedisKv;
use iam_gateway::session::KvStore;
use iam_gateway::twilio_issuer::{self, ClientRegistration, IssuerOptions, IssuerState};

pub const ISSUER_CLIENT_ID: &str = "segment";
pub const ISSUER_CLIENT_SECRET: &str = "issuer-test-client-secret";
/// Registered for the test client; never contacted (redirects are not followed).
pub const ISSUER_REDIRECT_URI: &str = "http://127.0.0.1:9/auth/twilio/callback";
pub const ISSUER_HANDOFF_URL: &str = "http://127.0.0.1:9/login/twilio?return_to=%2Fworkspaces";

pub struct IssuerServer {
    pub base: String,
    pub state: IssuerState,
    pub clock: ManualClock,
    pub dir: PathBuf,
    pub database_url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for IssuerServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

impl IssuerServer {
    /// A fresh database of `backend.db` and the session backend of
    /// `backend.sessions` as the issuer's key-value store.
    pub async fn start(backend: Backend) -> IssuerServer {
        let dir = temp_dir();
        let database_url = fresh_database_url(backend.db, &dir).await;
        Self::start_on(backend, dir, database_url).await
    }

    /// The issuer on an existing database (e.g. one the CLI wrote).
    pub async fn start_on(backend: Backend, dir: PathBuf, database_url: String) -> IssuerServer {
        let client = ClientRegistration {
            client_id: ISSUER_CLIENT_ID.into(),
            client_secret: ISSUER_CLIENT_SECRET.into(),
            redirect_uris: vec![ISSUER_REDIRECT_URI.into()],
        };
        Self::start_with_client(
            backend,
            dir,
            database_url,
            client,
            ISSUER_HANDOFF_URL.into(),
        )
        .await
    }

    /// The issuer with one registered client and hand-off URL (a gateway).
    pub async fn start_with_client(
        backend: Backend,
        dir: PathBuf,
        database_url: String,
        client: ClientRegistration,
        handoff_url: String,
    ) -> IssuerServer {
        let sql = iam_gateway::store::open(&database_url).await.unwrap();
        let clock = ManualClock::new();
        let kv: Arc<dyn KvStore> = match backend.sessions {
            Sessions::Database => {
                Arc::new(DbKv::with_clock(sql.db().clone(), Arc::new(clock.clone())))
            }
            Sessions::Memory => Arc::new(MemoryKv::with_clock(Arc::new(clock.clone()))),
            Sessions::Redis => Arc::new(RedisKv::new(&redis_url().unwrap()).unwrap()),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let secret = iam_gateway::crypto::random_bytes::<32>().unwrap().to_vec();
        let state = twilio_issuer::build(
            sql.clone(),
            kv,
            Arc::new(clock.clone()),
            secret,
            IssuerOptions {
                public_url: base.clone(),
                clients: vec![client],
                handoff_url,
                hash_priority: iam_gateway::password::Priority::Idle,
            },
        )
        .await
        .unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let served = state.clone();
        let task = tokio::spawn(async move {
            let _ = app::serve_issuer(served, listener, async move {
                let _ = rx.await;
            })
            .await;
            sql.close().await;
        });
        IssuerServer {
            base,
            state,
            clock,
            dir,
            database_url,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// An account with password PASSWORD; returns its sub.
    pub async fn add_account(&self, email: &str, name: &str) -> String {
        self.state
            .add_account(email, name, Some(PASSWORD))
            .await
            .unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}
