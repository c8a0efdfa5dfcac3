//! Telling every instance that access may have shrunk (a logout, a removed
//! member, a changed role, a new password...), so their forward-auth caches
//! drop what they hold. Redis pub/sub with Redis sessions, LISTEN/NOTIFY
//! with PostgreSQL, in-process otherwise. While the channel is down the
//! caches are bypassed, so a revocation is never missed.

use crate::web::fastpath::FastPath;
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;

const REDIS_CHANNEL: &str = "iamgw:invalidate";
const PG_CHANNEL: &str = "iamgw_invalidate";

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
        let sent = match self {
            Channel::Local => Ok(()),
            Channel::Redis(client) => {
                let fut = async {
                    let mut c = client.get_multiplexed_async_connection().await?;
                    redis::cmd("PUBLISH")
                        .arg(REDIS_CHANNEL)
                        .arg("flush")
                        .query_async::<i64>(&mut c)
                        .await
                };
                match tokio::time::timeout(Duration::from_secs(2), fut).await {
                    Ok(r) => r.map(|_| ()).map_err(|e| e.to_string()),
                    Err(_) => Err("timed out".into()),
                }
            }
            Channel::Postgres { pool } => sqlx::query("SELECT pg_notify($1, 'flush')")
                .bind(PG_CHANNEL)
                .execute(pool)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        };
        if let Err(e) = sent {
            // The others cannot be told: their subscriptions are broken too
            // (same backend), so they are bypassing their caches already.
            tracing::warn!(error = %e, "could not publish a cache invalidation");
        }
    }

    /// Keeps this instance subscribed; the cache is usable only while the
    /// subscription is live.
    pub fn spawn_listener(&self, fast: Arc<FastPath>, database_url: Option<String>) {
        match self.clone() {
            Channel::Local => fast.set_healthy(true),
            Channel::Redis(client) => {
                tokio::spawn(async move {
                    loop {
                        if let Err(e) = listen_redis(&client, &fast).await {
                            tracing::debug!(error = %e, "invalidation subscription (redis) down");
                        }
                        fast.set_healthy(false);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                });
            }
            Channel::Postgres { .. } => {
                let Some(url) = database_url else { return };
                tokio::spawn(async move {
                    loop {
                        if let Err(e) = listen_pg(&url, &fast).await {
                            tracing::debug!(error = %e, "invalidation subscription (postgres) down");
                        }
                        fast.set_healthy(false);
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                });
            }
        }
    }
}

async fn listen_redis(client: &redis::Client, fast: &FastPath) -> Result<(), String> {
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
    let mut stream = ps.on_message();
    while stream.next().await.is_some() {
        fast.flush();
    }
    Err("subscription closed".into())
}

async fn listen_pg(url: &str, fast: &FastPath) -> Result<(), String> {
    let mut listener = sqlx::postgres::PgListener::connect(url)
        .await
        .map_err(|e| e.to_string())?;
    listener
        .listen(PG_CHANNEL)
        .await
        .map_err(|e| e.to_string())?;
    fast.flush();
    fast.set_healthy(true);
    loop {
        // try_recv reports a lost connection as Ok(None) instead of hiding a
        // reconnect: notifications sent meanwhile would be lost.
        match listener.try_recv().await {
            Ok(Some(_)) => fast.flush(),
            Ok(None) => return Err("connection lost".into()),
            Err(e) => return Err(e.to_string()),
        }
    }
}
