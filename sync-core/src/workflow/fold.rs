//! The fold: an issue's status, assignee, deadline and timeline derived from its event list.
//!
//! The fold is pure and follows the order in which the server accepted the events: the
//! document's list of [`Receipt`]s, which only the server writes. Events the server has not
//! accepted yet (a phone's own unsent work) follow, provisionally, in list order. Nothing a
//! sender steers — insert positions, op counters, reused ids — moves an event before one the
//! server already accepted, so every replica that holds the same document computes the same
//! state, and no late event rewrites what came before it. Device clocks are not trusted for
//! ordering, and the times that count are bounded by the server's receive times.
//!
//! An event that does not fit the state reached so far stays in the timeline, marked superseded
//! with the reason, and changes nothing. The fold never looks at who appended an event: that
//! was authorized when the change was merged, and judged again against the accepted state when
//! the server accepted the event (the receipt's `superseded`).

use super::check::admissible;
use super::event::{Action, Assignee, Event, EventKind};
use super::table::{kinds_allowed_in, Status, Transition};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The server's record of accepting one event: its place in the issue's effective order (the
/// position of the receipt in the document's `order` list), when it arrived, the time that
/// counts for it, and whether it counted in the state the server held when it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The event's id.
    pub event: String,
    /// Server time when the change carrying the event was accepted, Unix milliseconds; `None`
    /// for events the server listed from before it kept receipts (their arrival is unknown).
    pub received_ms: Option<i64>,
    /// The device's time bounded by what the server knows: never earlier than the latest
    /// receive time of what the sender had seen, never later than `received_ms`. Deadlines,
    /// overdue days and statistics use this time.
    pub at_ms: i64,
    /// Why the event did not count when the server accepted it, judged against the accepted
    /// state with the sender's role (e.g. a former assignee's rectification). `None` when the
    /// fold decides alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded: Option<String>,
}

/// One event as the issue's history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub event: Event,
    /// Why the event did not count, e.g. "verified is not allowed when the issue is closed";
    /// `None` when it did.
    pub superseded: Option<String>,
    /// The time that counts for the event: the device time bounded by the server's receive
    /// times once the server accepted it, the device time while it is provisional.
    pub at_ms: i64,
    /// When the server accepted the event; `None` while it is only on a phone (provisional)
    /// or for events written before the server kept receipts.
    pub received_at_ms: Option<i64>,
}

/// Everything derived from an issue's events.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueState {
    /// `None` until a `reported` event counts.
    pub status: Option<Status>,
    pub reporter: Option<String>,
    pub reported_at_ms: Option<i64>,
    /// When the issue was first taken on: accepted, or assigned or reopened without an
    /// acceptance before.
    pub accepted_at_ms: Option<i64>,
    pub assignee: Option<Assignee>,
    pub deadline_ms: Option<i64>,
    /// The latest rectification submission that counted.
    pub submitted_at_ms: Option<i64>,
    /// That submission's event id: what a verification or rejection judges.
    #[serde(default)]
    pub submission: Option<String>,
    /// When the issue was finished: verified, invalidated or marked duplicate.
    pub closed_at_ms: Option<i64>,
    pub duplicate_of: Option<String>,
    pub escalations: u32,
    pub rejections: u32,
    /// Every event in the order it counts in, superseded ones included.
    pub timeline: Vec<TimelineEntry>,
    /// The ids in the timeline, to tell a repeat without scanning it.
    #[serde(skip)]
    pub(crate) seen: Seen,
}

/// The ids of the timeline's events, kept beside it so that a repeat is found without scanning
/// the timeline. Derived from the timeline: it never makes two states unequal, and it is built
/// again when it does not cover the timeline (a state read back from JSON).
#[derive(Debug, Clone, Default)]
pub(crate) struct Seen {
    ids: HashSet<String>,
    /// How many timeline entries `ids` covers.
    entries: usize,
}

impl PartialEq for Seen {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Seen {}

/// Folds an issue's events, in list order, into its state: the order of a document without
/// receipts (one written before the server kept them, or events no server has accepted yet).
pub fn fold(events: &[Event]) -> IssueState {
    fold_ordered(events, &[])
}

/// Folds an issue's events into its state in the effective order: first the events with a
/// receipt, in receipt order, each at its bounded time; then the rest in list order. A receipt
/// binds the first event of its id not bound yet; receipts naming no event are skipped.
pub fn fold_ordered(events: &[Event], receipts: &[Receipt]) -> IssueState {
    let mut state = IssueState::default();
    let mut bound = vec![false; events.len()];
    // Each id's events in list order, so that binding costs a lookup, not a scan of the list.
    let mut by_id: HashMap<&str, VecDeque<usize>> = HashMap::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        by_id.entry(event.id.as_str()).or_default().push_back(i);
    }
    for receipt in receipts {
        let found = by_id
            .get_mut(receipt.event.as_str())
            .and_then(VecDeque::pop_front);
        if let Some(i) = found {
            bound[i] = true;
            state.apply_received(&events[i], Some(receipt));
        }
    }
    for (event, _) in events.iter().zip(&bound).filter(|(_, b)| !**b) {
        state.apply(event);
    }
    state
}

