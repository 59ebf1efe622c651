//! The batch sync protocol between a device and the server (`POST /api/v1/sync`): binary,
//! versioned and size-limited.
//!
//! One request carries the device's new changes for any number of documents plus its scope
//! cursor; the response carries, per document, what the server accepted or refused and the
//! server's changes the device lacks, for every document in the device's scope that changed
//! since the cursor. When the device knows which server heads it last saw, one round trip is
//! enough; the server asks for a second only when it lacks a change's dependencies, and says
//! when an answer is a page and more waits ([`SyncResponse::more`]).
//!
//! Wire format (version 3): the magic `CSYN`, the version byte, a body byte (0: plain, 1:
//! raw DEFLATE), then the message in postcard (a compact, well-specified serde format) shaped
//! for the wire rather than for the program, so that a one-event sync costs little more than
//! its change:
//! - a document id that is a canonical UUID travels as its 16 bytes, any other id as text;
//! - the server heads a device pushes on are usually exactly the dependencies of its first new
//!   change (it built the change on what the server sent), and then say so in one byte;
//! - the server's heads after merging exactly what was pushed are implied by the push
//!   ([`Heads::AsPushed`]), and a document accepted with nothing else to say is one short entry;
//! - a body of many changes is deflated as a whole, which removes what changes repeat (actor
//!   ids, keys, dependency hashes of the change before);
//! - a document update the server sends to many devices alike (a document new to each of them)
//!   can be deflated once and spliced into every answer ([`PackedUpdate`]): deflate streams join
//!   where a full flush ends one, so the body on the wire is the same kind of stream.
//!
//! Decoding refuses a wrong magic or version, trailing bytes and anything over
//! [`MAX_MESSAGE_BYTES`] (before or after inflating) before it allocates. Version 1 bodies are
//! refused with [`ProtocolError::UnsupportedVersion`]; version 2 requests are still read and
//! answered in version 2 ([`OLDEST_READ_VERSION`]). This module holds types and codecs only;
//! the device's engine is `client`, the server's handling is `hub`.
//!
//! ```
//! use sync_core::protocol::{DocPush, SyncRequest, MAGIC};
//!
//! let request = SyncRequest {
//!     cursor: 42,
//!     docs: vec![DocPush {
//!         doc_id: "0192f0c4-2c8e-7b51-9d0e-3c1a5b7e8f21".into(),
//!         server_heads: Vec::new(),
//!         changes: Vec::new(),
//!     }],
//!     dropped: Vec::new(),
//! };
//! let bytes = request.encode();
//! assert_eq!(bytes[..4], MAGIC);
//! assert_eq!(SyncRequest::decode(&bytes)?, request);
//! assert!(SyncRequest::decode(&bytes[..bytes.len() - 1]).is_err());
//! # Ok::<(), sync_core::protocol::ProtocolError>(())
//! ```

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::Read;
use std::marker::PhantomData;
use std::sync::Arc;

use automerge::Change;
use flate2::{read::DeflateDecoder, Compress, Compression, FlushCompress};
use serde::{Deserialize, Serialize};

use crate::doc::DocKind;

/// The first four bytes of every request and response body.
pub const MAGIC: [u8; 4] = *b"CSYN";
/// Version 3: an answer says when it is a page and more waits ([`SyncResponse::more`]).
/// Version 2 brought compact ids, implied heads and whole-body compression; version 1 was the
/// plain postcard of the in-memory types.
pub const PROTOCOL_VERSION: u8 = 3;
/// The oldest version whose requests are still read. Each request is answered in its own
/// version ([`SyncRequest::decode_with_version`], [`SyncResponse::encode_packed_in`]), so a
/// phone whose app is not yet updated keeps syncing: a version 2 answer cannot say that more
/// waits, and such a phone gets the rest of a paged answer at its next sync.
pub const OLDEST_READ_VERSION: u8 = 2;
/// The first version whose answers say whether more waits.
const MORE_FROM_VERSION: u8 = 3;
/// The largest request or response either side accepts, on the wire and once inflated.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;
/// Most documents one request may push. A phone pushes the documents it changed since its last
/// sync (a week offline is a few dozen), and every pushed document is loaded, merged and
/// answered; a phone with more sends the rest at its next sync.
pub const MAX_PUSHED_DOCS: usize = 1_000;
/// Most dropped documents one request may name ([`SyncRequest::dropped`]); a phone that dropped
/// more names the rest in its next request.
pub const MAX_DROPPED_DOCS: usize = 1_000;
/// Most changes all the documents of one request may push together. Every change holds at
/// least one operation and a phone puts at most [`crate::limits::MAX_REQUEST_OPS`] operations
/// in one request, so no phone reaches it; it bounds what a request of tiny or empty changes
/// makes the server hold while reading it.
pub const MAX_REQUEST_CHANGES: usize = crate::limits::MAX_REQUEST_OPS;
/// Longest document id, in bytes. Ids are UUIDs (36 bytes); the id names a key in every store
/// and a lock stripe, so one request cannot make the server hash or keep megabytes of it.
pub const MAX_DOC_ID_BYTES: usize = 128;
/// Bodies shorter than this are sent plain: DEFLATE gains nothing on one small change.
const COMPRESS_FROM_BYTES: usize = 512;
const BODY_PLAIN: u8 = 0;
const BODY_DEFLATE: u8 = 1;

/// An automerge change hash (SHA-256 of the change).
pub type Hash = [u8; 32];

/// What a device sends to `POST /api/v1/sync`: its cursor and its new changes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncRequest {
    /// The server's change-feed position the device has fully received (0 at first sync).
    pub cursor: u64,
    /// The documents with changes the server may lack, each at most once.
    pub docs: Vec<DocPush>,
    /// Documents the device no longer holds (its store dropped them, `evict`), at most
    /// [`MAX_DROPPED_DOCS`]: the server forgets that it holds them, so it does not send their
    /// changes on top of a copy that is gone. Ids it does not record the device holding are
    /// ignored, and so is an id the same request pushes. On the wire only when there are any:
    /// a request without them is exactly as before.
    pub dropped: Vec<String>,
}

/// A device's new changes to one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocPush {
    /// The document's id (a UUID for documents the phones create).
    pub doc_id: String,
    /// The heads of the server's version the device last received (empty for a new document).
    pub server_heads: Vec<Hash>,
    /// Raw automerge changes the server may lack, in causal order.
    pub changes: Vec<Vec<u8>>,
}

/// What the server answers to a [`SyncRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncResponse {
    /// The cursor to present next time; only after applying this response.
    pub cursor: u64,
    /// One entry per pushed document, then one per document in the device's scope that
    /// changed since the cursor.
    pub docs: Vec<DocUpdate>,
    /// Documents that left the device's scope (e.g. its jurisdiction changed).
    pub removed: Vec<String>,
    /// The answer is a page: the server holds more for the device than one answer carries
    /// (a new phone's first sync, a supervisor's day of a district's problems). The device
    /// applies this one and asks again at once from its cursor.
    pub more: bool,
}

