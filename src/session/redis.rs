//! Sessions in Redis (or one Redis database, `/N` in the URL), or in a
//! Redis Cluster: `session.redis_url` naming a cluster node is recognised
//! at the first connection (`INFO cluster`), and several comma-separated
//! node URLs are taken as the seeds of a cluster. Every key starts with
//! `iamgw:`. Connections are made lazily and every command has a deadline,
//! so an unreachable Redis becomes an error (503), never a hang.

use super::{ttl_ms, KvError, KvStore};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use std::time::Duration;
use tokio::sync::OnceCell;

const PREFIX: &str = "iamgw:";
const DEADLINE: Duration = Duration::from_secs(2);
const CLUSTER_DB: &str = "a Redis Cluster has only database 0: remove /N from session.redis_url";

/// One connection to a single Redis, or to a cluster (commands are routed
/// to the node owning their key's slot).
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

pub struct RedisKv {
    /// Node URLs as configured (one for a single Redis or a cluster seed).
    urls: Vec<String>,
    client: redis::Client,
    conn: OnceCell<Conn>,
}

fn err(e: impl std::fmt::Display) -> KvError {
    KvError::Unavailable(format!("redis: {e}"))
}

/// The node URLs of `session.redis_url` (comma-separated for a cluster).
pub fn node_urls(url: &str) -> Vec<String> {
    url.split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect()
}

impl RedisKv {
    pub fn new(url: &str) -> Result<Self, KvError> {
        let urls = node_urls(url);
        // Every node URL must parse; the first one is this client's.
        let mut clients = urls.iter().map(|u| redis::Client::open(u.as_str()));
        let client = clients.next().ok_or_else(|| err("no URL"))?.map_err(err)?;
        for other in clients {
            other.map_err(err)?;
        }
        Ok(Self {
            client,
            urls,
            conn: OnceCell::new(),
        })
    }

    async fn connect(&self) -> Result<Conn, KvError> {
        let cluster = if self.urls.len() > 1 {
            true
        } else {
            let mut c = match self.client.get_multiplexed_async_connection().await {
                Ok(c) => c,
                // `/N` on a cluster node: SELECT is refused there.
                Err(e) if e.to_string().contains("cluster mode") => {
                    return Err(err(CLUSTER_DB));
                }
                Err(e) => return Err(err(e)),
            };
            // A server that refuses INFO (some managed offerings) is taken
            // for a single Redis.
            let info: String = redis::cmd("INFO")
                .arg("cluster")
                .query_async(&mut c)
                .await
                .unwrap_or_default();
            info.lines().any(|l| l.trim() == "cluster_enabled:1")
        };
        if !cluster {
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(Duration::from_secs(1)))
                .set_response_timeout(Some(Duration::from_secs(1)))
                .set_number_of_retries(1)
                .set_max_delay(Duration::from_millis(500));
            let cm = ConnectionManager::new_with_config(self.client.clone(), config)
                .await
                .map_err(err)?;
            return Ok(Conn::Single(cm));
        }
        if self.client.get_connection_info().redis_settings().db() != 0 {
            return Err(err(CLUSTER_DB));
        }
        let cc = redis::cluster::ClusterClient::builder(self.urls.clone())
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(Duration::from_secs(1))
            .retries(1)
            .build()
            .map_err(err)?
            .get_async_connection()
            .await
            .map_err(err)?;
        Ok(Conn::Cluster(cc))
    }

    async fn conn(&self) -> Result<Conn, KvError> {
        let c = self
            .conn
            .get_or_try_init(|| async {
                match tokio::time::timeout(DEADLINE, self.connect()).await {
                    Ok(r) => r,
                    Err(_) => Err(err("connect timed out")),
                }
            })
            .await?;
        Ok(c.clone())
    }

    /// Whether the connection goes to a cluster (connecting if needed).
    pub async fn is_cluster(&self) -> Result<bool, KvError> {
        Ok(matches!(self.conn().await?, Conn::Cluster(_)))
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> Result<T, KvError> {
        within_deadline(async { cmd.query_async(&mut self.conn().await?).await.map_err(err) }).await
    }

    /// A pipeline whose keys all hash to one slot (one key), so that a
    /// cluster can run it on one node.
    async fn run_pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, KvError> {
        within_deadline(async { pipe.query_async(&mut self.conn().await?).await.map_err(err) })
            .await
    }
}

