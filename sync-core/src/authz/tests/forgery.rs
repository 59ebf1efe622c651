//! Changes no honest device makes, forged with raw automerge writes: replaced containers,
//! unknown fields, undecodable entries, smuggled fields, duplicate or out-of-order events,
//! second roots, reused sequence numbers and changes that do nothing.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ReadDoc, ScalarValue, ROOT};
use serde_json::json;

use super::*;
use crate::authz::authorize_change;

fn owner_p() -> Person {
    person(0)
}

fn office() -> Person {
    person(2)
}

#[test]
fn containers_are_edited_in_place_never_replaced() {
    let base = patrol();
    let replace = |key: &'static str, kind| {
        change(&base, &owner_p().actor, move |doc| {
            doc.put_object(ROOT, key, kind).unwrap();
        })
    };
    assert_eq!(
        send(&owner_p(), &base, replace("notes", ObjType::Text)).err(),
        Some("schema")
    );
    assert_eq!(
        send(&owner_p(), &base, replace("track", ObjType::List)).err(),
        Some("history_rewrite")
    );
    assert_eq!(
        send(&owner_p(), &base, replace("checks", ObjType::Map)).err(),
        Some("schema")
    );

    // A new event list holding the very same events still orphans concurrent appends.
    let issue = issue_steps().reported;
    let events = IssueDoc::load(&issue.bytes).unwrap().events().unwrap();
    let copy = change(&issue, &owner_p().actor, |doc| {
        doc.put_object(ROOT, "events", ObjType::List).unwrap();
        for event in &events {
            push_event(doc, event);
        }
    });
    assert_eq!(
        send(&owner_p(), &issue, copy).err(),
        Some("history_rewrite")
    );
}

#[test]
fn documents_hold_only_their_schema() {
    let base = patrol();
    let unknown = change(&base, &owner_p().actor, |doc| {
        doc.put(ROOT, "score", 100).unwrap()
    });
    assert_eq!(send(&owner_p(), &base, unknown).err(), Some("schema"));

    let kind = change(&base, &owner_p().actor, |doc| {
        doc.put(ROOT, "kind", "issue").unwrap()
    });
    assert_eq!(send(&owner_p(), &base, kind).err(), Some("schema"));

    let newer = change(&base, &owner_p().actor, |doc| {
        doc.put(ROOT, "schema", ScalarValue::Uint(99)).unwrap()
    });
    assert_eq!(send(&owner_p(), &base, newer).err(), Some("schema"));

    // A change to one document sent as a change to another.
    let notes = change(&base, &owner_p().actor, |doc| {
        as_patrol(doc, |p| p.set_notes("换了").unwrap())
    });
    let elsewhere = Saved {
        id: new_doc_id(),
        ..base.clone()
    };
    assert_eq!(send(&owner_p(), &elsewhere, notes).err(), Some("schema"));

    let garbage = change(&base, &owner_p().actor, |doc| {
        let track = root_object(doc, "track");
        doc.insert(&track, 1, ScalarValue::Bytes(vec![0xff, 0x01, 0x02]))
            .unwrap();
    });
    assert_eq!(send(&owner_p(), &base, garbage).err(), Some("schema"));

    let not_bytes = change(&base, &owner_p().actor, |doc| {
        let track = root_object(doc, "track");
        doc.insert(&track, 1, "116.98,36.74").unwrap();
    });
    assert_eq!(send(&owner_p(), &base, not_bytes).err(), Some("schema"));
}

