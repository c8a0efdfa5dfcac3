//! Wiring: from a [`Config`] to a running server.

use crate::clock::Clock;
use crate::config::{Config, Listen, SessionStoreKind, TwilioMode};
use crate::domain::DomainError;
use crate::jwt::Signer;
use crate::password::Hasher;
use crate::service::Core;
use crate::session::database::DbKv;
use crate::session::memory::MemoryKv;
use crate::session::redis::RedisKv;
use crate::session::{KvStore, SessionManager};
use crate::store::sql::SqlStore;
use crate::twilio_issuer::{self, ClientRegistration, IssuerOptions, IssuerState};
use crate::web::{self, AppState};
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(String),
    #[error("database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Other(String),
}

/// Reads the deployment secret, creating it (0600) when absent.
pub fn load_or_create_secret(path: &Path) -> Result<Vec<u8>, StartError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = crate::crypto::b64_decode(&text).ok_or_else(|| {
                StartError::Config(format!("{} is not a base64 secret key", path.display()))
            })?;
            if key.len() < 32 {
                return Err(StartError::Config(format!(
                    "{} holds fewer than 32 bytes",
                    path.display()
                )));
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| {
                    StartError::Other(format!("cannot create {}: {e}", parent.display()))
                })?;
            }
            let key = crate::crypto::random_bytes::<32>()
                .map_err(|e| StartError::Other(e.to_string()))?;
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            match opts.open(path) {
                Ok(mut f) => {
                    f.write_all(crate::crypto::b64(&key).as_bytes())
                        .and_then(|_| f.sync_all())
                        .map_err(|e| {
                            StartError::Other(format!("cannot write {}: {e}", path.display()))
                        })?;
                    tracing::info!(path = %path.display(), "created a new secret key");
                    Ok(key.to_vec())
                }
                // Another instance created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    load_or_create_secret(path)
                }
                Err(e) => Err(StartError::Other(format!(
                    "cannot create {}: {e}",
                    path.display()
                ))),
            }
        }
        Err(e) => Err(StartError::Other(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// Everything a running gateway holds.
pub struct Gateway {
    pub state: AppState,
    pub sql: Arc<SqlStore>,
}

/// Opens the store (running migrations), the session store and the signing
/// keys.
pub async fn build(cfg: Config, clock: Arc<dyn Clock>) -> Result<Gateway, StartError> {
    let secret = load_or_create_secret(&cfg.secret_key_file)?;
    let sql = crate::store::open(&cfg.database_url).await?;
    let kv = session_kv(&cfg, &sql, clock.clone())?;
    let sessions = SessionManager::new(
        kv,
        clock.clone(),
        cfg.session.idle_timeout,
        cfg.session.absolute_timeout,
        cfg.is_https(),
    );
    let signer = Signer::load_or_create(
        sql.db().clone(),
        &secret,
        clock.clone(),
        cfg.keys.keep_published,
    )
    .await
    .map_err(|e| StartError::Other(e.to_string()))?;
    signer.spawn_refresh(cfg.keys.refresh);
    let hasher = Hasher::with_priority(cfg.hash_priority)
        .await
        .map_err(|e| StartError::Other(e.to_string()))?;
    if cfg.session.store == SessionStoreKind::Database {
        spawn_sweeper(DbKv::with_clock(sql.db().clone(), clock.clone()));
    }
    let store: Arc<dyn crate::store::Store> = sql.clone();
    spawn_audit_retention(store.clone(), clock.clone());
    let throttle = crate::throttle::Throttle::new(sessions.kv().clone(), clock.clone(), &secret);
    let mailer = crate::mail::Mailer::new(&cfg.mail, store.clone(), clock.clone())
        .map_err(|e| StartError::Config(e.to_string()))?;
    let twilio = twilio_connector(&cfg, &secret, clock.clone())?;
    let fast = Arc::new(crate::fastpath::FastPath::default());
    let invalidate = invalidation_channel(&cfg, &sql)?;
    invalidate.spawn_listener(fast.clone(), Some(cfg.database_url.clone()), signer.clone());
    let state = AppState(Arc::new(Core {
        cfg,
        store,
        sessions,
        signer,
        hasher,
        metrics: Default::default(),
        throttle,
        mailer,
        twilio,
        sso_oidc: Default::default(),
        fast,
        invalidate,
        clock,
        secret,
        logouts: Default::default(),
    }));
    crate::service::backchannel::spawn(&state.0);
    Ok(Gateway { state, sql })
}

/// The channel between the instances of a deployment: Redis pub/sub with
/// Redis sessions, LISTEN/NOTIFY with PostgreSQL, none otherwise.
pub fn invalidation_channel(
    cfg: &Config,
    sql: &SqlStore,
) -> Result<crate::invalidation::Channel, StartError> {
    Ok(match cfg.session.store {
        SessionStoreKind::Redis => crate::invalidation::Channel::Redis(
            // A cluster passes every PUBLISH to every node: one node (the
            // first URL) carries the channel.
            redis::Client::open(
                crate::session::redis::node_urls(&cfg.session.redis_url)
                    .first()
                    .map(String::as_str)
                    .unwrap_or_default(),
            )
            .map_err(|e| StartError::Config(format!("session.redis_url: {e}")))?,
        ),
        SessionStoreKind::Database if sql.backend() == crate::store::sql::Backend::Postgres => {
            crate::invalidation::Channel::Postgres {
                pool: sql.db().write().clone(),
            }
        }
        _ => crate::invalidation::Channel::Local,
    })
}

/// The gateway's Twilio relying party: the embedded issuer's public URL (or
/// `twilio.issuer_url` when external), reached over HTTP through discovery.
fn twilio_connector(
    cfg: &Config,
    secret: &[u8],
    clock: Arc<dyn Clock>,
) -> Result<Option<Arc<crate::connectors::oidc::OidcConnector>>, StartError> {
    use crate::config::TwilioMode;
    use crate::connectors::oidc::{OidcClientConfig, OidcConnector};
    let issuer_url = match cfg.twilio.mode {
        TwilioMode::Off => return Ok(None),
        TwilioMode::Embedded => cfg.twilio_issuer.public_url.clone(),
        TwilioMode::External => cfg.twilio.issuer_url.clone(),
    };
    let client_secret = if cfg.twilio.client_secret.is_empty() {
        twilio_issuer::embedded_client_secret(secret)
    } else {
        cfg.twilio.client_secret.clone()
    };
    let rp = OidcConnector::new(
        OidcClientConfig {
            issuer_url,
            client_id: cfg.twilio.client_id.clone(),
            client_secret,
            redirect_uri: format!("{}/auth/twilio/callback", cfg.public_url),
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
        },
        clock,
    )
    .map_err(|e| StartError::Config(format!("twilio: {}", e.reason())))?;
    Ok(Some(Arc::new(rp)))
}

/// Once an hour, deletes audit events older than each workspace's
/// retention (90 days unless set).
fn spawn_audit_retention(store: Arc<dyn crate::store::Store>, clock: Arc<dyn Clock>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tick.tick().await;
            if let Err(e) = purge_audit(store.as_ref(), clock.now()).await {
                tracing::warn!(error = %e, "purging old audit events failed");
            }
        }
    });
}

