//! The integrity check of the server's documents: every stored document is read back through
//! its checksum and loaded as automerge, and each one that fails is reported by id with the
//! reason. Run by `chiefsync verify`; the rest of the store keeps serving while damaged
//! documents wait for an operator (a damaged document is never loaded as valid data).

use automerge::AutoCommit;
use serde::Serialize;
use sync_core::hub::{HubError, HubStore};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Damage {
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IntegrityReport {
    pub documents_checked: usize,
    pub damaged: Vec<Damage>,
}

/// Reads every document the store lists.
pub fn check_documents(store: &dyn HubStore) -> Result<IntegrityReport, HubError> {
    let mut report = IntegrityReport::default();
    for meta in store.all_documents()? {
        report.documents_checked += 1;
        let reason = match store.document(&meta.id) {
            Ok(Some(stored)) => AutoCommit::load(&stored.bytes).err().map(|e| e.to_string()),
            Ok(None) => Some("listed but absent".to_owned()),
            Err(HubError::Damaged { reason, .. }) => Some(reason),
            Err(err) => return Err(err),
        };
        if let Some(reason) = reason {
            report.damaged.push(Damage {
                id: meta.id,
                reason,
            });
        }
    }
    Ok(report)
}
