//! Blobs in an S3-compatible object store (`--blobs s3://bucket/prefix?endpoint=…`), shared by
//! any number of server processes:
//!
//! ```text
//! <prefix>/objects/abcd…                  the photo bytes, with the receipt record (JSON,
//!                                         CRC32-sealed, hex) in the object's metadata
//! <prefix>/thumbs/abcd….jpg               the cached thumbnail, CRC32-sealed
//! <prefix>/incoming/abcd….<user>/<offset> one chunk of an interrupted upload, per blob and
//!                                         uploader, named by its first byte (20 digits)
//! ```
//!
//! A complete blob is one object holding both its bytes and its record, written with
//! `If-None-Match: *`: it appears whole or not at all, and of two servers committing the same
//! photo at once exactly one stores it, record and all; the other hears it was already stored.
//!
//! An interrupted upload lives in the bucket, not on the server that took its first chunks, so
//! the phone resumes it on whichever server answers next. Each chunk is an object named by its
//! offset; the upload's bytes are the chunks in offset order, each cut where the next begins.
//! Writing at an offset removes the chunks that start after it (last first, so a crash halfway
//! leaves a shorter upload, never a gap) and then puts the chunk under its offset's name,
//! replacing a resent chunk whole. Chunks that do not join up (left by a race between two
//! servers) end the upload there; the phone is told the shorter offset and sends the rest
//! again, and the final hash check refuses any mix. S3 multipart uploads do not fit: their
//! parts must be 5 MiB except the last, while phones send chunks of tens of kilobytes, and they
//! cannot be cut back when a chunk is resent.
//!
//! Credentials come from the environment under the usual AWS names (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, web identity or container
//! credentials); the URL carries only where the bucket is (`endpoint`, `region`, …) and never a
//! secret. A server that allows anonymous access is reached with `skip_signature=true`.
//!
//! `object_store` is async and [`BlobStore`] blocks (handlers call it in `web::block`, jobs and
//! tests on plain threads): the store owns a small tokio runtime, spawns each request on it and
//! waits for the answer on a channel. That works from any thread, inside an async context or
//! not, and keeps one connection pool for all of the server's workers, instead of tying
//! connections to whichever actix worker runtime happened to open them.

use std::future::Future;
use std::io::{self, ErrorKind};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, GetOptions, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode,
    PutOptions, PutPayload, RetryConfig,
};
use sha2::{Digest, Sha256};

use super::{is_sha256, BlobError, BlobRecord, BlobStore, IdlePartial, UploadKey};

/// Where the blobs are: the bucket, a key prefix inside it, and the connection options of the
/// `--blobs` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Keys start with `prefix/` (empty: at the bucket's root).
    pub prefix: String,
    /// From the URL's query: `endpoint`, `region`, `skip_signature`, … (object_store's names).
    options: Vec<(AmazonS3ConfigKey, String)>,
}

impl S3Location {
    /// Parses `s3://bucket[/prefix][?endpoint=URL&region=…]`. Secrets are refused in the URL
    /// (it shows in process lists and logs): they come from the environment.
    pub fn parse(url: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("{url}: {e}"))?;
        if parsed.scheme() != "s3" {
            return Err(format!("{url}: expected s3://bucket[/prefix][?endpoint=…]"));
        }
        let bucket = parsed.host_str().unwrap_or_default().to_owned();
        if bucket.is_empty() {
            return Err(format!("{url}: no bucket"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(format!(
                "{url}: credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), not the URL"
            ));
        }
        let prefix = parsed.path().trim_matches('/').to_owned();
        if !prefix.is_empty() {
            Path::parse(&prefix).map_err(|e| format!("{url}: prefix: {e}"))?;
        }
        let mut options = Vec::new();
        for (key, value) in parsed.query_pairs() {
            let config: AmazonS3ConfigKey = key
                .to_ascii_lowercase()
                .parse()
                .map_err(|_| format!("{url}: unknown option {key}"))?;
            match config {
                AmazonS3ConfigKey::AccessKeyId
                | AmazonS3ConfigKey::SecretAccessKey
                | AmazonS3ConfigKey::Token => {
                    return Err(format!(
                        "{url}: {key} is a secret; set it in the environment, not the URL"
                    ))
                }
                AmazonS3ConfigKey::Bucket => {
                    return Err(format!("{url}: the bucket is the URL's host"))
                }
                _ => options.push((config, value.into_owned())),
            }
        }
        Ok(Self {
            bucket,
            prefix,
            options,
        })
    }
}

impl std::fmt::Display for S3Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        for (i, (key, value)) in self.options.iter().enumerate() {
            write!(
                f,
                "{}{}={value}",
                if i == 0 { '?' } else { '&' },
                key.as_ref()
            )?;
        }
        Ok(())
    }
}

