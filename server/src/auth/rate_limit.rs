//! Failed-login throttling. Wrong passwords are counted within a sliding window three ways:
//!
//! - per (client address, username): someone guessing one account from one place. After
//!   `max_failures` every sign-in of that username from that address waits (429 with
//!   `Retry-After`) until the oldest failure leaves the window — without its password being
//!   checked, so guessing cannot continue.
//! - per client address, over all usernames: one place trying many accounts (or random names,
//!   each costing an argon2 check). A successful sign-in from the address forgets only the
//!   failures made there for the username that signed in (its owner's own typos), never those
//!   made for other usernames: otherwise someone spraying passwords over many accounts would
//!   clear the count by signing into his own account every few tries.
//! - per username, over all addresses: many places guessing one account.
//!
//! The last two may be run up by strangers, so they never stop a sign-in from a device the
//! account already signed in from and that was not revoked (a *known device*): a chief's own
//! phone, the office's own browser. A stranger can at most make a *new* device of that account
//! wait; only failures from the owner's own address (the first count) hold back a known device.
//!
//! In memory and per process: a restart forgets failures, which is acceptable for throttling.
//! Usernames are compared case-insensitively. IPv6 clients are counted by their /64 network,
//! since one host commonly has a whole /64 to pick addresses from. Memory is bounded because a
//! failure is only recorded after a password check, and those are bounded by the password
//! threads (`password::PasswordPool`); entries leave with their last failure.

use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimit {
    /// Wrong passwords for one username from one address.
    pub max_failures: usize,
    /// Wrong passwords from one address, all usernames together.
    pub max_failures_per_address: usize,
    /// Wrong passwords for one username, all addresses together.
    pub max_failures_per_username: usize,
    pub window: Duration,
}

impl Default for LoginLimit {
    fn default() -> Self {
        Self {
            max_failures: 5,
            max_failures_per_address: 20,
            max_failures_per_username: 20,
            window: Duration::from_secs(300),
        }
    }
}

/// One sign-in attempt, as the limiter sees it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub address: IpAddr,
    pub username: &'a str,
    /// The device id is bound to this account and not revoked.
    pub known_device: bool,
}

/// Failure times per key, oldest first, each with a tag (for the per-address count, which
/// username it was made for).
#[derive(Debug)]
struct Failures<K, T = ()>(HashMap<K, VecDeque<(Instant, T)>>);

impl<K: Hash + Eq, T: PartialEq> Failures<K, T> {
    fn new() -> Self {
        Self(HashMap::new())
    }

    /// How long until `key` is below `max` again, if it is at `max` now.
    fn wait(&mut self, key: &K, max: usize, window: Duration, now: Instant) -> Option<Duration> {
        let times = self.0.get_mut(key)?;
        expire(times, window, now);
        if times.len() < max {
            return None;
        }
        let oldest = times.front().map_or(now, |(t, _)| *t);
        Some((oldest + window).saturating_duration_since(now))
    }

    fn record(&mut self, key: K, tag: T, window: Duration, now: Instant) {
        // Keys whose failures have all expired go, so guessing cannot grow the map for good.
        self.0.retain(|_, times| {
            times
                .back()
                .is_some_and(|(t, _)| now.duration_since(*t) < window)
        });
        let times = self.0.entry(key).or_default();
        expire(times, window, now);
        times.push_back((now, tag));
    }

    fn clear(&mut self, key: &K) {
        self.0.remove(key);
    }

    /// Forgets the failures of `key` tagged `tag`, keeping the others.
    fn forgive(&mut self, key: &K, tag: &T) {
        if let Some(times) = self.0.get_mut(key) {
            times.retain(|(_, t)| t != tag);
            if times.is_empty() {
                self.0.remove(key);
            }
        }
    }
}

fn expire<T>(times: &mut VecDeque<(Instant, T)>, window: Duration, now: Instant) {
    while times
        .front()
        .is_some_and(|(t, _)| now.duration_since(*t) >= window)
    {
        times.pop_front();
    }
}

/// The address failures are counted under: IPv4 as is (also when mapped into IPv6), IPv6 by
/// its /64 network.
fn client_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        },
    }
}

#[derive(Debug)]
struct Counts {
    pairs: Failures<(IpAddr, String)>,
    /// Tagged with a keyed hash of the username (its process-random key keeps a stranger from
    /// choosing a name that collides with another): a success forgives its username's share.
    addresses: Failures<IpAddr, u64>,
    usernames: Failures<String>,
}

#[derive(Debug)]
pub struct LoginLimiter {
    limit: LoginLimit,
    counts: Mutex<Counts>,
    names: RandomState,
}

impl LoginLimiter {
    pub fn new(limit: LoginLimit) -> Self {
        Self {
            limit,
            counts: Mutex::new(Counts {
                pairs: Failures::new(),
                addresses: Failures::new(),
                usernames: Failures::new(),
            }),
            names: RandomState::new(),
        }
    }

