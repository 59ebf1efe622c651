//! Photo blobs on the server: content-addressed bytes named by their SHA-256, uploaded whole or
//! in resumable chunks, verified before anyone can see them, and thumbnailed once.
//!
//! [`BlobStore`] is the small storage trait (complete blobs with their receipt record, the
//! incoming area of interrupted uploads, cached thumbnails); [`FileBlobs`] keeps them as files
//! under `<data-dir>/blobs/` (the default), [`S3Blobs`] in an S3-compatible bucket shared by any
//! number of servers (`--blobs s3://…`; [`BlobLocation`]). [`Blobs`] is what handlers call: it runs the upload state machine
//! (offsets, the final check through sync-core's [`validate_upload`], atomic commit) and
//! thumbnails through sync-core's [`thumbnail`], serialising work on one blob with striped
//! locks. Every method may block and decode images: handlers call it inside `web::block`.
//!
//! This module decides nothing about who may download a blob; `photos` does.

#[cfg(test)]
#[macro_use]
mod conformance;
mod files;
mod s3;
#[cfg(test)]
pub(crate) mod weed;

pub use files::FileBlobs;
pub use s3::{S3Blobs, S3Location};

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash as _, Hasher};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sync_core::photo::{
    thumbnail, validate_upload, DecodeLimits, PhotoError, PhotoFormat, UploadLimits, THUMBNAIL_SIDE,
};

/// The default largest photo accepted, bytes. Prepared photos are a few hundred kilobytes; the
/// margin admits phones configured to upload full-resolution originals.
pub const DEFAULT_MAX_PHOTO_BYTES: u64 = 8 * 1024 * 1024;

/// What the server recorded when a blob arrived complete and valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    pub sha256: String,
    pub format: PhotoFormat,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    /// Server time the last byte arrived, Unix milliseconds: the reference of the clock-skew
    /// evidence check.
    pub received_at_ms: i64,
    /// The user whose upload completed the blob.
    pub uploaded_by: String,
}

/// One user's upload of one blob. Partial uploads are kept per user, so two phones sending the
/// same photo never write into each other's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadKey {
    pub sha256: String,
    pub user: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob storage: {0}")]
    Io(#[from] std::io::Error),
    /// Stored bytes no longer match their name or checksum.
    #[error("stored blob {what} is damaged: {detail}")]
    Corrupt { what: String, detail: String },
}

/// What [`Blobs::remove_unreferenced`] asks about each old blob: given its name and a way to
/// remove it, whether it removed it.
pub type Collect<'a> =
    dyn Fn(&str, &dyn Fn() -> Result<bool, BlobError>) -> Result<bool, BlobError> + 'a;

/// Where blobs live. Every mutating call is durable when it returns; a complete blob becomes
/// visible all at once or not at all.
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// The receipt record of a complete blob.
    fn record(&self, sha256: &str) -> Result<Option<BlobRecord>, BlobError>;
    /// A complete blob's bytes, verified against its name.
    fn read(&self, sha256: &str) -> Result<Option<Vec<u8>>, BlobError>;
    /// Stores a complete, validated blob with its record. Returns `false`, changing nothing, when
    /// the blob is already stored.
    fn commit(&self, record: &BlobRecord, bytes: &[u8]) -> Result<bool, BlobError>;

    /// Bytes kept of an interrupted upload; `None` when there is none.
    fn partial_len(&self, key: &UploadKey) -> Result<Option<u64>, BlobError>;
    /// Writes `bytes` at `offset` (at most the current length; anything after `offset` is cut
    /// first, so a resent chunk replaces itself) and returns the new length.
    fn write_partial(&self, key: &UploadKey, offset: u64, bytes: &[u8]) -> Result<u64, BlobError>;
    fn read_partial(&self, key: &UploadKey) -> Result<Vec<u8>, BlobError>;
    fn discard_partial(&self, key: &UploadKey) -> Result<(), BlobError>;
    /// Interrupted uploads nobody has written to since `cutoff`.
    fn idle_partials(&self, cutoff: SystemTime) -> Result<Vec<IdlePartial>, BlobError>;
    /// Removes `partial` if it is still untouched since `cutoff`; whether it was removed.
    fn discard_idle(&self, partial: &IdlePartial, cutoff: SystemTime) -> Result<bool, BlobError>;

    /// A cached thumbnail, verified against its checksum.
    fn thumbnail(&self, sha256: &str) -> Result<Option<Vec<u8>>, BlobError>;
    fn put_thumbnail(&self, sha256: &str, jpeg: &[u8]) -> Result<(), BlobError>;

    /// Names of every complete blob.
    fn stored(&self) -> Result<Vec<String>, BlobError>;
    /// Removes a complete blob with its record and thumbnail; whether there was one. The
    /// bytes go first, so a blob is never half there: after a crash at most a record is left,
    /// which the next commit of the same name overwrites.
    fn remove(&self, sha256: &str) -> Result<bool, BlobError>;
}

