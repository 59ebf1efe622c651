//! The overview's rule: who has one, which chiefs and problems it holds, that its figures are
//! the statistics' own, and that its version follows its content.

use super::*;
use crate::model::{Jurisdiction, Severity};
use crate::rules::{days_from_civil, PatrolFlag, RuleSet};
use crate::stats::{IssueFact, PatrolFact};
use crate::workflow::{IssueState, Status};

pub(crate) const DISTRICT: &str = "370105000000";
pub(crate) const SUB_A: &str = "370105014000";
pub(crate) const SUB_B: &str = "370105015000";
pub(crate) const VILLAGE_A: &str = "370105014201";
pub(crate) const VILLAGE_B: &str = "370105015201";
pub(crate) const OTHER_VILLAGE: &str = "370102001201";

/// 2026-03-18 10:00 in China.
pub(crate) fn now() -> i64 {
    days_from_civil(2026, 3, 18) * DAY_MS + 2 * 3_600_000
}

pub(crate) fn code(s: &str) -> DivisionCode {
    DivisionCode::new(s).unwrap()
}

pub(crate) fn chief(id: &str, system: System, level: Level, division: &str) -> User {
    User {
        id: id.into(),
        username: id.into(),
        display_name: format!("{id} 河长"),
        role: Role::Chief {
            system,
            level,
            jurisdiction: Jurisdiction {
                division: code(division),
                assets: vec![format!("{id}-asset")],
            },
        },
        active: true,
    }
}

pub(crate) fn staff(id: &str, role: Role) -> User {
    User {
        id: id.into(),
        username: id.into(),
        display_name: id.into(),
        role,
        active: true,
    }
}

pub(crate) fn users() -> Vec<User> {
    vec![
        chief("district", System::River, Level::District, DISTRICT),
        chief("sub-a", System::River, Level::Subdistrict, SUB_A),
        chief("sub-b", System::River, Level::Subdistrict, SUB_B),
        chief("village-a", System::River, Level::Village, VILLAGE_A),
        chief("village-b", System::River, Level::Village, VILLAGE_B),
        chief("forest-a", System::Forest, Level::Village, VILLAGE_A),
        chief("elsewhere", System::River, Level::Village, OTHER_VILLAGE),
        staff(
            "office",
            Role::Supervisor {
                system: System::River,
                division: code(DISTRICT),
            },
        ),
        staff(
            "bureau",
            Role::Handler {
                department: "区水务局".into(),
            },
        ),
    ]
}

pub(crate) fn patrol(n: u32, chief: &User, at_ms: i64, valid: bool, km: f64) -> PatrolFact {
    let Role::Chief {
        system,
        jurisdiction,
        ..
    } = &chief.role
    else {
        panic!("a chief")
    };
    PatrolFact {
        id: format!("p{n}"),
        system: *system,
        asset: jurisdiction.assets[0].clone(),
        chief: chief.id.clone(),
        division: jurisdiction.division.clone(),
        at_ms,
        km,
        hours: km / 3.0,
        valid,
        flags: if valid {
            vec![]
        } else {
            vec![PatrolFlag::TooShort {
                minutes: 1.0,
                required: 10.0,
            }]
        },
        clock_skew: false,
        points: 100,
    }
}

pub(crate) fn issue(
    n: u32,
    system: System,
    division: &str,
    status: Status,
    escalations: u32,
) -> IssueFact {
    IssueFact {
        id: format!("i{n}"),
        system,
        category: "garbage".into(),
        severity: Severity::General,
        asset: "a".into(),
        division: code(division),
        location: [117.0, 36.7],
        reporter: "village-a".into(),
        reported_at_ms: now() - 40 * DAY_MS,
        state: IssueState {
            status: Some(status),
            reported_at_ms: Some(now() - 40 * DAY_MS),
            deadline_ms: Some(now() - 2 * DAY_MS),
            escalations,
            ..IssueState::default()
        },
        reopened: 0,
    }
}

pub(crate) fn facts(users: &[User]) -> FactIndex {
    let by = |id: &str| users.iter().find(|u| u.id == id).unwrap().clone();
    let mut index = FactIndex::default();
    let this_month = now() - 3 * DAY_MS;
    let last_month = now() - 30 * DAY_MS;
    index.upsert_patrol(patrol(1, &by("village-a"), this_month, true, 2.5));
    index.upsert_patrol(patrol(2, &by("village-a"), this_month, false, 0.2));
    index.upsert_patrol(patrol(3, &by("village-a"), last_month, true, 4.0));
    index.upsert_patrol(patrol(4, &by("sub-a"), this_month, true, 6.0));
    index.upsert_patrol(patrol(5, &by("forest-a"), this_month, true, 1.0));
    index.upsert_patrol(patrol(6, &by("elsewhere"), this_month, true, 1.0));
    index.upsert_patrol(patrol(7, &by("district"), this_month, true, 9.0));
    let mut assigned = issue(1, System::River, VILLAGE_A, Status::Assigned, 1);
    assigned.state.assignee = Some(crate::workflow::Assignee::Department("区水务局".into()));
    index.upsert_issue(assigned);
    index.upsert_issue(issue(2, System::River, VILLAGE_A, Status::Reported, 0));
    index.upsert_issue(issue(3, System::River, VILLAGE_B, Status::Closed, 2));
    index.upsert_issue(issue(4, System::Forest, VILLAGE_A, Status::Reported, 0));
    index.upsert_issue(issue(5, System::River, OTHER_VILLAGE, Status::Reported, 1));
    index
}

