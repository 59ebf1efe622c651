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
//! An incremental save is appended only when it builds on what is stored: the hub hands back
//! with each save the version its merge was made from ([`sync_core::hub::StoredVersion`], read
//! with the document), and the save checks under the write lock that it is still the stored
//! one.

use sync_core::hub::StoredVersion;

thread_local! {
    /// Set by a test: compactions on this thread write the snapshot and keep the incremental
    /// saves it covers, as a crash between the two steps would.
    static LEAVE_COVERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
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
    /// What a merged save writes, given the version its merge was made from (`None`: the
    /// document was absent) and what the merge added to it (`None`: it could not be made):
    /// that incremental save when the version was present and is not due for compaction, else
    /// a snapshot of the full save.
    pub(super) fn merged(
        read: Option<StoredVersion>,
        changes: Option<&[u8]>,
        full: &mut dyn FnMut() -> Vec<u8>,
    ) -> Self {
        match (read, changes) {
            (Some(version), Some(changes)) if !version.footprint.compaction_due() => {
                Self::Incremental(changes.to_vec())
            }
            (Some(version), _) => Self::Snapshot {
                bytes: full(),
                covers: Some(version.seq),
            },
            (None, _) => Self::Snapshot {
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
