//! More than one round trip carries: a new phone's share of a district, a phone's backlog of
//! thousands of records. One sync takes it all, page by page, and a server that never stops
//! saying more waits cannot keep a phone syncing for ever.

use sync_core::client::{ClientError, SyncClient};
use sync_core::hub::DocumentStore;
use sync_core::limits::AnswerLimits;
use sync_core::protocol::{DocUpdate, Heads, SyncRequest, MAX_PUSHED_DOCS};

use crate::fixtures::{chief, T0};
use crate::world::{caller, held_heads, phone, record, World};

/// A phone's first sync, when its share is five answers' worth, brings all five in one sync:
/// before answers said more waits, it brought the first and the chief saw a fifth of it.
#[test]
fn a_share_larger_than_one_answer_comes_whole_in_one_sync() {
    let world = World::new();
    let on_patrol = phone();
    let b = caller(chief(), "patrol-phone", 2);
    let problems: Vec<String> = (0..5)
        .map(|i| world.report(&on_patrol, &b, T0 + i))
        .collect();

    world.hub.set_answer_limits(AnswerLimits {
        bytes: 1 << 30,
        docs: 1,
    });
    let new_phone = phone();
    let a = caller(chief(), "new-phone", 1);
    let report = world.sync(&new_phone, &a, T0 + 10);
    for id in &problems {
        assert_eq!(
            held_heads(&new_phone, id),
            Some(world.server_heads(id)),
            "{id} came in the first sync"
        );
    }
    assert_eq!(report.docs_received, problems.len());
    // One answer per problem: the last says nothing more waits.
    assert_eq!((report.round_trips, report.pages), (5, 4));
    assert!(!report.more_waiting);

    // With nothing new, the next sync is one round trip again.
    let report = world.sync(&new_phone, &a, T0 + 11);
    assert_eq!(
        (report.round_trips, report.pages, report.docs_received),
        (1, 0, 0)
    );
}

/// A share read from the store many documents at a time, over pages: every document comes
/// once, and one damaged document among them is left out without failing the answer or the
/// page it falls in.
#[test]
fn documents_read_together_come_page_by_page_and_a_damaged_one_stays_behind() {
    let world = World::new();
    let on_patrol = phone();
    let b = caller(chief(), "patrol-phone", 2);
    let problems: Vec<String> = (0..40).map(|i| record(&on_patrol, &b, T0 + i)).collect();
    world.sync(&on_patrol, &b, T0 + 100);
    let damaged = &problems[20];
    let store = world.hub.store();
    let meta = store.document(damaged).unwrap().expect("stored").meta;
    store
        .save_document(damaged, &meta, b"not an automerge save", &[])
        .unwrap();

    world.hub.set_answer_limits(AnswerLimits {
        bytes: 1 << 30,
        docs: 7,
    });
    let new_phone = phone();
    let a = caller(chief(), "new-phone", 1);
    let report = world.sync(&new_phone, &a, T0 + 200);
    for id in problems.iter().filter(|id| *id != damaged) {
        assert_eq!(
            held_heads(&new_phone, id),
            Some(world.server_heads(id)),
            "{id}"
        );
    }
    assert_eq!(held_heads(&new_phone, damaged), None);
    assert_eq!(report.docs_received, problems.len() - 1);
    // Seven a page: 39 documents in six pages and a seventh answer.
    assert_eq!((report.round_trips, report.pages), (6, 5));
    assert!(!report.more_waiting);
}

/// A phone back with more records than one request carries sends them all in one sync.
#[test]
fn a_backlog_larger_than_one_request_goes_up_in_one_sync() {
    let world = World::new();
    let store = phone();
    let a = caller(chief(), "phone", 1);
    let records: Vec<String> = (0..MAX_PUSHED_DOCS as i64 + 3)
        .map(|i| record(&store, &a, T0 + i))
        .collect();
    let report = world.sync(&store, &a, T0 + 10_000);
    assert_eq!(report.docs_sent, records.len());
    assert_eq!((report.round_trips, report.pages), (2, 1));
    assert!(SyncClient::new(&store).dirty().unwrap().is_empty());
    for id in [
        &records[0],
        &records[MAX_PUSHED_DOCS],
        records.last().unwrap(),
    ] {
        assert_eq!(held_heads(&store, id), Some(world.server_heads(id)));
    }
}

