//! Server storage behind one trait, so a distributed backend (PostgreSQL) can replace sled
//! later without touching a handler.
//!
//! [`Store`] is synchronous and may block: handlers call it inside `web::block`. Every mutating
//! call is durable when it returns `Ok` (the sled backend flushes before returning), so a
//! handler that acknowledges a write after the call never acknowledges something a crash could
//! lose. Atomic read-modify-write steps that auth relies on (binding a device, consuming or
//! exchanging a refresh token) are single trait methods rather than get-then-put sequences in
//! handlers, so they hold however many servers share the store.
//!
//! This module holds record types and the trait only; it does not decide who may read what.
//! Every backend must pass two conformance suites, both run for sled in `sled_store`: this
//! module's `conformance` (what only the server stores) and sync-core's
//! `sync_core::hub_store_conformance!` (documents, feed, audit, device ledger, reference
//! lookups: the [`HubStore`] part).

#[cfg(test)]
#[macro_use]
pub(crate) mod conformance;
mod chunks;
mod doc_index;
mod facts;
mod listed;
mod postgres;
mod shared;
mod sled_documents;
mod sled_facts;
mod sled_store;

pub use facts::{FactStore, FactsMark, StoredFact};
pub use postgres::PostgresStore;
pub use shared::{Hold, Kept, LocalShared, Shared};
pub use sled_documents::BACKUP_FEED_GAP;
pub use sled_store::{Census, SledStore};
pub use sync_core::hub::Footprint;

use serde::{Deserialize, Serialize};
use sync_core::hub::HubStore;
use sync_core::model::{Asset, Division, DivisionCode, User};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A record with this key (user id, username, division code, asset id …) already exists.
    #[error("already exists: {0}")]
    Conflict(String),
    /// The record to update does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The backend failed (I/O, lock, closed database).
    #[error("storage backend: {0}")]
    Backend(String),
    /// The database cannot be reached for now (restarting, failing over, out of connections):
    /// nothing was written, and the same call may succeed later.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A stored value could not be decoded.
    #[error("corrupt record {key}: {detail}")]
    Corrupt { key: String, detail: String },
}

impl StoreError {
    /// The same failure as the sync hub's error: a database out of reach stays one (answered
    /// 503, send again); anything else is a storage failure.
    pub fn into_hub(self) -> sync_core::hub::HubError {
        match self {
            StoreError::Unavailable(detail) => sync_core::hub::HubError::Unavailable(detail),
            other => sync_core::hub::HubError::Storage(other.to_string()),
        }
    }
}

/// A user as stored: the shared [`User`] plus what only the server keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub user: User,
    /// Argon2 PHC string; `None` for people who are on record as chiefs but never log in.
    pub password_hash: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// One (user, device) binding. The actor id is chosen once, at the first login of the pair, and
/// every later login of the pair gets the same one, so a device's automerge changes stay
/// attributable across logins.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRecord {
    pub user_id: String,
    pub device_id: String,
    /// 32 lower-case hex characters (16 random bytes): the automerge actor id of this pair.
    pub actor_id: String,
    /// Incremented by every password login; tokens carry it, so a new login or a revocation
    /// retires every token issued before.
    pub session: u64,
    pub created_at_ms: i64,
    pub last_login_ms: i64,
    /// Set by revocation (by an admin, a supervisor, or refresh-token reuse); cleared by the
    /// next password login, which starts a new session.
    pub revoked_at_ms: Option<i64>,
}

impl DeviceRecord {
    /// The name the sync hub keeps this binding's device ledger under (what it holds, its
    /// scope, its sync states): user and device id together, so two people sharing a phone
    /// never share sync records.
    pub fn ledger_key(&self) -> String {
        format!("{}/{}", self.user_id, self.device_id)
    }

    /// Whether tokens of `session` are still honoured.
    pub fn accepts(&self, session: u64) -> bool {
        self.revoked_at_ms.is_none() && self.session == session
    }
}

/// A refresh token as stored: only the SHA-256 of the opaque token, never the token itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    pub token_hash: String,
    pub user_id: String,
    pub device_id: String,
    pub session: u64,
    pub expires_at_ms: i64,
    /// When the token was exchanged; a second exchange is a reuse (or, shortly after, a retry).
    pub used_at_ms: Option<i64>,
    /// The hash of the token issued in exchange, once it is stored.
    #[serde(default)]
    pub replaced_by: Option<String>,
}

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    Unknown,
    /// First use: the record is now marked used.
    Fresh(RefreshRecord),
    /// The token had been exchanged before (the record as it was).
    Reused(RefreshRecord),
}

/// A refresh token presented for exchange, and the successor it is exchanged for (derived from
/// the token: `TokenService::successor_refresh_token`, so every exchange of one token names the
/// same successor).
#[derive(Debug, Clone, Copy)]
pub struct RefreshExchange<'a> {
    pub token_hash: &'a str,
    pub successor_hash: &'a str,
    /// When the successor expires, if it is stored now.
    pub successor_expires_ms: i64,
    /// How long after its exchange a token may be presented again as a retry (the phone's
    /// answer was lost, or it sent the token twice at once) and be answered the same successor.
    pub retry_ms: i64,
    pub now_ms: i64,
}

