//! Coordinate systems an office's geometry files come in, and the conversion to WGS-84, the
//! system phones record (GPS) and every stored geometry uses.
//!
//! - WGS-84: stored as is.
//! - CGCS2000 (天地图, official surveys): its ellipsoid and frame differ from WGS-84 by
//!   centimetres, far below a phone's GPS error, so it is stored as is.
//! - GCJ-02 (most Chinese web maps, some bureau files): offset from WGS-84 by hundreds of
//!   metres by a published obfuscation. WGS-84 → GCJ-02 is the widely reimplemented formula
//!   (Krasovsky eccentricity, `a` = 6 378 137 m, as in the `eviltransform` libraries); GCJ-02 →
//!   WGS-84 inverts it by bisection to under 0.1 m. The tests check both against the point
//!   pairs published with `eviltransform` (Shanghai, Shenzhen, Beijing). Outside China the
//!   offset does not apply and positions are kept.

use serde::{Deserialize, Serialize};

/// The coordinate system an import states for its positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CoordSystem {
    Wgs84,
    Cgcs2000,
    Gcj02,
}

impl CoordSystem {
    pub const ALL: [CoordSystem; 3] = [Self::Wgs84, Self::Cgcs2000, Self::Gcj02];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wgs84 => "wgs84",
            Self::Cgcs2000 => "cgcs2000",
            Self::Gcj02 => "gcj02",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The name offices know it by.
    pub fn name_zh(self) -> &'static str {
        match self {
            Self::Wgs84 => "WGS-84（GPS）",
            Self::Cgcs2000 => "CGCS2000（天地图、国土数据）",
            Self::Gcj02 => "GCJ-02（高德、腾讯等网络地图）",
        }
    }

    /// A `[lon, lat]` position in this system as WGS-84.
    pub fn to_wgs84(self, position: [f64; 2]) -> [f64; 2] {
        match self {
            Self::Wgs84 | Self::Cgcs2000 => position,
            Self::Gcj02 => gcj02_to_wgs84(position),
        }
    }
}

const EARTH_A: f64 = 6_378_137.0;
const KRASOVSKY_EE: f64 = 0.006_693_421_622_965_943;

fn out_of_china([lon, lat]: [f64; 2]) -> bool {
    !((72.004..=137.8347).contains(&lon) && (0.8293..=55.8271).contains(&lat))
}

fn offset(x: f64, y: f64) -> (f64, f64) {
    use std::f64::consts::PI;
    let xy = x * y;
    let abs_x = x.abs().sqrt();
    let (x_pi, y_pi) = (x * PI, y * PI);
    let d = 20.0 * (6.0 * x_pi).sin() + 20.0 * (2.0 * x_pi).sin();
    let mut lat = d + 20.0 * y_pi.sin() + 40.0 * (y_pi / 3.0).sin();
    let mut lon = d + 20.0 * x_pi.sin() + 40.0 * (x_pi / 3.0).sin();
    lat += 160.0 * (y_pi / 12.0).sin() + 320.0 * (y_pi / 30.0).sin();
    lon += 150.0 * (x_pi / 12.0).sin() + 300.0 * (x_pi / 30.0).sin();
    lat *= 2.0 / 3.0;
    lon *= 2.0 / 3.0;
    lat += -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * xy + 0.2 * abs_x;
    lon += 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * xy + 0.1 * abs_x;
    (lat, lon)
}

/// WGS-84 `[lon, lat]` → GCJ-02 `[lon, lat]`.
pub fn wgs84_to_gcj02(p: [f64; 2]) -> [f64; 2] {
    use std::f64::consts::PI;
    if out_of_china(p) {
        return p;
    }
    let [lon, lat] = p;
    let (d_lat, d_lon) = offset(lon - 105.0, lat - 35.0);
    let rad_lat = lat / 180.0 * PI;
    let magic = 1.0 - KRASOVSKY_EE * rad_lat.sin() * rad_lat.sin();
    let sqrt_magic = magic.sqrt();
    let d_lat = (d_lat * 180.0) / ((EARTH_A * (1.0 - KRASOVSKY_EE)) / (magic * sqrt_magic) * PI);
    let d_lon = (d_lon * 180.0) / (EARTH_A / sqrt_magic * rad_lat.cos() * PI);
    [lon + d_lon, lat + d_lat]
}

