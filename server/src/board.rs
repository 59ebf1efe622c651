//! The issue board's read model: stored issue documents turned into list rows (derived status,
//! assignee, deadline, overdue days, photo completeness, possible duplicate) and into the detail
//! a supervisor reviews (timeline with who, device and receive time; photos with evidence
//! checks; the actions the viewer may take).
//!
//! Every rule comes from sync-core (the fold, the transition table and `allowed_actions`, the
//! duplicate index, `photo::evidence`, who may read what: `hub::read::ReadScope`); this module
//! only reads issues (one for the detail, a summary of each for the list, which
//! `crate::derived` keeps between requests) and shapes them for the API. It does no HTTP.

use std::collections::BTreeSet;

use serde::Serialize;
use sync_core::authz::DocMeta;
use sync_core::doc::{DocKind, Issue, IssueDoc};
use sync_core::hub::read::ReadScope;
use sync_core::hub::{event_receipts, AuditEntry, HubError};
use sync_core::model::{PhotoRef, PhotoRole, User};
use sync_core::photo::{issue_photos, Arrival, PhotoEvidence};
use sync_core::workflow::{self, Assignee, EventKind, IssueContext, IssueState};
use utoipa::ToSchema;

use crate::derived::Work;
use crate::photos::{after_photos_by, AfterBy};
use crate::storage::Store;

/// One issue as loaded for the board.
#[derive(Debug, Clone)]
pub struct LoadedIssue {
    pub record: Issue,
    pub state: IssueState,
    pub bytes: Vec<u8>,
}

fn damaged(id: &str, e: impl ToString) -> HubError {
    HubError::Damaged {
        id: id.to_string(),
        reason: e.to_string(),
    }
}

fn load(id: &str, bytes: Vec<u8>) -> Result<LoadedIssue, HubError> {
    let issue = IssueDoc::load(&bytes).map_err(|e| damaged(id, e))?;
    Ok(LoadedIssue {
        record: issue.view().map_err(|e| damaged(id, e))?,
        state: issue.state().map_err(|e| damaged(id, e))?,
        bytes,
    })
}

/// An issue as the board keeps it between requests (`crate::derived`): its routing facts,
/// record and folded workflow state, without the timeline (only the detail shows it, and folds
/// the document itself), and every photo it references.
#[derive(Debug, Clone)]
pub struct IssueSummary {
    pub meta: DocMeta,
    pub record: Issue,
    pub state: IssueState,
    pub photos: BTreeSet<String>,
    /// Who submitted each after photo, for `photos::RecordPhotos`.
    pub after_by: AfterBy,
}

impl IssueSummary {
    pub fn load(meta: DocMeta, id: &str, bytes: &[u8]) -> Result<Self, HubError> {
        let issue = IssueDoc::load(bytes).map_err(|e| damaged(id, e))?;
        let record = issue.view().map_err(|e| damaged(id, e))?;
        let mut state = issue.state().map_err(|e| damaged(id, e))?;
        let photos = referenced_photos(&record, &state);
        let after_by = after_photos_by(&state);
        state.timeline = Vec::new();
        Ok(Self {
            meta,
            record,
            state,
            photos,
            after_by,
        })
    }
}

/// One issue the reader may read, or `None` when unknown, out of scope or not an issue
/// (indistinguishable on purpose).
pub fn visible_issue(
    store: &dyn Store,
    reads: &ReadScope<'_>,
    id: &str,
    work: &mut Work,
) -> Result<Option<LoadedIssue>, HubError> {
    match reads.document(store, id, Some(DocKind::Issue))? {
        Some(stored) => {
            work.loaded += 1;
            work.folded += 1;
            Ok(Some(load(id, stored.bytes)?))
        }
        None => Ok(None),
    }
}

/// Whom an issue is assigned to, flat for the API.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct AssigneeView {
    /// `department` or `user`.
    pub kind: String,
    pub name: String,
}

