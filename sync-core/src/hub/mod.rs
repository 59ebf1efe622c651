//! The server's side of sync: what to accept from a device, what to send back, and what to
//! remember per device. The hub speaks no HTTP and opens no files: the server supplies the
//! storage ([`HubStore`]) and the transport. It keeps in memory what is cheap to lose (the
//! delivery cache, automerge message rates) and receives a large push on several threads.
//! It builds on the domain only, never on the phone's side (`tests/layers.rs` keeps that).
//!
//! For each pushed document the hub authorizes every change against the state its author saw
//! (`authz`), places a new document against the reference data, gives every workflow event it
//! accepts a receipt in the server's order (`IssueDoc::accept`), stores what is allowed, and
//! answers with the server's changes the device lacks (its receipts among them). Then it walks
//! the change feed from the device's cursor (or, when the user's role or jurisdiction changed,
//! every document) and sends what changed of what the user's phones receive
//! (`authz::delivered`: a chief's own work and the problems they act on, not every document
//! they may read). What it sent is remembered as
//! *pending* per (device, document) and becomes *confirmed* when the device presents the
//! response's cursor, so a lost response costs a resend, never a gap.
//!
//! Besides `POST /sync` ([`Hub::sync`], [`Hub::answer`]): standard automerge sync messages
//! ([`Hub::automerge_sync`]), and the server's own actions on issues from the dashboard and the
//! deadline job ([`Hub::act`]). What a user may read outside sync (the server's listings,
//! detail pages and audit trail) is [`read::ReadScope`], by the same scope rule.
//!
//! A chief's phone and the hub, in memory (the server puts HTTP between them):
//!
//! ```
//! use std::sync::Arc;
//! use sync_core::client::{ClientError, SyncClient, Transport};
//! use sync_core::doc::{actor_for, DocKind, NewPatrol, PatrolDoc};
//! use sync_core::hub::testing::{MemoryHubStore, Reference};
//! use sync_core::hub::{Caller, DocumentStore, Hub};
//! use sync_core::model::{Asset, DivisionCode, Geometry, Jurisdiction, Level, Role, System, User};
//! use sync_core::protocol::SyncRequest;
//! use sync_core::store::{testing::MemoryStorage, LocalStore};
//!
//! const NOW: i64 = 1_764_288_000_000;
//! let village = DivisionCode::new("370105014201")?;
//! let chief = User {
//!     id: "u-chief".into(),
//!     username: "demo-chief".into(),
//!     display_name: "小寨村河长".into(),
//!     role: Role::Chief {
//!         system: System::River,
//!         level: Level::Village,
//!         jurisdiction: Jurisdiction { division: village.clone(), assets: vec!["xqh-01".into()] },
//!     },
//!     active: true,
//! };
//! let river = Asset {
//!     id: "xqh-01".into(),
//!     system: System::River,
//!     name: "小清河".into(),
//!     division: village.clone(),
//!     geometry: Geometry::LineString(vec![[116.97, 36.72], [116.99, 36.72]]),
//! };
//! let hub = Hub::new(MemoryHubStore::with_reference(Reference {
//!     assets: vec![river],
//!     users: vec![chief.clone()],
//!     ..Reference::default()
//! }));
//! let caller = Caller { user: chief.clone(), device: "u-chief/phone".into(), actor: actor_for(1), bound_at_ms: None };
//!
//! // The chief's phone records a patrol offline...
//! let phone = LocalStore::new(Arc::new(MemoryStorage::default()));
//! let client = SyncClient::new(&phone);
//! let mut patrol = PatrolDoc::create(
//!     caller.actor.clone(),
//!     &NewPatrol {
//!         system: System::River,
//!         asset: "xqh-01".into(),
//!         chief: chief.id.clone(),
//!         division: village,
//!         device: caller.device.clone(),
//!         started_at_ms: NOW,
//!     },
//! )?;
//! let id = patrol.id().to_string();
//! client.save(&mut patrol, DocKind::Patrol, &id)?;
//!
//! // ...and syncs when it has a signal: one request, one answer.
//! struct Direct<'a>(&'a Hub<MemoryHubStore>, &'a Caller);
//! impl Transport for Direct<'_> {
//!     fn sync(&mut self, body: Vec<u8>) -> Result<Vec<u8>, ClientError> {
//!         let request = SyncRequest::decode(&body)?;
//!         let answer = self.0.answer(self.1, &request, NOW);
//!         Ok(answer.map_err(|e| ClientError::Transport(e.to_string()))?.encode())
//!     }
//! }
//! let report = client.sync(&mut Direct(&hub, &caller), NOW)?;
//! assert_eq!((report.round_trips, report.refused), (1, 0));
//! assert!(hub.store().document(&id)?.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod automerge_sync;
mod claims;
pub mod delivery;
mod dropped;
pub mod limits;
pub mod overviews;
mod placement;
pub mod read;
mod receive;
mod server_actions;
mod store;
mod sync;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use automerge_sync::{AutomergeSyncOutcome, MAX_SYNC_STATES_PER_DEVICE, SYNC_STATE_TTL_MS};
pub use claims::{DeviceClaim, DeviceClaims};
pub use server_actions::{
    event_receipts, server_actor, system_user, ActError, Acted, DEADLINE_JOB_DEVICE, WEB_DEVICE,
};
pub use store::{
    compaction_due, read_documents, AuditEntry, AuditLog, DeviceDoc, DeviceLedger, DocRead,
    DocumentStore, Footprint, HubStore, ReferenceSource, StoredDoc, StoredVersion,
    MAX_INCREMENTAL_SAVES, NEVER_APPLIED, SMALL_SNAPSHOT_BYTES,
};
pub use sync::PackedResponse;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash as _, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use automerge::ActorId;