#[test]
fn appended_records_hold_exactly_their_fields() {
    let patrol = patrol();
    let mut with_extra = serde_json::to_value(photo(3)).unwrap();
    with_extra["caption"] = json!("好看");
    let extra = change(&patrol, &owner_p().actor, |doc| {
        push_raw(doc, "photos", &with_extra)
    });
    assert_eq!(send(&owner_p(), &patrol, extra).err(), Some("schema"));
    let mut lacking = serde_json::to_value(photo(3)).unwrap();
    lacking.as_object_mut().unwrap().remove("bytes");
    let lacking = change(&patrol, &owner_p().actor, |doc| {
        push_raw(doc, "photos", &lacking)
    });
    assert_eq!(send(&owner_p(), &patrol, lacking).err(), Some("schema"));

    let issue = issue_steps().reported;
    let mut accepted = serde_json::to_value(event("u-office", Action::Accepted)).unwrap();
    accepted["superseded"] = json!(null);
    let smuggled = change(&issue, &office().actor, |doc| {
        push_raw(doc, "events", &accepted)
    });
    assert_eq!(send(&office(), &issue, smuggled).err(), Some("schema"));
    let mut closed = serde_json::to_value(event("u-office", Action::Accepted)).unwrap();
    closed["kind"] = json!("closed");
    let unknown_kind = change(&issue, &office().actor, |doc| {
        push_raw(doc, "events", &closed)
    });
    assert_eq!(send(&office(), &issue, unknown_kind).err(), Some("schema"));

    // Written by the document API, the same records pass.
    let fine = change(&patrol, &owner_p().actor, |doc| {
        as_patrol(doc, |p| p.add_photo(&photo(3)).unwrap())
    });
    assert!(send(&owner_p(), &patrol, fine).is_ok());
}

#[test]
fn events_are_judged_one_after_another() {
    let issue = issue_steps().reported;
    let first = IssueDoc::load(&issue.bytes).unwrap().events().unwrap()[0].clone();
    let mut again = event("u-office", Action::Comment { text: "再".into() });
    again.id = first.id;
    let duplicate = change(&issue, &office().actor, |doc| push_event(doc, &again));
    assert_eq!(
        send(&office(), &issue, duplicate).err(),
        Some("duplicate_event")
    );

    let accept_and_assign = change(&issue, &office().actor, |doc| {
        push_event(doc, &event("u-office", Action::Accepted));
        push_event(doc, &event("u-office", assign(WATER_BUREAU)));
    });
    let doc = send(&office(), &issue, accept_and_assign).unwrap();
    let state = IssueDoc::from_automerge(doc).unwrap().state().unwrap();
    assert_eq!(
        state.assignee,
        Some(Assignee::Department(WATER_BUREAU.into()))
    );

    let accept_and_verify = change(&issue, &office().actor, |doc| {
        push_event(doc, &event("u-office", Action::Accepted));
        push_event(doc, &event("u-office", verify()));
    });
    assert_eq!(
        send(&office(), &issue, accept_and_verify).err(),
        Some("transition")
    );
}

/// A new issue written on `person`'s device, edited by `forge` before it is committed.
fn forged_report(person: &Person, forge: impl FnOnce(&mut AutoCommit)) -> (Saved, Change) {
    let mut issue = IssueDoc::report(
        person.actor.clone(),
        &person.user,
        "phone",
        T0,
        &new_issue(),
    )
    .unwrap();
    forge(issue.am_mut());
    let change = issue.am_mut().get_changes(&[]).pop().unwrap();
    let id = issue.id().to_string();
    (
        Saved {
            id,
            bytes: Vec::new(),
        },
        change,
    )
}

#[test]
fn a_new_issue_starts_with_its_report() {
    let (empty, change) = forged_report(&owner_p(), |doc| {
        let events = root_object(doc, "events");
        doc.delete(&events, 0).unwrap();
    });
    assert_eq!(send(&owner_p(), &empty, change).err(), Some("schema"));

    let (empty, change) = forged_report(&owner_p(), |doc| {
        let events = root_object(doc, "events");
        let (_, first) = doc.get(&events, 0).unwrap().unwrap();
        doc.put(&first, "kind", "accepted").unwrap();
    });
    assert_eq!(send(&owner_p(), &empty, change).err(), Some("transition"));
}