impl IssueState {
    /// Folds one more provisional event in (no receipt): what `fold` does for each event, for
    /// callers that keep the state and see the list grow at its end.
    pub fn apply(&mut self, event: &Event) {
        self.apply_received(event, None);
    }

    /// Folds one more event in, with the server's receipt when it has one.
    pub fn apply_received(&mut self, event: &Event, receipt: Option<&Receipt>) {
        let at_ms = receipt.map_or(event.at_ms, |r| r.at_ms);
        if self.seen.entries != self.timeline.len() {
            self.seen = Seen {
                ids: self.timeline.iter().map(|e| e.event.id.clone()).collect(),
                entries: self.timeline.len(),
            };
        }
        self.seen.entries += 1;
        let superseded = if !self.seen.ids.insert(event.id.clone()) {
            Some(format!("repeats event {}", event.id))
        } else if let Some(why) = receipt.and_then(|r| r.superseded.clone()) {
            Some(why)
        } else {
            match admissible(self, &event.action) {
                Ok(()) => {
                    self.take(event, at_ms);
                    None
                }
                Err(why) => Some(why.to_string()),
            }
        };
        self.timeline.push(TimelineEntry {
            event: event.clone(),
            superseded,
            at_ms,
            received_at_ms: receipt.and_then(|r| r.received_ms),
        });
    }

    fn take(&mut self, event: &Event, at: i64) {
        match &event.action {
            Action::Reported => {
                self.reporter = Some(event.by.clone());
                self.reported_at_ms = Some(at);
            }
            Action::Accepted => self.accepted_at_ms = Some(at),
            Action::Assigned {
                assignee,
                deadline_ms,
            } => {
                self.accepted_at_ms.get_or_insert(at);
                self.assignee = Some(assignee.clone());
                self.deadline_ms = Some(*deadline_ms);
            }
            Action::RectificationSubmitted { .. } => {
                self.submitted_at_ms = Some(at);
                self.submission = Some(event.id.clone());
            }
            Action::Verified { .. } | Action::Invalidated { .. } => self.closed_at_ms = Some(at),
            Action::DuplicateOf { issue } => {
                self.duplicate_of = Some(issue.clone());
                self.closed_at_ms = Some(at);
            }
            Action::Rejected { .. } => self.rejections = self.rejections.saturating_add(1),
            Action::Escalated { .. } => self.escalations = self.escalations.saturating_add(1),
            Action::Reopened { .. } => {
                self.accepted_at_ms.get_or_insert(at);
                self.assignee = None;
                self.deadline_ms = None;
                self.submitted_at_ms = None;
                self.submission = None;
                self.closed_at_ms = None;
                self.duplicate_of = None;
            }
            Action::Comment { .. } => {}
        }
        if let Some(to) = Transition::of(event.action.kind()).to {
            self.status = Some(to);
        }
    }

    pub fn is_open(&self) -> bool {
        self.status.is_some_and(Status::is_open)
    }

    /// Whole days past the deadline, rounded up, while the rectification is late: `None` when
    /// on time, finished or without a deadline. The clock stops when a rectification is
    /// submitted (a late submission stays late by the days it took) and runs again if that
    /// rectification is rejected, so an assignee who delivered on time is never counted overdue
    /// while a supervisor has yet to verify.
    pub fn overdue_days(&self, now_ms: i64) -> Option<i64> {
        let deadline = self.deadline_ms?;
        let until = match self.status? {
            Status::Assigned => now_ms,
            Status::Submitted => self.submitted_at_ms?,
            _ => return None,
        };
        let late = until.saturating_sub(deadline);
        (late > 0).then(|| (late - 1) / DAY_MS + 1)
    }

    /// From report to finish, for finished issues. Device clocks disagree, so a finish stamped
    /// before the report counts as zero rather than a negative duration.
    pub fn time_to_close_ms(&self) -> Option<i64> {
        let closed = self.closed_at_ms?;
        Some(closed.saturating_sub(self.reported_at_ms?).max(0))
    }

    /// For verified issues: whether the rectification that was verified was submitted by the
    /// deadline. `None` for anything not closed.
    pub fn rectified_on_time(&self) -> Option<bool> {
        if self.status != Some(Status::Closed) {
            return None;
        }
        Some(self.submitted_at_ms? <= self.deadline_ms?)
    }

    /// The kinds that may be appended now, whoever asks, in table order.
    pub fn next_steps(&self) -> Vec<EventKind> {
        kinds_allowed_in(self.status)
    }
}
