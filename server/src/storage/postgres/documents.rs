//! The sync hub's storage on PostgreSQL: documents with their routing facts, the change feed
//! devices sync from, the audit of accepted changes, and what each device holds.
//!
//! A document is one row: its routing facts, its snapshot (a full automerge save, with its
//! CRC-32, so a damaged one is reported, never loaded as valid data) and the feed position of
//! its latest save; beside it, a row per incremental save made since the snapshot
//! (`document_changes`, keyed by the feed position of the save that wrote it, see `chunks`).
//! A merged save adds one such row, or writes a new snapshot and deletes the rows it covers,
//! in its transaction. A document is read in one statement, so a reader on any server sees a
//! snapshot with exactly the incremental saves committed beside it, never half a compaction.
//! The feed is the document rows in position order.
//!
//! Several servers save at once, and a position drawn earlier can commit later: a reader that
//! saw position 7 committed and moved its cursor there would never look back for position 6
//! still being written. So each save holds a lock named by its position until it commits
//! (`feed_position()` in `schema`), and [`DocumentStore::feed_head`] is the position below the
//! lowest one still held (`feed_settled()`): everything up to it has committed. Only saves in
//! this database count, so other work on the same PostgreSQL does not hold the feed back. A
//! save is acknowledged only after its commit.
//!
//! Saves of one document are serialized across servers by a transaction-scoped advisory lock
//! on the document's id, taken before its position is drawn.
//!
//! The hub reads a document, merges into it and saves it under a lock of its own process; a
//! server beside it may save the same document in between. So a read carries the version it
//! found (`StoredDoc::version`: its position and how it is kept), the hub hands it back with
//! the save, and the save is refused (`HubError::SavedMeanwhile`, nothing written) when
//! another save came between: the hub reads again and merges again, or the phone sends again.
//! A merge is never saved over changes it did not contain, and an incremental save is only
//! ever appended to the version it was made from.

use std::collections::{HashMap, HashSet};

use sync_core::authz::{DocMeta, Reach};
use sync_core::hub::{
    AuditEntry, AuditLog, DeviceClaim, DeviceDoc, DeviceLedger, DocRead, DocumentStore, Footprint,
    HubError, HubStore, ReferenceSource, StoredDoc, StoredVersion,
};
use sync_core::model::{Asset, Category, User};
use tokio_postgres::types::Json;

use super::PostgresStore;
use crate::storage::chunks::{self, Write};
use crate::storage::{Store, StoreError};

/// The advisory lock namespace of document saves (the first key of the two-key form).
const DOCUMENT_LOCK: i32 = 0x4353_4401;

fn storage(err: impl std::fmt::Display + 'static) -> HubError {
    if super::cannot_reach(&err) {
        HubError::Unavailable(err.to_string())
    } else {
        HubError::Storage(err.to_string())
    }
}