pub async fn purge_audit(
    store: &dyn crate::store::Store,
    now: i64,
) -> Result<u64, crate::store::StoreError> {
    let mut n = 0;
    for ws in store.list_workspaces().await? {
        n += store
            .purge_audit(&ws.id, now - ws.settings.audit_retention_secs())
            .await?;
    }
    Ok(n)
}

/// The configured session backend (the issuer shares it); memory and
/// database entries expire by `clock`.
fn session_kv(
    cfg: &Config,
    sql: &SqlStore,
    clock: Arc<dyn Clock>,
) -> Result<Arc<dyn KvStore>, StartError> {
    Ok(match cfg.session.store {
        SessionStoreKind::Database => Arc::new(DbKv::with_clock(sql.db().clone(), clock)),
        SessionStoreKind::Memory => Arc::new(MemoryKv::with_clock(clock)),
        SessionStoreKind::Redis => Arc::new(
            RedisKv::new(&cfg.session.redis_url).map_err(|e| StartError::Config(e.to_string()))?,
        ),
    })
}

/// The simulated Twilio issuer as configured: the gateway is its one client
/// (secret `twilio.client_secret`, or one derived from the deployment secret
/// when empty), and its console hands over to the gateway's Twilio sign-in.
pub fn issuer_options(cfg: &Config, secret: &[u8]) -> IssuerOptions {
    let client_secret = if cfg.twilio.client_secret.is_empty() {
        twilio_issuer::embedded_client_secret(secret)
    } else {
        cfg.twilio.client_secret.clone()
    };
    IssuerOptions {
        public_url: cfg.twilio_issuer.public_url.clone(),
        clients: vec![ClientRegistration {
            client_id: cfg.twilio.client_id.clone(),
            client_secret,
            redirect_uris: vec![format!("{}/auth/twilio/callback", cfg.public_url)],
        }],
        handoff_url: format!("{}/login/twilio?return_to=%2Fworkspaces", cfg.public_url),
        hash_priority: cfg.hash_priority,
    }
}

