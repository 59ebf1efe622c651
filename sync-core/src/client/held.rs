//! What the phone holds beyond what sync brings it: documents fetched on demand, and the
//! documents it dropped (`evict`) that the server must still be told about.
//!
//! Dropping a document and remembering to tell the server are one atomic write: after a crash
//! the phone either still holds the document or has it on the list, never neither. The list
//! goes up in the next requests ([`crate::protocol::SyncRequest::dropped`], at most
//! [`MAX_DROPPED_DOCS`] each) and an id leaves it once an answer to a request naming it is
//! applied. While the server still believes the phone holds a dropped document it would send
//! only the changes on top of the copy that is gone; so the phone never lets the list grow
//! past what one request carries.

use std::collections::BTreeSet;

use automerge::AutoCommit;

use super::{to_store_kind, ClientError, SyncClient, SERVER_PEER};
use crate::doc;
use crate::protocol::MAX_DROPPED_DOCS;
use crate::store::{StoreBatch, StoreError};

/// Dropped documents the server has not been told about yet.
pub(super) const DROPPED_KEY: &str = "sync.dropped";

pub(super) fn encode_dropped(dropped: &BTreeSet<String>) -> Result<Vec<u8>, ClientError> {
    Ok(
        serde_json::to_vec(dropped).map_err(|source| StoreError::Codec {
            key: DROPPED_KEY.into(),
            source,
        })?,
    )
}

impl SyncClient<'_> {
    /// Dropped documents the server has not been told about yet.
    pub fn dropped(&self) -> Result<BTreeSet<String>, ClientError> {
        Ok(match self.store.meta(DROPPED_KEY)? {
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|source| StoreError::Codec {
                key: DROPPED_KEY.into(),
                source,
            })?,
            None => BTreeSet::new(),
        })
    }

    /// Drops these documents from the phone and lists them for the server, in one atomic
    /// write. A document with unsent changes or quarantined changes, or not stored, is left
    /// alone whatever the caller asks (`evict`'s table: never unsent work); so is anything past
    /// [`MAX_DROPPED_DOCS`] not yet told (it goes at a later pass, once the server heard of the
    /// rest). Returns the ids dropped.
    pub fn drop_docs(&self, ids: &[String]) -> Result<Vec<String>, ClientError> {
        let dirty = self.dirty()?;
        let mut told = self.dropped()?;
        let mut batch = StoreBatch::new();
        let mut out = Vec::new();
        for id in ids {
            if told.len() >= MAX_DROPPED_DOCS {
                break;
            }
            if dirty.contains(id)
                || !self.store.has_doc(id)?
                || !self.store.quarantined_for(id)?.is_empty()
            {
                continue;
            }
            batch.remove_doc(id)?;
            told.insert(id.clone());
            out.push(id.clone());
        }
        if out.is_empty() {
            return Ok(out);
        }
        batch.put_meta(DROPPED_KEY, &encode_dropped(&told)?)?;
        self.store.commit_batch(batch)?;
        Ok(out)
    }

    /// Keeps a document fetched on demand (the whole of the server's copy, as one automerge
    /// sync exchange brought it). A document the phone already holds gains what it lacked and
    /// keeps its sync records; one new to the phone is stored with the server's heads, so an
    /// edit of it goes up as any other. Returns the document's kind.
    pub fn keep_fetched(
        &self,
        doc_id: &str,
        fetched: &mut AutoCommit,
    ) -> Result<doc::DocKind, ClientError> {
        let header = doc::header(fetched)?;
        if header.id != doc_id {
            return Err(ClientError::BadChange(format!(
                "the server sent document {} for {doc_id}",
                header.id
            )));
        }
        let kind = to_store_kind(header.kind);
        let mut batch = StoreBatch::new();
        match self.load(doc_id)? {
            Some(mut held) => {
                let before = held.get_heads();
                held.merge(fetched)
                    .map_err(|e| ClientError::BadChange(e.to_string()))?;
                if held.get_heads() != before {
                    batch.append_doc_changes(doc_id, kind, held.save_after(&before))?;
                }
            }
            None => {
                let heads: Vec<u8> = fetched.get_heads().iter().flat_map(|h| h.0).collect();
                batch.append_doc_changes(doc_id, kind, fetched.save_nocompress())?;
                batch.put_sync_state(doc_id, SERVER_PEER, &heads)?;
                // A document fetched again after it was dropped is held again, whole: if the
                // server still records the phone holding it, that record is true once more.
                let mut told = self.dropped()?;
                if told.remove(doc_id) {
                    batch.put_meta(DROPPED_KEY, &encode_dropped(&told)?)?;
                }
            }
        }
        if !batch.is_empty() {
            self.store.commit_batch(batch)?;
        }
        Ok(header.kind)
    }
}
