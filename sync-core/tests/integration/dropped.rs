//! A phone that drops documents from its store (`evict`) and tells the server
//! (`SyncRequest::dropped`): the server forgets it holds them, sends them back whole when they
//! change and are still delivered, and not otherwise; a phone naming documents it never held,
//! or thousands of them, changes nothing it should not.

use sync_core::client::SyncClient;
use sync_core::doc::{DocKind, IssueDoc};
use sync_core::hub::{DeviceLedger, DocumentStore, HubError};
use sync_core::protocol::{ProtocolError, SyncRequest, MAX_DROPPED_DOCS};
use sync_core::workflow::{Action, Assignee};

use crate::fixtures::{chief, handler, new_issue, T0};
use crate::world::{caller, edit_held, held_heads, phone, World, DAY, DEPARTMENT};

/// The handler comments on a problem on their phone (not yet sent).
fn comment(store: &sync_core::store::LocalStore, who: &sync_core::hub::Caller, id: &str, at: i64) {
    edit_held(store, who, id, |issue| {
        let text = format!("已到现场 {at}");
        issue
            .act(&who.user, &who.device, at, Action::Comment { text })
            .unwrap();
    });
}

/// A document that left a phone (dropped by it, or removed because it is no longer delivered
/// to it) keeps, in the device's records, what the phone held of it: the floor its receipts are
/// counted from, so a modified phone cannot drop a problem and then backdate an event before
/// the receipts it had seen. Syncs that push something keep it; the first sync of the phone's
/// own (nothing pushed) vouches for a later time and the records go.
#[test]
fn what_left_a_phone_stays_its_floor_until_a_sync_of_its_own_passes_it() {
    let world = World::new();
    let chief_phone = phone();
    let chief = caller(chief(), "phone", 1);
    let [dropped, moved_away, worked_on] =
        [0, 1, 2].map(|i| world.report(&chief_phone, &chief, T0 + i));
    for id in [&dropped, &moved_away, &worked_on] {
        world.assign(id, Assignee::Department(DEPARTMENT.into()), T0 + DAY);
    }
    let handler_phone = phone();
    let handler = caller(handler(), "phone", 3);
    world.sync(&handler_phone, &handler, T0 + DAY);
    let as_held = world.server_heads(&dropped);
    let moved_as_held = world.server_heads(&moved_away);

    // The phone drops one and sends a comment on another in the same sync.
    let client = SyncClient::new(&handler_phone);
    assert_eq!(
        client
            .drop_docs(std::slice::from_ref(&dropped))
            .unwrap()
            .len(),
        1
    );
    comment(&handler_phone, &handler, &worked_on, T0 + 2 * DAY);
    world.sync(&handler_phone, &handler, T0 + 2 * DAY);
    let store = world.hub.store();
    let record = store.device_doc(&handler.device, &dropped).unwrap();
    let record = record.expect("the dropped problem keeps a record");
    assert!(!record.holds(), "{record:?}");
    let mut seen = record.pending.clone();
    seen.sort();
    let mut expected: Vec<[u8; 32]> = as_held.iter().map(|h| h.0).collect();
    expected.sort();
    assert_eq!(seen, expected, "what the phone held is its floor");

    // Another is given to the chief by name: it leaves the department's phone at a sync that
    // again pushes a comment.
    world.assign(
        &moved_away,
        Assignee::User(chief.user.id.clone()),
        T0 + 3 * DAY,
    );
    comment(&handler_phone, &handler, &worked_on, T0 + 3 * DAY);
    world.sync(&handler_phone, &handler, T0 + 3 * DAY);
    assert!(held_heads(&handler_phone, &moved_away).is_none(), "removed");
    let record = store.device_doc(&handler.device, &moved_away).unwrap();
    let record = record.expect("the removed problem keeps a record");
    assert!(!record.holds());
    for head in &moved_as_held {
        assert!(record.pending.contains(&head.0), "{record:?}");
    }
    assert!(store
        .device_doc(&handler.device, &dropped)
        .unwrap()
        .is_some());

    // A sync that pushes nothing vouches for its own time, later than every receipt those
    // records keep: they go, and nothing comes back to the phone.
    world.sync(&handler_phone, &handler, T0 + 4 * DAY);
    for id in [&dropped, &moved_away] {
        assert_eq!(store.device_doc(&handler.device, id).unwrap(), None, "{id}");
        assert!(held_heads(&handler_phone, id).is_none(), "{id}");
    }
    assert!(store.device_synced(&handler.device).unwrap() >= Some(T0 + 4 * DAY));
    assert!(store
        .device_doc(&handler.device, &worked_on)
        .unwrap()
        .is_some());
}

