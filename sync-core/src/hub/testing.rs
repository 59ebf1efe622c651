//! What every [`HubStore`] backend must do, written once (cargo feature `testing`), and a
//! store in memory that does it.
//!
//! A backend proves itself with a [`Harness`] and one line in its test module:
//!
//! ```ignore
//! struct SledHarness { dir: tempfile::TempDir }
//! impl sync_core::hub::testing::Harness for SledHarness {
//!     type Store = Arc<SledStore>;
//!     fn open(&self) -> Self::Store { Arc::new(SledStore::open(self.dir.path()).unwrap()) }
//!     fn seed(&self, store: &Self::Store, reference: &Reference) { /* the admin's writes */ }
//! }
//! sync_core::hub_store_conformance!(SledHarness::new());
//! ```
//!
//! which expands to one `#[test]` per case below. [`MemoryHubStore`] runs the same suite in
//! sync-core's own tests, and serves the fuzz targets and tests that need a hub without a disk.
//!
//! ```
//! use sync_core::hub::testing::{MemoryHubStore, Reference};
//! use sync_core::hub::{Hub, DocumentStore};
//!
//! let store = MemoryHubStore::with_reference(Reference::default());
//! let hub = Hub::new(store);
//! assert_eq!(hub.store().feed_head().unwrap(), 0);
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    AuditEntry, AuditLog, DeviceClaim, DeviceClaims, DeviceDoc, DeviceLedger, DocRead,
    DocumentStore, Footprint, HubError, HubStore, ReferenceSource, StoredDoc, StoredVersion,
};
use crate::authz::DocMeta;
use crate::doc::DocKind;
use crate::model::{
    default_categories, Asset, Category, DivisionCode, Geometry, Jurisdiction, Level, Role, System,
    User,
};
use crate::workflow::Assignee;

/// Reference data as the server's administration would have written it.
#[derive(Debug, Clone, Default)]
pub struct Reference {
    /// Rivers, forest stands and field blocks that records may name.
    pub assets: Vec<Asset>,
    /// The problem categories a chief may report.
    pub categories: Vec<Category>,
    /// Chiefs, supervisors, handlers and administrators.
    pub users: Vec<User>,
}

/// Opens one backend's store for the suite.
pub trait Harness {
    /// The backend's store under test.
    type Store: HubStore;
    /// Opens the store. Called again after every handle of the first is dropped, it must open
    /// the same data: that is how "reopened after a close" is tested.
    fn open(&self) -> Self::Store;
    /// Writes reference data through the backend's own administration path.
    fn seed(&self, store: &Self::Store, reference: &Reference);
}

/// Expands to one `#[test]` per conformance case, each with a fresh harness from `$harness`.
#[macro_export]
macro_rules! hub_store_conformance {
    ($harness:expr) => {
        $crate::hub_store_conformance!(@cases $harness;
            saves_are_numbered_in_order,
            a_mark_takes_a_position_of_its_own,
            the_feed_lists_documents_in_save_order,
            routing_facts_are_read_as_last_saved,
            documents_read_together_are_read_as_one_by_one,
            a_merge_is_saved_only_over_the_version_it_was_made_from,
            pages_come_in_id_order,
            delivered_pages_are_the_pages_of_what_phones_receive,
            audit_keeps_the_first_entry_of_each_change,
            concurrent_saves_get_distinct_positions,
            the_device_ledger_keeps_devices_apart,
            sync_states_are_kept_per_device,
            the_last_acknowledged_sync_is_kept_per_device,
            a_device_is_claimed_by_one_answer_at_a_time,
            reference_lookups_read_what_was_written,
            reopen_keeps_documents_feed_and_ledger,
        );
    };
    (@cases $harness:expr; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::hub::testing::$case(&$harness);
            }
        )+
    };
}

// ---------------------------------------------------------------------------------------------
// The cases

fn code(s: &str) -> DivisionCode {
    DivisionCode::new(s).expect("valid code")
}

/// Routing facts of a river document in one village.
pub fn doc_meta(id: &str, kind: DocKind) -> DocMeta {
    DocMeta {
        id: id.to_owned(),
        kind,
        system: System::River,
        asset: "river-1".into(),
        division: code("370105001000"),
        owner: "u1".into(),
        assignee: None,
        status: None,
        closed_at_ms: None,
        escalated: false,
    }
}

fn audit(doc: &str, change: &str, at: i64) -> AuditEntry {
    AuditEntry {
        doc_id: doc.into(),
        change: change.into(),
        user: "u1".into(),
        device: "u1/phone".into(),
        actor: "ab".repeat(16),
        received_at_ms: at,
        previous_sync_ms: None,
    }
}

fn ids(metas: Vec<DocMeta>) -> Vec<String> {
    metas.into_iter().map(|m| m.id).collect()
}

fn every(_: &DocMeta) -> bool {
    true
}

fn save(store: &impl HubStore, id: &str, bytes: &[u8]) -> u64 {
    let kind = if id.starts_with('i') {
        DocKind::Issue
    } else {
        DocKind::Patrol
    };
    store
        .save_document(id, &doc_meta(id, kind), bytes, &[])
        .expect("save")
}

