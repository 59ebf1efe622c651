//! The PostgreSQL backend of [`Store`] (`chiefsync --database postgres://…`): several server
//! processes on one database serve the same phones.
//!
//! Records are JSON (`jsonb`) beside the columns they are looked up and ordered by; the schema
//! is in `schema`, applied when the store opens. Documents, the change feed and the device
//! ledger are in `documents`.
//!
//! The traits are blocking and called from the server's blocking workers; the client is
//! asynchronous (tokio-postgres with a deadpool pool). The store keeps a small runtime of its
//! own that drives the connections; each call's statements are polled by the calling thread in
//! that runtime's context while the connections' tasks run on it, so it works from any thread,
//! inside the server's runtime or not.
//!
//! Every mutating call commits before it returns. The server's own records (accounts,
//! sessions, reference data) are durable at their commit (`synchronous_commit` on, its
//! default); the hub's document saves and device holdings are visible to every server at
//! their commit and durable at `durable` (or `flush`), once per request, as with sled (see
//! `HubStore::durable` in `documents`). Statements are prepared once per connection
//! (`cached`).
//!
//! Each process keeps two caches, and neither ever answers with less than the database held
//! when the call began, whichever server wrote it:
//!
//! - the routing facts of every document, by id and by feed position (`DocIndex`, as the sled
//!   store keeps them), caught up from the shared feed before each read: the documents saved
//!   past the position the process holds, up to the feed's settled head (`documents`);
//! - the lists of users, divisions and assets, each kept with the version of its table it was
//!   read at; every write to the table moves the version on in its own transaction (a trigger),
//!   and a list is handed out only after a read of the version finds it unchanged
//!   (`reference`).

mod cached;
mod documents;
mod facts;
mod reference;
mod schema;
mod shared;

use std::future::Future;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sync_core::model::{Asset, Division, DivisionCode, Role};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Json;
use tokio_postgres::{NoTls, Row};

use super::doc_index::DocIndex;
use super::{AdminBatch, DeviceRecord, RefreshRecord, RefreshUse, Store, StoreError, UserRecord};

/// Connections the store opens at most to the database.
const POOL_SIZE: usize = 16;
/// The name of the store runtime's threads (see `PostgresStore::run`).
const RUNTIME_THREAD: &str = "postgres";

/// How long the database lets a connection of the store sit in an open transaction with
/// nothing sent before it ends the session (`idle_in_transaction_session_timeout`): a server
/// stopped in the middle of a save (frozen, its machine paused) no longer holds that
/// document's saves, the feed's head and `hold_saves` on every other server until its
/// connection dies. The save was not acknowledged and does not commit; the phone sends it
/// again. The store's own transactions send their statements one after another, never
/// pausing near this long. A database address that sets the parameter itself keeps its own.
pub(super) const IDLE_IN_TRANSACTION_LIMIT: std::time::Duration =
    std::time::Duration::from_secs(30);

/// The PostgreSQL store. Cheap to share behind an `Arc`; dropping it closes its connections.
pub struct PostgresStore {
    /// Drives the connections; shut down without waiting when the store drops.
    runtime: Option<tokio::runtime::Runtime>,
    pool: Pool,
    /// Saves in progress in this process, and the gate `hold_saves` closes.
    saves: SaveGate,
    /// The routing facts of every document, up to the feed position caught up to.
    index: DocIndex,
    /// Users, divisions and assets as last read, with their tables' versions.
    reference: reference::Cache,
    /// When the database server that the index and the lists were read from started
    /// (`pg_postmaster_start_time()`): a crash of it, a failover or a restore can take back
    /// saves and positions the caches hold, so both are read anew when it changes.
    epoch: std::sync::Mutex<Option<String>>,
}

