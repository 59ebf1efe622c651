//! What the server records a phone as holding (the device ledger) against what the phone holds:
//! an answer the phone never applied must not count as held, and a phone sent changes on top of
//! ones it lacks asks for them again instead of keeping a copy nobody else has; and one answer
//! to a phone at a time writes its records.

use automerge::ChangeHash;
use sync_core::client::SyncClient;
use sync_core::hub::{DeviceDoc, DeviceLedger, DocumentStore, HubError};
use sync_core::limits::AnswerLimits;
use sync_core::protocol::SyncRequest;
use sync_core::store::LocalStore;

use crate::fixtures::{chief, T0};
use crate::world::{caller, edit_held, held_heads, phone, record, World};

/// The chief improves the description of a problem on one of their phones and syncs it.
fn describe(world: &World, store: &LocalStore, who: &sync_core::hub::Caller, id: &str, at: i64) {
    edit_held(store, who, id, |issue| {
        issue.set_description(&format!("补充说明 {at}")).unwrap();
    });
    world.sync(store, who, at);
}

/// A sync whose answer is lost on the way (the connection cut after the server answered).
fn lost_sync(world: &World, store: &LocalStore, who: &sync_core::hub::Caller, at: i64) {
    let outgoing = SyncClient::new(store).build_request(at).unwrap();
    let request = SyncRequest::decode(&outgoing.encode()).unwrap();
    world
        .hub
        .answer(who, &request, at)
        .expect("the server answers");
}

/// One round trip of a sync, applied: a sync takes every page, this takes one.
fn one_page(world: &World, store: &LocalStore, who: &sync_core::hub::Caller, at: i64) {
    let client = SyncClient::new(store);
    let outgoing = client.build_request(at).unwrap();
    let request = SyncRequest::decode(&outgoing.encode()).unwrap();
    let answer = world
        .hub
        .sync(who, &request, at)
        .expect("the server answers");
    let mut report = Default::default();
    client
        .apply_response(&outgoing, &answer, at, &mut report)
        .unwrap();
}

#[test]
fn an_answer_the_phone_never_applied_does_not_count_as_held_when_a_later_page_passes_it() {
    let world = World::new();
    world.hub.set_answer_limits(AnswerLimits {
        bytes: 1 << 30,
        docs: 1,
    });
    let (office_phone, on_patrol) = (phone(), phone());
    let a = caller(chief(), "office-phone", 1);
    let b = caller(chief(), "patrol-phone", 2);
    world.sync(&office_phone, &a, T0);

    // Two problems reported from the patrol phone: the office phone has neither.
    let first = world.report(&on_patrol, &b, T0 + 1);
    let second = world.report(&on_patrol, &b, T0 + 2);

    // The office phone's sync brings the first (one document per answer here); the answer is
    // lost, so the phone holds nothing and keeps its cursor.
    lost_sync(&world, &office_phone, &a, T0 + 3);

    // The first problem changes again, so its feed position moves past the second's.
    describe(&world, &on_patrol, &b, &first, T0 + 4);

    // The next answer brings the second and stops before the first: its cursor passes the lost
    // answer's, without the first in it.
    one_page(&world, &office_phone, &a, T0 + 5);
    assert!(held_heads(&office_phone, &first).is_none());
    let cursor = SyncClient::new(&office_phone).cursor().unwrap();
    let record = world
        .hub
        .store()
        .device_doc(&a.device, &first)
        .unwrap()
        .unwrap_or_default();
    assert!(
        record.known(cursor).is_empty(),
        "the server records the phone as holding {:?} of a problem it never received",
        record.known(cursor)
    );
    // What was sent stays on record as the floor the phone's receipts are counted from, until
    // a sync of the phone's own (this one pushed nothing) vouches for a later time.
    let synced = world.hub.store().device_synced(&a.device).unwrap();
    assert!(
        !record.pending.is_empty() || synced >= Some(T0 + 5),
        "neither what was sent nor a later sync bounds the phone's receipts: {record:?}"
    );

    // The next syncs bring it whole: the phone ends with the server's version of both.
    for at in [T0 + 6, T0 + 7] {
        world.sync(&office_phone, &a, at);
    }
    for id in [&first, &second] {
        assert_eq!(held_heads(&office_phone, id), Some(world.server_heads(id)));
    }
}

