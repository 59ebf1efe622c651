//! The server's side of sync, sans-IO: what to accept from a device, what to send back, and
//! what to remember per device. The server binary supplies storage ([`HubStore`]) and HTTP;
//! every decision lives here, beside the client engine it talks to.
//!
//! For each pushed document the hub authorizes every change against the state its author saw
//! (`authz`), places a new document against the reference data, gives every workflow event it
//! accepts a receipt in the server's order (`IssueDoc::accept`), stores what is allowed, and
//! answers with the server's changes the device lacks (its receipts among them). Then it walks the change feed from the device's cursor (or, when the user's
//! role or jurisdiction changed, every document) and sends what changed in the device's scope.
//! What it sent is remembered as *pending* per (device, document) and becomes *confirmed* when
//! the device presents the response's cursor, so a lost response costs a resend, never a gap.

mod automerge_sync;
pub mod delivery;
pub mod limits;
mod server_actions;
mod store;
mod sync;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use automerge_sync::{AutomergeSyncOutcome, MAX_SYNC_STATES_PER_DEVICE, SYNC_STATE_TTL_MS};
pub use server_actions::{
    event_receipts, server_actor, system_user, ActError, Acted, DEADLINE_JOB_DEVICE, WEB_DEVICE,
};
pub use store::{
    AuditEntry, AuditLog, DeviceDoc, DeviceLedger, DocumentStore, HubStore, ReferenceSource,
    StoredDoc,
};
pub use sync::PackedResponse;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash as _, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use automerge::ActorId;

use crate::model::User;
use crate::protocol::ProtocolError;

#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error("malformed change: {0}")]
    MalformedChange(String),
    #[error("malformed automerge sync message: {0}")]
    MalformedMessage(String),
    #[error("no document {0}")]
    UnknownDocument(String),
    #[error("change refused: {code}: {message}")]
    Refused { code: String, message: String },
    #[error("stored document {id} is damaged: {reason}")]
    Damaged { id: String, reason: String },
    #[error("storage: {0}")]
    Storage(String),
    #[error(transparent)]
    Limit(#[from] limits::LimitError),
    #[error("too many automerge sync messages for this document; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
}

impl HubError {
    /// A stable code for the JSON error body.
    pub fn code(&self) -> &str {
        match self {
            HubError::Protocol(e) => e.code(),
            HubError::MalformedChange(_) => "malformed_change",
            HubError::MalformedMessage(_) => "malformed_message",
            HubError::UnknownDocument(_) => "not_found",
            HubError::Refused { code, .. } => code,
            HubError::Damaged { .. } => "damaged",
            HubError::Storage(_) => "storage",
            HubError::Limit(limit) => limit.code(),
            HubError::RateLimited { .. } => "rate_limited",
        }
    }

    /// Whether the caller sent something wrong (4xx) rather than the server failing (5xx).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, HubError::Damaged { .. } | HubError::Storage(_))
    }
}

/// The authenticated caller: the user, their device, and the actor bound to that pair.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub device: String,
    pub actor: ActorId,
}

impl Caller {
    /// The audit entries of this caller's accepted changes to one document.
    pub fn audit(
        &self,
        doc_id: &str,
        accepted: &[automerge::ChangeHash],
        received_at_ms: i64,
    ) -> Vec<AuditEntry> {
        accepted
            .iter()
            .map(|hash| AuditEntry {
                doc_id: doc_id.to_string(),
                change: to_hex(&hash.0),
                user: self.user.id.clone(),
                device: self.device.clone(),
                actor: self.actor.to_hex_string(),
                received_at_ms,
            })
            .collect()
    }
}

/// Documents are read, authorized, merged and written under a lock, so two devices pushing to
/// the same document never overwrite each other's merge. Locks are striped by document id.
const STRIPES: usize = 64;

#[derive(Debug)]
pub struct Hub<S> {
    store: S,
    stripes: Vec<Mutex<()>>,
    sync_rounds: limits::SyncRounds,
    answer_budget: limits::AnswerBudget,
    delivery: delivery::DeliveryCache,
}

impl<S: HubStore> Hub<S> {
    pub fn new(store: S) -> Self {
        Self {
            store,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            sync_rounds: limits::SyncRounds::default(),
            answer_budget: limits::AnswerBudget::default(),
            delivery: delivery::DeliveryCache::default(),
        }
    }

    /// The decoded changes of a stored document, as devices receive them; `None` when it is
    /// absent.
    pub fn doc_changes(&self, id: &str) -> Result<Option<Arc<delivery::DocChanges>>, HubError> {
        // The number is read before the save: a save read afterwards is at least that new, so
        // an entry is never labelled newer than what it holds.
        let seq = self.store.document_seq(id)?;
        if let Some(hit) = seq.and_then(|seq| self.delivery.at(id, seq)) {
            return Ok(Some(hit));
        }
        match self.store.document(id)? {
            Some(stored) => self.delivery.changes(id, &stored, seq).map(Some),
            None => Ok(None),
        }
    }

    /// Documents and bytes the delivery cache holds.
    pub fn delivery_cache_size(&self) -> (usize, usize) {
        self.delivery.size()
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    fn lock(&self, doc_id: &str) -> MutexGuard<'_, ()> {
        let mut hasher = DefaultHasher::new();
        doc_id.hash(&mut hasher);
        let stripe = &self.stripes[(hasher.finish() as usize) % STRIPES];
        // A panic while holding the lock cannot leave a half-written document: writes are
        // single durable store calls, so the poisoned flag carries no meaning here.
        stripe
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
