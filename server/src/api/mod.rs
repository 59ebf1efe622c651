//! The HTTP surface: one `routes` function registers every handler through utoipa-actix-web, so
//! the same call both serves a route and documents it in `/openapi.json` — a handler cannot be
//! served undocumented. `configure` adds the body limits and JSON error handlers around it.
//!
//! Handlers live in `auth` (login, refresh, me, device revocation), `admin_users` and
//! `admin_places` (administration), `reference` (device reference data), `sync` (batch and
//! automerge sync), `docs` (document listing, views, history) and `ops` (health, metrics,
//! OpenAPI). They stay thin: authorization decisions and storage calls, nothing else.

pub mod admin_import;
pub mod admin_places;
pub mod admin_users;
pub mod auth;
pub mod auth_setup;
pub mod blobs;
pub mod docs;
pub mod issues;
pub mod ops;
pub mod patrols;
pub mod reference;
pub mod stats;
pub mod sync;

use actix_web::{web, App, HttpRequest, HttpResponse};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::{scope, AppExt};

use crate::error::ApiError;

/// Largest JSON body any endpoint accepts (asset geometries are the largest bodies).
pub const JSON_LIMIT_BYTES: usize = 256 * 1024;
/// Largest raw body any endpoint reads.
pub const PAYLOAD_LIMIT_BYTES: usize = 256 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "ChiefSync",
        description = "Offline-first patrols and problem rectification for river, forest and field chiefs. Errors are JSON: {\"error\": code, \"message\": text}."
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::error::ErrorBody))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Registers every route; used both to serve and to document.
fn routes(cfg: &mut ServiceConfig) {
    cfg.service(ops::healthz)
        .service(ops::metrics)
        .service(ops::openapi_json)
        .service(crate::web::index)
        .service(crate::web::app_js)
        .service(crate::web::app_css)
        .service(crate::admin::web::admin_page)
        .service(crate::admin::web::admin_js)
        .service(crate::admin::web::admin_css)
        .service(crate::web::vendor_image)
        .service(crate::web::vendor_file)
        .service(stats::report_page)
        .service(stats::report_js)
        .service(crate::tiles::tile)
        .configure(crate::public::routes)
        .service(
            scope("/api/v1")
                .service(auth::login)
                .service(auth::refresh)
                .service(auth::logout)
                .service(auth::me)
                .service(auth::revoke_device)
                .service(reference::get_reference)
                .service(crate::desk::get_desk)
                .service(sync::sync)
                .service(sync::automerge_sync)
                .service(docs::list_docs)
                .service(docs::get_doc)
                .service(docs::doc_history)
                .service(blobs::head_blob)
                .service(blobs::put_blob)
                .service(blobs::get_thumbnail)
                .service(blobs::get_blob)
                .service(stats::patrol_stats)
                .service(stats::issue_stats)
                .service(stats::hotspot_stats)
                .service(stats::issues_geojson)
                .service(stats::patrols_geojson)
                .service(stats::report_svg)
                .service(stats::report_html)
                .service(issues::list_issues)
                .service(issues::get_issue)
                .service(issues::post_event)
                .service(patrols::list_patrols)
                .service(patrols::get_patrol)
                .service(patrols::list_reminders)
                .service(admin_users::list_users)
                .service(admin_users::create_user)
                .service(admin_users::get_user)
                .service(admin_users::update_user)
                .service(admin_users::deactivate_user)
                .service(admin_users::reset_password)
                .service(admin_users::list_devices)
                .service(admin_places::list_divisions)
                .service(admin_places::create_division)
                .service(admin_places::update_division)
                .service(admin_places::list_assets)
                .service(admin_places::create_asset)
                .service(admin_places::update_asset)
                .service(auth_setup::setup_password)
                .service(admin_import::roster_template)
                .service(admin_import::roster_export)
                .service(admin_import::roster_import)
                .service(admin_import::assets_import)
                .service(admin_import::divisions_import)
                .service(admin_import::audit_log)
                .service(admin_import::list_posts)
                .service(admin_import::set_post)
                .service(admin_import::new_setup_code)
                .service(admin_import::revoke_device)
                .service(admin_import::list_people)
                .configure(crate::public::api_routes),
        );
}

/// Mounts the whole API on an actix `App` or scope. The app state (`web::Data<AppState>`) must
/// be registered by the caller.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(JSON_LIMIT_BYTES)
            .error_handler(ApiError::from_json),
    )
    .app_data(web::PayloadConfig::default().limit(PAYLOAD_LIMIT_BYTES))
    .app_data(web::PathConfig::default().error_handler(ApiError::from_path))
    .app_data(web::QueryConfig::default().error_handler(ApiError::from_query));
    routes(&mut ServiceConfig::new(cfg));
    cfg.default_service(web::to(no_route));
}

async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NoRoute(format!(
        "{} {}",
        req.method(),
        req.path()
    )))
}

/// The OpenAPI document of exactly the routes `configure` serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes)
        .split_for_parts();
    api
}
