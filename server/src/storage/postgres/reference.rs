//! Users, divisions and assets kept in the process between calls, each list with the version of
//! its table it was read at.
//!
//! Every phone's reference data and every statistics report reads whole lists (a district's
//! hundreds of assets and divisions); reading and parsing them from the database for each
//! request cost more than the request itself. `reference_versions` holds one number per table,
//! moved on by a trigger in the transaction of every statement that writes the table, on
//! whichever server. A list is handed out from the process only after a read of its number
//! finds it where it was when the list was read; otherwise the list is read again, with its
//! number, in one statement (one snapshot). A write committed before the call began has moved
//! the number, so it is always seen; one not yet committed is seen by neither.

use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use sync_core::model::{Asset, Division};

use super::{backend, decode, PostgresStore};
use crate::storage::{StoreError, UserRecord};

/// One list as read, with its table's version then.
type Slot<T> = Mutex<Option<(i64, Arc<Vec<T>>)>>;

#[derive(Debug, Default)]
pub(super) struct Cache {
    users: Slot<UserRecord>,
    divisions: Slot<Division>,
    assets: Slot<Asset>,
}

impl Cache {
    /// Forgets every list (the database went back in time, see `PostgresStore::epoch`).
    pub(super) fn clear(&self) {
        *self.users.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.divisions.lock().unwrap_or_else(|p| p.into_inner()) = None;
        *self.assets.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// A record kept in a versioned table.
pub(super) trait Listed: DeserializeOwned + Clone + Send + Sync + 'static {
    /// The table's name in `reference_versions`.
    const TABLE: &'static str;
    /// Every record with the table's version, in key order: the version is in every row, and
    /// in the one row of an empty table.
    const READ: &'static str;
    fn slot(cache: &Cache) -> &Slot<Self>;
}

impl Listed for UserRecord {
    const TABLE: &'static str = "users";
    const READ: &'static str = "SELECT v.version, t.id, t.record
        FROM reference_versions v LEFT JOIN users t ON true
        WHERE v.name = 'users' ORDER BY t.id";
    fn slot(cache: &Cache) -> &Slot<Self> {
        &cache.users
    }
}

impl Listed for Division {
    const TABLE: &'static str = "divisions";
    const READ: &'static str = "SELECT v.version, t.code, t.record
        FROM reference_versions v LEFT JOIN divisions t ON true
        WHERE v.name = 'divisions' ORDER BY t.code";
    fn slot(cache: &Cache) -> &Slot<Self> {
        &cache.divisions
    }
}

impl Listed for Asset {
    const TABLE: &'static str = "assets";
    const READ: &'static str = "SELECT v.version, t.id, t.record
        FROM reference_versions v LEFT JOIN assets t ON true
        WHERE v.name = 'assets' ORDER BY t.id";
    fn slot(cache: &Cache) -> &Slot<Self> {
        &cache.assets
    }
}

/// Locks every version row, in one order, before a transaction that writes several of the
/// tables: its triggers then wait for nothing, and two such transactions, or one and a
/// single-statement write, never wait for each other's rows crosswise.
pub(super) const LOCK_VERSIONS: &str =
    "SELECT version FROM reference_versions ORDER BY name FOR UPDATE";

impl PostgresStore {
    /// Every record of `T`'s table, in key order: from the process when the table's version is
    /// the one it was read at, else read again.
    pub(super) fn reference_list<T: Listed>(&self) -> Result<Vec<T>, StoreError> {
        let slot = T::slot(&self.reference);
        let held = slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (version, list) = self.run(async {
            let client = self.client().await?;
            // The version, and the start of the database server it is read from: a version
            // read after a crash took writes back may name another list than the one kept.
            let now = client
                .query_opt(
                    "SELECT version, pg_postmaster_start_time()::text
                     FROM reference_versions WHERE name = $1",
                    &[&T::TABLE],
                )
                .await
                .map_err(backend)?;
            let same = now
                .as_ref()
                .is_some_and(|row| self.same_database(row.get::<_, &str>(1)));
            if let (true, Some((version, list)), Some(now)) = (same, &held, &now) {
                if now.get::<_, i64>(0) == *version {
                    return Ok::<_, StoreError>((*version, Arc::clone(list)));
                }
            }
            let rows = client.query(T::READ, &[]).await.map_err(backend)?;
            let version: i64 = match rows.first() {
                Some(row) => row.get(0),
                None => {
                    return Err(StoreError::Backend(format!(
                        "no version of {} is kept",
                        T::TABLE
                    )))
                }
            };
            let mut list = Vec::with_capacity(rows.len());
            for row in &rows {
                let Some(key) = row.get::<_, Option<String>>(1) else {
                    continue;
                };
                list.push(decode(&key, row, 2)?);
            }
            Ok((version, Arc::new(list)))
        })?;
        let mut kept = slot.lock().unwrap_or_else(|p| p.into_inner());
        // Another thread may have read a later version meanwhile: keep the later one (the
        // caches were forgotten if the database went back in time since).
        if kept.as_ref().is_none_or(|(v, _)| *v < version) {
            *kept = Some((version, Arc::clone(&list)));
        }
        Ok(list.as_ref().clone())
    }
}
