//! Checks one patrol's track against [`PatrolRules`] and explains the outcome as flags with the
//! numbers behind them, so a chief and a supervisor both see why a patrol does not count.
//!
//! Every flag makes a patrol invalid ([`PatrolFlag::invalidates`]); they are reported one by one,
//! not folded into a bool, so the reason and the size of the miss are visible (a single GPS glitch
//! on an otherwise good walk reads very differently from a driven track). This module only reads
//! points; it neither stores nor changes a patrol.

use super::times::{DeviceClock, OutOfBounds};
use super::PatrolRules;
use crate::geo::{distance_to_geometry_m, haversine_m, METRES_PER_DEGREE};
use crate::model::{Geometry, TrackPoint};
use crate::track::{stats, TrackStats};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;

/// Length of the window whose average speed must exceed the limit for a patrol to count as
/// driven: a minute rules out a short sprint or a burst of GPS noise.
pub const SPEED_WINDOW_MS: i64 = 60_000;

/// Side of the grid squares the ground a patrol covered is counted in (see [`Covered`]).
pub const GROUND_CELL_M: f64 = 20.0;
/// Most points a single step is sampled at when counting the squares it crosses.
const MAX_SAMPLES_PER_STEP: usize = 1_000;

/// Why a patrol does not count, with the numbers behind it. The `flag` tag is the flag's
/// stable code ([`PatrolFlag::code`]); [`PatrolFlag::message_zh`] says it in a sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "flag", rename_all = "snake_case")]
pub enum PatrolFlag {
    /// No fix was recorded.
    NoTrack,
    /// The phone reported that a mock-location app supplied the fixes.
    MockLocation,
    /// The phone's OS marked some fixes as simulated (mock location or simulated by software).
    MockFixes {
        fixes: u64,
        share: f64,
    },
    TooShort {
        minutes: f64,
        required: f64,
    },
    TooShortDistance {
        km: f64,
        required: f64,
    },
    /// The fastest one-minute average, away from jumps, was beyond walking or cycling.
    TooFast {
        speed_kmh: f64,
        limit_kmh: f64,
    },
    /// One step moved impossibly far, too fast: a spoofed position or a glitch. `seconds` is 0 or
    /// negative when the device clock went backwards over the step.
    Jump {
        at_ms: i64,
        metres: f64,
        seconds: f64,
    },
    /// Too few fixes within the corridor around the patrolled asset.
    OutsideCorridor {
        inside_share: f64,
        required: f64,
    },
    /// Fixes too far apart: the time spent in gaps longer than the rule's maximum is more than
    /// the allowance for lost signal. Such gaps are breaks, not walking time.
    SparseFixes {
        /// Time in gaps longer than `max_gap_s`, minutes.
        lost_minutes: f64,
        /// That time as a share of the patrol's time.
        lost_share: f64,
        allowed_share: f64,
        longest_gap_s: f64,
        max_gap_s: f64,
    },
    /// The track went over the same ground again and again: its length is many times the ground
    /// it covered (back and forth over one stretch does not make kilometres).
    Retraced {
        path_km: f64,
        ground_km: f64,
        passes: f64,
        max_passes: f64,
    },
    /// Fix times outside what the server can vouch for (see [`super::times`]): before the
    /// device's binding or previous sync (`early`), or after the server received them (`late`).
    /// The times are kept as recorded; figures use the bounded times.
    TimeOutOfBounds {
        early: u64,
        late: u64,
        /// The earliest and latest fix time as recorded.
        earliest_ms: i64,
        latest_ms: i64,
        not_before_ms: Option<i64>,
        not_after_ms: Option<i64>,
    },
}

impl PatrolFlag {
    /// Whether this flag makes the patrol invalid. Every flag does: a patrol must have a real,
    /// long enough track, walked at the asset, at the time it claims. Listed one by one so a
    /// new flag has to take a stand.
    pub fn invalidates(&self) -> bool {
        match self {
            PatrolFlag::NoTrack
            | PatrolFlag::MockLocation
            | PatrolFlag::MockFixes { .. }
            | PatrolFlag::TooShort { .. }
            | PatrolFlag::TooShortDistance { .. }
            | PatrolFlag::TooFast { .. }
            | PatrolFlag::Jump { .. }
            | PatrolFlag::OutsideCorridor { .. }
            | PatrolFlag::SparseFixes { .. }
            | PatrolFlag::Retraced { .. }
            | PatrolFlag::TimeOutOfBounds { .. } => true,
        }
    }

