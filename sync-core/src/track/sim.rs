//! Simulated 1 Hz walks for tests, benches, the demo and the field simulator: a free walk, and
//! a walk along an asset's line the way a river chief walks a bank. Deterministic per seed.

use super::METRES_PER_DEGREE;
use crate::model::{Geometry, TrackPoint};

/// A tiny deterministic generator (splitmix64), so tests and benches need no `rand`.
pub(crate) struct SplitMix64(pub(crate) u64);

impl SplitMix64 {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-0.5, 0.5).
    pub(crate) fn centred(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }
}

/// A realistic 1 Hz walk for tests, benches and the demo: about 1.3 m/s with small heading
/// changes, GPS error of a couple of metres that drifts rather than jumps (as real receivers'
/// does), accuracy between 3 and 10 m, and an occasional missed fix. Deterministic per seed.
pub fn walking_track(
    start_lat: f64,
    start_lon: f64,
    start_ms: i64,
    points: usize,
    seed: u64,
) -> Vec<TrackPoint> {
    let mut rng = SplitMix64(seed);
    let metres_per_degree_lon = METRES_PER_DEGREE * start_lat.to_radians().cos();
    let mut heading = (rng.centred() + 0.5) * std::f64::consts::TAU;
    let (mut north, mut east) = (0.0, 0.0);
    let (mut error_north, mut error_east) = (0.0, 0.0);
    let mut accuracy = 3.0 + (rng.centred() + 0.5) * 7.0;
    let mut t_ms = start_ms;
    let mut track = Vec::with_capacity(points);
    for _ in 0..points {
        track.push(TrackPoint {
            lat: start_lat + (north + error_north) / METRES_PER_DEGREE,
            lon: start_lon + (east + error_east) / metres_per_degree_lon,
            t_ms,
            accuracy_m: accuracy as f32,
            ..TrackPoint::default()
        });
        // About one fix in 300 is missed, so the next comes two seconds later.
        let seconds = if rng.next() < u64::MAX / 300 {
            2.0
        } else {
            1.0
        };
        heading += rng.centred() * 0.2;
        let speed = 1.3 + rng.centred() * 0.4;
        north += speed * seconds * heading.cos();
        east += speed * seconds * heading.sin();
        error_north = 0.95 * error_north + rng.centred() * 2.0;
        error_east = 0.95 * error_east + rng.centred() * 2.0;
        accuracy = (accuracy + rng.centred() * 0.4).clamp(3.0, 10.0);
        t_ms += (seconds * 1000.0) as i64;
    }
    track
}

/// A chief walking along `geometry` (a river line, or a polygon's outer ring) from its start at
/// about 1.3 m/s, one fix a second, with GPS error of a few metres. Stops at the line's end.
pub fn walk_along(geometry: &Geometry, start_ms: i64, points: usize, seed: u64) -> Vec<TrackPoint> {
    let line: &[[f64; 2]] = match geometry {
        Geometry::LineString(line) => line,
        Geometry::Polygon(rings) => rings.first().map_or(&[][..], Vec::as_slice),
    };
    let Some(first) = line.first() else {
        return Vec::new();
    };
    let mut rng = SplitMix64(seed);
    let metres_per_degree_lon = METRES_PER_DEGREE * first[1].to_radians().cos();
    let (mut segment, mut along) = (0usize, 0.0f64);
    let (mut error_north, mut error_east) = (0.0, 0.0);
    let mut track = Vec::with_capacity(points);
    for i in 0..points {
        let a = line[segment.min(line.len() - 1)];
        let b = line[(segment + 1).min(line.len() - 1)];
        let dx = (b[0] - a[0]) * metres_per_degree_lon;
        let dy = (b[1] - a[1]) * METRES_PER_DEGREE;
        let length = (dx * dx + dy * dy).sqrt();
        let share = if length > 0.0 {
            (along / length).min(1.0)
        } else {
            1.0
        };
        track.push(TrackPoint {
            lat: a[1] + (b[1] - a[1]) * share + error_north / METRES_PER_DEGREE,
            lon: a[0] + (b[0] - a[0]) * share + error_east / metres_per_degree_lon,
            t_ms: start_ms + 1_000 * i as i64,
            accuracy_m: (4.0 + rng.centred() * 2.0) as f32,
            ..TrackPoint::default()
        });
        error_north = 0.95 * error_north + rng.centred() * 2.0;
        error_east = 0.95 * error_east + rng.centred() * 2.0;
        along += 1.3 + rng.centred() * 0.4;
        if along >= length && segment + 2 < line.len() {
            along -= length;
            segment += 1;
        }
    }
    track
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geo::distance_to_geometry_m;
    use crate::track::stats;

    #[test]
    fn a_walk_along_a_river_stays_on_its_bank() {
        let river = Geometry::LineString(vec![[116.98, 36.70], [116.99, 36.70], [116.99, 36.71]]);
        let walk = walk_along(&river, 0, 1_200, 3);
        assert_eq!(walk.len(), 1_200);
        let worst = walk
            .iter()
            .map(|p| distance_to_geometry_m(p.lat, p.lon, &river))
            .fold(0.0, f64::max);
        assert!(worst < 40.0, "strayed {worst:.1} m from the river");
        let km = stats(&walk).distance_m / 1_000.0;
        assert!((1.3..2.2).contains(&km), "walked {km:.2} km in 20 minutes");
        let end = walk.last().unwrap();
        assert!(end.lon > 116.989, "reached the bend: {end:?}");
        assert_eq!(walk, walk_along(&river, 0, 1_200, 3));
    }
}
