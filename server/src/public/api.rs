//! The public channel over HTTP. Without an account: the asset's facts for the report page, a
//! proof-of-work challenge, a ticket bought with its answer, photo uploads and one report per
//! ticket, the tracking answer and the resident's say on the outcome, and the signboards. With
//! one: office staff enter hotline and letter reports, the supervising office reads a case's
//! phone number, and the statistics of reports by source and satisfaction.
//!
//! Every refusal is a JSON error with its own code: `unknown_asset`, `proof_of_work_required`,
//! `proof_of_work_invalid`, `ticket_invalid`, `rate_limited_address`, `rate_limited_asset`,
//! `field_too_long`, `bad_phone`, `unknown_category`, `far_from_asset`, `too_many_photos`,
//! `photo_missing`, the photo verification's codes, `not_finished`, `already_answered`.

use actix_web::http::{header, StatusCode};
use actix_web::{get, head, post, put, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use sync_core::api_types::ErrorCode;
use sync_core::doc::{DocKind, IssueDoc, NewIssue};
use sync_core::geo::distance_to_geometry_m;
use sync_core::model::{Asset, Geometry, PhotoRef, PhotoRole, Role, Severity, System, User};
use sync_core::public::{self as rules, IssueSource, PublicStep, Satisfaction};
use utoipa::ToSchema;

use super::cases::{self, Case, Feedback};
use super::pow::PowError;
use super::signboard::{self, Board, BoardChief, Sheet};
use crate::api::sync::read_body;
use crate::auth::Caller;
use crate::blobs::{is_sha256, ChunkRange, Put, UploadError, UploadKey};
use crate::error::{ApiError, ErrorBody};
use crate::state::{now_ms, AppState};

/// Header carrying the ticket on photo uploads.
pub const TICKET_HEADER: &str = "X-Report-Ticket";
/// Farthest a reported position may lie from the asset.
pub const MAX_DISTANCE_M: f64 = 3_000.0;
const MAX_PHONE_CHARS: usize = 20;

fn refuse(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        error: ErrorCode::from_wire(code),
        message: message.into(),
    })
}

/// A refusal decided before any answer is built: status, code and message of the JSON error.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn response(self) -> HttpResponse {
        refuse(self.status, self.code, self.message)
    }
}

fn rate_limited(code: &str, message: &str, retry_after_secs: u64) -> HttpResponse {
    HttpResponse::TooManyRequests()
        .insert_header((header::RETRY_AFTER, retry_after_secs.to_string()))
        .json(ErrorBody {
            error: ErrorCode::from_wire(code),
            message: format!("{message}; retry in {retry_after_secs} s"),
        })
}

fn client_address(req: &HttpRequest) -> String {
    req.peer_addr()
        .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string())
}

/// The server's own address as the caller reached it, for links printed on boards.
fn base_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

fn unknown_asset(id: &str) -> HttpResponse {
    refuse(
        StatusCode::NOT_FOUND,
        "unknown_asset",
        format!("no asset {id:?}"),
    )
}

fn asset(state: &AppState, id: &str) -> Result<Option<Asset>, ApiError> {
    if id.is_empty() || id.len() > 64 {
        return Ok(None);
    }
    Ok(state.store.get_asset(id)?)
}

/// A problem category as the report page offers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicCategory {
    pub code: String,
    pub name: String,
}

/// What the report page shows of an asset.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicAsset {
    pub id: String,
    pub name: String,
    pub system: String,
    /// 河长, 林长 or 田长.
    pub chief_title: String,
    pub division_name: String,
    /// The asset's system's problem categories, in plain words.
    pub categories: Vec<PublicCategory>,
    #[schema(value_type = Object)]
    pub geometry: Geometry,
    pub supervision_phone: Option<String>,
    pub chiefs: Vec<BoardChief>,
    /// How long a reporter's phone number is kept, days.
    pub phone_retention_days: i64,
}

fn division_name(state: &AppState, asset: &Asset) -> Result<String, ApiError> {
    Ok(state
        .store
        .get_division(&asset.division)?
        .map_or_else(|| asset.division.as_str().to_string(), |d| d.name))
}

