//! The issue workflow's transition table, as data: for each event kind, the statuses it may be
//! appended in, the status it leads to and who may append it.
//!
//! This table is the only statement of the rules. The fold reads it to decide which events
//! count, `check` reads it to refuse actions on the phone and on the server; nothing else may
//! encode a transition of its own.

use super::event::EventKind;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Derived status of an issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Reported by a chief, waiting for the chief office to take it on.
    Reported,
    Accepted,
    /// Assigned with a deadline; being rectified (also after a rejected rectification).
    Assigned,
    /// Rectification submitted, waiting for verification.
    Submitted,
    /// Verified and closed (销号).
    Closed,
    Invalid,
    Duplicate,
}

impl Status {
    pub const ALL: [Status; 7] = [
        Status::Reported,
        Status::Accepted,
        Status::Assigned,
        Status::Submitted,
        Status::Closed,
        Status::Invalid,
        Status::Duplicate,
    ];

    /// Whether the issue still needs work; closed, invalid and duplicate issues do not.
    pub fn is_open(self) -> bool {
        OPEN.contains(&self)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Reported => "reported",
            Status::Accepted => "accepted",
            Status::Assigned => "assigned",
            Status::Submitted => "submitted",
            Status::Closed => "closed",
            Status::Invalid => "invalid",
            Status::Duplicate => "duplicate",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The label chief offices use on dashboards and in reports.
    pub fn name_zh(self) -> &'static str {
        match self {
            Status::Reported => "待受理",
            Status::Accepted => "已受理",
            Status::Assigned => "整改中",
            Status::Submitted => "待核查",
            Status::Closed => "已销号",
            Status::Invalid => "无效",
            Status::Duplicate => "重复",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a user stands towards one issue; see `relations` for how it is worked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Who {
    /// The chief who reported the issue.
    Reporter,
    /// A chief of the issue's system whose jurisdiction covers the issue's asset or division.
    ChiefInScope,
    /// Chief-office staff of the issue's system over a division containing the issue.
    Supervisor,
    /// The user the issue is assigned to, or a handler of the assigned department.
    Assignee,
    /// The server's own deadline job.
    System,
}

impl Who {
    pub const ALL: [Who; 5] = [
        Who::Reporter,
        Who::ChiefInScope,
        Who::Supervisor,
        Who::Assignee,
        Who::System,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Who::Reporter => "reporter",
            Who::ChiefInScope => "chief_in_scope",
            Who::Supervisor => "supervisor",
            Who::Assignee => "assignee",
            Who::System => "system",
        }
    }
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One row of the table. Only `Serialize`: the rows are static data, published (e.g. to the
/// dashboard or API docs) but never read back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Transition {
    pub kind: EventKind,
    /// The statuses this kind may be appended in; empty means "only as the first event".
    pub from: &'static [Status],
    /// The status it leads to; `None` leaves the status as it is.
    pub to: Option<Status>,
    /// Who may append it.
    pub who: &'static [Who],
}

const OPEN: &[Status] = &[
    Status::Reported,
    Status::Accepted,
    Status::Assigned,
    Status::Submitted,
];

const FINISHED: &[Status] = &[Status::Closed, Status::Invalid, Status::Duplicate];

const SUPERVISOR: &[Who] = &[Who::Supervisor];

/// The workflow. One row per event kind.
pub static TRANSITIONS: &[Transition] = &[
    Transition {
        kind: EventKind::Reported,
        from: &[],
        to: Some(Status::Reported),
        who: &[Who::ChiefInScope, Who::Supervisor],
    },
    Transition {
        kind: EventKind::Accepted,
        from: &[Status::Reported],
        to: Some(Status::Accepted),
        who: SUPERVISOR,
    },
    Transition {
        // Assigning again while assigned hands the issue over or moves the deadline.
        kind: EventKind::Assigned,
        from: &[Status::Reported, Status::Accepted, Status::Assigned],
        to: Some(Status::Assigned),
        who: SUPERVISOR,
    },
    Transition {
        kind: EventKind::RectificationSubmitted,
        from: &[Status::Assigned],
        to: Some(Status::Submitted),
        who: &[Who::Assignee],
    },
    Transition {
        kind: EventKind::Verified,
        from: &[Status::Submitted],
        to: Some(Status::Closed),
        who: SUPERVISOR,
    },
    Transition {
        // Back to rework with the same assignee and deadline.
        kind: EventKind::Rejected,
        from: &[Status::Submitted],
        to: Some(Status::Assigned),
        who: SUPERVISOR,
    },
    Transition {
        // Not while a rectification waits: that is verified or rejected first.
        kind: EventKind::Invalidated,
        from: &[Status::Reported, Status::Accepted, Status::Assigned],
        to: Some(Status::Invalid),
        who: SUPERVISOR,
    },
    Transition {
        kind: EventKind::DuplicateOf,
        from: &[Status::Reported, Status::Accepted],
        to: Some(Status::Duplicate),
        who: SUPERVISOR,
    },
    Transition {
        kind: EventKind::Escalated,
        from: OPEN,
        to: None,
        who: &[Who::Supervisor, Who::System],
    },
    Transition {
        // Reopening starts over from acceptance: the old assignment and deadline are gone.
        kind: EventKind::Reopened,
        from: FINISHED,
        to: Some(Status::Accepted),
        who: SUPERVISOR,
    },
    Transition {
        kind: EventKind::Comment,
        from: &Status::ALL,
        to: None,
        who: &[
            Who::Reporter,
            Who::ChiefInScope,
            Who::Supervisor,
            Who::Assignee,
        ],
    },
];

impl Transition {
    /// The row for `kind`.
    pub fn of(kind: EventKind) -> &'static Transition {
        TRANSITIONS
            .iter()
            .find(|t| t.kind == kind)
            .expect("the table has a row for every event kind")
    }

    /// Whether this kind may be appended when the issue is in `status` (`None`: nothing
    /// reported yet).
    pub fn allowed_in(&self, status: Option<Status>) -> bool {
        match status {
            None => self.from.is_empty(),
            Some(status) => self.from.contains(&status),
        }
    }

    /// Whether someone standing in any of the relations `who` may append this kind.
    pub fn allowed_for(&self, who: &[Who]) -> bool {
        who.iter().any(|w| self.who.contains(w))
    }
}

/// The kinds that may be appended in `status`, whoever asks, in table order.
pub fn kinds_allowed_in(status: Option<Status>) -> Vec<EventKind> {
    TRANSITIONS
        .iter()
        .filter(|t| t.allowed_in(status))
        .map(|t| t.kind)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_exactly_one_row() {
        for kind in EventKind::ALL {
            let rows = TRANSITIONS.iter().filter(|t| t.kind == kind).count();
            assert_eq!(rows, 1, "{kind}");
            assert_eq!(Transition::of(kind).kind, kind);
        }
        assert_eq!(TRANSITIONS.len(), EventKind::ALL.len());
    }

    #[test]
    fn only_reported_starts_an_issue_and_only_reopened_leaves_a_finished_one_open() {
        assert_eq!(kinds_allowed_in(None), vec![EventKind::Reported]);
        for status in Status::ALL {
            assert!(!kinds_allowed_in(Some(status)).contains(&EventKind::Reported));
        }
        for t in TRANSITIONS {
            for from in t.from {
                let to = t.to.unwrap_or(*from);
                if !from.is_open() && to.is_open() {
                    assert_eq!(t.kind, EventKind::Reopened);
                }
            }
        }
    }

    #[test]
    fn every_status_is_reachable_and_every_open_status_can_move_on() {
        for status in Status::ALL {
            assert!(TRANSITIONS.iter().any(|t| t.to == Some(status)), "{status}");
            let leaves = TRANSITIONS
                .iter()
                .any(|t| t.allowed_in(Some(status)) && t.to.is_some_and(|to| to != status));
            assert!(leaves, "{status} is a dead end");
        }
    }

    #[test]
    fn statuses_have_names() {
        for status in Status::ALL {
            assert_eq!(Status::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!(Status::Closed.name_zh(), "已销号");
        assert_eq!(Status::Submitted.name_zh(), "待核查");
        let open: Vec<_> = Status::ALL.into_iter().filter(|s| s.is_open()).collect();
        assert_eq!(open.len(), 4);
        assert!(!Status::Duplicate.is_open());
    }

    #[test]
    fn the_table_is_published_as_json() {
        let json = serde_json::to_value(Transition::of(EventKind::Rejected)).unwrap();
        assert_eq!(json["kind"], "rejected");
        assert_eq!(json["from"], serde_json::json!(["submitted"]));
        assert_eq!(json["to"], "assigned");
        assert_eq!(json["who"], serde_json::json!(["supervisor"]));
    }
}
