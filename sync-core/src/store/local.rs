//! The local store itself: documents as a base save plus incremental chunks, per-document sync
//! state, small metadata and an integrity check over everything stored.
//!
//! Every mutating call is one atomic batch followed by a flush, so a call that returned `Ok`
//! survives `kill -9`. Documents are opaque bytes here; this module must not parse automerge.
//! The photo outbox and the quarantine add their methods in their own files.

use std::collections::{BTreeSet, HashMap};
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

/// What the store knows of a document without reading it: see [`LocalStore::doc_stat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocStat {
    pub version: u64,
    pub chunks: u64,
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
    /// Sequence number of the next chunk; never reused, also not after compaction (which
    /// advances it too, so it versions the document's stored contents).
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
        let mut writes = Writes::new(self);
        let chunks = writes.append_doc(doc_id, kind, bytes)?;
        writes.commit()?;
        Ok(chunks)
    }

    /// A number that grows with every write to the document (appended chunk, compaction), or
    /// `None` if it is not stored: equal numbers mean the same stored contents.
    pub fn doc_version(&self, doc_id: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.doc_stat(doc_id)?.map(|stat| stat.version))
    }

    /// The document's version (as [`Self::doc_version`]) and how many chunks it has gathered
    /// since its last compaction, or `None` if it is not stored.
    pub fn doc_stat(&self, doc_id: &str) -> Result<Option<DocStat>, StoreError> {
        check_id("document id", doc_id)?;
        Ok(self
            .read_json::<DocHead>(&key(&["doc", doc_id, "head"]))?
            .map(|head| DocStat {
                version: head.next_seq,
                chunks: head.chunks,
            }))
    }

    /// Compacts the document as [`Self::compact_doc`] does, but only if it is still at
    /// `version`, i.e. `full_save` was made from exactly what is stored; a document written
    /// meanwhile is left as it is. Returns the new version if it compacted.
    pub fn compact_doc_at(
        &self,
        doc_id: &str,
        version: u64,
        full_save: &[u8],
    ) -> Result<Option<u64>, StoreError> {
        check_id("document id", doc_id)?;
        let _guard = self.lock();
        let mut writes = Writes::new(self);
        match writes.head(doc_id)? {
            Some(head) if head.next_seq == version => {}
            _ => return Ok(None),
        }
        writes.compact_doc(doc_id, full_save)?;
        let version = writes
            .heads
            .get(doc_id)
            .cloned()
            .flatten()
            .map(|h| h.next_seq);
        writes.commit()?;
        Ok(version)
    }

    /// Whether the document is stored, without reading its contents.
    pub fn has_doc(&self, doc_id: &str) -> Result<bool, StoreError> {
        check_id("document id", doc_id)?;
        Ok(self.storage.get(&key(&["doc", doc_id, "head"]))?.is_some())
    }

    /// Applies every write of `batch` in one atomic step with one flush: after a crash either
    /// all of them are stored or none. Writes apply in the order they were added, each seeing
    /// the ones before it (a chunk appended, then the document compacted, removes that chunk
    /// too). An empty batch touches nothing.
    pub fn commit_batch(&self, batch: StoreBatch) -> Result<(), StoreError> {
        if batch.writes.is_empty() {
            return Ok(());
        }
        let _guard = self.lock();
        let mut writes = Writes::new(self);
        for write in batch.writes {
            match write {
                Write::AppendDoc {
                    doc_id,
                    kind,
                    bytes,
                } => {
                    writes.append_doc(&doc_id, kind, &bytes)?;
                }
                Write::CompactDoc { doc_id, full_save } => {
                    writes.compact_doc(&doc_id, &full_save)?
                }
                Write::RemoveDoc { doc_id } => writes.remove_doc(&doc_id)?,
                Write::Put { key, value } => writes.put(key, value),
            }
        }
        writes.commit()
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
        let mut writes = Writes::new(self);
        writes.compact_doc(doc_id, full_save)?;
        writes.commit()
    }

    /// Forgets a document the device no longer receives (it left the user's scope): its base,
    /// chunks, index entry and sync states, in one atomic step. Unknown ids are a no-op.
    pub fn remove_doc(&self, doc_id: &str) -> Result<(), StoreError> {
        check_id("document id", doc_id)?;
        let _guard = self.lock();
        let mut writes = Writes::new(self);
        writes.remove_doc(doc_id)?;
        writes.commit()
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

/// Writes collected for [`LocalStore::commit_batch`]: stored together, atomically, with one
/// flush. Ids are checked as writes are added, so a bad id fails before anything is stored.
#[derive(Debug, Default)]
pub struct StoreBatch {
    writes: Vec<Write>,
}

#[derive(Debug)]
enum Write {
    AppendDoc {
        doc_id: String,
        kind: DocKind,
        bytes: Vec<u8>,
    },
    CompactDoc {
        doc_id: String,
        full_save: Vec<u8>,
    },
    RemoveDoc {
        doc_id: String,
    },
    Put {
        key: Vec<u8>,
        value: Vec<u8>,
    },
}

impl StoreBatch {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// How many writes the batch holds.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// As [`LocalStore::append_doc_changes`].
    pub fn append_doc_changes(
        &mut self,
        doc_id: &str,
        kind: DocKind,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        check_id("document id", doc_id)?;
        self.writes.push(Write::AppendDoc {
            doc_id: doc_id.to_owned(),
            kind,
            bytes,
        });
        Ok(())
    }

    /// As [`LocalStore::compact_doc`]; the document must be stored, or created earlier in the
    /// batch, when the batch commits.
    pub fn compact_doc(&mut self, doc_id: &str, full_save: Vec<u8>) -> Result<(), StoreError> {
        check_id("document id", doc_id)?;
        self.writes.push(Write::CompactDoc {
            doc_id: doc_id.to_owned(),
            full_save,
        });
        Ok(())
    }

    /// As [`LocalStore::remove_doc`].
    pub fn remove_doc(&mut self, doc_id: &str) -> Result<(), StoreError> {
        check_id("document id", doc_id)?;
        self.writes.push(Write::RemoveDoc {
            doc_id: doc_id.to_owned(),
        });
        Ok(())
    }

    /// As [`LocalStore::put_sync_state`].
    pub fn put_sync_state(
        &mut self,
        doc_id: &str,
        peer: &str,
        state: &[u8],
    ) -> Result<(), StoreError> {
        check_id("document id", doc_id)?;
        check_id("peer id", peer)?;
        let k = key(&["sync", doc_id, peer]);
        let value = seal(&k, state);
        self.writes.push(Write::Put { key: k, value });
        Ok(())
    }

    /// As [`LocalStore::put_meta`].
    pub fn put_meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
        check_id("metadata name", name)?;
        let k = key(&["meta", name]);
        let value = seal(&k, value);
        self.writes.push(Write::Put { key: k, value });
        Ok(())
    }
}

