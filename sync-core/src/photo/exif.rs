//! What a photo's EXIF says about where, when and which way up it was taken.
//!
//! Capture time is `DateTimeOriginal` (with `SubSecTimeOriginal`). EXIF writes it as a wall-clock
//! time without a zone; phones that know better add `OffsetTimeOriginal` (EXIF 2.31), which is
//! then used. Without it the time is read as China Standard Time (UTC+8), the zone of every
//! ChiefSync deployment, since that is the clock a chief's phone shows. Position is
//! `GPSLatitude`/`GPSLatitudeRef` and `GPSLongitude`/`GPSLongitudeRef` as WGS84 `[lon, lat]`;
//! it is not converted to or from GCJ-02.
//!
//! Nothing here corrects doubtful values: a camera clock set to 2000 gives a capture time in
//! 2000, for the evidence checks to flag. Values that cannot be a time or a place at all (month
//! 13, latitude 95°, a missing N/S reference, the 0°/0° that cameras write without a fix) are
//! treated as absent. Unreadable EXIF yields no facts rather than an error. This module only
//! parses; it never decodes pixels.

use exif::{DateTime, Exif, Field, In, Reader, Tag, Value};

/// China Standard Time, minutes east of UTC: the zone assumed when EXIF does not name one.
pub const CHINA_OFFSET_MINUTES: i16 = 8 * 60;

/// The facts ChiefSync keeps from a photo's EXIF.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExifFacts {
    /// EXIF orientation, 1 (upright) to 8.
    pub orientation: u16,
    /// Capture time, Unix milliseconds.
    pub taken_at_ms: Option<i64>,
    /// Capture position `[lon, lat]`, WGS84 degrees.
    pub position: Option<[f64; 2]>,
}

impl Default for ExifFacts {
    fn default() -> Self {
        Self {
            orientation: 1,
            taken_at_ms: None,
            position: None,
        }
    }
}

impl ExifFacts {
    /// Reads the facts from a raw EXIF block (the TIFF structure inside a JPEG's APP1 segment,
    /// a PNG `eXIf` chunk or a WebP `EXIF` chunk).
    pub fn read(raw: Vec<u8>) -> Self {
        let mut reader = Reader::new();
        // Phones write slightly malformed EXIF often enough; keep every field that parsed.
        reader.continue_on_error(true);
        let exif = match reader.read_raw(raw) {
            Ok(exif) => exif,
            Err(exif::Error::PartialResult(partial)) => partial.into_inner().0,
            Err(_) => return Self::default(),
        };
        Self {
            orientation: orientation(&exif).unwrap_or(1),
            taken_at_ms: taken_at_ms(&exif),
            position: position(&exif),
        }
    }
}

fn field(exif: &Exif, tag: Tag) -> Option<&Field> {
    exif.get_field(tag, In::PRIMARY)
}

fn ascii(exif: &Exif, tag: Tag) -> Option<&[u8]> {
    match &field(exif, tag)?.value {
        Value::Ascii(parts) => parts.first().map(Vec::as_slice),
        _ => None,
    }
}

fn orientation(exif: &Exif) -> Option<u16> {
    let value = field(exif, Tag::Orientation)?.value.get_uint(0)?;
    u16::try_from(value).ok().filter(|v| (1..=8).contains(v))
}

