//! The hub's limits on what a device may add to a stored document and on automerge sync
//! rounds, run against the fixture documents the fuzz targets use (real automerge, the real
//! hub, an in-memory store). Every refusal must leave the stored document exactly as it was.

#[allow(dead_code)]
#[path = "../../fuzz/src/harness.rs"]
mod harness;

use std::io::Write;

use automerge::sync::{self, BloomFilter, Have, SyncDoc};
use automerge::{transaction::Transactable, AutoCommit, ObjType, ReadDoc, ROOT};
use harness::{people, Fixture, T0};
use sync_core::doc::actor_for;
use sync_core::hub::limits::{
    LimitError, MAX_CHANGE_BYTES, MAX_CHANGE_OPS, MAX_DOCUMENT_BYTES, MAX_NESTING,
    MAX_STRING_BYTES, SYNC_MESSAGES_PER_MINUTE, SYNC_MESSAGE_BURST,
};
use sync_core::hub::testing::MemoryHubStore;
use sync_core::hub::{AutomergeSyncOutcome, Caller, DeviceLedger, DocumentStore, Hub, HubError};
use sync_core::protocol::{DocPush, SyncRequest};

fn chief() -> Caller {
    people().remove(0)
}

/// The owning chief's copy of the fixture patrol, with `edit` committed as one change each
/// time it is called with a new closure; returns the raw changes made.
fn edit(doc: &mut AutoCommit, edit: impl FnOnce(&mut AutoCommit)) -> Vec<Vec<u8>> {
    let before = doc.get_heads();
    edit(doc);
    doc.commit();
    doc.get_changes(&before)
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect()
}

fn patrol_copy() -> AutoCommit {
    Fixture::get().doc(true).with_actor(actor_for(1))
}

fn push(changes: Vec<Vec<u8>>) -> SyncRequest {
    SyncRequest {
        cursor: 0,
        docs: vec![DocPush {
            doc_id: Fixture::get().doc_id(true).to_string(),
            server_heads: Vec::new(),
            changes,
        }],
        dropped: Vec::new(),
    }
}

fn stored(hub: &Hub<MemoryHubStore>) -> Vec<u8> {
    let id = Fixture::get().doc_id(true);
    hub.store().document(id).unwrap().unwrap().bytes
}

/// Pushes through `/sync` and expects the limit named by `code`, with nothing stored.
fn refused_by_sync(changes: Vec<Vec<u8>>, code: &str) -> LimitError {
    let hub = Hub::new(Fixture::get().store());
    let before = stored(&hub);
    match hub.sync(&chief(), &push(changes), T0) {
        Err(HubError::Limit(limit)) => {
            assert_eq!(limit.code(), code, "{limit}");
            assert_eq!(stored(&hub), before, "a refused push changed the document");
            limit
        }
        other => panic!("expected the limit {code}, got {other:?}"),
    }
}

fn notes(doc: &AutoCommit) -> automerge::ObjId {
    doc.get(ROOT, "notes").unwrap().unwrap().1
}

#[test]
fn an_ordinary_edit_passes_every_limit() {
    let mut doc = patrol_copy();
    let changes = edit(&mut doc, |d| {
        let notes = notes(d);
        d.splice_text(&notes, 0, 0, &"堤岸完好，无垃圾。".repeat(200))
            .unwrap();
    });
    let hub = Hub::new(Fixture::get().store());
    let response = hub.sync(&chief(), &push(changes), T0).unwrap();
    assert!(response.docs[0].refused.is_empty(), "{:?}", response.docs);
}

#[test]
fn giant_strings_many_ops_and_huge_changes_are_refused_before_merging() {
    let mut doc = patrol_copy();
    let long = "河".repeat(MAX_STRING_BYTES / 3 + 1);
    let limit = refused_by_sync(
        edit(&mut doc, |d| d.put(ROOT, "notes_extra", long).unwrap()),
        "string_too_long",
    );
    assert!(!limit.is_too_large());

    let mut doc = patrol_copy();
    let long_key = "k".repeat(MAX_STRING_BYTES + 1);
    refused_by_sync(
        edit(&mut doc, |d| d.put(ROOT, long_key, 1).unwrap()),
        "string_too_long",
    );

    let mut doc = patrol_copy();
    let changes = edit(&mut doc, |d| {
        let notes = notes(d);
        d.splice_text(&notes, 0, 0, &"a".repeat(MAX_CHANGE_OPS + 1))
            .unwrap();
    });
    assert!(
        changes[0].len() < MAX_CHANGE_BYTES,
        "ops, not bytes, must trip"
    );
    refused_by_sync(changes, "too_many_ops");

    // Random bytes so that the change is large however it is encoded.
    let noise: Vec<u8> = (0..MAX_CHANGE_BYTES as u32 + 1024)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut doc = patrol_copy();
    let limit = refused_by_sync(
        edit(&mut doc, |d| d.put(ROOT, "blob", noise).unwrap()),
        "change_too_large",
    );
    assert!(limit.is_too_large());
}