fn hub(err: StoreError) -> HubError {
    match err {
        StoreError::Corrupt { key, detail } => HubError::Damaged {
            id: key,
            reason: detail,
        },
        StoreError::Unavailable(detail) => HubError::Unavailable(detail),
        other => HubError::Storage(other.to_string()),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Json<serde_json::Value>, HubError> {
    serde_json::to_value(value).map(Json).map_err(storage)
}

fn from_json<T: serde::de::DeserializeOwned>(
    id: &str,
    Json(value): Json<serde_json::Value>,
) -> Result<T, HubError> {
    serde_json::from_value(value).map_err(|e| HubError::Damaged {
        id: id.to_owned(),
        reason: e.to_string(),
    })
}

fn position(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

fn bound(position: u64) -> i64 {
    i64::try_from(position).unwrap_or(i64::MAX)
}

impl PostgresStore {
    /// The `(id, routing facts)` rows of `sql`, up to `limit` of them that `keep` accepts (the
    /// facts are parsed here, on the calling thread, where `keep` may run).
    fn metas(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        keep: &dyn Fn(&DocMeta) -> bool,
        limit: usize,
    ) -> Result<(Vec<DocMeta>, usize, Option<String>), HubError> {
        let rows = self.run(async {
            let client = self.client().await.map_err(hub)?;
            client.query(sql, params).await.map_err(storage)
        })?;
        let read = rows.len();
        let mut last = None;
        let mut kept = Vec::new();
        for row in rows {
            let id: String = row.get(0);
            if kept.len() < limit {
                let meta: DocMeta = from_json(&id, row.get(1))?;
                if keep(&meta) {
                    kept.push(meta);
                }
            }
            last = Some(id);
        }
        Ok((kept, read, last))
    }
}

/// A document's id, feed position and routing facts as the feed reads them: the facts as
/// JSON text, parsed on the calling thread (or why they did not parse, reported to whoever
/// walks over them).
type FeedRow = (String, u64, Result<DocMeta, String>);

fn feed_row(id: String, seq: i64, meta: &str) -> FeedRow {
    let meta = serde_json::from_str(meta).map_err(|e| e.to_string());
    (id, position(seq), meta)
}

impl PostgresStore {
    /// Brings this process's index of routing facts up to the feed's settled head, and returns
    /// the head (or a later one another thread caught up to meanwhile). Every save at or
    /// below the head has committed, so the documents saved past what the index holds are
    /// read after the head is known, in a statement of their own (its own snapshot): one saved
    /// by any server before this call began is in it. Rows past the head are left for a later
    /// catch-up, which reads from the index's head on.
    ///
    /// The first catch-up reads every document, in two statements. Later ones read both in one
    /// round trip: the feed's gate is then held while the few rows since are read.
    pub(super) fn catch_up(&self) -> Result<u64, HubError> {
        let mark = self.index.mark();
        let (held, first) = (mark.head, !mark.loaded);
        let (head, started, rows) = self.run(async {
            let client = self.client().await.map_err(hub)?;
            if first {
                let row = client
                    .query_one(
                        "SELECT feed_settled(), pg_postmaster_start_time()::text",
                        &[],
                    )
                    .await
                    .map_err(storage)?;
                let (head, started): (i64, String) = (row.get(0), row.get(1));
                let rows = client
                    .query(
                        "SELECT id, meta::text, seq FROM documents WHERE seq <= $1",
                        &[&head],
                    )
                    .await
                    .map_err(storage)?;
                let rows = rows
                    .into_iter()
                    .map(|row| (row.get(0), row.get(2), row.get::<_, String>(1)))
                    .collect::<Vec<(String, i64, String)>>();
                return Ok::<_, HubError>((head, started, rows));
            }
            // One implicit transaction of two statements, each with its own snapshot (READ
            // COMMITTED): the rows are read after the head has settled.
            let messages = client
                .simple_query(&format!(
                    "SELECT feed_settled(), pg_postmaster_start_time()::text; \
                     SELECT id, meta::text, seq FROM documents WHERE seq > {}",
                    bound(held)
                ))
                .await
                .map_err(storage)?;
            let (mut head, mut started) = (None, String::new());
            let mut rows = Vec::new();
            for message in messages {
                let tokio_postgres::SimpleQueryMessage::Row(row) = message else {
                    continue;
                };
                let number = |at: usize| -> Result<i64, HubError> {
                    row.get(at)
                        .and_then(|v| v.parse().ok())
                        .ok_or_else(|| HubError::Storage("the feed: not a position".into()))
                };
                if row.len() == 2 {
                    head = Some(number(0)?);
                    started = row.get(1).unwrap_or_default().to_owned();
                } else {
                    let text = |at: usize| row.get(at).unwrap_or_default().to_owned();
                    rows.push((text(0), number(2)?, text(1)));
                }
            }
            let head = head.ok_or_else(|| HubError::Storage("the feed: no head".into()))?;
            Ok((head, started, rows))
        })?;
        // A database that restarted (after a crash, a failover, a restore) may have taken back
        // saves the index holds and may give their positions to other saves; one whose feed
        // is behind the index did. The index is then read again in full, never trusted.
        if !self.same_database(&started) || (!first && position(head) < held) {
            self.forget_caches();
            return self.catch_up();
        }
        let docs = rows
            .into_iter()
            .filter(|(_, seq, _)| *seq <= head)
            .map(|(id, seq, meta)| feed_row(id, seq, &meta))
            .collect();
        if !self.index.caught_up(mark, position(head), docs) {
            // Another reader forgot the index meanwhile (the database restarted): this read
            // may predate what it forgot.
            return self.catch_up();
        }
        Ok(self.index.head())
    }
}

/// Documents' rows and the incremental saves beside them, in one statement (one snapshot of
/// the database), for the documents `$filter` names: the routing facts, the snapshot, its
/// CRC-32, the feed position, the incremental saves and their CRC-32s in save order, then
/// the id.
macro_rules! read_documents {
    ($filter:literal) => {
        concat!(
            "SELECT d.meta, d.bytes, d.crc32, d.seq,
                coalesce(array_agg(c.bytes ORDER BY c.seq) FILTER (WHERE c.seq IS NOT NULL),
                    '{}'::bytea[]),
                coalesce(array_agg(c.crc32 ORDER BY c.seq) FILTER (WHERE c.seq IS NOT NULL),
                    '{}'::bigint[]),
                d.id
            FROM documents d LEFT JOIN document_changes c ON c.doc_id = d.id
            WHERE ",
            $filter,
            " GROUP BY d.id"
        )
    };
}
const READ_DOCUMENT: &str = read_documents!("d.id = $1");
const READ_DOCUMENTS: &str = read_documents!("d.id = ANY($1)");

/// The stored document in a row of `read_documents!`, checked against its checksums.
fn stored_of(id: &str, row: &tokio_postgres::Row) -> Result<StoredDoc, HubError> {
    let seq: i64 = row.get(3);
    let meta: DocMeta = from_json(id, row.get(0))?;
    let snapshot: Vec<u8> = row.get(1);
    checked(id, &snapshot, row.get(2))?;
    let incremental: Vec<Vec<u8>> = row.get(4);
    let sums: Vec<i64> = row.get(5);
    if sums.len() != incremental.len() {
        return Err(HubError::Damaged {
            id: id.to_owned(),
            reason: "incremental saves without their checksums".into(),
        });
    }
    for (bytes, sum) in incremental.iter().zip(sums) {
        checked(id, bytes, sum)?;
    }
    let version = StoredVersion {
        seq: position(seq),
        footprint: Footprint {
            snapshot_bytes: snapshot.len(),
            incremental_saves: incremental.len(),
            incremental_bytes: incremental.iter().map(Vec::len).sum(),
        },
    };
    let bytes = if incremental.is_empty() {
        snapshot
    } else {
        chunks::joined(&snapshot, &incremental)
    };
    Ok(StoredDoc {
        meta,
        bytes,
        version,
    })
}

fn checked(id: &str, bytes: &[u8], sum: i64) -> Result<(), HubError> {
    if i64::from(crc32fast::hash(bytes)) != sum {
        return Err(HubError::Damaged {
            id: id.to_owned(),
            reason: "checksum mismatch".into(),
        });
    }
    Ok(())
}

impl PostgresStore {
    /// How the document is kept, in one statement.
    pub(super) fn footprint(&self, id: &str) -> Result<Option<Footprint>, StoreError> {
        let row = self.run(async {
            let client = self.client().await?;
            client
                .query_opt(
                    "SELECT octet_length(d.bytes)::bigint, count(c.seq),
                         coalesce(sum(octet_length(c.bytes)), 0)::bigint
                     FROM documents d LEFT JOIN document_changes c ON c.doc_id = d.id
                     WHERE d.id = $1
                     GROUP BY d.id",
                    &[&id],
                )
                .await
                .map_err(super::backend)
        })?;
        let size = |n: i64| usize::try_from(n).unwrap_or(0);
        Ok(row.map(|row| Footprint {
            snapshot_bytes: size(row.get(0)),
            incremental_saves: size(row.get(1)),
            incremental_bytes: size(row.get(2)),
        }))
    }

    /// Stores `write` as the document's new version, with its routing facts and audit entries,
    /// at the next feed position. `read`, when checked, is the version the caller's merge was
    /// made from (`None`: the document was absent): a save from a version no longer stored is
    /// refused, nothing written.
    fn store_version(
        &self,
        id: &str,
        meta: &DocMeta,
        write: Write,
        read: Option<Option<StoredVersion>>,
        audit: &[AuditEntry],
    ) -> Result<u64, HubError> {
        let meta_json = to_json(meta)?;
        // Decided on the calling thread, where a test may ask for it.
        let deletes_covered = write.deletes_covered();
        let audit: Vec<_> = audit
            .iter()
            .map(|entry| Ok((entry, to_json(entry)?)))
            .collect::<Result<_, HubError>>()?;
        let read_check = read.is_some();
        let read_seq: Option<i64> = read.flatten().map(|version| bound(version.seq));
        let (snapshot, covers, incremental) = match &write {
            Write::Snapshot { bytes, covers } => {
                // The incremental saves the snapshot covers go in the same commit.
                let covers = deletes_covered.then(|| covers.map_or(i64::MAX, bound));
                (Some(bytes.as_slice()), covers, None)
            }
            Write::Incremental(bytes) => (None, None, (!bytes.is_empty()).then_some(bytes)),
        };
        let sum = |bytes: Option<&[u8]>| bytes.map(|b| i64::from(crc32fast::hash(b)));
        let (snapshot_sum, incremental_sum) = (sum(snapshot), sum(incremental.map(Vec::as_slice)));
        let doc_ids: Vec<&str> = audit.iter().map(|(e, _)| e.doc_id.as_str()).collect();
        let changes: Vec<&str> = audit.iter().map(|(e, _)| e.change.as_str()).collect();
        let received: Vec<i64> = audit.iter().map(|(e, _)| e.received_at_ms).collect();
        let entries: Vec<&Json<serde_json::Value>> = audit.iter().map(|(_, v)| v).collect();
        let _in_flight = self.saves.enter();
        let seq: i64 = self.run(async {
            let client = self.client().await.map_err(hub)?;
            // One statement, its own transaction (`schema`, migration 8).
            client
                .query_one(
                    "SELECT save_version($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
                                         $11, $12, $13, $14)",
                    &[
                        &DOCUMENT_LOCK,
                        &id,
                        &meta_json,
                        &read_check,
                        &read_seq,
                        &snapshot,
                        &snapshot_sum,
                        &covers,
                        &incremental,
                        &incremental_sum,
                        &doc_ids,
                        &changes,
                        &received,
                        &entries,
                    ],
                )
                .await
                .map(|row| row.get(0))
                .map_err(|err| match err.code().map(|code| code.code()) {
                    Some("CS001") => HubError::SavedMeanwhile { id: id.to_owned() },
                    Some("CS002") => {
                        HubError::Storage(format!("document {id} is gone; send again"))
                    }
                    _ => storage(err),
                })
        })?;
        Ok(position(seq))
    }
}

impl DocumentStore for PostgresStore {
    /// The snapshot followed by the incremental saves since, as one statement read them.
    fn document(&self, id: &str) -> Result<Option<StoredDoc>, HubError> {
        let row = self.run(async {
            let client = self.client().await.map_err(hub)?;
            client
                .query_opt(READ_DOCUMENT, &[&id])
                .await
                .map_err(storage)
        })?;
        row.map(|row| stored_of(id, &row)).transpose()
    }

    /// In one statement.
    fn documents(&self, ids: &[&str]) -> Result<Vec<DocRead>, HubError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows = self.run(async {
            let client = self.client().await.map_err(hub)?;
            client.query(READ_DOCUMENTS, &[&ids]).await.map_err(storage)
        })?;
        let mut by_id: HashMap<String, tokio_postgres::Row> = rows
            .into_iter()
            .map(|row| (row.get::<_, String>(6), row))
            .collect();
        // Each row is let go at its id's last mention, so the saves are not held twice.
        let mut mentions: HashMap<&str, usize> = HashMap::new();
        for id in ids {
            *mentions.entry(id).or_default() += 1;
        }
        Ok(ids
            .iter()
            .map(|id| {
                let left = mentions.get_mut(id).expect("counted above");
                *left -= 1;
                let row = if *left == 0 {
                    by_id.remove(*id)
                } else {
                    by_id.get(*id).cloned()
                };
                match row {
                    Some(row) => stored_of(id, &row).map(Some),
                    None => Ok(None),
                }
            })
            .collect())
    }

    /// Replaces whatever is stored of the document: the save becomes its snapshot.
    fn save_document(
        &self,
        id: &str,
        meta: &DocMeta,
        bytes: &[u8],
        audit: &[AuditEntry],
    ) -> Result<u64, HubError> {
        let write = Write::Snapshot {
            bytes: bytes.to_vec(),
            covers: None,
        };
        self.store_version(id, meta, write, None, audit)
    }

    fn save_merged(
        &self,
        id: &str,
        meta: &DocMeta,
        read: Option<StoredVersion>,
        changes: Option<&[u8]>,
        full: &mut dyn FnMut() -> Vec<u8>,
        audit: &[AuditEntry],
    ) -> Result<u64, HubError> {
        let write = Write::merged(read, changes, full);
        self.store_version(id, meta, write, Some(read), audit)
    }

    /// The settled head, with this process's index caught up to it.
    fn feed_head(&self) -> Result<u64, HubError> {
        self.catch_up()
    }

    /// From the index, caught up first when `upto` is past what it holds.
    fn changed_since(
        &self,
        after: u64,
        upto: u64,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        if upto <= after {
            return Ok(Vec::new());
        }
        let mut held = self.index.head();
        if held < upto {
            held = self.catch_up()?;
        }
        let mut metas = self.index.changed_since(after, upto.min(held), keep)?;
        if held < upto {
            // Past the settled head (a cursor from a feed that moved on since): read as
            // stored, as every position there is.
            let (from, upto) = (bound(after.max(held)), bound(upto));
            let (rest, _, _) = self.metas(
                "SELECT id, meta FROM documents WHERE seq > $1 AND seq <= $2 ORDER BY seq",
                &[&from, &upto],
                keep,
                usize::MAX,
            )?;
            metas.extend(rest);
        }
        Ok(metas)
    }

    fn all_documents(&self) -> Result<Vec<DocMeta>, HubError> {
        self.catch_up()?;
        self.index.page(None, usize::MAX, &|_| true)
    }

    fn document_seq(&self, id: &str) -> Result<Option<u64>, HubError> {
        self.run(async {
            let client = self.client().await.map_err(hub)?;
            let row = client
                .query_opt("SELECT seq FROM documents WHERE id = $1", &[&id])
                .await
                .map_err(storage)?;
            Ok(row.map(|row| position(row.get(0))))
        })
    }

    /// In one statement, from the lengths of the stored pieces (the snapshot and the
    /// incremental saves joined make the bytes a read returns).
    fn document_sizes(&self, ids: &[&str]) -> Result<HashMap<String, usize>, HubError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        self.run(async {
            let client = self.client().await.map_err(hub)?;
            let rows = client
                .query(
                    "SELECT d.id, octet_length(d.bytes)::bigint + coalesce(
                         (SELECT sum(octet_length(c.bytes)) FROM document_changes c
                          WHERE c.doc_id = d.id), 0)::bigint
                     FROM documents d WHERE d.id = ANY($1)",
                    &[&ids],
                )
                .await
                .map_err(storage)?;
            Ok(rows
                .into_iter()
                .map(|row| {
                    let size: i64 = row.get(1);
                    (row.get(0), usize::try_from(size).unwrap_or(0))
                })
                .collect())
        })
    }

    fn document_seqs(&self, ids: &[&str]) -> Result<HashMap<String, u64>, HubError> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        self.run(async {
            let client = self.client().await.map_err(hub)?;
            let rows = client
                .query("SELECT id, seq FROM documents WHERE id = ANY($1)", &[&ids])
                .await
                .map_err(storage)?;
            Ok(rows
                .into_iter()
                .map(|row| (row.get(0), position(row.get(1))))
                .collect())
        })
    }

    /// A transaction that draws a position and commits nothing else: the settled head moves
    /// past it once it commits, as past a save.
    fn mark_feed(&self) -> Result<Option<u64>, HubError> {
        let _in_flight = self.saves.enter();
        self.run(async {
            let mut client = self.client().await.map_err(hub)?;
            let tx = client.transaction().await.map_err(storage)?;
            tx.batch_execute(LATER_DURABLE).await.map_err(storage)?;
            let mark: i64 = tx
                .query_one("SELECT feed_position()", &[])
                .await
                .map_err(storage)?
                .get(0);
            tx.commit().await.map_err(storage)?;
            Ok(Some(position(mark)))
        })
    }

    /// From the index, caught up first.
    fn documents_page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        self.catch_up()?;
        self.index.page(after, limit, keep)
    }

    /// From the index, caught up first.
    fn delivered_page(
        &self,
        reach: &Reach,
        after: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        self.catch_up()?;
        self.index.page_for(reach, after, limit, keep)
    }
}

