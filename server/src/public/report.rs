//! A resident's report over HTTP: a ticket bought with the answer to a challenge, photos
//! uploaded with the ticket, and the report itself, which becomes an issue on the asset's board.

use actix_web::http::{header, StatusCode};
use actix_web::{head, post, put, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use sync_core::api_types::ErrorCode;
use sync_core::doc::NewIssue;
use sync_core::geo::distance_to_geometry_m;
use sync_core::model::{Asset, PhotoRef, PhotoRole, Severity, System};
use sync_core::public::{self as rules, IssueSource};
use utoipa::ToSchema;

use super::cases::{self, Case};
use super::limits as tickets;
use super::pow::PowError;
use crate::api::sync::read_body;
use crate::auth::ClientIp;
use crate::blobs::{is_sha256, ChunkRange, Put, UploadError, UploadKey};
use crate::error::{ApiError, ErrorBody};
use crate::state::{now_ms, AppState};

use super::api::*;

#[derive(Debug, Deserialize, ToSchema)]
pub struct TicketRequest {
    pub asset: String,
    /// From `GET /public/challenge`. Required: without it the answer is 400
    /// `proof_of_work_required`.
    #[schema(value_type = String, required = true)]
    pub challenge: Option<String>,
    #[schema(value_type = String, required = true)]
    pub nonce: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TicketGrant {
    /// Send as `X-Report-Ticket` with photo uploads, and in the report.
    pub ticket: String,
    pub max_photos: usize,
    pub max_photo_bytes: u64,
    pub expires_at_ms: i64,
}

/// Buys a ticket for one report on one asset with a solved challenge.
#[utoipa::path(
    tag = "public",
    request_body = TicketRequest,
    responses(
        (status = 200, body = TicketGrant),
        (status = 400, body = ErrorBody, description = "proof_of_work_required"),
        (status = 403, body = ErrorBody, description = "proof_of_work_invalid"),
        (status = 404, body = ErrorBody, description = "unknown_asset"),
        (status = 429, body = ErrorBody, description = "rate_limited_address"),
    )
)]
#[post("/public/tickets")]
pub async fn post_ticket(
    state: web::Data<AppState>,
    client: ClientIp,
    body: web::Json<TicketRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (Some(challenge), Some(nonce)) = (body.challenge.as_deref(), body.nonce.as_deref()) else {
        return Err(ApiError::refused(
            StatusCode::BAD_REQUEST,
            ErrorCode::ProofOfWorkRequired,
            "a ticket needs the answer to a challenge from /api/v1/public/challenge",
        ));
    };
    let now = now_ms();
    let redeemed = {
        let (store, challenge, nonce) =
            (state.store.clone(), challenge.to_owned(), nonce.to_owned());
        web::block(move || super::pow::redeem(store.as_ref(), &challenge, &nonce, now)).await??
    };
    if let Err(err) = redeemed {
        let message = match err {
            PowError::UnknownChallenge => "the challenge is unknown, used or expired".to_string(),
            PowError::NotEnoughWork { bits } => {
                format!("SHA-256(challenge:nonce) does not start with {bits} zero bits")
            }
        };
        return Err(ApiError::refused(
            StatusCode::FORBIDDEN,
            ErrorCode::ProofOfWorkInvalid,
            message,
        ));
    }
    let limits = state.public.limits();
    count(
        &state,
        format!("ticket:{}", client.counted_as()),
        limits.tickets_per_address,
        ErrorCode::RateLimitedAddress,
        "too many reports from this network",
    )
    .await?;
    let id = body.asset.clone();
    let work = state.clone();
    if web::block(move || asset(&work, &id)).await??.is_none() {
        return Err(unknown_asset(&body.asset));
    }
    let ticket = cases::new_code();
    let (store, code, ttl) = (state.store.clone(), ticket.clone(), limits.ticket_ttl_ms);
    web::block(move || tickets::issue(store.as_ref(), &code, body.asset, now, ttl)).await??;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(TicketGrant {
            ticket,
            max_photos: limits.photos_per_report,
            max_photo_bytes: limits.max_photo_bytes,
            expires_at_ms: now + limits.ticket_ttl_ms,
        }))
}

/// The ticket `code`, if it is known (to any server), unused and not expired.
async fn valid_ticket(
    state: &web::Data<AppState>,
    code: &str,
    now_ms: i64,
) -> Result<Option<tickets::Ticket>, ApiError> {
    let (store, code) = (state.store.clone(), code.to_owned());
    Ok(web::block(move || tickets::valid(store.as_ref(), &code, now_ms)).await??)
}

