//! What the phone keeps: documents opened on demand, and a store bounded in size and age.
//!
//! **On demand.** A chief opens a subordinate's patrol from the overview: [`PhoneApp::fetch_document`]
//! asks the server for that one document (a standard automerge sync exchange with
//! `POST /docs/{id}/automerge-sync`, started from nothing, so the whole of the server's copy
//! comes), stores it beside the synced documents and pins it for
//! [`StoreBounds::pin_ms`](sync_core::evict::StoreBounds) or until
//! [`PhoneApp::release_document`]. It is read with the usual calls (`patrol`, `issue`). A
//! document outside the user's scope is answered by the server exactly as one that does not
//! exist, and both are `NotFound` here; without a network it is `Network`.
//!
//! A fetched document does not join what the server records this phone as holding (the
//! per-device ledger of the batch sync): that record says what sync keeps current on the phone,
//! and the server removes from phones at their next sync whatever it records but no longer
//! delivers; recording a fetched patrol there would have it removed at the next sync, while the
//! chief reads it. So its later changes do not reach the phone by sync (unless it becomes one
//! the user receives, when sync sends it whole); fetching it again brings them.
//!
//! **Bounded.** [`PhoneApp::evict`] applies sync-core's rule (`sync_core::evict`, table in its
//! doc) to what the phone holds and drops what it may, telling the server at the next sync.
//! [`PhoneApp::sync`] runs it first, so the drops go up in the same request. What the rule
//! needs to know of each document (its size, its routing facts, when it last changed on the
//! phone) is kept in a small index, read again from a document only when it changed. A
//! document the phone makes (a patrol, a reported problem) enters the index as it is made, and
//! a patrol's routing facts are read once: they are its header (`DocMeta::lasts`). A patrol
//! chosen to go on such facts is read first, so a copy that no longer reads stays.
//!
//! **Its clock never runs backwards.** Ages are read on the phone's clock, never behind the
//! highest reading the rule has seen (kept in the store), by sync-core's rule
//! (`evict::store_time`, `evict::dated_at_most`): a clock set back and put right must not make
//! the chief's own recent week look months old.

use std::collections::{BTreeMap, BTreeSet};

use automerge::sync::{self, SyncDoc};
use automerge::AutoCommit;
use serde::{Deserialize, Serialize};
use sync_core::authz::DocMeta;
use sync_core::client::SyncClient;
use sync_core::evict::{dated_at_most, evictions, store_time, HeldDoc};
use sync_core::protocol::check_doc_id;
use sync_core::store::DocKind as StoreKind;

use crate::client::{count, lock, PhoneApp};
use crate::error::{ChiefsyncError, Result};

/// Most messages one fetch exchanges with the server: it takes two when the document comes in
/// the server's first answer.
const MAX_FETCH_ROUNDS: usize = 6;
/// Per document: its store version when last read, when it last changed on the phone, its
/// size and its routing facts.
const INDEX_KEY: &str = "keep.index";
/// Documents opened on demand, and until when each is pinned.
const PINS_KEY: &str = "keep.pins";
/// The highest reading of the phone's clock the rule has seen (Unix ms, `evict::store_time`).
const CLOCK_KEY: &str = "keep.clock";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    version: u64,
    changed_ms: i64,
    bytes: u64,
    meta: Option<DocMeta>,
}

/// A document fetched on demand.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FetchedDocument {
    pub id: String,
    /// `patrol` or `issue`: read it with `patrol` or `issue`.
    pub kind: String,
    /// It stays on the phone at least until then (Unix ms), unless released earlier.
    pub pinned_until_ms: i64,
}

/// What one pass of [`PhoneApp::evict`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct EvictionReport {
    /// Documents dropped from the phone (the server hears of them at the next sync).
    pub dropped: u32,
    /// Bytes of documents held before and after.
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Documents held after.
    pub docs_after: u32,
    /// Photos removed from the phone with the last document that referenced them (each was
    /// on the server already), and their bytes.
    pub photos_removed: u32,
    pub photo_bytes_removed: u64,
}

