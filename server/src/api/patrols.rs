//! Patrols for supervisors: a patrol's track over its asset with its validity flags (checked by
//! sync-core's one patrol rule, `rules::validate_patrol`, with the rules of its chief as the
//! server knows them and its times bounded by what the server knows of the phone), the recent
//! patrols in scope, and reminders for chiefs whose patrol quota for the current period is not
//! yet met.

use std::sync::Arc;

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use sync_core::doc::{DocKind, Patrol};
use sync_core::hub::read::ReadScope;
use sync_core::model::{Asset, TrackPoint};
use sync_core::rules::{PatrolFlag, PatrolValidation};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::derived::{self, Judging, PatrolSummary, Work, CHANGES};
use crate::error::{ApiError, ErrorBody};
use crate::jobs::{self, Reminder};
use crate::state::{now_ms, AppState};

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

#[derive(Debug, Deserialize, IntoParams)]
pub struct PatrolQuery {
    /// Only this chief's patrols (user id).
    pub chief: Option<String>,
    pub asset: Option<String>,
    /// Page size, at most 500 (default 50); newest first.
    #[serde(default, deserialize_with = "crate::api::saturating_count")]
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PatrolRow {
    pub id: String,
    pub chief: String,
    pub asset: String,
    pub system: String,
    /// The phone's start and end times, as recorded.
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    /// When the patrol counts as walked: its first fix bounded by what the server knows of the
    /// phone's clock (the period it counts for, in statistics and reminders alike).
    pub counted_at_ms: i64,
    /// Distance and walking time that count (breaks, jumps and retracing left out), as in the
    /// statistics.
    pub distance_m: f64,
    pub duration_ms: i64,
    pub valid: bool,
    /// Why it does not count, one Chinese sentence with its numbers per flag.
    pub flags: Vec<String>,
    /// The same flags with their stable code (`flag`) and numbers, for clients that render them.
    #[schema(value_type = Vec<Object>)]
    pub flag_details: Vec<PatrolFlag>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PatrolDetail {
    #[serde(flatten)]
    pub row: PatrolRow,
    #[schema(value_type = Object)]
    pub record: Patrol,
    #[schema(value_type = Vec<Object>)]
    pub track: Vec<TrackPoint>,
    /// Share of fixes within the corridor around the asset.
    pub inside_share: Option<f64>,
    /// The patrolled asset with its GeoJSON geometry.
    #[schema(value_type = Object)]
    pub asset_detail: Option<Asset>,
}

fn row(patrol: &PatrolSummary, validation: &PatrolValidation) -> PatrolRow {
    let record = &patrol.record;
    PatrolRow {
        id: record.id.clone(),
        chief: record.chief.clone(),
        asset: record.asset.clone(),
        system: record.system.as_str().into(),
        started_at_ms: record.started_at_ms,
        ended_at_ms: record.ended_at_ms,
        counted_at_ms: patrol.at_ms,
        distance_m: validation.covered.counted_m,
        duration_ms: validation.covered.walking_ms,
        valid: validation.is_valid(),
        flags: validation
            .flags
            .iter()
            .map(PatrolFlag::message_zh)
            .collect(),
        flag_details: validation.flags.clone(),
    }
}

/// Recent patrols in the caller's scope with their validity, newest first.
#[utoipa::path(
    tag = "patrols",
    security(("bearer" = [])),
    params(PatrolQuery),
    responses((status = 200, body = Vec<PatrolRow>), (status = 401, body = ErrorBody))
)]
#[get("/patrols")]
pub async fn list_patrols(
    state: web::Data<AppState>,
    caller: Caller,
    query: web::Query<PatrolQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let limit = q.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE);
    let rows = web::block(move || -> Result<Vec<PatrolRow>, ApiError> {
        let store = state.store.as_ref();
        let (kept, caught_up) = state.derived.current(store)?;
        state.metrics.count_work(CHANGES, &caught_up);
        let reads = ReadScope::of(&caller.user);
        kept.damage_in_scope(&reads, DocKind::Patrol)?;
        // Newest first; only the page's patrols are judged.
        let page: Vec<_> = kept
            .visible_patrols(&reads)
            .filter(|p| {
                q.chief.as_ref().is_none_or(|c| p.meta.owner == *c)
                    && q.asset.as_ref().is_none_or(|a| p.meta.asset == *a)
            })
            .take(limit)
            .cloned()
            .collect();
        drop(kept);
        let judging = Judging::new(crate::settings::patrol_rules(store)?);
        let mut work = Work::default();
        let mut rows = Vec::with_capacity(page.len());
        for patrol in &page {
            let judged = derived::judge(store, &judging, patrol, false, &mut work)?;
            rows.push(row(patrol, &judged.validation));
        }
        state.metrics.count_work("/api/v1/patrols", &work);
        Ok(rows)
    })
    .await??;
    Ok(HttpResponse::Ok().json(rows))
}

/// One patrol: record, track, validity flags and the asset it was walked along.
#[utoipa::path(
    tag = "patrols",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "patrol id")),
    responses(
        (status = 200, body = PatrolDetail),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody, description = "unknown or outside the caller's scope"),
    )
)]
#[get("/patrols/{id}")]
pub async fn get_patrol(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let detail = web::block(move || -> Result<PatrolDetail, ApiError> {
        let store = state.store.as_ref();
        let (kept, caught_up) = state.derived.current(store)?;
        state.metrics.count_work(CHANGES, &caught_up);
        let reads = ReadScope::of(&caller.user);
        let patrol = kept.visible_patrol(&reads, &id).cloned();
        drop(kept);
        let patrol = match patrol {
            Some(patrol) => patrol,
            // Stored since, or damaged (then reading it says so, as it always did).
            None => match reads.document(store, &id, Some(DocKind::Patrol))? {
                Some(stored) => {
                    let mut clocks = crate::derived::Clocks::read(store)?;
                    Arc::new(PatrolSummary::load(
                        &mut clocks,
                        stored.meta,
                        &stored.bytes,
                    )?)
                }
                None => return Err(ApiError::NotFound(format!("no patrol {id} in your scope"))),
            },
        };
        let judging = Judging::new(crate::settings::patrol_rules(store)?);
        let mut work = Work::default();
        let judged = derived::judge(store, &judging, &patrol, true, &mut work)?;
        state.metrics.count_work("/api/v1/patrols/{id}", &work);
        Ok(PatrolDetail {
            row: row(&patrol, &judged.validation),
            inside_share: judged.validation.inside_share,
            record: patrol.record.clone(),
            track: judged.track.unwrap_or_default(),
            asset_detail: judged.asset,
        })
    })
    .await??;
    Ok(HttpResponse::Ok().json(detail))
}

/// Chiefs the caller oversees whose patrol quota for the current period is not met yet (a
/// chief sees their own reminder), soonest due first.
#[utoipa::path(
    tag = "patrols",
    security(("bearer" = [])),
    responses((status = 200, body = Vec<Reminder>), (status = 401, body = ErrorBody))
)]
#[get("/reminders")]
pub async fn list_reminders(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let rows = web::block(move || {
        let mut work = Work::default();
        let rows = jobs::reminders(&state, &caller.user, now_ms(), &mut work);
        state.metrics.count_work("/api/v1/reminders", &work);
        rows
    })
    .await??;
    Ok(HttpResponse::Ok().json(rows))
}
