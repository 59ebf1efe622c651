//! GPS tracks as append-only compact chunks, track statistics and a walking-track generator.
//!
//! A patrol document stores its track as a list of byte chunks (about a minute of fixes each),
//! appended as the chief walks; a list of maps would cost about 15 bytes a point in the saved
//! document, a chunk about 4. This module only turns points into bytes and back and measures
//! tracks; it does not touch automerge and does not judge whether a patrol is valid (`rules` does).
//!
//! # Quantization
//!
//! A chunk stores fixes at a fixed precision, applied by [`quantize`]:
//! latitude and longitude in integer micro-degrees (1e-6°, about 0.11 m — far below GPS
//! accuracy), clamped to ±90° and ±180° (NaN becomes 0); time in whole milliseconds, exactly;
//! accuracy in decimetres, saturating at 0 and 6553.5 m (NaN, an unknown accuracy, becomes the
//! worst). `decode_chunk(&encode_chunk(pts)) == pts.map(quantize)` exactly, and quantizing twice
//! changes nothing.
//!
//! # Chunk format, version 1
//!
//! ```text
//! version: u8 = 1
//! count:   varint
//! first point:  zigzag lat, zigzag lon, zigzag t_ms, zigzag accuracy_dm   (absolute)
//! each further: zigzag Δlat, zigzag Δlon, zigzag Δ(Δt), zigzag Δaccuracy_dm
//! ```
//!
//! # Chunk format, version 2
//!
//! As version 1, with one more byte after each point's four fields: bit 0 is the OS's
//! mock-location (simulated) verdict, bits 1–3 the provider ([`crate::model::Provider::code`]),
//! the other bits zero. Version 2 is written only when some fix of the chunk carries a verdict
//! or a provider, so tracks without them keep version 1's size; both versions decode.
//!
//! Varints are LEB128 (7 bits a byte, low first); zigzag maps small signed numbers to small
//! unsigned ones. Time is stored as the change of the step (delta of delta, the step before the
//! second point counting as 0), so a steady 1 Hz track costs one byte of time per point. Time
//! arithmetic wraps in 64 bits in both directions, so clocks going backwards and any jump
//! round-trip exactly.
//!
//! ```
//! use sync_core::track::{decode_chunk, encode_chunk, quantize, walking_track};
//!
//! let walk = walking_track(36.70, 117.00, 1_700_000_000_000, 60, 7);
//! let chunk = encode_chunk(&walk);
//! assert!(chunk.len() < 6 * walk.len());
//! let expected: Vec<_> = walk.iter().map(quantize).collect();
//! assert_eq!(decode_chunk(&chunk).unwrap(), expected);
//! ```

use crate::geo::{haversine_m, METRES_PER_DEGREE};
use crate::model::{Provider, TrackPoint};
use serde::{Deserialize, Serialize};

/// Points per chunk: a minute at 1 Hz. The phone keeps every fix in its crash buffer until it
/// writes [`CHANGE_POINTS`] of them into the document, so a phone killed mid-patrol loses none.
pub const CHUNK_POINTS: usize = 60;

/// Points a phone buffers (each fix kept in its crash buffer) before writing them into the
/// patrol document: ten minutes at 1 Hz, as ten chunks in one automerge change. Every change is
/// authorized, stored, delivered and applied on its own, so a patrol written a minute at a time
/// cost the server, every supervisor's phone and the wire ten times as many of them.
pub const CHANGE_POINTS: usize = 10 * CHUNK_POINTS;

/// The chunk format of fixes without an OS verdict or provider.
pub const FORMAT_VERSION: u8 = 1;
/// The chunk format of fixes with the OS's verdict and provider.
pub const FORMAT_VERSION_SOURCE: u8 = 2;

const MICRODEGREES_PER_DEGREE: f64 = 1e6;
const MAX_LAT_MICRODEGREES: i64 = 90_000_000;
const MAX_LON_MICRODEGREES: i64 = 180_000_000;
const DECIMETRES_PER_METRE: f32 = 10.0;
const MAX_ACCURACY_DM: i64 = u16::MAX as i64;
/// Each point has four fields of at least one byte, which bounds a claimed count by the bytes left.
const MIN_POINT_BYTES: usize = 4;