fn read_json<T: serde::de::DeserializeOwned + Default>(app: &PhoneApp, key: &str) -> Result<T> {
    Ok(match app.store.meta(key)? {
        // An index that does not read is rebuilt from the documents; pins are a convenience.
        Some(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
        None => T::default(),
    })
}

/// The routing facts of a stored copy, `None` when it does not read.
fn reads(bytes: &[u8]) -> Option<DocMeta> {
    AutoCommit::load(bytes)
        .ok()
        .and_then(|doc| DocMeta::of(&doc).ok())
}

fn write_json<T: Serialize>(app: &PhoneApp, key: &str, value: &T) -> Result<()> {
    app.store.put_meta(key, &serde_json::to_vec(value)?)?;
    Ok(())
}

impl PhoneApp {
    /// The time this rule goes by: the phone's clock, never behind the highest reading seen
    /// before (see the module). Called with the document lock held, so two passes cannot
    /// write it out of order.
    fn keep_clock(&self) -> Result<i64> {
        let seen: Option<i64> = read_json(self, CLOCK_KEY)?;
        let (now, keep) = store_time(seen, self.now(), &self.bounds);
        if let Some(reading) = keep {
            write_json(self, CLOCK_KEY, &reading)?;
        }
        Ok(now)
    }

    /// Enters a document the phone has just made into the index with its routing facts, read
    /// from the copy in hand: the next pass would otherwise load it for them (a week of a
    /// chief's patrols was most of the pass before their sync). Called with the document lock
    /// held, after the document was saved. The index is the pass's shortcut, not the record:
    /// an entry not written is read at the next pass, so a failure here fails nothing.
    pub(crate) fn index_made(&self, id: &str, doc: &AutoCommit) {
        let _ = self.enter_made(id, doc);
    }

    fn enter_made(&self, id: &str, doc: &AutoCommit) -> Result<()> {
        let Some(stat) = self.store.doc_stat(id)? else {
            return Ok(());
        };
        let bytes = self.store.load_doc(id)?.map_or(0, |b| b.len() as u64);
        let entry = Entry {
            version: stat.version,
            changed_ms: self.keep_clock()?,
            bytes,
            meta: DocMeta::of(doc).ok(),
        };
        let mut index: BTreeMap<String, Entry> = read_json(self, INDEX_KEY)?;
        index.insert(id.to_owned(), entry);
        write_json(self, INDEX_KEY, &index)
    }

    /// Fetches one document of the user's scope from the server and keeps it on the phone,
    /// pinned (see the module). `NotFound` when the server has no such document in the user's
    /// scope (it does not say which), `Network` when it cannot be reached.
    pub fn fetch_document(&self, id: String) -> Result<FetchedDocument> {
        check_doc_id(&id)?;
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            return Err(ChiefsyncError::invalid(format!(
                "{id:?} is not a document id"
            )));
        }
        self.account.signed_in()?;
        let mut doc = AutoCommit::new();
        let mut state = sync::State::new();
        let account = &self.account;
        for _ in 0..MAX_FETCH_ROUNDS {
            let Some(message) = doc.sync().generate_sync_message(&mut state) else {
                break;
            };
            let body = message.encode();
            let reply =
                account.authorized(|token| account.api().automerge_sync(token, &id, &body))?;
            let Some(reply) = reply else {
                break;
            };
            let message = sync::Message::decode(&reply).map_err(|e| {
                ChiefsyncError::internal(format!("the server's sync message does not read: {e}"))
            })?;
            doc.sync()
                .receive_sync_message(&mut state, message)
                .map_err(|e| ChiefsyncError::internal(format!("the server's sync message: {e}")))?;
        }
        if doc.get_heads().is_empty() {
            return Err(ChiefsyncError::not_found(format!(
                "no document {id} in your scope"
            )));
        }
        let _docs = self.lock_docs();
        let now = self.keep_clock()?;
        let kind = SyncClient::new(&self.store).keep_fetched(&id, &mut doc)?;
        let until = now.saturating_add(self.bounds.pin_ms);
        let mut pins: BTreeMap<String, i64> = read_json(self, PINS_KEY)?;
        pins.insert(id.clone(), until);
        write_json(self, PINS_KEY, &pins)?;
        Ok(FetchedDocument {
            id,
            kind: kind.as_str().to_owned(),
            pinned_until_ms: until,
        })
    }

    /// The app is done with a document it fetched: it may go like any other (the rule of
    /// `sync_core::evict` decides when). Releasing a document not pinned does nothing.
    pub fn release_document(&self, id: String) -> Result<()> {
        let _docs = self.lock_docs();
        let mut pins: BTreeMap<String, i64> = read_json(self, PINS_KEY)?;
        if pins.remove(&id).is_some() {
            write_json(self, PINS_KEY, &pins)?;
        }
        Ok(())
    }

    /// Drops what the phone may drop now (`sync_core::evict`); the server hears of it at the
    /// next sync. Runs by itself at the start of every sync.
    pub fn evict(&self) -> Result<EvictionReport> {
        let user = self.account.user()?.user;
        // Patrols being walked, read before the document lock (finishing a patrol takes the
        // two the other way round).
        let walking: BTreeSet<String> = lock(&self.tracks).keys().cloned().collect();
        let _docs = self.lock_docs();
        let now = self.keep_clock()?;
        let client = SyncClient::new(&self.store);
        let dirty = client.dirty()?;
        let mut index: BTreeMap<String, Entry> = read_json(self, INDEX_KEY)?;
        let mut pins: BTreeMap<String, i64> = read_json(self, PINS_KEY)?;
        let mut held = Vec::new();
        let mut ids = BTreeSet::new();
        // Patrols whose facts were taken from the index for a version not read.
        let mut unread = BTreeSet::new();
        for kind in [StoreKind::Patrol, StoreKind::Issue] {
            for id in self.store.doc_ids(kind)? {
                let Some(stat) = self.store.doc_stat(&id)? else {
                    continue;
                };
                let entry = match index.get(&id) {
                    Some(entry) if entry.version == stat.version => entry.clone(),
                    // New to the index, or changed on the phone since it was last read.
                    _ => {
                        let bytes = self.store.load_doc(&id)?.unwrap_or_default();
                        // Facts that outlast every edit (a patrol's) are not read again: the
                        // load was most of a pass after a sync that changed the chief's
                        // patrols.
                        let known = index
                            .get(&id)
                            .and_then(|entry| entry.meta.clone())
                            .filter(|meta| meta.lasts() && kind == StoreKind::Patrol);
                        if known.is_some() {
                            unread.insert(id.clone());
                        }
                        let meta = known.or_else(|| reads(&bytes));
                        Entry {
                            version: stat.version,
                            changed_ms: now,
                            bytes: bytes.len() as u64,
                            meta,
                        }
                    }
                };
                let unsent = dirty.contains(&id)
                    || walking.contains(&id)
                    // Track points buffered beyond the base count (a finished patrol leaves
                    // an empty buffer).
                    || self
                        .store
                        .meta(&crate::patrol::pending_key(&id))?
                        .is_some_and(|buffer| buffer.len() > 8)
                    || !self.store.pending_for(&id)?.is_empty();
                // Dated or pinned ahead of the rule's time (by a clock since put back): from
                // now. Kept so, the document ages from now on.
                let (changed_ms, pinned_until_ms) =
                    dated_at_most(entry.changed_ms, pins.get(&id).copied(), &self.bounds, now);
                let entry = Entry {
                    changed_ms,
                    ..entry
                };
                held.push(HeldDoc {
                    id: id.clone(),
                    meta: entry.meta.clone(),
                    bytes: entry.bytes,
                    changed_ms: entry.changed_ms,
                    unsent,
                    quarantined: !self.store.quarantined_for(&id)?.is_empty(),
                    pinned_until_ms,
                });
                index.insert(id.clone(), entry);
                ids.insert(id);
            }
        }
        let bytes_before: u64 = held.iter().map(|d| d.bytes).sum();
        // A copy whose facts do not read is never dropped (it is left for the integrity
        // check): a patrol chosen on facts taken from the index is read before it goes.
        let mut chosen = evictions(&user, &held, &self.bounds, now);
        let mut damaged = BTreeSet::new();
        for id in chosen.iter().filter(|id| unread.contains(*id)) {
            if reads(&self.store.load_doc(id)?.unwrap_or_default()).is_none() {
                damaged.insert(id.clone());
            }
        }
        chosen.retain(|id| !damaged.contains(id));
        for id in &damaged {
            if let Some(entry) = index.get_mut(id) {
                entry.meta = None;
            }
        }
        let dropped = client.drop_docs(&chosen)?;
        for id in &dropped {
            ids.remove(id);
        }
        // Photos the server holds leave with the last document on the phone that references
        // them (`LocalStore::release_photos`); the outbox lets go first, so a file is never
        // listed without being there. An original kept by configuration stays: it is the
        // user's copy, not the outbox's.
        let (mut photos_removed, mut photo_bytes_removed) = (0, 0);
        for photo in self.store.release_photos()? {
            // Where the library keeps it now (the app's folder may have moved since the photo
            // was attached, as an app's does on some updates), not the path listed then.
            let file = sync_core::client::photo_path(&self.photo_dir, &photo.sha256);
            match std::fs::remove_file(&file) {
                Ok(()) => {
                    photos_removed += 1;
                    photo_bytes_removed += photo.size;
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                // Left behind unlisted: the space is lost, not the photo (the server has it).
                Err(_) => {}
            }
        }
        // Forget what the phone no longer holds, and pins that ended.
        index.retain(|id, _| ids.contains(id));
        pins.retain(|id, until| ids.contains(id) && *until > now);
        write_json(self, INDEX_KEY, &index)?;
        write_json(self, PINS_KEY, &pins)?;
        let bytes_after = index.values().map(|e| e.bytes).sum();
        Ok(EvictionReport {
            dropped: count(dropped.len()),
            bytes_before,
            bytes_after,
            docs_after: count(ids.len()),
            photos_removed,
            photo_bytes_removed,
        })
    }
}
