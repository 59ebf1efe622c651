//! The sync hub's storage on sled: patrol and issue documents with their routing facts, the
//! change feed devices sync from, the audit of accepted changes, and what each device holds.
//!
//! Trees and keys:
//! - `doc_meta`: id → JSON [`DocMeta`] (what routing and listings read without loading bytes);
//! - `doc_bytes`: id → CRC-32 (big-endian) + the document's snapshot, a full automerge save, so
//!   a damaged document is reported, never loaded as valid data;
//! - `doc_changes`: `id \0 n` (big-endian u64, counting the document's incremental saves, one
//!   more than the last one kept; not the feed position, which a restore numbers anew) → CRC-32
//!   and an incremental save made since the snapshot (see `chunks`; a store written before
//!   these existed has none, and reads as it is);
//! - `doc_seq`: id → its latest feed position (big-endian u64). A document appears in the feed
//!   once, at its latest position; the feed in position order is built from these in memory;
//! - `audit`: `id \0 change-hash` → JSON [`AuditEntry`]; a retried change keeps its first entry;
//! - `device_docs`: `device \0 id` → JSON [`DeviceDoc`]; `device_scope`: device → fingerprint;
//!   `device_synced`: device → its last acknowledged sync with nothing pushed (big-endian i64);
//! - `sync_states`: `device \0 id` → the standard automerge sync state.
//!
//! Feed positions are handed out under one lock and committed in the same transaction as the
//! document, so a reader that sees position `n` sees every position below it: a device cursor
//! never skips a document saved concurrently.
//!
//! Routing facts and feed positions are also kept in memory, complete (`doc_index`): every
//! walk over them (the feed since a device's cursor, a page of ids, every document) reads that
//! index instead of sled's trees; sled's copies are what the index is read from at start.

use std::collections::{HashMap, HashSet};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use sync_core::authz::{DocMeta, Reach};
use sync_core::hub::{
    AuditEntry, AuditLog, DeviceClaim, DeviceDoc, DeviceLedger, DocumentStore, Footprint, HubError,
    HubStore, ReferenceSource, StoredDoc, StoredVersion,
};
use sync_core::model::{Asset, Category, User};

use super::chunks::{self, Write};
use super::doc_index::DocIndex;
use super::sled_store::SledStore;
use super::Store;

pub(super) const FEED_HEAD: &[u8] = b"feed.head";
/// How far a backup moves the live feed head: more saves than a restored district server takes
/// in years. Cursors stay far below 2^53 (exact in JSON numbers) for millions of backups.
pub const BACKUP_FEED_GAP: u64 = 1 << 32;

fn storage(err: impl std::fmt::Display) -> HubError {
    HubError::Storage(err.to_string())
}

fn pair(a: &str, b: &str) -> Vec<u8> {
    [a.as_bytes(), b"\0", b.as_bytes()].concat()
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, HubError> {
    serde_json::to_vec(value).map_err(storage)
}

fn from_json<T: serde::de::DeserializeOwned>(id: &str, bytes: &[u8]) -> Result<T, HubError> {
    serde_json::from_slice(bytes).map_err(|e| HubError::Damaged {
        id: id.to_owned(),
        reason: e.to_string(),
    })
}

/// A stored value with its CRC-32 in front.
fn sealed(bytes: &[u8]) -> Vec<u8> {
    [&crc32fast::hash(bytes).to_be_bytes()[..], bytes].concat()
}

/// The bytes of a value [`sealed`] stored, checked against their CRC-32.
fn unsealed<'a>(id: &str, value: &'a [u8]) -> Result<&'a [u8], HubError> {
    if value.len() < 4 {
        return Err(HubError::Damaged {
            id: id.to_owned(),
            reason: "document value shorter than its checksum".into(),
        });
    }
    let (sum, bytes) = value.split_at(4);
    let expected = u32::from_be_bytes([sum[0], sum[1], sum[2], sum[3]]);
    if crc32fast::hash(bytes) != expected {
        return Err(HubError::Damaged {
            id: id.to_owned(),
            reason: "checksum mismatch".into(),
        });
    }
    Ok(bytes)
}

/// The key of the `n`th incremental save of `id`.
fn change_key(id: &str, n: u64) -> Vec<u8> {
    [id.as_bytes(), b"\0", &n.to_be_bytes()[..]].concat()
}

