//! Sessions in Redis (or one Redis database, `/N` in the URL). Every key
//! starts with `iamgw:`. Connections are made lazily and every command has a
//! deadline, so an unreachable Redis becomes an error (503), never a hang.

use super::{ttl_ms, KvError, KvStore};
use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::time::Duration;
use tokio::sync::OnceCell;

const PREFIX: &str = "iamgw:";
const DEADLINE: Duration = Duration::from_secs(2);

pub struct RedisKv {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
}

fn err(e: impl std::fmt::Display) -> KvError {
    KvError::Unavailable(format!("redis: {e}"))
}

impl RedisKv {
    pub fn new(url: &str) -> Result<Self, KvError> {
        Ok(Self {
            client: redis::Client::open(url).map_err(err)?,
            conn: OnceCell::new(),
        })
    }

    async fn conn(&self) -> Result<ConnectionManager, KvError> {
        let cm = self
            .conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(1)))
                    .set_response_timeout(Some(Duration::from_secs(1)))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                match tokio::time::timeout(
                    DEADLINE,
                    ConnectionManager::new_with_config(self.client.clone(), config),
                )
                .await
                {
                    Ok(Ok(cm)) => Ok(cm),
                    Ok(Err(e)) => Err(err(e)),
                    Err(_) => Err(err("connect timed out")),
                }
            })
            .await?;
        Ok(cm.clone())
    }

    async fn run<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> Result<T, KvError> {
        let mut c = self.conn().await?;
        match tokio::time::timeout(DEADLINE, cmd.query_async::<T>(&mut c)).await {
            Ok(r) => r.map_err(err),
            Err(_) => Err(err("command timed out")),
        }
    }

    async fn run_pipe<T: redis::FromRedisValue>(
        &self,
        pipe: &redis::Pipeline,
    ) -> Result<T, KvError> {
        let mut c = self.conn().await?;
        match tokio::time::timeout(DEADLINE, pipe.query_async::<T>(&mut c)).await {
            Ok(r) => r.map_err(err),
            Err(_) => Err(err("command timed out")),
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

    async fn index_add(&self, index: &str, member: &str, ttl: Duration) -> Result<(), KvError> {
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
            .ignore();
        self.run_pipe(&pipe).await
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
