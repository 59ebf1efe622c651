//! Setting a district up from the files an office already keeps (admin only).
//!
//! - The chief roster (河长名录) as XLSX or CSV: a template to download, an import that first
//!   runs dry (row by row: create, change, unchanged, refused and why) and then applies in one
//!   transaction — all rows or none, never half — and the current roster exported in the same
//!   template. People the roster creates get a one-time setup code instead of a password.
//! - Asset boundaries as GeoJSON or a zipped Shapefile, in a stated coordinate system (GCJ-02 converted to WGS-84),
//!   with a warning for assets far from where the district's patrols run.
//! - Division code lists as CSV (`代码, 名称`).
//!
//! The row rules are `sync_core::import`'s; here files are read and plans stored.

use std::collections::HashMap;
use sync_core::api_types::ErrorCode;

use actix_web::http::header;
use actix_web::{get, post, web, HttpResponse};
use futures_core::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sync_core::doc::PatrolDoc;
use sync_core::import::assets::{plan_assets, read_features};
use sync_core::import::coords::CoordSystem;
use sync_core::import::divisions::plan_divisions;
use sync_core::import::roster::{
    missing_from_roster, plan_roster, Missing, OnRecord, Places, RosterRow,
};
use sync_core::import::{summarize, Outcome, PlanRow, Summary};
use sync_core::model::{Asset, Division, Role, User};
use utoipa::{IntoParams, ToSchema};

use crate::admin::files::{roster_csv, roster_rows, roster_xlsx, table, MAX_IMPORT_BYTES};
use crate::admin::{admin_writes, audit, post_key, posts, setup};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::{now_ms, AppState};
use crate::storage::{AdminBatch, Store, UserRecord};
use sync_core::geo::check_geometry;

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

#[derive(Debug, Deserialize, IntoParams)]
pub struct ImportQuery {
    /// `true` (the default): report what would happen and store nothing.
    pub dry_run: Option<bool>,
    /// Roster only: also deactivate the chiefs on record this roster leaves out (among the
    /// systems it covers), ending their sessions. Default `false`: they are only listed.
    pub deactivate_missing: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AssetImportQuery {
    /// The coordinate system of the file's positions: `wgs84`, `cgcs2000` or `gcj02`.
    #[param(pattern = "^(wgs84|cgcs2000|gcj02)$")]
    pub crs: String,
    /// `true` (the default): report what would happen and store nothing.
    pub dry_run: Option<bool>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ExportQuery {
    /// `xlsx` (the default) or `csv`.
    #[param(pattern = "^(xlsx|csv)$")]
    pub format: Option<String>,
}

/// A setup code to hand over, shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SetupCodeView {
    pub user_id: String,
    pub username: String,
    pub display_name: String,
    pub code: String,
    pub expires_at_ms: i64,
}

/// What an import would do (dry run) or did.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ImportReport {
    pub applied: bool,
    #[schema(value_type = Object)]
    pub summary: Summary,
    /// One entry per row: `row`, `label`, `outcome` (`create`, `change`, `unchanged`,
    /// `refused`), `before`/`after` or `reasons`, and an optional `warning`.
    #[schema(value_type = Vec<Object>)]
    pub rows: Vec<Value>,
    /// For people created by this import: their one-time setup codes.
    pub setup_codes: Vec<SetupCodeView>,
    /// Roster only: active chiefs on record this roster leaves out (不在本名录), among the
    /// systems it covers, with `deactivate` saying whether this import deactivates them.
    #[schema(value_type = Vec<Object>)]
    #[serde(default)]
    pub missing: Vec<MissingChief>,
}

/// A chief on record a newer roster leaves out.
#[derive(Debug, Serialize, Deserialize)]
pub struct MissingChief {
    #[serde(flatten)]
    pub missing: Missing,
    /// Whether this import deactivates the account (only when asked to).
    pub deactivate: bool,
}

