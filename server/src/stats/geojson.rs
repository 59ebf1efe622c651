//! GeoJSON (RFC 7946) for QGIS and the dashboard map: issues as points with their derived
//! status, patrol tracks as LineStrings, hotspots as points ranked for remediation. Coordinates
//! are `[lon, lat]` in WGS84, as everywhere in ChiefSync.

use serde_json::{json, Value};
use sync_core::model::TrackPoint;
use sync_core::stats::{Hotspot, IssueFact, PatrolFact, Reference};

pub fn collection(features: Vec<Value>) -> Value {
    json!({"type": "FeatureCollection", "features": features})
}

pub fn issue_feature(issue: &IssueFact, reference: &Reference, now_ms: i64) -> Value {
    let state = &issue.state;
    json!({
        "type": "Feature",
        "id": issue.id,
        "geometry": {"type": "Point", "coordinates": issue.location},
        "properties": {
            "id": issue.id,
            "system": issue.system,
            "category": issue.category,
            "category_name": reference.category_name(&issue.category),
            "severity": issue.severity,
            "asset": issue.asset,
            "division": issue.division,
            "reporter": issue.reporter,
            "reported_at_ms": issue.reported_at_ms,
            "status": state.status,
            "status_name": state.status.map(|s| s.name_zh()),
            "assignee": state.assignee.as_ref().map(|a| a.name()),
            "deadline_ms": state.deadline_ms,
            "closed_at_ms": state.closed_at_ms,
            "overdue_days": state.overdue_days(now_ms),
            "escalations": state.escalations,
            "reopened": issue.reopened,
        }
    })
}

/// A patrol's track as a LineString (a track of fewer than two fixes has no line: `null`).
pub fn patrol_feature(
    patrol: &PatrolFact,
    points: &[TrackPoint],
    chief_name: Option<&str>,
) -> Value {
    let geometry = if points.len() >= 2 {
        let line: Vec<[f64; 2]> = points.iter().map(|p| [p.lon, p.lat]).collect();
        json!({"type": "LineString", "coordinates": line})
    } else {
        Value::Null
    };
    json!({
        "type": "Feature",
        "id": patrol.id,
        "geometry": geometry,
        "properties": {
            "id": patrol.id,
            "system": patrol.system,
            "asset": patrol.asset,
            "chief": patrol.chief,
            "chief_name": chief_name,
            "division": patrol.division,
            "at_ms": patrol.at_ms,
            "km": patrol.km,
            "hours": patrol.hours,
            "valid": patrol.valid,
            "flags": patrol.flags,
            "clock_skew": patrol.clock_skew,
        }
    })
}

pub fn hotspot_feature(h: &Hotspot) -> Value {
    json!({
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": h.location},
        "properties": {
            "rank": h.rank,
            "category": h.category,
            "category_name": h.category_name,
            "system": h.system,
            "asset": h.asset,
            "recurrences": h.recurrences,
            "issues": h.issues.len(),
            "open": h.open,
            "spread_m": h.spread_m,
            "last_reported_ms": h.last_reported_ms,
        }
    })
}
