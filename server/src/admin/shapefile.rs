//! Asset boundaries from a zipped Shapefile (the `.shp`, `.shx`, `.dbf` and usually `.cpg` and
//! `.prj` of one layer in a `.zip`), read with the `shapefile` and `zip` crates into the same
//! features a GeoJSON import gives, so the same rules plan them.
//!
//! Attribute names are matched as in GeoJSON (`名称`, `体系`, `行政区划`, `编号`), with the
//! shorter names a DBF's 10-byte field names allow (`区划`) and English ones (`NAME`, `SYSTEM`,
//! `DIVISION`, `ID`). Text is decoded as the `.cpg` says (GBK/GB2312/GB18030 or UTF-8), else as
//! the DBF's own code page mark. The coordinate system is stated with the import, as for
//! GeoJSON; the `.prj` is not trusted to say it.

use std::io::{Cursor, Read};
use sync_core::api_types::ErrorCode;

use serde_json::{json, Value};
use shapefile::dbase::{self, FieldValue};
use shapefile::{Point, PolygonRing, Shape};
use sync_core::import::assets::Feature;

use crate::error::ApiError;

fn refused(message: impl Into<String>) -> ApiError {
    ApiError::Unprocessable {
        code: ErrorCode::BadImportFile,
        message: message.into(),
    }
}

/// Whether the bytes look like a zip archive (a zipped Shapefile, an XLSX).
pub fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

fn entry(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    ext: &str,
) -> Result<Option<Vec<u8>>, ApiError> {
    let names: Vec<String> = archive
        .file_names()
        .filter_map(Result::ok)
        .map(|n| n.into_owned())
        .filter(|n| n.to_lowercase().ends_with(ext) && !n.starts_with("__MACOSX"))
        .collect();
    match names.as_slice() {
        [] => Ok(None),
        [one] => {
            let mut file = archive
                .by_name(one)
                .map_err(|e| refused(format!("压缩包中的 {one} 无法读取：{e}")))?;
            let mut bytes = Vec::new();
            file.by_ref()
                .take(crate::admin::files::MAX_UNPACKED_BYTES)
                .read_to_end(&mut bytes)
                .map_err(|e| refused(format!("压缩包中的 {one} 无法读取：{e}")))?;
            Ok(Some(bytes))
        }
        _ => Err(refused(format!(
            "压缩包中有多个 {ext} 文件，请每次导入一个图层"
        ))),
    }
}

fn text(record: &dbase::Record, keys: &[&str]) -> String {
    for (name, value) in record.as_ref() {
        let name = name.trim_matches(|c: char| c == '\0' || c.is_whitespace());
        // Some tools write UTF-8 field names beside GBK text; read as GBK they come out
        // garbled, and encoding them back gives the UTF-8 name.
        let (bytes, _, _) = encoding_rs::GBK.encode(name);
        let respelled = String::from_utf8(bytes.into_owned()).ok();
        let matches = |candidate: &str| keys.iter().any(|k| candidate.eq_ignore_ascii_case(k));
        if matches(name) || respelled.as_deref().is_some_and(matches) {
            return match value {
                FieldValue::Character(Some(s)) | FieldValue::Memo(s) => s
                    .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                    .to_owned(),
                FieldValue::Numeric(Some(n)) => n.to_string(),
                FieldValue::Integer(n) => n.to_string(),
                _ => String::new(),
            };
        }
    }
    String::new()
}

fn positions(points: &[Point]) -> Vec<[f64; 2]> {
    points.iter().map(|p| [p.x, p.y]).collect()
}

/// The shape as a GeoJSON geometry; several parts become a multi-geometry, which the import
/// refuses with its reason.
fn geometry(shape: &Shape) -> Option<Value> {
    match shape {
        Shape::Polyline(line) => {
            let parts: Vec<Vec<[f64; 2]>> = line.parts().iter().map(|p| positions(p)).collect();
            Some(if parts.len() == 1 {
                json!({"type": "LineString", "coordinates": parts[0]})
            } else {
                json!({"type": "MultiLineString", "coordinates": parts})
            })
        }
        Shape::Polygon(polygon) => {
            let mut polygons: Vec<Vec<Vec<[f64; 2]>>> = Vec::new();
            for ring in polygon.rings() {
                match ring {
                    PolygonRing::Outer(points) => polygons.push(vec![positions(points)]),
                    PolygonRing::Inner(points) => match polygons.last_mut() {
                        Some(last) => last.push(positions(points)),
                        None => polygons.push(vec![positions(points)]),
                    },
                }
            }
            Some(if polygons.len() == 1 {
                json!({"type": "Polygon", "coordinates": polygons[0]})
            } else {
                json!({"type": "MultiPolygon", "coordinates": polygons})
            })
        }
        Shape::NullShape => None,
        other => Some(json!({"type": other.shapetype().to_string(), "coordinates": []})),
    }
}

/// The features of a zipped Shapefile layer.
pub fn features(bytes: &[u8]) -> Result<Vec<Feature>, ApiError> {
    crate::admin::files::check_unpacked(bytes, "Shapefile 压缩包")?;
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| refused(format!("不是 zip 压缩包：{e}")))?;
    let shp = entry(&mut archive, ".shp")?.ok_or_else(|| refused("压缩包中没有 .shp 文件"))?;
    let dbf = entry(&mut archive, ".dbf")?
        .ok_or_else(|| refused("压缩包中没有 .dbf 属性文件（需要名称、体系、行政区划）"))?;
    let cpg =
        entry(&mut archive, ".cpg")?.map(|b| String::from_utf8_lossy(&b).trim().to_uppercase());
    let mut builder = dbase::ReaderBuilder::new();
    match cpg.as_deref() {
        Some(c)
            if ["GBK", "936", "CP936", "GB2312", "GB18030"]
                .iter()
                .any(|g| c.contains(g)) =>
        {
            builder = builder.with_encoding(dbase::encoding::EncodingRs::from(encoding_rs::GBK));
        }
        Some(c) if c.contains("UTF") => {
            builder = builder.with_encoding(dbase::encoding::EncodingRs::from(encoding_rs::UTF_8));
        }
        _ => {}
    }
    let table = builder
        .build(Cursor::new(dbf))
        .map_err(|e| refused(format!(".dbf 无法读取：{e}")))?;
    let shapes = shapefile::ShapeReader::new(Cursor::new(shp))
        .map_err(|e| refused(format!(".shp 无法读取：{e}")))?;
    let mut reader = shapefile::Reader::new(shapes, table);
    reader
        .iter_shapes_and_records()
        .map(|item| {
            let (shape, record) =
                item.map_err(|e| refused(format!("Shapefile 要素无法读取：{e}")))?;
            let id = text(&record, &["编号", "ID"]);
            Ok(Feature {
                id: (!id.is_empty()).then_some(id),
                name: text(&record, &["名称", "NAME"]),
                system: text(&record, &["体系", "SYSTEM"]),
                division: text(&record, &["行政区划", "区划", "DIVISION"]),
                geometry: geometry(&shape),
            })
        })
        .collect()
}