fn report<T: Serialize>(plan: &[PlanRow<T>], applied: bool) -> ImportReport {
    ImportReport {
        applied,
        summary: summarize(plan),
        rows: plan
            .iter()
            .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
            .collect(),
        setup_codes: Vec::new(),
        missing: Vec::new(),
    }
}

fn refused_all(summary: &Summary) -> ApiError {
    ApiError::Unprocessable {
        code: ErrorCode::ImportRefused,
        message: format!(
            "{} 行被拒绝，整个文件未导入（先预检，改正后再导入）",
            summary.refused
        ),
    }
}

/// Reads a request body of at most [`MAX_IMPORT_BYTES`].
async fn read_body(mut payload: web::Payload) -> Result<Vec<u8>, ApiError> {
    use std::future::poll_fn;
    use std::pin::Pin;
    let mut body = Vec::new();
    while let Some(chunk) = poll_fn(|cx| Pin::new(&mut payload).poll_next(cx)).await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest(format!("reading the file: {e}")))?;
        if body.len() + chunk.len() > MAX_IMPORT_BYTES {
            return Err(ApiError::PayloadTooLarge(format!(
                "import files are at most {} MB",
                MAX_IMPORT_BYTES / 1024 / 1024
            )));
        }
        body.extend_from_slice(&chunk);
    }
    if body.is_empty() {
        return Err(ApiError::BadRequest("the import file is empty".into()));
    }
    Ok(body)
}

fn file(content_type: &str, name: &str, ascii_name: &str, bytes: Vec<u8>) -> HttpResponse {
    // RFC 5987 filename for the Chinese name, an ASCII one for old browsers.
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'.' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{encoded}"),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(bytes)
}

/// The current roster's rows: every active chief, by system, level, division and number.
fn current_roster(store: &dyn Store) -> Result<Vec<RosterRow>, ApiError> {
    let (divisions, assets) = (store.list_divisions()?, store.list_assets()?);
    let places = Places::new(&divisions, &assets);
    let posts = posts(store)?;
    let mut chiefs: Vec<User> = store
        .list_users()?
        .into_iter()
        .map(|r| r.user)
        .filter(|u| u.active && matches!(u.role, Role::Chief { .. }))
        .collect();
    chiefs.sort_by_cached_key(|u| match &u.role {
        Role::Chief {
            system,
            level,
            jurisdiction,
        } => Some((
            *system,
            *level,
            jurisdiction.division.clone(),
            u.username.clone(),
        )),
        _ => None,
    });
    Ok(chiefs
        .iter()
        .filter_map(|u| places.row_of(u, posts.get(&u.id).map_or("", String::as_str)))
        .collect())
}

/// The roster template: the seven column titles and a sheet of instructions.
#[utoipa::path(tag = "admin", security(("bearer" = [])),
    responses((status = 200, description = "XLSX", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"), (status = 403, body = ErrorBody)))]
#[get("/admin/roster/template.xlsx")]
pub async fn roster_template(caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    Ok(file(
        XLSX,
        "河长名录模板.xlsx",
        "roster-template.xlsx",
        roster_xlsx(&[])?,
    ))
}

/// The current roster of active chiefs, in the template's columns.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(ExportQuery),
    responses((status = 200, description = "XLSX or CSV"), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody)))]
#[get("/admin/roster/export")]
pub async fn roster_export(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let format = query.into_inner().format.unwrap_or_else(|| "xlsx".into());
    if format != "xlsx" && format != "csv" {
        return Err(ApiError::BadRequest("format is xlsx or csv".into()));
    }
    let store = state.store.clone();
    let rows = web::block(move || current_roster(store.as_ref())).await??;
    Ok(if format == "csv" {
        file(
            "text/csv; charset=utf-8",
            "河长名录.csv",
            "roster.csv",
            roster_csv(&rows)?,
        )
    } else {
        file(XLSX, "河长名录.xlsx", "roster.xlsx", roster_xlsx(&rows)?)
    })
}

