//! A supervisor's statistics query: the period as China-time dates, filters, output format —
//! checked and narrowed to the caller's scope. Supervisors see their own system inside their own
//! division; administrators see everything; everyone else is refused.

use serde::Deserialize;
use sync_core::model::{DivisionCode, Level, Role, System, User};
use sync_core::rules::{days_from_civil, CHINA_OFFSET_MS};
use sync_core::stats::{china_date, level_name, Filter, HotspotParams, Reference, Window};
use utoipa::IntoParams;

use super::files::Heading;
use super::tables::system_name;
use crate::error::ApiError;

const DAY_MS: i64 = 86_400_000;
/// Without `from`, the period is this many days ending with `to`.
const DEFAULT_DAYS: i64 = 30;
/// Longest period one request may ask for.
const MAX_DAYS: i64 = 3 * 366;

#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
pub struct StatsQuery {
    /// First day of the period, `YYYY-MM-DD` in China time (default: 30 days before `to`).
    pub from: Option<String>,
    /// Last day of the period, inclusive (default: today).
    pub to: Option<String>,
    /// `river`, `forest` or `field`.
    pub system: Option<String>,
    /// 12-digit division code; only what lies inside it.
    pub division: Option<String>,
    /// Chief level: `district`, `subdistrict` or `village`.
    pub level: Option<String>,
    /// Asset id.
    pub asset: Option<String>,
    /// Level divisions are totalled at (default `subdistrict`).
    pub group: Option<String>,
    /// `json` (default), `csv` or `xlsx`.
    pub format: Option<String>,
    /// CSV only: which table (`chiefs`, `by_division`, `by_level`, `without_patrols`;
    /// `by_division`, `by_category`, `by_severity`, `monthly`, `weekly`,
    /// `overdue_by_department`); default the first.
    pub table: Option<String>,
    /// Hotspots: how near a new report must be to a closed issue, metres (default 200).
    pub radius_m: Option<f64>,
    /// Hotspots: how soon after the closure, days (default 90).
    pub within_days: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Xlsx,
}

fn bad(message: String) -> ApiError {
    ApiError::BadRequest(message)
}

/// Midnight (China time) starting the day `YYYY-MM-DD`.
pub fn parse_day(s: &str) -> Result<i64, ApiError> {
    let parts: Vec<&str> = s.split('-').collect();
    let number = |p: &str| p.parse::<i64>().ok();
    match parts.as_slice() {
        [y, m, d] if y.len() == 4 && m.len() == 2 && d.len() == 2 => {
            let (y, m, d) = (number(y), number(m), number(d));
            match (y, m, d) {
                (Some(y), Some(m @ 1..=12), Some(d @ 1..=31)) => {
                    let day = days_from_civil(y, m as u32, d as u32);
                    // 31 February rolls over into March: refuse it rather than guess.
                    if sync_core::rules::civil_from_days(day) != (y, m as u32, d as u32) {
                        return Err(bad(format!("{s} is not a date")));
                    }
                    Ok(day * DAY_MS - CHINA_OFFSET_MS)
                }
                _ => Err(bad(format!("{s} is not a date (YYYY-MM-DD)"))),
            }
        }
        _ => Err(bad(format!("{s} is not a date (YYYY-MM-DD)"))),
    }
}

/// `YYYY-MM-DD` of an instant in China time.
pub fn day_string(at_ms: i64) -> String {
    let (y, m, d) = china_date(at_ms);
    format!("{y:04}-{m:02}-{d:02}")
}

impl StatsQuery {
    pub fn format(&self) -> Result<Format, ApiError> {
        match self.format.as_deref() {
            None | Some("json") => Ok(Format::Json),
            Some("csv") => Ok(Format::Csv),
            Some("xlsx") => Ok(Format::Xlsx),
            Some(other) => Err(bad(format!(
                "format must be json, csv or xlsx, not {other}"
            ))),
        }
    }

    pub fn window(&self, now_ms: i64) -> Result<Window, ApiError> {
        let to_ms = match &self.to {
            Some(day) => parse_day(day)? + DAY_MS,
            None => parse_day(&day_string(now_ms))? + DAY_MS,
        };
        let from_ms = match &self.from {
            Some(day) => parse_day(day)?,
            None => to_ms - DEFAULT_DAYS * DAY_MS,
        };
        if from_ms >= to_ms {
            return Err(bad("from must not be after to".into()));
        }
        if to_ms - from_ms > MAX_DAYS * DAY_MS {
            return Err(bad(format!("a period may span at most {MAX_DAYS} days")));
        }
        Ok(Window { from_ms, to_ms })
    }

