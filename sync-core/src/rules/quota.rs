//! Patrol frequency quotas (巡查频次) and the calendar they are counted in.
//!
//! Periods are whole calendar periods in China time (UTC+8, no daylight saving): weeks run Monday
//! to Sunday, months and quarters start on the 1st. A patrol at 23:30 on 31 March in Jinan
//! (15:30 UTC) counts for March; one at 00:30 on 1 April (16:30 UTC on 31 March) for April. The
//! calendar is the proleptic Gregorian one, computed by hand (days-from-civil) so the crate needs
//! no date library; the arithmetic saturates at the far ends of `i64` instead of panicking.
//! Instants are Unix milliseconds, like every time in ChiefSync. This module does not decide
//! which patrols are valid; callers pass the start times of valid ones.

use crate::model::{Level, System};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// China Standard Time's offset from UTC.
pub const CHINA_OFFSET_MS: i64 = 8 * 3_600_000;
const MS_PER_DAY: i64 = 86_400_000;
/// 1970-01-01 was a Thursday; shifting by three days puts Monday at the start of each week.
const EPOCH_WEEKDAY_FROM_MONDAY: i64 = 3;

/// The calendar period a quota counts patrols in.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Week,
    Month,
    Quarter,
}

impl Period {
    /// Number of the period (China time) containing `at_ms`; consecutive periods have
    /// consecutive numbers, so the server can bucket patrols by it.
    pub fn index(self, at_ms: i64) -> i64 {
        let day = at_ms.saturating_add(CHINA_OFFSET_MS).div_euclid(MS_PER_DAY);
        match self {
            Period::Week => (day + EPOCH_WEEKDAY_FROM_MONDAY).div_euclid(7),
            Period::Month => {
                let (y, m, _) = civil_from_days(day);
                y * 12 + i64::from(m) - 1
            }
            Period::Quarter => {
                let (y, m, _) = civil_from_days(day);
                y * 4 + (i64::from(m) - 1) / 3
            }
        }
    }

    /// The first instant of the period numbered `index`, Unix milliseconds.
    pub fn start_ms(self, index: i64) -> i64 {
        let day = match self {
            Period::Week => index
                .saturating_mul(7)
                .saturating_sub(EPOCH_WEEKDAY_FROM_MONDAY),
            Period::Month => {
                days_from_civil(index.div_euclid(12), index.rem_euclid(12) as u32 + 1, 1)
            }
            Period::Quarter => {
                days_from_civil(index.div_euclid(4), index.rem_euclid(4) as u32 * 3 + 1, 1)
            }
        };
        day.saturating_mul(MS_PER_DAY)
            .saturating_sub(CHINA_OFFSET_MS)
    }

    /// How many periods overlap `[from_ms, to_ms)`, partial ones included.
    pub fn overlapping(self, from_ms: i64, to_ms: i64) -> u64 {
        if to_ms <= from_ms {
            return 0;
        }
        (self.index(to_ms - 1) - self.index(from_ms)) as u64 + 1
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 {
        year.saturating_sub(1)
    } else {
        year
    };
    let era = y.div_euclid(400);
    let year_of_era = y.rem_euclid(400);
    // Months counted from March, so the leap day falls at the end of the year.
    let month_from_march = (i64::from(month) + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era.saturating_mul(146_097)
        .saturating_add(day_of_era - 719_468)
}

/// The proleptic Gregorian date `(year, month, day)` of a day number since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = era
        .saturating_mul(400)
        .saturating_add(year_of_era + i64::from(month <= 2));
    (year, month, day)
}

/// At least `count` valid patrols per `period` by chiefs at `level` (of `system`, or of every
/// system when `None`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quota {
    pub system: Option<System>,
    pub level: Level,
    /// Patrols per period, 1 to [`Quota::MAX_COUNT`].
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    pub count: u32,
    pub period: Period,
}

/// How a chief did against a quota over a stretch of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Compliance {
    /// Periods overlapping the stretch.
    pub periods: u64,
    /// Periods in which the chief patrolled at least `count` times.
    pub periods_met: u64,
    /// Patrols the quota asks for over the stretch.
    pub required: u64,
    /// Patrols done in the stretch.
    pub done: u64,
}

impl Quota {
    /// Most patrols a quota may ask for in one period.
    pub const MAX_COUNT: u32 = 100;

    /// Patrols required in `[from_ms, to_ms)`: `count` for every period overlapping it. A partial
    /// period owes the full count, as a chief appointed mid-month still patrols that month.
    pub fn required(&self, from_ms: i64, to_ms: i64) -> u64 {
        self.period
            .overlapping(from_ms, to_ms)
            .saturating_mul(u64::from(self.count))
    }