/// Every save gets the next feed position, a second save of a document too; the store gives
/// back what was saved.
pub fn saves_are_numbered_in_order(h: &impl Harness) {
    let store = h.open();
    assert_eq!(store.feed_head().unwrap(), 0);
    assert!(store.document("p1").unwrap().is_none());
    assert_eq!(store.document_seq("p1").unwrap(), None);
    assert_eq!(save(&store, "p1", b"one"), 1);
    assert_eq!(save(&store, "i1", b"two"), 2);
    assert_eq!(save(&store, "p1", b"one, merged"), 3);
    assert_eq!(store.feed_head().unwrap(), 3);
    let doc = store.document("p1").unwrap().expect("saved");
    assert_eq!(
        (doc.meta, doc.bytes),
        (doc_meta("p1", DocKind::Patrol), b"one, merged".to_vec())
    );
    // A store that numbers its saves names the stored version by its feed position.
    if let Some(seq) = store.document_seq("p1").unwrap() {
        assert_eq!(seq, 3);
        assert_eq!(store.document_seq("i1").unwrap(), Some(2));
    }
    store.durable().unwrap();
}

/// A mark moves the feed on by one position that holds no document: the head passes it,
/// walks of the feed find nothing there, and the next save comes after it.
pub fn a_mark_takes_a_position_of_its_own(h: &impl Harness) {
    let store = h.open();
    assert_eq!(save(&store, "p1", b"one"), 1);
    let Some(mark) = store.mark_feed().unwrap() else {
        // A store that does not number its saves has no positions to take.
        assert_eq!(store.document_seq("p1").unwrap(), None);
        return;
    };
    assert_eq!(mark, 2);
    assert_eq!(store.feed_head().unwrap(), 2);
    assert_eq!(ids(store.changed_since(0, 2, &every).unwrap()), ["p1"]);
    assert!(store.changed_since(1, 2, &every).unwrap().is_empty());
    assert_eq!(
        store.mark_feed().unwrap(),
        Some(3),
        "each mark a position of its own"
    );
    assert_eq!(save(&store, "i1", b"two"), 4);
    assert_eq!(ids(store.changed_since(1, 4, &every).unwrap()), ["i1"]);
    assert_eq!(store.document_seq("p1").unwrap(), Some(1));
    store.durable().unwrap();
}

/// `changed_since` lists documents in the order of their latest saves, not of their ids: a
/// sync that stops at its answer budget resumes from the position of the last document sent.
pub fn the_feed_lists_documents_in_save_order(h: &impl Harness) {
    let store = h.open();
    save(&store, "p-b", b"1");
    save(&store, "p-a", b"2");
    save(&store, "p-c", b"3");
    save(&store, "p-b", b"4");
    assert_eq!(
        ids(store.changed_since(0, 4, &every).unwrap()),
        vec!["p-a", "p-c", "p-b"],
        "feed order is save order"
    );
    assert_eq!(
        ids(store.changed_since(1, 3, &every).unwrap()),
        vec!["p-a", "p-c"]
    );
    assert_eq!(ids(store.changed_since(3, 4, &every).unwrap()), vec!["p-b"]);
    assert!(store.changed_since(4, 4, &every).unwrap().is_empty());
    // The earlier position of a saved-again document is gone from the feed.
    assert!(store.changed_since(0, 1, &every).unwrap().is_empty());
    let not_c = |m: &DocMeta| m.id != "p-c";
    assert_eq!(
        ids(store.changed_since(0, 4, &not_c).unwrap()),
        vec!["p-a", "p-b"]
    );
    assert_eq!(
        ids(store.all_documents().unwrap()),
        vec!["p-a", "p-b", "p-c"],
        "all documents come in id order"
    );
}

/// Routing facts that change with a save are read as saved, by every way of listing them,
/// however often they were read before.
pub fn routing_facts_are_read_as_last_saved(h: &impl Harness) {
    let store = h.open();
    let issue = doc_meta("i1", DocKind::Issue);
    store.save_document("i1", &issue, b"one", &[]).unwrap();
    save(&store, "p2", b"two");
    for _ in 0..2 {
        store.changed_since(0, 2, &every).unwrap();
        store.all_documents().unwrap();
        store.documents_page(None, 10, &every).unwrap();
    }
    let mut moved = issue.clone();
    moved.owner = "someone else".into();
    moved.assignee = Some(Assignee::Department("区水务局".into()));
    assert_eq!(
        store
            .save_document("i1", &moved, b"one, moved", &[])
            .unwrap(),
        3
    );
    let find = |metas: Vec<DocMeta>| metas.into_iter().find(|m| m.id == "i1").expect("listed");
    assert_eq!(find(store.changed_since(2, 3, &every).unwrap()), moved);
    assert_eq!(find(store.all_documents().unwrap()), moved);
    assert_eq!(find(store.documents_page(None, 10, &every).unwrap()), moved);
    assert_eq!(store.document("i1").unwrap().unwrap().meta, moved);
    let assigned = |m: &DocMeta| m.assignee.is_some();
    assert_eq!(
        ids(store.changed_since(0, 3, &assigned).unwrap()),
        vec!["i1"]
    );
}