impl From<&Assignee> for AssigneeView {
    fn from(a: &Assignee) -> Self {
        let kind = match a {
            Assignee::Department(_) => "department",
            Assignee::User(_) => "user",
        };
        Self {
            kind: kind.into(),
            name: a.name().to_string(),
        }
    }
}

/// Which referenced photos the server holds.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct PhotoCompleteness {
    pub referenced: usize,
    /// Referenced photos not (yet) uploaded; `None` when a photo's record could not be read.
    pub missing: Option<Vec<String>>,
    pub complete: Option<bool>,
}

/// Every photo hash an issue references: its photos and the after photos of rectifications.
pub fn referenced_photos(record: &Issue, state: &IssueState) -> BTreeSet<String> {
    issue_photos(record, state)
        .into_iter()
        .map(|p| p.sha256)
        .collect()
}

/// Completeness given each referenced photo's arrival (`photos::arrival`).
pub fn completeness(
    all: &BTreeSet<String>,
    arrival: &dyn Fn(&str) -> Arrival,
) -> PhotoCompleteness {
    let mut missing = Some(Vec::new());
    for sha in all {
        match (arrival(sha).stored(), missing.as_mut()) {
            (Some(false), Some(list)) => list.push(sha.clone()),
            (None, _) => missing = None,
            _ => {}
        }
    }
    PhotoCompleteness {
        referenced: all.len(),
        complete: missing.as_ref().map(Vec::is_empty),
        missing,
    }
}

/// A row of the issue list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IssueRow {
    pub id: String,
    /// `river`, `forest` or `field`.
    pub system: String,
    pub category: String,
    /// `general`, `urgent` or `critical`.
    pub severity: String,
    pub asset: String,
    pub division: String,
    /// `[lon, lat]`
    pub location: [f64; 2],
    pub reporter: String,
    pub reported_at_ms: i64,
    pub description: String,
    /// Derived by the workflow fold: `reported`, `accepted`, `assigned`, `submitted`, `closed`,
    /// `invalid` or `duplicate`.
    pub status: Option<String>,
    /// The status as chief offices name it (待受理, 整改中 …).
    pub status_zh: Option<String>,
    pub assignee: Option<AssigneeView>,
    pub deadline_ms: Option<i64>,
    /// Whole days past the deadline while the rectification is late.
    pub overdue_days: Option<i64>,
    pub escalations: u32,
    pub photo_completeness: PhotoCompleteness,
    /// An earlier open issue of the same category nearby, when this one may repeat it.
    pub possible_duplicate_of: Option<String>,
    /// Reports from the public, the hotline or letters: their source, and a resident's "not
    /// satisfied" for the office to look at (`crate::public`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public: Option<crate::public::api::PublicMark>,
}

impl IssueRow {
    pub fn of(
        (r, s): (&Issue, &IssueState),
        now_ms: i64,
        duplicate_of: Option<String>,
        photos: PhotoCompleteness,
    ) -> Self {
        Self {
            id: r.id.clone(),
            system: r.system.as_str().into(),
            category: r.category.clone(),
            severity: r.severity.as_str().into(),
            asset: r.asset.clone(),
            division: r.division.as_str().into(),
            location: r.location,
            reporter: r.reporter.clone(),
            reported_at_ms: r.reported_at_ms,
            description: r.description.clone(),
            status: s.status.map(|st| st.as_str().into()),
            status_zh: s.status.map(|st| st.name_zh().into()),
            assignee: s.assignee.as_ref().map(AssigneeView::from),
            deadline_ms: s.deadline_ms,
            overdue_days: s.overdue_days(now_ms),
            escalations: s.escalations,
            photo_completeness: photos,
            possible_duplicate_of: duplicate_of,
            public: None,
        }
    }
}