pub(crate) fn ticket_of(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(TICKET_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

pub(crate) fn bad_ticket() -> ApiError {
    ApiError::refused(
        StatusCode::FORBIDDEN,
        ErrorCode::TicketInvalid,
        "the ticket is unknown, used or expired; reload the page",
    )
}

/// Uploads a report photo (whole, or one chunk with `Content-Range`, resumable as phone
/// uploads are); verified exactly as a phone's photo.
#[utoipa::path(
    tag = "public",
    params(
        ("sha256" = String, Path, description = "lower-case hex SHA-256 of the photo bytes", pattern = "^[0-9a-f]{64}$"),
        ("X-Report-Ticket" = String, Header, description = "the ticket"),
        ("Content-Range" = Option<String>, Header, description = "bytes first-last/total, for one chunk"),
    ),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "stored whole and verified"),
        (status = 202, description = "chunk kept; Upload-Offset says how many bytes are held"),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "ticket_invalid or too_many_photos"),
        (status = 409, body = ErrorBody, description = "offset_mismatch"),
        (status = 413, body = ErrorBody, description = "larger than the public limit"),
        (status = 422, body = ErrorBody, description = "hash_mismatch, not_an_image, unsupported_image, corrupt_image or image_too_large"),
    )
)]
#[put("/public/photos/{sha256}")]
pub async fn put_public_photo(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let sha256 = path.into_inner();
    if !is_sha256(&sha256) {
        return Err(ApiError::BadRequest(
            "a photo's name is its SHA-256 in 64 lower-case hex digits".into(),
        ));
    }
    let limits = state.public.limits();
    let now = now_ms();
    let Some(code) = ticket_of(&req) else {
        return Err(bad_ticket());
    };
    let Some(ticket) = valid_ticket(&state, &code, now).await? else {
        return Err(bad_ticket());
    };
    if !ticket.photos.contains(&sha256) && ticket.photos.len() >= limits.photos_per_report {
        return Err(ApiError::refused(
            StatusCode::FORBIDDEN,
            ErrorCode::TooManyPhotos,
            format!(
                "a report carries at most {} photos",
                limits.photos_per_report
            ),
        ));
    }
    // Unfinished uploads take disk too: a ticket begins only so many, whatever their names.
    let begun = {
        let (store, code, sha256) = (state.store.clone(), code.clone(), sha256.clone());
        let max = 2 * limits.photos_per_report;
        web::block(move || tickets::start_upload(store.as_ref(), &code, &sha256, max, now))
            .await??
    };
    if !begun {
        return Err(ApiError::refused(
            StatusCode::FORBIDDEN,
            ErrorCode::TooManyPhotos,
            format!(
                "a report carries at most {} photos; this page has begun uploading more",
                limits.photos_per_report
            ),
        ));
    }
    let max = limits.max_photo_bytes.min(state.blobs.max_bytes());
    let range = match req.headers().get(header::CONTENT_RANGE) {
        None => None,
        Some(v) => Some(v.to_str().ok().and_then(ChunkRange::parse).ok_or_else(|| {
            ApiError::BadRequest("Content-Range must be `bytes first-last/total`".into())
        })?),
    };
    if range.is_some_and(|r| r.total > max) {
        return Err(ApiError::PayloadTooLarge(format!(
            "a report photo is at most {max} bytes"
        )));
    }
    let limit = range.map_or(max, |r| r.chunk_len());
    let body = read_body(payload, usize::try_from(limit).unwrap_or(usize::MAX)).await?;
    if range.is_some_and(|r| r.chunk_len() != body.len() as u64) {
        return Err(ApiError::BadRequest(
            "the body's length differs from its Content-Range".into(),
        ));
    }
    let key = UploadKey {
        sha256: sha256.clone(),
        user: rules::PUBLIC_REPORTER.to_string(),
    };
    let blobs = state.blobs.clone();
    let outcome = web::block(move || match range {
        None => blobs.put_whole(&key, &body, now, false),
        Some(range) => blobs.put_chunk(&key, range, &body, now, false),
    })
    .await?;
    let (status, complete, offset) = match outcome {
        Ok(Put::Created(n)) | Ok(Put::AlreadyStored(n)) => (StatusCode::CREATED, true, n),
        Ok(Put::Partial(n)) => (StatusCode::ACCEPTED, false, n),
        Err(UploadError::OffsetMismatch { first, held }) => {
            return Err(ApiError::OffsetMismatch { first, held })
        }
        Err(UploadError::Refused(err)) => return Err(crate::api::blobs::refused(err)),
        Err(UploadError::Store(err)) => return Err(ApiError::Internal(err.to_string())),
    };
    if complete {
        let (store, sha256) = (state.store.clone(), sha256.clone());
        web::block(move || tickets::add_photo(store.as_ref(), &code, &sha256, now_ms())).await??;
    }
    Ok(HttpResponse::build(status)
        .insert_header((crate::api::blobs::UPLOAD_OFFSET, offset.to_string()))
        .insert_header((
            crate::api::blobs::UPLOAD_COMPLETE,
            if complete { "?1" } else { "?0" },
        ))
        .json(crate::api::blobs::UploadState {
            sha256,
            complete,
            offset,
        }))
}

