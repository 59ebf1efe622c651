//! Routing: the facts read from documents, and who receives which document.

use super::*;
use crate::authz::in_scope;
use crate::doc::DocKind;
use crate::workflow::Status;

fn meta(saved: &Saved) -> DocMeta {
    DocMeta::of(&saved.load()).unwrap()
}

#[test]
fn routing_facts_come_from_the_document_and_the_fold() {
    let patrol = meta(&patrol());
    assert_eq!(patrol.kind, DocKind::Patrol);
    assert_eq!(
        (patrol.system, patrol.asset.as_str(), patrol.owner.as_str()),
        (System::River, "xqh-01", "u-chief")
    );
    assert_eq!(patrol.division, code(VILLAGE));
    assert_eq!((patrol.assignee.clone(), patrol.status), (None, None));

    let steps = issue_steps();
    let reported = meta(&steps.reported);
    assert_eq!(reported.kind, DocKind::Issue);
    assert_eq!(reported.owner, "u-chief");
    assert_eq!(
        (reported.assignee.clone(), reported.status),
        (None, Some(Status::Reported))
    );
    let assigned = meta(&steps.assigned);
    assert_eq!(
        assigned.assignee,
        Some(Assignee::Department(WATER_BUREAU.into()))
    );
    assert_eq!(assigned.status, Some(Status::Assigned));

    // The server stores these beside each document.
    for meta in [patrol, assigned] {
        let json = serde_json::to_string(&meta).unwrap();
        assert_eq!(serde_json::from_str::<DocMeta>(&json).unwrap(), meta);
        let bytes = postcard::to_allocvec(&meta).unwrap();
        assert_eq!(postcard::from_bytes::<DocMeta>(&bytes).unwrap(), meta);
    }
    assert!(DocMeta::of(&AutoCommit::new()).is_err());
}

/// The phone's store reads a patrol's routing facts once (`DocMeta::lasts`): every edit a
/// chief makes to a patrol leaves them as they were, and an issue's move with its workflow.
#[test]
fn a_patrols_routing_facts_outlast_its_edits_and_an_issues_do_not() {
    let saved = patrol();
    let first = meta(&saved);
    assert!(first.lasts());
    let mut patrol = crate::doc::PatrolDoc::from_automerge(saved.load()).unwrap();
    patrol.append_track(&points(30)).unwrap();
    patrol.add_photo(&photo(2)).unwrap();
    patrol
        .set_check_item("river.banks", CheckResult::Problem, "垃圾", T0 + 1)
        .unwrap();
    patrol.set_notes("岸边有垃圾").unwrap();
    patrol.set_flag("short", true).unwrap();
    patrol.add_issue("i-1").unwrap();
    patrol.finish(T0 + 60_000).unwrap();
    assert_eq!(DocMeta::of(patrol.am()).unwrap(), first);

    let steps = issue_steps();
    let (reported, assigned) = (meta(&steps.reported), meta(&steps.assigned));
    assert!(!reported.lasts());
    assert_ne!(reported, assigned);
}

#[test]
fn chiefs_receive_their_jurisdiction_their_own_and_what_is_assigned_to_them() {
    let patrol = meta(&patrol());
    let issue = meta(&issue_steps().reported);
    let cases = [
        (owner(), true),
        (
            chief("u-chief-2", System::River, "370105014202", &["xqh-02"]),
            false,
        ),
        // The subdistrict chief above the village, by division.
        (chief("u-sub", System::River, "370105014000", &[]), true),
        // A chief of a neighbouring village whose segment list includes this one.
        (
            chief("u-next", System::River, "370105014203", &["xqh-01"]),
            true,
        ),
        // The forest chief of the same village sees no river documents.
        (
            chief("u-forest", System::Forest, VILLAGE, &["xqh-01"]),
            false,
        ),
    ];
    for (user, expected) in cases {
        assert_eq!(in_scope(&user, &patrol), expected, "{} patrol", user.id);
        assert_eq!(in_scope(&user, &issue), expected, "{} issue", user.id);
    }

    // A chief keeps their own patrols after their jurisdiction moves elsewhere.
    let moved = chief("u-chief", System::River, "370105001001", &["xqh-09"]);
    assert!(in_scope(&moved, &patrol));

    // An issue assigned to another village's chief by name reaches that chief.
    let other = chief("u-chief-2", System::River, "370105014202", &["xqh-02"]);
    let named = DocMeta {
        assignee: Some(Assignee::User("u-chief-2".into())),
        status: Some(Status::Assigned),
        ..issue
    };
    assert!(in_scope(&other, &named));
}

#[test]
fn supervisors_receive_their_system_inside_their_division() {
    let patrol = meta(&patrol());
    let issue = meta(&issue_steps().reported);
    let cases = [
        (supervisor("u-office", System::River, "370105000000"), true),
        (supervisor("u-sub", System::River, "370105014000"), true),
        (
            supervisor("u-elsewhere", System::River, "370105001000"),
            false,
        ),
        (
            supervisor("u-forest", System::Forest, "370105000000"),
            false,
        ),
        (supervisor("u-city", System::River, "370102000000"), false),
    ];
    for (user, expected) in cases {
        assert_eq!(in_scope(&user, &patrol), expected, "{} patrol", user.id);
        assert_eq!(in_scope(&user, &issue), expected, "{} issue", user.id);
    }
}

#[test]
fn handlers_receive_the_issues_assigned_to_their_department_while_assigned() {
    let steps = issue_steps();
    let bureau = handler("u-handler", WATER_BUREAU);
    let other = handler("u-handler-2", "区城管局");
    assert!(!in_scope(&bureau, &meta(&patrol())));
    assert!(!in_scope(&bureau, &meta(&steps.reported)));
    assert!(in_scope(&bureau, &meta(&steps.assigned)));
    assert!(in_scope(&bureau, &meta(&steps.closed)));
    assert!(!in_scope(&other, &meta(&steps.assigned)));

    // Handing the issue over to another department moves it.
    let office = person(2);
    let mut issue = IssueDoc::load(&steps.assigned.bytes)
        .unwrap()
        .with_actor(office.actor.clone());
    issue
        .act(&office.user, "phone", T0 + 2 * DAY, assign("区城管局"))
        .unwrap();
    let handed_over = DocMeta::of(issue.am()).unwrap();
    assert!(!in_scope(&bureau, &handed_over));
    assert!(in_scope(&other, &handed_over));
}

#[test]
fn admins_receive_everything_and_deactivated_users_nothing() {
    let docs = [meta(&patrol()), meta(&issue_steps().assigned)];
    let admin = person(6).user;
    let mut retired = owner();
    retired.active = false;
    let mut retired_office = supervisor("u-office", System::River, "370105000000");
    retired_office.active = false;
    for doc in &docs {
        assert!(in_scope(&admin, doc));
        assert!(!in_scope(&retired, doc), "not even their own");
        assert!(!in_scope(&retired_office, doc));
    }
}
