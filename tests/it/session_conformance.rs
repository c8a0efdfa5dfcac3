//! One suite, every session backend: memory, database (SQLite, and
//! PostgreSQL when configured), Redis when configured.
//!
//! Memory and database stores expire entries by the clock they are given:
//! here a manual clock the tests advance, so no test waits for a TTL. Redis
//! expires them by its own server-side TTL, so for Redis the time passes
//! for real.

use crate::support::*;
use iam_gateway::clock::{Clock, ManualClock};
use iam_gateway::domain::model::AuthMethod;
use iam_gateway::session::database::DbKv;
use iam_gateway::session::memory::MemoryKv;
use iam_gateway::session::redis::RedisKv;
use iam_gateway::session::{KvStore, SessionManager};
use iam_gateway::store;
use std::sync::Arc;
use std::time::Duration;

/// One session backend under test.
struct Kv {
    name: &'static str,
    kv: Arc<dyn KvStore>,
    /// The clock its entries expire by; None: Redis, which expires them by
    /// real time.
    clock: Option<ManualClock>,
}

impl Kv {
    fn manual(name: &'static str, make: impl FnOnce(Arc<dyn Clock>) -> Arc<dyn KvStore>) -> Kv {
        let clock = ManualClock::new();
        Kv {
            name,
            kv: make(Arc::new(clock.clone())),
            clock: Some(clock),
        }
    }

    /// Lets `d` pass for the store: its manual clock moves on, or (Redis)
    /// the test waits.
    async fn elapse(&self, d: Duration) {
        match &self.clock {
            Some(clock) => clock.advance(d),
            None => tokio::time::sleep(d).await,
        }
    }

    /// The clock for a session manager over this store: the store's own
    /// (as in the gateway), or a manual one beside Redis.
    fn manager_clock(&self) -> ManualClock {
        self.clock.clone().unwrap_or_default()
    }
}

async fn backends() -> Vec<Kv> {
    let mut out = vec![Kv::manual("memory", |c| Arc::new(MemoryKv::with_clock(c)))];
    let s = store::open(&fresh_database_url(Db::Sqlite, &temp_dir()).await)
        .await
        .unwrap();
    out.push(Kv::manual("sqlite", |c| {
        Arc::new(DbKv::with_clock(s.db().clone(), c))
    }));
    if needs(
        pg_url(),
        "IAMGW_TEST_DATABASE_URL is unset or empty: no PostgreSQL variant",
    )
    .is_some()
    {
        let s = store::open(&fresh_pg_url().await).await.unwrap();
        out.push(Kv::manual("postgres", |c| {
            Arc::new(DbKv::with_clock(s.db().clone(), c))
        }));
    }
    if let Some(url) = needs(
        redis_url(),
        "IAMGW_TEST_REDIS_URL is unset or empty: no Redis variant",
    ) {
        out.push(Kv {
            name: "redis",
            kv: Arc::new(RedisKv::new(&url).unwrap()),
            clock: None,
        });
    }
    out
}

fn key(name: &str) -> String {
    format!("test:{name}:{}", uuid::Uuid::new_v4())
}

#[tokio::test]
async fn kv_get_set_take_delete_and_set_nx() {
    for b in backends().await {
        let (name, kv) = (b.name, b.kv.clone());
        let k = key("a");
        assert_eq!(kv.get(&k).await.unwrap(), None, "{name}");
        kv.set(&k, "v1", Duration::from_secs(60)).await.unwrap();
        assert_eq!(kv.get(&k).await.unwrap().as_deref(), Some("v1"), "{name}");
        kv.set(&k, "v2", Duration::from_secs(60)).await.unwrap();
        assert_eq!(
            kv.get(&k).await.unwrap().as_deref(),
            Some("v2"),
            "{name}: overwrite"
        );
        assert!(
            !kv.set_nx(&k, "v3", Duration::from_secs(60)).await.unwrap(),
            "{name}: set_nx on a live key"
        );
        assert_eq!(kv.take(&k).await.unwrap().as_deref(), Some("v2"), "{name}");
        assert_eq!(
            kv.take(&k).await.unwrap(),
            None,
            "{name}: take is single use"
        );
        assert!(
            kv.set_nx(&k, "v4", Duration::from_secs(60)).await.unwrap(),
            "{name}: set_nx on a free key"
        );
        kv.delete(&k).await.unwrap();
        assert_eq!(kv.get(&k).await.unwrap(), None, "{name}");
        kv.ping().await.unwrap();
    }
}

