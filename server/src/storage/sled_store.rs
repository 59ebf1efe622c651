//! The sled backend of [`Store`]: one tree per record type, JSON values, secondary indexes kept
//! in the same transaction as the records they index, and a flush before every mutating call
//! returns.
//!
//! Keys: users by id, `usernames` by lower-cased username → user id, devices by
//! `user_id \0 device_id`, refresh tokens by hash, divisions by code, assets by id. Documents,
//! the change feed and per-device sync records are in `sled_documents`.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::{Transactional, Tree};
use sync_core::model::{Asset, Division, DivisionCode, Role};

use super::listed::Listed;
use super::{
    AdminBatch, DeviceRecord, Exchanged, RefreshExchange, RefreshRecord, RefreshUse, Store,
    StoreError, UserRecord,
};

#[derive(Debug, Clone)]
pub struct SledStore {
    pub(super) db: sled::Db,
    users: Tree,
    usernames: Tree,
    devices: Tree,
    refresh: Tree,
    divisions: Tree,
    assets: Tree,
    pub(super) meta: Tree,
    pub(super) doc_meta: Tree,
    pub(super) doc_bytes: Tree,
    pub(super) doc_seq: Tree,
    /// The incremental saves since each document's snapshot (see `chunks`).
    pub(super) doc_changes: Tree,
    pub(super) audit: Tree,
    pub(super) device_docs: Tree,
    pub(super) device_scope: Tree,
    pub(super) device_synced: Tree,
    pub(super) sync_states: Tree,
    /// Statistics facts and their mark (see `sled_facts`).
    pub(super) stats_facts: Tree,
    /// Serializes feed positions (see `sled_documents`).
    pub(super) feed_lock: Arc<Mutex<()>>,
    /// Which devices' syncs are being answered: one process opens a sled store, so its
    /// claims live in memory (`DeviceLedger::claim_device`).
    pub(super) device_claims: Arc<sync_core::hub::DeviceClaims>,
    /// Divisions and assets as last listed (see `listed`).
    divisions_listed: Arc<Listed<Division>>,
    assets_listed: Arc<Listed<Asset>>,
    /// The departments active handlers work for, as last listed: every assignment checks its
    /// target against them, and an office assigns a district's problems in one sync.
    departments_listed: Arc<Listed<String>>,
    /// Every account as last listed: statistics and the overview list them on each overview
    /// sync (a district's thousand chiefs), and they change only with an account's write.
    users_listed: Arc<Listed<UserRecord>>,
    /// Every document's routing facts and feed position, in memory (see `doc_index`).
    pub(super) index: Arc<super::doc_index::DocIndex>,
    /// Sign-in failures, photo bytes and job locks: in memory, one process owns the database.
    shared: Arc<super::LocalShared>,
}

impl SledStore {
    /// The departments active handlers work for (kept parsed between user writes).
    pub(super) fn active_departments(&self) -> Result<Vec<String>, StoreError> {
        self.departments_listed.get_or(|| {
            let mut departments: Vec<String> = list_json::<UserRecord>(&self.users)?
                .into_iter()
                .filter(|r| r.user.active)
                .filter_map(|r| match r.user.role {
                    Role::Handler { department } => Some(department),
                    _ => None,
                })
                .collect();
            departments.sort();
            departments.dedup();
            Ok(departments)
        })
    }

    /// Opens (or creates) the database in `dir`. Fails if another process holds it.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let db = sled::open(dir).map_err(backend)?;
        let tree = |name: &str| db.open_tree(name).map_err(backend);
        let (meta, doc_meta, doc_seq) = (tree("meta")?, tree("doc_meta")?, tree("doc_seq")?);
        let index = Self::read_doc_index(&doc_meta, &doc_seq, &meta).map_err(backend)?;
        Ok(Self {
            users: tree("users")?,
            usernames: tree("usernames")?,
            devices: tree("devices")?,
            refresh: tree("refresh_tokens")?,
            divisions: tree("divisions")?,
            assets: tree("assets")?,
            meta,
            doc_meta,
            doc_bytes: tree("doc_bytes")?,
            doc_seq,
            doc_changes: tree("doc_changes")?,
            audit: tree("audit")?,
            device_docs: tree("device_docs")?,
            device_scope: tree("device_scope")?,
            device_synced: tree("device_synced")?,
            sync_states: tree("sync_states")?,
            stats_facts: tree("stats_facts")?,
            feed_lock: Arc::new(Mutex::new(())),
            device_claims: Arc::default(),
            divisions_listed: Arc::default(),
            assets_listed: Arc::default(),
            departments_listed: Arc::default(),
            users_listed: Arc::default(),
            index: Arc::new(index),
            shared: Arc::default(),
            db,
        })
    }

    fn durable(&self) -> Result<(), StoreError> {
        self.db.flush().map(drop).map_err(backend)
    }
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("encode: {e}")))
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        detail: e.to_string(),
    })
}