pub(crate) fn overview_of(id: &str) -> Option<Overview> {
    let users = users();
    let index = facts(&users);
    let rules = RuleSet::default();
    let reference = Reference {
        users: &users,
        divisions: &[],
        assets: &[],
        rules: &rules,
        categories: &[],
    };
    let user = users.iter().find(|u| u.id == id).unwrap();
    overview(user, &index, &reference, now())
}

pub(crate) fn chief_ids(overview: &Overview) -> Vec<&str> {
    overview.chiefs.iter().map(|c| c.chief.as_str()).collect()
}

#[test]
fn nobody_below_means_no_overview() {
    for id in ["village-a", "forest-a", "bureau"] {
        assert_eq!(overview_of(id), None, "{id}");
        assert!(!has_overview(users().iter().find(|u| u.id == id).unwrap()));
    }
    let mut retired = chief("district", System::River, Level::District, DISTRICT);
    retired.active = false;
    assert!(!has_overview(&retired));
    assert_eq!(version_of(None), 0);
}

#[test]
fn a_chief_sees_the_chiefs_below_them_in_their_system_and_division_only() {
    let district = overview_of("district").unwrap();
    // Not themselves, not the forest chief, not the chief of another district.
    assert_eq!(
        chief_ids(&district),
        ["sub-a", "village-a", "sub-b", "village-b"]
    );
    let sub = overview_of("sub-a").unwrap();
    assert_eq!(chief_ids(&sub), ["village-a"]);
    // The office sees every river chief of its district, the district chief included.
    let office = overview_of("office").unwrap();
    assert_eq!(
        chief_ids(&office),
        ["district", "sub-a", "village-a", "sub-b", "village-b"]
    );
}

#[test]
fn the_figures_are_the_statistics_own() {
    let district = overview_of("district").unwrap();
    let line = district
        .chiefs
        .iter()
        .find(|c| c.chief == "village-a")
        .unwrap();
    // This month only: one valid, one flagged; last month's patrol is not counted.
    assert_eq!((line.patrols, line.valid, line.flagged), (2, 1, 1));
    assert!((line.km - 2.7).abs() < 1e-9, "{}", line.km);
    assert_eq!(district.period, period(now()));
    assert_eq!(
        district.period.from_ms,
        days_from_civil(2026, 3, 1) * DAY_MS - CHINA_OFFSET_MS
    );

    let users = users();
    let index = facts(&users);
    let rules = RuleSet::default();
    let reference = Reference {
        users: &users,
        divisions: &[],
        assets: &[],
        rules: &rules,
        categories: &[],
    };
    let mut filter = Filter::new(period(now()));
    filter.division = Some(code(DISTRICT));
    filter.system = Some(System::River);
    let report = patrol_report(&index, &reference, &filter);
    for line in &district.chiefs {
        let row = report
            .chiefs
            .iter()
            .find(|r| r.chief == line.chief)
            .unwrap();
        assert_eq!(
            (
                line.required,
                line.periods,
                line.periods_met,
                line.patrols,
                line.valid,
                line.flagged
            ),
            (
                row.required,
                row.periods,
                row.periods_met,
                row.patrols,
                row.valid,
                row.invalid
            ),
            "{}",
            line.chief
        );
        assert_eq!(line.km, row.km);
    }
    // Weekly quota of the villages: March 1 to 18 overlaps four weeks, one of them met.
    assert_eq!((line.periods, line.periods_met), (4, 1));

    // Problems: the river's open ones in the district, by subdistrict; the closed one, the
    // forest's and the other district's are not counted.
    assert_eq!(district.divisions.len(), 1, "{:?}", district.divisions);
    let a = &district.divisions[0];
    assert_eq!(a.division, code(SUB_A));
    assert_eq!(
        (a.system, a.open, a.overdue, a.escalated),
        (System::River, 2, 1, 1)
    );
    // A subdistrict chief's problems are counted by village.
    let sub = overview_of("sub-a").unwrap();
    assert_eq!(sub.divisions.len(), 1);
    assert_eq!(sub.divisions[0].division, code(VILLAGE_A));
}

