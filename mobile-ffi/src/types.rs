//! The records and enums the apps see, and their conversions from sync-core's types.
//!
//! Simple sync-core enums cross the boundary as they are (`uniffi::remote`); records are
//! flattened into plain fields (no `[lon, lat]` arrays, no tagged unions of tuples) so that
//! Kotlin, Swift and Python get ordinary data classes. Nothing here decides anything.

use sync_core::doc::{Issue, Patrol};
use sync_core::model::{self, CheckResult, Level, PhotoRole, Severity, System};
use sync_core::rules::PatrolValidation;
use sync_core::store::{OutboxEntry, UploadState};
use sync_core::track::TrackStats;
use sync_core::workflow::{Action, Assignee, EventKind, IssueState, TimelineEntry};

use crate::error::{ChiefsyncError, Result};

/// River, forest or field (河长制, 林长制, 田长制). Apps see it as `ChiefSystem`: `System` would
/// shadow `java.lang.System` in Kotlin (and UniFFI's own Kotlin calls `System.getProperty`).
#[uniffi::remote(Enum)]
#[uniffi(name = "ChiefSystem")]
pub enum System {
    River,
    Forest,
    Field,
}

/// District, subdistrict or village (区, 街道/乡镇, 村/社区).
#[uniffi::remote(Enum)]
pub enum Level {
    District,
    Subdistrict,
    Village,
}

/// 一般, 紧急, 特急.
#[uniffi::remote(Enum)]
pub enum Severity {
    General,
    Urgent,
    Critical,
}

/// The result of one patrol check item.
#[uniffi::remote(Enum)]
pub enum CheckResult {
    Ok,
    Problem,
    NotApplicable,
}

/// How a photo relates to its record.
#[uniffi::remote(Enum)]
pub enum PhotoRole {
    Before,
    After,
    Evidence,
}

/// An issue's derived status.
pub type IssueStatus = sync_core::workflow::Status;

#[uniffi::remote(Enum)]
pub enum IssueStatus {
    Reported,
    Accepted,
    Assigned,
    Submitted,
    Closed,
    Invalid,
    Duplicate,
}

#[uniffi::remote(Enum)]
pub enum EventKind {
    Reported,
    Accepted,
    Assigned,
    RectificationSubmitted,
    Verified,
    Rejected,
    Invalidated,
    DuplicateOf,
    Escalated,
    Reopened,
    Comment,
}

/// The signed-in user on this device.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Me {
    pub user_id: String,
    pub username: String,
    pub display_name: String,
    /// `chief`, `supervisor`, `handler` or `admin`.
    pub role: String,
    pub system: Option<System>,
    pub level: Option<Level>,
    /// The division the user answers for (12 digits), if any.
    pub division: Option<String>,
    /// The assets a chief patrols.
    pub assets: Vec<String>,
    pub device_id: String,
    /// The automerge actor id the server bound to this (user, device); every change made on
    /// this device is written under it.
    pub actor_id: String,
}

impl Me {
    pub(crate) fn of(user: &model::User, device_id: &str, actor_id: &str) -> Self {
        let (system, level, division, assets) = match &user.role {
            model::Role::Chief {
                system,
                level,
                jurisdiction,
            } => (
                Some(*system),
                Some(*level),
                Some(jurisdiction.division.to_string()),
                jurisdiction.assets.clone(),
            ),
            model::Role::Supervisor { system, division } => (
                Some(*system),
                Some(division.level()),
                Some(division.to_string()),
                Vec::new(),
            ),
            model::Role::Handler { .. } | model::Role::Admin => (None, None, None, Vec::new()),
        };
        Me {
            user_id: user.id.clone(),
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            role: user.role.name().into(),
            system,
            level,
            division,
            assets,
            device_id: device_id.into(),
            actor_id: actor_id.into(),
        }
    }
}

/// A river segment, forest area or farmland grid of the user's jurisdiction.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Asset {
    pub id: String,
    pub system: System,
    pub name: String,
    pub division: String,
    /// GeoJSON geometry (`LineString` or `Polygon`, `[lon, lat]` in WGS84), for the map.
    pub geometry_geojson: String,
}

impl Asset {
    pub(crate) fn of(asset: &model::Asset) -> Result<Self> {
        Ok(Asset {
            id: asset.id.clone(),
            system: asset.system,
            name: asset.name.clone(),
            division: asset.division.to_string(),
            geometry_geojson: serde_json::to_string(&asset.geometry)?,
        })
    }
}

/// An item of a patrol checklist.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CheckItem {
    pub code: String,
    pub system: System,
    pub name_zh: String,
}

/// A problem category a chief can report.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct Category {
    pub code: String,
    pub system: System,
    pub name_zh: String,
    pub name_en: String,
}

