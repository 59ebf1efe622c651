//! [`Shared`] in the database: every server on it counts the same failed sign-ins, photo
//! bytes and public events, reads the same challenges and tickets, and a lock held by one
//! server is held for all. Refresh-token exchanges and the hold on saves are here too: they
//! are what keeps several servers on one database from deciding the same thing twice.
//!
//! A job lock or a [`Shared::hold`] is a session-level advisory lock (two-key form, class
//! [`JOB_LOCK`] or [`HOLD_LOCK`], the name's CRC-32 as the second key) on a connection taken
//! from the pool for the work and not given back to other work meanwhile. PostgreSQL releases
//! it when the connection closes, so a server killed while holding it holds nothing once its
//! connection is gone; a server that cannot say it let go closes the connection instead of
//! returning it to the pool. Should the connection break while the work runs (the database
//! restarted), the lock is gone with it and another server may start the same work: each
//! piece of such work writes in one transaction of its own, so what it stores is whole.

use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;

use super::{backend, decode, json, PostgresStore};
use crate::storage::shared::{Hold, Kept, Names};
use crate::storage::{Exchanged, RefreshExchange, RefreshRecord, Shared, StoreError};

/// The advisory lock class of job locks (documents, the feed and migrations have theirs).
pub(super) const JOB_LOCK: i32 = 0x4353_4404;
/// The class of [`Shared::hold`]'s locks.
const HOLD_LOCK: i32 = 0x4353_4406;
/// The class of the claims on devices (`DeviceLedger::claim_device`).
const DEVICE_LOCK: i32 = 0x4353_4407;
/// The hold on saves: every save takes it shared in `feed_position()` (schema migration 7)
/// until it commits; `hold_saves` takes it exclusively.
const SAVES_HOLD: (i32, i32) = (0x4353_4405, 0);

/// Names held in this process: of the requests waiting for one name here, one at a time waits
/// in the database, so waiting never takes the pool's connections from the work that holds.
static HOLDS_HERE: std::sync::LazyLock<Names> = std::sync::LazyLock::new(Names::default);

/// Expired counters and records forgotten per new one, without waiting on rows others use.
const FORGET_EVENTS: &str = "DELETE FROM shared_events WHERE key IN (
     SELECT key FROM shared_events WHERE expires_ms <= $1 AND key <> $2
     ORDER BY expires_ms LIMIT 32 FOR UPDATE SKIP LOCKED)";
const FORGET_RECORDS: &str = "DELETE FROM shared_records WHERE key IN (
     SELECT key FROM shared_records WHERE expires_ms <= $1 AND key <> $2
     ORDER BY expires_ms LIMIT 32 FOR UPDATE SKIP LOCKED)";

/// A session advisory lock held on a connection of its own; let go when dropped (or the
/// connection closed, which lets go too).
struct SessionLock<'a> {
    store: &'a PostgresStore,
    client: Option<deadpool_postgres::Object>,
    class: i32,
    key: i32,
}

impl Drop for SessionLock<'_> {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let released = self.store.run(client.query_one(
            "SELECT pg_advisory_unlock($1, $2)",
            &[&self.class, &self.key],
        ));
        if !matches!(released, Ok(ref row) if row.get::<_, bool>(0)) {
            // Not back to the pool: closing the connection releases the lock.
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// Takes the session lock (`class`, `key`) on a connection of its own: waiting for it, or
/// `None` at once when `wait` is false and another session holds it.
fn session_lock(
    store: &PostgresStore,
    class: i32,
    key: i32,
    wait: bool,
) -> Result<Option<SessionLock<'_>>, StoreError> {
    let client = store.run(store.client())?;
    let sql = if wait {
        "SELECT true FROM pg_advisory_lock($1, $2)"
    } else {
        "SELECT pg_try_advisory_lock($1, $2)"
    };
    match store.run(client.query_one(sql, &[&class, &key])) {
        Ok(row) if row.get::<_, bool>(0) => Ok(Some(SessionLock {
            store,
            client: Some(client.0),
            class,
            key,
        })),
        Ok(_) => Ok(None),
        Err(err) => {
            // Whether the lock was taken is unknown: the connection is closed, not pooled.
            drop(deadpool_postgres::Object::take(client.0));
            Err(backend(err))
        }
    }
}

/// Claims `device` for one answer of its syncs (`DeviceLedger::claim_device`): a session lock
/// on a connection of its own, so the claim stands while the answer runs, however long, and
/// not a moment after its server stops (the database ends the lock with the connection).
/// `None` at once when another server or request holds it. The key is the device's CRC-32:
/// two devices that share it (about one pair among 100,000 devices) only ever refuse each
/// other's sync for a moment when both sync at once, and each sends again.
pub(super) fn device_lock<'a>(
    store: &'a PostgresStore,
    device: &str,
) -> Result<Option<impl Send + 'a>, StoreError> {
    session_lock(store, DEVICE_LOCK, job_key(device), false)
}

