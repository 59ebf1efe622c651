//! Statistics and exports on the server: keeping sync-core's per-document facts up to date with
//! the change feed, turning a supervisor's query into a scoped filter, and rendering the reports
//! as CSV, XLSX, GeoJSON, SVG charts and the printable monthly report (月报).
//!
//! Figures come from `sync_core::stats` only; this module re-reads the documents the feed says
//! changed since the last request (never everything on every request), keeps the facts in the
//! store so a restart reads them back instead of the documents, and works them out from scratch
//! only when reference data that validity depends on (users, assets, rules) changed.
//! HTTP lives in `api::stats`.

pub mod charts;
pub mod files;
pub mod geojson;
pub mod overview;
pub mod page;
pub mod query;
pub mod tables;

use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;

use sync_core::model::{Asset, Category, Division, User};
use sync_core::rules::RuleSet;
use sync_core::stats::{DocFact, FactIndex, Reference, FACTS_FORMAT};

use crate::settings::{categories, patrol_rules};
use crate::storage::{Store, StoreError, StoredFact};

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

    /// The generation of the facts judged with these inputs: the facts' format version and a
    /// SHA-256 of everything a fact depends on besides its document (chiefs, assets, patrol
    /// rules, the bounds of phone times). Stable between builds and servers, so servers on one
    /// database agree on it and a restart finds its facts still current.
    pub fn generation(&self) -> String {
        use sha2::Digest;
        let json =
            serde_json::to_vec(&(&self.users, &self.assets, &self.rules, &self.device_times))
                .unwrap_or_default();
        format!(
            "{FACTS_FORMAT}-{}",
            hex::encode(sha2::Sha256::digest(&json))
        )
    }
}

/// Documents worked out and stored per step: each step is one transaction, so a first start
/// over a large store keeps what it has done if it stops half way.
const STORE_BATCH: usize = 500;

#[derive(Debug, Default)]
struct Cached {
    /// The generation the facts in memory belong to (empty before the first request).
    generation: String,
    /// Feed position up to which documents have been read (or their stored facts loaded).
    cursor: u64,
    index: FactIndex,
}

