//! Administration of places (admin only): divisions (12-digit codes in a parent hierarchy) and
//! assets (river segments, forest areas, farmland grids with GeoJSON geometry).
//!
//! `POST` creates (409 if the code or id exists), `PUT` edits an existing one (404 otherwise).
//! Geometry and the division hierarchy are validated before anything is stored; every change is
//! written to the administrative audit with the record before and after.

use actix_web::{get, post, put, web, HttpResponse};
use serde::{Deserialize, Serialize};
use sync_core::model::{Asset, Division, DivisionCode, Geometry, System};
use utoipa::ToSchema;

use crate::admin::audit;
use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::storage::Store;
use sync_core::geo::check_geometry;

const MAX_ASSET_ID_CHARS: usize = 64;

/// A division's editable fields.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DivisionEdit {
    #[schema(pattern = r"\S")]
    pub name: String,
    /// Code of the enclosing division; `null` for a top-level division.
    pub parent: Option<DivisionCode>,
}

/// An asset's editable fields.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AssetEdit {
    pub system: System,
    #[schema(pattern = r"\S")]
    pub name: String,
    pub division: DivisionCode,
    /// GeoJSON `LineString` or `Polygon`, positions `[lon, lat]`.
    pub geometry: Geometry,
}

fn parse_code(code: &str) -> Result<DivisionCode, ApiError> {
    DivisionCode::new(code).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn check_division(store: &dyn Store, division: &Division) -> Result<(), ApiError> {
    if division.name.trim().is_empty() {
        return Err(ApiError::BadRequest("a division needs a name".into()));
    }
    if let Some(parent) = &division.parent {
        if store.get_division(parent)?.is_none() {
            return Err(ApiError::BadRequest(format!(
                "unknown parent division {parent}"
            )));
        }
        if parent.level() >= division.code.level() || !parent.contains(&division.code) {
            return Err(ApiError::BadRequest(format!(
                "{} does not lie inside {parent}",
                division.code
            )));
        }
    }
    Ok(())
}

fn check_asset(store: &dyn Store, asset: &Asset) -> Result<(), ApiError> {
    let id_ok = !asset.id.is_empty()
        && asset.id.len() <= MAX_ASSET_ID_CHARS
        && asset
            .id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !id_ok {
        return Err(ApiError::BadRequest(format!(
            "asset ids are 1-{MAX_ASSET_ID_CHARS} characters of letters, digits, '-', '_', '.'"
        )));
    }
    if asset.name.trim().is_empty() {
        return Err(ApiError::BadRequest("an asset needs a name".into()));
    }
    if store.get_division(&asset.division)?.is_none() {
        return Err(ApiError::BadRequest(format!(
            "unknown division {}",
            asset.division
        )));
    }
    check_geometry(&asset.geometry).map_err(|e| ApiError::BadRequest(format!("geometry: {e}")))
}

/// All divisions, parents before children.
#[utoipa::path(tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<Division>), (status = 403, body = ErrorBody)))]
#[get("/admin/divisions")]
pub async fn list_divisions(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<web::Json<Vec<Division>>, ApiError> {
    caller.require_admin()?;
    let store = state.store.clone();
    Ok(web::Json(
        web::block(move || store.list_divisions()).await??,
    ))
}

/// Creates a division: `{"code", "name", "parent"}`.
#[utoipa::path(tag = "admin", security(("bearer" = [])), request_body = Division,
    responses((status = 201, body = Division), (status = 400, body = ErrorBody, description = "no name, an unknown parent, or a parent that does not enclose the code"), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)))]
#[post("/admin/divisions")]
pub async fn create_division(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<Division>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let division = body.into_inner();
    let store = state.store.clone();
    let division = web::block(move || {
        check_division(store.as_ref(), &division)?;
        if store.get_division(&division.code)?.is_some() {
            return Err(ApiError::Conflict(format!(
                "division {} exists",
                division.code
            )));
        }
        store.put_division(&division)?;
        audit::record(
            store.as_ref(),
            &caller,
            "division_create",
            &division.name,
            None,
            audit::json(&division),
        )?;
        Ok(division)
    })
    .await??;
    Ok(HttpResponse::Created().json(division))
}