#[tokio::test]
async fn kv_values_expire_after_their_ttl() {
    for b in backends().await {
        let (name, kv) = (b.name, b.kv.clone());
        let k = key("ttl");
        kv.set(&k, "v", Duration::from_millis(50)).await.unwrap();
        if let Some(clock) = &b.clock {
            // To the millisecond: alive just before its TTL ends.
            clock.advance(Duration::from_millis(49));
            assert_eq!(
                kv.get(&k).await.unwrap().as_deref(),
                Some("v"),
                "{name}: 1 ms before its TTL ends"
            );
            assert!(
                !kv.set_nx(&k, "early", Duration::from_secs(5))
                    .await
                    .unwrap(),
                "{name}: a live key is not free"
            );
        }
        b.elapse(Duration::from_millis(120)).await;
        assert_eq!(kv.get(&k).await.unwrap(), None, "{name}");
        assert!(
            kv.set_nx(&k, "again", Duration::from_secs(5))
                .await
                .unwrap(),
            "{name}: expired key is free"
        );
    }
}

#[tokio::test]
async fn kv_indexes_add_list_and_remove() {
    for b in backends().await {
        let (name, kv) = (b.name, b.kv.clone());
        let i = key("idx");
        // Each add answers the set's size: a member added twice counts once.
        let mut sizes = Vec::new();
        for member in ["m1", "m2", "m2"] {
            sizes.push(
                kv.index_add(&i, member, Duration::from_secs(60))
                    .await
                    .unwrap(),
            );
        }
        assert_eq!(sizes, [1, 2, 2], "{name}");
        let mut m = kv.index_members(&i).await.unwrap();
        m.sort();
        assert_eq!(m, vec!["m1", "m2"], "{name}");
        kv.index_remove(&i, &["m1".to_string()]).await.unwrap();
        assert_eq!(kv.index_members(&i).await.unwrap(), vec!["m2"], "{name}");
        // The size follows removals: m2 and a new m3 make two, m1 back three.
        for (member, size) in [("m3", 2), ("m1", 3), ("m3", 3)] {
            assert_eq!(
                kv.index_add(&i, member, Duration::from_secs(60))
                    .await
                    .unwrap(),
                size,
                "{name}: adding {member}"
            );
        }
        kv.index_remove(&i, &["m1".to_string(), "m3".to_string()])
            .await
            .unwrap();
        assert_eq!(kv.index_members(&i).await.unwrap(), vec!["m2"], "{name}");
        // An index no one added to within its TTL is gone.
        let short = key("idx-short");
        kv.index_add(&short, "m", Duration::from_millis(50))
            .await
            .unwrap();
        b.elapse(Duration::from_millis(120)).await;
        assert!(
            kv.index_members(&short).await.unwrap().is_empty(),
            "{name}: expired index"
        );
    }
}