#[test]
fn a_dropped_document_comes_back_when_it_changes_only_if_still_delivered() {
    let world = World::new();
    let chief_phone = phone();
    let chief = caller(chief(), "phone", 1);
    let kept_with_department = world.report(&chief_phone, &chief, T0);
    let moved_away = world.report(&chief_phone, &chief, T0 + 1);
    for id in [&kept_with_department, &moved_away] {
        world.assign(id, Assignee::Department(DEPARTMENT.into()), T0 + DAY);
    }

    // The department's phone receives both problems assigned to it.
    let handler_phone = phone();
    let handler = caller(handler(), "phone", 3);
    world.sync(&handler_phone, &handler, T0 + DAY);
    let client = SyncClient::new(&handler_phone);
    for id in [&kept_with_department, &moved_away] {
        assert_eq!(held_heads(&handler_phone, id), Some(world.server_heads(id)));
    }

    // It drops them (the phone's store is full) and tells the server at its next sync.
    let both = vec![kept_with_department.clone(), moved_away.clone()];
    assert_eq!(client.drop_docs(&both).unwrap(), both);
    assert!(held_heads(&handler_phone, &moved_away).is_none());
    assert_eq!(client.dropped().unwrap().len(), 2);
    world.sync(&handler_phone, &handler, T0 + 2 * DAY);
    assert!(client.dropped().unwrap().is_empty(), "the server heard");
    let ledger = world.hub.store().device_doc_ids(&handler.device).unwrap();
    assert!(!ledger.contains(&kept_with_department) && !ledger.contains(&moved_away));
    assert!(
        held_heads(&handler_phone, &kept_with_department).is_none(),
        "an unchanged dropped document is not sent back"
    );

    // One is assigned to the department again (still delivered to it), the other to the
    // chief by name (no longer the department's).
    world.assign(
        &kept_with_department,
        Assignee::Department(DEPARTMENT.into()),
        T0 + 3 * DAY,
    );
    world.assign(
        &moved_away,
        Assignee::User(chief.user.id.clone()),
        T0 + 3 * DAY,
    );
    world.sync(&handler_phone, &handler, T0 + 3 * DAY);
    assert_eq!(
        held_heads(&handler_phone, &kept_with_department),
        Some(world.server_heads(&kept_with_department)),
        "the document the department still receives comes back whole"
    );
    assert!(
        held_heads(&handler_phone, &moved_away).is_none(),
        "the document it no longer receives stays away"
    );
    // The chief's phone, which never dropped anything, has both as the server does.
    world.sync(&chief_phone, &chief, T0 + 3 * DAY);
    for id in [&kept_with_department, &moved_away] {
        assert_eq!(held_heads(&chief_phone, id), Some(world.server_heads(id)));
    }
}

