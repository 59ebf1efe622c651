//! A phone whose own work takes a document out of what it receives (an office assigns a
//! problem from its phone, a department submits a rectification): the answer to that push
//! removes the document from the phone instead of sending it the server's receipts of the work
//! to hold until the next sync removes it. The work is on the server, the phone keeps nothing it
//! no longer receives, the server's heads after the push are the floor of its receipts, an
//! event that did not count comes back for the phone to show, and work saved while the push
//! was on its way is never lost.

use sync_core::client::{ClientError, SyncClient, Transport};
use sync_core::doc::IssueDoc;
use sync_core::hub::{Caller, DeviceLedger, DocumentStore};
use sync_core::protocol::SyncRequest;
use sync_core::store::LocalStore;
use sync_core::workflow::{Action, Assignee, Event, Receipt};

use crate::fixtures::{chief, handler, supervisor, T0};
use crate::world::{caller, edit_held, held_heads, phone, Direct, World, DAY, DEPARTMENT};

/// `who` acts on the problem on their phone (not yet sent).
fn act(store: &LocalStore, who: &Caller, id: &str, at: i64, action: Action) {
    edit_held(store, who, id, |issue| {
        issue.act(&who.user, &who.device, at, action).unwrap();
    });
}

fn assign(at: i64) -> Action {
    Action::Assigned {
        assignee: Assignee::Department(DEPARTMENT.into()),
        deadline_ms: at + 7 * DAY,
    }
}

fn server_issue(world: &World, id: &str) -> IssueDoc {
    let stored = world.hub.store().document(id).unwrap().expect("stored");
    IssueDoc::load(&stored.bytes).unwrap()
}

/// The server's receipt of the problem's assignment, as `issue` holds it.
fn assignment_receipt(issue: &IssueDoc) -> Receipt {
    let assigned = issue
        .events()
        .unwrap()
        .into_iter()
        .find(|e| matches!(e.action, Action::Assigned { .. }))
        .expect("the assignment");
    let receipts = issue.receipts().unwrap();
    receipts
        .into_iter()
        .find(|r| r.event == assigned.id)
        .expect("its receipt")
}

fn server_events(world: &World, id: &str) -> Vec<Event> {
    server_issue(world, id).events().unwrap()
}

/// A chief's problem on the office's phone, as the office receives it.
fn reported_to_the_office(world: &World) -> (LocalStore, Caller, String) {
    let chief_phone = phone();
    let id = world.report(&chief_phone, &caller(chief(), "phone", 1), T0);
    let office_phone = phone();
    let office = caller(supervisor(), "phone", 2);
    let report = world.sync(&office_phone, &office, T0 + 1);
    assert_eq!(report.docs_received, 1, "the problem waits for the office");
    (office_phone, office, id)
}

#[test]
fn the_answer_to_an_office_assigning_from_its_phone_removes_the_problem() {
    let world = World::new();
    let (office_phone, office, id) = reported_to_the_office(&world);
    act(&office_phone, &office, &id, T0 + DAY, assign(T0 + DAY));
    let pushed = held_heads(&office_phone, &id).expect("held");

    let report = world.sync(&office_phone, &office, T0 + DAY);
    assert_eq!(report.docs_sent, 1);
    assert_eq!(report.refused, 0);
    assert_eq!(
        report.docs_received, 0,
        "no receipts sent to a phone that drops them"
    );
    assert_eq!(report.removed, 1);
    assert!(held_heads(&office_phone, &id).is_none(), "removed");
    assert!(SyncClient::new(&office_phone).dirty().unwrap().is_empty());

    // The assignment is on the server with its receipt, and reaches the department.
    let receipt = assignment_receipt(&server_issue(&world, &id));
    assert_eq!(receipt.received_ms, Some(T0 + DAY));
    let server = world.server_heads(&id);
    assert_ne!(server, pushed, "the server added its receipt");
    let handler_phone = phone();
    let report = world.sync(&handler_phone, &caller(handler(), "phone", 3), T0 + DAY);
    assert_eq!(report.docs_received, 1);
    assert_eq!(held_heads(&handler_phone, &id), Some(server.clone()));

    // The server's heads, its receipt of the assignment among them, are the floor of the
    // office's receipts, as if they had been sent: what the office sends on top of its
    // assignment counts no earlier than the assignment's arrival.
    let record = world.hub.store().device_doc(&office.device, &id).unwrap();
    let record = record.expect("a record of what the office held");
    assert!(!record.holds(), "{record:?}");
    for head in &server {
        assert!(record.pending.contains(&head.0), "{record:?}");
    }

    // The next sync brings nothing back and removes nothing more.
    let report = world.sync(&office_phone, &office, T0 + DAY + 1);
    assert_eq!((report.docs_received, report.removed), (0, 0));
    assert!(held_heads(&office_phone, &id).is_none());
}

/// Loses every answer: the server answers, the phone never hears it.
struct Lost<'a>(Direct<'a>);