/// What became of a refresh token presented for exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchanged {
    Unknown,
    /// Exchanged now, or presented again as a retry of its exchange: the successor is stored
    /// and unused. The token's record as it was found.
    Granted(RefreshRecord),
    /// Past its expiry; spent now if it was not yet.
    Expired(RefreshRecord),
    /// Exchanged before and not a retry: its successor was used, the retry's time passed, or
    /// it was exchanged for another successor (under another signing key). A copy.
    Reused(RefreshRecord),
}

/// What an exchange writes, in one transaction: the token's record, and its successor's when
/// it is not stored yet (never over a stored one).
#[derive(Debug)]
pub(crate) struct ExchangeWrites {
    pub token: Option<RefreshRecord>,
    pub successor: Option<RefreshRecord>,
    pub outcome: Exchanged,
}

impl RefreshExchange<'_> {
    /// The rule of an exchange, given the token's record and its successor's as stored; every
    /// store applies it with both records locked, so an exchange and its retries are decided
    /// one after the other on every server.
    pub(crate) fn decide(
        &self,
        token: RefreshRecord,
        successor: Option<&RefreshRecord>,
    ) -> ExchangeWrites {
        let new_successor = || RefreshRecord {
            token_hash: self.successor_hash.to_owned(),
            user_id: token.user_id.clone(),
            device_id: token.device_id.clone(),
            session: token.session,
            expires_at_ms: self.successor_expires_ms,
            used_at_ms: None,
            replaced_by: None,
        };
        let nothing = |outcome| ExchangeWrites {
            token: None,
            successor: None,
            outcome,
        };
        match token.used_at_ms {
            None if token.expires_at_ms <= self.now_ms => ExchangeWrites {
                token: Some(RefreshRecord {
                    used_at_ms: Some(self.now_ms),
                    ..token.clone()
                }),
                successor: None,
                outcome: Exchanged::Expired(token),
            },
            None => ExchangeWrites {
                token: Some(RefreshRecord {
                    used_at_ms: Some(self.now_ms),
                    replaced_by: Some(self.successor_hash.to_owned()),
                    ..token.clone()
                }),
                successor: successor.is_none().then(new_successor),
                outcome: Exchanged::Granted(token),
            },
            Some(used_at) => {
                let retry = self.now_ms.saturating_sub(used_at) <= self.retry_ms
                    && token
                        .replaced_by
                        .as_deref()
                        .is_none_or(|stored| stored == self.successor_hash)
                    && successor.is_none_or(|s| s.used_at_ms.is_none());
                if !retry {
                    nothing(Exchanged::Reused(token))
                } else if token.expires_at_ms <= self.now_ms {
                    nothing(Exchanged::Expired(token))
                } else {
                    ExchangeWrites {
                        // Spent without a successor named (signed out, or by an earlier
                        // version of the server): the successor is named now.
                        token: token.replaced_by.is_none().then(|| RefreshRecord {
                            replaced_by: Some(self.successor_hash.to_owned()),
                            ..token.clone()
                        }),
                        successor: successor.is_none().then(new_successor),
                        outcome: Exchanged::Granted(token),
                    }
                }
            }
        }
    }
}

/// Everything one administrative action writes (an import applied, one edit), stored together
/// or not at all: a roster of hundreds of chiefs is never left half-imported.
#[derive(Debug, Clone, Default)]
pub struct AdminBatch {
    pub divisions: Vec<Division>,
    pub assets: Vec<Asset>,
    /// Inserted; `Conflict` if an id or username is taken.
    pub new_users: Vec<UserRecord>,
    /// Replaced; `NotFound` if absent. Usernames stay as they are.
    pub changed_users: Vec<UserRecord>,
    /// Settings and records beside them (posts, setup codes, the audit of the change).
    pub meta: Vec<(String, Vec<u8>)>,
}

/// Where [`Store::export`] hands each record: (table, key, value).
pub type ExportSink<'a> = dyn FnMut(&[u8], &[u8], &[u8]) -> std::io::Result<()> + 'a;

/// Everything the server persists. Implementations must be safe to share between workers.
/// Documents, the change feed, the audit log, per-device sync records and the reference
/// lookups the hub needs are the sync hub's [`HubStore`]; the counters and locks every server
/// on one store shares are [`Shared`]; statistics facts kept between starts are [`FactStore`].
pub trait Store: HubStore + Shared + FactStore + Send + Sync + std::fmt::Debug {
    /// Inserts a new user; `Conflict` if the id or (case-insensitively) the username is taken.
    fn create_user(&self, record: &UserRecord) -> Result<(), StoreError>;
    /// Replaces an existing user; `NotFound` if absent, `Conflict` if a rename collides.
    fn update_user(&self, record: &UserRecord) -> Result<(), StoreError>;
    fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError>;
    /// Case-insensitive lookup.
    fn find_user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;
    /// All users, ordered by id.
    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;