    /// The filter the query asks for, before scoping.
    pub fn filter(&self, now_ms: i64) -> Result<Filter, ApiError> {
        let mut filter = Filter::new(self.window(now_ms)?);
        filter.system = match self.system.as_deref() {
            None | Some("") => None,
            Some(s) => Some(System::parse(s).ok_or_else(|| bad(format!("unknown system {s}")))?),
        };
        filter.division = match self.division.as_deref() {
            None | Some("") => None,
            Some(s) => Some(DivisionCode::new(s).map_err(|e| bad(e.to_string()))?),
        };
        filter.level = match self.level.as_deref() {
            None | Some("") => None,
            Some(s) => Some(Level::parse(s).ok_or_else(|| bad(format!("unknown level {s}")))?),
        };
        filter.asset = self.asset.clone().filter(|a| !a.is_empty());
        filter.group_by = match self.group.as_deref() {
            None | Some("") => Level::Subdistrict,
            Some(s) => Level::parse(s).ok_or_else(|| bad(format!("unknown group level {s}")))?,
        };
        Ok(filter)
    }

    pub fn hotspot_params(&self) -> Result<HotspotParams, ApiError> {
        let defaults = HotspotParams::default();
        let params = HotspotParams {
            radius_m: self.radius_m.unwrap_or(defaults.radius_m),
            within_days: self.within_days.unwrap_or(defaults.within_days),
        };
        let sane = |v: f64, max: f64| v.is_finite() && v > 0.0 && v <= max;
        if !sane(params.radius_m, 10_000.0) || !sane(params.within_days, 3_660.0) {
            return Err(bad(
                "radius_m must be in (0, 10000] and within_days in (0, 3660]".into(),
            ));
        }
        Ok(params)
    }
}

/// Narrows `filter` to what `user` may see: a supervisor's own system inside their division.
pub fn scope(user: &User, mut filter: Filter) -> Result<Filter, ApiError> {
    match &user.role {
        Role::Admin => Ok(filter),
        Role::Supervisor { system, division } => {
            if filter.system.is_some_and(|s| s != *system) {
                return Err(ApiError::Forbidden(format!(
                    "you supervise the {system} system only"
                )));
            }
            filter.system = Some(*system);
            match &filter.division {
                Some(asked) if !division.contains(asked) => {
                    return Err(ApiError::Forbidden(format!(
                        "division {asked} lies outside your division {division}"
                    )))
                }
                Some(_) => {}
                None => filter.division = Some(division.clone()),
            }
            Ok(filter)
        }
        Role::Chief { .. } | Role::Handler { .. } => Err(ApiError::Forbidden(
            "statistics are for supervisors and administrators".into(),
        )),
    }
}

/// The header block of exports and the report: what was counted, over which period, when.
pub fn heading(title: &str, filter: &Filter, reference: &Reference, now_ms: i64) -> Heading {
    let last_day = day_string(filter.window.to_ms - 1);
    let place = filter.division.as_ref().map_or_else(
        || "全部".to_owned(),
        |d| format!("{}（{d}）", reference.division_name(d)),
    );
    let mut filters = vec![
        format!("体系：{}", filter.system.map_or("全部", system_name)),
        format!("区划：{place}"),
        format!("责任人级别：{}", filter.level.map_or("全部", level_name)),
    ];
    if let Some(asset) = &filter.asset {
        let name = reference
            .assets
            .iter()
            .find(|a| a.id == *asset)
            .map_or(asset.as_str(), |a| a.name.as_str());
        filters.push(format!("资产：{name}"));
    }
    filters.push(format!("汇总层级：{}", level_name(filter.group_by)));
    Heading {
        title: title.to_owned(),
        lines: vec![
            format!(
                "统计期间：{} 至 {}（北京时间，按巡查与上报发生时间计）",
                day_string(filter.window.from_ms),
                last_day
            ),
            format!("筛选条件：{}", filters.join("；")),
            format!("生成时间：{}", day_string(now_ms)),
        ],
    }
}
