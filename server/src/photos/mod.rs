//! Photo access on the server: which stored photos count as a record's, who may download a
//! photo, how much each user may upload, and when an unreferenced photo is removed. The bytes
//! themselves are `crate::blobs`; what is doubtful about a photo is sync-core's
//! `photo::evidence`.
//!
//! When a blob arrives the server records its receive time with it (`blobs::BlobRecord`).
//! [`arrival`] reads that receipt for a record, counting only uploads by those who may put the
//! photo there ([`RecordPhotos`]); [`issue_evidence`] and [`view_evidence`] hand the record's
//! photos, its context (an issue raised on a patrol the viewer may see: the patrol's window)
//! and those arrivals to sync-core's `evidence`, the one judgement the issue page, the issue
//! list and the document view all show. The flags are computed when asked, not stored, so a
//! patrol that ends after its photos arrived is judged against its real window.
//!
//! [`PhotoIndex`] says which documents reference a blob, which is who may download it (see
//! `index` for the rule). [`UploadQuota`] bounds the bytes each user may send in a day, and
//! [`collect_unreferenced`] removes photos that no record has referenced for a grace period
//! after they arrived. This module does no HTTP.

mod index;
mod quota;

pub use index::{referenced_photos, PhotoIndex, RecordEditors, Uploader};
pub use quota::{QuotaCheck, UploadQuota, DEFAULT_DAILY_PHOTO_BYTES};

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sync_core::doc::{DocKind, DocView, Issue, Patrol, PatrolDoc};
use sync_core::hub::read::ReadScope;
use sync_core::hub::HubStore;
use sync_core::model::{PhotoRole, User};
use sync_core::photo::{
    evidence, issue_photos, patrol_window, Arrival, EvidenceContext, EvidenceFlag, PhotoEvidence,
};
use sync_core::workflow::{Action, IssueContext, IssueState};
use utoipa::ToSchema;

use crate::blobs::BlobError;
use crate::state::AppState;

/// Default time a stored photo may wait for a record to reference it. A phone sends its records
/// before its photos in each sync, so a photo normally arrives already referenced; a week
/// covers any record held up on the way.
pub const DEFAULT_UNREFERENCED_PHOTO_AFTER: Duration = Duration::from_secs(7 * 86_400);

/// The photo bounds an operator can set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoSettings {
    /// Bytes each user may upload per day (China's calendar day); beyond it uploads are
    /// answered 429 until the next day.
    pub daily_bytes_per_user: u64,
    /// A stored photo that no record references this long after it arrived is removed.
    pub unreferenced_after: Duration,
}

impl Default for PhotoSettings {
    fn default() -> Self {
        Self {
            daily_bytes_per_user: DEFAULT_DAILY_PHOTO_BYTES,
            unreferenced_after: DEFAULT_UNREFERENCED_PHOTO_AFTER,
        }
    }
}

/// Removes the stored photos that no record references and that arrived longer than
/// `unreferenced_after` before `now_ms` (uploads a phone never followed with its record, and
/// pictures sent only to fill the disk); returns how many. A photo referenced by any record,
/// however the reference was made, stays.
///
/// Nothing is removed while a document cannot be read (damaged, or its photos do not load):
/// its photos are unknown, and may be the only copy of a record's evidence. The run says so in
/// the log and removes nothing until the document reads again.
///
/// A photo found unreferenced is asked about again, and removed, with document saves held back
/// on every server (`Store::hold_saves`) and under its blob's lock: a record saved before that moment is in the
/// index when it is asked, so a week-old photo a record has just named stays; one saved after
/// it names a photo already gone, and the record shows it as not received, as for any photo
/// that has not arrived. Asking first without holding saves keeps that wait to the few photos
/// that are removed.
pub fn collect_unreferenced(state: &AppState, now_ms: i64) -> Result<usize, BlobError> {
    let store = &*state.store;
    let hub = |err: sync_core::hub::HubError| BlobError::Io(std::io::Error::other(err.to_string()));
    let unreadable = state.photo_index.unreadable(store).map_err(hub)?;
    if let Some(first) = unreadable.first() {
        tracing::warn!(
            documents = unreadable.len(),
            first = %first,
            "unreferenced photos are not removed while documents cannot be read: their photos are unknown (each was logged when it failed to index)"
        );
        return Ok(0);
    }
    let grace =
        i64::try_from(state.photo_settings.unreferenced_after.as_millis()).unwrap_or(i64::MAX);
    let cutoff = now_ms.saturating_sub(grace);
    let removed = state.blobs.remove_unreferenced(cutoff, &|sha256, remove| {
        if state.photo_index.referenced(store, sha256).map_err(hub)? {
            return Ok(false);
        }
        // Not had in time (a save on some server does not finish): this run stops here,
        // and the next looks at the photos again.
        let _saves = store.hold_saves().map_err(|err| {
            BlobError::Io(std::io::Error::other(format!(
                "{err}; the remaining photos are looked at again at the next run"
            )))
        })?;
        if state.photo_index.referenced(store, sha256).map_err(hub)? {
            return Ok(false);
        }
        remove()
    })?;
    if removed > 0 {
        tracing::info!(removed, "unreferenced photos removed");
    }
    Ok(removed)
}

