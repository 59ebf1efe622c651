//! The public signboard (公示牌) of an asset, laid out as SVG and turned into PDF for printing:
//! the asset's name and place, its chiefs at every level with their posts, their duties, the
//! supervision phone number and a QR code that opens the report page.
//!
//! The SVG is drawn in millimetres on one of two sheets: A4 portrait for a notice on a wall or
//! a post, and the common 3:2 landscape board (1500 × 1000 mm) for a river bank or a field's
//! edge. The PDF embeds the subset of the CJK font it uses, found among the fonts installed on
//! the server (Noto Sans CJK: Debian `fonts-noto-cjk`); without one the PDF is refused with
//! `signboard_font_missing` and the SVG still serves.

use std::sync::{Arc, OnceLock};

use qrcode::{Color, EcLevel, QrCode};
use sync_core::model::{Asset, Level, Role, System, User};

/// The sheet a board is printed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sheet {
    A4,
    Board,
}

impl Sheet {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "a4" => Some(Sheet::A4),
            "board" => Some(Sheet::Board),
            _ => None,
        }
    }
    /// Width and height in millimetres.
    fn size(self) -> (f64, f64) {
        match self {
            Sheet::A4 => (210.0, 297.0),
            Sheet::Board => (1500.0, 1000.0),
        }
    }
}

/// One chief named on a board.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct BoardChief {
    /// 区级河长, 街道级林长 …
    pub level: String,
    /// The post as the account names it (小寨村河长 …).
    pub post: String,
    pub name: String,
}

/// Everything printed on a board.
#[derive(Debug, Clone)]
pub struct Board {
    pub asset: Asset,
    pub division_name: String,
    pub chiefs: Vec<BoardChief>,
    pub phone: String,
    pub link: String,
}

fn level_title(level: Level, system: System) -> String {
    let level = match level {
        Level::District => "区级",
        Level::Subdistrict => "街道级",
        Level::Village => "村级",
    };
    format!("{level}{}", system.chief_title())
}

/// The chiefs responsible for `asset`, highest level first: those whose jurisdiction names it
/// and those whose division contains it.
pub fn chiefs_of(asset: &Asset, users: &[User]) -> Vec<BoardChief> {
    let mut found: Vec<(Level, BoardChief)> = users
        .iter()
        .filter(|u| u.active)
        .filter_map(|u| match &u.role {
            Role::Chief {
                system,
                level,
                jurisdiction,
            } if *system == asset.system
                && (jurisdiction.assets.contains(&asset.id)
                    || (jurisdiction.assets.is_empty()
                        && jurisdiction.division.contains(&asset.division))) =>
            {
                let (post, name) = match u.display_name.rsplit_once(' ') {
                    Some((post, name)) => (post.to_string(), name.to_string()),
                    None => (u.display_name.clone(), String::new()),
                };
                Some((
                    *level,
                    BoardChief {
                        level: level_title(*level, *system),
                        post,
                        name,
                    },
                ))
            }
            _ => None,
        })
        .collect();
    found.sort_by_key(|(level, c)| (Level::ALL.iter().position(|l| l == level), c.name.clone()));
    found.into_iter().map(|(_, c)| c).collect()
}

