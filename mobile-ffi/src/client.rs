//! `PhoneApp`: one phone's ChiefSync, the application layer the apps reach through
//! [`crate::FieldClient`] and Rust programs (the field simulator, the tests' phones) use directly.
//!
//! It owns the device store (sled, in the app's data directory), the prepared photos beside it,
//! the signed-in session and the reference data of the user's jurisdiction. Patrols
//! (`patrol.rs`), issues and photos (`issue.rs`) and photo uploads (`upload.rs`) add their
//! methods in their own files. Every call blocks: apps call it off the UI thread. Edits and
//! syncs of documents take turns on one lock, so a sync never drops an edit made while it ran.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use automerge::ActorId;
use sync_core::api_types::{password_long_enough, MIN_PASSWORD_CHARS};
use sync_core::client::retry::RetryPolicy;
use sync_core::client::SyncClient;
use sync_core::doc::{self, DocKind, IssueDoc, PatrolDoc, Record};
use sync_core::evict::StoreBounds;
use sync_core::model::User;
use sync_core::photo::PrepareOptions;
use sync_core::store::LocalStore;

use crate::error::{ChiefsyncError, Result};
use crate::http::{Api, Grant, Traffic};
use crate::patrol::PendingTrack;
use crate::session::{Account, Session};
use crate::types::{
    Asset, Category, CheckItem, LocalFacts, Me, PendingUpload, QuarantinedChange, SyncProgress,
    SyncReport,
};
use crate::upload;

/// Where the time comes from. Apps use the phone's clock; the field simulator runs a week of
/// patrols in minutes with its own.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Unix milliseconds.
    fn now_ms(&self) -> i64;
}

/// The phone's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

/// How a phone is opened from Rust (the apps use `FieldClient`'s constructor with defaults).
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The app's private data directory; the store lives in `store/`, photos in `photos/`.
    pub data_dir: PathBuf,
    /// The server's root URL, e.g. `https://chiefsync.example.cn`.
    pub server_url: String,
    pub clock: Arc<dyn Clock>,
    pub photos: PrepareOptions,
    /// How requests that failed in a way worth retrying (a 503 from a server shedding load, a
    /// gateway error, a connection broken midway) are sent again: [`RetryPolicy::PHONE`] by
    /// default; an app syncing in a background job of its own may wait longer, and
    /// [`RetryPolicy::NONE`] makes one attempt per request.
    pub retry: RetryPolicy,
    /// The id the server binds this installation's actor to, when the app has one of its own
    /// (an office's asset tag, a device-management id: 1-128 letters, digits, `-`, `_`, `.`,
    /// `:`); `None` lets the phone choose one at its first start. Kept in the store: a store
    /// opened later with another id is refused.
    pub device_id: Option<String>,
    /// How large and how old the phone's store may grow, and how long a document opened on
    /// demand stays (`sync_core::evict`: 100 MB, 60 days, own work 30 days, pins 1 day).
    pub store: StoreBounds,
}

impl ClientConfig {
    pub fn new(data_dir: impl Into<PathBuf>, server_url: impl Into<String>) -> Self {
        ClientConfig {
            data_dir: data_dir.into(),
            server_url: server_url.into(),
            clock: Arc::new(SystemClock),
            photos: PrepareOptions::default(),
            retry: RetryPolicy::PHONE,
            device_id: None,
            store: StoreBounds::default(),
        }
    }
}

/// One phone: its store, its session and its way to the server. `Send + Sync`; share it in an
/// `Arc`.
#[derive(Debug)]
pub struct PhoneApp {
    pub(crate) store: Arc<LocalStore>,
    pub(crate) account: Account,
    pub(crate) photo_dir: PathBuf,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) photos: PrepareOptions,
    pub(crate) bounds: StoreBounds,
    /// Serializes loading, editing and saving documents with each other and with sync.
    docs: Mutex<()>,
    /// Track points not yet in their patrol document, by patrol id (also kept in the store).
    pub(crate) tracks: Mutex<HashMap<String, PendingTrack>>,
    /// How far the running (or last) sync is.
    progress: Mutex<SyncProgress>,
}