/// Documents read together are what reading them one by one gives, in the order asked (an id
/// asked twice comes twice, an unknown one as absent); their feed positions read together are
/// theirs one by one, with no entry for an unknown id.
pub fn documents_read_together_are_read_as_one_by_one(h: &impl Harness) {
    let store = h.open();
    assert!(store.documents(&[]).unwrap().is_empty());
    assert!(store.document_seqs(&[]).unwrap().is_empty());
    save(&store, "p1", b"one");
    save(&store, "i1", b"two");
    save(&store, "p1", b"one, merged");
    let asked = ["i1", "nobody", "p1", "i1"];
    let together: Vec<Option<(DocMeta, Vec<u8>)>> = store
        .documents(&asked)
        .unwrap()
        .into_iter()
        .map(|read| read.unwrap().map(|doc| (doc.meta, doc.bytes)))
        .collect();
    let alone: Vec<Option<(DocMeta, Vec<u8>)>> = asked
        .iter()
        .map(|id| store.document(id).unwrap().map(|doc| (doc.meta, doc.bytes)))
        .collect();
    assert_eq!(together, alone);
    assert_eq!(together[2].as_ref().unwrap().1, b"one, merged");
    assert_eq!(together[1], None);
    let seqs = store.document_seqs(&asked).unwrap();
    let alone: HashMap<String, u64> = asked
        .iter()
        .filter_map(|id| Some((id.to_string(), store.document_seq(id).unwrap()?)))
        .collect();
    assert_eq!(seqs, alone);
    assert!(!seqs.contains_key("nobody"));
    let sizes = store.document_sizes(&asked).unwrap();
    let alone: HashMap<String, usize> = asked
        .iter()
        .filter_map(|id| Some((id.to_string(), store.document(id).unwrap()?.bytes.len())))
        .collect();
    assert_eq!(sizes, alone);
    assert_eq!(sizes["p1"], b"one, merged".len());
}

/// A merge is saved only while the version it was made from is still the one stored
/// ([`DocumentStore::save_merged`]): read alone or together, before a save by anyone else, a
/// version is refused after it, nothing written; a document read absent is refused once
/// another save made it.
pub fn a_merge_is_saved_only_over_the_version_it_was_made_from(h: &impl Harness) {
    let store = h.open();
    let merged = |id: &str, read: Option<StoredVersion>, bytes: &[u8]| {
        store.save_merged(
            id,
            &doc_meta(id, DocKind::Patrol),
            read,
            None,
            &mut || bytes.to_vec(),
            &[],
        )
    };
    let saved_meanwhile = |outcome: Result<u64, HubError>| {
        assert!(
            matches!(&outcome, Err(HubError::SavedMeanwhile { id }) if id == "p1"),
            "{outcome:?}"
        );
    };
    save(&store, "p1", b"one");
    let alone = store.document("p1").unwrap().expect("saved").version;
    let together = store.documents(&["p1"]).unwrap().remove(0);
    assert_eq!(together.unwrap().expect("saved").version, alone);
    assert_eq!(alone.seq, 1);
    let second = merged("p1", Some(alone), b"two").unwrap();
    let head = store.feed_head().unwrap();
    // The version read before that save is refused, as is a read of it as absent.
    saved_meanwhile(merged("p1", Some(alone), b"two, from the first read"));
    saved_meanwhile(merged("p1", None, b"made anew"));
    assert_eq!(store.document("p1").unwrap().unwrap().bytes, b"two");
    assert_eq!(store.feed_head().unwrap(), head, "nothing written");
    // A whole save (an import) replaces the version read as well.
    let read = store.document("p1").unwrap().unwrap().version;
    assert_eq!(read.seq, second);
    save(&store, "p1", b"imported");
    saved_meanwhile(merged("p1", Some(read), b"three"));
    let read = store.document("p1").unwrap().unwrap().version;
    merged("p1", Some(read), b"three").unwrap();
    assert_eq!(store.document("p1").unwrap().unwrap().bytes, b"three");
    // A new document, read absent, is made once.
    assert!(store.document("p2").unwrap().is_none());
    merged("p2", None, b"first").unwrap();
    assert!(matches!(
        merged("p2", None, b"second"),
        Err(HubError::SavedMeanwhile { .. })
    ));
    assert_eq!(store.document("p2").unwrap().unwrap().bytes, b"first");
}

/// Pages come in id order, after the given id, only with what `keep` accepts.
pub fn pages_come_in_id_order(h: &impl Harness) {
    let store = h.open();
    for id in ["p3", "i1", "p2", "i2"] {
        save(&store, id, b"x");
    }
    let page = |after: Option<&str>, limit, keep: &dyn Fn(&DocMeta) -> bool| {
        ids(store.documents_page(after, limit, keep).unwrap())
    };
    assert_eq!(page(None, 10, &every), vec!["i1", "i2", "p2", "p3"]);
    assert_eq!(page(None, 2, &every), vec!["i1", "i2"]);
    assert_eq!(page(Some("i2"), 10, &every), vec!["p2", "p3"]);
    assert_eq!(page(Some("i15"), 1, &every), vec!["i2"]);
    assert!(page(Some("p3"), 10, &every).is_empty());
    let patrols = |m: &DocMeta| m.kind == DocKind::Patrol;
    assert_eq!(page(None, 1, &patrols), vec!["p2"]);
    assert_eq!(page(Some("p2"), 5, &patrols), vec!["p3"]);
}

