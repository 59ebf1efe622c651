//! The administration pages of the desk, served at `/admin` for administrators: divisions as a
//! tree, assets on a map, people with their posts and jurisdictions, departments, devices, the
//! imports with their dry runs, setup codes to print, and the audit. Like the dashboard, one
//! page, one script and one stylesheet compiled into the binary, nothing loaded from outside;
//! the script signs in with the same session as the dashboard and decides nothing itself.

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{get, HttpResponse};

const ADMIN_HTML: &str = include_str!("../web/admin.html");
const ADMIN_JS: &str = include_str!("../web/admin.js");
const ADMIN_CSS: &str = include_str!("../web/admin.css");

/// Only this server's own files; blob: for the files the page offers to download.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

fn asset(content_type: &str, body: &'static str) -> HttpResponse {
    crate::web::page_headers(&mut HttpResponse::Ok(), CSP)
        .content_type(content_type)
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(body)
}

/// The administration page.
#[utoipa::path(tag = "dashboard",
    responses((status = 200, description = "HTML page", content_type = "text/html")))]
#[get("/admin")]
pub async fn admin_page() -> HttpResponse {
    asset("text/html; charset=utf-8", ADMIN_HTML)
}

/// The administration page's script.
#[utoipa::path(tag = "dashboard",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript")))]
#[get("/web/admin.js")]
pub async fn admin_js() -> HttpResponse {
    asset("text/javascript; charset=utf-8", ADMIN_JS)
}

/// The administration page's stylesheet.
#[utoipa::path(tag = "dashboard",
    responses((status = 200, description = "CSS", content_type = "text/css")))]
#[get("/web/admin.css")]
pub async fn admin_css() -> HttpResponse {
    asset("text/css; charset=utf-8", ADMIN_CSS)
}