/// Turns document writes into storage operations under the store's lock, keeping track of what
/// earlier writes of the same batch did (document heads, keys put), so later ones build on them.
struct Writes<'a> {
    store: &'a LocalStore,
    ops: Vec<BatchOp>,
    /// Document heads as this batch leaves them; `None`: the document is gone.
    heads: HashMap<String, Option<DocHead>>,
    /// Keys this batch puts, for prefix scans that must see them.
    put_keys: BTreeSet<Vec<u8>>,
}

impl<'a> Writes<'a> {
    fn new(store: &'a LocalStore) -> Self {
        Self {
            store,
            ops: Vec::new(),
            heads: HashMap::new(),
            put_keys: BTreeSet::new(),
        }
    }

    fn head(&mut self, doc_id: &str) -> Result<Option<DocHead>, StoreError> {
        if let Some(head) = self.heads.get(doc_id) {
            return Ok(head.clone());
        }
        let head = self
            .store
            .read_json::<DocHead>(&key(&["doc", doc_id, "head"]))?;
        self.heads.insert(doc_id.to_owned(), head.clone());
        Ok(head)
    }

    fn put(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.put_keys.insert(key.clone());
        self.ops.push(put(key, value));
    }

    fn delete(&mut self, key: Vec<u8>) {
        self.put_keys.remove(&key);
        self.ops.push(BatchOp::Delete { key });
    }

