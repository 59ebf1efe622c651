//! `FieldClient`: the object the Android and iOS apps hold. A handle on one [`PhoneApp`] (the
//! phone's application layer, which Rust programs use directly); every export is one line that
//! passes the call on, so the bindings and the Rust callers run the same code.
//!
//! Every call blocks until it is done: the apps call it off the UI thread (the README's Kotlin
//! section shows the wrapper for coroutines). [`FieldClient::sync_progress`] may be called from
//! another thread while a sync runs.

use std::ops::Deref;
use std::sync::Arc;

use sync_core::model::{CheckResult, PhotoRole};

use crate::client::{ClientConfig, PhoneApp};
use crate::error::Result;
use crate::http::Traffic;
use crate::keep::{EvictionReport, FetchedDocument};
use crate::types::{
    Asset, Category, CheckItem, EventDraft, IssueDetail, IssueDraft, IssueFilter, IssueSummary, Me,
    PatrolSummary, PendingUpload, PhotoRef, QuarantinedChange, SyncProgress, SyncReport,
};

/// One phone's ChiefSync: its store, its session and its way to the server.
#[derive(Debug, Clone, uniffi::Object)]
pub struct FieldClient(Arc<PhoneApp>);

impl FieldClient {
    /// Opens a phone from Rust with a [`ClientConfig`] (own clock, photo options).
    pub fn open(config: ClientConfig) -> Result<Arc<Self>> {
        Ok(Arc::new(FieldClient(Arc::new(PhoneApp::open(config)?))))
    }

    /// The application layer behind this handle.
    pub fn app(&self) -> &Arc<PhoneApp> {
        &self.0
    }
}

impl From<Arc<PhoneApp>> for FieldClient {
    fn from(app: Arc<PhoneApp>) -> Self {
        FieldClient(app)
    }
}

impl Deref for FieldClient {
    type Target = PhoneApp;

    fn deref(&self) -> &PhoneApp {
        &self.0
    }
}

#[uniffi::export]
impl FieldClient {
    /// Opens (or creates) the phone's store in `data_dir` (the app's private files directory)
    /// for the server at `server_url`.
    #[uniffi::constructor]
    pub fn new(data_dir: String, server_url: String) -> Result<Arc<Self>> {
        Ok(Arc::new(FieldClient(Arc::new(PhoneApp::new(
            data_dir, server_url,
        )?))))
    }

    /// Signs in on this device and downloads the jurisdiction's reference data. Network.
    pub fn login(&self, username: String, password: String) -> Result<Me> {
        self.0.login(username, password)
    }

    /// The first sign-in with the one-time setup code from the office, choosing a password
    /// (`WeakPassword` if too short, `InvalidSetupCode` if the code is not accepted). Network.
    pub fn setup_password(
        &self,
        username: String,
        setup_code: String,
        new_password: String,
    ) -> Result<Me> {
        self.0.setup_password(username, setup_code, new_password)
    }

    /// Forgets the tokens; recorded work stays on the device.
    pub fn logout(&self) -> Result<()> {
        self.0.logout()
    }

    /// The signed-in user, or `NotLoggedIn`.
    pub fn me(&self) -> Result<Me> {
        self.0.me()
    }

    /// The assets of the jurisdiction (from the last downloaded reference data).
    pub fn assets(&self) -> Result<Vec<Asset>> {
        self.0.assets()
    }

    /// The check items of the jurisdiction's systems.
    pub fn check_items(&self) -> Result<Vec<CheckItem>> {
        self.0.check_items()
    }

    /// The problem categories a chief can report.
    pub fn categories(&self) -> Result<Vec<Category>> {
        self.0.categories()
    }

    /// Sends every local change, receives the jurisdiction's, refreshes the reference data and
    /// uploads waiting photos. Network; may take minutes on a weak link.
    pub fn sync(&self) -> Result<SyncReport> {
        self.0.sync()
    }

    /// The chiefs below the user (patrols this month against the quota, valid and flagged,
    /// km) and the open, overdue and escalated problems by division, as of the last sync;
    /// offline. `None` for users with nobody below them, and before the first sync.
    pub fn overview(&self) -> Result<Option<crate::overview::Overview>> {
        self.0.overview()
    }

    /// Fetches one document of the user's scope from the server (a subordinate's patrol opened
    /// from the overview) and keeps it on the phone, pinned until released or for the
    /// configured time; read it with `patrol` or `issue`. `NotFound` when it is not in the
    /// user's scope or does not exist, `Network` when offline.
    pub fn fetch_document(&self, id: String) -> Result<FetchedDocument> {
        self.0.fetch_document(id)
    }

