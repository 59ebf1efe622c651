//! The batch sync protocol between a device and the server (`POST /api/v1/sync`): binary,
//! versioned and size-limited.
//!
//! One request carries the device's new changes for any number of documents plus its scope
//! cursor; the response carries, per document, what the server accepted or refused and the
//! server's changes the device lacks, for every document in the device's scope that changed
//! since the cursor. When the device knows which server heads it last saw, one round trip is
//! enough; the server asks for a second only when it lacks a change's dependencies.
//!
//! Wire format: the magic `CSYN`, one version byte, then the message in postcard (a compact,
//! well-specified serde format). Decoding refuses a wrong magic or version, trailing bytes and
//! anything over [`MAX_MESSAGE_BYTES`] before it allocates. This module holds types and codecs
//! only; the device's engine is `client`, the server's handling lives in the server.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::doc::DocKind;

pub const MAGIC: [u8; 4] = *b"CSYN";
pub const PROTOCOL_VERSION: u8 = 1;
/// The largest request or response either side accepts.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

/// An automerge change hash (SHA-256 of the change).
pub type Hash = [u8; 32];

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncRequest {
    /// The server's change-feed position the device has fully received (0 at first sync).
    pub cursor: u64,
    pub docs: Vec<DocPush>,
}

/// A device's new changes to one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocPush {
    pub doc_id: String,
    /// The heads of the server's version the device last received (empty for a new document).
    pub server_heads: Vec<Hash>,
    /// Raw automerge changes the server may lack, in causal order.
    pub changes: Vec<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SyncResponse {
    /// The cursor to present next time; only after applying this response.
    pub cursor: u64,
    pub docs: Vec<DocUpdate>,
    /// Documents that left the device's scope (e.g. its jurisdiction changed).
    pub removed: Vec<String>,
}

/// What the server has to say about one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocUpdate {
    pub doc_id: String,
    /// `None` only when the server holds nothing of the document (its creation was refused).
    pub kind: Option<DocKind>,
    /// The server's heads after this sync; the device keeps them as its `server_heads`.
    pub heads: Vec<Hash>,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedChange {
    pub hash: Hash,
    /// A stable machine code, e.g. `not_owner` or `transition`.
    pub code: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("message of {0} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")]
    TooLarge(usize),
    #[error("not a ChiefSync sync message")]
    BadMagic,
    #[error("sync protocol version {0} is not supported (this build speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u8),
    #[error("malformed sync message: {0}")]
    Malformed(String),
}

impl ProtocolError {
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::TooLarge(_) => "too_large",
            ProtocolError::BadMagic => "bad_magic",
            ProtocolError::UnsupportedVersion(_) => "unsupported_version",
            ProtocolError::Malformed(_) => "malformed",
        }
    }
}

fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&MAGIC);
    out.push(PROTOCOL_VERSION);
    // postcard cannot fail on these types: no maps with non-string keys, no unsized sequences.
    postcard::to_io(message, &mut out).expect("postcard encodes protocol types into a Vec");
    out
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ProtocolError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::TooLarge(bytes.len()));
    }
    let Some(rest) = bytes.strip_prefix(&MAGIC) else {
        return Err(ProtocolError::BadMagic);
    };
    let (&version, body) = rest.split_first().ok_or(ProtocolError::BadMagic)?;
    if version != PROTOCOL_VERSION {
        return Err(ProtocolError::UnsupportedVersion(version));
    }
    let (message, trailing) =
        postcard::take_from_bytes(body).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    if !trailing.is_empty() {
        return Err(ProtocolError::Malformed(format!(
            "{} trailing bytes",
            trailing.len()
        )));
    }
    Ok(message)
}

impl SyncRequest {
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        decode(bytes)
    }
}

impl SyncResponse {
    pub fn encode(&self) -> Vec<u8> {
        encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        decode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request() -> SyncRequest {
        SyncRequest {
            cursor: 42,
            docs: vec![DocPush {
                doc_id: "0193c7a0-0000-7000-8000-000000000001".into(),
                server_heads: vec![[7; 32]],
                changes: vec![vec![1, 2, 3], vec![4; 300]],
            }],
        }
    }

    #[test]
    fn messages_round_trip() {
        let req = request();
        assert_eq!(SyncRequest::decode(&req.encode()), Ok(req));
        let resp = SyncResponse {
            cursor: 43,
            docs: vec![DocUpdate {
                doc_id: "d".into(),
                kind: Some(DocKind::Issue),
                heads: vec![[1; 32], [2; 32]],
                changes: vec![vec![9; 10]],
                refused: vec![RefusedChange {
                    hash: [3; 32],
                    code: "not_owner".into(),
                    message: "only the patrol's chief edits it".into(),
                }],
                missing: vec![],
                snapshot: Some(vec![5; 20]),
            }],
            removed: vec!["gone".into()],
        };
        assert_eq!(SyncResponse::decode(&resp.encode()), Ok(resp));
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
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(matches!(
            SyncRequest::decode(&trailing),
            Err(ProtocolError::Malformed(_))
        ));
        for cut in 5..bytes.len() {
            assert!(
                SyncRequest::decode(&bytes[..cut]).is_err(),
                "truncated at {cut}"
            );
        }
        let huge = vec![0u8; MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            SyncRequest::decode(&huge),
            Err(ProtocolError::TooLarge(MAX_MESSAGE_BYTES + 1))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
            let mut bytes = MAGIC.to_vec();
            bytes.push(PROTOCOL_VERSION);
            bytes.extend(body);
            let _ = SyncRequest::decode(&bytes);
            let _ = SyncResponse::decode(&bytes);
        }

        #[test]
        fn a_declared_length_beyond_the_body_is_refused(len in 1_000u32..u32::MAX) {
            // A push claiming a huge change list must fail without allocating it.
            let mut bytes = MAGIC.to_vec();
            bytes.push(PROTOCOL_VERSION);
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
