//! Statistics and exports for supervisors and administrators: patrol compliance and problem
//! handling as JSON, CSV or XLSX; issues and patrol tracks as GeoJSON; recurrence hotspots; the
//! monthly report's charts (SVG) and printable page. Every figure comes from `sync_core::stats`
//! over facts kept current by `crate::stats::StatsCache`; the filter is narrowed to the caller's
//! system and division before anything is counted.

use actix_web::http::header;
use actix_web::{get, web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};
use sync_core::doc::PatrolDoc;
use sync_core::model::TrackPoint;
use sync_core::stats::{hotspots, issue_report, patrol_report, Filter, PatrolFact};
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::{now_ms, AppState};
use crate::stats::files::{self, Heading};
use crate::stats::query::{day_string, heading, scope, Format, StatsQuery};
use crate::stats::tables::{issue_tables, patrol_tables, Table};
use crate::stats::{charts, geojson, page, StatsError};

/// Most patrol tracks one GeoJSON export holds; narrow the period or filters for more.
const MAX_TRACKS: usize = 10_000;
/// Tracks are thinned to at most this many fixes each (every n-th fix, the last one kept), which
/// keeps a district's export loadable in QGIS without changing its shape at map scale.
const MAX_TRACK_POINTS: usize = 300;

const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

impl From<StatsError> for ApiError {
    fn from(err: StatsError) -> Self {
        match err {
            StatsError::Store(e) => e.into(),
            StatsError::Hub(e) => e.into(),
        }
    }
}

/// The statistics query as each endpoint reads it, for the schema only: the handlers read all
/// of it as `StatsQuery`, but each uses only some parameters, and the schema lists just those
/// (a parameter an endpoint ignores could not be refused there).
mod documented {
    #![allow(dead_code)]
    use utoipa::IntoParams;

    /// The period and the filters (every statistics endpoint).
    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct Period {
        /// First day of the period, `YYYY-MM-DD` in China time (default: 30 days before
        /// `to`); `from` is not after `to`, and the period spans at most 1098 days.
        #[param(schema_with = crate::api::schema::day)]
        pub from: Option<String>,
        /// Last day of the period, inclusive (default: today).
        #[param(schema_with = crate::api::schema::day)]
        pub to: Option<String>,
        /// `river`, `forest` or `field`; empty for all.
        #[param(schema_with = crate::api::schema::system_or_empty)]
        pub system: Option<String>,
        /// 12-digit division code; only what lies inside it; empty for all.
        #[param(schema_with = crate::api::schema::division_or_empty)]
        pub division: Option<String>,
        /// Chief level: `district`, `subdistrict` or `village`; empty for all.
        #[param(schema_with = crate::api::schema::level_or_empty)]
        pub level: Option<String>,
        /// Asset id; empty for all.
        pub asset: Option<String>,
        /// Level divisions are totalled at (default `subdistrict`, also when empty).
        #[param(schema_with = crate::api::schema::level_or_empty)]
        pub group: Option<String>,
    }

    /// The output format (the patrol and problem statistics).
    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct Output {
        /// `json` (default), `csv` or `xlsx`.
        #[param(schema_with = crate::api::schema::format)]
        pub format: Option<String>,
        /// CSV only: which table (patrols: `chiefs`, `by_division`, `by_level`,
        /// `without_patrols`; problems: `by_division`, `by_category`, `by_severity`, `monthly`,
        /// `weekly`, `overdue_by_department`); default the first.
        pub table: Option<String>,
    }

    /// The recurrence parameters (hotspots).
    #[derive(IntoParams)]
    #[into_params(parameter_in = Query)]
    pub struct Recurrence {
        /// How near a new report must be to a closed issue, metres (default 200).
        #[param(exclusive_minimum = 0.0, maximum = 10000.0)]
        pub radius_m: Option<f64>,
        /// How soon after the closure, days (default 90).
        #[param(exclusive_minimum = 0.0, maximum = 3660.0)]
        pub within_days: Option<f64>,
    }
}

/// What a handler hands back from its blocking work.
enum Output {
    Json(Value),
    File {
        bytes: Vec<u8>,
        content_type: &'static str,
        filename: Option<String>,
    },
}