    fn set_head(&mut self, doc_id: &str, head: DocHead) -> Result<(), StoreError> {
        let head_key = key(&["doc", doc_id, "head"]);
        let op = put_json(head_key.clone(), &head)?;
        self.put_keys.insert(head_key);
        self.ops.push(op);
        self.heads.insert(doc_id.to_owned(), Some(head));
        Ok(())
    }

    /// Stored keys under `prefix` together with those this batch has put so far.
    fn keys_under(&self, prefix: &[u8]) -> Result<BTreeSet<Vec<u8>>, StoreError> {
        let mut keys: BTreeSet<Vec<u8>> = self
            .store
            .storage
            .scan_prefix(prefix)?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        keys.extend(
            self.put_keys
                .range(prefix.to_vec()..)
                .take_while(|k| k.starts_with(prefix))
                .cloned(),
        );
        Ok(keys)
    }

    fn append_doc(&mut self, doc_id: &str, kind: DocKind, bytes: &[u8]) -> Result<u64, StoreError> {
        let mut head = match self.head(doc_id)? {
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
        let chunks = head.chunks;
        let index_key = key(&["docs", kind.as_str(), doc_id]);
        let chunk = seal(&chunk_key, bytes);
        self.put(chunk_key, chunk);
        let index = seal(&index_key, &[]);
        self.put(index_key, index);
        self.set_head(doc_id, head)?;
        Ok(chunks)
    }

    fn compact_doc(&mut self, doc_id: &str, full_save: &[u8]) -> Result<(), StoreError> {
        let Some(mut head) = self.head(doc_id)? else {
            return Err(StoreError::UnknownDoc {
                doc_id: doc_id.to_owned(),
            });
        };
        head.chunks = 0;
        // Compaction changes what is stored, so it counts as a write for `doc_version`.
        head.next_seq += 1;
        for chunk in self.keys_under(&prefix(&["doc", doc_id, "chunk"]))? {
            self.delete(chunk);
        }
        let base_key = key(&["doc", doc_id, "base"]);
        let base = seal(&base_key, full_save);
        self.put(base_key, base);
        self.set_head(doc_id, head)
    }

    fn remove_doc(&mut self, doc_id: &str) -> Result<(), StoreError> {
        let Some(head) = self.head(doc_id)? else {
            return Ok(());
        };
        for area in [prefix(&["doc", doc_id]), prefix(&["sync", doc_id])] {
            for k in self.keys_under(&area)? {
                self.delete(k);
            }
        }
        self.delete(key(&["docs", head.kind.as_str(), doc_id]));
        self.heads.insert(doc_id.to_owned(), None);
        Ok(())
    }

    fn commit(self) -> Result<(), StoreError> {
        if self.ops.is_empty() {
            return Ok(());
        }
        self.store.commit(self.ops)
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

    /// Real sled underneath, counting the batches and flushes that reach it.
    #[derive(Debug)]
    struct Counting {
        inner: SledStorage,
        applies: std::sync::atomic::AtomicUsize,
        flushes: std::sync::atomic::AtomicUsize,
    }

    impl Storage for Counting {
        fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
            self.inner.get(key)
        }
        fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
            self.inner.put(key, value)
        }
        fn delete(&self, key: &[u8]) -> Result<(), StoreError> {
            self.inner.delete(key)
        }
        fn scan_prefix(&self, prefix: &[u8]) -> Result<super::super::Entries, StoreError> {
            self.inner.scan_prefix(prefix)
        }
        fn apply(&self, batch: Vec<BatchOp>) -> Result<(), StoreError> {
            self.applies
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.apply(batch)
        }
        fn flush(&self) -> Result<(), StoreError> {
            self.flushes
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.inner.flush()
        }
    }

