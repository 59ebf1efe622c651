//! A basemap for office networks without the internet: the server serves raster tiles (PNG,
//! JPEG or WebP) from a local PMTiles archive (`--tiles FILE`) at `/tiles/{z}/{x}/{y}`, and the
//! desk's maps use that route as their tile layer.
//!
//! The archive is memory-mapped; it must not be replaced or truncated while the server runs
//! (copy a new one beside it and restart). A tile the archive does not hold is answered
//! 204 No Content (nothing to draw there), as tile servers do for the sea or the edge of a
//! district; a position that is not a tile is 400 with a JSON error.

use std::path::{Path, PathBuf};

use actix_web::http::header;
use actix_web::{get, web, HttpResponse};
use pmtiles::{AsyncPmTilesReader, MmapBackend, TileCoord, TileType};
use tokio::sync::OnceCell;

use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

type Reader = AsyncPmTilesReader<MmapBackend>;

/// The local tile archive, opened at the first request (or at start-up by [`LocalTiles::open`]).
pub struct LocalTiles {
    path: PathBuf,
    reader: OnceCell<Reader>,
}

impl std::fmt::Debug for LocalTiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTiles")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What the desk's map needs to know of the archive.
#[derive(Debug, Clone, Copy)]
pub struct TileInfo {
    pub min_zoom: u8,
    pub max_zoom: u8,
}

impl LocalTiles {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            reader: OnceCell::new(),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the archive once and checks that it holds raster tiles a browser can draw.
    pub async fn open(&self) -> Result<TileInfo, String> {
        let reader = self
            .reader
            .get_or_try_init(|| async {
                let reader = Reader::new_with_path(&self.path)
                    .await
                    .map_err(|e| format!("{}: not a PMTiles archive: {e}", self.path.display()))?;
                if content_type(reader.get_header().tile_type).is_none() {
                    return Err(format!(
                        "{}: holds {:?} tiles; the desk's maps draw raster tiles (PNG, JPEG or WebP)",
                        self.path.display(),
                        reader.get_header().tile_type
                    ));
                }
                Ok(reader)
            })
            .await?;
        let h = reader.get_header();
        Ok(TileInfo {
            min_zoom: h.min_zoom,
            max_zoom: h.max_zoom,
        })
    }
}

fn content_type(tile_type: TileType) -> Option<&'static str> {
    match tile_type {
        TileType::Png => Some("image/png"),
        TileType::Jpeg => Some("image/jpeg"),
        TileType::Webp => Some("image/webp"),
        _ => None,
    }
}

/// Parses `z`, `x`, `y` of a tile address; 400 for anything that is not a tile.
fn coord(z: &str, x: &str, y: &str) -> Result<TileCoord, ApiError> {
    let bad = || {
        ApiError::BadRequest(format!(
            "{z}/{x}/{y} is not a tile: z 0–31, x and y below 2^z"
        ))
    };
    let y = y.strip_suffix(".png").unwrap_or(y);
    let (z, x, y) = (
        z.parse::<u8>().map_err(|_| bad())?,
        x.parse::<u32>().map_err(|_| bad())?,
        y.parse::<u32>().map_err(|_| bad())?,
    );
    TileCoord::new(z, x, y).map_err(|_| bad())
}

/// One basemap tile from the local archive (`--tiles`), for the desk's maps. No sign-in: the
/// basemap holds nothing of the district's records, and a map's image requests carry no token.
#[utoipa::path(
    tag = "desk",
    params(
        ("z" = u8, Path, description = "zoom 0–31"),
        ("x" = u32, Path, description = "column, below 2^z"),
        ("y" = u32, Path, description = "row, below 2^z (a `.png` suffix is accepted)"),
    ),
    responses(
        (status = 200, description = "the tile as stored (PNG, JPEG or WebP)"),
        (status = 204, description = "the archive holds no tile there"),
        (status = 400, body = ErrorBody, description = "not a tile address"),
        (status = 404, body = ErrorBody, description = "no local basemap is configured"),
    )
)]
#[get("/tiles/{z}/{x}/{y}")]
pub async fn tile(
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (z, x, y) = path.into_inner();
    let Some(tiles) = state.tiles.as_ref() else {
        return Err(ApiError::NotFound(
            "no local basemap is configured (start the server with --tiles FILE)".into(),
        ));
    };
    let coord = coord(&z, &x, &y)?;
    tiles.open().await.map_err(ApiError::Internal)?;
    let reader = tiles
        .reader
        .get()
        .ok_or_else(|| ApiError::Internal("the tile archive is not open".into()))?;
    let kind = content_type(reader.get_header().tile_type).unwrap_or("application/octet-stream");
    let bytes = reader
        .get_tile_decompressed(coord)
        .await
        .map_err(|e| ApiError::Internal(format!("{}: {e}", tiles.path.display())))?;
    let mut reply = match bytes {
        Some(_) => HttpResponse::Ok(),
        None => HttpResponse::NoContent(),
    };
    reply.insert_header((header::CACHE_CONTROL, "public, max-age=86400"));
    Ok(match bytes {
        Some(bytes) => reply.content_type(kind).body(bytes),
        None => reply.finish(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn tile_addresses_are_checked() {
        assert!(super::coord("3", "7", "7").is_ok());
        assert!(super::coord("3", "7", "7.png").is_ok());
        assert!(super::coord("3", "8", "0").is_err());
        assert!(super::coord("32", "0", "0").is_err());
        assert!(super::coord("a", "0", "0").is_err());
        assert!(super::coord("1", "-1", "0").is_err());
    }
}