/// A page walked for what one user's phones receive ([`DocumentStore::delivered_page`]) is
/// the page of every document with the same `keep`, for every kind of user, however the
/// documents' owners, assignees, places, assets and states changed with their saves.
pub fn delivered_pages_are_the_pages_of_what_phones_receive(h: &impl Harness) {
    use crate::authz::{delivered, Reach};
    use crate::workflow::Status;
    const NOW: i64 = 1_764_288_000_000;
    let store = h.open();
    let chief = |id: &str, level: Level, division: &str, assets: &[&str]| User {
        id: id.into(),
        username: id.into(),
        display_name: id.into(),
        role: Role::Chief {
            system: System::River,
            level,
            jurisdiction: Jurisdiction {
                division: code(division),
                assets: assets.iter().map(|a| (*a).to_owned()).collect(),
            },
        },
        active: true,
    };
    let users = [
        chief("u1", Level::Village, "370105001001", &["river-1"]),
        chief("u2", Level::Village, "370105001002", &["river-9"]),
        chief("u3", Level::Subdistrict, "370105001000", &["river-1"]),
        chief("u4", Level::District, "370105000000", &[]),
        User {
            id: "office".into(),
            username: "office".into(),
            display_name: "office".into(),
            role: Role::Supervisor {
                system: System::River,
                division: code("370105000000"),
            },
            active: true,
        },
        User {
            id: "handler".into(),
            username: "handler".into(),
            display_name: "handler".into(),
            role: Role::Handler {
                department: "区水务局".into(),
            },
            active: true,
        },
        User {
            id: "admin".into(),
            username: "admin".into(),
            display_name: "admin".into(),
            role: Role::Admin,
            active: true,
        },
        // Deactivated: receives nothing, not even their own.
        User {
            active: false,
            ..chief("u5", Level::Village, "370105001001", &["river-1"])
        },
    ];
    let owners = ["u1", "u2", "u3", "u4", "office", "u5"];
    // Villages of the users, another subdistrict's village and another district's.
    let divisions = [
        "370105001001",
        "370105001002",
        "370105001000",
        "370105002001",
        "370106001001",
    ];
    let statuses = [
        None,
        Some(Status::Reported),
        Some(Status::Assigned),
        Some(Status::Submitted),
        Some(Status::Closed),
    ];
    let facts = |n: usize, round: usize| {
        let kind = if n.is_multiple_of(3) {
            DocKind::Issue
        } else {
            DocKind::Patrol
        };
        let mut meta = doc_meta(&format!("d{n:02}"), kind);
        meta.owner = owners[(n + round) % owners.len()].into();
        meta.division = code(divisions[(n / 2 + round) % divisions.len()]);
        meta.asset = ["river-1", "river-9", "river-2", "river-2"][n % 4].into();
        if kind == DocKind::Issue {
            meta.status = statuses[(n / 3 + round) % statuses.len()];
            meta.closed_at_ms = (meta.status == Some(Status::Closed)).then_some(NOW - n as i64);
            meta.escalated = (n + round).is_multiple_of(5);
        }
        meta.assignee = match (n + round) % 4 {
            0 => Some(Assignee::User(owners[(n + 2) % owners.len()].into())),
            1 => Some(Assignee::Department("区水务局".into())),
            _ => None,
        };
        meta
    };
    let mut received = vec![false; users.len()];
    for round in 0..4 {
        // Saved again each round with other owners, assignees and states.
        for n in 0..30 {
            let meta = facts(n, round);
            store
                .save_document(&meta.id, &meta, b"x", &[])
                .expect("save");
        }
        for (user, received) in users.iter().zip(&mut received) {
            let keep = |m: &DocMeta| delivered(user, m, NOW);
            for (after, limit) in [(None, 100), (None, 3), (Some("d07"), 4), (Some("d29"), 5)] {
                let walked = ids(store
                    .delivered_page(&Reach::of(user), after, limit, &keep)
                    .unwrap());
                let full = ids(store.documents_page(after, limit, &keep).unwrap());
                assert_eq!(walked, full, "{} after {after:?}, round {round}", user.id);
                *received |= !full.is_empty();
            }
        }
    }
    for (user, received) in users.iter().zip(&received) {
        assert_eq!(
            *received, user.active,
            "{} receives only when active",
            user.id
        );
    }
}

/// The audit log keeps every accepted change in the order received, and of a change that
/// arrives again (a retried push) the first entry: when it first reached the server.
pub fn audit_keeps_the_first_entry_of_each_change(h: &impl Harness) {
    let store = h.open();
    let p2 = doc_meta("p2", DocKind::Patrol);
    store
        .save_document("p2", &p2, b"two", &[audit("p2", "aa", 5)])
        .unwrap();
    save(&store, "i1", b"one");
    store
        .save_document(
            "p2",
            &p2,
            b"two, merged",
            &[audit("p2", "aa", 9), audit("p2", "bb", 7)],
        )
        .unwrap();
    assert_eq!(
        store.history("p2").unwrap(),
        vec![audit("p2", "aa", 5), audit("p2", "bb", 7)]
    );
    assert!(store.history("i1").unwrap().is_empty());
    assert!(store.history("nothing").unwrap().is_empty());
}

