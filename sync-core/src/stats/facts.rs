//! Each document reduced once to what statistics need: a patrol's time, validity (with reasons),
//! distance and duration; an issue's place, category and folded workflow state. Facts are keyed
//! by document id, so storing a newer version of a document replaces its fact and a document that
//! arrives late only adds one. This file reads documents; it aggregates nothing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Reference;
use crate::doc::{self, DocError, DocKind, Issue, IssueDoc, Patrol, PatrolDoc};
use crate::model::{DivisionCode, Level, Role, Severity, System, TrackPoint};
use crate::rules::{counted_time, validate_patrol, DeviceClock, PatrolFlag};
use crate::workflow::{EventKind, IssueState};

/// A patrol whose first GPS fix and the phone's start time differ by more than this is flagged
/// as having a skewed device clock (the fix's time is the one statistics use).
pub const CLOCK_SKEW_TOLERANCE_MS: i64 = 10 * 60_000;

/// What statistics need of one patrol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatrolFact {
    pub id: String,
    pub system: System,
    pub asset: String,
    pub chief: String,
    pub division: DivisionCode,
    /// When the patrol happened: its first GPS fix, or the phone's start time without a track,
    /// bounded by what the server knows of the device's clock (see `rules::times`). Periods and
    /// windows are decided by this, never by when the document reached the server.
    pub at_ms: i64,
    /// Kilometres and hours that count: walking steps only (breaks and jumps left out), at most
    /// the rule's passes over the ground covered, at bounded times.
    pub km: f64,
    pub hours: f64,
    pub valid: bool,
    /// Why it does not count (empty when valid).
    pub flags: Vec<PatrolFlag>,
    /// The phone flagged its clock, or its start time disagrees with the GPS time.
    pub clock_skew: bool,
    pub points: usize,
}

impl PatrolFact {
    /// Checks the patrol with sync-core's one patrol rule (`rules::validate_patrol`: the rules
    /// of its chief as the reference data knows them) against the asset's corridor, its times
    /// bounded by `clock`.
    pub fn of(
        patrol: &Patrol,
        points: &[TrackPoint],
        reference: &Reference,
        clock: &DeviceClock,
    ) -> Self {
        let chief = reference.user(&patrol.chief).map(|u| &u.role);
        let check = validate_patrol(
            patrol,
            points,
            chief,
            reference.rules,
            reference.assets,
            clock,
        );
        let first_fix = check.stats.started_ms;
        let skewed_start = first_fix.is_some_and(|t| {
            t.saturating_sub(patrol.started_at_ms).saturating_abs() > CLOCK_SKEW_TOLERANCE_MS
        });
        Self {
            id: patrol.id.clone(),
            system: patrol.system,
            asset: patrol.asset.clone(),
            chief: patrol.chief.clone(),
            division: patrol.division.clone(),
            at_ms: counted_time(patrol.started_at_ms, points, clock),
            km: check.km(),
            hours: check.hours(),
            valid: check.is_valid(),
            clock_skew: skewed_start || patrol.flags.get("clock_skew").copied().unwrap_or(false),
            points: points.len(),
            flags: check.flags,
        }
    }

    /// The level of the chief who walked it, from the reference data.
    pub fn chief_level(&self, reference: &Reference) -> Level {
        match reference.user(&self.chief).map(|u| &u.role) {
            Some(Role::Chief { level, .. }) => *level,
            _ => self.division.level(),
        }
    }
}

/// What statistics need of one issue: its record fields and the folded workflow state (without
/// the timeline, which statistics do not read).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueFact {
    pub id: String,
    pub system: System,
    pub category: String,
    pub severity: Severity,
    pub asset: String,
    pub division: DivisionCode,
    /// `[lon, lat]`
    pub location: [f64; 2],
    pub reporter: String,
    pub reported_at_ms: i64,
    pub state: IssueState,
    /// Reopenings that counted: each one is the problem coming back after it was closed.
    pub reopened: u32,
}

impl IssueFact {
    pub fn of(issue: &Issue, mut state: IssueState) -> Self {
        let reopened = state
            .timeline
            .iter()
            .filter(|e| e.superseded.is_none() && e.event.action.kind() == EventKind::Reopened)
            .count() as u32;
        state.timeline = Vec::new();
        Self {
            id: issue.id.clone(),
            system: issue.system,
            category: issue.category.clone(),
            severity: issue.severity,
            asset: issue.asset.clone(),
            division: issue.division.clone(),
            location: issue.location,
            reporter: issue.reporter.clone(),
            // The report's time as the server bounded it, once the server accepted it.
            reported_at_ms: state.reported_at_ms.unwrap_or(issue.reported_at_ms),
            state,
            reopened,
        }
    }

