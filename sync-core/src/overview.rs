//! An overview instead of the documents: what a chief above the village, or an office, reads
//! offline about the chiefs below them, now that their phones no longer receive those chiefs'
//! patrols ([`crate::authz::delivered`]).
//!
//! | who | chiefs listed | problems counted |
//! |---|---|---|
//! | district or subdistrict chief | active chiefs of their system inside their division, at a level below theirs | their system inside their division, by division one level below theirs |
//! | supervisor (office) | active chiefs of their system inside their division | their system inside their division, by division one level below it |
//! | administrator | every active chief | every system, by subdistrict |
//! | village chief, handler, deactivated user | no overview | |
//!
//! Per chief: patrols this period against the quota (required, quota periods and periods met),
//! valid and flagged (invalid) patrols, kilometres. The period is the current calendar month in
//! China time, from its first day to the end of today: the figures are exactly those of
//! `GET /stats/patrols?from=<first of the month>&to=<today>` for the same chief, computed by
//! [`crate::stats::patrol_report`]. Per division and system: problems open now, overdue now (as
//! `GET /stats/issues` counts them, [`crate::stats::issue_report`], over every problem ever
//! reported there, judged at the moment of the sync) and escalated (督办: open, and escalated
//! at least once). Divisions without an open problem are left out.
//!
//! The overview is delivered with the sync, versioned by its content ([`Overview::version`]):
//! the phone names the version it holds and the server attaches the overview only when it
//! differs, so an unchanged overview costs no bytes (see `protocol::OverviewUpdate`). Version 0
//! is "no overview". This module computes from statistics facts only; it does no I/O.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::model::{DivisionCode, Level, Role, System, User};
use crate::rules::{Period, CHINA_OFFSET_MS};
use crate::stats::{
    issue_report, patrol_report, rollup, FactIndex, Filter, Reference, Window, DAY_MS,
};

/// What a user's phone reads offline about the chiefs and problems below them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// The period patrols are counted in: this month (China time) up to the end of today.
    pub period: Window,
    /// One line per chief below the user, ordered by division, level, chief.
    pub chiefs: Vec<ChiefLine>,
    /// One line per division (one level below the user's) and system with open problems.
    pub divisions: Vec<DivisionLine>,
}

/// One chief's patrols this period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChiefLine {
    pub chief: String,
    pub name: String,
    pub level: Level,
    pub system: System,
    pub division: DivisionCode,
    pub division_name: String,
    /// Patrols the quota asks for in the period (0 without a quota).
    pub required: u64,
    /// Quota periods overlapping the period, and those in which the quota was met.
    pub periods: u64,
    pub periods_met: u64,
    pub patrols: u64,
    pub valid: u64,
    /// Patrols that do not count (flagged by the patrol rules).
    pub flagged: u64,
    pub km: f64,
}

/// The problems of one division and system now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DivisionLine {
    pub division: DivisionCode,
    pub name: String,
    pub system: System,
    pub open: u64,
    pub overdue: u64,
    /// Open problems escalated (督办) at least once.
    pub escalated: u64,
}

/// What `user`'s overview covers, or `None` when they have nobody below them.
struct Reach {
    system: Option<System>,
    division: Option<DivisionCode>,
    /// Only chiefs at a level below this one (a chief's own level).
    below: Option<Level>,
    group_by: Level,
}

fn level_below(level: Level) -> Level {
    match level {
        Level::District => Level::Subdistrict,
        Level::Subdistrict | Level::Village => Level::Village,
    }
}

fn reach(user: &User) -> Option<Reach> {
    if !user.active {
        return None;
    }
    match &user.role {
        Role::Chief {
            level: Level::Village,
            ..
        }
        | Role::Handler { .. } => None,
        Role::Chief {
            system,
            level,
            jurisdiction,
        } => Some(Reach {
            system: Some(*system),
            division: Some(jurisdiction.division.clone()),
            below: Some(*level),
            group_by: level_below(*level),
        }),
        Role::Supervisor { system, division } => Some(Reach {
            system: Some(*system),
            division: Some(division.clone()),
            below: None,
            group_by: level_below(division.level()),
        }),
        Role::Admin => Some(Reach {
            system: None,
            division: None,
            below: None,
            group_by: Level::Subdistrict,
        }),
    }
}

/// Whether `user` has an overview at all (cheap: no facts read). A village chief, a handler
/// and a deactivated user have none.
pub fn has_overview(user: &User) -> bool {
    reach(user).is_some()
}

/// The start of the China-time day containing `at_ms`.
fn day_start(at_ms: i64) -> i64 {
    at_ms
        .saturating_add(CHINA_OFFSET_MS)
        .div_euclid(DAY_MS)
        .saturating_mul(DAY_MS)
        .saturating_sub(CHINA_OFFSET_MS)
}

