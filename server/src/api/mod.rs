//! The HTTP surface: one `routes` function registers every handler through utoipa-actix-web, so
//! the same call both serves a route and documents it in `/openapi.json` — a handler cannot be
//! served undocumented. `configure` adds the body limits and JSON error handlers around it.
//!
//! The schema is exact: what the shared layers answer on every route (401 from the `Caller`
//! extractor, 400/408/413/415 from the parameter and body extractors) is added to each
//! operation by [`SharedAnswers`], a path served with another method answers 405 with `Allow`
//! (from the same document), and `.ci/schemathesis` checks the whole against the demo server.
//!
//! Handlers live in `auth` (login, refresh, me, device revocation), `admin_users` and
//! `admin_places` (administration), `reference` (device reference data), `sync` (batch and
//! automerge sync), `docs` (document listing, views, history) and `ops` (health, metrics,
//! OpenAPI). They stay thin: authorization decisions and storage calls, nothing else.

pub mod admin_import;
pub mod admin_people;
pub mod admin_places;
pub mod admin_rules;
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

use std::sync::OnceLock;

use actix_web::{web, App, HttpRequest, HttpResponse};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::{scope, AppExt};

use crate::error::ApiError;

/// Schemas of query parameters whose accepted values the handler checks itself (an enum or a
/// pattern, taken from the domain's own lists), for `#[param(schema_with = …)]`.
pub(crate) mod schema {
    use sync_core::model::{Level, Severity, System};
    use sync_core::workflow::Status;
    use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

    fn one_of<'a>(values: impl IntoIterator<Item = &'a str>, empty_too: bool) -> Object {
        let mut values: Vec<&str> = values.into_iter().collect();
        if empty_too {
            values.insert(0, "");
        }
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values))
            .build()
    }

    fn matching(pattern: &str) -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .build()
    }

    pub fn system() -> Object {
        one_of(System::ALL.map(System::as_str), false)
    }

    /// Statistics read an empty filter as no filter.
    pub fn system_or_empty() -> Object {
        one_of(System::ALL.map(System::as_str), true)
    }

    pub fn level_or_empty() -> Object {
        one_of(Level::ALL.map(Level::as_str), true)
    }

    pub fn severity() -> Object {
        one_of(Severity::ALL.map(Severity::as_str), false)
    }

    pub fn division() -> Object {
        matching("^[0-9]{12}$")
    }

    pub fn division_or_empty() -> Object {
        matching("^([0-9]{12})?$")
    }

    /// A comma-separated list of statuses; blanks around and between them are skipped.
    pub fn statuses() -> Object {
        let one = Status::ALL.map(Status::as_str).join("|");
        matching(&format!(r"^\s*({one})?\s*(,\s*({one})?\s*)*$"))
    }

    pub fn doc_kind() -> Object {
        one_of(["issue", "patrol"], false)
    }

    pub fn format() -> Object {
        one_of(["json", "csv", "xlsx"], false)
    }

    pub fn chart() -> Object {
        one_of(["compliance", "weekly", "overdue"], false)
    }

    /// A day, `YYYY-MM-DD`.
    pub fn day() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Date,
            )))
            .pattern(Some("^[0-9]{4}-[0-9]{2}-[0-9]{2}$"))
            .build()
    }
}

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

/// Adds to every operation the answers the layers shared by all routes give, so that no
/// handler's annotation can forget them: 401 wherever a bearer token is required (the `Caller`
/// extractor), 400 wherever a parameter or body is read (the `Path`, `Query` and `Json`
/// extractors' error handlers), and for a request body 408 (it arrived too slowly, see
/// `crate::shed`), 413 (over the limit) and, for JSON, 415 (not `application/json`). An
/// operation's own description of a status wins.
struct SharedAnswers;

