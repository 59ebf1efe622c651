//! What the server decides about an uploaded photo before it stores it under its name, and the
//! thumbnail it renders for the dashboard. Pure functions over bytes: the HTTP handlers call
//! them (off the async workers, since decoding takes tens of milliseconds) and map the errors to
//! statuses — [`PhotoError::TooLarge`] to 413, the other refusals to 422.
//!
//! This module neither stores nor serves anything.

use super::render::{decode, render};
use super::{sha256_hex, DecodeLimits, PhotoError, PhotoFormat};

/// The long side of a dashboard thumbnail, pixels.
pub const THUMBNAIL_SIDE: u32 = 320;
/// Thumbnails are viewed small; a lower quality than the photo's saves most of their bytes.
pub const THUMBNAIL_QUALITY: u8 = 75;

/// What the server accepts as a photo upload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    /// Bodies larger than this are refused. Prepared photos are well under a megabyte; the
    /// margin leaves room for phones configured to keep full-resolution photos.
    pub max_bytes: u64,
    pub decode: DecodeLimits,
}

impl Default for UploadLimits {
    fn default() -> Self {
        Self {
            max_bytes: 20 * 1024 * 1024,
            decode: DecodeLimits::default(),
        }
    }
}

/// What an accepted upload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    pub format: PhotoFormat,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
}

/// Checks an uploaded photo before it is stored under `expected_sha256`: not larger than the
/// limit, hashing to its name, and decoding in full as JPEG, PNG or WebP within the decode
/// limits. The cheap checks come first, so an oversized or misnamed body is never decoded.
pub fn validate_upload(
    bytes: &[u8],
    expected_sha256: &str,
    limits: &UploadLimits,
) -> Result<ImageInfo, PhotoError> {
    let size = bytes.len() as u64;
    if size > limits.max_bytes {
        return Err(PhotoError::TooLarge {
            bytes: size,
            max: limits.max_bytes,
        });
    }
    let actual = sha256_hex(bytes);
    // Names are lower-case hex; any other spelling is a different name.
    if actual != expected_sha256 {
        return Err(PhotoError::HashMismatch {
            expected: expected_sha256.to_owned(),
            actual,
        });
    }
    // A full decode, not just the header: a photo cut short in transit decodes no further
    // than the cut and is refused here rather than shown grey on the dashboard.
    let decoded = decode(bytes, &limits.decode)?;
    Ok(ImageInfo {
        format: decoded.format,
        width: decoded.image.width(),
        height: decoded.image.height(),
        bytes: size,
    })
}

/// A JPEG at most `max_side` pixels on its long side, upright, for the dashboard's lists.
pub fn thumbnail(
    bytes: &[u8],
    max_side: u32,
    limits: &DecodeLimits,
) -> Result<Vec<u8>, PhotoError> {
    Ok(render(bytes, limits, max_side, THUMBNAIL_QUALITY)?.jpeg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::photo::testimg::{encode, jpeg, png_header_only, textured, with_exif, ExifSpec};
    use image::ImageFormat;

    #[test]
    fn a_photo_under_its_own_name_is_accepted_with_its_size() {
        let photo = jpeg(&textured(640, 480));
        let name = sha256_hex(&photo);
        let info = validate_upload(&photo, &name, &UploadLimits::default()).unwrap();
        assert_eq!(
            info,
            ImageInfo {
                format: PhotoFormat::Jpeg,
                width: 640,
                height: 480,
                bytes: photo.len() as u64
            }
        );
        let png = encode(&textured(64, 64), ImageFormat::Png);
        let info = validate_upload(&png, &sha256_hex(&png), &UploadLimits::default()).unwrap();
        assert_eq!(info.format, PhotoFormat::Png);
    }

    #[test]
    fn a_wrong_hash_is_refused_with_both_hashes() {
        let photo = jpeg(&textured(64, 64));
        let wrong = sha256_hex(b"some other photo");
        match validate_upload(&photo, &wrong, &UploadLimits::default()) {
            Err(PhotoError::HashMismatch { expected, actual }) => {
                assert_eq!(expected, wrong);
                assert_eq!(actual, sha256_hex(&photo));
            }
            other => panic!("expected HashMismatch, got {other:?}"),
        }
    }

    #[test]
    fn oversized_bombs_truncated_and_text_uploads_are_refused() {
        let refuse = |bytes: &[u8], limits: &UploadLimits| {
            validate_upload(bytes, &sha256_hex(bytes), limits).unwrap_err()
        };
        let photo = jpeg(&textured(400, 300));
        let small = UploadLimits {
            max_bytes: 100,
            ..UploadLimits::default()
        };
        assert!(matches!(
            refuse(&photo, &small),
            PhotoError::TooLarge { max: 100, .. }
        ));
        assert!(matches!(
            refuse(&photo[..photo.len() * 2 / 3], &UploadLimits::default()),
            PhotoError::Corrupt { .. }
        ));
        assert!(matches!(
            refuse(b"GET /api/v1/issues", &UploadLimits::default()),
            PhotoError::NotAnImage
        ));
        assert!(matches!(
            refuse(&png_header_only(100_000, 100_000), &UploadLimits::default()),
            PhotoError::TooManyPixels { .. }
        ));
    }

    #[test]
    fn thumbnails_fit_320_and_are_upright() {
        let camera = with_exif(
            &jpeg(&textured(1200, 900)),
            &ExifSpec {
                orientation: Some(8),
                ..ExifSpec::default()
            },
        );
        let thumb = thumbnail(&camera, THUMBNAIL_SIDE, &DecodeLimits::default()).unwrap();
        let image = decode(&thumb, &DecodeLimits::default()).unwrap().image;
        assert_eq!(image.dimensions(), (240, 320));
        assert!(thumb.len() < 40_000, "{} bytes", thumb.len());
        assert!(matches!(
            thumbnail(b"not a photo", THUMBNAIL_SIDE, &DecodeLimits::default()),
            Err(PhotoError::NotAnImage)
        ));
    }
}