fn get_json<T: DeserializeOwned>(tree: &Tree, key: &[u8]) -> Result<Option<T>, StoreError> {
    match tree.get(key).map_err(backend)? {
        Some(bytes) => decode(key, &bytes).map(Some),
        None => Ok(None),
    }
}

fn list_json<T: DeserializeOwned>(tree: &Tree) -> Result<Vec<T>, StoreError> {
    tree.iter()
        .map(|item| {
            let (key, value) = item.map_err(backend)?;
            decode(&key, &value)
        })
        .collect()
}

fn device_key(user_id: &str, device_id: &str) -> Vec<u8> {
    [user_id.as_bytes(), b"\0", device_id.as_bytes()].concat()
}

fn username_key(username: &str) -> Vec<u8> {
    username.to_lowercase().into_bytes()
}

/// Reads a JSON value inside a transaction, aborting with `Corrupt` if it does not decode.
fn tx_get<T: DeserializeOwned>(
    tx: &TransactionalTree,
    key: &[u8],
) -> Result<Option<T>, ConflictableTransactionError<StoreError>> {
    match tx.get(key)? {
        Some(bytes) => decode(key, &bytes)
            .map(Some)
            .map_err(ConflictableTransactionError::Abort),
        None => Ok(None),
    }
}

fn tx_encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ConflictableTransactionError<StoreError>> {
    encode(value).map_err(ConflictableTransactionError::Abort)
}

fn tx_result<T>(result: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    result.map_err(|err| match err {
        TransactionError::Abort(err) => err,
        TransactionError::Storage(err) => backend(err),
    })
}

fn abort<T>(err: StoreError) -> Result<T, ConflictableTransactionError<StoreError>> {
    Err(ConflictableTransactionError::Abort(err))
}

impl super::Shared for SledStore {
    fn login_failures(&self, keys: &[&str], since_ms: i64) -> Result<Vec<Vec<i64>>, StoreError> {
        self.shared.login_failures(keys, since_ms)
    }

    fn record_login_failure(
        &self,
        keys: &[&str],
        tag: &str,
        at_ms: i64,
        forget_before_ms: i64,
    ) -> Result<(), StoreError> {
        self.shared
            .record_login_failure(keys, tag, at_ms, forget_before_ms)
    }

    fn forgive_login_failures(&self, key: &str, tag: Option<&str>) -> Result<(), StoreError> {
        self.shared.forgive_login_failures(key, tag)
    }

    fn charge_upload(
        &self,
        user: &str,
        day: i64,
        bytes: u64,
        limit: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.shared.charge_upload(user, day, bytes, limit)
    }

    fn uploaded(&self, user: &str, day: i64) -> Result<u64, StoreError> {
        self.shared.uploaded(user, day)
    }

    fn exclusively(&self, name: &str, work: &mut dyn FnMut()) -> Result<bool, StoreError> {
        self.shared.exclusively(name, work)
    }

