//! Preparing a camera photo on the phone: the small, upright JPEG that is stored, referenced and
//! uploaded, named by its SHA-256, with the capture time and position its EXIF recorded.
//!
//! Preparing the same bytes with the same options always yields the same JPEG, hence the same
//! name, so attaching a photo twice never makes two. This module reads no files.

use crate::model::{PhotoRef, PhotoRole};

use super::render::render;
use super::{sha256_hex, DecodeLimits, PhotoError, PhotoFormat};

/// How a phone prepares photos.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrepareOptions {
    /// The long side of the prepared photo is at most this many pixels. 1920 keeps a problem
    /// legible on the dashboard at a few hundred kilobytes per photo.
    pub max_side: u32,
    /// JPEG quality, 1 to 100.
    pub quality: u8,
    /// Whether the phone keeps its own copy of the original next to the prepared photo (it is
    /// never uploaded either way).
    pub keep_original: bool,
    /// Camera files larger than this are refused before decoding.
    pub max_file_bytes: u64,
    pub limits: DecodeLimits,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        Self {
            max_side: 1920,
            quality: 80,
            keep_original: false,
            max_file_bytes: 64 * 1024 * 1024,
            limits: DecodeLimits::default(),
        }
    }
}

/// A photo ready to store and upload.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedPhoto {
    /// The upright, downscaled JPEG. It carries no EXIF: what matters of it is in the fields
    /// below, and the rest (camera serial numbers, thumbnails) need not travel.
    pub jpeg: Vec<u8>,
    /// Lower-case hex SHA-256 of `jpeg`.
    pub sha256: String,
    pub width: u32,
    pub height: u32,
    /// EXIF capture time, Unix milliseconds (see the `exif` module for the time zone rule).
    pub taken_at_ms: Option<i64>,
    /// EXIF position `[lon, lat]`.
    pub position: Option<[f64; 2]>,
    /// The format of the camera file it was prepared from.
    pub original_format: PhotoFormat,
}

impl PreparedPhoto {
    /// The reference a patrol or issue document keeps to this photo.
    pub fn photo_ref(&self, role: PhotoRole) -> PhotoRef {
        PhotoRef {
            sha256: self.sha256.clone(),
            role,
            taken_at_ms: self.taken_at_ms,
            position: self.position,
            bytes: self.jpeg.len() as u64,
        }
    }
}