/// The number an incremental save's key ends with.
fn change_number(key: &[u8]) -> u64 {
    key.len()
        .checked_sub(8)
        .and_then(|at| key[at..].try_into().ok())
        .map_or(0, u64::from_be_bytes)
}

fn seq_bytes(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

fn seq_of(id: &str, bytes: &[u8]) -> Result<u64, HubError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| HubError::Damaged {
        id: id.to_owned(),
        reason: "feed position is not 8 bytes".into(),
    })?;
    Ok(u64::from_be_bytes(array))
}

impl SledStore {
    /// The in-memory index of what sled holds: every document's latest feed position and parsed
    /// routing facts, and the feed head. Read once, when the store opens.
    pub(super) fn read_doc_index(
        doc_meta: &sled::Tree,
        doc_seq: &sled::Tree,
        counters: &sled::Tree,
    ) -> Result<DocIndex, HubError> {
        let head = match counters.get(FEED_HEAD).map_err(storage)? {
            Some(v) => seq_of("feed.head", &v)?,
            None => 0,
        };
        let mut docs = Vec::new();
        for entry in doc_seq.iter() {
            let (id, seq) = entry.map_err(storage)?;
            let id = String::from_utf8_lossy(&id).into_owned();
            let seq = seq_of(&id, &seq)?;
            let meta = match doc_meta.get(id.as_bytes()).map_err(storage)? {
                Some(json) => from_json(&id, &json).map_err(|e| e.to_string()),
                None => Err("a feed position without routing facts".to_owned()),
            };
            docs.push((id, seq, meta));
        }
        Ok(DocIndex::new(head, docs))
    }
}

impl SledStore {
    /// Moves the feed head [`BACKUP_FEED_GAP`] positions on without documents, durably; the
    /// caller holds the save lock (`Store::hold_saves`). After a backup, every cursor the
    /// server hands out is then far past the backup's head, and a phone that synced since
    /// finds a server restored from that backup behind its cursor, however many saves the
    /// restored server took from other phones first (`crate::backup`).
    pub(super) fn skip_feed_position(&self) -> Result<u64, HubError> {
        // 2^32 backups of one server would reach the end of the positions; refused rather
        // than wrapped to cursors phones already passed.
        let head = self
            .index
            .head()
            .checked_add(BACKUP_FEED_GAP)
            .ok_or_else(|| storage("the change feed has no positions left for a backup"))?;
        self.meta
            .insert(FEED_HEAD, &seq_bytes(head)[..])
            .map_err(storage)?;
        self.db.flush().map_err(storage)?;
        self.index.skipped_to(head);
        Ok(head)
    }

    /// Takes the next feed position without a document (`DocumentStore::mark_feed`).
    pub(super) fn mark_feed_here(&self) -> Result<u64, HubError> {
        let _feed = self
            .feed_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mark = self.index.head() + 1;
        self.meta
            .insert(FEED_HEAD, &seq_bytes(mark)[..])
            .map_err(storage)?;
        self.index.skipped_to(mark);
        Ok(mark)
    }

    /// Moves the feed head on to `head` without documents (`Store::advance_feed`).
    pub(super) fn advance_feed_to(&self, head: u64) -> Result<(), HubError> {
        let _feed = self
            .feed_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = self.index.head();
        if head < now {
            return Err(storage(format!(
                "the change feed stands at {now}, past {head}"
            )));
        }
        self.meta
            .insert(FEED_HEAD, &seq_bytes(head)[..])
            .map_err(storage)?;
        self.index.skipped_to(head);
        Ok(())
    }
}

impl SledStore {
    /// How the document is kept, read as [`DocumentStore::document`] reads it.
    pub(super) fn footprint(&self, id: &str) -> Result<Option<Footprint>, HubError> {
        let mut footprint = Footprint::default();
        for entry in self.doc_changes.scan_prefix(pair(id, "")) {
            let (_, value) = entry.map_err(storage)?;
            footprint.incremental_saves += 1;
            footprint.incremental_bytes += value.len().saturating_sub(4);
        }
        let Some(snapshot) = self.doc_bytes.get(id).map_err(storage)? else {
            return Ok(None);
        };
        footprint.snapshot_bytes = snapshot.len().saturating_sub(4);
        Ok(Some(footprint))
    }

