//! What a device may add to a stored document, and how often it may talk automerge sync, so that
//! no request can make the server hold a document it cannot afford to load. Both sync endpoints
//! check here before automerge parses or merges anything, and a refusal stores nothing.
//!
//! - Raw bytes first: every chunk's header is read by hand and compressed data is inflated into
//!   a counter, never into memory, so a deflate bomb is refused at the limit, not at the
//!   allocator ([`check_chunks`]).
//! - Then each change: its size, its number of operations, every string and byte value it
//!   writes, and how deep the maps, lists and texts it creates nest ([`check_changes`]). Nesting
//!   is counted from the root, or from the container that already exists in the document, whose
//!   own depth the schema check bounds (a patrol or an issue is at most five containers deep).
//! - Then the document: its stored size plus what the changes add.
//! - For a whole `/sync` request: the operations of all its changes together
//!   ([`MAX_REQUEST_OPS`]), and what its answer may carry ([`AnswerLimits`]): the hub sends
//!   documents past the budget at the next sync.
//! - For `automerge-sync`: a bounded number of messages per (device, document) and per device
//!   per minute ([`SyncRounds`]) and bounded lists and bloom filters in each message
//!   ([`check_sync_message`]), so a peer looping forever or asking for everything a million
//!   times is answered with a refusal instead of work.
//!
//! This module only measures, and is shared: the phone checks its own changes against the same
//! limits before it sends them (`client`), the server before it merges them (`hub`). The hub
//! keeps the per-device message rates and the answer budget it can change while serving.

use std::collections::HashMap;
use std::io::{self, Read};

use automerge::legacy::{Key, ObjectId, OpType};
use automerge::sync::Message;
use automerge::{ActorId, Change, ScalarValue};

/// Largest change, uncompressed. A one-minute track chunk is a few hundred bytes and a new
/// issue with a long description a few kilobytes; a week offline is many changes, not one.
pub const MAX_CHANGE_BYTES: usize = 1024 * 1024;
/// Most operations in one change. Text is one operation per character, so this also bounds
/// what one paste into a note adds.
pub const MAX_CHANGE_OPS: usize = 100_000;
/// Longest string, byte string or map key one operation may write.
pub const MAX_STRING_BYTES: usize = 64 * 1024;
/// Deepest nesting of maps, lists and texts a change may create.
pub const MAX_NESTING: usize = 16;
/// Largest stored document (automerge's compressed save). An eight-hour patrol is about
/// 300 KiB; loading a document costs several times its saved size in memory.
pub const MAX_DOCUMENT_BYTES: usize = 8 * 1024 * 1024;
/// Most bytes a whole-document chunk in an automerge sync message may inflate to.
pub const MAX_INFLATED_BYTES: usize = 8 * MAX_DOCUMENT_BYTES;

/// Automerge sync messages one device may send about one document per minute, sustained.
pub const SYNC_MESSAGES_PER_MINUTE: u32 = 60;
/// Messages one device may send about one document at once before the rate applies.
pub const SYNC_MESSAGE_BURST: u32 = 60;
/// Automerge sync messages one device may send per minute about all documents together,
/// sustained and in a burst: a new document id would otherwise be a fresh allowance.
pub const DEVICE_SYNC_MESSAGES_PER_MINUTE: u32 = 600;
/// Most hashes in a message's `heads`, `need` or one `have`'s `last_sync`.
pub const MAX_SYNC_HASHES: usize = 1024;
/// Most `have` entries (bloom filters) in one message; automerge sends one.
pub const MAX_SYNC_HAVES: usize = 8;
/// Most probes per bloom filter lookup; automerge uses 7.
pub const MAX_BLOOM_PROBES: u64 = 32;
/// Most bits per bloom filter entry; automerge uses 10.
pub const MAX_BLOOM_BITS_PER_ENTRY: u64 = 64;

