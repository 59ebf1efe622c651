//! Every person × every kind of write to an issue, each workflow event kind tried in a status
//! where the table admits it, so only who sends it decides. Columns: the reporting village
//! chief, a chief of another village, the district river office, the district forest office, a
//! handler of 区水务局 (the assigned department), a handler of another department, an admin,
//! the reporting chief deactivated.

use automerge::transaction::Transactable;
use automerge::{ReadDoc, ROOT};

use super::*;
use crate::workflow::EventKind;

const IMMUTABLE_FOR_ALL: [&str; 8] = [
    IMMUTABLE, IMMUTABLE, IMMUTABLE, IMMUTABLE, IMMUTABLE, IMMUTABLE, IMMUTABLE, INACTIVE,
];
const REWRITE_FOR_ALL: [&str; 8] = [
    REWRITE, REWRITE, REWRITE, REWRITE, REWRITE, REWRITE, REWRITE, INACTIVE,
];
/// Appended by the office alone; the handler is in scope once the issue is assigned.
const OFFICE: [&str; 8] = [TRANSITION, OUT, OK, OUT, OUT, OUT, TRANSITION, INACTIVE];
const OFFICE_ASSIGNED: [&str; 8] = [
    TRANSITION, OUT, OK, OUT, TRANSITION, OUT, TRANSITION, INACTIVE,
];

fn append(base: &Saved, person: &Person, event: &Event) -> Change {
    change(base, &person.actor, |doc| push_event(doc, event))
}

/// A change reporting a new issue named after `reporter`, made on `person`'s device. The
/// document API checks the report on the phone, so the device writes it as if the reporter
/// were a supervisor: only the server's judgement counts here.
fn report(person: &Person, reporter: &str) -> (Saved, Change) {
    let stand_in = supervisor(reporter, System::River, "370105000000");
    let mut issue =
        IssueDoc::report(person.actor.clone(), &stand_in, "phone", T0, &new_issue()).unwrap();
    let id = issue.id().to_string();
    let change = issue.am_mut().get_changes(&[]).pop().unwrap();
    (
        Saved {
            id,
            bytes: Vec::new(),
        },
        change,
    )
}

#[test]
fn a_chief_in_scope_or_a_supervisor_reports_in_their_own_name() {
    let mut failures = Vec::new();
    let own = [
        OK, TRANSITION, OK, TRANSITION, TRANSITION, TRANSITION, TRANSITION, INACTIVE,
    ];
    let others = [
        OK, NOT_OWNER, NOT_OWNER, NOT_OWNER, NOT_OWNER, NOT_OWNER, NOT_OWNER, INACTIVE,
    ];
    for ((person, own), others) in people().iter().zip(own).zip(others) {
        let (empty, change) = report(person, &person.user.id);
        let got = verdict(person, &empty, change);
        if got != own {
            failures.push(format!("report by {}: {got}", person.user.id));
        }
        let (empty, change) = report(person, "u-chief");
        let got = verdict(person, &empty, change);
        if got != others {
            failures.push(format!("report as u-chief by {}: {got}", person.user.id));
        }
    }
    assert_eq!(failures, Vec::<String>::new());
}

#[test]
fn the_reporter_or_a_supervisor_edits_the_record() {
    let base = issue_steps().assigned;
    let expected = [OK, OUT, OK, OUT, NOT_OWNER, OUT, NOT_OWNER, INACTIVE];
    let mut failures = row("description", &base, expected, |p| {
        change(&base, &p.actor, |doc| {
            as_issue(doc, |issue| {
                issue.set_description("垃圾约20平方米").unwrap()
            })
        })
    });
    failures.extend(row("severity", &base, expected, |p| {
        change(&base, &p.actor, |doc| {
            as_issue(doc, |issue| issue.set_severity(Severity::Urgent).unwrap())
        })
    }));
    failures.extend(row("photo", &base, expected, |p| {
        change(&base, &p.actor, |doc| {
            as_issue(doc, |issue| issue.add_photo(&photo(7)).unwrap())
        })
    }));
    assert_eq!(failures, Vec::<String>::new());
}

#[test]
fn each_event_kind_only_by_whom_the_table_names() {
    let steps = issue_steps();
    let cases: Vec<(EventKind, &Saved, [&str; 8], Action)> = vec![
        (
            EventKind::Reported,
            &steps.reported,
            [
                TRANSITION, OUT, TRANSITION, OUT, OUT, OUT, TRANSITION, INACTIVE,
            ],
            Action::Reported,
        ),
        (
            EventKind::Accepted,
            &steps.reported,
            OFFICE,
            Action::Accepted,
        ),
        (
            EventKind::Assigned,
            &steps.accepted,
            OFFICE,
            assign("区城管局"),
        ),
        (
            EventKind::DuplicateOf,
            &steps.reported,
            OFFICE,
            Action::DuplicateOf {
                issue: new_doc_id(),
            },
        ),
        (
            EventKind::RectificationSubmitted,
            &steps.assigned,
            [
                TRANSITION, OUT, TRANSITION, OUT, OK, OUT, TRANSITION, INACTIVE,
            ],
            submit(),
        ),
        (
            EventKind::Verified,
            &steps.submitted,
            OFFICE_ASSIGNED,
            verify(),
        ),
        (
            EventKind::Rejected,
            &steps.submitted,
            OFFICE_ASSIGNED,
            Action::Rejected {
                reason: "仍有垃圾".into(),
            },
        ),
        (
            EventKind::Invalidated,
            &steps.assigned,
            OFFICE_ASSIGNED,
            Action::Invalidated {
                reason: "非本辖区".into(),
            },
        ),
        (
            EventKind::Escalated,
            &steps.assigned,
            OFFICE_ASSIGNED,
            Action::Escalated {
                note: "督办".into(),
            },
        ),
        (
            EventKind::Reopened,
            &steps.closed,
            OFFICE_ASSIGNED,
            Action::Reopened {
                reason: "复发".into(),
            },
        ),
        (
            EventKind::Comment,
            &steps.assigned,
            [OK, OUT, OK, OUT, OK, OUT, TRANSITION, INACTIVE],
            Action::Comment {
                text: "已联系保洁".into(),
            },
        ),
    ];
    assert_eq!(cases.len(), EventKind::ALL.len(), "every kind is tried");
    let mut failures = Vec::new();
    for (kind, base, expected, action) in cases {
        failures.extend(row(kind.as_str(), base, expected, |p| {
            append(base, p, &event(&p.user.id, action.clone()))
        }));
    }
    assert_eq!(failures, Vec::<String>::new());
}