impl AuditLog for PostgresStore {
    fn history(&self, doc_id: &str) -> Result<Vec<AuditEntry>, HubError> {
        self.run(async {
            let client = self.client().await.map_err(hub)?;
            let rows = client
                .query(
                    "SELECT entry FROM audit WHERE doc_id = $1 ORDER BY received_at_ms, change",
                    &[&doc_id],
                )
                .await
                .map_err(storage)?;
            rows.into_iter()
                .map(|row| from_json(doc_id, row.get(0)))
                .collect()
        })
    }
}

impl DeviceLedger for PostgresStore {
    fn device_docs(&self, device: &str) -> Result<Vec<(String, DeviceDoc)>, HubError> {
        self.run(async {
            let client = self.client().await.map_err(hub)?;
            let rows = client
                .query(
                    "SELECT doc_id, held FROM device_docs WHERE device = $1 ORDER BY doc_id",
                    &[&device],
                )
                .await
                .map_err(storage)?;
            rows.into_iter()
                .map(|row| {
                    let id: String = row.get(0);
                    let held = from_json(&id, row.get(1))?;
                    Ok((id, held))
                })
                .collect()
        })
    }

    fn device_doc_ids(&self, device: &str) -> Result<HashSet<String>, HubError> {
        self.run(async {
            let client = self.client().await.map_err(hub)?;
            let rows = client
                .query(
                    "SELECT doc_id FROM device_docs WHERE device = $1",
                    &[&device],
                )
                .await
                .map_err(storage)?;
            Ok(rows.into_iter().map(|row| row.get(0)).collect())
        })
    }