#[test]
fn a_phone_sent_changes_on_top_of_ones_it_lacks_asks_again_and_ends_with_the_server_version() {
    let world = World::new();
    let (office_phone, on_patrol) = (phone(), phone());
    let a = caller(chief(), "office-phone", 1);
    let b = caller(chief(), "patrol-phone", 2);
    let id = world.report(&on_patrol, &b, T0);
    world.sync(&office_phone, &a, T0 + 1);
    assert_eq!(
        held_heads(&office_phone, &id),
        Some(world.server_heads(&id))
    );

    // The patrol phone improves the description; the server's records come to claim the
    // office phone holds that too (as a record left by a lost answer would).
    describe(&world, &on_patrol, &b, &id, T0 + 2);
    let claimed: Vec<[u8; 32]> = world.server_heads(&id).iter().map(|h| h.0).collect();
    world
        .hub
        .store()
        .put_device_docs(
            &a.device,
            &[(
                id.clone(),
                Some(DeviceDoc {
                    confirmed: claimed,
                    pending: Vec::new(),
                    pending_cursor: 0,
                }),
            )],
        )
        .unwrap();

    // A second improvement reaches the office phone built on the first, which it lacks.
    describe(&world, &on_patrol, &b, &id, T0 + 3);
    world.sync(&office_phone, &a, T0 + 4);
    let held: Option<Vec<ChangeHash>> = held_heads(&office_phone, &id);
    assert_eq!(
        held,
        Some(world.server_heads(&id)),
        "the phone asked for what it lacked within the same sync"
    );
    assert!(SyncClient::new(&office_phone).dirty().unwrap().is_empty());
}

#[test]
fn a_page_of_a_change_of_scope_lost_while_nothing_was_saved_is_sent_again() {
    use sync_core::model::{Jurisdiction, Level, Role, System};

    let world = World::new();
    let (township_phone, village_phone) = (phone(), phone());
    let village_chief = caller(chief(), "phone", 1);
    // A subdistrict (town) chief over the same village's river system, leading no asset yet:
    // the problems a village chief reports are not delivered to their phone.
    let mut township = chief();
    township.id = "u-township-chief".into();
    township.username = "demo-township-chief".into();
    township.role = Role::Chief {
        system: System::River,
        level: Level::Subdistrict,
        jurisdiction: Jurisdiction {
            division: crate::fixtures::village(),
            assets: Vec::new(),
        },
    };
    let mut township_chief = caller(township.clone(), "phone", 2);
    let first = world.report(&village_phone, &village_chief, T0);
    let second = world.report(&village_phone, &village_chief, T0 + 1);
    world.sync(&township_phone, &township_chief, T0 + 2);
    assert!(held_heads(&township_phone, &first).is_none());

    // Now they lead the village's river as its chief: every open problem there is theirs, and
    // their phone's next sync walks the new scope in pages of one problem. Nothing is saved
    // meanwhile, so the walk's cursor is the phone's own; the first page is lost.
    township.role = Role::Chief {
        system: System::River,
        level: Level::Village,
        jurisdiction: Jurisdiction {
            division: crate::fixtures::village(),
            assets: vec!["xqh-01".into()],
        },
    };
    township_chief.user = township;
    world.hub.set_answer_limits(AnswerLimits {
        bytes: 1 << 30,
        docs: 1,
    });
    lost_sync(&world, &township_phone, &township_chief, T0 + 3);
    for at in T0 + 4..T0 + 8 {
        world.sync(&township_phone, &township_chief, at);
    }
    for id in [&first, &second] {
        assert_eq!(
            held_heads(&township_phone, id),
            Some(world.server_heads(id)),
            "every problem of the new scope reaches the phone"
        );
    }
}

/// Two answers to one phone at once (a retry while the first request is still being answered,
/// on this server or another) would each write the phone's records from their own reading, the
/// last one standing. While one runs, another is refused at once, having done nothing, and the
/// phone sends it again.
#[test]
fn a_second_answer_to_one_phone_while_the_first_runs_is_refused_and_changes_nothing() {
    let world = World::new();
    let (office_phone, on_patrol) = (phone(), phone());
    let a = caller(chief(), "office-phone", 1);
    let b = caller(chief(), "patrol-phone", 2);
    world.sync(&office_phone, &a, T0);
    let problem = world.report(&on_patrol, &b, T0 + 1);
    let store = world.hub.store();

    // The office phone edits a problem of its own and sends it while another answer to it runs.
    let own = record(&office_phone, &a, T0 + 2);
    let request = SyncRequest::decode(
        &SyncClient::new(&office_phone)
            .build_request(T0 + 3)
            .unwrap()
            .encode(),
    )
    .unwrap();
    let answering = store
        .claim_device(&a.device)
        .unwrap()
        .expect("no answer runs");
    let refused = world.hub.answer(&a, &request, T0 + 3);
    assert!(
        matches!(refused, Err(HubError::SyncInProgress)),
        "a second answer to the phone: {:?}",
        refused.map(|answer| answer.response.cursor)
    );
    assert!(
        store.device_doc(&a.device, &problem).unwrap().is_none(),
        "the refused answer wrote the phone's records"
    );
    assert!(
        store.document(&own).unwrap().is_none(),
        "the refused answer saved what the phone sent"
    );
    // Another phone of the same chief is a device of its own.
    world.sync(&on_patrol, &b, T0 + 4);

    // Once the first answer ends, the phone's request is answered: its problem stored, the
    // other one sent.
    drop(answering);
    let answered = world
        .hub
        .answer(&a, &request, T0 + 5)
        .expect("answered once the other answer ended");
    assert!(store.document(&own).unwrap().is_some());
    assert!(answered
        .response
        .docs
        .iter()
        .any(|update| update.doc_id == problem));
    // Each answer let go of its claim, the refused one too.
    assert!(store.claim_device(&a.device).unwrap().is_some());
}