/// Why a patrol would not count, with its numbers already in words.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PatrolFlag {
    /// Stable code, e.g. `too_short`, `too_short_distance`, `jump`, `outside_corridor`.
    pub code: String,
    pub detail: String,
}

/// A patrol as the chief's list and the finish screen show it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PatrolSummary {
    pub patrol_id: String,
    pub asset_id: String,
    pub system: System,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub points: u64,
    /// Distance and walking time as the statistics count them (breaks, jumps and retracing
    /// left out).
    pub distance_m: f64,
    pub duration_ms: i64,
    pub max_speed_mps: f64,
    /// Share of fixes within the corridor around the asset, when its geometry is known.
    pub inside_share: Option<f64>,
    pub valid: bool,
    pub flags: Vec<PatrolFlag>,
    pub notes: String,
    pub check_items: Vec<CheckEntry>,
    pub photos: Vec<PhotoRef>,
    pub issue_ids: Vec<String>,
    /// Photos of this patrol the server does not have yet.
    pub photos_pending: u32,
    /// Whether the server has every change made to this patrol on the device.
    pub synced: bool,
}

impl PatrolSummary {
    pub(crate) fn of(
        patrol: Patrol,
        stats: &TrackStats,
        validation: &PatrolValidation,
        photos_pending: u32,
        synced: bool,
    ) -> Self {
        let flags = validation
            .flags
            .iter()
            .map(|flag| PatrolFlag {
                code: serde_json::to_value(flag)
                    .ok()
                    .and_then(|v| v["flag"].as_str().map(str::to_owned))
                    .unwrap_or_default(),
                detail: flag.to_string(),
            })
            .collect();
        PatrolSummary {
            patrol_id: patrol.id,
            asset_id: patrol.asset,
            system: patrol.system,
            started_at_ms: patrol.started_at_ms,
            ended_at_ms: patrol.ended_at_ms,
            points: stats.points as u64,
            distance_m: validation.covered.counted_m,
            duration_ms: validation.covered.walking_ms,
            max_speed_mps: stats.max_speed_mps,
            inside_share: validation.inside_share,
            valid: validation.is_valid(),
            flags,
            notes: patrol.notes,
            check_items: patrol
                .checks
                .into_iter()
                .map(|(code, entry)| CheckEntry {
                    code,
                    result: entry.result,
                    note: entry.note,
                    at_ms: entry.at_ms,
                })
                .collect(),
            photos: patrol.photos.iter().map(PhotoRef::of).collect(),
            issue_ids: patrol.issues,
            photos_pending,
            synced,
        }
    }
}

/// One recorded check item of a patrol.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct CheckEntry {
    pub code: String,
    pub result: CheckResult,
    pub note: String,
    pub at_ms: i64,
}

/// A photo referenced from a patrol or an issue.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct PhotoRef {
    /// The photo's name: lower-case hex SHA-256 of the prepared JPEG.
    pub sha256: String,
    pub role: PhotoRole,
    pub taken_at_ms: Option<i64>,
    pub lon: Option<f64>,
    pub lat: Option<f64>,
    pub bytes: u64,
}

impl PhotoRef {
    pub(crate) fn of(photo: &model::PhotoRef) -> Self {
        PhotoRef {
            sha256: photo.sha256.clone(),
            role: photo.role,
            taken_at_ms: photo.taken_at_ms,
            lon: photo.position.map(|p| p[0]),
            lat: photo.position.map(|p| p[1]),
            bytes: photo.bytes,
        }
    }
}

/// Where a photo stands on its way to the server.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum UploadStatus {
    Waiting,
    /// The server holds the first `offset` bytes.
    Uploading {
        offset: u64,
    },
    Done,
    /// The server will not take it; `reason` says why.
    Refused {
        reason: String,
    },
}

/// A photo in the upload queue.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct PendingUpload {
    pub sha256: String,
    pub record_ids: Vec<String>,
    pub path: String,
    pub size: u64,
    pub status: UploadStatus,
    pub attempts: u32,
    /// Not retried before this time (Unix ms) after failures.
    pub next_attempt_ms: i64,
}

impl PendingUpload {
    pub(crate) fn of(entry: OutboxEntry) -> Self {
        PendingUpload {
            sha256: entry.sha256,
            record_ids: entry.record_ids,
            path: entry.path,
            size: entry.size,
            status: match entry.state {
                UploadState::Waiting => UploadStatus::Waiting,
                UploadState::Uploading { offset } => UploadStatus::Uploading { offset },
                UploadState::Done => UploadStatus::Done,
                UploadState::Refused { reason } => UploadStatus::Refused { reason },
            },
            attempts: entry.attempts,
            next_attempt_ms: entry.next_attempt_ms,
        }
    }
}