/// Why a chunk of (possibly hostile) bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrackError {
    #[error("track chunk ends before its last point")]
    Truncated,
    #[error("unknown track chunk version {0}")]
    UnknownVersion(u8),
    #[error("varint in track chunk is longer than 64 bits")]
    Overflow,
    #[error("track chunk claims {count} points but has room for at most {max}")]
    CountTooLarge { count: u64, max: u64 },
    #[error("point {index} of track chunk lies outside the valid range")]
    OutOfRange { index: usize },
    #[error("{0} unexpected bytes after the last point of track chunk")]
    TrailingBytes(usize),
    #[error("point {index} of track chunk has an unknown source byte {byte}")]
    UnknownSource { index: usize, byte: u8 },
}

/// A fix at chunk precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quantized {
    lat: i64,
    lon: i64,
    t_ms: i64,
    accuracy_dm: i64,
    /// Bit 0 mock, bits 1–3 provider (the version 2 source byte).
    source: u8,
}

impl Quantized {
    fn of(p: &TrackPoint) -> Self {
        // `as` maps NaN to 0 and saturates infinities before the clamp.
        let micro = |deg: f64, limit: i64| {
            ((deg * MICRODEGREES_PER_DEGREE).round() as i64).clamp(-limit, limit)
        };
        let accuracy_dm = if p.accuracy_m.is_nan() {
            MAX_ACCURACY_DM
        } else {
            ((p.accuracy_m * DECIMETRES_PER_METRE).round() as i64).clamp(0, MAX_ACCURACY_DM)
        };
        Self {
            lat: micro(p.lat, MAX_LAT_MICRODEGREES),
            lon: micro(p.lon, MAX_LON_MICRODEGREES),
            t_ms: p.t_ms,
            accuracy_dm,
            source: u8::from(p.mock) | (p.provider.code() << 1),
        }
    }

    fn in_range(&self) -> bool {
        // `unsigned_abs`: a decoded i64::MIN has no i64 absolute value (`abs` panics in debug
        // builds and in release returns a negative number that passes the check).
        self.lat.unsigned_abs() <= MAX_LAT_MICRODEGREES as u64
            && self.lon.unsigned_abs() <= MAX_LON_MICRODEGREES as u64
            && (0..=MAX_ACCURACY_DM).contains(&self.accuracy_dm)
    }

    fn point(self) -> TrackPoint {
        TrackPoint {
            lat: self.lat as f64 / MICRODEGREES_PER_DEGREE,
            lon: self.lon as f64 / MICRODEGREES_PER_DEGREE,
            t_ms: self.t_ms,
            accuracy_m: self.accuracy_dm as f32 / DECIMETRES_PER_METRE,
            mock: self.source & 1 == 1,
            provider: Provider::from_code(self.source >> 1).unwrap_or_default(),
        }
    }
}

/// A fix as it comes back from a chunk: the precision stored, nothing more.
pub fn quantize(p: &TrackPoint) -> TrackPoint {
    Quantized::of(p).point()
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, zigzag(v));
}

/// Encodes points into one chunk. Any input encodes; see the module docs for the precision kept.
pub fn encode_chunk(points: &[TrackPoint]) -> Vec<u8> {
    let quantized: Vec<Quantized> = points.iter().map(Quantized::of).collect();
    let with_source = quantized.iter().any(|q| q.source != 0);
    let mut out = Vec::with_capacity(2 + points.len() * 6);
    out.push(if with_source {
        FORMAT_VERSION_SOURCE
    } else {
        FORMAT_VERSION
    });
    put_varint(&mut out, points.len() as u64);
    let mut prev: Option<Quantized> = None;
    let mut prev_dt = 0i64;
    for q in quantized {
        match prev {
            None => {
                put_signed(&mut out, q.lat);
                put_signed(&mut out, q.lon);
                put_signed(&mut out, q.t_ms);
                put_signed(&mut out, q.accuracy_dm);
            }
            Some(p) => {
                let dt = q.t_ms.wrapping_sub(p.t_ms);
                put_signed(&mut out, q.lat - p.lat);
                put_signed(&mut out, q.lon - p.lon);
                put_signed(&mut out, dt.wrapping_sub(prev_dt));
                put_signed(&mut out, q.accuracy_dm - p.accuracy_dm);
                prev_dt = dt;
            }
        }
        if with_source {
            out.push(q.source);
        }
        prev = Some(q);
    }
    out
}