/// The server's heads of a document after a sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Heads {
    /// The heads of the device's own push: its `server_heads` with its pushed changes on top
    /// ([`DocPush::heads_after`]). The server says this when it merged exactly what was pushed
    /// and holds nothing else, so the device learns its heads without 32 bytes each; and when
    /// the push took the document out of what the device receives, which the same answer
    /// removes from it (the server's receipts of the push are not sent).
    AsPushed,
    /// The heads, listed.
    Listed(Vec<Hash>),
}

/// What the server has to say about one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocUpdate {
    /// The document this update is about.
    pub doc_id: String,
    /// `None` only when the server holds nothing of the document (its creation was refused).
    pub kind: Option<DocKind>,
    /// The server's heads after this sync; the device keeps them as its `server_heads`.
    pub heads: Heads,
    /// Server changes the device lacks, in causal order.
    pub changes: Vec<Vec<u8>>,
    /// The device's changes the server refused; never merged.
    pub refused: Vec<RefusedChange>,
    /// Dependencies the server lacks: the device sends every change after these in a second
    /// round trip.
    pub missing: Vec<Hash>,
    /// The whole server document, sent when the device must realign after a refusal.
    pub snapshot: Option<Vec<u8>>,
}

/// One change the server refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedChange {
    /// The refused change's hash.
    pub hash: Hash,
    /// A stable machine code, e.g. `not_owner` or `transition`.
    pub code: String,
    /// Why, in words a chief can read.
    pub message: String,
}

/// A message that is not a valid request or response; nothing of it is applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    /// Over [`MAX_MESSAGE_BYTES`], on the wire or inflated.
    #[error("message of {0} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    /// Does not start with [`MAGIC`].
    #[error("not a ChiefSync sync message")]
    BadMagic,
    #[error(
        "sync protocol version {0} is not supported (this build speaks {PROTOCOL_VERSION}); \
         update the app or the server"
    )]
    /// Another protocol version than [`PROTOCOL_VERSION`].
    UnsupportedVersion(u8),
    /// Does not decode, or decodes to something inconsistent.
    #[error("malformed sync message: {0}")]
    Malformed(String),
    /// A request pushes one document twice.
    #[error("document {0} is pushed more than once in one request; send its changes together")]
    DuplicateDocument(String),
    /// A request pushes more than [`MAX_PUSHED_DOCS`] documents.
    #[error("{count} documents pushed in one request, over the limit of {max}; send the rest in the next request")]
    TooManyDocuments {
        /// How many documents the request pushed.
        count: usize,
        /// The most one request may push.
        max: usize,
    },
    /// A request names more than [`MAX_DROPPED_DOCS`] dropped documents.
    #[error("{count} dropped documents named in one request, over the limit of {max}; name the rest in the next request")]
    TooManyDropped {
        /// How many dropped documents the request named.
        count: usize,
        /// The most one request may name.
        max: usize,
    },
    /// A request pushes more than [`MAX_REQUEST_CHANGES`] changes in all.
    #[error("{count} changes pushed in one request, over the limit of {max}; send the rest in the next request")]
    TooManyChanges {
        /// How many changes the request pushed (as far as it was read).
        count: usize,
        /// The most one request may push.
        max: usize,
    },
    /// An id that is empty, too long or holds control characters.
    #[error("document id {0:?} is not a document id (1 to {MAX_DOC_ID_BYTES} bytes, no control characters)")]
    BadDocumentId(String),
}

impl ProtocolError {
    /// A stable machine code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::TooLarge(_) => "too_large",
            ProtocolError::BadMagic => "bad_magic",
            ProtocolError::UnsupportedVersion(_) => "unsupported_version",
            ProtocolError::Malformed(_) => "malformed",
            ProtocolError::DuplicateDocument(_) => "duplicate_document",
            ProtocolError::TooManyDocuments { .. } | ProtocolError::TooManyDropped { .. } => {
                "too_many_documents"
            }
            ProtocolError::TooManyChanges { .. } => "too_many_changes",
            ProtocolError::BadDocumentId(_) => "bad_document_id",
        }
    }
}

/// Checks a document id as every endpoint receives it: non-empty, at most [`MAX_DOC_ID_BYTES`]
/// bytes, no control characters. The error names at most the id's first 64 characters.
pub fn check_doc_id(id: &str) -> Result<(), ProtocolError> {
    if id.is_empty() || id.len() > MAX_DOC_ID_BYTES || id.chars().any(char::is_control) {
        return Err(ProtocolError::BadDocumentId(id.chars().take(64).collect()));
    }
    Ok(())
}

/// The heads of a document holding `server_heads` and then `changes`: every one of them that
/// no change depends on, sorted as automerge sorts heads.
pub fn heads_after(server_heads: &[Hash], changes: &[Change]) -> Vec<Hash> {
    let deps: BTreeSet<Hash> = changes
        .iter()
        .flat_map(|c| c.deps().iter().map(|d| d.0))
        .collect();
    let all: BTreeSet<Hash> = server_heads
        .iter()
        .copied()
        .chain(changes.iter().map(|c| c.hash().0))
        .collect();
    all.difference(&deps).copied().collect()
}

