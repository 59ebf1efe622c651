//! The device's sync engine, used by the phone apps (through mobile-ffi), the field simulator
//! and the tests alike.
//!
//! It opens no connection itself: [`SyncClient::build_request`] reads the local store and
//! produces the [`SyncRequest`] to send; [`SyncClient::apply_response`] writes what the server
//! sent back into the store; [`SyncClient::sync`] is exactly these two in a loop over any
//! [`Transport`] (the app's HTTP client).
//! Per document the store keeps the server heads the device last received; a document edited
//! locally is marked dirty until the server has acknowledged its changes. Changes the server
//! refuses are moved into the store's quarantine and the document is realigned with the
//! server's version, so the device keeps syncing and nothing is lost silently.
//!
//! A phone syncing with the hub in memory, end to end, is the example in `hub`'s overview.
//! Attaching a photo ([`attach_photo`]) is the phone's too: it writes the prepared picture to
//! the app's photo folder and queues it in the store's outbox.

mod attach;
mod held;
pub mod retry;
mod rounds;

pub use attach::{attach_photo, original_path, photo_path, stage_photo, AttachError, PhotoTarget};
pub use rounds::{LinkRate, Rounds, FIRST_ASKED_BYTES};

use std::collections::{BTreeSet, HashMap, HashSet};

use automerge::{AutoCommit, Change, ChangeHash};

use crate::doc::{self, DocKind, Record};
use crate::limits::{check_changes, MAX_REQUEST_OPS};
use crate::protocol::{
    DocPush, DocUpdate, Hash, Heads, ProtocolError, RefusedChange, SyncRequest, SyncResponse,
    MAX_DROPPED_DOCS, MAX_PUSHED_DOCS,
};
use crate::store::{self, LocalStore, QuarantinedChange, StoreBatch, StoreError};

/// The peer name under which the server's heads are kept in the store's sync state.
const SERVER_PEER: &str = "server";
const CURSOR_KEY: &str = "sync.cursor";
const DIRTY_KEY: &str = "sync.dirty";
/// A document sent with this many chunks since its last compaction is compacted.
const COMPACT_AFTER_CHUNKS: u64 = 8;

/// Why a sync or a local edit failed; the store is left as it was before the call.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The phone's store failed or holds damaged data.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A document does not load or does not follow the schema.
    #[error(transparent)]
    Doc(#[from] doc::DocError),
    /// The server's answer is not a valid response.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The request did not reach the server or its answer did not come back.
    #[error("transport: {0}")]
    Transport(String),
    /// The server sent a change that does not load.
    #[error("the server sent a change that does not load: {0}")]
    BadChange(String),
}

/// How the engine reaches the server: one request body in, one response body out.
pub trait Transport {
    /// Sends one request body to `POST /api/v1/sync` and returns the answer's body.
    fn sync(&mut self, body: Vec<u8>) -> Result<Vec<u8>, ClientError>;
}

/// What one sync did, for the app's sync screen and for the simulator's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Requests sent.
    pub round_trips: u32,
    /// Documents pushed.
    pub docs_sent: usize,
    /// Changes pushed.
    pub changes_sent: usize,
    /// Documents the server sent changes or a snapshot of.
    pub docs_received: usize,
    /// Changes received.
    pub changes_received: usize,
    /// Own changes the server refused (now in the quarantine).
    pub refused: usize,
    /// Request bytes on the wire.
    pub bytes_up: usize,
    /// Answer bytes on the wire.
    pub bytes_down: usize,
    /// Documents forgotten because they left the user's scope.
    pub removed: usize,
    /// Round trips taken because more waited on either side: an answer that was a page, or a
    /// request that left documents for the next (each also counted in `round_trips`).
    pub pages: u32,
    /// The sync ended with more waiting: more than `MAX_PAGES` pages, a page that moved
    /// nothing on, or a document still to send again whole after the retries for lost
    /// dependencies. The next sync goes on from where this one stopped.
    pub more_waiting: bool,
}

/// What building a request saw of the documents it pushes: each one's store version when it
/// was read, so the answer can tell whether it was edited since without loading it again.
#[derive(Debug, Default)]
struct Built {
    versions: HashMap<String, u64>,
}

