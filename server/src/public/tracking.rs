//! The answer back: what became of a report, by its tracking code, and the resident's say on
//! the outcome.
//!
//! Every lookup is refused to an address that got too many codes wrong this hour. An answer
//! on the outcome is counted per address (`PublicLimits::feedback_per_address`), is checked
//! in full (body, code, report finished and not yet answered) before anything is locked, and
//! then takes the lock of its own report only (`cases::hold_case`) to read and store the case:
//! answers sent without end with one tracking code hold up no other report's.

use actix_web::http::{header, StatusCode};

use actix_web::{get, post, web, HttpResponse};
use serde::{Deserialize, Serialize};
use sync_core::api_types::ErrorCode;
use sync_core::doc::{DocKind, IssueDoc};
use sync_core::public::{self as rules, PublicStep, Satisfaction};
use utoipa::ToSchema;

use super::cases::{self, Case, Feedback};
use crate::error::{ApiError, ErrorBody};
use crate::state::{now_ms, AppState};

use super::api::{count, rate_limited};
use super::report::*;
use crate::auth::ClientIp;

/// What the tracking page shows.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TrackView {
    pub asset_name: String,
    pub category_name: String,
    pub source: String,
    pub reported_at_ms: i64,
    pub status: Option<String>,
    pub status_zh: Option<String>,
    /// The public part of the timeline.
    #[schema(value_type = Vec<Object>)]
    pub steps: Vec<PublicStep>,
    /// Links to the after photos, once the issue is closed.
    pub after_photos: Vec<String>,
    /// Whether the person may now say whether he is satisfied.
    pub may_rate: bool,
    pub feedback: Option<Feedback>,
}

/// The case of a tracking code and its issue.
pub(crate) fn load_case(
    state: &AppState,
    code: &str,
) -> Result<Option<(Case, IssueDoc)>, ApiError> {
    if code.is_empty() || code.len() > 40 || !code.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Ok(None);
    }
    let Some(case) = cases::case(state.store.as_ref(), code, now_ms())? else {
        return Ok(None);
    };
    let Some(stored) = state.store.document(&case.issue)? else {
        return Ok(None);
    };
    if stored.meta.kind != DocKind::Issue {
        return Ok(None);
    }
    let doc = IssueDoc::load(&stored.bytes).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Some((case, doc)))
}

/// Refuses every tracking lookup from an address that got too many codes wrong this hour (on
/// any server): a code guessed right after that learns nothing.
async fn guessing(state: &web::Data<AppState>, client: ClientIp) -> Result<(), ApiError> {
    let limit = state.public.limits().unknown_codes_per_address;
    let store = state.store.clone();
    let key = miss_key(client);
    web::block(move || super::limits::check(store.as_ref(), &key, limit, now_ms()))
        .await??
        .map_err(|wait| {
            rate_limited(
                ErrorCode::RateLimitedAddress,
                "too many unknown tracking codes from this network",
                wait,
            )
        })
}

fn miss_key(client: ClientIp) -> String {
    format!("unknown-code:{}", client.counted_as())
}

/// Counts a wrong tracking code against the address.
async fn missed(state: &web::Data<AppState>, client: ClientIp) -> Result<(), ApiError> {
    let limit = state.public.limits().unknown_codes_per_address;
    let store = state.store.clone();
    let key = miss_key(client);
    // Past the limit the next lookup is refused by `guessing`; nothing more to count.
    let _ =
        web::block(move || super::limits::take(store.as_ref(), &key, limit, now_ms())).await??;
    Ok(())
}

pub(crate) fn no_case() -> ApiError {
    ApiError::refused(
        StatusCode::NOT_FOUND,
        ErrorCode::UnknownCode,
        "no report has this tracking code",
    )
}

