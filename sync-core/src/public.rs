//! The public's channel into the rectification loop: where a report came from, what a resident
//! may read of its progress, and whether he may say he is satisfied (处置后督查).
//!
//! A report from the signboard's QR code, the 12369 hotline or a letter becomes an ordinary
//! issue; its `source` root key names the channel. The reporter's phone number is never part of
//! the issue document (documents reach chiefs' phones): the server keeps it beside the case.

use serde::{Deserialize, Serialize};

use crate::model::{DivisionCode, Role, System, User};
use crate::workflow::{Action, Assignee, IssueState, Status};

/// The user id public reports are recorded under: no account has it, and no one signs in as it.
pub const PUBLIC_REPORTER: &str = "public";

/// How a problem reached the loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssueSource {
    /// Found by a chief on patrol or in passing (every issue without a `source` key).
    Patrol,
    /// A resident through the signboard's QR code.
    Public,
    /// The 12369 hotline, entered by office staff.
    Hotline,
    /// A letter or visit (信访), entered by office staff.
    Letter,
}

impl IssueSource {
    pub const ALL: [IssueSource; 4] = [
        IssueSource::Patrol,
        IssueSource::Public,
        IssueSource::Hotline,
        IssueSource::Letter,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            IssueSource::Patrol => "patrol",
            IssueSource::Public => "public",
            IssueSource::Hotline => "hotline",
            IssueSource::Letter => "letter",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn name_zh(self) -> &'static str {
        match self {
            IssueSource::Patrol => "巡查发现",
            IssueSource::Public => "群众扫码举报",
            IssueSource::Hotline => "12369热线",
            IssueSource::Letter => "信访",
        }
    }

    /// Whether office staff enter reports of this source for the caller.
    pub fn entered_by_office(self) -> bool {
        matches!(self, IssueSource::Hotline | IssueSource::Letter)
    }
}

/// What a resident said of how his report was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Satisfaction {
    Satisfied,
    NotSatisfied,
}

impl Satisfaction {
    pub fn as_str(self) -> &'static str {
        match self {
            Satisfaction::Satisfied => "satisfied",
            Satisfaction::NotSatisfied => "not_satisfied",
        }
    }
}

/// The user a public report is recorded in the name of: the asset's office, reporting for the
/// resident (so the workflow's rule for who may report holds unchanged).
pub fn public_reporter(system: System, division: &DivisionCode) -> User {
    User {
        id: PUBLIC_REPORTER.to_string(),
        username: PUBLIC_REPORTER.to_string(),
        display_name: "群众".to_string(),
        role: Role::Supervisor {
            system,
            division: division.clone(),
        },
        active: true,
    }
}

/// One step of an issue as the resident sees it: what happened and when, no names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicStep {
    pub at_ms: i64,
    pub text: String,
}

/// The public part of an issue's timeline: the steps that counted, in plain words. Comments,
/// rejections of a rectification and escalations are the office's business; an assignment shows
/// the department, never a person.
pub fn public_timeline(state: &IssueState) -> Vec<PublicStep> {
    state
        .timeline
        .iter()
        .filter(|e| e.superseded.is_none())
        .filter_map(|e| {
            let text = match &e.event.action {
                Action::Reported => "问题已登记，等待受理".to_string(),
                Action::Accepted => "已受理".to_string(),
                Action::Assigned { assignee, .. } => match assignee {
                    Assignee::Department(d) => format!("已交办{d}整改"),
                    Assignee::User(_) => "已交办责任人整改".to_string(),
                },
                Action::RectificationSubmitted { .. } => "整改完成，等待核查".to_string(),
                Action::Verified { .. } => "经核查整改到位，已销号".to_string(),
                Action::Invalidated { reason } => format!("经核实不属实或不属于受理范围：{reason}"),
                Action::DuplicateOf { .. } => "与已受理的同一问题合并处理".to_string(),
                Action::Reopened { .. } => "重新整改".to_string(),
                Action::Rejected { .. } | Action::Escalated { .. } | Action::Comment { .. } => {
                    return None
                }
            };
            Some(PublicStep {
                at_ms: e.at_ms,
                text,
            })
        })
        .collect()
}

/// Whether the resident may now say whether he is satisfied: once the issue is finished.
pub fn may_rate(state: &IssueState) -> bool {
    matches!(
        state.status,
        Some(Status::Closed | Status::Invalid | Status::Duplicate)
    )
}

/// The after photos a resident sees once the issue is closed: those of the rectification that
/// was verified. None before then.
pub fn after_photos(state: &IssueState) -> Vec<String> {
    if state.status != Some(Status::Closed) {
        return Vec::new();
    }
    let Some(submission) = state.submission.as_deref() else {
        return Vec::new();
    };
    state
        .timeline
        .iter()
        .filter(|e| e.event.id == submission)
        .find_map(|e| match &e.event.action {
            Action::RectificationSubmitted { photos, .. } => Some(photos.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::{fold, Event};

    fn event(id: &str, at: i64, action: Action) -> Event {
        Event {
            id: id.into(),
            by: "u".into(),
            device: "d".into(),
            at_ms: at,
            action,
        }
    }

    #[test]
    fn sources_round_trip_and_default_to_patrol() {
        for s in IssueSource::ALL {
            assert_eq!(IssueSource::parse(s.as_str()), Some(s));
        }
        assert_eq!(IssueSource::parse("wechat"), None);
    }

    #[test]
    fn the_public_sees_plain_steps_and_after_photos_only_when_closed() {
        let photo = "a".repeat(64);
        let mut events = vec![
            event("e1", 1, Action::Reported),
            event("e2", 2, Action::Accepted),
            event(
                "e3",
                3,
                Action::Assigned {
                    assignee: Assignee::Department("区水务局".into()),
                    deadline_ms: 100,
                },
            ),
            event(
                "e4",
                4,
                Action::Comment {
                    text: "内部意见".into(),
                },
            ),
            event(
                "e5",
                5,
                Action::RectificationSubmitted {
                    note: "已清理".into(),
                    photos: vec![photo.clone()],
                },
            ),
        ];
        let state = fold(&events);
        let steps = public_timeline(&state);
        assert_eq!(steps.len(), 4, "{steps:?}");
        assert!(steps[2].text.contains("区水务局"));
        assert!(!steps.iter().any(|s| s.text.contains("内部意见")));
        assert!(after_photos(&state).is_empty());
        assert!(!may_rate(&state));
        events.push(event("e6", 6, Action::Verified { note: "".into() }));
        let state = fold(&events);
        assert_eq!(after_photos(&state), vec![photo]);
        assert!(may_rate(&state));
    }
}
