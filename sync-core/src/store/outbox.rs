//! The photo outbox: every photo a chief attached, with its upload state, until the server has
//! it — and after, so a record can tell whether all its photos arrived.
//!
//! A photo is keyed by its SHA-256, so enqueuing it again (from a retry, or because a patrol and
//! the issue it raised show the same photo) never uploads it twice; it only links another
//! record. Failed attempts back off exponentially; an interrupted upload keeps its offset so it
//! resumes instead of starting over. Photos the server refused stay visible with the reason.
//! A photo the server holds leaves the outbox once no document on the phone references it any
//! more (its records were dropped from the bounded store: [`LocalStore::release_photos`]), and
//! the phone library then removes its file. This module does no uploading itself and must not
//! read photo files.

use serde::{Deserialize, Serialize};

use super::codec::{check_id, display_key, key, prefix, seal, unseal, unseal_json};
use super::local::{put, put_json, LocalStore};
use super::{BatchOp, StoreError};

/// The first retry waits this long; each further failure doubles it.
const FIRST_BACKOFF_MS: i64 = 5_000;
/// Retries never wait longer than an hour, so a chief back in coverage is not kept waiting.
const MAX_BACKOFF_MS: i64 = 3_600_000;

/// Where a photo's upload stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum UploadState {
    Waiting,
    /// Bytes before `offset` are known to be on the server.
    Uploading {
        offset: u64,
    },
    /// The server holds the whole, hash-verified photo. Final.
    Done,
    /// The server will not take this photo; kept so the chief sees why.
    Refused {
        reason: String,
    },
}

/// One photo in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Lowercase hex SHA-256 of the photo bytes: the blob's name on the server.
    pub sha256: String,
    /// The patrols and issues that reference this photo, sorted.
    pub record_ids: Vec<String>,
    /// Where the prepared photo file lies on the device.
    pub path: String,
    pub size: u64,
    pub state: UploadState,
    /// Failed attempts since the last progress; drives the backoff.
    pub attempts: u32,
    /// Not to be tried before this time (Unix milliseconds).
    pub next_attempt_ms: i64,
}

impl OutboxEntry {
    fn is_finished(&self) -> bool {
        matches!(self.state, UploadState::Done | UploadState::Refused { .. })
    }
}

/// How long to wait after the `attempts`-th consecutive failure.
fn backoff_ms(attempts: u32) -> i64 {
    let doublings = attempts.saturating_sub(1).min(20);
    (FIRST_BACKOFF_MS << doublings).min(MAX_BACKOFF_MS)
}

fn check_sha256(sha256: &str) -> Result<(), StoreError> {
    let ok = sha256.len() == 64
        && sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidId {
            what: "photo sha256",
            id: sha256.to_owned(),
        })
    }
}

fn entry_key(sha256: &str) -> Vec<u8> {
    key(&["outbox", sha256])
}

fn link_key(record_id: &str, sha256: &str) -> Vec<u8> {
    key(&["photo-of", record_id, sha256])
}

impl LocalStore {
    /// Puts a photo of a record into the outbox, due at once. If the photo is already there (same
    /// SHA-256), its upload state is kept and the record is only linked to it.
    pub fn enqueue_photo(
        &self,
        sha256: &str,
        record_id: &str,
        path: &str,
        size: u64,
    ) -> Result<OutboxEntry, StoreError> {
        check_sha256(sha256)?;
        check_id("record id", record_id)?;
        let _guard = self.lock();
        let k = entry_key(sha256);
        let mut entry = self.read_json::<OutboxEntry>(&k)?.unwrap_or(OutboxEntry {
            sha256: sha256.to_owned(),
            record_ids: Vec::new(),
            path: path.to_owned(),
            size,
            state: UploadState::Waiting,
            attempts: 0,
            next_attempt_ms: 0,
        });
        match entry
            .record_ids
            .binary_search_by(|r| r.as_str().cmp(record_id))
        {
            Ok(_) => return Ok(entry),
            Err(at) => entry.record_ids.insert(at, record_id.to_owned()),
        }
        let link = link_key(record_id, sha256);
        self.commit(vec![
            put(link.clone(), seal(&link, &[])),
            put_json(k, &entry)?,
        ])?;
        Ok(entry)
    }

