//! Small geodesy for patrol checks: great-circle distance between fixes, and the distance from a
//! fix to an asset's geometry (a river line, a forest or farmland polygon).
//!
//! Points are passed as `lat, lon` in degrees (the order a phone reports them); geometry
//! coordinates are GeoJSON `[lon, lat]` pairs, as stored in [`Geometry`]. Distances to lines and
//! polygons use a local equirectangular projection centred on the fix: at district scale (tens of
//! kilometres) its error is far below GPS accuracy, and it keeps the maths plain. This module does
//! no map matching, no coordinate-system conversion (GCJ-02/BD-09 are the caller's business) and
//! no I/O.
//!
//! It also holds the one check of what a position is ([`check_position`]) and of an asset's
//! shape ([`check_geometry`]), used by the phone for its own fixes, by the server for the
//! geometry administrators send, and by the EXIF reader for a photo's GPS tags.

use crate::model::Geometry;

/// Why a position or an asset's geometry is unusable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeometryError {
    #[error("position {0:?} is not a WGS84 [longitude, latitude]")]
    BadPosition([f64; 2]),
    #[error("a LineString needs at least 2 positions, got {0}")]
    ShortLine(usize),
    #[error("a Polygon needs at least one ring")]
    NoRings,
    #[error("polygon ring {ring} needs at least 4 positions, got {len}")]
    ShortRing { ring: usize, len: usize },
    #[error("polygon ring {0} does not end where it starts")]
    OpenRing(usize),
}

/// Whether `[lon, lat]` is a WGS84 position: both finite, the latitude within ±90° and the
/// longitude within ±180°. A latitude and longitude swapped east of 90° E (all of China) fail.
pub fn check_position([lon, lat]: [f64; 2]) -> Result<(), GeometryError> {
    if lon.is_finite()
        && lat.is_finite()
        && (-180.0..=180.0).contains(&lon)
        && (-90.0..=90.0).contains(&lat)
    {
        Ok(())
    } else {
        Err(GeometryError::BadPosition([lon, lat]))
    }
}

/// Whether an asset's geometry is usable by the patrol and placement checks: every position a
/// WGS84 `[lon, lat]`, a line of at least two positions, polygon rings of at least four that
/// end where they start.
pub fn check_geometry(geometry: &Geometry) -> Result<(), GeometryError> {
    match geometry {
        Geometry::LineString(line) => {
            if line.len() < 2 {
                return Err(GeometryError::ShortLine(line.len()));
            }
            line.iter().try_for_each(|p| check_position(*p))
        }
        Geometry::Polygon(rings) => {
            if rings.is_empty() {
                return Err(GeometryError::NoRings);
            }
            for (i, ring) in rings.iter().enumerate() {
                if ring.len() < 4 {
                    return Err(GeometryError::ShortRing {
                        ring: i,
                        len: ring.len(),
                    });
                }
                ring.iter().try_for_each(|p| check_position(*p))?;
                if ring.first() != ring.last() {
                    return Err(GeometryError::OpenRing(i));
                }
            }
            Ok(())
        }
    }
}