    /// The flag's stable code, as in its JSON `flag` field (`too_short`, `sparse_fixes`, …).
    pub fn code(&self) -> &'static str {
        match self {
            PatrolFlag::NoTrack => "no_track",
            PatrolFlag::MockLocation => "mock_location",
            PatrolFlag::MockFixes { .. } => "mock_fixes",
            PatrolFlag::TooShort { .. } => "too_short",
            PatrolFlag::TooShortDistance { .. } => "too_short_distance",
            PatrolFlag::TooFast { .. } => "too_fast",
            PatrolFlag::Jump { .. } => "jump",
            PatrolFlag::OutsideCorridor { .. } => "outside_corridor",
            PatrolFlag::SparseFixes { .. } => "sparse_fixes",
            PatrolFlag::Retraced { .. } => "retraced",
            PatrolFlag::TimeOutOfBounds { .. } => "time_out_of_bounds",
        }
    }

    /// The flag's short name for tables and reason lists (无效原因).
    pub fn name_zh(&self) -> &'static str {
        Self::name_zh_of(self.code()).unwrap_or("其他")
    }

    /// The short Chinese name of the flag with stable code `code` (as statistics list reasons),
    /// `None` for a code no flag has.
    pub fn name_zh_of(code: &str) -> Option<&'static str> {
        Some(match code {
            "no_track" => "无轨迹",
            "mock_location" => "模拟定位",
            "mock_fixes" => "模拟定位点",
            "too_short" => "时长不足",
            "too_short_distance" => "里程不足",
            "too_fast" => "速度过快",
            "jump" => "位置跳变",
            "outside_corridor" => "偏离巡查对象",
            "sparse_fixes" => "定位点过稀",
            "retraced" => "往返重复",
            "time_out_of_bounds" => "时间异常",
            _ => return None,
        })
    }

    /// The flag in one Chinese sentence with its numbers, for chiefs, supervisors and offices.
    pub fn message_zh(&self) -> String {
        match self {
            PatrolFlag::NoTrack => "未记录到GPS轨迹".into(),
            PatrolFlag::MockLocation => "手机报告使用了模拟定位".into(),
            PatrolFlag::MockFixes { fixes, share } => format!(
                "手机系统标记 {fixes} 个定位点为模拟定位，占 {:.0}%",
                share * 100.0
            ),
            PatrolFlag::TooShort { minutes, required } => {
                format!("巡查时长 {minutes:.1} 分钟，要求至少 {required} 分钟")
            }
            PatrolFlag::TooShortDistance { km, required } => {
                format!("巡查里程 {km:.2} 公里，要求至少 {required} 公里")
            }
            PatrolFlag::TooFast {
                speed_kmh,
                limit_kmh,
            } => format!("一分钟内平均速度 {speed_kmh:.0} 公里/小时，上限 {limit_kmh} 公里/小时"),
            PatrolFlag::Jump {
                metres, seconds, ..
            } => format!("位置在 {seconds:.1} 秒内跳变 {metres:.0} 米"),
            PatrolFlag::OutsideCorridor {
                inside_share,
                required,
            } => format!(
                "{:.0}% 的定位点在巡查对象范围内，要求至少 {:.0}%",
                inside_share * 100.0,
                required * 100.0
            ),
            PatrolFlag::SparseFixes {
                lost_minutes,
                lost_share,
                allowed_share,
                longest_gap_s,
                max_gap_s,
            } => format!(
                "定位点间隔超过 {max_gap_s:.0} 秒的时间共 {lost_minutes:.1} 分钟，占 {:.0}%（允许 {:.0}%），最长间隔 {longest_gap_s:.0} 秒",
                lost_share * 100.0,
                allowed_share * 100.0
            ),
            PatrolFlag::Retraced {
                path_km,
                ground_km,
                passes,
                max_passes,
            } => format!(
                "轨迹长 {path_km:.2} 公里，实际覆盖约 {ground_km:.2} 公里，相当于往返 {passes:.1} 遍（上限 {max_passes} 遍）"
            ),
            PatrolFlag::TimeOutOfBounds {
                early,
                late,
                earliest_ms,
                latest_ms,
                not_before_ms,
                not_after_ms,
            } => {
                let mut parts = Vec::new();
                if *early > 0 {
                    parts.push(format!(
                        "{early} 个定位点时间早于该手机绑定或上次同步（最早 {}，不早于 {}）",
                        china_time(*earliest_ms),
                        not_before_ms.map_or_else(|| "未知".into(), china_time)
                    ));
                }
                if *late > 0 {
                    parts.push(format!(
                        "{late} 个定位点时间晚于服务器收到的时间（最晚 {}，不晚于 {}）",
                        china_time(*latest_ms),
                        not_after_ms.map_or_else(|| "未知".into(), china_time)
                    ));
                }
                format!("{}；统计按服务器可确认的时间计", parts.join("；"))
            }
        }
    }
}

