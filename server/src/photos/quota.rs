//! How many photo bytes each user may send in a day, so that one account (a lost phone, a
//! script with a stolen token) cannot fill the server's disk with pictures no record needs.
//!
//! Every byte of an upload request counts when it arrives, whether it completes a photo, is a
//! chunk, repeats a photo already stored or is refused: each was received and handled. A
//! request is checked against the day's quota and counted in one step of the store, so
//! uploads arriving at once never pass it together. The day
//! is China's calendar day (UTC+8), when the chiefs work. The counts are kept by the store
//! (`storage::Shared`): on PostgreSQL in the database, so a day is counted once however a phone
//! spreads its uploads over the servers; on sled in the memory of its one process, where a
//! restart forgives the day, which only the operator can cause.

use std::sync::Arc;

use crate::storage::{Shared, StoreError};

/// Default bytes per user and day: about 500 prepared photos, or 30 full-resolution originals
/// at the 8 MiB limit, far beyond a day of patrols and reports.
pub const DEFAULT_DAILY_PHOTO_BYTES: u64 = 256 * 1024 * 1024;

const DAY_MS: i64 = 86_400_000;
/// China Standard Time, UTC+8, in milliseconds.
const CHINA_OFFSET_MS: i64 = 8 * 3_600_000;

/// What the quota says about the next request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaCheck {
    Allowed,
    /// Over the day's bytes; `retry_after_secs` is the time until the next day starts.
    Exceeded {
        limit: u64,
        retry_after_secs: u64,
    },
}

#[derive(Debug)]
pub struct UploadQuota {
    daily_bytes: u64,
    /// The bytes each user sent each day, shared by the servers of one store.
    used: Arc<dyn Shared>,
}

fn day_of(now_ms: i64) -> i64 {
    (now_ms + CHINA_OFFSET_MS).div_euclid(DAY_MS)
}

impl UploadQuota {
    pub fn new(daily_bytes: u64, used: Arc<dyn Shared>) -> Self {
        Self { daily_bytes, used }
    }

    pub fn daily_bytes(&self) -> u64 {
        self.daily_bytes
    }

    /// Bytes `user` has sent today. Blocking.
    pub fn used(&self, user: &str, now_ms: i64) -> Result<u64, StoreError> {
        self.used.uploaded(user, day_of(now_ms))
    }

    /// Whether `user` may send `bytes` more today, counting nothing: for a request whose
    /// length is announced before its body arrives. Blocking.
    pub fn check(&self, user: &str, bytes: u64, now_ms: i64) -> Result<QuotaCheck, StoreError> {
        if self.used(user, now_ms)?.saturating_add(bytes) <= self.daily_bytes {
            return Ok(QuotaCheck::Allowed);
        }
        Ok(self.exceeded(now_ms))
    }

    /// Counts `bytes` received from `user` if they fit in today's quota, checked and counted
    /// in one step of the store, so uploads arriving at once (on any server) never pass the
    /// quota together; nothing is counted when they do not fit. Blocking.
    pub fn take(&self, user: &str, bytes: u64, now_ms: i64) -> Result<QuotaCheck, StoreError> {
        Ok(
            match self
                .used
                .charge_upload(user, day_of(now_ms), bytes, self.daily_bytes)?
            {
                Some(_) => QuotaCheck::Allowed,
                None => self.exceeded(now_ms),
            },
        )
    }

    /// The refusal at `now_ms`: the quota, and the seconds until the next day starts.
    fn exceeded(&self, now_ms: i64) -> QuotaCheck {
        let next_day_ms = (day_of(now_ms) + 1) * DAY_MS - CHINA_OFFSET_MS;
        QuotaCheck::Exceeded {
            limit: self.daily_bytes,
            retry_after_secs: u64::try_from((next_day_ms - now_ms + 999) / 1000).unwrap_or(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_of_bytes_per_user_renewed_at_midnight_in_china() {
        let quota = UploadQuota::new(1_000, Arc::new(crate::storage::LocalShared::default()));
        // 23:59 in Beijing (15:59 UTC) on the 20 428th day since 1970.
        let late = 20_429 * DAY_MS - CHINA_OFFSET_MS - 60_000;
        assert_eq!(
            quota.check("u-a", 1_000, late).unwrap(),
            QuotaCheck::Allowed
        );
        assert_eq!(quota.take("u-a", 900, late).unwrap(), QuotaCheck::Allowed);
        assert_eq!(quota.check("u-a", 100, late).unwrap(), QuotaCheck::Allowed);
        assert_eq!(
            quota.check("u-a", 101, late).unwrap(),
            QuotaCheck::Exceeded {
                limit: 1_000,
                retry_after_secs: 60
            }
        );
        // Another user has his own day.
        assert_eq!(
            quota.check("u-b", 1_000, late).unwrap(),
            QuotaCheck::Allowed
        );
        // A minute later it is a new day in Beijing.
        let next = late + 60_000;
        assert_eq!(quota.used("u-a", next).unwrap(), 0);
        assert_eq!(
            quota.check("u-a", 1_000, next).unwrap(),
            QuotaCheck::Allowed
        );
        assert_eq!(quota.take("u-a", 10, next).unwrap(), QuotaCheck::Allowed);
        assert_eq!(quota.used("u-a", next).unwrap(), 10);
        // What does not fit is refused and not counted.
        assert!(matches!(
            quota.take("u-a", 991, next).unwrap(),
            QuotaCheck::Exceeded { limit: 1_000, .. }
        ));
        assert_eq!(quota.used("u-a", next).unwrap(), 10);
    }
}