/// Most document bytes (changes and snapshots) one `/sync` answer carries: inside the
/// protocol's own 32 MiB message limit with room for the envelope, and above a district chief's
/// week (about 26 MiB), which a phone syncing once must get whole.
/// Documents past it are sent at the next sync, which goes on from the answer's cursor.
pub const MAX_ANSWER_BYTES: usize = 30 * 1024 * 1024;
/// Most documents one `/sync` answer sends besides the pushed ones (each is loaded to be sent):
/// a district chief's first sync after a week is some 6,500.
pub const MAX_ANSWER_DOCS: usize = 10_000;
/// The least a phone may ask one `/sync` answer to carry (`protocol::ANSWER_BYTES_HEADER`):
/// every page walks what the phone receives, so a phone asking for tiny pages would make the
/// server walk it once per document.
pub const MIN_ASKED_ANSWER_BYTES: usize = 64 * 1024;
/// Most operations all the changes of one `/sync` request may hold together: merging costs
/// time in proportion to them, and a change's operations compress to almost nothing on the
/// wire. A phone sends the documents that do not fit in its next request.
pub const MAX_REQUEST_OPS: usize = 2_000_000;

/// What one `/sync` answer may carry ([`MAX_ANSWER_BYTES`], [`MAX_ANSWER_DOCS`] unless the
/// server sets otherwise with `Hub::set_answer_limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerLimits {
    /// Most document bytes (changes and snapshots).
    pub bytes: usize,
    /// Most documents besides the pushed ones.
    pub docs: usize,
}

impl AnswerLimits {
    /// These limits for a phone that asked for answers of at most `bytes` document bytes:
    /// never more than the server's limit, never less than [`MIN_ASKED_ANSWER_BYTES`].
    pub fn asked(self, bytes: Option<u64>) -> Self {
        let Some(bytes) = bytes else {
            return self;
        };
        let bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
        Self {
            bytes: bytes.max(MIN_ASKED_ANSWER_BYTES).min(self.bytes),
            ..self
        }
    }
}

impl Default for AnswerLimits {
    fn default() -> Self {
        Self {
            bytes: MAX_ANSWER_BYTES,
            docs: MAX_ANSWER_DOCS,
        }
    }
}

/// A limit a request went over. Sizes answer 413, shapes 422.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// One change over [`MAX_CHANGE_BYTES`].
    #[error("a change of {bytes} bytes exceeds the limit of {max} bytes")]
    ChangeTooLarge { bytes: u64, max: u64 },
    /// One change over [`MAX_CHANGE_OPS`] operations.
    #[error("a change of {ops} operations exceeds the limit of {max}")]
    TooManyOps { ops: u64, max: u64 },
    /// A string, byte string or key over [`MAX_STRING_BYTES`].
    #[error("a value of {bytes} bytes exceeds the limit of {max} bytes for one string")]
    StringTooLong { bytes: u64, max: u64 },
    /// Containers nested deeper than [`MAX_NESTING`].
    #[error("containers nested {depth} deep exceed the limit of {max}")]
    TooDeep { depth: u64, max: u64 },
    /// The document would grow past [`MAX_DOCUMENT_BYTES`].
    #[error("the document would grow to {bytes} bytes, over the limit of {max} bytes")]
    DocumentTooLarge { bytes: u64, max: u64 },
    /// An automerge sync message with too many hashes, filters or probes.
    #[error("the sync message's {what} holds {count}, over the limit of {max}")]
    SyncMessage {
        what: &'static str,
        count: u64,
        max: u64,
    },
    #[error(
        "the changes of one request hold {ops} operations, over the limit of {max}; send the \
         other documents in the next request"
    )]
    /// A `/sync` request over [`MAX_REQUEST_OPS`] operations in all.
    RequestTooManyOps { ops: u64, max: u64 },
    #[error(
        "answering the pushed documents takes {bytes} bytes, over the limit of {max} bytes \
         for one answer; push fewer documents at once"
    )]
    /// Answering the pushed documents alone would exceed the answer's byte budget.
    AnswerTooLarge { bytes: u64, max: u64 },
    /// A change whose header parses but whose operations automerge cannot read (it panics on
    /// some hostile bytes; the check catches that).
    #[error("a change's operations cannot be read")]
    Unreadable,
}

