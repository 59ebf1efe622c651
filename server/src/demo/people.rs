//! The demo's people: the accounts of DESIGN.md (password `demo`) and a few chiefs on record who
//! never log in (district and subdistrict chiefs), so statistics by chief level have rows.
//! Ids are fixed (`u-<username>`) so that the sample documents can name them. Pure data.

use sync_core::model::{Jurisdiction, Level, Role, System, User};

use super::places::{subdistrict, village, DISTRICT, SANGZIDIAN};
use sync_core::model::DivisionCode;

pub const ADMIN: &str = "demo-admin";
pub const SUPERVISOR: &str = "demo-supervisor";
pub const CHIEF: &str = "demo-chief";
pub const CHIEF_2: &str = "demo-chief-2";
pub const FOREST_CHIEF: &str = "demo-forest-chief";
pub const FIELD_CHIEF: &str = "demo-field-chief";
pub const HANDLER: &str = "demo-handler";

/// The usernames that can log in with password `demo`.
pub const LOGIN_USERNAMES: [&str; 7] = [
    ADMIN,
    SUPERVISOR,
    CHIEF,
    CHIEF_2,
    FOREST_CHIEF,
    FIELD_CHIEF,
    HANDLER,
];

/// A demo person and whether they log in.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoPerson {
    pub user: User,
    pub can_log_in: bool,
}

fn code(s: &str) -> DivisionCode {
    DivisionCode::new(s).expect("demo division codes are 12 digits")
}

fn chief(system: System, level: Level, division: &str, assets: &[&str]) -> Role {
    Role::Chief {
        system,
        level,
        jurisdiction: Jurisdiction {
            division: code(division),
            assets: assets.iter().map(|a| (*a).to_owned()).collect(),
        },
    }
}

/// The user id the demo gives `username`.
pub fn user_id(username: &str) -> String {
    format!("u-{username}")
}

fn person(username: &str, display_name: &str, role: Role, can_log_in: bool) -> DemoPerson {
    DemoPerson {
        user: User {
            id: user_id(username),
            username: username.into(),
            display_name: display_name.into(),
            role,
            active: true,
        },
        can_log_in,
    }
}

pub fn people() -> Vec<DemoPerson> {
    vec![
        person(ADMIN, "系统管理员", Role::Admin, true),
        person(
            SUPERVISOR,
            "区河长办 王敏",
            Role::Supervisor {
                system: System::River,
                division: code(DISTRICT),
            },
            true,
        ),
        person(
            CHIEF,
            "小寨村河长 张建国",
            chief(
                System::River,
                Level::Village,
                &village("201"),
                &["river-thh-01", "river-thh-02"],
            ),
            true,
        ),
        person(
            CHIEF_2,
            "耿庄村河长 李秀英",
            chief(
                System::River,
                Level::Village,
                &village("202"),
                &["river-thh-03", "river-yr-03"],
            ),
            true,
        ),
        person(
            FOREST_CHIEF,
            "桑梓店街道林长 刘志强",
            chief(
                System::Forest,
                Level::Subdistrict,
                SANGZIDIAN,
                &["forest-beijiao"],
            ),
            true,
        ),
        person(
            FIELD_CHIEF,
            "高王村田长 高树林",
            chief(
                System::Field,
                Level::Village,
                &village("203"),
                &["field-szd-01", "field-szd-02"],
            ),
            true,
        ),
        person(
            HANDLER,
            "区水务局 赵磊",
            Role::Handler {
                department: "区水务局".into(),
            },
            true,
        ),
        person(
            "tq-river-chief",
            "天桥区总河长",
            chief(System::River, Level::District, DISTRICT, &[]),
            false,
        ),
        person(
            "beiyuan-river-chief",
            "北园街道河长",
            chief(
                System::River,
                Level::Subdistrict,
                &subdistrict(12),
                &["river-xqh-02", "river-xqh-03", "river-btp-01"],
            ),
            false,
        ),
        person(
            "luokou-river-chief",
            "泺口街道河长",
            chief(
                System::River,
                Level::Subdistrict,
                &subdistrict(13),
                &["river-yr-02", "river-btp-02"],
            ),
            false,
        ),
        person(
            "yaoshan-forest-chief",
            "药山街道林长",
            chief(
                System::Forest,
                Level::Subdistrict,
                &subdistrict(11),
                &["forest-yaoshan", "forest-sushan", "forest-beimaanshan"],
            ),
            false,
        ),
        person(
            "szd-field-chief",
            "桑梓店街道田长",
            chief(System::Field, Level::Subdistrict, SANGZIDIAN, &[]),
            false,
        ),
    ]
}
