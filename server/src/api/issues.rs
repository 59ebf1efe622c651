//! The rectification workflow over HTTP: the issue list with filters and paging, one issue's
//! record, timeline and photos, and actions taken from the web.
//!
//! An action is appended by the server under its own automerge actor, in the user's name, after
//! the same authorization as a phone's change (scope, then the workflow table) — see
//! `sync_core::hub::Hub::act`. It lands in the change feed, so phones receive it at their next
//! sync. Invalid transitions answer 409 with the allowed next steps, forbidden ones 403, bad
//! payloads 422. The handlers stay thin: the board's shapes are in `crate::board`.

use std::borrow::Cow;

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use sync_core::doc::DocKind;
use sync_core::hub::read::ReadScope;
use sync_core::hub::{ActError, WEB_DEVICE};
use sync_core::model::{DivisionCode, Severity, System};
use sync_core::photo::{Arrival, PhotoEvidence};
use sync_core::workflow::{self, Action, IssueFilter};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::board::{self, IssueRow, PhotoView, TimelineRow};
use crate::derived::{Work, CHANGES};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::photos::{self, RecordPhotos};
use crate::state::{now_ms, AppState};

/// Header naming a web action so that replaying the request acts once (a UUID).
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct IssueQuery {
    /// Comma-separated statuses: reported, accepted, assigned, submitted, closed, invalid,
    /// duplicate.
    #[param(schema_with = crate::api::schema::statuses)]
    pub status: Option<String>,
    /// river, forest or field.
    #[param(schema_with = crate::api::schema::system)]
    pub system: Option<String>,
    /// A 12-digit division code; issues inside it match.
    #[param(schema_with = crate::api::schema::division)]
    pub division: Option<String>,
    pub asset: Option<String>,
    /// Department name or user id the issue is assigned to.
    pub assignee: Option<String>,
    pub category: Option<String>,
    /// general, urgent or critical.
    #[param(schema_with = crate::api::schema::severity)]
    pub severity: Option<String>,
    /// true: only issues past their deadline; false: only those that are not.
    pub overdue: Option<bool>,
    /// true: only possible duplicates of an earlier open issue nearby.
    pub possible_duplicate: Option<bool>,
    /// Reported at or after this time (Unix ms).
    pub reported_from: Option<i64>,
    /// Reported before this time (Unix ms).
    pub reported_to: Option<i64>,
    /// Rows to skip (default 0).
    #[serde(default, deserialize_with = "crate::api::saturating_count")]
    pub offset: Option<usize>,
    /// Page size, at most 500 (default 50).
    #[serde(default, deserialize_with = "crate::api::saturating_count")]
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IssuePage {
    /// Rows matching the filters, before paging.
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    /// Newest report first.
    pub items: Vec<IssueRow>,
    /// Matching rows per status, for the board's columns.
    pub by_status: std::collections::BTreeMap<String, usize>,
}

fn bad(message: String) -> ApiError {
    ApiError::BadRequest(message)
}

fn parse_filters(q: &IssueQuery) -> Result<IssueFilter, ApiError> {
    Ok(IssueFilter {
        statuses: q
            .status
            .as_deref()
            .map(workflow::parse_statuses)
            .transpose()
            .map_err(bad)?,
        open: None,
        system: q
            .system
            .as_deref()
            .map(|s| System::parse(s).ok_or_else(|| bad(format!("unknown system {s}"))))
            .transpose()?,
        division: q
            .division
            .as_deref()
            .map(|d| DivisionCode::new(d).map_err(|e| bad(e.to_string())))
            .transpose()?,
        asset: q.asset.clone(),
        assignee: q.assignee.clone(),
        category: q.category.clone(),
        severity: q
            .severity
            .as_deref()
            .map(|s| Severity::parse(s).ok_or_else(|| bad(format!("unknown severity {s}"))))
            .transpose()?,
        overdue: q.overdue,
        possible_duplicate: q.possible_duplicate,
        reported_from: q.reported_from,
        reported_to: q.reported_to,
    })
}

/// Issues in the caller's scope with their derived workflow state, filtered and paged.
#[utoipa::path(
    tag = "issues",
    security(("bearer" = [])),
    params(IssueQuery),
    responses(
        (status = 200, body = IssuePage),
        (status = 400, body = ErrorBody, description = "an unknown status, system, severity or division code"),
        (status = 401, body = ErrorBody),
    )
)]
#[get("/issues")]
pub async fn list_issues(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<IssueQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let filters = parse_filters(&q)?;
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let radius = state.workflow.duplicate_radius_m;
    let page = web::block(move || -> Result<IssuePage, ApiError> {
        let (kept, caught_up) = state.derived.current(state.store.as_ref())?;
        state.metrics.count_work(CHANGES, &caught_up);
        let reads = ReadScope::of(&caller.user);
        kept.damage_in_scope(&reads, DocKind::Issue)?;
        let mut work = Work::default();
        let now = now_ms();
        let mut page = Vec::new();
        let mut total = 0;
        let mut by_status = std::collections::BTreeMap::new();
        // Newest report first; only the page's rows are shaped (and their photos looked up).
        for issue in kept.visible_issues(&reads) {
            let id = issue.record.id.as_str();
            let mut dup = None;
            let mut duplicate = || {
                dup.get_or_insert_with(|| kept.duplicate_of(&reads, id, radius, &mut work))
                    .clone()
            };
            if !filters.matches((&issue.record, &issue.state), now, &mut duplicate) {
                continue;
            }
            if (offset..offset.saturating_add(limit)).contains(&total) {
                page.push((issue.clone(), duplicate()));
            }
            total += 1;
            if let Some(st) = issue.state.status {
                *by_status.entry(st.as_str().to_owned()).or_insert(0) += 1;
            }
        }
        drop(kept);
        let items = page
            .into_iter()
            .map(|(issue, dup)| {
                let record_photos = RecordPhotos::of_issue(
                    &issue.record,
                    &issue.state,
                    Cow::Borrowed(&issue.after_by),
                );
                let arrival = |sha: &str| photos::arrival(&state, &record_photos, sha);
                let photos = board::completeness(&issue.photos, &arrival);
                let mut row = IssueRow::of((&issue.record, &issue.state), now, dup, photos);
                row.public = crate::public::api::mark(&state, &row.id);
                row
            })
            .collect();
        state.metrics.count_work("/api/v1/issues", &work);
        Ok(IssuePage {
            total,
            offset,
            limit,
            items,
            by_status,
        })
    })
    .await??;
    Ok(HttpResponse::Ok().json(page))
}

