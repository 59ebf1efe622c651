//! The supervisor dashboard, served at `/`: one HTML page, one script and one stylesheet,
//! compiled into the binary (`include_str!`) so a release build serves it with no files beside
//! it and no internet — no CDN, no web fonts. Maps use Leaflet, vendored under `vendor/` (the
//! pinned npm package's files, checked by `vendor/vendor.sh` and by a test against
//! `vendor/SHA256SUMS`), and draw the assets' GeoJSON over a basemap only when `--tile-url`
//! names one.
//!
//! The page talks to the JSON API with the bearer token it got at login; it never uses cookies,
//! so cross-site requests cannot act for a supervisor. The Content-Security-Policy allows only
//! this server's own script and style, so injected markup could not run even if some text were
//! ever rendered as HTML (the script renders all text as text). Nothing here decides anything:
//! which buttons appear comes from the API's `allowed_actions`.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{get, web, HttpResponse, HttpResponseBuilder};

use crate::state::AppState;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

/// Only this server's own files; blob: for photos fetched with the token. `{tiles}` is the
/// basemap's origin when one is configured.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:{tiles}; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

fn csp(state: Option<&AppState>) -> String {
    let tiles = state
        .and_then(|s| s.desk.tile_url.as_deref())
        .and_then(crate::desk::tile_source)
        .map(|origin| format!(" {origin}"))
        .unwrap_or_default();
    CSP.replace("{tiles}", &tiles)
}

/// Leaflet, its stylesheet and the layer-control icons, with the license they ship under.
const VENDOR: [(&str, &str, &[u8]); 5] = [
    (
        "leaflet.js",
        "text/javascript; charset=utf-8",
        include_bytes!("vendor/leaflet.js"),
    ),
    (
        "leaflet.css",
        "text/css; charset=utf-8",
        include_bytes!("vendor/leaflet.css"),
    ),
    (
        "images/layers.png",
        "image/png",
        include_bytes!("vendor/images/layers.png"),
    ),
    (
        "images/layers-2x.png",
        "image/png",
        include_bytes!("vendor/images/layers-2x.png"),
    ),
    (
        "LICENSE.leaflet",
        "text/plain; charset=utf-8",
        include_bytes!("vendor/LICENSE.leaflet"),
    ),
];

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

fn asset(
    content_type: &str,
    body: &'static [u8],
    cache: bool,
    state: Option<&AppState>,
) -> HttpResponse {
    let directives = if cache {
        vec![CacheDirective::Private, CacheDirective::MaxAge(300)]
    } else {
        vec![CacheDirective::NoCache]
    };
    page_headers(&mut HttpResponse::Ok(), &csp(state))
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
pub async fn index(state: web::Data<AppState>) -> HttpResponse {
    asset(
        "text/html; charset=utf-8",
        INDEX_HTML.as_bytes(),
        false,
        Some(&state),
    )
}

/// The dashboard's script.
#[utoipa::path(
    tag = "dashboard",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript"))
)]
#[get("/web/app.js")]
pub async fn app_js() -> HttpResponse {
    asset(
        "text/javascript; charset=utf-8",
        APP_JS.as_bytes(),
        true,
        None,
    )
}

/// The dashboard's stylesheet.
#[utoipa::path(
    tag = "dashboard",
    responses((status = 200, description = "CSS", content_type = "text/css"))
)]
#[get("/web/app.css")]
pub async fn app_css() -> HttpResponse {
    asset("text/css; charset=utf-8", APP_CSS.as_bytes(), true, None)
}

fn vendored(name: &str) -> Result<HttpResponse, crate::error::ApiError> {
    let (_, content_type, body) = VENDOR
        .iter()
        .find(|(file, _, _)| *file == name)
        .ok_or_else(|| {
            crate::error::ApiError::NotFound(format!("no file {name} in the map library"))
        })?;
    Ok(asset(content_type, body, true, None))
}

/// The vendored map library's files: `leaflet.js`, `leaflet.css`, `LICENSE.leaflet`.
#[utoipa::path(
    tag = "dashboard",
    params(("file" = String, Path, description = "leaflet.js, leaflet.css or LICENSE.leaflet")),
    responses((status = 200, description = "the file"), (status = 404, description = "no such file"))
)]
#[get("/web/vendor/{file}")]
pub async fn vendor_file(file: web::Path<String>) -> Result<HttpResponse, crate::error::ApiError> {
    vendored(&file)
}

/// The map library's layer-control icons, where its stylesheet looks for them.
#[utoipa::path(
    tag = "dashboard",
    params(("file" = String, Path, description = "layers.png or layers-2x.png")),
    responses((status = 200, description = "PNG", content_type = "image/png"), (status = 404, description = "no such file"))
)]
#[get("/web/vendor/images/{file}")]
pub async fn vendor_image(file: web::Path<String>) -> Result<HttpResponse, crate::error::ApiError> {
    vendored(&format!("images/{file}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// The served map library is the pinned npm package's, file for file: `vendor/vendor.sh`
    /// fetches the package and writes SHA256SUMS from it; this checks what the binary serves.
    #[test]
    fn vendored_files_match_their_recorded_hashes() {
        let sums = include_str!("vendor/SHA256SUMS");
        assert_eq!(sums.lines().count(), VENDOR.len());
        for line in sums.lines() {
            let (hash, name) = line.split_once("  ").expect("sha256sum format");
            let (_, _, body) = VENDOR.iter().find(|(n, _, _)| *n == name).expect(name);
            assert_eq!(hex::encode(Sha256::digest(body)), hash, "{name}");
        }
        let lock = include_str!("vendor/package-lock.json");
        let version = lock
            .split("\"node_modules/leaflet\"")
            .nth(1)
            .expect("leaflet in the lock");
        assert!(version.contains("\"version\": \"1.9.4\""));
        assert!(std::str::from_utf8(VENDOR[0].2)
            .unwrap()
            .contains("Leaflet 1.9.4"));
    }
}
