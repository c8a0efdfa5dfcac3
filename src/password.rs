//! argon2id password hashing on a pool of its own threads, so a storm of
//! sign-ins cannot starve the async workers (and forward-auth).
//!
//! By default ([`Priority::Idle`]) the pool has a thread per core and each
//! runs under Linux's `SCHED_IDLE` policy: argon2 gets every core the
//! request path leaves idle, and the kernel switches to a forward-auth or
//! page request the moment one is ready instead of letting it wait out a
//! hash's time slice (issue 16). Where `SCHED_IDLE` is refused the threads
//! fall back to nice 19. [`Priority::Normal`] is the earlier way: `cores - 1`
//! threads at normal priority, one core always left to requests.

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// OWASP's argon2id minimum: 19 MiB, 2 passes, 1 lane.
pub const M_COST_KIB: u32 = 19_456;
pub const T_COST: u32 = 2;
pub const P_COST: u32 = 1;

/// Longest password accepted, in bytes (longer is refused before hashing).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest password accepted for new passwords, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Lowest zxcvbn score (0–4) accepted for new passwords.
pub const MIN_STRENGTH: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
    #[error("password worker unavailable")]
    Pool,
}

/// How the hashing threads share the CPU (`password.hash_priority`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A thread per core, scheduled only when no other thread wants the CPU.
    Idle,
    /// `cores - 1` threads at normal priority.
    Normal,
}

type Job = Box<dyn FnOnce() + Send>;

#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    jobs: std::sync::mpsc::Sender<Job>,
    dummy_hash: Arc<String>,
}

/// Lowers the calling thread's scheduling priority: `SCHED_IDLE`, or nice
/// 19 where that is refused. Returns what it got.
fn lower_this_thread() -> &'static str {
    #[cfg(target_os = "linux")]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain system calls on the calling thread (0 names it),
        // with a valid parameter struct.
        if unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &param) } == 0 {
            return "SCHED_IDLE";
        }
        // On Linux, PRIO_PROCESS with 0 is the calling thread.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) } == 0 {
            return "nice 19";
        }
    }
    "normal"
}

/// Starts `threads` hashing threads that take jobs from one queue; returns
/// the queue and how many threads did start.
fn start_pool(threads: usize, priority: Priority) -> (std::sync::mpsc::Sender<Job>, usize) {
    let mut started = 0;
    let (tx, rx) = std::sync::mpsc::channel::<Job>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    for i in 0..threads {
        let rx = rx.clone();
        let spawned = std::thread::Builder::new()
            .name(match priority {
                Priority::Idle => format!("argon2-idle-{i}"),
                Priority::Normal => format!("argon2-{i}"),
            })
            .spawn(move || {
                if priority == Priority::Idle {
                    let got = lower_this_thread();
                    tracing::debug!(thread = i, priority = got, "password hashing thread");
                }
                loop {
                    // The lock is held only while waiting for a job.
                    let job = match rx.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    match job {
                        // A job that panics loses only its own answer (the
                        // caller gets PasswordError::Pool); the thread
                        // stays, so the pool never shrinks.
                        Ok(job) => {
                            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err()
                            {
                                tracing::error!("a password hashing job panicked");
                            }
                        }
                        Err(_) => return,
                    }
                }
            });
        match spawned {
            Ok(_) => started += 1,
            Err(e) => tracing::error!(error = %e, "cannot start a password hashing thread"),
        }
    }
    (tx, started)
}

