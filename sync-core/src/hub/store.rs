//! What the hub stores, split by what it is: the documents with their change feed
//! ([`DocumentStore`]), who changed what ([`AuditLog`]), what each device holds
//! ([`DeviceLedger`]) and the reference data a new record is checked against
//! ([`ReferenceSource`]). [`HubStore`] is all four plus durability: what a [`super::Hub`] needs.
//!
//! Every backend (sled in the server, memory in tests and fuzzing) must pass the one
//! conformance suite, `sync_core::hub::testing` (cargo feature `testing`):
//! `sync_core::hub_store_conformance!(harness);` in the backend's test module.
//!
//! The traits are synchronous and may block; the server calls the hub from blocking workers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{DeviceClaim, HubError};
use crate::authz::{DocMeta, Reach};
use crate::model::{Asset, Category, User};
use crate::protocol::Hash;

/// One document's read among several ([`DocumentStore::documents`]): the stored document,
/// `None` when unknown, or why it cannot be read.
pub type DocRead = Result<Option<StoredDoc>, HubError>;

/// [`DocumentStore::documents`], refused unless the store answered for each id asked: every
/// caller pairs the answers with the ids, and a short answer must not pass for documents
/// that are absent or, cut short, leave some unread without a word.
pub fn read_documents<S: DocumentStore + ?Sized>(
    store: &S,
    ids: &[&str],
) -> Result<Vec<DocRead>, HubError> {
    let read = store.documents(ids)?;
    if read.len() != ids.len() {
        return Err(HubError::Storage(format!(
            "the store answered {} documents of {} asked",
            read.len(),
            ids.len()
        )));
    }
    Ok(read)
}

/// `read` of each of `ids`, one at a time, by id: those absent left out, and those damaged
/// too (the document's own read reports the damage, and it must not fail the others').
fn each_present<T>(
    ids: &[&str],
    read: impl Fn(&str) -> Result<Option<T>, HubError>,
) -> Result<HashMap<String, T>, HubError> {
    let mut found = HashMap::with_capacity(ids.len());
    for id in ids {
        match read(id) {
            Ok(Some(value)) => {
                found.insert((*id).to_owned(), value);
            }
            Ok(None) | Err(HubError::Damaged { .. }) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(found)
}

/// A document as the server stores it: routing facts beside the saved bytes.
#[derive(Debug, Clone)]
pub struct StoredDoc {
    /// Who and where the document is about, for routing without loading it.
    pub meta: DocMeta,
    /// The full automerge save.
    pub bytes: Vec<u8>,
    /// Which stored version this is: handed back with the save of what was merged into it
    /// ([`DocumentStore::save_merged`]), so the store can vouch that the save builds on what
    /// it holds, however long ago and on whichever thread the read was made.
    pub version: StoredVersion,
}

/// One stored version of a document: its feed position, and how the store keeps it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredVersion {
    /// The feed position of the save that made it.
    pub seq: u64,
    /// How it is kept.
    pub footprint: Footprint,
}

/// How one stored document is kept: its snapshot and the incremental saves stored since.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Bytes of the snapshot (the full save written last).
    pub snapshot_bytes: usize,
    /// Incremental saves stored since.
    pub incremental_saves: usize,
    /// Their bytes, together.
    pub incremental_bytes: usize,
}

impl Footprint {
    /// Kept whole as one full save of `bytes` bytes.
    pub fn whole(bytes: usize) -> Self {
        Self {
            snapshot_bytes: bytes,
            ..Self::default()
        }
    }

    /// Records the store keeps for the document: the snapshot and each incremental save.
    pub fn records(&self) -> usize {
        1 + self.incremental_saves
    }

    /// Bytes of automerge data the store keeps for the document.
    pub fn bytes(&self) -> usize {
        self.snapshot_bytes + self.incremental_bytes
    }

    /// Whether the next save should write a new snapshot in place of all this
    /// ([`compaction_due`]).
    pub fn compaction_due(&self) -> bool {
        compaction_due(
            self.snapshot_bytes,
            self.incremental_saves,
            self.incremental_bytes,
        )
    }
}

