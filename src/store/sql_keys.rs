//! The gateway's signing keys (`signing_keys`): every row, with when it
//! starts signing and, for an unpublished one, when it was retired. What a
//! row means at a given time is decided in [`crate::keys`].

use super::sql::{map_err, Db};
use super::StoreResult;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    /// The private key sealed with the deployment secret.
    pub sealed_private_key: String,
    pub public_jwk: String,
    pub created_at: i64,
    pub activates_at: i64,
    pub retired_at: Option<i64>,
}

/// Every key, retired ones included.
pub async fn all(db: &Db) -> StoreResult<Vec<KeyRow>> {
    let rows = sqlx::query(
        "SELECT kid, alg, private_key, public_jwk, created_at, \
         COALESCE(activates_at, created_at) AS activates_at, retired_at \
         FROM signing_keys ORDER BY created_at, kid",
    )
    .fetch_all(db.write())
    .await
    .map_err(map_err)?;
    rows.iter()
        .map(|r| {
            Ok(KeyRow {
                kid: r.try_get("kid")?,
                alg: r.try_get("alg")?,
                sealed_private_key: r.try_get("private_key")?,
                public_jwk: r.try_get("public_jwk")?,
                created_at: r.try_get("created_at")?,
                activates_at: r.try_get("activates_at")?,
                retired_at: r.try_get("retired_at")?,
            })
        })
        .collect::<Result<_, sqlx::Error>>()
        .map_err(map_err)
}

pub async fn insert(db: &Db, key: &KeyRow) -> StoreResult<()> {
    let q = sqlx::query(
        "INSERT INTO signing_keys (kid, alg, private_key, public_jwk, created_at, activates_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&key.kid)
    .bind(&key.alg)
    .bind(&key.sealed_private_key)
    .bind(&key.public_jwk)
    .bind(key.created_at)
    .bind(key.activates_at);
    db.written(q.execute(db.write())).await.map_err(map_err)?;
    Ok(())
}

/// Unpublishes `kid`; false when there is no such key or it is retired.
pub async fn retire(db: &Db, kid: &str, now: i64) -> StoreResult<bool> {
    let q = sqlx::query(
        "UPDATE signing_keys SET retired_at = $1 WHERE kid = $2 AND retired_at IS NULL",
    )
    .bind(now)
    .bind(kid);
    let done = db.written(q.execute(db.write())).await.map_err(map_err)?;
    Ok(done.rows_affected() == 1)
}
