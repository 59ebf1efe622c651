//! The public channel over HTTP. Without an account: the asset's facts for the report page, a
//! proof-of-work challenge, a ticket bought with its answer, photo uploads and one report per
//! ticket, the tracking answer and the resident's say on the outcome, and the signboards. With
//! one: office staff enter hotline and letter reports, the supervising office reads a case's
//! phone number, and the statistics of reports by source and satisfaction.
//!
//! Every refusal is a JSON error with its own code: `unknown_asset`, `proof_of_work_required`,
//! `proof_of_work_invalid`, `ticket_invalid`, `rate_limited_address`, `rate_limited_asset`,
//! `field_too_long`, `bad_phone`, `unknown_category`, `far_from_asset`, `too_many_photos`,
//! `photo_missing`, the photo verification's codes, `not_finished`, `already_answered`. Each is
//! an `ApiError` (`crate::error`) with a code of `ErrorCode`, so its body is the API's one error
//! body.
//!
//! This file holds what they share (refusals, the asset's public facts) and the asset, challenge,
//! signboard and statistics routes; a report is in `report`, the answer back in `tracking`, the
//! office's side in `office`.

use actix_web::http::{header, StatusCode};
use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use sync_core::api_types::ErrorCode;
use sync_core::model::{Asset, Geometry, Role, User};
use sync_core::public::{self as rules, IssueSource, Satisfaction};
use utoipa::ToSchema;

use super::cases::{self, Case};
use super::signboard::{self, Board, BoardChief, Sheet};
use crate::auth::{Caller, ClientIp};
use crate::error::{ApiError, ErrorBody};
use crate::state::{now_ms, AppState};

/// Header carrying the ticket on photo uploads.
pub const TICKET_HEADER: &str = "X-Report-Ticket";
/// Farthest a reported position may lie from the asset.
pub const MAX_DISTANCE_M: f64 = 3_000.0;
pub(crate) const MAX_PHONE_CHARS: usize = 20;

/// A refusal of the public channel: 429 with `Retry-After`, under the code that says which
/// limit was reached.
pub(crate) fn rate_limited(code: ErrorCode, message: &str, retry_after_secs: u64) -> ApiError {
    ApiError::Throttled {
        code,
        message: message.into(),
        retry_after_secs,
    }
}

/// Counts one event for `key` against `limit` an hour, on every server of the store together;
/// 429 with `code` and `message` past it.
pub(crate) async fn count(
    state: &web::Data<AppState>,
    key: String,
    limit: usize,
    code: ErrorCode,
    message: &str,
) -> Result<(), ApiError> {
    let store = state.store.clone();
    let now = now_ms();
    match web::block(move || super::limits::take(store.as_ref(), &key, limit, now)).await?? {
        Ok(()) => Ok(()),
        Err(wait) => Err(rate_limited(code, message, wait)),
    }
}

/// The server's own address as the caller reached it, for links printed on boards.
pub(crate) fn base_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

pub(crate) fn unknown_asset(id: &str) -> ApiError {
    ApiError::refused(
        StatusCode::NOT_FOUND,
        ErrorCode::UnknownAsset,
        format!("no asset {id:?}"),
    )
}

pub(crate) fn asset(state: &AppState, id: &str) -> Result<Option<Asset>, ApiError> {
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

pub(crate) fn division_name(state: &AppState, asset: &Asset) -> Result<String, ApiError> {
    Ok(state
        .store
        .get_division(&asset.division)?
        .map_or_else(|| asset.division.as_str().to_string(), |d| d.name))
}

pub(crate) fn users(state: &AppState) -> Result<Vec<User>, ApiError> {
    Ok(state
        .store
        .list_users()?
        .into_iter()
        .map(|r| r.user)
        .collect())
}

pub(crate) fn public_asset(state: &AppState, asset: Asset) -> Result<PublicAsset, ApiError> {
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
    match found {
        Some(a) => Ok(HttpResponse::Ok().json(a)),
        None => Err(unknown_asset("requested")),
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Challenge {
    /// Find `nonce` such that SHA-256(`challenge:nonce`) starts with `bits` zero bits.
    pub challenge: String,
    pub bits: u32,
}

/// A fresh proof-of-work challenge (single use, ten minutes). Counted per client address.
#[utoipa::path(
    tag = "public",
    responses(
        (status = 200, body = Challenge),
        (status = 429, body = ErrorBody, description = "rate_limited_address"),
    )
)]
#[get("/public/challenge")]
pub async fn get_challenge(
    state: web::Data<AppState>,
    client: ClientIp,
) -> Result<HttpResponse, ApiError> {
    let limits = state.public.limits();
    count(
        &state,
        format!("challenge:{}", client.counted_as()),
        limits.challenges_per_address,
        ErrorCode::RateLimitedAddress,
        "too many reports from this network",
    )
    .await?;
    let store = state.store.clone();
    let bits = limits.pow_bits;
    let challenge = web::block(move || super::pow::issue(store.as_ref(), bits, now_ms())).await??;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Challenge {
            challenge,
            bits: limits.pow_bits,
        }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SignboardQuery {
    /// `a4` (default) or `board` (3:2 landscape, 1500 × 1000 mm).
    #[param(pattern = "^(a4|board)$")]
    pub sheet: Option<String>,
    /// `svg` (default) or `pdf`.
    #[param(pattern = "^(svg|pdf)$")]
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
        (status = 429, body = ErrorBody, description = "rate_limited_address: too many PDFs from this address"),
        (status = 503, body = ErrorBody, description = "signboard_font_missing: no CJK font for the PDF"),
    )
)]
#[get("/public/signboards/{asset}")]
pub async fn get_signboard(
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<SignboardQuery>,
    req: HttpRequest,
    client: ClientIp,
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
    if pdf {
        count(
            &state,
            format!("signboard-pdf:{}", client.counted_as()),
            state.public.limits().signboard_pdfs_per_address,
            ErrorCode::RateLimitedAddress,
            "too many signboard PDFs from this network",
        )
        .await?;
    }
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
        None => return Err(unknown_asset("requested")),
        Some(Err(signboard::PdfError::NoFont)) => {
            return Err(ApiError::refused(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::SignboardFontMissing,
                signboard::PdfError::NoFont.to_string(),
            ))
        }
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
    #[param(pattern = "^(json|csv)$")]
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
        let reads = sync_core::hub::read::ReadScope::of(&caller.user);
        source_stats(&state, |issue| reads.sees(&issue.meta))
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
