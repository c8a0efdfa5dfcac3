//! Group commit for SQLite: one fsync for every commit that is waiting.
//!
//! With `synchronous = FULL` each commit fsyncs the write-ahead log while
//! it holds SQLite's one write lock, so a busy gateway spends most of its
//! writer's time waiting for the disk, one commit after another (issue 16:
//! a SAML sign-in, four commits, was bound at about 100 a second by
//! fsyncs alone). Here the writer commits with `synchronous = NORMAL`,
//! which in WAL mode writes the log without syncing it, and the caller is
//! answered only once a sync of the log that started after its commit has
//! finished: [`GroupCommit::durable`]. A thread of its own syncs, one round
//! at a time, and each round covers every commit made before it started,
//! however many. So an acknowledged commit is on disk exactly as with
//! `FULL`, and while one round runs the next commits queue for the next
//! round instead of for the disk.
//!
//! Why this is safe: a commit has written its frames to the log (the
//! page cache) before it returns, and `fdatasync` of the log's file
//! flushes every page written to it before the call, through whatever
//! descriptor. Checkpoints sync the log before copying it into the
//! database and the database after (what `NORMAL` keeps of `FULL`), so a
//! commit a checkpoint moved out of the log is on disk as well, and the
//! log restarting or being removed (the last connection closing) cannot
//! lose an acknowledged commit. The log is opened anew each round for the
//! same reason, and its directory is synced whenever the log is a new file
//! (SQLite does this itself for a log it creates, but only at its own first
//! sync, which `NORMAL` postpones).

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use tokio::sync::watch;

/// How far the log is known to be on disk.
#[derive(Debug, Clone, Copy, Default)]
struct Synced {
    /// Every commit with a ticket up to this one is on disk.
    upto: u64,
    /// The highest ticket a failed sync covered: those commits may be lost.
    failed_through: u64,
    /// Rounds run so far.
    rounds: u64,
}

#[derive(Default)]
struct Queue {
    /// Tickets handed out: one per commit waiting or served.
    issued: u64,
    stop: bool,
}

struct Shared {
    wal: PathBuf,
    queue: Mutex<Queue>,
    wake: Condvar,
    synced: watch::Sender<Synced>,
}

tokio::task_local! {
    /// Inside [`one_wait`]: the group commits (one per database) this
    /// task's writes must wait for before its answer goes out.
    static DEFERRED: std::cell::RefCell<Vec<Arc<GroupCommit>>>;
}

/// Runs `work` (one request) with the durability waits of its writes
/// deferred to its end: each write made in this task is noted instead of
/// waited for ([`defer`]), and once `work` is done one sync that started
/// after all of them is waited for. So a request that writes four times
/// (a sign-in: the session, its index entry, the last login, the audit
/// event) waits for one sync round instead of four in a row, and what it
/// answers is still on disk before the answer leaves. Errs, with `work`'s
/// answer dropped, when that sync failed. Writes made in tasks `work`
/// spawns wait for themselves, as outside.
pub async fn one_wait<F: std::future::Future>(work: F) -> std::io::Result<F::Output> {
    let (out, pending) = DEFERRED
        .scope(std::cell::RefCell::new(Vec::new()), async {
            let out = work.await;
            (out, DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut())))
        })
        .await;
    for group in pending {
        group.durable().await?;
    }
    Ok(out)
}

/// Inside [`one_wait`], notes that this task's answer must wait for
/// `group` and answers true; elsewhere false (the caller waits itself).
pub(crate) fn defer(group: &Arc<GroupCommit>) -> bool {
    DEFERRED
        .try_with(|d| {
            let mut d = d.borrow_mut();
            if !d.iter().any(|g| Arc::ptr_eq(g, group)) {
                d.push(group.clone());
            }
        })
        .is_ok()
}

/// The handle the database's connections share; the syncing thread stops
/// when the last one goes.
pub struct GroupCommit {
    shared: Arc<Shared>,
}

impl GroupCommit {
    /// Starts the syncing thread for the database file `db`, whose log is
    /// `<db>-wal`.
    pub fn start(db: &Path) -> std::io::Result<Self> {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let shared = Arc::new(Shared {
            wal: PathBuf::from(wal),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            synced: watch::Sender::new(Synced::default()),
        });
        let worker = shared.clone();
        std::thread::Builder::new()
            .name("sqlite-sync".into())
            .spawn(move || run(&worker))?;
        Ok(Self { shared })
    }

    /// Returns once every commit this process made before the call is on
    /// disk; errs when the sync that should have covered it failed.
    pub async fn durable(&self) -> std::io::Result<()> {
        let ticket = {
            let mut q = self
                .shared
                .queue
                .lock()
                .map_err(|_| std::io::Error::other("group commit queue poisoned"))?;
            q.issued += 1;
            q.issued
        };
        self.shared.wake.notify_one();
        let mut rx = self.shared.synced.subscribe();
        let state = *rx
            .wait_for(|s| s.upto >= ticket)
            .await
            .map_err(|_| std::io::Error::other("the SQLite sync thread has stopped"))?;
        if ticket <= state.failed_through {
            return Err(std::io::Error::other(
                "syncing the SQLite log failed: the change may not be on disk",
            ));
        }
        Ok(())
    }