/// How much of a report photo is held under the ticket, to resume an upload.
#[utoipa::path(
    tag = "public",
    params(
        ("sha256" = String, Path, description = "lower-case hex SHA-256 of the photo bytes"),
        ("X-Report-Ticket" = String, Header, description = "the ticket"),
    ),
    responses(
        (status = 200, description = "Upload-Offset and Upload-Complete"),
        (status = 403, description = "ticket_invalid"),
        (status = 404, description = "nothing held"),
    )
)]
#[head("/public/photos/{sha256}")]
pub async fn head_public_photo(
    state: web::Data<AppState>,
    path: web::Path<String>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let sha256 = path.into_inner();
    let Some(code) = ticket_of(&req) else {
        return Ok(HttpResponse::Forbidden().finish());
    };
    let Some(ticket) = valid_ticket(&state, &code, now_ms()).await? else {
        return Ok(HttpResponse::Forbidden().finish());
    };
    let done = ticket.photos.contains(&sha256);
    let key = UploadKey {
        sha256,
        user: rules::PUBLIC_REPORTER.to_string(),
    };
    let blobs = state.blobs.clone();
    let held = web::block(move || blobs.held(&key, done))
        .await?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let (offset, complete) = match held {
        crate::blobs::Held::Complete(n) => (n, true),
        crate::blobs::Held::Partial(n) => (n, false),
        crate::blobs::Held::Missing => return Ok(HttpResponse::NotFound().finish()),
    };
    Ok(HttpResponse::Ok()
        .insert_header((crate::api::blobs::UPLOAD_OFFSET, offset.to_string()))
        .insert_header((
            crate::api::blobs::UPLOAD_COMPLETE,
            if complete { "?1" } else { "?0" },
        ))
        .finish())
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PublicReport {
    pub ticket: String,
    pub category: String,
    /// At most `PublicLimits::description_chars` characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: String,
    /// `[lon, lat]`: the browser's position or a tap on the asset's map.
    #[schema(value_type = Vec<f64>, min_items = 2, max_items = 2)]
    pub location: [f64; 2],
    /// At most `PublicLimits::photos_per_report`, each uploaded with the ticket.
    #[serde(default)]
    #[schema(max_items = 3)]
    pub photos: Vec<String>,
    /// For a call back about this report only; optional. 7 to 20 characters of digits, `-`,
    /// `+` and spaces, at least 7 of them digits.
    #[schema(pattern = r"^\s*([-+ ]*([0-9][-+ ]*){7,})?\s*$", max_length = 20)]
    pub phone: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Tracking {
    /// Keep it: it is the only way back to the report.
    pub code: String,
    /// The tracking page.
    pub link: String,
    /// What happens next, in plain words.
    pub next: String,
}

/// What happens next, told to the person in the words of the asset's system.
pub(crate) fn next_steps(system: System) -> String {
    let title = system.chief_title();
    format!(
        "您的举报已登记，并已推送给该处的{title}和区{title}办。{title}办受理后交办责任单位整改；整改完成并经核查后销号。您可随时凭查询码查看进度，销号后可查看整改后照片并评价是否满意。"
    )
}

pub(crate) fn check_phone(phone: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(phone) = phone.map(str::trim).filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    let digits = phone.chars().filter(char::is_ascii_digit).count();
    if phone.chars().count() > MAX_PHONE_CHARS
        || digits < 7
        || !phone
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | ' '))
    {
        return Err(ApiError::unprocessable(
            ErrorCode::BadPhone,
            "a phone number is 7 to 20 digits, with - + or spaces",
        ));
    }
    Ok(Some(phone.to_string()))
}

pub(crate) fn too_long(field: &str, max: usize) -> ApiError {
    ApiError::unprocessable(
        ErrorCode::FieldTooLong,
        format!("{field} is longer than {max} characters"),
    )
}

/// What both the page's and the office's reports need checked against the asset.
pub(crate) fn check_report(
    state: &AppState,
    asset: &Asset,
    category: &str,
    description: &str,
    location: [f64; 2],
) -> Result<(), ApiError> {
    let limits = state.public.limits();
    if description.chars().count() > limits.description_chars {
        return Err(too_long("description", limits.description_chars));
    }
    if category.len() > 64 {
        return Err(too_long("category", 64));
    }
    let known = crate::reference::categories(state.store.as_ref())
        .map(|all| {
            all.iter()
                .any(|c| c.code == category && c.system == asset.system)
        })
        .unwrap_or(false);
    if !known {
        return Err(ApiError::unprocessable(
            ErrorCode::UnknownCategory,
            format!("{category:?} is not a problem category of this asset"),
        ));
    }
    let [lon, lat] = location;
    let far = !(lon.is_finite() && lat.is_finite())
        || distance_to_geometry_m(lat, lon, &asset.geometry) > MAX_DISTANCE_M;
    if far {
        return Err(ApiError::unprocessable(
            ErrorCode::FarFromAsset,
            format!("the position is more than {MAX_DISTANCE_M} m from the asset"),
        ));
    }
    Ok(())
}