/// One event of the timeline, with where it came from.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TimelineRow {
    pub id: String,
    pub kind: String,
    /// The user in whose name the event was appended.
    pub by: String,
    /// The device that recorded it (`web` for the dashboard, `deadline-job` for escalations).
    pub device: String,
    /// Device time, Unix milliseconds, as the phone recorded it.
    pub at_ms: i64,
    /// The time that counts for deadlines and statistics: the device time bounded by the
    /// server's receive times (never before what the sender had seen, never after this
    /// event's arrival). Differs from `at_ms` only when the device clock was out of bounds.
    pub counted_at_ms: i64,
    /// When the server accepted the change carrying the event; `None` for seeded events.
    pub received_at_ms: Option<i64>,
    /// The `user/device` that delivered it, from the audit trail.
    pub received_from: Option<String>,
    /// Why the event did not count (a conflicting offline transition), or `None`.
    pub superseded: Option<String>,
    /// The event's payload (assignee and deadline, reason, note, photos …).
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
}

/// A photo with its evidence checks.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PhotoView {
    pub sha256: String,
    /// `before`, `after` or `evidence`.
    pub role: String,
    pub taken_at_ms: Option<i64>,
    /// `[lon, lat]` from EXIF.
    pub position: Option<[f64; 2]>,
    /// Whether the server holds the photo; `None` when unknown.
    pub stored: Option<bool>,
    /// Doubts about the photo as evidence, each explained with its numbers.
    pub warnings: Vec<String>,
    /// The same doubts by code with their numbers (`{"flag": "far_from_place", "metres": …}`).
    #[schema(value_type = Vec<Object>)]
    pub evidence: Vec<sync_core::photo::EvidenceFlag>,
}

pub fn timeline(issue: &LoadedIssue, history: &[AuditEntry]) -> Vec<TimelineRow> {
    let receipts = event_receipts(&issue.bytes, history).unwrap_or_default();
    issue
        .state
        .timeline
        .iter()
        .map(|entry| {
            let e = &entry.event;
            let receipt = receipts.get(&e.id);
            let mut payload = serde_json::to_value(&e.action).unwrap_or_default();
            if let Some(map) = payload.as_object_mut() {
                map.remove("kind");
            }
            TimelineRow {
                id: e.id.clone(),
                kind: e.action.kind().as_str().into(),
                by: e.by.clone(),
                device: e.device.clone(),
                at_ms: e.at_ms,
                counted_at_ms: entry.at_ms,
                received_at_ms: entry.received_at_ms.or(receipt.map(|r| r.received_at_ms)),
                received_from: receipt.map(|r| r.device.clone()),
                superseded: entry.superseded.clone(),
                payload,
            }
        })
        .collect()
}

/// The issue's photos as sync-core's `photo::evidence` judged them (`photos::issue_evidence`).
pub fn photos(judged: &[PhotoEvidence]) -> Vec<PhotoView> {
    judged
        .iter()
        .map(|p| PhotoView {
            sha256: p.photo.sha256.clone(),
            role: p.photo.role.as_str().into(),
            taken_at_ms: p.photo.taken_at_ms,
            position: p.photo.position,
            stored: p.arrival.stored(),
            warnings: p.flags.iter().map(ToString::to_string).collect(),
            evidence: p.flags.clone(),
        })
        .collect()
}

/// What `user` may append to the issue now (sync-core's `workflow::allowed_actions`).
pub fn allowed_for(user: &User, issue: &LoadedIssue) -> Vec<EventKind> {
    workflow::allowed_actions(user, &IssueContext::of(&issue.record), &issue.state)
}

impl PhotoView {
    /// The photo reference the view was made from (for pairing by position).
    pub fn as_ref(&self) -> PhotoRef {
        PhotoRef {
            sha256: self.sha256.clone(),
            role: if self.role == PhotoRole::After.as_str() {
                PhotoRole::After
            } else {
                PhotoRole::Before
            },
            taken_at_ms: self.taken_at_ms,
            position: self.position,
            bytes: 0,
        }
    }
}