#[tokio::test]
async fn kv_counters_count_up_and_restart_after_expiry() {
    for b in backends().await {
        let (name, kv) = (b.name, b.kv.clone());
        let k = key("ctr");
        for want in 1..=3 {
            assert_eq!(
                kv.incr(&k, Duration::from_millis(80)).await.unwrap(),
                want,
                "{name}"
            );
        }
        b.elapse(Duration::from_millis(150)).await;
        assert_eq!(
            kv.incr(&k, Duration::from_secs(60)).await.unwrap(),
            1,
            "{name}: restarted after expiry"
        );
        // Concurrent increments are not lost.
        let c = key("race");
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let kv = kv.clone();
            let c = c.clone();
            tasks.push(tokio::spawn(async move {
                kv.incr(&c, Duration::from_secs(60)).await.unwrap()
            }));
        }
        let mut seen: Vec<i64> = Vec::new();
        for t in tasks {
            seen.push(t.await.unwrap());
        }
        seen.sort();
        assert_eq!(seen, (1..=10).collect::<Vec<_>>(), "{name}");
    }
}

fn manager(kv: Arc<dyn KvStore>, clock: &ManualClock) -> SessionManager {
    SessionManager::new(
        kv,
        Arc::new(clock.clone()),
        Duration::from_secs(3600),
        Duration::from_secs(3 * 3600),
        false,
    )
}

#[tokio::test]
async fn manager_hashes_values_and_applies_idle_and_absolute_timeouts() {
    for b in backends().await {
        let (name, kv) = (b.name, b.kv.clone());
        let clock = b.manager_clock();
        let m = manager(kv.clone(), &clock);
        let uid = uuid::Uuid::new_v4().to_string();
        let (value, s) = m
            .login(&uid, AuthMethod::Password, false, None)
            .await
            .unwrap();
        assert!(value.len() >= 43, "{name}: 256-bit value");
        assert_ne!(s.key, value, "{name}");
        assert!(
            kv.get(&format!("s:{value}")).await.unwrap().is_none(),
            "{name}: raw value is not a key"
        );
        assert_ne!(s.sid, value);
        // Idle: activity every 50 minutes keeps it alive...
        for _ in 0..3 {
            clock.advance(Duration::from_secs(50 * 60));
            assert!(
                m.lookup(&value).await.unwrap().is_some(),
                "{name}: within idle window"
            );
        }
        // ...until the absolute timeout (3 h) ends it regardless.
        clock.advance(Duration::from_secs(40 * 60));
        assert!(
            m.lookup(&value).await.unwrap().is_none(),
            "{name}: absolute timeout"
        );
        // Idle: 61 minutes without activity ends a fresh session.
        let (v2, _) = m
            .login(&uid, AuthMethod::Password, false, None)
            .await
            .unwrap();
        clock.advance(Duration::from_secs(61 * 60));
        assert!(
            m.lookup(&v2).await.unwrap().is_none(),
            "{name}: idle timeout"
        );
    }
}

#[tokio::test]
async fn manager_revokes_one_or_all_sessions_of_a_user() {
    for b in backends().await {
        let (name, kv) = (b.name, b.kv.clone());
        let clock = b.manager_clock();
        let m = manager(kv, &clock);
        let uid = uuid::Uuid::new_v4().to_string();
        let other = uuid::Uuid::new_v4().to_string();
        let (a, _) = m
            .login(&uid, AuthMethod::Password, false, None)
            .await
            .unwrap();
        let (b, sb) = m.login(&uid, AuthMethod::Twilio, true, None).await.unwrap();
        let (c, _) = m
            .login(&uid, AuthMethod::Sso("c1".into()), false, None)
            .await
            .unwrap();
        let (o, _) = m
            .login(&other, AuthMethod::Password, false, None)
            .await
            .unwrap();
        assert_eq!(m.sessions_of(&uid).await.unwrap().len(), 3, "{name}");
        m.revoke(&a).await.unwrap();
        assert!(m.lookup(&a).await.unwrap().is_none(), "{name}");
        assert_eq!(
            m.revoke_all(&uid, Some(&sb.key)).await.unwrap(),
            1,
            "{name}: all but the kept one"
        );
        assert!(m.lookup(&c).await.unwrap().is_none(), "{name}");
        let kept = m.lookup(&b).await.unwrap().unwrap();
        assert_eq!(kept.method, AuthMethod::Twilio, "{name}");
        assert!(kept.mfa);
        m.revoke_all(&uid, None).await.unwrap();
        assert!(m.lookup(&b).await.unwrap().is_none(), "{name}");
        assert!(
            m.lookup(&o).await.unwrap().is_some(),
            "{name}: other users untouched"
        );
    }
}

