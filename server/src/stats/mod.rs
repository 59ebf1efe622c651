//! Statistics and exports on the server: keeping sync-core's per-document facts up to date with
//! the change feed, turning a supervisor's query into a scoped filter, and rendering the reports
//! as CSV, XLSX, GeoJSON, SVG charts and the printable monthly report (月报).
//!
//! Figures come from `sync_core::stats` only; this module re-reads the documents the feed says
//! changed since the last request (never everything on every request), and rebuilds the facts
//! from scratch only when reference data that validity depends on (users, assets, rules) changed.
//! HTTP lives in `api::stats`.

pub mod charts;
pub mod files;
pub mod geojson;
pub mod overview;
pub mod page;
pub mod query;
pub mod tables;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use sync_core::model::{Asset, Category, Division, User};
use sync_core::rules::RuleSet;
use sync_core::stats::{FactIndex, Reference};

use crate::settings::{categories, patrol_rules};
use crate::storage::{Store, StoreError};

/// What statistics judge and name records by (users, divisions, assets, patrol rules,
/// categories, the bounds of phone times), owned; `view` lends it as sync-core's
/// `stats::Reference`. Not the reference data a device downloads (`crate::reference`).
#[derive(Debug, Clone)]
pub struct StatsInputs {
    pub users: Vec<User>,
    pub divisions: Vec<Division>,
    pub assets: Vec<Asset>,
    pub rules: RuleSet,
    pub categories: Vec<Category>,
    /// How phone times are bounded: changing it re-judges every patrol.
    pub device_times: crate::settings::DeviceTimes,
}

impl StatsInputs {
    pub fn load(store: &dyn Store) -> Result<Self, StoreError> {
        Ok(Self {
            users: store.list_users()?.into_iter().map(|r| r.user).collect(),
            divisions: store.list_divisions()?,
            assets: store.list_assets()?,
            rules: patrol_rules(store)?,
            categories: categories(store)?,
            device_times: crate::settings::device_times(store)?,
        })
    }

    pub fn view(&self) -> Reference<'_> {
        Reference {
            users: &self.users,
            divisions: &self.divisions,
            assets: &self.assets,
            rules: &self.rules,
            categories: &self.categories,
        }
    }

    /// Changes whenever anything a patrol's validity depends on changes.
    fn fingerprint(&self) -> u64 {
        let mut hasher = DefaultHasher::new();
        let json =
            serde_json::to_vec(&(&self.users, &self.assets, &self.rules, &self.device_times))
                .unwrap_or_default();
        json.hash(&mut hasher);
        hasher.finish()
    }
}

#[derive(Debug, Default)]
struct Cached {
    /// Feed position up to which documents have been read.
    cursor: u64,
    fingerprint: u64,
    index: FactIndex,
}

/// The facts of every document, kept current with the change feed. One per server.
#[derive(Debug, Default)]
pub struct StatsCache {
    inner: Mutex<Cached>,
}

#[derive(Debug, thiserror::Error)]
pub enum StatsError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hub(#[from] sync_core::hub::HubError),
}

impl StatsCache {
    /// Brings the facts up to date (reading only documents changed since the last call) and
    /// runs `f` over them. Blocking: call inside `web::block`.
    pub fn with_facts<T>(
        &self,
        store: &dyn Store,
        f: impl FnOnce(&FactIndex, &Reference) -> T,
    ) -> Result<T, StatsError> {
        let reference = StatsInputs::load(store)?;
        let fingerprint = reference.fingerprint();
        let head = store.feed_head()?;
        let mut cached = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if cached.fingerprint != fingerprint {
            *cached = Cached {
                cursor: 0,
                fingerprint,
                index: FactIndex::default(),
            };
        }
        if head > cached.cursor {
            let view = reference.view();
            for meta in store.changed_since(cached.cursor, head, &|_| true)? {
                let Some(stored) = store.document(&meta.id)? else {
                    continue;
                };
                // A patrol's times are bounded by what the server knows of the phone's clock,
                // exactly as `/patrols` and the reminders bound them.
                let clock = match meta.kind {
                    sync_core::doc::DocKind::Patrol => {
                        crate::derived::device_clock(store, &meta.id)?
                    }
                    sync_core::doc::DocKind::Issue => Default::default(),
                };
                if let Err(err) = cached.index.upsert_bytes_at(&stored.bytes, &view, &clock) {
                    tracing::warn!(doc = %meta.id, %err, "document left out of statistics");
                }
            }
            cached.cursor = head;
        }
        Ok(f(&cached.index, &reference.view()))
    }
}
