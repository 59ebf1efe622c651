//! `POST /docs/{id}/automerge-sync`: one standard automerge sync message in, the server's next
//! message out, with the same authorization as the batch protocol. A message's changes are
//! authorized before anything is merged; if any is refused, none is merged.
//!
//! A peer that never stops talking is stopped: each (device, document) and each device may send
//! a bounded number of messages per minute, and each message's lists, bloom filters and changes
//! are bounded (see `limits`) before automerge reads them, so one request is bounded work.
//!
//! A document outside the caller's scope is answered exactly as one that does not exist: the
//! server talks about an empty document, so no answer tells whether an id is taken. The server
//! keeps a sync state only for documents that exist in the caller's scope, at most
//! [`MAX_SYNC_STATES_PER_DEVICE`] per device (the least recently used go first), and forgets
//! one unused for [`SYNC_STATE_TTL_MS`]: a lost state costs the peers one more exchange.

use automerge::sync::{self, SyncDoc};
use automerge::{AutoCommit, ChangeHash};

use super::server_actions::Floor;
use super::{store, Caller, Hub, HubError, HubStore};
use crate::authz::{authorize_batch, in_scope, DocMeta};
use crate::limits::{check_changes, check_chunks, check_sync_message, Chunks};
use crate::protocol::check_doc_id;

/// Most automerge sync states the server keeps for one device.
pub const MAX_SYNC_STATES_PER_DEVICE: usize = 1_000;
/// A sync state unused this long is forgotten (30 days).
pub const SYNC_STATE_TTL_MS: i64 = 30 * 24 * 3_600_000;

/// A stored sync state: when it was last used (ms, little-endian), then automerge's encoding.
fn stamped(now_ms: i64, state: &sync::State) -> Vec<u8> {
    let mut out = now_ms.to_le_bytes().to_vec();
    out.extend(state.encode());
    out
}

/// When a stored state was last used, and automerge's encoding of it.
fn unstamp(stored: &[u8]) -> Option<(i64, &[u8])> {
    let (at, state) = stored.split_first_chunk::<8>()?;
    Some((i64::from_le_bytes(*at), state))
}

/// The heads a stored sync state says the device and the server share; none when it does not
/// read.
pub(super) fn state_heads(stored: &[u8]) -> Vec<ChangeHash> {
    unstamp(stored)
        .and_then(|(_, bytes)| sync::State::decode(bytes).ok())
        .map(|state| state.shared_heads)
        .unwrap_or_default()
}

/// The server's side of one automerge sync exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutomergeSyncOutcome {
    /// The server's next sync message (HTTP 200).
    Reply(Vec<u8>),
    /// The server has nothing to send (HTTP 204).
    NothingToSend,
}