/// Imports a roster (XLSX or CSV in the template's columns). A dry run (the default) stores
/// nothing; applying stores every row or, if any row is refused, none (422).
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(ImportQuery),
    request_body(content = Vec<u8>, description = "XLSX or UTF-8 CSV", content_type = "application/octet-stream"),
    responses((status = 200, body = ImportReport), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[post("/admin/import/roster")]
pub async fn roster_import(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ImportQuery>,
    payload: web::Payload,
) -> Result<web::Json<ImportReport>, ApiError> {
    caller.require_admin()?;
    let dry_run = query.dry_run.unwrap_or(true);
    let deactivate = query.deactivate_missing.unwrap_or(false);
    let bytes = read_body(payload).await?;
    let report = web::block(move || {
        let rows = roster_rows(&bytes)?;
        let _writes = admin_writes(state.store.as_ref())?;
        let store = state.store.as_ref();
        let (divisions, assets) = (store.list_divisions()?, store.list_assets()?);
        let records = store.list_users()?;
        let posts = posts(store)?;
        let places = Places::new(&divisions, &assets);
        let on_record: HashMap<String, OnRecord<'_>> = records
            .iter()
            .map(|r| {
                (
                    r.user.username.to_lowercase(),
                    OnRecord {
                        user: &r.user,
                        post: posts.get(&r.user.id).map_or("", String::as_str),
                    },
                )
            })
            .collect();
        let plan = plan_roster(&rows, &places, &on_record);
        let mut report = report(&plan, false);
        // The office's own account is never deactivated by its own import.
        report.missing = missing_from_roster(&rows, &places, &on_record)
            .into_iter()
            .map(|missing| MissingChief {
                deactivate: deactivate && missing.user_id != caller.user.id,
                missing,
            })
            .collect();
        if dry_run {
            return Ok(report);
        }
        if report.summary.refused > 0 {
            return Err(refused_all(&report.summary));
        }
        let by_username: HashMap<String, &UserRecord> = records
            .iter()
            .map(|r| (r.user.username.to_lowercase(), r))
            .collect();
        let now = now_ms();
        let mut batch = AdminBatch::default();
        let mut codes = Vec::new();
        for row in &plan {
            match &row.outcome {
                Outcome::Create { after } => {
                    let record = UserRecord {
                        user: User {
                            id: uuid::Uuid::now_v7().to_string(),
                            username: after.username.clone(),
                            display_name: after.display_name.clone(),
                            role: after.role.clone(),
                            active: true,
                        },
                        password_hash: None,
                        created_at_ms: now,
                        updated_at_ms: now,
                    };
                    let (code, stored) = setup::issue(&record.user.id, now)?;
                    batch
                        .meta
                        .push((setup::key(&record.user.id), setup::encode(&stored)?));
                    batch.meta.push((
                        post_key(&record.user.id),
                        after.post.clone().into_bytes(),
                    ));
                    batch.meta.push(audit::entry(
                        &caller,
                        now,
                        "roster_create",
                        &after.display_name,
                        None,
                        audit::json(after),
                    )?);
                    codes.push(SetupCodeView {
                        user_id: record.user.id.clone(),
                        username: record.user.username.clone(),
                        display_name: record.user.display_name.clone(),
                        code,
                        expires_at_ms: stored.expires_at_ms,
                    });
                    batch.new_users.push(record);
                }
                Outcome::Change { before, after } => {
                    let Some(old) = by_username.get(&after.username.to_lowercase()) else {
                        return Err(ApiError::Internal(format!(
                            "planned change of {} without a record",
                            after.username
                        )));
                    };
                    let mut record = (*old).clone();
                    record.user.display_name = after.display_name.clone();
                    record.user.role = after.role.clone();
                    record.updated_at_ms = now;
                    batch.meta.push((
                        post_key(&record.user.id),
                        after.post.clone().into_bytes(),
                    ));
                    batch.meta.push(audit::entry(
                        &caller,
                        now,
                        "roster_change",
                        &after.display_name,
                        audit::json(before),
                        audit::json(after),
                    )?);
                    batch.changed_users.push(record);
                }
                Outcome::Unchanged | Outcome::Refused { .. } => {}
            }
        }
        let mut deactivated = Vec::new();
        for m in report.missing.iter().filter(|m| m.deactivate) {
            let Some(old) = by_username.get(&m.missing.chief.username.to_lowercase()) else {
                continue;
            };
            let mut record = (*old).clone();
            record.user.active = false;
            record.updated_at_ms = now;
            batch.meta.push(audit::entry(
                &caller,
                now,
                "roster_deactivate",
                &record.user.display_name,
                audit::json(&old.user),
                audit::json(&record.user),
            )?);
            deactivated.push(record.user.id.clone());
            batch.changed_users.push(record);
        }
        store.apply_admin_batch(&batch)?;
        // Stored inactive first, so no phone of theirs can refresh in between.
        for id in &deactivated {
            super::admin_users::end_sessions(store, id, now)?;
        }
        tracing::info!(by = %caller.user.id, created = batch.new_users.len(), changed = batch.changed_users.len(), deactivated = deactivated.len(), "roster imported");
        report.applied = true;
        report.setup_codes = codes;
        Ok::<_, ApiError>(report)
    })
    .await??;
    Ok(web::Json(report))
}

/// Where the district's patrols ran: positions sampled from the latest patrols' tracks.
fn patrol_positions(state: &AppState) -> Result<Vec<[f64; 2]>, ApiError> {
    const PATROLS: usize = 200;
    const PER_PATROL: usize = 20;
    let mut facts = state
        .stats
        .with_facts(state.store.as_ref(), |index, _| {
            index
                .patrols()
                .map(|p| (p.at_ms, p.id.clone()))
                .collect::<Vec<_>>()
        })
        .map_err(|e| ApiError::Internal(format!("patrol facts: {e}")))?;
    facts.sort_unstable_by(|a, b| b.cmp(a));
    let mut positions = Vec::new();
    for (_, id) in facts.into_iter().take(PATROLS) {
        let Some(stored) = state.store.document(&id)? else {
            continue;
        };
        let Ok(track) = PatrolDoc::load(&stored.bytes).and_then(|d| d.track()) else {
            continue;
        };
        let step = track.len().div_ceil(PER_PATROL).max(1);
        positions.extend(track.iter().step_by(step).map(|p| [p.lon, p.lat]));
    }
    Ok(positions)
}

/// Imports assets from a GeoJSON `FeatureCollection` (properties `名称`, `体系`, `行政区划`,
/// optional `编号`) or a zipped Shapefile layer with those attributes, in the stated coordinate
/// system. A dry run (the default) stores nothing;
/// applying stores every feature or, if any is refused, none (422).
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(AssetImportQuery),
    request_body(content = Object, description = "GeoJSON FeatureCollection, or a zipped Shapefile layer", content_type = "application/geo+json"),
    responses((status = 200, body = ImportReport), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[post("/admin/import/assets")]
pub async fn assets_import(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<AssetImportQuery>,
    payload: web::Payload,
) -> Result<web::Json<ImportReport>, ApiError> {
    caller.require_admin()?;
    let query = query.into_inner();
    let crs = CoordSystem::parse(&query.crs).ok_or_else(|| {
        ApiError::BadRequest(
            "crs must be wgs84, cgcs2000 or gcj02 (state the file's coordinate system)".into(),
        )
    })?;
    let dry_run = query.dry_run.unwrap_or(true);
    let bytes = read_body(payload).await?;
    let report = web::block(move || {
        let features = if crate::admin::shapefile::is_zip(&bytes) {
            crate::admin::shapefile::features(&bytes)?
        } else {
            read_features(&bytes).map_err(|e| ApiError::Unprocessable {
                code: ErrorCode::BadImportFile,
                message: e.to_string(),
            })?
        };
        let patrols = patrol_positions(&state)?;
        let _writes = admin_writes(state.store.as_ref())?;
        let store = state.store.as_ref();
        let (divisions, assets) = (store.list_divisions()?, store.list_assets()?);
        let places = Places::new(&divisions, &assets);
        let check = |g: &sync_core::model::Geometry| check_geometry(g).map_err(|e| e.to_string());
        let plan = plan_assets(&features, crs, &places, &assets, &check, &patrols);
        let mut report = report(&plan, false);
        if dry_run {
            return Ok(report);
        }
        if report.summary.refused > 0 {
            return Err(refused_all(&report.summary));
        }
        let now = now_ms();
        let mut batch = AdminBatch::default();
        for row in &plan {
            let (before, after): (Option<&Asset>, &Asset) = match &row.outcome {
                Outcome::Create { after } => (None, after),
                Outcome::Change { before, after } => (Some(before), after),
                Outcome::Unchanged | Outcome::Refused { .. } => continue,
            };
            batch.meta.push(audit::entry(
                &caller,
                now,
                if before.is_some() { "asset_change" } else { "asset_create" },
                &after.name,
                before.and_then(audit::json),
                audit::json(after),
            )?);
            batch.assets.push(after.clone());
        }
        store.apply_admin_batch(&batch)?;
        tracing::info!(by = %caller.user.id, assets = batch.assets.len(), crs = crs.as_str(), "assets imported");
        report.applied = true;
        Ok::<_, ApiError>(report)
    })
    .await??;
    Ok(web::Json(report))
}

/// Imports divisions from a code list (CSV or XLSX: `代码, 名称` after a header row); parents
/// follow from the codes. Dry run by default; applying is all rows or none (422).
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(ImportQuery),
    request_body(content = Vec<u8>, description = "CSV or XLSX code list", content_type = "application/octet-stream"),
    responses((status = 200, body = ImportReport), (status = 403, body = ErrorBody), (status = 413, body = ErrorBody), (status = 422, body = ErrorBody)))]