#[test]
fn nobody_writes_an_event_in_someone_elses_name() {
    let steps = issue_steps();
    let mut failures = row(
        "comment as a stranger",
        &steps.assigned,
        [FORGED, OUT, FORGED, OUT, FORGED, OUT, FORGED, INACTIVE],
        |p| {
            let text = Action::Comment { text: "x".into() };
            append(&steps.assigned, p, &event("u-stranger", text))
        },
    );
    // The office's acceptance is the office's own when it sends it, forged from anyone else.
    failures.extend(row(
        "accept as the office",
        &steps.reported,
        [FORGED, OUT, OK, OUT, OUT, OUT, FORGED, INACTIVE],
        |p| append(&steps.reported, p, &event("u-office", Action::Accepted)),
    ));
    assert_eq!(failures, Vec::<String>::new());
}

#[test]
fn header_fields_never_change() {
    let base = issue_steps().assigned;
    let mut failures = Vec::new();
    for (field, value) in [
        ("reporter", "u-office"),
        ("asset", "xqh-02"),
        ("division", "370105014202"),
        ("system", "forest"),
        ("category", "river.dumping"),
        ("patrol", "0190f2a4-0000-7000-8000-000000000001"),
    ] {
        failures.extend(row(field, &base, IMMUTABLE_FOR_ALL, |p| {
            change(&base, &p.actor, |doc| doc.put(ROOT, field, value).unwrap())
        }));
    }
    failures.extend(row("reported_at", &base, IMMUTABLE_FOR_ALL, |p| {
        change(&base, &p.actor, |doc| {
            doc.put(ROOT, "reported_at", T0 - DAY).unwrap()
        })
    }));
    failures.extend(row("location", &base, IMMUTABLE_FOR_ALL, |p| {
        change(&base, &p.actor, |doc| {
            let location = root_object(doc, "location");
            doc.put(&location, "lon", 117.5).unwrap();
        })
    }));
    assert_eq!(failures, Vec::<String>::new());
}

#[test]
fn events_and_photos_are_append_only() {
    let base = issue_steps().submitted;
    let mut failures = Vec::new();
    for list in ["events", "photos"] {
        failures.extend(row(
            &format!("delete {list}[0]"),
            &base,
            REWRITE_FOR_ALL,
            |p| {
                change(&base, &p.actor, |doc| {
                    let obj = root_object(doc, list);
                    doc.delete(&obj, 0).unwrap();
                })
            },
        ));
    }
    for (list, field, value) in [
        ("events", "by", "u-chief-2"),
        ("events", "kind", "accepted"),
        ("events", "device", "forged-phone"),
        ("photos", "sha256", "ff"),
    ] {
        failures.extend(row(
            &format!("edit {list}[0].{field}"),
            &base,
            REWRITE_FOR_ALL,
            |p| {
                change(&base, &p.actor, |doc| {
                    let obj = root_object(doc, list);
                    let (_, first) = doc.get(&obj, 0).unwrap().unwrap();
                    doc.put(&first, field, value).unwrap();
                })
            },
        ));
    }
    // Slipping a well-formed event in before the report rewrites history too.
    failures.extend(row(
        "insert before the report",
        &base,
        REWRITE_FOR_ALL,
        |p| {
            change(&base, &p.actor, |doc| {
                let events = root_object(doc, "events");
                let comment = event(&p.user.id, Action::Comment { text: "先".into() });
                let map = doc
                    .insert_object(&events, 0, automerge::ObjType::Map)
                    .unwrap();
                for (key, value) in serde_json::to_value(&comment).unwrap().as_object().unwrap() {
                    match value {
                        Json::String(s) => doc.put(&map, key.as_str(), s.as_str()).unwrap(),
                        other => doc
                            .put(&map, key.as_str(), other.as_i64().unwrap())
                            .unwrap(),
                    }
                }
            })
        },
    ));
    assert_eq!(failures, Vec::<String>::new());
}

#[test]
fn changes_from_an_actor_not_bound_to_the_device_are_refused_for_everyone() {
    let base = issue_steps().assigned;
    let failures = row("stranger's actor", &base, [UNBOUND; 8], |p| {
        let comment = event(&p.user.id, Action::Comment { text: "x".into() });
        change(&base, &actor_for(99), |doc| push_event(doc, &comment))
    });
    assert_eq!(failures, Vec::<String>::new());
}