/// Prepares a camera photo (JPEG, PNG or WebP bytes): decode within the limits, shrink to
/// `max_side`, turn upright by the EXIF orientation, encode as JPEG at `quality`, hash.
pub fn prepare(bytes: &[u8], opts: &PrepareOptions) -> Result<PreparedPhoto, PhotoError> {
    let size = bytes.len() as u64;
    if size > opts.max_file_bytes {
        return Err(PhotoError::TooLarge {
            bytes: size,
            max: opts.max_file_bytes,
        });
    }
    let rendered = render(bytes, &opts.limits, opts.max_side, opts.quality)?;
    Ok(PreparedPhoto {
        sha256: sha256_hex(&rendered.jpeg),
        jpeg: rendered.jpeg,
        width: rendered.width,
        height: rendered.height,
        taken_at_ms: rendered.exif.taken_at_ms,
        position: rendered.exif.position,
        original_format: rendered.format,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::photo::render::{decode, sniff};
    use crate::photo::testimg::{encode, jpeg, png_header_only, textured, with_exif, ExifSpec};
    use image::ImageFormat;

    fn is_red(p: &image::Rgb<u8>) -> bool {
        p[0] > 150 && p[2] < 100
    }

    #[test]
    fn a_12_megapixel_photo_comes_out_1920_wide_as_jpeg_named_by_its_hash() {
        let camera = jpeg(&textured(4000, 3000));
        let prepared = prepare(&camera, &PrepareOptions::default()).unwrap();
        assert_eq!((prepared.width, prepared.height), (1920, 1440));
        assert_eq!(sniff(&prepared.jpeg).unwrap(), PhotoFormat::Jpeg);
        let back = decode(&prepared.jpeg, &DecodeLimits::default()).unwrap();
        assert_eq!(back.image.dimensions(), (1920, 1440));
        assert_eq!(prepared.sha256, sha256_hex(&prepared.jpeg));
        assert_eq!(prepared.sha256.len(), 64);
        assert!(prepared.jpeg.len() < camera.len());
        assert_eq!(prepared.original_format, PhotoFormat::Jpeg);
        assert_eq!(prepared.taken_at_ms, None);

        let photo = prepared.photo_ref(PhotoRole::Evidence);
        assert_eq!(photo.sha256, prepared.sha256);
        assert_eq!(photo.bytes, prepared.jpeg.len() as u64);
        assert_eq!(photo.role, PhotoRole::Evidence);
    }

    #[test]
    fn portrait_photos_are_limited_on_their_long_side_and_small_ones_keep_their_size() {
        let opts = PrepareOptions {
            max_side: 100,
            ..PrepareOptions::default()
        };
        let tall = prepare(&jpeg(&textured(150, 300)), &opts).unwrap();
        assert_eq!((tall.width, tall.height), (50, 100));
        let small = prepare(&jpeg(&textured(80, 60)), &opts).unwrap();
        assert_eq!((small.width, small.height), (80, 60));
    }

    #[test]
    fn exif_orientation_6_turns_the_photo_upright() {
        // Stored landscape with the red quarter top-left; orientation 6 says the camera was
        // turned a quarter clockwise, so upright it is portrait with the red quarter top-right.
        let stored = jpeg(&textured(320, 160));
        let upright = |orientation| {
            let camera = with_exif(
                &stored,
                &ExifSpec {
                    orientation: Some(orientation),
                    ..ExifSpec::default()
                },
            );
            let prepared = prepare(&camera, &PrepareOptions::default()).unwrap();
            decode(&prepared.jpeg, &DecodeLimits::default())
                .unwrap()
                .image
        };
        let turned = upright(6);
        assert_eq!(turned.dimensions(), (160, 320));
        assert!(is_red(turned.get_pixel(120, 80)), "top-right is red");
        assert!(!is_red(turned.get_pixel(40, 80)), "top-left is not");
        assert!(!is_red(turned.get_pixel(120, 240)), "bottom-right is not");

        let as_stored = upright(1);
        assert_eq!(as_stored.dimensions(), (320, 160));
        assert!(is_red(as_stored.get_pixel(40, 40)));
    }

    #[test]
    fn capture_time_and_position_come_from_exif() {
        let camera = with_exif(
            &jpeg(&textured(64, 48)),
            &ExifSpec {
                taken: Some("2025:11:28 09:30:00"),
                gps: Some(((36, 43, 12.0), b'N', (116, 58, 48.0), b'E')),
                ..ExifSpec::default()
            },
        );
        let prepared = prepare(&camera, &PrepareOptions::default()).unwrap();
        // 09:30 in Jinan is 01:30 UTC.
        let midnight_utc = 20_420 * 86_400_000;
        assert_eq!(prepared.taken_at_ms, Some(midnight_utc + 90 * 60_000));
        let [lon, lat] = prepared.position.unwrap();
        assert!((lon - 116.98).abs() < 1e-9 && (lat - 36.72).abs() < 1e-9);
        let photo = prepared.photo_ref(PhotoRole::Before);
        assert_eq!(photo.taken_at_ms, prepared.taken_at_ms);
        assert_eq!(photo.position, prepared.position);
        // The prepared JPEG itself carries no EXIF.
        assert_eq!(
            decode(&prepared.jpeg, &DecodeLimits::default())
                .unwrap()
                .exif
                .taken_at_ms,
            None
        );
    }

    #[test]
    fn png_and_webp_photos_are_prepared_too_and_preparing_is_deterministic() {
        let picture = textured(300, 200);
        for format in [ImageFormat::Png, ImageFormat::WebP] {
            let camera = encode(&picture, format);
            let a = prepare(&camera, &PrepareOptions::default()).unwrap();
            let b = prepare(&camera, &PrepareOptions::default()).unwrap();
            assert_eq!((a.width, a.height), (300, 200));
            assert_eq!(sniff(&a.jpeg).unwrap(), PhotoFormat::Jpeg);
            assert_eq!(a.sha256, b.sha256, "{format:?}");
        }
    }

    #[test]
    fn a_png_declaring_100000_by_100000_is_refused_from_its_header() {
        let bomb = png_header_only(100_000, 100_000);
        assert!(bomb.len() < 100);
        match prepare(&bomb, &PrepareOptions::default()) {
            Err(PhotoError::TooManyPixels { width, height, .. }) => {
                assert_eq!((width, height), (100_000, 100_000));
            }
            other => panic!("expected TooManyPixels, got {other:?}"),
        }
        // Within the side limits but beyond the memory cap: refused before any pixel buffer.
        let opts = PrepareOptions {
            limits: DecodeLimits {
                max_alloc: 1024 * 1024,
                ..DecodeLimits::default()
            },
            ..PrepareOptions::default()
        };
        assert!(matches!(
            prepare(&png_header_only(1000, 1000), &opts),
            Err(PhotoError::OverAllocation { .. })
        ));
    }

    #[test]
    fn truncated_text_and_oversized_files_are_refused() {
        let picture = textured(400, 300);
        let camera = jpeg(&picture);
        for cut in [camera.len() / 2, camera.len() - 2, 200] {
            assert!(
                matches!(
                    prepare(&camera[..cut], &PrepareOptions::default()),
                    Err(PhotoError::Corrupt { .. })
                ),
                "JPEG cut at {cut}"
            );
        }
        for format in [ImageFormat::Png, ImageFormat::WebP] {
            let whole = encode(&picture, format);
            assert!(
                matches!(
                    prepare(&whole[..whole.len() * 2 / 3], &PrepareOptions::default()),
                    Err(PhotoError::Corrupt { .. })
                ),
                "{format:?} cut short"
            );
        }
        assert!(matches!(
            prepare(b"river chief patrol notes", &PrepareOptions::default()),
            Err(PhotoError::NotAnImage)
        ));
        let opts = PrepareOptions {
            max_file_bytes: 1000,
            ..PrepareOptions::default()
        };
        assert!(matches!(
            prepare(&camera, &opts),
            Err(PhotoError::TooLarge { max: 1000, .. })
        ));
    }
}
