//! What the servers on one database share besides records: failed sign-ins, the photo bytes
//! each user sent today, events counted in a window (the public channel's per-network and
//! per-place rates), short-lived records (the public's proof-of-work challenges and report
//! tickets), and locks that let one server at a time do a job or a piece of work.
//!
//! On PostgreSQL these live in the database, so a sign-in throttled by one server is throttled
//! by every other, a user's day of photo bytes is counted once however his phone spreads its
//! uploads, a resident's ticket bought through one server is honoured (and spent once) by all,
//! and the deadline job runs on one server at a time (a session advisory lock, released by
//! PostgreSQL when the server holding it dies). The sled store belongs to one process, which
//! keeps them in memory ([`LocalShared`]): a restart forgets the counts, challenges and tickets,
//! which only the operator can cause.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Condvar, Mutex};

use super::StoreError;

/// Held while alive: a lock of [`Shared::hold`], or the saves held back by
/// `Store::hold_saves`. Dropping it lets go, on every server.
#[must_use = "the lock is let go when the hold drops"]
pub struct Hold<'a>(#[allow(dead_code)] Box<dyn Holding + 'a>);

/// Whatever a store keeps while a [`Hold`] lives; dropping it lets go.
trait Holding {}
impl<T> Holding for T {}

impl<'a> Hold<'a> {
    /// A hold that lets go when `held` drops.
    pub fn new<T: 'a>(held: T) -> Self {
        Hold(Box::new(held))
    }
}

impl std::fmt::Debug for Hold<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hold")
    }
}

/// A short-lived record every server of a store shares ([`Shared::kept`]), and the version it
/// is at: a write names the version it read, so of two servers changing it at once one wins
/// and the other reads again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub value: Vec<u8>,
    pub version: i64,
}

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

    /// Waits until no holder on any server of this store holds the lock `name`, then holds it
    /// until the returned [`Hold`] drops: work that reads records and writes what it decided
    /// from them (an import, a resident's answer) runs one at a time on every server. Not
    /// re-entrant: a holder asking for the same name again waits for ever.
    fn hold(&self, name: &str) -> Result<Hold<'_>, StoreError>;

    /// Counts one event under `key` at `now_ms` if fewer than `limit` were counted in the
    /// `window_ms` before it, in one step however many servers count at once. When `limit`
    /// are already there nothing is counted and the answer is `Err` with the time (Unix ms)
    /// at which the oldest of them leaves the window. A key is always counted over the same
    /// window; events older than it may be forgotten meanwhile.
    fn count_event(
        &self,
        key: &str,
        limit: usize,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<Result<(), i64>, StoreError>;

    /// Whether [`Shared::count_event`] would count an event now, counting nothing.
    fn events_below(
        &self,
        key: &str,
        limit: usize,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<Result<(), i64>, StoreError>;

    /// The short-lived record `key`, unless it is absent or expired at `now_ms`.
    fn kept(&self, key: &str, now_ms: i64) -> Result<Option<Kept>, StoreError>;

    /// Stores `value` under `key` until `expires_ms` if the record is still as it was read:
    /// at `version`, or absent (`None`; an expired record counts as absent). `false`, with
    /// nothing stored, when another write (on any server) came first or it has expired.
    /// Expired records may be forgotten meanwhile.
    fn keep(
        &self,
        key: &str,
        version: Option<i64>,
        value: &[u8],
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Removes the record `key` and answers its value if it had not expired: of any number of
    /// takers on any servers, one gets it.
    fn take_kept(&self, key: &str, now_ms: i64) -> Result<Option<Vec<u8>>, StoreError>;
}

/// Most events all keys together keep in memory. Past it the oldest are forgotten, as if their
/// window had passed: a flood from ever new networks costs the server bounded memory, and
/// only forgives the networks it came from.
const MAX_EVENTS: usize = 200_000;

/// Most short-lived records kept in memory; past it those expiring soonest are forgotten.
const MAX_KEPT: usize = 200_000;

/// The in-memory [`Shared`] of a store one process owns.
#[derive(Debug, Default)]
pub struct LocalShared {
    /// Key → (time, tag) of each failure, oldest first.
    failures: Mutex<HashMap<String, VecDeque<(i64, String)>>>,
    /// User → (day, bytes sent that day).
    uploads: Mutex<HashMap<String, (i64, u64)>>,
    held: Mutex<BTreeSet<String>>,
    /// Names held by [`Shared::hold`], and a wake-up for whoever waits on one.
    holds: Names,
    events: Mutex<Seen>,
    records: Mutex<Records>,
}

/// Lock names held in this process, and a wake-up when one is let go.
#[derive(Debug, Default)]
pub(super) struct Names {
    held: Mutex<BTreeSet<String>>,
    freed: Condvar,
}

impl Names {
    /// Waits until `name` is free here, and holds it until the answer drops.
    pub(super) fn hold(&self, name: &str) -> NameHeld<'_> {
        let mut held = lock(&self.held);
        while held.contains(name) {
            held = self.freed.wait(held).unwrap_or_else(|p| p.into_inner());
        }
        held.insert(name.to_owned());
        NameHeld(self, name.to_owned())
    }
}

/// One name of [`Names`] held; let go when dropped, however the work ended.
pub(super) struct NameHeld<'a>(&'a Names, String);

