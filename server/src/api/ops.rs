//! Operations endpoints: liveness, Prometheus metrics and the OpenAPI document. Unauthenticated
//! by design (scrapers and load balancers carry no tokens); they expose no user data.

use std::sync::OnceLock;

use actix_web::{get, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` when the store answers.
    pub status: String,
    pub version: String,
}

/// Liveness and storage reachability.
#[utoipa::path(tag = "ops", responses((status = 200, body = Health), (status = 500, body = crate::error::ErrorBody)))]
#[get("/healthz")]
pub async fn healthz(state: web::Data<AppState>) -> Result<web::Json<Health>, ApiError> {
    let store = state.store.clone();
    web::block(move || store.get_meta("healthz")).await??;
    Ok(web::Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }))
}

/// Request counts and durations in the Prometheus (OpenMetrics) text format.
#[utoipa::path(tag = "ops", responses((status = 200, content_type = "application/openmetrics-text", body = String)))]
#[get("/metrics")]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state
        .metrics
        .set_delivery_cache(state.hub.delivery_cache_size());
    let text = state
        .metrics
        .encode()
        .map_err(|e| ApiError::Internal(format!("encoding metrics: {e}")))?;
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(text))
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(tag = "ops", responses((status = 200, content_type = "application/json", body = Object)))]
#[get("/openapi.json")]
pub async fn openapi_json() -> HttpResponse {
    static SPEC: OnceLock<String> = OnceLock::new();
    let spec = SPEC.get_or_init(|| {
        crate::api::openapi()
            .to_json()
            .unwrap_or_else(|e| format!("{{\"error\":\"internal\",\"message\":\"{e}\"}}"))
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(spec.clone())
}
