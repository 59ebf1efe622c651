//! Hotspots for concentrated remediation (分析研判 → 集中治理): places where a problem of the
//! same category comes back after it was closed.
//!
//! A *recurrence* is an issue reported within `radius_m` of an earlier issue of the same
//! category, at most `within_days` after that issue was verified closed — or an issue reopened
//! after its own closure. Issues joined by recurrences form one hotspot (so a heap of rubbish
//! that returns three times is one hotspot with three recurrences, not three pairs). Hotspots are
//! ranked by recurrences, then by issues, then by the latest report. Only recurrences whose later
//! report falls in the filter's window count; the earlier issue may be older.

use serde::{Deserialize, Serialize};

use super::{FactIndex, Filter, IssueFact, Reference, DAY_MS};
use crate::geo::haversine_m;
use crate::model::System;
use crate::workflow::Status;

/// How near and how soon a report must follow a closure to count as the problem coming back.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HotspotParams {
    pub radius_m: f64,
    pub within_days: f64,
}

impl Default for HotspotParams {
    /// 200 m (the patrol corridor) and 90 days (a season).
    fn default() -> Self {
        Self {
            radius_m: 200.0,
            within_days: 90.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hotspot {
    /// 1 for the worst.
    pub rank: usize,
    pub category: String,
    pub category_name: String,
    pub system: System,
    /// The asset most of its issues lie on.
    pub asset: String,
    /// Mean position of its issues, `[lon, lat]`.
    pub location: [f64; 2],
    /// Distance from `location` to the farthest of its issues, metres.
    pub spread_m: f64,
    pub recurrences: u32,
    /// Ids of its issues, oldest report first.
    pub issues: Vec<String>,
    pub first_reported_ms: i64,
    pub last_reported_ms: i64,
    /// Of its issues, how many are open now.
    pub open: u64,
}

fn find(parent: &mut [usize], mut i: usize) -> usize {
    while parent[i] != i {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    i
}

/// Hotspots among the issues the filter selects (by system, division and asset; see the
/// module docs for the window).
pub fn hotspots(
    index: &FactIndex,
    reference: &Reference,
    filter: &Filter,
    params: &HotspotParams,
) -> Vec<Hotspot> {
    let window = filter.window;
    let mut issues: Vec<&IssueFact> = index
        .issues()
        .filter(|i| filter.place_matches(i.system, &i.division, Some(&i.asset)))
        .filter(|i| i.reported_at_ms < window.to_ms)
        .collect();
    issues.sort_by(|a, b| {
        (&a.category, a.reported_at_ms, &a.id).cmp(&(&b.category, b.reported_at_ms, &b.id))
    });
    let n = issues.len();
    let mut parent: Vec<usize> = (0..n).collect();
    let mut recurrences = vec![0u32; n];
    let within_ms = (params.within_days * DAY_MS as f64) as i64;
    for (later, b) in issues.iter().enumerate() {
        if window.contains(b.reported_at_ms) {
            recurrences[later] += b.reopened;
        }
        if !window.contains(b.reported_at_ms) {
            continue;
        }
        for earlier in (0..later).rev() {
            let a = issues[earlier];
            if a.category != b.category {
                break;
            }
            let Some(closed) = (a.state.status == Some(Status::Closed))
                .then_some(a.state.closed_at_ms)
                .flatten()
            else {
                continue;
            };
            let gap = b.reported_at_ms - closed;
            if !(0..=within_ms).contains(&gap) {
                continue;
            }
            let metres = haversine_m(a.location[1], a.location[0], b.location[1], b.location[0]);
            if metres <= params.radius_m {
                recurrences[later] += 1;
                let (ra, rb) = (find(&mut parent, earlier), find(&mut parent, later));
                parent[rb] = ra;
            }
        }
    }

    let mut groups: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
    for i in 0..n {
        let root = find(&mut parent, i);
        groups.entry(root).or_default().push(i);
    }
    let mut found: Vec<Hotspot> = groups
        .into_values()
        .filter_map(|members| {
            let count: u32 = members.iter().map(|&i| recurrences[i]).sum();
            (count > 0).then(|| hotspot(&members, &issues, count, reference))
        })
        .collect();
    found.sort_by(|a, b| {
        (
            b.recurrences,
            b.issues.len(),
            b.last_reported_ms,
            &a.category,
        )
            .cmp(&(
                a.recurrences,
                a.issues.len(),
                a.last_reported_ms,
                &b.category,
            ))
    });
    for (i, h) in found.iter_mut().enumerate() {
        h.rank = i + 1;
    }
    found
}

fn hotspot(
    members: &[usize],
    issues: &[&IssueFact],
    recurrences: u32,
    reference: &Reference,
) -> Hotspot {
    let facts: Vec<&IssueFact> = members.iter().map(|&i| issues[i]).collect();
    let n = facts.len() as f64;
    let lon = facts.iter().map(|f| f.location[0]).sum::<f64>() / n;
    let lat = facts.iter().map(|f| f.location[1]).sum::<f64>() / n;
    let spread_m = facts
        .iter()
        .map(|f| haversine_m(lat, lon, f.location[1], f.location[0]))
        .fold(0.0, f64::max);
    let mut assets: std::collections::BTreeMap<&str, usize> = Default::default();
    for f in &facts {
        *assets.entry(&f.asset).or_default() += 1;
    }
    let asset = assets
        .iter()
        .max_by_key(|(name, count)| (**count, std::cmp::Reverse(**name)))
        .map(|(name, _)| (*name).to_owned())
        .unwrap_or_default();
    let first = facts[0];
    Hotspot {
        rank: 0,
        category: first.category.clone(),
        category_name: reference.category_name(&first.category),
        system: first.system,
        asset,
        location: [lon, lat],
        spread_m,
        recurrences,
        issues: facts.iter().map(|f| f.id.clone()).collect(),
        first_reported_ms: facts.iter().map(|f| f.reported_at_ms).min().unwrap_or(0),
        last_reported_ms: facts.iter().map(|f| f.reported_at_ms).max().unwrap_or(0),
        open: facts.iter().filter(|f| f.state.is_open()).count() as u64,
    }
}