/// A count for the apps' records, which carry `u32`.
pub(crate) fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // What these locks guard is written to the store in single atomic steps, so a panic in
    // another holder leaves nothing half-done.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl PhoneApp {
    /// Opens (or creates) the phone's store under `config.data_dir`.
    pub fn open(config: ClientConfig) -> Result<Self> {
        let api = Api::new(&config.server_url, config.retry)?;
        let store = Arc::new(LocalStore::open(config.data_dir.join("store"))?);
        let account = Account::open(store.clone(), api, config.device_id.as_deref())?;
        Ok(PhoneApp {
            store,
            account,
            photo_dir: config.data_dir.join("photos"),
            clock: config.clock,
            photos: config.photos,
            bounds: config.store,
            docs: Mutex::new(()),
            tracks: Mutex::new(HashMap::new()),
            progress: Mutex::new(SyncProgress::default()),
        })
    }

    /// The device store, for Rust callers that inspect it (the simulator, tests).
    pub fn store(&self) -> &LocalStore {
        &self.store
    }

    /// The user whose work this device holds (signed in, or signed out with work kept), as
    /// the server described them at sign-in.
    pub fn user(&self) -> Result<User> {
        Ok(self.account.user()?.user)
    }

    /// The automerge actor this device writes the user's changes under.
    pub fn actor(&self) -> Result<ActorId> {
        self.account.user()?.actor()
    }

    /// The signed-in user's current access token, for calls of the server's API the library
    /// does not make itself (`Authorization: Bearer …`); `NotLoggedIn` after logout.
    pub fn access_token(&self) -> Result<String> {
        Ok(self.account.signed_in()?.access_token)
    }

    /// Requests, retries, waits and bytes since the phone was opened.
    pub fn traffic(&self) -> Traffic {
        self.account.api().traffic()
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    pub(crate) fn lock_docs(&self) -> MutexGuard<'_, ()> {
        lock(&self.docs)
    }

    /// The stored user and the actor their edits are written with.
    pub(crate) fn author(&self) -> Result<(Session, ActorId)> {
        let session = self.account.user()?;
        let actor = session.actor()?;
        Ok((session, actor))
    }

    fn load(&self, id: &str, kind: DocKind) -> Result<automerge::AutoCommit> {
        let what = kind.as_str();
        let bytes = self
            .store
            .load_doc(id)?
            .ok_or_else(|| ChiefsyncError::not_found(format!("no {what} {id} on this device")))?;
        let (am, header) = doc::load(&bytes)?;
        if header.kind != kind {
            return Err(ChiefsyncError::not_found(format!(
                "{id} is a {}, not a {what}",
                header.kind.as_str()
            )));
        }
        Ok(am)
    }

    /// Loads a patrol to read it or to edit it as `actor`. Call with the document lock held
    /// when the patrol will be saved.
    pub(crate) fn patrol_doc(&self, id: &str, actor: Option<&ActorId>) -> Result<PatrolDoc> {
        let doc = PatrolDoc::from_automerge(self.load(id, DocKind::Patrol)?)?;
        Ok(match actor {
            Some(actor) => doc.with_actor(actor.clone()),
            None => doc,
        })
    }

    pub(crate) fn issue_doc(&self, id: &str, actor: Option<&ActorId>) -> Result<IssueDoc> {
        let doc = IssueDoc::from_automerge(self.load(id, DocKind::Issue)?)?;
        Ok(match actor {
            Some(actor) => doc.with_actor(actor.clone()),
            None => doc,
        })
    }

    /// Persists a document's new changes (flushed before returning) and marks it for sync.
    pub(crate) fn save(&self, record: &mut impl Record, kind: DocKind, id: &str) -> Result<()> {
        SyncClient::new(&self.store).save(record, kind, id)?;
        Ok(())
    }

    /// What the device knows about a record beyond its document.
    pub(crate) fn local_facts(&self, id: &str) -> Result<LocalFacts> {
        Ok(LocalFacts {
            photos_pending: count(self.store.pending_for(id)?.len()),
            quarantined: count(self.store.quarantined_for(id)?.len()),
            synced: !SyncClient::new(&self.store).dirty()?.contains(id),
        })
    }
}

impl PhoneApp {
    /// Opens (or creates) the phone's store in `data_dir` (the app's private files directory)
    /// for the server at `server_url`.
    pub fn new(data_dir: String, server_url: String) -> Result<Self> {
        if data_dir.trim().is_empty() {
            return Err(ChiefsyncError::invalid("data_dir is empty"));
        }
        Self::open(ClientConfig::new(data_dir, server_url))
    }