    /// The level of the reporter when a chief reported it.
    pub fn reporter_level(&self, reference: &Reference) -> Option<Level> {
        match reference.user(&self.reporter).map(|u| &u.role) {
            Some(Role::Chief { level, .. }) => Some(*level),
            _ => None,
        }
    }
}

/// The version of the facts' shape and of how they are worked out from a document. Facts kept
/// by a server (in its database) carry it; raising it makes every server work its facts out
/// again from the documents, once.
pub const FACTS_FORMAT: u32 = 1;

/// The fact of one document, of either kind, as kept between server starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DocFact {
    Patrol(PatrolFact),
    /// Boxed: an issue's folded state is several times a patrol's fact.
    Issue(Box<IssueFact>),
}

impl DocFact {
    /// Reads a saved document of either kind into its fact; a patrol's times are bounded by
    /// `clock`, what the server knows of the device that recorded it.
    pub fn of_bytes(
        bytes: &[u8],
        reference: &Reference,
        clock: &DeviceClock,
    ) -> Result<Self, DocError> {
        let (am, header) = doc::load(bytes)?;
        Ok(match header.kind {
            DocKind::Patrol => {
                let patrol = PatrolDoc::from_automerge(am)?;
                Self::Patrol(PatrolFact::of(
                    &patrol.view()?,
                    &patrol.track()?,
                    reference,
                    clock,
                ))
            }
            DocKind::Issue => {
                let issue = IssueDoc::from_automerge(am)?;
                Self::Issue(Box::new(IssueFact::of(&issue.view()?, issue.state()?)))
            }
        })
    }

    /// The document's id.
    pub fn id(&self) -> &str {
        match self {
            Self::Patrol(fact) => &fact.id,
            Self::Issue(fact) => &fact.id,
        }
    }
}

/// Facts of every document seen so far, by id. Updating a document replaces its fact; the
/// order in which documents arrive does not matter.
#[derive(Debug, Clone, Default)]
pub struct FactIndex {
    patrols: BTreeMap<String, PatrolFact>,
    issues: BTreeMap<String, IssueFact>,
}

impl FactIndex {
    /// Reads a saved document of either kind and records (or replaces) its fact, with no bound
    /// on the phone's times (see [`FactIndex::upsert_bytes_at`]).
    pub fn upsert_bytes(&mut self, bytes: &[u8], reference: &Reference) -> Result<(), DocError> {
        self.upsert_bytes_at(bytes, reference, &DeviceClock::default())
    }

    /// Reads a saved document of either kind and records (or replaces) its fact; a patrol's
    /// times are bounded by `clock`, what the server knows of the device that recorded it.
    pub fn upsert_bytes_at(
        &mut self,
        bytes: &[u8],
        reference: &Reference,
        clock: &DeviceClock,
    ) -> Result<(), DocError> {
        self.upsert(DocFact::of_bytes(bytes, reference, clock)?);
        Ok(())
    }

    /// Records (or replaces) the fact of one document.
    pub fn upsert(&mut self, fact: DocFact) {
        match fact {
            DocFact::Patrol(fact) => self.upsert_patrol(fact),
            DocFact::Issue(fact) => self.upsert_issue(*fact),
        }
    }

    pub fn upsert_patrol(&mut self, fact: PatrolFact) {
        self.patrols.insert(fact.id.clone(), fact);
    }

    pub fn upsert_issue(&mut self, fact: IssueFact) {
        self.issues.insert(fact.id.clone(), fact);
    }

    pub fn patrols(&self) -> impl Iterator<Item = &PatrolFact> {
        self.patrols.values()
    }

    pub fn issues(&self) -> impl Iterator<Item = &IssueFact> {
        self.issues.values()
    }

    pub fn patrol(&self, id: &str) -> Option<&PatrolFact> {
        self.patrols.get(id)
    }

    pub fn issue(&self, id: &str) -> Option<&IssueFact> {
        self.issues.get(id)
    }

    pub fn len(&self) -> usize {
        self.patrols.len() + self.issues.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
