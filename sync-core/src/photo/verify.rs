//! What the server decides about an uploaded photo before it stores it under its name, and the
//! thumbnail it renders for the dashboard. Pure functions over bytes: the HTTP handlers call
//! them (off the async workers, since decoding takes tens of milliseconds) and map the errors to
//! statuses — [`PhotoError::TooLarge`] to 413, the other refusals to 422.
//!
//! A photo is judged by its bytes, never by the type or name it was sent with. Phones upload
//! only what they re-encoded themselves, so an accepted upload is exactly one picture: nothing
//! after the JPEG's end-of-image marker, the PNG's `IEND` or the WebP's RIFF length, no ZIP
//! directory inside it, and no HTML, SVG or XML markup in its first kilobyte (where old browsers
//! looked when guessing a type). That refuses HTML or SVG sent as `image/jpeg` and polyglots
//! (a JPEG followed by a page or script, a JPEG that is also a ZIP/JAR) — the bytes the server
//! stores and serves are the picture and nothing else.
//!
//! This module neither stores nor serves anything.

use super::render::{check_jpeg, decode, jpeg_end, render, sniff};
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
    // than the cut and is refused here rather than shown grey on the dashboard. A JPEG's
    // every scan is decoded without making its colour picture, which is not kept
    // (`check_jpeg`).
    let (format, width, height) = match sniff(bytes)? {
        PhotoFormat::Jpeg => {
            let (width, height) = check_jpeg(bytes, &limits.decode)?;
            (PhotoFormat::Jpeg, width, height)
        }
        _ => {
            let decoded = decode(bytes, &limits.decode)?;
            let (width, height) = decoded.image.dimensions();
            (decoded.format, width, height)
        }
    };
    only_the_picture(bytes, format)?;
    Ok(ImageInfo {
        format,
        width,
        height,
        bytes: size,
    })
}

/// Refuses bytes that are something besides the picture (see the module overview).
fn only_the_picture(bytes: &[u8], format: PhotoFormat) -> Result<(), PhotoError> {
    let refuse = |detail: String| Err(PhotoError::Unsupported { detail });
    let end = match format {
        PhotoFormat::Jpeg => jpeg_end(bytes),
        PhotoFormat::Png => png_end(bytes),
        PhotoFormat::WebP => webp_end(bytes),
    };
    match end {
        Some(end) if end == bytes.len() => {}
        Some(end) => {
            return refuse(format!(
                "{} bytes follow the end of the {format} picture",
                bytes.len() - end
            ))
        }
        None => return refuse(format!("the {format} picture has no proper end")),
    }
    let head = &bytes[..bytes.len().min(1024)];
    if let Some(tag) = MARKUP.iter().find(|tag| contains_ignoring_case(head, tag)) {
        return refuse(format!(
            "markup ({}) inside the picture's header",
            String::from_utf8_lossy(tag)
        ));
    }
    if ends_with_zip_directory(bytes) {
        return refuse("the picture is also a ZIP archive".into());
    }
    Ok(())
}

/// Starts of HTML, SVG and XML documents that browsers or plugins act on; long enough that
/// compressed picture data does not spell one by chance (a four-letter tag in the random part
/// of a photo's first kilobyte: about one photo in a million).
const MARKUP: &[&[u8]] = &[
    b"<html",
    b"<head",
    b"<body",
    b"<script",
    b"<svg",
    b"<iframe",
    b"<!doctype",
    b"<?xml",
    b"<meta",
    b"<object",
    b"<embed",
];

fn contains_ignoring_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

/// Whether a ZIP end-of-central-directory record closes the file, as ZIP readers (and Java
/// applets, the GIFAR attack) look for it: its signature, then a comment that runs exactly to
/// the end. Picture data matching all of that by chance is vanishingly unlikely.
fn ends_with_zip_directory(bytes: &[u8]) -> bool {
    const EOCD: &[u8] = b"PK\x05\x06";
    const EOCD_LEN: usize = 22;
    let from = bytes.len().saturating_sub(EOCD_LEN + usize::from(u16::MAX));
    (from..bytes.len().saturating_sub(EOCD_LEN - 1)).any(|at| {
        bytes[at..].starts_with(EOCD) && {
            let comment = u16::from_le_bytes([bytes[at + 20], bytes[at + 21]]);
            at + EOCD_LEN + usize::from(comment) == bytes.len()
        }
    })
}

/// Where a PNG's `IEND` chunk ends.
fn png_end(bytes: &[u8]) -> Option<usize> {
    let mut at = 8;
    loop {
        let length = u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?) as usize;
        let kind = bytes.get(at + 4..at + 8)?;
        at = at.checked_add(12)?.checked_add(length)?;
        if at > bytes.len() {
            return None;
        }
        if kind == b"IEND" {
            return Some(at);
        }
    }
}