    /// Signs in on this device and downloads the jurisdiction's reference data. The actor id
    /// the server binds to (user, device) is kept: every change is written under it. Another
    /// user may take over the device only when the previous user's work is on the server.
    pub fn login(&self, username: String, password: String) -> Result<Me> {
        self.sign_in(|api, device_id| api.login(&username, &password, device_id))
    }

    /// The first sign-in of someone the office set up without a password: with the one-time
    /// `setup_code` the office handed them, they choose `new_password` and this device is
    /// signed in as by [`Self::login`]. The code is spent, and any earlier session of the
    /// account ends. A password shorter than sync-core's minimum is refused before anything is
    /// sent (`WeakPassword`); a wrong, used or expired code is `InvalidSetupCode`.
    pub fn setup_password(
        &self,
        username: String,
        setup_code: String,
        new_password: String,
    ) -> Result<Me> {
        if username.trim().is_empty() {
            return Err(ChiefsyncError::invalid("the username is empty"));
        }
        if setup_code.trim().is_empty() {
            return Err(ChiefsyncError::invalid(
                "the setup code is empty: enter the code from the office",
            ));
        }
        if !password_long_enough(&new_password) {
            return Err(ChiefsyncError::WeakPassword {
                min_chars: count(MIN_PASSWORD_CHARS),
                detail: format!("a password needs at least {MIN_PASSWORD_CHARS} characters"),
            });
        }
        self.sign_in(|api, device_id| api.setup(&username, &setup_code, &new_password, device_id))
    }

    /// Signs in with the grant `grant` obtains for this device, then downloads the reference
    /// data.
    fn sign_in(&self, grant: impl FnOnce(&Api, &str) -> Result<Grant>) -> Result<Me> {
        let store = self.store.clone();
        let session = self.account.sign_in(grant, |previous| {
            let unsynced = SyncClient::new(&store).dirty()?;
            if unsynced.is_empty() {
                Ok(())
            } else {
                Err(ChiefsyncError::UnsyncedWork {
                    detail: format!(
                        "{} has {} records not yet on the server; sign in as them and sync first",
                        previous.user.username,
                        unsynced.len()
                    ),
                })
            }
        })?;
        // Signed in either way; without reference data the app asks to sync before recording.
        let _ = self.account.refresh_reference();
        Ok(Me::of(&session.user, &session.device_id, &session.actor_id))
    }

    /// Forgets the tokens. Recorded work stays on the device and goes up after the next login.
    pub fn logout(&self) -> Result<()> {
        self.account.logout()
    }

    /// The signed-in user, or `NotLoggedIn`.
    pub fn me(&self) -> Result<Me> {
        let session = self.account.signed_in()?;
        Ok(Me::of(&session.user, &session.device_id, &session.actor_id))
    }

    /// The assets of the jurisdiction (from the last downloaded reference data).
    pub fn assets(&self) -> Result<Vec<Asset>> {
        self.account
            .reference()?
            .assets
            .iter()
            .map(Asset::of)
            .collect()
    }

    /// The check items of the jurisdiction's systems.
    pub fn check_items(&self) -> Result<Vec<CheckItem>> {
        Ok(self
            .account
            .reference()?
            .check_items
            .iter()
            .map(|c| CheckItem {
                code: c.code.clone(),
                system: c.system,
                name_zh: c.name_zh.clone(),
            })
            .collect())
    }

    /// The problem categories a chief can report.
    pub fn categories(&self) -> Result<Vec<Category>> {
        Ok(self
            .account
            .reference()?
            .categories
            .iter()
            .map(|c| Category {
                code: c.code.clone(),
                system: c.system,
                name_zh: c.name_zh.clone(),
                name_en: c.name_en.clone(),
            })
            .collect())
    }

