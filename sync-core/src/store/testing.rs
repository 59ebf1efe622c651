//! What every [`Storage`] backend under the phone's local store must do, written once (cargo
//! feature `testing`), and a storage in memory that does it.
//!
//! A backend proves itself with a [`Harness`] and one line in its test module,
//! `sync_core::storage_conformance!(harness);`, which expands to one `#[test]` per case below.
//! [`SledStorage`](super::SledStorage) and [`MemoryStorage`] run it in sync-core's own tests.
//!
//! ```
//! use std::sync::Arc;
//! use sync_core::store::testing::MemoryStorage;
//! use sync_core::store::{DocKind, LocalStore};
//!
//! let store = LocalStore::new(Arc::new(MemoryStorage::default()));
//! store.append_doc_changes("patrol-1", DocKind::Patrol, b"first change")?;
//! assert_eq!(store.load_doc("patrol-1")?.unwrap(), b"first change");
//! # Ok::<(), sync_core::store::StoreError>(())
//! ```

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{BatchOp, Entries, Storage, StoreError};

/// Opens one backend's storage for the suite.
pub trait Harness {
    type Storage: Storage;
    /// Opens the storage. Called again after every handle of the first is dropped, it must open
    /// the same data: that is how "reopened after a close" is tested.
    fn open(&self) -> Self::Storage;
}

/// Expands to one `#[test]` per conformance case, each with a fresh harness from `$harness`.
#[macro_export]
macro_rules! storage_conformance {
    ($harness:expr) => {
        $crate::storage_conformance!(@cases $harness;
            values_round_trip_and_are_replaced,
            keys_and_values_are_any_bytes,
            prefix_scans_are_ordered_and_bounded,
            batches_apply_every_write_in_order,
            flushed_writes_survive_a_reopen,
        );
    };
    (@cases $harness:expr; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::store::testing::$case(&$harness);
            }
        )+
    };
}

fn put(key: &[u8], value: &[u8]) -> BatchOp {
    BatchOp::Put {
        key: key.to_vec(),
        value: value.to_vec(),
    }
}

fn delete(key: &[u8]) -> BatchOp {
    BatchOp::Delete { key: key.to_vec() }
}

/// A value reads back as written, a second put replaces it, a delete removes it, and deleting
/// what is absent is no error.
pub fn values_round_trip_and_are_replaced(h: &impl Harness) {
    let s = h.open();
    assert_eq!(s.get(b"k").unwrap(), None);
    s.put(b"k", b"one").unwrap();
    assert_eq!(s.get(b"k").unwrap(), Some(b"one".to_vec()));
    s.put(b"k", b"two").unwrap();
    assert_eq!(s.get(b"k").unwrap(), Some(b"two".to_vec()));
    s.delete(b"k").unwrap();
    assert_eq!(s.get(b"k").unwrap(), None);
    s.delete(b"never there").unwrap();
}

/// Keys and values are bytes, not text: zero bytes, 0xFF, an empty value and a value of a few
/// megabytes (a day's patrol save) all come back unchanged.
pub fn keys_and_values_are_any_bytes(h: &impl Harness) {
    let s = h.open();
    let big: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    s.put(&[0, 0xFF, 0], b"").unwrap();
    s.put(&[0xFF; 3], &big).unwrap();
    assert_eq!(s.get(&[0, 0xFF, 0]).unwrap(), Some(Vec::new()));
    assert_eq!(s.get(&[0xFF; 3]).unwrap(), Some(big));
    assert_eq!(s.get(&[0, 0xFF]).unwrap(), None, "no prefix match for get");
}

/// A prefix scan returns exactly the keys that start with the prefix, in ascending byte order.
pub fn prefix_scans_are_ordered_and_bounded(h: &impl Harness) {
    let s = h.open();
    for key in [&b"a/2"[..], b"a/10", b"a/1", b"a", b"a0", b"b/1", b"a/\xFF"] {
        s.put(key, key).unwrap();
    }
    let keys = |prefix: &[u8]| -> Vec<Vec<u8>> {
        s.scan_prefix(prefix)
            .unwrap()
            .into_iter()
            .map(|(k, v)| {
                assert_eq!(k, v, "each key with its own value");
                k
            })
            .collect()
    };
    assert_eq!(
        keys(b"a/"),
        vec![
            b"a/1".to_vec(),
            b"a/10".to_vec(),
            b"a/2".to_vec(),
            b"a/\xFF".to_vec()
        ]
    );
    assert_eq!(keys(b"a/1"), vec![b"a/1".to_vec(), b"a/10".to_vec()]);
    assert!(keys(b"c").is_empty());
    assert_eq!(keys(b"").len(), 7, "the empty prefix scans everything");
    s.delete(b"a/10").unwrap();
    assert_eq!(keys(b"a/1"), vec![b"a/1".to_vec()]);
}

/// A batch applies all its writes, in order: a later write to the same key wins.
pub fn batches_apply_every_write_in_order(h: &impl Harness) {
    let s = h.open();
    s.put(b"old", b"x").unwrap();
    s.apply(vec![
        delete(b"old"),
        put(b"new", b"1"),
        put(b"new", b"2"),
        put(b"gone", b"3"),
        delete(b"gone"),
    ])
    .unwrap();
    assert_eq!(s.get(b"old").unwrap(), None);
    assert_eq!(s.get(b"new").unwrap(), Some(b"2".to_vec()));
    assert_eq!(s.get(b"gone").unwrap(), None);
    s.apply(Vec::new()).unwrap();
    assert_eq!(s.scan_prefix(b"").unwrap().len(), 1);
}

/// What was flushed is there after the storage is closed and opened again.
pub fn flushed_writes_survive_a_reopen(h: &impl Harness) {
    {
        let s = h.open();
        s.put(b"k", b"v").unwrap();
        s.apply(vec![put(b"batch", b"b"), delete(b"k2")]).unwrap();
        s.flush().unwrap();
    }
    let s = h.open();
    assert_eq!(s.get(b"k").unwrap(), Some(b"v".to_vec()));
    assert_eq!(s.get(b"batch").unwrap(), Some(b"b".to_vec()));
}

/// A [`Storage`] in memory that passes the conformance suite, for tests that need a phone's
/// store without a disk. `flush` has nothing to do; nothing survives the process.
#[derive(Debug, Default, Clone)]
pub struct MemoryStorage(Arc<Mutex<BTreeMap<Vec<u8>, Vec<u8>>>>);

impl MemoryStorage {
    fn map(&self) -> MutexGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        // Every write is one step under the lock: a panic elsewhere leaves no half-write.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Storage for MemoryStorage {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.map().get(key).cloned())
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.map().insert(key.to_vec(), value.to_vec());
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<(), StoreError> {
        self.map().remove(key);
        Ok(())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StoreError> {
        Ok(self
            .map()
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn apply(&self, batch: Vec<BatchOp>) -> Result<(), StoreError> {
        let mut map = self.map();
        for op in batch {
            match op {
                BatchOp::Put { key, value } => map.insert(key, value),
                BatchOp::Delete { key } => map.remove(&key),
            };
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The harness of [`MemoryStorage`]: clones share the data, so a reopen sees what was written.
#[derive(Debug, Default)]
pub struct MemoryHarness(MemoryStorage);

impl Harness for MemoryHarness {
    type Storage = MemoryStorage;

    fn open(&self) -> Self::Storage {
        self.0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::MemoryHarness;

    crate::storage_conformance!(MemoryHarness::default());
}
