//! Problem handling (问题处置): issues reported in the window, counted per division and system,
//! per category and per severity, with their state now — accepted, closed (销号), open, overdue,
//! invalid, duplicate — the share rectified on time, and the median and 90th percentile days
//! from report to close; a monthly trend, opened vs closed per week, and overdue work per
//! department.
//!
//! The cohort is the issues *reported* in the window (by the report's own time); their state is
//! the fold of all their events as of now. Days to close and the on-time rate count verified
//! closures only: an issue closed as invalid the same day says nothing about rectification.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{china_date, days, percentile, rollup, FactIndex, Filter, IssueFact, Reference};
use crate::model::{Severity, System};
use crate::rules::Period;
use crate::workflow::Status;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct IssueCounts {
    pub reported: u64,
    /// Taken on by the chief office (accepted, or assigned straight away).
    pub accepted: u64,
    pub closed: u64,
    pub open: u64,
    /// Open and past the deadline now (see `IssueState::overdue_days`).
    pub overdue: u64,
    pub invalid: u64,
    pub duplicate: u64,
    /// Closed issues whose verified rectification was submitted by the deadline.
    pub on_time: u64,
    /// Closed issues with a deadline and a submission, the denominator of `on_time_rate`.
    pub rectified: u64,
    pub on_time_rate: Option<f64>,
    pub median_days_to_close: Option<f64>,
    pub p90_days_to_close: Option<f64>,
    #[serde(skip)]
    close_days: Vec<f64>,
}

impl IssueCounts {
    fn add(&mut self, issue: &IssueFact, now_ms: i64) {
        let state = &issue.state;
        self.reported += 1;
        self.accepted += u64::from(state.accepted_at_ms.is_some());
        self.open += u64::from(state.is_open());
        self.overdue += u64::from(state.overdue_days(now_ms).is_some());
        match state.status {
            Some(Status::Closed) => {
                self.closed += 1;
                if let Some(ms) = state.time_to_close_ms() {
                    self.close_days.push(days(ms));
                }
            }
            Some(Status::Invalid) => self.invalid += 1,
            Some(Status::Duplicate) => self.duplicate += 1,
            _ => {}
        }
        if let Some(on_time) = state.rectified_on_time() {
            self.rectified += 1;
            self.on_time += u64::from(on_time);
        }
    }

    fn finish(&mut self) {
        self.on_time_rate =
            (self.rectified > 0).then(|| self.on_time as f64 / self.rectified as f64);
        self.median_days_to_close = percentile(&self.close_days, 50.0);
        self.p90_days_to_close = percentile(&self.close_days, 90.0);
    }
}

/// Counts of one group: a division and system, a category or a severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueGroup {
    /// Division code, category code or severity.
    pub key: String,
    pub name: String,
    pub system: Option<System>,
    #[serde(flatten)]
    pub counts: IssueCounts,
}

/// One calendar month (China time) of the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MonthRow {
    /// `YYYY-MM`
    pub month: String,
    pub reported: u64,
    /// Verified closures dated in this month, whenever the issue was reported.
    pub closed: u64,
}

/// One week (Monday to Sunday, China time) of the window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeekRow {
    pub week_start_ms: i64,
    /// `YYYY-MM-DD` of the Monday.
    pub week: String,
    pub opened: u64,
    pub closed: u64,
}

/// Work assigned to one department (or user) that is open now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepartmentRow {
    pub department: String,
    /// Open issues assigned to it, reported before the window's end.
    pub assigned: u64,
    pub overdue: u64,
    /// The largest number of days any of them is late.
    pub max_overdue_days: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueReport {
    pub filter: Filter,
    /// The instant the state (overdue) was judged at.
    pub now_ms: i64,
    pub by_division: Vec<IssueGroup>,
    pub by_category: Vec<IssueGroup>,
    pub by_severity: Vec<IssueGroup>,
    pub monthly: Vec<MonthRow>,
    pub weekly: Vec<WeekRow>,
    pub overdue_by_department: Vec<DepartmentRow>,
    pub totals: IssueCounts,
}

pub(super) fn matches(issue: &IssueFact, reference: &Reference, filter: &Filter) -> bool {
    filter.place_matches(issue.system, &issue.division, Some(&issue.asset))
        && filter
            .level
            .is_none_or(|l| issue.reporter_level(reference) == Some(l))
}

fn severity_rank(s: &str) -> usize {
    Severity::ALL
        .iter()
        .position(|v| v.as_str() == s)
        .unwrap_or(usize::MAX)
}

fn finish<K>(groups: BTreeMap<K, IssueGroup>) -> Vec<IssueGroup> {
    groups
        .into_values()
        .map(|mut g| {
            g.counts.finish();
            g
        })
        .collect()
}

