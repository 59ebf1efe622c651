//! The local store itself: documents as a base save plus incremental chunks, per-document sync
//! state, small metadata and an integrity check over everything stored.
//!
//! Every mutating call is one atomic batch followed by a flush, so a call that returned `Ok`
//! survives `kill -9`. Documents are opaque bytes here; this module must not parse automerge.
//! The photo outbox and the quarantine add their methods in their own files.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::codec::{self, check_id, display_key, key, prefix, seal, seal_json, unseal};
use super::storage::{BatchOp, SledStorage, Storage};
use super::StoreError;

/// Which kind of record a document holds; documents are listed per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Patrol,
    Issue,
}

impl DocKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Patrol => "patrol",
            DocKind::Issue => "issue",
        }
    }
}

impl fmt::Display for DocKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What [`LocalStore::verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrityReport {
    /// How many stored values were checked.
    pub checked: usize,
    /// Keys whose values failed their checksum, in key order.
    pub corrupt: Vec<String>,
}

/// Per-document bookkeeping, written in the same batch as every chunk so they never disagree.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DocHead {
    kind: DocKind,
    /// Sequence number of the next chunk; never reused, also not after compaction.
    next_seq: u64,
    /// Chunks stored since the last compaction.
    chunks: u64,
}

/// The device's durable store. Cheap to share behind an `Arc`; all methods take `&self`.
#[derive(Debug)]
pub struct LocalStore {
    storage: Arc<dyn Storage>,
    /// Serializes read-modify-write sequences (chunk numbering, compaction, outbox transitions)
    /// and document loads, which read several keys that compaction replaces together.
    write_lock: Mutex<()>,
}

impl LocalStore {
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            write_lock: Mutex::new(()),
        }
    }

    /// Opens (or creates) the store on sled in the directory `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Ok(Self::new(Arc::new(SledStorage::open(path)?)))
    }

    /// Stores one incremental save of a document (e.g. automerge `save_incremental`) after the
    /// ones before it, creating the document on first use. Returns how many chunks the document
    /// has accumulated since its last compaction, so the caller can decide when to compact.
    pub fn append_doc_changes(
        &self,
        doc_id: &str,
        kind: DocKind,
        bytes: &[u8],
    ) -> Result<u64, StoreError> {
        check_id("document id", doc_id)?;
        let _guard = self.lock();
        let head_key = key(&["doc", doc_id, "head"]);
        let mut head = match self.read_json::<DocHead>(&head_key)? {
            Some(head) if head.kind != kind => {
                return Err(StoreError::KindMismatch {
                    doc_id: doc_id.to_owned(),
                    stored: head.kind,
                    requested: kind,
                });
            }
            Some(head) => head,
            None => DocHead {
                kind,
                next_seq: 0,
                chunks: 0,
            },
        };
        if bytes.is_empty() {
            return Ok(head.chunks);
        }
        let chunk_key = chunk_key(doc_id, head.next_seq);
        head.next_seq += 1;
        head.chunks += 1;
        let index_key = key(&["docs", kind.as_str(), doc_id]);
        self.commit(vec![
            put(chunk_key.clone(), seal(&chunk_key, bytes)),
            put(index_key.clone(), seal(&index_key, &[])),
            put_json(head_key, &head)?,
        ])?;
        Ok(head.chunks)
    }

    /// The document as one byte string: its base save followed by every chunk in order, which
    /// automerge's `load` accepts. `None` if the document was never stored.
    pub fn load_doc(&self, doc_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_id("document id", doc_id)?;
        let _guard = self.lock();
        if self
            .read_json::<DocHead>(&key(&["doc", doc_id, "head"]))?
            .is_none()
        {
            return Ok(None);
        }
        let mut out = self
            .read(&key(&["doc", doc_id, "base"]))?
            .unwrap_or_default();
        for (k, v) in self
            .storage
            .scan_prefix(&prefix(&["doc", doc_id, "chunk"]))?
        {
            out.extend_from_slice(unseal(&k, &v)?);
        }
        Ok(Some(out))
    }

    /// Replaces the document's base and all its chunks by `full_save` in one atomic step.
    /// `full_save` must contain every change appended so far (a full save of the in-memory
    /// document the chunks came from); chunks it does not cover would be lost.
    pub fn compact_doc(&self, doc_id: &str, full_save: &[u8]) -> Result<(), StoreError> {
        check_id("document id", doc_id)?;
        let _guard = self.lock();
        let head_key = key(&["doc", doc_id, "head"]);
        let Some(mut head) = self.read_json::<DocHead>(&head_key)? else {
            return Err(StoreError::UnknownDoc {
                doc_id: doc_id.to_owned(),
            });
        };
        head.chunks = 0;
        let base_key = key(&["doc", doc_id, "base"]);
        let mut batch: Vec<BatchOp> = self
            .storage
            .scan_prefix(&prefix(&["doc", doc_id, "chunk"]))?
            .into_iter()
            .map(|(key, _)| BatchOp::Delete { key })
            .collect();
        batch.push(put(base_key.clone(), seal(&base_key, full_save)));
        batch.push(put_json(head_key, &head)?);
        self.commit(batch)
    }

    /// Forgets a document the device no longer receives (it left the user's scope): its base,
    /// chunks, index entry and sync states, in one atomic step. Unknown ids are a no-op.
    pub fn remove_doc(&self, doc_id: &str) -> Result<(), StoreError> {
        check_id("document id", doc_id)?;
        let _guard = self.lock();
        let head_key = key(&["doc", doc_id, "head"]);
        let Some(head) = self.read_json::<DocHead>(&head_key)? else {
            return Ok(());
        };
        let mut batch: Vec<BatchOp> = Vec::new();
        for area in [prefix(&["doc", doc_id]), prefix(&["sync", doc_id])] {
            for (key, _) in self.storage.scan_prefix(&area)? {
                batch.push(BatchOp::Delete { key });
            }
        }
        batch.push(BatchOp::Delete {
            key: key(&["docs", head.kind.as_str(), doc_id]),
        });
        self.commit(batch)
    }

    /// Ids of the stored documents of one kind, in id order.
    pub fn doc_ids(&self, kind: DocKind) -> Result<Vec<String>, StoreError> {
        let index = prefix(&["docs", kind.as_str()]);
        self.storage
            .scan_prefix(&index)?
            .into_iter()
            .map(|(k, v)| {
                unseal(&k, &v)?;
                Ok(String::from_utf8_lossy(&k[index.len()..]).into_owned())
            })
            .collect()
    }

    /// Saves the sync state of one document with one peer (e.g. the server).
    pub fn put_sync_state(&self, doc_id: &str, peer: &str, state: &[u8]) -> Result<(), StoreError> {
        check_id("document id", doc_id)?;
        check_id("peer id", peer)?;
        let k = key(&["sync", doc_id, peer]);
        self.commit(vec![put(k.clone(), seal(&k, state))])
    }

    pub fn sync_state(&self, doc_id: &str, peer: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_id("document id", doc_id)?;
        check_id("peer id", peer)?;
        self.read(&key(&["sync", doc_id, peer]))
    }

    /// Saves a small device setting or cursor (e.g. the change-feed cursor, the login).
    pub fn put_meta(&self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        check_id("metadata name", name)?;
        let k = key(&["meta", name]);
        self.commit(vec![put(k.clone(), seal(&k, value))])
    }

    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        check_id("metadata name", name)?;
        self.read(&key(&["meta", name]))
    }

    /// Checks the checksum of every stored value and lists the damaged ones, so the app can
    /// report them instead of discovering them one load at a time.
    pub fn verify(&self) -> Result<IntegrityReport, StoreError> {
        let all = self.storage.scan_prefix(&[])?;
        let corrupt = all
            .iter()
            .filter(|(k, v)| unseal(k, v).is_err())
            .map(|(k, _)| display_key(k))
            .collect();
        Ok(IntegrityReport {
            checked: all.len(),
            corrupt,
        })
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, ()> {
        // The guard protects no in-memory data and every write is one atomic batch, so a panic
        // in another holder leaves nothing half-done.
        self.write_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn storage(&self) -> &dyn Storage {
        self.storage.as_ref()
    }

    /// Applies the batch and flushes: the only way writes leave this store.
    pub(super) fn commit(&self, batch: Vec<BatchOp>) -> Result<(), StoreError> {
        self.storage.apply(batch)?;
        self.storage.flush()
    }

    pub(super) fn read(&self, k: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.storage.get(k)? {
            Some(v) => Ok(Some(unseal(k, &v)?.to_vec())),
            None => Ok(None),
        }
    }

    pub(super) fn read_json<T: DeserializeOwned>(&self, k: &[u8]) -> Result<Option<T>, StoreError> {
        match self.storage.get(k)? {
            Some(v) => Ok(Some(codec::unseal_json(k, &v)?)),
            None => Ok(None),
        }
    }
}

fn chunk_key(doc_id: &str, seq: u64) -> Vec<u8> {
    // Fixed-width hex keeps chunks in append order under sled's byte ordering.
    key(&["doc", doc_id, "chunk", &format!("{seq:016x}")])
}

pub(super) fn put(key: Vec<u8>, value: Vec<u8>) -> BatchOp {
    BatchOp::Put { key, value }
}

pub(super) fn put_json<T: Serialize>(key: Vec<u8>, value: &T) -> Result<BatchOp, StoreError> {
    let value = seal_json(&key, value)?;
    Ok(BatchOp::Put { key, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_store() -> LocalStore {
        LocalStore::new(Arc::new(SledStorage::temporary().unwrap()))
    }

    #[test]
    fn reopen_after_close_keeps_documents_sync_state_and_meta() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LocalStore::open(dir.path()).unwrap();
            store
                .append_doc_changes("p1", DocKind::Patrol, b"aa")
                .unwrap();
            store
                .append_doc_changes("p1", DocKind::Patrol, b"bb")
                .unwrap();
            store
                .append_doc_changes("i1", DocKind::Issue, b"cc")
                .unwrap();
            store.put_sync_state("p1", "server", b"state").unwrap();
            store.put_meta("cursor", b"42").unwrap();
        }
        let store = LocalStore::open(dir.path()).unwrap();
        assert_eq!(store.load_doc("p1").unwrap().unwrap(), b"aabb");
        assert_eq!(store.load_doc("i1").unwrap().unwrap(), b"cc");
        assert_eq!(store.load_doc("nope").unwrap(), None);
        assert_eq!(store.doc_ids(DocKind::Patrol).unwrap(), vec!["p1"]);
        assert_eq!(store.doc_ids(DocKind::Issue).unwrap(), vec!["i1"]);
        assert_eq!(store.sync_state("p1", "server").unwrap().unwrap(), b"state");
        assert_eq!(store.sync_state("p1", "other").unwrap(), None);
        assert_eq!(store.meta("cursor").unwrap().unwrap(), b"42");
    }

    #[test]
    fn chunks_keep_append_order_past_sixteen() {
        let store = temp_store();
        let mut expected = Vec::new();
        for i in 0..40u8 {
            store
                .append_doc_changes("p", DocKind::Patrol, &[i])
                .unwrap();
            expected.push(i);
        }
        assert_eq!(store.load_doc("p").unwrap().unwrap(), expected);
    }

    #[test]
    fn compaction_replaces_base_and_chunks_and_appends_continue() {
        let store = temp_store();
        assert_eq!(
            store
                .append_doc_changes("p", DocKind::Patrol, b"a")
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .append_doc_changes("p", DocKind::Patrol, b"b")
                .unwrap(),
            2
        );
        store.compact_doc("p", b"AB").unwrap();
        assert_eq!(store.load_doc("p").unwrap().unwrap(), b"AB");
        assert_eq!(
            store
                .append_doc_changes("p", DocKind::Patrol, b"c")
                .unwrap(),
            1
        );
        assert_eq!(store.load_doc("p").unwrap().unwrap(), b"ABc");
        assert!(matches!(
            store.compact_doc("missing", b"x"),
            Err(StoreError::UnknownDoc { .. })
        ));
    }

    #[test]
    fn a_document_keeps_its_kind() {
        let store = temp_store();
        store
            .append_doc_changes("d", DocKind::Patrol, b"a")
            .unwrap();
        assert!(matches!(
            store.append_doc_changes("d", DocKind::Issue, b"b"),
            Err(StoreError::KindMismatch { .. })
        ));
        assert!(store.doc_ids(DocKind::Issue).unwrap().is_empty());
    }

    #[test]
    fn a_flipped_byte_is_reported_and_other_keys_still_load() {
        let storage = Arc::new(SledStorage::temporary().unwrap());
        let store = LocalStore::new(storage.clone());
        store
            .append_doc_changes("p1", DocKind::Patrol, b"first")
            .unwrap();
        store
            .append_doc_changes("p1", DocKind::Patrol, b"second")
            .unwrap();
        store
            .append_doc_changes("p2", DocKind::Patrol, b"intact")
            .unwrap();
        store.put_meta("cursor", b"7").unwrap();

        let damaged = chunk_key("p1", 1);
        let mut raw = storage.get(&damaged).unwrap().unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 0x20;
        storage.put(&damaged, &raw).unwrap();

        match store.load_doc("p1") {
            Err(StoreError::Corrupt { key }) => assert_eq!(key, display_key(&damaged)),
            other => panic!("damaged chunk loaded as {other:?}"),
        }
        assert_eq!(store.load_doc("p2").unwrap().unwrap(), b"intact");
        assert_eq!(store.meta("cursor").unwrap().unwrap(), b"7");
        let report = store.verify().unwrap();
        assert_eq!(report.corrupt, vec!["doc/p1/chunk/0000000000000001"]);
        assert!(report.checked >= 8);
    }

    #[test]
    fn bad_ids_are_refused_before_touching_storage() {
        let store = temp_store();
        assert!(matches!(
            store.append_doc_changes("", DocKind::Patrol, b"x"),
            Err(StoreError::InvalidId { .. })
        ));
        assert!(store.put_meta("a\0b", b"x").is_err());
        assert!(store.verify().unwrap().checked == 0);
    }
}