    /// Starts a login session for (user, device): creates the binding with `new_actor_id` on the
    /// first login, otherwise keeps its actor id, increments the session and clears revocation.
    fn start_session(
        &self,
        user_id: &str,
        device_id: &str,
        new_actor_id: &str,
        now_ms: i64,
    ) -> Result<DeviceRecord, StoreError>;
    fn get_device(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<Option<DeviceRecord>, StoreError>;
    /// A user and their binding on one device, as every signed-in request checks them (the
    /// account active, the session the token names current). A store that can answers both
    /// in one read: one round trip a request instead of two.
    fn user_and_device(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<(Option<UserRecord>, Option<DeviceRecord>), StoreError> {
        Ok((
            self.get_user(user_id)?,
            self.get_device(user_id, device_id)?,
        ))
    }
    /// Marks the binding revoked (keeping the first revocation time); `None` if unknown.
    fn revoke_device(
        &self,
        user_id: &str,
        device_id: &str,
        now_ms: i64,
    ) -> Result<Option<DeviceRecord>, StoreError>;
    /// All bindings, ordered by (user id, device id).
    fn list_devices(&self) -> Result<Vec<DeviceRecord>, StoreError>;
    /// Inserts or replaces a binding as it is (actor id, session, times): a migration moves
    /// each phone's binding with it, so the phone's tokens and actor stay valid.
    fn put_device(&self, record: &DeviceRecord) -> Result<(), StoreError>;

    fn put_refresh_token(&self, record: &RefreshRecord) -> Result<(), StoreError>;
    /// Every refresh token kept (used ones too, so a reuse is still recognised), ordered by
    /// hash.
    fn list_refresh_tokens(&self) -> Result<Vec<RefreshRecord>, StoreError>;
    /// Atomically marks the token used and reports whether it was fresh, reused or unknown.
    fn consume_refresh_token(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<RefreshUse, StoreError>;
    /// Exchanges a refresh token for its successor by [`RefreshExchange::decide`], in one
    /// step with the token's and the successor's records locked on every server.
    fn exchange_refresh_token(
        &self,
        exchange: &RefreshExchange<'_>,
    ) -> Result<Exchanged, StoreError>;

    /// Inserts or replaces a division.
    fn put_division(&self, division: &Division) -> Result<(), StoreError>;
    fn get_division(&self, code: &DivisionCode) -> Result<Option<Division>, StoreError>;
    /// All divisions, ordered by code (so parents come before children).
    fn list_divisions(&self) -> Result<Vec<Division>, StoreError>;

    /// Inserts or replaces an asset.
    fn put_asset(&self, asset: &Asset) -> Result<(), StoreError>;
    fn get_asset(&self, id: &str) -> Result<Option<Asset>, StoreError>;
    /// All assets, ordered by id.
    fn list_assets(&self) -> Result<Vec<Asset>, StoreError>;

    /// Server settings and markers (reference-data overrides, the demo marker).
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Every `(key, value)` whose key starts with `prefix`, ordered by key.
    fn list_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Applies the batch in one transaction: all of it is stored, or nothing.
    fn apply_admin_batch(&self, batch: &AdminBatch) -> Result<(), StoreError>;

    /// How a document is kept: its snapshot and the incremental saves stored since (see
    /// `chunks`); `None` for an unknown document.
    fn document_footprint(&self, id: &str) -> Result<Option<Footprint>, StoreError>;

    /// Makes everything written so far durable (called again at shutdown).
    fn flush(&self) -> Result<(), StoreError>;

    /// Holds back every document save, on every server of the store, until the hold drops: a
    /// save under way when this is called has finished, with its feed position visible,
    /// before it returns. What is read from the documents while it is held stays true until
    /// it drops (photo collection decides and removes under it, so no record can gain a
    /// reference to a photo in between, whichever server saves the record). Hold it briefly:
    /// every sync that stores something waits. A store shared by several servers waits a
    /// bounded time for the saves under way and then gives up (`Unavailable`, nothing held):
    /// a save that never finishes (its server stopped in the middle) must not stop every
    /// server's saves behind the waiting hold.
    fn hold_saves(&self) -> Result<Hold<'_>, StoreError>;

    /// Hands every stored record to `sink` as (table, key, value), table by table in key order,
    /// for a backup (`crate::backup`), which calls it under [`Store::hold_saves`] so no document
    /// save is half in. Afterwards the feed head moves far on without documents, so every
    /// cursor handed out later is far past the copy's head (phones then notice a server
    /// restored from the copy). A store whose database has its own backup tools says so
    /// instead.
    fn export(&self, sink: &mut ExportSink<'_>) -> Result<(), StoreError> {
        let _ = sink;
        Err(StoreError::Backend(
            "this store is backed up with its database's own tools".into(),
        ))
    }

    /// Moves the change feed's head on to `head` without a document, so the next save takes
    /// position `head + 1`: a migration (`crate::migrate`) places every document at the
    /// position it had, and phones' cursors keep their meaning. Only while no server saves
    /// into the store; refused if `head` is below the current head.
    fn advance_feed(&self, head: u64) -> Result<(), StoreError> {
        let _ = head;
        Err(StoreError::Backend(
            "this store numbers its change feed itself".into(),
        ))
    }
}
