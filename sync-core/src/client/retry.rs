//! When a device sends a request again, and how long it waits first.
//!
//! A thousand phones that regain signal together must not hammer the server in lockstep: each
//! failed attempt doubles a backoff window (up to a cap), the wait is spread at random over half
//! of it (jitter), and a server that answers `503` with `Retry-After` is never asked again
//! sooner than it said. The phone app (mobile-ffi), the field simulator and the tests all wait
//! by this one policy.
//!
//! Sans-IO: the caller supplies the randomness (a number in `[0, 1)`) and does the sleeping, so
//! the policy is a pure function that tests can check exactly. It must not decide what a
//! request means: only whether and when the same request goes out again.
//!
//! ```
//! use std::time::Duration;
//! use sync_core::client::retry::{RetryPolicy, parse_retry_after};
//!
//! let policy = RetryPolicy::PHONE;
//! // The server shed the first attempt and asked for 2 s: wait between 2 and 4 s.
//! let wait = policy.delay(1, parse_retry_after("2"), 0.5).unwrap();
//! assert_eq!(wait, Duration::from_secs(3));
//! // Without Retry-After, the first retry waits between 0.5 and 1 s.
//! assert_eq!(policy.delay(1, None, 0.0), Some(Duration::from_millis(500)));
//! // After the last attempt the caller gives up (the next scheduled sync tries again).
//! assert_eq!(policy.delay(policy.max_attempts, None, 0.0), None);
//! ```

use std::time::Duration;

/// How often and how patiently a request is sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The backoff window after the first failed attempt; it doubles with each further one.
    pub base: Duration,
    /// The largest backoff window.
    pub cap: Duration,
    /// Attempts in all, the first included; after that many failures the caller gives up.
    pub max_attempts: u32,
    /// The longest single wait: a server asking for more (a long `Retry-After`) ends the
    /// retries now, and the app's next scheduled sync tries again instead of a phone sitting
    /// in a blocked call.
    pub max_wait: Duration,
}

impl RetryPolicy {
    /// The phone's policy for sync and photo requests: about 1, 2, 4, 8, 16 s between six
    /// attempts, never waiting more than two minutes at once.
    pub const PHONE: RetryPolicy = RetryPolicy {
        base: Duration::from_secs(1),
        cap: Duration::from_secs(60),
        max_attempts: 6,
        max_wait: Duration::from_secs(120),
    };

    /// One attempt only: failures go straight back to the caller.
    pub const NONE: RetryPolicy = RetryPolicy {
        base: Duration::ZERO,
        cap: Duration::ZERO,
        max_attempts: 1,
        max_wait: Duration::ZERO,
    };

    /// How long to wait after `failed` attempts (1 after the first failure) before the next
    /// one, or `None` to give up. `retry_after` is what the server asked for; `jitter` is a
    /// random number in `[0, 1)` (values outside are clamped).
    ///
    /// The wait is drawn from `[floor, 2 × floor)` where `floor` is the larger of the server's
    /// `Retry-After` and half the backoff window `min(cap, base × 2^(failed − 1))`. Drawing
    /// above the server's figure, never below it, spreads devices that were all told the same
    /// number over a whole interval instead of sending them back at one instant.
    pub fn delay(
        &self,
        failed: u32,
        retry_after: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        if failed == 0 || failed >= self.max_attempts {
            return None;
        }
        let doublings = (failed - 1).min(31);
        let window = self
            .base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.cap)
            .min(self.cap);
        let floor = retry_after.unwrap_or(Duration::ZERO).max(window / 2);
        let jitter = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let spread = Duration::try_from_secs_f64(floor.as_secs_f64() * jitter).ok()?;
        let wait = floor.checked_add(spread)?;
        (wait <= self.max_wait).then_some(wait)
    }
}

/// Whether an HTTP status means "the same request may succeed later": the server shed it (503)
/// or a gateway in front of it could not reach it (502, 504). Every other status is an answer.
pub fn retryable_status(status: u16) -> bool {
    matches!(status, 502..=504)
}