/// How long `hold_saves` waits in all for the saves under way to commit before it gives up:
/// the longest a waiting hold keeps this server's saves at their gate.
pub(super) const HOLD_SAVES_WAIT: Duration = Duration::from_secs(5);
/// Each of its turns in the database's queue for the hold (`lock_timeout`): the longest a
/// waiting hold keeps another server's save waiting at once.
pub(super) const HOLD_SAVES_TURN: Duration = Duration::from_millis(200);
/// Between two turns the hold stays out of the queue, and the saves that queued behind it
/// go through.
const HOLD_SAVES_PAUSE: Duration = Duration::from_millis(100);

/// Holds back every save on every server of the database (see `Store::hold_saves`): this
/// process's saves at their gate, before they take a connection; every other's in
/// `feed_position()`, once the saves already past it have committed.
///
/// PostgreSQL queues a shared request behind a waiting exclusive one, so while the hold waits
/// in the database every server's next save waits behind it. A save that never commits (its
/// server stopped in the middle of it) would then stop saves everywhere. So the hold waits in
/// turns of [`HOLD_SAVES_TURN`], with a pause between them in which the saves queued behind
/// it go through, and gives up after [`HOLD_SAVES_WAIT`] in all (`Unavailable`: nothing was
/// held, the caller tries again later). A stopped server's open save is ended by the database
/// (`idle_in_transaction_session_timeout`, set on every connection of the store).
pub(super) fn hold_saves(store: &PostgresStore) -> Result<Hold<'_>, StoreError> {
    let deadline = Instant::now() + HOLD_SAVES_WAIT;
    let not_held = |whose: &str| {
        StoreError::Unavailable(format!(
            "document saves could not be held: {whose} did not commit within {} s \
             (a server stopped in the middle of a save?); nothing is held, try again later",
            HOLD_SAVES_WAIT.as_secs()
        ))
    };
    let here = store
        .saves
        .hold_until(deadline)
        .ok_or_else(|| not_held("a save on this server"))?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let turn = HOLD_SAVES_TURN.min(left).max(Duration::from_millis(1));
        if let Some(everywhere) = session_lock_within(store, SAVES_HOLD.0, SAVES_HOLD.1, turn)? {
            // Dropped in order: the database's hold first, then this process's gate.
            return Ok(Hold::new((everywhere, here)));
        }
        if deadline.saturating_duration_since(Instant::now()) <= HOLD_SAVES_PAUSE {
            return Err(not_held("a save on another server"));
        }
        std::thread::sleep(HOLD_SAVES_PAUSE);
    }
}

/// Takes the session lock (`class`, `key`) on a connection of its own, waiting in the
/// database's queue for it at most `wait` (`lock_timeout`); `None` when it was not had by then.
fn session_lock_within(
    store: &PostgresStore,
    class: i32,
    key: i32,
    wait: Duration,
) -> Result<Option<SessionLock<'_>>, StoreError> {
    let mut client = store.run(store.client())?;
    let taken = store.run(async {
        let tx = client.transaction().await?;
        // Only for this transaction; the session lock outlives it.
        tx.batch_execute(&format!("SET LOCAL lock_timeout = {}", wait.as_millis()))
            .await?;
        match tx
            .query_one("SELECT true FROM pg_advisory_lock($1, $2)", &[&class, &key])
            .await
        {
            Ok(_) => tx.commit().await.map(|()| true),
            Err(err) if err.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                tx.rollback().await.map(|()| false)
            }
            Err(err) => Err(err),
        }
    });
    match taken {
        Ok(true) => Ok(Some(SessionLock {
            store,
            client: Some(client.0),
            class,
            key,
        })),
        // Not had, and the transaction rolled back: the connection goes back to the pool.
        Ok(false) => Ok(None),
        Err(err) => {
            // Whether the lock was taken is unknown: the connection is closed, not pooled.
            drop(deadpool_postgres::Object::take(client.0));
            Err(backend(err))
        }
    }
}