/// A request [`SyncClient::build_request`] made, with what building it saw, for
/// [`SyncClient::apply_response`]. Derefs to the [`SyncRequest`] to send.
#[derive(Debug)]
pub struct Outgoing {
    /// The request the phone sends to the server.
    pub request: SyncRequest,
    built: Built,
    /// Local changes held back (quarantined) before the request was built.
    pub held_back: usize,
    /// Changed documents left for the next request: this one carries what the server takes
    /// in one.
    pub left_behind: bool,
}

impl Outgoing {
    /// Whether more waits after this round trip on either side: the server's answer was a page,
    /// or this request left changed documents for the next. A sync goes on at once then.
    pub fn more_waits(&self, response: &SyncResponse) -> bool {
        response.more || self.left_behind
    }
}

impl std::ops::Deref for Outgoing {
    type Target = SyncRequest;

    fn deref(&self) -> &SyncRequest {
        &self.request
    }
}

/// The phone's sync engine over its [`LocalStore`]: saves local edits, builds requests,
/// applies answers. Holds no state of its own; everything lives in the store.
#[derive(Debug)]
pub struct SyncClient<'a> {
    store: &'a LocalStore,
}

fn to_store_kind(kind: DocKind) -> store::DocKind {
    match kind {
        DocKind::Patrol => store::DocKind::Patrol,
        DocKind::Issue => store::DocKind::Issue,
    }
}

fn encode_dirty(dirty: &BTreeSet<String>) -> Result<Vec<u8>, ClientError> {
    Ok(
        serde_json::to_vec(dirty).map_err(|source| StoreError::Codec {
            key: DIRTY_KEY.into(),
            source,
        })?,
    )
}

/// The server's heads of a document after this answer, with [`Heads::AsPushed`] resolved
/// against what the request pushed.
fn server_heads_after(
    request: &SyncRequest,
    update: &DocUpdate,
) -> Result<Vec<Hash>, ProtocolError> {
    match &update.heads {
        Heads::Listed(heads) => Ok(heads.clone()),
        Heads::AsPushed => request
            .docs
            .iter()
            .find(|p| p.doc_id == update.doc_id)
            .ok_or_else(|| {
                ProtocolError::Malformed(format!(
                    "{}: heads as pushed for a document the request did not push",
                    update.doc_id
                ))
            })?
            .heads_after(),
    }
}

impl<'a> SyncClient<'a> {
    /// An engine over the phone's store.
    pub fn new(store: &'a LocalStore) -> Self {
        Self { store }
    }

    /// Persists the document's new local changes and marks it for the next sync. Returns only
    /// after the store has flushed, so the edit survives the app being killed.
    pub fn save<R: Record>(
        &self,
        record: &mut R,
        kind: DocKind,
        doc_id: &str,
    ) -> Result<(), ClientError> {
        let bytes = record.save_incremental();
        self.store
            .append_doc_changes(doc_id, to_store_kind(kind), &bytes)?;
        let mut dirty = self.dirty()?;
        if dirty.insert(doc_id.to_string()) {
            self.put_dirty(&dirty)?;
        }
        Ok(())
    }

    /// Loads a document from the store, or `None` if the device never had it.
    pub fn load(&self, doc_id: &str) -> Result<Option<AutoCommit>, ClientError> {
        match self.store.load_doc(doc_id)? {
            Some(bytes) => Ok(Some(AutoCommit::load(&bytes).map_err(doc::DocError::from)?)),
            None => Ok(None),
        }
    }

