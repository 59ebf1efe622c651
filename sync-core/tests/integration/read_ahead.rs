//! A request's pushed documents are read together, before each one's lock is taken. A save
//! that comes between the read and the lock (another phone's sync, the desk on another server)
//! is never saved over: the document is read again and the phone's changes merged again.

use automerge::{AutoCommit, ChangeHash};
use sync_core::client::SyncClient;
use sync_core::doc::{DocKind, IssueDoc};
use sync_core::hub::{Caller, DocumentStore, Hub, WEB_DEVICE};
use sync_core::model::User;
use sync_core::store::LocalStore;
use sync_core::workflow::{Action, Assignee};

use crate::fixtures::{chief, handler, supervisor, T0};
use crate::world::{caller, held_heads, phone, World, DAY, DEPARTMENT};

/// `user` submits the rectification of `id` on their phone, offline; returns the phone's heads
/// of it after.
fn submit_offline(
    on: &LocalStore,
    who: &Caller,
    user: &User,
    id: &str,
    at: i64,
) -> Vec<ChangeHash> {
    let client = SyncClient::new(on);
    let held = client.load(id).unwrap().expect("held").save();
    let mut issue = IssueDoc::load(&held).unwrap().with_actor(who.actor.clone());
    let action = Action::RectificationSubmitted {
        note: "已整改".into(),
        photos: vec!["ef".repeat(32)],
    };
    issue.act(user, &who.device, at, action).unwrap();
    client.save(&mut issue, DocKind::Issue, id).unwrap();
    client.load(id).unwrap().expect("held").get_heads()
}

/// The office assigns `id` to `to` on another server (a copy of the store), saved in this
/// server's store right after it next reads `id` together with others; returns that save's
/// heads.
fn assigned_elsewhere_after_the_next_read(
    world: &World,
    id: &str,
    to: Assignee,
    at: i64,
) -> Vec<ChangeHash> {
    let other = Hub::new(world.hub.store().clone());
    let action = Action::Assigned {
        assignee: to,
        deadline_ms: at + 14 * DAY,
    };
    other
        .act(&supervisor(), WEB_DEVICE, id, action, at)
        .expect("the office assigns");
    let theirs = other.store().document(id).unwrap().expect("saved");
    let heads = AutoCommit::load(&theirs.bytes).unwrap().get_heads();
    world
        .hub
        .store()
        .save_after_next_read_together(id, theirs.meta, theirs.bytes);
    heads
}

/// The server's document holds each of `hashes`.
fn stored_holds(world: &World, id: &str, hashes: &[ChangeHash]) {
    let stored = world.hub.store().document(id).unwrap().expect("stored");
    let mut server = AutoCommit::load(&stored.bytes).unwrap();
    for hash in hashes {
        assert!(server.get_change_by_hash(hash).is_some(), "{hash} kept");
    }
}

#[test]
fn a_document_saved_between_its_read_and_its_lock_is_merged_again() {
    let world = World::new();
    let on_patrol = phone();
    let a = caller(chief(), "phone", 1);
    let id = world.report(&on_patrol, &a, T0);
    world.assign(&id, Assignee::User(chief().id), T0 + 10);
    world.sync(&on_patrol, &a, T0 + 20);
    let submitted = submit_offline(&on_patrol, &a, &chief(), &id, T0 + 30);
    // Meanwhile the office extends the deadline on another server.
    let extended =
        assigned_elsewhere_after_the_next_read(&world, &id, Assignee::User(chief().id), T0 + 40);
    let before = world
        .hub
        .store()
        .document_seq(&id)
        .unwrap()
        .expect("stored");

    let report = world.sync(&on_patrol, &a, T0 + 50);
    assert_eq!(report.refused, 0);
    // The office's save, then the chief's merge over it: neither is lost.
    assert_eq!(
        world.hub.store().document_seq(&id).unwrap(),
        Some(before + 2)
    );
    stored_holds(&world, &id, &[submitted, extended].concat());
    assert_eq!(held_heads(&on_patrol, &id), Some(world.server_heads(&id)));
}

/// A push refused on a read made ahead of the lock stands only if nothing was saved since:
/// the district's handler, whose problem the office took off their department and gave back
/// on another server a moment before their sync took the lock, has their rectification taken,
/// not refused as out of their scope.
#[test]
fn a_push_refused_on_a_read_made_ahead_is_judged_again_on_what_is_stored() {
    let world = World::new();
    let on_patrol = phone();
    let a = caller(chief(), "phone", 1);
    let id = world.report(&on_patrol, &a, T0);
    let to_department = || Assignee::Department(DEPARTMENT.into());
    world.assign(&id, to_department(), T0 + 10);
    let desk = phone();
    let h = caller(handler(), "desk-phone", 3);
    world.sync(&desk, &h, T0 + 20);
    assert!(
        held_heads(&desk, &id).is_some(),
        "the handler holds the problem"
    );
    // The office gives the problem to the chief; the handler, not yet told, submits the
    // rectification on their phone, and the office gives it back on another server.
    world.assign(&id, Assignee::User(chief().id), T0 + 30);
    let submitted = submit_offline(&desk, &h, &handler(), &id, T0 + 40);
    assigned_elsewhere_after_the_next_read(&world, &id, to_department(), T0 + 50);

    let report = world.sync(&desk, &h, T0 + 60);
    assert_eq!(
        report.refused, 0,
        "judged on the problem as stored at the lock"
    );
    stored_holds(&world, &id, &submitted);
}
