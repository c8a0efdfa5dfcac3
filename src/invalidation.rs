//! Telling every instance that access may have shrunk (a logout, a removed
//! member, a changed role, a new password...), so their forward-auth caches
//! drop what they hold. Redis pub/sub with Redis sessions, LISTEN/NOTIFY
//! with PostgreSQL, in-process otherwise. While the channel is down the
//! caches are bypassed, so a revocation is never missed.
//!
//! The same channel tells every instance that the signing keys changed
//! (`keys rotate`, `keys retire`), so they re-read them at once.
//!
//! A shared channel also carries each instance's heartbeat: a ping it
//! publishes every [`HEARTBEAT_EVERY`] and must receive back within
//! [`crate::fastpath::HEARTBEAT_DEADLINE_MS`]. Messages on one channel
//! arrive in order, so a returned ping proves every flush published before
//! it was seen; a store that hangs with its connections open (no error, no
//! answers) stops the pings and so turns the caches off within that
//! deadline.

use crate::fastpath::FastPath;
use crate::jwt::Signer;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

const REDIS_CHANNEL: &str = "iamgw:invalidate";
const PG_CHANNEL: &str = "iamgw_invalidate";
const FLUSH: &str = "flush";
const KEYS: &str = "keys";
const HEARTBEAT_EVERY: Duration = Duration::from_millis(200);

#[derive(Clone)]
pub enum Channel {
    /// One process: flushing the local cache is all there is.
    Local,
    Redis(redis::Client),
    Postgres {
        pool: sqlx::AnyPool,
    },
}

impl Channel {
    /// Whether every revocation passes through this process (one instance on
    /// SQLite or memory): then a cached decision needs no session check,
    /// since logouts flush this very cache before they answer and the store
    /// cannot become unreachable on its own.
    pub fn is_local(&self) -> bool {
        matches!(self, Channel::Local)
    }

    /// Drops the local cache now and tells every other instance.
    pub async fn publish(&self, fast: &FastPath) {
        fast.flush();
        // A fresh connection: revocations are rare, and one must not wait
        // behind a heartbeat stuck on a broken connection.
        let sent = tokio::time::timeout(Duration::from_secs(2), self.send(FLUSH, &mut None))
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
        if let Err(e) = sent {
            // The others cannot be told: their subscriptions are broken too
            // (same backend), so they are bypassing their caches already.
            tracing::warn!(error = %e, "could not publish a cache invalidation");
        }
    }

    /// Tells every instance that the signing keys changed (best effort:
    /// each also re-reads them every `keys.refresh`).
    pub async fn announce_keys(&self) -> Result<(), String> {
        tokio::time::timeout(Duration::from_secs(2), self.send(KEYS, &mut None))
            .await
            .unwrap_or_else(|_| Err("timed out".into()))
    }

    /// Keeps this instance subscribed and its heartbeat going; the cache is
    /// usable only while the subscription is live and the heartbeat on time.
    /// `signer` re-reads its keys when told they changed.
    pub fn spawn_listener(
        &self,
        fast: Arc<FastPath>,
        database_url: Option<String>,
        signer: Signer,
    ) {
        if matches!(self, Channel::Local) {
            fast.set_healthy(true);
            return;
        }
        let ping = format!(
            "ping:{}",
            crate::crypto::random_bytes::<8>()
                .map(|b| crate::crypto::hex(&b))
                .unwrap_or_default()
        );
        fast.require_heartbeat();
        let (me, f, own) = (self.clone(), fast.clone(), ping.clone());
        tokio::spawn(async move {
            loop {
                let r = match &me {
                    Channel::Redis(client) => listen_redis(client, &f, &own, &signer).await,
                    Channel::Postgres { .. } => match &database_url {
                        Some(url) => listen_pg(url, &f, &own, &signer).await,
                        None => Err("no database URL to listen on".into()),
                    },
                    Channel::Local => return,
                };
                if let Err(e) = r {
                    tracing::debug!(error = %e, "invalidation subscription down");
                }
                f.set_healthy(false);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        let me = self.clone();
        tokio::spawn(async move {
            let mut redis_conn = None;
            loop {
                tokio::time::sleep(HEARTBEAT_EVERY).await;
                let sent =
                    tokio::time::timeout(Duration::from_secs(1), me.send(&ping, &mut redis_conn))
                        .await;
                if !matches!(sent, Ok(Ok(()))) {
                    // Reconnect next time; the late beat turns the cache off.
                    redis_conn = None;
                }
            }
        });
    }

    /// Publishes `payload` on the channel; with Redis through `redis_conn`,
    /// connected first when empty.
    async fn send(
        &self,
        payload: &str,
        redis_conn: &mut Option<redis::aio::MultiplexedConnection>,
    ) -> Result<(), String> {
        match self {
            Channel::Local => Ok(()),
            Channel::Redis(client) => {
                if redis_conn.is_none() {
                    *redis_conn = Some(
                        client
                            .get_multiplexed_async_connection()
                            .await
                            .map_err(|e| e.to_string())?,
                    );
                }
                let Some(c) = redis_conn.as_mut() else {
                    return Err("no connection".into());
                };
                redis::cmd("PUBLISH")
                    .arg(REDIS_CHANNEL)
                    .arg(payload)
                    .query_async::<i64>(c)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            Channel::Postgres { pool } => sqlx::query("SELECT pg_notify($1, $2)")
                .bind(PG_CHANNEL)
                .bind(payload)
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    }
}

/// What one message on the channel means for this instance.
fn on_message(fast: &FastPath, payload: &str, own_ping: &str, signer: &Signer) {
    if payload == own_ping {
        fast.beat();
    } else if payload == KEYS {
        signer.changed();
    } else if !payload.starts_with("ping:") {
        // "flush", or anything unknown: err on the side of forgetting.
        fast.flush();
    }
}

async fn listen_redis(
    client: &redis::Client,
    fast: &FastPath,
    own_ping: &str,
    signer: &Signer,
) -> Result<(), String> {
    let mut ps = tokio::time::timeout(Duration::from_secs(2), client.get_async_pubsub())
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    ps.subscribe(REDIS_CHANNEL)
        .await
        .map_err(|e| e.to_string())?;
    // Anything may have happened while we were away.
    fast.flush();
    fast.set_healthy(true);
    signer.changed();
    let mut stream = ps.on_message();
    while let Some(msg) = stream.next().await {
        let payload: String = msg.get_payload().unwrap_or_default();
        on_message(fast, &payload, own_ping, signer);
    }
    Err("subscription closed".into())
}

async fn listen_pg(
    url: &str,
    fast: &FastPath,
    own_ping: &str,
    signer: &Signer,
) -> Result<(), String> {
    let mut listener = sqlx::postgres::PgListener::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    listener
        .listen(PG_CHANNEL)
        .await
        .map_err(|e| e.to_string())?;
    fast.flush();
    fast.set_healthy(true);
    signer.changed();
    loop {
        // try_recv reports a lost connection as Ok(None) instead of hiding a
        // reconnect: notifications sent meanwhile would be lost.
        match listener.try_recv().await {
            Ok(Some(n)) => on_message(fast, n.payload(), own_ping, signer),
            Ok(None) => return Err("connection lost".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
}