/// Encodes a whole track as chunks of [`CHUNK_POINTS`].
pub fn encode_track(points: &[TrackPoint]) -> Vec<Vec<u8>> {
    points.chunks(CHUNK_POINTS).map(encode_chunk).collect()
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn byte(&mut self) -> Result<u8, TrackError> {
        let b = *self.bytes.get(self.pos).ok_or(TrackError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, TrackError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            // The tenth byte holds only the top bit of a u64.
            if shift == 63 && b > 1 {
                return Err(TrackError::Overflow);
            }
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(TrackError::Overflow)
    }

    fn signed(&mut self) -> Result<i64, TrackError> {
        self.varint().map(unzigzag)
    }
}

/// Decodes one chunk. The bytes may come from anywhere: a malformed chunk is an error, never a
/// panic, and the claimed point count is checked against the bytes present before allocating.
pub fn decode_chunk(bytes: &[u8]) -> Result<Vec<TrackPoint>, TrackError> {
    let mut r = Reader { bytes, pos: 0 };
    let version = r.byte()?;
    let with_source = match version {
        FORMAT_VERSION => false,
        FORMAT_VERSION_SOURCE => true,
        other => return Err(TrackError::UnknownVersion(other)),
    };
    let count = r.varint()?;
    let point_bytes = MIN_POINT_BYTES + usize::from(with_source);
    let max = (r.remaining() / point_bytes) as u64;
    if count > max {
        return Err(TrackError::CountTooLarge { count, max });
    }
    let mut points = Vec::with_capacity(count as usize);
    let mut prev: Option<Quantized> = None;
    let mut prev_dt = 0i64;
    for index in 0..count as usize {
        let fields = [r.signed()?, r.signed()?, r.signed()?, r.signed()?];
        let source = if with_source { r.byte()? } else { 0 };
        if source >> 4 != 0 || Provider::from_code(source >> 1).is_none() {
            return Err(TrackError::UnknownSource {
                index,
                byte: source,
            });
        }
        let q = match prev {
            None => Quantized {
                lat: fields[0],
                lon: fields[1],
                t_ms: fields[2],
                accuracy_dm: fields[3],
                source,
            },
            Some(p) => {
                let out_of_range = || TrackError::OutOfRange { index };
                let dt = prev_dt.wrapping_add(fields[2]);
                prev_dt = dt;
                Quantized {
                    lat: p.lat.checked_add(fields[0]).ok_or_else(out_of_range)?,
                    lon: p.lon.checked_add(fields[1]).ok_or_else(out_of_range)?,
                    t_ms: p.t_ms.wrapping_add(dt),
                    accuracy_dm: p
                        .accuracy_dm
                        .checked_add(fields[3])
                        .ok_or_else(out_of_range)?,
                    source,
                }
            }
        };
        if !q.in_range() {
            return Err(TrackError::OutOfRange { index });
        }
        points.push(q.point());
        prev = Some(q);
    }
    match r.remaining() {
        0 => Ok(points),
        n => Err(TrackError::TrailingBytes(n)),
    }
}

/// Decodes a track's chunks in order into one list of points.
pub fn decode_track<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<TrackPoint>, TrackError> {
    let mut points = Vec::new();
    for chunk in chunks {
        points.extend(decode_chunk(chunk)?);
    }
    Ok(points)
}

/// What a track measures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrackStats {
    pub points: usize,
    /// Sum of great-circle steps between consecutive fixes.
    pub distance_m: f64,
    /// Sum of the forward time steps between consecutive fixes: a device clock set back mid-patrol
    /// neither shortens nor lengthens the patrol.
    pub duration_ms: i64,
    /// See [`stats`] for how single glitches are kept out of it.
    pub max_speed_mps: f64,
    /// Time of the first fix in recorded order.
    pub started_ms: Option<i64>,
    /// Time of the last fix in recorded order.
    pub ended_ms: Option<i64>,
}

