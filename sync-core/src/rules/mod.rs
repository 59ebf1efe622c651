//! Patrol rules as configuration: what makes a patrol valid (duration, distance, plausible speed,
//! jumps, corridor around the asset) and how often chiefs must patrol, per system, region and
//! chief level. The server owns a [`RuleSet`] and ships it to devices as reference data, so a
//! phone can tell a chief before they stop walking that the patrol would not count.
//!
//! Defaults follow DESIGN.md (common provincial practice): at least 10 minutes and 1 km; district
//! chiefs once a quarter, subdistrict chiefs once a month, village chiefs once a week. A patrol
//! must be evidence of walking: fixes no more than two minutes apart except for a fifth of the
//! time (lost signal), no more than three passes over the same ground, times inside what the
//! server can vouch for ([`times`]). Stricter local practice is a change of configuration, not
//! of code.
//!
//! Which rules govern a patrol is decided by its chief as the server knows them (system, level
//! and jurisdiction from the user record), never by the division the phone wrote into the patrol:
//! a chief cannot pick laxer rules by writing another division. This module decides nothing about
//! who may patrol what (that is authorization) and stores nothing.

mod quota;
mod reminder;
mod settings;
pub mod times;
mod validate;

pub use quota::{civil_from_days, days_from_civil, Compliance, Period, Quota, CHINA_OFFSET_MS};
pub use reminder::{quota_progress, QuotaProgress};
pub use settings::{check_categories, rules_from_json, SettingError};
pub use times::{DeviceClock, OutOfBounds, EARLY_TOLERANCE_MS, LATE_TOLERANCE_MS};
pub use validate::{
    validate, validate_at, Covered, PatrolFlag, PatrolValidation, GROUND_CELL_M, SPEED_WINDOW_MS,
};

use crate::model::{DivisionCode, Level, System};
use serde::{Deserialize, Serialize};

/// Thresholds a patrol track is checked against. Missing fields in stored configuration take
/// the defaults, so rules written before a field existed still load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default)]
pub struct PatrolRules {
    /// Shortest patrol that counts, minutes.
    pub min_minutes: f64,
    /// Shortest distance that counts, kilometres.
    pub min_km: f64,
    /// Fastest plausible sustained speed on foot or bicycle; faster means driving.
    pub max_speed_kmh: f64,
    /// A step between two fixes longer than this, at an implied speed above `jump_kmh`, is an
    /// impossible move (spoofed or a glitch). Shorter steps are ordinary GPS noise.
    pub jump_m: f64,
    /// Implied speed of a step above which a long step is a jump rather than a gap in the signal.
    pub jump_kmh: f64,
    /// Width of the corridor on each side of a river line, or around a polygon, that counts as
    /// being at the asset.
    pub corridor_m: f64,
    /// Smallest share of fixes inside the corridor for the patrol to count as patrolling the asset.
    pub min_inside_share: f64,
    /// Longest step between two fixes that is still walking, seconds; a longer one is a break
    /// (lost signal, a rest), counted neither as time nor as distance.
    pub max_gap_s: f64,
    /// Largest share of a patrol's time that may lie in such breaks (allowance for lost signal
    /// under trees, in gullies, in a pocket).
    pub max_lost_share: f64,
    /// Most times the track may pass over the ground it covered (out and back along a river is
    /// two); more is flagged, and the distance that counts is at most this many passes.
    pub max_passes: f64,
}

impl Default for PatrolRules {
    fn default() -> Self {
        Self {
            min_minutes: 10.0,
            min_km: 1.0,
            max_speed_kmh: 20.0,
            // 300 m in one step at over 150 km/h: no chief on foot or bicycle does that, and a
            // gap in the signal (a long step at walking pace) is not mistaken for it.
            jump_m: 300.0,
            jump_kmh: 150.0,
            corridor_m: 200.0,
            min_inside_share: 0.6,
            // Phones record a fix every 1–10 s while a patrol runs; two minutes without one is
            // lost signal or a stop. A fifth of the time is allowed for it.
            max_gap_s: 120.0,
            max_lost_share: 0.2,
            max_passes: 3.0,
        }
    }
}

/// Rules that replace the default for patrols matching every criterion given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleOverride {
    pub system: Option<System>,
    pub level: Option<Level>,
    /// The division the patrolling chief belongs to lies inside this one.
    pub region: Option<DivisionCode>,
    pub rules: PatrolRules,
}

impl RuleOverride {
    fn matches(&self, system: System, level: Level, division: &DivisionCode) -> bool {
        self.system.is_none_or(|s| s == system)
            && self.level.is_none_or(|l| l == level)
            && self.region.as_ref().is_none_or(|r| r.contains(division))
    }

    /// Narrower place first (village over subdistrict over district over anywhere), then a
    /// named system, then a named level.
    fn specificity(&self) -> (u8, bool, bool) {
        let place = match self.region.as_ref().map(DivisionCode::level) {
            None => 0,
            Some(Level::District) => 1,
            Some(Level::Subdistrict) => 2,
            Some(Level::Village) => 3,
        };
        (place, self.system.is_some(), self.level.is_some())
    }
}