/// The phone chooses what to drop from the facts of its last sync; a problem reassigned to its
/// department since then is dropped with them and named in the same request that would bring
/// the reassignment. The answer must carry it back whole: before, the dropped ids were left
/// out of that answer while its cursor moved past the change, and the department never saw
/// the assignment until the problem changed again.
#[test]
fn a_document_that_changed_since_the_last_sync_comes_back_in_the_answer_to_its_drop() {
    let world = World::new();
    let chief_phone = phone();
    let chief = caller(chief(), "phone", 1);
    let id = world.report(&chief_phone, &chief, T0);
    world.assign(&id, Assignee::Department(DEPARTMENT.into()), T0 + DAY);
    let handler_phone = phone();
    let handler = caller(handler(), "phone", 3);
    world.sync(&handler_phone, &handler, T0 + DAY);
    assert!(held_heads(&handler_phone, &id).is_some());

    // Reassigned to the department again while the phone is offline; the phone, still on the
    // old facts, drops the problem and syncs.
    world.assign(&id, Assignee::Department(DEPARTMENT.into()), T0 + 2 * DAY);
    let client = SyncClient::new(&handler_phone);
    assert_eq!(
        client.drop_docs(std::slice::from_ref(&id)).unwrap(),
        vec![id.clone()]
    );
    world.sync(&handler_phone, &handler, T0 + 3 * DAY);
    assert_eq!(
        held_heads(&handler_phone, &id),
        Some(world.server_heads(&id)),
        "the reassigned problem is on the phone after the sync that told the drop"
    );
    let ledger = world.hub.store().device_doc_ids(&handler.device).unwrap();
    assert!(
        ledger.contains(&id),
        "and the server knows it is held again"
    );
}

#[test]
fn unsent_work_is_never_dropped_whatever_the_phone_asks() {
    let world = World::new();
    let chief_phone = phone();
    let chief = caller(chief(), "phone", 1);
    let sent = world.report(&chief_phone, &chief, T0);
    // A second problem recorded offline: unsent.
    let mut issue = IssueDoc::report(
        chief.actor.clone(),
        &chief.user,
        &chief.device,
        T0,
        &new_issue(),
    )
    .unwrap();
    let unsent = issue.id().to_string();
    let client = SyncClient::new(&chief_phone);
    client.save(&mut issue, DocKind::Issue, &unsent).unwrap();
    let dropped = client
        .drop_docs(&[unsent.clone(), sent.clone(), "never-held".into()])
        .unwrap();
    assert_eq!(dropped, vec![sent.clone()]);
    assert!(held_heads(&chief_phone, &unsent).is_some());
    // The next sync sends the unsent problem and tells the drop in one request.
    world.sync(&chief_phone, &chief, T0 + DAY);
    assert!(world.hub.store().document(&unsent).unwrap().is_some());
    assert!(client.dirty().unwrap().is_empty());
}

#[test]
fn naming_documents_never_held_or_thousands_of_them_changes_nothing_else() {
    let world = World::new();
    let chief_phone = phone();
    let chief = caller(chief(), "phone", 1);
    let id = world.report(&chief_phone, &chief, T0);
    let handler_phone = phone();
    let handler = caller(handler(), "phone", 3);
    world.assign(&id, Assignee::Department(DEPARTMENT.into()), T0 + DAY);
    world.sync(&handler_phone, &handler, T0 + DAY);
    let before = world.hub.store().device_docs(&handler.device).unwrap();
    assert_eq!(before.len(), 1);

    // Ids the handler's phone never held (another device's, unknown, out of scope): ignored.
    let cursor = SyncClient::new(&handler_phone).cursor().unwrap();
    let never = SyncRequest {
        cursor,
        docs: Vec::new(),
        dropped: vec!["0192f0c4-2c8e-7b51-9d0e-3c1a5b7e8f21".into(), "x".into()],
    };
    let answer = world.hub.sync(&handler, &never, T0 + DAY).unwrap();
    assert!(answer.docs.is_empty() && answer.removed.is_empty());
    assert_eq!(
        world.hub.store().device_docs(&handler.device).unwrap(),
        before
    );
    // The chief's records are untouched by what the handler names.
    assert!(world
        .hub
        .store()
        .device_doc_ids(&chief.device)
        .unwrap()
        .contains(&id));

    // Too many: refused whole before anything is touched, with a clear code.
    let many = SyncRequest {
        cursor,
        docs: Vec::new(),
        dropped: (0..=MAX_DROPPED_DOCS)
            .map(|i| format!("doc-{i}"))
            .chain([id.clone()])
            .collect(),
    };
    let refused = world.hub.sync(&handler, &many, T0 + DAY).unwrap_err();
    assert!(
        matches!(
            refused,
            HubError::Protocol(ProtocolError::TooManyDropped { count, max })
                if count == MAX_DROPPED_DOCS + 2 && max == MAX_DROPPED_DOCS
        ),
        "{refused:?}"
    );
    assert_eq!(refused.code(), "too_many_documents");
    assert!(matches!(
        SyncRequest::decode(&many.encode()),
        Err(ProtocolError::TooManyDropped { .. })
    ));
    assert_eq!(
        world.hub.store().device_docs(&handler.device).unwrap(),
        before
    );
    // A bad id among them is a bad id.
    let bad = SyncRequest {
        cursor,
        docs: Vec::new(),
        dropped: vec![String::new()],
    };
    assert!(matches!(
        world.hub.sync(&handler, &bad, T0 + DAY),
        Err(HubError::Protocol(ProtocolError::BadDocumentId(_)))
    ));

    // A request that names nothing dropped is the same bytes as before the field existed, and
    // one that does decodes to itself.
    let plain = SyncRequest {
        cursor: 7,
        docs: Vec::new(),
        dropped: Vec::new(),
    };
    let dropping = SyncRequest {
        dropped: vec![id.clone()],
        ..plain.clone()
    };
    assert!(plain.encode().len() < dropping.encode().len());
    assert_eq!(SyncRequest::decode(&dropping.encode()).unwrap(), dropping);
    assert_eq!(SyncRequest::decode(&plain.encode()).unwrap(), plain);
}