/// What a chief enters to report a problem. System and division come from the asset.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct IssueDraft {
    /// A category code from `categories()`, e.g. `river.garbage`.
    pub category: String,
    pub severity: Severity,
    pub asset_id: String,
    pub lat: f64,
    pub lon: f64,
    pub description: String,
    /// The patrol the problem was found on; the patrol then lists the issue.
    #[uniffi(default = None)]
    pub patrol_id: Option<String>,
}

/// Who an issue is assigned to.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum AssigneeDraft {
    Department { name: String },
    User { user_id: String },
}

/// A step in an issue's workflow, as the app asks for it. Which steps the signed-in user may
/// take now is `IssueDetail::allowed_actions`.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum EventDraft {
    Accept,
    Assign {
        assignee: AssigneeDraft,
        deadline_ms: i64,
    },
    SubmitRectification {
        note: String,
        /// SHA-256 names of the "after" photos attached to the issue.
        photos: Vec<String>,
    },
    Verify {
        note: String,
    },
    Reject {
        reason: String,
    },
    Invalidate {
        reason: String,
    },
    DuplicateOf {
        issue_id: String,
    },
    Escalate {
        note: String,
    },
    Reopen {
        reason: String,
    },
    Comment {
        text: String,
    },
}

impl From<EventDraft> for Action {
    fn from(draft: EventDraft) -> Self {
        match draft {
            EventDraft::Accept => Action::Accepted,
            EventDraft::Assign {
                assignee,
                deadline_ms,
            } => Action::Assigned {
                assignee: match assignee {
                    AssigneeDraft::Department { name } => Assignee::Department(name),
                    AssigneeDraft::User { user_id } => Assignee::User(user_id),
                },
                deadline_ms,
            },
            EventDraft::SubmitRectification { note, photos } => {
                Action::RectificationSubmitted { note, photos }
            }
            EventDraft::Verify { note } => Action::Verified { note },
            EventDraft::Reject { reason } => Action::Rejected { reason },
            EventDraft::Invalidate { reason } => Action::Invalidated { reason },
            EventDraft::DuplicateOf { issue_id } => Action::DuplicateOf { issue: issue_id },
            EventDraft::Escalate { note } => Action::Escalated { note },
            EventDraft::Reopen { reason } => Action::Reopened { reason },
            EventDraft::Comment { text } => Action::Comment { text },
        }
    }
}

/// Which issues `issues()` lists.
#[derive(Debug, Clone, Default, PartialEq, uniffi::Record)]
pub struct IssueFilter {
    /// Only issues in this status.
    #[uniffi(default = None)]
    pub status: Option<IssueStatus>,
    /// Only issues that still need work (not closed, invalid or duplicate).
    #[uniffi(default = false)]
    pub open_only: bool,
    #[uniffi(default = None)]
    pub asset_id: Option<String>,
}

/// An issue as a list shows it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct IssueSummary {
    pub issue_id: String,
    pub system: System,
    pub category: String,
    pub severity: Severity,
    pub asset_id: String,
    pub description: String,
    pub reporter: String,
    pub reported_at_ms: i64,
    /// `None` only for an issue whose report did not count (never on a well-formed issue).
    pub status: Option<IssueStatus>,
    pub assignee: Option<String>,
    pub deadline_ms: Option<i64>,
    /// Whole days past the deadline, at the time of the call.
    pub overdue_days: Option<i64>,
    pub photos_pending: u32,
    /// Changes of this issue the server refused; they wait in the quarantine.
    pub quarantined: u32,
    pub synced: bool,
}

impl IssueSummary {
    pub(crate) fn of(issue: &Issue, state: &IssueState, now_ms: i64, local: LocalFacts) -> Self {
        IssueSummary {
            issue_id: issue.id.clone(),
            system: issue.system,
            category: issue.category.clone(),
            severity: issue.severity,
            asset_id: issue.asset.clone(),
            description: issue.description.clone(),
            reporter: issue.reporter.clone(),
            reported_at_ms: issue.reported_at_ms,
            status: state.status,
            assignee: state.assignee.as_ref().map(|a| a.name().to_owned()),
            deadline_ms: state.deadline_ms,
            overdue_days: state.overdue_days(now_ms),
            photos_pending: local.photos_pending,
            quarantined: local.quarantined,
            synced: local.synced,
        }
    }
}

/// What the device knows about a record beyond its document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalFacts {
    pub photos_pending: u32,
    pub quarantined: u32,
    pub synced: bool,
}

/// One event of an issue's timeline.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct TimelineItem {
    pub event_id: String,
    pub kind: EventKind,
    pub by: String,
    pub device: String,
    pub at_ms: i64,
    /// The event's payload (assignee and deadline, note, reason …) as JSON.
    pub payload_json: String,
    /// Why the event did not count (a conflicting offline step), or `None` when it did.
    pub superseded: Option<String>,
}

