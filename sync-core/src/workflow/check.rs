//! Checking an action before it is appended: on the phone to offer only what is allowed, on the
//! server to refuse the rest, and inside the fold to decide which events count.
//!
//! Every rule comes from `TRANSITIONS` plus the payload checks below; callers must not add rules
//! of their own. Authorization of a change is meant against the state its author saw (the
//! document at the change's dependencies): two supervisors who both saw a submitted
//! rectification may both act, and the fold then settles which of the two counts.

use super::event::{Action, EventKind};
use super::fold::IssueState;
use super::relations::{relations, IssueContext};
use super::table::{kinds_allowed_in, Status, Transition, Who};
use crate::model::User;
use serde::{Deserialize, Serialize};

/// Why an action may not be appended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum TransitionError {
    /// The action does not fit the issue's status (HTTP 409).
    #[error("{}", not_allowed_message(*kind, *status))]
    InvalidTransition {
        kind: EventKind,
        status: Option<Status>,
        /// What may be appended in that status instead.
        allowed: Vec<EventKind>,
    },
    /// The user stands in no relation to the issue that allows this action (HTTP 403).
    #[error("{}", forbidden_message(*kind, who, needs))]
    Forbidden {
        kind: EventKind,
        /// How the user stands towards the issue.
        who: Vec<Who>,
        /// Any one of these would have been enough.
        needs: Vec<Who>,
    },
    /// The payload is unusable, e.g. a rejection without a reason (HTTP 422).
    #[error("{reason}")]
    Invalid { reason: String },
}

fn not_allowed_message(kind: EventKind, status: Option<Status>) -> String {
    match status {
        None => format!("{kind} is not allowed before the issue is reported"),
        Some(_) if kind == EventKind::Reported => "the issue is already reported".to_string(),
        Some(status) => format!("{kind} is not allowed when the issue is {status}"),
    }
}

fn forbidden_message(kind: EventKind, who: &[Who], needs: &[Who]) -> String {
    let names = |who: &[Who]| {
        who.iter()
            .map(|w| w.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if who.is_empty() {
        format!(
            "{kind} needs one of: {}; the user has no part in this issue",
            names(needs)
        )
    } else {
        format!(
            "{kind} needs one of: {}; the user is: {}",
            names(needs),
            names(who)
        )
    }
}

/// Whether someone standing in the relations `who` may append `action` to an issue in `state`.
/// Relations are checked first, then the status, then the payload.
pub fn check(state: &IssueState, who: &[Who], action: &Action) -> Result<(), TransitionError> {
    let row = Transition::of(action.kind());
    if !row.allowed_for(who) {
        return Err(TransitionError::Forbidden {
            kind: row.kind,
            who: who.to_vec(),
            needs: row.who.to_vec(),
        });
    }
    admissible(state, action)
}

/// What `user` may append next to the issue of `ctx` in `state`, in table order: the one answer
/// the dashboard's buttons, the API's `allowed_actions` and the phone's offered steps all show.
/// Payloads are not judged: a rejection is offered even though it will need a reason.
pub fn allowed_actions(user: &User, ctx: &IssueContext, state: &IssueState) -> Vec<EventKind> {
    allowed_for_relations(state, &relations(user, ctx, state))
}

/// The kinds someone standing in the relations `who` may append now, in table order.
pub fn allowed_for_relations(state: &IssueState, who: &[Who]) -> Vec<EventKind> {
    kinds_allowed_in(state.status)
        .into_iter()
        .filter(|kind| Transition::of(*kind).allowed_for(who))
        .collect()
}

/// `check` for a given user, plus what needs the issue's own id (its events do not carry it):
/// an issue cannot be a duplicate of itself. The one call the server and the phone make.
pub fn authorize(
    user: &User,
    ctx: &IssueContext,
    issue_id: &str,
    state: &IssueState,
    action: &Action,
) -> Result<(), TransitionError> {
    check(state, &relations(user, ctx, state), action)?;
    match action {
        Action::DuplicateOf { issue } if issue.trim() == issue_id.trim() => {
            Err(invalid("an issue cannot be a duplicate of itself"))
        }
        _ => Ok(()),
    }
}

/// Whether `action` may follow `state`, whoever appends it. This is the fold's rule: an event
/// that fails it is kept in the timeline as superseded.
pub(crate) fn admissible(state: &IssueState, action: &Action) -> Result<(), TransitionError> {
    let kind = action.kind();
    if !Transition::of(kind).allowed_in(state.status) {
        return Err(TransitionError::InvalidTransition {
            kind,
            status: state.status,
            allowed: kinds_allowed_in(state.status),
        });
    }
    payload(state, action)
}

fn payload(state: &IssueState, action: &Action) -> Result<(), TransitionError> {
    match action {
        // Nothing to judge: notes on a verification or an escalation may be left empty.
        Action::Reported
        | Action::Accepted
        | Action::Verified { .. }
        | Action::Escalated { .. } => Ok(()),
        Action::Assigned {
            assignee,
            deadline_ms,
        } => {
            if assignee.name().trim().is_empty() {
                return Err(invalid("an assignment needs a department or user"));
            }
            match state.reported_at_ms {
                Some(reported) if *deadline_ms <= reported => {
                    Err(invalid("the deadline must be after the report"))
                }
                _ => Ok(()),
            }
        }
        Action::RectificationSubmitted { photos, .. } => {
            if photos.is_empty() {
                return Err(invalid("a rectification needs at least one after photo"));
            }
            match photos.iter().find(|p| !is_sha256_hex(p)) {
                Some(bad) => Err(invalid(&format!(
                    "photo {bad:?} is not a lower-case hex SHA-256"
                ))),
                None => Ok(()),
            }
        }
        Action::Rejected { reason } => non_blank(reason, "a rejection needs a reason"),
        Action::Invalidated { reason } => non_blank(reason, "invalidating needs a reason"),
        Action::Reopened { reason } => non_blank(reason, "reopening needs a reason"),
        Action::DuplicateOf { issue } => non_blank(issue, "duplicate_of needs the original issue"),
        Action::Comment { text } => non_blank(text, "a comment needs text"),
    }
}

fn non_blank(text: &str, reason: &str) -> Result<(), TransitionError> {
    if text.trim().is_empty() {
        Err(invalid(reason))
    } else {
        Ok(())
    }
}

fn invalid(reason: &str) -> TransitionError {
    TransitionError::Invalid {
        reason: reason.to_string(),
    }
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
