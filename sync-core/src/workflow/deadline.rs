//! Deadlines (督办): when the server's deadline job appends an `escalated` event to an issue.
//!
//! An assigned issue whose deadline has passed by more than the grace period is escalated once
//! per assignment: an escalation that counted after the latest assignment (by the job or by a
//! supervisor by hand) means the issue was already escalated, so running the job again — or
//! after a restart — adds nothing. The decision reads only the folded state, so every replica
//! agrees on it. Pure logic; the caller passes the time in.

use super::event::EventKind;
use super::fold::IssueState;
use super::table::Status;

/// Whether the deadline job should escalate the issue now: it is being rectified, its deadline
/// passed more than `grace_ms` ago, and no escalation counted since it was last assigned.
/// Issues waiting for verification are not escalated: the assignee did their part.
pub fn needs_escalation(state: &IssueState, now_ms: i64, grace_ms: i64) -> bool {
    state.status == Some(Status::Assigned)
        && state
            .overdue_days(now_ms.saturating_sub(grace_ms.max(0)))
            .is_some()
        && !escalated_since_assignment(state)
}

/// Whether an escalation counted after the latest counted assignment or reopening.
pub fn escalated_since_assignment(state: &IssueState) -> bool {
    let mut escalated = false;
    for entry in state.timeline.iter().filter(|e| e.superseded.is_none()) {
        match entry.event.action.kind() {
            EventKind::Assigned | EventKind::Reopened => escalated = false,
            EventKind::Escalated => escalated = true,
            _ => {}
        }
    }
    escalated
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::{fold, Action, Assignee, Event};

    const DAY: i64 = 86_400_000;

    fn ev(id: &str, at_ms: i64, action: Action) -> Event {
        Event {
            id: id.into(),
            by: "office".into(),
            device: "web".into(),
            at_ms,
            action,
        }
    }

    fn assigned(deadline_days: i64) -> Vec<Event> {
        vec![
            ev("e1", 0, Action::Reported),
            ev(
                "e2",
                DAY,
                Action::Assigned {
                    assignee: Assignee::Department("区水务局".into()),
                    deadline_ms: deadline_days * DAY,
                },
            ),
        ]
    }

    #[test]
    fn escalates_after_the_grace_and_only_once_per_assignment() {
        let mut events = assigned(5);
        let state = fold(&events);
        assert!(!needs_escalation(&state, 5 * DAY, 0), "due, not late");
        assert!(needs_escalation(&state, 5 * DAY + 1, 0));
        assert!(!needs_escalation(&state, 5 * DAY + 1, DAY), "within grace");
        assert!(needs_escalation(&state, 6 * DAY + 1, DAY));

        events.push(ev(
            "e3",
            6 * DAY,
            Action::Escalated {
                note: "超期".into(),
            },
        ));
        let state = fold(&events);
        assert!(!needs_escalation(&state, 30 * DAY, 0));

        // A new assignment with a new deadline may be escalated again when it is missed.
        events.push(ev(
            "e4",
            7 * DAY,
            Action::Assigned {
                assignee: Assignee::Department("区城管局".into()),
                deadline_ms: 10 * DAY,
            },
        ));
        let state = fold(&events);
        assert!(!needs_escalation(&state, 9 * DAY, 0));
        assert!(needs_escalation(&state, 11 * DAY, 0));
    }

    #[test]
    fn submitted_and_finished_issues_are_not_escalated() {
        let mut events = assigned(5);
        events.push(ev(
            "e3",
            6 * DAY,
            Action::RectificationSubmitted {
                note: String::new(),
                photos: vec!["a".repeat(64)],
            },
        ));
        let state = fold(&events);
        assert_eq!(state.status, Some(Status::Submitted));
        assert!(!needs_escalation(&state, 30 * DAY, 0));
        events.push(ev(
            "e4",
            7 * DAY,
            Action::Verified {
                note: String::new(),
            },
        ));
        assert!(!needs_escalation(&fold(&events), 30 * DAY, 0));
        assert!(!needs_escalation(&fold(&[]), 30 * DAY, 0));
    }
}