impl TimelineItem {
    pub(crate) fn of(entry: &TimelineEntry) -> Result<Self> {
        let mut payload = serde_json::to_value(&entry.event.action)?;
        if let Some(map) = payload.as_object_mut() {
            map.remove("kind");
        }
        Ok(TimelineItem {
            event_id: entry.event.id.clone(),
            kind: entry.event.action.kind(),
            by: entry.event.by.clone(),
            device: entry.event.device.clone(),
            at_ms: entry.event.at_ms,
            payload_json: payload.to_string(),
            superseded: entry.superseded.clone(),
        })
    }
}

/// An issue with its derived state and timeline, as the detail screen shows it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct IssueDetail {
    pub summary: IssueSummary,
    pub division: String,
    pub lat: f64,
    pub lon: f64,
    pub patrol_id: Option<String>,
    pub photos: Vec<PhotoRef>,
    pub timeline: Vec<TimelineItem>,
    /// The steps the signed-in user may take now (from the workflow's transition table).
    pub allowed_actions: Vec<EventKind>,
    pub escalations: u32,
    pub rejections: u32,
}

/// What one `sync()` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    pub round_trips: u32,
    pub docs_sent: u32,
    pub changes_sent: u32,
    pub docs_received: u32,
    pub changes_received: u32,
    /// Local changes the server refused, now in the quarantine.
    pub refused: u32,
    /// Documents forgotten because they left the user's scope.
    pub removed: u32,
    pub bytes_up: u64,
    pub bytes_down: u64,
    pub photos_uploaded: u32,
    pub photo_bytes_up: u64,
    /// Photos still waiting for a later sync (no network, backoff, or a server that cannot
    /// take photos yet).
    pub photos_waiting: u32,
    pub photos_refused: u32,
    /// Whether the reference data (assets, check items, rules) changed.
    pub reference_updated: bool,
    /// More waits than this sync carried (on the server, or on the phone: a backlog of
    /// thousands of records); the next sync goes on from here.
    pub more_waiting: bool,
    /// What went wrong after the documents were synced (photo uploads, reference data).
    pub errors: Vec<String>,
}

impl SyncReport {
    pub(crate) fn of(report: &sync_core::client::SyncReport) -> Self {
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        SyncReport {
            round_trips: report.round_trips,
            docs_sent: n(report.docs_sent),
            changes_sent: n(report.changes_sent),
            docs_received: n(report.docs_received),
            changes_received: n(report.changes_received),
            refused: n(report.refused),
            removed: n(report.removed),
            bytes_up: report.bytes_up as u64,
            bytes_down: report.bytes_down as u64,
            more_waiting: report.more_waiting,
            ..SyncReport::default()
        }
    }
}

/// A local change the server refused, kept on the device.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct QuarantinedChange {
    pub doc_id: String,
    pub change_hash: String,
    /// The server's reason, as shown to the chief.
    pub reason: String,
    pub refused_at_ms: i64,
    pub bytes: u64,
}

impl From<sync_core::store::QuarantinedChange> for QuarantinedChange {
    fn from(change: sync_core::store::QuarantinedChange) -> Self {
        QuarantinedChange {
            doc_id: change.doc_id,
            change_hash: change.change_hash,
            reason: change.reason,
            refused_at_ms: change.refused_at_ms,
            bytes: change.change.len() as u64,
        }
    }
}

/// Checks a coordinate from the phone's location service (`sync_core::geo::check_position`).
pub(crate) fn check_position(lat: f64, lon: f64) -> Result<()> {
    sync_core::geo::check_position([lon, lat]).map_err(|e| ChiefsyncError::invalid(e.to_string()))
}

/// How far a sync is, for the app's progress bar: documents, then photos (and their bytes),
/// sent of how many. Read it with `sync_progress()` from another thread while `sync()` runs;
/// after the sync it keeps the last sync's figures with `running` false.
#[derive(Debug, Clone, Default, PartialEq, Eq, uniffi::Record)]
pub struct SyncProgress {
    pub running: bool,
    /// Records with local changes when the sync began, and how many of them were sent.
    pub docs_total: u32,
    pub docs_sent: u32,
    /// Records received so far: a long first sync comes page by page.
    pub docs_received: u32,
    /// Round trips so far beyond the first that brought or sent more: pages of the answer (a
    /// long first sync comes in tens of them), or the rest of a backlog larger than one request.
    pub pages: u32,
    /// Photos due for upload when the photo phase began, and how many are on the server.
    pub photos_total: u32,
    pub photos_sent: u32,
    pub photo_bytes_total: u64,
    pub photo_bytes_sent: u64,
}