fn argon() -> Result<Argon2<'static>, PasswordError> {
    let params = Params::new(M_COST_KIB, T_COST, P_COST, None)
        .map_err(|e| PasswordError::Hash(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    argon()?
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

fn verify_blocking(hash: &str, password: &str) -> bool {
    match argon() {
        Ok(a) => a.verify_password(password.as_bytes(), hash).is_ok(),
        Err(_) => false,
    }
}

/// Checks a new password against the policy; the reason is shown to the person.
pub fn check_policy(password: &str, email: &str) -> Result<(), String> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(format!(
            "Passwords can be at most {MAX_PASSWORD_BYTES} bytes long."
        ));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!("Use at least {MIN_PASSWORD_CHARS} characters."));
    }
    if !email.is_empty() && password.eq_ignore_ascii_case(email.trim()) {
        return Err("Your password must not be your email address.".into());
    }
    let local = email.split('@').next().unwrap_or_default();
    let estimate = zxcvbn::zxcvbn(
        password,
        &[email, local, "iam", "gateway", "segment", "twilio"],
    );
    if (estimate.score() as u8) < MIN_STRENGTH {
        return Err(
            "This password is too easy to guess. Try a longer phrase of unrelated words.".into(),
        );
    }
    Ok(())
}

impl Hasher {
    /// The pool `priority` asks for: a thread per core at idle priority, or
    /// `cores - 1` at normal priority.
    pub async fn with_priority(priority: Priority) -> Result<Self, PasswordError> {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let threads = match priority {
            Priority::Idle => cores,
            Priority::Normal => cores.saturating_sub(1).max(1),
        };
        Self::start(threads, priority).await
    }

    /// `workers` threads at normal priority (at least one).
    pub async fn new(workers: usize) -> Result<Self, PasswordError> {
        Self::start(workers.max(1), Priority::Normal).await
    }

    async fn start(threads: usize, priority: Priority) -> Result<Self, PasswordError> {
        let (jobs, started) = start_pool(threads, priority);
        if started == 0 {
            return Err(PasswordError::Pool);
        }
        let mut hasher = Self {
            permits: Arc::new(Semaphore::new(started)),
            jobs,
            dummy_hash: Arc::new(String::new()),
        };
        let seed = crate::crypto::random_token("").unwrap_or_default();
        hasher.dummy_hash = Arc::new(hasher.hash(&seed).await?);
        Ok(hasher)
    }