    /// Compares the start times of a chief's valid patrols with the quota over `[from_ms, to_ms)`;
    /// patrols outside the stretch are ignored.
    pub fn compliance(&self, patrol_starts_ms: &[i64], from_ms: i64, to_ms: i64) -> Compliance {
        let mut per_period: BTreeMap<i64, u64> = BTreeMap::new();
        let within = patrol_starts_ms
            .iter()
            .filter(|&&t| from_ms <= t && t < to_ms);
        for &t in within {
            *per_period.entry(self.period.index(t)).or_default() += 1;
        }
        let periods = self.period.overlapping(from_ms, to_ms);
        // With a count of 0 every period is met, including those without a patrol.
        let periods_met = if self.count == 0 {
            periods
        } else {
            let met = per_period.values().filter(|&&n| n >= u64::from(self.count));
            met.count() as u64
        };
        Compliance {
            periods,
            periods_met,
            required: self.required(from_ms, to_ms),
            done: per_period.values().sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix milliseconds of a wall-clock time in China.
    fn china(y: i64, m: u32, d: u32, hour: i64) -> i64 {
        days_from_civil(y, m, d) * MS_PER_DAY + hour * 3_600_000 - CHINA_OFFSET_MS
    }

    fn quota(count: u32, period: Period) -> Quota {
        Quota {
            system: None,
            level: Level::Village,
            count,
            period,
        }
    }

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(
            civil_from_days(days_from_civil(2024, 2, 29) + 1),
            (2024, 3, 1)
        );
        assert_eq!(
            civil_from_days(days_from_civil(2023, 2, 28) + 1),
            (2023, 3, 1)
        );
        for day in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn periods_are_counted_in_china_time() {
        // 2024-01-31 23:30 in Jinan is 15:30 UTC: still January.
        let late_january = china(2024, 1, 31, 0) + 23 * 3_600_000 + 30 * 60_000;
        assert_eq!(Period::Month.index(late_january), 2024 * 12);
        assert_eq!(Period::Month.index(china(2024, 2, 1, 0)), 2024 * 12 + 1);
        assert_eq!(Period::Month.index(china(2024, 2, 1, 0) - 1), 2024 * 12);
        assert_eq!(Period::Month.start_ms(2024 * 12 + 1), china(2024, 2, 1, 0));
        assert_eq!(
            Period::Quarter.start_ms(Period::Quarter.index(china(2024, 8, 15, 9))),
            china(2024, 7, 1, 0)
        );
        // 2024-06-02 is a Sunday; its week began on Monday 27 May.
        let sunday = china(2024, 6, 2, 20);
        assert_eq!(
            Period::Week.start_ms(Period::Week.index(sunday)),
            china(2024, 5, 27, 0)
        );
        assert_eq!(
            Period::Week.index(china(2024, 6, 3, 0)),
            Period::Week.index(sunday) + 1
        );
    }

    #[test]
    fn quotas_count_every_period_the_stretch_touches() {
        let weekly = quota(1, Period::Week);
        let monthly = quota(2, Period::Month);
        let quarterly = quota(1, Period::Quarter);
        // Sunday to Tuesday crosses a week boundary.
        assert_eq!(
            weekly.required(china(2024, 6, 2, 8), china(2024, 6, 4, 8)),
            2
        );
        // The last day of January and the first of February: two months, two patrols each.
        assert_eq!(
            monthly.required(china(2024, 1, 31, 0), china(2024, 2, 2, 0)),
            4
        );
        // A whole quarter, half-open: 1 April itself is not included.
        assert_eq!(
            quarterly.required(china(2024, 1, 1, 0), china(2024, 4, 1, 0)),
            1
        );
        assert_eq!(
            quarterly.required(china(2024, 3, 15, 0), china(2024, 4, 15, 0)),
            2
        );
        // A whole year: 2024 began on a Monday and its last week starts on 30 December.
        let (from, to) = (china(2024, 1, 1, 0), china(2025, 1, 1, 0));
        assert_eq!(weekly.required(from, to), 53);
        assert_eq!(quota(1, Period::Month).required(from, to), 12);
        assert_eq!(quarterly.required(from, to), 4);
        assert_eq!(weekly.required(to, from), 0);
        assert_eq!(weekly.required(from, from), 0);
    }

    #[test]
    fn compliance_counts_periods_met() {
        let monthly = quota(2, Period::Month);
        let patrols = [
            china(2024, 1, 3, 9),
            china(2024, 1, 31, 23), // still January in Jinan
            china(2024, 2, 10, 9),
            china(2024, 3, 1, 9),
            china(2024, 3, 2, 9),
            china(2024, 4, 1, 9), // after the stretch
        ];
        let c = monthly.compliance(&patrols, china(2024, 1, 1, 0), china(2024, 4, 1, 0));
        assert_eq!(
            c,
            Compliance {
                periods: 3,
                periods_met: 2,
                required: 6,
                done: 5
            }
        );
        let (from, to) = (china(2024, 1, 1, 0), china(2024, 4, 1, 0));
        let none = quota(0, Period::Month).compliance(&[], from, to);
        assert_eq!((none.periods, none.periods_met, none.required), (3, 3, 0));
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        for period in [Period::Week, Period::Month, Period::Quarter] {
            assert!(period.overlapping(i64::MIN, i64::MAX) > 0);
            for index in [
                i64::MIN,
                i64::MAX,
                period.index(i64::MIN),
                period.index(i64::MAX),
            ] {
                let _ = period.start_ms(index);
            }
        }
        let _ = civil_from_days(i64::MIN);
        let _ = civil_from_days(i64::MAX);
        let _ = days_from_civil(i64::MIN, 1, 1);
        let _ = days_from_civil(i64::MAX, 12, 31);
    }
}
