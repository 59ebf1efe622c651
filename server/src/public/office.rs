//! The office's side of the public channel: hotline and letter reports entered by staff, a
//! case's phone number for the supervising office, and the supervision phone numbers.

use actix_web::{get, post, put, web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use sync_core::model::{Asset, Geometry, Role, System, User};
use sync_core::public::{self as rules, IssueSource};
use utoipa::ToSchema;

use super::cases::{self, Case, Feedback};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::{now_ms, AppState};

use super::api::*;
use super::report::*;

#[derive(Debug, Deserialize, ToSchema)]
pub struct OfficeReport {
    /// `hotline` (12369) or `letter` (信访).
    #[schema(pattern = "^(hotline|letter)$")]
    pub source: String,
    pub asset: String,
    pub category: String,
    /// At most `PublicLimits::description_chars` characters.
    #[schema(max_length = 500)]
    pub description: String,
    /// `[lon, lat]`; the asset's middle when the caller could not say.
    #[schema(value_type = Option<Vec<f64>>, min_items = 2, max_items = 2)]
    pub location: Option<[f64; 2]>,
    /// 7 to 20 characters of digits, `-`, `+` and spaces, at least 7 of them digits.
    #[schema(pattern = r"^\s*([-+ ]*([0-9][-+ ]*){7,})?\s*$", max_length = 20)]
    pub phone: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OfficeReported {
    pub issue: String,
    pub code: String,
    pub link: String,
}

pub(crate) fn middle(geometry: &Geometry) -> [f64; 2] {
    match geometry {
        Geometry::LineString(line) => line.get(line.len() / 2).copied().unwrap_or([0.0, 0.0]),
        Geometry::Polygon(rings) => rings
            .first()
            .and_then(|r| r.first())
            .copied()
            .unwrap_or([0.0, 0.0]),
    }
}

/// Whether `user` is the office supervising `asset` (the rule is `sync_core::authz::supervises`).
pub(crate) fn supervises(user: &User, asset: &Asset) -> bool {
    sync_core::authz::supervises(user, asset.system, &asset.division)
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
    let phone = check_phone(report.phone.as_deref())?;
    let id = report.asset.clone();
    let work = state.clone();
    let Some(asset) = web::block(move || asset(&work, &id)).await?? else {
        return Err(unknown_asset(&report.asset));
    };
    if !supervises(&caller.user, &asset) {
        return Err(ApiError::Forbidden(
            "only the office supervising this asset enters its reports".into(),
        ));
    }
    let location = report.location.unwrap_or_else(|| middle(&asset.geometry));
    check_report(
        &state,
        &asset,
        &report.category,
        &report.description,
        location,
    )?;
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
    /// 1 to 40 characters, not only spaces.
    #[schema(pattern = r"\S", max_length = 40)]
    pub phone: String,
}

/// Sets the supervision phone number printed on one system's signboards (administrators).
#[utoipa::path(
    tag = "public",
    security(("bearer" = [])),
    params(("system" = String, Path, description = "river, forest or field", pattern = "^(river|forest|field)$")),
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