    /// Runs `work` on the pool once a thread is free (requests wait their
    /// turn in order). The permit travels with the job and is released when
    /// the job ends, so at most one job per thread is ever queued or
    /// running; a job whose caller has gone (a dropped request) is skipped.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, PasswordError> {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PasswordError::Pool)?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _permit = permit;
            if !tx.is_closed() {
                let _ = tx.send(work());
            }
        });
        self.jobs.send(job).map_err(|_| PasswordError::Pool)?;
        rx.await.map_err(|_| PasswordError::Pool)
    }

    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let pw = password.to_string();
        self.run(move || hash_blocking(&pw)).await?
    }

    /// Verifies `password` against `hash`; with no hash (unknown account or
    /// no password set) it verifies against a dummy hash so the answer takes
    /// as long and says the same.
    pub async fn verify(&self, hash: Option<&str>, password: &str) -> bool {
        let (target, real) = match hash {
            Some(h) => (h.to_string(), true),
            None => (self.dummy_hash.as_ref().clone(), false),
        };
        let pw = password.to_string();
        let ok = self
            .run(move || verify_blocking(&target, &pw))
            .await
            .unwrap_or(false);
        ok && real
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_the_required_cost_and_verify() {
        let h = Hasher::new(1).await.unwrap();
        let hash = h.hash("correct horse battery staple").await.unwrap();
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(h.verify(Some(&hash), "correct horse battery staple").await);
        assert!(
            !h.verify(Some(&hash), "Correct horse battery staple").await,
            "no case folding"
        );
        assert!(
            !h.verify(Some(&hash), "correct horse battery stapl").await,
            "no truncation"
        );
        assert!(
            !h.verify(None, "anything").await,
            "dummy hash never signs in"
        );
    }

    /// The scheduling policy (0 normal, 5 idle) and nice value of this
    /// process's threads called `name*`, from /proc.
    #[cfg(target_os = "linux")]
    fn threads_named(name: &str) -> Vec<(i64, i64)> {
        let mut out = Vec::new();
        for t in std::fs::read_dir("/proc/self/task").unwrap() {
            let dir = t.unwrap().path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            if !comm.starts_with(name) {
                continue;
            }
            let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
            // Fields after the ")" that ends the name: state is field 3;
            // nice is 19, policy is 41.
            let rest: Vec<&str> = stat
                .rsplit_once(')')
                .unwrap()
                .1
                .split_whitespace()
                .collect();
            out.push((rest[41 - 3].parse().unwrap(), rest[19 - 3].parse().unwrap()));
        }
        out
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_idle_pool_hashes_on_a_thread_per_core_that_yields_to_everything_else() {
        let cores = std::thread::available_parallelism().unwrap().get();
        let before = threads_named("argon2-idle-").len();
        let h = Hasher::with_priority(Priority::Idle).await.unwrap();
        let hash = h.hash("correct horse battery staple").await.unwrap();
        assert!(h.verify(Some(&hash), "correct horse battery staple").await);
        let threads = threads_named("argon2-idle-");
        assert!(
            threads.len() - before >= cores,
            "a thread per core: {threads:?}"
        );
        for (policy, nice) in &threads {
            assert!(
                *policy == 5 || *nice == 19,
                "every hashing thread runs under SCHED_IDLE (5) or at nice 19: {threads:?}"
            );
        }
        // The test's own thread keeps its normal priority.
        let me = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let rest: Vec<&str> = me.rsplit_once(')').unwrap().1.split_whitespace().collect();
        assert_eq!(rest[41 - 3], "0", "the caller is not lowered");
    }

    #[tokio::test]
    async fn a_panicking_job_fails_alone_and_the_pool_keeps_its_thread() {
        let h = Hasher::new(1).await.unwrap();
        let r = h.run(|| -> u8 { panic!("boom") }).await;
        assert!(matches!(r, Err(PasswordError::Pool)), "{r:?}");
        // The only thread is still there to hash.
        let hash = h.hash("correct horse battery staple").await.unwrap();
        assert!(h.verify(Some(&hash), "correct horse battery staple").await);
    }

    #[tokio::test]
    async fn jobs_of_callers_that_gave_up_do_not_pile_up_behind_a_busy_pool() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::time::Duration;
        let h = Hasher::new(1).await.unwrap();
        // A job that holds the only thread until released; its caller gives up.
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let busy = tokio::time::timeout(
            Duration::from_millis(50),
            h.run(move || {
                let _ = wait.recv();
            }),
        )
        .await;
        assert!(busy.is_err(), "the caller gave up");
        // A second caller also gives up while the thread is still busy: its
        // work must not be queued to run later for nobody.
        let ran = Arc::new(AtomicBool::new(false));
        let flag = ran.clone();
        let late = tokio::time::timeout(
            Duration::from_millis(50),
            h.run(move || flag.store(true, Ordering::SeqCst)),
        )
        .await;
        assert!(late.is_err());
        release.send(()).unwrap();
        let hash = h.hash("correct horse battery staple").await.unwrap();
        assert!(h.verify(Some(&hash), "correct horse battery staple").await);
        assert!(!ran.load(Ordering::SeqCst), "an abandoned job ran");
    }

    #[test]
    fn policy_refuses_short_long_and_email_passwords() {
        assert!(check_policy("short", "a@b.test").is_err());
        assert!(check_policy(&"x".repeat(MAX_PASSWORD_BYTES + 1), "a@b.test").is_err());
        assert!(check_policy("Ann@Corp.test", "ann@corp.test").is_err());
        assert!(check_policy("correct horse battery staple", "ann@corp.test").is_ok());
        assert!(
            check_policy("aaaaaaaaaaaaaaaa", "ann@corp.test").is_err(),
            "long but guessable"
        );
        assert!(
            check_policy("password12345", "ann@corp.test").is_err(),
            "common"
        );
    }
}