    fn device_doc(&self, device: &str, doc_id: &str) -> Result<Option<DeviceDoc>, HubError> {
        self.run(async {
            let client = self.client().await.map_err(hub)?;
            let row = client
                .query_opt(
                    "SELECT held FROM device_docs WHERE device = $1 AND doc_id = $2",
                    &[&device, &doc_id],
                )
                .await
                .map_err(storage)?;
            row.map(|row| from_json(doc_id, row.get(0))).transpose()
        })
    }

    fn put_device_docs(
        &self,
        device: &str,
        docs: &[(String, Option<DeviceDoc>)],
    ) -> Result<(), HubError> {
        // The last word on each document counts, as if written one after another; then
        // one statement for those held and one for those dropped, instead of one each.
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (at, (id, _)) in docs.iter().enumerate() {
            last.insert(id.as_str(), at);
        }
        let (mut held_ids, mut held, mut dropped) = (Vec::new(), Vec::new(), Vec::new());
        for (at, (id, doc)) in docs.iter().enumerate() {
            if last.get(id.as_str()) != Some(&at) {
                continue;
            }
            match doc {
                Some(doc) => {
                    held_ids.push(id.as_str());
                    held.push(to_json(doc)?);
                }
                None => dropped.push(id.as_str()),
            }
        }
        self.run(async {
            let mut client = self.client().await.map_err(hub)?;
            let tx = client.transaction().await.map_err(storage)?;
            tx.batch_execute(LATER_DURABLE).await.map_err(storage)?;
            if !held_ids.is_empty() {
                tx.execute(
                    "INSERT INTO device_docs (device, doc_id, held)
                     SELECT $1::text, * FROM unnest($2::text[], $3::jsonb[])
                     ON CONFLICT (device, doc_id) DO UPDATE SET held = EXCLUDED.held",
                    &[&device, &held_ids, &held],
                )
                .await
                .map_err(storage)?;
            }
            if !dropped.is_empty() {
                tx.execute(
                    "DELETE FROM device_docs WHERE device = $1 AND doc_id = ANY($2)",
                    &[&device, &dropped],
                )
                .await
                .map_err(storage)?;
            }
            tx.commit().await.map_err(storage)
        })
    }