impl PostgresStore {
    /// Notes the start of the database server a read came from; when it is not the one the
    /// caches were read from, forgets them (the index and the lists are read again in full)
    /// and says so.
    pub(super) fn same_database(&self, started: &str) -> bool {
        let mut epoch = self.epoch.lock().unwrap_or_else(|p| p.into_inner());
        if epoch.as_deref() == Some(started) {
            return true;
        }
        let known = epoch.is_some();
        *epoch = Some(started.to_owned());
        if known {
            self.forget_caches();
        }
        !known
    }

    /// Forgets the kept routing facts and lists: the next read reads them in full.
    pub(super) fn forget_caches(&self) {
        self.index.clear();
        self.reference.clear();
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("pool", &self.pool.status())
            .finish_non_exhaustive()
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            // Dropping a runtime waits for its tasks, which is refused inside another runtime
            // (the server's, at shutdown); the connections only need closing.
            runtime.shutdown_background();
        }
    }
}

/// Lets `hold_saves` hold back every document save of this process: a save passes the gate
/// (a mutex taken and released at once) and counts itself in flight until it has committed.
#[derive(Debug, Default)]
struct SaveGate {
    gate: Mutex<()>,
    in_flight: Mutex<usize>,
    landed: Condvar,
}

/// One save in flight; counted out when dropped, however the save ended.
struct InFlight<'a>(&'a SaveGate);