    /// `Err(retry_after)` if this attempt must wait; its password is then not checked.
    pub fn check(&self, attempt: &Attempt<'_>, now: Instant) -> Result<(), Duration> {
        let LoginLimit {
            max_failures,
            max_failures_per_address,
            max_failures_per_username,
            window,
        } = self.limit;
        let address = client_key(attempt.address);
        let username = attempt.username.to_lowercase();
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let mut waits =
            vec![counts
                .pairs
                .wait(&(address, username.clone()), max_failures, window, now)];
        if !attempt.known_device {
            waits.push(
                counts
                    .addresses
                    .wait(&address, max_failures_per_address, window, now),
            );
            waits.push(
                counts
                    .usernames
                    .wait(&username, max_failures_per_username, window, now),
            );
        }
        match waits.into_iter().flatten().max() {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    pub fn record_failure(&self, attempt: &Attempt<'_>, now: Instant) {
        let window = self.limit.window;
        let address = client_key(attempt.address);
        let username = attempt.username.to_lowercase();
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let tag = self.names.hash_one(&username);
        counts
            .pairs
            .record((address, username.clone()), (), window, now);
        counts.addresses.record(address, tag, window, now);
        counts.usernames.record(username, (), window, now);
    }

    /// Someone got into their account from this address: the typos made there for this
    /// username are forgotten, in its own count and in the address's. Failures made from the
    /// address for other usernames stay: a success proves nothing about them, and forgetting
    /// them let one address spray guesses over many accounts without end by signing into an
    /// account of its own between rounds. Failures counted for the username from elsewhere stay
    /// too, since strangers may have made them.
    pub fn record_success(&self, attempt: &Attempt<'_>) {
        let address = client_key(attempt.address);
        let username = attempt.username.to_lowercase();
        let tag = self.names.hash_one(&username);
        let key = (address, username);
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.pairs.clear(&key);
        counts.addresses.forgive(&address, &tag);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const AWAY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    fn attempt(address: IpAddr, username: &str, known_device: bool) -> Attempt<'_> {
        Attempt {
            address,
            username,
            known_device,
        }
    }

    fn limit() -> LoginLimit {
        LoginLimit {
            max_failures: 3,
            max_failures_per_address: 5,
            max_failures_per_username: 4,
            window: Duration::from_secs(60),
        }
    }

    #[test]
    fn throttles_a_username_from_an_address_until_the_window_passes() {
        let limiter = LoginLimiter::new(limit());
        let t0 = Instant::now();
        for i in 0..3 {
            let at = t0 + Duration::from_secs(i);
            assert!(limiter.check(&attempt(HOME, "Alice", false), at).is_ok());
            limiter.record_failure(&attempt(HOME, "alice", false), at);
        }
        let later = t0 + Duration::from_secs(10);
        let retry = limiter
            .check(&attempt(HOME, "ALICE", true), later)
            .unwrap_err();
        assert_eq!(retry, Duration::from_secs(50));
        assert!(limiter.check(&attempt(HOME, "bob", false), later).is_ok());
        assert!(limiter.check(&attempt(AWAY, "alice", false), later).is_ok());
        let after = t0 + Duration::from_secs(60);
        assert!(limiter.check(&attempt(HOME, "alice", false), after).is_ok());
    }

    #[test]
    fn strangers_hold_back_new_devices_but_never_a_known_one() {
        let limiter = LoginLimiter::new(limit());
        let t0 = Instant::now();
        // Four addresses, one wrong password each, for the same account.
        for last in 10..14 {
            let stranger = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, last));
            limiter.record_failure(&attempt(stranger, "admin", false), t0);
        }
        assert!(limiter.check(&attempt(HOME, "admin", false), t0).is_err());
        assert!(limiter.check(&attempt(HOME, "admin", true), t0).is_ok());
        // One address trying five names is held back for new devices of any account.
        for name in ["a1", "a2", "a3", "a4", "a5"] {
            limiter.record_failure(&attempt(AWAY, name, false), t0);
        }
        assert!(limiter.check(&attempt(AWAY, "carol", false), t0).is_err());
        assert!(limiter.check(&attempt(AWAY, "carol", true), t0).is_ok());
    }

    #[test]
    fn success_clears_the_failures_of_its_address_only() {
        let limiter = LoginLimiter::new(limit());
        let t0 = Instant::now();
        for _ in 0..3 {
            limiter.record_failure(&attempt(HOME, "carol", false), t0);
        }
        limiter.record_failure(&attempt(HOME, "dave", false), t0);
        limiter.record_failure(&attempt(HOME, "erin", false), t0);
        assert!(limiter.check(&attempt(HOME, "frank", false), t0).is_err());
        limiter.record_success(&attempt(HOME, "carol", true));
        assert!(limiter.check(&attempt(HOME, "carol", true), t0).is_ok());
        assert!(limiter.check(&attempt(HOME, "frank", false), t0).is_ok());
        limiter.record_failure(&attempt(AWAY, "carol", false), t0);
        // Four failures for carol overall: new devices wait.
        assert!(limiter.check(&attempt(HOME, "carol", false), t0).is_err());
    }

    #[test]
    fn signing_into_ones_own_account_forgives_no_guesses_at_others() {
        let limiter = LoginLimiter::new(limit());
        let t0 = Instant::now();
        // The attacker's own typo, then guesses at four other accounts with a sign-in of his
        // own between each.
        limiter.record_failure(&attempt(AWAY, "mallory", false), t0);
        for name in ["a1", "a2", "a3", "a4", "a5"] {
            assert!(limiter.check(&attempt(AWAY, name, false), t0).is_ok());
            limiter.record_failure(&attempt(AWAY, name, false), t0);
            limiter.record_success(&attempt(AWAY, "Mallory", true));
        }
        // Five guesses at others stay counted: the address is held back for new devices.
        assert!(limiter.check(&attempt(AWAY, "a6", false), t0).is_err());
        assert!(limiter.check(&attempt(AWAY, "mallory", true), t0).is_ok());
    }

    #[test]
    fn ipv6_hosts_count_by_their_network() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(client_key(mapped), HOME);
    }
}