async fn within_deadline<T>(
    fut: impl std::future::Future<Output = Result<T, KvError>>,
) -> Result<T, KvError> {
    tokio::time::timeout(DEADLINE, fut)
        .await
        .unwrap_or_else(|_| Err(err("command timed out")))
}

/// Commands go to whichever connection this is.
impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(
        &'a mut self,
        cmd: &'a redis::Cmd,
    ) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

fn k(key: &str) -> String {
    format!("{PREFIX}{key}")
}

#[async_trait]
impl KvStore for RedisKv {
    async fn get(&self, key: &str) -> Result<Option<String>, KvError> {
        self.run(redis::cmd("GET").arg(k(key))).await
    }

    async fn exists_many(&self, keys: &[String]) -> Result<Vec<bool>, KvError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if let Conn::Cluster(_) = self.conn().await? {
            // Keys of different slots cannot share a pipeline: one command
            // each, all in flight at once.
            let checks = keys
                .iter()
                .map(|key| async move { self.run::<i64>(redis::cmd("EXISTS").arg(k(key))).await });
            return futures_util::future::try_join_all(checks)
                .await
                .map(|found| found.into_iter().map(|n| n > 0).collect());
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("EXISTS").arg(k(key));
        }
        let found: Vec<i64> = self.run_pipe(&pipe).await?;
        Ok(found.into_iter().map(|n| n > 0).collect())
    }

    async fn set(&self, key: &str, value: &str, ttl: Duration) -> Result<(), KvError> {
        self.run(
            redis::cmd("SET")
                .arg(k(key))
                .arg(value)
                .arg("PX")
                .arg(ttl_ms(ttl)),
        )
        .await
    }

    async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool, KvError> {
        let r: Option<String> = self
            .run(
                redis::cmd("SET")
                    .arg(k(key))
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ttl_ms(ttl)),
            )
            .await?;
        Ok(r.is_some())
    }

    async fn take(&self, key: &str) -> Result<Option<String>, KvError> {
        self.run(redis::cmd("GETDEL").arg(k(key))).await
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.run(redis::cmd("DEL").arg(k(key))).await
    }

    async fn index_add(&self, index: &str, member: &str, ttl: Duration) -> Result<usize, KvError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SADD")
            .arg(k(index))
            .arg(member)
            .ignore()
            // GT: never shorten the life of the set another session needs.
            .cmd("PEXPIRE")
            .arg(k(index))
            .arg(ttl_ms(ttl))
            .arg("GT")
            .ignore()
            .cmd("PEXPIRE")
            .arg(k(index))
            .arg(ttl_ms(ttl))
            .arg("NX")
            .ignore()
            .cmd("SCARD")
            .arg(k(index));
        let (size,): (usize,) = self.run_pipe(&pipe).await?;
        Ok(size)
    }

    async fn index_members(&self, index: &str) -> Result<Vec<String>, KvError> {
        self.run(redis::cmd("SMEMBERS").arg(k(index))).await
    }

    async fn index_remove(&self, index: &str, members: &[String]) -> Result<(), KvError> {
        if members.is_empty() {
            return Ok(());
        }
        self.run(redis::cmd("SREM").arg(k(index)).arg(members))
            .await
    }

    async fn incr(&self, key: &str, ttl: Duration) -> Result<i64, KvError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("INCR")
            .arg(k(key))
            .cmd("PEXPIRE")
            .arg(k(key))
            .arg(ttl_ms(ttl))
            .arg("NX")
            .ignore();
        let (n,): (i64,) = self.run_pipe(&pipe).await?;
        Ok(n)
    }

    async fn ping(&self) -> Result<(), KvError> {
        let _: String = self.run(&mut redis::cmd("PING")).await?;
        Ok(())
    }
}
