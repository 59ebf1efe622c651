//! The device's local store: everything a chief records on the phone lives here until the server
//! has it, and after.
//!
//! It holds the automerge documents as a base save plus incremental chunks, the per-document
//! sync state, small metadata, the photo outbox and the quarantine of changes the server
//! refused. Every mutating call is flushed to disk before it returns, so whatever the caller was
//! told is saved survives the app being killed. Every stored value carries a CRC32 over its key
//! and bytes; a damaged value is reported as [`StoreError::Corrupt`], never loaded silently.
//!
//! The store treats documents as opaque bytes: it must not depend on the document module, and it
//! does no network I/O. It runs over the small [`Storage`] trait; [`SledStorage`] is the backend.
//!
//! ```
//! use sync_core::store::{DocKind, LocalStore, SledStorage, UploadState};
//! use std::sync::Arc;
//!
//! let store = LocalStore::new(Arc::new(SledStorage::temporary()?));
//! store.append_doc_changes("patrol-1", DocKind::Patrol, b"first change")?;
//! store.append_doc_changes("patrol-1", DocKind::Patrol, b", second")?;
//! assert_eq!(store.load_doc("patrol-1")?.unwrap(), b"first change, second");
//!
//! let sha = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
//! store.enqueue_photo(sha, "patrol-1", "/photos/1.jpg", 182_000)?;
//! store.mark_progress(sha, 65_536)?;
//! let due = store.due_uploads(0)?;
//! assert_eq!(due[0].state, UploadState::Uploading { offset: 65_536 });
//! assert!(!store.record_photos_done("patrol-1")?);
//! # Ok::<(), sync_core::store::StoreError>(())
//! ```

mod codec;
mod local;
mod outbox;
mod quarantine;
mod storage;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use local::{DocKind, DocStat, IntegrityReport, LocalStore, StoreBatch};
pub use outbox::{OutboxEntry, UploadState};
pub use quarantine::QuarantinedChange;
pub use storage::{BatchOp, Entries, SledStorage, Storage};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The storage backend (disk, sled) failed; the operation did not take effect durably.
    #[error("local storage failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// The value stored under `key` does not match its checksum: the bytes on disk are damaged.
    #[error("stored value under {key} is damaged (checksum mismatch)")]
    Corrupt { key: String },
    /// The value under `key` passed its checksum but is not the record this version expects.
    #[error("stored value under {key} cannot be decoded: {source}")]
    Codec {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    /// An id the store would use in a key is empty or malformed.
    #[error("invalid {what} {id:?}")]
    InvalidId { what: &'static str, id: String },
    /// A document is already stored under the other kind.
    #[error("document {doc_id} is stored as a {stored} document, not a {requested} document")]
    KindMismatch {
        doc_id: String,
        stored: DocKind,
        requested: DocKind,
    },
    #[error("no document {doc_id} in the local store")]
    UnknownDoc { doc_id: String },
    #[error("no photo {sha256} in the outbox")]
    UnknownPhoto { sha256: String },
}
