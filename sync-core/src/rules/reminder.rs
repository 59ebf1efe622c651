//! Patrol reminders: how far a chief is with the quota of the current period, so the server can
//! remind chiefs (and tell their supervisors) before the period ends rather than after.
//!
//! Counting is the quota's own (China-time calendar periods); callers pass the start times of
//! the chief's valid patrols. Pure logic, no I/O, no clock.

use serde::{Deserialize, Serialize};

use super::quota::{Period, Quota};

/// A chief's progress against a quota in the period containing `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaProgress {
    pub period: Period,
    pub period_start_ms: i64,
    /// First instant of the next period: the quota is due before it.
    pub period_end_ms: i64,
    pub required: u32,
    pub done: u32,
}

impl QuotaProgress {
    pub fn is_met(&self) -> bool {
        self.done >= self.required
    }

    /// Patrols still owed in this period.
    pub fn missing(&self) -> u32 {
        self.required.saturating_sub(self.done)
    }
}

/// Progress against `quota` in the period containing `now_ms`, counting the valid patrols that
/// started in it.
pub fn quota_progress(quota: &Quota, valid_patrol_starts_ms: &[i64], now_ms: i64) -> QuotaProgress {
    let index = quota.period.index(now_ms);
    let (start, end) = (
        quota.period.start_ms(index),
        quota.period.start_ms(index + 1),
    );
    let done = valid_patrol_starts_ms
        .iter()
        .filter(|&&t| start <= t && t < end)
        .count();
    QuotaProgress {
        period: quota.period,
        period_start_ms: start,
        period_end_ms: end,
        required: quota.count,
        done: u32::try_from(done).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Level;
    use crate::rules::{days_from_civil, CHINA_OFFSET_MS};

    fn china(y: i64, m: u32, d: u32, hour: i64) -> i64 {
        days_from_civil(y, m, d) * 86_400_000 + hour * 3_600_000 - CHINA_OFFSET_MS
    }

    #[test]
    fn counts_only_the_current_period() {
        let weekly = Quota {
            system: None,
            level: Level::Village,
            count: 1,
            period: Period::Week,
        };
        // Wednesday 5 June 2024; the week runs from Monday 3 June.
        let now = china(2024, 6, 5, 10);
        let last_week = china(2024, 6, 1, 9);
        let progress = quota_progress(&weekly, &[last_week], now);
        assert_eq!(progress.period_start_ms, china(2024, 6, 3, 0));
        assert_eq!(progress.period_end_ms, china(2024, 6, 10, 0));
        assert!(!progress.is_met());
        assert_eq!(progress.missing(), 1);
        let progress = quota_progress(&weekly, &[last_week, china(2024, 6, 3, 8)], now);
        assert!(progress.is_met());
        assert_eq!((progress.done, progress.missing()), (1, 0));
    }
}