/// One accepted change: who sent it, from which device, when it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The document the change belongs to.
    pub doc_id: String,
    /// Lower-case hex of the change hash.
    pub change: String,
    /// The user who sent it.
    pub user: String,
    /// The device it came from (or `web`, `deadline-job` for the server's own).
    pub device: String,
    /// The automerge actor (hex) the change was made under.
    pub actor: String,
    /// When the server accepted it.
    pub received_at_ms: i64,
    /// The device's previous acknowledged sync when the change arrived
    /// ([`DeviceLedger::device_synced`]): a time the phone supplies is not vouched for before
    /// it. `None` for the server's own changes, a device never seen to sync with nothing left
    /// to send, and entries kept before the server recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_sync_ms: Option<i64>,
}

/// The `pending_cursor` of a response the device is known never to have applied (it presented
/// an earlier cursor afterwards): `pending` no longer counts as held, but stays as what was sent
/// to the device, the floor its workflow receipts are counted from. A document the device
/// dropped or was told to remove keeps such a record too ([`DeviceDoc::gone`]).
pub const NEVER_APPLIED: u64 = u64::MAX;

/// What the server believes one device holds of one document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDoc {
    /// Heads the device is known to have.
    pub confirmed: Vec<Hash>,
    /// Heads sent in the response that carried `pending_cursor`; confirmed once the device
    /// presents that cursor.
    pub pending: Vec<Hash>,
    /// The response cursor that confirms `pending` (0 when nothing is pending;
    /// [`NEVER_APPLIED`] when the device is known never to have applied that response).
    pub pending_cursor: u64,
}

impl DeviceDoc {
    /// The heads the device has, given the cursor it presented.
    pub fn known(&self, cursor: u64) -> &[Hash] {
        if self.pending_cursor > 0 && cursor >= self.pending_cursor {
            &self.pending
        } else {
            &self.confirmed
        }
    }

    /// Whether the record says the device holds (or is being sent) any of the document: false
    /// for one that only keeps the floor of its receipts (see [`Self::gone`]).
    pub fn holds(&self) -> bool {
        !(self.confirmed.is_empty() && self.pending_cursor == NEVER_APPLIED)
    }

    /// The record of a document the device no longer holds (it dropped it, or was told to
    /// remove it): nothing held, and everything it held or was sent kept as the floor of its
    /// receipts. Forgetting the record instead would let a modified phone drop a problem and
    /// then send an event stamped before receipts it had seen. Such records go once a sync of
    /// the device's own vouches for a later time (`Hub::answer`).
    pub(super) fn gone(&self) -> Self {
        self.gone_after(&[])
    }

    /// [`Self::gone`] of a document the device was told to remove in the answer to its own
    /// push, with `heads` (the server's after the push, its receipts included) in the floor
    /// as if they had been sent.
    pub(super) fn gone_after(&self, heads: &[Hash]) -> Self {
        let mut seen: Vec<Hash> = self
            .confirmed
            .iter()
            .chain(&self.pending)
            .chain(heads)
            .copied()
            .collect();
        seen.sort_unstable();
        seen.dedup();
        Self {
            confirmed: Vec::new(),
            pending: seen,
            pending_cursor: NEVER_APPLIED,
        }
    }

    pub(super) fn sent(&self, cursor: u64, heads: Vec<Hash>, response_cursor: u64) -> Self {
        Self {
            confirmed: self.known(cursor).to_vec(),
            pending: heads,
            pending_cursor: response_cursor,
        }
    }
}

/// A snapshot below this many bytes is rewritten whole at every save: a small document costs
/// little to save, and one piece loads fastest (automerge-repo's bound).
pub const SMALL_SNAPSHOT_BYTES: usize = 1024;

/// Incremental saves a stored document gathers at most before its next save writes a new
/// snapshot: as many as the phone's store gathers before it compacts, so a document loads
/// from a bounded number of pieces however small its changes.
pub const MAX_INCREMENTAL_SAVES: usize = 8;