/// `depth` maps nested in one another under `parent` (the root or the patrol's `checks`), as
/// one change or one change per level sent newest first, so no ordering can hide the chain.
fn nested(depth: usize, per_level: bool, under_checks: bool) -> Vec<Vec<u8>> {
    let mut doc = patrol_copy();
    let fixture_heads = doc.get_heads();
    let mut at = if under_checks {
        doc.get(ROOT, "checks").unwrap().unwrap().1
    } else {
        ROOT
    };
    for level in 0..depth {
        at = doc
            .put_object(&at, format!("level{level}"), ObjType::Map)
            .unwrap();
        if per_level {
            doc.commit();
        }
    }
    doc.commit();
    let mut changes: Vec<Vec<u8>> = doc
        .get_changes(&fixture_heads)
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    assert_eq!(changes.len(), if per_level { depth } else { 1 });
    changes.reverse();
    changes
}

#[test]
fn deep_nesting_is_refused_in_one_change_and_across_changes() {
    let limit = refused_by_sync(nested(MAX_NESTING + 1, false, false), "too_deep");
    assert!(matches!(limit, LimitError::TooDeep { .. }), "{limit}");
    refused_by_sync(nested(MAX_NESTING + 1, true, false), "too_deep");
    refused_by_sync(nested(MAX_NESTING + 1, true, true), "too_deep");
}

#[test]
fn nesting_within_the_limit_is_still_refused_by_the_schema() {
    // The limit bounds what a change may build; the schema bounds what a document may hold, so
    // the containers that exist before a change are never deep themselves.
    let hub = Hub::new(Fixture::get().store());
    let before = stored(&hub);
    let response = hub
        .sync(&chief(), &push(nested(MAX_NESTING - 1, false, true)), T0)
        .unwrap();
    assert!(!response.docs[0].refused.is_empty(), "{:?}", response.docs);
    assert_eq!(stored(&hub), before);
}

/// An automerge chunk header around `data` (the checksum is not checked before the limits).
fn chunk(kind: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x85, 0x6f, 0x4a, 0x83, 0, 0, 0, 0, kind];
    let mut len = data.len() as u64;
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(data);
    out
}

fn deflate_zeros(n: usize) -> Vec<u8> {
    let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    let block = vec![0u8; 1 << 20];
    let mut left = n;
    while left > 0 {
        let take = left.min(block.len());
        encoder.write_all(&block[..take]).unwrap();
        left -= take;
    }
    encoder.finish().unwrap()
}

#[test]
fn compressed_bombs_are_refused_without_inflating_them() {
    // 64 MiB of zeros in 64 KiB: automerge would inflate it in full before looking inside.
    let bomb = chunk(2, &deflate_zeros(64 << 20));
    assert!(bomb.len() < 128 * 1024);
    refused_by_sync(vec![bomb.clone()], "change_too_large");

    // A whole document where a change belongs is malformed for /sync.
    let hub = Hub::new(Fixture::get().store());
    let document = Fixture::get().doc(true).save();
    assert!(matches!(
        hub.sync(&chief(), &push(vec![document]), T0),
        Err(HubError::MalformedChange(_))
    ));

    // In an automerge sync message: the same change bomb, and a document whose one column
    // inflates past the limit.
    let mut column = vec![0u8, 0]; // no actors, no heads
    column.push(1); // one change column
    column.push(0b1000); // spec: id 0, deflated
    let data = deflate_zeros(65 << 20);
    column.extend(leb(data.len() as u64));
    column.push(0); // no op columns
    column.extend(&data);
    let document_bomb = chunk(0, &column);
    for (bomb, code) in [
        (bomb, "change_too_large"),
        (document_bomb, "document_too_large"),
    ] {
        let message = sync::Message {
            heads: Vec::new(),
            need: Vec::new(),
            have: Vec::new(),
            changes: vec![bomb].into(),
            flags: None,
            version: sync::MessageVersion::V1,
        };
        let hub = Hub::new(Fixture::get().store());
        let before = stored(&hub);
        let id = Fixture::get().doc_id(true);
        match hub.automerge_sync(&chief(), id, &message.clone().encode(), T0) {
            Err(HubError::Limit(limit)) => assert_eq!(limit.code(), code),
            other => panic!("expected {code}, got {other:?}"),
        }
        assert_eq!(stored(&hub), before);
    }
}

fn leb(mut n: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return out;
        }
        out.push(byte | 0x80);
    }
}