impl Output {
    fn respond(self) -> HttpResponse {
        match self {
            Output::Json(value) => HttpResponse::Ok().json(value),
            Output::File {
                bytes,
                content_type,
                filename,
            } => {
                let mut response = HttpResponse::Ok();
                response.content_type(content_type);
                // A document or chart a browser could render on its own gets the pages'
                // protections; a table file is at least never read as another type.
                if content_type.starts_with("text/html") || content_type.starts_with("image/svg") {
                    crate::web::page_headers(&mut response, page::REPORT_CSP);
                } else {
                    response.insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"));
                }
                if let Some(name) = filename {
                    response.insert_header((
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}\""),
                    ));
                }
                response.body(bytes)
            }
        }
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

fn export(
    format: Format,
    name: &str,
    filter: &Filter,
    heading: &Heading,
    json: Value,
    tables: Vec<Table>,
    table: Option<&str>,
) -> Result<Output, ApiError> {
    let stem = format!(
        "{name}_{}_{}",
        day_string(filter.window.from_ms),
        day_string(filter.window.to_ms - 1)
    );
    Ok(match format {
        Format::Json => Output::Json(json),
        Format::Csv => {
            let chosen = match table {
                None => tables.first(),
                Some(key) => tables.iter().find(|t| t.key == key),
            }
            .ok_or_else(|| {
                let keys: Vec<&str> = tables.iter().map(|t| t.key).collect();
                ApiError::BadRequest(format!("table must be one of {}", keys.join(", ")))
            })?;
            Output::File {
                bytes: files::csv(chosen).map_err(internal)?,
                content_type: "text/csv; charset=utf-8",
                filename: Some(format!("{stem}_{}.csv", chosen.key)),
            }
        }
        Format::Xlsx => Output::File {
            bytes: files::xlsx(heading, &tables).map_err(internal)?,
            content_type: XLSX,
            filename: Some(format!("{stem}.xlsx")),
        },
    })
}

async fn run(
    state: &web::Data<AppState>,
    work: impl FnOnce(&AppState) -> Result<Output, ApiError> + Send + 'static,
) -> Result<HttpResponse, ApiError> {
    let state = state.clone();
    Ok(web::block(move || work(&state)).await??.respond())
}

/// Patrol compliance per chief, with totals per division and level and the chiefs without any
/// patrol. JSON keys are English; CSV (one table, `table=`) and XLSX (every table, a sheet each)
/// carry Chinese titles.
#[utoipa::path(
    tag = "statistics",
    security(("bearer" = [])),
    params(documented::Period, documented::Output),
    responses(
        (status = 200, description = "PatrolReport as JSON, or a CSV/XLSX file"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "not a supervisor or administrator, or outside their scope"),
    )
)]
#[get("/stats/patrols")]
pub async fn patrol_stats(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let now = now_ms();
    let filter = scope(&caller.user, query.filter(now)?)?;
    let format = query.format()?;
    run(&state, move |s| {
        let (report, heading) = s.stats.with_facts(s.store.as_ref(), |index, reference| {
            (
                patrol_report(index, reference, &filter),
                heading("巡查考核统计", &filter, reference, now),
            )
        })?;
        let json = serde_json::to_value(&report).map_err(internal)?;
        let tables = patrol_tables(&report);
        export(
            format,
            "patrols",
            &filter,
            &heading,
            json,
            tables,
            query.table.as_deref(),
        )
    })
    .await
}