fn users(state: &AppState) -> Result<Vec<User>, ApiError> {
    Ok(state
        .store
        .list_users()?
        .into_iter()
        .map(|r| r.user)
        .collect())
}

fn public_asset(state: &AppState, asset: Asset) -> Result<PublicAsset, ApiError> {
    let categories = crate::reference::categories(state.store.as_ref())?
        .into_iter()
        .filter(|c| c.system == asset.system)
        .map(|c| PublicCategory {
            code: c.code,
            name: c.name_zh,
        })
        .collect();
    Ok(PublicAsset {
        division_name: division_name(state, &asset)?,
        chiefs: signboard::chiefs_of(&asset, &users(state)?),
        supervision_phone: cases::supervision_phone(state.store.as_ref(), asset.system)?,
        id: asset.id,
        name: asset.name,
        system: asset.system.as_str().into(),
        chief_title: asset.system.chief_title().into(),
        categories,
        geometry: asset.geometry,
        phone_retention_days: cases::PHONE_RETENTION_DAYS,
    })
}

/// An asset's name, place, categories, geometry, chiefs and supervision phone, for the report
/// page behind its signboard. No account.
#[utoipa::path(
    tag = "public",
    params(("asset" = String, Path, description = "asset id")),
    responses(
        (status = 200, body = PublicAsset),
        (status = 404, body = ErrorBody, description = "unknown_asset"),
    )
)]
#[get("/public/assets/{asset}")]
pub async fn get_public_asset(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let found = web::block(move || -> Result<Option<PublicAsset>, ApiError> {
        match asset(&state, &id)? {
            Some(a) => Ok(Some(public_asset(&state, a)?)),
            None => Ok(None),
        }
    })
    .await??;
    Ok(match found {
        Some(a) => HttpResponse::Ok().json(a),
        None => unknown_asset("requested"),
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Challenge {
    /// Find `nonce` such that SHA-256(`challenge:nonce`) starts with `bits` zero bits.
    pub challenge: String,
    pub bits: u32,
}

/// A fresh proof-of-work challenge (single use, ten minutes).
#[utoipa::path(tag = "public", responses((status = 200, body = Challenge)))]
#[get("/public/challenge")]
pub async fn get_challenge(state: web::Data<AppState>) -> HttpResponse {
    let bits = state.public.limits().pow_bits;
    let challenge = state.public.pow.issue(bits, now_ms());
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Challenge { challenge, bits })
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct TicketRequest {
    pub asset: String,
    pub challenge: Option<String>,
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
    req: HttpRequest,
    body: web::Json<TicketRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let (Some(challenge), Some(nonce)) = (body.challenge.as_deref(), body.nonce.as_deref()) else {
        return Ok(refuse(
            StatusCode::BAD_REQUEST,
            "proof_of_work_required",
            "a ticket needs the answer to a challenge from /api/v1/public/challenge",
        ));
    };
    let now = now_ms();
    if let Err(err) = state.public.pow.redeem(challenge, nonce, now) {
        let message = match err {
            PowError::UnknownChallenge => "the challenge is unknown, used or expired".to_string(),
            PowError::NotEnoughWork { bits } => {
                format!("SHA-256(challenge:nonce) does not start with {bits} zero bits")
            }
        };
        return Ok(refuse(
            StatusCode::FORBIDDEN,
            "proof_of_work_invalid",
            message,
        ));
    }
    let limits = state.public.limits();
    if let Err(wait) = state.public.counters.take(
        &format!("ticket:{}", client_address(&req)),
        limits.tickets_per_address,
        now,
    ) {
        return Ok(rate_limited(
            "rate_limited_address",
            "too many reports from this network",
            wait,
        ));
    }
    let id = body.asset.clone();
    let work = state.clone();
    if web::block(move || asset(&work, &id)).await??.is_none() {
        return Ok(unknown_asset(&body.asset));
    }
    let ticket = cases::new_code();
    state
        .public
        .tickets
        .issue(ticket.clone(), body.asset, now, limits.ticket_ttl_ms);
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(TicketGrant {
            ticket,
            max_photos: limits.photos_per_report,
            max_photo_bytes: limits.max_photo_bytes,
            expires_at_ms: now + limits.ticket_ttl_ms,
        }))
}

fn ticket_of(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(TICKET_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn bad_ticket() -> HttpResponse {
    refuse(
        StatusCode::FORBIDDEN,
        "ticket_invalid",
        "the ticket is unknown, used or expired; reload the page",
    )
}

/// Uploads a report photo (whole, or one chunk with `Content-Range`, resumable as phone
/// uploads are); verified exactly as a phone's photo.
#[utoipa::path(
    tag = "public",
    params(
        ("sha256" = String, Path, description = "lower-case hex SHA-256 of the photo bytes"),
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
        return Ok(bad_ticket());
    };
    let Some(ticket) = state.public.tickets.valid(&code, now, limits.ticket_ttl_ms) else {
        return Ok(bad_ticket());
    };
    if !ticket.photos.contains(&sha256) && ticket.photos.len() >= limits.photos_per_report {
        return Ok(refuse(
            StatusCode::FORBIDDEN,
            "too_many_photos",
            format!(
                "a report carries at most {} photos",
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
            return Ok(HttpResponse::Conflict()
                .insert_header((crate::api::blobs::UPLOAD_OFFSET, held.to_string()))
                .json(ErrorBody {
                    error: ErrorCode::OffsetMismatch,
                    message: format!("chunk starts at byte {first}, but {held} bytes are held"),
                }))
        }
        Err(UploadError::Refused(err)) => return Err(crate::api::blobs::refused(err)),
        Err(UploadError::Store(err)) => return Err(ApiError::Internal(err.to_string())),
    };
    if complete {
        state.public.tickets.add_photo(&code, &sha256);
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
    let limits = state.public.limits();
    let Some(code) = ticket_of(&req) else {
        return Ok(HttpResponse::Forbidden().finish());
    };
    let Some(ticket) = state
        .public
        .tickets
        .valid(&code, now_ms(), limits.ticket_ttl_ms)
    else {
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
    #[serde(default)]
    pub description: String,
    /// `[lon, lat]`: the browser's position or a tap on the asset's map.
    pub location: [f64; 2],
    #[serde(default)]
    pub photos: Vec<String>,
    /// For a call back about this report only; optional.
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
fn next_steps(system: System) -> String {
    let title = system.chief_title();
    format!(
        "您的举报已登记，并已推送给该处的{title}和区{title}办。{title}办受理后交办责任单位整改；整改完成并经核查后销号。您可随时凭查询码查看进度，销号后可查看整改后照片并评价是否满意。"
    )
}

fn check_phone(phone: Option<&str>) -> Result<Option<String>, Refusal> {
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
        return Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "bad_phone",
            "a phone number is 7 to 20 digits, with - + or spaces",
        ));
    }
    Ok(Some(phone.to_string()))
}

fn too_long(field: &str, max: usize) -> Refusal {
    Refusal::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "field_too_long",
        format!("{field} is longer than {max} characters"),
    )
}

/// What both the page's and the office's reports need checked against the asset.
fn check_report(
    state: &AppState,
    asset: &Asset,
    category: &str,
    description: &str,
    location: [f64; 2],
) -> Result<(), Refusal> {
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
        return Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_category",
            format!("{category:?} is not a problem category of this asset"),
        ));
    }
    let [lon, lat] = location;
    let far = !(lon.is_finite() && lat.is_finite())
        || distance_to_geometry_m(lat, lon, &asset.geometry) > MAX_DISTANCE_M;
    if far {
        return Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "far_from_asset",
            format!("the position is more than {MAX_DISTANCE_M} m from the asset"),
        ));
    }
    Ok(())
}

