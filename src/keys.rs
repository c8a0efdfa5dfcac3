//! Signing-key rotation for what the gateway signs (`X-Auth-Assertion`, and
//! the ID tokens of SPEC section 13): which key signs, which keys the JWKS
//! publishes, and the operator's `keys rotate` / `keys retire`.
//!
//! A key is published from the moment it is created. It signs from its
//! `activates_at`, which `keys rotate` sets `keys.publish_ahead` in the
//! future, so every verifier that caches the JWKS (for at most its
//! `Cache-Control: max-age`) knows the key before it sees a token signed
//! with it. Of the keys whose time has come, the newest signs; the one it
//! replaced stays published for `keys.keep_published` after that, so every
//! token it signed verifies until it expires. `keys retire` unpublishes a key
//! at once (a key that leaked), and `keys rotate --now` makes a new key sign
//! at once.
//!
//! The state of every key follows from the stored times and the clock, so
//! instances that read the same rows agree; each re-reads the rows every
//! `keys.refresh` and at once when the invalidation channel says `keys`.

use crate::domain::DomainError;
use crate::jwt::EsKey;
use crate::store::sql::Db;
use crate::store::sql_keys::{self, KeyRow};

/// The sealing purpose of the gateway's signing keys.
pub const SEAL_PURPOSE: &str = "signing-key";

/// How long a JWKS answer may be cached (its `Cache-Control: max-age`).
pub const JWKS_MAX_AGE_SECS: i64 = 300;

/// The least `keys.keep_published`: the assertion's 60 s life and room for
/// clocks that disagree.
pub const MIN_KEEP_PUBLISHED_SECS: i64 = 120;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Seconds a new key is published before it signs.
    pub publish_ahead: i64,
    /// Seconds a replaced key stays published after it stopped signing.
    pub keep_published: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Published; signs from `activates_at`.
    Next,
    /// Published and signing.
    Signing,
    /// Published until `until`, no longer signing.
    Previous { until: i64 },
    /// Replaced longer ago than `keep_published` (since `until`).
    Expired { until: i64 },
    /// Unpublished by an operator at this time.
    Retired { at: i64 },
}

impl State {
    pub fn published(&self) -> bool {
        matches!(self, State::Next | State::Signing | State::Previous { .. })
    }

    pub fn name(&self) -> &'static str {
        match self {
            State::Next => "next",
            State::Signing => "signing",
            State::Previous { .. } => "previous",
            State::Expired { .. } => "expired",
            State::Retired { .. } => "retired",
        }
    }
}

/// The order in which keys take over: by `activates_at`, then creation, then
/// kid (so two keys created at the same moment are ordered alike everywhere).
fn order(a: &KeyRow, b: &KeyRow) -> std::cmp::Ordering {
    (a.activates_at, a.created_at, &a.kid).cmp(&(b.activates_at, b.created_at, &b.kid))
}

/// The state of each row at `now`, in the rows' order.
pub fn schedule(rows: &[KeyRow], now: i64, keep_published: i64) -> Vec<State> {
    let mut live: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].retired_at.is_none())
        .collect();
    live.sort_by(|&a, &b| order(&rows[a], &rows[b]));
    // The newest key whose time has come signs; should none have come (a
    // clock far behind), the first to come.
    let signer = live
        .iter()
        .rposition(|&i| rows[i].activates_at <= now)
        .unwrap_or(0);
    let mut states: Vec<State> = rows
        .iter()
        .map(|r| State::Retired {
            at: r.retired_at.unwrap_or_default(),
        })
        .collect();
    for (pos, &i) in live.iter().enumerate() {
        states[i] = if pos == signer {
            State::Signing
        } else if pos > signer {
            State::Next
        } else {
            // Replaced when its successor began to sign.
            let replaced = live
                .get(pos + 1)
                .map(|&n| rows[n].activates_at)
                .unwrap_or(now);
            let until = replaced.saturating_add(keep_published);
            if now < until {
                State::Previous { until }
            } else {
                State::Expired { until }
            }
        };
    }
    states
}

/// A new key row (sealed), signing from `activates_at`.
pub fn new_row(secret: &[u8], now: i64, activates_at: i64) -> Result<(EsKey, KeyRow), DomainError> {
    let key = EsKey::generate()?;
    let row = KeyRow {
        kid: key.kid.clone(),
        alg: "ES256".into(),
        sealed_private_key: key.seal(secret, SEAL_PURPOSE)?,
        public_jwk: key.public_jwk().to_string(),
        created_at: now,
        activates_at,
        retired_at: None,
    };
    Ok((key, row))
}

/// One key as `keys list` shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub row: KeyRow,
    pub state: State,
}