/// A sign-in does not read every earlier session of the person: the index
/// of their sessions is pruned of ended ones only when it doubles (at 16,
/// 32, ...), so a person with thousands of sessions signs in as fast as one
/// with none, and the index still does not keep ended sessions for ever.
#[tokio::test]
async fn manager_prunes_a_persons_ended_sessions_when_their_index_doubles() {
    for b in backends().await {
        let (name, kv) = (b.name, b.kv.clone());
        let clock = b.manager_clock();
        let m = manager(kv.clone(), &clock);
        let uid = uuid::Uuid::new_v4().to_string();
        let index = format!("u:{uid}");
        // 15 sessions that end without their index entries (as an idle
        // timeout or the store's own expiry ends them).
        for _ in 0..15 {
            let (_, s) = m
                .login(&uid, AuthMethod::Password, false, None)
                .await
                .unwrap();
            kv.delete(&format!("s:{}", s.key)).await.unwrap();
        }
        assert_eq!(
            kv.index_members(&index).await.unwrap().len(),
            15,
            "{name}: below 16 entries nothing is pruned"
        );
        // The 16th sign-in doubles the index: the ended sessions go, the
        // live one stays.
        let (cookie, live) = m
            .login(&uid, AuthMethod::Password, false, None)
            .await
            .unwrap();
        assert_eq!(
            kv.index_members(&index).await.unwrap(),
            vec![live.key.clone()],
            "{name}: pruned at 16"
        );
        // Between doublings the sign-ins only add: 14 more ended ones and
        // the live one make 15, still all there.
        for _ in 0..14 {
            let (_, s) = m
                .login(&uid, AuthMethod::Password, false, None)
                .await
                .unwrap();
            kv.delete(&format!("s:{}", s.key)).await.unwrap();
        }
        assert_eq!(kv.index_members(&index).await.unwrap().len(), 15, "{name}");
        assert!(m.lookup(&cookie).await.unwrap().is_some(), "{name}");
        assert_eq!(m.sessions_of(&uid).await.unwrap().len(), 1, "{name}");
        // Ending them all still finds every live one.
        assert_eq!(m.revoke_all(&uid, None).await.unwrap(), 15, "{name}");
        assert!(m.lookup(&cookie).await.unwrap().is_none(), "{name}");
    }
}

#[tokio::test]
async fn kv_exists_many_answers_in_order_and_ignores_expired_keys() {
    for b in backends().await {
        let (name, kv) = (b.name, b.kv.clone());
        let live = key("live");
        let gone = key("gone");
        let short = key("short");
        kv.set(&live, "v", Duration::from_secs(60)).await.unwrap();
        kv.set(&short, "v", Duration::from_millis(30))
            .await
            .unwrap();
        b.elapse(Duration::from_millis(80)).await;
        let asked = vec![gone.clone(), live.clone(), short.clone(), live.clone()];
        assert_eq!(
            kv.exists_many(&asked).await.unwrap(),
            vec![false, true, false, true],
            "{name}"
        );
        assert_eq!(kv.exists_many(&[]).await.unwrap(), Vec::<bool>::new());
        // More keys than one SQL statement carries.
        let many: Vec<String> = (0..1200).map(|i| format!("{live}-{i}")).collect();
        kv.set(&many[1100], "v", Duration::from_secs(60))
            .await
            .unwrap();
        let found = kv.exists_many(&many).await.unwrap();
        assert_eq!(found.len(), 1200, "{name}");
        let set: Vec<usize> = (0..found.len()).filter(|&i| found[i]).collect();
        assert_eq!(set, vec![1100], "{name}: only the one that was set");
    }
}

