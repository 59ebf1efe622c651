//! Photos as evidence on the server: which photos a record references have arrived, and what is
//! doubtful about each of them.
//!
//! When a blob arrives the server records its receive time with it (`blobs::BlobRecord`). The
//! capture time and position come from the document's [`PhotoRef`] (the phone read them from
//! EXIF before re-encoding), and the record supplies the time window and the place. From those
//! fixed facts [`photo_status`] runs sync-core's [`evidence_checks`]; the flags are computed
//! when asked, not stored, so a patrol that ends after its photos arrived is judged against its
//! real window. Nothing is corrected: doubts are shown to supervisors, each with its numbers.
//!
//! [`PhotoIndex`] says which documents reference a blob, which is who may download it (see
//! `index` for the rule). [`UploadQuota`] bounds the bytes each user may send in a day, and
//! [`collect_unreferenced`] removes photos that no record has referenced for a grace period
//! after they arrived. This module does no HTTP.

mod index;
mod quota;

pub use index::{referenced_photos, PhotoIndex, RecordEditors, Uploader};
pub use quota::{QuotaCheck, UploadQuota, DEFAULT_DAILY_PHOTO_BYTES};

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sync_core::authz::in_scope;
use sync_core::doc::{DocKind, DocView, Issue, Patrol, PatrolDoc};
use sync_core::hub::HubStore;
use sync_core::model::{PhotoRef, PhotoRole, TrackPoint, User};
use sync_core::photo::{evidence_checks, EvidenceFlag, EvidenceRules};
use sync_core::workflow::{IssueContext, IssueState};
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
/// (`Store::hold_saves`) and under its blob's lock: a record saved before that moment is in the
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
        let _saves = store.hold_saves();
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

/// What a record's photos are judged against.
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceContext {
    /// The patrol's `(start, end)`, Unix milliseconds; `None` skips the time-window check.
    /// Applied to before and evidence photos only: after photos are taken when the problem is
    /// rectified, days later.
    pub window: Option<(i64, i64)>,
    /// `[lon, lat]`: the issue's location, or the patrol's track; empty skips the distance check.
    pub place: Vec<[f64; 2]>,
    pub rules: EvidenceRules,
    /// Who may put photos into the record: a stored photo that someone else uploaded is shown as
    /// not received, since a record can name any hash and would otherwise tell whether, and
    /// when, a photo it has no claim to arrived.
    pub editors: RecordEditors,
}

impl EvidenceContext {
    /// A patrol's photos against its time window (until `now_ms` while still under way) and its
    /// track.
    pub fn of_patrol(patrol: &Patrol, track: &[TrackPoint], now_ms: i64) -> Self {
        Self {
            window: Some((patrol.started_at_ms, patrol.ended_at_ms.unwrap_or(now_ms))),
            place: track.iter().map(|p| [p.lon, p.lat]).collect(),
            rules: EvidenceRules::default(),
            editors: RecordEditors::Patrol {
                chief: patrol.chief.clone(),
            },
        }
    }

    /// An issue's photos against its location and, when it was raised on a patrol, that
    /// patrol's `(start, end)`.
    pub fn of_issue(issue: &Issue, state: &IssueState, patrol_window: Option<(i64, i64)>) -> Self {
        Self {
            window: patrol_window,
            place: vec![issue.location],
            rules: EvidenceRules::default(),
            editors: RecordEditors::Issue {
                context: IssueContext {
                    system: issue.system,
                    division: issue.division.clone(),
                    asset: issue.asset.clone(),
                    reporter: issue.reporter.clone(),
                },
                state: Box::new(state.clone()),
            },
        }
    }

    /// The context of a document view as `viewer` sees it; for an issue raised on a patrol the
    /// patrol is read from `store` for its window, skipped when it has not arrived yet or is
    /// outside the viewer's scope. The issue names its patrol freely, and the window's times
    /// would show in the doubts, so a patrol the viewer may not see counts as not arrived.
    pub fn of_view<S: HubStore + ?Sized>(
        store: &S,
        viewer: &User,
        view: &DocView,
        now_ms: i64,
    ) -> Self {
        match view {
            DocView::Patrol { record, track, .. } => Self::of_patrol(record, track, now_ms),
            DocView::Issue { record, state, .. } => {
                let window = record
                    .patrol
                    .as_deref()
                    .and_then(|id| patrol_window(store, viewer, id, now_ms));
                Self::of_issue(record, state, window)
            }
        }
    }
}

fn patrol_window<S: HubStore + ?Sized>(
    store: &S,
    viewer: &User,
    id: &str,
    now_ms: i64,
) -> Option<(i64, i64)> {
    let stored = store.document(id).ok()??;
    if stored.meta.kind != DocKind::Patrol || !in_scope(viewer, &stored.meta) {
        return None;
    }
    let patrol = PatrolDoc::load(&stored.bytes).ok()?.view().ok()?;
    Some((patrol.started_at_ms, patrol.ended_at_ms.unwrap_or(now_ms)))
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
    /// `{"flag": "missing_exif" | "taken_outside_window" | "clock_skew" | "far_from_place", …}`
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

/// The status of each of `photos` (in order) against `context`.
///
/// A blob whose record cannot be read is reported as not present (and logged): the server
/// cannot serve it, so the record is not complete. So is a blob uploaded by someone who may not
/// put photos into this record (`context.editors`): it is not this record's photo until its
/// editors send it themselves.
pub fn photo_status(
    state: &AppState,
    photos: &[PhotoRef],
    context: &EvidenceContext,
) -> Vec<PhotoStatus> {
    photos
        .iter()
        .map(|photo| {
            let record = state
                .blobs
                .store()
                .record(&photo.sha256)
                .unwrap_or_else(|err| {
                    tracing::error!(sha256 = %photo.sha256, error = %err, "cannot read a photo's record");
                    None
                })
                .filter(|r| context.editors.include(&uploader(state, &r.uploaded_by)));
            let received_at_ms = record.map(|r| r.received_at_ms);
            let window = match photo.role {
                PhotoRole::After => None,
                PhotoRole::Before | PhotoRole::Evidence => context.window,
            };
            let evidence = evidence_checks(
                photo,
                window,
                received_at_ms.unwrap_or(i64::MAX),
                &context.place,
                &context.rules,
            );
            PhotoStatus {
                sha256: photo.sha256.clone(),
                role: photo.role,
                present: received_at_ms.is_some(),
                received_at_ms,
                evidence_text: evidence.iter().map(ToString::to_string).collect(),
                evidence,
            }
        })
        .collect()
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

/// [`photo_status`] with the summary a record's view shows.
pub fn completeness(
    state: &AppState,
    photos: &[PhotoRef],
    context: &EvidenceContext,
) -> PhotoCompleteness {
    let photos = photo_status(state, photos, context);
    let missing: Vec<String> = photos
        .iter()
        .filter(|p| !p.present)
        .map(|p| p.sha256.clone())
        .collect();
    PhotoCompleteness {
        complete: missing.is_empty(),
        missing,
        photos,
    }
}
