//! Checks one patrol's track against [`PatrolRules`] and explains the outcome as flags with the
//! numbers behind them, so a chief and a supervisor both see why a patrol does not count.
//!
//! Every flag makes a patrol invalid ([`PatrolFlag::invalidates`]); they are reported one by one,
//! not folded into a bool, so the reason and the size of the miss are visible (a single GPS glitch
//! on an otherwise good walk reads very differently from a driven track). This module only reads
//! points; it neither stores nor changes a patrol.

use super::PatrolRules;
use crate::geo::{distance_to_geometry_m, haversine_m};
use crate::model::{Geometry, TrackPoint};
use crate::track::{stats, TrackStats};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Length of the window whose average speed must exceed the limit for a patrol to count as
/// driven: a minute rules out a short sprint or a burst of GPS noise.
pub const SPEED_WINDOW_MS: i64 = 60_000;

/// Why a patrol does not count, with the numbers behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "flag", rename_all = "snake_case")]
pub enum PatrolFlag {
    /// No fix was recorded.
    NoTrack,
    /// The phone reported that a mock-location app supplied the fixes.
    MockLocation,
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
}

impl PatrolFlag {
    /// Whether this flag makes the patrol invalid. Every flag does: a patrol must have a real,
    /// long enough track, walked at the asset. Listed one by one so a new flag has to take a stand.
    pub fn invalidates(&self) -> bool {
        match self {
            PatrolFlag::NoTrack
            | PatrolFlag::MockLocation
            | PatrolFlag::TooShort { .. }
            | PatrolFlag::TooShortDistance { .. }
            | PatrolFlag::TooFast { .. }
            | PatrolFlag::Jump { .. }
            | PatrolFlag::OutsideCorridor { .. } => true,
        }
    }
}

impl fmt::Display for PatrolFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PatrolFlag::NoTrack => write!(f, "no GPS track was recorded"),
            PatrolFlag::MockLocation => write!(f, "the phone reported a mock location"),
            PatrolFlag::TooShort { minutes, required } => {
                write!(
                    f,
                    "lasted {minutes:.1} min, at least {required} min required"
                )
            }
            PatrolFlag::TooShortDistance { km, required } => {
                write!(f, "covered {km:.2} km, at least {required} km required")
            }
            PatrolFlag::TooFast {
                speed_kmh,
                limit_kmh,
            } => {
                write!(
                    f,
                    "moved at {speed_kmh:.0} km/h for a minute, limit {limit_kmh} km/h"
                )
            }
            PatrolFlag::Jump {
                metres, seconds, ..
            } => {
                write!(f, "jumped {metres:.0} m in {seconds:.1} s")
            }
            PatrolFlag::OutsideCorridor {
                inside_share,
                required,
            } => write!(
                f,
                "{:.0}% of the track was at the asset, at least {:.0}% required",
                inside_share * 100.0,
                required * 100.0
            ),
        }
    }
}

/// The outcome of checking a patrol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatrolValidation {
    pub stats: TrackStats,
    /// Share of fixes within the corridor around the asset; `None` without an asset geometry or
    /// without fixes.
    pub inside_share: Option<f64>,
    pub flags: Vec<PatrolFlag>,
}

impl PatrolValidation {
    pub fn is_valid(&self) -> bool {
        !self.flags.iter().any(PatrolFlag::invalidates)
    }
}

/// Checks a patrol: its fixes in recorded order, the patrolled asset's geometry when known,
/// whether the phone reported a mock location, and the rules that apply (see
/// [`super::RuleSet::rules_for`]). An empty track is flagged `NoTrack` alone (besides a mock
/// location), since duration and distance say nothing more about it.
pub fn validate(
    points: &[TrackPoint],
    corridor: Option<&Geometry>,
    mock_location: bool,
    rules: &PatrolRules,
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
            inside_share: None,
            flags,
        };
    }

    let minutes = stats.duration_ms as f64 / 60_000.0;
    if minutes < rules.min_minutes {
        flags.push(PatrolFlag::TooShort {
            minutes,
            required: rules.min_minutes,
        });
    }
    let km = stats.distance_m / 1000.0;
    if km < rules.min_km {
        flags.push(PatrolFlag::TooShortDistance {
            km,
            required: rules.min_km,
        });
    }

    let (jumps, runs) = split_at_jumps(points, rules);
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
        inside_share,
        flags,
    }
}

/// Finds the jumps, and cuts the track into runs between jumps and backward clock steps, inside
/// which time only moves forward and every step is physically possible.
fn split_at_jumps<'a>(
    points: &'a [TrackPoint],
    rules: &PatrolRules,
) -> (Vec<PatrolFlag>, Vec<&'a [TrackPoint]>) {
    let mut jumps = Vec::new();
    let mut runs = Vec::new();
    let mut run_start = 0;
    for (i, w) in points.windows(2).enumerate() {
        let metres = haversine_m(w[0].lat, w[0].lon, w[1].lat, w[1].lon);
        let seconds = w[1].t_ms.saturating_sub(w[0].t_ms) as f64 / 1000.0;
        let too_fast = seconds <= 0.0 || metres / seconds * 3.6 > rules.jump_kmh;
        let jump = metres > rules.jump_m && too_fast;
        if jump {
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
    (jumps, runs)
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
        // A gap in the signal at walking pace is no jump.
        let mut gap = walk(1.3, 900, 0.0);
        gap.drain(300..600);
        assert_eq!(check(&gap, false).flags, vec![]);
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
        assert_eq!(flag.to_string(), "lasted 4.5 min, at least 10 min required");
    }
}