impl<S: HubStore> Hub<S> {
    /// Handles one standard automerge sync message from `caller` about `doc_id`: checks the
    /// message's size and rate, authorizes its changes (all or none are merged), stores what
    /// was merged and returns the server's next message.
    pub fn automerge_sync(
        &self,
        caller: &Caller,
        doc_id: &str,
        message: &[u8],
        now_ms: i64,
    ) -> Result<AutomergeSyncOutcome, HubError> {
        check_doc_id(doc_id)?;
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
        // Out of scope looks exactly like unknown: the caller talks with an empty document.
        let hidden = stored
            .as_ref()
            .is_some_and(|s| !in_scope(&caller.user, &s.meta));
        let visible = stored.filter(|_| !hidden);
        let mut doc = match &visible {
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
            check_changes(&changes, visible.as_ref().map_or(0, |s| s.bytes.len()))?;
            let mut merged = doc.fork();
            let mut outcome =
                authorize_batch(&caller.user, &caller.actor, doc_id, &mut merged, changes);
            if visible.is_none() {
                self.place_new(&mut merged, &mut outcome, &Default::default())?;
            }
            if let Some((_, why)) = outcome.refused.first() {
                return Err(HubError::Refused {
                    code: why.code().to_string(),
                    message: why.to_string(),
                });
            }
            if !outcome.accepted.is_empty() {
                if hidden {
                    // A new document under an id another document already has.
                    return Err(HubError::UnknownDocument(doc_id.to_string()));
                }
                // What the device held: the sync state, and what the device's records of batch
                // syncs say it held or was sent (kept after a drop, which forgets the sync
                // state). Read before its last sync: a sync that vouches for a later time
                // writes that first and forgets such records after (`Hub::forget_floors`), so
                // one of the two is seen.
                let mut held = Vec::new();
                if !outcome.appended.is_empty() {
                    let state = self.store.sync_state(&caller.device, doc_id)?;
                    held.extend(state.as_deref().map(state_heads).unwrap_or_default());
                    if let Some(record) = self.store.device_doc(&caller.device, doc_id)? {
                        let seen = record.confirmed.iter().chain(&record.pending);
                        held.extend(seen.map(|h| ChangeHash(*h)));
                    }
                }
                let previous_sync = self.store.device_synced(&caller.device)?;
                let meta = if outcome.appended.is_empty() {
                    DocMeta::of(&merged).map_err(|e| HubError::Refused {
                        code: "schema".into(),
                        message: e.to_string(),
                    })?
                } else {
                    let floor = Floor {
                        held: &held,
                        synced: previous_sync,
                    };
                    self.give_receipts(
                        caller,
                        doc_id,
                        &mut merged,
                        &outcome.appended,
                        &floor,
                        now_ms,
                    )?
                    .0
                };
                let audit = caller.audit(doc_id, &outcome.accepted, now_ms, previous_sync);
                // `doc` is the version read from the store; the save adds what the merge added.
                let read = (visible.as_ref().map(|s| s.version), &doc.get_heads()[..]);
                store::save_merge(&self.store, doc_id, &meta, &mut merged, read, &audit)?;
                self.store.durable()?;
                doc = merged;
            }
            // The changes are merged (or were not allowed); the message still carries the
            // peer's heads, needs and bloom filter for the sync state.
            message.changes = Vec::<Vec<u8>>::new().into();
        }

        // Only a document the caller holds in scope has a state worth keeping.
        let keep = !doc.get_heads().is_empty();
        let kept = if keep {
            self.store.sync_state(&caller.device, doc_id)?
        } else {
            None
        };
        let mut state = kept
            .as_deref()
            .and_then(unstamp)
            .filter(|(at, _)| now_ms - at < SYNC_STATE_TTL_MS)
            .and_then(|(_, bytes)| sync::State::decode(bytes).ok())
            .unwrap_or_default();
        // Automerge trusts the peer's bloom filters: one that claims entries but carries no
        // bits makes it divide by zero. A hostile message must cost its sender a refusal, not
        // the server a worker; the state it left behind is not stored.
        let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            doc.sync().receive_sync_message(&mut state, message)?;
            Ok(doc.sync().generate_sync_message(&mut state))
        }))
        .map_err(|_| HubError::MalformedMessage("the message breaks the sync protocol".into()))?
        .map_err(|e: automerge::AutomergeError| HubError::MalformedMessage(e.to_string()))?;
        if keep {
            if kept.is_none() {
                self.make_room_for_a_sync_state(&caller.device, now_ms)?;
            }
            self.store
                .put_sync_state(&caller.device, doc_id, &stamped(now_ms, &state))?;
        }
        Ok(match reply {
            Some(reply) => AutomergeSyncOutcome::Reply(reply.encode()),
            None => AutomergeSyncOutcome::NothingToSend,
        })
    }

    /// Before a device's new sync state is stored: forgets its expired states and, when it
    /// still holds [`MAX_SYNC_STATES_PER_DEVICE`], the least recently used ones.
    fn make_room_for_a_sync_state(&self, device: &str, now_ms: i64) -> Result<(), HubError> {
        let mut states: Vec<(i64, String)> = self
            .store
            .sync_states(device)?
            .into_iter()
            .map(|(id, stored)| (unstamp(&stored).map_or(i64::MIN, |(at, _)| at), id))
            .collect();
        states.sort();
        let expired = states
            .iter()
            .take_while(|(at, _)| now_ms - at >= SYNC_STATE_TTL_MS)
            .count();
        let over = (states.len() + 1).saturating_sub(MAX_SYNC_STATES_PER_DEVICE);
        let forget: Vec<String> = states
            .into_iter()
            .take(expired.max(over))
            .map(|(_, id)| id)
            .collect();
        if forget.is_empty() {
            return Ok(());
        }
        self.store.forget_sync_states(device, &forget)
    }
}
