//! The public's pages: the report page behind each signboard's QR code (`/r/{asset}`), the
//! tracking page (`/t/{code}`), and the print page of a division's signboards (`/signboards`).
//! Phone-sized first, Chinese, compiled into the binary; the same Content-Security-Policy as
//! the dashboard (own scripts and styles only).

use actix_web::http::header::{CacheControl, CacheDirective};
use actix_web::{get, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use sync_core::model::DivisionCode;

use crate::error::ApiError;
use crate::state::AppState;
use crate::web::page_headers;

const REPORT_HTML: &str = include_str!("../web/public/report.html");
const TRACK_HTML: &str = include_str!("../web/public/track.html");
const REPORT_JS: &str = include_str!("../web/public/report.js");
const TRACK_JS: &str = include_str!("../web/public/track.js");
const PUBLIC_CSS: &str = include_str!("../web/public/public.css");
const OFFICE_HTML: &str = include_str!("../web/public/office.html");
const OFFICE_JS: &str = include_str!("../web/public/office.js");

/// The dashboard's policy, plus the phone's camera pictures shown as blob: thumbnails.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

fn page(content_type: &str, body: impl Into<String>) -> HttpResponse {
    page_headers(&mut HttpResponse::Ok(), CSP)
        .content_type(content_type)
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .body(body.into())
}

/// The report page of one asset (the signboard's QR code opens it).
#[utoipa::path(
    tag = "public",
    operation_id = "public_report_page",
    params(("asset" = String, Path, description = "asset id")),
    responses((status = 200, description = "HTML page", content_type = "text/html"))
)]
#[get("/r/{asset}")]
pub async fn report_page(_asset: web::Path<String>) -> HttpResponse {
    page("text/html; charset=utf-8", REPORT_HTML)
}

/// The tracking page of one report.
#[utoipa::path(
    tag = "public",
    params(("code" = String, Path, description = "tracking code")),
    responses((status = 200, description = "HTML page", content_type = "text/html"))
)]
#[get("/t/{code}")]
pub async fn track_page(_code: web::Path<String>) -> HttpResponse {
    page("text/html; charset=utf-8", TRACK_HTML)
}

/// The report page's script.
#[utoipa::path(tag = "public", operation_id = "public_report_js", responses((status = 200, description = "JavaScript", content_type = "text/javascript")))]
#[get("/public/report.js")]
pub async fn report_js() -> HttpResponse {
    page("text/javascript; charset=utf-8", REPORT_JS)
}

/// The tracking page's script.
#[utoipa::path(tag = "public", responses((status = 200, description = "JavaScript", content_type = "text/javascript")))]
#[get("/public/track.js")]
pub async fn track_js() -> HttpResponse {
    page("text/javascript; charset=utf-8", TRACK_JS)
}

/// The office's form for hotline (12369) and letter (信访) reports; it uses the dashboard's
/// session of the same tab.
#[utoipa::path(tag = "public", responses((status = 200, description = "HTML page", content_type = "text/html")))]
#[get("/office/report")]
pub async fn office_page() -> HttpResponse {
    page("text/html; charset=utf-8", OFFICE_HTML)
}

/// The office form's script.
#[utoipa::path(tag = "public", responses((status = 200, description = "JavaScript", content_type = "text/javascript")))]
#[get("/public/office.js")]
pub async fn office_js() -> HttpResponse {
    page("text/javascript; charset=utf-8", OFFICE_JS)
}

/// The public pages' stylesheet.
#[utoipa::path(tag = "public", responses((status = 200, description = "CSS", content_type = "text/css")))]
#[get("/public/public.css")]
pub async fn public_css() -> HttpResponse {
    page("text/css; charset=utf-8", PUBLIC_CSS)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct SignboardsQuery {
    /// A 12-digit division code: the boards of every asset inside it. Without it, the page
    /// lists the divisions to choose from.
    #[param(pattern = "^[0-9]{12}$")]
    pub division: Option<String>,
    /// `a4` (default) or `board`.
    #[param(pattern = "^(a4|board)$")]
    pub sheet: Option<String>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Every signboard of a division on one page, one sheet per printed page, with links to each
/// board's PDF. Administrators print from here (the dashboard links to it).
#[utoipa::path(
    tag = "public",
    params(SignboardsQuery),
    responses(
        (status = 200, description = "HTML page", content_type = "text/html"),
        (status = 400, description = "not a division code"),
    )
)]
#[get("/signboards")]
pub async fn signboards_page(
    state: web::Data<AppState>,
    query: web::Query<SignboardsQuery>,
    _req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let sheet = match q.sheet.as_deref() {
        None | Some("a4") => "a4",
        Some("board") => "board",
        Some(_) => return Err(ApiError::BadRequest("sheet is a4 or board".into())),
    };
    let Some(code) = q.division.clone() else {
        let divisions = web::block(move || state.store.list_divisions()).await??;
        let mut html = String::from("<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>打印公示牌</title><link rel=\"stylesheet\" href=\"/public/public.css\"></head><body><main class=\"sheets\"><div class=\"links\"><h1>打印公示牌</h1><p class=\"muted\">选择区域，打印该区域全部河段、林区、田块的公示牌。</p><ul>");
        for d in divisions {
            html.push_str(&format!(
                "<li><a href=\"/signboards?division={}\">{}</a></li>",
                escape(d.code.as_str()),
                escape(&d.name)
            ));
        }
        html.push_str("</ul></div></main></body></html>");
        return Ok(page("text/html; charset=utf-8", html));
    };
    let division = DivisionCode::new(code).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (name, assets) = web::block(move || -> Result<_, ApiError> {
        let name = state
            .store
            .get_division(&division)?
            .map_or_else(|| division.as_str().to_string(), |d| d.name);
        let mut assets: Vec<_> = state
            .store
            .list_assets()?
            .into_iter()
            .filter(|a| division.contains(&a.division))
            .collect();
        assets.sort_by(|a, b| (a.system.as_str(), &a.id).cmp(&(b.system.as_str(), &b.id)));
        Ok((name, assets))
    })
    .await??;
    let mut html = format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{0}公示牌</title><link rel=\"stylesheet\" href=\"/public/public.css\"></head><body><main class=\"sheets\"><div class=\"noprint links\"><h1>{0}公示牌（共{1}块）</h1><p class=\"muted\">用浏览器的打印功能打印本页即可一次打印全部公示牌（每块一页）；也可逐块下载PDF。</p><ul>",
        escape(&name),
        assets.len()
    );
    for a in &assets {
        let id = escape(&a.id);
        html.push_str(&format!(
            "<li>{} <a href=\"/api/v1/public/signboards/{id}?format=pdf&amp;sheet=a4\">A4 PDF</a> <a href=\"/api/v1/public/signboards/{id}?format=pdf&amp;sheet=board\">展板 PDF</a></li>",
            escape(&a.name)
        ));
    }
    html.push_str("</ul></div>");
    for a in &assets {
        html.push_str(&format!(
            "<img class=\"sheet\" alt=\"{}公示牌\" src=\"/api/v1/public/signboards/{}?sheet={sheet}\">",
            escape(&a.name),
            escape(&a.id)
        ));
    }
    html.push_str("</main></body></html>");
    Ok(page("text/html; charset=utf-8", html))
}