#[test]
fn the_version_follows_the_content() {
    let a = overview_of("district").unwrap();
    assert_eq!(a.version(), overview_of("district").unwrap().version());
    assert_ne!(a.version(), 0);
    let mut b = a.clone();
    b.chiefs[0].valid += 1;
    assert_ne!(a.version(), b.version());
    assert_ne!(a.version(), overview_of("sub-a").unwrap().version());
}

#[test]
fn an_unchanged_overview_is_not_attached() {
    use crate::protocol::{OverviewUpdate, SyncResponse};
    let now = overview_of("district");
    let held = version_of(now.as_ref());
    assert_eq!(OverviewUpdate::unless_held(held, now.clone()), None);
    let update = OverviewUpdate::unless_held(0, now.clone()).unwrap();
    assert_eq!(update.version, held);
    // A chief with nobody below any more drops the overview they hold.
    let dropped = OverviewUpdate::unless_held(held, None).unwrap();
    assert_eq!((dropped.version, dropped.overview), (0, None));
    assert_eq!(OverviewUpdate::unless_held(0, None), None);

    // On the wire: nothing at all when unchanged, the overview after the response otherwise,
    // and a reader of the earlier answers reads the response alone.
    let response = SyncResponse {
        cursor: 7,
        docs: vec![],
        removed: vec!["gone".into()],
        more: false,
    };
    assert_eq!(response.encode_with_overview(None), response.encode());
    let with = response.encode_with_overview(Some(&update));
    assert!(with.len() > response.encode().len());
    assert_eq!(
        SyncResponse::decode_with_overview(&with).unwrap(),
        (response.clone(), Some(update.clone()))
    );
    assert_eq!(SyncResponse::decode(&with).unwrap(), response);
    assert_eq!(
        SyncResponse::decode_with_overview(&response.encode()).unwrap(),
        (response.clone(), None)
    );
    // Bytes after the overview are refused, like any trailing bytes.
    let mut body = postcard::to_allocvec(&(7u64, 0usize, vec![0u8; 0], false)).unwrap();
    body = postcard::to_extend(&update, body).unwrap();
    body.push(0);
    let mut wire = crate::protocol::MAGIC.to_vec();
    wire.extend([crate::protocol::PROTOCOL_VERSION, 0]);
    wire.extend(body);
    assert!(SyncResponse::decode_with_overview(&wire).is_err());
}

pub(crate) fn computed_for(id: &str, index: &FactIndex, users: &[User], at_ms: i64) -> Computed {
    let rules = RuleSet::default();
    let reference = Reference {
        users,
        divisions: &[],
        assets: &[],
        rules: &rules,
        categories: &[],
    };
    let user = users.iter().find(|u| u.id == id).unwrap();
    computed(user, index, &reference, at_ms)
}

#[test]
fn an_overview_holds_until_the_day_ends_or_a_deadline_passes() {
    let users = users();
    let mut index = facts(&users);
    // No deadline ahead: the figures hold until the end of today (China time).
    let today = computed_for("district", &index, &users, now());
    assert_eq!(today.until_ms, period(now()).to_ms);
    assert_eq!(today.overview, overview_of("district"));
    // The next day the period is a day longer: another overview.
    let tomorrow = computed_for("district", &index, &users, today.until_ms);
    assert_ne!(
        tomorrow.overview.as_ref().unwrap().period,
        today.overview.as_ref().unwrap().period
    );
    // Without an overview nothing expires.
    assert_eq!(
        computed_for("village-a", &index, &users, now()).until_ms,
        i64::MAX
    );

    // A problem assigned with a deadline in an hour: the overview holds until it passes, and
    // from that instant on the problem counts as overdue.
    let deadline = now() + 3_600_000;
    let mut waiting = issue(9, System::River, VILLAGE_B, Status::Assigned, 0);
    waiting.state.deadline_ms = Some(deadline);
    index.upsert_issue(waiting);
    let before = computed_for("district", &index, &users, now());
    assert_eq!(before.until_ms, deadline + 1);
    let overdue = |c: &Computed| -> u64 {
        c.overview
            .as_ref()
            .unwrap()
            .divisions
            .iter()
            .map(|d| d.overdue)
            .sum()
    };
    let at_deadline = computed_for("district", &index, &users, deadline);
    assert_eq!(
        at_deadline.overview, before.overview,
        "not late at the deadline"
    );
    let after = computed_for("district", &index, &users, before.until_ms);
    assert_eq!(overdue(&after), overdue(&before) + 1);
    // A deadline in another district does not shorten the district chief's overview.
    let mut elsewhere = issue(10, System::River, OTHER_VILLAGE, Status::Assigned, 0);
    elsewhere.state.deadline_ms = Some(now() + 60_000);
    index.upsert_issue(elsewhere);
    assert_eq!(
        computed_for("district", &index, &users, now()).until_ms,
        deadline + 1
    );
}