/// The status and public timeline of a report, and its after photos once closed.
#[utoipa::path(
    tag = "public",
    params(("code" = String, Path, description = "tracking code")),
    responses(
        (status = 200, body = TrackView),
        (status = 404, body = ErrorBody, description = "unknown_code"),
        (status = 429, body = ErrorBody, description = "rate_limited_address: too many unknown codes from this address"),
    )
)]
#[get("/public/track/{code}")]
pub async fn get_track(
    state: web::Data<AppState>,
    path: web::Path<String>,
    client: ClientIp,
) -> Result<HttpResponse, ApiError> {
    guessing(&state, client).await?;
    let code = path.into_inner();
    let work = state.clone();
    let view = web::block(move || -> Result<Option<TrackView>, ApiError> {
        let state = work;
        let Some((case, doc)) = load_case(&state, &code)? else {
            return Ok(None);
        };
        let bad = |e: sync_core::doc::DocError| ApiError::Internal(e.to_string());
        let record = doc.view().map_err(bad)?;
        let issue_state = doc.state().map_err(bad)?;
        let category_name = crate::reference::categories(state.store.as_ref())?
            .into_iter()
            .find(|c| c.code == record.category)
            .map_or(record.category.clone(), |c| c.name_zh);
        let asset_name = state
            .store
            .get_asset(&record.asset)?
            .map_or(record.asset.clone(), |a| a.name);
        Ok(Some(TrackView {
            asset_name,
            category_name,
            source: case.source.name_zh().into(),
            reported_at_ms: record.reported_at_ms,
            status: issue_state.status.map(|s| s.as_str().to_string()),
            status_zh: issue_state.status.map(|s| s.name_zh().to_string()),
            steps: rules::public_timeline(&issue_state),
            after_photos: rules::after_photos(&issue_state)
                .into_iter()
                .map(|sha| format!("/api/v1/public/track/{code}/photos/{sha}"))
                .collect(),
            may_rate: rules::may_rate(&issue_state) && case.feedback.is_none(),
            feedback: case.feedback,
        }))
    })
    .await??;
    match view {
        Some(v) => Ok(HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(v)),
        None => {
            missed(&state, client).await?;
            Err(no_case())
        }
    }
}

/// An after photo of a closed report, for the person holding its tracking code.
#[utoipa::path(
    tag = "public",
    params(
        ("code" = String, Path, description = "tracking code"),
        ("sha256" = String, Path, description = "the photo"),
    ),
    responses(
        (status = 200, content_type = "image/jpeg", description = "the after photo"),
        (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody, description = "rate_limited_address: too many unknown codes from this address"),
    )
)]
#[get("/public/track/{code}/photos/{sha256}")]
pub async fn get_track_photo(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    client: ClientIp,
) -> Result<HttpResponse, ApiError> {
    guessing(&state, client).await?;
    let (code, sha) = path.into_inner();
    let work = state.clone();
    // None: no such code; Some(None): no such after photo of that report.
    type Found = Option<Option<(String, Vec<u8>)>>;
    let found = web::block(move || -> Result<Found, ApiError> {
        let state = work;
        let Some((_, doc)) = load_case(&state, &code)? else {
            return Ok(None);
        };
        let issue_state = doc.state().map_err(|e| ApiError::Internal(e.to_string()))?;
        if !rules::after_photos(&issue_state).contains(&sha) {
            return Ok(Some(None));
        }
        Ok(Some(
            state
                .blobs
                .read(&sha)
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .map(|(record, bytes)| (record.format.mime().to_string(), bytes)),
        ))
    })
    .await??;
    let Some(found) = found else {
        missed(&state, client).await?;
        return Err(no_case());
    };
    match found {
        Some((mime, bytes)) => Ok(HttpResponse::Ok()
            .content_type(mime)
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(bytes)),
        None => Err(ApiError::NotFound("no such after photo".into())),
    }
}

/// Refuses a second answer to a report.
fn not_answered(case: &Case) -> Result<(), ApiError> {
    match case.feedback {
        Some(_) => Err(ApiError::refused(
            StatusCode::CONFLICT,
            ErrorCode::AlreadyAnswered,
            "this report has been rated",
        )),
        None => Ok(()),
    }
}

/// The resident's say: satisfied, or not satisfied with a reason (more than blanks). A reason
/// is at most `PublicLimits::reason_chars` characters.
#[derive(Debug, Deserialize)]
pub struct FeedbackRequest {
    pub satisfied: bool,
    #[serde(default)]
    pub reason: String,
}