    fn hold(&self, name: &str) -> Result<super::Hold<'_>, StoreError> {
        self.shared.hold(name)
    }

    fn count_event(
        &self,
        key: &str,
        limit: usize,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<Result<(), i64>, StoreError> {
        self.shared.count_event(key, limit, window_ms, now_ms)
    }

    fn events_below(
        &self,
        key: &str,
        limit: usize,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<Result<(), i64>, StoreError> {
        self.shared.events_below(key, limit, window_ms, now_ms)
    }

    fn kept(&self, key: &str, now_ms: i64) -> Result<Option<super::Kept>, StoreError> {
        self.shared.kept(key, now_ms)
    }

    fn keep(
        &self,
        key: &str,
        version: Option<i64>,
        value: &[u8],
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.shared.keep(key, version, value, expires_ms, now_ms)
    }

    fn take_kept(&self, key: &str, now_ms: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.shared.take_kept(key, now_ms)
    }
}

impl Store for SledStore {
    fn create_user(&self, record: &UserRecord) -> Result<(), StoreError> {
        let id = record.user.id.as_bytes();
        let name = username_key(&record.user.username);
        let value = encode(record)?;
        tx_result(
            (&self.users, &self.usernames).transaction(|(users, usernames)| {
                if users.get(id)?.is_some() {
                    return abort(StoreError::Conflict(format!("user id {}", record.user.id)));
                }
                if usernames.get(&name)?.is_some() {
                    return abort(StoreError::Conflict(format!(
                        "username {}",
                        record.user.username
                    )));
                }
                users.insert(id, value.as_slice())?;
                usernames.insert(name.as_slice(), id)?;
                Ok(())
            }),
        )?;
        self.departments_listed.changed();
        self.users_listed.changed();
        self.durable()
    }

    fn update_user(&self, record: &UserRecord) -> Result<(), StoreError> {
        let id = record.user.id.as_bytes();
        let name = username_key(&record.user.username);
        let value = encode(record)?;
        tx_result(
            (&self.users, &self.usernames).transaction(|(users, usernames)| {
                let Some(old) = tx_get::<UserRecord>(users, id)? else {
                    return abort(StoreError::NotFound(format!("user {}", record.user.id)));
                };
                let old_name = username_key(&old.user.username);
                if old_name != name {
                    if usernames.get(&name)?.is_some() {
                        return abort(StoreError::Conflict(format!(
                            "username {}",
                            record.user.username
                        )));
                    }
                    usernames.remove(old_name.as_slice())?;
                    usernames.insert(name.as_slice(), id)?;
                }
                users.insert(id, value.as_slice())?;
                Ok(())
            }),
        )?;
        self.departments_listed.changed();
        self.users_listed.changed();
        self.durable()
    }

    fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        get_json(&self.users, id.as_bytes())
    }

    fn find_user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        match self
            .usernames
            .get(username_key(username))
            .map_err(backend)?
        {
            Some(id) => get_json(&self.users, &id),
            None => Ok(None),
        }
    }

    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.users_listed.get_or(|| list_json(&self.users))
    }

    fn start_session(
        &self,
        user_id: &str,
        device_id: &str,
        new_actor_id: &str,
        now_ms: i64,
    ) -> Result<DeviceRecord, StoreError> {
        let key = device_key(user_id, device_id);
        let record = tx_result(self.devices.transaction(|devices| {
            let record = match tx_get::<DeviceRecord>(devices, &key)? {
                Some(old) => DeviceRecord {
                    session: old.session + 1,
                    last_login_ms: now_ms,
                    revoked_at_ms: None,
                    ..old
                },
                None => DeviceRecord {
                    user_id: user_id.to_owned(),
                    device_id: device_id.to_owned(),
                    actor_id: new_actor_id.to_owned(),
                    session: 1,
                    created_at_ms: now_ms,
                    last_login_ms: now_ms,
                    revoked_at_ms: None,
                },
            };
            devices.insert(key.as_slice(), tx_encode(&record)?)?;
            Ok(record)
        }))?;
        self.durable()?;
        Ok(record)
    }

    fn get_device(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        get_json(&self.devices, &device_key(user_id, device_id))
    }

    fn revoke_device(
        &self,
        user_id: &str,
        device_id: &str,
        now_ms: i64,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        let key = device_key(user_id, device_id);
        let record = tx_result(self.devices.transaction(|devices| {
            let Some(old) = tx_get::<DeviceRecord>(devices, &key)? else {
                return Ok(None);
            };
            let record = DeviceRecord {
                revoked_at_ms: old.revoked_at_ms.or(Some(now_ms)),
                ..old
            };
            devices.insert(key.as_slice(), tx_encode(&record)?)?;
            Ok(Some(record))
        }))?;
        self.durable()?;
        Ok(record)
    }

    fn list_devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        list_json(&self.devices)
    }

    fn put_device(&self, record: &DeviceRecord) -> Result<(), StoreError> {
        self.devices
            .insert(
                device_key(&record.user_id, &record.device_id),
                encode(record)?,
            )
            .map_err(backend)?;
        self.durable()
    }

    fn put_refresh_token(&self, record: &RefreshRecord) -> Result<(), StoreError> {
        self.refresh
            .insert(record.token_hash.as_bytes(), encode(record)?)
            .map_err(backend)?;
        self.durable()
    }

    fn list_refresh_tokens(&self) -> Result<Vec<RefreshRecord>, StoreError> {
        list_json(&self.refresh)
    }

    fn consume_refresh_token(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<RefreshUse, StoreError> {
        let key = token_hash.as_bytes();
        let outcome = tx_result(self.refresh.transaction(|refresh| {
            let Some(record) = tx_get::<RefreshRecord>(refresh, key)? else {
                return Ok(RefreshUse::Unknown);
            };
            if record.used_at_ms.is_some() {
                return Ok(RefreshUse::Reused(record));
            }
            let used = RefreshRecord {
                used_at_ms: Some(now_ms),
                ..record.clone()
            };
            refresh.insert(key, tx_encode(&used)?)?;
            Ok(RefreshUse::Fresh(record))
        }))?;
        self.durable()?;
        Ok(outcome)
    }

    /// Both records in one sled transaction: two exchanges of one token, or an exchange and a
    /// retry, are decided one after the other.
    fn exchange_refresh_token(
        &self,
        exchange: &RefreshExchange<'_>,
    ) -> Result<Exchanged, StoreError> {
        let (key, next) = (
            exchange.token_hash.as_bytes(),
            exchange.successor_hash.as_bytes(),
        );
        let outcome = tx_result(self.refresh.transaction(|refresh| {
            let Some(token) = tx_get::<RefreshRecord>(refresh, key)? else {
                return Ok(Exchanged::Unknown);
            };
            let successor = tx_get::<RefreshRecord>(refresh, next)?;
            let writes = exchange.decide(token, successor.as_ref());
            if let Some(token) = &writes.token {
                refresh.insert(key, tx_encode(token)?)?;
            }
            if let Some(successor) = &writes.successor {
                refresh.insert(next, tx_encode(successor)?)?;
            }
            Ok(writes.outcome)
        }))?;
        self.durable()?;
        Ok(outcome)
    }

    fn put_division(&self, division: &Division) -> Result<(), StoreError> {
        self.divisions
            .insert(division.code.as_str().as_bytes(), encode(division)?)
            .map_err(backend)?;
        self.divisions_listed.changed();
        self.durable()
    }

    fn get_division(&self, code: &DivisionCode) -> Result<Option<Division>, StoreError> {
        get_json(&self.divisions, code.as_str().as_bytes())
    }

    fn list_divisions(&self) -> Result<Vec<Division>, StoreError> {
        self.divisions_listed.get_or(|| list_json(&self.divisions))
    }

    fn put_asset(&self, asset: &Asset) -> Result<(), StoreError> {
        self.assets
            .insert(asset.id.as_bytes(), encode(asset)?)
            .map_err(backend)?;
        self.assets_listed.changed();
        self.durable()
    }

    fn get_asset(&self, id: &str) -> Result<Option<Asset>, StoreError> {
        get_json(&self.assets, id.as_bytes())
    }

    fn list_assets(&self) -> Result<Vec<Asset>, StoreError> {
        self.assets_listed.get_or(|| list_json(&self.assets))
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .meta
            .get(key.as_bytes())
            .map_err(backend)?
            .map(|v| v.to_vec()))
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(key.as_bytes(), value).map_err(backend)?;
        self.durable()
    }

    /// The feed head kept beside the settings is the feed's, not a setting: left out.
    fn list_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.meta
            .scan_prefix(prefix.as_bytes())
            .filter(|item| !matches!(item, Ok((k, _)) if k.as_ref() == super::sled_documents::FEED_HEAD))
            .map(|item| {
                let (k, v) = item.map_err(backend)?;
                Ok((String::from_utf8_lossy(&k).into_owned(), v.to_vec()))
            })
            .collect()
    }

    fn apply_admin_batch(&self, batch: &AdminBatch) -> Result<(), StoreError> {
        let encoded = |records: &[UserRecord]| -> Result<Vec<_>, StoreError> {
            records
                .iter()
                .map(|r| {
                    Ok((
                        r.user.id.clone(),
                        username_key(&r.user.username),
                        encode(r)?,
                    ))
                })
                .collect()
        };
        let (new_users, changed_users) =
            (encoded(&batch.new_users)?, encoded(&batch.changed_users)?);
        let divisions: Vec<_> = batch
            .divisions
            .iter()
            .map(|d| Ok((d.code.as_str().to_owned(), encode(d)?)))
            .collect::<Result<_, StoreError>>()?;
        let assets: Vec<_> = batch
            .assets
            .iter()
            .map(|a| Ok((a.id.clone(), encode(a)?)))
            .collect::<Result<_, StoreError>>()?;
        tx_result(
            (
                &self.users,
                &self.usernames,
                &self.divisions,
                &self.assets,
                &self.meta,
            )
                .transaction(|(users, usernames, div_tree, asset_tree, meta)| {
                    for (id, name, value) in &new_users {
                        if users.get(id.as_bytes())?.is_some() {
                            return abort(StoreError::Conflict(format!("user id {id}")));
                        }
                        if usernames.get(name)?.is_some() {
                            return abort(StoreError::Conflict(format!(
                                "username {}",
                                String::from_utf8_lossy(name)
                            )));
                        }
                        users.insert(id.as_bytes(), value.as_slice())?;
                        usernames.insert(name.as_slice(), id.as_bytes())?;
                    }
                    for (id, name, value) in &changed_users {
                        let Some(old) = tx_get::<UserRecord>(users, id.as_bytes())? else {
                            return abort(StoreError::NotFound(format!("user {id}")));
                        };
                        if username_key(&old.user.username) != *name {
                            return abort(StoreError::Conflict(format!("username of {id}")));
                        }
                        users.insert(id.as_bytes(), value.as_slice())?;
                    }
                    for (code, value) in &divisions {
                        div_tree.insert(code.as_bytes(), value.as_slice())?;
                    }
                    for (id, value) in &assets {
                        asset_tree.insert(id.as_bytes(), value.as_slice())?;
                    }
                    for (key, value) in &batch.meta {
                        meta.insert(key.as_bytes(), value.as_slice())?;
                    }
                    Ok(())
                }),
        )?;
        self.divisions_listed.changed();
        self.assets_listed.changed();
        self.departments_listed.changed();
        self.users_listed.changed();
        self.durable()
    }

    fn document_footprint(&self, id: &str) -> Result<Option<super::Footprint>, StoreError> {
        self.footprint(id).map_err(backend)
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.durable()
    }

    /// The lock that hands out feed positions: `save_document` holds it from its transaction
    /// until the in-memory index has the save.
    fn hold_saves(&self) -> Result<super::Hold<'_>, StoreError> {
        Ok(super::Hold::new(
            self.feed_lock
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()),
        ))
    }

    /// Every tree sled holds, its own bookkeeping tree included, by name; then the live feed
    /// head moves far on (see `skip_feed_position`).
    fn export(&self, sink: &mut super::ExportSink<'_>) -> Result<(), StoreError> {
        let mut names = self.db.tree_names();
        names.sort();
        for name in names {
            let tree = self.db.open_tree(&name).map_err(backend)?;
            for entry in tree.iter() {
                let (key, value) = entry.map_err(backend)?;
                sink(&name, &key, &value).map_err(backend)?;
            }
        }
        self.skip_feed_position().map_err(backend)?;
        Ok(())
    }

    fn advance_feed(&self, head: u64) -> Result<(), StoreError> {
        self.advance_feed_to(head).map_err(backend)
    }
}