/// Mean Earth radius (IUGG), metres.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance between two fixes, metres (haversine formula).
pub fn haversine_m(a_lat: f64, a_lon: f64, b_lat: f64, b_lon: f64) -> f64 {
    let (phi_a, phi_b) = (a_lat.to_radians(), b_lat.to_radians());
    let d_phi = phi_b - phi_a;
    let d_lambda = (b_lon - a_lon).to_radians();
    let h =
        (d_phi / 2.0).sin().powi(2) + phi_a.cos() * phi_b.cos() * (d_lambda / 2.0).sin().powi(2);
    // Rounding can push `h` a hair above 1 for antipodal points; asin would then return NaN.
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// A tangent-plane view around one fix: coordinates become metres east and north of it.
struct LocalFrame {
    lat: f64,
    lon: f64,
    metres_per_degree_lon: f64,
}

/// Length of one degree of latitude (and of longitude at the equator), metres.
pub const METRES_PER_DEGREE: f64 = EARTH_RADIUS_M * std::f64::consts::PI / 180.0;

impl LocalFrame {
    fn at(lat: f64, lon: f64) -> Self {
        Self {
            lat,
            lon,
            metres_per_degree_lon: METRES_PER_DEGREE * lat.to_radians().cos(),
        }
    }

    /// `[lon, lat]` to metres `(east, north)` of the frame's centre.
    fn project(&self, [lon, lat]: [f64; 2]) -> (f64, f64) {
        // Wrap the longitude difference so an asset across the antimeridian is not 360° away.
        let d_lon = (lon - self.lon + 540.0).rem_euclid(360.0) - 180.0;
        (
            d_lon * self.metres_per_degree_lon,
            (lat - self.lat) * METRES_PER_DEGREE,
        )
    }

    /// Distance from the frame's centre to the segment `a`–`b`, metres.
    fn distance_to_segment(&self, a: [f64; 2], b: [f64; 2]) -> f64 {
        let (ax, ay) = self.project(a);
        let (bx, by) = self.project(b);
        let (dx, dy) = (bx - ax, by - ay);
        let len2 = dx * dx + dy * dy;
        // Parameter of the centre's foot on the segment's line, clamped onto the segment; a
        // zero-length segment is a point.
        let t = if len2 > 0.0 {
            ((-ax * dx - ay * dy) / len2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        (ax + t * dx).hypot(ay + t * dy)
    }
}

/// Distance from a fix to the segment between two `[lon, lat]` points, metres.
pub fn distance_to_segment_m(lat: f64, lon: f64, a: [f64; 2], b: [f64; 2]) -> f64 {
    LocalFrame::at(lat, lon).distance_to_segment(a, b)
}

/// Distance from a fix to a polyline of `[lon, lat]` points, metres. A single point is a
/// point; an empty line is infinitely far away, so nothing counts as near it.
pub fn distance_to_polyline_m(lat: f64, lon: f64, line: &[[f64; 2]]) -> f64 {
    let frame = LocalFrame::at(lat, lon);
    match line {
        [] => f64::INFINITY,
        [only] => frame.distance_to_segment(*only, *only),
        _ => line
            .windows(2)
            .map(|w| frame.distance_to_segment(w[0], w[1]))
            .fold(f64::INFINITY, f64::min),
    }
}

/// Whether a fix lies inside a ring of `[lon, lat]` points (closed or not), by ray casting.
/// Points exactly on the boundary may fall either way; callers measure distance to the
/// boundary anyway, which is then zero.
pub fn point_in_ring(lat: f64, lon: f64, ring: &[[f64; 2]]) -> bool {
    let mut inside = false;
    let mut prev = match ring.last() {
        Some(&p) => p,
        None => return false,
    };
    for &cur in ring {
        let ([x1, y1], [x2, y2]) = (prev, cur);
        if (y1 > lat) != (y2 > lat) {
            let x_cross = x1 + (lat - y1) * (x2 - x1) / (y2 - y1);
            if lon < x_cross {
                inside = !inside;
            }
        }
        prev = cur;
    }
    inside
}

/// Whether a fix lies inside a GeoJSON polygon: inside the outer ring and in none of the holes.
pub fn point_in_polygon(lat: f64, lon: f64, rings: &[Vec<[f64; 2]>]) -> bool {
    match rings.split_first() {
        Some((outer, holes)) => {
            point_in_ring(lat, lon, outer) && !holes.iter().any(|h| point_in_ring(lat, lon, h))
        }
        None => false,
    }
}

/// Distance from a fix to an asset's geometry, metres: to the nearest point of a line, or to a
/// polygon's boundary when outside it (0 inside; a fix in a hole is outside).
pub fn distance_to_geometry_m(lat: f64, lon: f64, geometry: &Geometry) -> f64 {
    match geometry {
        Geometry::LineString(line) => distance_to_polyline_m(lat, lon, line),
        Geometry::Polygon(rings) => {
            if point_in_polygon(lat, lon, rings) {
                return 0.0;
            }
            let frame = LocalFrame::at(lat, lon);
            rings
                .iter()
                .flat_map(|ring| closed_edges(ring))
                .map(|(a, b)| frame.distance_to_segment(a, b))
                .fold(f64::INFINITY, f64::min)
        }
    }
}

/// The edges of a ring including the closing one, whether or not the ring repeats its first point.
fn closed_edges(ring: &[[f64; 2]]) -> impl Iterator<Item = ([f64; 2], [f64; 2])> + '_ {
    let closing = match (ring.last(), ring.first()) {
        (Some(&last), Some(&first)) => Some((last, first)),
        _ => None,
    };
    ring.windows(2).map(|w| (w[0], w[1])).chain(closing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_geometry_are_checked_once_and_name_the_fault() {
        assert_eq!(check_position([116.98, 36.72]), Ok(()));
        assert_eq!(check_position([-180.0, 90.0]), Ok(()));
        for bad in [
            [116.98, 90.5],
            [180.5, 36.72],
            [f64::NAN, 36.72],
            [116.98, f64::INFINITY],
        ] {
            assert!(check_position(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_position([36.72, 116.98]),
            Err(GeometryError::BadPosition([36.72, 116.98])),
            "latitude and longitude swapped"
        );
        let line = Geometry::LineString(vec![[116.98, 36.70], [116.99, 36.71]]);
        assert_eq!(check_geometry(&line), Ok(()));
        let square = vec![
            [117.0, 36.7],
            [117.01, 36.7],
            [117.01, 36.71],
            [117.0, 36.7],
        ];
        assert_eq!(
            check_geometry(&Geometry::Polygon(vec![square.clone()])),
            Ok(())
        );
        assert_eq!(
            check_geometry(&Geometry::LineString(vec![[116.98, 36.70]])),
            Err(GeometryError::ShortLine(1))
        );
        assert_eq!(
            check_geometry(&Geometry::LineString(vec![[116.98, 36.7], [200.0, 36.7]])),
            Err(GeometryError::BadPosition([200.0, 36.7]))
        );
        assert!(check_geometry(&Geometry::LineString(vec![[f64::NAN, 0.0], [0.0, 0.0]])).is_err());
        let open = vec![
            [117.0, 36.7],
            [117.01, 36.7],
            [117.01, 36.71],
            [117.0, 36.71],
        ];
        assert_eq!(
            check_geometry(&Geometry::Polygon(vec![open])),
            Err(GeometryError::OpenRing(0))
        );
        assert_eq!(
            check_geometry(&Geometry::Polygon(vec![])),
            Err(GeometryError::NoRings)
        );
        assert_eq!(
            check_geometry(&Geometry::Polygon(vec![square[..3].to_vec()])),
            Err(GeometryError::ShortRing { ring: 0, len: 3 })
        );
    }

    /// Degrees of longitude spanning `metres` east–west at latitude `lat`.
    fn lon_degrees(metres: f64, lat: f64) -> f64 {
        metres / (METRES_PER_DEGREE * lat.to_radians().cos())
    }

    #[test]
    fn one_degree_of_latitude_is_about_111_km() {
        let d = haversine_m(36.0, 117.0, 37.0, 117.0);
        assert!((d - 111_195.0).abs() < 1.0, "{d}");
        assert_eq!(haversine_m(36.68, 117.0, 36.68, 117.0), 0.0);
    }

    #[test]
    fn haversine_matches_known_city_distance_and_antipodes() {
        // Jinan (泉城广场) to Beijing (天安门): about 365 km as the crow flies.
        let d = haversine_m(36.6613, 117.0216, 39.9087, 116.3975);
        assert!((d - 365_000.0).abs() < 5_000.0, "{d}");
        let antipodal = haversine_m(0.0, 0.0, 0.0, 180.0);
        assert!((antipodal - std::f64::consts::PI * EARTH_RADIUS_M).abs() < 1e-6);
    }

    #[test]
    fn a_point_100_m_off_a_river_line() {
        let lat = 36.70;
        let line = [[117.0, 36.69], [117.0, 36.71]];
        let lon = 117.0 + lon_degrees(100.0, lat);
        let d = distance_to_polyline_m(lat, lon, &line);
        assert!((d - 100.0).abs() < 0.1, "{d}");
        // The same offset measured by haversine agrees.
        let h = haversine_m(lat, lon, lat, 117.0);
        assert!((d - h).abs() < 0.1, "{d} vs {h}");
    }

    #[test]
    fn beyond_a_segment_end_the_distance_is_to_the_end_point() {
        let line = [[117.0, 36.69], [117.0, 36.70]];
        let d = distance_to_polyline_m(36.71, 117.0, &line);
        assert!(
            (d - haversine_m(36.71, 117.0, 36.70, 117.0)).abs() < 0.5,
            "{d}"
        );
        let single = distance_to_polyline_m(36.71, 117.0, &line[1..]);
        assert!((single - d).abs() < 1e-9);
        assert_eq!(distance_to_polyline_m(36.71, 117.0, &[]), f64::INFINITY);
    }

    #[test]
    fn longitudes_wrap_across_the_antimeridian() {
        let line = [[179.9999, -16.0], [-179.9999, -16.0]];
        let d = distance_to_polyline_m(-16.0, 180.0, &line);
        assert!(d < 0.01, "{d}");
    }

    fn square_with_hole() -> Geometry {
        // A 0.02° square forest area with a 0.01° clearing in the middle (unclosed hole ring).
        Geometry::Polygon(vec![
            vec![
                [117.00, 36.70],
                [117.02, 36.70],
                [117.02, 36.72],
                [117.00, 36.72],
                [117.00, 36.70],
            ],
            vec![
                [117.005, 36.705],
                [117.015, 36.705],
                [117.015, 36.715],
                [117.005, 36.715],
            ],
        ])
    }

    #[test]
    fn polygons_with_holes() {
        let forest = square_with_hole();
        // Inside the forest, outside the clearing.
        assert_eq!(distance_to_geometry_m(36.702, 117.01, &forest), 0.0);
        // Centre of the clearing: 0.005° of longitude (shorter than 0.005° of latitude here) to
        // its nearest edges.
        let in_hole = distance_to_geometry_m(36.71, 117.01, &forest);
        assert!(
            (in_hole - haversine_m(36.71, 117.01, 36.71, 117.015)).abs() < 0.5,
            "{in_hole}"
        );
        // 100 m west of the forest's west edge.
        let lon = 117.0 - lon_degrees(100.0, 36.71);
        let outside = distance_to_geometry_m(36.71, lon, &forest);
        assert!((outside - 100.0).abs() < 0.1, "{outside}");
        assert!(!point_in_polygon(36.71, 117.01, &[]));
        assert_eq!(
            distance_to_geometry_m(36.71, 117.01, &Geometry::Polygon(vec![])),
            f64::INFINITY
        );
    }

    #[test]
    fn ring_closure_does_not_change_the_answer() {
        let open = [[117.0, 36.7], [117.01, 36.7], [117.01, 36.71]];
        let closed = [
            [117.0, 36.7],
            [117.01, 36.7],
            [117.01, 36.71],
            [117.0, 36.7],
        ];
        for (lat, lon) in [(36.702, 117.008), (36.708, 117.002), (36.69, 117.005)] {
            assert_eq!(
                point_in_ring(lat, lon, &open),
                point_in_ring(lat, lon, &closed)
            );
            let a = distance_to_geometry_m(lat, lon, &Geometry::Polygon(vec![open.to_vec()]));
            let b = distance_to_geometry_m(lat, lon, &Geometry::Polygon(vec![closed.to_vec()]));
            assert!((a - b).abs() < 1e-9);
        }
        assert!(point_in_ring(36.702, 117.008, &open));
        assert!(!point_in_ring(36.708, 117.002, &open));
    }
}