    /// Stores `write` as the document's new version, with its routing facts and audit entries,
    /// at the next feed position. `read`, when checked, is the version the caller's merge was
    /// made from (`None`: the document was absent): a save from a version no longer stored is
    /// refused, nothing written.
    fn store_version(
        &self,
        id: &str,
        meta: &DocMeta,
        write: Write,
        read: Option<Option<StoredVersion>>,
        audit: &[AuditEntry],
    ) -> Result<u64, HubError> {
        let meta_json = to_json(meta)?;
        let deletes_covered = write.deletes_covered();
        let (snapshot, change) = match write {
            Write::Snapshot { bytes, .. } => (Some(sealed(&bytes)), None),
            Write::Incremental(bytes) => (None, (!bytes.is_empty()).then(|| sealed(&bytes))),
        };
        let audit: Vec<(Vec<u8>, Vec<u8>)> = audit
            .iter()
            .map(|entry| Ok((pair(&entry.doc_id, &entry.change), to_json(entry)?)))
            .collect::<Result<_, HubError>>()?;
        // Every write of a document holds this lock: what is read of it here stays true until
        // the transaction below.
        let _feed = self
            .feed_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(read) = read {
            let now = self.document_seq(id)?;
            let unchanged = match read {
                Some(version) => now.unwrap_or(0) == version.seq,
                None => now.is_none(),
            };
            if !unchanged {
                return Err(HubError::SavedMeanwhile { id: id.to_owned() });
            }
        }
        // A snapshot replaces the incremental saves it covers: every one kept, as the version
        // read had them (checked above) or, for a save of a whole document, whatever they were.
        // An incremental save goes after the last one kept.
        let mut covered = Vec::new();
        let mut next = 0;
        if snapshot.is_some() && deletes_covered {
            for key in self.doc_changes.scan_prefix(pair(id, "")).keys() {
                covered.push(key.map_err(storage)?);
            }
        } else if change.is_some() {
            if let Some(last) = self
                .doc_changes
                .scan_prefix(pair(id, ""))
                .keys()
                .next_back()
            {
                next = change_number(&last.map_err(storage)?) + 1;
            }
        }
        let result: Result<u64, TransactionError<HubError>> = (
            &self.doc_meta,
            &self.doc_bytes,
            &self.doc_seq,
            &self.doc_changes,
            &self.audit,
            &self.meta,
        )
            .transaction(|(metas, docs, seqs, changes, audits, counters)| {
                let abort = ConflictableTransactionError::Abort;
                let head = match counters.get(FEED_HEAD)? {
                    Some(v) => seq_of("feed.head", &v).map_err(abort)?,
                    None => 0,
                };
                let seq = head + 1;
                metas.insert(id.as_bytes(), meta_json.as_slice())?;
                // The new snapshot first, then what it covers goes (one transaction either way).
                if let Some(snapshot) = &snapshot {
                    docs.insert(id.as_bytes(), snapshot.as_slice())?;
                }
                for key in &covered {
                    changes.remove(key)?;
                }
                if let Some(change) = &change {
                    changes.insert(change_key(id, next), change.as_slice())?;
                }
                seqs.insert(id.as_bytes(), &seq_bytes(seq)[..])?;
                counters.insert(FEED_HEAD, &seq_bytes(seq)[..])?;
                for (key, entry) in &audit {
                    if audits.get(key.as_slice())?.is_none() {
                        audits.insert(key.as_slice(), entry.as_slice())?;
                    }
                }
                Ok(seq)
            });
        let seq = result.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => storage(e),
        })?;
        self.index.saved(id, seq, meta);
        Ok(seq)
    }
}