impl DocPush {
    /// What [`Heads::AsPushed`] stands for in the answer to this push.
    pub fn heads_after(&self) -> Result<Vec<Hash>, ProtocolError> {
        let changes = self
            .changes
            .iter()
            .map(|raw| {
                Change::try_from(&raw[..]).map_err(|e| {
                    ProtocolError::Malformed(format!("pushed change of {}: {e}", self.doc_id))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(heads_after(&self.server_heads, &changes))
    }
}

// ---------------------------------------------------------------------------------------------
// Lists counted while a request is read

/// A list in a request, refused as soon as it is longer than its [`ListLimit`] allows, before
/// its elements are read. Postcard writes a list's length before its elements, and an element
/// can be one byte on the wire (an empty id, an empty change) but two dozen in memory: a 32 KiB
/// deflated body inflates to 32 MiB of such bytes, tens of millions of elements, so a length
/// checked once the request is decoded is checked after the server held a gigabyte.
struct Counted<T, L>(Vec<T>, PhantomData<L>);

impl<T, L> From<Vec<T>> for Counted<T, L> {
    fn from(items: Vec<T>) -> Self {
        Counted(items, PhantomData)
    }
}

/// How many elements of one kind a request may hold.
trait ListLimit {
    /// Admits a list that has reached `len` elements, `added` of them new since the last call.
    fn admit(len: usize, added: usize) -> Result<(), ProtocolError>;
}

/// The documents a request pushes ([`MAX_PUSHED_DOCS`]).
struct PushedDocs;
/// The documents a request names dropped ([`MAX_DROPPED_DOCS`]).
struct DroppedDocs;
/// The changes of one pushed document, counted for the whole request ([`MAX_REQUEST_CHANGES`]).
struct PushedChanges;

impl ListLimit for PushedDocs {
    fn admit(len: usize, _: usize) -> Result<(), ProtocolError> {
        if len > MAX_PUSHED_DOCS {
            return Err(ProtocolError::TooManyDocuments {
                count: len,
                max: MAX_PUSHED_DOCS,
            });
        }
        Ok(())
    }
}

impl ListLimit for DroppedDocs {
    fn admit(len: usize, _: usize) -> Result<(), ProtocolError> {
        if len > MAX_DROPPED_DOCS {
            return Err(ProtocolError::TooManyDropped {
                count: len,
                max: MAX_DROPPED_DOCS,
            });
        }
        Ok(())
    }
}

impl ListLimit for PushedChanges {
    fn admit(_: usize, added: usize) -> Result<(), ProtocolError> {
        READING.with(|reading| {
            let mut reading = reading.borrow_mut();
            reading.changes = reading.changes.saturating_add(added);
            if reading.changes > MAX_REQUEST_CHANGES {
                return Err(ProtocolError::TooManyChanges {
                    count: reading.changes,
                    max: MAX_REQUEST_CHANGES,
                });
            }
            Ok(())
        })
    }
}

/// What the request being read on this thread has used of its limits, and the limit it went
/// over: serde's errors carry no more than a message, and postcard's not even that.
#[derive(Default)]
struct Reading {
    changes: usize,
    refused: Option<ProtocolError>,
}

thread_local! {
    static READING: RefCell<Reading> = RefCell::new(Reading::default());
}

/// Most elements a counted list makes room for before they arrive: a list's written length is
/// the sender's word until its elements are there.
const COUNTED_ROOM: usize = 256;

impl<T: Serialize, L> Serialize for Counted<T, L> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de, T: Deserialize<'de>, L: ListLimit> Deserialize<'de> for Counted<T, L> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Elements<T, L>(PhantomData<(T, L)>);

        impl<'de, T: Deserialize<'de>, L: ListLimit> serde::de::Visitor<'de> for Elements<T, L> {
            type Value = Counted<T, L>;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let written = seq.size_hint().unwrap_or(0);
                admit::<L, A::Error>(written, written)?;
                let mut items = Vec::with_capacity(written.min(COUNTED_ROOM));
                while let Some(item) = seq.next_element()? {
                    if items.len() >= written {
                        admit::<L, A::Error>(items.len() + 1, 1)?;
                    }
                    items.push(item);
                }
                Ok(Counted(items, PhantomData))
            }
        }

        deserializer.deserialize_seq(Elements(PhantomData))
    }
}

/// [`ListLimit::admit`], remembering a refusal for [`read_request`].
fn admit<L: ListLimit, E: serde::de::Error>(len: usize, added: usize) -> Result<(), E> {
    L::admit(len, added).map_err(|refused| {
        let message = refused.to_string();
        READING.with(|reading| reading.borrow_mut().refused = Some(refused));
        E::custom(message)
    })
}

/// Reads a request's postcard `body` as `T`, its counted lists within their limits: a list
/// over its limit is refused with its own error as soon as its length is read.
fn read_request<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ProtocolError> {
    READING.with(|reading| *reading.borrow_mut() = Reading::default());
    let read = decode_body(body);
    let refused = READING.with(|reading| std::mem::take(&mut *reading.borrow_mut()).refused);
    match (read, refused) {
        (Err(_), Some(refused)) => Err(refused),
        (read, _) => read,
    }
}

// ---------------------------------------------------------------------------------------------
// The wire shapes

/// A document id: a canonical (lower-case, hyphenated) UUID as its 16 bytes, anything else as
/// text, so every id comes back exactly as it was.
#[derive(Serialize, Deserialize)]
enum WireId {
    Uuid([u8; 16]),
    Text(String),
}

impl WireId {
    fn of(id: &str) -> Self {
        match uuid::Uuid::try_parse(id) {
            Ok(uuid) if uuid.hyphenated().to_string() == id => WireId::Uuid(uuid.into_bytes()),
            _ => WireId::Text(id.to_owned()),
        }
    }