#[test]
fn a_second_document_under_an_existing_id_is_refused() {
    let base = patrol();
    // The owner's second phone starts a patrol that claims the first one's id.
    let second_phone = Person {
        actor: actor_for(30),
        ..owner_p()
    };
    let mut rival = PatrolDoc::create(second_phone.actor.clone(), &new_patrol("u-chief")).unwrap();
    rival.am_mut().put(ROOT, "id", base.id.as_str()).unwrap();
    let root = rival.am_mut().get_changes(&[]).pop().unwrap();
    assert!(root.deps().is_empty());
    assert_eq!(
        send(&second_phone, &base, root.clone()).err(),
        Some("immutable_field")
    );

    // Two roots in one batch for a document the server does not have yet: the first wins.
    let mut first = PatrolDoc::create(owner_p().actor.clone(), &new_patrol("u-chief")).unwrap();
    let id = first.id().to_string();
    let first = first.am_mut().get_changes(&[]).pop().unwrap();
    let mut second = PatrolDoc::create(owner_p().actor.clone(), &new_patrol("u-chief")).unwrap();
    second.am_mut().put(ROOT, "id", id.as_str()).unwrap();
    let second = second.am_mut().get_changes(&[]).pop().unwrap();
    let mut doc = AutoCommit::new();
    let owner = owner_p();
    let outcome = authorize_batch(
        &owner.user,
        &owner.actor,
        &id,
        &mut doc,
        vec![first, second],
    );
    assert_eq!(outcome.accepted.len(), 1);
    // From one phone the second root reuses the first one's sequence number.
    assert_eq!(outcome.refused[0].1.code(), "malformed");
}

#[test]
fn empty_changes_still_need_a_right_to_the_document() {
    let patrol = patrol();
    let nothing = |base: &Saved, p: &Person| {
        change(base, &p.actor, |doc| {
            doc.empty_change(CommitOptions::default());
        })
    };
    assert!(send(&owner_p(), &patrol, nothing(&patrol, &owner_p())).is_ok());
    assert_eq!(
        send(&office(), &patrol, nothing(&patrol, &office())).err(),
        Some("not_owner")
    );
    let stranger = person(1);
    assert_eq!(
        send(&stranger, &patrol, nothing(&patrol, &stranger)).err(),
        Some("out_of_scope")
    );
    let issue = issue_steps().reported;
    assert!(send(&office(), &issue, nothing(&issue, &office())).is_ok());
}

#[test]
fn a_reused_sequence_number_is_malformed_not_a_crash() {
    let base = patrol();
    let first = change(&base, &owner_p().actor, |doc| {
        as_patrol(doc, |p| p.set_notes("第一次").unwrap())
    });
    let server = Saved {
        id: base.id.clone(),
        bytes: send(&owner_p(), &base, first).unwrap().save(),
    };
    // A phone restored from an old backup writes again from the same point of its history.
    let again = change(&base, &owner_p().actor, |doc| {
        as_patrol(doc, |p| p.set_notes("第二次").unwrap())
    });
    assert_eq!(send(&owner_p(), &server, again).err(), Some("malformed"));
}

#[test]
fn authorize_change_needs_the_state_the_author_saw() {
    let base = patrol();
    let owner = owner_p();
    let notes = change(&base, &owner.actor, |doc| {
        as_patrol(doc, |p| p.set_notes("新").unwrap())
    });
    let before = base.load();
    assert_eq!(
        authorize_change(&owner.user, &owner.actor, &base.id, &before, &notes),
        Ok(())
    );
    let refusal = authorize_change(
        &owner.user,
        &owner.actor,
        &base.id,
        &AutoCommit::new(),
        &notes,
    )
    .unwrap_err();
    assert_eq!(refusal.code(), "malformed");
    assert!(
        refusal.to_string().contains("depends on changes"),
        "{refusal}"
    );
}