    /// The app is done with a fetched document: it may be dropped later like any other.
    pub fn release_document(&self, id: String) -> Result<()> {
        self.0.release_document(id)
    }

    /// Drops what the phone may drop now (it also happens at every sync).
    pub fn evict_now(&self) -> Result<EvictionReport> {
        self.0.evict()
    }

    /// How far the running (or last) sync is: documents and photos sent of how many. Safe to
    /// call from any thread while `sync` runs, for a progress bar.
    pub fn sync_progress(&self) -> SyncProgress {
        self.0.sync_progress()
    }

    /// Requests sent (every attempt), retries and their causes, time waited and body bytes
    /// since the client was opened, for a network screen.
    pub fn traffic(&self) -> Traffic {
        self.0.traffic()
    }

    /// Photos the server does not have yet (waiting, uploading or refused).
    pub fn pending_uploads(&self) -> Result<Vec<PendingUpload>> {
        self.0.pending_uploads()
    }

    /// Changes the server refused, with its reasons; they are never dropped silently.
    pub fn quarantine(&self) -> Result<Vec<QuarantinedChange>> {
        self.0.quarantine()
    }

    /// Starts a patrol of one of the chief's assets now; returns the patrol id.
    pub fn start_patrol(&self, asset_id: String) -> Result<String> {
        self.0.start_patrol(asset_id)
    }

    /// Records one GPS fix (cheap enough for 1 Hz; flushed to the store at once). `mock` is the
    /// operating system's own verdict on the fix (Android's `Location.isMock()`, iOS's
    /// `sourceInformation.isSimulatedBySoftware`) and `provider` its name for the source
    /// (`"gps"`, `"network"`, `"fused"`, `"passive"`, `"accessory"`).
    #[uniffi::method(default(mock = false, provider = ""))]
    #[allow(clippy::too_many_arguments)]
    pub fn add_track_point(
        &self,
        patrol_id: String,
        lat: f64,
        lon: f64,
        timestamp_ms: i64,
        accuracy_m: f32,
        mock: bool,
        provider: String,
    ) -> Result<()> {
        self.0.add_track_point(
            patrol_id,
            lat,
            lon,
            timestamp_ms,
            accuracy_m,
            mock,
            provider,
        )
    }

    /// Records a check item's result (`code` from `check_items()`), replacing an earlier one.
    pub fn set_check_item(
        &self,
        patrol_id: String,
        item: String,
        result: CheckResult,
        note: String,
    ) -> Result<()> {
        self.0.set_check_item(patrol_id, item, result, note)
    }

    /// Records that the phone reported a mock location (or clock skew …) during the patrol.
    pub fn set_patrol_flag(&self, patrol_id: String, flag: String, on: bool) -> Result<()> {
        self.0.set_patrol_flag(patrol_id, flag, on)
    }

    /// Ends the patrol now with the chief's notes; the summary says whether it counts.
    pub fn finish_patrol(&self, patrol_id: String, notes: String) -> Result<PatrolSummary> {
        self.0.finish_patrol(patrol_id, notes)
    }

    /// One patrol on this device.
    pub fn patrol(&self, patrol_id: String) -> Result<PatrolSummary> {
        self.0.patrol(patrol_id)
    }

    /// Every patrol on this device, newest first.
    pub fn patrols(&self) -> Result<Vec<PatrolSummary>> {
        self.0.patrols()
    }

    /// Reports a problem now (offline is fine); returns the issue id.
    pub fn report_issue(&self, draft: IssueDraft) -> Result<String> {
        self.0.report_issue(draft)
    }

    /// Takes a workflow step on an issue as the signed-in user.
    pub fn append_event(&self, issue_id: String, event: EventDraft) -> Result<()> {
        self.0.append_event(issue_id, event)
    }

    /// The issues on this device matching `filter`.
    pub fn issues(&self, filter: IssueFilter) -> Result<Vec<IssueSummary>> {
        self.0.issues(filter)
    }

    /// One issue with its timeline and the steps the signed-in user may take.
    pub fn issue(&self, issue_id: String) -> Result<IssueDetail> {
        self.0.issue(issue_id)
    }

    /// Prepares the camera photo at `file_path`, queues it for upload and references it from
    /// the patrol or issue `record_id`.
    pub fn attach_photo(
        &self,
        record_id: String,
        file_path: String,
        role: PhotoRole,
    ) -> Result<PhotoRef> {
        self.0.attach_photo(record_id, file_path, role)
    }
}
