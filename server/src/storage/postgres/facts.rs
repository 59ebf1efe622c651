//! [`FactStore`] on PostgreSQL: `stats_facts_mark` (one row: the generation and cursor) and
//! `stats_facts` (each document's fact, with its generation and the feed head it was worked
//! out at). Every change takes the mark's row lock first, so servers storing facts together
//! apply them one transaction at a time, and a server still judging with the reference data of
//! an earlier generation stores nothing.

use std::collections::HashMap;

use tokio_postgres::types::Json;

use super::{backend, json, PostgresStore};
use crate::storage::facts::{FactStore, FactsMark, StoredFact};
use crate::storage::StoreError;

fn position(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

fn bound(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

impl FactStore for PostgresStore {
    fn facts_mark(&self) -> Result<Option<FactsMark>, StoreError> {
        self.run(async {
            let client = self.client().await?;
            let row = client
                .query_opt(
                    "SELECT generation, cursor FROM stats_facts_mark WHERE id = 1",
                    &[],
                )
                .await
                .map_err(backend)?;
            Ok(row.map(|row| FactsMark {
                generation: row.get(0),
                cursor: position(row.get(1)),
            }))
        })
    }

    fn start_facts(&self, generation: &str) -> Result<(), StoreError> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(backend)?;
            tx.execute(
                "INSERT INTO stats_facts_mark (id, generation, cursor) VALUES (1, '', 0)
                 ON CONFLICT (id) DO NOTHING",
                &[],
            )
            .await
            .map_err(backend)?;
            let current: String = tx
                .query_one(
                    "SELECT generation FROM stats_facts_mark WHERE id = 1 FOR UPDATE",
                    &[],
                )
                .await
                .map_err(backend)?
                .get(0);
            if current != generation {
                tx.execute(
                    "UPDATE stats_facts_mark SET generation = $1, cursor = 0 WHERE id = 1",
                    &[&generation],
                )
                .await
                .map_err(backend)?;
                tx.execute(
                    "DELETE FROM stats_facts WHERE generation <> $1",
                    &[&generation],
                )
                .await
                .map_err(backend)?;
            }
            tx.commit().await.map_err(backend)
        })
    }

    fn put_facts(
        &self,
        generation: &str,
        facts: &[StoredFact],
        cursor: u64,
    ) -> Result<bool, StoreError> {
        // One row per document: the fact worked out at the latest head.
        let mut latest: HashMap<&str, &StoredFact> = HashMap::new();
        for stored in facts {
            let id = stored.fact.id();
            if latest.get(id).is_none_or(|kept| kept.seq <= stored.seq) {
                latest.insert(id, stored);
            }
        }
        let mut ids = Vec::with_capacity(latest.len());
        let mut seqs = Vec::with_capacity(latest.len());
        let mut values = Vec::with_capacity(latest.len());
        for (id, stored) in latest {
            ids.push(id.to_owned());
            seqs.push(bound(stored.seq));
            values.push(json(&stored.fact)?);
        }
        let cursor = bound(cursor);
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await.map_err(backend)?;
            let current: Option<String> = tx
                .query_opt(
                    "SELECT generation FROM stats_facts_mark WHERE id = 1 FOR UPDATE",
                    &[],
                )
                .await
                .map_err(backend)?
                .map(|row| row.get(0));
            if current.as_deref() != Some(generation) {
                return Ok(false);
            }
            if !ids.is_empty() {
                tx.execute(
                    "INSERT INTO stats_facts (doc_id, generation, seq, fact)
                     SELECT d, $1, s, f FROM unnest($2::text[], $3::bigint[], $4::jsonb[])
                         AS t(d, s, f)
                     ON CONFLICT (doc_id) DO UPDATE
                     SET generation = EXCLUDED.generation, seq = EXCLUDED.seq,
                         fact = EXCLUDED.fact
                     WHERE stats_facts.generation <> EXCLUDED.generation
                        OR stats_facts.seq <= EXCLUDED.seq",
                    &[&generation, &ids, &seqs, &values],
                )
                .await
                .map_err(backend)?;
            }
            tx.execute(
                "UPDATE stats_facts_mark SET cursor = greatest(cursor, $1) WHERE id = 1",
                &[&cursor],
            )
            .await
            .map_err(backend)?;
            tx.commit().await.map_err(backend)?;
            Ok(true)
        })
    }

    fn facts_since(&self, generation: &str, after: u64) -> Result<Vec<StoredFact>, StoreError> {
        let after = bound(after);
        self.run(async {
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT doc_id, seq, fact FROM stats_facts
                     WHERE generation = $1 AND seq > $2",
                    &[&generation, &after],
                )
                .await
                .map_err(backend)?;
            rows.iter()
                .map(|row| {
                    let Json(value): Json<serde_json::Value> = row.try_get(2).map_err(backend)?;
                    let fact = serde_json::from_value(value).map_err(|e| StoreError::Corrupt {
                        key: format!("stats_facts/{}", row.get::<_, String>(0)),
                        detail: e.to_string(),
                    })?;
                    Ok(StoredFact {
                        seq: position(row.get(1)),
                        fact,
                    })
                })
                .collect()
        })
    }
}
