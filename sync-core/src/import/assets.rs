//! Asset boundaries from GeoJSON: a `FeatureCollection` whose features carry `名称` (name),
//! `体系` (河长/林长/田长), `行政区划` (division name or code) and optionally `编号` (id), with a
//! `LineString` (river segment) or `Polygon` (forest area, farmland grid) geometry — a
//! single-part `MultiLineString`/`MultiPolygon` is taken as its one part. Positions are converted
//! from the stated coordinate system to WGS-84 before they are checked.
//!
//! A feature matches the asset on record with its id, or else the one of the same system, name
//! and division; so importing the same file again changes nothing. New assets without an id get
//! one derived from system, division and name (the same file gives the same ids).

use serde_json::Value;

use super::coords::CoordSystem;
use super::roster::{parse_system, Places};
use super::{Outcome, PlanRow};
use crate::geo::haversine_m;
use crate::model::{Asset, Geometry};

/// How far an asset may lie from every recorded patrol before the desk warns.
pub const FAR_FROM_PATROLS_M: f64 = 5_000.0;

/// One feature as read from the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub id: Option<String>,
    pub name: String,
    pub system: String,
    pub division: String,
    pub geometry: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeoJsonError {
    #[error("不是 GeoJSON：{0}")]
    NotJson(String),
    #[error("GeoJSON 应为 FeatureCollection")]
    NotCollection,
}

fn prop(props: &Value, keys: &[&str]) -> String {
    keys.iter()
        .find_map(|k| props.get(*k))
        .map(|v| match v {
            Value::String(s) => s.trim().to_owned(),
            Value::Null => String::new(),
            other => other.to_string(),
        })
        .unwrap_or_default()
}

/// The features of a GeoJSON `FeatureCollection`.
pub fn read_features(bytes: &[u8]) -> Result<Vec<Feature>, GeoJsonError> {
    let doc: Value =
        serde_json::from_slice(bytes).map_err(|e| GeoJsonError::NotJson(e.to_string()))?;
    if doc.get("type").and_then(Value::as_str) != Some("FeatureCollection") {
        return Err(GeoJsonError::NotCollection);
    }
    let features = doc
        .get("features")
        .and_then(Value::as_array)
        .ok_or(GeoJsonError::NotCollection)?;
    Ok(features
        .iter()
        .map(|f| {
            let props = f.get("properties").cloned().unwrap_or(Value::Null);
            let id = prop(&props, &["编号", "id"]);
            Feature {
                id: (!id.is_empty()).then_some(id),
                name: prop(&props, &["名称", "name"]),
                system: prop(&props, &["体系", "system"]),
                division: prop(&props, &["行政区划", "division"]),
                geometry: f.get("geometry").cloned(),
            }
        })
        .collect())
}

fn positions(v: &Value) -> Option<Vec<[f64; 2]>> {
    v.as_array()?
        .iter()
        .map(|p| {
            let p = p.as_array()?;
            Some([p.first()?.as_f64()?, p.get(1)?.as_f64()?])
        })
        .collect()
}

fn rings(v: &Value) -> Option<Vec<Vec<[f64; 2]>>> {
    v.as_array()?.iter().map(positions).collect()
}

/// The feature's geometry as a stored geometry, positions converted to WGS-84.
pub fn to_geometry(value: Option<&Value>, crs: CoordSystem) -> Result<Geometry, String> {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Err("缺少几何".into());
    };
    let kind = value.get("type").and_then(Value::as_str).unwrap_or("");
    let coords = value.get("coordinates").unwrap_or(&Value::Null);
    let single = |v: &Value| match v.as_array().map(Vec::as_slice) {
        Some([one]) => Ok(one.clone()),
        _ => Err(format!("{kind} 含多个部分，请拆成多个要素")),
    };
    let geometry = match kind {
        "LineString" => positions(coords).map(Geometry::LineString),
        "MultiLineString" => positions(&single(coords)?).map(Geometry::LineString),
        "Polygon" => rings(coords).map(Geometry::Polygon),
        "MultiPolygon" => rings(&single(coords)?).map(Geometry::Polygon),
        other => return Err(format!("几何类型“{other}”不支持，应为线或面")),
    }
    .ok_or_else(|| "坐标格式不对".to_owned())?;
    let convert = |p: [f64; 2]| crs.to_wgs84(p);
    Ok(match geometry {
        Geometry::LineString(line) => Geometry::LineString(line.into_iter().map(convert).collect()),
        Geometry::Polygon(rings) => Geometry::Polygon(
            rings
                .into_iter()
                .map(|r| r.into_iter().map(convert).collect())
                .collect(),
        ),
    })
}

