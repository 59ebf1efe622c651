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
//! The failures are kept by the store ([`Shared`]): on PostgreSQL in the database, so every
//! server on it counts the same failures and a sign-in throttled by one is throttled by all; on
//! sled in the memory of its one process, where a restart forgets them (acceptable for
//! throttling). Times are wall-clock milliseconds, the same on every server. Usernames are
//! compared case-insensitively. Addresses are counted as every limit counts them
//! (`client_ip::counted_as`: IPv6 by its /64 network). The count is bounded because a failure is
//! only recorded after a password check, and those are bounded by the password threads
//! (`password::PasswordPool`); failures older than the window are forgotten.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::storage::{Shared, StoreError};

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

/// How long until a key with failures at `times` (oldest first, all within the window) is
/// below `max` again, if it is at `max` now.
fn wait(times: &[i64], max: usize, window_ms: i64, now_ms: i64) -> Option<Duration> {
    if max == 0 || times.len() < max {
        return None;
    }
    // Below `max` once all but `max - 1` of them have left the window.
    let leaving = times[times.len() - max];
    let ms = (leaving + window_ms).saturating_sub(now_ms).max(0);
    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
}

/// The keys an attempt's failures are counted under: (username, address), address, username.
struct Keys {
    pair: String,
    address: String,
    username: String,
    /// The lower-cased username, the tag of each failure.
    tag: String,
}

impl Keys {
    fn of(attempt: &Attempt<'_>) -> Self {
        let address = super::client_ip::counted_as(attempt.address);
        let username = attempt.username.to_lowercase();
        Self {
            pair: format!("pair {address} {username}"),
            address: format!("address {address}"),
            username: format!("username {username}"),
            tag: username,
        }
    }
}

#[derive(Debug)]
pub struct LoginLimiter {
    limit: LoginLimit,
    failures: Arc<dyn Shared>,
}

impl LoginLimiter {
    /// A limiter counting failures in `failures` (the store's, shared by its servers).
    pub fn new(limit: LoginLimit, failures: Arc<dyn Shared>) -> Self {
        Self { limit, failures }
    }

    fn window_ms(&self) -> i64 {
        i64::try_from(self.limit.window.as_millis()).unwrap_or(i64::MAX)
    }

    /// `Ok(Err(retry_after))` if this attempt must wait; its password is then not checked.
    /// Blocking: call inside `web::block`.
    pub fn check(
        &self,
        attempt: &Attempt<'_>,
        now_ms: i64,
    ) -> Result<Result<(), Duration>, StoreError> {
        let LoginLimit {
            max_failures,
            max_failures_per_address,
            max_failures_per_username,
            ..
        } = self.limit;
        let window = self.window_ms();
        let keys = Keys::of(attempt);
        let mut asked = vec![(keys.pair.as_str(), max_failures)];
        if !attempt.known_device {
            asked.push((keys.address.as_str(), max_failures_per_address));
            asked.push((keys.username.as_str(), max_failures_per_username));
        }
        let names: Vec<&str> = asked.iter().map(|(k, _)| *k).collect();
        let since = now_ms.saturating_sub(window).saturating_add(1);
        let found = self.failures.login_failures(&names, since)?;
        let longest = asked
            .iter()
            .zip(&found)
            .filter_map(|((_, max), times)| wait(times, *max, window, now_ms))
            .max();
        Ok(match longest {
            Some(wait) => Err(wait),
            None => Ok(()),
        })
    }

    /// Counts a wrong password. Blocking.
    pub fn record_failure(&self, attempt: &Attempt<'_>, now_ms: i64) -> Result<(), StoreError> {
        let keys = Keys::of(attempt);
        self.failures.record_login_failure(
            &[&keys.pair, &keys.address, &keys.username],
            &keys.tag,
            now_ms,
            now_ms.saturating_sub(self.window_ms()),
        )
    }