/// [`crate::storage::Store::exchange_refresh_token`]: the token's row locked to commit, then
/// its successor's, so two exchanges or retries of one token, on any servers, are decided one
/// after the other, and a retry waits for an exchange of the successor under way.
pub(super) fn exchange_refresh_token(
    store: &PostgresStore,
    exchange: &RefreshExchange<'_>,
) -> Result<Exchanged, StoreError> {
    const ROW: &str = "SELECT record FROM refresh_tokens WHERE token_hash = $1 FOR UPDATE";
    store.run(async {
        let mut client = store.client().await?;
        let tx = client.transaction().await.map_err(backend)?;
        let Some(row) = tx
            .query_opt(ROW, &[&exchange.token_hash])
            .await
            .map_err(backend)?
        else {
            return Ok(Exchanged::Unknown);
        };
        let token: RefreshRecord = decode(exchange.token_hash, &row, 0)?;
        let successor: Option<RefreshRecord> = match tx
            .query_opt(ROW, &[&exchange.successor_hash])
            .await
            .map_err(backend)?
        {
            Some(row) => Some(decode(exchange.successor_hash, &row, 0)?),
            None => None,
        };
        let writes = exchange.decide(token, successor.as_ref());
        if let Some(token) = &writes.token {
            tx.execute(
                "UPDATE refresh_tokens SET record = $2 WHERE token_hash = $1",
                &[&token.token_hash, &json(token)?],
            )
            .await
            .map_err(backend)?;
        }
        if let Some(successor) = &writes.successor {
            tx.execute(
                "INSERT INTO refresh_tokens (token_hash, record) VALUES ($1, $2)
                 ON CONFLICT (token_hash) DO NOTHING",
                &[&successor.token_hash, &json(successor)?],
            )
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(writes.outcome)
    })
}

fn as_count(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(super) fn job_key(name: &str) -> i32 {
    i32::from_ne_bytes(crc32fast::hash(name.as_bytes()).to_ne_bytes())
}

fn as_i64(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

impl Shared for PostgresStore {
    fn login_failures(&self, keys: &[&str], since_ms: i64) -> Result<Vec<Vec<i64>>, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
            let rows = client
                .query(
                    "SELECT key, at_ms FROM login_failures
                     WHERE key = ANY($1) AND at_ms >= $2 ORDER BY at_ms",
                    &[&keys, &since_ms],
                )
                .await
                .map_err(backend)?;
            let mut found = vec![Vec::new(); keys.len()];
            for row in rows {
                let key: String = row.get(0);
                for (i, wanted) in keys.iter().enumerate() {
                    if *wanted == key {
                        found[i].push(row.get(1));
                    }
                }
            }
            Ok(found)
        })
    }

    fn record_login_failure(
        &self,
        keys: &[&str],
        tag: &str,
        at_ms: i64,
        forget_before_ms: i64,
    ) -> Result<(), StoreError> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(backend)?;
            tx.execute(
                "DELETE FROM login_failures WHERE at_ms < $1",
                &[&forget_before_ms],
            )
            .await
            .map_err(backend)?;
            let keys: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
            tx.execute(
                "INSERT INTO login_failures (key, tag, at_ms) SELECT k, $2, $3 FROM unnest($1::text[]) AS k",
                &[&keys, &tag, &at_ms],
            )
            .await
            .map_err(backend)?;
            tx.commit().await.map_err(backend)
        })
    }

    fn forgive_login_failures(&self, key: &str, tag: Option<&str>) -> Result<(), StoreError> {
        self.run(async {
            let client = self.client().await?;
            client
                .execute(
                    "DELETE FROM login_failures WHERE key = $1 AND ($2::text IS NULL OR tag = $2)",
                    &[&key, &tag],
                )
                .await
                .map_err(backend)?;
            Ok(())
        })
    }

    fn charge_upload(
        &self,
        user: &str,
        day: i64,
        bytes: u64,
        limit: u64,
    ) -> Result<Option<u64>, StoreError> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(backend)?;
            tx.execute(
                "DELETE FROM upload_bytes WHERE user_id = $1 AND day < $2",
                &[&user, &day],
            )
            .await
            .map_err(backend)?;
            // One statement checks and adds: the update runs on the row locked with its latest
            // count, so requests on any server charging at once are added one after another
            // and none is added past the limit. No row comes back when it would go over.
            let row = tx
                .query_opt(
                    "INSERT INTO upload_bytes (user_id, day, bytes)
                     SELECT $1::text, $2::bigint, $3::bigint WHERE $3::bigint <= $4::bigint
                     ON CONFLICT (user_id, day)
                     DO UPDATE SET bytes = upload_bytes.bytes + EXCLUDED.bytes
                     WHERE upload_bytes.bytes <= $4 - EXCLUDED.bytes
                     RETURNING bytes",
                    &[&user, &day, &as_i64(bytes), &as_i64(limit)],
                )
                .await
                .map_err(backend)?;
            tx.commit().await.map_err(backend)?;
            Ok(row.map(|row| u64::try_from(row.get::<_, i64>(0)).unwrap_or(0)))
        })
    }

    fn uploaded(&self, user: &str, day: i64) -> Result<u64, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT bytes FROM upload_bytes WHERE user_id = $1 AND day = $2",
                    &[&user, &day],
                )
                .await
                .map_err(backend)?;
            Ok(row.map_or(0, |r| u64::try_from(r.get::<_, i64>(0)).unwrap_or(0)))
        })
    }

    fn exclusively(&self, name: &str, work: &mut dyn FnMut()) -> Result<bool, StoreError> {
        // Let go even when the work panics, or close the connection (which lets go too).
        let Some(_held) = session_lock(self, JOB_LOCK, job_key(name), false)? else {
            return Ok(false);
        };
        work();
        Ok(true)
    }

    fn hold(&self, name: &str) -> Result<Hold<'_>, StoreError> {
        let here = HOLDS_HERE.hold(name);
        let everywhere = session_lock(self, HOLD_LOCK, job_key(name), true)?;
        Ok(Hold::new((everywhere, here)))
    }

    fn count_event(
        &self,
        key: &str,
        limit: usize,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<Result<(), i64>, StoreError> {
        self.run(async {
            let client = self.client().await?;
            client
                .execute(FORGET_EVENTS, &[&now_ms, &key])
                .await
                .map_err(backend)?;
            // One statement checks and counts, on the key's row locked with its latest times:
            // servers counting at once are counted one after another, never past the limit.
            let counted = client
                .query_opt(
                    "INSERT INTO shared_events AS e (key, times, expires_ms)
                     SELECT $1::text, ARRAY[$3::bigint], $3::bigint + $4::bigint
                     WHERE $2::bigint > 0
                     ON CONFLICT (key) DO UPDATE
                     SET times = array_append(
                             ARRAY(SELECT t FROM unnest(e.times) AS t WHERE t > $3 - $4), $3),
                         expires_ms = greatest(e.expires_ms, $3 + $4)
                     WHERE (SELECT count(*) FROM unnest(e.times) AS t WHERE t > $3 - $4) < $2
                     RETURNING 1",
                    &[&key, &as_count(limit), &now_ms, &window_ms],
                )
                .await
                .map_err(backend)?;
            if counted.is_some() {
                return Ok(Ok(()));
            }
            let oldest: Option<i64> = client
                .query_one(
                    "SELECT min(t) FROM shared_events, unnest(times) AS t
                     WHERE key = $1 AND t > $2::bigint - $3::bigint",
                    &[&key, &now_ms, &window_ms],
                )
                .await
                .map_err(backend)?
                .get(0);
            Ok(Err(oldest.unwrap_or(now_ms).saturating_add(window_ms)))
        })
    }

    fn events_below(
        &self,
        key: &str,
        limit: usize,
        window_ms: i64,
        now_ms: i64,
    ) -> Result<Result<(), i64>, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let row = client
                .query_one(
                    "SELECT count(t), min(t) FROM shared_events, unnest(times) AS t
                     WHERE key = $1 AND t > $2::bigint - $3::bigint",
                    &[&key, &now_ms, &window_ms],
                )
                .await
                .map_err(backend)?;
            let (count, oldest): (i64, Option<i64>) = (row.get(0), row.get(1));
            Ok(if count < as_count(limit) {
                Ok(())
            } else {
                Err(oldest.unwrap_or(now_ms).saturating_add(window_ms))
            })
        })
    }

    fn kept(&self, key: &str, now_ms: i64) -> Result<Option<Kept>, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT value, version FROM shared_records
                     WHERE key = $1 AND expires_ms > $2",
                    &[&key, &now_ms],
                )
                .await
                .map_err(backend)?;
            Ok(row.map(|row| Kept {
                value: row.get(0),
                version: row.get(1),
            }))
        })
    }

    fn keep(
        &self,
        key: &str,
        version: Option<i64>,
        value: &[u8],
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let written = match version {
                None => {
                    client
                        .execute(FORGET_RECORDS, &[&now_ms, &key])
                        .await
                        .map_err(backend)?;
                    client
                        .execute(
                            "INSERT INTO shared_records AS r (key, value, version, expires_ms)
                             VALUES ($1, $2, 1, $3)
                             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,
                                 version = r.version + 1, expires_ms = EXCLUDED.expires_ms
                             WHERE r.expires_ms <= $4",
                            &[&key, &value, &expires_ms, &now_ms],
                        )
                        .await
                }
                Some(version) => {
                    client
                        .execute(
                            "UPDATE shared_records
                             SET value = $2, version = version + 1, expires_ms = $3
                             WHERE key = $1 AND version = $4 AND expires_ms > $5",
                            &[&key, &value, &expires_ms, &version, &now_ms],
                        )
                        .await
                }
            }
            .map_err(backend)?;
            Ok(written == 1)
        })
    }

    fn take_kept(&self, key: &str, now_ms: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "DELETE FROM shared_records WHERE key = $1 RETURNING value, expires_ms",
                    &[&key],
                )
                .await
                .map_err(backend)?;
            Ok(row
                .filter(|row| row.get::<_, i64>(1) > now_ms)
                .map(|row| row.get(0)))
        })
    }
}