impl DocumentStore for SledStore {
    /// The snapshot followed by the incremental saves since. Read without a lock, in the order
    /// that keeps it whole while saves go on: the feed position first, then the incremental
    /// saves, then the snapshot. A compaction in between leaves saves the new snapshot already
    /// holds (loaded once); a save in between is missed, and the position read is older than
    /// the stored one, so a merge from this read is refused. What is read is never older than
    /// the position.
    fn document(&self, id: &str) -> Result<Option<StoredDoc>, HubError> {
        let seq = self.document_seq(id)?;
        let mut incremental = Vec::new();
        let mut footprint = Footprint::default();
        for entry in self.doc_changes.scan_prefix(pair(id, "")) {
            let (_, value) = entry.map_err(storage)?;
            let bytes = unsealed(id, &value)?;
            footprint.incremental_saves += 1;
            footprint.incremental_bytes += bytes.len();
            incremental.push(bytes.to_vec());
        }
        let value = self.doc_bytes.get(id).map_err(storage)?;
        let Some(meta) = self.doc_meta.get(id).map_err(storage)? else {
            return Ok(None);
        };
        let meta: DocMeta = from_json(id, &meta)?;
        let value = value.ok_or_else(|| HubError::Damaged {
            id: id.to_owned(),
            reason: "routing facts without document bytes".into(),
        })?;
        let snapshot = unsealed(id, &value)?;
        footprint.snapshot_bytes = snapshot.len();
        Ok(Some(StoredDoc {
            meta,
            bytes: chunks::joined(snapshot, &incremental),
            // Position 0 (none is ever numbered so) when the document has none.
            version: StoredVersion {
                seq: seq.unwrap_or(0),
                footprint,
            },
        }))
    }

    /// From the lengths of the stored pieces, without checking or joining them.
    fn document_sizes(&self, ids: &[&str]) -> Result<HashMap<String, usize>, HubError> {
        let mut sizes = HashMap::with_capacity(ids.len());
        for id in ids {
            if let Some(footprint) = self.footprint(id)? {
                sizes.insert((*id).to_owned(), footprint.bytes());
            }
        }
        Ok(sizes)
    }

    /// Replaces whatever is stored of the document: the save becomes its snapshot.
    fn save_document(
        &self,
        id: &str,
        meta: &DocMeta,
        bytes: &[u8],
        audit: &[AuditEntry],
    ) -> Result<u64, HubError> {
        let write = Write::Snapshot {
            bytes: bytes.to_vec(),
            covers: None,
        };
        self.store_version(id, meta, write, None, audit)
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
        let write = Write::merged(read, changes, full);
        self.store_version(id, meta, write, Some(read), audit)
    }

    fn feed_head(&self) -> Result<u64, HubError> {
        Ok(self.index.head())
    }

    fn changed_since(
        &self,
        after: u64,
        upto: u64,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        self.index.changed_since(after, upto, keep)
    }

    fn all_documents(&self) -> Result<Vec<DocMeta>, HubError> {
        self.index.page(None, usize::MAX, &|_| true)
    }

    fn mark_feed(&self) -> Result<Option<u64>, HubError> {
        self.mark_feed_here().map(Some)
    }

    fn document_seq(&self, id: &str) -> Result<Option<u64>, HubError> {
        match self.doc_seq.get(id.as_bytes()).map_err(storage)? {
            Some(seq) => Ok(Some(seq_of(id, &seq)?)),
            None => Ok(None),
        }
    }

    fn documents_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        self.index.page(after, limit, keep)
    }

    fn delivered_page(
        &self,
        reach: &Reach,
        after: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        self.index.page_for(reach, after, limit, keep)
    }
}

impl DeviceLedger for SledStore {
    fn device_docs(&self, device: &str) -> Result<Vec<(String, DeviceDoc)>, HubError> {
        let prefix = pair(device, "");
        self.device_docs
            .scan_prefix(&prefix)
            .map(|entry| {
                let (key, value) = entry.map_err(storage)?;
                let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                let held = from_json(&id, &value)?;
                Ok((id, held))
            })
            .collect()
    }

    fn device_doc_ids(&self, device: &str) -> Result<HashSet<String>, HubError> {
        let prefix = pair(device, "");
        self.device_docs
            .scan_prefix(&prefix)
            .keys()
            .map(|key| {
                let key = key.map_err(storage)?;
                Ok(String::from_utf8_lossy(&key[prefix.len()..]).into_owned())
            })
            .collect()
    }

    fn device_doc(&self, device: &str, doc_id: &str) -> Result<Option<DeviceDoc>, HubError> {
        match self
            .device_docs
            .get(pair(device, doc_id))
            .map_err(storage)?
        {
            Some(value) => Ok(Some(from_json(doc_id, &value)?)),
            None => Ok(None),
        }
    }

    fn put_device_docs(
        &self,
        device: &str,
        docs: &[(String, Option<DeviceDoc>)],
    ) -> Result<(), HubError> {
        let mut batch = sled::Batch::default();
        for (id, held) in docs {
            match held {
                Some(held) => batch.insert(pair(device, id), to_json(held)?),
                None => batch.remove(pair(device, id)),
            }
        }
        self.device_docs.apply_batch(batch).map_err(storage)
    }

