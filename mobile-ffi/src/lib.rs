//! ChiefSync on the phone: the library the Android (Kotlin) and iOS (Swift) apps call, through
//! UniFFI bindings generated from this crate (namespace `chiefsync`).
//!
//! It is a thin façade over sync-core: [`PhoneApp`], the phone's application layer, opens the
//! device store, signs in, records patrols and issues, attaches photos and syncs; every rule it
//! applies is sync-core's. [`FieldClient`], the object the apps hold, is a handle on it whose
//! exports pass each call on in one line (`ffi`). What lives here and nowhere else is the
//! phone's HTTP (`http`), the session and reference data it keeps (`session`), the photo upload
//! loop (`upload`) and the conversion of every sync-core error into the one [`ChiefsyncError`]
//! the apps see (`error`). No call panics across the boundary: foreign input is checked and
//! every failure is a typed error. Exported names are chosen so that they compile in Kotlin
//! and Swift: sync-core's `System` is `ChiefSystem` to the apps.
//!
//! Rust programs (the field simulator, tests) use [`PhoneApp`] directly, opened with a
//! [`ClientConfig`] that can bring its own [`Clock`], [`RetryPolicy`] and device id; its
//! [`Traffic`] counts every request, retry and byte.
//!
//! ```no_run
//! use mobile_ffi::{CheckResult, FieldClient};
//!
//! let phone = FieldClient::new("/data/chiefsync".into(), "https://chiefsync.example.cn".into())?;
//! phone.login("demo-chief".into(), "demo".into())?;
//! let asset = phone.assets()?.remove(0);
//! let patrol = phone.start_patrol(asset.id)?;
//! phone.add_track_point(patrol.clone(), 36.70, 117.00, 1_764_291_600_000, 5.0, false, String::new())?;
//! phone.set_check_item(patrol.clone(), "river.banks".into(), CheckResult::Ok, String::new())?;
//! let summary = phone.finish_patrol(patrol, "水面清洁".into())?;
//! println!("{} m, counts: {}", summary.distance_m, summary.valid);
//! let report = phone.sync()?;
//! println!("sent {} documents", report.docs_sent);
//! # Ok::<(), mobile_ffi::ChiefsyncError>(())
//! ```

uniffi::setup_scaffolding!("chiefsync");

mod client;
mod error;
mod ffi;
mod http;
mod issue;
mod keep;
mod overview;
mod patrol;
mod session;
mod types;
mod upload;

/// The demo server the unit tests sign in to (shared with the integration tests).
#[cfg(test)]
#[path = "../tests/common/mod.rs"]
mod test_server;

pub use client::{ClientConfig, Clock, PhoneApp, SystemClock};
pub use error::ChiefsyncError;
pub use ffi::FieldClient;
pub use http::Traffic;
pub use keep::{EvictionReport, FetchedDocument};
pub use overview::{Overview, OverviewChief, OverviewDivision};
pub use sync_core::client::retry::RetryPolicy;
pub use sync_core::evict::StoreBounds;
pub use sync_core::model::{CheckResult, Level, PhotoRole, Severity, System};
pub use sync_core::workflow::EventKind;
pub use types::{
    Asset, AssigneeDraft, Category, CheckEntry, CheckItem, EventDraft, IssueDetail, IssueDraft,
    IssueFilter, IssueStatus, IssueSummary, Me, PatrolFlag, PatrolSummary, PendingUpload, PhotoRef,
    QuarantinedChange, SyncProgress, SyncReport, TimelineItem, UploadStatus,
};