/// The same floor holds on the other way in, `POST /docs/{id}/automerge-sync`: a drop forgets
/// the device's automerge sync states, and a fresh exchange says the device holds nothing, but
/// what the batch syncs sent the phone still bounds the event's time.
#[test]
fn a_backdated_event_sent_by_automerge_sync_after_a_drop_counts_from_what_was_seen() {
    use sync_core::doc::Record;

    let world = World::new();
    let chief_phone = phone();
    let chief = caller(chief(), "phone", 1);
    let problem = world.report(&chief_phone, &chief, T0);
    let reported_heads = world.server_heads(&problem);
    let assigned_at = T0 + DAY;
    world.assign(&problem, Assignee::User(chief.user.id.clone()), assigned_at);
    // The assignment arrives with a sync that pushes a new report (no sync of the phone's own
    // vouches for a time), and the drop goes up with another.
    crate::world::record(&chief_phone, &chief, assigned_at + 1);
    world.sync(&chief_phone, &chief, assigned_at + 1);
    let held = chief_phone.load_doc(&problem).unwrap().expect("assigned");
    let client = SyncClient::new(&chief_phone);
    assert_eq!(
        client
            .drop_docs(std::slice::from_ref(&problem))
            .unwrap()
            .len(),
        1
    );
    crate::world::record(&chief_phone, &chief, assigned_at + 2);
    world.sync(&chief_phone, &chief, assigned_at + 2);
    assert_eq!(
        world.hub.store().device_synced(&chief.device).unwrap(),
        None
    );

    // Built on the report alone and stamped long before the assignment reached the phone.
    let mut kept = IssueDoc::load(&held).unwrap();
    let at_ms = comment_through_automerge_sync(
        &world,
        &chief,
        &problem,
        kept.am_mut().fork_at(&reported_heads).unwrap(),
        T0 + 10,
        assigned_at + 3,
    );
    assert!(
        at_ms >= assigned_at,
        "counted at {at_ms} before the assignment the phone had seen ({assigned_at})"
    );
}

