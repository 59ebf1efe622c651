//! [`FactStore`] on sled: one tree, `stats_facts`, holding the mark under a key no document id
//! takes (`\0mark`, so it sorts first and a backup, which reads the tree in key order, copies
//! the mark before the facts it covers) and each document's fact under its id, with the
//! generation it belongs to. Facts and the mark move in one transaction.

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::facts::{FactStore, FactsMark, StoredFact};
use super::sled_store::SledStore;
use super::StoreError;

const MARK: &[u8] = b"\0mark";

/// A fact as the tree holds it.
#[derive(Serialize, Deserialize)]
struct Row {
    generation: String,
    #[serde(flatten)]
    stored: StoredFact,
}

fn backend(err: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(err.to_string())
}

fn corrupt(key: &[u8], err: serde_json::Error) -> StoreError {
    StoreError::Corrupt {
        key: format!("stats_facts/{}", String::from_utf8_lossy(key)),
        detail: err.to_string(),
    }
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("encode: {e}")))
}

fn transaction_result<T>(result: Result<T, TransactionError<StoreError>>) -> Result<T, StoreError> {
    match result {
        Ok(value) => Ok(value),
        Err(TransactionError::Abort(err)) => Err(err),
        Err(TransactionError::Storage(err)) => Err(backend(err)),
    }
}

impl FactStore for SledStore {
    fn facts_mark(&self) -> Result<Option<FactsMark>, StoreError> {
        self.stats_facts
            .get(MARK)
            .map_err(backend)?
            .map(|bytes| serde_json::from_slice(&bytes).map_err(|e| corrupt(MARK, e)))
            .transpose()
    }

    fn start_facts(&self, generation: &str) -> Result<(), StoreError> {
        let mark = encode(&FactsMark {
            generation: generation.to_owned(),
            cursor: 0,
        })?;
        let started = transaction_result(self.stats_facts.transaction(|tree| {
            let current = tree.get(MARK)?;
            let same = current
                .as_deref()
                .and_then(|bytes| serde_json::from_slice::<FactsMark>(bytes).ok())
                .is_some_and(|m| m.generation == generation);
            if !same {
                tree.insert(MARK, mark.clone())?;
            }
            Ok::<_, ConflictableTransactionError<StoreError>>(!same)
        }))?;
        if started {
            // Facts of another generation are no longer read; remove each unless it was
            // replaced meanwhile.
            for entry in self.stats_facts.iter() {
                let (key, value) = entry.map_err(backend)?;
                if key.as_ref() == MARK {
                    continue;
                }
                let stale = serde_json::from_slice::<Row>(&value)
                    .map_or(true, |row| row.generation != generation);
                if stale {
                    let _ = self
                        .stats_facts
                        .compare_and_swap(&key, Some(value), None::<Vec<u8>>)
                        .map_err(backend)?;
                }
            }
        }
        Ok(())
    }

    fn put_facts(
        &self,
        generation: &str,
        facts: &[StoredFact],
        cursor: u64,
    ) -> Result<bool, StoreError> {
        let rows = facts
            .iter()
            .map(|stored| {
                let row = Row {
                    generation: generation.to_owned(),
                    stored: stored.clone(),
                };
                Ok((
                    stored.fact.id().as_bytes().to_vec(),
                    stored.seq,
                    encode(&row)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        transaction_result(self.stats_facts.transaction(|tree| {
            let abort = ConflictableTransactionError::Abort;
            let Some(bytes) = tree.get(MARK)? else {
                return Ok(false);
            };
            let mut mark: FactsMark =
                serde_json::from_slice(&bytes).map_err(|e| abort(corrupt(MARK, e)))?;
            if mark.generation != generation {
                return Ok(false);
            }
            for (key, seq, row) in &rows {
                let newer_kept = tree
                    .get(key)?
                    .and_then(|old| serde_json::from_slice::<Row>(&old).ok())
                    .is_some_and(|old| old.generation == generation && old.stored.seq > *seq);
                if !newer_kept {
                    tree.insert(key.as_slice(), row.as_slice())?;
                }
            }
            if cursor > mark.cursor {
                mark.cursor = cursor;
                let bytes = serde_json::to_vec(&mark)
                    .map_err(|e| abort(StoreError::Backend(format!("encode: {e}"))))?;
                tree.insert(MARK, bytes)?;
            }
            Ok(true)
        }))
    }

    fn facts_since(&self, generation: &str, after: u64) -> Result<Vec<StoredFact>, StoreError> {
        let mut found = Vec::new();
        for entry in self.stats_facts.iter() {
            let (key, value) = entry.map_err(backend)?;
            if key.as_ref() == MARK {
                continue;
            }
            let row: Row = serde_json::from_slice(&value).map_err(|e| corrupt(&key, e))?;
            if row.generation == generation && row.stored.seq > after {
                found.push(row.stored);
            }
        }
        Ok(found)
    }
}