    fn counting_store() -> (Arc<Counting>, LocalStore) {
        let storage = Arc::new(Counting {
            inner: SledStorage::temporary().unwrap(),
            applies: Default::default(),
            flushes: Default::default(),
        });
        (storage.clone(), LocalStore::new(storage))
    }

    fn counts(storage: &Counting) -> (usize, usize) {
        use std::sync::atomic::Ordering::SeqCst;
        (storage.applies.load(SeqCst), storage.flushes.load(SeqCst))
    }

    #[test]
    fn a_batch_is_one_atomic_write_and_one_flush() {
        let (storage, store) = counting_store();
        store
            .append_doc_changes("old", DocKind::Issue, b"o")
            .unwrap();
        store.put_sync_state("old", "server", b"h0").unwrap();
        let before = counts(&storage);
        let mut batch = StoreBatch::new();
        batch
            .append_doc_changes("p1", DocKind::Patrol, b"a".to_vec())
            .unwrap();
        batch.put_sync_state("p1", "server", b"h1").unwrap();
        batch
            .append_doc_changes("i1", DocKind::Issue, b"b".to_vec())
            .unwrap();
        batch.remove_doc("old").unwrap();
        batch.put_meta("cursor", b"9").unwrap();
        assert_eq!(batch.len(), 5);
        store.commit_batch(batch).unwrap();
        let after = counts(&storage);
        assert_eq!((after.0 - before.0, after.1 - before.1), (1, 1));
        assert_eq!(store.load_doc("p1").unwrap().unwrap(), b"a");
        assert_eq!(store.load_doc("i1").unwrap().unwrap(), b"b");
        assert_eq!(store.sync_state("p1", "server").unwrap().unwrap(), b"h1");
        assert_eq!(store.load_doc("old").unwrap(), None);
        assert_eq!(store.sync_state("old", "server").unwrap(), None);
        assert!(store.doc_ids(DocKind::Issue).unwrap() == vec!["i1"]);
        assert_eq!(store.meta("cursor").unwrap().unwrap(), b"9");
        // An empty batch does not touch the disk.
        store.commit_batch(StoreBatch::new()).unwrap();
        assert_eq!(counts(&storage), after);
    }

    #[test]
    fn a_batch_with_a_failing_write_stores_nothing() {
        let (storage, store) = counting_store();
        store
            .append_doc_changes("d", DocKind::Patrol, b"a")
            .unwrap();
        let before = counts(&storage);
        let mut batch = StoreBatch::new();
        batch
            .append_doc_changes("new", DocKind::Issue, b"x".to_vec())
            .unwrap();
        batch.put_meta("cursor", b"5").unwrap();
        batch
            .append_doc_changes("d", DocKind::Issue, b"b".to_vec())
            .unwrap();
        assert!(matches!(
            store.commit_batch(batch),
            Err(StoreError::KindMismatch { .. })
        ));
        assert_eq!(counts(&storage), before);
        assert_eq!(store.load_doc("new").unwrap(), None);
        assert_eq!(store.meta("cursor").unwrap(), None);
        assert_eq!(store.load_doc("d").unwrap().unwrap(), b"a");
        let mut bad = StoreBatch::new();
        assert!(bad.append_doc_changes("", DocKind::Issue, vec![1]).is_err());
        assert!(bad.put_meta("a\0b", b"x").is_err());
        assert!(bad.is_empty());
    }

