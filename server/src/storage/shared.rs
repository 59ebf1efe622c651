//! What the servers on one database share besides records: failed sign-ins, the photo bytes
//! each user sent today, and locks that let one server at a time do a job.
//!
//! On PostgreSQL these live in the database, so a sign-in throttled by one server is throttled
//! by every other, a user's day of photo bytes is counted once however his phone spreads its
//! uploads, and the deadline job runs on one server at a time (a session advisory lock, released
//! by PostgreSQL when the server holding it dies). The sled store belongs to one process, which
//! keeps them in memory ([`LocalShared`]): a restart forgets the counts, which only the operator
//! can cause.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;

use super::StoreError;

/// Counters and locks shared by every server on one store. Every method may block.
pub trait Shared: Send + Sync + std::fmt::Debug {
    /// For each of `keys`, the times (Unix ms) of its failures at or after `since_ms`, oldest
    /// first.
    fn login_failures(&self, keys: &[&str], since_ms: i64) -> Result<Vec<Vec<i64>>, StoreError>;

    /// Records one failure at `at_ms` under each of `keys`, tagged `tag` (the username it was
    /// made for). Failures before `forget_before_ms` may be forgotten meanwhile.
    fn record_login_failure(
        &self,
        keys: &[&str],
        tag: &str,
        at_ms: i64,
        forget_before_ms: i64,
    ) -> Result<(), StoreError>;

    /// Forgets the failures under `key`: all of them, or only those tagged `tag`.
    fn forgive_login_failures(&self, key: &str, tag: Option<&str>) -> Result<(), StoreError>;

    /// Adds `bytes` to what `user` sent on `day` if the day's total stays within `limit`, in
    /// one step however many servers and requests charge at once, and returns the new total;
    /// `None`, with nothing added, when it would go over. Earlier days' counts may be forgotten
    /// meanwhile.
    fn charge_upload(
        &self,
        user: &str,
        day: i64,
        bytes: u64,
        limit: u64,
    ) -> Result<Option<u64>, StoreError>;

    /// What `user` sent on `day`.
    fn uploaded(&self, user: &str, day: i64) -> Result<u64, StoreError>;

    /// Runs `work` if no other holder (on any server of this store) holds the lock `name`,
    /// holding it meanwhile; `Ok(false)` without running it when someone else holds it.
    fn exclusively(&self, name: &str, work: &mut dyn FnMut()) -> Result<bool, StoreError>;
}

/// The in-memory [`Shared`] of a store one process owns.
#[derive(Debug, Default)]
pub struct LocalShared {
    /// Key → (time, tag) of each failure, oldest first.
    failures: Mutex<HashMap<String, VecDeque<(i64, String)>>>,
    /// User → (day, bytes sent that day).
    uploads: Mutex<HashMap<String, (i64, u64)>>,
    held: Mutex<BTreeSet<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update below leaves the maps whole: a panic elsewhere leaves them usable.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Lets go of a lock name when the work ends, however it ends.
struct Held<'a>(&'a Mutex<BTreeSet<String>>, String);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        lock(self.0).remove(&self.1);
    }
}

impl Shared for LocalShared {
    fn login_failures(&self, keys: &[&str], since_ms: i64) -> Result<Vec<Vec<i64>>, StoreError> {
        let failures = lock(&self.failures);
        Ok(keys
            .iter()
            .map(|key| {
                failures
                    .get(*key)
                    .into_iter()
                    .flatten()
                    .map(|(at, _)| *at)
                    .filter(|at| *at >= since_ms)
                    .collect()
            })
            .collect())
    }

    fn record_login_failure(
        &self,
        keys: &[&str],
        tag: &str,
        at_ms: i64,
        forget_before_ms: i64,
    ) -> Result<(), StoreError> {
        let mut failures = lock(&self.failures);
        // Keys whose failures have all expired go, so guessing cannot grow the map for good.
        failures.retain(|_, times| {
            times.retain(|(at, _)| *at >= forget_before_ms);
            !times.is_empty()
        });
        for key in keys {
            let times = failures.entry((*key).to_owned()).or_default();
            // Kept in time order even when clocks of concurrent requests cross.
            let place = times.partition_point(|(at, _)| *at <= at_ms);
            times.insert(place, (at_ms, tag.to_owned()));
        }
        Ok(())
    }

    fn forgive_login_failures(&self, key: &str, tag: Option<&str>) -> Result<(), StoreError> {
        let mut failures = lock(&self.failures);
        match tag {
            None => {
                failures.remove(key);
            }
            Some(tag) => {
                if let Some(times) = failures.get_mut(key) {
                    times.retain(|(_, t)| t != tag);
                    if times.is_empty() {
                        failures.remove(key);
                    }
                }
            }
        }
        Ok(())
    }

    fn charge_upload(
        &self,
        user: &str,
        day: i64,
        bytes: u64,
        limit: u64,
    ) -> Result<Option<u64>, StoreError> {
        let mut uploads = lock(&self.uploads);
        let entry = uploads.entry(user.to_owned()).or_insert((day, 0));
        if entry.0 != day {
            *entry = (day, 0);
        }
        let total = entry.1.saturating_add(bytes);
        if total > limit {
            return Ok(None);
        }
        entry.1 = total;
        // Earlier days' counts are dropped once the table would otherwise only grow.
        if uploads.len() > 10_000 {
            uploads.retain(|_, (d, _)| *d == day);
        }
        Ok(Some(total))
    }

    fn uploaded(&self, user: &str, day: i64) -> Result<u64, StoreError> {
        Ok(match lock(&self.uploads).get(user) {
            Some((d, bytes)) if *d == day => *bytes,
            _ => 0,
        })
    }

    fn exclusively(&self, name: &str, work: &mut dyn FnMut()) -> Result<bool, StoreError> {
        if !lock(&self.held).insert(name.to_owned()) {
            return Ok(false);
        }
        let _held = Held(&self.held, name.to_owned());
        work();
        Ok(true)
    }
}