    fn device_scope(&self, device: &str) -> Result<Option<String>, HubError> {
        Ok(self
            .device_scope
            .get(device)
            .map_err(storage)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    fn put_device_scope(&self, device: &str, scope: &str) -> Result<(), HubError> {
        self.device_scope.insert(device, scope).map_err(storage)?;
        Ok(())
    }

    fn device_synced(&self, device: &str) -> Result<Option<i64>, HubError> {
        match self.device_synced.get(device).map_err(storage)? {
            Some(v) => {
                let bytes: [u8; 8] = v.as_ref().try_into().map_err(|_| HubError::Damaged {
                    id: device.to_string(),
                    reason: "the device's last sync time is not 8 bytes".into(),
                })?;
                Ok(Some(i64::from_be_bytes(bytes)))
            }
            None => Ok(None),
        }
    }

    fn put_device_synced(&self, device: &str, at_ms: i64) -> Result<(), HubError> {
        self.device_synced
            .insert(device, &at_ms.to_be_bytes())
            .map_err(storage)?;
        Ok(())
    }

    fn claim_device(&self, device: &str) -> Result<Option<DeviceClaim<'_>>, HubError> {
        Ok(self.device_claims.claim(device))
    }

    fn sync_state(&self, device: &str, doc_id: &str) -> Result<Option<Vec<u8>>, HubError> {
        Ok(self
            .sync_states
            .get(pair(device, doc_id))
            .map_err(storage)?
            .map(|v| v.to_vec()))
    }

    /// Not flushed on its own: a lost sync state only costs the peers one more exchange.
    fn put_sync_state(&self, device: &str, doc_id: &str, state: &[u8]) -> Result<(), HubError> {
        self.sync_states
            .insert(pair(device, doc_id), state)
            .map_err(storage)?;
        Ok(())
    }

    fn sync_states(&self, device: &str) -> Result<Vec<(String, Vec<u8>)>, HubError> {
        let prefix = pair(device, "");
        self.sync_states
            .scan_prefix(&prefix)
            .map(|entry| {
                let (key, value) = entry.map_err(storage)?;
                let id = String::from_utf8_lossy(&key[prefix.len()..]).into_owned();
                Ok((id, value.to_vec()))
            })
            .collect()
    }

    fn forget_sync_states(&self, device: &str, doc_ids: &[String]) -> Result<(), HubError> {
        let mut batch = sled::Batch::default();
        for id in doc_ids {
            batch.remove(pair(device, id));
        }
        self.sync_states.apply_batch(batch).map_err(storage)
    }
}

impl AuditLog for SledStore {
    fn history(&self, doc_id: &str) -> Result<Vec<AuditEntry>, HubError> {
        let mut entries: Vec<AuditEntry> = self
            .audit
            .scan_prefix(pair(doc_id, ""))
            .map(|entry| {
                let (_, value) = entry.map_err(storage)?;
                from_json(doc_id, &value)
            })
            .collect::<Result<_, _>>()?;
        entries.sort_by(|a, b| (a.received_at_ms, &a.change).cmp(&(b.received_at_ms, &b.change)));
        Ok(entries)
    }
}

impl HubStore for SledStore {
    /// One flush of sled's log makes every earlier write durable, in order.
    fn durable(&self) -> Result<(), HubError> {
        self.db.flush().map(drop).map_err(storage)
    }
}

impl ReferenceSource for SledStore {
    fn asset(&self, id: &str) -> Result<Option<Asset>, HubError> {
        Store::get_asset(self, id).map_err(|e| HubError::Storage(e.to_string()))
    }
    fn categories(&self) -> Result<Vec<Category>, HubError> {
        crate::reference::categories(self).map_err(|e| HubError::Storage(e.to_string()))
    }
    fn user(&self, id: &str) -> Result<Option<User>, HubError> {
        Ok(Store::get_user(self, id)
            .map_err(|e| HubError::Storage(e.to_string()))?
            .map(|record| record.user))
    }
    fn department_exists(&self, name: &str) -> Result<bool, HubError> {
        let departments = self
            .active_departments()
            .map_err(|e| HubError::Storage(e.to_string()))?;
        Ok(departments
            .binary_search_by(|d| d.as_str().cmp(name))
            .is_ok())
    }
}