/// Steps shorter than this are merged with the next, so timestamp jitter cannot make a speed.
const MIN_SPEED_STEP_MS: i64 = 1_000;
/// Max speed is the largest median of this many consecutive step speeds.
const SPEED_MEDIAN_STEPS: usize = 5;

/// Measures a track in recorded order.
///
/// Max speed: speeds are taken over steps of at least 1 s (shorter steps merge into the next; a
/// step back in time restarts from that fix), and the maximum is taken over the median of every
/// 5 consecutive step speeds. One glitched fix makes two fast steps, which a median of five
/// ignores, while three or more fast steps — really moving fast — show. Glitches themselves are
/// flagged by the jump check in `rules`.
pub fn stats(points: &[TrackPoint]) -> TrackStats {
    let mut distance_m = 0.0;
    let mut duration_ms = 0i64;
    for w in points.windows(2) {
        distance_m += haversine_m(w[0].lat, w[0].lon, w[1].lat, w[1].lon);
        duration_ms = duration_ms.saturating_add(w[1].t_ms.saturating_sub(w[0].t_ms).max(0));
    }
    TrackStats {
        points: points.len(),
        distance_m,
        duration_ms,
        max_speed_mps: max_speed_mps(points),
        started_ms: points.first().map(|p| p.t_ms),
        ended_ms: points.last().map(|p| p.t_ms),
    }
}

fn max_speed_mps(points: &[TrackPoint]) -> f64 {
    let mut speeds = Vec::new();
    let mut anchor = match points.first() {
        Some(p) => p,
        None => return 0.0,
    };
    for p in &points[1..] {
        let dt = p.t_ms.saturating_sub(anchor.t_ms);
        if dt < 0 {
            anchor = p;
        } else if dt >= MIN_SPEED_STEP_MS {
            speeds.push(haversine_m(anchor.lat, anchor.lon, p.lat, p.lon) * 1000.0 / dt as f64);
            anchor = p;
        }
    }
    let window = SPEED_MEDIAN_STEPS.min(speeds.len());
    if window == 0 {
        return 0.0;
    }
    speeds
        .windows(window)
        .map(|w| {
            let mut sorted = w.to_vec();
            sorted.sort_by(f64::total_cmp);
            sorted[window / 2]
        })
        .fold(0.0, f64::max)
}

