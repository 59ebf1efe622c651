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
mod sync;

pub use automerge_sync::{AutomergeSyncOutcome, MAX_SYNC_STATES_PER_DEVICE, SYNC_STATE_TTL_MS};
pub use server_actions::{
    event_receipts, server_actor, system_user, ActError, Acted, DEADLINE_JOB_DEVICE, WEB_DEVICE,
};
pub use sync::PackedResponse;

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash as _, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use automerge::ActorId;
use serde::{Deserialize, Serialize};

use crate::authz::DocMeta;
use crate::model::{Asset, Category, User};
use crate::protocol::{Hash, ProtocolError};

/// A document as the server stores it: routing facts beside the saved bytes.
#[derive(Debug, Clone)]
pub struct StoredDoc {
    pub meta: DocMeta,
    pub bytes: Vec<u8>,
}

/// One accepted change: who sent it, from which device, when it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub doc_id: String,
    /// Lower-case hex of the change hash.
    pub change: String,
    pub user: String,
    pub device: String,
    pub actor: String,
    pub received_at_ms: i64,
}

/// What the server believes one device holds of one document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceDoc {
    /// Heads the device is known to have.
    pub confirmed: Vec<Hash>,
    /// Heads sent in the response that carried `pending_cursor`; confirmed once the device
    /// presents that cursor.
    pub pending: Vec<Hash>,
    pub pending_cursor: u64,
}

impl DeviceDoc {
    /// The heads the device has, given the cursor it presented.
    pub fn known(&self, cursor: u64) -> &[Hash] {
        if self.pending_cursor > 0 && cursor >= self.pending_cursor {
            &self.pending
        } else {
            &self.confirmed
        }
    }

    fn sent(&self, cursor: u64, heads: Vec<Hash>, response_cursor: u64) -> Self {
        Self {
            confirmed: self.known(cursor).to_vec(),
            pending: heads,
            pending_cursor: response_cursor,
        }
    }
}

/// The storage a hub needs. Writes become durable when [`HubStore::durable`] returns; the hub
/// calls it once per request, before its answer acknowledges anything, instead of once per
/// document (a chief's week is a dozen documents in one sync). Writes are durable in the order
/// they were made, so nothing a device was told about can outlive what it depends on.
pub trait HubStore: Send + Sync {
    fn document(&self, id: &str) -> Result<Option<StoredDoc>, HubError>;
    /// Stores a document's new full save with its routing facts and audit entries, and appends
    /// it to the change feed. Returns the feed position.
    fn save_document(
        &self,
        id: &str,
        meta: &DocMeta,
        bytes: &[u8],
        audit: &[AuditEntry],
    ) -> Result<u64, HubError>;
    /// The latest feed position (0 when nothing was ever stored).
    fn feed_head(&self) -> Result<u64, HubError>;
    /// Routing facts that `keep` accepts, of every document whose latest feed position is in
    /// `(after, upto]`, in feed order. Facts are copied only for the documents kept: a village
    /// chief's sync walks a whole district's changes to find its own few.
    fn changed_since(
        &self,
        after: u64,
        upto: u64,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError>;
    fn all_documents(&self) -> Result<Vec<DocMeta>, HubError>;
    /// The feed position of the document's latest save, written atomically with it, so it names
    /// the stored version. `None` for an unknown document, or from a store that does not number
    /// its saves (the delivery cache then compares saves byte for byte).
    fn document_seq(&self, id: &str) -> Result<Option<u64>, HubError> {
        let _ = id;
        Ok(None)
    }
    /// Up to `limit` routing facts that `keep` accepts, of the documents whose ids come after
    /// `after`, in id order (a page of a listing). Stores that can walk their ids in order
    /// should stop at the page's end instead of reading every document.
    fn documents_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        let mut metas: Vec<DocMeta> = self
            .all_documents()?
            .into_iter()
            .filter(|m| after.is_none_or(|a| m.id.as_str() > a) && keep(m))
            .collect();
        metas.sort_by(|a, b| a.id.cmp(&b.id));
        metas.truncate(limit);
        Ok(metas)
    }
    fn device_docs(&self, device: &str) -> Result<Vec<(String, DeviceDoc)>, HubError>;
    /// The ids of the documents the device holds, without what it holds of each.
    fn device_doc_ids(&self, device: &str) -> Result<HashSet<String>, HubError> {
        Ok(self
            .device_docs(device)?
            .into_iter()
            .map(|(id, _)| id)
            .collect())
    }
    fn device_doc(&self, device: &str, doc_id: &str) -> Result<Option<DeviceDoc>, HubError>;
    /// Replaces (`Some`) or forgets (`None`) what the device holds of each document.
    fn put_device_docs(
        &self,
        device: &str,
        docs: &[(String, Option<DeviceDoc>)],
    ) -> Result<(), HubError>;
    /// A fingerprint of the user's scope at the device's last sync.
    fn device_scope(&self, device: &str) -> Result<Option<String>, HubError>;
    fn put_device_scope(&self, device: &str, scope: &str) -> Result<(), HubError>;
    /// Standard automerge sync state per (device, document).
    fn sync_state(&self, device: &str, doc_id: &str) -> Result<Option<Vec<u8>>, HubError>;
    fn put_sync_state(&self, device: &str, doc_id: &str, state: &[u8]) -> Result<(), HubError>;
    /// Every sync state kept for the device, with the document it is about.
    fn sync_states(&self, device: &str) -> Result<Vec<(String, Vec<u8>)>, HubError>;
    /// Forgets the device's sync states of these documents.
    fn forget_sync_states(&self, device: &str, doc_ids: &[String]) -> Result<(), HubError>;
    /// Every accepted change of one document, in the order it was received.
    fn history(&self, doc_id: &str) -> Result<Vec<AuditEntry>, HubError>;
    /// Makes every write so far durable.
    fn durable(&self) -> Result<(), HubError>;
    /// The reference data's asset of this id, which a new record is placed against.
    fn asset(&self, id: &str) -> Result<Option<Asset>, HubError>;
    /// The reference data's problem categories.
    fn categories(&self) -> Result<Vec<Category>, HubError>;
    /// The user of this id (an assignment's target).
    fn user(&self, id: &str) -> Result<Option<User>, HubError>;
    /// Whether an active handler works for the department of exactly this name.
    fn department_exists(&self, name: &str) -> Result<bool, HubError>;
}