/// After photo → the users whose rectifications listed it.
pub type AfterBy = BTreeMap<String, BTreeSet<String>>;

/// Who submitted each after photo of an issue (from its full timeline).
pub fn after_photos_by(state: &IssueState) -> AfterBy {
    let mut by = AfterBy::new();
    for entry in &state.timeline {
        if let Action::RectificationSubmitted { photos, .. } = &entry.event.action {
            for sha in photos {
                by.entry(sha.clone())
                    .or_default()
                    .insert(entry.event.by.clone());
            }
        }
    }
    by
}

/// Whose uploads count as a record's photos: a stored photo is the record's only when one who
/// may put it there uploaded it (a patrol's chief; an issue's reporter or a supervisor for its
/// own photos, the author of a rectification for that rectification's after photos). A record
/// can name any hash; shown otherwise, a record would tell a chief who copied a hash whether,
/// and when, that photo arrived.
#[derive(Debug)]
pub struct RecordPhotos<'a> {
    pub editors: RecordEditors,
    pub after_by: Cow<'a, AfterBy>,
}

impl<'a> RecordPhotos<'a> {
    pub fn of_patrol(patrol: &Patrol) -> Self {
        Self {
            editors: RecordEditors::Patrol {
                chief: patrol.chief.clone(),
            },
            after_by: Cow::Owned(AfterBy::new()),
        }
    }

    /// An issue's, with `after_by` from its full timeline ([`after_photos_by`]).
    pub fn of_issue(issue: &Issue, state: &IssueState, after_by: Cow<'a, AfterBy>) -> Self {
        Self {
            editors: RecordEditors::Issue {
                context: IssueContext::of(issue),
                state: Box::new(state.clone()),
            },
            after_by,
        }
    }

    /// Whether `uploader`'s upload of `sha` counts as this record's photo.
    pub fn counts(&self, sha: &str, uploader: &Uploader) -> bool {
        self.editors.include(uploader)
            || self
                .after_by
                .get(sha)
                .is_some_and(|by| by.contains(&uploader.id))
    }
}

/// Whether and when the server received `sha` as one of `photos`: stored, complete, verified
/// and uploaded by one who may put it there. A receipt that cannot be read is logged and
/// answers [`Arrival::Unknown`].
pub fn arrival(state: &AppState, photos: &RecordPhotos<'_>, sha: &str) -> Arrival {
    match state.blobs.store().record(sha) {
        Ok(Some(record)) if photos.counts(sha, &uploader(state, &record.uploaded_by)) => {
            Arrival::Received {
                at_ms: record.received_at_ms,
            }
        }
        Ok(_) => Arrival::NotReceived,
        Err(err) => {
            tracing::error!(sha256 = %sha, error = %err, "cannot read a photo's record");
            Arrival::Unknown
        }
    }
}

/// What the server knows of the clock of the phone that recorded `doc_id` (its binding and its
/// last acknowledged sync before the record arrived); nothing when that cannot be read, which
/// leaves a photo's early side unjudged rather than failing the page.
fn recording_clock(state: &AppState, doc_id: &str) -> sync_core::rules::DeviceClock {
    crate::derived::device_clock(&*state.store, doc_id).unwrap_or_else(|err| {
        tracing::error!(doc = %doc_id, error = %err, "cannot read the record's device clock");
        sync_core::rules::DeviceClock::default()
    })
}

