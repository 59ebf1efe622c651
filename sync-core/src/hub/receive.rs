//! Receiving what a phone pushed (`POST /sync`): each document's changes authorized and
//! merged under its lock, and saved only over the version they were merged into.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use automerge::{AutoCommit, Change, ChangeHash};

use super::delivery::DocChanges;
use super::server_actions::Floor;
use super::store::{self, DocRead};
use super::sync::Device;
use super::{Hub, HubError, HubStore, StoredDoc};
use crate::authz::{authorize_batch, delivered, in_scope, DocMeta};
use crate::doc::DocKind;
use crate::limits::LimitError;
use crate::protocol::{self, DocPush, DocUpdate, Hash, Heads, RefusedChange};

/// From this many pushed documents, they are received on every core.
const RECEIVE_IN_PARALLEL_FROM: usize = 32;

/// Pushed documents are read together ahead of their locks, in runs of at most this many
/// stored bytes (by the sizes the limits were checked with; one largest document's worth,
/// or one document however large) and this many documents (a document absent when sized
/// counts nothing, and one may have been made or grown since: the count bounds what a run
/// holds then).
const PUSH_READ_BYTES: usize = crate::limits::MAX_DOCUMENT_BYTES;
const PUSH_READ_DOCS: usize = 16;

/// What receiving one pushed document comes to for the device.
pub(super) struct Received {
    /// The document's update for the device.
    pub update: DocUpdate,
    /// The server's heads after the merge (`None` when it holds nothing of the document).
    pub heads: Option<Vec<Hash>>,
    /// Whether the push took the document out of what the device receives, and the update
    /// says so ([`leaves`]).
    pub leaves: bool,
}

/// Whether a pushed document leaves the device in the answer to its push: the device's
/// records had it (sync sent it, not a document opened on demand), the server took the push
/// whole (nothing refused, nothing lacking, every event counted: a phone must see an event
/// that did not count, and why), and its user's phones no longer receive it.
fn leaves(
    device: &Device<'_>,
    update: &DocUpdate,
    counted: bool,
    meta: &DocMeta,
    now_ms: i64,
) -> bool {
    device.held.contains_key(&update.doc_id)
        && update.refused.is_empty()
        && update.missing.is_empty()
        && counted
        && !delivered(&device.caller.user, meta, now_ms)
}

fn load(stored: &StoredDoc, id: &str) -> Result<AutoCommit, HubError> {
    AutoCommit::load(&stored.bytes).map_err(|e| HubError::Damaged {
        id: id.to_string(),
        reason: e.to_string(),
    })
}

fn heads_of(doc: &mut AutoCommit) -> Vec<Hash> {
    doc.get_heads().into_iter().map(|h| h.0).collect()
}

/// The server's changes the device lacks, given hashes it is known to have; hashes the server
/// does not hold are ignored rather than trusted.
fn changes_after(doc: &mut AutoCommit, have: &[Hash]) -> Vec<Vec<u8>> {
    // Usually the device has just pushed everything the server holds beyond what it had.
    if doc.get_heads().iter().all(|h| have.contains(&h.0)) {
        return Vec::new();
    }
    let have: Vec<ChangeHash> = have
        .iter()
        .map(|h| ChangeHash(*h))
        .filter(|h| doc.get_change_by_hash(h).is_some())
        .collect();
    doc.get_changes(&have)
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect()
}