/// Saves from many threads at once each get their own position, and the feed lists each
/// document once.
pub fn concurrent_saves_get_distinct_positions(h: &impl Harness) {
    let store = h.open();
    let mut positions: Vec<u64> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let store = &store;
                scope.spawn(move || {
                    (0..10)
                        .map(|n| save(store, &format!("p-{t}-{}", n % 5), b"x"))
                        .collect::<Vec<u64>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("saver"))
            .collect()
    });
    positions.sort_unstable();
    assert_eq!(positions, (1..=40).collect::<Vec<u64>>());
    assert_eq!(store.feed_head().unwrap(), 40);
    assert_eq!(store.changed_since(0, 40, &every).unwrap().len(), 20);
}

/// What each device holds is kept per device; a device id that is a prefix of another's is
/// another device.
pub fn the_device_ledger_keeps_devices_apart(h: &impl Harness) {
    let store = h.open();
    let held = DeviceDoc {
        confirmed: vec![[1; 32]],
        pending: vec![[2; 32]],
        pending_cursor: 4,
    };
    store
        .put_device_docs(
            "u1/phone",
            &[
                ("p1".into(), Some(held.clone())),
                ("p2".into(), Some(DeviceDoc::default())),
            ],
        )
        .unwrap();
    store
        .put_device_docs("u1/phone2", &[("p1".into(), Some(DeviceDoc::default()))])
        .unwrap();
    assert_eq!(
        store.device_doc("u1/phone", "p1").unwrap(),
        Some(held.clone())
    );
    assert_eq!(store.device_doc("u1/phone", "p3").unwrap(), None);
    let held_ids = |device: &str| {
        let mut ids: Vec<String> = store.device_doc_ids(device).unwrap().into_iter().collect();
        ids.sort();
        ids
    };
    assert_eq!(held_ids("u1/phone"), vec!["p1", "p2"]);
    assert_eq!(held_ids("u1/phone2"), vec!["p1"]);
    assert!(held_ids("u1/phon").is_empty());
    store
        .put_device_docs("u1/phone", &[("p2".into(), None)])
        .unwrap();
    assert_eq!(held_ids("u1/phone"), vec!["p1"]);
    let mut docs = store.device_docs("u1/phone").unwrap();
    docs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(docs, vec![("p1".to_string(), held)]);
    assert_eq!(store.device_scope("u1/phone").unwrap(), None);
    store.put_device_scope("u1/phone", "chief").unwrap();
    store.put_device_scope("u1/phone", "office").unwrap();
    assert_eq!(
        store.device_scope("u1/phone").unwrap().as_deref(),
        Some("office")
    );
    assert_eq!(store.device_scope("u1/phone2").unwrap(), None);
}

/// Automerge sync states are kept, listed and forgotten per device.
pub fn sync_states_are_kept_per_device(h: &impl Harness) {
    let store = h.open();
    store.put_sync_state("u1/phone", "p1", b"state").unwrap();
    assert_eq!(
        store.sync_state("u1/phone", "p1").unwrap(),
        Some(b"state".to_vec())
    );
    assert_eq!(store.sync_state("u2/phone", "p1").unwrap(), None);
    store.put_sync_state("u1/phone", "p2", b"second").unwrap();
    store.put_sync_state("u1/phone2", "p1", b"other").unwrap();
    let mut states = store.sync_states("u1/phone").unwrap();
    states.sort();
    assert_eq!(
        states,
        vec![
            ("p1".to_string(), b"state".to_vec()),
            ("p2".to_string(), b"second".to_vec())
        ]
    );
    store
        .forget_sync_states("u1/phone", &["p1".into(), "never".into()])
        .unwrap();
    assert_eq!(
        store.sync_states("u1/phone").unwrap(),
        vec![("p2".to_string(), b"second".to_vec())]
    );
    assert_eq!(store.sync_state("u1/phone", "p1").unwrap(), None);
    assert_eq!(
        store.sync_states("u1/phone2").unwrap(),
        vec![("p1".to_string(), b"other".to_vec())]
    );
}

/// The time of each device's last acknowledged sync is kept per (user, device), the latest
/// recorded replacing the one before, and survives a reopen.
pub fn the_last_acknowledged_sync_is_kept_per_device(h: &impl Harness) {
    {
        let store = h.open();
        assert_eq!(store.device_synced("u1/phone").unwrap(), None);
        store.put_device_synced("u1/phone", 1_000).unwrap();
        store.put_device_synced("u1/phone2", 5).unwrap();
        store.put_device_synced("u1/phone", 2_000).unwrap();
        assert_eq!(store.device_synced("u1/phone").unwrap(), Some(2_000));
        assert_eq!(store.device_synced("u1/phone2").unwrap(), Some(5));
        // Another user's phone of the same name is another device.
        assert_eq!(store.device_synced("u2/phone").unwrap(), None);
        store.durable().unwrap();
    }
    let store = h.open();
    assert_eq!(store.device_synced("u1/phone").unwrap(), Some(2_000));
}

fn river(id: &str) -> Asset {
    Asset {
        id: id.into(),
        system: System::River,
        name: format!("{id} 小清河"),
        division: code("370105014201"),
        geometry: Geometry::LineString(vec![[116.97, 36.72], [116.99, 36.72]]),
    }
}

fn person(id: &str, role: Role, active: bool) -> User {
    User {
        id: id.into(),
        username: id.into(),
        display_name: format!("{id} 河长"),
        role,
        active,
    }
}