    fn device_scope(&self, device: &str) -> Result<Option<String>, HubError> {
        self.run(async {
            let client = self.client().await.map_err(hub)?;
            let row = client
                .query_opt(
                    "SELECT scope FROM device_scope WHERE device = $1",
                    &[&device],
                )
                .await
                .map_err(storage)?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn put_device_scope(&self, device: &str, scope: &str) -> Result<(), HubError> {
        self.run(async {
            let client = self.client().await.map_err(hub)?;
            client
                .execute(
                    "INSERT INTO device_scope (device, scope) VALUES ($1, $2)
                     ON CONFLICT (device) DO UPDATE SET scope = EXCLUDED.scope",
                    &[&device, &scope],
                )
                .await
                .map_err(storage)?;
            Ok(())
        })
    }

    fn device_synced(&self, device: &str) -> Result<Option<i64>, HubError> {
        self.run(async {
            let client = self.client().await.map_err(hub)?;
            let row = client
                .query_opt(
                    "SELECT at_ms FROM device_synced WHERE device = $1",
                    &[&device],
                )
                .await
                .map_err(storage)?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn put_device_synced(&self, device: &str, at_ms: i64) -> Result<(), HubError> {
        self.run(async {
            let client = self.client().await.map_err(hub)?;
            client
                .execute(
                    "INSERT INTO device_synced (device, at_ms) VALUES ($1, $2)
                     ON CONFLICT (device) DO UPDATE SET at_ms = EXCLUDED.at_ms",
                    &[&device, &at_ms],
                )
                .await
                .map_err(storage)?;
            Ok(())
        })
    }

    fn claim_device(&self, device: &str) -> Result<Option<DeviceClaim<'_>>, HubError> {
        Ok(super::shared::device_lock(self, device)
            .map_err(hub)?
            .map(DeviceClaim::new))
    }

    fn sync_state(&self, device: &str, doc_id: &str) -> Result<Option<Vec<u8>>, HubError> {
        self.run(async {
            let client = self.client().await.map_err(hub)?;
            let row = client
                .query_opt(
                    "SELECT state FROM sync_states WHERE device = $1 AND doc_id = $2",
                    &[&device, &doc_id],
                )
                .await
                .map_err(storage)?;
            Ok(row.map(|row| row.get(0)))
        })
    }

    fn put_sync_state(&self, device: &str, doc_id: &str, state: &[u8]) -> Result<(), HubError> {
        self.run(async {
            let client = self.client().await.map_err(hub)?;
            client
                .execute(
                    "INSERT INTO sync_states (device, doc_id, state) VALUES ($1, $2, $3)
                     ON CONFLICT (device, doc_id) DO UPDATE SET state = EXCLUDED.state",
                    &[&device, &doc_id, &state],
                )
                .await
                .map_err(storage)?;
            Ok(())
        })
    }

    fn sync_states(&self, device: &str) -> Result<Vec<(String, Vec<u8>)>, HubError> {
        self.run(async {
            let client = self.client().await.map_err(hub)?;
            let rows = client
                .query(
                    "SELECT doc_id, state FROM sync_states WHERE device = $1 ORDER BY doc_id",
                    &[&device],
                )
                .await
                .map_err(storage)?;
            Ok(rows
                .into_iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect())
        })
    }

    fn forget_sync_states(&self, device: &str, doc_ids: &[String]) -> Result<(), HubError> {
        self.run(async {
            let client = self.client().await.map_err(hub)?;
            client
                .execute(
                    "DELETE FROM sync_states WHERE device = $1 AND doc_id = ANY($2)",
                    &[&device, &doc_ids],
                )
                .await
                .map_err(storage)?;
            Ok(())
        })
    }
}

impl HubStore for PostgresStore {
    /// Document saves and the device ledger's holdings commit without waiting for the disk
    /// (visible to every server at once, durable within PostgreSQL's `wal_writer_delay`
    /// times three), as sled's writes are durable only at its flush: a chief's sync saves a
    /// dozen documents and the hub calls this once, before its answer acknowledges any. It
    /// commits one transaction that waits for the disk, and the write-ahead log is one
    /// sequence: everything committed before it, on any connection or server, is on disk
    /// when it returns.
    fn durable(&self) -> Result<(), HubError> {
        self.run(async {
            let client = self.client().await.map_err(hub)?;
            client.batch_execute(DURABLE_NOW).await.map_err(storage)
        })
    }
}

/// Within a transaction: its commit does not wait for the disk ([`HubStore::durable`] does).
const LATER_DURABLE: &str = "SET LOCAL synchronous_commit TO off";

/// A commit that waits for the disk, whatever the server's default. PostgreSQL waits for the
/// disk at a commit only when the transaction has an id *and* wrote to the log itself (one
/// that only took an id commits without waiting, as if `synchronous_commit` were off: the
/// saves it was to make durable stayed in memory, and a crash of the database lost syncs
/// already answered). So it takes an id (`txid_current()`) and writes one log record
/// (`setval` on a sequence kept for this, schema migration 5), and its commit waits until
/// the log is on disk up to its record.
pub(super) const DURABLE_NOW: &str = "BEGIN; SET LOCAL synchronous_commit TO on; \
     SELECT txid_current(); SELECT setval('durable_mark', 1); COMMIT";

impl ReferenceSource for PostgresStore {
    fn asset(&self, id: &str) -> Result<Option<Asset>, HubError> {
        Store::get_asset(self, id).map_err(hub)
    }
    fn categories(&self) -> Result<Vec<Category>, HubError> {
        crate::reference::categories(self).map_err(hub)
    }
    fn user(&self, id: &str) -> Result<Option<User>, HubError> {
        Ok(Store::get_user(self, id)
            .map_err(hub)?
            .map(|record| record.user))
    }
    fn department_exists(&self, name: &str) -> Result<bool, HubError> {
        self.run(async {
            let client = self.client().await.map_err(hub)?;
            let row = client
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE department = $1)",
                    &[&name],
                )
                .await
                .map_err(storage)?;
            Ok(row.get(0))
        })
    }
}
