//! The rectification workflow over HTTP: the issue list with filters and paging, one issue's
//! record, timeline and photos, and actions taken from the web.
//!
//! An action is appended by the server under its own automerge actor, in the user's name, after
//! the same authorization as a phone's change (scope, then the workflow table) — see
//! `sync_core::hub::Hub::act`. It lands in the change feed, so phones receive it at their next
//! sync. Invalid transitions answer 409 with the allowed next steps, forbidden ones 403, bad
//! payloads 422. The handlers stay thin: the board's shapes are in `crate::board`.

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use sync_core::authz::in_scope;
use sync_core::doc::{DocKind, Issue};
use sync_core::hub::{ActError, WEB_DEVICE};
use sync_core::model::{DivisionCode, Role, Severity, System};
use sync_core::workflow::{self, Action, IssueContext, IssueState};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::board::{self, IssueRow, IssueSummary, PhotoView, TimelineRow};
use crate::derived::{Work, CHANGES};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::photos::{uploader, RecordEditors};
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
    pub offset: Option<usize>,
    /// Page size, at most 500 (default 50).
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

struct Filters {
    statuses: Option<Vec<sync_core::workflow::Status>>,
    system: Option<System>,
    division: Option<DivisionCode>,
    severity: Option<Severity>,
}

fn parse_filters(q: &IssueQuery) -> Result<Filters, ApiError> {
    Ok(Filters {
        statuses: q
            .status
            .as_deref()
            .map(board::parse_statuses)
            .transpose()
            .map_err(bad)?,
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
        severity: q
            .severity
            .as_deref()
            .map(|s| Severity::parse(s).ok_or_else(|| bad(format!("unknown severity {s}"))))
            .transpose()?,
    })
}

/// Whether a kept issue passes the filters; the possible duplicate is asked for only when the
/// filter needs it.
fn matches(
    issue: &IssueSummary,
    now: i64,
    q: &IssueQuery,
    f: &Filters,
    duplicate: &mut dyn FnMut() -> Option<String>,
) -> bool {
    let (r, s) = (&issue.record, &issue.state);
    let status_ok = f
        .statuses
        .as_ref()
        .is_none_or(|list| list.iter().any(|st| s.status == Some(*st)));
    status_ok
        && f.system.is_none_or(|sys| r.system == sys)
        && f.division.as_ref().is_none_or(|d| d.contains(&r.division))
        && q.asset.as_ref().is_none_or(|a| r.asset == *a)
        && q.assignee
            .as_ref()
            .is_none_or(|a| s.assignee.as_ref().is_some_and(|x| x.name() == a))
        && q.category.as_ref().is_none_or(|c| r.category == *c)
        && f.severity.is_none_or(|sev| r.severity == sev)
        && q.overdue
            .is_none_or(|want| s.overdue_days(now).is_some() == want)
        && q.reported_from.is_none_or(|t| r.reported_at_ms >= t)
        && q.reported_to.is_none_or(|t| r.reported_at_ms < t)
        && q.possible_duplicate
            .is_none_or(|want| duplicate().is_some() == want)
}

/// Whether the server holds a photo as this issue's: complete, verified, and uploaded by one
/// who may put it there (`board::IssuePhotos`); `None` when its record cannot be read (logged),
/// so completeness is reported as unknown rather than guessed.
fn blob_lookup<'a>(
    state: &'a AppState,
    record: &Issue,
    issue_state: &IssueState,
    after_by: &'a board::AfterBy,
) -> impl Fn(&str) -> Option<bool> + 'a {
    let photos = board::IssuePhotos {
        editors: RecordEditors::Issue {
            context: IssueContext {
                system: record.system,
                division: record.division.clone(),
                asset: record.asset.clone(),
                reporter: record.reporter.clone(),
            },
            state: Box::new(issue_state.clone()),
        },
        after_by,
    };
    move |sha: &str| match state.blobs.store().record(sha) {
        Ok(Some(record)) => Some(photos.counts(sha, &uploader(state, &record.uploaded_by))),
        Ok(None) => Some(false),
        Err(err) => {
            tracing::error!(sha256 = %sha, error = %err, "cannot read a photo's record");
            None
        }
    }
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
        let user = &caller.user;
        kept.damage_in_scope(user, DocKind::Issue)?;
        let mut work = Work::default();
        let now = now_ms();
        let mut page = Vec::new();
        let mut total = 0;
        let mut by_status = std::collections::BTreeMap::new();
        // Newest report first; only the page's rows are shaped (and their photos looked up).
        for issue in kept.issues_newest_first() {
            if !in_scope(user, &issue.meta) {
                continue;
            }
            let id = issue.record.id.as_str();
            let mut dup = None;
            let mut duplicate = || {
                dup.get_or_insert_with(|| kept.duplicate_of(user, id, radius, &mut work))
                    .clone()
            };
            if !matches(issue, now, &q, &filters, &mut duplicate) {
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
                let stored = blob_lookup(&state, &issue.record, &issue.state, &issue.after_by);
                let photos = board::completeness(&issue.photos, &stored);
                IssueRow::of((&issue.record, &issue.state), now, dup, photos)
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
        let issue = board::issue_in_scope(store, &caller.user, &id, &mut work)?
            .ok_or_else(|| ApiError::NotFound(format!("no issue {id} in your scope")))?;
        let now = now_ms();
        let dup = {
            let (kept, caught_up) = state.derived.current(store)?;
            state.metrics.count_work(CHANGES, &caught_up);
            let radius = state.workflow.duplicate_radius_m;
            kept.duplicate_of(&caller.user, &id, radius, &mut work)
        };
        state.metrics.count_work("/api/v1/issues/{id}", &work);
        let after_by = board::after_photos_by(&issue.state);
        let stored = blob_lookup(&state, &issue.record, &issue.state, &after_by);
        let mut timeline = board::timeline(&issue, &store.history(&id)?);
        let photos = board::photos(&issue, &timeline, &stored, now);
        // Which user and device delivered each change, and when, is the audit trail
        // (`/docs/{id}/history`): supervisors and administrators only. The photo checks above
        // still use the receive times.
        if !matches!(caller.user.role, Role::Supervisor { .. } | Role::Admin) {
            for row in &mut timeline {
                row.received_from = None;
                row.received_at_ms = None;
            }
        }
        Ok(IssueDetail {
            row: IssueRow::of(
                (&issue.record, &issue.state),
                now,
                dup,
                board::completeness(
                    &board::referenced_photos(&issue.record, &issue.state),
                    &stored,
                ),
            ),
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
            timeline,
            photos,
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
            let who = workflow::relations(&caller.user, &acted.context, &acted.state);
            let allowed = workflow::allowed_actions(&acted.state, &who);
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