    fn into_string(self) -> String {
        match self {
            WireId::Uuid(bytes) => uuid::Uuid::from_bytes(bytes).hyphenated().to_string(),
            WireId::Text(text) => text,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct WireRequest {
    cursor: u64,
    docs: Counted<WirePush, PushedDocs>,
}

/// A request that names dropped documents: [`WireRequest`] followed by their ids. A request
/// without any is sent as a plain [`WireRequest`], so servers and phones that never drop
/// anything see the bytes they always did.
#[derive(Serialize, Deserialize)]
struct WireRequestDropping {
    cursor: u64,
    docs: Counted<WirePush, PushedDocs>,
    dropped: Counted<String, DroppedDocs>,
}

#[derive(Serialize, Deserialize)]
enum WireServerHeads {
    /// Exactly the dependencies of the first pushed change.
    DepsOfFirstChange,
    Listed(Vec<Hash>),
}

#[derive(Serialize, Deserialize)]
struct WirePush {
    id: WireId,
    server_heads: WireServerHeads,
    changes: Counted<Vec<u8>, PushedChanges>,
}

#[derive(Serialize, Deserialize)]
struct WireResponse {
    cursor: u64,
    docs: Vec<WireUpdate>,
    removed: Vec<WireId>,
    more: bool,
}

#[derive(Serialize, Deserialize)]
enum WireUpdate {
    /// Merged exactly as pushed, nothing refused, nothing more for the device.
    Accepted { id: WireId, kind: DocKind },
    Full {
        id: WireId,
        kind: Option<DocKind>,
        heads: Heads,
        changes: Vec<Vec<u8>>,
        refused: Vec<RefusedChange>,
        missing: Vec<Hash>,
        snapshot: Option<Vec<u8>>,
    },
}

/// The dependencies written in the header of an uncompressed automerge change chunk (magic,
/// checksum, type 1, length, then the dependency list), or `None` for anything else. Read by
/// hand so that a compressed chunk is never inflated here.
fn first_change_deps(raw: &[u8]) -> Option<Vec<Hash>> {
    fn uleb(bytes: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = bytes.split_first()?;
            *bytes = rest;
            value |= u64::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    let rest = raw.strip_prefix(&[0x85, 0x6f, 0x4a, 0x83])?;
    let (&kind, mut rest) = rest.get(4..)?.split_first()?;
    if kind != 1 {
        return None;
    }
    let len = usize::try_from(uleb(&mut rest)?).ok()?;
    let mut body = rest.get(..len)?;
    let count = usize::try_from(uleb(&mut body)?).ok()?;
    let hashes = body.get(..count.checked_mul(32)?)?;
    Some(
        hashes
            .chunks_exact(32)
            .map(|h| h.try_into().expect("32-byte chunks"))
            .collect(),
    )
}

impl From<&DocPush> for WirePush {
    fn from(push: &DocPush) -> Self {
        let implied = !push.server_heads.is_empty()
            && push
                .changes
                .first()
                .and_then(|c| first_change_deps(c))
                .as_ref()
                == Some(&push.server_heads);
        WirePush {
            id: WireId::of(&push.doc_id),
            server_heads: if implied {
                WireServerHeads::DepsOfFirstChange
            } else {
                WireServerHeads::Listed(push.server_heads.clone())
            },
            changes: push.changes.clone().into(),
        }
    }
}

impl TryFrom<WirePush> for DocPush {
    type Error = ProtocolError;

    fn try_from(push: WirePush) -> Result<Self, ProtocolError> {
        let doc_id = push.id.into_string();
        let server_heads = match push.server_heads {
            WireServerHeads::Listed(heads) => heads,
            WireServerHeads::DepsOfFirstChange => push
                .changes
                .0
                .first()
                .and_then(|c| first_change_deps(c))
                .ok_or_else(|| {
                    ProtocolError::Malformed(format!(
                        "{doc_id}: server heads refer to a first change that does not name its \
                         dependencies"
                    ))
                })?,
        };
        Ok(DocPush {
            doc_id,
            server_heads,
            changes: push.changes.0,
        })
    }
}

impl From<&DocUpdate> for WireUpdate {
    fn from(update: &DocUpdate) -> Self {
        let id = WireId::of(&update.doc_id);
        match update {
            DocUpdate {
                kind: Some(kind),
                heads: Heads::AsPushed,
                changes,
                refused,
                missing,
                snapshot: None,
                ..
            } if changes.is_empty() && refused.is_empty() && missing.is_empty() => {
                WireUpdate::Accepted { id, kind: *kind }
            }
            _ => WireUpdate::Full {
                id,
                kind: update.kind,
                heads: update.heads.clone(),
                changes: update.changes.clone(),
                refused: update.refused.clone(),
                missing: update.missing.clone(),
                snapshot: update.snapshot.clone(),
            },
        }
    }
}

impl From<WireUpdate> for DocUpdate {
    fn from(update: WireUpdate) -> Self {
        match update {
            WireUpdate::Accepted { id, kind } => DocUpdate {
                doc_id: id.into_string(),
                kind: Some(kind),
                heads: Heads::AsPushed,
                changes: Vec::new(),
                refused: Vec::new(),
                missing: Vec::new(),
                snapshot: None,
            },
            WireUpdate::Full {
                id,
                kind,
                heads,
                changes,
                refused,
                missing,
                snapshot,
            } => DocUpdate {
                doc_id: id.into_string(),
                kind,
                heads,
                changes,
                refused,
                missing,
                snapshot,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The envelope

/// The envelope's first bytes (magic, version, how the body is encoded), with room for `body`.
fn envelope(version: u8, body_kind: u8, body: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body + 6);
    out.extend_from_slice(&MAGIC);
    out.push(version);
    out.push(body_kind);
    out
}

fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // postcard cannot fail on these types: no maps with non-string keys, no unsized sequences.
    encode_body(
        PROTOCOL_VERSION,
        postcard::to_allocvec(message).expect("postcard encodes protocol types"),
    )
}

/// The envelope of `version` around a message's postcard `body`, deflated when that makes it
/// smaller.
fn encode_body(version: u8, body: Vec<u8>) -> Vec<u8> {
    if body.len() >= COMPRESS_FROM_BYTES {
        let mut out = envelope(version, BODY_DEFLATE, body.len() / 2);
        deflate_run(&body, &mut out, FlushCompress::Finish);
        if out.len() < body.len() + 6 {
            return out;
        }
    }
    let mut out = envelope(version, BODY_PLAIN, body.len());
    out.extend_from_slice(&body);
    out
}

/// A message's postcard body, read whole.
fn decode_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ProtocolError> {
    let (message, trailing) =
        postcard::take_from_bytes(body).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    no_trailing(trailing)?;
    Ok(message)
}

fn no_trailing(trailing: &[u8]) -> Result<(), ProtocolError> {
    if trailing.is_empty() {
        Ok(())
    } else {
        Err(ProtocolError::Malformed(format!(
            "{} trailing bytes",
            trailing.len()
        )))
    }
}

/// The postcard body of an envelope of this version, inflated when it was deflated.
fn body(bytes: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>, ProtocolError> {
    let (_, body) = versioned_body(bytes, PROTOCOL_VERSION)?;
    Ok(body)
}

/// The version and postcard body of an envelope of a version from `oldest` to this one,
/// inflated when it was deflated.
fn versioned_body(
    bytes: &[u8],
    oldest: u8,
) -> Result<(u8, std::borrow::Cow<'_, [u8]>), ProtocolError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::TooLarge(bytes.len()));
    }
    let Some(rest) = bytes.strip_prefix(&MAGIC) else {
        return Err(ProtocolError::BadMagic);
    };
    let (&version, rest) = rest.split_first().ok_or(ProtocolError::BadMagic)?;
    if !(oldest..=PROTOCOL_VERSION).contains(&version) {
        return Err(ProtocolError::UnsupportedVersion(version));
    }
    let (&body_kind, body) = rest
        .split_first()
        .ok_or_else(|| ProtocolError::Malformed("no body".into()))?;
    let body = match body_kind {
        BODY_PLAIN => std::borrow::Cow::Borrowed(body),
        BODY_DEFLATE => {
            // Inflated into a bounded buffer: a small body that claims gigabytes stops at the
            // limit instead of at the allocator.
            // Answers inflate to under twice their size: room for that up front saves growing
            // (and copying) a district chief's megabytes step by step.
            let mut out = Vec::with_capacity(body.len().saturating_mul(2).min(MAX_MESSAGE_BYTES));
            DeflateDecoder::new(body)
                .take(MAX_MESSAGE_BYTES as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| ProtocolError::Malformed(format!("deflated body: {e}")))?;
            if out.len() > MAX_MESSAGE_BYTES {
                return Err(ProtocolError::TooLarge(out.len()));
            }
            std::borrow::Cow::Owned(out)
        }
        other => {
            return Err(ProtocolError::Malformed(format!(
                "unknown body encoding {other}"
            )))
        }
    };
    Ok((version, body))
}

impl SyncRequest {
    /// What every request must be, however it arrived: at most [`MAX_PUSHED_DOCS`] documents,
    /// each named by a valid id, none twice. A document pushed twice would be loaded and
    /// merged twice, so one small request repeating a large document would make the server load
    /// it thousands of times.
    pub fn check(&self) -> Result<(), ProtocolError> {
        if self.docs.len() > MAX_PUSHED_DOCS {
            return Err(ProtocolError::TooManyDocuments {
                count: self.docs.len(),
                max: MAX_PUSHED_DOCS,
            });
        }
        let mut seen = BTreeSet::new();
        for push in &self.docs {
            check_doc_id(&push.doc_id)?;
            if !seen.insert(push.doc_id.as_str()) {
                return Err(ProtocolError::DuplicateDocument(push.doc_id.clone()));
            }
        }
        if self.dropped.len() > MAX_DROPPED_DOCS {
            return Err(ProtocolError::TooManyDropped {
                count: self.dropped.len(),
                max: MAX_DROPPED_DOCS,
            });
        }
        for id in &self.dropped {
            check_doc_id(id)?;
        }
        Ok(())
    }

    /// The request's bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let docs: Counted<_, _> = self
            .docs
            .iter()
            .map(WirePush::from)
            .collect::<Vec<_>>()
            .into();
        if self.dropped.is_empty() {
            return encode(&WireRequest {
                cursor: self.cursor,
                docs,
            });
        }
        encode(&WireRequestDropping {
            cursor: self.cursor,
            docs,
            dropped: self.dropped.clone().into(),
        })
    }

    /// Decodes a request and [checks](Self::check) it. Its lists are counted as they are read,
    /// so a request over a limit is refused without being held in memory.
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        Ok(Self::decode_with_version(bytes)?.0)
    }

    /// [`Self::decode`], with the protocol version the request came in (from
    /// [`OLDEST_READ_VERSION`] to [`PROTOCOL_VERSION`]: requests are the same in both), in
    /// which it is answered.
    pub fn decode_with_version(bytes: &[u8]) -> Result<(Self, u8), ProtocolError> {
        let (version, body) = versioned_body(bytes, OLDEST_READ_VERSION)?;
        // Nearly every request names nothing dropped and decodes in the first shape; one that
        // does has bytes left after it and decodes in the second.
        let wire = match read_request::<WireRequest>(&body) {
            Ok(wire) => WireRequestDropping {
                cursor: wire.cursor,
                docs: wire.docs,
                dropped: Vec::new().into(),
            },
            Err(first @ ProtocolError::Malformed(_)) => {
                match read_request::<WireRequestDropping>(&body) {
                    Ok(wire) if !wire.dropped.0.is_empty() => wire,
                    Ok(_) => return Err(first),
                    Err(ProtocolError::Malformed(_)) => return Err(first),
                    Err(refused) => return Err(refused),
                }
            }
            Err(refused) => return Err(refused),
        };
        let request = SyncRequest {
            cursor: wire.cursor,
            docs: wire
                .docs
                .0
                .into_iter()
                .map(DocPush::try_from)
                .collect::<Result<_, _>>()?,
            dropped: wire.dropped.0,
        };
        request.check()?;
        Ok((request, version))
    }
}

/// Deflates `data` into `out` with a compressor of its own, ending with `flush`. A run ended
/// by a full flush is byte-aligned and refers to nothing before it, so runs from different
/// compressors concatenate into one deflate stream; the stream's last run ends with `Finish`.
fn deflate_run(data: &[u8], out: &mut Vec<u8>, flush: FlushCompress) {
    let mut deflate = Compress::new(Compression::default(), false);
    out.reserve(data.len() / 2 + 64);
    loop {
        let consumed = deflate.total_in() as usize;
        let status = deflate
            .compress_vec(&data[consumed..], out, flush)
            .expect("deflating into a Vec cannot fail");
        let done = deflate.total_in() as usize == data.len()
            && match flush {
                FlushCompress::Finish => status == flate2::Status::StreamEnd,
                // A flush is complete once it left room in the output.
                _ => out.len() < out.capacity(),
            };
        if done {
            return;
        }
        out.reserve(out.capacity().max(64));
    }
}

/// One document update, encoded and deflated on its own so that it can be spliced into any
/// answer that carries exactly this update. The hub keeps one for every stored version of a
/// document it sends whole (a week's patrol reaches every district chief's phone), so such an
/// update is deflated once rather than once per phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedUpdate {
    doc_id: String,
    kind: Option<DocKind>,
    heads: Heads,
    changes: usize,
    deflated: Vec<u8>,
}

impl PackedUpdate {
    /// Packs `update` (deflated once; splice it into answers with
    /// [`SyncResponse::encode_packed`]).
    pub fn of(update: &DocUpdate) -> Self {
        let plain = postcard::to_allocvec(&WireUpdate::from(update))
            .expect("postcard encodes protocol types");
        let mut deflated = Vec::new();
        deflate_run(&plain, &mut deflated, FlushCompress::Full);
        deflated.shrink_to_fit();
        Self {
            doc_id: update.doc_id.clone(),
            kind: update.kind,
            heads: update.heads.clone(),
            changes: update.changes.len(),
            deflated,
        }
    }

    /// Whether this is the packed form of `update` (made from the same stored version).
    fn packs(&self, update: &DocUpdate) -> bool {
        self.doc_id == update.doc_id
            && self.kind == update.kind
            && self.heads == update.heads
            && self.changes == update.changes.len()
            && update.refused.is_empty()
            && update.missing.is_empty()
            && update.snapshot.is_none()
    }

    /// Bytes this packed update keeps alive.
    pub fn weight(&self) -> usize {
        self.deflated.capacity() + self.doc_id.len() + std::mem::size_of::<Self>()
    }
}

impl SyncResponse {
    /// The response's bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with_overview(None)
    }

    /// The response's bytes on the wire, with `overview` after it when the phone's overview
    /// is out of date (only to a phone that named the one it holds, [`OVERVIEW_HEADER`]).
    pub fn encode_with_overview(&self, overview: Option<&OverviewUpdate>) -> Vec<u8> {
        self.encode_in_full(PROTOCOL_VERSION, overview)
    }

    /// [`Self::encode_with_overview`] in `version`, every update encoded afresh.
    fn encode_in_full(&self, version: u8, overview: Option<&OverviewUpdate>) -> Vec<u8> {
        let docs: Vec<WireUpdate> = self.docs.iter().map(WireUpdate::from).collect();
        let body =
            postcard::to_allocvec(&(self.cursor, docs)).expect("postcard encodes protocol types");
        encode_body(
            version,
            with_overview(self.tail_in(version, body), overview),
        )
    }

    /// `body` followed by the postcard of the fields of [`WireResponse`] after `docs`: the
    /// removed documents, then from [`MORE_FROM_VERSION`] on whether more waits.
    fn tail_in(&self, version: u8, body: Vec<u8>) -> Vec<u8> {
        let removed: Vec<WireId> = self.removed.iter().map(|id| WireId::of(id)).collect();
        let body = postcard::to_extend(&removed, body).expect("postcard encodes protocol types");
        if version < MORE_FROM_VERSION {
            return body;
        }
        postcard::to_extend(&self.more, body).expect("postcard encodes protocol types")
    }

    /// Encodes the response as [`Self::encode`] does, splicing in `packed[i]` for `docs[i]`
    /// where it is the packed form of that update. The body is always deflated then; an update
    /// that `packed` does not fit is encoded afresh, so a stale packing cannot change the answer.
    pub fn encode_packed(&self, packed: &[Option<Arc<PackedUpdate>>]) -> Vec<u8> {
        self.encode_packed_with_overview(packed, None)
    }

    /// [`Self::encode_packed`] with `overview` after the response, as
    /// [`Self::encode_with_overview`] puts it.
    pub fn encode_packed_with_overview(
        &self,
        packed: &[Option<Arc<PackedUpdate>>],
        overview: Option<&OverviewUpdate>,
    ) -> Vec<u8> {
        self.encode_packed_in(PROTOCOL_VERSION, packed, overview)
    }

    /// [`Self::encode_packed_with_overview`] in `version`, the request's
    /// ([`SyncRequest::decode_with_version`]). A version 2 answer leaves out
    /// [`Self::more`]: a phone that reads it would refuse the byte it does not expect.
    pub fn encode_packed_in(
        &self,
        version: u8,
        packed: &[Option<Arc<PackedUpdate>>],
        overview: Option<&OverviewUpdate>,
    ) -> Vec<u8> {
        let fitting: Vec<Option<&PackedUpdate>> = self
            .docs
            .iter()
            .enumerate()
            .map(|(i, update)| {
                packed
                    .get(i)
                    .and_then(Option::as_deref)
                    .filter(|p| p.packs(update))
            })
            .collect();
        if fitting.iter().all(Option::is_none) {
            return self.encode_in_full(version, overview);
        }
        let spliced: usize = fitting.iter().flatten().map(|p| p.deflated.len()).sum();
        let mut out = envelope(version, BODY_DEFLATE, spliced + 1024);
        // The postcard of `WireResponse`, field by field: the cursor, the length of `docs` and
        // each update in turn, then `removed` and `more`.
        let mut run = postcard::to_allocvec(&(self.cursor, self.docs.len()))
            .expect("postcard encodes protocol types");
        for (update, packed) in self.docs.iter().zip(&fitting) {
            match packed {
                Some(packed) => {
                    deflate_run(&run, &mut out, FlushCompress::Full);
                    run.clear();
                    out.extend_from_slice(&packed.deflated);
                }
                None => {
                    run = postcard::to_extend(&WireUpdate::from(update), std::mem::take(&mut run))
                        .expect("postcard encodes protocol types")
                }
            }
        }
        let run = self.tail_in(version, run);
        deflate_run(
            &with_overview(run, overview),
            &mut out,
            FlushCompress::Finish,
        );
        out
    }

    /// Reads a response, refusing anything malformed before it allocates much. An overview
    /// after it is checked and left out ([`Self::decode_with_overview`] reads it).
    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        Ok(Self::decode_with_overview(bytes)?.0)
    }

    /// Reads a response and the overview after it, if the server attached one.
    pub fn decode_with_overview(
        bytes: &[u8],
    ) -> Result<(Self, Option<OverviewUpdate>), ProtocolError> {
        let body = body(bytes)?;
        let (wire, trailing): (WireResponse, _) = postcard::take_from_bytes(&body)
            .map_err(|e| ProtocolError::Malformed(e.to_string()))?;
        let overview = if trailing.is_empty() {
            None
        } else {
            let (update, trailing) = postcard::take_from_bytes::<OverviewUpdate>(trailing)
                .map_err(|e| ProtocolError::Malformed(format!("overview: {e}")))?;
            no_trailing(trailing)?;
            Some(update)
        };
        let response = SyncResponse {
            cursor: wire.cursor,
            docs: wire.docs.into_iter().map(DocUpdate::from).collect(),
            removed: wire.removed.into_iter().map(WireId::into_string).collect(),
            more: wire.more,
        };
        Ok((response, overview))
    }
}

/// The postcard `body` of a response with the overview's after it.
fn with_overview(body: Vec<u8>, overview: Option<&OverviewUpdate>) -> Vec<u8> {
    match overview {
        Some(update) => postcard::to_extend(update, body).expect("postcard encodes the overview"),
        None => body,
    }
}

/// The request header in which a phone names the version of the overview it holds (decimal;
/// `0` when it holds none). Only a phone that sends it receives an [`OverviewUpdate`] after
/// the response, so older phones read answers as before, and a server that does not know the
/// header ignores it.
pub const OVERVIEW_HEADER: &str = "x-chiefsync-overview";

/// The request header in which a phone names the most document bytes it wants in the answer
/// (decimal): a phone on a slow link asks for pages it can receive within its request timeout
/// (`client::LinkRate`). The server answers with at most that, never less than
/// [`crate::limits::MIN_ASKED_ANSWER_BYTES`] nor more than its own limit
/// ([`crate::limits::AnswerLimits::asked`]); the rest comes in the next pages as usual. A phone
/// that does not send it gets the server's limit.
pub const ANSWER_BYTES_HEADER: &str = "x-chiefsync-answer-bytes";

/// The overview attached after a sync response when the one the phone named is out of date:
/// nothing is attached while it is current, so an unchanged overview costs no bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverviewUpdate {
    /// [`crate::overview::version_of`] the overview below; 0 when there is none.
    pub version: u64,
    /// The user's overview now; `None` when they have nobody below them (any overview the
    /// phone holds is dropped).
    pub overview: Option<crate::overview::Overview>,
}

