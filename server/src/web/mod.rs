//! The supervisor dashboard, served at `/`: one HTML page, one script and one stylesheet,
//! compiled into the binary (`include_str!`) so a release build serves it with no files beside
//! it and no internet — no CDN, no web fonts, no map tiles (maps are drawn as SVG from the
//! assets' GeoJSON).
//!
//! The page talks to the JSON API with the bearer token it got at login; it never uses cookies,
//! so cross-site requests cannot act for a supervisor. The Content-Security-Policy allows only
//! this server's own script and style, so injected markup could not run even if some text were
//! ever rendered as HTML (the script renders all text as text). Nothing here decides anything:
//! which buttons appear comes from the API's `allowed_actions`.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{get, HttpResponse, HttpResponseBuilder};

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

/// Only this server's own files; blob: for photos fetched with the token.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// The headers of everything a browser may render from this server (the dashboard, the
/// monthly report page and document, charts): `csp`, which must forbid framing
/// (`frame-ancestors 'none'`); no framing for browsers that predate it either, so no other
/// site can overlay a supervisor's page and steer his clicks; served as the declared type only;
/// and no addresses (which name records) sent on to other sites.
pub fn page_headers<'a>(
    response: &'a mut HttpResponseBuilder,
    csp: &str,
) -> &'a mut HttpResponseBuilder {
    debug_assert!(csp.contains("frame-ancestors 'none'"));
    response
        .insert_header((header::CONTENT_SECURITY_POLICY, csp.to_owned()))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
}

fn asset(content_type: &str, body: &'static str, cache: bool) -> HttpResponse {
    let directives = if cache {
        vec![CacheDirective::Private, CacheDirective::MaxAge(300)]
    } else {
        vec![CacheDirective::NoCache]
    };
    page_headers(&mut HttpResponse::Ok(), CSP)
        .content_type(content_type)
        .insert_header(CacheControl(directives))
        .body(body)
}

/// The dashboard page (login, issue board, issue page, map, patrols, reminders).
#[utoipa::path(
    tag = "dashboard",
    responses((status = 200, description = "HTML page", content_type = "text/html"))
)]
#[get("/")]
pub async fn index() -> HttpResponse {
    asset("text/html; charset=utf-8", INDEX_HTML, false)
}

/// The dashboard's script.
#[utoipa::path(
    tag = "dashboard",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript"))
)]
#[get("/web/app.js")]
pub async fn app_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", APP_JS, true)
}

/// The dashboard's stylesheet.
#[utoipa::path(
    tag = "dashboard",
    responses((status = 200, description = "CSS", content_type = "text/css"))
)]
#[get("/web/app.css")]
pub async fn app_css() -> HttpResponse {
    asset("text/css; charset=utf-8", APP_CSS, true)
}