fn vertices(g: &Geometry) -> Vec<[f64; 2]> {
    match g {
        Geometry::LineString(line) => line.clone(),
        Geometry::Polygon(rings) => rings.iter().flatten().copied().collect(),
    }
}

/// The distance in metres from the geometry's nearest vertex to the nearest patrol position,
/// `None` without patrols.
pub fn distance_to_patrols_m(g: &Geometry, patrols: &[[f64; 2]]) -> Option<f64> {
    if patrols.is_empty() {
        return None;
    }
    let mut best = f64::INFINITY;
    for v in vertices(g) {
        for p in patrols {
            best = best.min(haversine_m(v[1], v[0], p[1], p[0]));
        }
    }
    Some(best)
}

/// Positions closer than this (degrees, about 0.1 mm) are the same: a stored position read back
/// may differ from the computed one in its last bit.
const SAME_POSITION_DEG: f64 = 1e-9;

fn same_geometry(a: &Geometry, b: &Geometry) -> bool {
    let same_line = |x: &[[f64; 2]], y: &[[f64; 2]]| {
        x.len() == y.len()
            && x.iter().zip(y).all(|(p, q)| {
                (p[0] - q[0]).abs() < SAME_POSITION_DEG && (p[1] - q[1]).abs() < SAME_POSITION_DEG
            })
    };
    match (a, b) {
        (Geometry::LineString(x), Geometry::LineString(y)) => same_line(x, y),
        (Geometry::Polygon(x), Geometry::Polygon(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(r, s)| same_line(r, s))
        }
        _ => false,
    }
}

fn same_asset(a: &Asset, b: &Asset) -> bool {
    a.id == b.id
        && a.system == b.system
        && a.name == b.name
        && a.division == b.division
        && same_geometry(&a.geometry, &b.geometry)
}

fn derived_id(system: &str, division: &str, name: &str) -> String {
    // FNV-1a over the identifying fields: stable across imports of the same file.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in [system, "\0", division, "\0", name].concat().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{system}-{h:016x}")
}

