//! Patrol compliance (巡查考核): one row per chief — required patrols from the quota, valid and
//! invalid patrols with their reasons, compliance, kilometres, hours, issues found — with totals
//! per division and per chief level, and the chiefs who did not patrol at all.
//!
//! Kilometres and hours count every patrol walked in the window, valid or not (they measure the
//! effort); compliance counts valid patrols only.
//!
//! Compliance is counted in periods, as assessment rules are written: a quota period (week,
//! month, quarter) is met when the chief walked at least its quota of valid patrols in it, and a
//! chief's compliance is periods met over periods required. Two patrols in one week do not make
//! up for a week with none. A group offers both aggregates offices use, labelled: the share of
//! chief-periods met (`compliance`), and the share of chiefs who met every period
//! (`chiefs_compliant_share`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{rollup, FactIndex, Filter, Reference};
use crate::model::{DivisionCode, Level, Role, System, User};
use crate::rules::PatrolFlag;

/// How many of a chief's invalid patrols failed one rule (a patrol failing two rules counts for
/// both).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonCount {
    /// The flag's name, e.g. `too_short`.
    pub reason: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChiefRow {
    pub chief: String,
    pub name: String,
    pub level: Level,
    pub system: System,
    pub division: DivisionCode,
    pub division_name: String,
    /// Patrols the quota asks for in the window (0 without a quota).
    pub required: u64,
    /// Quota periods overlapping the window, and those in which the quota was met.
    pub periods: u64,
    pub periods_met: u64,
    pub patrols: u64,
    pub valid: u64,
    pub invalid: u64,
    pub invalid_reasons: Vec<ReasonCount>,
    /// Periods met / periods required (0 to 1); `None` when nothing is required.
    pub compliance: Option<f64>,
    /// The same figure, kept for readers of the earlier field (periods never exceed 1).
    pub compliance_display: Option<f64>,
    pub km: f64,
    pub hours: f64,
    /// Issues this chief reported in the window.
    pub issues_found: u64,
    /// Patrols whose phone clock disagreed with GPS time.
    pub clock_skew: u64,
}

/// Totals of a group of chiefs (a division or a level).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatrolGroup {
    /// Division code or level name.
    pub key: String,
    pub name: String,
    pub chiefs: u64,
    pub chiefs_without_patrols: u64,
    pub required: u64,
    pub patrols: u64,
    pub valid: u64,
    pub invalid: u64,
    /// Quota periods of the group's chiefs in the window (each chief's periods added up), and
    /// those met.
    pub periods: u64,
    pub periods_met: u64,
    /// Share of chief-periods met: `periods_met / periods`; `None` when nothing is required.
    pub compliance: Option<f64>,
    /// Chiefs with a quota in the window, and of those, chiefs who met every period.
    pub chiefs_required: u64,
    pub chiefs_compliant: u64,
    /// Share of chiefs fully compliant: `chiefs_compliant / chiefs_required`; `None` when no
    /// chief has a quota.
    pub chiefs_compliant_share: Option<f64>,
    pub km: f64,
    pub hours: f64,
    pub issues_found: u64,
}

impl PatrolGroup {
    fn new(key: String, name: String) -> Self {
        Self {
            key,
            name,
            chiefs: 0,
            chiefs_without_patrols: 0,
            required: 0,
            patrols: 0,
            valid: 0,
            invalid: 0,
            periods: 0,
            periods_met: 0,
            compliance: None,
            chiefs_required: 0,
            chiefs_compliant: 0,
            chiefs_compliant_share: None,
            km: 0.0,
            hours: 0.0,
            issues_found: 0,
        }
    }