fn handler(id: &str, department: &str, active: bool) -> User {
    let role = Role::Handler {
        department: department.into(),
    };
    person(id, role, active)
}

/// A claim on a device stands until it is let go, whatever the time; claims on other devices
/// are apart, and of answers claiming one device at once exactly one gets it.
pub fn a_device_is_claimed_by_one_answer_at_a_time(h: &impl Harness) {
    let store = h.open();
    let phone = "u1/phone";
    let first = store.claim_device(phone).unwrap().expect("no other answer");
    assert!(store.claim_device(phone).unwrap().is_none());
    let other = store
        .claim_device("u2/phone")
        .unwrap()
        .expect("another phone");
    drop(first);
    let second = store.claim_device(phone).unwrap().expect("let go");
    assert!(store.claim_device(phone).unwrap().is_none());
    drop((second, other));

    let store = &store;
    let granted: usize = std::thread::scope(|scope| {
        let claims: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(move || {
                    let claim = store.claim_device("u3/phone").unwrap();
                    // Held until every thread has tried.
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    usize::from(claim.is_some())
                })
            })
            .collect();
        claims.into_iter().map(|claim| claim.join().unwrap()).sum()
    });
    assert_eq!(granted, 1, "answers claiming one device at once");
    assert!(store.claim_device("u3/phone").unwrap().is_some());
}

/// What the administration wrote is what the hub reads: assets, categories, users, and which
/// departments have an active handler (exactly by name).
pub fn reference_lookups_read_what_was_written(h: &impl Harness) {
    let store = h.open();
    let chief = person(
        "u-chief",
        Role::Chief {
            system: System::River,
            level: Level::Village,
            jurisdiction: Jurisdiction {
                division: code("370105014201"),
                assets: vec!["river-1".into()],
            },
        },
        true,
    );
    let categories: Vec<Category> = default_categories().into_iter().take(2).collect();
    h.seed(
        &store,
        &Reference {
            assets: vec![river("river-1"), river("river-2")],
            categories: categories.clone(),
            users: vec![
                chief.clone(),
                handler("u-water", "区水务局", true),
                handler("u-forest", "区林业局", false),
            ],
        },
    );
    assert_eq!(store.asset("river-2").unwrap(), Some(river("river-2")));
    assert_eq!(store.asset("river-3").unwrap(), None);
    assert_eq!(store.categories().unwrap(), categories);
    assert_eq!(store.user("u-chief").unwrap(), Some(chief));
    assert_eq!(store.user("u-nobody").unwrap(), None);
    assert!(store.department_exists("区水务局").unwrap());
    assert!(!store.department_exists("区水务局 ").unwrap());
    assert!(
        !store.department_exists("区林业局").unwrap(),
        "only an active handler makes a department exist"
    );
    assert!(!store.department_exists("区城管局").unwrap());
}

/// Documents, the feed, the audit log and the ledger survive a close and reopen, and feed
/// positions continue.
pub fn reopen_keeps_documents_feed_and_ledger(h: &impl Harness) {
    {
        let store = h.open();
        store
            .save_document(
                "i1",
                &doc_meta("i1", DocKind::Issue),
                b"bytes",
                &[audit("i1", "aa", 3)],
            )
            .unwrap();
        store
            .put_device_docs("u1/phone", &[("i1".into(), Some(DeviceDoc::default()))])
            .unwrap();
        store.put_device_scope("u1/phone", "chief").unwrap();
        store.put_sync_state("u1/phone", "i1", b"state").unwrap();
        store.durable().unwrap();
    }
    let store = h.open();
    let issue = doc_meta("i1", DocKind::Issue);
    assert_eq!(store.document("i1").unwrap().unwrap().bytes, b"bytes");
    assert_eq!(store.feed_head().unwrap(), 1);
    assert_eq!(
        store.changed_since(0, 1, &every).unwrap(),
        vec![issue.clone()]
    );
    assert_eq!(
        store.documents_page(None, 10, &every).unwrap(),
        vec![issue.clone()]
    );
    assert_eq!(store.all_documents().unwrap(), vec![issue]);
    assert_eq!(store.history("i1").unwrap(), vec![audit("i1", "aa", 3)]);
    assert_eq!(
        store.device_doc("u1/phone", "i1").unwrap(),
        Some(DeviceDoc::default())
    );
    assert_eq!(
        store.device_scope("u1/phone").unwrap().as_deref(),
        Some("chief")
    );
    assert_eq!(
        store.sync_state("u1/phone", "i1").unwrap(),
        Some(b"state".to_vec())
    );
    assert_eq!(save(&store, "p1", b"more"), 2, "positions continue");
}

// ---------------------------------------------------------------------------------------------
// The store in memory

#[derive(Debug, Clone, Default)]
struct Tables {
    /// Document id → (the document, its latest feed position).
    docs: BTreeMap<String, (StoredDoc, u64)>,
    /// Feed position → document id, for the latest save of each document only.
    feed: BTreeMap<u64, String>,
    head: u64,
    device_docs: BTreeMap<(String, String), DeviceDoc>,
    scopes: BTreeMap<String, String>,
    synced: BTreeMap<String, i64>,
    sync_states: BTreeMap<(String, String), Vec<u8>>,
    history: BTreeMap<String, Vec<AuditEntry>>,
    reference: ReferenceTables,
}