/// Plans features against the assets on record. `check` is the stored geometry's validation;
/// `patrols` are positions where the district's patrols ran (sampled), for the far-away warning.
pub fn plan_assets(
    features: &[Feature],
    crs: CoordSystem,
    places: &Places<'_>,
    on_record: &[Asset],
    check: &dyn Fn(&Geometry) -> Result<(), String>,
    patrols: &[[f64; 2]],
) -> Vec<PlanRow<Asset>> {
    let mut plan = Vec::with_capacity(features.len());
    let mut ids_seen: std::collections::HashMap<String, usize> = Default::default();
    for (i, f) in features.iter().enumerate() {
        let number = i + 1;
        let mut reasons = Vec::new();
        if f.name.is_empty() {
            reasons.push("缺少名称".to_owned());
        }
        let system = parse_system(&f.system);
        if system.is_none() {
            reasons.push(format!("体系“{}”应为河长、林长或田长", f.system));
        }
        let division = match places.resolve_division(&f.division) {
            Ok(d) => Some(d),
            Err(r) => {
                reasons.push(r);
                None
            }
        };
        let geometry = match to_geometry(f.geometry.as_ref(), crs) {
            Ok(g) => match check(&g) {
                Ok(()) => Some(g),
                Err(e) => {
                    reasons.push(format!("几何无效：{e}"));
                    None
                }
            },
            Err(e) => {
                reasons.push(format!("几何无效：{e}"));
                None
            }
        };
        if let (Some(system), Some(g)) = (system, &geometry) {
            let fits = matches!(
                (system, g),
                (crate::model::System::River, Geometry::LineString(_)) | (_, Geometry::Polygon(_))
            );
            if !fits {
                reasons.push("林区、网格应为面".into());
            }
        }
        if let Some(id) = &f.id {
            let ok = id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            if !ok {
                reasons.push(format!("编号“{id}”只能含字母、数字和 - _ ."));
            }
        }
        let label = if f.name.is_empty() {
            format!("第{number}个要素")
        } else {
            f.name.clone()
        };
        let (Some(system), Some(division), Some(geometry), true) =
            (system, division, geometry, reasons.is_empty())
        else {
            plan.push(PlanRow {
                row: number,
                label,
                outcome: Outcome::Refused { reasons },
                warning: None,
            });
            continue;
        };
        let matched = match &f.id {
            Some(id) => on_record.iter().find(|a| a.id == *id),
            None => on_record
                .iter()
                .find(|a| a.system == system && a.name == f.name && a.division == division.code),
        };
        let id = match (matched, &f.id) {
            (Some(a), _) => a.id.clone(),
            (None, Some(id)) => id.clone(),
            (None, None) => derived_id(system.as_str(), division.code.as_str(), &f.name),
        };
        if let Some(first) = ids_seen.insert(id.clone(), number) {
            plan.push(PlanRow {
                row: number,
                label,
                outcome: Outcome::Refused {
                    reasons: vec![format!("与第{first}个要素是同一资产")],
                },
                warning: None,
            });
            continue;
        }
        let warning = distance_to_patrols_m(&geometry, patrols)
            .filter(|d| *d > FAR_FROM_PATROLS_M)
            .map(|d| {
                format!(
                    "离本区巡查轨迹最近也有 {:.1} 公里，请核对坐标系",
                    d / 1000.0
                )
            });
        let after = Asset {
            id,
            system,
            name: f.name.clone(),
            division: division.code.clone(),
            geometry,
        };
        let outcome = match matched {
            Some(before) if same_asset(before, &after) => Outcome::Unchanged,
            Some(before) => Outcome::Change {
                before: before.clone(),
                after,
            },
            None => Outcome::Create { after },
        };
        plan.push(PlanRow {
            row: number,
            label,
            outcome,
            warning,
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::coords::wgs84_to_gcj02;
    use crate::model::{Division, DivisionCode};
    use serde_json::json;

    fn divisions() -> Vec<Division> {
        vec![Division {
            code: DivisionCode::new("370105014000").unwrap(),
            name: "桑梓店街道".into(),
            parent: None,
        }]
    }

    fn collection(features: Vec<Value>) -> Vec<u8> {
        serde_json::to_vec(&json!({"type": "FeatureCollection", "features": features})).unwrap()
    }

    fn feature(name: &str, system: &str, geometry: Value) -> Value {
        json!({"type": "Feature", "properties": {"名称": name, "体系": system, "行政区划": "桑梓店街道"}, "geometry": geometry})
    }

    #[test]
    fn gcj02_files_are_stored_as_gps_positions_and_far_assets_are_flagged() {
        let divisions = divisions();
        let places = Places::new(&divisions, &[]);
        let gps = [[116.97, 36.80], [116.98, 36.81]];
        let gcj: Vec<[f64; 2]> = gps.iter().map(|p| wgs84_to_gcj02(*p)).collect();
        let bytes = collection(vec![
            feature(
                "新河段",
                "河长",
                json!({"type": "LineString", "coordinates": gcj}),
            ),
            feature(
                "远处河段",
                "河长",
                json!({"type": "LineString", "coordinates": [[118.5, 37.5], [118.6, 37.6]]}),
            ),
            feature(
                "坏林区",
                "林长",
                json!({"type": "Polygon", "coordinates": [[[116.9, 36.8], [116.91, 36.8], [116.9, 36.81]]]}),
            ),
            feature(
                "线林区",
                "林长",
                json!({"type": "LineString", "coordinates": gps}),
            ),
            feature("无几何", "河长", Value::Null),
        ]);
        let features = read_features(&bytes).unwrap();
        let ok = |_: &Geometry| Ok(());
        let ring_closes = |g: &Geometry| match g {
            Geometry::Polygon(r) if r[0].first() != r[0].last() => Err("面未闭合".to_owned()),
            _ => Ok(()),
        };
        let plan = plan_assets(
            &features,
            CoordSystem::Gcj02,
            &places,
            &[],
            &ring_closes,
            &gps,
        );
        let Outcome::Create { after } = &plan[0].outcome else {
            panic!("{:?}", plan[0]);
        };
        let Geometry::LineString(line) = &after.geometry else {
            panic!()
        };
        assert!(haversine_m(line[0][1], line[0][0], gps[0][1], gps[0][0]) < 0.1);
        assert!(plan[0].warning.is_none());
        assert!(plan[1].warning.as_deref().unwrap().contains("公里"));
        assert!(plan[2].outcome.is_refused());
        assert!(plan[3].outcome.is_refused());
        assert!(plan[4].outcome.is_refused());
        // Stored, the same file plans as unchanged.
        let stored: Vec<Asset> = plan[..2]
            .iter()
            .filter_map(|r| match &r.outcome {
                Outcome::Create { after } => Some(after.clone()),
                _ => None,
            })
            .collect();
        let again = plan_assets(
            &features[..2],
            CoordSystem::Gcj02,
            &places,
            &stored,
            &ok,
            &gps,
        );
        assert!(
            again.iter().all(|r| r.outcome == Outcome::Unchanged),
            "{again:?}"
        );
    }
}