impl<S: HubStore> Hub<S> {
    /// Receives every pushed document, in the order pushed. A large push (an office accepting
    /// a district's problems at once) is shared out over the machine's cores in contiguous
    /// runs: documents are independent of each other, each is locked while it is merged, and
    /// every save is its own atomic write (a request names each document once). `spent` adds
    /// up the document bytes of the answers; past `budget` (the first answer aside), the
    /// request fails with [`LimitError::AnswerTooLarge`].
    pub(super) fn receive_all(
        &self,
        device: &Device<'_>,
        pushes: Vec<(&DocPush, Vec<Change>)>,
        sizes: &HashMap<String, usize>,
        spent: &AtomicUsize,
        budget: usize,
        now_ms: i64,
    ) -> Vec<Result<Received, HubError>> {
        let too_large = |bytes: usize| {
            HubError::Limit(LimitError::AnswerTooLarge {
                bytes: bytes as u64,
                max: budget as u64,
            })
        };
        let receive = |(push, changes): (&DocPush, Vec<Change>), read: DocRead| {
            let before = spent.load(Ordering::Relaxed);
            if before > budget {
                return Err(too_large(before));
            }
            let received = self.receive(device, push, changes, now_ms, read)?;
            let bytes = update_bytes(&received.update);
            let before = spent.fetch_add(bytes, Ordering::Relaxed);
            let now = before + bytes;
            // The first document is answered whatever its size, so no push is refused forever.
            if now > budget && before > 0 {
                return Err(too_large(now));
            }
            Ok(received)
        };
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        if pushes.len() < RECEIVE_IN_PARALLEL_FROM || threads < 2 {
            return self.receive_run(pushes, sizes, &receive);
        }
        let per_thread = pushes.len().div_ceil(threads);
        let mut runs: Vec<Vec<(&DocPush, Vec<Change>)>> = Vec::new();
        let mut pushes = pushes.into_iter().peekable();
        while pushes.peek().is_some() {
            runs.push(pushes.by_ref().take(per_thread).collect());
        }
        std::thread::scope(|scope| {
            let workers: Vec<_> = runs
                .into_iter()
                .map(|run| scope.spawn(|| self.receive_run(run, sizes, &receive)))
                .collect();
            workers
                .into_iter()
                .flat_map(|worker| {
                    worker
                        .join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        })
    }

    /// Receives `pushes` in order, stopping at the first failure as the request does. The
    /// documents they name are read several at a time, one request to the store instead of
    /// one each, ahead of their locks, in runs of at most [`PUSH_READ_BYTES`] by their stored
    /// `sizes` and at most [`PUSH_READ_DOCS`] documents.
    fn receive_run<'p>(
        &self,
        pushes: Vec<(&'p DocPush, Vec<Change>)>,
        sizes: &HashMap<String, usize>,
        receive: &impl Fn((&'p DocPush, Vec<Change>), DocRead) -> Result<Received, HubError>,
    ) -> Vec<Result<Received, HubError>> {
        let mut received = Vec::with_capacity(pushes.len());
        let mut pushes = pushes.into_iter().peekable();
        while pushes.peek().is_some() {
            let mut run = Vec::new();
            let mut bytes = 0usize;
            while let Some((push, _)) = pushes.peek() {
                let size = sizes.get(&push.doc_id).copied().unwrap_or(0);
                let full = bytes.saturating_add(size) > PUSH_READ_BYTES;
                if !run.is_empty() && (full || run.len() == PUSH_READ_DOCS) {
                    break;
                }
                bytes = bytes.saturating_add(size);
                run.extend(pushes.next());
            }
            let ids: Vec<&str> = run.iter().map(|(push, _)| push.doc_id.as_str()).collect();
            let reads = match store::read_documents(&self.store, &ids) {
                Ok(reads) => reads,
                Err(err) => {
                    received.push(Err(err));
                    return received;
                }
            };
            for (push, read) in run.into_iter().zip(reads) {
                let outcome = receive(push, read);
                let failed = outcome.is_err();
                received.push(outcome);
                if failed {
                    return received;
                }
            }
        }
        received
    }

    /// Authorizes and merges one document's pushed changes; returns the update for the device
    /// and the heads it will hold afterwards (`None` when the server holds nothing of it).
    ///
    /// `read` is the document as read before its lock was taken. A merge from it is saved
    /// only if the document was not saved since (by another phone's sync on this server or by
    /// another server; the store checks), and a push refused on it stands only if so: else, and
    /// when that read failed, the document is read again under the lock and merged again, as
    /// every push was before documents were read ahead.
    fn receive(
        &self,
        device: &Device<'_>,
        push: &DocPush,
        changes: Vec<Change>,
        now_ms: i64,
        read: DocRead,
    ) -> Result<Received, HubError> {
        let _guard = self.lock(&push.doc_id);
        let changes = match read {
            Ok(stored) => match self.merge(device, push, changes, now_ms, stored, true) {
                // The merge took the changes; they are parsed again from the push (they passed
                // once) rather than copied for every push against this rare case.
                Err(HubError::SavedMeanwhile { .. }) => self.parse_push(push)?,
                outcome => return outcome,
            },
            Err(_) => changes,
        };
        let stored = self.store.document(&push.doc_id)?;
        self.merge(device, push, changes, now_ms, stored, false)
    }

    /// [`Self::receive`] from `stored`, under the document's lock; `ahead` when `stored` was
    /// read before it was taken.
    fn merge(
        &self,
        device: &Device<'_>,
        push: &DocPush,
        changes: Vec<Change>,
        now_ms: i64,
        stored: Option<StoredDoc>,
        ahead: bool,
    ) -> Result<Received, HubError> {
        let (doc_id, server_heads) = (push.doc_id.as_str(), &push.server_heads[..]);
        // Whether a read made ahead of the lock is no longer what is stored: a refusal on it
        // (out of scope, or changes refused) is then worked out again from what is. Other
        // outcomes that save nothing answer from the read; a save since comes to the phone
        // with the answer's walk, as any save past its cursor does.
        let moved = || -> Result<bool, HubError> {
            Ok(ahead && self.store.document_seq(doc_id)? != stored.as_ref().map(|s| s.version.seq))
        };
        let saved_meanwhile = || HubError::SavedMeanwhile {
            id: doc_id.to_owned(),
        };
        let caller = device.caller;
        let pushed: Vec<Hash> = changes.iter().map(|c| c.hash().0).collect();
        let as_pushed = protocol::heads_after(server_heads, &changes);
        if let Some(stored) = &stored {
            if !in_scope(&caller.user, &stored.meta) {
                if moved()? {
                    return Err(saved_meanwhile());
                }
                // Out of scope looks exactly like unknown, so ids do not leak.
                let refused = refuse_all(&pushed, "not_found", "no such document in your scope");
                return Ok(Received {
                    update: empty_update(doc_id, None, refused),
                    heads: None,
                    leaves: false,
                });
            }
        }
        let mut doc = match &stored {
            Some(stored) => load(stored, doc_id)?,
            None => AutoCommit::new(),
        };
        // What the store holds: the save below adds what the merge adds to it.
        let read_heads = doc.get_heads();
        let mut outcome = authorize_batch(&caller.user, &caller.actor, doc_id, &mut doc, changes);
        let mut not_counted = 0;
        if stored.is_none() {
            self.place_new(&mut doc, &mut outcome, &device.placed)?;
        }
        if !outcome.appended.is_empty() {
            // What the server sent this device of the document (delivered or on its way), and
            // what the device says it holds.
            let sent = device.held.get(doc_id).cloned().unwrap_or_default();
            let held: Vec<ChangeHash> = sent
                .confirmed
                .iter()
                .chain(&sent.pending)
                .chain(server_heads)
                .map(|h| ChangeHash(*h))
                .collect();
            let floor = Floor {
                held: &held,
                synced: device.synced,
            };
            let (meta, uncounted) =
                self.give_receipts(caller, doc_id, &mut doc, &outcome.appended, &floor, now_ms)?;
            outcome.meta = Some(meta);
            not_counted = uncounted;
        }
        if outcome.accepted.is_empty() && !outcome.refused.is_empty() && moved()? {
            return Err(saved_meanwhile());
        }
        if let (false, Some(meta)) = (outcome.accepted.is_empty(), &outcome.meta) {
            let audit = caller.audit(doc_id, &outcome.accepted, now_ms, device.synced);
            let read = (stored.as_ref().map(|s| s.version), &read_heads[..]);
            let (seq, as_made) =
                store::save_merge(&self.store, doc_id, meta, &mut doc, read, &audit)?;
            // The version just stored is in hand: its next delivery (to the other phones that
            // receive it, `GET /docs`) reads no save. Listing its changes can panic inside
            // automerge on a document hostile changes went into (as in `save_merge`); the next
            // delivery then reads the save, as before, and so it does after a merge that was
            // not saved as made.
            if as_made {
                let saved = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    DocChanges::saved(doc_id, meta.kind, &mut doc, seq)
                }));
                if let Ok(saved) = saved {
                    self.delivery.saved(doc_id, saved);
                }
            }
        }
        let exists = !doc.get_heads().is_empty();
        let meta = match (&outcome.meta, &stored) {
            (Some(meta), _) => Some(meta),
            (None, Some(stored)) => Some(&stored.meta),
            (None, None) => None,
        };
        let kind = meta.map(|meta| meta.kind);
        let mut have = server_heads.to_vec();
        have.extend(&pushed);
        let refused: Vec<RefusedChange> = outcome
            .refused
            .iter()
            .map(|(hash, why)| RefusedChange {
                hash: hash.0,
                code: why.code().to_string(),
                message: why.to_string(),
            })
            .collect();
        let snapshot = (!refused.is_empty() && exists).then(|| doc.save());
        let heads = heads_of(&mut doc);
        let mut update = DocUpdate {
            doc_id: doc_id.to_string(),
            kind,
            changes: Vec::new(),
            heads: Heads::AsPushed,
            refused,
            missing: outcome.missing_deps.iter().map(|h| h.0).collect(),
            snapshot,
        };
        let leaves = exists
            && meta.is_some_and(|meta| leaves(device, &update, not_counted == 0, meta, now_ms));
        // A document that leaves is removed from the phone by this answer (`Hub::answer`): the
        // phone holds its push (`Heads::AsPushed`) and is not sent the server's receipts of it.
        if !leaves {
            if update.snapshot.is_none() {
                update.changes = changes_after(&mut doc, &have);
            }
            if as_pushed != heads {
                update.heads = Heads::Listed(heads.clone());
            }
        }
        Ok(Received {
            update,
            heads: exists.then_some(heads),
            leaves,
        })
    }
}

/// The document bytes an update carries: its changes and its snapshot.
fn update_bytes(update: &DocUpdate) -> usize {
    update.changes.iter().map(Vec::len).sum::<usize>()
        + update.snapshot.as_ref().map_or(0, Vec::len)
}

fn refuse_all(hashes: &[Hash], code: &str, message: &str) -> Vec<RefusedChange> {
    hashes
        .iter()
        .map(|hash| RefusedChange {
            hash: *hash,
            code: code.to_string(),
            message: message.to_string(),
        })
        .collect()
}

fn empty_update(doc_id: &str, kind: Option<DocKind>, refused: Vec<RefusedChange>) -> DocUpdate {
    DocUpdate {
        doc_id: doc_id.to_string(),
        kind,
        heads: Heads::Listed(Vec::new()),
        changes: Vec::new(),
        refused,
        missing: Vec::new(),
        snapshot: None,
    }
}