/// Whether a request cut by this I/O failure may go out again: the connection broke after it
/// was made (reset, closed early, the server stopped reading a shed request's body). A
/// connection that cannot be made at all (no network, server down) and a timeout are reported
/// at once instead: retrying them within the same call would only keep the caller waiting, and
/// the app's next scheduled sync tries again anyway.
pub fn retryable_io(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        kind,
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
    )
}

/// The delay of a `Retry-After` header in seconds (`"3"`). The HTTP-date form and anything
/// unreadable give `None`, and the caller falls back to its own backoff.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn backoff_doubles_up_to_the_cap_within_equal_jitter() {
        let policy = RetryPolicy {
            base: MS(100),
            cap: MS(1_000),
            max_attempts: 10,
            max_wait: Duration::from_secs(60),
        };
        let low: Vec<_> = (1..10)
            .map(|n| policy.delay(n, None, 0.0).unwrap())
            .collect();
        assert_eq!(
            low,
            [50, 100, 200, 400, 500, 500, 500, 500, 500]
                .map(MS)
                .to_vec()
        );
        let high = policy.delay(3, None, 0.999_999).unwrap();
        assert!(high > MS(399) && high < MS(400), "{high:?}");
    }

    #[test]
    fn retry_after_is_a_floor_and_jitter_spreads_above_it() {
        let policy = RetryPolicy::PHONE;
        for jitter in [0.0, 0.25, 0.5, 0.99] {
            let wait = policy
                .delay(1, Some(Duration::from_secs(5)), jitter)
                .unwrap();
            assert!(wait >= Duration::from_secs(5) && wait < Duration::from_secs(10));
        }
        // A short Retry-After does not cut a long backoff short.
        assert_eq!(
            policy.delay(5, Some(Duration::from_secs(1)), 0.0),
            Some(Duration::from_secs(8))
        );
    }

    #[test]
    fn devices_told_the_same_retry_after_come_back_spread_out() {
        let policy = RetryPolicy::PHONE;
        let mut waits: Vec<_> = (0..1000)
            .map(|i| {
                let jitter = f64::from(i) / 1000.0;
                policy
                    .delay(1, Some(Duration::from_secs(1)), jitter)
                    .unwrap()
            })
            .collect();
        waits.sort();
        waits.dedup();
        assert_eq!(waits.len(), 1000, "every device picks its own moment");
        assert_eq!(waits[0], Duration::from_secs(1));
        assert!(waits[999] < Duration::from_secs(2));
    }

    #[test]
    fn gives_up_after_the_last_attempt_or_a_wait_too_long() {
        let policy = RetryPolicy::PHONE;
        assert!(policy.delay(policy.max_attempts - 1, None, 0.0).is_some());
        assert_eq!(policy.delay(policy.max_attempts, None, 0.0), None);
        assert_eq!(policy.delay(0, None, 0.0), None);
        assert_eq!(policy.delay(1, Some(Duration::from_secs(3600)), 0.0), None);
        assert_eq!(RetryPolicy::NONE.delay(1, None, 0.5), None);
    }

    #[test]
    fn odd_inputs_never_panic_or_overflow() {
        let policy = RetryPolicy {
            base: Duration::MAX,
            cap: Duration::MAX,
            max_attempts: u32::MAX,
            max_wait: Duration::MAX,
        };
        for failed in [1, 2, 31, 32, 33, u32::MAX - 1] {
            for jitter in [f64::NAN, f64::INFINITY, -1.0, 2.0] {
                let _ = policy.delay(failed, Some(Duration::MAX), jitter);
            }
        }
        assert_eq!(RetryPolicy::PHONE.delay(1, None, f64::NAN), Some(MS(500)));
    }

    #[test]
    fn reads_retry_after_seconds_only() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2026 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after(""), None);
        assert!(retryable_status(503) && retryable_status(502) && retryable_status(504));
        assert!(!retryable_status(500) && !retryable_status(429) && !retryable_status(401));
        assert!(retryable_io(std::io::ErrorKind::ConnectionReset));
        assert!(!retryable_io(std::io::ErrorKind::ConnectionRefused));
        assert!(!retryable_io(std::io::ErrorKind::TimedOut));
    }
}