/// Renames or re-parents a division.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(("code" = String, Path, pattern = "^[0-9]{12}$")), request_body = DivisionEdit,
    responses((status = 200, body = Division), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[put("/admin/divisions/{code}")]
pub async fn update_division(
    state: web::Data<AppState>,
    caller: Caller,
    code: web::Path<String>,
    body: web::Json<DivisionEdit>,
) -> Result<web::Json<Division>, ApiError> {
    caller.require_admin()?;
    let edit = body.into_inner();
    let division = Division {
        code: parse_code(&code)?,
        name: edit.name,
        parent: edit.parent,
    };
    let store = state.store.clone();
    let division = web::block(move || {
        let Some(before) = store.get_division(&division.code)? else {
            return Err(ApiError::NotFound(format!("division {}", division.code)));
        };
        check_division(store.as_ref(), &division)?;
        store.put_division(&division)?;
        audit::record(
            store.as_ref(),
            &caller,
            "division_change",
            &division.name,
            audit::json(&before),
            audit::json(&division),
        )?;
        Ok(division)
    })
    .await??;
    Ok(web::Json(division))
}

/// All assets with geometry.
#[utoipa::path(tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = Vec<Asset>), (status = 403, body = ErrorBody)))]
#[get("/admin/assets")]
pub async fn list_assets(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<web::Json<Vec<Asset>>, ApiError> {
    caller.require_admin()?;
    let store = state.store.clone();
    Ok(web::Json(web::block(move || store.list_assets()).await??))
}

/// Creates an asset: `{"id", "system", "name", "division", "geometry"}`.
#[utoipa::path(tag = "admin", security(("bearer" = [])), request_body = Asset,
    responses((status = 201, body = Asset), (status = 400, body = ErrorBody, description = "a malformed id, no name, an unknown division or an unusable geometry"), (status = 403, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
#[post("/admin/assets")]
pub async fn create_asset(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<Asset>,
) -> Result<HttpResponse, ApiError> {
    caller.require_admin()?;
    let asset = body.into_inner();
    let store = state.store.clone();
    let asset = web::block(move || {
        check_asset(store.as_ref(), &asset)?;
        if store.get_asset(&asset.id)?.is_some() {
            return Err(ApiError::Conflict(format!("asset {} exists", asset.id)));
        }
        store.put_asset(&asset)?;
        audit::record(
            store.as_ref(),
            &caller,
            "asset_create",
            &asset.name,
            None,
            audit::json(&asset),
        )?;
        Ok(asset)
    })
    .await??;
    Ok(HttpResponse::Created().json(asset))
}

/// Edits an asset's system, name, division or geometry.
#[utoipa::path(tag = "admin", security(("bearer" = [])), params(("id" = String, Path)), request_body = AssetEdit,
    responses((status = 200, body = Asset), (status = 400, body = ErrorBody), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
#[put("/admin/assets/{id}")]
pub async fn update_asset(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<AssetEdit>,
) -> Result<web::Json<Asset>, ApiError> {
    caller.require_admin()?;
    let edit = body.into_inner();
    let asset = Asset {
        id: id.into_inner(),
        system: edit.system,
        name: edit.name,
        division: edit.division,
        geometry: edit.geometry,
    };
    let store = state.store.clone();
    let asset = web::block(move || {
        let Some(before) = store.get_asset(&asset.id)? else {
            return Err(ApiError::NotFound(format!("asset {}", asset.id)));
        };
        check_asset(store.as_ref(), &asset)?;
        store.put_asset(&asset)?;
        audit::record(
            store.as_ref(),
            &caller,
            "asset_change",
            &asset.name,
            audit::json(&before),
            audit::json(&asset),
        )?;
        Ok(asset)
    })
    .await??;
    Ok(web::Json(asset))
}