    /// Someone got into their account from this address: the typos made there for this
    /// username are forgotten, in its own count and in the address's. Failures made from the
    /// address for other usernames stay: a success proves nothing about them, and forgetting
    /// them let one address spray guesses over many accounts without end by signing into an
    /// account of its own between rounds. Failures counted for the username from elsewhere stay
    /// too, since strangers may have made them. Blocking.
    pub fn record_success(&self, attempt: &Attempt<'_>) -> Result<(), StoreError> {
        let keys = Keys::of(attempt);
        self.failures.forgive_login_failures(&keys.pair, None)?;
        self.failures
            .forgive_login_failures(&keys.address, Some(&keys.tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::LocalShared;

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
        let limiter = LoginLimiter::new(limit(), Arc::new(LocalShared::default()));
        let t0: i64 = 1_700_000_000_000;
        for i in 0..3 {
            let at = t0 + i * 1000;
            assert!(limiter
                .check(&attempt(HOME, "Alice", false), at)
                .unwrap()
                .is_ok());
            limiter
                .record_failure(&attempt(HOME, "alice", false), at)
                .unwrap();
        }
        let later = t0 + 10_000;
        let retry = limiter
            .check(&attempt(HOME, "ALICE", true), later)
            .unwrap()
            .unwrap_err();
        assert_eq!(retry, Duration::from_secs(50));
        assert!(limiter
            .check(&attempt(HOME, "bob", false), later)
            .unwrap()
            .is_ok());
        assert!(limiter
            .check(&attempt(AWAY, "alice", false), later)
            .unwrap()
            .is_ok());
        let after = t0 + 60_000;
        assert!(limiter
            .check(&attempt(HOME, "alice", false), after)
            .unwrap()
            .is_ok());
    }

    #[test]
    fn strangers_hold_back_new_devices_but_never_a_known_one() {
        let limiter = LoginLimiter::new(limit(), Arc::new(LocalShared::default()));
        let t0: i64 = 1_700_000_000_000;
        // Four addresses, one wrong password each, for the same account.
        for last in 10..14 {
            let stranger = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, last));
            limiter
                .record_failure(&attempt(stranger, "admin", false), t0)
                .unwrap();
        }
        assert!(limiter
            .check(&attempt(HOME, "admin", false), t0)
            .unwrap()
            .is_err());
        assert!(limiter
            .check(&attempt(HOME, "admin", true), t0)
            .unwrap()
            .is_ok());
        // One address trying five names is held back for new devices of any account.
        for name in ["a1", "a2", "a3", "a4", "a5"] {
            limiter
                .record_failure(&attempt(AWAY, name, false), t0)
                .unwrap();
        }
        assert!(limiter
            .check(&attempt(AWAY, "carol", false), t0)
            .unwrap()
            .is_err());
        assert!(limiter
            .check(&attempt(AWAY, "carol", true), t0)
            .unwrap()
            .is_ok());
    }

    #[test]
    fn success_clears_the_failures_of_its_address_only() {
        let limiter = LoginLimiter::new(limit(), Arc::new(LocalShared::default()));
        let t0: i64 = 1_700_000_000_000;
        for _ in 0..3 {
            limiter
                .record_failure(&attempt(HOME, "carol", false), t0)
                .unwrap();
        }
        limiter
            .record_failure(&attempt(HOME, "dave", false), t0)
            .unwrap();
        limiter
            .record_failure(&attempt(HOME, "erin", false), t0)
            .unwrap();
        assert!(limiter
            .check(&attempt(HOME, "frank", false), t0)
            .unwrap()
            .is_err());
        limiter
            .record_success(&attempt(HOME, "carol", true))
            .unwrap();
        assert!(limiter
            .check(&attempt(HOME, "carol", true), t0)
            .unwrap()
            .is_ok());
        assert!(limiter
            .check(&attempt(HOME, "frank", false), t0)
            .unwrap()
            .is_ok());
        limiter
            .record_failure(&attempt(AWAY, "carol", false), t0)
            .unwrap();
        // Four failures for carol overall: new devices wait.
        assert!(limiter
            .check(&attempt(HOME, "carol", false), t0)
            .unwrap()
            .is_err());
    }

    #[test]
    fn signing_into_ones_own_account_forgives_no_guesses_at_others() {
        let limiter = LoginLimiter::new(limit(), Arc::new(LocalShared::default()));
        let t0: i64 = 1_700_000_000_000;
        // The attacker's own typo, then guesses at four other accounts with a sign-in of his
        // own between each.
        limiter
            .record_failure(&attempt(AWAY, "mallory", false), t0)
            .unwrap();
        for name in ["a1", "a2", "a3", "a4", "a5"] {
            assert!(limiter
                .check(&attempt(AWAY, name, false), t0)
                .unwrap()
                .is_ok());
            limiter
                .record_failure(&attempt(AWAY, name, false), t0)
                .unwrap();
            limiter
                .record_success(&attempt(AWAY, "Mallory", true))
                .unwrap();
        }
        // Five guesses at others stay counted: the address is held back for new devices.
        assert!(limiter
            .check(&attempt(AWAY, "a6", false), t0)
            .unwrap()
            .is_err());
        assert!(limiter
            .check(&attempt(AWAY, "mallory", true), t0)
            .unwrap()
            .is_ok());
    }

    #[test]
    fn ipv6_hosts_count_by_their_network() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        assert_eq!(
            crate::auth::client_ip::counted_as(a),
            crate::auth::client_ip::counted_as(b)
        );
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(crate::auth::client_ip::counted_as(mapped), HOME);
    }
}