/// The metadata key of the receipt record on a blob object.
const RECORD_KEY: &str = "chiefsync-record";

pub struct S3Blobs {
    store: Arc<dyn ObjectStore>,
    root: Path,
    location: S3Location,
    /// Runs the object store's requests; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for S3Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Blobs")
            .field("location", &self.location.to_string())
            .finish_non_exhaustive()
    }
}

impl Drop for S3Blobs {
    fn drop(&mut self) {
        // A runtime may not be dropped (which waits for its threads) inside an async context,
        // where a server's state can end; nothing is in flight once the store is dropped.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = object_store::Result<T>> + Send + 'a>>;

fn io_error(e: object_store::Error) -> BlobError {
    BlobError::Io(io::Error::other(e))
}

fn invalid(what: &str) -> BlobError {
    io::Error::new(ErrorKind::InvalidInput, what.to_owned()).into()
}

fn checked(sha256: &str) -> Result<&str, BlobError> {
    if is_sha256(sha256) {
        Ok(sha256)
    } else {
        Err(invalid("not a blob name"))
    }
}

/// CRC32 (little-endian) in front of the bytes.
fn seal(bytes: &[u8]) -> Vec<u8> {
    let mut out = crc32fast::hash(bytes).to_le_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

fn unseal(what: &str, sealed: &[u8]) -> Result<Vec<u8>, BlobError> {
    let corrupt = |detail: &str| BlobError::Corrupt {
        what: what.to_owned(),
        detail: detail.to_owned(),
    };
    if sealed.len() < 4 {
        return Err(corrupt("shorter than its checksum"));
    }
    let (crc, bytes) = sealed.split_at(4);
    if crc32fast::hash(bytes).to_le_bytes() != crc {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(bytes.to_vec())
}

/// One chunk of an interrupted upload as listed.
#[derive(Debug, Clone)]
struct Chunk {
    offset: u64,
    meta: ObjectMeta,
}

/// The bytes held of an upload: the chunks from offset 0 on, as long as each reaches the next.
/// Returns the length and, for each chunk used, how many of its bytes count.
fn joined(chunks: &[Chunk]) -> (u64, Vec<(&Chunk, u64)>) {
    let mut used = Vec::new();
    let mut held = 0u64;
    for (i, chunk) in chunks.iter().enumerate() {
        if chunk.offset > held {
            break;
        }
        let end = chunk.offset + chunk.meta.size;
        match chunks.get(i + 1) {
            Some(next) if next.offset <= end => {
                used.push((chunk, next.offset - chunk.offset));
                held = next.offset;
            }
            _ => {
                used.push((chunk, chunk.meta.size));
                held = end;
                break;
            }
        }
    }
    (held, used)
}

impl S3Blobs {
    /// Connects with credentials from the process environment and checks that the bucket
    /// answers, so a wrong URL or key stops the server at start rather than at the first photo.
    pub fn open(location: &S3Location) -> Result<Self, BlobError> {
        Self::open_with_env(location, std::env::vars())
    }

    /// [`S3Blobs::open`] with the `AWS_*` variables taken from `env` instead of the process.
    pub fn open_with_env(
        location: &S3Location,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, BlobError> {
        // reqwest is built without a default TLS provider (the default is C, aws-lc); ring is
        // installed once for the process. An error means one is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::new();
        for (key, value) in env {
            // The same variables as object_store's `from_env`, from the given list.
            if key.starts_with("AWS_") {
                if let Ok(config) = key.to_ascii_lowercase().parse::<AmazonS3ConfigKey>() {
                    builder = builder.with_config(config, value);
                }
            }
        }
        for (key, value) in &location.options {
            if *key == AmazonS3ConfigKey::Endpoint && value.starts_with("http://") {
                // The operator wrote plain http for this endpoint (a store on the same host or
                // network); anywhere else TLS is required.
                builder = builder.with_allow_http(true);
            }
            builder = builder.with_config(*key, value);
        }
        let store = builder
            .with_bucket_name(&location.bucket)
            // A photo request waits on the store: a few quick retries, then the phone retries.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(20),
                ..RetryConfig::default()
            })
            .build()
            .map_err(io_error)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("blobs-s3")
            .enable_all()
            .build()?;
        let root = if location.prefix.is_empty() {
            Path::default()
        } else {
            Path::parse(&location.prefix).map_err(|e| invalid(&e.to_string()))?
        };
        let blobs = Self {
            store: Arc::new(store),
            root,
            location: location.clone(),
            runtime: Some(runtime),
        };
        let probe = blobs.root.clone().join("objects");
        blobs.run(|store| {
            Box::pin(async move { store.list_with_delimiter(Some(&probe)).await.map(|_| ()) })
        })?;
        Ok(blobs)
    }

    pub fn location(&self) -> &S3Location {
        &self.location
    }

    /// Runs one request on the store's runtime and waits for its answer.
    fn call<T: Send + 'static>(
        &self,
        request: impl FnOnce(Arc<dyn ObjectStore>) -> Boxed<'static, T>,
    ) -> Result<object_store::Result<T>, BlobError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let future = request(self.store.clone());
        self.runtime
            .as_ref()
            .expect("the runtime lives as long as the store")
            .spawn(async move {
                let _ = tx.send(future.await);
            });
        rx.recv()
            .map_err(|_| BlobError::Io(io::Error::other("blob store runtime stopped")))
    }

    fn run<T: Send + 'static>(
        &self,
        request: impl FnOnce(Arc<dyn ObjectStore>) -> Boxed<'static, T>,
    ) -> Result<T, BlobError> {
        self.call(request)?.map_err(io_error)
    }

