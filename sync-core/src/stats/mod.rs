//! Statistics for assessment (考核): patrol compliance per chief, problem handling per division,
//! monthly and weekly trends, overdue work per department, and hotspots of recurring problems
//! for concentrated remediation (集中治理).
//!
//! Everything is computed from documents, never from arrival: each patrol and issue is reduced
//! once to a small fact ([`PatrolFact`], [`IssueFact`]) keyed by its document id, and every figure
//! is a pure function of those facts, the reference data and a [`Filter`]. A patrol counts in the
//! period it happened (its first GPS fix), so a phone that syncs a week late adds its patrols to
//! the weeks they were walked and changes nothing else. A [`FactIndex`] is updated document by
//! document as the change feed moves, so a request re-reads only what changed.
//!
//! ```
//! use sync_core::doc::{actor_for, NewPatrol, PatrolDoc, Record};
//! use sync_core::model::{DivisionCode, Jurisdiction, Level, Role, System, User};
//! use sync_core::rules::RuleSet;
//! use sync_core::stats::{patrol_report, FactIndex, Filter, Reference, Window};
//! use sync_core::track::walking_track;
//!
//! let village = DivisionCode::new("370105014201").unwrap();
//! let chief = User {
//!     id: "u-chief".into(),
//!     username: "demo-chief".into(),
//!     display_name: "小寨村河长".into(),
//!     role: Role::Chief {
//!         system: System::River,
//!         level: Level::Village,
//!         jurisdiction: Jurisdiction { division: village.clone(), assets: vec![] },
//!     },
//!     active: true,
//! };
//! let monday = 1_717_344_000_000; // 2024-06-03 00:00 in Jinan (16:00 UTC the day before)
//! let mut patrol = PatrolDoc::create(actor_for(1), &NewPatrol {
//!     system: System::River,
//!     asset: "xqh-01".into(),
//!     chief: chief.id.clone(),
//!     division: village,
//!     device: "phone-1".into(),
//!     started_at_ms: monday + 9 * 3_600_000,
//! }).unwrap();
//! patrol.append_track(&walking_track(36.72, 116.98, monday + 9 * 3_600_000, 1_200, 1)).unwrap();
//!
//! let users = [chief];
//! let rules = RuleSet::default();
//! let reference = Reference { users: &users, divisions: &[], assets: &[], rules: &rules, categories: &[] };
//! let mut index = FactIndex::default();
//! index.upsert_bytes(&patrol.save(), &reference).unwrap();
//!
//! // One week, one valid patrol: the village quota of one a week is met.
//! let filter = Filter::new(Window { from_ms: monday, to_ms: monday + 7 * 86_400_000 });
//! let report = patrol_report(&index, &reference, &filter);
//! assert_eq!(report.chiefs[0].valid, 1);
//! assert_eq!(report.chiefs[0].compliance, Some(1.0));
//! ```
//!
//! This module does no I/O and keeps no clock: callers pass `now_ms` where overdue matters.

mod facts;
mod hotspots;
mod issues;
mod patrols;
mod percentile;

#[cfg(test)]
mod tests;

pub use facts::{DocFact, FactIndex, IssueFact, PatrolFact, CLOCK_SKEW_TOLERANCE_MS, FACTS_FORMAT};
pub use hotspots::{hotspots, Hotspot, HotspotParams};
pub use issues::{
    issue_report, DepartmentRow, IssueCounts, IssueGroup, IssueReport, MonthRow, WeekRow,
};
pub use patrols::{level_name, patrol_report, ChiefRow, PatrolGroup, PatrolReport, ReasonCount};
pub use percentile::percentile;

use serde::{Deserialize, Serialize};

use crate::model::{Asset, Category, Division, DivisionCode, Level, System, User};
use crate::rules::{civil_from_days, RuleSet, CHINA_OFFSET_MS};

pub(crate) const DAY_MS: i64 = 86_400_000;

/// A half-open stretch of time `[from_ms, to_ms)`, Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Window {
    pub fn contains(&self, at_ms: i64) -> bool {
        self.from_ms <= at_ms && at_ms < self.to_ms
    }
}

/// What a supervisor asks statistics for. `None` means no restriction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    pub window: Window,
    pub system: Option<System>,
    /// Chiefs, patrols and issues inside this division.
    pub division: Option<DivisionCode>,
    /// The chief's level (for issues: the reporting chief's level).
    pub level: Option<Level>,
    pub asset: Option<String>,
    /// Divisions are totalled at this level (a village inside a subdistrict counts for the
    /// subdistrict when grouping by subdistrict).
    pub group_by: Level,
}

impl Filter {
    /// Everything in `window`, totalled by subdistrict.
    pub fn new(window: Window) -> Self {
        Self {
            window,
            system: None,
            division: None,
            level: None,
            asset: None,
            group_by: Level::Subdistrict,
        }
    }

    /// Whether a patrol walked in the window is selected (`level` is its chief's level).
    pub fn selects_patrol(&self, patrol: &PatrolFact, reference: &Reference) -> bool {
        self.window.contains(patrol.at_ms)
            && self.place_matches(patrol.system, &patrol.division, Some(&patrol.asset))
            && self
                .level
                .is_none_or(|l| patrol.chief_level(reference) == l)
    }

    /// Whether an issue reported in the window is selected (`level` is its reporter's level).
    pub fn selects_issue(&self, issue: &IssueFact, reference: &Reference) -> bool {
        self.window.contains(issue.reported_at_ms) && issues::matches(issue, reference, self)
    }

    fn place_matches(&self, system: System, division: &DivisionCode, asset: Option<&str>) -> bool {
        self.system.is_none_or(|s| s == system)
            && self.division.as_ref().is_none_or(|d| d.contains(division))
            && match (&self.asset, asset) {
                (Some(wanted), Some(asset)) => wanted == asset,
                (Some(_), None) => false,
                (None, _) => true,
            }
    }
}

/// The reference data statistics read: who the chiefs are, division names, asset geometry (for
/// the corridor check), patrol rules and quotas, category names.
#[derive(Debug, Clone, Copy)]
pub struct Reference<'a> {
    pub users: &'a [User],
    pub divisions: &'a [Division],
    pub assets: &'a [Asset],
    pub rules: &'a RuleSet,
    pub categories: &'a [Category],
}

impl Reference<'_> {
    pub fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    /// The division's name, or its code when unknown.
    pub fn division_name(&self, code: &DivisionCode) -> String {
        self.divisions
            .iter()
            .find(|d| d.code == *code)
            .map_or_else(|| code.to_string(), |d| d.name.clone())
    }

    pub fn category_name(&self, code: &str) -> String {
        self.categories
            .iter()
            .find(|c| c.code == code)
            .map_or_else(|| code.to_string(), |c| c.name_zh.clone())
    }
}

/// The division containing `code` at `level`; a code above `level` stays as it is.
pub fn rollup(code: &DivisionCode, level: Level) -> DivisionCode {
    let keep = match level {
        Level::District => 6,
        Level::Subdistrict => 9,
        Level::Village => 12,
    };
    let s = code.as_str();
    DivisionCode::new(format!("{}{}", &s[..keep], "0".repeat(12 - keep)))
        .unwrap_or_else(|_| code.clone())
}

/// `(year, month, day)` of an instant in China time.
pub fn china_date(at_ms: i64) -> (i64, u32, u32) {
    civil_from_days(at_ms.saturating_add(CHINA_OFFSET_MS).div_euclid(DAY_MS))
}

/// Whole days (fractional) between two instants, for durations shown to people.
pub(crate) fn days(ms: i64) -> f64 {
    ms as f64 / DAY_MS as f64
}