impl LimitError {
    /// A stable machine code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            LimitError::ChangeTooLarge { .. } => "change_too_large",
            LimitError::TooManyOps { .. } => "too_many_ops",
            LimitError::StringTooLong { .. } => "string_too_long",
            LimitError::TooDeep { .. } => "too_deep",
            LimitError::DocumentTooLarge { .. } => "document_too_large",
            LimitError::SyncMessage { .. } => "sync_message_too_big",
            LimitError::RequestTooManyOps { .. } => "request_too_many_ops",
            LimitError::AnswerTooLarge { .. } => "answer_too_large",
            LimitError::Unreadable => "malformed_change",
        }
    }

    /// Whether the refusal is about size (413) rather than shape (422).
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            LimitError::ChangeTooLarge { .. }
                | LimitError::DocumentTooLarge { .. }
                | LimitError::AnswerTooLarge { .. }
        )
    }
}

pub(crate) fn over(
    value: usize,
    max: usize,
    make: impl FnOnce(u64, u64) -> LimitError,
) -> Result<(), LimitError> {
    if value > max {
        Err(make(value as u64, max as u64))
    } else {
        Ok(())
    }
}

/// Why a blob of automerge chunks was refused before automerge read it.
#[derive(Debug)]
pub enum ChunkProblem {
    /// Over a limit.
    Limit(LimitError),
    /// Not a well-formed automerge chunk.
    Malformed(String),
}

impl From<LimitError> for ChunkProblem {
    fn from(limit: LimitError) -> Self {
        ChunkProblem::Limit(limit)
    }
}

/// Which chunk kinds a blob may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunks {
    /// `/sync` carries single changes only.
    ChangesOnly,
    /// An automerge sync message may carry whole documents or bundles too.
    Any,
}

const MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
const DOCUMENT: u8 = 0;
const CHANGE: u8 = 1;
const COMPRESSED_CHANGE: u8 = 2;
const BUNDLE: u8 = 3;
/// Column spec bit saying the column's data is deflated.
const DEFLATE_BIT: u64 = 0b1000;

/// Reads a concatenation of automerge chunks (storage format) without building anything:
/// every change at most [`MAX_CHANGE_BYTES`] once inflated, every document or bundle at most
/// [`MAX_INFLATED_BYTES`].
pub fn check_chunks(bytes: &[u8], allowed: Chunks) -> Result<(), ChunkProblem> {
    let mut input = Reader::new(bytes);
    while !input.is_empty() {
        if input.take(4)? != MAGIC {
            return Err(malformed("not an automerge chunk"));
        }
        input.take(4)?;
        let kind = input.take(1)?[0];
        let len = input.uleb()?;
        let data = input.take_u64(len)?;
        match (kind, allowed) {
            (CHANGE, _) => over(data.len(), MAX_CHANGE_BYTES, |bytes, max| {
                LimitError::ChangeTooLarge { bytes, max }
            })?,
            (COMPRESSED_CHANGE, _) => {
                inflated(data, MAX_CHANGE_BYTES).ok_or(LimitError::ChangeTooLarge {
                    bytes: MAX_CHANGE_BYTES as u64 + 1,
                    max: MAX_CHANGE_BYTES as u64,
                })?;
            }
            (DOCUMENT | BUNDLE, Chunks::Any) => check_columns(data, kind)?,
            (DOCUMENT | BUNDLE, Chunks::ChangesOnly) => {
                return Err(malformed("a whole document where a change was expected"))
            }
            _ => return Err(malformed("unknown chunk type")),
        }
    }
    Ok(())
}

/// The inflated size of a document or bundle chunk: its prefix, then column metadata and data
/// (documents list both metadata blocks before the data, bundles interleave them).
fn check_columns(data: &[u8], kind: u8) -> Result<(), ChunkProblem> {
    let mut input = Reader::new(data);
    if kind == DOCUMENT {
        skip_actors(&mut input)?;
        skip_hashes(&mut input)?;
        let changes = columns(&mut input)?;
        let ops = columns(&mut input)?;
        let mut budget = MAX_INFLATED_BYTES;
        inflate_columns(&mut input, &changes, &mut budget)?;
        inflate_columns(&mut input, &ops, &mut budget)?;
    } else {
        skip_hashes(&mut input)?;
        skip_actors(&mut input)?;
        let mut budget = MAX_INFLATED_BYTES;
        let changes = columns(&mut input)?;
        inflate_columns(&mut input, &changes, &mut budget)?;
        let ops = columns(&mut input)?;
        inflate_columns(&mut input, &ops, &mut budget)?;
    }
    Ok(())
}