/// The facts of every document, kept current with the change feed, in memory and in the store
/// (`storage::FactStore`). One per server.
///
/// A request (or [`spawn_keeper`]'s tick) first reads back what the store holds past the
/// server's cursor: after a start that is every stored fact (no document is read), on a server
/// sharing its database it is what the others worked out. Then it works out the documents saved
/// since and stores their facts with the new cursor. Changing the rules, chiefs, assets or
/// phone-time bounds starts a new generation: every fact is worked out again, once, by
/// whichever server meets it first while the others read the result back.
#[derive(Debug, Default)]
pub struct StatsCache {
    inner: Mutex<Cached>,
    derived: Counter,
    stored: Counter,
    generations: Counter,
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
        self.with_facts_of(store, &StatsInputs::load(store)?, f)
    }

    /// [`Self::with_facts`] judged with `reference`, read by the caller.
    pub fn with_facts_of<T>(
        &self,
        store: &dyn Store,
        reference: &StatsInputs,
        f: impl FnOnce(&FactIndex, &Reference) -> T,
    ) -> Result<T, StatsError> {
        let mut cached = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        self.catch_up(&mut cached, store, reference)?;
        Ok(f(&cached.index, &reference.view()))
    }

    /// The counters behind the `chiefsync_stats_facts_*` metrics: facts worked out from
    /// documents, facts read back from the store, generations started.
    pub fn counters(&self) -> (Counter, Counter, Counter) {
        (
            self.derived.clone(),
            self.stored.clone(),
            self.generations.clone(),
        )
    }

    fn catch_up(
        &self,
        cached: &mut Cached,
        store: &dyn Store,
        reference: &StatsInputs,
    ) -> Result<(), StatsError> {
        let generation = reference.generation();
        if cached.generation != generation {
            *cached = Cached {
                generation: generation.clone(),
                ..Cached::default()
            };
        }
        // Read the head before the mark: facts stored up to the mark never reach past a head
        // read later, so the documents between the two are worked out below.
        let head = store.feed_head()?;
        match store.facts_mark()? {
            Some(mark) if mark.generation == generation => {
                if mark.cursor < cached.cursor {
                    // The store is behind this server (a step of ours was not stored, or the
                    // generation was started again): work out again from where it is, so the
                    // cursor stored below never passes a document without its fact.
                    cached.cursor = mark.cursor;
                } else if mark.cursor > cached.cursor {
                    for stored in store.facts_since(&generation, cached.cursor)? {
                        cached.index.upsert(stored.fact);
                        self.stored.inc();
                    }
                    cached.cursor = mark.cursor;
                }
            }
            _ => {
                // None stored, or of other rules, reference data or format: start over.
                store.start_facts(&generation)?;
                self.generations.inc();
                cached.cursor = 0;
                cached.index = FactIndex::default();
            }
        }
        if head <= cached.cursor {
            return Ok(());
        }
        let view = reference.view();
        let changed = store.changed_since(cached.cursor, head, &|_| true)?;
        let batches = changed.chunks(STORE_BATCH).count();
        let mut complete = true;
        let mut clocks = crate::derived::Clocks::new(store, &reference.device_times);
        for (n, batch) in changed.chunks(STORE_BATCH).enumerate() {
            let mut facts = Vec::with_capacity(batch.len());
            // Read from the store a few dozen at a time: one round trip each, and at most
            // that many saves in memory.
            for metas in batch.chunks(sync_core::hub::DOCS_PER_READ) {
                let ids: Vec<&str> = metas.iter().map(|meta| meta.id.as_str()).collect();
                // A short answer is refused: the cursor must not pass a document whose fact
                // was not worked out.
                let read = sync_core::hub::read_documents(store, &ids)?;
                for (meta, stored) in metas.iter().zip(read) {
                    let Some(stored) = stored? else {
                        continue;
                    };
                    // A patrol's times are bounded by what the server knows of the phone's clock,
                    // exactly as `/patrols` and the reminders bound them.
                    let clock = match meta.kind {
                        sync_core::doc::DocKind::Patrol => clocks.of(&meta.id)?,
                        sync_core::doc::DocKind::Issue => Default::default(),
                    };
                    match DocFact::of_bytes(&stored.bytes, &view, &clock) {
                        Ok(fact) => {
                            self.derived.inc();
                            cached.index.upsert(fact.clone());
                            facts.push(StoredFact { seq: head, fact });
                        }
                        Err(err) => {
                            tracing::warn!(doc = %meta.id, %err, "document left out of statistics");
                        }
                    }
                }
            }
            // The cursor moves with the last step only, and only when every step before it was
            // stored: until then a stop, or a step the store refused, leaves it where the facts
            // in the store are complete (every server reading the store works out what is past
            // it again).
            let cursor = if n + 1 == batches && complete {
                head
            } else {
                0
            };
            match store.put_facts(&generation, &facts, cursor) {
                Ok(true) => {}
                Ok(false) => {
                    complete = false;
                    tracing::info!(
                        "statistics facts not stored: another server started a generation"
                    )
                }
                Err(err) => {
                    complete = false;
                    tracing::warn!(%err, "statistics facts not stored")
                }
            }
        }
        cached.cursor = head;
        Ok(())
    }

    /// Brings the facts up to date without a request: called at start (reading the stored
    /// facts back) and then every few seconds, so the store's facts follow the saves and the
    /// first report after a restart reads them rather than the documents.
    pub fn keep_up(&self, store: &dyn Store) -> Result<(), StatsError> {
        self.with_facts(store, |_, _| ())
    }
}

/// How often [`spawn_keeper`] brings the facts up to date.
pub const KEEP_UP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts keeping the statistics facts up to date on the current actix runtime: once right
/// away, then every [`KEEP_UP_EVERY`]. Work runs off the async workers.
pub fn spawn_keeper(
    state: actix_web::web::Data<crate::state::AppState>,
) -> actix_web::rt::task::JoinHandle<()> {
    actix_web::rt::spawn(async move {
        let mut tick = actix_web::rt::time::interval(KEEP_UP_EVERY);
        loop {
            tick.tick().await;
            let job = state.clone();
            match actix_web::web::block(move || job.stats.keep_up(job.store.as_ref())).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::warn!(error = %err, "statistics facts not kept up"),
                Err(err) => tracing::warn!(error = %err, "statistics facts not kept up"),
            }
        }
    })
}