impl Modify for SharedAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::path::Operation;
        use utoipa::openapi::{Content, Ref, RefOr, Response};

        fn add(operation: &mut Operation, status: u16, description: &str) {
            operation
                .responses
                .responses
                .entry(status.to_string())
                .or_insert_with(|| {
                    let mut response = Response::new(description);
                    response.content.insert(
                        "application/json".into(),
                        RefOr::T(Content::new(Some(Ref::from_schema_name("ErrorBody")))),
                    );
                    RefOr::T(response)
                });
        }

        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
            ];
            for operation in operations.into_iter().flatten() {
                // OpenAPI requires a description of every response; the status's own name
                // stands in where the annotation gives none.
                for (status, response) in operation.responses.responses.iter_mut() {
                    if let RefOr::T(response) = response {
                        if response.description.is_empty() {
                            response.description = status
                                .parse::<u16>()
                                .ok()
                                .and_then(|s| actix_web::http::StatusCode::from_u16(s).ok())
                                .and_then(|s| s.canonical_reason())
                                .unwrap_or("answer")
                                .to_owned();
                        }
                    }
                }
                if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    add(
                        operation,
                        401,
                        "no valid access token: missing_token, invalid_token, token_expired, \
                         device_revoked, user_inactive, …",
                    );
                }
                let has_parameters = operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let body_types: Vec<String> = match &operation.request_body {
                    Some(RefOr::T(body)) => body.content.keys().cloned().collect(),
                    _ => Vec::new(),
                };
                if has_parameters || !body_types.is_empty() {
                    add(
                        operation,
                        400,
                        "a parameter or body the endpoint cannot read",
                    );
                }
                if !body_types.is_empty() {
                    add(
                        operation,
                        408,
                        "the body arrived too slowly (body_too_slow)",
                    );
                    add(operation, 413, "the body is larger than the endpoint takes");
                }
                if body_types.iter().any(|t| t == "application/json") {
                    add(operation, 415, "the body is not application/json");
                }
            }
        }
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
                .service(admin_people::audit_log)
                .service(admin_people::list_posts)
                .service(admin_people::set_post)
                .service(admin_people::new_setup_code)
                .service(admin_people::revoke_device)
                .service(admin_people::list_people)
                .configure(admin_rules::routes)
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

/// A request no route takes: 405 with `Allow` when the path is served with other methods,
/// else 404 `no_route`.
async fn no_route(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let allowed = allowed_methods(req.path());
    if allowed.is_empty() {
        return Err(ApiError::NoRoute(format!(
            "{} {}",
            req.method(),
            req.path()
        )));
    }
    Err(ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        allowed,
    })
}

/// Every documented path template with the methods it is served with; the document is built
/// from the same `routes`, so this is what the server serves.
fn served() -> &'static [(Vec<String>, Vec<String>)] {
    static SERVED: OnceLock<Vec<(Vec<String>, Vec<String>)>> = OnceLock::new();
    SERVED.get_or_init(|| {
        openapi()
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let segments = path.split('/').map(str::to_owned).collect();
                let methods = [
                    ("GET", item.get.is_some()),
                    ("HEAD", item.head.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ]
                .into_iter()
                .filter(|(_, served)| *served)
                .map(|(method, _)| method.to_owned())
                .collect();
                (segments, methods)
            })
            .collect()
    })
}

/// The methods `path` is served with; empty when no route has its shape. A `{name}` segment of
/// a template takes any one non-empty segment, as actix's router does.
fn allowed_methods(path: &str) -> Vec<String> {
    let asked: Vec<&str> = path.split('/').collect();
    let mut allowed: Vec<String> = Vec::new();
    for (template, methods) in served() {
        let fits = template.len() == asked.len()
            && template.iter().zip(&asked).all(|(t, a)| {
                if t.starts_with('{') && t.ends_with('}') {
                    !a.is_empty()
                } else {
                    t == a
                }
            });
        if fits {
            for method in methods {
                if !allowed.contains(method) {
                    allowed.push(method.clone());
                }
            }
        }
    }
    allowed
}

/// The OpenAPI document of exactly the routes `configure` serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(routes)
        .split_for_parts();
    // After the routes are in: the shared answers are added to every operation.
    SharedAnswers.modify(&mut api);
    api
}

/// Reads a count (`limit`, `offset`) from a query string whatever its size: a number past what
/// fits is as large as fits, and every count is clamped to its own bound afterwards, so an
/// integer the schema allows is never refused. Anything but digits is a 400.
pub fn saturating_count<'de, D>(deserializer: D) -> Result<Option<usize>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::{Deserialize, Error};
    let text: Option<String> = Option::deserialize(deserializer)?;
    text.map(|t| {
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            Ok(t.parse::<usize>().unwrap_or(usize::MAX))
        } else {
            Err(D::Error::custom(format!("{t:?} is not a count")))
        }
    })
    .transpose()
}
