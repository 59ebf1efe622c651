//! The quarantine: changes the server refused, kept on the device where the chief can see them.
//!
//! A refused change is never dropped silently. It stays here, with the server's reason, until
//! the app releases it (for example after the chief resolved it or it was accepted on retry).
//! Entries are keyed by document and change hash, so reporting the same refusal twice keeps one
//! entry. This module only records refusals; deciding what to retry belongs to the sync engine.

use serde::{Deserialize, Serialize};

use super::codec::{check_id, key, prefix, unseal_json};
use super::local::{put_json, LocalStore};
use super::storage::BatchOp;
use super::StoreError;

/// One change the server refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuarantinedChange {
    pub doc_id: String,
    /// The automerge change hash, hex.
    pub change_hash: String,
    /// The raw change bytes, so it can be shown, retried or exported.
    pub change: Vec<u8>,
    /// The server's reason, as shown to the chief.
    pub reason: String,
    pub refused_at_ms: i64,
}

fn entry_key(doc_id: &str, change_hash: &str) -> Vec<u8> {
    key(&["quarantine", doc_id, change_hash])
}

impl LocalStore {
    /// Keeps a refused change. Returns `false` if it was already quarantined, in which case the
    /// first record (and its time of refusal) is kept.
    pub fn quarantine(&self, change: &QuarantinedChange) -> Result<bool, StoreError> {
        check_id("document id", &change.doc_id)?;
        check_id("change hash", &change.change_hash)?;
        let _guard = self.lock();
        let k = entry_key(&change.doc_id, &change.change_hash);
        if self.read_json::<QuarantinedChange>(&k)?.is_some() {
            return Ok(false);
        }
        self.commit(vec![put_json(k, change)?])?;
        Ok(true)
    }

    /// Every quarantined change, by document and hash.
    pub fn quarantined(&self) -> Result<Vec<QuarantinedChange>, StoreError> {
        self.scan_quarantine(&prefix(&["quarantine"]))
    }

    /// The quarantined changes of one document, to flag it on the chief's screen.
    pub fn quarantined_for(&self, doc_id: &str) -> Result<Vec<QuarantinedChange>, StoreError> {
        check_id("document id", doc_id)?;
        self.scan_quarantine(&prefix(&["quarantine", doc_id]))
    }

    /// Takes a change out of the quarantine and hands it back, or `None` if it was not there.
    pub fn release(
        &self,
        doc_id: &str,
        change_hash: &str,
    ) -> Result<Option<QuarantinedChange>, StoreError> {
        check_id("document id", doc_id)?;
        check_id("change hash", change_hash)?;
        let _guard = self.lock();
        let k = entry_key(doc_id, change_hash);
        let Some(change) = self.read_json::<QuarantinedChange>(&k)? else {
            return Ok(None);
        };
        self.commit(vec![BatchOp::Delete { key: k }])?;
        Ok(Some(change))
    }

    fn scan_quarantine(&self, range: &[u8]) -> Result<Vec<QuarantinedChange>, StoreError> {
        self.storage()
            .scan_prefix(range)?
            .into_iter()
            .map(|(k, v)| unseal_json(&k, &v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SledStorage, Storage};
    use std::sync::Arc;

    fn refused(doc_id: &str, hash: &str, at: i64) -> QuarantinedChange {
        QuarantinedChange {
            doc_id: doc_id.into(),
            change_hash: hash.into(),
            change: vec![0x85, 0x6f, 0x4a, 0x83, 1, 2, 3],
            reason: "only the assignee may submit a rectification".into(),
            refused_at_ms: at,
        }
    }

    #[test]
    fn quarantine_is_idempotent_and_keeps_the_first_refusal() {
        let store = LocalStore::new(Arc::new(SledStorage::temporary().unwrap()));
        assert!(store.quarantine(&refused("issue-1", "ab12", 100)).unwrap());
        assert!(!store.quarantine(&refused("issue-1", "ab12", 200)).unwrap());
        assert!(store.quarantine(&refused("issue-1", "cd34", 300)).unwrap());
        assert!(store.quarantine(&refused("issue-10", "ab12", 400)).unwrap());
        let all = store.quarantined().unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0], refused("issue-1", "ab12", 100));
        // "issue-1" must not pick up the changes of "issue-10".
        assert_eq!(store.quarantined_for("issue-1").unwrap().len(), 2);
    }

    #[test]
    fn release_hands_the_change_back_once() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = LocalStore::open(dir.path()).unwrap();
            store.quarantine(&refused("patrol-1", "ff00", 5)).unwrap();
        }
        let store = LocalStore::open(dir.path()).unwrap();
        let back = store.release("patrol-1", "ff00").unwrap();
        assert_eq!(back, Some(refused("patrol-1", "ff00", 5)));
        assert_eq!(store.release("patrol-1", "ff00").unwrap(), None);
        assert!(store.quarantined().unwrap().is_empty());
    }

    #[test]
    fn a_damaged_entry_is_reported_not_skipped() {
        let storage = Arc::new(SledStorage::temporary().unwrap());
        let store = LocalStore::new(storage.clone());
        store.quarantine(&refused("issue-1", "ab12", 1)).unwrap();
        let k = entry_key("issue-1", "ab12");
        let mut raw = storage.get(&k).unwrap().unwrap();
        raw[10] ^= 1;
        storage.put(&k, &raw).unwrap();
        assert!(matches!(
            store.quarantined(),
            Err(StoreError::Corrupt { key }) if key == "quarantine/issue-1/ab12"
        ));
    }
}