/// Every key and its state at `now`, in the order they signed.
pub async fn list(db: &Db, now: i64, policy: Policy) -> Result<Vec<Listed>, DomainError> {
    let rows = sql_keys::all(db).await?;
    let states = schedule(&rows, now, policy.keep_published);
    let mut out: Vec<Listed> = rows
        .into_iter()
        .zip(states)
        .map(|(row, state)| Listed { row, state })
        .collect();
    out.sort_by(|a, b| order(&a.row, &b.row));
    Ok(out)
}

/// Adds a key that signs `publish_ahead` from now (or at once with
/// `immediately`, which also unpublishes keys that were waiting to sign).
/// Refused while another key is waiting, unless `immediately`.
pub async fn rotate(
    db: &Db,
    secret: &[u8],
    now: i64,
    policy: Policy,
    immediately: bool,
) -> Result<KeyRow, DomainError> {
    let listed = list(db, now, policy).await?;
    let waiting: Vec<&Listed> = listed.iter().filter(|l| l.state == State::Next).collect();
    if let Some(w) = waiting.first().filter(|_| !immediately) {
        return Err(DomainError::Conflict(format!(
            "key {} is already waiting to sign from {}; rotate again after that, or use --now",
            w.row.kid,
            crate::clock::rfc3339(w.row.activates_at)
        )));
    }
    // Never before the key that signs now (a clock behind the instances'),
    // or the new key would never take over.
    let floor = listed
        .iter()
        .filter(|l| l.state == State::Signing)
        .map(|l| l.row.activates_at.saturating_add(1))
        .max()
        .unwrap_or(now);
    let activates_at = if immediately {
        now
    } else {
        now.saturating_add(policy.publish_ahead)
    }
    .max(floor);
    let (_, row) = new_row(secret, now, activates_at)?;
    sql_keys::insert(db, &row).await?;
    if immediately {
        // Never used to sign: nothing can need them.
        for w in waiting {
            sql_keys::retire(db, &w.row.kid, now).await?;
        }
    }
    Ok(row)
}

/// Unpublishes `kid` at once. The key that signs cannot be retired (rotate
/// with `--now` first).
pub async fn retire(db: &Db, kid: &str, now: i64, policy: Policy) -> Result<(), DomainError> {
    let listed = list(db, now, policy).await?;
    let Some(key) = listed.iter().find(|l| l.row.kid == kid) else {
        return Err(DomainError::NotFound);
    };
    match key.state {
        State::Signing => Err(DomainError::Invalid(format!(
            "key {kid} signs now; run `keys rotate --now` first, then retire it"
        ))),
        State::Retired { .. } => Err(DomainError::Invalid(format!(
            "key {kid} is already retired"
        ))),
        _ => {
            sql_keys::retire(db, kid, now).await?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kid: &str, created: i64, activates: i64, retired: Option<i64>) -> KeyRow {
        KeyRow {
            kid: kid.into(),
            alg: "ES256".into(),
            sealed_private_key: String::new(),
            public_jwk: String::new(),
            created_at: created,
            activates_at: activates,
            retired_at: retired,
        }
    }

    #[test]
    fn a_rotation_publishes_first_signs_later_and_keeps_the_old_key_for_a_while() {
        let keep = 3600;
        let rows = vec![row("a", 0, 0, None), row("b", 1000, 1600, None)];
        assert_eq!(
            schedule(&rows, 1000, keep),
            vec![State::Signing, State::Next]
        );
        assert_eq!(
            schedule(&rows, 1599, keep),
            vec![State::Signing, State::Next]
        );
        assert_eq!(
            schedule(&rows, 1600, keep),
            vec![State::Previous { until: 5200 }, State::Signing]
        );
        assert_eq!(
            schedule(&rows, 5200, keep),
            vec![State::Expired { until: 5200 }, State::Signing]
        );
    }

    #[test]
    fn retired_keys_are_unpublished_and_ties_are_ordered_by_kid() {
        let rows = vec![
            row("b", 0, 0, None),
            row("a", 0, 0, None),
            row("c", 0, 0, Some(5)),
        ];
        let s = schedule(&rows, 10, 60);
        assert_eq!(s[0], State::Signing);
        assert_eq!(s[1], State::Previous { until: 60 });
        assert_eq!(s[2], State::Retired { at: 5 });
        assert!(!s[2].published());
    }

    #[test]
    fn with_every_key_in_the_future_the_first_to_come_signs() {
        let rows = vec![row("a", 0, 100, None), row("b", 0, 200, None)];
        assert_eq!(schedule(&rows, 50, 60), vec![State::Signing, State::Next]);
    }
}