/// Where photos are kept (`--blobs`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BlobLocation {
    /// Files under `<data-dir>/blobs/`: one server.
    #[default]
    Files,
    /// An S3-compatible bucket, shared by every server of a cluster.
    S3(S3Location),
}

impl BlobLocation {
    /// Parses the `--blobs` value: `s3://bucket[/prefix][?endpoint=URL&…]`, or `files`.
    pub fn parse(value: &str) -> Result<Self, String> {
        if value == "files" {
            Ok(Self::Files)
        } else {
            S3Location::parse(value).map(Self::S3)
        }
    }

    /// Opens the store: under `data_dir/blobs` for files, else the bucket (checked to answer).
    pub fn open(&self, data_dir: &std::path::Path) -> Result<Box<dyn BlobStore>, BlobError> {
        Ok(match self {
            Self::Files => Box::new(FileBlobs::open(&data_dir.join("blobs"))?),
            Self::S3(location) => Box::new(S3Blobs::open(location)?),
        })
    }
}

impl std::fmt::Display for BlobLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Files => f.write_str("files"),
            Self::S3(location) => location.fmt(f),
        }
    }
}

/// An interrupted upload found idle, named as the store names it (uploader ids are not kept in
/// the clear, so it is not an [`UploadKey`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdlePartial {
    pub sha256: String,
    /// The store's own name of this uploader's partial.
    pub name: String,
}

/// Whether `name` is a blob name: 64 lower-case hex digits. Checked before a name reaches a path.
pub fn is_sha256(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// `Content-Range: bytes first-last/total` of one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRange {
    pub first: u64,
    pub last: u64,
    pub total: u64,
}

impl ChunkRange {
    /// Parses `bytes a-b/total` with `a ≤ b < total`.
    pub fn parse(header: &str) -> Option<Self> {
        let (first, rest) = header.trim().strip_prefix("bytes ")?.split_once('-')?;
        let (last, total) = rest.split_once('/')?;
        let range = ChunkRange {
            first: first.trim().parse().ok()?,
            last: last.trim().parse().ok()?,
            total: total.trim().parse().ok()?,
        };
        (range.first <= range.last && range.last < range.total).then_some(range)
    }

    /// Bytes in the chunk (never zero).
    pub fn chunk_len(&self) -> u64 {
        self.last - self.first + 1
    }
}

/// How much of a blob the server holds for one uploader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    Complete(u64),
    Partial(u64),
    Missing,
}

