//! The key-value trait the device store is written against, and its sled backend.
//!
//! The trait is deliberately tiny (get, put, delete, prefix scan, atomic batch, flush) so that
//! the pinned, fragile sled dependency stays replaceable. It moves raw bytes only: checksums,
//! encodings and key layout belong to the store above it, and this module must not know them.

use std::fmt;
use std::path::Path;

use super::StoreError;

/// One write of an atomic batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOp {
    Put { key: Vec<u8>, value: Vec<u8> },
    Delete { key: Vec<u8> },
}

/// Key-value pairs in ascending key order, as a prefix scan returns them.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// An ordered byte-key store. Writes are visible to readers at once but are only guaranteed to
/// survive a crash after [`Storage::flush`] returns.
pub trait Storage: Send + Sync + fmt::Debug {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError>;
    fn delete(&self, key: &[u8]) -> Result<(), StoreError>;
    /// Every entry whose key starts with `prefix`, in ascending key order.
    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StoreError>;
    /// Applies all operations or none of them, also across a crash.
    fn apply(&self, batch: Vec<BatchOp>) -> Result<(), StoreError>;
    /// Makes every earlier write durable (fsync) before returning.
    fn flush(&self) -> Result<(), StoreError>;
}

/// A phone keeps a small working set; sled's default cache (1 GiB) is sized for servers.
const DEVICE_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// [`Storage`] on a sled database (its default tree).
#[derive(Debug, Clone)]
pub struct SledStorage {
    db: sled::Db,
}

impl SledStorage {
    /// Opens (or creates) the database in the directory `path`. Only one process may hold it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(DEVICE_CACHE_BYTES)
            .open()?;
        Ok(Self { db })
    }

    /// A real sled database in a scratch location that is deleted when the last handle drops.
    pub fn temporary() -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .temporary(true)
            .cache_capacity(DEVICE_CACHE_BYTES)
            .open()?;
        Ok(Self { db })
    }
}

impl Storage for SledStorage {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get(key)?.map(|v| v.to_vec()))
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        self.db.insert(key, value)?;
        Ok(())
    }

    fn delete(&self, key: &[u8]) -> Result<(), StoreError> {
        self.db.remove(key)?;
        Ok(())
    }

    fn scan_prefix(&self, prefix: &[u8]) -> Result<Entries, StoreError> {
        self.db
            .scan_prefix(prefix)
            .map(|entry| {
                let (k, v) = entry?;
                Ok((k.to_vec(), v.to_vec()))
            })
            .collect()
    }

    fn apply(&self, batch: Vec<BatchOp>) -> Result<(), StoreError> {
        let mut sled_batch = sled::Batch::default();
        for op in batch {
            match op {
                BatchOp::Put { key, value } => sled_batch.insert(key, value),
                BatchOp::Delete { key } => sled_batch.remove(key),
            }
        }
        self.db.apply_batch(sled_batch)?;
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

impl From<sled::Error> for StoreError {
    fn from(err: sled::Error) -> Self {
        StoreError::Backend(Box::new(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_scan_is_ordered_and_bounded() {
        let s = SledStorage::temporary().unwrap();
        s.put(b"a/2", b"two").unwrap();
        s.put(b"a/1", b"one").unwrap();
        s.put(b"b/1", b"other").unwrap();
        let got = s.scan_prefix(b"a/").unwrap();
        assert_eq!(
            got,
            vec![
                (b"a/1".to_vec(), b"one".to_vec()),
                (b"a/2".to_vec(), b"two".to_vec())
            ]
        );
    }

    #[test]
    fn batch_puts_and_deletes_together() {
        let s = SledStorage::temporary().unwrap();
        s.put(b"old", b"x").unwrap();
        s.apply(vec![
            BatchOp::Delete {
                key: b"old".to_vec(),
            },
            BatchOp::Put {
                key: b"new".to_vec(),
                value: b"y".to_vec(),
            },
        ])
        .unwrap();
        assert_eq!(s.get(b"old").unwrap(), None);
        assert_eq!(s.get(b"new").unwrap(), Some(b"y".to_vec()));
        s.delete(b"new").unwrap();
        assert_eq!(s.get(b"new").unwrap(), None);
    }

    #[test]
    fn reopen_keeps_flushed_writes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = SledStorage::open(dir.path()).unwrap();
            s.put(b"k", b"v").unwrap();
            s.flush().unwrap();
        }
        let s = SledStorage::open(dir.path()).unwrap();
        assert_eq!(s.get(b"k").unwrap(), Some(b"v".to_vec()));
    }
}