#[derive(Debug, Clone, Default)]
struct ReferenceTables {
    assets: BTreeMap<String, Asset>,
    categories: Vec<Category>,
    users: BTreeMap<String, User>,
}

/// A [`HubStore`] in memory that passes the conformance suite. `clone` copies the data (a
/// fuzz input starts from a copy of the fixtures' store and never sees another's effects);
/// share one store between hubs or threads with an `Arc`.
#[derive(Debug, Default)]
pub struct MemoryHubStore(Mutex<Tables>, DeviceClaims, Mutex<Option<Interleaved>>);

/// A save another writer makes right after a read together ([`MemoryHubStore::
/// save_after_next_read_together`]): the document's id, routing facts and whole save.
type Interleaved = (String, DocMeta, Vec<u8>);

impl Clone for MemoryHubStore {
    /// A copy of the data; claims are of answers running on the original, so none.
    fn clone(&self) -> Self {
        MemoryHubStore(
            Mutex::new(self.tables().clone()),
            DeviceClaims::default(),
            Mutex::default(),
        )
    }
}

impl MemoryHubStore {
    /// Plays another writer (another server, another phone's sync): after the next read
    /// together that asks for `id` ([`DocumentStore::documents`]), before anything is done with
    /// what was read, `bytes` is saved whole as the document.
    pub fn save_after_next_read_together(&self, id: &str, meta: DocMeta, bytes: Vec<u8>) {
        *self.2.lock().unwrap_or_else(|e| e.into_inner()) = Some((id.to_owned(), meta, bytes));
    }

    /// An empty store that reads this reference data.
    pub fn with_reference(reference: Reference) -> Self {
        let store = Self::default();
        store.set_reference(&reference);
        store
    }