    #[test]
    fn writes_in_a_batch_build_on_the_ones_before() {
        let store = temp_store();
        store
            .append_doc_changes("p", DocKind::Patrol, b"a")
            .unwrap();
        let mut batch = StoreBatch::new();
        batch
            .append_doc_changes("p", DocKind::Patrol, b"b".to_vec())
            .unwrap();
        batch
            .append_doc_changes("p", DocKind::Patrol, b"c".to_vec())
            .unwrap();
        batch
            .append_doc_changes("q", DocKind::Patrol, b"q1".to_vec())
            .unwrap();
        batch.compact_doc("q", b"Q".to_vec()).unwrap();
        batch
            .append_doc_changes("q", DocKind::Patrol, b"2".to_vec())
            .unwrap();
        batch
            .append_doc_changes("gone", DocKind::Issue, b"g".to_vec())
            .unwrap();
        batch.put_sync_state("gone", "server", b"h").unwrap();
        batch.remove_doc("gone").unwrap();
        store.commit_batch(batch).unwrap();
        assert_eq!(store.load_doc("p").unwrap().unwrap(), b"abc");
        assert_eq!(store.load_doc("q").unwrap().unwrap(), b"Q2");
        assert_eq!(store.load_doc("gone").unwrap(), None);
        assert_eq!(store.sync_state("gone", "server").unwrap(), None);
        assert!(store.doc_ids(DocKind::Issue).unwrap().is_empty());
        assert_eq!(store.verify().unwrap().corrupt, Vec::<String>::new());
        // Compacting a document that neither the store nor the batch has fails the batch.
        let mut batch = StoreBatch::new();
        batch.compact_doc("missing", b"x".to_vec()).unwrap();
        assert!(matches!(
            store.commit_batch(batch),
            Err(StoreError::UnknownDoc { .. })
        ));
    }

    #[test]
    fn the_document_version_grows_with_every_write() {
        let store = temp_store();
        assert_eq!(store.doc_version("p").unwrap(), None);
        assert!(!store.has_doc("p").unwrap());
        store
            .append_doc_changes("p", DocKind::Patrol, b"a")
            .unwrap();
        let v1 = store.doc_version("p").unwrap().unwrap();
        assert!(store.has_doc("p").unwrap());
        store.append_doc_changes("p", DocKind::Patrol, b"").unwrap();
        assert_eq!(store.doc_version("p").unwrap(), Some(v1));
        store
            .append_doc_changes("p", DocKind::Patrol, b"b")
            .unwrap();
        let v2 = store.doc_version("p").unwrap().unwrap();
        assert!(v2 > v1);
        store.compact_doc("p", b"ab").unwrap();
        let v3 = store.doc_version("p").unwrap().unwrap();
        assert!(v3 > v2);
        store.remove_doc("p").unwrap();
        assert_eq!(store.doc_version("p").unwrap(), None);
    }

    #[test]
    fn compaction_at_a_version_leaves_a_document_written_since_alone() {
        let store = temp_store();
        store
            .append_doc_changes("p", DocKind::Patrol, b"a")
            .unwrap();
        store
            .append_doc_changes("p", DocKind::Patrol, b"b")
            .unwrap();
        let seen = store.doc_stat("p").unwrap().unwrap();
        assert_eq!(seen.chunks, 2);
        store
            .append_doc_changes("p", DocKind::Patrol, b"c")
            .unwrap();
        assert_eq!(
            store.compact_doc_at("p", seen.version, b"AB").unwrap(),
            None
        );
        assert_eq!(store.load_doc("p").unwrap().unwrap(), b"abc");
        let now = store.doc_stat("p").unwrap().unwrap();
        let compacted = store.compact_doc_at("p", now.version, b"ABC").unwrap();
        assert_eq!(compacted, store.doc_version("p").unwrap());
        assert!(compacted.unwrap() > now.version);
        assert_eq!(store.load_doc("p").unwrap().unwrap(), b"ABC");
        assert_eq!(store.doc_stat("p").unwrap().unwrap().chunks, 0);
        assert_eq!(store.compact_doc_at("missing", 0, b"x").unwrap(), None);
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