/// `who` sends a comment stamped `stamped` on `base` (a fork of `problem`) by a fresh
/// `POST /docs/{id}/automerge-sync` exchange at `at`; returns the time it counts from.
fn comment_through_automerge_sync(
    world: &World,
    who: &sync_core::hub::Caller,
    problem: &str,
    base: automerge::AutoCommit,
    stamped: i64,
    at: i64,
) -> i64 {
    use automerge::sync::{self, SyncDoc};
    use sync_core::doc::Record;

    let mut forged = IssueDoc::from_automerge(base)
        .unwrap()
        .with_actor(who.actor.clone());
    let text = "早已清理".to_string();
    forged
        .act(&who.user, &who.device, stamped, Action::Comment { text })
        .unwrap();
    let change = forged.am_mut().get_last_local_change().unwrap();
    let change = change.raw_bytes().to_vec();
    let mut message = forged
        .am_mut()
        .sync()
        .generate_sync_message(&mut sync::State::new())
        .expect("an opening message");
    message.changes = vec![change].into();
    world
        .hub
        .automerge_sync(who, problem, &message.encode(), at)
        .expect("merged");
    let stored = world.hub.store().document(problem).unwrap().unwrap();
    let receipts = IssueDoc::load(&stored.bytes).unwrap().receipts().unwrap();
    let last = receipts.last().expect("receipts");
    assert_eq!(last.received_ms, Some(at));
    last.at_ms
}

/// A document a phone only ever had through `POST /docs/{id}/automerge-sync` (the office opens
/// a problem now waiting for a department, which its phone does not receive) keeps what that
/// exchange shared as its floor when the phone names it dropped: the drop forgets the
/// exchange's state, which was the only record of what the phone had seen.
#[test]
fn a_document_fetched_on_demand_and_dropped_keeps_what_the_exchange_shared_as_its_floor() {
    use automerge::sync::{self, SyncDoc};
    use automerge::AutoCommit;
    use sync_core::hub::AutomergeSyncOutcome;

    let world = World::new();
    let chief_phone = phone();
    let chief = caller(chief(), "phone", 1);
    let problem = world.report(&chief_phone, &chief, T0);
    let waiting = world.report(&chief_phone, &chief, T0 + 1);
    let reported_heads = world.server_heads(&problem);
    let assigned_at = T0 + DAY;
    world.assign(
        &problem,
        Assignee::Department(DEPARTMENT.into()),
        assigned_at,
    );

    // The office's phone receives the problem waiting for it, not the one with the department.
    let office_phone = phone();
    let office = caller(crate::fixtures::supervisor(), "phone", 4);
    world.sync(&office_phone, &office, assigned_at + 1);
    assert!(held_heads(&office_phone, &waiting).is_some());
    assert!(held_heads(&office_phone, &problem).is_none());

    // It opens the other on demand: a standard exchange from nothing.
    let (mut fetched, mut state) = (AutoCommit::new(), sync::State::new());
    for round in 0..6 {
        let Some(message) = fetched.sync().generate_sync_message(&mut state) else {
            break;
        };
        let at = assigned_at + 2 + round;
        match world
            .hub
            .automerge_sync(&office, &problem, &message.encode(), at)
            .expect("answered")
        {
            AutomergeSyncOutcome::Reply(reply) => fetched
                .sync()
                .receive_sync_message(&mut state, sync::Message::decode(&reply).unwrap())
                .unwrap(),
            AutomergeSyncOutcome::NothingToSend => break,
        }
    }
    assert_eq!(fetched.get_heads(), world.server_heads(&problem));
    let store = world.hub.store();
    assert_eq!(store.device_doc(&office.device, &problem).unwrap(), None);

    // It names it dropped in a sync that pushes a comment on the problem it receives.
    comment(&office_phone, &office, &waiting, assigned_at + 10);
    let outgoing = SyncClient::new(&office_phone)
        .build_request(assigned_at + 10)
        .unwrap();
    let mut request = SyncRequest::decode(&outgoing.encode()).unwrap();
    assert_eq!(request.docs.len(), 1);
    request.dropped = vec![problem.clone()];
    world.hub.sync(&office, &request, assigned_at + 10).unwrap();
    let record = store.device_doc(&office.device, &problem).unwrap();
    let record = record.expect("what the exchange shared stays as the floor");
    assert!(!record.holds());

    // A comment built on the report alone, stamped before the assignment the office had seen,
    // through a fresh exchange.
    let base = fetched.fork_at(&reported_heads).unwrap();
    let at_ms =
        comment_through_automerge_sync(&world, &office, &problem, base, T0 + 10, assigned_at + 20);
    assert!(
        at_ms >= assigned_at,
        "counted at {at_ms} before the assignment the office had seen ({assigned_at})"
    );
}