/// What a `PUT` achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Stored now, complete and valid.
    Created(u64),
    /// Already stored before this request: nothing changed.
    AlreadyStored(u64),
    /// A chunk kept; this many bytes are held so far.
    Partial(u64),
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The bytes are refused (too large, wrong hash, not a picture, damaged, a bomb); nothing
    /// of them is kept.
    #[error(transparent)]
    Refused(#[from] PhotoError),
    /// The chunk starts after the bytes held: the uploader must ask for the offset again.
    #[error("chunk starts at byte {first}, but {held} bytes are held")]
    OffsetMismatch { first: u64, held: u64 },
    #[error(transparent)]
    Store(#[from] BlobError),
}

/// Locks are striped by blob name: uploads, commits and thumbnailing of one blob run one at a
/// time, different blobs in parallel.
const STRIPES: usize = 64;

/// The blob service handlers use.
#[derive(Debug)]
pub struct Blobs {
    store: Box<dyn BlobStore>,
    limits: UploadLimits,
    stripes: Vec<Mutex<()>>,
}

impl Blobs {
    pub fn new(store: Box<dyn BlobStore>, max_bytes: u64) -> Self {
        Self {
            store,
            limits: UploadLimits {
                max_bytes,
                decode: DecodeLimits::default(),
            },
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    pub fn max_bytes(&self) -> u64 {
        self.limits.max_bytes
    }

    pub fn store(&self) -> &dyn BlobStore {
        &*self.store
    }

    fn lock(&self, sha256: &str) -> MutexGuard<'_, ()> {
        let mut hasher = DefaultHasher::new();
        sha256.hash(&mut hasher);
        // A panic under the lock leaves no half-written blob (commits are renames), so a
        // poisoned stripe carries no meaning.
        self.stripes[(hasher.finish() as usize) % STRIPES]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What the server holds of `key.sha256` for `key.user`: complete when `shown` (the caller
    /// uploaded it or may see it; see `photos`), else only the user's own partial upload, so
    /// that asking never tells anyone else whether a photo is stored.
    pub fn held(&self, key: &UploadKey, shown: bool) -> Result<Held, BlobError> {
        if shown {
            if let Some(record) = self.store.record(&key.sha256)? {
                return Ok(Held::Complete(record.bytes));
            }
        }
        Ok(match self.store.partial_len(key)? {
            Some(n) => Held::Partial(n),
            None => Held::Missing,
        })
    }

    /// A whole photo in one body. A photo already stored is answered as such at once only when
    /// `shown` (as in [`Blobs::held`]); anyone else's bytes are checked like a new photo's
    /// first, so only someone holding the photo learns that the server has it.
    pub fn put_whole(
        &self,
        key: &UploadKey,
        bytes: &[u8],
        now_ms: i64,
        shown: bool,
    ) -> Result<Put, UploadError> {
        let _guard = self.lock(&key.sha256);
        if shown {
            if let Some(record) = self.store.record(&key.sha256)? {
                return Ok(Put::AlreadyStored(record.bytes));
            }
        }
        let put = self.finish(key, bytes, now_ms)?;
        // A whole body replaces any earlier attempt in chunks.
        self.store.discard_partial(key)?;
        Ok(put)
    }

    /// One chunk. The photo is checked and committed when its last byte arrives; a refused
    /// photo's partial bytes are discarded, so the next attempt starts from zero. `shown` as in
    /// [`Blobs::put_whole`]: others upload a stored photo to its end before hearing so.
    pub fn put_chunk(
        &self,
        key: &UploadKey,
        range: ChunkRange,
        bytes: &[u8],
        now_ms: i64,
        shown: bool,
    ) -> Result<Put, UploadError> {
        let _guard = self.lock(&key.sha256);
        if shown {
            if let Some(record) = self.store.record(&key.sha256)? {
                self.store.discard_partial(key)?;
                return Ok(Put::AlreadyStored(record.bytes));
            }
        }
        let held = self.store.partial_len(key)?.unwrap_or(0);
        if range.first > held {
            return Err(UploadError::OffsetMismatch {
                first: range.first,
                held,
            });
        }
        let len = self.store.write_partial(key, range.first, bytes)?;
        if len < range.total {
            return Ok(Put::Partial(len));
        }
        let whole = self.store.read_partial(key)?;
        let put = self.finish(key, &whole, now_ms);
        // Accepted or refused, the partial bytes have served their purpose.
        self.store.discard_partial(key)?;
        put
    }

    fn finish(&self, key: &UploadKey, bytes: &[u8], now_ms: i64) -> Result<Put, UploadError> {
        let info = validate_upload(bytes, &key.sha256, &self.limits)?;
        let record = BlobRecord {
            sha256: key.sha256.clone(),
            format: info.format,
            width: info.width,
            height: info.height,
            bytes: info.bytes,
            received_at_ms: now_ms,
            uploaded_by: key.user.clone(),
        };
        Ok(if self.store.commit(&record, bytes)? {
            Put::Created(info.bytes)
        } else {
            Put::AlreadyStored(info.bytes)
        })
    }

    /// Removes interrupted uploads untouched since `cutoff` (phones that gave a photo up, or were
    /// reset) and returns how many. Each is removed under its blob's lock after checking again
    /// that it is still idle, so an upload resumed at that moment keeps its bytes.
    pub fn expire_abandoned(&self, cutoff: SystemTime) -> Result<usize, BlobError> {
        let mut removed = 0;
        for partial in self.store.idle_partials(cutoff)? {
            let _guard = self.lock(&partial.sha256);
            removed += usize::from(self.store.discard_idle(&partial, cutoff)?);
        }
        Ok(removed)
    }

    /// Offers each complete blob received before `cutoff_ms` to `collect`, under the blob's
    /// lock (so no upload of it runs meanwhile), with a `remove` that deletes it and says
    /// whether it was there; returns how many `collect` removed. The caller decides whether no
    /// record references the blob, and calls `remove` while holding whatever makes that answer
    /// still true at the moment of the removal (`photos::collect_unreferenced`).
    pub fn remove_unreferenced(
        &self,
        cutoff_ms: i64,
        collect: &Collect<'_>,
    ) -> Result<usize, BlobError> {
        let mut removed = 0;
        for sha256 in self.store.stored()? {
            let _guard = self.lock(&sha256);
            let Some(record) = self.store.record(&sha256)? else {
                continue;
            };
            if record.received_at_ms < cutoff_ms
                && collect(&sha256, &|| self.store.remove(&sha256))?
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// A complete blob with its record.
    pub fn read(&self, sha256: &str) -> Result<Option<(BlobRecord, Vec<u8>)>, BlobError> {
        let Some(record) = self.store.record(sha256)? else {
            return Ok(None);
        };
        Ok(self.store.read(sha256)?.map(|bytes| (record, bytes)))
    }

    /// The blob's thumbnail (≤ [`THUMBNAIL_SIDE`] px), rendered on first request and cached.
    pub fn thumbnail(&self, sha256: &str) -> Result<Option<Vec<u8>>, BlobError> {
        if let Some(cached) = self.store.thumbnail(sha256)? {
            return Ok(Some(cached));
        }
        let _guard = self.lock(sha256);
        if let Some(cached) = self.store.thumbnail(sha256)? {
            return Ok(Some(cached));
        }
        let Some(bytes) = self.store.read(sha256)? else {
            return Ok(None);
        };
        // The blob decoded when it was accepted; failing now means the stored bytes changed.
        let jpeg = thumbnail(&bytes, THUMBNAIL_SIDE, &self.limits.decode).map_err(|e| {
            BlobError::Corrupt {
                what: sha256.to_owned(),
                detail: e.to_string(),
            }
        })?;
        self.store.put_thumbnail(sha256, &jpeg)?;
        Ok(Some(jpeg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse_only_when_consistent() {
        assert_eq!(
            ChunkRange::parse("bytes 0-99/1000"),
            Some(ChunkRange {
                first: 0,
                last: 99,
                total: 1000
            })
        );
        assert_eq!(
            ChunkRange::parse("bytes 900-999/1000").unwrap().chunk_len(),
            100
        );
        for bad in [
            "bytes 10-5/100",
            "bytes 0-100/100",
            "bytes */100",
            "items 0-1/2",
            "bytes 0-1",
            "bytes -1-2/3",
        ] {
            assert_eq!(ChunkRange::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_lower_case_hex_of_64_digits_is_a_name() {
        assert!(is_sha256(&"ab".repeat(32)));
        assert!(!is_sha256(&"AB".repeat(32)));
        assert!(!is_sha256(&"a".repeat(63)));
        assert!(!is_sha256(&format!("../{}", "a".repeat(61))));
    }

    #[test]
    fn abandoned_uploads_expire_and_the_phone_starts_again() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::new(Box::new(FileBlobs::open(dir.path()).unwrap()), 1 << 20);
        let key = UploadKey {
            sha256: "ab".repeat(32),
            user: "u-demo-chief".into(),
        };
        let range = ChunkRange {
            first: 0,
            last: 99,
            total: 1_000,
        };
        let put = blobs.put_chunk(&key, range, &[7; 100], 0, true).unwrap();
        assert_eq!(put, Put::Partial(100));
        let now = SystemTime::now();
        assert_eq!(
            blobs
                .expire_abandoned(now - std::time::Duration::from_secs(60))
                .unwrap(),
            0
        );
        assert_eq!(blobs.held(&key, true).unwrap(), Held::Partial(100));
        let later = now + std::time::Duration::from_secs(60);
        assert_eq!(blobs.expire_abandoned(later).unwrap(), 1);
        assert_eq!(blobs.held(&key, true).unwrap(), Held::Missing);
        // The phone asks for its offset, hears nothing is held, and sends from the start.
        let again = ChunkRange {
            first: 100,
            last: 199,
            total: 1_000,
        };
        assert!(matches!(
            blobs.put_chunk(&key, again, &[7; 100], 0, true),
            Err(UploadError::OffsetMismatch {
                first: 100,
                held: 0
            })
        ));
    }
}