/// `YYYY-MM-DD HH:MM` in China time; a year beyond the calendar reads as it is.
fn china_time(at_ms: i64) -> String {
    let minutes = at_ms
        .saturating_add(super::CHINA_OFFSET_MS)
        .div_euclid(60_000);
    let (y, m, d) = super::civil_from_days(minutes.div_euclid(24 * 60));
    let minute = minutes.rem_euclid(24 * 60);
    format!("{y}-{m:02}-{d:02} {:02}:{:02}", minute / 60, minute % 60)
}

impl fmt::Display for PatrolFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message_zh())
    }
}

/// What a patrol counts for, from its fixes at their bounded times: walking time without the
/// breaks, the distance walked, and the ground it covered.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Covered {
    /// The first fix's bounded time: when the patrol counts as walked (its period).
    pub at_ms: Option<i64>,
    /// Time in steps no longer than the maximum gap.
    pub walking_ms: i64,
    /// Time in longer gaps (lost signal or breaks).
    pub lost_ms: i64,
    pub longest_gap_ms: i64,
    /// Length of the walking steps (gaps and jumps left out), metres.
    pub path_m: f64,
    /// Ground covered: distinct [`GROUND_CELL_M`] squares the walking steps crossed, times
    /// their side. An estimate that errs towards more ground (a diagonal walk crosses more
    /// squares than its length), so retracing is never flagged for a walk that did not retrace.
    pub ground_m: f64,
    /// The distance that counts: the path, at most `max_passes` times the ground covered.
    pub counted_m: f64,
}

/// The outcome of checking a patrol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatrolValidation {
    /// The track measured as recorded.
    pub stats: TrackStats,
    /// What the patrol counts for (bounded times, breaks and retracing left out): statistics
    /// use these figures.
    pub covered: Covered,
    /// Share of fixes within the corridor around the asset; `None` without an asset geometry or
    /// without fixes.
    pub inside_share: Option<f64>,
    pub flags: Vec<PatrolFlag>,
}

impl PatrolValidation {
    pub fn is_valid(&self) -> bool {
        !self.flags.iter().any(PatrolFlag::invalidates)
    }

    /// Kilometres that count (see [`Covered::counted_m`]).
    pub fn km(&self) -> f64 {
        self.covered.counted_m / 1000.0
    }

    /// Hours that count: walking time, breaks left out.
    pub fn hours(&self) -> f64 {
        self.covered.walking_ms as f64 / 3_600_000.0
    }
}

/// Checks a patrol whose times the server cannot bound (a phone judging its own patrol): see
/// [`validate_at`].
pub fn validate(
    points: &[TrackPoint],
    corridor: Option<&Geometry>,
    mock_location: bool,
    rules: &PatrolRules,
) -> PatrolValidation {
    validate_at(
        points,
        corridor,
        mock_location,
        rules,
        &DeviceClock::default(),
    )
}

