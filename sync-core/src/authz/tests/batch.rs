//! A device's batch for one document: concurrent offline work, retries, missing dependencies,
//! refusals that carry over to dependents, causal order and whole new documents.

use automerge::ChangeHash;

use super::*;
use crate::authz::{BatchOutcome, Refusal};
use crate::workflow::Status;

type Edit = Box<dyn FnOnce(&mut AutoCommit)>;

/// The changes `edits` make one after another on `actor`'s copy of `base`.
fn chain(base: &Saved, actor: &ActorId, edits: Vec<Edit>) -> Vec<Change> {
    let mut device = base.load().with_actor(actor.clone());
    let mut changes = Vec::new();
    for edit in edits {
        let heads = device.get_heads();
        edit(&mut device);
        changes.extend(device.get_changes(&heads));
    }
    changes
}

fn notes(text: &'static str) -> Edit {
    Box::new(move |doc| as_patrol(doc, |p| p.set_notes(text).unwrap()))
}

fn hashes(changes: &[Change]) -> Vec<ChangeHash> {
    changes.iter().map(Change::hash).collect()
}

fn run(person: &Person, id: &str, doc: &mut AutoCommit, changes: Vec<Change>) -> BatchOutcome {
    authorize_batch(&person.user, &person.actor, id, doc, changes)
}

#[test]
fn concurrent_verify_and_reject_are_both_accepted_and_the_fold_settles_them() {
    let base = issue_steps().submitted;
    let office = person(2);
    let subdistrict = Person {
        user: supervisor("u-office-2", System::River, "370105014000"),
        actor: actor_for(20),
    };
    let verified = change(&base, &office.actor, |doc| {
        push_event(doc, &event("u-office", verify()))
    });
    let rejected = change(&base, &subdistrict.actor, |doc| {
        let reason = "垃圾仍在".to_string();
        push_event(doc, &event("u-office-2", Action::Rejected { reason }))
    });

    for order in [[0, 1], [1, 0]] {
        let sends = [(&office, &verified), (&subdistrict, &rejected)];
        let mut doc = base.load();
        for i in order {
            let (who, change) = sends[i];
            // The second one was authored against the state before the first arrived.
            let outcome = run(who, &base.id, &mut doc, vec![change.clone()]);
            assert_eq!(outcome.accepted, vec![change.hash()]);
            assert!(outcome.refused.is_empty());
        }
        let state = IssueDoc::from_automerge(doc).unwrap().state().unwrap();
        let superseded: Vec<_> = state
            .timeline
            .iter()
            .filter(|e| e.superseded.is_some())
            .map(|e| e.event.action.kind())
            .collect();
        assert_eq!(superseded.len(), 1, "{:?}", state.timeline);
        let expected = match superseded[0] {
            crate::workflow::EventKind::Rejected => Status::Closed,
            _ => Status::Assigned,
        };
        assert_eq!(state.status, Some(expected));
    }
}

#[test]
fn concurrent_submission_and_escalation_both_count() {
    let base = issue_steps().assigned;
    let (office, bureau) = (person(2), person(4));
    let submitted = change(&base, &bureau.actor, |doc| {
        push_event(doc, &event("u-handler", submit()))
    });
    let escalated = change(&base, &office.actor, |doc| {
        let note = "督办".to_string();
        push_event(doc, &event("u-office", Action::Escalated { note }))
    });
    let mut doc = base.load();
    assert_eq!(
        run(&bureau, &base.id, &mut doc, vec![submitted])
            .accepted
            .len(),
        1
    );
    assert_eq!(
        run(&office, &base.id, &mut doc, vec![escalated])
            .accepted
            .len(),
        1
    );
    let state = IssueDoc::from_automerge(doc).unwrap().state().unwrap();
    assert_eq!(state.status, Some(Status::Submitted));
    assert_eq!(state.escalations, 1);
    assert!(state.timeline.iter().all(|e| e.superseded.is_none()));
}

#[test]
fn retrying_a_batch_changes_nothing_twice() {
    let base = patrol();
    let owner = person(0);
    let changes = chain(
        &base,
        &owner.actor,
        vec![notes("一"), notes("二"), notes("三")],
    );
    let mut doc = base.load();
    let first = run(&owner, &base.id, &mut doc, changes[..2].to_vec());
    assert_eq!(first.accepted, hashes(&changes[..2]));
    let heads = doc.get_heads();
    let bytes = doc.save();

    let retry = run(&owner, &base.id, &mut doc, changes[..2].to_vec());
    assert!(retry.accepted.is_empty() && retry.refused.is_empty() && retry.missing_deps.is_empty());
    assert_eq!(doc.get_heads(), heads);
    assert_eq!(doc.save(), bytes);

    // A retry that carries one more change (and a duplicate) applies only the new one.
    let mut more = changes.clone();
    more.push(changes[2].clone());
    let outcome = run(&owner, &base.id, &mut doc, more);
    assert_eq!(outcome.accepted, vec![changes[2].hash()]);
}