fn taken_at_ms(exif: &Exif) -> Option<i64> {
    let mut time = DateTime::from_ascii(ascii(exif, Tag::DateTimeOriginal)?).ok()?;
    if let Some(subsec) = ascii(exif, Tag::SubSecTimeOriginal) {
        // A garbled fraction of a second is dropped; the second itself still holds.
        if time.parse_subsec(subsec).is_err() {
            time.nanosecond = None;
        }
    }
    if let Some(offset) = ascii(exif, Tag::OffsetTimeOriginal) {
        if time.parse_offset(offset).is_err() {
            time.offset = None;
        }
    }
    unix_ms(&time)
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The instant an EXIF wall-clock time names, in Unix milliseconds.
fn unix_ms(time: &DateTime) -> Option<i64> {
    let (year, month, day) = (
        i64::from(time.year),
        i64::from(time.month),
        i64::from(time.day),
    );
    let valid = (1900..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && time.hour < 24
        && time.minute < 60
        // 60 is a leap second.
        && time.second <= 60;
    if !valid {
        return None;
    }
    let offset_minutes = i64::from(time.offset.unwrap_or(CHINA_OFFSET_MINUTES));
    let seconds = days_from_civil(year, month, day) * 86_400
        + i64::from(time.hour) * 3_600
        + i64::from(time.minute) * 60
        + i64::from(time.second)
        - offset_minutes * 60;
    let millis = i64::from(time.nanosecond.unwrap_or(0) / 1_000_000);
    Some(seconds * 1_000 + millis)
}

/// Degrees from EXIF's degrees, minutes and seconds rationals.
fn degrees(exif: &Exif, tag: Tag) -> Option<f64> {
    let Value::Rational(parts) = &field(exif, tag)?.value else {
        return None;
    };
    if parts.is_empty() || parts.iter().any(|r| r.denom == 0) {
        return None;
    }
    Some(
        parts
            .iter()
            .take(3)
            .zip([1.0, 60.0, 3_600.0])
            .map(|(r, per_degree)| r.to_f64() / per_degree)
            .sum(),
    )
}

fn position(exif: &Exif) -> Option<[f64; 2]> {
    let sign = |tag: Tag, positive: u8, negative: u8| match ascii(exif, tag)?.first()? {
        c if c.eq_ignore_ascii_case(&positive) => Some(1.0),
        c if c.eq_ignore_ascii_case(&negative) => Some(-1.0),
        _ => None,
    };
    let lat = sign(Tag::GPSLatitudeRef, b'N', b'S')? * degrees(exif, Tag::GPSLatitude)?;
    let lon = sign(Tag::GPSLongitudeRef, b'E', b'W')? * degrees(exif, Tag::GPSLongitude)?;
    let on_earth = crate::geo::check_position([lon, lat]).is_ok();
    let no_fix = lat == 0.0 && lon == 0.0;
    (on_earth && !no_fix).then_some([lon, lat])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::photo::testimg::{exif_block, ExifSpec};

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2025, 11, 28), 20_420);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn capture_time_without_offset_is_china_time() {
        let facts = ExifFacts::read(exif_block(&ExifSpec {
            taken: Some("2025:11:28 08:00:00"),
            ..ExifSpec::default()
        }));
        // 2025-11-28 08:00 in Jinan is midnight UTC.
        assert_eq!(facts.taken_at_ms, Some(20_420 * 86_400_000));
    }

    #[test]
    fn capture_time_uses_the_recorded_offset_and_fraction() {
        let facts = ExifFacts::read(exif_block(&ExifSpec {
            taken: Some("2025:11:28 01:00:00"),
            offset: Some("+01:00"),
            subsec: Some("25"),
            ..ExifSpec::default()
        }));
        assert_eq!(facts.taken_at_ms, Some(20_420 * 86_400_000 + 250));
    }

    #[test]
    fn impossible_times_are_absent_but_wrong_clocks_are_kept() {
        let read = |taken| {
            ExifFacts::read(exif_block(&ExifSpec {
                taken: Some(taken),
                ..ExifSpec::default()
            }))
            .taken_at_ms
        };
        assert_eq!(read("2025:13:01 10:00:00"), None);
        assert_eq!(read("2025:02:29 10:00:00"), None);
        assert_eq!(read("0000:00:00 00:00:00"), None);
        assert_eq!(read("    :  :     :  :  "), None);
        // A camera whose clock was never set: a real instant, left for the evidence checks.
        assert_eq!(
            read("2000:01:01 08:00:00"),
            Some(days_from_civil(2000, 1, 1) * 86_400_000)
        );
    }

    #[test]
    fn gps_position_follows_the_hemisphere_references() {
        let facts = ExifFacts::read(exif_block(&ExifSpec {
            gps: Some(((36, 43, 12.0), b'N', (116, 58, 48.0), b'E')),
            ..ExifSpec::default()
        }));
        let [lon, lat] = facts.position.unwrap();
        assert!((lat - 36.72).abs() < 1e-9, "{lat}");
        assert!((lon - 116.98).abs() < 1e-9, "{lon}");

        let south_west = ExifFacts::read(exif_block(&ExifSpec {
            gps: Some(((33, 52, 0.0), b'S', (151, 12, 0.0), b'W')),
            ..ExifSpec::default()
        }));
        let [lon, lat] = south_west.position.unwrap();
        assert!(lat < 0.0 && lon < 0.0);

        let no_fix = ExifFacts::read(exif_block(&ExifSpec {
            gps: Some(((0, 0, 0.0), b'N', (0, 0, 0.0), b'E')),
            ..ExifSpec::default()
        }));
        assert_eq!(no_fix.position, None);
    }

    #[test]
    fn orientation_defaults_to_upright_and_garbage_yields_nothing() {
        let rotated = ExifFacts::read(exif_block(&ExifSpec {
            orientation: Some(6),
            ..ExifSpec::default()
        }));
        assert_eq!(rotated.orientation, 6);
        let bogus = ExifFacts::read(exif_block(&ExifSpec {
            orientation: Some(42),
            ..ExifSpec::default()
        }));
        assert_eq!(bogus.orientation, 1);
        assert_eq!(
            ExifFacts::read(b"not exif at all".to_vec()),
            ExifFacts::default()
        );
    }
}