    /// Like [`S3Blobs::run`], with "not found" as `None`.
    fn run_found<T: Send + 'static>(
        &self,
        request: impl FnOnce(Arc<dyn ObjectStore>) -> Boxed<'static, T>,
    ) -> Result<Option<T>, BlobError> {
        match self.call(request)? {
            Ok(value) => Ok(Some(value)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(io_error(e)),
        }
    }

    fn object(&self, sha256: &str) -> Result<Path, BlobError> {
        Ok(self.root.clone().join("objects").join(checked(sha256)?))
    }

    fn thumb(&self, sha256: &str) -> Result<Path, BlobError> {
        Ok(self
            .root
            .clone()
            .join("thumbs")
            .join(format!("{}.jpg", checked(sha256)?)))
    }

    /// The name of one uploader's partial upload of one blob: the uploader's id is hashed, so
    /// any id makes a short, safe key and none is kept in the clear.
    fn partial_name(key: &UploadKey) -> Result<String, BlobError> {
        let user = hex::encode(&Sha256::digest(key.user.as_bytes())[..16]);
        Ok(format!("{}.{user}", checked(&key.sha256)?))
    }

    fn incoming(&self, name: &str) -> Path {
        self.root.clone().join("incoming").join(name)
    }

    fn get_bytes(&self, path: Path) -> Result<Option<Vec<u8>>, BlobError> {
        self.run_found(move |store| {
            Box::pin(async move {
                let got = store.get(&path).await?;
                Ok(got.bytes().await?.to_vec())
            })
        })
    }

    fn list(&self, prefix: Path) -> Result<Vec<ObjectMeta>, BlobError> {
        self.run(move |store| {
            Box::pin(async move {
                let mut listed = store.list(Some(&prefix));
                let mut all = Vec::new();
                while let Some(meta) =
                    std::future::poll_fn(|cx| futures_core::Stream::poll_next(listed.as_mut(), cx))
                        .await
                {
                    all.push(meta?);
                }
                Ok(all)
            })
        })
    }

    /// The chunks of one partial upload, in offset order. Keys that are not chunk names are
    /// left out.
    fn chunks(&self, name: &str) -> Result<Vec<Chunk>, BlobError> {
        let mut chunks: Vec<Chunk> = self
            .list(self.incoming(name))?
            .into_iter()
            .filter_map(|meta| {
                let offset = meta.location.filename()?;
                (offset.len() == 20 && offset.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| offset.parse().ok())
                    .flatten()
                    .map(|offset| Chunk { offset, meta })
            })
            .collect();
        chunks.sort_by_key(|c| c.offset);
        Ok(chunks)
    }

    fn delete(&self, path: Path) -> Result<(), BlobError> {
        self.run_found(move |store| Box::pin(async move { store.delete(&path).await }))
            .map(|_| ())
    }

    /// Removes chunks last first, so that what is left at any moment is a shorter upload.
    fn delete_chunks<'a>(
        &self,
        chunks: impl DoubleEndedIterator<Item = &'a Chunk>,
    ) -> Result<(), BlobError> {
        for chunk in chunks.rev() {
            self.delete(chunk.meta.location.clone())?;
        }
        Ok(())
    }

    fn put(&self, path: Path, bytes: Vec<u8>) -> Result<(), BlobError> {
        self.run(move |store| {
            Box::pin(async move { store.put(&path, PutPayload::from(bytes)).await.map(|_| ()) })
        })
    }

    /// Flips a bit in the middle of a stored blob, keeping its record: a failing disk under
    /// the object store.
    #[cfg(test)]
    pub(crate) fn damage(&self, sha256: &str) {
        let path = self.object(sha256).unwrap();
        self.run(move |store| {
            Box::pin(async move {
                let got = store.get(&path).await?;
                let attributes = got.attributes.clone();
                let mut bytes = got.bytes().await?.to_vec();
                let mid = bytes.len() / 2;
                bytes[mid] ^= 0x40;
                let options = PutOptions {
                    attributes,
                    ..PutOptions::default()
                };
                store
                    .put_opts(&path, PutPayload::from(bytes), options)
                    .await
                    .map(|_| ())
            })
        })
        .unwrap();
    }
}