    /// Sync rounds so far (each covers one or more commits).
    pub fn rounds(&self) -> u64 {
        self.shared.synced.borrow().rounds
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        if let Ok(mut q) = self.shared.queue.lock() {
            q.stop = true;
        }
        self.shared.wake.notify_one();
    }
}

fn run(shared: &Shared) {
    let mut last_log: Option<(u64, u64)> = None;
    let mut done = 0u64;
    loop {
        let target = {
            let Ok(mut q) = shared.queue.lock() else {
                return;
            };
            while q.issued == done && !q.stop {
                q = match shared.wake.wait(q) {
                    Ok(q) => q,
                    Err(_) => return,
                };
            }
            if q.issued == done {
                return;
            }
            q.issued
        };
        let ok = match sync_log(&shared.wal, &mut last_log) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(log = %shared.wal.display(), error = %e, "syncing the SQLite log failed");
                false
            }
        };
        done = target;
        shared.synced.send_modify(|s| {
            s.upto = target;
            s.rounds += 1;
            if !ok {
                s.failed_through = target;
            }
        });
    }
}

/// Syncs the log's data, and its directory when the log is a file this
/// thread has not synced before. No log: the last connection closed after
/// checkpointing it into the database, which it synced.
fn sync_log(wal: &Path, last: &mut Option<(u64, u64)>) -> std::io::Result<()> {
    let file = match std::fs::File::open(wal) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    file.sync_data()?;
    let meta = file.metadata()?;
    let id = (meta.dev(), meta.ino());
    if *last != Some(id) {
        if let Some(dir) = wal.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::File::open(dir)?.sync_all()?;
        }
        *last = Some(id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_are_answered_after_a_round_that_started_after_them() {
        let dir = std::env::temp_dir().join(format!("gc-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let db = dir.join("x.db");
        std::fs::write(dir.join("x.db-wal"), b"frames").unwrap();
        let gc = Arc::new(GroupCommit::start(&db).unwrap());
        gc.durable().await.unwrap();
        assert_eq!(gc.rounds(), 1);
        // Many at once share rounds; each is answered.
        let waits: Vec<_> = (0..32)
            .map(|_| {
                let gc = gc.clone();
                tokio::spawn(async move { gc.durable().await })
            })
            .collect();
        for w in waits {
            w.await.unwrap().unwrap();
        }
        assert!(gc.rounds() >= 2 && gc.rounds() <= 33, "{}", gc.rounds());
        // No log (checkpointed and removed): nothing to sync, still answered.
        std::fs::remove_file(dir.join("x.db-wal")).unwrap();
        gc.durable().await.unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_failed_sync_fails_the_commits_it_covered() {
        // A log that cannot be opened: its "directory" is a plain file.
        let file = std::env::temp_dir().join(format!("gc-{}", uuid::Uuid::new_v4()));
        std::fs::write(&file, b"").unwrap();
        let gc = GroupCommit::start(&file.join("x.db")).unwrap();
        let err = gc.durable().await.unwrap_err();
        assert!(err.to_string().contains("may not be on disk"), "{err}");
        std::fs::remove_file(&file).unwrap();
    }

    #[tokio::test]
    async fn a_request_waits_once_at_its_end_for_every_write_it_made() {
        let dir = std::env::temp_dir().join(format!("gc-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("x.db-wal"), b"frames").unwrap();
        let gc = Arc::new(GroupCommit::start(&dir.join("x.db")).unwrap());
        assert!(!defer(&gc), "outside a request the caller waits itself");
        let rounds_inside = one_wait(async {
            for _ in 0..4 {
                assert!(defer(&gc), "inside, the write is noted");
            }
            gc.rounds()
        })
        .await
        .unwrap();
        assert_eq!(rounds_inside, 0, "nothing waited while the request ran");
        assert_eq!(gc.rounds(), 1, "one round for all four, before the answer");
        // A request that wrote nothing waits for nothing.
        one_wait(async {}).await.unwrap();
        assert_eq!(gc.rounds(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_request_whose_sync_failed_loses_its_answer() {
        let file = std::env::temp_dir().join(format!("gc-{}", uuid::Uuid::new_v4()));
        std::fs::write(&file, b"").unwrap();
        let gc = Arc::new(GroupCommit::start(&file.join("x.db")).unwrap());
        let err = one_wait(async { defer(&gc) }).await.unwrap_err();
        assert!(err.to_string().contains("may not be on disk"), "{err}");
        std::fs::remove_file(&file).unwrap();
    }
}
