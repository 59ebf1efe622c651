//! The server's settings, each read in one place: the workflow's timings (how long after a
//! missed deadline an issue is escalated, how often the deadline job runs, …) from the
//! command line, and the settings stored in meta that sync-core's rules read — patrol rules and
//! quotas, problem categories, check items.
//!
//! A stored setting that cannot be read is an error (`StoreError::Corrupt`, answered as a
//! logged 500 by every route that needs it), never a silent fallback to defaults: a damaged rule
//! set must not quietly change which patrols count. Only an absent setting (a store seeded
//! before the setting existed) reads as sync-core's default.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sync_core::model::{default_categories, default_check_items, Category, CheckItem};
use sync_core::rules::RuleSet;

use crate::storage::{Store, StoreError};

pub const CATEGORIES_KEY: &str = "reference.categories";
pub const CHECK_ITEMS_KEY: &str = "reference.check_items";
pub const RULES_KEY: &str = "reference.rules";
pub const DEVICE_TIMES_KEY: &str = "settings.device_times";

/// How the server bounds the times phones supply (see `sync_core::rules::times`), beyond the
/// fixed tolerances there.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DeviceTimes {
    /// How long before a device's binding (first sign-in) its times still count, milliseconds.
    /// 0 in production: a phone cannot record before it was signed in. A deployment that brings
    /// in work recorded before its phones were bound (a simulation, a migration of earlier
    /// records) sets it for the time that takes, and says so.
    pub binding_grace_ms: i64,
}

/// Settings of the workflow's background work and of duplicate detection.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowSettings {
    /// How long after a missed deadline an issue is escalated.
    pub overdue_grace_ms: i64,
    /// How often the deadline job runs.
    pub deadline_check_every: Duration,
    /// Two open issues of the same category closer than this are possible duplicates.
    pub duplicate_radius_m: f64,
    /// A photo upload left unfinished this long is removed by the job (the phone starts it
    /// again from the beginning if it ever comes back).
    pub abandoned_upload_after: Duration,
}

impl Default for WorkflowSettings {
    fn default() -> Self {
        Self {
            overdue_grace_ms: 0,
            deadline_check_every: Duration::from_secs(300),
            duplicate_radius_m: 50.0,
            abandoned_upload_after: Duration::from_secs(7 * 86_400),
        }
    }
}

fn setting<T: DeserializeOwned>(
    store: &dyn Store,
    key: &str,
    default: impl FnOnce() -> T,
) -> Result<T, StoreError> {
    match store.get_meta(key)? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            tracing::error!(setting = key, error = %e, "stored setting cannot be read");
            StoreError::Corrupt {
                key: key.to_owned(),
                detail: e.to_string(),
            }
        }),
        None => Ok(default()),
    }
}

fn put_setting_if_absent<T: Serialize>(
    store: &dyn Store,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    if store.get_meta(key)?.is_none() {
        let bytes = serde_json::to_vec(value).map_err(|e| StoreError::Backend(e.to_string()))?;
        store.put_meta(key, &bytes)?;
    }
    Ok(())
}

/// Stores sync-core's default categories, check items and rules as this server's settings.
pub fn seed_defaults(store: &dyn Store) -> Result<(), StoreError> {
    put_setting_if_absent(store, CATEGORIES_KEY, &default_categories())?;
    put_setting_if_absent(store, CHECK_ITEMS_KEY, &default_check_items())?;
    put_setting_if_absent(store, RULES_KEY, &RuleSet::default())
}

/// The patrol rules and quotas in force: the one reader of the stored rule set, used by
/// reference data, `/patrols`, the reminders and the statistics alike.
pub fn patrol_rules(store: &dyn Store) -> Result<RuleSet, StoreError> {
    setting(store, RULES_KEY, RuleSet::default)
}

/// How phone times are bounded ([`DeviceTimes`]; absent means none of its allowances).
pub fn device_times(store: &dyn Store) -> Result<DeviceTimes, StoreError> {
    setting(store, DEVICE_TIMES_KEY, DeviceTimes::default)
}

/// The problem categories in force.
pub fn categories(store: &dyn Store) -> Result<Vec<Category>, StoreError> {
    setting(store, CATEGORIES_KEY, default_categories)
}

/// The patrol check items in force.
pub fn check_items(store: &dyn Store) -> Result<Vec<CheckItem>, StoreError> {
    setting(store, CHECK_ITEMS_KEY, default_check_items)
}