impl Transport for Lost<'_> {
    fn sync(&mut self, body: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        self.0.sync(body)?;
        Err(ClientError::Transport("the answer was lost".into()))
    }
}

#[test]
fn a_lost_answer_to_the_push_removes_the_problem_when_the_push_comes_again() {
    let world = World::new();
    let (office_phone, office, id) = reported_to_the_office(&world);
    act(&office_phone, &office, &id, T0 + DAY, assign(T0 + DAY));
    let mut lost = Lost(Direct {
        hub: &world.hub,
        caller: &office,
        now: T0 + DAY,
    });
    assert!(SyncClient::new(&office_phone)
        .sync(&mut lost, T0 + DAY)
        .is_err());
    assert!(held_heads(&office_phone, &id).is_some(), "nothing applied");

    // The phone sends its assignment again; the server holds it already and removes the
    // problem from the phone all the same. (Sent the receipts instead, the phone would keep a
    // copy no later sync removes: the problem was saved before the cursor it presents next.)
    let report = world.sync(&office_phone, &office, T0 + DAY + 1);
    assert_eq!(report.refused, 0);
    assert_eq!((report.docs_received, report.removed), (0, 1));
    assert!(held_heads(&office_phone, &id).is_none());
    let assigned = server_events(&world, &id)
        .into_iter()
        .filter(|e| matches!(e.action, Action::Assigned { .. }))
        .count();
    assert_eq!(assigned, 1);
}

/// Saves a comment on the phone while the request is on its way, then delivers it.
struct EditedMeanwhile<'a> {
    direct: Direct<'a>,
    store: &'a LocalStore,
    id: &'a str,
}

impl Transport for EditedMeanwhile<'_> {
    fn sync(&mut self, body: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let request = SyncRequest::decode(&body)?;
        if request.docs.iter().any(|push| push.doc_id == self.id) {
            let text = "派单后补充：垃圾在桥下".to_string();
            let (who, at) = (self.direct.caller, self.direct.now);
            act(self.store, who, self.id, at, Action::Comment { text });
        }
        self.direct.sync(body)
    }
}

#[test]
fn work_saved_while_the_push_was_on_its_way_stays_until_it_is_sent() {
    let world = World::new();
    let (office_phone, office, id) = reported_to_the_office(&world);
    act(&office_phone, &office, &id, T0 + DAY, assign(T0 + DAY));
    let mut meanwhile = EditedMeanwhile {
        direct: Direct {
            hub: &world.hub,
            caller: &office,
            now: T0 + DAY,
        },
        store: &office_phone,
        id: &id,
    };
    let report = SyncClient::new(&office_phone)
        .sync(&mut meanwhile, T0 + DAY)
        .unwrap();
    assert_eq!(report.removed, 0, "the comment is not sent yet");
    assert!(held_heads(&office_phone, &id).is_some());
    let dirty = SyncClient::new(&office_phone).dirty().unwrap();
    assert_eq!(
        dirty.into_iter().collect::<Vec<_>>(),
        std::slice::from_ref(&id)
    );

    let report = world.sync(&office_phone, &office, T0 + DAY + 1);
    assert_eq!(report.refused, 0);
    assert_eq!((report.docs_received, report.removed), (0, 1));
    assert!(held_heads(&office_phone, &id).is_none());
    assert!(SyncClient::new(&office_phone).dirty().unwrap().is_empty());
    let events = server_events(&world, &id);
    assert!(
        events
            .iter()
            .any(|e| matches!(&e.action, Action::Comment { text } if text.contains("桥下"))),
        "{events:?}"
    );
}

#[test]
fn an_assignment_that_did_not_count_comes_back_to_the_phone() {
    let world = World::new();
    let (office_phone, office, id) = reported_to_the_office(&world);
    // On the web desk the problem is found invalid while the office's phone, offline,
    // assigns it.
    let invalid = Action::Invalidated {
        reason: "重复上报".into(),
    };
    world
        .hub
        .act(
            &supervisor(),
            sync_core::hub::WEB_DEVICE,
            &id,
            invalid,
            T0 + DAY,
        )
        .expect("the desk invalidates");
    act(&office_phone, &office, &id, T0 + DAY, assign(T0 + DAY));

    let report = world.sync(&office_phone, &office, T0 + DAY + 1);
    assert_eq!(report.refused, 0, "accepted as the evidence it is");
    assert_eq!(
        report.removed, 0,
        "kept for the phone to show it did not count"
    );
    assert_eq!(report.docs_received, 1);
    assert_eq!(
        held_heads(&office_phone, &id),
        Some(world.server_heads(&id))
    );
    let bytes = office_phone.load_doc(&id).unwrap().expect("held");
    let receipt = assignment_receipt(&IssueDoc::load(&bytes).unwrap());
    assert!(receipt.superseded.is_some(), "{receipt:?}");

    // The next sync removes it: an invalid problem waits for no one.
    let report = world.sync(&office_phone, &office, T0 + DAY + 2);
    assert_eq!((report.docs_received, report.removed), (0, 1));
}