    fn add(&mut self, row: &ChiefRow) {
        self.chiefs += 1;
        self.chiefs_without_patrols += u64::from(row.patrols == 0);
        self.required += row.required;
        self.patrols += row.patrols;
        self.valid += row.valid;
        self.invalid += row.invalid;
        self.km += row.km;
        self.hours += row.hours;
        self.issues_found += row.issues_found;
        self.periods = self.periods.saturating_add(row.periods);
        self.periods_met = self.periods_met.saturating_add(row.periods_met);
        if row.periods > 0 {
            self.chiefs_required += 1;
            self.chiefs_compliant += u64::from(row.periods_met >= row.periods);
        }
        self.compliance = share(self.periods_met, self.periods);
        self.chiefs_compliant_share = share(self.chiefs_compliant, self.chiefs_required);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatrolReport {
    pub filter: Filter,
    /// Ordered by division code, then level, then chief id.
    pub chiefs: Vec<ChiefRow>,
    pub by_division: Vec<PatrolGroup>,
    pub by_level: Vec<PatrolGroup>,
    pub totals: PatrolGroup,
    /// Ids of the chiefs with no patrol at all in the window.
    pub without_patrols: Vec<String>,
}

fn flag_name(flag: &PatrolFlag) -> String {
    flag.code().to_owned()
}

fn chief_matches(user: &User, filter: &Filter) -> bool {
    let Role::Chief {
        system,
        level,
        jurisdiction,
    } = &user.role
    else {
        return false;
    };
    user.active
        && filter.system.is_none_or(|s| s == *system)
        && filter.level.is_none_or(|l| l == *level)
        && filter
            .division
            .as_ref()
            .is_none_or(|d| d.contains(&jurisdiction.division))
        && filter
            .asset
            .as_ref()
            .is_none_or(|a| jurisdiction.assets.contains(a))
}

/// The patrol statistics of every active chief the filter selects.
pub fn patrol_report(index: &FactIndex, reference: &Reference, filter: &Filter) -> PatrolReport {
    let window = filter.window;
    let mut rows: BTreeMap<&str, ChiefRow> = BTreeMap::new();
    let mut starts: BTreeMap<&str, Vec<i64>> = BTreeMap::new();
    let mut reasons: BTreeMap<&str, BTreeMap<String, u64>> = BTreeMap::new();
    for user in reference.users.iter().filter(|u| chief_matches(u, filter)) {
        let Role::Chief {
            system,
            level,
            jurisdiction,
        } = &user.role
        else {
            continue;
        };
        rows.insert(
            &user.id,
            ChiefRow {
                chief: user.id.clone(),
                name: user.display_name.clone(),
                level: *level,
                system: *system,
                division: jurisdiction.division.clone(),
                division_name: reference.division_name(&jurisdiction.division),
                required: 0,
                periods: 0,
                periods_met: 0,
                patrols: 0,
                valid: 0,
                invalid: 0,
                invalid_reasons: Vec::new(),
                compliance: None,
                compliance_display: None,
                km: 0.0,
                hours: 0.0,
                issues_found: 0,
                clock_skew: 0,
            },
        );
    }
    let wanted_asset = |asset: &str| filter.asset.as_ref().is_none_or(|a| a == asset);
    for patrol in index.patrols() {
        if !window.contains(patrol.at_ms) || !wanted_asset(&patrol.asset) {
            continue;
        }
        let Some(row) = rows.get_mut(patrol.chief.as_str()) else {
            continue;
        };
        row.patrols += 1;
        row.km += finite(patrol.km);
        row.hours += finite(patrol.hours);
        row.clock_skew += u64::from(patrol.clock_skew);
        if patrol.valid {
            row.valid += 1;
            starts.entry(&patrol.chief).or_default().push(patrol.at_ms);
        } else {
            row.invalid += 1;
            let counts = reasons.entry(&patrol.chief).or_default();
            for flag in &patrol.flags {
                *counts.entry(flag_name(flag)).or_default() += 1;
            }
        }
    }
    for issue in index.issues() {
        if window.contains(issue.reported_at_ms) && wanted_asset(&issue.asset) {
            if let Some(row) = rows.get_mut(issue.reporter.as_str()) {
                row.issues_found += 1;
            }
        }
    }
    for (id, row) in rows.iter_mut() {
        if let Some(quota) = reference.rules.quota_for(row.system, row.level) {
            let valid_starts = starts.get(id).map_or(&[][..], Vec::as_slice);
            let c = quota.compliance(valid_starts, window.from_ms, window.to_ms);
            row.required = c.required;
            row.periods = c.periods;
            row.periods_met = c.periods_met;
        }
        row.compliance = share(row.periods_met, row.periods);
        row.compliance_display = row.compliance;
        row.invalid_reasons = reasons
            .remove(id)
            .unwrap_or_default()
            .into_iter()
            .map(|(reason, count)| ReasonCount { reason, count })
            .collect();
    }

    let mut chiefs: Vec<ChiefRow> = rows.into_values().collect();
    chiefs.sort_by(|a, b| (&a.division, a.level, &a.chief).cmp(&(&b.division, b.level, &b.chief)));
    let mut by_division: BTreeMap<DivisionCode, PatrolGroup> = BTreeMap::new();
    let mut by_level: BTreeMap<Level, PatrolGroup> = BTreeMap::new();
    let mut totals = PatrolGroup::new("total".into(), "合计".into());
    for row in &chiefs {
        let code = rollup(&row.division, filter.group_by);
        by_division
            .entry(code.clone())
            .or_insert_with(|| PatrolGroup::new(code.to_string(), reference.division_name(&code)))
            .add(row);
        by_level
            .entry(row.level)
            .or_insert_with(|| {
                PatrolGroup::new(row.level.as_str().into(), level_name(row.level).into())
            })
            .add(row);
        totals.add(row);
    }
    PatrolReport {
        filter: filter.clone(),
        without_patrols: chiefs
            .iter()
            .filter(|r| r.patrols == 0)
            .map(|r| r.chief.clone())
            .collect(),
        chiefs,
        by_division: by_division.into_values().collect(),
        by_level: by_level.into_values().collect(),
        totals,
    }
}

/// A figure as it may be added up: never NaN or infinite.
fn finite(x: f64) -> f64 {
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// `part / whole`, `None` when `whole` is 0.
fn share(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The level's name as chief offices write it.
pub fn level_name(level: Level) -> &'static str {
    match level {
        Level::District => "区级",
        Level::Subdistrict => "街道级",
        Level::Village => "村级",
    }
}
