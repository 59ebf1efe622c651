//! The fold: an issue's status, assignee, deadline and timeline derived from its event list.
//!
//! The fold is pure and follows list order only (device clocks are not trusted for ordering), so
//! every replica that holds the same list computes the same state. An event that does not fit
//! the state reached so far stays in the timeline, marked superseded with the reason, and
//! changes nothing. The fold never looks at who appended an event: that was authorized before
//! the event was accepted into the document.

use super::check::admissible;
use super::event::{Action, Assignee, Event, EventKind};
use super::table::{kinds_allowed_in, Status, Transition};
use serde::{Deserialize, Serialize};

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// One event as the issue's history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub event: Event,
    /// Why the event did not count, e.g. "verified is not allowed when the issue is closed";
    /// `None` when it did.
    pub superseded: Option<String>,
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
    /// When the issue was finished: verified, invalidated or marked duplicate.
    pub closed_at_ms: Option<i64>,
    pub duplicate_of: Option<String>,
    pub escalations: u32,
    pub rejections: u32,
    /// Every event in list order, superseded ones included.
    pub timeline: Vec<TimelineEntry>,
}

/// Folds an issue's events, in list order, into its state.
pub fn fold(events: &[Event]) -> IssueState {
    let mut state = IssueState::default();
    for event in events {
        state.apply(event);
    }
    state
}

impl IssueState {
    /// Folds one more event in: what `fold` does for each event, for callers that keep the
    /// state and see the list grow at its end.
    pub fn apply(&mut self, event: &Event) {
        let superseded = if self.timeline.iter().any(|e| e.event.id == event.id) {
            Some(format!("repeats event {}", event.id))
        } else {
            match admissible(self, &event.action) {
                Ok(()) => {
                    self.take(event);
                    None
                }
                Err(why) => Some(why.to_string()),
            }
        };
        self.timeline.push(TimelineEntry {
            event: event.clone(),
            superseded,
        });
    }

    fn take(&mut self, event: &Event) {
        let at = event.at_ms;
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
            Action::RectificationSubmitted { .. } => self.submitted_at_ms = Some(at),
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
