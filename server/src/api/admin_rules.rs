//! Patrol rules and quotas, problem categories and check items, as administrators edit them in
//! the desk (admin only). Each write is checked by sync-core (`RuleSet::check`,
//! `rules::check_categories`) before anything is stored, replaces the whole setting in one
//! transaction with its audit entry (before and after), and takes effect at once: `/patrols`,
//! the statistics and the reminders read the rules through `settings`, phones receive the new
//! categories and rules at their next reference fetch.

use std::collections::HashSet;

use actix_web::{get, put, web};
use serde::{Deserialize, Serialize};
use sync_core::model::{Category, CheckItem};
use sync_core::rules::{check_categories, rules_from_json, RuleSet, SettingError};
use utoipa::ToSchema;

use crate::admin::{admin_writes, audit};
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::settings::{self, CATEGORIES_KEY, CHECK_ITEMS_KEY, RULES_KEY};
use crate::state::{now_ms, AppState};
use crate::storage::AdminBatch;

fn refused(err: SettingError) -> ApiError {
    ApiError::Unprocessable {
        code: ErrorCode::InvalidSetting,
        message: err.to_string(),
    }
}

fn bytes<T: Serialize>(value: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(value).map_err(|e| ApiError::Internal(e.to_string()))
}

/// The patrol rules and quotas in force.
#[utoipa::path(tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = RuleSet), (status = 403, body = ErrorBody)))]
#[get("/admin/rules")]
pub async fn get_rules(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<web::Json<RuleSet>, ApiError> {
    caller.require_admin()?;
    let rules = web::block(move || settings::patrol_rules(state.store.as_ref())).await??;
    Ok(web::Json(rules))
}

/// Replaces the patrol rules and quotas; answers the rules now in force. The body is read
/// by sync-core (`rules_from_json`), so an unknown system, level or period is refused naming
/// where it is, like any other value that cannot take effect.
#[utoipa::path(tag = "admin", security(("bearer" = [])), request_body = RuleSet,
    responses((status = 200, body = RuleSet), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "invalid_setting: an unknown system, level or period, a value out of range, a region no division has, two rules or quotas for the same chiefs; the message names the field")))]
#[put("/admin/rules")]
pub async fn put_rules(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<serde_json::Value>,
) -> Result<web::Json<RuleSet>, ApiError> {
    caller.require_admin()?;
    let body = body.into_inner();
    let stored = web::block(move || {
        let _writes = admin_writes(state.store.as_ref())?;
        let store = state.store.as_ref();
        let known: HashSet<_> = store
            .list_divisions()?
            .into_iter()
            .map(|d| d.code)
            .collect();
        let rules = rules_from_json(body, |code| known.contains(code)).map_err(refused)?;
        let before = settings::patrol_rules(store)?;
        if before != rules {
            let batch = AdminBatch {
                meta: vec![
                    (RULES_KEY.to_owned(), bytes(&rules)?),
                    audit::entry(
                        &caller,
                        now_ms(),
                        "rules_change",
                        "巡查规则与频次",
                        audit::json(&before),
                        audit::json(&rules),
                    )?,
                ],
                ..AdminBatch::default()
            };
            store.apply_admin_batch(&batch)?;
        }
        Ok::<_, ApiError>(settings::patrol_rules(store)?)
    })
    .await??;
    Ok(web::Json(stored))
}

/// Problem categories and patrol check items of every system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Catalogue {
    pub categories: Vec<Category>,
    pub check_items: Vec<CheckItem>,
}

/// The problem categories and check items in force.
#[utoipa::path(tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Catalogue), (status = 403, body = ErrorBody)))]
#[get("/admin/categories")]
pub async fn get_categories(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<web::Json<Catalogue>, ApiError> {
    caller.require_admin()?;
    let catalogue = web::block(move || {
        let store = state.store.as_ref();
        Ok::<_, ApiError>(Catalogue {
            categories: settings::categories(store)?,
            check_items: settings::check_items(store)?,
        })
    })
    .await??;
    Ok(web::Json(catalogue))
}

/// Replaces the problem categories and check items; answers those now in force. A category
/// recorded issues use cannot be removed.
#[utoipa::path(tag = "admin", security(("bearer" = [])), request_body = Catalogue,
    responses((status = 200, body = Catalogue), (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "invalid_setting: an empty or repeated code, an empty Chinese name, or the removal of a category recorded issues use; the message names the field")))]
#[put("/admin/categories")]
pub async fn put_categories(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<Catalogue>,
) -> Result<web::Json<Catalogue>, ApiError> {
    caller.require_admin()?;
    let after = body.into_inner();
    let stored = web::block(move || {
        let _writes = admin_writes(state.store.as_ref())?;
        let store = state.store.as_ref();
        let in_use: HashSet<String> = {
            let (kept, _) = state.derived.current(store)?;
            kept.issues_newest_first()
                .map(|issue| issue.record.category.clone())
                .collect()
        };
        check_categories(&after.categories, &after.check_items, &in_use).map_err(refused)?;
        let before = Catalogue {
            categories: settings::categories(store)?,
            check_items: settings::check_items(store)?,
        };
        if before != after {
            let batch = AdminBatch {
                meta: vec![
                    (CATEGORIES_KEY.to_owned(), bytes(&after.categories)?),
                    (CHECK_ITEMS_KEY.to_owned(), bytes(&after.check_items)?),
                    audit::entry(
                        &caller,
                        now_ms(),
                        "categories_change",
                        "问题类别与检查项",
                        audit::json(&before),
                        audit::json(&after),
                    )?,
                ],
                ..AdminBatch::default()
            };
            store.apply_admin_batch(&batch)?;
        }
        Ok::<_, ApiError>(Catalogue {
            categories: settings::categories(store)?,
            check_items: settings::check_items(store)?,
        })
    })
    .await??;
    Ok(web::Json(stored))
}

/// Registers this module's routes (inside `/api/v1`).
pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(get_rules)
        .service(put_rules)
        .service(get_categories)
        .service(put_categories);
}