    /// Documents with local changes the server has not acknowledged yet.
    pub fn dirty(&self) -> Result<BTreeSet<String>, ClientError> {
        Ok(match self.store.meta(DIRTY_KEY)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Codec {
                key: DIRTY_KEY.into(),
                source,
            })?,
            None => BTreeSet::new(),
        })
    }

    fn put_dirty(&self, dirty: &BTreeSet<String>) -> Result<(), ClientError> {
        self.store.put_meta(DIRTY_KEY, &encode_dirty(dirty)?)?;
        Ok(())
    }

    /// The server's feed position this phone has fully received (0 before its first sync).
    pub fn cursor(&self) -> Result<u64, ClientError> {
        Ok(match self.store.meta(CURSOR_KEY)? {
            Some(bytes) if bytes.len() == 8 => {
                u64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]))
            }
            _ => 0,
        })
    }

    fn server_heads(&self, doc_id: &str) -> Result<Vec<ChangeHash>, ClientError> {
        let bytes = self
            .store
            .sync_state(doc_id, SERVER_PEER)?
            .unwrap_or_default();
        Ok(bytes
            .chunks_exact(32)
            .filter_map(|h| ChangeHash::try_from(h).ok())
            .collect())
    }

    /// The next round trip, as [`Self::sync`] makes it: every dirty document's changes since
    /// the server heads the device last received, after the changes the server would refuse by
    /// its limits are held back (as [`Self::hold_back_oversized`]). Send
    /// `outgoing.encode()`, then hand the answer to [`Self::apply_response`].
    pub fn build_request(&self, now_ms: i64) -> Result<Outgoing, ClientError> {
        let (request, built, held_back, left_behind) = self.build(now_ms)?;
        Ok(Outgoing {
            request,
            built,
            held_back,
            left_behind,
        })
    }

    /// Builds the request, reading each dirty document once. Changes the server would refuse by
    /// its limits are first taken out of the way (as [`Self::hold_back_oversized`]); returns how
    /// many were, and whether documents were left for the next request.
    fn build(&self, now_ms: i64) -> Result<(SyncRequest, Built, usize, bool), ClientError> {
        let mut docs = Vec::new();
        let mut ops = 0usize;
        let mut built = Built::default();
        let mut held_back = 0;
        let mut left_behind = false;
        for doc_id in self.dirty()? {
            // The version is read before the document, so an edit in between shows as a
            // newer version when the answer comes, never as an older one.
            let mut stat = self.store.doc_stat(&doc_id)?;
            let Some(mut doc) = self.load(&doc_id)? else {
                continue;
            };
            let server_heads = self.server_heads(&doc_id)?;
            let mut changes = doc.get_changes(&server_heads);
            let held = self.hold_back(&doc_id, &changes, now_ms)?;
            if held > 0 {
                held_back += held;
                stat = self.store.doc_stat(&doc_id)?;
                let Some(realigned) = self.load(&doc_id)? else {
                    continue;
                };
                doc = realigned;
                changes = doc.get_changes(&server_heads);
            }
            if changes.is_empty() {
                continue;
            }
            // A request carries what the server takes in one: the other documents stay marked
            // and go in the next request.
            let doc_ops: usize = changes.iter().map(|c| c.len()).sum();
            if !docs.is_empty()
                && (docs.len() >= MAX_PUSHED_DOCS || ops + doc_ops > MAX_REQUEST_OPS)
            {
                left_behind = true;
                break;
            }
            let changes: Vec<Vec<u8>> = changes.iter().map(|c| c.raw_bytes().to_vec()).collect();
            ops += doc_ops;
            if let Some(stat) = stat {
                let mut version = stat.version;
                // A document saved edit by edit (a patrol's track, a chunk a minute) loads
                // change by change; while it is at hand, one full save makes every later load
                // (the next edit, the next sync) read it in one piece.
                // (Never while the copy waits for a missing change: a full save leaves out
                // changes waiting for it.)
                if stat.chunks >= COMPACT_AFTER_CHUNKS && doc.get_missing_deps(&[]).is_empty() {
                    if let Some(compacted) =
                        self.store.compact_doc_at(&doc_id, version, &doc.save())?
                    {
                        version = compacted;
                    }
                }
                built.versions.insert(doc_id.clone(), version);
            }
            docs.push(DocPush {
                doc_id,
                server_heads: server_heads.iter().map(|h| h.0).collect(),
                changes,
            });
        }
        let dropped = self.dropped()?;
        left_behind |= dropped.len() > MAX_DROPPED_DOCS;
        let request = SyncRequest {
            cursor: self.cursor()?,
            docs,
            dropped: dropped.into_iter().take(MAX_DROPPED_DOCS).collect(),
        };
        Ok((request, built, held_back, left_behind))
    }

    /// Applies the server's answer. Returns whether another round trip is needed (the server
    /// lacked dependencies of some pushed changes).
    ///
    /// Everything the answer brings (documents, the server heads they bring the device to,
    /// the dirty marks it clears, documents that left the scope and the cursor) is stored in one
    /// atomic batch with one flush: after a crash the device holds either all of it or none of
    /// it and fetches it again. Local work is never part of that batch; refused changes go to
    /// the quarantine, flushed, before the batch that realigns their document.
    pub fn apply_response(
        &self,
        outgoing: &Outgoing,
        response: &SyncResponse,
        now_ms: i64,
        report: &mut SyncReport,
    ) -> Result<bool, ClientError> {
        self.apply(
            &outgoing.request,
            Some(&outgoing.built),
            response,
            now_ms,
            report,
        )
    }

    fn apply(
        &self,
        request: &SyncRequest,
        built: Option<&Built>,
        response: &SyncResponse,
        now_ms: i64,
        report: &mut SyncReport,
    ) -> Result<bool, ClientError> {
        let mut again = false;
        let mut dirty = self.dirty()?;
        // An answer that does not fit the request is refused before any of it is applied.
        let heads = response
            .docs
            .iter()
            .map(|update| server_heads_after(request, update))
            .collect::<Result<Vec<_>, _>>()?;
        let mut batch = StoreBatch::new();
        let mut in_batch: HashSet<&str> = HashSet::new();
        // Documents sent on top of a copy this phone dropped (see `merge_changes`).
        let mut gone: BTreeSet<String> = BTreeSet::new();
        for (update, heads) in response.docs.iter().zip(heads) {
            if !in_batch.insert(&update.doc_id) {
                // The same document twice in one answer: the second builds on the first.
                self.store.commit_batch(std::mem::take(&mut batch))?;
                in_batch.clear();
                in_batch.insert(&update.doc_id);
            }
            report.docs_received += usize::from(!update.changes.is_empty());
            report.changes_received += update.changes.len();
            report.refused += update.refused.len();
            let mut touched = !update.refused.is_empty();
            if touched {
                self.quarantine(update, now_ms)?;
                if update.snapshot.is_none() {
                    self.drop_refused(update)?;
                }
            }
            let mut merged = if let Some(snapshot) = &update.snapshot {
                touched = true;
                let doc = AutoCommit::load(snapshot)
                    .map_err(|e| ClientError::BadChange(e.to_string()))?;
                if self.store.has_doc(&update.doc_id)? {
                    batch.compact_doc(&update.doc_id, snapshot.clone())?;
                } else if let Some(kind) = update.kind {
                    batch.append_doc_changes(
                        &update.doc_id,
                        to_store_kind(kind),
                        snapshot.clone(),
                    )?;
                }
                Some(doc)
            } else {
                self.merge_changes(update, &mut batch, &mut gone)?
            };
            if gone.contains(&update.doc_id) {
                continue;
            }
            // Changes built on some this copy lacks wait in automerge unseen and are not kept:
            // the server sent them believing the phone held more than it does. The copy is
            // not brought to the server's heads; it goes up whole in the next round trip, and
            // the answer to that brings everything it lacks.
            let lacking = merged
                .as_mut()
                .is_some_and(|doc| !doc.get_missing_deps(&[]).is_empty());
            if lacking {
                dirty.insert(update.doc_id.clone());
            }
            if update.missing.is_empty() && !lacking {
                batch.put_sync_state(&update.doc_id, SERVER_PEER, &heads.concat())?;
                let push = request.docs.iter().find(|p| p.doc_id == update.doc_id);
                if let Some(push) = push {
                    // An edit saved while the request was on its way is not in it: the
                    // document stays marked until that edit has been sent too.
                    let unchanged = !touched
                        && built
                            .and_then(|b| b.versions.get(&update.doc_id))
                            .is_some_and(|&v| {
                                self.store.doc_version(&update.doc_id).ok() == Some(Some(v))
                            });
                    if unchanged || !self.edited_since(push, &heads, merged)? {
                        dirty.remove(&update.doc_id);
                    }
                }
            } else {
                // The server lost what we thought it had, or thought we had what we lack:
                // resend the whole history next time.
                batch.put_sync_state(&update.doc_id, SERVER_PEER, &[])?;
                again = true;
            }
        }
        let restored = response.cursor < request.cursor;
        if restored {
            // The server's feed stands behind the cursor it gave this phone: it was restored
            // from a backup (or is another server) and may lack what the phone sent since,
            // including work it had acknowledged. Every document the phone holds goes up
            // again: those in this answer from the heads the server just named (it sends only
            // what the server lacks), every other one whole, as when the server lost a
            // dependency; the server keeps what it has and takes what it lacks. Nothing is
            // forgotten in this round, not even what the server says left the phone's scope:
            // the phone may hold the only copy of work on it.
            let answered: HashSet<&str> = response
                .docs
                .iter()
                .filter(|u| u.missing.is_empty())
                .map(|u| u.doc_id.as_str())
                .collect();
            for kind in [store::DocKind::Patrol, store::DocKind::Issue] {
                for doc_id in self.store.doc_ids(kind)? {
                    if !answered.contains(doc_id.as_str()) {
                        batch.put_sync_state(&doc_id, SERVER_PEER, &[])?;
                    }
                    dirty.insert(doc_id);
                }
            }
            again = true;
        }
        for doc_id in response.removed.iter().filter(|_| !restored) {
            // A document that left the user's scope is forgotten, unless it holds local work
            // the server has not taken yet: that stays until it is sent (and refused or kept).
            if !dirty.contains(doc_id) {
                batch.remove_doc(doc_id)?;
                report.removed += 1;
            }
        }
        if !request.dropped.is_empty() || !gone.is_empty() {
            // The server has heard of these drops; those it sent on top of anyway are told
            // again.
            let mut dropped = self.dropped()?;
            for id in &request.dropped {
                dropped.remove(id);
            }
            dropped.extend(gone);
            batch.put_meta(held::DROPPED_KEY, &held::encode_dropped(&dropped)?)?;
        }
        batch.put_meta(DIRTY_KEY, &encode_dirty(&dirty)?)?;
        batch.put_meta(CURSOR_KEY, &response.cursor.to_le_bytes())?;
        self.store.commit_batch(batch)?;
        Ok(again)
    }

    /// Whether the device's copy has a head that neither the pushed request nor the server's
    /// answer knows: a local edit saved after the request was built. `merged` is the copy as
    /// this answer leaves it, when it is at hand; otherwise it is loaded.
    fn edited_since(
        &self,
        push: &DocPush,
        server_heads: &[Hash],
        merged: Option<AutoCommit>,
    ) -> Result<bool, ClientError> {
        let mut doc = match merged {
            Some(doc) => doc,
            None => match self.load(&push.doc_id)? {
                Some(doc) => doc,
                None => return Ok(false),
            },
        };
        let unknown: Vec<Hash> = doc
            .get_heads()
            .iter()
            .map(|h| h.0)
            .filter(|h| !server_heads.contains(h) && !push.server_heads.contains(h))
            .collect();
        if unknown.is_empty() {
            return Ok(false);
        }
        let pushed: BTreeSet<Hash> = push
            .changes
            .iter()
            .filter_map(|raw| Change::from_bytes(raw.clone()).ok())
            .map(|c| c.hash().0)
            .collect();
        Ok(unknown.iter().any(|h| !pushed.contains(h)))
    }

    /// Takes refused changes (already quarantined) and everything built on them out of the
    /// device's copy, when the server sent no version to realign with (a document that is no
    /// longer in the user's scope): the copy must never show what the server did not accept.
    fn drop_refused(&self, update: &DocUpdate) -> Result<(), ClientError> {
        let Some(mut doc) = self.load(&update.doc_id)? else {
            return Ok(());
        };
        let mut dropped: BTreeSet<Hash> = update.refused.iter().map(|r| r.hash).collect();
        let mut kept = Vec::new();
        // Changes come in causal order, so a change's dependencies are decided before it.
        for change in doc.get_changes(&[]) {
            let hash = change.hash().0;
            if dropped.contains(&hash) || change.deps().iter().any(|d| dropped.contains(&d.0)) {
                dropped.insert(hash);
            } else {
                kept.push(change.clone());
            }
        }
        if kept.is_empty() {
            self.store.remove_doc(&update.doc_id)?;
            return Ok(());
        }
        let mut rebuilt = AutoCommit::new();
        rebuilt
            .apply_changes(kept)
            .map_err(|e| ClientError::BadChange(e.to_string()))?;
        self.store.compact_doc(&update.doc_id, &rebuilt.save())?;
        Ok(())
    }

    /// Adds the server's changes of one document to `batch`, and returns the merged copy when
    /// it had to be built anyway.
    ///
    /// Changes of a document the phone does not hold that do not make a whole document are
    /// not kept: the server sent them on top of a copy the phone dropped (a request built
    /// before the drop reached the server after the request that told it). The id goes into
    /// `gone`, to be told again.
    fn merge_changes(
        &self,
        update: &DocUpdate,
        batch: &mut StoreBatch,
        gone: &mut BTreeSet<String>,
    ) -> Result<Option<AutoCommit>, ClientError> {
        let (false, Some(kind)) = (update.changes.is_empty(), update.kind) else {
            return Ok(None);
        };
        let changes = update
            .changes
            .iter()
            .map(|raw| {
                Change::from_bytes(raw.clone()).map_err(|e| ClientError::BadChange(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (mut doc, held) = match self.load(&update.doc_id)? {
            Some(mut doc) => {
                let heads = doc.get_heads();
                (doc, Some(heads))
            }
            None => (AutoCommit::new(), None),
        };
        doc.apply_changes(changes)
            .map_err(|e| ClientError::BadChange(e.to_string()))?;
        if held.is_none() && !doc.get_missing_deps(&[]).is_empty() {
            gone.insert(update.doc_id.clone());
            return Ok(None);
        }
        // A copy the phone holds gains only the changes new to it (a copy loaded from the store
        // would otherwise re-encode and append its whole history). A document new to the phone
        // is kept as one uncompressed save: compressing it cost a supervisor's phone receiving a
        // district's week more than applying the changes did, and loading it later skips
        // inflating it.
        let bytes = match held {
            Some(heads) => doc.save_after(&heads),
            None => doc.save_nocompress(),
        };
        batch.append_doc_changes(&update.doc_id, to_store_kind(kind), bytes)?;
        Ok(Some(doc))
    }

    /// Keeps every refused local change, with the server's reason, before the document is
    /// realigned with the server's version.
    fn quarantine(&self, update: &DocUpdate, now_ms: i64) -> Result<(), ClientError> {
        let Some(mut doc) = self.load(&update.doc_id)? else {
            return Ok(());
        };
        for refused in &update.refused {
            let hash = ChangeHash(refused.hash);
            let change = doc
                .get_change_by_hash(&hash)
                .map(|c| c.raw_bytes().to_vec())
                .unwrap_or_default();
            self.store.quarantine(&QuarantinedChange {
                doc_id: update.doc_id.clone(),
                change_hash: hex::encode(refused.hash),
                change,
                reason: format!("{}: {}", refused.code, refused.message),
                refused_at_ms: now_ms,
            })?;
        }
        Ok(())
    }

    /// Takes out of the way, before anything is sent, every local change the server would
    /// refuse by its limits (`limits`: size, operations, string length, nesting), and
    /// everything built on it: they go to the quarantine with the reason, exactly as a change
    /// the server refused, so one oversized edit cannot fail every sync of the phone.
    pub fn hold_back_oversized(&self, now_ms: i64) -> Result<usize, ClientError> {
        let mut held_back = 0;
        for doc_id in self.dirty()? {
            let Some(mut doc) = self.load(&doc_id)? else {
                continue;
            };
            let server_heads = self.server_heads(&doc_id)?;
            held_back += self.hold_back(&doc_id, &doc.get_changes(&server_heads), now_ms)?;
        }
        Ok(held_back)
    }

    /// Quarantines those of `changes` (a document's unsent changes) the server would refuse by
    /// its limits, and takes them and what is built on them out of the document.
    fn hold_back(
        &self,
        doc_id: &str,
        changes: &[Change],
        now_ms: i64,
    ) -> Result<usize, ClientError> {
        let refused: Vec<RefusedChange> = changes
            .iter()
            .filter_map(|change| {
                let why = check_changes(std::slice::from_ref(change), 0).err()?;
                Some(RefusedChange {
                    hash: change.hash().0,
                    code: why.code().to_string(),
                    message: why.to_string(),
                })
            })
            .collect();
        if refused.is_empty() {
            return Ok(0);
        }
        let held_back = refused.len();
        let update = DocUpdate {
            doc_id: doc_id.to_owned(),
            kind: None,
            heads: Heads::Listed(Vec::new()),
            changes: Vec::new(),
            refused,
            missing: Vec::new(),
            snapshot: None,
        };
        self.quarantine(&update, now_ms)?;
        self.drop_refused(&update)?;
        Ok(held_back)
    }
}