    /// Every photo in the outbox, in SHA-256 order, for the upload screen.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.storage()
            .scan_prefix(&prefix(&["outbox"]))?
            .into_iter()
            .map(|(k, v)| unseal_json(&k, &v))
            .collect()
    }

    /// Photos to upload now: not done, not refused, and past their backoff; soonest due first.
    pub fn due_uploads(&self, now_ms: i64) -> Result<Vec<OutboxEntry>, StoreError> {
        let mut due: Vec<OutboxEntry> = self
            .outbox()?
            .into_iter()
            .filter(|e| !e.is_finished() && e.next_attempt_ms <= now_ms)
            .collect();
        due.sort_by(|a, b| (a.next_attempt_ms, &a.sha256).cmp(&(b.next_attempt_ms, &b.sha256)));
        Ok(due)
    }

    pub fn outbox_entry(&self, sha256: &str) -> Result<Option<OutboxEntry>, StoreError> {
        check_sha256(sha256)?;
        self.read_json(&entry_key(sha256))
    }

    /// Records that the server holds the first `offset` bytes. The server's offset wins even when
    /// it is lower than ours (it may have lost a partial upload). Progress resets the backoff.
    pub fn mark_progress(&self, sha256: &str, offset: u64) -> Result<OutboxEntry, StoreError> {
        self.update(sha256, |e| {
            e.state = UploadState::Uploading { offset };
            e.attempts = 0;
        })
    }

    pub fn mark_done(&self, sha256: &str) -> Result<OutboxEntry, StoreError> {
        self.update(sha256, |e| e.state = UploadState::Done)
    }

    /// Records a failed attempt (no network, server error, cut connection) and schedules the next
    /// one with exponential backoff. The offset reached so far is kept.
    pub fn mark_failed(&self, sha256: &str, now_ms: i64) -> Result<OutboxEntry, StoreError> {
        self.update(sha256, |e| {
            e.attempts = e.attempts.saturating_add(1);
            e.next_attempt_ms = now_ms.saturating_add(backoff_ms(e.attempts));
        })
    }

    /// Records that the server refused the photo; it stays listed with the reason.
    pub fn mark_refused(&self, sha256: &str, reason: &str) -> Result<OutboxEntry, StoreError> {
        self.update(sha256, |e| {
            e.state = UploadState::Refused {
                reason: reason.to_owned(),
            }
        })
    }

    /// The record's photos the server does not have yet (waiting, uploading or refused).
    pub fn pending_for(&self, record_id: &str) -> Result<Vec<OutboxEntry>, StoreError> {
        check_id("record id", record_id)?;
        let links = prefix(&["photo-of", record_id]);
        let mut pending = Vec::new();
        for (k, v) in self.storage().scan_prefix(&links)? {
            unseal(&k, &v)?;
            let sha256 = String::from_utf8_lossy(&k[links.len()..]).into_owned();
            let Some(entry) = self.outbox_entry(&sha256)? else {
                // Link and entry are written in one batch; a link without its entry is damage.
                return Err(StoreError::Corrupt {
                    key: display_key(&k),
                });
            };
            if entry.state != UploadState::Done {
                pending.push(entry);
            }
        }
        Ok(pending)
    }

    /// Lets go of the photos of documents no longer on the phone (dropped from the bounded
    /// store, or gone from the user's scope): each loses its links to them, and a photo the
    /// server holds that no document on the phone references any more leaves the outbox and
    /// is returned, for the caller to remove its file. A photo the server does not hold
    /// (waiting, uploading, refused) stays whatever became of its records: its records are
    /// unsent work and are never dropped. Nor does a record with changes the server refused
    /// let go of its photos, though the phone no longer holds it (a new record refused whole):
    /// the quarantine keeps the change that names them, and the server keeps a photo no
    /// stored record names only for a while. All in one atomic write; should the phone stop
    /// before the files are removed, they stay behind unlisted, and nothing listed lacks its
    /// file.
    pub fn release_photos(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        let _guard = self.lock();
        let mut writes = Vec::new();
        let mut released = Vec::new();
        for entry in self.outbox()? {
            if entry.state != UploadState::Done {
                continue;
            }
            let mut kept = Vec::with_capacity(entry.record_ids.len());
            for record in &entry.record_ids {
                if self.has_doc(record)? || !self.quarantined_for(record)?.is_empty() {
                    kept.push(record.clone());
                } else {
                    writes.push(BatchOp::Delete {
                        key: link_key(record, &entry.sha256),
                    });
                }
            }
            if kept.len() == entry.record_ids.len() {
                continue;
            }
            if kept.is_empty() {
                writes.push(BatchOp::Delete {
                    key: entry_key(&entry.sha256),
                });
                released.push(entry);
            } else {
                let key = entry_key(&entry.sha256);
                writes.push(put_json(
                    key,
                    &OutboxEntry {
                        record_ids: kept,
                        ..entry
                    },
                )?);
            }
        }
        if !writes.is_empty() {
            self.commit(writes)?;
        }
        Ok(released)
    }

    /// Whether every photo the record references is on the server (true if it has none).
    pub fn record_photos_done(&self, record_id: &str) -> Result<bool, StoreError> {
        Ok(self.pending_for(record_id)?.is_empty())
    }

    /// Applies `change` unless the photo is already done, which is final.
    fn update(
        &self,
        sha256: &str,
        change: impl FnOnce(&mut OutboxEntry),
    ) -> Result<OutboxEntry, StoreError> {
        check_sha256(sha256)?;
        let _guard = self.lock();
        let k = entry_key(sha256);
        let Some(mut entry) = self.read_json::<OutboxEntry>(&k)? else {
            return Err(StoreError::UnknownPhoto {
                sha256: sha256.to_owned(),
            });
        };
        if entry.state == UploadState::Done {
            return Ok(entry);
        }
        change(&mut entry);
        self.commit(vec![put_json(k, &entry)?])?;
        Ok(entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SledStorage;
    use std::sync::Arc;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn temp_store() -> LocalStore {
        LocalStore::new(Arc::new(SledStorage::temporary().unwrap()))
    }

    #[test]
    fn lifecycle_with_backoff_resume_and_done() {
        let store = temp_store();
        store
            .enqueue_photo(A, "patrol-1", "/p/a.jpg", 1000)
            .unwrap();
        assert_eq!(store.due_uploads(0).unwrap().len(), 1);

        store.mark_progress(A, 400).unwrap();
        let e = store.mark_failed(A, 1_000).unwrap();
        assert_eq!((e.attempts, e.next_attempt_ms), (1, 6_000));
        assert_eq!(e.state, UploadState::Uploading { offset: 400 });
        assert!(store.due_uploads(5_999).unwrap().is_empty());
        assert_eq!(store.due_uploads(6_000).unwrap()[0].sha256, A);

        let e = store.mark_failed(A, 6_000).unwrap();
        assert_eq!(e.next_attempt_ms, 16_000);
        let e = store.mark_failed(A, 16_000).unwrap();
        assert_eq!(e.next_attempt_ms, 36_000);

        // After a cut the server reports what it kept; that offset is where we resume.
        let e = store.mark_progress(A, 256).unwrap();
        assert_eq!(
            (e.state, e.attempts),
            (UploadState::Uploading { offset: 256 }, 0)
        );

        store.mark_done(A).unwrap();
        assert!(store.due_uploads(i64::MAX).unwrap().is_empty());
        assert!(store.record_photos_done("patrol-1").unwrap());
        // Done is final: a late report from an old attempt does not reopen it.
        assert_eq!(store.mark_failed(A, 0).unwrap().state, UploadState::Done);
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let waits: Vec<i64> = (1..=12).map(backoff_ms).collect();
        assert_eq!(&waits[..4], &[5_000, 10_000, 20_000, 40_000]);
        assert_eq!(waits[10], MAX_BACKOFF_MS);
        assert_eq!(backoff_ms(u32::MAX), MAX_BACKOFF_MS);
    }

    #[test]
    fn enqueue_is_idempotent_and_links_records_without_duplicating() {
        let store = temp_store();
        store.enqueue_photo(A, "patrol-1", "/p/a.jpg", 10).unwrap();
        store.mark_progress(A, 5).unwrap();
        let again = store.enqueue_photo(A, "patrol-1", "/p/a.jpg", 10).unwrap();
        assert_eq!(again.state, UploadState::Uploading { offset: 5 });
        let linked = store.enqueue_photo(A, "issue-9", "/p/a.jpg", 10).unwrap();
        assert_eq!(linked.record_ids, vec!["issue-9", "patrol-1"]);
        assert_eq!(linked.state, UploadState::Uploading { offset: 5 });
        assert_eq!(store.outbox().unwrap().len(), 1);
        assert_eq!(store.pending_for("issue-9").unwrap().len(), 1);
    }

    #[test]
    fn a_record_is_complete_only_when_all_its_photos_are_done() {
        let store = temp_store();
        assert!(store.record_photos_done("issue-1").unwrap());
        store.enqueue_photo(A, "issue-1", "/p/a.jpg", 10).unwrap();
        store.enqueue_photo(B, "issue-1", "/p/b.jpg", 20).unwrap();
        store.mark_done(A).unwrap();
        assert!(!store.record_photos_done("issue-1").unwrap());
        store.mark_refused(B, "not a JPEG").unwrap();
        let pending = store.pending_for("issue-1").unwrap();
        assert_eq!(
            pending[0].state,
            UploadState::Refused {
                reason: "not a JPEG".into()
            }
        );
        assert!(store.due_uploads(i64::MAX).unwrap().is_empty());
        assert!(!store.record_photos_done("issue-1").unwrap());
    }

    #[test]
    fn photos_the_server_holds_leave_with_the_last_document_that_references_them() {
        const C: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";
        const D: &str = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";
        let store = temp_store();
        for doc in ["patrol-1", "issue-1"] {
            store
                .append_doc_changes(doc, crate::store::DocKind::Patrol, b"chunk")
                .unwrap();
        }
        // A: on both records; B: only the patrol's; C: the patrol's, still waiting to go up;
        // D: the patrol's, refused.
        store.enqueue_photo(A, "patrol-1", "/p/a.jpg", 10).unwrap();
        store.enqueue_photo(A, "issue-1", "/p/a.jpg", 10).unwrap();
        store.enqueue_photo(B, "patrol-1", "/p/b.jpg", 20).unwrap();
        store.enqueue_photo(C, "patrol-1", "/p/c.jpg", 30).unwrap();
        store.enqueue_photo(D, "patrol-1", "/p/d.jpg", 40).unwrap();
        for done in [A, B] {
            store.mark_done(done).unwrap();
        }
        store.mark_refused(D, "not a JPEG").unwrap();
        // While every record is on the phone, nothing goes.
        assert!(store.release_photos().unwrap().is_empty());
        assert_eq!(store.outbox().unwrap().len(), 4);

        store.remove_doc("patrol-1").unwrap();
        let released = store.release_photos().unwrap();
        assert_eq!(
            released
                .iter()
                .map(|e| e.sha256.as_str())
                .collect::<Vec<_>>(),
            vec![B],
            "only the photo the server holds and no record on the phone references"
        );
        assert_eq!(released[0].path, "/p/b.jpg");
        let a = store
            .outbox_entry(A)
            .unwrap()
            .expect("still referenced by the issue");
        assert_eq!(a.record_ids, vec!["issue-1"]);
        assert_eq!(
            store.outbox_entry(C).unwrap().unwrap().state,
            UploadState::Waiting
        );
        assert!(store.outbox_entry(D).unwrap().is_some());
        assert_eq!(store.pending_for("patrol-1").unwrap().len(), 2);
        // Released once: the next pass finds nothing more to do.
        assert!(store.release_photos().unwrap().is_empty());

        store.remove_doc("issue-1").unwrap();
        let released = store.release_photos().unwrap();
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].sha256, A);
        assert!(store.outbox_entry(A).unwrap().is_none());
        assert!(store.record_photos_done("issue-1").unwrap());
    }

    #[test]
    fn a_refused_record_keeps_its_photos_though_the_phone_no_longer_holds_it() {
        let store = temp_store();
        store
            .append_doc_changes("patrol-1", crate::store::DocKind::Patrol, b"chunk")
            .unwrap();
        store.enqueue_photo(A, "patrol-1", "/p/a.jpg", 10).unwrap();
        store.mark_done(A).unwrap();
        // The server refused the new patrol whole: its change waits in the quarantine, and
        // the phone holds nothing of it.
        store
            .quarantine(&crate::store::QuarantinedChange {
                doc_id: "patrol-1".into(),
                change_hash: "ab".repeat(32),
                change: b"change".to_vec(),
                reason: "asset_out_of_scope".into(),
                refused_at_ms: 1,
            })
            .unwrap();
        store.remove_doc("patrol-1").unwrap();
        assert!(store.release_photos().unwrap().is_empty());
        assert!(store.outbox_entry(A).unwrap().is_some());
    }

    #[test]
    fn outbox_survives_reopen_and_rejects_unknown_or_malformed_hashes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LocalStore::open(dir.path()).unwrap();
            store.enqueue_photo(A, "patrol-1", "/p/a.jpg", 10).unwrap();
            store.mark_progress(A, 7).unwrap();
        }
        let store = LocalStore::open(dir.path()).unwrap();
        let e = store.outbox_entry(A).unwrap().unwrap();
        assert_eq!(e.state, UploadState::Uploading { offset: 7 });
        assert!(matches!(
            store.mark_done(B),
            Err(StoreError::UnknownPhoto { .. })
        ));
        assert!(matches!(
            store.enqueue_photo(&A.to_uppercase(), "p", "/x", 1),
            Err(StoreError::InvalidId { .. })
        ));
    }
}