fn skip_actors(input: &mut Reader<'_>) -> Result<(), ChunkProblem> {
    for _ in 0..input.count()? {
        let len = input.uleb()?;
        input.take_u64(len)?;
    }
    Ok(())
}

fn skip_hashes(input: &mut Reader<'_>) -> Result<(), ChunkProblem> {
    let count = input.count()?;
    input.take_u64(count.saturating_mul(32))?;
    Ok(())
}

/// (deflated, length) of each column.
fn columns(input: &mut Reader<'_>) -> Result<Vec<(bool, u64)>, ChunkProblem> {
    let count = input.count()?;
    let mut columns = Vec::new();
    for _ in 0..count {
        let spec = input.uleb()?;
        let len = input.uleb()?;
        columns.push((spec & DEFLATE_BIT != 0, len));
    }
    Ok(columns)
}

fn inflate_columns(
    input: &mut Reader<'_>,
    columns: &[(bool, u64)],
    budget: &mut usize,
) -> Result<(), ChunkProblem> {
    for &(deflated, len) in columns {
        let data = input.take_u64(len)?;
        let size = if deflated {
            inflated(data, *budget).ok_or_else(too_big_document)?
        } else {
            data.len()
        };
        *budget = budget.checked_sub(size).ok_or_else(too_big_document)?;
    }
    Ok(())
}

fn too_big_document() -> ChunkProblem {
    ChunkProblem::Limit(LimitError::DocumentTooLarge {
        bytes: MAX_INFLATED_BYTES as u64 + 1,
        max: MAX_INFLATED_BYTES as u64,
    })
}

/// The inflated size of raw deflate data, counted without keeping it; `None` when it would
/// exceed `max`. A broken stream counts as too large too: automerge would refuse it anyway.
fn inflated(data: &[u8], max: usize) -> Option<usize> {
    let mut decoder = flate2::bufread::DeflateDecoder::new(data).take(max as u64 + 1);
    match io::copy(&mut decoder, &mut io::sink()) {
        Ok(size) if size <= max as u64 => Some(size as usize),
        _ => None,
    }
}

fn malformed(why: &str) -> ChunkProblem {
    ChunkProblem::Malformed(why.to_owned())
}

#[derive(Debug)]
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Self { rest }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ChunkProblem> {
        if n > self.rest.len() {
            return Err(malformed("chunk cut short"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn take_u64(&mut self, n: u64) -> Result<&'a [u8], ChunkProblem> {
        self.take(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn uleb(&mut self) -> Result<u64, ChunkProblem> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(malformed("number too long"))
    }

    /// A count of items that each take at least one byte, so it cannot exceed what is left.
    fn count(&mut self) -> Result<u64, ChunkProblem> {
        let count = self.uleb()?;
        if count > self.rest.len() as u64 {
            return Err(malformed("count beyond the chunk"));
        }
        Ok(count)
    }
}

/// Checks changes before they are merged into a document whose save is `stored_bytes` long.
/// Reading a hostile change's operations can panic inside automerge; that is
/// [`LimitError::Unreadable`], never a crash (the fuzzer found one: an operation naming an actor
/// the change does not list).
pub fn check_changes(changes: &[Change], stored_bytes: usize) -> Result<(), LimitError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        check_readable_changes(changes, stored_bytes)
    }))
    .unwrap_or(Err(LimitError::Unreadable))
}

