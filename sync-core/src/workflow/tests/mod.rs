//! Tests of the workflow as a whole: the table case by case, who may do what, the main paths,
//! concurrent conflicts and properties of the fold. Fixtures here build real users and events;
//! nothing is mocked.

mod properties;
mod receipts;
mod scenarios;
mod table_cases;

use super::*;
use crate::model::{DivisionCode, Jurisdiction, Role, System, User};

pub(super) const DAY: i64 = 86_400_000;
/// 2026-05-01 08:00 Beijing time; the report of every fixture issue.
pub(super) const T0: i64 = 1_777_593_600_000;
pub(super) const WATER_BUREAU: &str = "区水务局";
pub(super) const ASSET: &str = "river.xiaoqinghe.07";

pub(super) fn ev(id: &str, by: &str, at_ms: i64, action: Action) -> Event {
    Event {
        id: id.into(),
        by: by.into(),
        device: format!("{by}-phone"),
        at_ms,
        action,
    }
}

pub(super) fn photo(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

pub(super) fn code(s: &str) -> DivisionCode {
    DivisionCode::new(s).unwrap()
}

/// A river issue on a segment of 小清河 in a village of 天桥区, reported by chief-li.
pub(super) fn ctx() -> IssueContext {
    IssueContext {
        system: System::River,
        division: code("370105014201"),
        asset: ASSET.into(),
        reporter: "chief-li".into(),
    }
}

fn user(id: &str, role: Role) -> User {
    User {
        id: id.into(),
        username: id.into(),
        display_name: id.into(),
        role,
        active: true,
    }
}

pub(super) fn supervisor(id: &str, system: System, division: &str) -> User {
    user(
        id,
        Role::Supervisor {
            system,
            division: code(division),
        },
    )
}

pub(super) fn chief(id: &str, system: System, division: &str, assets: &[&str]) -> User {
    user(
        id,
        Role::Chief {
            system,
            level: code(division).level(),
            jurisdiction: Jurisdiction {
                division: code(division),
                assets: assets.iter().map(|a| a.to_string()).collect(),
            },
        },
    )
}

pub(super) fn handler(id: &str, department: &str) -> User {
    user(
        id,
        Role::Handler {
            department: department.into(),
        },
    )
}

/// The district river office (河长办) over 天桥区.
pub(super) fn office() -> User {
    supervisor("office-wang", System::River, "370105000000")
}

/// The reporting village chief; his jurisdiction lists the issue's segment (in another
/// village's division, as segments cross village borders).
pub(super) fn reporter() -> User {
    chief("chief-li", System::River, "370105014202", &[ASSET])
}

pub(super) fn water_handler() -> User {
    handler("handler-zhao", WATER_BUREAU)
}

pub(super) fn system_user() -> User {
    user(SYSTEM_USER, Role::Admin)
}

pub(super) fn assign_to(assignee: Assignee) -> Action {
    Action::Assigned {
        assignee,
        deadline_ms: T0 + 8 * DAY,
    }
}

pub(super) fn submit() -> Action {
    Action::RectificationSubmitted {
        note: "垃圾已清理".into(),
        photos: vec![photo(1), photo(2)],
    }
}

/// A valid action of each kind.
pub(super) fn sample(kind: EventKind) -> Action {
    match kind {
        EventKind::Reported => Action::Reported,
        EventKind::Accepted => Action::Accepted,
        EventKind::Assigned => assign_to(Assignee::Department(WATER_BUREAU.into())),
        EventKind::RectificationSubmitted => submit(),
        EventKind::Verified => Action::Verified {
            note: "现场核查通过".into(),
        },
        EventKind::Rejected => Action::Rejected {
            reason: "岸边仍有堆放".into(),
        },
        EventKind::Invalidated => Action::Invalidated {
            reason: "不属于河道范围".into(),
        },
        EventKind::DuplicateOf => Action::DuplicateOf {
            issue: "0190f2a4-1111-7000-8000-000000000000".into(),
        },
        EventKind::Escalated => Action::Escalated {
            note: "逾期督办".into(),
        },
        EventKind::Reopened => Action::Reopened {
            reason: "问题反弹".into(),
        },
        EventKind::Comment => Action::Comment {
            text: "已电话联系".into(),
        },
    }
}

/// Events that bring a fixture issue into `status` (none for `None`), one day apart.
pub(super) fn events_to(status: Option<Status>) -> Vec<Event> {
    use EventKind as K;
    let path: &[EventKind] = match status {
        None => &[],
        Some(Status::Reported) => &[K::Reported],
        Some(Status::Accepted) => &[K::Reported, K::Accepted],
        Some(Status::Assigned) => &[K::Reported, K::Accepted, K::Assigned],
        Some(Status::Submitted) => &[
            K::Reported,
            K::Accepted,
            K::Assigned,
            K::RectificationSubmitted,
        ],
        Some(Status::Closed) => &[
            K::Reported,
            K::Accepted,
            K::Assigned,
            K::RectificationSubmitted,
            K::Verified,
        ],
        Some(Status::Invalid) => &[K::Reported, K::Invalidated],
        Some(Status::Duplicate) => &[K::Reported, K::DuplicateOf],
    };
    path.iter()
        .enumerate()
        .map(|(i, kind)| {
            let by = match kind {
                K::Reported => "chief-li",
                K::RectificationSubmitted => "handler-zhao",
                _ => "office-wang",
            };
            ev(&format!("e{i}"), by, T0 + i as i64 * DAY, sample(*kind))
        })
        .collect()
}

/// The state without its timeline, to compare what events derived.
pub(super) fn derived(state: &IssueState) -> IssueState {
    IssueState {
        timeline: Vec::new(),
        ..state.clone()
    }
}

pub(super) fn superseded(state: &IssueState) -> Vec<(&str, &str)> {
    state
        .timeline
        .iter()
        .filter_map(|e| Some((e.event.id.as_str(), e.superseded.as_deref()?)))
        .collect()
}