fn new_issue(asset: &Asset, category: &str, description: &str, location: [f64; 2]) -> NewIssue {
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
    body: web::Json<PublicReport>,
) -> Result<HttpResponse, ApiError> {
    let report = body.into_inner();
    let limits = state.public.limits();
    let now = now_ms();
    let Some(ticket) = state
        .public
        .tickets
        .valid(&report.ticket, now, limits.ticket_ttl_ms)
    else {
        return Ok(bad_ticket());
    };
    let phone = match check_phone(report.phone.as_deref()) {
        Ok(p) => p,
        Err(refusal) => return Ok(refusal.response()),
    };
    if report.photos.len() > limits.photos_per_report {
        return Ok(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "too_many_photos",
            format!(
                "a report carries at most {} photos",
                limits.photos_per_report
            ),
        ));
    }
    if let Some(missing) = report.photos.iter().find(|p| !ticket.photos.contains(p)) {
        return Ok(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "photo_missing",
            format!("photo {missing} was not uploaded with this ticket"),
        ));
    }
    let id = ticket.asset.clone();
    let work = state.clone();
    let Some(asset) = web::block(move || asset(&work, &id)).await?? else {
        return Ok(unknown_asset(&ticket.asset));
    };
    if let Err(refusal) = check_report(
        &state,
        &asset,
        &report.category,
        &report.description,
        report.location,
    ) {
        return Ok(refusal.response());
    }
    if let Err(wait) = state.public.counters.take(
        &format!("report:{}", client_address(&req)),
        limits.reports_per_address,
        now,
    ) {
        return Ok(rate_limited(
            "rate_limited_address",
            "too many reports from this network",
            wait,
        ));
    }
    if let Err(wait) = state.public.counters.take(
        &format!("asset:{}", asset.id),
        limits.reports_per_asset,
        now,
    ) {
        return Ok(rate_limited(
            "rate_limited_asset",
            "this place has received many reports in the last hour",
            wait,
        ));
    }
    if !state.public.tickets.spend(&report.ticket) {
        return Ok(bad_ticket());
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

fn load_case(state: &AppState, code: &str) -> Result<Option<(Case, IssueDoc)>, ApiError> {
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

fn no_case() -> HttpResponse {
    refuse(
        StatusCode::NOT_FOUND,
        "unknown_code",
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
    )
)]
#[get("/public/track/{code}")]
pub async fn get_track(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let code = path.into_inner();
    let view = web::block(move || -> Result<Option<TrackView>, ApiError> {
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
    Ok(match view {
        Some(v) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(v),
        None => no_case(),
    })
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
    )
)]
#[get("/public/track/{code}/photos/{sha256}")]
pub async fn get_track_photo(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (code, sha) = path.into_inner();
    let found = web::block(move || -> Result<Option<(String, Vec<u8>)>, ApiError> {
        let Some((_, doc)) = load_case(&state, &code)? else {
            return Ok(None);
        };
        let issue_state = doc.state().map_err(|e| ApiError::Internal(e.to_string()))?;
        if !rules::after_photos(&issue_state).contains(&sha) {
            return Ok(None);
        }
        Ok(state
            .blobs
            .read(&sha)
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map(|(record, bytes)| (record.format.mime().to_string(), bytes)))
    })
    .await??;
    Ok(match found {
        Some((mime, bytes)) => HttpResponse::Ok()
            .content_type(mime)
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(bytes),
        None => refuse(StatusCode::NOT_FOUND, "not_found", "no such after photo"),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct FeedbackRequest {
    pub satisfied: bool,
    #[serde(default)]
    pub reason: String,
}

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
    )
)]
#[post("/public/track/{code}/feedback")]
pub async fn post_feedback(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<FeedbackRequest>,
) -> Result<HttpResponse, ApiError> {
    let code = path.into_inner();
    let body = body.into_inner();
    let max = state.public.limits().reason_chars;
    if body.reason.chars().count() > max {
        return Ok(too_long("reason", max).response());
    }
    if !body.satisfied && body.reason.trim().is_empty() {
        return Ok(refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            "reason_required",
            "say what is still wrong",
        ));
    }
    type Refusal = (StatusCode, &'static str, &'static str);
    let answer = web::block(move || -> Result<Result<Feedback, Refusal>, ApiError> {
        let Some((mut case, doc)) = load_case(&state, &code)? else {
            return Ok(Err((
                StatusCode::NOT_FOUND,
                "unknown_code",
                "no report has this tracking code",
            )));
        };
        let issue_state = doc.state().map_err(|e| ApiError::Internal(e.to_string()))?;
        if !rules::may_rate(&issue_state) {
            return Ok(Err((
                StatusCode::CONFLICT,
                "not_finished",
                "the report is still being handled",
            )));
        }
        if case.feedback.is_some() {
            return Ok(Err((
                StatusCode::CONFLICT,
                "already_answered",
                "this report has been rated",
            )));
        }
        let feedback = Feedback {
            satisfaction: if body.satisfied {
                Satisfaction::Satisfied
            } else {
                Satisfaction::NotSatisfied
            },
            reason: body.reason.trim().to_string(),
            at_ms: now_ms(),
        };
        case.feedback = Some(feedback.clone());
        cases::put_case(state.store.as_ref(), &case)?;
        Ok(Ok(feedback))
    })
    .await??;
    Ok(match answer {
        Ok(f) => HttpResponse::Ok().json(f),
        Err((status, code, message)) => refuse(status, code, message),
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SignboardQuery {
    /// `a4` (default) or `board` (3:2 landscape, 1500 × 1000 mm).
    pub sheet: Option<String>,
    /// `svg` (default) or `pdf`.
    pub format: Option<String>,
}

pub(crate) fn board_of(state: &AppState, asset: Asset, base: &str) -> Result<Board, ApiError> {
    Ok(Board {
        division_name: division_name(state, &asset)?,
        chiefs: signboard::chiefs_of(&asset, &users(state)?),
        phone: cases::supervision_phone(state.store.as_ref(), asset.system)?
            .unwrap_or_else(|| "12369".into()),
        link: format!("{base}/r/{}", asset.id),
        asset,
    })
}

/// An asset's printable signboard: SVG or PDF, A4 or board. Public: what it shows is posted at
/// the asset anyway.
#[utoipa::path(
    tag = "public",
    params(("asset" = String, Path, description = "asset id"), SignboardQuery),
    responses(
        (status = 200, content_type = "image/svg+xml", description = "the signboard (image/svg+xml or application/pdf)"),
        (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "unknown_asset"),
        (status = 503, body = ErrorBody, description = "signboard_font_missing: no CJK font for the PDF"),
    )
)]
#[get("/public/signboards/{asset}")]
pub async fn get_signboard(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<SignboardQuery>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let sheet = match query.sheet.as_deref() {
        None => Sheet::A4,
        Some(s) => {
            Sheet::parse(s).ok_or_else(|| ApiError::BadRequest("sheet is a4 or board".into()))?
        }
    };
    let pdf = match query.format.as_deref() {
        None | Some("svg") => false,
        Some("pdf") => true,
        Some(_) => return Err(ApiError::BadRequest("format is svg or pdf".into())),
    };
    let base = base_url(&req);
    let out = web::block(
        move || -> Result<Option<Result<Vec<u8>, signboard::PdfError>>, ApiError> {
            let Some(asset) = asset(&state, &id)? else {
                return Ok(None);
            };
            let board = board_of(&state, asset, &base)?;
            Ok(Some(if pdf {
                signboard::pdf(&board, sheet)
            } else {
                Ok(signboard::svg(&board, sheet).into_bytes())
            }))
        },
    )
    .await??;
    Ok(match out {
        None => unknown_asset("requested"),
        Some(Err(signboard::PdfError::NoFont)) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "signboard_font_missing",
            signboard::PdfError::NoFont.to_string(),
        ),
        Some(Err(e)) => return Err(ApiError::Internal(e.to_string())),
        Some(Ok(bytes)) => HttpResponse::Ok()
            .content_type(if pdf {
                "application/pdf"
            } else {
                "image/svg+xml"
            })
            .body(bytes),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct OfficeReport {
    /// `hotline` (12369) or `letter` (信访).
    pub source: String,
    pub asset: String,
    pub category: String,
    pub description: String,
    /// `[lon, lat]`; the asset's middle when the caller could not say.
    pub location: Option<[f64; 2]>,
    pub phone: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OfficeReported {
    pub issue: String,
    pub code: String,
    pub link: String,
}

fn middle(geometry: &Geometry) -> [f64; 2] {
    match geometry {
        Geometry::LineString(line) => line.get(line.len() / 2).copied().unwrap_or([0.0, 0.0]),
        Geometry::Polygon(rings) => rings
            .first()
            .and_then(|r| r.first())
            .copied()
            .unwrap_or([0.0, 0.0]),
    }
}

fn supervises(user: &User, asset: &Asset) -> bool {
    match &user.role {
        Role::Supervisor { system, division } => {
            *system == asset.system && division.contains(&asset.division)
        }
        Role::Admin => true,
        _ => false,
    }
}

/// Office staff enter a hotline (12369) or letter (信访) report: an issue in the caller's name
/// with its source, into the same loop, and a tracking code to give the person.
#[utoipa::path(
    tag = "public",
    security(("bearer" = [])),
    request_body = OfficeReport,
    responses(
        (status = 201, body = OfficeReported),
        (status = 400, body = ErrorBody, description = "unknown source"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not the office supervising the asset"),
        (status = 404, body = ErrorBody, description = "unknown_asset"),
        (status = 422, body = ErrorBody),
    )
)]
#[post("/office/reports")]
pub async fn post_office_report(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<OfficeReport>,
) -> Result<HttpResponse, ApiError> {
    let report = body.into_inner();
    let source = IssueSource::parse(&report.source)
        .filter(|s| s.entered_by_office())
        .ok_or_else(|| ApiError::BadRequest("source is hotline or letter".into()))?;
    let phone = match check_phone(report.phone.as_deref()) {
        Ok(p) => p,
        Err(refusal) => return Ok(refusal.response()),
    };
    let id = report.asset.clone();
    let work = state.clone();
    let Some(asset) = web::block(move || asset(&work, &id)).await?? else {
        return Ok(unknown_asset(&report.asset));
    };
    if !supervises(&caller.user, &asset) {
        return Err(ApiError::Forbidden(
            "only the office supervising this asset enters its reports".into(),
        ));
    }
    let location = report.location.unwrap_or_else(|| middle(&asset.geometry));
    if let Err(refusal) = check_report(
        &state,
        &asset,
        &report.category,
        &report.description,
        location,
    ) {
        return Ok(refusal.response());
    }
    let base = base_url(&req);
    let now = now_ms();
    let done = web::block(move || -> Result<OfficeReported, ApiError> {
        // An administrator records it as the asset's office; a supervisor in his own name.
        let reporter = match caller.user.role {
            Role::Admin => rules::public_reporter(asset.system, &asset.division),
            _ => caller.user.clone(),
        };
        let new = new_issue(&asset, &report.category, &report.description, location);
        let issue = cases::record_issue(&state, &reporter, &new, source, &[], now)?;
        let case = Case {
            code: cases::new_code(),
            issue: issue.clone(),
            asset: asset.id.clone(),
            source,
            created_ms: now,
            phone,
            feedback: None,
        };
        cases::put_case(state.store.as_ref(), &case)?;
        Ok(OfficeReported {
            issue,
            link: format!("{base}/t/{}", case.code),
            code: case.code,
        })
    })
    .await??;
    Ok(HttpResponse::Created().json(done))
}

/// A case as the supervising office sees it: with the reporter's phone number while kept.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OfficeCase {
    pub issue: String,
    pub source: String,
    pub code: String,
    pub phone: Option<String>,
    pub phone_kept_until_ms: i64,
    pub feedback: Option<Feedback>,
}

/// The public side of an issue for the office supervising it (and administrators): source,
/// tracking code, the reporter's phone number while it is kept, and his say on the outcome.
#[utoipa::path(
    tag = "public",
    security(("bearer" = [])),
    params(("issue" = String, Path, description = "issue id")),
    responses(
        (status = 200, body = OfficeCase),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "no public case of an issue the caller supervises"),
    )
)]
#[get("/office/cases/{issue}")]
pub async fn get_office_case(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let issue = path.into_inner();
    let found = web::block(move || -> Result<Option<OfficeCase>, ApiError> {
        let Some(case) = cases::case_of_issue(state.store.as_ref(), &issue, now_ms())? else {
            return Ok(None);
        };
        let Some(asset) = state.store.get_asset(&case.asset)? else {
            return Ok(None);
        };
        if !supervises(&caller.user, &asset) {
            return Ok(None);
        }
        Ok(Some(OfficeCase {
            phone_kept_until_ms: case.phone_until_ms(),
            issue: case.issue,
            source: case.source.as_str().into(),
            code: case.code,
            phone: case.phone,
            feedback: case.feedback,
        }))
    })
    .await??;
    match found {
        Some(c) => Ok(HttpResponse::Ok().json(c)),
        None => Err(ApiError::NotFound(
            "no public case of this issue in your scope".into(),
        )),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct PhoneSetting {
    pub phone: String,
}

/// Sets the supervision phone number printed on one system's signboards (administrators).
#[utoipa::path(
    tag = "public",
    security(("bearer" = [])),
    params(("system" = String, Path, description = "river, forest or field")),
    request_body = PhoneSetting,
    responses(
        (status = 204),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
#[put("/admin/supervision-phones/{system}")]
pub async fn put_supervision_phone(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<PhoneSetting>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let system = System::parse(&path.into_inner())
        .ok_or_else(|| ApiError::BadRequest("system is river, forest or field".into()))?;
    let phone = body.into_inner().phone;
    if phone.trim().is_empty() || phone.chars().count() > 40 {
        return Err(ApiError::BadRequest(
            "a phone number of 1 to 40 characters".into(),
        ));
    }
    cases::set_supervision_phone(state.store.as_ref(), system, phone.trim())?;
    Ok(HttpResponse::NoContent().finish())
}

/// Reports and satisfaction for one division or department.
#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
pub struct SourceCounts {
    pub patrol: u64,
    pub public: u64,
    pub hotline: u64,
    pub letter: u64,
    pub satisfied: u64,
    pub not_satisfied: u64,
    /// Finished public, hotline and letter reports nobody has rated yet.
    pub unrated: u64,
}

impl SourceCounts {
    fn count(&mut self, source: IssueSource) {
        match source {
            IssueSource::Patrol => self.patrol += 1,
            IssueSource::Public => self.public += 1,
            IssueSource::Hotline => self.hotline += 1,
            IssueSource::Letter => self.letter += 1,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
pub struct PublicStats {
    pub total: SourceCounts,
    /// By the issue's division (名称 → counts).
    pub by_division: std::collections::BTreeMap<String, SourceCounts>,
    /// By the department assigned (未交办 when none).
    pub by_department: std::collections::BTreeMap<String, SourceCounts>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct PublicStatsQuery {
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

/// Reports by source (patrol, public, hotline, letter) and the public's satisfaction, by
/// division and by department, over the issues in the caller's scope. No phone numbers.
#[utoipa::path(
    tag = "stats",
    security(("bearer" = [])),
    params(PublicStatsQuery),
    responses(
        (status = 200, body = PublicStats, description = "JSON, or CSV with format=csv"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "supervisors and administrators"),
    )
)]
#[get("/stats/public")]
pub async fn public_stats(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PublicStatsQuery>,
) -> Result<HttpResponse, ApiError> {
    if !matches!(caller.user.role, Role::Supervisor { .. } | Role::Admin) {
        return Err(ApiError::Forbidden(
            "the statistics of public reports are for supervisors and administrators".into(),
        ));
    }
    let csv = match query.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::BadRequest("format is json or csv".into())),
    };
    let stats = web::block(move || {
        source_stats(&state, |issue| {
            sync_core::authz::in_scope(&caller.user, &issue.meta)
        })
    })
    .await??;
    if !csv {
        return Ok(HttpResponse::Ok().json(stats));
    }
    let mut writer = ::csv::Writer::from_writer(Vec::new());
    let row = |w: &mut ::csv::Writer<Vec<u8>>, kind: &str, name: &str, c: &SourceCounts| {
        w.write_record([
            kind.to_string(),
            name.to_string(),
            c.patrol.to_string(),
            c.public.to_string(),
            c.hotline.to_string(),
            c.letter.to_string(),
            c.satisfied.to_string(),
            c.not_satisfied.to_string(),
            c.unrated.to_string(),
        ])
    };
    let fail = |e: ::csv::Error| ApiError::Internal(e.to_string());
    writer
        .write_record([
            "分组",
            "名称",
            "巡查发现",
            "群众扫码举报",
            "12369热线",
            "信访",
            "满意",
            "不满意",
            "未评价",
        ])
        .map_err(fail)?;
    row(&mut writer, "合计", "全部", &stats.total).map_err(fail)?;
    for (name, c) in &stats.by_division {
        row(&mut writer, "区域", name, c).map_err(fail)?;
    }
    for (name, c) in &stats.by_department {
        row(&mut writer, "责任单位", name, c).map_err(fail)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .body(bytes))
}

/// Reports by source and the public's satisfaction over the issues `select` keeps, by the
/// issue's division and by the department assigned. The statistics endpoint selects the caller's
/// scope; the monthly report selects the issues its filter counts.
pub fn source_stats(
    state: &AppState,
    select: impl Fn(&crate::board::IssueSummary) -> bool,
) -> Result<PublicStats, ApiError> {
    let store = state.store.as_ref();
    let cases: std::collections::HashMap<String, Case> = cases::all_cases(store, now_ms())?
        .into_iter()
        .map(|c| (c.issue.clone(), c))
        .collect();
    let names: std::collections::HashMap<String, String> = store
        .list_divisions()?
        .into_iter()
        .map(|d| (d.code.as_str().to_string(), d.name))
        .collect();
    let (kept, _) = state.derived.current(store)?;
    let mut out = PublicStats {
        total: SourceCounts::default(),
        by_division: Default::default(),
        by_department: Default::default(),
    };
    for issue in kept.issues_newest_first() {
        if !select(issue) {
            continue;
        }
        let case = cases.get(&issue.record.id);
        let source = case.map_or(IssueSource::Patrol, |c| c.source);
        let division = names
            .get(issue.record.division.as_str())
            .cloned()
            .unwrap_or_else(|| issue.record.division.as_str().to_string());
        let department = match &issue.state.assignee {
            Some(sync_core::workflow::Assignee::Department(d)) => d.clone(),
            Some(sync_core::workflow::Assignee::User(_)) => "责任人".to_string(),
            None => "未交办".to_string(),
        };
        let finished = rules::may_rate(&issue.state);
        for counts in [
            &mut out.total,
            out.by_division.entry(division).or_default(),
            out.by_department.entry(department.clone()).or_default(),
        ] {
            counts.count(source);
            match case.and_then(|c| c.feedback.as_ref()) {
                Some(f) if f.satisfaction == Satisfaction::Satisfied => counts.satisfied += 1,
                Some(_) => counts.not_satisfied += 1,
                None if case.is_some() && finished => counts.unrated += 1,
                None => {}
            }
        }
    }
    Ok(out)
}

/// The public marks of the board's rows: the source of reports from outside, and a resident's
/// "not satisfied" with its reason, which the supervising office must look at.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PublicMark {
    /// `public`, `hotline` or `letter`.
    pub source: String,
    pub source_zh: String,
    /// The resident's reason when he said he is not satisfied.
    pub not_satisfied: Option<String>,
}

/// The mark of one issue, if it came from the public channel.
pub fn mark(state: &AppState, issue: &str) -> Option<PublicMark> {
    let case = cases::case_of_issue(state.store.as_ref(), issue, now_ms())
        .map_err(|e| tracing::error!(issue, error = %e, "cannot read a public case"))
        .ok()??;
    Some(PublicMark {
        source: case.source.as_str().into(),
        source_zh: case.source.name_zh().into(),
        not_satisfied: case
            .feedback
            .filter(|f| f.satisfaction == Satisfaction::NotSatisfied)
            .map(|f| f.reason),
    })
}
