//! Every person × every kind of write to a patrol. Columns: the owning village chief, a chief
//! of another village, the district river office, the district forest office, a handler of
//! 区水务局, a handler of another department, an admin, the owning chief deactivated.

use automerge::transaction::Transactable;
use automerge::{ScalarValue, ROOT};

use super::*;
use crate::doc::PatrolDoc;

/// Writes to an existing patrol that only its chief may make.
const CHIEF_ONLY: [&str; 8] = [OK, OUT, NOT_OWNER, OUT, OUT, OUT, NOT_OWNER, INACTIVE];
const IMMUTABLE_FOR_ALL: [&str; 8] = [
    IMMUTABLE, IMMUTABLE, IMMUTABLE, IMMUTABLE, IMMUTABLE, IMMUTABLE, IMMUTABLE, INACTIVE,
];
const REWRITE_FOR_ALL: [&str; 8] = [
    REWRITE, REWRITE, REWRITE, REWRITE, REWRITE, REWRITE, REWRITE, INACTIVE,
];

fn edit(base: &Saved, person: &Person, edit: impl FnOnce(&mut PatrolDoc)) -> Change {
    change(base, &person.actor, |doc| as_patrol(doc, edit))
}

fn create(person: &Person, chief: &str) -> (Saved, Change) {
    let mut patrol = PatrolDoc::create(person.actor.clone(), &new_patrol(chief)).unwrap();
    let id = patrol.id().to_string();
    let change = patrol.am_mut().get_changes(&[]).pop().unwrap();
    (
        Saved {
            id,
            bytes: Vec::new(),
        },
        change,
    )
}

#[test]
fn only_a_chief_creates_a_patrol_of_their_own_asset_in_their_own_name() {
    let mut failures = Vec::new();
    for (person, expected) in people().iter().zip([
        OK, NOT_OWNER, NOT_OWNER, NOT_OWNER, NOT_OWNER, NOT_OWNER, NOT_OWNER, INACTIVE,
    ]) {
        let (empty, change) = create(person, &person.user.id);
        let got = verdict(person, &empty, change);
        if got != expected {
            failures.push(format!("create by {}: {got}", person.user.id));
        }
        let (empty, change) = create(person, "u-chief");
        let expected = if person.user.id == "u-chief" {
            expected
        } else {
            NOT_OWNER
        };
        let got = verdict(person, &empty, change);
        if got != expected {
            failures.push(format!("create for u-chief by {}: {got}", person.user.id));
        }
    }
    assert_eq!(failures, Vec::<String>::new());
}

#[test]
fn only_the_chief_edits_and_appends() {
    let base = patrol();
    let mut failures = Vec::new();
    failures.extend(row("notes", &base, CHIEF_ONLY, |p| {
        edit(&base, p, |patrol| {
            patrol.set_notes("岸线整洁，无垃圾").unwrap()
        })
    }));
    failures.extend(row("check item", &base, CHIEF_ONLY, |p| {
        edit(&base, p, |patrol| {
            patrol
                .set_check_item("river.outfalls", CheckResult::Problem, "新增排污口", T0)
                .unwrap()
        })
    }));
    failures.extend(row("track", &base, CHIEF_ONLY, |p| {
        edit(&base, p, |patrol| patrol.append_track(&points(6)).unwrap())
    }));
    failures.extend(row("photo", &base, CHIEF_ONLY, |p| {
        edit(&base, p, |patrol| patrol.add_photo(&photo(2)).unwrap())
    }));
    failures.extend(row("issue link", &base, CHIEF_ONLY, |p| {
        edit(&base, p, |patrol| patrol.add_issue(&new_doc_id()).unwrap())
    }));
    failures.extend(row("flag", &base, CHIEF_ONLY, |p| {
        edit(&base, p, |patrol| {
            patrol.set_flag("mock_location", true).unwrap()
        })
    }));
    failures.extend(row("finish", &base, CHIEF_ONLY, |p| {
        edit(&base, p, |patrol| patrol.finish(T0 + 3_600_000).unwrap())
    }));
    assert_eq!(failures, Vec::<String>::new());
}

#[test]
fn header_fields_never_change() {
    let base = patrol();
    let mut failures = Vec::new();
    for (field, value) in [
        ("asset", "xqh-02"),
        ("chief", "u-chief-2"),
        ("division", "370105014202"),
        ("system", "forest"),
        ("device", "phone-9"),
    ] {
        failures.extend(row(field, &base, IMMUTABLE_FOR_ALL, |p| {
            change(&base, &p.actor, |doc| doc.put(ROOT, field, value).unwrap())
        }));
    }
    failures.extend(row("started_at", &base, IMMUTABLE_FOR_ALL, |p| {
        change(&base, &p.actor, |doc| {
            doc.put(ROOT, "started_at", T0 - DAY).unwrap()
        })
    }));
    assert_eq!(failures, Vec::<String>::new());
}

#[test]
fn track_and_photos_are_append_only() {
    let base = patrol();
    let mut failures = Vec::new();
    for list in ["track", "photos"] {
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
    failures.extend(row("rewrite track chunk", &base, REWRITE_FOR_ALL, |p| {
        change(&base, &p.actor, |doc| {
            let track = root_object(doc, "track");
            let forged = crate::track::encode_chunk(&points(3));
            doc.put(&track, 0, ScalarValue::Bytes(forged)).unwrap();
        })
    }));
    failures.extend(row("edit photo hash", &base, REWRITE_FOR_ALL, |p| {
        change(&base, &p.actor, |doc| {
            use automerge::ReadDoc;
            let photos = root_object(doc, "photos");
            let (_, first) = doc.get(&photos, 0).unwrap().unwrap();
            doc.put(&first, "sha256", "cd".repeat(32)).unwrap();
        })
    }));
    failures.extend(row(
        "insert track chunk first",
        &base,
        REWRITE_FOR_ALL,
        |p| {
            change(&base, &p.actor, |doc| {
                let track = root_object(doc, "track");
                let chunk = crate::track::encode_chunk(&points(3));
                doc.insert(&track, 0, ScalarValue::Bytes(chunk)).unwrap();
            })
        },
    ));
    assert_eq!(failures, Vec::<String>::new());
}

#[test]
fn changes_from_an_actor_not_bound_to_the_device_are_refused_for_everyone() {
    let base = patrol();
    // The owner's actor sent over other people's logins, and a stranger's actor over each.
    let mut owners_actor = [UNBOUND; 8];
    owners_actor[0] = OK;
    let mut failures = row("owner's actor", &base, owners_actor, |_| {
        edit(&base, &person(0), |patrol| {
            patrol.set_notes("冒名").unwrap()
        })
    });
    failures.extend(row("unknown actor", &base, [UNBOUND; 8], |p| {
        let stranger = Person {
            actor: actor_for(99),
            ..p.clone()
        };
        edit(&base, &stranger, |patrol| patrol.set_notes("冒名").unwrap())
    }));
    assert_eq!(failures, Vec::<String>::new());
}
