//! `POST /docs/{id}/automerge-sync`: one standard automerge sync message in, the server's next
//! message out, with the same authorization as the batch protocol. A message's changes are
//! authorized before anything is merged; if any is refused, none is merged.
//!
//! A peer that never stops talking is stopped: each (device, document) may send a bounded number
//! of messages per minute, and each message's lists, bloom filters and changes are bounded
//! (see `limits`) before automerge reads them, so one request is bounded work.

use automerge::sync::{self, SyncDoc};
use automerge::AutoCommit;

use super::limits::{check_changes, check_chunks, check_sync_message, Chunks};
use super::{Caller, Hub, HubError, HubStore};
use crate::authz::{authorize_batch, in_scope, DocMeta};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutomergeSyncOutcome {
    /// The server's next sync message (HTTP 200).
    Reply(Vec<u8>),
    /// The server has nothing to send (HTTP 204).
    NothingToSend,
}

impl<S: HubStore> Hub<S> {
    pub fn automerge_sync(
        &self,
        caller: &Caller,
        doc_id: &str,
        message: &[u8],
        now_ms: i64,
    ) -> Result<AutomergeSyncOutcome, HubError> {
        self.sync_rounds
            .admit(&caller.device, doc_id, now_ms)
            .map_err(|retry_after_secs| HubError::RateLimited { retry_after_secs })?;
        let mut message = sync::Message::decode(message)
            .map_err(|e| HubError::MalformedMessage(e.to_string()))?;
        check_sync_message(&mut message)?;
        for chunk in message.changes.iter() {
            check_chunks(chunk, Chunks::Any).map_err(|p| p.into_hub(HubError::MalformedMessage))?;
        }
        let _guard = self.lock(doc_id);
        let stored = self.store.document(doc_id)?;
        let mut doc = match &stored {
            Some(stored) if !in_scope(&caller.user, &stored.meta) => {
                return Err(HubError::UnknownDocument(doc_id.to_string()))
            }
            Some(stored) => AutoCommit::load(&stored.bytes).map_err(|e| HubError::Damaged {
                id: doc_id.to_string(),
                reason: e.to_string(),
            })?,
            None => AutoCommit::new(),
        };

        if !message.changes.is_empty() {
            // Unpack the message's chunks (single changes or a compressed bundle) on a scratch
            // copy to see which changes it carries, without merging them anywhere yet.
            let mut scratch = doc.fork();
            let before = scratch.get_heads();
            for chunk in message.changes.iter() {
                scratch
                    .load_incremental(chunk)
                    .map_err(|e| HubError::MalformedMessage(e.to_string()))?;
            }
            let changes = scratch.get_changes(&before);
            check_changes(&changes, stored.as_ref().map_or(0, |s| s.bytes.len()))?;
            let mut merged = doc.fork();
            let mut outcome =
                authorize_batch(&caller.user, &caller.actor, doc_id, &mut merged, changes);
            if stored.is_none() {
                self.place_new(&mut merged, &mut outcome)?;
            }
            if let Some((_, why)) = outcome.refused.first() {
                return Err(HubError::Refused {
                    code: why.code().to_string(),
                    message: why.to_string(),
                });
            }
            if !outcome.accepted.is_empty() {
                let meta = if outcome.appended.is_empty() {
                    DocMeta::of(&merged).map_err(|e| HubError::Refused {
                        code: "schema".into(),
                        message: e.to_string(),
                    })?
                } else {
                    self.give_receipts(
                        &caller.user,
                        doc_id,
                        &mut merged,
                        &outcome.appended,
                        now_ms,
                    )?
                };
                let audit = caller.audit(doc_id, &outcome.accepted, now_ms);
                self.store
                    .save_document(doc_id, &meta, &merged.save(), &audit)?;
                self.store.durable()?;
                doc = merged;
            }
            // The changes are merged (or were not allowed); the message still carries the
            // peer's heads, needs and bloom filter for the sync state.
            message.changes = Vec::<Vec<u8>>::new().into();
        }

        let mut state = match self.store.sync_state(&caller.device, doc_id)? {
            Some(bytes) => sync::State::decode(&bytes).unwrap_or_default(),
            None => sync::State::new(),
        };
        // Automerge trusts the peer's bloom filters: one that claims entries but carries no
        // bits makes it divide by zero. A hostile message must cost its sender a refusal, not
        // the server a worker; the state it left behind is not stored.
        let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            doc.sync().receive_sync_message(&mut state, message)?;
            Ok(doc.sync().generate_sync_message(&mut state))
        }))
        .map_err(|_| HubError::MalformedMessage("the message breaks the sync protocol".into()))?
        .map_err(|e: automerge::AutomergeError| HubError::MalformedMessage(e.to_string()))?;
        self.store
            .put_sync_state(&caller.device, doc_id, &state.encode())?;
        Ok(match reply {
            Some(reply) => AutomergeSyncOutcome::Reply(reply.encode()),
            None => AutomergeSyncOutcome::NothingToSend,
        })
    }
}