async fn build_issuer(
    cfg: &Config,
    sql: &SqlStore,
    kv: Arc<dyn KvStore>,
    clock: Arc<dyn Clock>,
    secret: Vec<u8>,
) -> Result<IssuerState, StartError> {
    let opts = issuer_options(cfg, &secret);
    twilio_issuer::build(Arc::new(sql.clone()), kv, clock, secret, opts)
        .await
        .map_err(|e| match e {
            DomainError::Invalid(m) => StartError::Config(format!("twilio_issuer: {m}")),
            DomainError::Internal(m) | DomainError::Unavailable(m) => {
                StartError::Other(format!("twilio issuer: {m}"))
            }
            other => StartError::Other(format!("twilio issuer: {other}")),
        })
}

/// Serves the issuer until `shutdown` completes, then drains.
pub async fn serve_issuer(
    state: IssuerState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = twilio_issuer::router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| StartError::Other(format!("cannot listen on {addr} ({what}): {e}")))
}

/// One shutdown signal (SIGTERM or Ctrl-C) for several servers.
fn shared_shutdown() -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = tx.send(true);
    });
    move || {
        let mut rx = rx.clone();
        Box::pin(async move {
            let _ = rx.wait_for(|stop| *stop).await;
        })
    }
}

fn spawn_sweeper(kv: DbKv) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(300));
        loop {
            tick.tick().await;
            if let Err(e) = kv.sweep().await {
                tracing::warn!(error = %e, "sweeping expired sessions failed");
            }
        }
    });
}