use crate::model::User;
use crate::protocol::ProtocolError;

/// Why the hub refused a request or could not answer it. [`HubError::code`] is the JSON
/// error code; [`HubError::is_client_error`] tells a 4xx from a 5xx.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The request body is not a valid sync message.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// A pushed change does not parse.
    #[error("malformed change: {0}")]
    MalformedChange(String),
    /// An automerge sync message does not parse.
    #[error("malformed automerge sync message: {0}")]
    MalformedMessage(String),
    /// No such document (or none in the caller's scope).
    #[error("no document {0}")]
    UnknownDocument(String),
    /// A change the caller may not make, with a stable code.
    #[error("change refused: {code}: {message}")]
    Refused {
        /// The refusal's stable code (`authz::Refusal::code`), for the JSON error body.
        code: String,
        /// Why the change was refused, for the client that sent it.
        message: String,
    },
    /// A stored document does not load: the server's fault, never the caller's.
    #[error("stored document {id} is damaged: {reason}")]
    Damaged {
        /// The damaged document.
        id: String,
        /// What failed when loading it.
        reason: String,
    },
    /// The store failed.
    #[error("storage: {0}")]
    Storage(String),
    /// The store cannot be reached for now (a database restarting): nothing was saved, and
    /// the same request may succeed later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The document was saved since the version a merge was made from was read (by another
    /// server, or by this one before it took the document's lock): nothing was saved. Read
    /// again and merge again; the phone sends again when this reaches it.
    #[error("document {id} was saved meanwhile; send again")]
    SavedMeanwhile {
        /// The document.
        id: String,
    },
    /// The request is over a size or shape limit.
    #[error(transparent)]
    Limit(#[from] limits::LimitError),
    /// Another answer to the same device is still running (the phone retried while its first
    /// request was being answered): nothing was done, and the phone sends again shortly.
    #[error("another sync of this device is still being answered; send again in a moment")]
    SyncInProgress,
    /// Too many automerge sync messages; retry after the given seconds.
    #[error("too many automerge sync messages for this document; retry in {retry_after_secs} s")]
    RateLimited {
        /// Seconds until the phone may send again (the `Retry-After` header).
        retry_after_secs: u64,
    },
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
            HubError::Unavailable(_) | HubError::SavedMeanwhile { .. } => "unavailable",
            HubError::Limit(limit) => limit.code(),
            HubError::RateLimited { .. } => "rate_limited",
            HubError::SyncInProgress => "sync_in_progress",
        }
    }

    /// Whether the caller sent something wrong (4xx) rather than the server failing (5xx).
    pub fn is_client_error(&self) -> bool {
        !matches!(
            self,
            HubError::Damaged { .. }
                | HubError::Storage(_)
                | HubError::Unavailable(_)
                | HubError::SavedMeanwhile { .. }
        )
    }
}