    /// Sends every local change, receives what changed in the jurisdiction, refreshes the
    /// reference data and uploads waiting photos. Fails only when the documents could not be
    /// synced (no network, signed out); photo and reference problems are listed in the report.
    pub fn sync(&self) -> Result<SyncReport> {
        self.account.signed_in()?;
        let now = self.now();
        // What the store may drop goes first, so the server hears of it in this sync.
        let evicted = self.evict();
        let docs_total = count(SyncClient::new(&self.store).dirty()?.len());
        self.set_progress(|p| {
            *p = SyncProgress {
                running: true,
                docs_total,
                ..SyncProgress::default()
            }
        });
        let synced = self.sync_documents_by(|| self.now());
        self.set_progress(|p| {
            if let Ok(report) = &synced {
                p.docs_received = count(report.docs_received);
                p.pages = report.pages;
                p.docs_sent = count(report.docs_sent);
                p.docs_total = p.docs_total.max(p.docs_sent);
            }
        });
        let mut report = match synced {
            Ok(report) => SyncReport::of(&report),
            Err(err) => {
                self.set_progress(|p| p.running = false);
                return Err(err);
            }
        };
        if let Err(err) = evicted {
            report.errors.push(format!("bounding the store: {err}"));
        }
        match self.account.refresh_reference() {
            Ok(changed) => report.reference_updated = changed,
            Err(err) => report.errors.push(format!("reference data: {err}")),
        }
        upload::upload_due(self, now, &mut report);
        self.set_progress(|p| p.running = false);
        Ok(report)
    }

    /// How far the running (or last) sync is.
    pub fn sync_progress(&self) -> SyncProgress {
        lock(&self.progress).clone()
    }

    pub(crate) fn set_progress(&self, update: impl FnOnce(&mut SyncProgress)) {
        update(&mut lock(&self.progress));
    }

    /// The documents' part of [`Self::sync`] at `now_ms`: every local change up, the
    /// jurisdiction's changes down, with the engine's own figures. The round trip's error is
    /// the phone's typed error (network, server, session), as the app sees it.
    pub fn sync_documents(&self, now_ms: i64) -> Result<sync_core::client::SyncReport> {
        self.sync_documents_by(|| now_ms)
    }

    /// [`Self::sync_documents`], each round trip at the time `clock` reads then: a first
    /// sync of many pages takes minutes.
    fn sync_documents_by(
        &self,
        clock: impl FnMut() -> i64,
    ) -> Result<sync_core::client::SyncReport> {
        let user_id = self.account.signed_in()?.user.id;
        SyncClient::new(&self.store).sync_in_rounds(&mut PhoneRounds {
            app: self,
            user_id,
            clock,
            link: sync_core::client::LinkRate::default(),
        })
    }

    /// Photos the server does not have yet (waiting, uploading or refused), for the upload
    /// screen.
    pub fn pending_uploads(&self) -> Result<Vec<PendingUpload>> {
        Ok(self
            .store
            .outbox()?
            .into_iter()
            .filter(|e| e.state != sync_core::store::UploadState::Done)
            .map(PendingUpload::of)
            .collect())
    }

    /// Changes the server refused, with its reasons; they are never dropped silently.
    pub fn quarantine(&self) -> Result<Vec<QuarantinedChange>> {
        Ok(self
            .store
            .quarantined()?
            .into_iter()
            .map(QuarantinedChange::from)
            .collect())
    }
}

/// What the phone brings to each round trip of a sync: its lock on the documents, its
/// progress display, its clock, the session that sends (asking for pages its link carries in
/// time), and where the overview is kept.
struct PhoneRounds<'a, C> {
    app: &'a PhoneApp,
    user_id: String,
    clock: C,
    link: sync_core::client::LinkRate,
}

impl<'a, C: FnMut() -> i64> sync_core::client::Rounds for PhoneRounds<'a, C> {
    type Error = ChiefsyncError;
    type Hold = MutexGuard<'a, ()>;

    fn hold(&mut self, so_far: &sync_core::client::SyncReport) -> MutexGuard<'a, ()> {
        let received = count(so_far.docs_received);
        self.app.set_progress(|p| {
            p.docs_received = received;
            p.pages = so_far.pages;
        });
        self.app.lock_docs()
    }

    fn send(&mut self, body: Vec<u8>) -> Result<Vec<u8>> {
        let held = crate::overview::held_version(&self.app.store, &self.user_id);
        let account = &self.app.account;
        let ask = self.link.ask();
        let sent = std::time::Instant::now();
        let answer = account.authorized(|token| {
            account
                .api()
                .sync_asking(token, &body, Some(held), Some(ask))
        })?;
        self.link.arrived(answer.len(), sent.elapsed());
        Ok(answer)
    }

    fn now_ms(&mut self) -> i64 {
        (self.clock)()
    }

    fn overview(&mut self, update: sync_core::protocol::OverviewUpdate) -> Result<()> {
        crate::overview::keep(&self.app.store, &self.user_id, update)
    }
}