/// A shared store is a store: the server hands the hub an `Arc<dyn Store>`.
impl<T: HubStore + ?Sized> HubStore for std::sync::Arc<T> {
    fn document(&self, id: &str) -> Result<Option<StoredDoc>, HubError> {
        (**self).document(id)
    }
    fn save_document(
        &self,
        id: &str,
        meta: &DocMeta,
        bytes: &[u8],
        audit: &[AuditEntry],
    ) -> Result<u64, HubError> {
        (**self).save_document(id, meta, bytes, audit)
    }
    fn feed_head(&self) -> Result<u64, HubError> {
        (**self).feed_head()
    }
    fn changed_since(
        &self,
        after: u64,
        upto: u64,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        (**self).changed_since(after, upto, keep)
    }
    fn all_documents(&self) -> Result<Vec<DocMeta>, HubError> {
        (**self).all_documents()
    }
    fn document_seq(&self, id: &str) -> Result<Option<u64>, HubError> {
        (**self).document_seq(id)
    }
    fn documents_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        (**self).documents_page(after, limit, keep)
    }
    fn device_docs(&self, device: &str) -> Result<Vec<(String, DeviceDoc)>, HubError> {
        (**self).device_docs(device)
    }
    fn device_doc_ids(&self, device: &str) -> Result<HashSet<String>, HubError> {
        (**self).device_doc_ids(device)
    }
    fn device_doc(&self, device: &str, doc_id: &str) -> Result<Option<DeviceDoc>, HubError> {
        (**self).device_doc(device, doc_id)
    }
    fn put_device_docs(
        &self,
        device: &str,
        docs: &[(String, Option<DeviceDoc>)],
    ) -> Result<(), HubError> {
        (**self).put_device_docs(device, docs)
    }
    fn device_scope(&self, device: &str) -> Result<Option<String>, HubError> {
        (**self).device_scope(device)
    }
    fn put_device_scope(&self, device: &str, scope: &str) -> Result<(), HubError> {
        (**self).put_device_scope(device, scope)
    }
    fn sync_state(&self, device: &str, doc_id: &str) -> Result<Option<Vec<u8>>, HubError> {
        (**self).sync_state(device, doc_id)
    }
    fn put_sync_state(&self, device: &str, doc_id: &str, state: &[u8]) -> Result<(), HubError> {
        (**self).put_sync_state(device, doc_id, state)
    }
    fn sync_states(&self, device: &str) -> Result<Vec<(String, Vec<u8>)>, HubError> {
        (**self).sync_states(device)
    }
    fn forget_sync_states(&self, device: &str, doc_ids: &[String]) -> Result<(), HubError> {
        (**self).forget_sync_states(device, doc_ids)
    }
    fn history(&self, doc_id: &str) -> Result<Vec<AuditEntry>, HubError> {
        (**self).history(doc_id)
    }
    fn durable(&self) -> Result<(), HubError> {
        (**self).durable()
    }
    fn asset(&self, id: &str) -> Result<Option<Asset>, HubError> {
        (**self).asset(id)
    }
    fn categories(&self) -> Result<Vec<Category>, HubError> {
        (**self).categories()
    }
    fn user(&self, id: &str) -> Result<Option<User>, HubError> {
        (**self).user(id)
    }
    fn department_exists(&self, name: &str) -> Result<bool, HubError> {
        (**self).department_exists(name)
    }
}

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
