//! [`Shared`] in the database: every server on it counts the same failed sign-ins and photo
//! bytes, and a job lock held by one server is held for all.
//!
//! A job lock is a session-level advisory lock (two-key form, class [`JOB_LOCK`], the name's
//! CRC-32 as the second key) on a connection taken from the pool for the work and not given
//! back to other work meanwhile. PostgreSQL releases it when the connection closes, so a server
//! killed while holding it holds nothing once its connection is gone; a server that cannot say
//! it let go closes the connection instead of returning it to the pool.

use super::{backend, PostgresStore};
use crate::storage::{Shared, StoreError};

/// The advisory lock class of job locks (documents, the feed and migrations have theirs).
pub(super) const JOB_LOCK: i32 = 0x4353_4404;

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
        let key = job_key(name);
        let client = self.run(self.client())?;
        let taken: bool = self
            .run(client.query_one("SELECT pg_try_advisory_lock($1, $2)", &[&JOB_LOCK, &key]))
            .map_err(backend)?
            .get(0);
        if !taken {
            return Ok(false);
        }
        // Let go even when the work panics, or close the connection (which lets go too).
        struct LetGo<'a> {
            store: &'a PostgresStore,
            client: Option<deadpool_postgres::Object>,
            key: i32,
        }
        impl Drop for LetGo<'_> {
            fn drop(&mut self) {
                let Some(client) = self.client.take() else {
                    return;
                };
                let released = self.store.run(
                    client.query_one("SELECT pg_advisory_unlock($1, $2)", &[&JOB_LOCK, &self.key]),
                );
                if !matches!(released, Ok(ref row) if row.get::<_, bool>(0)) {
                    // Not back to the pool: closing the connection releases the lock.
                    drop(deadpool_postgres::Object::take(client));
                }
            }
        }
        let _let_go = LetGo {
            store: self,
            client: Some(client.0),
            key,
        };
        work();
        Ok(true)
    }
}
