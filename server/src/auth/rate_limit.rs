//! Failed-login throttling per username: after `max_failures` wrong passwords within `window`,
//! further attempts for that username are refused (429 with `Retry-After`) until the oldest
//! failure leaves the window — without checking the password, so guessing cannot continue.
//!
//! In memory and per process: a restart forgets failures, which is acceptable for throttling
//! (accounts are not locked permanently). Usernames are compared case-insensitively.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimit {
    pub max_failures: usize,
    pub window: Duration,
}

impl Default for LoginLimit {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::from_secs(300),
        }
    }
}

#[derive(Debug)]
pub struct LoginLimiter {
    limit: LoginLimit,
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl LoginLimiter {
    pub fn new(limit: LoginLimit) -> Self {
        Self {
            limit,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` if this username is currently throttled.
    pub fn check(&self, username: &str, now: Instant) -> Result<(), Duration> {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let Some(times) = failures.get_mut(&username.to_lowercase()) else {
            return Ok(());
        };
        self.expire(times, now);
        if times.len() < self.limit.max_failures {
            return Ok(());
        }
        let oldest = times.front().copied().unwrap_or(now);
        Err((oldest + self.limit.window).saturating_duration_since(now))
    }

    pub fn record_failure(&self, username: &str, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        // Drop usernames whose failures have all expired, so guessing random names cannot
        // grow the map without bound.
        failures.retain(|_, times| {
            times
                .back()
                .is_some_and(|t| now.duration_since(*t) < self.limit.window)
        });
        let times = failures.entry(username.to_lowercase()).or_default();
        self.expire(times, now);
        times.push_back(now);
    }

    pub fn record_success(&self, username: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(&username.to_lowercase());
    }

    fn expire(&self, times: &mut VecDeque<Instant>, now: Instant) {
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= self.limit.window)
        {
            times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_after_max_failures_until_window_passes() {
        let limiter = LoginLimiter::new(LoginLimit {
            max_failures: 3,
            window: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(limiter.check("Alice", t0 + Duration::from_secs(i)).is_ok());
            limiter.record_failure("alice", t0 + Duration::from_secs(i));
        }
        let retry = limiter
            .check("ALICE", t0 + Duration::from_secs(10))
            .unwrap_err();
        assert_eq!(retry, Duration::from_secs(50));
        assert!(limiter.check("bob", t0).is_ok());
        assert!(limiter.check("alice", t0 + Duration::from_secs(60)).is_ok());
    }

    #[test]
    fn success_clears_failures() {
        let limiter = LoginLimiter::new(LoginLimit {
            max_failures: 2,
            window: Duration::from_secs(60),
        });
        let t0 = Instant::now();
        limiter.record_failure("carol", t0);
        limiter.record_success("carol");
        limiter.record_failure("carol", t0);
        assert!(limiter.check("carol", t0).is_ok());
    }
}