/// Written out because the rule between the two fields ("not satisfied" needs a reason) is
/// one a derived schema cannot state.
impl utoipa::PartialSchema for FeedbackRequest {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        let max = super::PublicLimits::default().reason_chars;
        let answer = |satisfied: bool, reason_required: bool| {
            let reason = ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(max));
            let object = ObjectBuilder::new()
                .property(
                    "satisfied",
                    ObjectBuilder::new()
                        .schema_type(Type::Boolean)
                        .enum_values(Some([satisfied])),
                )
                .required("satisfied");
            if reason_required {
                object
                    .property("reason", reason.pattern(Some(r"\S")))
                    .required("reason")
            } else {
                object.property("reason", reason)
            }
        };
        OneOfBuilder::new()
            .item(answer(true, false))
            .item(answer(false, true))
            .description(Some(
                "satisfied, or not satisfied with what is still wrong (more than blanks)",
            ))
            .into()
    }
}

impl utoipa::ToSchema for FeedbackRequest {}

/// The person's say once the issue is finished. "Not satisfied" with a reason flags the issue
/// before the supervising office (it does not reopen it).
#[utoipa::path(
    tag = "public",
    params(("code" = String, Path, description = "tracking code")),
    request_body = FeedbackRequest,
    responses(
        (status = 200, body = Feedback),
        (status = 404, body = ErrorBody, description = "unknown_code"),
        (status = 409, body = ErrorBody, description = "not_finished or already_answered"),
        (status = 422, body = ErrorBody, description = "reason_required or field_too_long"),
        (status = 429, body = ErrorBody, description = "rate_limited_address: too many unknown codes, or too many answers, from this address"),
    )
)]
#[post("/public/track/{code}/feedback")]
pub async fn post_feedback(
    state: web::Data<AppState>,
    path: web::Path<String>,
    client: ClientIp,
    body: web::Json<FeedbackRequest>,
) -> Result<HttpResponse, ApiError> {
    guessing(&state, client).await?;
    let code = path.into_inner();
    let body = body.into_inner();
    let limits = state.public.limits();
    let max = limits.reason_chars;
    if body.reason.chars().count() > max {
        return Err(too_long("reason", max));
    }
    if !body.satisfied && body.reason.trim().is_empty() {
        return Err(ApiError::unprocessable(
            ErrorCode::ReasonRequired,
            "say what is still wrong",
        ));
    }
    count(
        &state,
        format!("feedback:{}", client.counted_as()),
        limits.feedback_per_address,
        ErrorCode::RateLimitedAddress,
        "too many answers from this network",
    )
    .await?;
    let work = state.clone();
    let feedback = web::block(move || -> Result<Option<Feedback>, ApiError> {
        let state = work;
        let store = state.store.as_ref();
        // Everything is checked before the case's lock: the lock is taken only by an answer
        // that will be stored, for the read and write of the case itself.
        let Some((case, doc)) = load_case(&state, &code)? else {
            return Ok(None);
        };
        let issue_state = doc.state().map_err(|e| ApiError::Internal(e.to_string()))?;
        if !rules::may_rate(&issue_state) {
            return Err(ApiError::refused(
                StatusCode::CONFLICT,
                ErrorCode::NotFinished,
                "the report is still being handled",
            ));
        }
        not_answered(&case)?;
        let feedback = Feedback {
            satisfaction: if body.satisfied {
                Satisfaction::Satisfied
            } else {
                Satisfaction::NotSatisfied
            },
            reason: body.reason.trim().to_string(),
            at_ms: now_ms(),
        };
        // Of two answers to one report sent at the same moment, to any servers, one is taken:
        // the case is read again under its lock.
        let _one_at_a_time = cases::hold_case(store, &case.code)?;
        let Some(mut case) = cases::case_held(store, &case.code, now_ms())? else {
            return Ok(None);
        };
        not_answered(&case)?;
        case.feedback = Some(feedback.clone());
        cases::put_case(store, &case)?;
        Ok(Some(feedback))
    })
    .await??;
    match feedback {
        Some(feedback) => Ok(HttpResponse::Ok().json(feedback)),
        None => {
            missed(&state, client).await?;
            Err(no_case())
        }
    }
}