/// The overview period at `now_ms`: the current month (China time) to the end of today.
pub fn period(now_ms: i64) -> Window {
    Window {
        from_ms: Period::Month.start_ms(Period::Month.index(now_ms)),
        to_ms: day_start(now_ms).saturating_add(DAY_MS),
    }
}

/// `user`'s overview at `now_ms` from the statistics facts, or `None` when they have nobody
/// below them. Only chiefs and problems inside the user's system and division are read.
pub fn overview(
    user: &User,
    index: &FactIndex,
    reference: &Reference,
    now_ms: i64,
) -> Option<Overview> {
    computed(user, index, reference, now_ms).overview
}

/// An overview as computed at one instant, and how long it holds on the same facts.
#[derive(Debug, Clone, PartialEq)]
pub struct Computed {
    /// [`overview`] at the instant it was computed.
    pub overview: Option<Overview>,
    /// The first instant at which the same facts and reference data may give another
    /// overview: the end of the China-time day (the period then grows by a day, or a month
    /// begins), or sooner the first deadline still ahead of a problem in the place (it may
    /// become overdue then). `i64::MAX` for a user without an overview.
    pub until_ms: i64,
}

/// [`overview`], with the instant until which it holds as long as no fact and no reference
/// data changes ([`Computed::until_ms`]): what lets the server keep it
/// (`hub::overviews::OverviewCache`) instead of reading the facts again at every sync.
pub fn computed(user: &User, index: &FactIndex, reference: &Reference, now_ms: i64) -> Computed {
    let Some(reach) = reach(user) else {
        return Computed {
            overview: None,
            until_ms: i64::MAX,
        };
    };
    let period = period(now_ms);
    let mut filter = Filter::new(period);
    filter.system = reach.system;
    filter.division = reach.division.clone();
    filter.group_by = reach.group_by;

    let chiefs = patrol_report(index, reference, &filter)
        .chiefs
        .into_iter()
        .filter(|row| row.chief != user.id && reach.below.is_none_or(|l| row.level > l))
        .map(|row| ChiefLine {
            chief: row.chief,
            name: row.name,
            level: row.level,
            system: row.system,
            division: row.division,
            division_name: row.division_name,
            required: row.required,
            periods: row.periods,
            periods_met: row.periods_met,
            patrols: row.patrols,
            valid: row.valid,
            flagged: row.invalid,
            km: row.km,
        })
        .collect();

    // Problems: every one ever reported in the place, so the window spans them all.
    let mut everything = filter.clone();
    everything.window = Window {
        from_ms: i64::MIN,
        to_ms: i64::MAX,
    };
    let place: Vec<_> = index
        .issues()
        .filter(|i| everything.selects_issue(i, reference))
        .collect();
    // Whether a problem is overdue is judged at the moment of the sync: the figures hold
    // until the next deadline in the place passes (any problem's, to be safe), or the day ends.
    let until_ms = place
        .iter()
        .filter_map(|i| i.state.deadline_ms)
        .filter(|&deadline| deadline >= now_ms)
        .map(|deadline| deadline.saturating_add(1))
        .fold(period.to_ms, i64::min);
    let mut divisions = Vec::new();
    if let (Some(first), Some(last)) = (
        place.iter().map(|i| i.reported_at_ms).min(),
        place.iter().map(|i| i.reported_at_ms).max(),
    ) {
        let mut escalated: BTreeMap<(DivisionCode, System), u64> = BTreeMap::new();
        for issue in &place {
            if issue.state.is_open() && issue.state.escalations > 0 {
                *escalated
                    .entry((rollup(&issue.division, reach.group_by), issue.system))
                    .or_default() += 1;
            }
        }
        let mut counted = filter.clone();
        counted.window = Window {
            from_ms: first,
            to_ms: last.saturating_add(1).max(period.to_ms),
        };
        for group in issue_report(index, reference, &counted, now_ms).by_division {
            let (Ok(division), Some(system)) = (DivisionCode::new(&group.key), group.system) else {
                continue;
            };
            if group.counts.open == 0 {
                continue;
            }
            divisions.push(DivisionLine {
                escalated: escalated
                    .get(&(division.clone(), system))
                    .copied()
                    .unwrap_or(0),
                division,
                name: group.name,
                system,
                open: group.counts.open,
                overdue: group.counts.overdue,
            });
        }
    }
    Computed {
        overview: Some(Overview {
            period,
            chiefs,
            divisions,
        }),
        until_ms,
    }
}

impl Overview {
    /// The overview's version: a digest of its content, never 0 (which means no overview).
    /// Two overviews with the same figures have the same version.
    pub fn version(&self) -> u64 {
        let bytes = postcard::to_allocvec(self).expect("postcard encodes the overview");
        let digest = Sha256::digest(&bytes);
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_le_bytes(first).max(1)
    }
}

/// The version of `overview`, 0 for none.
pub fn version_of(overview: Option<&Overview>) -> u64 {
    overview.map_or(0, Overview::version)
}

#[cfg(test)]
pub(crate) mod tests;