mod sim;
pub use sim::{walk_along, walking_track};

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: i64 = 1_717_200_000_000;

    fn point(lat: f64, lon: f64, t_ms: i64, accuracy_m: f32) -> TrackPoint {
        TrackPoint::new(lat, lon, t_ms, accuracy_m)
    }

    #[test]
    fn the_os_verdict_and_provider_round_trip_in_version_2() {
        use crate::model::Provider;
        let mut walk = walking_track(36.70, 117.00, T0, 30, 3);
        let plain = encode_chunk(&walk);
        assert_eq!(plain[0], FORMAT_VERSION);
        walk[3].mock = true;
        walk[4].provider = Provider::Fused;
        walk[5] = TrackPoint {
            mock: true,
            provider: Provider::Gps,
            ..walk[5]
        };
        let chunk = encode_chunk(&walk);
        assert_eq!(chunk[0], FORMAT_VERSION_SOURCE);
        assert_eq!(chunk.len(), plain.len() + walk.len());
        let back = decode_chunk(&chunk).unwrap();
        assert_eq!(back, walk.iter().map(quantize).collect::<Vec<_>>());
        assert!(back[3].mock && !back[4].mock && back[5].mock);
        assert_eq!(
            (back[4].provider, back[5].provider, back[6].provider),
            (Provider::Fused, Provider::Gps, Provider::Unknown)
        );
        // A source byte naming no provider is refused, not guessed.
        let mut bad = encode_chunk(&walk[3..4]);
        *bad.last_mut().unwrap() = 7 << 1;
        assert_eq!(
            decode_chunk(&bad),
            Err(TrackError::UnknownSource { index: 0, byte: 14 })
        );
    }

    fn quantized(points: &[TrackPoint]) -> Vec<TrackPoint> {
        points.iter().map(quantize).collect()
    }

    fn any_point() -> impl Strategy<Value = TrackPoint> {
        (
            prop::num::f64::ANY,
            prop::num::f64::ANY,
            any::<i64>(),
            prop::num::f32::ANY,
        )
            .prop_map(|(lat, lon, t, acc)| point(lat, lon, t, acc))
    }

    fn plausible_point() -> impl Strategy<Value = TrackPoint> {
        (
            -90.0..=90.0,
            -180.0..=180.0,
            T0..T0 + 86_400_000,
            0.0f32..100.0,
        )
            .prop_map(|(lat, lon, t, acc)| point(lat, lon, t, acc))
    }

    proptest! {
        #[test]
        fn chunks_round_trip_exactly(
            points in prop::collection::vec(prop_oneof![any_point(), plausible_point()], 0..150)
        ) {
            let expected = quantized(&points);
            let decoded = decode_chunk(&encode_chunk(&points)).unwrap();
            prop_assert_eq!(&decoded, &expected);
            // Re-encoding what was decoded is lossless: quantizing twice changes nothing.
            prop_assert_eq!(quantized(&decoded), expected);
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_chunk(&bytes);
            let mut versioned = vec![FORMAT_VERSION];
            versioned.extend(&bytes);
            if let Ok(points) = decode_chunk(&versioned) {
                prop_assert!(points.len() * MIN_POINT_BYTES <= bytes.len());
            }
        }

        #[test]
        fn every_truncation_is_an_error(points in prop::collection::vec(any_point(), 1..40)) {
            let chunk = encode_chunk(&points);
            for len in 0..chunk.len() {
                prop_assert!(decode_chunk(&chunk[..len]).is_err(), "prefix of {} decoded", len);
            }
        }
    }

    #[test]
    fn extreme_values_round_trip() {
        let points = [
            point(90.0, 180.0, i64::MAX, f32::INFINITY),
            point(-90.0, -180.0, i64::MIN, -1.0),
            point(f64::NAN, f64::INFINITY, 0, f32::NAN),
            point(1e300, -1e300, i64::MAX, 6553.5),
            point(-0.0000005, 0.0000005, -1, 0.04),
        ];
        let decoded = decode_chunk(&encode_chunk(&points)).unwrap();
        assert_eq!(decoded, quantized(&points));
        assert_eq!((decoded[2].lat, decoded[2].lon), (0.0, 180.0));
        assert_eq!((decoded[3].lat, decoded[3].lon), (90.0, -180.0));
        assert_eq!(decoded[0].accuracy_m, 6553.5);
        assert_eq!(decoded[1].accuracy_m, 0.0);
        assert_eq!(decoded[2].accuracy_m, 6553.5);
        assert_eq!(decoded[1].t_ms, i64::MIN);
    }

    #[test]
    fn hostile_headers_are_refused_before_allocating() {
        assert_eq!(decode_chunk(&[]), Err(TrackError::Truncated));
        assert_eq!(decode_chunk(&[3, 0]), Err(TrackError::UnknownVersion(3)));
        assert_eq!(decode_chunk(&[2, 0]), Ok(vec![]));
        assert_eq!(decode_chunk(&[1, 0]), Ok(vec![]));
        assert_eq!(decode_chunk(&[1, 0, 0]), Err(TrackError::TrailingBytes(1)));
        // A count of u64::MAX with four bytes behind it.
        let mut huge = vec![
            1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ];
        huge.extend([0, 0, 0, 0]);
        assert_eq!(
            decode_chunk(&huge),
            Err(TrackError::CountTooLarge {
                count: u64::MAX,
                max: 1
            })
        );
        assert_eq!(
            decode_chunk(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            Err(TrackError::Overflow)
        );
        // One point at latitude 90.000001°.
        let mut beyond_pole = vec![1, 1];
        put_signed(&mut beyond_pole, MAX_LAT_MICRODEGREES + 1);
        beyond_pole.extend([0, 0, 0]);
        assert_eq!(
            decode_chunk(&beyond_pole),
            Err(TrackError::OutOfRange { index: 0 })
        );
    }

    #[test]
    fn steady_one_hertz_costs_one_byte_of_time() {
        let still: Vec<_> = (0..10)
            .map(|i| point(36.7, 117.0, T0 + i * 1000, 5.0))
            .collect();
        let header = encode_chunk(&still[..2]).len();
        // From the third point on, each costs four single-byte zero deltas.
        assert_eq!(encode_chunk(&still).len(), header + 8 * 4);
    }

    #[test]
    fn an_hour_of_walking_fits_in_five_bytes_a_point() {
        let walk = walking_track(36.70, 117.00, T0, 3_600, 42);
        let chunks = encode_track(&walk);
        assert_eq!(chunks.len(), 3_600 / CHUNK_POINTS);
        let bytes: usize = chunks.iter().map(Vec::len).sum();
        assert!(bytes <= 5 * 3_600, "{bytes} bytes for 3600 points");
        let decoded = decode_track(chunks.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(decoded, quantized(&walk));
    }

    #[test]
    fn the_walking_track_walks() {
        let walk = walking_track(36.70, 117.00, T0, 601, 1);
        let s = stats(&walk);
        assert!(
            s.duration_ms >= 600_000 && s.duration_ms < 610_000,
            "{}",
            s.duration_ms
        );
        let mean = s.distance_m / (s.duration_ms as f64 / 1000.0);
        assert!((1.1..2.0).contains(&mean), "{mean} m/s");
        assert!(s.max_speed_mps < 3.0, "{}", s.max_speed_mps);
        assert!(walk.iter().all(|p| (3.0..=10.0).contains(&p.accuracy_m)));
        assert_eq!(walk, walking_track(36.70, 117.00, T0, 601, 1));
    }

    /// A walk due north at 0.0001° of latitude (11.12 m) every 10 s.
    fn straight_north(points: i64) -> Vec<TrackPoint> {
        (0..points)
            .map(|i| point(36.7 + i as f64 * 1e-4, 117.0, T0 + i * 10_000, 5.0))
            .collect()
    }

    #[test]
    fn stats_of_a_straight_track() {
        let s = stats(&straight_north(11));
        assert_eq!(s.points, 11);
        assert!((s.distance_m - 111.195).abs() < 0.01, "{}", s.distance_m);
        assert_eq!(s.duration_ms, 100_000);
        assert!(
            (s.max_speed_mps - 1.11195).abs() < 1e-3,
            "{}",
            s.max_speed_mps
        );
        assert_eq!((s.started_ms, s.ended_ms), (Some(T0), Some(T0 + 100_000)));
        assert_eq!(stats(&[]), TrackStats::default());
        let one = stats(&straight_north(1));
        assert_eq!(
            (one.points, one.duration_ms, one.max_speed_mps),
            (1, 0, 0.0)
        );
    }

    #[test]
    fn a_single_glitch_does_not_make_the_max_speed() {
        let mut track = straight_north(20);
        track[10].lon += 0.01; // about 900 m east for one fix
        assert!(stats(&track).max_speed_mps < 1.2);
        // Driving at 15 m/s for several steps does show.
        let mut driven = straight_north(10);
        let last = *driven.last().unwrap();
        driven.extend((1..8).map(|i| {
            point(
                last.lat + i as f64 * 1.35e-4,
                117.0,
                last.t_ms + i * 1000,
                5.0,
            )
        }));
        let max = stats(&driven).max_speed_mps;
        assert!((max - 15.0).abs() < 0.1, "{max}");
    }

    #[test]
    fn a_clock_set_back_neither_shortens_nor_lengthens_the_patrol() {
        let mut track = straight_north(11);
        for p in &mut track[6..] {
            p.t_ms -= 3_600_000;
        }
        let s = stats(&track);
        assert_eq!(s.duration_ms, 90_000);
        assert!((s.max_speed_mps - 1.11195).abs() < 1e-3);
        assert_eq!(
            decode_chunk(&encode_chunk(&track)).unwrap(),
            quantized(&track)
        );
    }
}