/// How many records of each kind a sled store holds, counted from every tree it has (the walk
/// `Store::export` makes), not through the listings: what a migration must have moved. A tree
/// this count does not know is refused, so a kind of record added later cannot be left
/// behind unnoticed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Census {
    pub users: u64,
    pub devices: u64,
    pub refresh_tokens: u64,
    pub divisions: u64,
    pub assets: u64,
    /// Settings and the records beside them (the feed head aside).
    pub settings: u64,
    pub documents: u64,
    pub audit_entries: u64,
    pub device_docs: u64,
    pub device_scopes: u64,
    pub device_synced: u64,
    pub sync_states: u64,
}

impl SledStore {
    /// Counts every tree (see [`Census`]); `Corrupt` names a tree it does not know, or trees
    /// that disagree (routing facts without bytes, usernames without accounts).
    pub fn census(&self) -> Result<Census, StoreError> {
        let mut census = Census::default();
        let (mut doc_bytes, mut doc_seq, mut usernames) = (0, 0, 0);
        let mut names = self.db.tree_names();
        names.sort();
        for name in names {
            let tree = self.db.open_tree(&name).map_err(backend)?;
            let entries = tree.len() as u64;
            let count = match name.as_ref() {
                b"users" => &mut census.users,
                b"usernames" => &mut usernames,
                b"devices" => &mut census.devices,
                b"refresh_tokens" => &mut census.refresh_tokens,
                b"divisions" => &mut census.divisions,
                b"assets" => &mut census.assets,
                b"meta" => {
                    let head = tree
                        .contains_key(super::sled_documents::FEED_HEAD)
                        .map_err(backend)?;
                    census.settings = entries - u64::from(head);
                    continue;
                }
                b"doc_meta" => &mut census.documents,
                b"doc_bytes" => &mut doc_bytes,
                b"doc_seq" => &mut doc_seq,
                b"audit" => &mut census.audit_entries,
                b"device_docs" => &mut census.device_docs,
                b"device_scope" => &mut census.device_scopes,
                b"device_synced" => &mut census.device_synced,
                b"sync_states" => &mut census.sync_states,
                // A document's incremental saves since its snapshot: part of the documents
                // counted above, read back whole through `DocumentStore::document`.
                b"doc_changes" => continue,
                // Statistics facts, worked out from the documents: a server on the target
                // works them out again at its first start, as after a restore.
                b"stats_facts" => continue,
                // sled's own tree: nothing of the server's is kept there.
                b"__sled__default" if entries == 0 => continue,
                other => {
                    return Err(StoreError::Corrupt {
                        key: String::from_utf8_lossy(other).into_owned(),
                        detail: format!(
                            "a table of {entries} records that this server does not know how \
                             to move"
                        ),
                    })
                }
            };
            *count = entries;
        }
        let disagree = |what: &str| StoreError::Corrupt {
            key: what.to_owned(),
            detail: "its tables disagree; run `chiefsync verify`".into(),
        };
        if doc_bytes != census.documents || doc_seq != census.documents {
            return Err(disagree("documents"));
        }
        if usernames != census.users {
            return Err(disagree("usernames"));
        }
        Ok(census)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::SledStore;
    use crate::storage::conformance::Harness;
    use crate::storage::Store;

    /// A sled database in a temporary directory that can be closed and opened again.
    struct SledHarness {
        dir: tempfile::TempDir,
    }

    impl SledHarness {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().expect("temp dir"),
            }
        }
    }

    impl Harness for SledHarness {
        /// sled releases its file lock from its flusher thread after the last handle drops, so
        /// a reopen right after a close may find the lock still held for a moment.
        fn open(&self) -> Arc<dyn Store> {
            let mut tries = 0;
            loop {
                match SledStore::open(self.dir.path()) {
                    Ok(store) => return Arc::new(store),
                    Err(err)
                        if tries < 50 && err.to_string().contains("could not acquire lock") =>
                    {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(err) => panic!("open sled: {err}"),
                }
            }
        }
    }

    store_conformance_tests!(SledHarness::new());

    /// A byte flipped in a stored incremental save is reported as damage, never loaded.
    #[test]
    fn a_damaged_incremental_save_is_reported() {
        use crate::storage::conformance::{add_note, older_document};
        use sync_core::doc::DocKind;
        use sync_core::hub::testing::doc_meta;
        use sync_core::hub::{DocumentStore, HubError};

        let h = SledHarness::new();
        let meta = doc_meta("p1", DocKind::Patrol);
        {
            let store = Harness::open(&h);
            let mut doc = older_document();
            store.save_document("p1", &meta, &doc.save(), &[]).unwrap();
            let read = store.document("p1").unwrap().map(|s| s.version);
            let added = add_note(&mut doc, 1);
            store
                .save_merged("p1", &meta, read, Some(&added), &mut || doc.save(), &[])
                .unwrap();
            assert_eq!(
                store
                    .document_footprint("p1")
                    .unwrap()
                    .unwrap()
                    .incremental_saves,
                1
            );
            // Sized as a read joins the snapshot and the incremental save.
            let joined = store.document("p1").unwrap().unwrap().bytes.len();
            assert_eq!(store.document_sizes(&["p1"]).unwrap()["p1"], joined);
        }
        {
            let mut tries = 0;
            let db = loop {
                match sled::open(h.dir.path()) {
                    Ok(db) => break db,
                    Err(_) if tries < 50 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(20));
                    }
                    Err(err) => panic!("{err}"),
                }
            };
            let changes = db.open_tree("doc_changes").unwrap();
            let (key, value) = changes.iter().next().unwrap().unwrap();
            let mut value = value.to_vec();
            let last = value.len() - 1;
            value[last] ^= 0x10;
            changes.insert(key, value).unwrap();
            db.flush().unwrap();
        }
        let store = Harness::open(&h);
        let read = store.document("p1");
        assert!(
            matches!(&read, Err(HubError::Damaged { id, .. }) if id == "p1"),
            "{read:?}"
        );
    }

    /// A feed position that does not read is left out of positions read together, and the
    /// others are read: one damaged document must not fail the answer that reads it with them.
    #[test]
    fn a_damaged_position_does_not_fail_the_positions_read_with_it() {
        use sync_core::doc::DocKind;
        use sync_core::hub::testing::doc_meta;
        use sync_core::hub::{DocumentStore, HubError};

        let h = SledHarness::new();
        let store = SledStore::open(h.dir.path()).unwrap();
        for id in ["p1", "p2"] {
            store
                .save_document(id, &doc_meta(id, DocKind::Patrol), b"saved", &[])
                .unwrap();
        }
        store.doc_seq.insert("p1", &[1, 2, 3]).unwrap();
        assert!(matches!(
            store.document_seq("p1"),
            Err(HubError::Damaged { .. })
        ));
        let seqs = store.document_seqs(&["p1", "p2"]).unwrap();
        assert_eq!(
            seqs.into_iter().collect::<Vec<_>>(),
            vec![("p2".to_owned(), 2)]
        );
    }

    /// A store written before documents kept incremental saves (no `doc_changes` tree, each
    /// document's full save in `doc_bytes`) opens, reads as it is, and takes incremental saves.
    #[test]
    fn a_store_made_before_incremental_saves_reads_as_it_is() {
        use crate::storage::conformance::{add_note, older_document};
        use sync_core::doc::DocKind;
        use sync_core::hub::testing::doc_meta;
        use sync_core::hub::DocumentStore;

        let h = SledHarness::new();
        let mut doc = older_document();
        let saved = doc.save();
        let meta = doc_meta("p1", DocKind::Patrol);
        {
            let db = sled::open(h.dir.path()).unwrap();
            let tree = |name: &str| db.open_tree(name).unwrap();
            tree("doc_meta")
                .insert("p1", serde_json::to_vec(&meta).unwrap())
                .unwrap();
            let value = [&crc32fast::hash(&saved).to_be_bytes()[..], &saved].concat();
            tree("doc_bytes").insert("p1", value).unwrap();
            tree("doc_seq").insert("p1", &1u64.to_be_bytes()).unwrap();
            tree("meta")
                .insert("feed.head", &1u64.to_be_bytes())
                .unwrap();
            db.flush().unwrap();
        }
        let store = Harness::open(&h);
        let read = store.document("p1").unwrap().expect("the older document");
        assert_eq!(read.bytes, saved, "read as it is");
        let added = add_note(&mut doc, 1);
        assert_eq!(
            store
                .save_merged(
                    "p1",
                    &meta,
                    Some(read.version),
                    Some(&added),
                    &mut || doc.save(),
                    &[]
                )
                .unwrap(),
            2
        );
        let kept = store.document_footprint("p1").unwrap().unwrap();
        assert_eq!(
            (kept.snapshot_bytes, kept.incremental_saves),
            (saved.len(), 1)
        );
        let mut loaded =
            automerge::AutoCommit::load(&store.document("p1").unwrap().unwrap().bytes).unwrap();
        assert_eq!(loaded.get_heads(), doc.get_heads());
    }

    /// The sync hub's part of the store, through the suite every hub store passes. Reference
    /// data goes in the way the administration writes it.
    impl sync_core::hub::testing::Harness for SledHarness {
        type Store = Arc<dyn Store>;

        fn open(&self) -> Self::Store {
            Harness::open(self)
        }

        fn seed(&self, store: &Self::Store, reference: &sync_core::hub::testing::Reference) {
            for asset in &reference.assets {
                store.put_asset(asset).expect("asset");
            }
            let categories = serde_json::to_vec(&reference.categories).expect("categories");
            store
                .put_meta(crate::reference::CATEGORIES_KEY, &categories)
                .expect("categories");
            for user in &reference.users {
                store
                    .create_user(&crate::storage::UserRecord {
                        user: user.clone(),
                        password_hash: None,
                        created_at_ms: 1,
                        updated_at_ms: 1,
                    })
                    .expect("user");
            }
        }
    }

    mod hub {
        use super::SledHarness;

        sync_core::hub_store_conformance!(SledHarness::new());
    }
}