#[test]
fn changes_are_applied_in_causal_order_whatever_order_they_came_in() {
    let base = patrol();
    let owner = person(0);
    let changes = chain(
        &base,
        &owner.actor,
        vec![notes("一"), notes("二"), notes("三")],
    );
    let mut doc = base.load();
    let shuffled = vec![changes[2].clone(), changes[0].clone(), changes[1].clone()];
    let outcome = run(&owner, &base.id, &mut doc, shuffled);
    assert_eq!(outcome.accepted, hashes(&changes));
    let patrol = PatrolDoc::from_automerge(doc).unwrap().view().unwrap();
    assert_eq!(patrol.notes, "三");
}

#[test]
fn missing_dependencies_are_reported_and_nothing_after_them_applied() {
    let base = patrol();
    let owner = person(0);
    let changes = chain(
        &base,
        &owner.actor,
        vec![notes("一"), notes("二"), notes("三")],
    );
    let mut doc = base.load();
    let heads = doc.get_heads();
    let outcome = run(&owner, &base.id, &mut doc, changes[1..].to_vec());
    assert_eq!(outcome.missing_deps, vec![changes[0].hash()]);
    assert!(outcome.accepted.is_empty() && outcome.refused.is_empty());
    assert_eq!(doc.get_heads(), heads);

    // The second round trip: the device sends what was missing along with the rest.
    let outcome = run(&owner, &base.id, &mut doc, changes.clone());
    assert_eq!(outcome.accepted, hashes(&changes));
    assert!(outcome.missing_deps.is_empty());
}

#[test]
fn changes_depending_on_a_refused_change_are_refused_too() {
    let base = patrol();
    let owner = person(0);
    let rewrite: Edit = Box::new(|doc| {
        use automerge::transaction::Transactable;
        let track = root_object(doc, "track");
        doc.delete(&track, 0).unwrap();
    });
    let changes = chain(
        &base,
        &owner.actor,
        vec![notes("一"), rewrite, notes("三"), notes("四")],
    );
    let mut doc = base.load();
    let outcome = run(&owner, &base.id, &mut doc, changes.clone());
    assert_eq!(outcome.accepted, vec![changes[0].hash()]);
    let codes: Vec<_> = outcome
        .refused
        .iter()
        .map(|(h, r)| (*h, r.code()))
        .collect();
    assert_eq!(
        codes,
        vec![
            (changes[1].hash(), "history_rewrite"),
            (changes[2].hash(), "depends_on_refused"),
            (changes[3].hash(), "depends_on_refused"),
        ]
    );
    assert_eq!(
        outcome.refused[2].1,
        Refusal::DependsOnRefused(changes[2].hash())
    );
    assert_eq!(doc.get_heads(), vec![changes[0].hash()]);
}

#[test]
fn a_whole_new_document_arrives_in_one_batch() {
    let owner = person(0);
    let mut patrol = PatrolDoc::create(owner.actor.clone(), &new_patrol("u-chief")).unwrap();
    let id = patrol.id().to_string();
    let created = patrol.heads();
    patrol.append_track(&points(30)).unwrap();
    let _ = patrol.heads();
    patrol.add_photo(&photo(4)).unwrap();
    patrol.finish(T0 + 3_600_000).unwrap();
    let changes = patrol.am_mut().get_changes(&[]);
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[0].hash(), created[0]);

    let mut doc = AutoCommit::new();
    let outcome = run(
        &owner,
        &id,
        &mut doc,
        changes.iter().rev().cloned().collect(),
    );
    assert_eq!(outcome.accepted, hashes(&changes));
    let meta = DocMeta::of(&doc).unwrap();
    assert_eq!(
        (meta.id.as_str(), meta.owner.as_str()),
        (id.as_str(), "u-chief")
    );

    // Someone else's device cannot start the same patrol.
    let other = person(1);
    let mut empty = AutoCommit::new();
    let outcome = run(&other, &id, &mut empty, changes);
    assert_eq!(outcome.refused[0].1.code(), "actor_not_bound");
    assert!(empty.is_empty());
}