/// A photo's arrival as the issue's judgement found it.
fn judged_arrival(judged: &[PhotoEvidence], sha: &str) -> Arrival {
    judged
        .iter()
        .find(|p| p.photo.sha256 == sha)
        .map_or(Arrival::NotReceived, |p| p.arrival)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct IssueDetail {
    #[serde(flatten)]
    pub row: IssueRow,
    pub rejections: u32,
    /// The issue this one was closed as a duplicate of.
    pub duplicate_of: Option<String>,
    pub patrol: Option<String>,
    /// Every event in list order, superseded ones included and marked.
    pub timeline: Vec<TimelineRow>,
    pub photos: Vec<PhotoView>,
    /// Each after photo with the before photo taken nearest to it and their distance; `far`
    /// beyond `--photo-pair-warn-m`.
    #[schema(value_type = Vec<Object>)]
    pub pairs: Vec<sync_core::photo::PhotoPair>,
    /// The event kinds the caller may append now (the dashboard shows only these buttons).
    pub allowed_actions: Vec<String>,
    /// The event kinds anyone may append now.
    pub next_steps: Vec<String>,
}

/// One issue: record, derived state, timeline (who, device, device time, superseded events
/// marked; the server receive time and the delivering `user/device` for supervisors and
/// administrators only), photos with evidence warnings, and the caller's allowed actions.
#[utoipa::path(
    tag = "issues",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "issue id")),
    responses(
        (status = 200, body = IssueDetail),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "unknown or outside the caller's scope"),
    )
)]
#[get("/issues/{id}")]
pub async fn get_issue(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let detail = web::block(move || -> Result<IssueDetail, ApiError> {
        let store = state.store.as_ref();
        let mut work = Work::default();
        let reads = ReadScope::of(&caller.user);
        let issue = board::visible_issue(store, &reads, &id, &mut work)?
            .ok_or_else(|| ApiError::NotFound(format!("no issue {id} in your scope")))?;
        let now = now_ms();
        let dup = {
            let (kept, caught_up) = state.derived.current(store)?;
            state.metrics.count_work(CHANGES, &caught_up);
            let radius = state.workflow.duplicate_radius_m;
            kept.duplicate_of(&reads, &id, radius, &mut work)
        };
        state.metrics.count_work("/api/v1/issues/{id}", &work);
        let after_by = photos::after_photos_by(&issue.state);
        let judged = photos::issue_evidence(
            &state,
            &caller.user,
            (&issue.record, &issue.state),
            &after_by,
            now,
        );
        let mut timeline = board::timeline(&issue, &store.history(&id)?);
        // Which user and device delivered each change, and when, is the audit trail
        // (`/docs/{id}/history`): supervisors and administrators only.
        if !reads.reads_audit() {
            for row in &mut timeline {
                row.received_from = None;
                row.received_at_ms = None;
            }
        }
        Ok(IssueDetail {
            row: IssueRow {
                public: crate::public::api::mark(&state, &id),
                ..IssueRow::of(
                    (&issue.record, &issue.state),
                    now,
                    dup,
                    board::completeness(
                        &board::referenced_photos(&issue.record, &issue.state),
                        &|sha: &str| judged_arrival(&judged, sha),
                    ),
                )
            },
            rejections: issue.state.rejections,
            duplicate_of: issue.state.duplicate_of.clone(),
            patrol: issue.record.patrol.clone(),
            allowed_actions: board::allowed_for(&caller.user, &issue)
                .iter()
                .map(|k| k.as_str().to_string())
                .collect(),
            next_steps: issue
                .state
                .next_steps()
                .iter()
                .map(|k| k.as_str().to_string())
                .collect(),
            pairs: sync_core::photo::pair_photos(
                &board::photos(&judged)
                    .iter()
                    .map(board::PhotoView::as_ref)
                    .collect::<Vec<_>>(),
                state.desk.pair_warn_m,
            ),
            timeline,
            photos: board::photos(&judged),
        })
    })
    .await??;
    Ok(HttpResponse::Ok().json(detail))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Appended {
    pub event_id: String,
    pub kind: String,
    /// The issue's status after the event.
    pub status: Option<String>,
    /// What the caller may append next.
    pub allowed_actions: Vec<String>,
}

/// Appends a workflow event from the web: `{"kind": "accepted"}`,
/// `{"kind": "assigned", "assignee": {"department": "区水务局"}, "deadline_ms": …}`,
/// `{"kind": "verified", "note": …}`, `{"kind": "rejected", "reason": …}`,
/// `{"kind": "invalidated", "reason": …}`, `{"kind": "duplicate_of", "issue": …}`,
/// `{"kind": "escalated", "note": …}`, `{"kind": "reopened", "reason": …}`,
/// `{"kind": "comment", "text": …}` (and `rectification_submitted` with `note` and `photos` for
/// assignees). The server appends it in the caller's name from device `web`, after the same
/// checks as sync; phones get it at their next sync. With an `Idempotency-Key: <uuid>` header
/// the action happens once: the key becomes the event's id, and a replay answers the event
/// already appended (201, same `event_id`) without appending another.
#[utoipa::path(
    tag = "issues",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "issue id")),
    request_body(content = Action, description = "a workflow action: kind plus its payload"),
    responses(
        (status = 201, body = Appended),
        (status = 400, body = ErrorBody, description = "not a workflow action"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "the caller stands in no relation to the issue that allows this action; `who` and `needs` list the relations"),
        (status = 404, body = ErrorBody, description = "unknown or outside the caller's scope"),
        (status = 409, body = ErrorBody, description = "not allowed in the issue's status; `allowed` lists the next steps"),
        (status = 422, body = ErrorBody, description = "the payload is unusable, e.g. a rejection without a reason"),
    )
)]
#[post("/issues/{id}/events")]
pub async fn post_event(
    request: actix_web::HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let action: Action = serde_json::from_value(body.into_inner())
        .map_err(|e| bad(format!("not a workflow action: {e}")))?;
    let key = request
        .headers()
        .get(IDEMPOTENCY_KEY)
        .map(|v| v.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| bad("the Idempotency-Key header is not text".into()))?;
    let id = id.into_inner();
    let hub = state.hub.clone();
    let user = caller.user.clone();
    let outcome = web::block(move || match key {
        Some(key) => hub.act_once(&user, WEB_DEVICE, &id, &key, action, now_ms()),
        None => hub.act(&user, WEB_DEVICE, &id, action, now_ms()),
    })
    .await?;
    match outcome {
        Ok(acted) => {
            tracing::info!(
                user = %caller.user.id,
                event = %acted.event.id,
                kind = %acted.event.action.kind(),
                "workflow action from the web"
            );
            let allowed = workflow::allowed_actions(&caller.user, &acted.context, &acted.state);
            Ok(HttpResponse::Created().json(Appended {
                event_id: acted.event.id.clone(),
                kind: acted.event.action.kind().as_str().into(),
                status: acted.state.status.map(|s| s.as_str().into()),
                allowed_actions: allowed.iter().map(|k| k.as_str().to_string()).collect(),
            }))
        }
        Err(ActError::Transition(err)) => Err(ApiError::Transition(err)),
        Err(ActError::NotFound(id)) => {
            Err(ApiError::NotFound(format!("no issue {id} in your scope")))
        }
        Err(ActError::KeyReused(message)) => Err(ApiError::Unprocessable {
            code: ErrorCode::IdempotencyKeyReused,
            message,
        }),
        Err(ActError::Hub(err)) => Err(err.into()),
    }
}