impl Drop for NameHeld<'_> {
    fn drop(&mut self) {
        lock(&self.0.held).remove(&self.1);
        self.0.freed.notify_all();
    }
}

/// The events of each key, and every event in the order it was counted with the end of its
/// window, so the ones whose window has passed are forgotten a few at a time as new ones come,
/// never by a pass over every key under the lock.
#[derive(Debug, Default)]
struct Seen {
    by_key: HashMap<String, VecDeque<i64>>,
    order: VecDeque<(i64, String)>,
}

impl Seen {
    /// Forgets the events whose window has passed, and the oldest beyond room for one more
    /// under [`MAX_EVENTS`]. Each event is forgotten once, so this costs what counting it did.
    fn forget(&mut self, now_ms: i64) {
        while let Some((until, _)) = self.order.front() {
            if *until > now_ms && self.order.len() < MAX_EVENTS {
                break;
            }
            let Some((_, key)) = self.order.pop_front() else {
                break;
            };
            if let Some(queue) = self.by_key.get_mut(&key) {
                queue.pop_front();
                if queue.is_empty() {
                    self.by_key.remove(&key);
                }
            }
        }
    }

    /// `Err(when one more is allowed)` if `key` has `limit` events in the window.
    fn below(&self, key: &str, limit: usize, window_ms: i64, now_ms: i64) -> Result<(), i64> {
        let mut recent = self
            .by_key
            .get(key)
            .into_iter()
            .flatten()
            .filter(|at| now_ms - **at < window_ms);
        if limit == 0 {
            return Err(now_ms + window_ms);
        }
        match recent.clone().nth(limit - 1) {
            None => Ok(()),
            Some(_) => Err(recent.next().map_or(now_ms, |oldest| *oldest) + window_ms),
        }
    }
}

/// Short-lived records by key, and their keys by expiry.
#[derive(Debug, Default)]
struct Records {
    by_key: HashMap<String, (Kept, i64)>,
    by_expiry: BTreeSet<(i64, String)>,
    versions: i64,
}

impl Records {
    fn live(&self, key: &str, now_ms: i64) -> Option<&Kept> {
        self.by_key
            .get(key)
            .filter(|(_, expires)| *expires > now_ms)
            .map(|(kept, _)| kept)
    }

    fn remove(&mut self, key: &str) -> Option<(Kept, i64)> {
        let removed = self.by_key.remove(key)?;
        self.by_expiry.remove(&(removed.1, key.to_owned()));
        Some(removed)
    }

    /// Forgets the expired records, and those expiring soonest beyond room for one more.
    fn forget(&mut self, now_ms: i64) {
        while let Some((expires, key)) = self.by_expiry.first().cloned() {
            if expires > now_ms && self.by_key.len() < MAX_KEPT {
                break;
            }
            self.remove(&key);
        }
    }
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