/// Checks a patrol: its fixes in recorded order, the patrolled asset's geometry when known,
/// whether the phone reported a mock location, the rules that apply (see
/// [`super::RuleSet::rules_for`]) and what the server knows of the device's clock. An empty
/// track is flagged `NoTrack` alone (besides a mock location), since duration and distance say
/// nothing more about it.
///
/// Fix times outside the device's window are flagged and replaced by the bounded time for every
/// figure; a gap longer than `max_gap_s` is a break (not walking time, not distance); the
/// distance that counts is at most `max_passes` times the ground covered.
pub fn validate_at(
    points: &[TrackPoint],
    corridor: Option<&Geometry>,
    mock_location: bool,
    rules: &PatrolRules,
    clock: &DeviceClock,
) -> PatrolValidation {
    let stats = stats(points);
    let mut flags = Vec::new();
    if points.is_empty() {
        flags.push(PatrolFlag::NoTrack);
    }
    if mock_location {
        flags.push(PatrolFlag::MockLocation);
    }
    if points.is_empty() {
        return PatrolValidation {
            stats,
            covered: Covered::default(),
            inside_share: None,
            flags,
        };
    }
    let mock = points.iter().filter(|p| p.mock).count() as u64;
    if mock > 0 {
        flags.push(PatrolFlag::MockFixes {
            fixes: mock,
            share: mock as f64 / points.len() as f64,
        });
    }

    let (mut early, mut late) = (0u64, 0u64);
    for p in points {
        match clock.check(p.t_ms) {
            Some(OutOfBounds::Early) => early += 1,
            Some(OutOfBounds::Late) => late += 1,
            None => {}
        }
    }
    if early + late > 0 {
        flags.push(PatrolFlag::TimeOutOfBounds {
            early,
            late,
            earliest_ms: points.iter().map(|p| p.t_ms).min().unwrap_or_default(),
            latest_ms: points.iter().map(|p| p.t_ms).max().unwrap_or_default(),
            not_before_ms: clock.not_before_ms(),
            not_after_ms: clock.not_after_ms(),
        });
    }
    let bounded: Vec<TrackPoint> = points
        .iter()
        .map(|p| TrackPoint {
            t_ms: clock.bound(p.t_ms),
            ..*p
        })
        .collect();

    let (jumps, runs, jump_steps) = split_at_jumps(&bounded, rules);
    let covered = cover(&bounded, rules, &jump_steps);

    let minutes = covered.walking_ms as f64 / 60_000.0;
    if minutes < rules.min_minutes {
        flags.push(PatrolFlag::TooShort {
            minutes,
            required: rules.min_minutes,
        });
    }
    let km = covered.counted_m / 1000.0;
    if km < rules.min_km {
        flags.push(PatrolFlag::TooShortDistance {
            km,
            required: rules.min_km,
        });
    }
    let span = covered.walking_ms.saturating_add(covered.lost_ms);
    if covered.lost_ms > 0 && span > 0 {
        let lost_share = covered.lost_ms as f64 / span as f64;
        if lost_share > rules.max_lost_share {
            flags.push(PatrolFlag::SparseFixes {
                lost_minutes: covered.lost_ms as f64 / 60_000.0,
                lost_share,
                allowed_share: rules.max_lost_share,
                longest_gap_s: covered.longest_gap_ms as f64 / 1000.0,
                max_gap_s: rules.max_gap_s,
            });
        }
    }
    if covered.ground_m > 0.0 && covered.path_m > covered.ground_m * rules.max_passes {
        flags.push(PatrolFlag::Retraced {
            path_km: covered.path_m / 1000.0,
            ground_km: covered.ground_m / 1000.0,
            passes: covered.path_m / covered.ground_m,
            max_passes: rules.max_passes,
        });
    }

    let speed_kmh = runs
        .iter()
        .map(|run| fastest_window_mps(run) * 3.6)
        .fold(0.0, f64::max);
    if speed_kmh > rules.max_speed_kmh {
        flags.push(PatrolFlag::TooFast {
            speed_kmh,
            limit_kmh: rules.max_speed_kmh,
        });
    }
    flags.extend(jumps);

    let inside_share = corridor.map(|geometry| {
        let inside = points
            .iter()
            .filter(|p| distance_to_geometry_m(p.lat, p.lon, geometry) <= rules.corridor_m)
            .count();
        inside as f64 / points.len() as f64
    });
    if let Some(share) = inside_share.filter(|&s| s < rules.min_inside_share) {
        flags.push(PatrolFlag::OutsideCorridor {
            inside_share: share,
            required: rules.min_inside_share,
        });
    }
    PatrolValidation {
        stats,
        covered,
        inside_share,
        flags,
    }
}