#[test]
fn a_document_at_its_size_limit_takes_no_more() {
    let fixture = Fixture::get();
    let id = fixture.doc_id(true);
    let store = fixture.store();
    let mut stored_doc = store.document(id).unwrap().unwrap();
    // Only the stored size is read before the refusal, so padding stands in for a full document.
    stored_doc.bytes.resize(MAX_DOCUMENT_BYTES, 0);
    store
        .save_document(id, &stored_doc.meta, &stored_doc.bytes, &[])
        .unwrap();
    let hub = Hub::new(store);
    let mut doc = patrol_copy();
    let changes = edit(&mut doc, |d| {
        let notes = notes(d);
        d.splice_text(&notes, 0, 0, "再巡一次").unwrap();
    });
    match hub.sync(&chief(), &push(changes), T0) {
        Err(HubError::Limit(limit @ LimitError::DocumentTooLarge { .. })) => {
            assert!(limit.is_too_large())
        }
        other => panic!("expected document_too_large, got {other:?}"),
    }
}

fn message_from(doc: &mut AutoCommit, state: &mut sync::State) -> Vec<u8> {
    doc.sync()
        .generate_sync_message(state)
        .map(|m| m.encode())
        .unwrap_or_default()
}

/// A peer that keeps sending its opening message never gets past the per-minute bound; it is
/// served again once the minute has passed.
#[test]
fn a_client_looping_forever_is_stopped_and_let_back_after_a_while() {
    let fixture = Fixture::get();
    let id = fixture.doc_id(true);
    let hub = Hub::new(fixture.store());
    let mut phone = fixture.doc(true);
    let opening = message_from(&mut phone, &mut sync::State::new());
    let mut served = 0;
    let retry = loop {
        match hub.automerge_sync(&chief(), id, &opening, T0 + served) {
            Ok(_) => served += 1,
            Err(HubError::RateLimited { retry_after_secs }) => break retry_after_secs,
            Err(other) => panic!("{other:?}"),
        }
        assert!(served <= 10_000, "never stopped");
    };
    assert_eq!(served, i64::from(SYNC_MESSAGE_BURST));
    assert!((1..=60).contains(&retry), "{retry}");
    // Another device, and another document, are not held back by this one.
    let mut other = chief();
    other.device = "phone-other".into();
    assert!(!matches!(
        hub.automerge_sync(&other, id, &opening, T0 + served),
        Err(HubError::RateLimited { .. })
    ));
    let later = T0 + served + i64::try_from(retry).unwrap() * 1000;
    hub.automerge_sync(&chief(), id, &opening, later).unwrap();
}

/// A phone that edits and syncs once a second for ten minutes, each time running the
/// protocol to its end, is never refused.
#[test]
fn a_normal_client_is_never_stopped() {
    let fixture = Fixture::get();
    let id = fixture.doc_id(true);
    let hub = Hub::new(fixture.store());
    let mut phone = fixture.doc(true).with_actor(actor_for(1));
    let mut state = sync::State::new();
    let mut now = T0;
    let mut messages = 0;
    for second in 0..600 {
        if second % 60 == 0 {
            let notes = notes(&phone);
            phone.splice_text(&notes, 0, 0, "巡").unwrap();
            phone.commit();
        }
        let message = message_from(&mut phone, &mut state);
        if !message.is_empty() {
            match hub.automerge_sync(&chief(), id, &message, now).unwrap() {
                AutomergeSyncOutcome::Reply(reply) => phone
                    .sync()
                    .receive_sync_message(&mut state, sync::Message::decode(&reply).unwrap())
                    .unwrap(),
                AutomergeSyncOutcome::NothingToSend => {}
            }
            messages += 1;
        }
        now += 1000;
    }
    // Ten edits, each a short exchange; well under the sustained rate.
    assert!(messages >= 10, "{messages} messages");
    assert!(messages < 600 * i64::from(SYNC_MESSAGES_PER_MINUTE) / 60);
    let mut server = AutoCommit::load(&stored(&hub)).unwrap();
    assert_eq!(server.get_heads(), phone.get_heads());
}