#[tokio::test]
async fn manager_existence_checks_are_shared_and_see_a_revocation_at_once() {
    for b in backends().await {
        let (name, kv) = (b.name, b.kv.clone());
        let clock = b.manager_clock();
        let m = manager(kv, &clock);
        let (cookie, s) = m
            .login("u-exists", AuthMethod::Password, false, None)
            .await
            .unwrap();
        let (_, before) = m.existence_checks();
        let checks: Vec<_> = (0..64)
            .map(|_| {
                let (m, k) = (m.clone(), s.key.clone());
                tokio::spawn(async move { m.exists(&k).await })
            })
            .collect();
        for c in checks {
            assert!(c.await.unwrap().unwrap(), "{name}");
        }
        let rounds = m.existence_checks().1 - before;
        assert!(
            rounds < 64,
            "{name}: 64 concurrent checks made {rounds} round trips"
        );
        m.revoke(&cookie).await.unwrap();
        assert!(!m.exists(&s.key).await.unwrap(), "{name}: revoked");
    }
}

#[tokio::test]
async fn manager_login_replaces_a_presented_session() {
    for b in backends().await {
        let (name, kv) = (b.name, b.kv.clone());
        let clock = b.manager_clock();
        let m = manager(kv, &clock);
        let (planted, _) = m
            .login("attacker", AuthMethod::Password, false, None)
            .await
            .unwrap();
        let (fresh, s) = m
            .login("victim", AuthMethod::Password, false, Some(&planted))
            .await
            .unwrap();
        assert_ne!(fresh, planted, "{name}");
        assert!(
            m.lookup(&planted).await.unwrap().is_none(),
            "{name}: planted session ended"
        );
        assert_eq!(m.lookup(&fresh).await.unwrap().unwrap().uid, s.uid);
    }
}

#[tokio::test]
async fn unreachable_redis_is_an_error_not_a_hang_or_a_miss() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let kv = RedisKv::new(&format!("redis://127.0.0.1:{port}")).unwrap();
    let started = std::time::Instant::now();
    assert!(kv.get("x").await.is_err());
    assert!(kv.ping().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// On SQLite an index's size is read from a table that triggers keep (one
/// look-up, however many sessions a person has), and each start recounts
/// that table from the entries themselves: a count gone wrong (entries
/// written without the triggers, say by a copy made row by row) is right
/// again after a restart.
#[tokio::test]
async fn sqlite_index_sizes_are_read_from_their_count_and_recounted_at_start() {
    let url = fresh_database_url(Db::Sqlite, &temp_dir()).await;
    let s = store::open(&url).await.unwrap();
    let kv = DbKv::new(s.db().clone());
    let ttl = Duration::from_secs(60);
    for (member, size) in [("a", 1), ("b", 2), ("c", 3)] {
        assert_eq!(kv.index_add("u:x", member, ttl).await.unwrap(), size);
    }
    sqlx::query("UPDATE kv_index_size SET n = 40 WHERE ikey = 'u:x'")
        .execute(s.db().write())
        .await
        .unwrap();
    assert_eq!(
        kv.index_add("u:x", "d", ttl).await.unwrap(),
        41,
        "the size is the kept count, not a count of the entries"
    );
    drop(kv);
    s.db().write().close().await;
    s.db().read().close().await;
    drop(s);
    let s = store::open(&url).await.unwrap();
    let kv = DbKv::new(s.db().clone());
    assert_eq!(kv.index_add("u:x", "e", ttl).await.unwrap(), 5, "recounted");
    kv.index_remove("u:x", &["a".to_string(), "b".to_string()])
        .await
        .unwrap();
    assert_eq!(kv.index_add("u:x", "f", ttl).await.unwrap(), 4);
}