/// Whether the next save of a document kept as a snapshot plus incremental saves (automerge's
/// `save_after` of the version before each) writes a new snapshot, a full save, in place of
/// them all, given the snapshot's size and the incremental saves stored since: automerge-repo's
/// rule (a small snapshot, or incremental saves as large as the snapshot), and a bound on their
/// count. Stores that keep documents so decide by this rule, under the document's write lock.
pub fn compaction_due(
    snapshot_bytes: usize,
    incremental_saves: usize,
    incremental_bytes: usize,
) -> bool {
    snapshot_bytes < SMALL_SNAPSHOT_BYTES
        || incremental_bytes >= snapshot_bytes
        || incremental_saves >= MAX_INCREMENTAL_SAVES
}

/// Saves a document the hub read from `store` (version `read`, `None` when it was absent) and
/// merged into: what the merge added to the version read (`heads`, its heads) through
/// [`DocumentStore::save_merged`]. Working out what was added can panic inside automerge on a
/// document hostile changes went into (the fuzzer found one: a missing dependency); the full
/// save is then what is stored, as before documents were kept as a snapshot plus incremental
/// saves, checked against the version read all the same. Returns the save's feed position, and
/// whether the merge was saved as made (not through that fallback): only then may the version
/// in hand stand for the stored one.
pub(crate) fn save_merge<S: DocumentStore + ?Sized>(
    store: &S,
    id: &str,
    meta: &DocMeta,
    doc: &mut automerge::AutoCommit,
    (read, heads): (Option<StoredVersion>, &[automerge::ChangeHash]),
    audit: &[AuditEntry],
) -> Result<(u64, bool), HubError> {
    let added =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| doc.save_after(heads))).ok();
    let seq = store.save_merged(id, meta, read, added.as_deref(), &mut || doc.save(), audit)?;
    Ok((seq, added.is_some()))
}