/// The issue statistics for `filter`, with overdue judged at `now_ms`.
pub fn issue_report(
    index: &FactIndex,
    reference: &Reference,
    filter: &Filter,
    now_ms: i64,
) -> IssueReport {
    let window = filter.window;
    let selected: Vec<&IssueFact> = index
        .issues()
        .filter(|i| matches(i, reference, filter))
        .collect();
    let mut totals = IssueCounts::default();
    let mut by_division: BTreeMap<(String, System), IssueGroup> = BTreeMap::new();
    let mut by_category: BTreeMap<String, IssueGroup> = BTreeMap::new();
    let mut by_severity: BTreeMap<String, IssueGroup> = BTreeMap::new();
    for issue in selected
        .iter()
        .filter(|i| window.contains(i.reported_at_ms))
    {
        totals.add(issue, now_ms);
        let code = rollup(&issue.division, filter.group_by);
        by_division
            .entry((code.to_string(), issue.system))
            .or_insert_with(|| IssueGroup {
                key: code.to_string(),
                name: reference.division_name(&code),
                system: Some(issue.system),
                counts: IssueCounts::default(),
            })
            .counts
            .add(issue, now_ms);
        by_category
            .entry(issue.category.clone())
            .or_insert_with(|| IssueGroup {
                key: issue.category.clone(),
                name: reference.category_name(&issue.category),
                system: Some(issue.system),
                counts: IssueCounts::default(),
            })
            .counts
            .add(issue, now_ms);
        by_severity
            .entry(issue.severity.as_str().to_owned())
            .or_insert_with(|| IssueGroup {
                key: issue.severity.as_str().to_owned(),
                name: issue.severity.name_zh().to_owned(),
                system: None,
                counts: IssueCounts::default(),
            })
            .counts
            .add(issue, now_ms);
    }
    totals.finish();
    let mut by_severity = finish(by_severity);
    by_severity.sort_by_key(|g| severity_rank(&g.key));
    IssueReport {
        filter: filter.clone(),
        now_ms,
        by_division: finish(by_division),
        by_category: finish(by_category),
        by_severity,
        monthly: monthly(&selected, filter),
        weekly: weekly(&selected, filter),
        overdue_by_department: departments(&selected, filter, now_ms),
        totals,
    }
}

fn verified_at(issue: &IssueFact) -> Option<i64> {
    (issue.state.status == Some(Status::Closed))
        .then_some(issue.state.closed_at_ms)
        .flatten()
}

fn monthly(issues: &[&IssueFact], filter: &Filter) -> Vec<MonthRow> {
    let w = filter.window;
    if w.to_ms <= w.from_ms {
        return Vec::new();
    }
    let first = Period::Month.index(w.from_ms);
    let last = Period::Month.index(w.to_ms - 1);
    let mut rows: BTreeMap<i64, MonthRow> = (first..=last)
        .map(|m| {
            let month = format!("{:04}-{:02}", m.div_euclid(12), m.rem_euclid(12) + 1);
            (
                m,
                MonthRow {
                    month,
                    reported: 0,
                    closed: 0,
                },
            )
        })
        .collect();
    for issue in issues {
        if w.contains(issue.reported_at_ms) {
            if let Some(row) = rows.get_mut(&Period::Month.index(issue.reported_at_ms)) {
                row.reported += 1;
            }
        }
        if let Some(at) = verified_at(issue).filter(|&t| w.contains(t)) {
            if let Some(row) = rows.get_mut(&Period::Month.index(at)) {
                row.closed += 1;
            }
        }
    }
    rows.into_values().collect()
}

fn weekly(issues: &[&IssueFact], filter: &Filter) -> Vec<WeekRow> {
    let w = filter.window;
    if w.to_ms <= w.from_ms {
        return Vec::new();
    }
    let first = Period::Week.index(w.from_ms);
    let last = Period::Week.index(w.to_ms - 1);
    let mut rows: BTreeMap<i64, WeekRow> = (first..=last)
        .map(|i| {
            let start = Period::Week.start_ms(i);
            let (y, m, d) = china_date(start);
            (
                i,
                WeekRow {
                    week_start_ms: start,
                    week: format!("{y:04}-{m:02}-{d:02}"),
                    opened: 0,
                    closed: 0,
                },
            )
        })
        .collect();
    for issue in issues {
        if w.contains(issue.reported_at_ms) {
            if let Some(row) = rows.get_mut(&Period::Week.index(issue.reported_at_ms)) {
                row.opened += 1;
            }
        }
        if let Some(at) = verified_at(issue).filter(|&t| w.contains(t)) {
            if let Some(row) = rows.get_mut(&Period::Week.index(at)) {
                row.closed += 1;
            }
        }
    }
    rows.into_values().collect()
}

fn departments(issues: &[&IssueFact], filter: &Filter, now_ms: i64) -> Vec<DepartmentRow> {
    let mut rows: BTreeMap<String, DepartmentRow> = BTreeMap::new();
    for issue in issues
        .iter()
        .filter(|i| i.reported_at_ms < filter.window.to_ms)
    {
        let state = &issue.state;
        let Some(assignee) = state.assignee.as_ref().filter(|_| state.is_open()) else {
            continue;
        };
        let row = rows
            .entry(assignee.name().to_owned())
            .or_insert_with(|| DepartmentRow {
                department: assignee.name().to_owned(),
                assigned: 0,
                overdue: 0,
                max_overdue_days: 0,
            });
        row.assigned += 1;
        if let Some(late) = state.overdue_days(now_ms) {
            row.overdue += 1;
            row.max_overdue_days = row.max_overdue_days.max(late);
        }
    }
    let mut rows: Vec<DepartmentRow> = rows.into_values().collect();
    rows.sort_by(|a, b| {
        b.overdue
            .cmp(&a.overdue)
            .then(a.department.cmp(&b.department))
    });
    rows
}
