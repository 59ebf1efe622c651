//! The key-value trait the device store is written against, and its sled backend.
//!
//! The trait is deliberately tiny (get, put, delete, prefix scan, atomic batch, flush) so that
//! the pinned, fragile sled dependency stays replaceable. It moves raw bytes only: checksums,
//! encodings and key layout belong to the store above it, and this module must not know them.
//! Every backend passes the conformance suite in `store::testing` (cargo feature `testing`).

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
    ///
    /// sled releases its file lock from its flusher thread after the last handle drops, so an
    /// app that closes its store and opens it again at once (or a process started right after
    /// another one closed it) may find the lock still held for a moment: the open waits up to
    /// a second for it before giving up.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        loop {
            match sled::Config::new()
                .path(path)
                .cache_capacity(DEVICE_CACHE_BYTES)
                .open()
            {
                Ok(db) => return Ok(Self { db }),
                Err(sled::Error::Io(err))
                    if err.kind() == std::io::ErrorKind::WouldBlock
                        || err.to_string().contains("could not acquire lock") =>
                {
                    if std::time::Instant::now() >= deadline {
                        return Err(sled::Error::Io(err).into());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(err) => return Err(err.into()),
            }
        }
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
    use super::SledStorage;
    use crate::store::testing::Harness;

    /// A sled database in a temporary directory that can be closed and opened again.
    #[derive(Debug)]
    struct SledHarness(tempfile::TempDir);

    impl SledHarness {
        fn new() -> Self {
            Self(tempfile::tempdir().expect("temp dir"))
        }
    }

    impl Harness for SledHarness {
        type Storage = SledStorage;

        /// sled releases its file lock from its flusher thread after the last handle drops, so
        /// a reopen right after a close may find the lock still held for a moment.
        fn open(&self) -> SledStorage {
            for _ in 0..50 {
                match SledStorage::open(self.0.path()) {
                    Ok(storage) => return storage,
                    Err(err) if err.to_string().contains("could not acquire lock") => {
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(err) => panic!("open sled: {err}"),
                }
            }
            panic!("sled's lock was never released");
        }
    }

    crate::storage_conformance!(SledHarness::new());
}
