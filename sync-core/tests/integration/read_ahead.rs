//! A request's pushed documents are read together, before each one's lock is taken. A save
//! that comes between the read and the lock (another phone's sync, the desk on another server)
//! is never saved over: the document is read again and the phone's changes merged again.

use automerge::AutoCommit;
use sync_core::client::SyncClient;
use sync_core::doc::{DocKind, IssueDoc};
use sync_core::hub::{DocumentStore, Hub, WEB_DEVICE};
use sync_core::workflow::{Action, Assignee};

use crate::fixtures::{chief, handler, supervisor, T0};
use crate::world::{caller, held_heads, phone, World, DAY, DEPARTMENT};

#[test]
fn a_document_saved_between_its_read_and_its_lock_is_merged_again() {
    let world = World::new();
    let on_patrol = phone();
    let a = caller(chief(), "phone", 1);
    let id = world.report(&on_patrol, &a, T0);
    world.assign(&id, Assignee::User(chief().id), T0 + 10);
    world.sync(&on_patrol, &a, T0 + 20);

    // Offline, the chief submits the rectification.
    let client = SyncClient::new(&on_patrol);
    let held = client.load(&id).unwrap().expect("held").save();
    let mut issue = IssueDoc::load(&held).unwrap().with_actor(a.actor.clone());
    issue
        .act(
            &chief(),
            &a.device,
            T0 + 30,
            Action::RectificationSubmitted {
                note: "已清理".into(),
                photos: vec!["ef".repeat(32)],
            },
        )
        .unwrap();
    client.save(&mut issue, DocKind::Issue, &id).unwrap();
    let submitted = client.load(&id).unwrap().expect("held").get_heads();

    // Meanwhile the office extends the deadline on another server (a copy of the store), and
    // that save lands right after this server read the issue for the chief's push.
    let other = Hub::new(world.hub.store().clone());
    other
        .act(
            &supervisor(),
            WEB_DEVICE,
            &id,
            Action::Assigned {
                assignee: Assignee::User(chief().id),
                deadline_ms: T0 + 14 * DAY,
            },
            T0 + 40,
        )
        .expect("the office assigns again");
    let theirs = other.store().document(&id).unwrap().expect("saved");
    let extended = AutoCommit::load(&theirs.bytes).unwrap().get_heads();
    let store = world.hub.store();
    let before = store.document_seq(&id).unwrap().expect("stored");
    store.save_after_next_read_together(&id, theirs.meta, theirs.bytes);

    let report = world.sync(&on_patrol, &a, T0 + 50);
    assert_eq!(report.refused, 0);
    // The office's save, then the chief's merge over it: neither is lost.
    assert_eq!(store.document_seq(&id).unwrap(), Some(before + 2));
    let mut server = AutoCommit::load(&store.document(&id).unwrap().unwrap().bytes).unwrap();
    for hash in submitted.iter().chain(&extended) {
        assert!(server.get_change_by_hash(hash).is_some(), "{hash} kept");
    }
    assert_eq!(held_heads(&on_patrol, &id), Some(server.get_heads()));
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
    // rectification on their phone.
    world.assign(&id, Assignee::User(chief().id), T0 + 30);
    let client = SyncClient::new(&desk);
    let held = client.load(&id).unwrap().expect("held").save();
    let mut issue = IssueDoc::load(&held).unwrap().with_actor(h.actor.clone());
    issue
        .act(
            &handler(),
            &h.device,
            T0 + 40,
            Action::RectificationSubmitted {
                note: "已整改".into(),
                photos: vec!["ab".repeat(32)],
            },
        )
        .unwrap();
    client.save(&mut issue, DocKind::Issue, &id).unwrap();
    let submitted = client.load(&id).unwrap().expect("held").get_heads();

    // On another server the office gives it back to the department, saved right after this
    // server read the problem for the handler's push.
    let other = Hub::new(world.hub.store().clone());
    other
        .act(
            &supervisor(),
            WEB_DEVICE,
            &id,
            Action::Assigned {
                assignee: to_department(),
                deadline_ms: T0 + 14 * DAY,
            },
            T0 + 50,
        )
        .expect("the office gives it back");
    let theirs = other.store().document(&id).unwrap().expect("saved");
    let store = world.hub.store();
    store.save_after_next_read_together(&id, theirs.meta, theirs.bytes);

    let report = world.sync(&desk, &h, T0 + 60);
    assert_eq!(
        report.refused, 0,
        "judged on the problem as stored at the lock"
    );
    let mut server = AutoCommit::load(&store.document(&id).unwrap().unwrap().bytes).unwrap();
    for hash in &submitted {
        assert!(server.get_change_by_hash(hash).is_some(), "{hash} taken");
    }
}
