//! Patrols for supervisors: a patrol's track over its asset with its validity flags (checked with
//! the rules that apply to its chief, by sync-core's `rules::validate`), the recent patrols in
//! scope, and reminders for chiefs whose patrol quota for the current period is not yet met.

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use sync_core::authz::in_scope;
use sync_core::doc::{DocKind, Patrol, PatrolDoc};
use sync_core::hub::HubError;
use sync_core::model::{Asset, Role, TrackPoint};
use sync_core::rules::{validate, PatrolValidation, RuleSet};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::jobs::{self, Reminder};
use crate::state::{now_ms, AppState};
use crate::storage::Store;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

#[derive(Debug, Deserialize, IntoParams)]
pub struct PatrolQuery {
    /// Only this chief's patrols (user id).
    pub chief: Option<String>,
    pub asset: Option<String>,
    /// Page size, at most 500 (default 50); newest first.
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PatrolRow {
    pub id: String,
    pub chief: String,
    pub asset: String,
    pub system: String,
    pub started_at_ms: i64,
    pub ended_at_ms: Option<i64>,
    pub distance_m: f64,
    pub duration_ms: i64,
    pub valid: bool,
    /// Why it does not count (or what is doubtful), explained with numbers.
    pub flags: Vec<String>,
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

struct Checked {
    record: Patrol,
    track: Vec<TrackPoint>,
    validation: PatrolValidation,
    asset: Option<Asset>,
}

fn rule_set(store: &dyn Store) -> RuleSet {
    store
        .get_meta(crate::reference::RULES_KEY)
        .ok()
        .flatten()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

fn check(store: &dyn Store, rules: &RuleSet, id: &str, bytes: &[u8]) -> Result<Checked, ApiError> {
    let damaged = |e: sync_core::doc::DocError| {
        ApiError::from(HubError::Damaged {
            id: id.to_string(),
            reason: e.to_string(),
        })
    };
    let patrol = PatrolDoc::load(bytes).map_err(damaged)?;
    let record = patrol.view().map_err(damaged)?;
    let track = patrol.track().map_err(damaged)?;
    let asset = store.get_asset(&record.asset)?;
    let chief = store.get_user(&record.chief)?.map(|r| r.user);
    let level = match chief.as_ref().map(|u| &u.role) {
        Some(Role::Chief { level, .. }) => *level,
        _ => record.division.level(),
    };
    let patrol_rules = rules.rules_for(record.system, level, &record.division);
    let mock = record.flags.get("mock_location").copied().unwrap_or(false);
    let validation = validate(
        &track,
        asset.as_ref().map(|a| &a.geometry),
        mock,
        patrol_rules,
    );
    Ok(Checked {
        record,
        track,
        validation,
        asset,
    })
}

fn row(c: &Checked) -> PatrolRow {
    PatrolRow {
        id: c.record.id.clone(),
        chief: c.record.chief.clone(),
        asset: c.record.asset.clone(),
        system: c.record.system.as_str().into(),
        started_at_ms: c.record.started_at_ms,
        ended_at_ms: c.record.ended_at_ms,
        distance_m: c.validation.stats.distance_m,
        duration_ms: c.validation.stats.duration_ms,
        valid: c.validation.is_valid(),
        flags: c.validation.flags.iter().map(ToString::to_string).collect(),
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
        let rules = rule_set(store);
        let mut work = crate::derived::Work::default();
        let mut rows = Vec::new();
        for meta in store.all_documents()? {
            let wanted = meta.kind == DocKind::Patrol
                && in_scope(&caller.user, &meta)
                && q.chief.as_ref().is_none_or(|c| meta.owner == *c)
                && q.asset.as_ref().is_none_or(|a| meta.asset == *a);
            if !wanted {
                continue;
            }
            if let Some(stored) = store.document(&meta.id)? {
                work.loaded += 1;
                work.validated += 1;
                rows.push(row(&check(store, &rules, &meta.id, &stored.bytes)?));
            }
        }
        state.metrics.count_work("/api/v1/patrols", &work);
        rows.sort_by(|a, b| (b.started_at_ms, &b.id).cmp(&(a.started_at_ms, &a.id)));
        rows.truncate(limit);
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
        let stored = store
            .document(&id)?
            .filter(|s| s.meta.kind == DocKind::Patrol && in_scope(&caller.user, &s.meta))
            .ok_or_else(|| ApiError::NotFound(format!("no patrol {id} in your scope")))?;
        let checked = check(store, &rule_set(store), &id, &stored.bytes)?;
        Ok(PatrolDetail {
            row: row(&checked),
            inside_share: checked.validation.inside_share,
            record: checked.record,
            track: checked.track,
            asset_detail: checked.asset,
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
        let mut work = crate::derived::Work::default();
        let rows = jobs::reminders(state.store.as_ref(), &caller.user, now_ms(), &mut work);
        state.metrics.count_work("/api/v1/reminders", &work);
        rows
    })
    .await??;
    Ok(HttpResponse::Ok().json(rows))
}
