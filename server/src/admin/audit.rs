//! The audit of administrative changes: who changed what, when, and the record before and
//! after. Entries are written in the same transaction as the change they describe (an import's
//! entries with its records) and are never edited; the desk lists them newest first.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::storage::Store;

const PREFIX: &str = "admin.audit/";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub at_ms: i64,
    /// The administrator's user id and display name.
    pub by: String,
    pub by_name: String,
    /// What was done, e.g. `roster_import`, `user_update`, `asset_create`.
    pub action: String,
    /// What it was done to, in words (a person's name, an asset's name).
    pub target: String,
    /// Any JSON value (a record, a setting, a text) or null.
    #[schema(value_type = Option<Value>)]
    pub before: Option<Value>,
    /// Any JSON value (a record, a setting, a text) or null.
    #[schema(value_type = Option<Value>)]
    pub after: Option<Value>,
}

/// The stored `(key, value)` of an entry, for a batch.
pub fn entry(
    caller: &Caller,
    at_ms: i64,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(String, Vec<u8>), ApiError> {
    let entry = AuditEntry {
        at_ms,
        by: caller.user.id.clone(),
        by_name: caller.user.display_name.clone(),
        action: action.to_owned(),
        target: target.to_owned(),
        before,
        after,
    };
    let key = format!("{PREFIX}{at_ms:016}/{}", uuid::Uuid::now_v7());
    let value = serde_json::to_vec(&entry).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((key, value))
}

/// Writes one entry by itself (after a single-record change).
pub fn record(
    store: &dyn Store,
    caller: &Caller,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) -> Result<(), ApiError> {
    let (key, value) = entry(
        caller,
        crate::state::now_ms(),
        action,
        target,
        before,
        after,
    )?;
    store.put_meta(&key, &value)?;
    Ok(())
}

/// The newest `limit` entries, newest first.
pub fn newest(store: &dyn Store, limit: usize) -> Result<Vec<AuditEntry>, ApiError> {
    let all = store.list_meta(PREFIX)?;
    all.iter()
        .rev()
        .take(limit)
        .map(|(k, v)| {
            serde_json::from_slice(v)
                .map_err(|e| ApiError::Internal(format!("audit entry {k}: {e}")))
        })
        .collect()
}

/// A value as the audit keeps it.
pub fn json<T: Serialize>(value: &T) -> Option<Value> {
    serde_json::to_value(value).ok()
}