/// GCJ-02 `[lon, lat]` → WGS-84 `[lon, lat]`, by bisection on [`wgs84_to_gcj02`] (the offset
/// is under 0.01° everywhere in China and monotone over that span).
pub fn gcj02_to_wgs84(p: [f64; 2]) -> [f64; 2] {
    if out_of_china(p) {
        return p;
    }
    let [lon, lat] = p;
    let (mut lo, mut hi) = ([lon - 0.01, lat - 0.01], [lon + 0.01, lat + 0.01]);
    let mut mid = p;
    for _ in 0..60 {
        mid = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
        let g = wgs84_to_gcj02(mid);
        let (d_lon, d_lat) = (g[0] - lon, g[1] - lat);
        if d_lon.abs() < 1e-9 && d_lat.abs() < 1e-9 {
            break;
        }
        if d_lon > 0.0 {
            hi[0] = mid[0];
        } else {
            lo[0] = mid[0];
        }
        if d_lat > 0.0 {
            hi[1] = mid[1];
        } else {
            lo[1] = mid[1];
        }
    }
    mid
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::haversine_m;

    /// `(wgs lat, wgs lon, gcj lat, gcj lon)`, the pairs published with the `eviltransform`
    /// libraries' tests (github.com/googollee/eviltransform).
    const PUBLISHED: [(f64, f64, f64, f64); 3] = [
        (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215), // Shanghai
        (22.543847, 113.912316, 22.540796131694766, 113.9171764808363), // Shenzhen
        (39.911954, 116.377817, 39.91334545536069, 116.38404722455657), // Beijing
    ];

    fn metres(a: [f64; 2], b: [f64; 2]) -> f64 {
        haversine_m(a[1], a[0], b[1], b[0])
    }

    #[test]
    fn wgs84_to_gcj02_matches_the_published_pairs() {
        for (wlat, wlon, glat, glon) in PUBLISHED {
            let got = wgs84_to_gcj02([wlon, wlat]);
            let off = metres(got, [glon, glat]);
            assert!(
                off < 0.05,
                "{wlat},{wlon}: {off} m from the published GCJ-02 point"
            );
        }
    }

    #[test]
    fn gcj02_to_wgs84_recovers_the_published_gps_positions() {
        for (wlat, wlon, glat, glon) in PUBLISHED {
            let got = gcj02_to_wgs84([glon, glat]);
            let off = metres(got, [wlon, wlat]);
            assert!(
                off < 0.1,
                "{glat},{glon}: {off} m from the published WGS-84 point"
            );
            // The offset undone is the hundreds of metres the import must not keep.
            assert!(metres([glon, glat], [wlon, wlat]) > 100.0);
        }
    }

    #[test]
    fn tianqiao_round_trips_and_other_systems_are_kept() {
        let p = [116.99, 36.70];
        let back = gcj02_to_wgs84(wgs84_to_gcj02(p));
        assert!(metres(p, back) < 0.1);
        assert_eq!(CoordSystem::Cgcs2000.to_wgs84(p), p);
        assert_eq!(CoordSystem::Wgs84.to_wgs84(p), p);
        // Outside China nothing is offset.
        assert_eq!(gcj02_to_wgs84([2.35, 48.85]), [2.35, 48.85]);
        assert_eq!(CoordSystem::parse("gcj02"), Some(CoordSystem::Gcj02));
        assert_eq!(CoordSystem::parse("bd09"), None);
    }
}