/// Where a WebP's RIFF container ends, by its declared size (padded to even).
fn webp_end(bytes: &[u8]) -> Option<usize> {
    let size = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?) as usize;
    let end = 8usize.checked_add(size)?.checked_add(size % 2)?;
    (end <= bytes.len()).then_some(end)
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

    /// The JPEG check that skips the colour picture refuses what the full decode refuses: a
    /// file cut anywhere, headers and tables damaged byte by byte, scans overwritten, a grey
    /// picture as well as a colour one. Each damaged file is judged both ways.
    #[test]
    fn a_cut_or_damaged_jpeg_is_refused_as_the_full_decode_refuses_it() {
        let limits = DecodeLimits::default();
        let colour = jpeg(&textured(320, 240));
        let mut grey = Vec::new();
        image::DynamicImage::ImageLuma8(
            image::DynamicImage::ImageRgb8(textured(96, 64)).into_luma8(),
        )
        .write_to(&mut std::io::Cursor::new(&mut grey), ImageFormat::Jpeg)
        .unwrap();
        let mut refused = 0;
        for photo in [&colour, &grey] {
            assert_eq!(
                check_jpeg(photo, &limits).unwrap(),
                decode(photo, &limits).unwrap().image.dimensions()
            );
            let mut damaged: Vec<Vec<u8>> = Vec::new();
            // Cut at every 97th byte: the end marker is gone.
            damaged.extend(
                (2..photo.len() - 1)
                    .step_by(97)
                    .map(|at| photo[..at].to_vec()),
            );
            // Every byte of the headers and tables before the scan, set to each of a few
            // values; then stretches of the scan overwritten.
            let scan = photo.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
            for at in 2..scan + 14 {
                for value in [0x00, 0x01, 0x7F, 0xFF] {
                    let mut copy = photo.clone();
                    copy[at] = value;
                    damaged.push(copy);
                }
            }
            for at in (scan + 14..photo.len() - 40).step_by(53) {
                let mut copy = photo.clone();
                copy[at..at + 24].fill(0x00);
                damaged.push(copy);
            }
            for bytes in &damaged {
                let full = decode(bytes, &limits);
                let checked = check_jpeg(bytes, &limits);
                assert_eq!(
                    checked.is_err(),
                    full.is_err(),
                    "the check and the full decode disagree: {:?} against {:?}",
                    checked.as_ref().err(),
                    full.as_ref().err().map(ToString::to_string)
                );
                if let Err(err) = checked {
                    refused += 1;
                    assert!(
                        !matches!(err, PhotoError::TooLarge { .. } | PhotoError::Render { .. }),
                        "{err:?}"
                    );
                    assert!(
                        validate_upload(bytes, &sha256_hex(bytes), &UploadLimits::default())
                            .is_err()
                    );
                }
            }
        }
        // Every cut file at least, and damage to the headers, is refused.
        assert!(refused > 100, "only {refused} damaged files refused");
        let cut = &colour[..colour.len() - 300];
        assert!(matches!(
            validate_upload(cut, &sha256_hex(cut), &UploadLimits::default()),
            Err(PhotoError::Corrupt { .. })
        ));
        // A huge picture's header is refused before anything is decoded.
        let mut wide = colour.clone();
        let sof = wide.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        wide[sof + 7..sof + 9].copy_from_slice(&60_000u16.to_be_bytes());
        assert!(matches!(
            check_jpeg(&wide, &limits),
            Err(PhotoError::TooManyPixels { width: 60_000, .. })
        ));
    }

    fn unsupported(bytes: &[u8]) -> String {
        match validate_upload(bytes, &sha256_hex(bytes), &UploadLimits::default()) {
            Err(PhotoError::Unsupported { detail }) => detail,
            other => panic!("expected a refusal as unsupported, got {other:?}"),
        }
    }

    #[test]
    fn only_the_picture_is_accepted_never_what_follows_or_hides_in_it() {
        let photo = jpeg(&textured(320, 240));
        let page = b"<html><body><script>alert(document.domain)</script></body></html>";
        assert!(unsupported(&[photo.as_slice(), page].concat()).contains("follow the end"));
        // Camera files with trailing bytes are the phone's to prepare, not the server's to keep.
        assert!(unsupported(&[photo.as_slice(), &[0u8; 16]].concat()).contains("16 bytes"));
        let png = encode(&textured(64, 64), ImageFormat::Png);
        assert!(unsupported(&[png.as_slice(), page].concat()).contains("png"));
        let webp = encode(&textured(64, 64), ImageFormat::WebP);
        validate_upload(&webp, &sha256_hex(&webp), &UploadLimits::default()).unwrap();
        assert!(unsupported(&[webp.as_slice(), page].concat()).contains("webp"));

        let mut commented = photo[..2].to_vec();
        commented.extend_from_slice(&[0xFF, 0xFE, 0x00, 0x0E]);
        commented.extend_from_slice(b"<SVG onload");
        commented.push(b' ');
        commented.extend_from_slice(&photo[2..]);
        assert!(unsupported(&commented).contains("<svg"));

        for text in [&page[..], b"<svg xmlns='http://www.w3.org/2000/svg'/>"] {
            assert!(matches!(
                validate_upload(text, &sha256_hex(text), &UploadLimits::default()),
                Err(PhotoError::NotAnImage)
            ));
        }
    }

    #[test]
    fn a_zip_directory_closing_the_file_is_found_wherever_the_picture_ends() {
        let mut archive = b"PK\x03\x04 some stored file".to_vec();
        archive.extend_from_slice(b"PK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x00");
        archive.extend_from_slice(&[0; 8]);
        // The comment length covers the JPEG end marker that follows the record.
        archive.extend_from_slice(&2u16.to_le_bytes());
        let mut polyglot = vec![0xFF, 0xD8, 0x12, 0x34];
        polyglot.extend_from_slice(&archive);
        polyglot.extend_from_slice(&[0xFF, 0xD9]);
        assert!(ends_with_zip_directory(&polyglot));
        assert!(!ends_with_zip_directory(&polyglot[..polyglot.len() - 1]));
        let photo = jpeg(&textured(320, 240));
        assert!(!ends_with_zip_directory(&photo));
        assert!(ends_with_zip_directory(
            &[photo.as_slice(), &archive[..archive.len() - 2], &[0, 0]].concat()
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