impl BlobStore for S3Blobs {
    fn record(&self, sha256: &str) -> Result<Option<BlobRecord>, BlobError> {
        let path = self.object(sha256)?;
        let Some(attributes) = self.run_found(move |store| {
            Box::pin(async move {
                let options = GetOptions {
                    head: true,
                    ..GetOptions::default()
                };
                Ok(store.get_opts(&path, options).await?.attributes)
            })
        })?
        else {
            return Ok(None);
        };
        let corrupt = |detail: String| BlobError::Corrupt {
            what: sha256.to_owned(),
            detail,
        };
        let sealed = attributes
            .get(&Attribute::Metadata(RECORD_KEY.into()))
            .ok_or_else(|| corrupt("stored without its record".into()))?;
        let sealed = hex::decode(sealed.as_ref()).map_err(|e| corrupt(e.to_string()))?;
        let record = serde_json::from_slice(&unseal(sha256, &sealed)?)
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(record))
    }

    fn read(&self, sha256: &str) -> Result<Option<Vec<u8>>, BlobError> {
        let Some(bytes) = self.get_bytes(self.object(sha256)?)? else {
            return Ok(None);
        };
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != sha256 {
            return Err(BlobError::Corrupt {
                what: sha256.to_owned(),
                detail: format!("stored bytes hash to {actual}"),
            });
        }
        Ok(Some(bytes))
    }

    fn commit(&self, record: &BlobRecord, bytes: &[u8]) -> Result<bool, BlobError> {
        let path = self.object(&record.sha256)?;
        let json = serde_json::to_vec(record).map_err(io::Error::other)?;
        let mut attributes = Attributes::new();
        attributes.insert(
            Attribute::Metadata(RECORD_KEY.into()),
            hex::encode(seal(&json)).into(),
        );
        attributes.insert(Attribute::ContentType, "application/octet-stream".into());
        let options = PutOptions {
            mode: PutMode::Create,
            attributes,
            ..PutOptions::default()
        };
        let payload = PutPayload::from(bytes.to_vec());
        match self.call(move |store| {
            Box::pin(async move { store.put_opts(&path, payload, options).await })
        })? {
            Ok(_) => Ok(true),
            // Stored before, by this server or another: nothing changes.
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(io_error(e)),
        }
    }

    fn partial_len(&self, key: &UploadKey) -> Result<Option<u64>, BlobError> {
        let chunks = self.chunks(&Self::partial_name(key)?)?;
        if chunks.is_empty() {
            return Ok(None);
        }
        Ok(Some(joined(&chunks).0))
    }

    fn write_partial(&self, key: &UploadKey, offset: u64, bytes: &[u8]) -> Result<u64, BlobError> {
        let name = Self::partial_name(key)?;
        let chunks = self.chunks(&name)?;
        let (held, _) = joined(&chunks);
        if offset > held {
            return Err(invalid("offset after the held bytes"));
        }
        // What follows `offset` is cut first; a chunk at `offset` itself is replaced whole by
        // the put below.
        self.delete_chunks(chunks.iter().filter(|c| c.offset > offset))?;
        self.put(
            self.incoming(&name).join(format!("{offset:020}")),
            bytes.to_vec(),
        )?;
        Ok(offset + bytes.len() as u64)
    }

    fn read_partial(&self, key: &UploadKey) -> Result<Vec<u8>, BlobError> {
        let chunks = self.chunks(&Self::partial_name(key)?)?;
        let (held, used) = joined(&chunks);
        let mut out = Vec::with_capacity(usize::try_from(held).unwrap_or(0));
        for (chunk, take) in used {
            let bytes = self
                .get_bytes(chunk.meta.location.clone())?
                .unwrap_or_default();
            let take = usize::try_from(take).unwrap_or(usize::MAX);
            if bytes.len() < take {
                // Replaced by another server since it was listed: the upload changed under us.
                return Err(BlobError::Io(io::Error::other(
                    "partial upload changed while being read",
                )));
            }
            out.extend_from_slice(&bytes[..take]);
        }
        Ok(out)
    }

    fn discard_partial(&self, key: &UploadKey) -> Result<(), BlobError> {
        let chunks = self.chunks(&Self::partial_name(key)?)?;
        self.delete_chunks(chunks.iter())
    }

    fn idle_partials(&self, cutoff: SystemTime) -> Result<Vec<IdlePartial>, BlobError> {
        let incoming = self.root.clone().join("incoming");
        // The newest write of each partial upload, by name.
        let mut newest: std::collections::BTreeMap<String, SystemTime> = Default::default();
        for meta in self.list(incoming.clone())? {
            let Some(mut parts) = meta.location.prefix_match(&incoming) else {
                continue;
            };
            let Some(name) = parts.next() else { continue };
            let modified = SystemTime::from(meta.last_modified);
            let entry = newest.entry(name.as_ref().to_owned()).or_insert(modified);
            *entry = (*entry).max(modified);
        }
        Ok(newest
            .into_iter()
            .filter(|(_, modified)| *modified < cutoff)
            .filter_map(|(name, _)| {
                let (sha256, _user) = name.split_once('.')?;
                is_sha256(sha256).then(|| IdlePartial {
                    sha256: sha256.to_owned(),
                    name: name.clone(),
                })
            })
            .collect())
    }

    fn discard_idle(&self, partial: &IdlePartial, cutoff: SystemTime) -> Result<bool, BlobError> {
        let sha256 = checked(&partial.sha256)?;
        let well_formed = partial
            .name
            .strip_prefix(sha256)
            .and_then(|rest| rest.strip_prefix('.'))
            .is_some_and(|user| {
                user.len() == 32 && user.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            });
        if !well_formed {
            return Err(invalid("not a partial upload name"));
        }
        let chunks = self.chunks(&partial.name)?;
        let newest = chunks
            .iter()
            .map(|c| SystemTime::from(c.meta.last_modified))
            .max();
        match newest {
            Some(modified) if modified < cutoff => {
                self.delete_chunks(chunks.iter())?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn thumbnail(&self, sha256: &str) -> Result<Option<Vec<u8>>, BlobError> {
        self.get_bytes(self.thumb(sha256)?)?
            .map(|sealed| unseal(&format!("thumbnail {sha256}"), &sealed))
            .transpose()
    }

    fn put_thumbnail(&self, sha256: &str, jpeg: &[u8]) -> Result<(), BlobError> {
        self.put(self.thumb(sha256)?, seal(jpeg))
    }

    fn stored(&self) -> Result<Vec<String>, BlobError> {
        let mut names: Vec<String> = self
            .list(self.root.clone().join("objects"))?
            .into_iter()
            .filter_map(|meta| meta.location.filename().map(str::to_owned))
            .filter(|name| is_sha256(name))
            .collect();
        names.sort();
        Ok(names)
    }

    fn remove(&self, sha256: &str) -> Result<bool, BlobError> {
        let object = self.object(sha256)?;
        let thumb = self.thumb(sha256)?;
        let head = object.clone();
        let existed = self
            .run_found(move |store| Box::pin(async move { store.head(&head).await }))?
            .is_some();
        self.delete(object)?;
        self.delete(thumb)?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use object_store::path::Path;
    use object_store::ObjectMeta;

    use super::{joined, Chunk, S3Blobs, S3Location};
    use crate::blobs::conformance::Harness;
    use crate::blobs::weed::Weed;
    use crate::blobs::{BlobStore, Blobs, ChunkRange, Held, Put, UploadKey};

    /// A store under its own prefix of the shared test server's bucket; opening it again
    /// reaches the same objects, as a restarted server or another node would.
    struct S3Harness {
        weed: Arc<Weed>,
        prefix: String,
    }

    impl S3Harness {
        fn new() -> Result<Self, String> {
            Ok(Self {
                weed: Weed::shared()?,
                prefix: format!("t-{}", uuid::Uuid::new_v4().simple()),
            })
        }

        fn open_s3(&self) -> S3Blobs {
            let location = S3Location::parse(&self.weed.url(&self.prefix)).unwrap();
            // No credentials at all: the test server is anonymous, and nothing may fall back
            // to asking a cloud metadata service.
            S3Blobs::open_with_env(&location, []).expect("open the bucket")
        }
    }

    impl Harness for S3Harness {
        fn open(&self) -> Box<dyn BlobStore> {
            Box::new(self.open_s3())
        }

        fn damage(&self, sha256: &str) {
            self.open_s3().damage(sha256);
        }
    }

    blob_conformance_tests!(optional S3Harness::new());

    fn chunk(offset: u64, size: u64) -> Chunk {
        Chunk {
            offset,
            meta: ObjectMeta {
                location: Path::from(format!("incoming/x/{offset:020}")),
                last_modified: SystemTime::UNIX_EPOCH.into(),
                size,
                e_tag: None,
                version: None,
            },
        }
    }

    #[test]
    fn chunks_join_from_zero_each_cut_where_the_next_begins() {
        let lens = |chunks: &[Chunk]| {
            let (held, used) = joined(chunks);
            (
                held,
                used.iter().map(|(c, n)| (c.offset, *n)).collect::<Vec<_>>(),
            )
        };
        assert_eq!(lens(&[]), (0, vec![]));
        assert_eq!(lens(&[chunk(0, 100)]), (100, vec![(0, 100)]));
        // A resent chunk from 50 cut the first one there.
        assert_eq!(
            lens(&[chunk(0, 100), chunk(50, 80)]),
            (130, vec![(0, 50), (50, 80)])
        );
        // Chunks meeting exactly, and an empty last chunk.
        assert_eq!(
            lens(&[chunk(0, 10), chunk(10, 10), chunk(20, 0)]),
            (20, vec![(0, 10), (10, 10), (20, 0)])
        );
        // A gap (a race between servers) ends the upload before it.
        assert_eq!(lens(&[chunk(0, 10), chunk(15, 10)]), (10, vec![(0, 10)]));
        // Without a first chunk nothing is held.
        assert_eq!(lens(&[chunk(5, 10)]), (0, vec![]));
    }

    #[test]
    fn urls_name_bucket_prefix_and_options_and_never_secrets() {
        let at = S3Location::parse("s3://photos").unwrap();
        assert_eq!((at.bucket.as_str(), at.prefix.as_str()), ("photos", ""));
        let at = S3Location::parse("s3://photos/a/b/?endpoint=http://127.0.0.1:9000").unwrap();
        assert_eq!(at.prefix, "a/b");
        assert_eq!(
            at.to_string(),
            "s3://photos/a/b?aws_endpoint=http://127.0.0.1:9000"
        );
        for bad in [
            "s3://photos?token=x",
            "s3://photos?aws_secret_access_key=x",
            "s3://photos?bucket=other",
            "file:///tmp/photos",
        ] {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let picture = image::RgbImage::from_fn(width, height, |x, y| {
            let v = x.wrapping_mul(31) ^ y.wrapping_mul(17);
            image::Rgb([v as u8, (v >> 8) as u8, (x + y) as u8])
        });
        let mut out = Vec::new();
        image::DynamicImage::ImageRgb8(picture)
            .write_to(
                &mut std::io::Cursor::new(&mut out),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        out
    }

    /// Two servers ("nodes") on one bucket, each with its own store and locks: a phone's upload
    /// begun on one finishes on the other, both then serve the photo and the one thumbnail, and
    /// an abandoned upload begun on one is expired by the other.
    #[test]
    fn an_upload_begun_on_one_node_finishes_on_another() {
        let harness = match S3Harness::new() {
            Ok(harness) => harness,
            Err(why) => {
                println!("skipped: {why}");
                return;
            }
        };
        let first = Blobs::new(Box::new(harness.open_s3()), 1 << 22);
        let second = Blobs::new(Box::new(harness.open_s3()), 1 << 22);
        let photo = jpeg(640, 480);
        let total = photo.len() as u64;
        let key = UploadKey {
            sha256: sync_core::photo::sha256_hex(&photo),
            user: "u-demo-chief".into(),
        };
        let range = |first: usize, end: usize| ChunkRange {
            first: first as u64,
            last: end as u64 - 1,
            total,
        };
        let third = photo.len() / 3;
        assert_eq!(
            first
                .put_chunk(&key, range(0, third), &photo[..third], 1, true)
                .unwrap(),
            Put::Partial(third as u64)
        );
        // The phone's connection moves to the other node, which knows how far it got.
        assert_eq!(
            second.held(&key, true).unwrap(),
            Held::Partial(third as u64)
        );
        // The answer to the first chunk was lost: it comes again, to the second node, and
        // replaces itself.
        assert_eq!(
            second
                .put_chunk(&key, range(0, third), &photo[..third], 2, true)
                .unwrap(),
            Put::Partial(third as u64)
        );
        let two = 2 * third;
        assert_eq!(
            second
                .put_chunk(&key, range(third, two), &photo[third..two], 3, true)
                .unwrap(),
            Put::Partial(two as u64)
        );
        // Back to the first node for the last chunk, which completes and checks the photo.
        assert_eq!(
            first
                .put_chunk(&key, range(two, photo.len()), &photo[two..], 4, true)
                .unwrap(),
            Put::Created(total)
        );
        assert_eq!(second.held(&key, true).unwrap(), Held::Complete(total));
        assert_eq!(second.read(&key.sha256).unwrap().unwrap().1, photo);
        assert_eq!(
            first
                .store()
                .record(&key.sha256)
                .unwrap()
                .unwrap()
                .received_at_ms,
            4
        );
        // Nothing of the upload is left behind.
        assert_eq!(first.store().partial_len(&key).unwrap(), None);
        // The thumbnail one node renders is the one the other serves.
        let thumb = second.thumbnail(&key.sha256).unwrap().unwrap();
        assert_eq!(first.store().thumbnail(&key.sha256).unwrap(), Some(thumb));
        // The same photo again, whole, on the other node: already stored, record unchanged.
        assert_eq!(
            second.put_whole(&key, &photo, 9, true).unwrap(),
            Put::AlreadyStored(total)
        );
        assert_eq!(
            second
                .store()
                .record(&key.sha256)
                .unwrap()
                .unwrap()
                .received_at_ms,
            4
        );

        // An upload given up on the first node is expired by the second's job.
        let other = UploadKey {
            sha256: sync_core::photo::sha256_hex(b"never finished"),
            user: "u-demo-chief-2".into(),
        };
        let gave_up = ChunkRange {
            first: 0,
            last: 99,
            total: 1_000,
        };
        first
            .put_chunk(&other, gave_up, &[1; 100], 5, true)
            .unwrap();
        let later = SystemTime::now() + Duration::from_secs(60);
        assert_eq!(second.expire_abandoned(later).unwrap(), 1);
        assert_eq!(first.held(&other, true).unwrap(), Held::Missing);
    }
}