#[test]
fn a_need_list_cannot_make_the_answer_grow_without_bound() {
    let fixture = Fixture::get();
    let id = fixture.doc_id(true);
    let mut server_doc = fixture.doc(true);
    let change = server_doc.get_changes(&[]).last().unwrap().clone();
    let size = change.raw_bytes().len();
    // A V1 message (no flags) asking for one change ten thousand times: automerge answers every
    // entry with the change's bytes.
    let message = sync::Message {
        heads: server_doc.get_heads(),
        need: vec![change.hash(); 10_000],
        have: Vec::new(),
        changes: Vec::<Vec<u8>>::new().into(),
        flags: None,
        version: sync::MessageVersion::V1,
    };
    let hub = Hub::new(fixture.store());
    let reply = match hub
        .automerge_sync(&chief(), id, &message.clone().encode(), T0)
        .unwrap()
    {
        AutomergeSyncOutcome::Reply(reply) => reply,
        AutomergeSyncOutcome::NothingToSend => panic!("the needed change must be sent"),
    };
    assert!(
        reply.len() < 2 * size + 1024,
        "{} bytes for a change of {size}",
        reply.len()
    );

    let distinct = sync::Message {
        need: (0..2_000u32)
            .map(|i| {
                let mut hash = [0u8; 32];
                hash[..4].copy_from_slice(&i.to_be_bytes());
                automerge::ChangeHash(hash)
            })
            .collect(),
        ..message
    };
    match hub.automerge_sync(&chief(), id, &distinct.encode(), T0 + 1) {
        Err(HubError::Limit(limit)) => assert_eq!(limit.code(), "sync_message_too_big"),
        other => panic!("expected sync_message_too_big, got {other:?}"),
    }
}

#[test]
fn bloom_filters_that_would_cost_more_than_they_say_are_refused() {
    let fixture = Fixture::get();
    let id = fixture.doc_id(true);
    let hub = Hub::new(fixture.store());
    let bloom = |probes: u64| {
        let mut bytes = leb(4);
        bytes.extend(leb(10));
        bytes.extend(leb(probes));
        bytes.extend([0xff; 5]);
        BloomFilter::try_from(&bytes[..]).unwrap()
    };
    let message = |probes, haves: usize| {
        sync::Message {
            heads: Vec::new(),
            need: Vec::new(),
            have: (0..haves)
                .map(|_| Have {
                    last_sync: Vec::new(),
                    bloom: bloom(probes),
                })
                .collect(),
            changes: Vec::<Vec<u8>>::new().into(),
            flags: None,
            version: sync::MessageVersion::V1,
        }
        .encode()
    };
    hub.automerge_sync(&chief(), id, &message(7, 1), T0)
        .unwrap();
    for (probes, haves) in [(4_000_000_000u64, 1), (7, 1_000)] {
        match hub.automerge_sync(&chief(), id, &message(probes, haves), T0 + 1) {
            Err(HubError::Limit(limit)) => assert_eq!(limit.code(), "sync_message_too_big"),
            other => panic!("expected sync_message_too_big, got {other:?}"),
        }
    }
}

/// automerge-sync keeps a state per (device, document) only for documents in scope, at most
/// `MAX_SYNC_STATES_PER_DEVICE` per device with the least recently used forgotten first, and
/// forgets one unused for `SYNC_STATE_TTL_MS`.
#[test]
fn sync_states_are_bounded_per_device_and_expire() {
    use sync_core::hub::{MAX_SYNC_STATES_PER_DEVICE, SYNC_STATE_TTL_MS};

    let fixture = Fixture::get();
    let (patrol, issue) = (fixture.doc_id(true), fixture.doc_id(false));
    let hub = Hub::new(fixture.store());
    let store = hub.store();
    let device = chief().device;
    let opening = message_from(&mut AutoCommit::new(), &mut sync::State::new());
    let ids = |store: &MemoryHubStore| -> Vec<String> {
        let mut ids: Vec<String> = store
            .sync_states(&device)
            .unwrap()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        ids.sort();
        ids
    };

    hub.automerge_sync(&chief(), patrol, &opening, T0).unwrap();
    assert_eq!(ids(store), vec![patrol.to_string()]);
    // A made-up document keeps nothing.
    hub.automerge_sync(&chief(), "no-such-document", &opening, T0)
        .unwrap();
    assert_eq!(ids(store), vec![patrol.to_string()]);
    // Past its lifetime the patrol's state is forgotten when the next one is stored.
    hub.automerge_sync(&chief(), issue, &opening, T0 + SYNC_STATE_TTL_MS)
        .unwrap();
    assert_eq!(ids(store), vec![issue.to_string()]);

    // A device holding the most states: storing one more forgets the least recently used.
    // States are stored as the hub stamps them: the time of last use, then automerge's bytes.
    let now = T0 + SYNC_STATE_TTL_MS + 1_000;
    store
        .forget_sync_states(&device, &[issue.to_string()])
        .unwrap();
    for i in 0..MAX_SYNC_STATES_PER_DEVICE {
        let mut stamped = (now - 1_000 + i as i64).to_le_bytes().to_vec();
        stamped.extend(sync::State::new().encode());
        store
            .put_sync_state(&device, &format!("doc-{i:04}"), &stamped)
            .unwrap();
    }
    hub.automerge_sync(&chief(), patrol, &opening, now).unwrap();
    let kept = ids(store);
    assert_eq!(kept.len(), MAX_SYNC_STATES_PER_DEVICE);
    assert!(kept.contains(&patrol.to_string()));
    assert!(!kept.contains(&"doc-0000".to_string()), "the oldest stays");
}