/// What the chiefs of a system answer for, as the boards print it.
pub fn duties(system: System) -> &'static str {
    match system {
        System::River => "负责河道巡查，组织清理河面漂浮物、岸边垃圾，制止乱占、乱采、乱堆、乱建和非法排污，督促问题整改到位。",
        System::Forest => "负责林区巡护，做好森林防火和病虫害防治，制止乱砍滥伐、乱占林地、乱捕滥猎，督促问题整改到位。",
        System::Field => "负责耕地巡查，制止乱占耕地建房、挖土取土、堆放垃圾和撂荒，保护永久基本农田，督促问题整改到位。",
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The QR code of `link` as one SVG path of unit squares, with its width in modules.
fn qr_path(link: &str) -> (String, usize) {
    let code = QrCode::with_error_correction_level(link.as_bytes(), EcLevel::M)
        .or_else(|_| QrCode::new(link.as_bytes()))
        .expect("a report link fits in a QR code");
    let width = code.width();
    // One rectangle per horizontal run of dark modules, each a hair taller and wider than its
    // modules, so no light seam shows between neighbours once rasterized or printed.
    let colors = code.to_colors();
    let mut d = String::new();
    for y in 0..width {
        let mut x = 0;
        while x < width {
            if colors[y * width + x] != Color::Dark {
                x += 1;
                continue;
            }
            let start = x;
            while x < width && colors[y * width + x] == Color::Dark {
                x += 1;
            }
            d.push_str(&format!("M{start} {y}h{}v1.04h-{}z", x - start, x - start));
        }
    }
    (d, width)
}

/// Wraps `text` into lines of at most `per_line` characters.
fn wrap(text: &str, per_line: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(per_line.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

const FONT: &str = "Noto Sans CJK SC, Noto Sans SC, Source Han Sans SC, sans-serif";

/// The board as an SVG document in millimetres.
pub fn svg(board: &Board, sheet: Sheet) -> String {
    let (w, h) = sheet.size();
    // Laid out on a grid of units scaled to the sheet: A4 is 210 × 297 units with the QR code
    // at the foot; the board is 300 × 200 with the QR code in a column on the right.
    let (gw, gh): (f64, f64) = match sheet {
        Sheet::A4 => (210.0, 297.0),
        Sheet::Board => (300.0, 200.0),
    };
    let scale = w / gw;
    let inner_h = gh;
    let system = board.asset.system;
    let title = format!("{}制公示牌", system.chief_title());
    let (qr, modules) = qr_path(&board.link);
    let mut out = String::new();
    out.push_str(&format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}mm" height="{h}mm" viewBox="0 0 {w} {h}" font-family="{FONT}">"#
    ));
    out.push_str(&format!(r#"<g transform="scale({scale})">"#));
    out.push_str(&format!(
        r##"<rect x="0" y="0" width="{gw}" height="{inner_h}" fill="#ffffff"/><rect x="4" y="4" width="{}" height="{}" fill="none" stroke="#1d4e89" stroke-width="1.5"/>"##,
        gw - 8.0,
        inner_h - 8.0
    ));
    out.push_str(&format!(
        r##"<rect x="4" y="4" width="{}" height="24" fill="#1d4e89"/><text x="{}" y="21" font-size="13" fill="#ffffff" text-anchor="middle" font-weight="bold">{}</text>"##,
        gw - 8.0,
        gw / 2.0,
        escape(&title)
    ));
    let mut y = 40.0;
    out.push_str(&format!(
        r#"<text x="12" y="{y}" font-size="9" font-weight="bold">{}</text>"#,
        escape(&board.asset.name)
    ));
    y += 7.0;
    out.push_str(&format!(
        r##"<text x="12" y="{y}" font-size="4.5" fill="#444444">所在区域：{}</text>"##,
        escape(&board.division_name)
    ));
    y += 10.0;
    out.push_str(&format!(
        r##"<text x="12" y="{y}" font-size="5.5" font-weight="bold" fill="#1d4e89">{}</text>"##,
        escape(&format!("{}名单", system.chief_title()))
    ));
    y += 3.0;
    for chief in &board.chiefs {
        y += 8.0;
        out.push_str(&format!(
            r##"<text x="14" y="{y}" font-size="4.5" fill="#444444">{}</text><text x="46" y="{y}" font-size="4.5">{}</text><text x="150" y="{y}" font-size="5" font-weight="bold">{}</text>"##,
            escape(&chief.level),
            escape(&chief.post),
            escape(&chief.name)
        ));
    }
    if board.chiefs.is_empty() {
        y += 8.0;
        out.push_str(&format!(
            r##"<text x="14" y="{y}" font-size="4.5" fill="#888888">（待公布）</text>"##
        ));
    }
    y += 12.0;
    out.push_str(&format!(
        r##"<text x="12" y="{y}" font-size="5.5" font-weight="bold" fill="#1d4e89">{}职责</text>"##,
        system.chief_title()
    ));
    for line in wrap(duties(system), 38) {
        y += 6.5;
        out.push_str(&format!(
            r#"<text x="14" y="{y}" font-size="4.5">{}</text>"#,
            escape(&line)
        ));
    }
    // The QR code and the phone number: at the foot of an A4 sheet, on the right of a board.
    let (qr_x, qr_y, qr_size, tx, ty) = match sheet {
        Sheet::A4 => {
            let qr_y = (inner_h - 56.0 - 22.0).max(y + 8.0);
            (12.0, qr_y, 56.0, 76.0, qr_y)
        }
        Sheet::Board => (200.0, 36.0, 84.0, 200.0, 128.0),
    };
    let unit = qr_size / (modules as f64 + 8.0);
    out.push_str(&format!(
        r##"<rect x="{qr_x}" y="{qr_y}" width="{qr_size}" height="{qr_size}" fill="#ffffff"/><g transform="translate({} {}) scale({unit})"><path d="{qr}" fill="#000000"/></g>"##,
        qr_x + 4.0 * unit,
        qr_y + 4.0 * unit
    ));
    out.push_str(&format!(
        r##"<text x="{tx}" y="{}" font-size="5.5" font-weight="bold">发现问题请扫码举报</text><text x="{tx}" y="{}" font-size="4.2" fill="#444444">无需注册，可拍照、定位，并查询处理结果</text><text x="{tx}" y="{}" font-size="5" fill="#1d4e89">监督电话：{}</text><text x="{tx}" y="{}" font-size="3.6" fill="#444444">生态环境问题也可拨打 12369 举报</text>"##,
        ty + 12.0,
        ty + 20.0,
        ty + 32.0,
        escape(&board.phone),
        ty + 40.0
    ));
    out.push_str("</g></svg>");
    out
}

/// The fonts the PDF may embed, loaded once from the fonts installed on the server.
fn fonts() -> Arc<usvg::fontdb::Database> {
    static FONTS: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    FONTS
        .get_or_init(|| {
            let mut db = usvg::fontdb::Database::new();
            db.load_system_fonts();
            db.set_sans_serif_family("Noto Sans CJK SC");
            Arc::new(db)
        })
        .clone()
}

/// Whether a CJK font for the board's text is installed.
pub fn has_cjk_font() -> bool {
    fonts().faces().any(|f| {
        f.families
            .iter()
            .any(|(name, _)| name.contains("CJK") || name.contains("Source Han"))
    })
}

#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("no CJK font is installed on the server (install fonts-noto-cjk)")]
    NoFont,
    #[error("laying out the signboard: {0}")]
    Layout(String),
}

/// The board as a one-page PDF with the used glyphs of the CJK font embedded.
pub fn pdf(board: &Board, sheet: Sheet) -> Result<Vec<u8>, PdfError> {
    if !has_cjk_font() {
        return Err(PdfError::NoFont);
    }
    let options = usvg::Options {
        fontdb: fonts(),
        ..usvg::Options::default()
    };
    let tree = usvg::Tree::from_str(&svg(board, sheet), &options)
        .map_err(|e| PdfError::Layout(e.to_string()))?;
    svg2pdf::to_pdf(
        &tree,
        svg2pdf::ConversionOptions::default(),
        // usvg reads millimetres at 96 px per inch; the page keeps the sheet's real size.
        svg2pdf::PageOptions { dpi: 96.0 },
    )
    .map_err(|e| PdfError::Layout(e.to_string()))
}