/// A server (or something posing as one) that says more waits in every answer: a page that
/// moves nothing on ends the sync, and pages that seem to (the same document again and again)
/// end it after their bound. Either way the report says more waits, and the chief's record is
/// sent and held.
#[test]
fn a_server_that_always_says_more_waits_cannot_keep_a_phone_syncing() {
    let world = World::new();
    for echo in [false, true] {
        let store = phone();
        let a = caller(chief(), "phone", 1);
        let reported = record(&store, &a, T0);
        let mut first: Option<DocUpdate> = None;
        let mut answers = 0u32;
        let report = SyncClient::new(&store)
            .sync_with(
                |body| -> Result<Vec<u8>, ClientError> {
                    answers += 1;
                    let request = SyncRequest::decode(&body)?;
                    let mut answer = world.hub.sync(&a, &request, T0).expect("answered");
                    answer.more = true;
                    match &first {
                        None => first = answer.docs.first().cloned(),
                        Some(update) if echo => answer.docs.push(DocUpdate {
                            heads: Heads::Listed(world.server_heads_raw(&update.doc_id)),
                            changes: Vec::new(),
                            ..update.clone()
                        }),
                        Some(_) => {}
                    }
                    Ok(answer.encode())
                },
                T0,
            )
            .unwrap();
        assert!(report.more_waiting);
        assert_eq!(report.round_trips, answers);
        // Without the echo: the record accepted, the server's receipt on it, then a page of
        // nothing. With it: the first answer and 64 pages.
        assert_eq!(answers, if echo { 65 } else { 3 }, "echo: {echo}");
        assert_eq!(
            held_heads(&store, &reported),
            Some(world.server_heads(&reported))
        );
        assert!(SyncClient::new(&store).dirty().unwrap().is_empty());

        // Work recorded since goes up at the next sync, from a server that tells the truth.
        let id = record(&store, &a, T0 + 1);
        let report = world.sync(&store, &a, T0 + 2);
        assert!(!report.more_waiting);
        assert_eq!(held_heads(&store, &id), Some(world.server_heads(&id)));
    }
}

/// The phone library's lock on its documents is held for each round trip and free between
/// them: a chief's edit waits for one page, not for a whole first sync.
#[test]
fn the_phones_documents_are_free_between_pages() {
    let world = World::new();
    let on_patrol = phone();
    let b = caller(chief(), "patrol-phone", 2);
    for i in 0..3 {
        world.report(&on_patrol, &b, T0 + i);
    }
    world.hub.set_answer_limits(AnswerLimits {
        bytes: 1 << 30,
        docs: 1,
    });
    let store = phone();
    let a = caller(chief(), "new-phone", 1);
    let documents = std::sync::Mutex::new(());
    let mut rounds = Pages {
        world: &world,
        caller: &a,
        documents: &documents,
        holds: 0,
        received: Vec::new(),
        times: Vec::new(),
        clock: T0 + 10,
    };
    let report = SyncClient::new(&store).sync_in_rounds(&mut rounds).unwrap();
    let (holds, received) = (rounds.holds, rounds.received);
    assert_eq!((report.round_trips, holds, report.docs_received), (3, 3, 3));
    // What came so far, as a progress display reads it before each round trip.
    assert_eq!(received, [0, 1, 2]);
    // Each round trip was made at the time the phone's clock read then: a request's time bounds
    // what the server accepts, and its answer dates what was refused.
    assert_eq!(rounds.times, [T0 + 11, T0 + 12, T0 + 13]);
}

/// The phone of the test above: a lock on its documents, its progress display, a clock that
/// moves on a millisecond at each reading, and the hub answering at the time of the request.
struct Pages<'a> {
    world: &'a World,
    caller: &'a sync_core::hub::Caller,
    documents: &'a std::sync::Mutex<()>,
    holds: u32,
    received: Vec<usize>,
    times: Vec<i64>,
    clock: i64,
}

impl<'a> sync_core::client::Rounds for Pages<'a> {
    type Error = ClientError;
    type Hold = std::sync::MutexGuard<'a, ()>;

    fn hold(&mut self, so_far: &sync_core::client::SyncReport) -> Self::Hold {
        self.holds += 1;
        self.received.push(so_far.docs_received);
        self.documents.try_lock().expect("free between round trips")
    }

    fn send(&mut self, body: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        assert!(
            self.documents.try_lock().is_err(),
            "held during a round trip"
        );
        let request = SyncRequest::decode(&body)?;
        let at = *self.times.last().expect("read before sending");
        Ok(self
            .world
            .hub
            .sync(self.caller, &request, at)
            .expect("answered")
            .encode())
    }

    fn now_ms(&mut self) -> i64 {
        self.clock += 1;
        self.times.push(self.clock);
        self.clock
    }
}
