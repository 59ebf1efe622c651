//! The application state shared by every worker: the store, token and password services, the
//! login limiter and the metrics registry, built once from [`Settings`].
//!
//! Opening the state is the only place that touches the data directory (sled database and
//! signing key file); handlers reach storage through `AppState::store` only.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sync_core::hub::Hub;

use crate::auth::jwt::TokenService;
use crate::auth::password::{PasswordCost, PasswordError, PasswordPool, Passwords, PASSWORD_QUEUE};
use crate::auth::rate_limit::{LoginLimit, LoginLimiter};
use crate::auth::signing_key::{SigningKey, SigningKeyError};
use crate::metrics::Metrics;
use crate::settings::WorkflowSettings;
use crate::storage::{PostgresStore, SledStore, Store, StoreError};

/// Everything the service needs to start, independent of how it was configured.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// A `postgres://` address to keep the store in PostgreSQL instead of sled under
    /// `data_dir/db` (photos and the signing key stay in `data_dir`).
    pub database: Option<String>,
    /// The token signing key; generated into the data dir when `None`.
    pub signing_key: Option<String>,
    pub access_ttl_secs: u64,
    pub refresh_ttl_secs: u64,
    pub password_cost: PasswordCost,
    pub login_limit: LoginLimit,
    /// Largest photo accepted, bytes.
    pub max_photo_bytes: u64,
    /// Deadline job and duplicate detection.
    pub workflow: WorkflowSettings,
    /// Sync and upload requests served at once; more are shed with 503 (`crate::shed`).
    pub max_in_flight: usize,
    /// Of those, at most this many for one user (`crate::shed`).
    pub max_in_flight_per_user: usize,
    /// How slowly a request body may arrive before the request is ended (`crate::shed`).
    pub body_rate: crate::shed::BodyRate,
    /// Threads that check and hash passwords (`crate::auth::password::PasswordPool`).
    pub password_threads: usize,
    /// Photo bytes per user and day, and how long an unreferenced photo is kept.
    pub photos: crate::photos::PhotoSettings,
    /// The desk's basemap and photo pairing.
    pub desk: crate::desk::DeskSettings,
    /// Where photos are kept (`--blobs`): files under the data directory, or a bucket.
    pub blobs: crate::blobs::BlobLocation,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`--trusted-proxy`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl Settings {
    /// Production defaults for a data directory (the command line overrides each of them).
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            database: None,
            signing_key: None,
            access_ttl_secs: 900,
            refresh_ttl_secs: 30 * 24 * 3600,
            password_cost: PasswordCost::DEFAULT,
            login_limit: LoginLimit::default(),
            max_photo_bytes: crate::blobs::DEFAULT_MAX_PHOTO_BYTES,
            workflow: WorkflowSettings::default(),
            max_in_flight: crate::shed::DEFAULT_MAX_IN_FLIGHT,
            max_in_flight_per_user: crate::shed::DEFAULT_MAX_IN_FLIGHT_PER_USER,
            body_rate: crate::shed::BodyRate::default(),
            password_threads: crate::auth::password::DEFAULT_PASSWORD_THREADS,
            photos: crate::photos::PhotoSettings::default(),
            desk: crate::desk::DeskSettings::default(),
            blobs: crate::blobs::BlobLocation::default(),
            trusted_proxies: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    SigningKey(#[from] SigningKeyError),
    #[error("token keys: {0}")]
    Tokens(#[from] jsonwebtoken::errors::Error),
    #[error(transparent)]
    Password(#[from] PasswordError),
    #[error("starting the password threads: {0}")]
    PasswordThreads(std::io::Error),
    #[error(transparent)]
    Blobs(#[from] crate::blobs::BlobError),
}

#[derive(Debug)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Sync decisions over the same store (documents, feed, per-device records).
    pub hub: Arc<Hub<Arc<dyn Store>>>,
    pub tokens: TokenService,
    pub passwords: Passwords,
    /// Where password checks run, off the blocking threads.
    pub password_pool: PasswordPool,
    pub login_limiter: LoginLimiter,
    pub metrics: Metrics,
    /// Photo blobs (under `data_dir/blobs` or in a bucket), and which documents reference each.
    pub blobs: Arc<crate::blobs::Blobs>,
    pub photo_index: crate::photos::PhotoIndex,
    pub photo_quota: crate::photos::UploadQuota,
    pub photo_settings: crate::photos::PhotoSettings,
    /// Statistics' per-document facts, kept current with the change feed.
    pub stats: crate::stats::StatsCache,
    /// The overviews delivered with the sync, kept per user while they hold.
    pub overviews: crate::stats::overview::OverviewCache,
    /// The board's, patrol list's and reminders' per-document facts, kept current with the
    /// change feed.
    pub derived: crate::derived::Derived,
    pub refresh_ttl_secs: u64,
    pub workflow: WorkflowSettings,
    /// Sync and upload requests in progress, against `Settings::max_in_flight`.
    pub load: crate::shed::LoadShed,
    /// The public channel: challenges, tickets and rate counters (`crate::public`).
    pub public: crate::public::PublicState,
    /// The desk's basemap and photo pairing.
    pub desk: crate::desk::DeskSettings,
    /// The local basemap archive (`--tiles`), if any.
    pub tiles: Option<Arc<crate::tiles::LocalTiles>>,
    /// Reverse proxies whose `X-Forwarded-For` names the client (`auth::ClientIp`).
    pub trusted_proxies: Vec<std::net::IpAddr>,
}

impl AppState {
    /// Opens the store (the PostgreSQL database of `settings.database`, else the sled database
    /// under `data_dir/db`) and loads (or creates) the signing key.
    pub fn open(settings: &Settings) -> Result<Self, StartupError> {
        std::fs::create_dir_all(&settings.data_dir).map_err(|source| StartupError::DataDir {
            path: settings.data_dir.display().to_string(),
            source,
        })?;
        let store: Arc<dyn Store> = match &settings.database {
            Some(url) => Arc::new(PostgresStore::open(url)?),
            None => Arc::new(SledStore::open(&settings.data_dir.join("db"))?),
        };
        let key = SigningKey::load_or_create(settings.signing_key.as_deref(), &settings.data_dir)?;
        Self::with_store(store, &key, settings)
    }

    /// Builds the state over an already opened store.
    pub fn with_store(
        store: Arc<dyn Store>,
        key: &SigningKey,
        settings: &Settings,
    ) -> Result<Self, StartupError> {
        let stats = crate::stats::StatsCache::default();
        Ok(Self {
            hub: Arc::new(Hub::new(store.clone())),
            login_limiter: LoginLimiter::new(settings.login_limit, store.clone()),
            photo_quota: crate::photos::UploadQuota::new(
                settings.photos.daily_bytes_per_user,
                store.clone(),
            ),
            store,
            tokens: TokenService::new(key, settings.access_ttl_secs)?,
            passwords: Passwords::new(settings.password_cost)?,
            password_pool: PasswordPool::new(settings.password_threads, PASSWORD_QUEUE)
                .map_err(StartupError::PasswordThreads)?,
            metrics: Metrics::new().with_stats_facts(&stats),
            blobs: Arc::new(crate::blobs::Blobs::new(
                settings.blobs.open(&settings.data_dir)?,
                settings.max_photo_bytes,
            )),
            photo_index: crate::photos::PhotoIndex::new(),
            photo_settings: settings.photos.clone(),
            stats,
            overviews: Default::default(),
            derived: Default::default(),
            refresh_ttl_secs: settings.refresh_ttl_secs,
            workflow: settings.workflow.clone(),
            load: crate::shed::LoadShed::new(
                settings.max_in_flight,
                settings.max_in_flight_per_user,
                settings.body_rate,
            ),
            public: Default::default(),
            desk: settings.desk.clone(),
            tiles: settings
                .desk
                .tiles
                .as_deref()
                .map(|p| Arc::new(crate::tiles::LocalTiles::new(p))),
            trusted_proxies: settings.trusted_proxies.clone(),
        })
    }
}

/// Wall-clock time in Unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