/// The documents as saved, and the change feed that numbers every save. Writes are durable in
/// the order they were made (once [`HubStore::durable`] returns), so nothing a device was told
/// about can outlive what it depends on.
pub trait DocumentStore: Send + Sync {
    /// The document as last saved; `None` if unknown.
    fn document(&self, id: &str) -> Result<Option<StoredDoc>, HubError>;
    /// Stores a document's new full save with its routing facts and audit entries, and appends
    /// it to the change feed. Returns the feed position: one more than any before, so positions
    /// are save order. Of a change that arrives again, the first audit entry is kept.
    fn save_document(
        &self,
        id: &str,
        meta: &DocMeta,
        bytes: &[u8],
        audit: &[AuditEntry],
    ) -> Result<u64, HubError>;
    /// Stores a new version of a document the hub read from this store and merged into.
    /// `read` is the version read ([`StoredDoc::version`]), `None` when it was read absent:
    /// the save is refused with [`HubError::SavedMeanwhile`], nothing written, unless that is
    /// still what is stored, so a merge is never saved over changes it does not contain.
    /// `changes` is automerge's incremental save of what the merge added to the version read
    /// (`save_after` its heads; `None` when it could not be made), `full` makes the new
    /// version's full save. The result, feed position and audit are those of
    /// [`Self::save_document`] with `full()`, which is what this does unless the store keeps
    /// documents as a snapshot plus incremental saves ([`compaction_due`]): such a store
    /// appends `changes` and calls `full` only to write a new snapshot.
    fn save_merged(
        &self,
        id: &str,
        meta: &DocMeta,
        read: Option<StoredVersion>,
        changes: Option<&[u8]>,
        full: &mut dyn FnMut() -> Vec<u8>,
        audit: &[AuditEntry],
    ) -> Result<u64, HubError>;
    /// The latest feed position (0 when nothing was ever stored).
    fn feed_head(&self) -> Result<u64, HubError>;
    /// Routing facts that `keep` accepts, of every document whose latest feed position is in
    /// `(after, upto]`, in feed order (the order of their latest saves, not of their ids).
    /// Facts are copied only for the documents kept: a village chief's sync walks a whole
    /// district's changes to find its own few.
    fn changed_since(
        &self,
        after: u64,
        upto: u64,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError>;
    /// Routing facts of every document, in id order.
    fn all_documents(&self) -> Result<Vec<DocMeta>, HubError>;
    /// The feed position of the document's latest save, written atomically with it, so it names
    /// the stored version. `None` for an unknown document, or from a store that does not number
    /// its saves (the delivery cache then compares saves byte for byte).
    fn document_seq(&self, id: &str) -> Result<Option<u64>, HubError> {
        let _ = id;
        Ok(None)
    }
    /// [`Self::document_seq`] of each of `ids`, in one call: the positions of those the store
    /// numbers (an unknown id is absent). A store over a network answers in one round trip
    /// what the hub would otherwise ask document by document. A position that does not read
    /// is left out, not an error: the document's own read reports the damage, and it must
    /// not fail the read of the others.
    fn document_seqs(&self, ids: &[&str]) -> Result<HashMap<String, u64>, HubError> {
        each_present(ids, |id| self.document_seq(id))
    }
    /// [`Self::document`] of each of `ids`, in one call and in their order: one damaged
    /// document is its own [`HubError::Damaged`] and does not fail the others. Each carries
    /// its version as read alone does, for a merge to be saved over.
    fn documents(&self, ids: &[&str]) -> Result<Vec<DocRead>, HubError> {
        Ok(ids.iter().map(|id| self.document(id)).collect())
    }
    /// The length of [`Self::document`]'s bytes for each of `ids` the store holds, in one
    /// call: what the limits on pushed changes weigh a document by. A store sizes what it
    /// keeps without reading it whole where it can; a damaged document may be left out (as by
    /// [`Self::document_seqs`]) or sized as kept, its damage reported where it is read. The
    /// default reads one document at a time, so no more than one is held.
    fn document_sizes(&self, ids: &[&str]) -> Result<HashMap<String, usize>, HubError> {
        each_present(ids, |id| {
            Ok(self.document(id)?.map(|stored| stored.bytes.len()))
        })
    }
    /// Takes the next feed position without saving a document there and returns it: the feed
    /// head moves on by one, and walks of the feed find nothing at that position. The hub
    /// names an answer by it when the answer would otherwise carry the very cursor the device
    /// presented, so that an answer the device never applied can be told from the one before.
    /// `None` from a store that does not number its saves.
    fn mark_feed(&self) -> Result<Option<u64>, HubError> {
        Ok(None)
    }
    /// Up to `limit` routing facts that `keep` accepts, of the documents whose ids come after
    /// `after`, in id order (a page of a listing). Stores that can walk their ids in order
    /// should stop at the page's end instead of reading every document.
    fn documents_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        let mut metas: Vec<DocMeta> = self
            .all_documents()?
            .into_iter()
            .filter(|m| after.is_none_or(|a| m.id.as_str() > a) && keep(m))
            .collect();
        metas.sort_by(|a, b| a.id.cmp(&b.id));
        metas.truncate(limit);
        Ok(metas)
    }
    /// As [`Self::documents_page`], for a `keep` that accepts only documents a user's phones
    /// receive ([`crate::authz::delivered`]): those all lie within the user's `reach`
    /// ([`Reach::covers`]), so a store that indexes documents by owner, by assignee and by the
    /// place, asset and assigned department of each issue may walk only those. The default
    /// walks every document.
    fn delivered_page(
        &self,
        reach: &Reach,
        after: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        let _ = reach;
        self.documents_page(after, limit, keep)
    }
}

/// Who sent each accepted change, from which device, when: written with the document's save
/// ([`DocumentStore::save_document`]), read here.
pub trait AuditLog: Send + Sync {
    /// Every accepted change of one document, in the order it was received.
    fn history(&self, doc_id: &str) -> Result<Vec<AuditEntry>, HubError>;
}