pub(crate) fn new_issue(
    asset: &Asset,
    category: &str,
    description: &str,
    location: [f64; 2],
) -> NewIssue {
    NewIssue {
        system: asset.system,
        category: category.to_string(),
        severity: Severity::General,
        asset: asset.id.clone(),
        division: asset.division.clone(),
        location,
        description: description.to_string(),
        patrol: None,
    }
}

/// Files a report from the page: becomes an issue (source `public`, status reported) on the
/// asset's board and on its chiefs' phones at their next sync. Answers the tracking code.
#[utoipa::path(
    tag = "public",
    request_body = PublicReport,
    responses(
        (status = 201, body = Tracking),
        (status = 403, body = ErrorBody, description = "ticket_invalid"),
        (status = 422, body = ErrorBody, description = "field_too_long, bad_phone, unknown_category, far_from_asset, too_many_photos or photo_missing"),
        (status = 429, body = ErrorBody, description = "rate_limited_address or rate_limited_asset"),
    )
)]
#[post("/public/reports")]
pub async fn post_public_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    client: ClientIp,
    body: web::Json<PublicReport>,
) -> Result<HttpResponse, ApiError> {
    let mut report = body.into_inner();
    // A photo named twice is one piece of evidence, recorded once.
    let mut named = std::collections::HashSet::new();
    report.photos.retain(|p| named.insert(p.clone()));
    let limits = state.public.limits();
    let now = now_ms();
    let Some(ticket) = valid_ticket(&state, &report.ticket, now).await? else {
        return Err(bad_ticket());
    };
    let phone = check_phone(report.phone.as_deref())?;
    if report.photos.len() > limits.photos_per_report {
        return Err(ApiError::unprocessable(
            ErrorCode::TooManyPhotos,
            format!(
                "a report carries at most {} photos",
                limits.photos_per_report
            ),
        ));
    }
    if let Some(missing) = report.photos.iter().find(|p| !ticket.photos.contains(p)) {
        return Err(ApiError::unprocessable(
            ErrorCode::PhotoMissing,
            format!("photo {missing} was not uploaded with this ticket"),
        ));
    }
    let id = ticket.asset.clone();
    let work = state.clone();
    let Some(asset) = web::block(move || asset(&work, &id)).await?? else {
        return Err(unknown_asset(&ticket.asset));
    };
    check_report(
        &state,
        &asset,
        &report.category,
        &report.description,
        report.location,
    )?;
    count(
        &state,
        format!("report:{}", client.counted_as()),
        limits.reports_per_address,
        ErrorCode::RateLimitedAddress,
        "too many reports from this network",
    )
    .await?;
    count(
        &state,
        format!("asset:{}", asset.id),
        limits.reports_per_asset,
        ErrorCode::RateLimitedAsset,
        "this place has received many reports in the last hour",
    )
    .await?;
    let spent = {
        let (store, code) = (state.store.clone(), report.ticket.clone());
        web::block(move || tickets::spend(store.as_ref(), &code, now)).await??
    };
    if !spent {
        return Err(bad_ticket());
    }
    let blobs = state.blobs.clone();
    let link_base = base_url(&req);
    let work = state.clone();
    let tracking = web::block(move || -> Result<Tracking, ApiError> {
        let mut photos = Vec::new();
        for sha in &report.photos {
            let bytes = blobs
                .store()
                .record(sha)
                .map_err(|e| ApiError::Internal(e.to_string()))?
                .map_or(0, |r| r.bytes);
            photos.push(PhotoRef {
                sha256: sha.clone(),
                role: PhotoRole::Evidence,
                taken_at_ms: None,
                position: None,
                bytes,
            });
        }
        let next = next_steps(asset.system);
        let reporter = rules::public_reporter(asset.system, &asset.division);
        let new = new_issue(
            &asset,
            &report.category,
            &report.description,
            report.location,
        );
        let issue = cases::record_issue(&work, &reporter, &new, IssueSource::Public, &photos, now)?;
        let case = Case {
            code: cases::new_code(),
            issue,
            asset: asset.id.clone(),
            source: IssueSource::Public,
            created_ms: now,
            phone,
            feedback: None,
        };
        cases::put_case(work.store.as_ref(), &case)?;
        Ok(Tracking {
            link: format!("{link_base}/t/{}", case.code),
            code: case.code,
            next,
        })
    })
    .await??;
    Ok(HttpResponse::Created().json(tracking))
}