/// All patrol rules and frequency quotas of a deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RuleSet {
    pub default: PatrolRules,
    pub overrides: Vec<RuleOverride>,
    pub quotas: Vec<Quota>,
}

impl Default for RuleSet {
    fn default() -> Self {
        let quota = |level, period| Quota {
            system: None,
            level,
            count: 1,
            period,
        };
        Self {
            default: PatrolRules::default(),
            overrides: Vec::new(),
            quotas: vec![
                quota(Level::District, Period::Quarter),
                quota(Level::Subdistrict, Period::Month),
                quota(Level::Village, Period::Week),
            ],
        }
    }
}

impl RuleSet {
    /// The rules for a patrol by a chief of `system` and `level` whose division is `division`:
    /// the most specific matching override (see [`RuleOverride`]'s ordering: place, then system,
    /// then level), the later one listed on a tie, or the default when none matches.
    pub fn rules_for(&self, system: System, level: Level, division: &DivisionCode) -> &PatrolRules {
        self.overrides
            .iter()
            .enumerate()
            .filter(|(_, o)| o.matches(system, level, division))
            .max_by_key(|(i, o)| (o.specificity(), *i))
            .map_or(&self.default, |(_, o)| &o.rules)
    }

    /// The frequency quota for chiefs of `system` at `level`: one naming the system wins over one
    /// for every system, the later one listed on a tie.
    pub fn quota_for(&self, system: System, level: Level) -> Option<&Quota> {
        self.quotas
            .iter()
            .enumerate()
            .filter(|(_, q)| q.level == level && q.system.is_none_or(|s| s == system))
            .max_by_key(|(i, q)| (q.system.is_some(), *i))
            .map(|(_, q)| q)
    }
}

/// Checks a patrol with the rules for its chief against the corridor of its asset, with the
/// phone's mock-location flag and the fixes' OS verdicts, its times bounded by what the server
/// knows of the device (`clock`; [`DeviceClock::default`] on a phone, which knows nothing more).
/// The phone's summary, `/patrols`, the reminders and the statistics all judge by this one
/// function.
///
/// The rules are those of the chief's system, level and jurisdiction as given in `chief` (the
/// server's user record), never the patrol's own division, which the phone writes. Without a
/// chief role (an unknown or former user) the default rules apply.
pub fn validate_patrol(
    patrol: &crate::doc::Patrol,
    points: &[crate::model::TrackPoint],
    chief: Option<&crate::model::Role>,
    rules: &RuleSet,
    assets: &[crate::model::Asset],
    clock: &DeviceClock,
) -> PatrolValidation {
    let rules = rules_for_chief(rules, patrol.system, chief);
    let corridor = assets
        .iter()
        .find(|a| a.id == patrol.asset)
        .map(|a| &a.geometry);
    let mock = patrol.flags.get("mock_location").copied().unwrap_or(false);
    validate_at(points, corridor, mock, rules, clock)
}

/// When a patrol counts as walked (the period it counts for): its first fix, or the phone's
/// start time without a track, bounded by `clock` (see [`times`]).
pub fn counted_time(
    started_at_ms: i64,
    points: &[crate::model::TrackPoint],
    clock: &DeviceClock,
) -> i64 {
    clock.bound(points.first().map_or(started_at_ms, |p| p.t_ms))
}

