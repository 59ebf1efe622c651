//! Password hashing with argon2id. Production uses argon2's default cost (19 MiB, 2 passes);
//! the cost is configurable so that tests (which hash many passwords in debug builds) stay fast.
//! A hash records its own parameters, so changing the cost never breaks existing accounts.
//!
//! Logins for unknown usernames are verified against a dummy hash of the same cost, so response
//! time does not reveal which usernames exist. This module does not decide password policy
//! beyond the minimum length.
//!
//! Password checks run on their own few threads ([`PasswordPool`]), never on the blocking
//! threads that look up the caller of every signed-in request: a flood of sign-ins with
//! random usernames (each costing a full argon2 check) then waits for those threads, or is
//! turned away when their queue is full, while phones already signed in are served as usual.

use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};

use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordVerifier, Version};

/// Shortest password accepted for new or reset passwords (the demo accounts are seeded directly).
pub use sync_core::api_types::MIN_PASSWORD_CHARS;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordCost {
    pub memory_kib: u32,
    pub iterations: u32,
}

impl PasswordCost {
    /// argon2's recommended default (OWASP: 19 MiB, 2 iterations, 1 lane).
    pub const DEFAULT: PasswordCost = PasswordCost {
        memory_kib: Params::DEFAULT_M_COST,
        iterations: Params::DEFAULT_T_COST,
    };
    /// The cheapest cost argon2 allows; for tests only.
    pub const FAST_FOR_TESTS: PasswordCost = PasswordCost {
        memory_kib: Params::MIN_M_COST,
        iterations: 1,
    };
}

impl Default for PasswordCost {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[derive(Debug, thiserror::Error)]
#[error("password hashing: {0}")]
pub struct PasswordError(String);

#[derive(Debug)]
pub struct Passwords {
    argon2: Argon2<'static>,
    dummy: OnceLock<String>,
}

impl Passwords {
    pub fn new(cost: PasswordCost) -> Result<Self, PasswordError> {
        let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
            .map_err(|e| PasswordError(e.to_string()))?;
        Ok(Self {
            argon2: Argon2::new(Algorithm::Argon2id, Version::V0x13, params),
            dummy: OnceLock::new(),
        })
    }

    /// A PHC string (`$argon2id$v=19$…`) with a fresh random salt.
    pub fn hash(&self, password: &str) -> Result<String, PasswordError> {
        let hash: PasswordHash = self
            .argon2
            .hash_password(password.as_bytes())
            .map_err(|e| PasswordError(e.to_string()))?;
        Ok(hash.to_string())
    }

    /// Whether `password` matches `stored`; `None` (an account without password) never matches
    /// but costs the same time as a real check.
    pub fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        match stored.and_then(|s| PasswordHash::new(s).ok()) {
            Some(hash) => self
                .argon2
                .verify_password(password.as_bytes(), &hash)
                .is_ok(),
            None => {
                self.burn_time(password);
                false
            }
        }
    }

    /// Spends a password check's worth of time, for logins with unknown usernames.
    pub fn burn_time(&self, password: &str) {
        let dummy = self
            .dummy
            .get_or_init(|| self.hash("not a password of anyone").unwrap_or_default());
        if let Ok(hash) = PasswordHash::new(dummy) {
            let _ = self.argon2.verify_password(password.as_bytes(), &hash);
        }
    }
}

/// Default of `--password-threads`: argon2 checks run at once (each takes 19 MiB and tens of
/// milliseconds of one core at the default cost).
pub const DEFAULT_PASSWORD_THREADS: usize = 2;
/// Password checks that may wait for a thread; beyond that a sign-in is answered 503 with
/// `Retry-After` at once.
pub const PASSWORD_QUEUE: usize = 64;

type Job = Box<dyn FnOnce() + Send>;

/// A few threads for password checks and hashing, with a bounded queue in front of them.
#[derive(Debug)]
pub struct PasswordPool {
    jobs: SyncSender<Job>,
}

impl PasswordPool {
    /// Starts `threads` threads (at least one) with room for `queue` waiting jobs. The threads
    /// end when the pool is dropped.
    pub fn new(threads: usize, queue: usize) -> std::io::Result<Self> {
        let (jobs, waiting) = mpsc::sync_channel::<Job>(queue);
        let waiting = Arc::new(Mutex::new(waiting));
        for n in 0..threads.max(1) {
            let waiting = waiting.clone();
            std::thread::Builder::new()
                .name(format!("passwords-{n}"))
                .spawn(move || loop {
                    let job = waiting.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => break,
                    }
                })?;
        }
        Ok(Self { jobs })
    }

    /// Queues `work` for a password thread and gives the future of its result; `Err(PoolBusy)`
    /// at once when the queue is full.
    pub fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<impl std::future::Future<Output = Result<T, PoolBusy>>, PoolBusy> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        self.jobs
            .try_send(Box::new(move || {
                // The requester may have hung up; the work is done either way.
                let _ = answer.send(work());
            }))
            .map_err(|err| match err {
                TrySendError::Full(_) | TrySendError::Disconnected(_) => PoolBusy,
            })?;
        Ok(async move { answered.await.map_err(|_| PoolBusy) })
    }
}

/// The password threads are all busy and their queue is full (or they have stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many sign-ins at once")]
pub struct PoolBusy;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_differ_by_salt() {
        let pw = Passwords::new(PasswordCost::FAST_FOR_TESTS).unwrap();
        let a = pw.hash("correct horse").unwrap();
        let b = pw.hash("correct horse").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b);
        assert!(pw.verify("correct horse", Some(&a)));
        assert!(!pw.verify("wrong horse", Some(&a)));
        assert!(!pw.verify("correct horse", None));
        assert!(!pw.verify("correct horse", Some("garbage")));
    }

    #[test]
    fn hashes_keep_their_own_cost() {
        let cheap = Passwords::new(PasswordCost::FAST_FOR_TESTS).unwrap();
        let hash = cheap.hash("pw-123456").unwrap();
        let other = Passwords::new(PasswordCost {
            memory_kib: 64,
            iterations: 2,
        })
        .unwrap();
        assert!(other.verify("pw-123456", Some(&hash)));
    }

    #[actix_web::test]
    async fn the_pool_runs_work_and_turns_away_beyond_its_queue() {
        let pool = PasswordPool::new(1, 1).unwrap();
        assert_eq!(pool.run(|| 6 * 7).unwrap().await, Ok(42));
        // One job holds the thread, one waits; the third finds the queue full.
        let (started, has_started) = mpsc::channel::<()>();
        let (release, hold) = mpsc::channel::<()>();
        let holding = pool
            .run(move || {
                started.send(()).unwrap();
                hold.recv().is_ok()
            })
            .unwrap();
        has_started.recv().unwrap();
        let waiting = pool.run(|| 1).unwrap();
        assert_eq!(pool.run(|| 2).err(), Some(PoolBusy));
        release.send(()).unwrap();
        assert_eq!(holding.await, Ok(true));
        assert_eq!(waiting.await, Ok(1));
    }
}