impl OverviewUpdate {
    /// What to attach for a phone holding version `held` when the user's overview is `now`:
    /// nothing when it is the same.
    pub fn unless_held(held: u64, now: Option<crate::overview::Overview>) -> Option<Self> {
        let version = crate::overview::version_of(now.as_ref());
        (version != held).then_some(OverviewUpdate {
            version,
            overview: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::{transaction::Transactable, AutoCommit, ROOT};
    use flate2::write::DeflateEncoder;
    use proptest::prelude::*;
    use std::io::Write;

    const DOC: &str = "0193c7a0-0000-7000-8000-000000000001";

    fn request() -> SyncRequest {
        SyncRequest {
            cursor: 42,
            docs: vec![DocPush {
                doc_id: DOC.into(),
                server_heads: vec![[7; 32]],
                changes: vec![vec![1, 2, 3], vec![4; 300]],
            }],
            dropped: Vec::new(),
        }
    }

    /// A document the server sent the device, and one new change the device made on it.
    fn edited() -> (Vec<Hash>, Vec<u8>) {
        let mut doc = AutoCommit::new();
        doc.put(ROOT, "status", "reported").unwrap();
        doc.commit();
        let server: Vec<Hash> = doc.get_heads().iter().map(|h| h.0).collect();
        doc.put(ROOT, "comment", "垃圾仍在").unwrap();
        doc.commit();
        let heads: Vec<_> = server.iter().map(|h| automerge::ChangeHash(*h)).collect();
        let change = doc.get_changes(&heads)[0].raw_bytes().to_vec();
        (server, change)
    }

    #[test]
    fn messages_round_trip() {
        let req = request();
        assert_eq!(SyncRequest::decode(&req.encode()), Ok(req));
        let resp = SyncResponse {
            cursor: 43,
            docs: vec![
                DocUpdate {
                    doc_id: "d".into(),
                    kind: Some(DocKind::Issue),
                    heads: Heads::Listed(vec![[1; 32], [2; 32]]),
                    changes: vec![vec![9; 10]],
                    refused: vec![RefusedChange {
                        hash: [3; 32],
                        code: "not_owner".into(),
                        message: "only the patrol's chief edits it".into(),
                    }],
                    missing: vec![],
                    snapshot: Some(vec![5; 20]),
                },
                DocUpdate {
                    doc_id: DOC.into(),
                    kind: Some(DocKind::Patrol),
                    heads: Heads::AsPushed,
                    changes: vec![],
                    refused: vec![],
                    missing: vec![],
                    snapshot: None,
                },
            ],
            removed: vec!["gone".into(), DOC.into()],
            more: true,
        };
        assert_eq!(SyncResponse::decode(&resp.encode()), Ok(resp));
    }

    #[test]
    fn ids_heads_and_acceptance_travel_compactly() {
        let (server, change) = edited();
        let push = DocPush {
            doc_id: DOC.into(),
            server_heads: server.clone(),
            changes: vec![change.clone()],
        };
        let request = SyncRequest {
            cursor: 300,
            docs: vec![push.clone()],
            dropped: Vec::new(),
        };
        let bytes = request.encode();
        assert_eq!(SyncRequest::decode(&bytes), Ok(request));
        // Envelope 6, cursor 2, one push: id 17, heads 1, change count 1, length 1 or 2.
        assert!(bytes.len() <= change.len() + 30, "{} bytes", bytes.len());

        // Not a UUID in canonical form, and heads that are not the change's dependencies: sent
        // as they are.
        for id in ["issue-x", "0193C7A0-0000-7000-8000-000000000001"] {
            let odd = SyncRequest {
                cursor: 0,
                docs: vec![DocPush {
                    doc_id: id.into(),
                    server_heads: vec![[9; 32]],
                    changes: vec![change.clone()],
                }],
                dropped: Vec::new(),
            };
            assert_eq!(SyncRequest::decode(&odd.encode()), Ok(odd));
        }

        let accepted = SyncResponse {
            cursor: 301,
            docs: vec![DocUpdate {
                doc_id: DOC.into(),
                kind: Some(DocKind::Issue),
                heads: Heads::AsPushed,
                changes: vec![],
                refused: vec![],
                missing: vec![],
                snapshot: None,
            }],
            removed: vec![],
            more: false,
        };
        let bytes = accepted.encode();
        assert!(bytes.len() <= 30, "{} bytes", bytes.len());
        assert_eq!(SyncResponse::decode(&bytes), Ok(accepted));

        let changed = automerge::Change::try_from(&change[..]).unwrap();
        assert_eq!(push.heads_after(), Ok(vec![changed.hash().0]));
    }

    #[test]
    fn heads_after_a_push_are_what_no_pushed_change_depends_on() {
        let (server, change) = edited();
        let change = automerge::Change::try_from(&change[..]).unwrap();
        assert_eq!(heads_after(&server, &[]), server);
        assert_eq!(
            heads_after(&server, std::slice::from_ref(&change)),
            vec![change.hash().0]
        );
        // A server head the change was not built on stays a head.
        let mut other = vec![[0xff; 32], change.hash().0];
        other.sort();
        assert_eq!(heads_after(&[[0xff; 32]], &[change]), other);
    }

    #[test]
    fn large_bodies_are_deflated_and_stay_bounded() {
        let mut big = request();
        big.docs[0].changes = vec![vec![7; 100_000]; 3];
        let bytes = big.encode();
        assert_eq!(bytes[5], BODY_DEFLATE);
        assert!(bytes.len() < 10_000, "{} bytes", bytes.len());
        assert_eq!(SyncRequest::decode(&bytes), Ok(big));

        // A small body that inflates beyond the limit is refused at the limit.
        let mut bomb = MAGIC.to_vec();
        bomb.push(PROTOCOL_VERSION);
        bomb.push(BODY_DEFLATE);
        let mut deflate = DeflateEncoder::new(bomb, Compression::best());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..=MAX_MESSAGE_BYTES >> 20 {
            deflate.write_all(&zeros).unwrap();
        }
        let bomb = deflate.finish().unwrap();
        assert!(bomb.len() < 100_000);
        assert!(matches!(
            SyncRequest::decode(&bomb),
            Err(ProtocolError::TooLarge(n)) if n > MAX_MESSAGE_BYTES
        ));
    }

    /// A document sent whole: every change of a small issue document, its heads listed.
    fn whole(doc_id: &str, edits: usize) -> DocUpdate {
        let mut doc = AutoCommit::new();
        for i in 0..edits {
            doc.put(ROOT, "status", format!("step {i} of {doc_id}"))
                .unwrap();
            doc.commit();
        }
        DocUpdate {
            doc_id: doc_id.into(),
            kind: Some(DocKind::Issue),
            heads: Heads::Listed(doc.get_heads().iter().map(|h| h.0).collect()),
            changes: doc
                .get_changes(&[])
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect(),
            refused: vec![],
            missing: vec![],
            snapshot: None,
        }
    }

    #[test]
    fn packed_updates_splice_into_one_deflated_body_that_decodes_as_usual() {
        let docs: Vec<DocUpdate> = (0..6)
            .map(|i| whole(&format!("0193c7a0-0000-7000-8000-00000000000{i}"), 3 + i))
            .collect();
        let response = SyncResponse {
            cursor: 7_000,
            docs: docs.clone(),
            removed: vec!["gone".into(), DOC.into()],
            more: true,
        };
        let packed: Vec<Option<Arc<PackedUpdate>>> = docs
            .iter()
            .map(|d| Some(Arc::new(PackedUpdate::of(d))))
            .collect();
        // Packed first, last, adjacent, between fresh ones, and none at all.
        for pattern in [
            [true, true, true, true, true, true],
            [true, false, false, true, true, false],
            [false, true, false, false, false, true],
            [false; 6],
        ] {
            let chosen: Vec<_> = packed
                .iter()
                .zip(pattern)
                .map(|(p, on)| p.clone().filter(|_| on))
                .collect();
            let bytes = response.encode_packed(&chosen);
            assert_eq!(
                SyncResponse::decode(&bytes),
                Ok(response.clone()),
                "{pattern:?}"
            );
            if pattern.contains(&true) {
                assert_eq!(bytes[5], BODY_DEFLATE);
                // Each run deflated apart costs a little; the body stays close to the whole's.
                assert!(
                    bytes.len() <= response.encode().len() * 3 / 2 + 64,
                    "{pattern:?}: {} bytes against {}",
                    bytes.len(),
                    response.encode().len()
                );
            } else {
                assert_eq!(bytes, response.encode());
            }
            // Answered in version 2 to a phone not yet updated: the same answer without
            // `more`, which such a phone would refuse as a trailing byte.
            let old = response.encode_packed_in(2, &chosen, None);
            assert_eq!(old[4], 2);
            let (version, body) = versioned_body(&old, OLDEST_READ_VERSION).unwrap();
            assert_eq!(version, 2);
            let (cursor, docs, removed): (u64, Vec<WireUpdate>, Vec<WireId>) =
                decode_body(&body).unwrap();
            let v2 = SyncResponse {
                cursor,
                docs: docs.into_iter().map(DocUpdate::from).collect(),
                removed: removed.into_iter().map(WireId::into_string).collect(),
                more: true,
            };
            assert_eq!(v2, response, "{pattern:?}");
            assert_eq!(
                SyncResponse::decode(&old),
                Err(ProtocolError::UnsupportedVersion(2))
            );
        }

        // A packing of another version (or of another document) is not used: the answer stays
        // exactly what the response says.
        let mut newer = response.clone();
        newer.docs[0] = whole(&docs[0].doc_id, 9);
        newer.docs[1].doc_id = docs[2].doc_id.clone();
        let stale = vec![packed[0].clone(), packed[2].clone(), packed[2].clone()];
        assert_eq!(
            SyncResponse::decode(&newer.encode_packed(&stale)),
            Ok(newer.clone())
        );
        // Nor for an update that also refuses changes.
        let mut refusing = response.clone();
        refusing.docs[0].refused.push(RefusedChange {
            hash: [3; 32],
            code: "not_owner".into(),
            message: "only the patrol's chief edits it".into(),
        });
        assert_eq!(
            SyncResponse::decode(&refusing.encode_packed(&packed)),
            Ok(refusing)
        );
    }

    #[test]
    fn a_request_names_each_document_once_with_a_valid_id() {
        let push = |id: &str| DocPush {
            doc_id: id.into(),
            server_heads: vec![],
            changes: vec![],
        };
        let request = |ids: &[&str]| SyncRequest {
            cursor: 0,
            docs: ids.iter().map(|id| push(id)).collect(),
            dropped: Vec::new(),
        };
        assert_eq!(request(&[DOC, "issue-x"]).check(), Ok(()));
        let twice = request(&[DOC, "issue-x", DOC]);
        assert_eq!(
            SyncRequest::decode(&twice.encode()),
            Err(ProtocolError::DuplicateDocument(DOC.into()))
        );
        assert_eq!(
            twice.check().unwrap_err().code(),
            "duplicate_document",
            "the hub checks requests that were not decoded too"
        );
        let long = "x".repeat(MAX_DOC_ID_BYTES + 1);
        for bad in ["", long.as_str(), "a\0b", "line\nbreak"] {
            assert!(
                matches!(
                    SyncRequest::decode(&request(&[bad]).encode()),
                    Err(ProtocolError::BadDocumentId(_))
                ),
                "{bad:?}"
            );
        }
        assert_eq!(check_doc_id(&"x".repeat(MAX_DOC_ID_BYTES)), Ok(()));
        let ids: Vec<String> = (0..=MAX_PUSHED_DOCS).map(|i| format!("doc-{i}")).collect();
        let many = SyncRequest {
            cursor: 0,
            docs: ids.iter().map(|id| push(id)).collect(),
            dropped: Vec::new(),
        };
        assert_eq!(
            SyncRequest::decode(&many.encode()),
            Err(ProtocolError::TooManyDocuments {
                count: MAX_PUSHED_DOCS + 1,
                max: MAX_PUSHED_DOCS
            })
        );
    }

    #[test]
    fn envelope_errors_are_typed() {
        let bytes = request().encode();
        assert_eq!(
            SyncRequest::decode(b"HTTP/1.1"),
            Err(ProtocolError::BadMagic)
        );
        assert_eq!(SyncRequest::decode(b"CSYN"), Err(ProtocolError::BadMagic));
        let mut future = bytes.clone();
        future[4] = PROTOCOL_VERSION + 1;
        assert_eq!(
            SyncRequest::decode(&future),
            Err(ProtocolError::UnsupportedVersion(PROTOCOL_VERSION + 1))
        );
        // A version 1 body, as phones before version 2 send it, gets a clear refusal.
        let mut old = bytes.clone();
        old[4] = 1;
        let refused = SyncRequest::decode(&old).unwrap_err();
        assert_eq!(refused, ProtocolError::UnsupportedVersion(1));
        assert_eq!(refused.code(), "unsupported_version");
        // A version 2 request (requests did not change) is read, and its version told.
        let mut two = bytes.clone();
        two[4] = 2;
        assert_eq!(SyncRequest::decode_with_version(&two), Ok((request(), 2)));
        assert_eq!(
            SyncRequest::decode_with_version(&bytes),
            Ok((request(), PROTOCOL_VERSION))
        );
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            SyncRequest::decode(&trailing),
            Err(ProtocolError::Malformed(_))
        ));
        let mut unknown_body = bytes.clone();
        unknown_body[5] = 7;
        assert!(matches!(
            SyncRequest::decode(&unknown_body),
            Err(ProtocolError::Malformed(_))
        ));
        for cut in 5..bytes.len() {
            assert!(
                SyncRequest::decode(&bytes[..cut]).is_err(),
                "truncated at {cut}"
            );
        }
        // Heads said to be the first change's dependencies, with a change that names none.
        let mut implied = MAGIC.to_vec();
        implied.extend([PROTOCOL_VERSION, BODY_PLAIN]);
        let mut body = postcard::to_allocvec(&WireRequest {
            cursor: 0,
            docs: vec![WirePush {
                id: WireId::Text("issue-x".into()),
                server_heads: WireServerHeads::DepsOfFirstChange,
                changes: vec![vec![1, 2, 3]].into(),
            }]
            .into(),
        })
        .unwrap();
        implied.append(&mut body);
        assert!(matches!(
            SyncRequest::decode(&implied),
            Err(ProtocolError::Malformed(_))
        ));
        let huge = vec![0u8; MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            SyncRequest::decode(&huge),
            Err(ProtocolError::TooLarge(MAX_MESSAGE_BYTES + 1))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
            for kind in [BODY_PLAIN, BODY_DEFLATE] {
                let mut bytes = MAGIC.to_vec();
                bytes.push(PROTOCOL_VERSION);
                bytes.push(kind);
                bytes.extend(&body);
                if let Ok(request) = SyncRequest::decode(&bytes) {
                    prop_assert_eq!(SyncRequest::decode(&request.encode()), Ok(request));
                }
                if let Ok(response) = SyncResponse::decode(&bytes) {
                    prop_assert_eq!(SyncResponse::decode(&response.encode()), Ok(response));
                }
            }
        }

        #[test]
        fn a_declared_length_beyond_the_body_is_refused(len in 1_000u32..u32::MAX) {
            // A request claiming a huge push list must fail without allocating it.
            let mut bytes = MAGIC.to_vec();
            bytes.push(PROTOCOL_VERSION);
            bytes.push(BODY_PLAIN);
            bytes.push(0); // cursor
            let mut n = len;
            while n >= 0x80 {
                bytes.push((n as u8) | 0x80);
                n >>= 7;
            }
            bytes.push(n as u8);
            prop_assert!(SyncRequest::decode(&bytes).is_err());
        }
    }
}