/// The window of the patrol an issue names, as `viewer` may see it: `None` when the patrol
/// has not arrived, cannot be read, or is outside the viewer's scope. The issue names its
/// patrol freely and the window's times would show in the doubts, so a patrol the viewer may
/// not see counts as not arrived.
pub fn issue_patrol_window<S: HubStore + ?Sized>(
    store: &S,
    viewer: &User,
    issue: &Issue,
    now_ms: i64,
) -> Option<(i64, i64)> {
    let id = issue.patrol.as_deref()?;
    let stored = ReadScope::of(viewer)
        .document(store, id, Some(DocKind::Patrol))
        .ok()??;
    let patrol = PatrolDoc::load(&stored.bytes).ok()?.view().ok()?;
    Some(patrol_window(&patrol, now_ms))
}

/// An issue's photos ([`issue_photos`]) judged by sync-core's [`evidence`] as `viewer` sees
/// them. `after_by` comes from the issue's full timeline.
pub fn issue_evidence(
    state: &AppState,
    viewer: &User,
    (record, issue_state): (&Issue, &IssueState),
    after_by: &AfterBy,
    now_ms: i64,
) -> Vec<PhotoEvidence> {
    let window = issue_patrol_window(&*state.store, viewer, record, now_ms);
    let context = EvidenceContext::of_issue(record, window).with_device(
        recording_clock(state, &record.id),
        issue_state.reported_at_ms,
    );
    let photos = RecordPhotos::of_issue(record, issue_state, Cow::Borrowed(after_by));
    evidence(
        &issue_photos(record, issue_state),
        &context,
        &|sha: &str| arrival(state, &photos, sha),
    )
}

/// A document's photos judged as `viewer` sees them: a patrol's against its window and track,
/// an issue's as [`issue_evidence`].
pub fn view_evidence(
    state: &AppState,
    viewer: &User,
    view: &DocView,
    now_ms: i64,
) -> Vec<PhotoEvidence> {
    match view {
        DocView::Patrol { record, track, .. } => {
            let photos = RecordPhotos::of_patrol(record);
            evidence(
                &record.photos,
                &EvidenceContext::of_patrol(record, track, now_ms)
                    .with_device(recording_clock(state, &record.id), None),
                &|sha: &str| arrival(state, &photos, sha),
            )
        }
        DocView::Issue {
            record,
            state: issue_state,
            ..
        } => issue_evidence(
            state,
            viewer,
            (record, issue_state),
            &after_photos_by(issue_state),
            now_ms,
        ),
    }
}

/// One referenced photo: whether the server holds it, and its doubts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PhotoStatus {
    pub sha256: String,
    #[schema(value_type = String, example = "before")]
    pub role: PhotoRole,
    /// Whether the blob is stored, complete and verified.
    pub present: bool,
    /// When the server received the photo, Unix milliseconds.
    pub received_at_ms: Option<i64>,
    /// `{"flag": "missing_exif" | "taken_outside_window" | "clock_skew" | "taken_too_early" | "far_from_place", …}`
    /// with the numbers. The clock-skew check waits for the photo to arrive.
    #[schema(value_type = Vec<Object>)]
    pub evidence: Vec<EvidenceFlag>,
    /// The same doubts in words, for people.
    pub evidence_text: Vec<String>,
}

/// Whether every photo a record references has arrived.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PhotoCompleteness {
    pub complete: bool,
    /// Names of the referenced photos not yet stored.
    pub missing: Vec<String>,
    pub photos: Vec<PhotoStatus>,
}

/// The uploader `id` with his account, if it still exists (a store failure is logged and
/// reads as no account: only his id then counts).
pub fn uploader(state: &AppState, id: &str) -> Uploader {
    let user = state.store.get_user(id).unwrap_or_else(|err| {
        tracing::error!(user = %id, error = %err, "cannot read a photo's uploader");
        None
    });
    Uploader {
        id: id.to_owned(),
        user: user.map(|found| found.user),
    }
}

impl PhotoCompleteness {
    /// The summary a record's view shows of its judged photos. A photo whose receipt cannot
    /// be read counts as not present: the server cannot serve it, so the record is not
    /// complete.
    pub fn of(judged: &[PhotoEvidence]) -> Self {
        let photos: Vec<PhotoStatus> = judged
            .iter()
            .map(|p| PhotoStatus {
                sha256: p.photo.sha256.clone(),
                role: p.photo.role,
                present: p.arrival.stored() == Some(true),
                received_at_ms: p.arrival.received_at_ms(),
                evidence_text: p.flags.iter().map(ToString::to_string).collect(),
                evidence: p.flags.clone(),
            })
            .collect();
        let missing: Vec<String> = photos
            .iter()
            .filter(|p| !p.present)
            .map(|p| p.sha256.clone())
            .collect();
        Self {
            complete: missing.is_empty(),
            missing,
            photos,
        }
    }
}