/// What the server believes each device holds, so a sync sends only what the device lacks:
/// per (device, document) heads, the scope fingerprint at the device's last sync, and the
/// automerge sync states of `POST /automerge-sync`.
pub trait DeviceLedger: Send + Sync {
    /// Every document the device holds, with what it holds of each.
    fn device_docs(&self, device: &str) -> Result<Vec<(String, DeviceDoc)>, HubError>;
    /// The ids of the documents the device holds, without what it holds of each.
    fn device_doc_ids(&self, device: &str) -> Result<HashSet<String>, HubError> {
        Ok(self
            .device_docs(device)?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }
    /// What the device holds of one document; `None` if nothing.
    fn device_doc(&self, device: &str, doc_id: &str) -> Result<Option<DeviceDoc>, HubError>;
    /// Replaces (`Some`) or forgets (`None`) what the device holds of each document.
    fn put_device_docs(
        &self,
        device: &str,
        docs: &[(String, Option<DeviceDoc>)],
    ) -> Result<(), HubError>;
    /// A fingerprint of the user's scope at the device's last sync.
    fn device_scope(&self, device: &str) -> Result<Option<String>, HubError>;
    /// Remembers the scope fingerprint of the device's sync.
    fn put_device_scope(&self, device: &str, scope: &str) -> Result<(), HubError>;
    /// Standard automerge sync state per (device, document).
    fn sync_state(&self, device: &str, doc_id: &str) -> Result<Option<Vec<u8>>, HubError>;
    /// Keeps the automerge sync state of (device, document).
    fn put_sync_state(&self, device: &str, doc_id: &str, state: &[u8]) -> Result<(), HubError>;
    /// Every sync state kept for the device, with the document it is about.
    fn sync_states(&self, device: &str) -> Result<Vec<(String, Vec<u8>)>, HubError>;
    /// Forgets the device's sync states of these documents.
    fn forget_sync_states(&self, device: &str, doc_ids: &[String]) -> Result<(), HubError>;
    /// When the server last acknowledged a sync of the device at which the device held nothing
    /// the server lacked (it pushed nothing): anything it sends later was recorded after that.
    fn device_synced(&self, device: &str) -> Result<Option<i64>, HubError>;
    /// Records such a sync of the device, answered at `at_ms`.
    fn put_device_synced(&self, device: &str, at_ms: i64) -> Result<(), HubError>;
    /// Claims the answering of the device's syncs; `None` at once when another answer holds
    /// the claim. Two answers to one device must not overlap (`claims`). The claim stands
    /// until it is dropped or its server stops, never by time. A store that one process
    /// serves keeps its claims in memory ([`super::DeviceClaims`]); one that several servers
    /// share keeps them where every server sees them.
    fn claim_device(&self, device: &str) -> Result<Option<DeviceClaim<'_>>, HubError>;
}

/// The reference data the hub reads while placing and checking a record; the server's
/// administration writes it.
pub trait ReferenceSource: Send + Sync {
    /// The asset of this id, which a new record is placed against.
    fn asset(&self, id: &str) -> Result<Option<Asset>, HubError>;
    /// The problem categories.
    fn categories(&self) -> Result<Vec<Category>, HubError>;
    /// The user of this id (an assignment's target).
    fn user(&self, id: &str) -> Result<Option<User>, HubError>;
    /// Whether an active handler works for the department of exactly this name.
    fn department_exists(&self, name: &str) -> Result<bool, HubError>;
}

/// The storage a hub needs: all four parts, and durability. Writes become durable when
/// [`HubStore::durable`] returns; the hub calls it once per request, before its answer
/// acknowledges anything, instead of once per document (a chief's week is a dozen documents in
/// one sync).
pub trait HubStore: DocumentStore + AuditLog + DeviceLedger + ReferenceSource {
    /// Makes every write so far durable.
    fn durable(&self) -> Result<(), HubError>;
}

// A shared store is a store: the server hands the hub an `Arc<dyn Store>`.

impl<T: DocumentStore + ?Sized> DocumentStore for Arc<T> {
    fn document(&self, id: &str) -> Result<Option<StoredDoc>, HubError> {
        (**self).document(id)
    }
    fn save_document(
        &self,
        id: &str,
        meta: &DocMeta,
        bytes: &[u8],
        audit: &[AuditEntry],
    ) -> Result<u64, HubError> {
        (**self).save_document(id, meta, bytes, audit)
    }
    fn save_merged(
        &self,
        id: &str,
        meta: &DocMeta,
        read: Option<StoredVersion>,
        changes: Option<&[u8]>,
        full: &mut dyn FnMut() -> Vec<u8>,
        audit: &[AuditEntry],
    ) -> Result<u64, HubError> {
        (**self).save_merged(id, meta, read, changes, full, audit)
    }
    fn feed_head(&self) -> Result<u64, HubError> {
        (**self).feed_head()
    }
    fn changed_since(
        &self,
        after: u64,
        upto: u64,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        (**self).changed_since(after, upto, keep)
    }
    fn all_documents(&self) -> Result<Vec<DocMeta>, HubError> {
        (**self).all_documents()
    }
    fn document_seq(&self, id: &str) -> Result<Option<u64>, HubError> {
        (**self).document_seq(id)
    }
    fn document_seqs(&self, ids: &[&str]) -> Result<HashMap<String, u64>, HubError> {
        (**self).document_seqs(ids)
    }
    fn documents(&self, ids: &[&str]) -> Result<Vec<DocRead>, HubError> {
        (**self).documents(ids)
    }
    fn document_sizes(&self, ids: &[&str]) -> Result<HashMap<String, usize>, HubError> {
        (**self).document_sizes(ids)
    }
    fn mark_feed(&self) -> Result<Option<u64>, HubError> {
        (**self).mark_feed()
    }
    fn documents_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        (**self).documents_page(after, limit, keep)
    }
    fn delivered_page(
        &self,
        reach: &Reach,
        after: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        (**self).delivered_page(reach, after, limit, keep)
    }
}