/// Walking time, breaks, path and ground of a track at bounded times. A step longer than the
/// maximum gap is a break; a jump is no walking either; a step back in time adds no time.
fn cover(points: &[TrackPoint], rules: &PatrolRules, jump_steps: &HashSet<usize>) -> Covered {
    let max_gap_ms = if rules.max_gap_s.is_finite() && rules.max_gap_s > 0.0 {
        (rules.max_gap_s * 1000.0).min(i64::MAX as f64) as i64
    } else {
        0
    };
    // `points` are at bounded times already: the first one's is the counted time.
    let mut c = Covered {
        at_ms: points.first().map(|p| p.t_ms),
        ..Covered::default()
    };
    let lat0 = points.first().map_or(0.0, |p| p.lat);
    let per_lon = (METRES_PER_DEGREE * lat0.to_radians().cos()).max(1.0);
    let cell = |lat: f64, lon: f64| {
        (
            (lat * METRES_PER_DEGREE / GROUND_CELL_M).floor() as i64,
            (lon * per_lon / GROUND_CELL_M).floor() as i64,
        )
    };
    let mut cells: HashSet<(i64, i64)> = HashSet::new();
    if let Some(p) = points.first() {
        cells.insert(cell(p.lat, p.lon));
    }
    for (i, w) in points.windows(2).enumerate() {
        let dt = w[1].t_ms.saturating_sub(w[0].t_ms);
        if dt > max_gap_ms {
            c.lost_ms = c.lost_ms.saturating_add(dt);
            c.longest_gap_ms = c.longest_gap_ms.max(dt);
            continue;
        }
        if jump_steps.contains(&i) {
            continue;
        }
        c.walking_ms = c.walking_ms.saturating_add(dt.max(0));
        let metres = haversine_m(w[0].lat, w[0].lon, w[1].lat, w[1].lon);
        c.path_m += metres;
        let samples =
            ((metres / (GROUND_CELL_M / 2.0)).ceil() as usize).clamp(1, MAX_SAMPLES_PER_STEP);
        for k in 1..=samples {
            let f = k as f64 / samples as f64;
            cells.insert(cell(
                w[0].lat + (w[1].lat - w[0].lat) * f,
                w[0].lon + (w[1].lon - w[0].lon) * f,
            ));
        }
    }
    c.ground_m = cells.len() as f64 * GROUND_CELL_M;
    c.counted_m = if rules.max_passes.is_finite() && rules.max_passes > 0.0 {
        c.path_m.min(c.ground_m * rules.max_passes)
    } else {
        c.path_m
    };
    c
}

/// Finds the jumps, and cuts the track into runs between jumps and backward clock steps, inside
/// which time only moves forward and every step is physically possible.
#[allow(clippy::type_complexity)]
fn split_at_jumps<'a>(
    points: &'a [TrackPoint],
    rules: &PatrolRules,
) -> (Vec<PatrolFlag>, Vec<&'a [TrackPoint]>, HashSet<usize>) {
    let mut jumps = Vec::new();
    let mut steps = HashSet::new();
    let mut runs = Vec::new();
    let mut run_start = 0;
    for (i, w) in points.windows(2).enumerate() {
        let metres = haversine_m(w[0].lat, w[0].lon, w[1].lat, w[1].lon);
        let seconds = w[1].t_ms.saturating_sub(w[0].t_ms) as f64 / 1000.0;
        let too_fast = seconds <= 0.0 || metres / seconds * 3.6 > rules.jump_kmh;
        let jump = metres > rules.jump_m && too_fast;
        if jump {
            steps.insert(i);
            jumps.push(PatrolFlag::Jump {
                at_ms: w[1].t_ms,
                metres,
                seconds,
            });
        }
        if jump || seconds < 0.0 {
            runs.push(&points[run_start..=i]);
            run_start = i + 1;
        }
    }
    runs.push(&points[run_start..]);
    (jumps, runs, steps)
}