/// The authenticated caller: the user, their device, and the actor bound to that pair.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The signed-in user, as the server knows them now.
    pub user: User,
    /// The device the request came from (`user/device`).
    pub device: String,
    /// The automerge actor bound to (user, device) at its first login.
    pub actor: ActorId,
    /// When the device was bound to the user (their first sign-in on it), when the server knows:
    /// nothing the device sends counts as done before it (`rules::times`).
    pub bound_at_ms: Option<i64>,
}

impl Caller {
    /// The audit entries of this caller's accepted changes to one document, with the device's
    /// previous acknowledged sync ([`DeviceLedger::device_synced`]) as it stood when they came.
    pub fn audit(
        &self,
        doc_id: &str,
        accepted: &[automerge::ChangeHash],
        received_at_ms: i64,
        previous_sync_ms: Option<i64>,
    ) -> Vec<AuditEntry> {
        accepted
            .iter()
            .map(|hash| AuditEntry {
                doc_id: doc_id.to_string(),
                change: hex::encode(hash.0),
                user: self.user.id.clone(),
                device: self.device.clone(),
                actor: self.actor.to_hex_string(),
                received_at_ms,
                previous_sync_ms,
            })
            .collect()
    }
}

/// Documents read from the store in one call ([`DocumentStore::documents`],
/// [`Hub::docs_changes`]) where their sizes are not known beforehand: at most this many saves
/// are in memory at once.
pub const DOCS_PER_READ: usize = 64;

/// One document's changes among several ([`Hub::docs_changes`]): `None` when it is absent,
/// or why it cannot be read.
pub type ChangesRead = Result<Option<Arc<delivery::DocChanges>>, HubError>;

/// Documents are read, authorized, merged and written under a lock, so two devices pushing to
/// the same document never overwrite each other's merge. Locks are striped by document id.
const STRIPES: usize = 64;

/// The server's sync engine over a [`HubStore`]: one per server, shared by every
/// worker. See the module overview.
#[derive(Debug)]
pub struct Hub<S> {
    store: S,
    stripes: Vec<Mutex<()>>,
    sync_rounds: limits::SyncRounds,
    answer_budget: limits::AnswerBudget,
    delivery: delivery::DeliveryCache,
}

impl<S: HubStore> Hub<S> {
    /// A hub over `store`, with the default answer limits and delivery cache.
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
        let mut one = self.docs_changes(&[id])?;
        one.pop().expect("one answer for one id")
    }

    /// [`Self::doc_changes`] of each of `ids`, in their order, asking the store once for their
    /// versions and once for the saves the delivery cache lacks; a damaged document is its
    /// own error and does not fail the others.
    pub fn docs_changes(&self, ids: &[&str]) -> Result<Vec<ChangesRead>, HubError> {
        // The numbers are read before the saves: a save read afterwards is at least that new,
        // so an entry is never labelled newer than what it holds.
        let seqs = self.store.document_seqs(ids)?;
        let mut found: Vec<Option<_>> = ids
            .iter()
            .map(|id| {
                let seq = seqs.get(*id)?;
                self.delivery.at(id, *seq).map(|hit| Ok(Some(hit)))
            })
            .collect();
        let lacking: Vec<&str> = ids
            .iter()
            .zip(&found)
            .filter(|(_, hit)| hit.is_none())
            .map(|(id, _)| *id)
            .collect();
        if !lacking.is_empty() {
            let mut read = read_documents(&self.store, &lacking)?.into_iter();
            for (id, slot) in ids.iter().zip(found.iter_mut()) {
                if slot.is_some() {
                    continue;
                }
                let stored = read.next().expect("one answer per id asked");
                *slot = Some(stored.and_then(|stored| match stored {
                    Some(stored) => {
                        let seq = seqs.get(*id).copied();
                        self.delivery.changes(id, &stored, seq).map(Some)
                    }
                    None => Ok(None),
                }));
            }
        }
        Ok(found
            .into_iter()
            .map(|slot| slot.expect("every id answered"))
            .collect())
    }

    /// Documents and bytes the delivery cache holds.
    pub fn delivery_cache_size(&self) -> (usize, usize) {
        self.delivery.size()
    }

    /// The store the hub reads and writes.
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