impl SaveGate {
    fn enter(&self) -> InFlight<'_> {
        drop(self.gate.lock().unwrap_or_else(|p| p.into_inner()));
        *self.in_flight.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        InFlight(self)
    }

    /// Closes the gate and waits until the saves past it have landed; `None`, the gate open
    /// again, when some are still in flight at `deadline` (one waiting on a lock another
    /// server holds): the saves at the gate wait no longer than that.
    fn hold_until(&self, deadline: std::time::Instant) -> Option<MutexGuard<'_, ()>> {
        let held = self.gate.lock().unwrap_or_else(|p| p.into_inner());
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        while *in_flight > 0 {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            in_flight = self
                .landed
                .wait_timeout(in_flight, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        Some(held)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.0.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        *in_flight -= 1;
        self.0.landed.notify_all();
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`) and
    /// brings its schema up to date.
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Backend(format!("database address: {e}")))?;
        Self::connect(config)
    }

    /// As [`Self::open`], from a parsed connection configuration.
    pub fn connect(mut config: tokio_postgres::Config) -> Result<Self, StoreError> {
        let options = config.get_options().unwrap_or_default();
        if !options.contains("idle_in_transaction_session_timeout") {
            let limit = format!(
                "-c idle_in_transaction_session_timeout={}",
                IDLE_IN_TRANSACTION_LIMIT.as_millis()
            );
            let options = if options.is_empty() {
                limit
            } else {
                format!("{options} {limit}")
            };
            config.options(&options);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(RUNTIME_THREAD)
            .enable_all()
            .build()
            .map_err(backend)?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = {
            let _enter = runtime.enter();
            Pool::builder(manager)
                .max_size(POOL_SIZE)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .wait_timeout(Some(std::time::Duration::from_secs(30)))
                .create_timeout(Some(std::time::Duration::from_secs(10)))
                .build()
                .map_err(backend)?
        };
        let store = Self {
            runtime: Some(runtime),
            pool,
            saves: SaveGate::default(),
            index: DocIndex::default(),
            reference: reference::Cache::default(),
            epoch: std::sync::Mutex::new(None),
        };
        store.run(async {
            let mut client = store.client().await?;
            schema::migrate(&mut client).await.map_err(backend)
        })?;
        Ok(store)
    }

    /// Runs `work` to its end while the caller waits. The connections' tasks run on the store's
    /// runtime only; `work` only talks to them (and sets the pool's timers), so the calling
    /// thread polls it itself, in the store runtime's context, and sleeps between polls. The
    /// caller may be inside another runtime (the server's, at start-up or seeding), where
    /// `Runtime::block_on` would refuse to run; starting a thread for every call instead was
    /// a large part of the server's CPU (BENCHMARKS.md, fifteenth session). A call made on one
    /// of the store runtime's own threads still gets a thread of its own, so it never waits on
    /// the thread that would answer it.
    fn run<T: Send>(&self, work: impl Future<Output = T> + Send) -> T {
        let runtime = self.runtime.as_ref().expect("runtime until drop");
        if std::thread::current().name() == Some(RUNTIME_THREAD) {
            return std::thread::scope(|scope| {
                std::thread::Builder::new()
                    .name("postgres-call".into())
                    .spawn_scoped(scope, || runtime.block_on(work))
                    .expect("a thread for the database call")
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            });
        }
        let _context = runtime.enter();
        // Outside tokio's budget: a caller on a worker of another runtime (an async handler)
        // has that task's budget, and once it is spent tokio defers every wake-up to that
        // runtime's next turn, which never comes while this thread waits here.
        wait_for(tokio::task::unconstrained(work))
    }

    async fn client(&self) -> Result<cached::Client, StoreError> {
        self.pool
            .get()
            .await
            .map(cached::Client)
            // No connection to be had (the database restarting or down): the server answers
            // 503 and the phone sends again; the pool connects afresh on a later call.
            .map_err(|e| StoreError::Unavailable(format!("database connection: {e}")))
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        sql: &str,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let client = self.client().await?;
        let row = client.query_opt(sql, &[&key]).await.map_err(backend)?;
        row.map(|row| decode(key, &row, 0)).transpose()
    }

    async fn list_json<T: DeserializeOwned>(&self, sql: &str) -> Result<Vec<T>, StoreError> {
        let client = self.client().await?;
        let rows = client.query(sql, &[]).await.map_err(backend)?;
        rows.iter()
            .map(|row| decode(&row.get::<_, String>(0), row, 1))
            .collect()
    }
}

pub(super) fn backend(err: impl std::fmt::Display + 'static) -> StoreError {
    if cannot_reach(&err) {
        StoreError::Unavailable(err.to_string())
    } else {
        StoreError::Backend(err.to_string())
    }
}

/// Whether a failure means the database cannot be reached for now rather than that it refused
/// the statement: the connection closed or broke (the database restarted, its machine went
/// away), or the database says it is shutting down, starting up or out of connections. The
/// transaction did not commit; the same request may succeed once the database is back, on a
/// connection the pool makes afresh (a closed one is never handed out again).
pub(super) fn cannot_reach(err: &(dyn std::any::Any + 'static)) -> bool {
    let Some(err) = err.downcast_ref::<tokio_postgres::Error>() else {
        return false;
    };
    if err.is_closed() {
        return true;
    }
    match err.code() {
        Some(code) => {
            let code = code.code();
            // 08: connection exception; 57P01-03: admin or crash shutdown, cannot connect
            // now; 53300: too many connections.
            code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
        }
        None => std::error::Error::source(err).is_some_and(|source| source.is::<std::io::Error>()),
    }
}

/// The JSON of a record as a `jsonb` parameter.
fn json<T: Serialize>(value: &T) -> Result<Json<serde_json::Value>, StoreError> {
    serde_json::to_value(value)
        .map(Json)
        .map_err(|e| StoreError::Backend(format!("encode: {e}")))
}

/// The record in column `index` of `row`; `Corrupt` (naming `key`) if it does not decode.
fn decode<T: DeserializeOwned>(key: &str, row: &Row, index: usize) -> Result<T, StoreError> {
    let Json(value): Json<serde_json::Value> = row.try_get(index).map_err(backend)?;
    record(key, value)
}

fn record<T: DeserializeOwned>(key: &str, value: serde_json::Value) -> Result<T, StoreError> {
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        detail: e.to_string(),
    })
}

/// Column `index` of `row` as a record, `None` when it is NULL (a sub-select that found none).
fn decode_present<T: DeserializeOwned>(
    key: &str,
    row: &Row,
    index: usize,
) -> Result<Option<T>, StoreError> {
    let value: Option<Json<serde_json::Value>> = row.try_get(index).map_err(backend)?;
    value.map(|Json(value)| record(key, value)).transpose()
}

fn username_key(username: &str) -> String {
    username.to_lowercase()
}

/// The department a user makes exist for assignments: an active handler's.
fn department(record: &UserRecord) -> Option<&str> {
    match &record.user.role {
        Role::Handler { department } if record.user.active => Some(department),
        _ => None,
    }
}

/// A unique violation as the conflict it stands for; any other failure as a backend error.
fn conflict_or_backend(
    err: tokio_postgres::Error,
    what: impl FnOnce(&str) -> String,
) -> StoreError {
    match err.as_db_error() {
        Some(db) if *db.code() == SqlState::UNIQUE_VIOLATION => {
            StoreError::Conflict(what(db.constraint().unwrap_or_default()))
        }
        _ => backend(err),
    }
}

fn user_conflict(record: &UserRecord) -> impl FnOnce(&str) -> String + '_ {
    move |constraint| {
        if constraint == "users_username_key" {
            format!("username {}", record.user.username)
        } else {
            format!("user id {}", record.user.id)
        }
    }
}

const INSERT_USER: &str =
    "INSERT INTO users (id, username_key, department, record) VALUES ($1, $2, $3, $4)";

impl Store for PostgresStore {
    fn create_user(&self, record: &UserRecord) -> Result<(), StoreError> {
        let value = json(record)?;
        self.run(async {
            let client = self.client().await?;
            client
                .execute(
                    INSERT_USER,
                    &[
                        &record.user.id,
                        &username_key(&record.user.username),
                        &department(record),
                        &value,
                    ],
                )
                .await
                .map_err(|e| conflict_or_backend(e, user_conflict(record)))?;
            Ok(())
        })
    }

    fn update_user(&self, record: &UserRecord) -> Result<(), StoreError> {
        let value = json(record)?;
        self.run(async {
            let client = self.client().await?;
            let updated = client
                .execute(
                    "UPDATE users SET username_key = $2, department = $3, record = $4 WHERE id = $1",
                    &[
                        &record.user.id,
                        &username_key(&record.user.username),
                        &department(record),
                        &value,
                    ],
                )
                .await
                .map_err(|e| conflict_or_backend(e, user_conflict(record)))?;
            if updated == 0 {
                return Err(StoreError::NotFound(format!("user {}", record.user.id)));
            }
            Ok(())
        })
    }

    fn get_user(&self, id: &str) -> Result<Option<UserRecord>, StoreError> {
        self.run(self.get_json("SELECT record FROM users WHERE id = $1", id))
    }

    fn find_user_by_username(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let key = username_key(username);
        self.run(self.get_json("SELECT record FROM users WHERE username_key = $1", &key))
    }

    fn list_users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.reference_list::<UserRecord>()
    }

    fn start_session(
        &self,
        user_id: &str,
        device_id: &str,
        new_actor_id: &str,
        now_ms: i64,
    ) -> Result<DeviceRecord, StoreError> {
        let first = DeviceRecord {
            user_id: user_id.to_owned(),
            device_id: device_id.to_owned(),
            actor_id: new_actor_id.to_owned(),
            session: 1,
            created_at_ms: now_ms,
            last_login_ms: now_ms,
            revoked_at_ms: None,
        };
        let first_json = json(&first)?;
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(backend)?;
            // The first login of the pair inserts; a concurrent first login finds the row
            // and, like every later login, takes it under its lock.
            let inserted = tx
                .execute(
                    "INSERT INTO devices (user_id, device_id, record) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    &[&user_id, &device_id, &first_json],
                )
                .await
                .map_err(backend)?;
            let record = if inserted == 1 {
                first
            } else {
                let row = tx
                    .query_one(
                        "SELECT record FROM devices WHERE user_id = $1 AND device_id = $2
                         FOR UPDATE",
                        &[&user_id, &device_id],
                    )
                    .await
                    .map_err(backend)?;
                let old: DeviceRecord = decode(&format!("{user_id}/{device_id}"), &row, 0)?;
                let record = DeviceRecord {
                    session: old.session + 1,
                    last_login_ms: now_ms,
                    revoked_at_ms: None,
                    ..old
                };
                tx.execute(
                    "UPDATE devices SET record = $3 WHERE user_id = $1 AND device_id = $2",
                    &[&user_id, &device_id, &json(&record)?],
                )
                .await
                .map_err(backend)?;
                record
            };
            tx.commit().await.map_err(backend)?;
            Ok(record)
        })
    }

    fn get_device(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT record FROM devices WHERE user_id = $1 AND device_id = $2",
                    &[&user_id, &device_id],
                )
                .await
                .map_err(backend)?;
            row.map(|row| decode(&format!("{user_id}/{device_id}"), &row, 0))
                .transpose()
        })
    }

    fn user_and_device(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<(Option<UserRecord>, Option<DeviceRecord>), StoreError> {
        self.run(async {
            let client = self.client().await?;
            let row = client
                .query_one(
                    "SELECT (SELECT record FROM users WHERE id = $1),
                            (SELECT record FROM devices WHERE user_id = $1 AND device_id = $2)",
                    &[&user_id, &device_id],
                )
                .await
                .map_err(backend)?;
            Ok((
                decode_present(user_id, &row, 0)?,
                decode_present(&format!("{user_id}/{device_id}"), &row, 1)?,
            ))
        })
    }

    fn revoke_device(
        &self,
        user_id: &str,
        device_id: &str,
        now_ms: i64,
    ) -> Result<Option<DeviceRecord>, StoreError> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(backend)?;
            let Some(row) = tx
                .query_opt(
                    "SELECT record FROM devices WHERE user_id = $1 AND device_id = $2
                     FOR UPDATE",
                    &[&user_id, &device_id],
                )
                .await
                .map_err(backend)?
            else {
                return Ok(None);
            };
            let old: DeviceRecord = decode(&format!("{user_id}/{device_id}"), &row, 0)?;
            let record = DeviceRecord {
                revoked_at_ms: old.revoked_at_ms.or(Some(now_ms)),
                ..old
            };
            tx.execute(
                "UPDATE devices SET record = $3 WHERE user_id = $1 AND device_id = $2",
                &[&user_id, &device_id, &json(&record)?],
            )
            .await
            .map_err(backend)?;
            tx.commit().await.map_err(backend)?;
            Ok(Some(record))
        })
    }

    fn list_devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        self.run(self.list_json(
            "SELECT user_id || '/' || device_id, record FROM devices ORDER BY user_id, device_id",
        ))
    }

    fn put_device(&self, record: &DeviceRecord) -> Result<(), StoreError> {
        let value = json(record)?;
        self.run(async {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO devices (user_id, device_id, record) VALUES ($1, $2, $3)
                     ON CONFLICT (user_id, device_id) DO UPDATE SET record = EXCLUDED.record",
                    &[&record.user_id, &record.device_id, &value],
                )
                .await
                .map_err(backend)?;
            Ok(())
        })
    }

    fn list_refresh_tokens(&self) -> Result<Vec<RefreshRecord>, StoreError> {
        self.run(
            self.list_json("SELECT token_hash, record FROM refresh_tokens ORDER BY token_hash"),
        )
    }

    fn put_refresh_token(&self, record: &RefreshRecord) -> Result<(), StoreError> {
        let value = json(record)?;
        self.run(async {
            let client = self.client().await?;
            client
                .execute(
                    "INSERT INTO refresh_tokens (token_hash, record) VALUES ($1, $2)
                     ON CONFLICT (token_hash) DO UPDATE SET record = EXCLUDED.record",
                    &[&record.token_hash, &value],
                )
                .await
                .map_err(backend)?;
            Ok(())
        })
    }

    fn consume_refresh_token(
        &self,
        token_hash: &str,
        now_ms: i64,
    ) -> Result<RefreshUse, StoreError> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(backend)?;
            let Some(row) = tx
                .query_opt(
                    "SELECT record FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE",
                    &[&token_hash],
                )
                .await
                .map_err(backend)?
            else {
                return Ok(RefreshUse::Unknown);
            };
            let record: RefreshRecord = decode(token_hash, &row, 0)?;
            if record.used_at_ms.is_some() {
                return Ok(RefreshUse::Reused(record));
            }
            let used = RefreshRecord {
                used_at_ms: Some(now_ms),
                ..record.clone()
            };
            tx.execute(
                "UPDATE refresh_tokens SET record = $2 WHERE token_hash = $1",
                &[&token_hash, &json(&used)?],
            )
            .await
            .map_err(backend)?;
            tx.commit().await.map_err(backend)?;
            Ok(RefreshUse::Fresh(record))
        })
    }

    fn exchange_refresh_token(
        &self,
        exchange: &crate::storage::RefreshExchange<'_>,
    ) -> Result<crate::storage::Exchanged, StoreError> {
        shared::exchange_refresh_token(self, exchange)
    }

    fn put_division(&self, division: &Division) -> Result<(), StoreError> {
        let value = json(division)?;
        self.run(async {
            let client = self.client().await?;
            client
                .execute(PUT_DIVISION, &[&division.code.as_str(), &value])
                .await
                .map_err(backend)?;
            Ok(())
        })
    }

    fn get_division(&self, code: &DivisionCode) -> Result<Option<Division>, StoreError> {
        self.run(self.get_json(
            "SELECT record FROM divisions WHERE code = $1",
            code.as_str(),
        ))
    }

    fn list_divisions(&self) -> Result<Vec<Division>, StoreError> {
        self.reference_list::<Division>()
    }

    fn put_asset(&self, asset: &Asset) -> Result<(), StoreError> {
        let value = json(asset)?;
        self.run(async {
            let client = self.client().await?;
            client
                .execute(PUT_ASSET, &[&asset.id, &value])
                .await
                .map_err(backend)?;
            Ok(())
        })
    }

    fn get_asset(&self, id: &str) -> Result<Option<Asset>, StoreError> {
        self.run(self.get_json("SELECT record FROM assets WHERE id = $1", id))
    }

    fn list_assets(&self) -> Result<Vec<Asset>, StoreError> {
        self.reference_list::<Asset>()
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let row = client
                .query_opt("SELECT value FROM meta WHERE key = $1", &[&key])
                .await
                .map_err(backend)?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn put_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.run(async {
            let client = self.client().await?;
            client
                .execute(PUT_META, &[&key, &value])
                .await
                .map_err(backend)?;
            Ok(())
        })
    }

    fn list_meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT key, value FROM meta WHERE starts_with(key, $1) ORDER BY key",
                    &[&prefix],
                )
                .await
                .map_err(backend)?;
            Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
        })
    }

    fn apply_admin_batch(&self, batch: &AdminBatch) -> Result<(), StoreError> {
        fn users(
            records: &[UserRecord],
        ) -> Result<Vec<(&UserRecord, Json<serde_json::Value>)>, StoreError> {
            records.iter().map(|r| Ok((r, json(r)?))).collect()
        }
        let (new_users, changed_users) = (users(&batch.new_users)?, users(&batch.changed_users)?);
        let divisions: Vec<_> = batch
            .divisions
            .iter()
            .map(|d| Ok((d.code.as_str(), json(d)?)))
            .collect::<Result<_, StoreError>>()?;
        let assets: Vec<_> = batch
            .assets
            .iter()
            .map(|a| Ok((a.id.as_str(), json(a)?)))
            .collect::<Result<_, StoreError>>()?;
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(backend)?;
            tx.query(reference::LOCK_VERSIONS, &[])
                .await
                .map_err(backend)?;
            for (record, value) in &new_users {
                tx.execute(
                    INSERT_USER,
                    &[
                        &record.user.id,
                        &username_key(&record.user.username),
                        &department(record),
                        value,
                    ],
                )
                .await
                .map_err(|e| conflict_or_backend(e, user_conflict(record)))?;
            }
            for (record, value) in &changed_users {
                // Usernames stay as they are: a changed user whose username differs is refused.
                let row = tx
                    .query_opt(
                        "SELECT username_key FROM users WHERE id = $1 FOR UPDATE",
                        &[&record.user.id],
                    )
                    .await
                    .map_err(backend)?;
                let Some(row) = row else {
                    return Err(StoreError::NotFound(format!("user {}", record.user.id)));
                };
                if row.get::<_, String>(0) != username_key(&record.user.username) {
                    return Err(StoreError::Conflict(format!(
                        "username of {}",
                        record.user.id
                    )));
                }
                tx.execute(
                    "UPDATE users SET department = $2, record = $3 WHERE id = $1",
                    &[&record.user.id, &department(record), value],
                )
                .await
                .map_err(backend)?;
            }
            for (code, value) in &divisions {
                tx.execute(PUT_DIVISION, &[code, value])
                    .await
                    .map_err(backend)?;
            }
            for (id, value) in &assets {
                tx.execute(PUT_ASSET, &[id, value]).await.map_err(backend)?;
            }
            for (key, value) in &batch.meta {
                tx.execute(PUT_META, &[key, value]).await.map_err(backend)?;
            }
            tx.commit().await.map_err(backend)
        })
    }

    fn document_footprint(&self, id: &str) -> Result<Option<super::Footprint>, StoreError> {
        self.footprint(id)
    }

    /// Every call committed before it returned.
    /// Makes the hub's writes durable too (they commit without waiting for the disk:
    /// `HubStore::durable`); everything else here committed durably before it returned.
    fn flush(&self) -> Result<(), StoreError> {
        self.run(async {
            let client = self.client().await?;
            client
                .batch_execute(documents::DURABLE_NOW)
                .await
                .map_err(backend)
        })
    }

    /// Holds back the saves of every server on the database (`shared::hold_saves`).
    fn hold_saves(&self) -> Result<crate::storage::Hold<'_>, StoreError> {
        shared::hold_saves(self)
    }

    /// Sets the feed's sequence, so the next position drawn is `head + 1`.
    fn advance_feed(&self, head: u64) -> Result<(), StoreError> {
        let now = sync_core::hub::DocumentStore::feed_head(self).map_err(backend)?;
        if head < now {
            return Err(StoreError::Backend(format!(
                "the change feed stands at {now}, past {head}"
            )));
        }
        if head == now {
            return Ok(());
        }
        let head = i64::try_from(head).map_err(backend)?;
        self.run(async {
            let client = self.client().await?;
            client
                .execute("SELECT setval('feed_seq', $1)", &[&head])
                .await
                .map_err(backend)?;
            Ok(())
        })
    }
}

const PUT_DIVISION: &str = "INSERT INTO divisions (code, record) VALUES ($1, $2)
     ON CONFLICT (code) DO UPDATE SET record = EXCLUDED.record";
const PUT_ASSET: &str = "INSERT INTO assets (id, record) VALUES ($1, $2)
     ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record";
const PUT_META: &str = "INSERT INTO meta (key, value) VALUES ($1, $2)
     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value";

/// Polls `work` on the calling thread until it is ready, sleeping until it is woken between
/// polls: the way `std::task::Wake`'s documentation blocks on a future.
fn wait_for<T>(work: impl Future<Output = T>) -> T {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut context = std::task::Context::from_waker(&waker);
    let mut work = std::pin::pin!(work);
    loop {
        if let std::task::Poll::Ready(done) = work.as_mut().poll(&mut context) {
            return done;
        }
        std::thread::park();
    }
}

#[cfg(test)]
mod tests;
