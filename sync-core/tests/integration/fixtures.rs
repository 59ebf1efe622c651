//! Users and records shared by the tests: a village river chief, a second chief elsewhere, the
//! district river office's supervisor and a handler of 区水务局.

use sync_core::doc::{NewIssue, NewPatrol};
use sync_core::model::{DivisionCode, Jurisdiction, Level, Role, Severity, System, User};

pub const T0: i64 = 1_764_288_000_000; // 2025-11-28 08:00 China time

pub fn village() -> DivisionCode {
    DivisionCode::new("370105014201").unwrap()
}

pub fn chief() -> User {
    User {
        id: "u-chief".into(),
        username: "demo-chief".into(),
        display_name: "小寨村河长".into(),
        role: Role::Chief {
            system: System::River,
            level: Level::Village,
            jurisdiction: Jurisdiction {
                division: village(),
                assets: vec!["xqh-01".into()],
            },
        },
        active: true,
    }
}

pub fn other_chief() -> User {
    User {
        id: "u-chief-2".into(),
        username: "demo-chief-2".into(),
        display_name: "耿庄村河长".into(),
        role: Role::Chief {
            system: System::River,
            level: Level::Village,
            jurisdiction: Jurisdiction {
                division: DivisionCode::new("370105014202").unwrap(),
                assets: vec!["xqh-02".into()],
            },
        },
        active: true,
    }
}

pub fn supervisor() -> User {
    User {
        id: "u-supervisor".into(),
        username: "demo-supervisor".into(),
        display_name: "区河长办".into(),
        role: Role::Supervisor {
            system: System::River,
            division: DivisionCode::new("370105000000").unwrap(),
        },
        active: true,
    }
}

pub fn handler() -> User {
    User {
        id: "u-handler".into(),
        username: "demo-handler".into(),
        display_name: "区水务局".into(),
        role: Role::Handler {
            department: "区水务局".into(),
        },
        active: true,
    }
}

pub fn new_issue() -> NewIssue {
    NewIssue {
        system: System::River,
        category: "river.garbage".into(),
        severity: Severity::General,
        asset: "xqh-01".into(),
        division: village(),
        location: [116.985, 36.742],
        description: "河面漂浮垃圾".into(),
        patrol: None,
    }
}

pub fn new_patrol() -> NewPatrol {
    NewPatrol {
        system: System::River,
        asset: "xqh-01".into(),
        chief: "u-chief".into(),
        division: village(),
        device: "phone-1".into(),
        started_at_ms: T0,
    }
}