    fn hold(&self, name: &str) -> Result<Hold<'_>, StoreError> {
        Ok(Hold::new(self.holds.hold(name)))
    }

    fn count_event(
        &self,
        key: &str,
        limit: usize,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<Result<(), i64>, StoreError> {
        let mut seen = lock(&self.events);
        seen.forget(now_ms);
        if let Err(until) = seen.below(key, limit, window_ms, now_ms) {
            return Ok(Err(until));
        }
        seen.by_key
            .entry(key.to_owned())
            .or_default()
            .push_back(now_ms);
        seen.order
            .push_back((now_ms.saturating_add(window_ms), key.to_owned()));
        Ok(Ok(()))
    }

    fn events_below(
        &self,
        key: &str,
        limit: usize,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<Result<(), i64>, StoreError> {
        Ok(lock(&self.events).below(key, limit, window_ms, now_ms))
    }

    fn kept(&self, key: &str, now_ms: i64) -> Result<Option<Kept>, StoreError> {
        Ok(lock(&self.records).live(key, now_ms).cloned())
    }

    fn keep(
        &self,
        key: &str,
        version: Option<i64>,
        value: &[u8],
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut records = lock(&self.records);
        records.forget(now_ms);
        if records.live(key, now_ms).map(|kept| kept.version) != version {
            return Ok(false);
        }
        records.remove(key);
        records.versions += 1;
        let kept = Kept {
            value: value.to_vec(),
            version: records.versions,
        };
        records.by_expiry.insert((expires_ms, key.to_owned()));
        records.by_key.insert(key.to_owned(), (kept, expires_ms));
        Ok(true)
    }

    fn take_kept(&self, key: &str, now_ms: i64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(lock(&self.records)
            .remove(key)
            .filter(|(_, expires)| *expires > now_ms)
            .map(|(kept, _)| kept.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn old_events_are_forgotten_as_new_ones_come_and_never_past_the_cap() {
        const HOUR: i64 = 3_600_000;
        let shared = LocalShared::default();
        let kept = |s: &LocalShared| {
            let seen = lock(&s.events);
            (seen.by_key.len(), seen.order.len())
        };
        for i in 0..1_000 {
            shared
                .count_event(&format!("network-{i}"), 5, HOUR, i)
                .unwrap()
                .unwrap();
        }
        assert_eq!(kept(&shared), (1_000, 1_000));
        // An hour on, each new event forgets those whose hour has passed.
        shared
            .count_event("late", 5, HOUR, HOUR + 500)
            .unwrap()
            .unwrap();
        assert_eq!(kept(&shared), (500, 500));
        shared
            .count_event("late", 5, HOUR, 2 * HOUR)
            .unwrap()
            .unwrap();
        assert_eq!(kept(&shared), (1, 2), "only the late network's two events");
        // A flood from ever new networks keeps at most MAX_EVENTS; the newest still count.
        let shared = LocalShared::default();
        for i in 0..MAX_EVENTS + 10 {
            shared
                .count_event(&i.to_string(), 1, HOUR, 0)
                .unwrap()
                .unwrap();
        }
        assert_eq!(kept(&shared), (MAX_EVENTS, MAX_EVENTS));
        assert!(shared
            .count_event(&(MAX_EVENTS + 9).to_string(), 1, HOUR, 0)
            .unwrap()
            .is_err());
        assert!(shared.count_event("0", 1, HOUR, 0).unwrap().is_ok());
    }

    #[test]
    fn records_past_the_cap_are_forgotten_soonest_expiring_first() {
        let shared = LocalShared::default();
        for i in 0..MAX_KEPT + 5 {
            let i = i as i64;
            assert!(shared
                .keep(&i.to_string(), None, b"x", 1_000 + i, 0)
                .unwrap());
        }
        assert_eq!(lock(&shared.records).by_key.len(), MAX_KEPT);
        assert!(shared.kept("0", 1).unwrap().is_none());
        assert!(shared
            .kept(&(MAX_KEPT + 4).to_string(), 1)
            .unwrap()
            .is_some());
    }
}