#[post("/admin/import/divisions")]
pub async fn divisions_import(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<ImportQuery>,
    payload: web::Payload,
) -> Result<web::Json<ImportReport>, ApiError> {
    caller.require_admin()?;
    let dry_run = query.dry_run.unwrap_or(true);
    let bytes = read_body(payload).await?;
    let report = web::block(move || {
        let table = table(&bytes)?;
        let rows: Vec<(usize, String, String)> = table
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(_, c)| c.iter().any(|s| !s.is_empty()))
            .map(|(i, c)| {
                let cell = |n: usize| c.get(n).cloned().unwrap_or_default();
                (i + 1, cell(0), cell(1))
            })
            .collect();
        let _writes = admin_writes(state.store.as_ref())?;
        let store = state.store.as_ref();
        let existing = store.list_divisions()?;
        let plan = plan_divisions(&rows, &existing);
        let mut report = report(&plan, false);
        if dry_run {
            return Ok(report);
        }
        if report.summary.refused > 0 {
            return Err(refused_all(&report.summary));
        }
        let now = now_ms();
        let mut batch = AdminBatch::default();
        for row in &plan {
            let (before, after): (Option<&Division>, &Division) = match &row.outcome {
                Outcome::Create { after } => (None, after),
                Outcome::Change { before, after } => (Some(before), after),
                Outcome::Unchanged | Outcome::Refused { .. } => continue,
            };
            batch.meta.push(audit::entry(
                &caller,
                now,
                if before.is_some() {
                    "division_change"
                } else {
                    "division_create"
                },
                &after.name,
                before.and_then(audit::json),
                audit::json(after),
            )?);
            batch.divisions.push(after.clone());
        }
        store.apply_admin_batch(&batch)?;
        report.applied = true;
        Ok::<_, ApiError>(report)
    })
    .await??;
    Ok(web::Json(report))
}