/// Serves until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    state: AppState,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = web::router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves on a Unix domain socket until `shutdown` completes, then drains;
/// the socket file goes with the listener.
pub async fn serve_unix(
    state: AppState,
    listener: crate::unix_socket::UnixSocketListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // `tap_io` only for axum's `ConnectInfo<SocketAddr>` on a custom listener.
    use axum::serve::ListenerExt;
    let app = web::router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener.tap_io(|_| {}), app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Serves over TLS until `shutdown` completes, then drains.
pub async fn serve_tls(
    state: AppState,
    listener: crate::tls::TlsListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    let app = web::router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener.tap_io(|_| {}), app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down: draining in-flight requests");
}

/// `iam-gateway serve`: the gateway and, in embedded mode, the simulated
/// Twilio issuer on its own listener (same database, same session backend,
/// same shutdown).
pub async fn run(cfg: Config) -> Result<(), StartError> {
    let tls = match &cfg.tls {
        Some(t) => Some(crate::tls::acceptor(&t.cert, &t.key).map_err(StartError::Config)?),
        None => None,
    };
    let listen = cfg.listen.clone();
    let public = cfg.public_url.clone();
    let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
    let gw = build(cfg, clock.clone()).await?;
    let listener = match &listen {
        Listen::Tcp(addr) => Bound::Tcp(bind(*addr, "gateway").await?),
        Listen::Unix(path) => Bound::Unix(
            crate::unix_socket::UnixSocketListener::bind(path).map_err(StartError::Other)?,
        ),
    };
    let issuer = if gw.state.cfg.twilio.mode == TwilioMode::Embedded {
        let cfg = &gw.state.cfg;
        let state = build_issuer(
            cfg,
            &gw.sql,
            gw.state.sessions.kv().clone(),
            clock,
            gw.state.secret.clone(),
        )
        .await?;
        let issuer_listener = bind(cfg.twilio_issuer.listen, "twilio issuer").await?;
        Some((state, issuer_listener))
    } else {
        None
    };
    println!("iam-gateway listening on {listen}");
    println!("open {public}/login to sign in");
    tracing::info!(%listen, "listening");
    let stop = shared_shutdown();
    let gateway = async {
        match (listener, tls) {
            (Bound::Tcp(listener), Some(acceptor)) => {
                serve_tls(
                    gw.state.clone(),
                    crate::tls::TlsListener::new(listener, acceptor)?,
                    stop(),
                )
                .await
            }
            (Bound::Tcp(listener), None) => serve(gw.state.clone(), listener, stop()).await,
            // The configuration refuses [tls] with a unix: listen.
            (Bound::Unix(listener), _) => serve_unix(gw.state.clone(), listener, stop()).await,
        }
    };
    let result = match issuer {
        Some((state, issuer_listener)) => {
            let cfg = &gw.state.cfg;
            println!(
                "twilio issuer (simulated) listening on {}; console at {}/console",
                cfg.twilio_issuer.listen, cfg.twilio_issuer.public_url
            );
            tracing::info!(listen = %cfg.twilio_issuer.listen, "twilio issuer listening");
            let issuer = serve_issuer(state, issuer_listener, stop());
            tokio::try_join!(gateway, issuer).map(|_| ())
        }
        None => gateway.await,
    };
    result.map_err(|e| StartError::Other(e.to_string()))?;
    gw.sql.close().await;
    Ok(())
}

/// The gateway's bound listener.
enum Bound {
    Tcp(TcpListener),
    Unix(crate::unix_socket::UnixSocketListener),
}

/// `iam-gateway twilio-issuer`: only the simulated Twilio issuer.
pub async fn run_issuer(cfg: Config) -> Result<(), StartError> {
    let secret = load_or_create_secret(&cfg.secret_key_file)?;
    let sql = crate::store::open(&cfg.database_url).await?;
    let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
    let kv = session_kv(&cfg, &sql, clock.clone())?;
    if cfg.session.store == SessionStoreKind::Database {
        spawn_sweeper(DbKv::with_clock(sql.db().clone(), clock.clone()));
    }
    let state = build_issuer(&cfg, &sql, kv, clock, secret).await?;
    let listen = cfg.twilio_issuer.listen;
    let listener = bind(listen, "twilio issuer").await?;
    println!("twilio issuer (simulated) listening on {listen}");
    println!("open {}/console to sign in", cfg.twilio_issuer.public_url);
    tracing::info!(%listen, "twilio issuer listening");
    serve_issuer(state, listener, shutdown_signal())
        .await
        .map_err(|e| StartError::Other(e.to_string()))?;
    sql.close().await;
    Ok(())
}

/// Demo data for `iam-gateway demo` (idempotent): workspace `acme` with an
/// owner, a member, a group, and a Twilio account linked to the owner.
/// Returns the lines to print (every URL and credential).
pub async fn seed_demo(cfg: &Config) -> Result<Vec<String>, StartError> {
    use crate::domain::roles::Policy;
    use crate::store::{AccessStore, NewUser, Store};
    const OWNER: &str = "owner@acme.test";
    const MEMBER: &str = "member@acme.test";
    // Dev-only demo passphrase, printed below; the demo is not for production.
    const PASSWORD: &str = "acme demo passphrase for local use";
    let store = crate::store::open(&cfg.database_url).await?;
    let hasher = Hasher::new(1)
        .await
        .map_err(|e| StartError::Other(e.to_string()))?;
    let now = crate::clock::SystemClock.now();
    let hash = || async {
        hasher
            .hash(PASSWORD)
            .await
            .map_err(|e| StartError::Other(e.to_string()))
    };
    let ws = match store.workspace_by_slug("acme").await? {
        Some(ws) => ws,
        None => {
            store
                .bootstrap_workspace(
                    "acme",
                    "Acme Inc",
                    &NewUser {
                        email: OWNER.into(),
                        name: "Olivia Owner".into(),
                        password_hash: Some(hash().await?),
                    },
                    now,
                )
                .await?
                .0
        }
    };
    let owner = store
        .user_by_email(OWNER)
        .await?
        .ok_or_else(|| StartError::Other("demo owner missing".into()))?;
    let member = match store.user_by_email(MEMBER).await? {
        Some(u) => u,
        None => {
            store
                .create_user(
                    &NewUser {
                        email: MEMBER.into(),
                        name: "Max Member".into(),
                        password_hash: Some(hash().await?),
                    },
                    now,
                )
                .await?
        }
    };
    if store.membership(&ws.id, &member.id).await?.is_none() {
        store
            .add_member(
                &ws.id,
                &member.id,
                &[Policy::workspace(crate::domain::roles::WORKSPACE_MEMBER)],
                now,
            )
            .await?;
    }
    let groups = store.list_groups_without_member_ids(&ws.id).await?;
    let group = match groups.into_iter().find(|g| g.name == "Analysts") {
        Some(g) => g,
        None => {
            store
                .create_group(
                    &ws.id,
                    "Analysts",
                    "Read-only access to warehouses",
                    &[Policy::workspace("warehouse_read_only")],
                    now,
                )
                .await?
        }
    };
    store
        .add_group_member(&ws.id, &group.id, &member.id)
        .await?;
    let mut lines = vec![
        format!("gateway:        {}/login", cfg.public_url),
        format!("workspace:      acme — {}/w/acme/access", cfg.public_url),
        format!("member:         {MEMBER} / {PASSWORD} (in group Analysts)"),
    ];
    if cfg.twilio.mode == TwilioMode::Embedded {
        let sub = match twilio_issuer::accounts::by_email(store.as_ref(), OWNER)
            .await
            .map_err(|e| StartError::Other(e.to_string()))?
        {
            Some(a) => a.sub,
            None => {
                twilio_issuer::accounts::create(
                    store.as_ref(),
                    &hasher,
                    now,
                    OWNER,
                    "Olivia Owner",
                    Some(PASSWORD),
                )
                .await
                .map_err(|e| StartError::Other(e.to_string()))?
                .sub
            }
        };
        if store
            .identity_user(crate::web::twilio::PROVIDER, &sub)
            .await?
            .is_none()
        {
            store
                .link_identity(
                    crate::web::twilio::PROVIDER,
                    &sub,
                    &owner.id,
                    Some(OWNER),
                    now,
                )
                .await?;
            // Linked accounts sign in with Twilio only.
            store.clear_password(&owner.id).await?;
        }
        lines.push(format!(
            "owner:          {OWNER} — signs in with Twilio: {OWNER} / {PASSWORD}"
        ));
        lines.push(format!(
            "twilio console: {}/console (pick Segment in the product switcher)",
            cfg.twilio_issuer.public_url
        ));
    } else {
        lines.push(format!("owner:          {OWNER} / {PASSWORD}"));
    }
    store.close().await;
    Ok(lines)
}