    /// Replaces the reference data the store reads.
    pub fn set_reference(&self, reference: &Reference) {
        self.tables().reference = ReferenceTables {
            assets: reference
                .assets
                .iter()
                .map(|a| (a.id.clone(), a.clone()))
                .collect(),
            categories: reference.categories.clone(),
            users: reference
                .users
                .iter()
                .map(|u| (u.id.clone(), u.clone()))
                .collect(),
        };
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        // Every write is one step under the lock: a panic elsewhere leaves no half-write.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

/// Stores a document's new version whole at the next feed position.
fn save_into(t: &mut Tables, id: &str, meta: &DocMeta, bytes: &[u8], audit: &[AuditEntry]) -> u64 {
    t.head += 1;
    let position = t.head;
    let doc = StoredDoc {
        meta: meta.clone(),
        bytes: bytes.to_vec(),
        version: StoredVersion {
            seq: position,
            footprint: Footprint::whole(bytes.len()),
        },
    };
    if let Some((_, before)) = t.docs.insert(id.to_string(), (doc, position)) {
        t.feed.remove(&before);
    }
    t.feed.insert(position, id.to_string());
    let history = t.history.entry(id.to_string()).or_default();
    for entry in audit {
        if !history.iter().any(|kept| kept.change == entry.change) {
            history.push(entry.clone());
        }
    }
    position
}

impl DocumentStore for MemoryHubStore {
    fn document(&self, id: &str) -> Result<Option<StoredDoc>, HubError> {
        Ok(self.tables().docs.get(id).map(|(doc, _)| doc.clone()))
    }

    fn document_sizes(&self, ids: &[&str]) -> Result<HashMap<String, usize>, HubError> {
        let t = self.tables();
        Ok(ids
            .iter()
            .filter_map(|id| Some((id.to_string(), t.docs.get(*id)?.0.bytes.len())))
            .collect())
    }

    fn documents(&self, ids: &[&str]) -> Result<Vec<DocRead>, HubError> {
        let read = ids.iter().map(|id| self.document(id)).collect();
        let due = self
            .2
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take_if(|(id, ..)| ids.contains(&id.as_str()));
        if let Some((id, meta, bytes)) = due {
            self.save_document(&id, &meta, &bytes, &[])?;
        }
        Ok(read)
    }

    fn save_document(
        &self,
        id: &str,
        meta: &DocMeta,
        bytes: &[u8],
        audit: &[AuditEntry],
    ) -> Result<u64, HubError> {
        Ok(save_into(&mut self.tables(), id, meta, bytes, audit))
    }

    /// Checked against what is stored, then saved whole.
    fn save_merged(
        &self,
        id: &str,
        meta: &DocMeta,
        read: Option<StoredVersion>,
        _changes: Option<&[u8]>,
        full: &mut dyn FnMut() -> Vec<u8>,
        audit: &[AuditEntry],
    ) -> Result<u64, HubError> {
        let mut t = self.tables();
        let stored = t.docs.get(id).map(|(_, position)| *position);
        if stored != read.map(|version| version.seq) {
            return Err(HubError::SavedMeanwhile { id: id.to_owned() });
        }
        Ok(save_into(&mut t, id, meta, &full(), audit))
    }

    fn feed_head(&self) -> Result<u64, HubError> {
        Ok(self.tables().head)
    }

    fn changed_since(
        &self,
        after: u64,
        upto: u64,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        if after >= upto {
            return Ok(Vec::new());
        }
        let t = self.tables();
        Ok(t.feed
            .range(after + 1..=upto)
            .filter_map(|(_, id)| t.docs.get(id))
            .filter(|(doc, _)| keep(&doc.meta))
            .map(|(doc, _)| doc.meta.clone())
            .collect())
    }

    fn all_documents(&self) -> Result<Vec<DocMeta>, HubError> {
        Ok(self
            .tables()
            .docs
            .values()
            .map(|(doc, _)| doc.meta.clone())
            .collect())
    }

    fn document_seq(&self, id: &str) -> Result<Option<u64>, HubError> {
        Ok(self.tables().docs.get(id).map(|(_, at)| *at))
    }

    fn mark_feed(&self) -> Result<Option<u64>, HubError> {
        let mut t = self.tables();
        t.head += 1;
        Ok(Some(t.head))
    }
}

impl AuditLog for MemoryHubStore {
    fn history(&self, doc_id: &str) -> Result<Vec<AuditEntry>, HubError> {
        Ok(self
            .tables()
            .history
            .get(doc_id)
            .cloned()
            .unwrap_or_default())
    }
}

impl DeviceLedger for MemoryHubStore {
    fn device_docs(&self, device: &str) -> Result<Vec<(String, DeviceDoc)>, HubError> {
        Ok(self
            .tables()
            .device_docs
            .iter()
            .filter(|((d, _), _)| d == device)
            .map(|((_, id), held)| (id.clone(), held.clone()))
            .collect())
    }

    fn device_doc(&self, device: &str, doc_id: &str) -> Result<Option<DeviceDoc>, HubError> {
        Ok(self
            .tables()
            .device_docs
            .get(&pair(device, doc_id))
            .cloned())
    }

    fn put_device_docs(
        &self,
        device: &str,
        docs: &[(String, Option<DeviceDoc>)],
    ) -> Result<(), HubError> {
        let mut t = self.tables();
        for (id, held) in docs {
            match held {
                Some(held) => t.device_docs.insert(pair(device, id), held.clone()),
                None => t.device_docs.remove(&pair(device, id)),
            };
        }
        Ok(())
    }

    fn device_scope(&self, device: &str) -> Result<Option<String>, HubError> {
        Ok(self.tables().scopes.get(device).cloned())
    }

    fn put_device_scope(&self, device: &str, scope: &str) -> Result<(), HubError> {
        self.tables()
            .scopes
            .insert(device.to_string(), scope.to_string());
        Ok(())
    }

    fn device_synced(&self, device: &str) -> Result<Option<i64>, HubError> {
        Ok(self.tables().synced.get(device).copied())
    }

    fn put_device_synced(&self, device: &str, at_ms: i64) -> Result<(), HubError> {
        self.tables().synced.insert(device.to_string(), at_ms);
        Ok(())
    }

    fn claim_device(&self, device: &str) -> Result<Option<DeviceClaim<'_>>, HubError> {
        Ok(self.1.claim(device))
    }

    fn sync_state(&self, device: &str, doc_id: &str) -> Result<Option<Vec<u8>>, HubError> {
        Ok(self
            .tables()
            .sync_states
            .get(&pair(device, doc_id))
            .cloned())
    }

    fn put_sync_state(&self, device: &str, doc_id: &str, state: &[u8]) -> Result<(), HubError> {
        self.tables()
            .sync_states
            .insert(pair(device, doc_id), state.to_vec());
        Ok(())
    }

    fn sync_states(&self, device: &str) -> Result<Vec<(String, Vec<u8>)>, HubError> {
        Ok(self
            .tables()
            .sync_states
            .iter()
            .filter(|((d, _), _)| d == device)
            .map(|((_, id), state)| (id.clone(), state.clone()))
            .collect())
    }

    fn forget_sync_states(&self, device: &str, doc_ids: &[String]) -> Result<(), HubError> {
        let mut t = self.tables();
        for id in doc_ids {
            t.sync_states.remove(&pair(device, id));
        }
        Ok(())
    }
}

impl ReferenceSource for MemoryHubStore {
    fn asset(&self, id: &str) -> Result<Option<Asset>, HubError> {
        Ok(self.tables().reference.assets.get(id).cloned())
    }

    fn categories(&self) -> Result<Vec<Category>, HubError> {
        Ok(self.tables().reference.categories.clone())
    }

    fn user(&self, id: &str) -> Result<Option<User>, HubError> {
        Ok(self.tables().reference.users.get(id).cloned())
    }

    fn department_exists(&self, name: &str) -> Result<bool, HubError> {
        Ok(self.tables().reference.users.values().any(|u| {
            u.active && matches!(&u.role, Role::Handler { department } if department == name)
        }))
    }
}

impl HubStore for MemoryHubStore {
    /// Memory is as durable as it gets.
    fn durable(&self) -> Result<(), HubError> {
        Ok(())
    }
}

/// The harness of [`MemoryHubStore`]: one shared store, so a reopen sees what was written.
#[derive(Debug, Default)]
pub struct MemoryHarness(Arc<MemoryHubStore>);

impl Harness for MemoryHarness {
    type Store = Arc<MemoryHubStore>;

    fn open(&self) -> Self::Store {
        Arc::clone(&self.0)
    }

    fn seed(&self, store: &Self::Store, reference: &Reference) {
        store.set_reference(reference);
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryHarness;

    crate::hub_store_conformance!(MemoryHarness::default());
}
