//! The issue workflow: report → accept → assign (deadline) → rectify → verify → close (销号),
//! with rejection back to rework, invalid and duplicate closure, escalation (督办), reopening
//! and comments.
//!
//! Workflow state is derived, never stored. An issue document holds an append-only list of
//! [`Event`]s; [`fold`] turns that list into an [`IssueState`] (status, assignee, deadline,
//! overdue, timeline). Who may append what in which status is the data in [`TRANSITIONS`], read
//! by the fold, by [`check`] on the phone and by the server before it merges a change.
//!
//! This module is pure logic: no automerge, no storage, no clock. Callers pass the time in.
//!
//! ```
//! use sync_core::workflow::{check, fold, Action, Assignee, Event, Status, Who};
//!
//! let event = |id: &str, by: &str, at_ms: i64, action| Event {
//!     id: id.into(),
//!     by: by.into(),
//!     device: "phone-1".into(),
//!     at_ms,
//!     action,
//! };
//! let day = 86_400_000;
//! let mut events = vec![
//!     event("e1", "chief-li", 0, Action::Reported),
//!     event("e2", "office-wang", day, Action::Accepted),
//!     event("e3", "office-wang", day, Action::Assigned {
//!         assignee: Assignee::Department("区水务局".into()),
//!         deadline_ms: 8 * day,
//!     }),
//! ];
//! let state = fold(&events);
//! assert_eq!(state.status, Some(Status::Assigned));
//! assert_eq!(state.overdue_days(10 * day), Some(2));
//!
//! // Only the assignee may submit the rectification; a chief may not verify.
//! let verify = Action::Verified { note: String::new() };
//! assert!(check(&state, &[Who::ChiefInScope], &verify).is_err());
//!
//! let photo = "a".repeat(64);
//! events.push(event("e4", "handler-zhao", 5 * day, Action::RectificationSubmitted {
//!     note: "清理完毕".into(),
//!     photos: vec![photo],
//! }));
//! events.push(event("e5", "office-wang", 6 * day, verify));
//! let state = fold(&events);
//! assert_eq!(state.status, Some(Status::Closed));
//! assert_eq!(state.rectified_on_time(), Some(true));
//! assert_eq!(state.time_to_close_ms(), Some(6 * day));
//! ```

mod check;
mod deadline;
mod duplicates;
mod event;
mod filter;
mod fold;
mod relations;
mod table;
mod targets;

#[cfg(test)]
mod tests;

pub use check::{allowed_actions, allowed_for_relations, authorize, check, TransitionError};
pub use deadline::{escalated_since_assignment, needs_escalation};
pub use duplicates::{possible_duplicates, DuplicateCandidate, DuplicateIndex};
pub use event::{
    Action, Assignee, Event, EventKind, DEADLINE_JOB_DEVICE, PUBLIC_DEVICE, SERVER_DEVICES,
    WEB_DEVICE,
};
pub use filter::{parse_statuses, IssueFilter};
pub use fold::{fold, fold_ordered, IssueState, Receipt, TimelineEntry};
pub use relations::{edits_record, relations, IssueContext, SYSTEM_USER};
pub use table::{kinds_allowed_in, Status, Transition, Who, TRANSITIONS};
pub use targets::{check_targets, named_targets, Targets};