impl<T: AuditLog + ?Sized> AuditLog for Arc<T> {
    fn history(&self, doc_id: &str) -> Result<Vec<AuditEntry>, HubError> {
        (**self).history(doc_id)
    }
}

impl<T: DeviceLedger + ?Sized> DeviceLedger for Arc<T> {
    fn device_docs(&self, device: &str) -> Result<Vec<(String, DeviceDoc)>, HubError> {
        (**self).device_docs(device)
    }
    fn device_doc_ids(&self, device: &str) -> Result<HashSet<String>, HubError> {
        (**self).device_doc_ids(device)
    }
    fn device_doc(&self, device: &str, doc_id: &str) -> Result<Option<DeviceDoc>, HubError> {
        (**self).device_doc(device, doc_id)
    }
    fn put_device_docs(
        &self,
        device: &str,
        docs: &[(String, Option<DeviceDoc>)],
    ) -> Result<(), HubError> {
        (**self).put_device_docs(device, docs)
    }
    fn device_scope(&self, device: &str) -> Result<Option<String>, HubError> {
        (**self).device_scope(device)
    }
    fn put_device_scope(&self, device: &str, scope: &str) -> Result<(), HubError> {
        (**self).put_device_scope(device, scope)
    }
    fn device_synced(&self, device: &str) -> Result<Option<i64>, HubError> {
        (**self).device_synced(device)
    }
    fn put_device_synced(&self, device: &str, at_ms: i64) -> Result<(), HubError> {
        (**self).put_device_synced(device, at_ms)
    }
    fn claim_device(&self, device: &str) -> Result<Option<DeviceClaim<'_>>, HubError> {
        (**self).claim_device(device)
    }
    fn sync_state(&self, device: &str, doc_id: &str) -> Result<Option<Vec<u8>>, HubError> {
        (**self).sync_state(device, doc_id)
    }
    fn put_sync_state(&self, device: &str, doc_id: &str, state: &[u8]) -> Result<(), HubError> {
        (**self).put_sync_state(device, doc_id, state)
    }
    fn sync_states(&self, device: &str) -> Result<Vec<(String, Vec<u8>)>, HubError> {
        (**self).sync_states(device)
    }
    fn forget_sync_states(&self, device: &str, doc_ids: &[String]) -> Result<(), HubError> {
        (**self).forget_sync_states(device, doc_ids)
    }
}

impl<T: ReferenceSource + ?Sized> ReferenceSource for Arc<T> {
    fn asset(&self, id: &str) -> Result<Option<Asset>, HubError> {
        (**self).asset(id)
    }
    fn categories(&self) -> Result<Vec<Category>, HubError> {
        (**self).categories()
    }
    fn user(&self, id: &str) -> Result<Option<User>, HubError> {
        (**self).user(id)
    }
    fn department_exists(&self, name: &str) -> Result<bool, HubError> {
        (**self).department_exists(name)
    }
}

impl<T: HubStore + ?Sized> HubStore for Arc<T> {
    fn durable(&self) -> Result<(), HubError> {
        (**self).durable()
    }
}