/// Problem handling per division and system, category and severity; monthly trend, weekly opened
/// vs closed, overdue by department. Issues count in the period they were reported in.
#[utoipa::path(
    tag = "statistics",
    security(("bearer" = [])),
    params(documented::Period, documented::Output),
    responses(
        (status = 200, description = "IssueReport as JSON, or a CSV/XLSX file"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
#[get("/stats/issues")]
pub async fn issue_stats(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let now = now_ms();
    let filter = scope(&caller.user, query.filter(now)?)?;
    let format = query.format()?;
    run(&state, move |s| {
        let (report, heading) = s.stats.with_facts(s.store.as_ref(), |index, reference| {
            (
                issue_report(index, reference, &filter, now),
                heading("问题处置统计", &filter, reference, now),
            )
        })?;
        let json = serde_json::to_value(&report).map_err(internal)?;
        let tables = issue_tables(&report);
        export(
            format,
            "issues",
            &filter,
            &heading,
            json,
            tables,
            query.table.as_deref(),
        )
    })
    .await
}

/// Places where problems of one category came back after being closed, ranked for
/// concentrated remediation, as a list and as GeoJSON points for the dashboard map.
#[utoipa::path(
    tag = "statistics",
    security(("bearer" = [])),
    params(documented::Period, documented::Recurrence),
    responses(
        (status = 200, description = "{params, hotspots: [...], geojson: FeatureCollection}"),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
#[get("/stats/hotspots")]
pub async fn hotspot_stats(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = scope(&caller.user, query.filter(now_ms())?)?;
    let params = query.hotspot_params()?;
    run(&state, move |s| {
        let found = s.stats.with_facts(s.store.as_ref(), |index, reference| {
            hotspots(index, reference, &filter, &params)
        })?;
        let features = found.iter().map(geojson::hotspot_feature).collect();
        Ok(Output::Json(json!({
            "params": params,
            "hotspots": found,
            "geojson": geojson::collection(features),
        })))
    })
    .await
}

/// Issues reported in the period as GeoJSON points with their derived status.
#[utoipa::path(
    tag = "statistics",
    security(("bearer" = [])),
    params(documented::Period),
    responses(
        (status = 200, description = "GeoJSON FeatureCollection of Points", content_type = "application/geo+json"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
#[get("/export/issues.geojson")]
pub async fn issues_geojson(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let now = now_ms();
    let filter = scope(&caller.user, query.filter(now)?)?;
    run(&state, move |s| {
        let features = s.stats.with_facts(s.store.as_ref(), |index, reference| {
            index
                .issues()
                .filter(|i| filter.selects_issue(i, reference))
                .map(|i| geojson::issue_feature(i, reference, now))
                .collect::<Vec<_>>()
        })?;
        geojson_file(geojson::collection(features))
    })
    .await
}

fn geojson_file(value: Value) -> Result<Output, ApiError> {
    Ok(Output::File {
        bytes: serde_json::to_vec(&value).map_err(internal)?,
        content_type: "application/geo+json",
        filename: None,
    })
}

fn thin(points: Vec<TrackPoint>) -> Vec<TrackPoint> {
    if points.len() <= MAX_TRACK_POINTS {
        return points;
    }
    let step = points.len().div_ceil(MAX_TRACK_POINTS - 1);
    let last = points[points.len() - 1];
    let mut kept: Vec<TrackPoint> = points.into_iter().step_by(step).collect();
    kept.push(last);
    kept
}

/// Patrols walked in the period as GeoJSON LineStrings (tracks thinned to 300 fixes, at most
/// 10,000 patrols; `truncated` says when more matched).
#[utoipa::path(
    tag = "statistics",
    security(("bearer" = [])),
    params(documented::Period),
    responses(
        (status = 200, description = "GeoJSON FeatureCollection of LineStrings", content_type = "application/geo+json"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
#[get("/export/patrols.geojson")]
pub async fn patrols_geojson(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let filter = scope(&caller.user, query.filter(now_ms())?)?;
    run(&state, move |s| {
        let selected = s.stats.with_facts(s.store.as_ref(), |index, reference| {
            index
                .patrols()
                .filter(|p| filter.selects_patrol(p, reference))
                .map(|p| {
                    let name = reference.user(&p.chief).map(|u| u.display_name.clone());
                    (p.clone(), name)
                })
                .collect::<Vec<(PatrolFact, Option<String>)>>()
        })?;
        let truncated = selected.len() > MAX_TRACKS;
        let mut features = Vec::with_capacity(selected.len().min(MAX_TRACKS));
        for (fact, name) in selected.iter().take(MAX_TRACKS) {
            let Some(stored) = s.store.document(&fact.id)? else {
                continue;
            };
            let points = PatrolDoc::load(&stored.bytes)
                .and_then(|doc| doc.track())
                .map_err(|e| internal(format!("patrol {}: {e}", fact.id)))?;
            features.push(geojson::patrol_feature(
                fact,
                &thin(points),
                name.as_deref(),
            ));
        }
        let mut collection = geojson::collection(features);
        collection["truncated"] = json!(truncated);
        geojson_file(collection)
    })
    .await
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ChartQuery {
    /// `compliance` (by division), `weekly` (opened vs closed) or `overdue` (by department).
    #[param(schema_with = crate::api::schema::chart)]
    pub chart: String,
}

/// Everything the monthly report shows, for the caller's filter.
fn report_content(s: &AppState, filter: &Filter, now: i64) -> Result<ReportParts, ApiError> {
    let (mut parts, selected) = s.stats.with_facts(s.store.as_ref(), |index, reference| {
        let selected: std::collections::HashSet<String> = index
            .issues()
            .filter(|i| filter.selects_issue(i, reference))
            .map(|i| i.id.clone())
            .collect();
        let parts = ReportParts {
            patrols: patrol_report(index, reference, filter),
            issues: issue_report(index, reference, filter, now),
            hotspots: hotspots(index, reference, filter, &Default::default()),
            heading: heading("河湖林田长制工作月报", filter, reference, now),
            public: Default::default(),
        };
        (parts, selected)
    })?;
    // Reports by source and the public's satisfaction over the same issues the report counts.
    parts.public =
        crate::public::api::source_stats(s, |issue| selected.contains(&issue.record.id))?;
    Ok(parts)
}

struct ReportParts {
    patrols: sync_core::stats::PatrolReport,
    issues: sync_core::stats::IssueReport,
    hotspots: Vec<sync_core::stats::Hotspot>,
    heading: Heading,
    public: crate::public::api::PublicStats,
}

/// One chart of the monthly report as SVG, for the dashboard.
#[utoipa::path(
    tag = "statistics",
    security(("bearer" = [])),
    params(documented::Period, ChartQuery),
    responses(
        (status = 200, description = "SVG image", content_type = "image/svg+xml"),
        (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody),
    )
)]
#[get("/stats/report.svg")]
pub async fn report_svg(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<StatsQuery>,
    chart: web::Query<ChartQuery>,
) -> Result<HttpResponse, ApiError> {
    let now = now_ms();
    let filter = scope(&caller.user, query.filter(now)?)?;
    let chart = chart.into_inner().chart;
    if !matches!(chart.as_str(), "compliance" | "weekly" | "overdue") {
        return Err(ApiError::BadRequest(
            "chart must be compliance, weekly or overdue".into(),
        ));
    }
    run(&state, move |s| {
        let parts = report_content(s, &filter, now)?;
        let svg = match chart.as_str() {
            "compliance" => charts::compliance_by_division(&parts.patrols),
            "weekly" => charts::opened_vs_closed(&parts.issues),
            _ => charts::overdue_by_department(&parts.issues),
        }
        .map_err(ApiError::Internal)?;
        Ok(Output::File {
            bytes: svg.into_bytes(),
            content_type: "image/svg+xml",
            filename: None,
        })
    })
    .await
}

/// The monthly report (月报) as one printable HTML document with its charts inline.
#[utoipa::path(
    tag = "statistics",
    security(("bearer" = [])),
    params(documented::Period),
    responses(
        (status = 200, description = "HTML document", content_type = "text/html"),
        (status = 403, body = ErrorBody),
    )
)]
#[get("/stats/report.html")]
pub async fn report_html(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<StatsQuery>,
) -> Result<HttpResponse, ApiError> {
    let now = now_ms();
    let filter = scope(&caller.user, query.filter(now)?)?;
    run(&state, move |s| {
        let parts = report_content(s, &filter, now)?;
        let charts = [
            charts::compliance_by_division(&parts.patrols),
            charts::opened_vs_closed(&parts.issues),
            charts::overdue_by_department(&parts.issues),
        ];
        let [a, b, c] = charts;
        let html = page::report_html(&page::ReportContent {
            heading: &parts.heading,
            patrols: &parts.patrols,
            issues: &parts.issues,
            hotspots: &parts.hotspots,
            public: &parts.public,
            asset_name: &|id| s.store.get_asset(id).ok().flatten().map(|a| a.name),
            charts: [
                a.map_err(ApiError::Internal)?,
                b.map_err(ApiError::Internal)?,
                c.map_err(ApiError::Internal)?,
            ],
        });
        Ok(Output::File {
            bytes: html.into_bytes(),
            content_type: "text/html; charset=utf-8",
            filename: None,
        })
    })
    .await
}

/// The monthly report page: signs in like the dashboard, then shows `/api/v1/stats/report.html`
/// for the chosen period. Holds no data itself.
#[utoipa::path(
    tag = "statistics",
    responses((status = 200, description = "HTML page", content_type = "text/html"))
)]
#[get("/report")]
pub async fn report_page() -> HttpResponse {
    crate::web::page_headers(&mut HttpResponse::Ok(), page::SHELL_CSP)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(page::SHELL)
}

/// The monthly report page's script.
#[utoipa::path(
    tag = "statistics",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript"))
)]
#[get("/report.js")]
pub async fn report_js() -> HttpResponse {
    crate::web::page_headers(&mut HttpResponse::Ok(), page::SHELL_CSP)
        .content_type("text/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(page::SHELL_JS)
}