fn check_readable_changes(changes: &[Change], stored_bytes: usize) -> Result<(), LimitError> {
    let mut added = 0usize;
    // Every container the changes create, with the container it is created in (`None`: the
    // root or one that already exists). Collected first, so the order changes arrive in
    // cannot hide a chain from the count.
    let mut parents: HashMap<(u64, ActorId), Option<(u64, ActorId)>> = HashMap::new();
    for change in changes {
        let bytes = change.raw_bytes().len();
        over(bytes, MAX_CHANGE_BYTES, |bytes, max| {
            LimitError::ChangeTooLarge { bytes, max }
        })?;
        over(change.len(), MAX_CHANGE_OPS, |ops, max| {
            LimitError::TooManyOps { ops, max }
        })?;
        added = added.saturating_add(bytes);
        let expanded = change.decode();
        let string = |len: usize| {
            over(len, MAX_STRING_BYTES, |bytes, max| {
                LimitError::StringTooLong { bytes, max }
            })
        };
        string(expanded.message.as_ref().map_or(0, String::len))?;
        let start = expanded.start_op.get();
        for (i, op) in expanded.operations.iter().enumerate() {
            if let Key::Map(key) = &op.key {
                string(key.len())?;
            }
            match &op.action {
                OpType::Put(value) => string(scalar_len(value))?,
                OpType::MarkBegin(mark) => {
                    string(mark.name.len())?;
                    string(scalar_len(&mark.value))?;
                }
                OpType::Make(_) => {
                    let parent = match &op.obj {
                        ObjectId::Root => None,
                        ObjectId::Id(id) => Some((id.0, id.1.clone())),
                    };
                    parents.insert((start + i as u64, expanded.actor_id.clone()), parent);
                }
                _ => {}
            }
        }
    }
    for object in parents.keys() {
        let mut depth = 1;
        let mut at = object;
        while let Some(Some(parent)) = parents.get(at) {
            depth += 1;
            if depth > MAX_NESTING {
                return Err(LimitError::TooDeep {
                    depth: depth as u64,
                    max: MAX_NESTING as u64,
                });
            }
            at = parent;
        }
    }
    over(
        stored_bytes.saturating_add(added),
        MAX_DOCUMENT_BYTES,
        |bytes, max| LimitError::DocumentTooLarge { bytes, max },
    )
}

fn scalar_len(value: &ScalarValue) -> usize {
    match value {
        ScalarValue::Str(s) => s.len(),
        ScalarValue::Bytes(b) | ScalarValue::Unknown { bytes: b, .. } => b.len(),
        _ => 0,
    }
}

/// Bounds what one automerge sync message can make the server do: automerge answers every
/// `need` entry (repeats included) with the change's bytes and probes every bloom filter as
/// often as the filter says, so both are bounded before automerge sees them.
pub fn check_sync_message(message: &mut Message) -> Result<(), LimitError> {
    let hashes = |what, count: usize| {
        over(count, MAX_SYNC_HASHES, |count, max| {
            LimitError::SyncMessage { what, count, max }
        })
    };
    hashes("heads", message.heads.len())?;
    message.need.sort();
    message.need.dedup();
    hashes("need", message.need.len())?;
    over(message.have.len(), MAX_SYNC_HAVES, |count, max| {
        LimitError::SyncMessage {
            what: "have",
            count,
            max,
        }
    })?;
    for have in &message.have {
        hashes("have.last_sync", have.last_sync.len())?;
        let bloom = have.bloom.to_bytes();
        let mut fields = Reader::new(&bloom);
        let mut field = || fields.uleb().unwrap_or(0);
        let (entries, bits_per_entry, probes) = (field(), field(), field());
        let probe = |what, count: u64, max: u64| {
            if count > max {
                Err(LimitError::SyncMessage { what, count, max })
            } else {
                Ok(())
            }
        };
        probe("bloom probes", probes, MAX_BLOOM_PROBES)?;
        probe(
            "bloom bits per entry",
            bits_per_entry,
            MAX_BLOOM_BITS_PER_ENTRY,
        )?;
        if entries > 0 && (bits_per_entry == 0 || probes == 0) {
            // Entries without bits make automerge divide by zero.
            return Err(LimitError::SyncMessage {
                what: "bloom filter without bits",
                count: entries,
                max: 0,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_asks_for_smaller_answers_but_not_tiny_ones_nor_larger_ones() {
        let server = AnswerLimits::default();
        assert_eq!(server.asked(None), server);
        let asked = server.asked(Some(300_000));
        assert_eq!((asked.bytes, asked.docs), (300_000, MAX_ANSWER_DOCS));
        assert_eq!(server.asked(Some(1)).bytes, MIN_ASKED_ANSWER_BYTES);
        assert_eq!(server.asked(Some(0)).bytes, MIN_ASKED_ANSWER_BYTES);
        assert_eq!(server.asked(Some(u64::MAX)).bytes, MAX_ANSWER_BYTES);
        // A server that set a limit under the floor keeps its own.
        let small = AnswerLimits {
            bytes: 1_000,
            docs: 5,
        };
        assert_eq!(small.asked(Some(1)), small);
    }
}