/// The fastest average over windows of at least [`SPEED_WINDOW_MS`], as straight-line
/// displacement over time: GPS noise wanders back and forth and so cannot add up to speed the way
/// it would along the path. `run` must not go back in time.
fn fastest_window_mps(run: &[TrackPoint]) -> f64 {
    let mut fastest: f64 = 0.0;
    let mut end = 0;
    for (start, a) in run.iter().enumerate() {
        end = end.max(start + 1);
        while end < run.len() && run[end].t_ms.saturating_sub(a.t_ms) < SPEED_WINDOW_MS {
            end += 1;
        }
        let Some(b) = run.get(end) else { break };
        let seconds = b.t_ms.saturating_sub(a.t_ms) as f64 / 1000.0;
        fastest = fastest.max(haversine_m(a.lat, a.lon, b.lat, b.lon) / seconds);
    }
    fastest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::METRES_PER_DEGREE;

    const T0: i64 = 1_717_200_000_000;
    const LAT: f64 = 36.70;
    const LON: f64 = 117.00;

    /// A river segment running 18 km east from the start of every test walk.
    fn river() -> Geometry {
        Geometry::LineString(vec![[LON, LAT], [LON + 0.1, LAT], [LON + 0.2, LAT]])
    }

    /// A 1 Hz walk east along the river at `speed` m/s for `seconds`, wiggling a few metres
    /// either side of the bank, `north_m` from the river.
    fn walk(speed: f64, seconds: i64, north_m: f64) -> Vec<TrackPoint> {
        let per_lon = METRES_PER_DEGREE * LAT.to_radians().cos();
        (0..=seconds)
            .map(|s| {
                let wiggle = 3.0 * (s as f64 / 7.0).sin();
                TrackPoint {
                    lat: LAT + (north_m + wiggle) / METRES_PER_DEGREE,
                    lon: LON + speed * s as f64 / per_lon,
                    t_ms: T0 + s * 1000,
                    accuracy_m: 5.0,
                    ..TrackPoint::default()
                }
            })
            .collect()
    }

    fn check(points: &[TrackPoint], mock: bool) -> PatrolValidation {
        validate(points, Some(&river()), mock, &PatrolRules::default())
    }

    #[test]
    fn a_fifteen_minute_walk_along_the_river_is_valid() {
        let v = check(&walk(1.3, 900, 0.0), false);
        assert_eq!(v.flags, vec![]);
        assert!(v.is_valid());
        assert_eq!(v.inside_share, Some(1.0));
        assert_eq!(v.stats.duration_ms, 900_000);
        assert!(v.stats.distance_m > 1_170.0, "{}", v.stats.distance_m);
    }

    #[test]
    fn a_short_patrol_is_flagged_with_its_minutes() {
        let v = check(&walk(2.5, 480, 0.0), false);
        assert_eq!(
            v.flags,
            vec![PatrolFlag::TooShort {
                minutes: 8.0,
                required: 10.0
            }]
        );
        assert!(!v.is_valid());
    }

    #[test]
    fn too_little_distance_is_flagged_with_its_km() {
        let v = check(&walk(0.5, 900, 0.0), false);
        match v.flags.as_slice() {
            [PatrolFlag::TooShortDistance { km, required }] => {
                assert!((0.45..0.6).contains(km), "{km}");
                assert_eq!(*required, 1.0);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_driven_patrol_is_too_fast() {
        let v = check(&walk(15.0, 900, 0.0), false);
        match v.flags.as_slice() {
            [PatrolFlag::TooFast {
                speed_kmh,
                limit_kmh,
            }] => {
                assert!((53.0..56.0).contains(speed_kmh), "{speed_kmh}");
                assert_eq!(*limit_kmh, 20.0);
            }
            other => panic!("{other:?}"),
        }
        // Cycling at 15 km/h is fine.
        assert_eq!(check(&walk(15.0 / 3.6, 900, 0.0), false).flags, vec![]);
    }

    #[test]
    fn a_spoofed_jump_is_flagged_and_not_mistaken_for_driving() {
        let mut track = walk(1.3, 900, 0.0);
        for p in &mut track[451..] {
            p.lon += 0.05; // 4.5 km further along the river in one second
        }
        let v = check(&track, false);
        match v.flags.as_slice() {
            [PatrolFlag::Jump {
                at_ms,
                metres,
                seconds,
            }] => {
                assert_eq!(*at_ms, T0 + 451_000);
                assert!((4_450.0..4_470.0).contains(metres), "{metres}");
                assert_eq!(*seconds, 1.0);
            }
            other => panic!("{other:?}"),
        }
        // A gap in the signal at walking pace is no jump: a short one is walking, a long one
        // is a break (not a jump either).
        let mut gap = walk(1.3, 900, 0.0);
        gap.drain(300..390);
        assert_eq!(check(&gap, false).flags, vec![]);
        let mut gap = walk(1.3, 900, 0.0);
        gap.drain(300..600);
        let flags = check(&gap, false).flags;
        assert!(flags.iter().all(|f| f.code() != "jump"), "{flags:?}");
        assert!(
            flags.iter().any(|f| f.code() == "sparse_fixes"),
            "{flags:?}"
        );
    }

    #[test]
    fn two_fixes_at_the_ends_of_a_river_segment_are_not_a_patrol() {
        // 1.4 km apart, 11 minutes apart: no walking at all, only a gap.
        let per_lon = METRES_PER_DEGREE * LAT.to_radians().cos();
        let track = vec![
            TrackPoint::new(LAT, LON, T0, 5.0),
            TrackPoint::new(LAT, LON + 1_400.0 / per_lon, T0 + 11 * 60_000, 5.0),
        ];
        let v = check(&track, false);
        assert!(!v.is_valid());
        assert_eq!(v.covered.walking_ms, 0);
        assert_eq!(v.covered.lost_ms, 11 * 60_000);
        assert_eq!(v.km(), 0.0);
        match v.flags.as_slice() {
            [PatrolFlag::TooShort { minutes, .. }, PatrolFlag::TooShortDistance { km, .. }, PatrolFlag::SparseFixes {
                lost_share,
                longest_gap_s,
                max_gap_s,
                ..
            }] => {
                assert_eq!((*minutes, *km), (0.0, 0.0));
                assert_eq!(
                    (*lost_share, *longest_gap_s, *max_gap_s),
                    (1.0, 660.0, 120.0)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            v.flags[2].message_zh().contains("最长间隔 660 秒"),
            "{}",
            v.flags[2]
        );
    }

    #[test]
    fn bouncing_over_one_stretch_is_flagged_and_its_km_capped() {
        // 30 minutes at walking pace back and forth over the same 200 m.
        let per_lon = METRES_PER_DEGREE * LAT.to_radians().cos();
        let track: Vec<TrackPoint> = (0..=1_800)
            .map(|s| {
                let phase = (s as f64 * 1.3) % 400.0;
                let x = if phase < 200.0 { phase } else { 400.0 - phase };
                TrackPoint::new(LAT, LON + x / per_lon, T0 + s * 1000, 5.0)
            })
            .collect();
        let v = check(&track, false);
        let retraced = v.flags.iter().find_map(|f| match f {
            PatrolFlag::Retraced { passes, .. } => Some(*passes),
            _ => None,
        });
        assert!(retraced.is_some_and(|p| p > 3.0), "{:?}", v.flags);
        assert!(v.covered.path_m > 1_500.0, "{}", v.covered.path_m);
        assert!(v.km() <= v.covered.ground_m * 3.0 / 1000.0 + 1e-9);
        assert!(!v.is_valid());
        // Out along the river and back is two passes, and counts in full.
        let mut there_and_back = walk(1.3, 900, 0.0);
        let back: Vec<TrackPoint> = there_and_back
            .iter()
            .rev()
            .enumerate()
            .map(|(i, p)| TrackPoint {
                t_ms: T0 + (901 + i as i64) * 1000,
                ..*p
            })
            .collect();
        there_and_back.extend(back);
        let v = check(&there_and_back, false);
        assert_eq!(v.flags, vec![]);
        assert!((v.km() - v.covered.path_m / 1000.0).abs() < 1e-9);
    }

    #[test]
    fn one_fix_dated_at_the_end_of_time_adds_no_hours() {
        let mut track = walk(1.3, 720, 0.0);
        let last = *track.last().unwrap();
        track.push(TrackPoint {
            t_ms: i64::MAX,
            ..last
        });
        let v = check(&track, false);
        assert_eq!(v.covered.walking_ms, 720_000);
        assert!(v.hours() < 0.21, "{}", v.hours());
        // Bounded by the server's receive time, the same fix is late and flagged.
        let clock = DeviceClock {
            received_ms: Some(T0 + 3_600_000),
            ..DeviceClock::default()
        };
        let v = validate_at(
            &track,
            Some(&river()),
            false,
            &PatrolRules::default(),
            &clock,
        );
        assert!(v.hours() < 0.21, "{}", v.hours());
        match v.flags.iter().find(|f| f.code() == "time_out_of_bounds") {
            Some(PatrolFlag::TimeOutOfBounds {
                early: 0,
                late: 1,
                latest_ms: i64::MAX,
                ..
            }) => {}
            other => panic!("{other:?} in {:?}", v.flags),
        }
        assert!(!v.is_valid());
    }

    #[test]
    fn a_backdated_walk_counts_at_the_bounded_time_and_is_flagged() {
        let clock = DeviceClock {
            bound_ms: Some(T0 + 60 * 86_400_000 - 3_600_000),
            previous_sync_ms: None,
            received_ms: Some(T0 + 60 * 86_400_000),
        };
        let v = validate_at(
            &walk(1.3, 900, 0.0),
            Some(&river()),
            false,
            &PatrolRules::default(),
            &clock,
        );
        assert_eq!(v.covered.at_ms, clock.not_before_ms());
        assert_eq!(v.covered.walking_ms, 0, "every fix is held at the floor");
        assert!(v.flags.iter().any(|f| matches!(
            f,
            PatrolFlag::TimeOutOfBounds {
                early: 901,
                late: 0,
                ..
            }
        )));
        assert!(!v.is_valid());
        // The same walk recorded after the binding counts as recorded.
        let v = validate_at(
            &walk(1.3, 900, 0.0),
            Some(&river()),
            false,
            &PatrolRules::default(),
            &DeviceClock {
                bound_ms: Some(T0 - 86_400_000),
                previous_sync_ms: Some(T0 - 3_600_000),
                received_ms: Some(T0 + 86_400_000),
            },
        );
        assert_eq!((v.flags, v.covered.at_ms), (vec![], Some(T0)));
    }

    #[test]
    fn fixes_the_os_called_simulated_are_flagged_with_their_share() {
        let mut track = walk(1.3, 899, 0.0);
        for p in track.iter_mut().take(225) {
            p.mock = true;
        }
        let v = check(&track, false);
        assert_eq!(
            v.flags,
            vec![PatrolFlag::MockFixes {
                fixes: 225,
                share: 0.25
            }]
        );
        assert_eq!(
            v.flags[0].message_zh(),
            "手机系统标记 225 个定位点为模拟定位，占 25%"
        );
    }

    #[test]
    fn speed_is_judged_across_a_gap() {
        // A walk, then 90 s without a fix, then 1.5 km further on: 60 km/h across the gap.
        let per_lon = METRES_PER_DEGREE * LAT.to_radians().cos();
        let mut track = walk(1.3, 900, 0.0);
        let last = *track.last().unwrap();
        track.push(TrackPoint {
            lon: last.lon + 1_500.0 / per_lon,
            t_ms: last.t_ms + 90_000,
            ..last
        });
        let v = check(&track, false);
        assert!(
            v.flags.iter().any(|f| f.code() == "too_fast"),
            "{:?}",
            v.flags
        );
    }

    #[test]
    fn a_walk_away_from_the_asset_is_outside_the_corridor() {
        let v = check(&walk(1.3, 900, 2_000.0), false);
        assert_eq!(
            v.flags,
            vec![PatrolFlag::OutsideCorridor {
                inside_share: 0.0,
                required: 0.6
            }]
        );
        // Half inside, half 2 km away.
        let mut half = walk(1.3, 899, 0.0);
        for p in &mut half[450..] {
            p.lat += 2_000.0 / METRES_PER_DEGREE;
        }
        let v = check(&half, false);
        assert_eq!(v.inside_share, Some(0.5));
        assert!(!v.is_valid());
    }

    #[test]
    fn a_walk_inside_a_forest_polygon_is_at_the_asset() {
        let forest = Geometry::Polygon(vec![vec![
            [LON - 0.01, LAT - 0.01],
            [LON + 0.03, LAT - 0.01],
            [LON + 0.03, LAT + 0.01],
            [LON - 0.01, LAT + 0.01],
        ]]);
        let v = validate(
            &walk(1.3, 900, 0.0),
            Some(&forest),
            false,
            &PatrolRules::default(),
        );
        assert_eq!((v.inside_share, v.flags), (Some(1.0), vec![]));
    }

    #[test]
    fn a_mock_location_is_flagged() {
        let v = check(&walk(1.3, 900, 0.0), true);
        assert_eq!(v.flags, vec![PatrolFlag::MockLocation]);
        assert!(!v.is_valid());
    }

    #[test]
    fn an_empty_track_is_flagged_alone() {
        let v = check(&[], false);
        assert_eq!((v.flags, v.inside_share), (vec![PatrolFlag::NoTrack], None));
        let v = validate(&[], None, true, &PatrolRules::default());
        assert_eq!(v.flags, vec![PatrolFlag::NoTrack, PatrolFlag::MockLocation]);
    }

    #[test]
    fn without_an_asset_no_corridor_is_checked() {
        let v = validate(
            &walk(1.3, 900, 2_000.0),
            None,
            false,
            &PatrolRules::default(),
        );
        assert_eq!((v.inside_share, v.flags), (None, vec![]));
    }

    #[test]
    fn flags_explain_themselves_in_json_and_words() {
        let flag = PatrolFlag::TooShort {
            minutes: 4.5,
            required: 10.0,
        };
        let json = serde_json::to_value(&flag).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"flag": "too_short", "minutes": 4.5, "required": 10.0})
        );
        assert_eq!(serde_json::from_value::<PatrolFlag>(json).unwrap(), flag);
        assert_eq!(
            serde_json::to_value(PatrolFlag::NoTrack).unwrap()["flag"],
            "no_track"
        );
        assert_eq!(flag.code(), "too_short");
        assert_eq!(flag.name_zh(), "时长不足");
        assert_eq!(PatrolFlag::name_zh_of("retraced"), Some("往返重复"));
        assert_eq!(PatrolFlag::name_zh_of("no_such_flag"), None);
        assert_eq!(flag.to_string(), "巡查时长 4.5 分钟，要求至少 10 分钟");
    }
}