/// The patrol rules for a patrol of `system` by `chief` (see [`validate_patrol`]).
pub fn rules_for_chief<'a>(
    rules: &'a RuleSet,
    system: System,
    chief: Option<&crate::model::Role>,
) -> &'a PatrolRules {
    match chief {
        Some(crate::model::Role::Chief {
            level,
            jurisdiction,
            ..
        }) => rules.rules_for(system, *level, &jurisdiction.division),
        _ => &rules.default,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> DivisionCode {
        DivisionCode::new(s).unwrap()
    }

    fn rules(min_km: f64) -> PatrolRules {
        PatrolRules {
            min_km,
            ..PatrolRules::default()
        }
    }

    fn over(
        system: Option<System>,
        level: Option<Level>,
        region: Option<&str>,
        min_km: f64,
    ) -> RuleOverride {
        RuleOverride {
            system,
            level,
            region: region.map(code),
            rules: rules(min_km),
        }
    }

    #[test]
    fn defaults_follow_the_design() {
        let set = RuleSet::default();
        assert_eq!(set.default.min_minutes, 10.0);
        assert_eq!(set.default.min_km, 1.0);
        let period = |level| {
            set.quota_for(System::Forest, level)
                .map(|q| (q.count, q.period))
        };
        assert_eq!(period(Level::District), Some((1, Period::Quarter)));
        assert_eq!(period(Level::Subdistrict), Some((1, Period::Month)));
        assert_eq!(period(Level::Village), Some((1, Period::Week)));
    }

    #[test]
    fn the_most_specific_override_wins() {
        use Level::Village;
        use System::River;
        let set = RuleSet {
            overrides: vec![
                over(Some(River), None, None, 2.0),
                over(None, None, Some("370105014000"), 3.0),
                over(Some(River), Some(Village), Some("370105014201"), 4.0),
                over(Some(River), Some(Village), None, 5.0),
                over(None, None, Some("370105000000"), 6.0),
            ],
            ..RuleSet::default()
        };
        let km = |system, level, division| set.rules_for(system, level, &code(division)).min_km;
        // The village's own override.
        assert_eq!(km(River, Village, "370105014201"), 4.0);
        // A neighbouring village: its subdistrict's override beats the system-wide ones.
        assert_eq!(km(River, Village, "370105014202"), 3.0);
        // Another subdistrict: the district override beats system and level alone.
        assert_eq!(km(River, Village, "370105001001"), 6.0);
        // Outside the district: system and level beat system alone.
        assert_eq!(km(River, Village, "370102001001"), 5.0);
        assert_eq!(km(River, Level::District, "370102000000"), 2.0);
        assert_eq!(km(System::Forest, Village, "370102001001"), 1.0);
    }

    #[test]
    fn on_a_tie_the_later_override_and_quota_win() {
        let set = RuleSet {
            overrides: vec![
                over(Some(System::Field), None, None, 2.0),
                over(Some(System::Field), None, None, 3.0),
            ],
            quotas: vec![
                Quota {
                    system: Some(System::Field),
                    level: Level::Village,
                    count: 2,
                    period: Period::Week,
                },
                Quota {
                    system: None,
                    level: Level::Village,
                    count: 1,
                    period: Period::Week,
                },
                Quota {
                    system: Some(System::Field),
                    level: Level::Village,
                    count: 3,
                    period: Period::Week,
                },
            ],
            ..RuleSet::default()
        };
        let rules = set.rules_for(System::Field, Level::Village, &code("370105014201"));
        assert_eq!(rules.min_km, 3.0);
        assert_eq!(
            set.quota_for(System::Field, Level::Village)
                .map(|q| q.count),
            Some(3)
        );
        assert_eq!(
            set.quota_for(System::River, Level::Village)
                .map(|q| q.count),
            Some(1)
        );
        assert_eq!(set.quota_for(System::River, Level::District), None);
    }

    #[test]
    fn the_chiefs_jurisdiction_picks_the_rules_never_the_patrols_division() {
        use crate::doc::{actor_for, NewPatrol, PatrolDoc};
        use crate::model::{Jurisdiction, Role};
        let mut lax = over(None, None, Some("370102000000"), 0.1);
        lax.rules.min_minutes = 1.0;
        let set = RuleSet {
            overrides: vec![lax],
            ..RuleSet::default()
        };
        let chief = Role::Chief {
            system: System::River,
            level: Level::Village,
            jurisdiction: Jurisdiction {
                division: code("370105014201"),
                assets: vec![],
            },
        };
        // The phone writes the lax district's division into the patrol.
        let doc = PatrolDoc::create(
            actor_for(1),
            &NewPatrol {
                system: System::River,
                asset: "a".into(),
                chief: "c".into(),
                division: code("370102001001"),
                device: "d".into(),
                started_at_ms: 0,
            },
        )
        .unwrap();
        let patrol = doc.view().unwrap();
        let walk = crate::track::walking_track(36.7, 117.0, 0, 5 * 60, 3);
        let judged = |role: Option<&Role>| {
            validate_patrol(&patrol, &walk, role, &set, &[], &DeviceClock::default())
        };
        let km = judged(Some(&chief)).km();
        assert!((0.1..1.0).contains(&km), "{km}");
        assert!(
            !judged(Some(&chief)).is_valid(),
            "the chief's own rules: 10 min, 1 km"
        );
        let lax_chief = Role::Chief {
            system: System::River,
            level: Level::Village,
            jurisdiction: Jurisdiction {
                division: code("370102001001"),
                assets: vec![],
            },
        };
        assert!(
            judged(Some(&lax_chief)).is_valid(),
            "a chief of the lax district"
        );
        // Without a chief role the default rules apply, not the written division's.
        assert!(!judged(None).is_valid());
        assert!(rules_for_chief(&set, System::River, None).min_km == 1.0);
    }

    #[test]
    fn rule_sets_travel_as_json() {
        let set = RuleSet {
            overrides: vec![over(Some(System::Forest), None, Some("370105014000"), 0.5)],
            ..RuleSet::default()
        };
        let json = serde_json::to_value(&set).unwrap();
        assert_eq!(json["quotas"][2]["period"], "week");
        assert_eq!(json["overrides"][0]["region"], "370105014000");
        let back: RuleSet = serde_json::from_value(json).unwrap();
        assert_eq!(back, set);
        let partial: PatrolRules = serde_json::from_str(r#"{"min_km": 2}"#).unwrap();
        assert_eq!(partial, rules(2.0));
        let bad = r#"{"system":null,"level":null,"region":"3701","rules":{}}"#;
        assert!(serde_json::from_str::<RuleOverride>(bad).is_err());
    }
}
