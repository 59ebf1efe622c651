//! Documents kept as automerge-repo keeps them, by both stores: a snapshot (a full automerge
//! save) and the incremental saves made since (automerge's `save_after` of the version before
//! each), instead of the whole document written again at every save. A chief's sync adds a few
//! hundred bytes to a patrol or a problem of tens of kilobytes; only those bytes are written.
//!
//! A save through [`sync_core::hub::DocumentStore::save_merged`] appends its incremental save,
//! unless [`sync_core::hub::compaction_due`] says the snapshot should be written again: then it
//! writes the new version's full save as the snapshot and deletes the incremental saves it
//! covers, in one transaction, under the document's write lock (the one every save of it
//! takes). A reader gets the snapshot followed by the incremental saves in save order, one
//! byte string automerge's `load` accepts, read in one consistent step: never a snapshot
//! without the saves it does not cover.
//!
//! Were the deletion ever left out (a crash between the two steps of a store without
//! transactions; here only a test does it, [`leave_covered`]), nothing is lost: the saves left
//! behind hold changes the snapshot already has, which automerge's `load` takes once, and the
//! next compaction deletes them.
//!
//! An incremental save is appended only when it builds on what is stored: each thread
//! remembers, per store and document, the version it last read ([`remember_read`]), and the
//! save checks under the write lock that it is still the stored one.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Documents whose read versions a thread remembers at most; beyond that it forgets them all
/// (a save after a forgotten read writes a full save, unchecked).
const READS_KEPT: usize = 256;

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
    /// Records the store keeps for the document: the snapshot and each incremental save.
    pub fn records(&self) -> usize {
        1 + self.incremental_saves
    }

    /// Bytes of automerge data the store keeps for the document.
    pub fn bytes(&self) -> usize {
        self.snapshot_bytes + self.incremental_bytes
    }

    /// Whether the next save should write a new snapshot in place of all this.
    pub fn compaction_due(&self) -> bool {
        sync_core::hub::compaction_due(
            self.snapshot_bytes,
            self.incremental_saves,
            self.incremental_bytes,
        )
    }
}

/// The version of a document a thread read: its feed position and how it was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReadVersion {
    pub seq: u64,
    pub footprint: Footprint,
}

thread_local! {
    /// Per (store, document) this thread read: the version read (`None`: absent).
    static READ: RefCell<HashMap<(u64, String), Option<ReadVersion>>> =
        RefCell::new(HashMap::new());
    /// Set by a test: compactions on this thread write the snapshot and keep the incremental
    /// saves it covers, as a crash between the two steps would.
    static LEAVE_COVERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A number naming one opened store in this process, so what a thread read through one store
/// (a sled store being moved) never vouches for a save through another (PostgreSQL).
pub(super) fn store_number() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Remembers on the calling thread the version of `id` it read through store `store`.
pub(super) fn remember_read(store: u64, id: &str, version: Option<ReadVersion>) {
    READ.with(|read| {
        let mut read = read.borrow_mut();
        let key = (store, id.to_owned());
        if read.len() >= READS_KEPT && !read.contains_key(&key) {
            read.clear();
        }
        read.insert(key, version);
    });
}

/// The version of `id` the calling thread last read through store `store`, forgotten now;
/// `None` when it remembers no read, `Some(None)` when it read the document absent.
pub(super) fn take_read(store: u64, id: &str) -> Option<Option<ReadVersion>> {
    READ.with(|read| read.borrow_mut().remove(&(store, id.to_owned())))
}

/// What a save writes.
pub(super) enum Write {
    /// A new snapshot, deleting the incremental saves up to feed position `covers` (all of
    /// them when `None`).
    Snapshot { bytes: Vec<u8>, covers: Option<u64> },
    /// One more incremental save.
    Incremental(Vec<u8>),
}

impl Write {
    /// What a merged save writes, given the version the calling thread read (`read`, as
    /// [`take_read`] gives it): its incremental save when that version was present and is not
    /// due for compaction, else a snapshot of the full save.
    pub(super) fn merged(
        read: Option<Option<ReadVersion>>,
        changes: &[u8],
        full: &mut dyn FnMut() -> Vec<u8>,
    ) -> Self {
        match read {
            Some(Some(version)) if !version.footprint.compaction_due() => {
                Self::Incremental(changes.to_vec())
            }
            Some(Some(version)) => Self::Snapshot {
                bytes: full(),
                covers: Some(version.seq),
            },
            _ => Self::Snapshot {
                bytes: full(),
                covers: None,
            },
        }
    }

    /// Whether the incremental saves this write covers are deleted with it (always, but for a
    /// test that plays a crash between the two steps).
    pub(super) fn deletes_covered(&self) -> bool {
        !LEAVE_COVERED.with(std::cell::Cell::get)
    }
}

/// The stored pieces of a document as one byte string automerge loads: the snapshot, then the
/// incremental saves in save order.
pub(super) fn joined(snapshot: &[u8], incremental: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes =
        Vec::with_capacity(snapshot.len() + incremental.iter().map(Vec::len).sum::<usize>());
    bytes.extend_from_slice(snapshot);
    for piece in incremental {
        bytes.extend_from_slice(piece);
    }
    bytes
}

/// Makes compactions on the calling thread keep the incremental saves they cover while
/// `leave` is set, as a crash between writing the snapshot and deleting them would. Test-only.
#[cfg(test)]
pub(crate) fn leave_covered(leave: bool) {
    LEAVE_COVERED.with(|cell| cell.set(leave));
}
