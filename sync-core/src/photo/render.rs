//! The picture pipeline the phone and the server share: recognise the format, read the header
//! and check it against the limits, decode, shrink to fit a size, turn upright, encode as JPEG.
//!
//! Shrinking happens before turning upright: the long side is the same either way, and rotating
//! a 1920 px picture costs a fraction of rotating the 12-megapixel original. The resizer is
//! `fast_image_resize` (SIMD convolution, Lanczos3) and the encoder `jpeg-encoder` (AVX2 colour
//! conversion and DCT, 4:2:0 chroma averaged below quality 90); together they prepare a phone
//! photo several times faster than ImageMagick does.
//!
//! Decoders fill a JPEG cut short with grey rather than fail, so a JPEG must run to its
//! end-of-image marker before it is decoded: a photo truncated on disk or in transit is refused.
//!
//! This module knows nothing of hashes, documents, files or uploads.

use std::io::Cursor;

use fast_image_resize as fr;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbImage};

use super::exif::ExifFacts;
use super::{DecodeLimits, PhotoError, PhotoFormat};

/// A decoded picture, still in its stored orientation.
pub(super) struct Decoded {
    pub format: PhotoFormat,
    pub image: RgbImage,
    pub exif: ExifFacts,
}

/// A picture re-encoded as JPEG, upright.
pub(super) struct Rendered {
    /// The format of the picture it was rendered from.
    pub format: PhotoFormat,
    pub jpeg: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub exif: ExifFacts,
}

/// Recognises JPEG, PNG and WebP by their first bytes, whatever the file is called.
pub(super) fn sniff(bytes: &[u8]) -> Result<PhotoFormat, PhotoError> {
    match image::guess_format(bytes) {
        Ok(ImageFormat::Jpeg) => Ok(PhotoFormat::Jpeg),
        Ok(ImageFormat::Png) => Ok(PhotoFormat::Png),
        Ok(ImageFormat::WebP) => Ok(PhotoFormat::WebP),
        Ok(other) => Err(PhotoError::Unsupported {
            detail: format!("{other:?} pictures are not accepted"),
        }),
        Err(_) => Err(PhotoError::NotAnImage),
    }
}

/// Decodes `bytes` into RGB, refusing from the header alone anything beyond `limits`.
pub(super) fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Decoded, PhotoError> {
    let format = sniff(bytes)?;
    if format == PhotoFormat::Jpeg && !jpeg_reaches_its_end(bytes) {
        return Err(PhotoError::Corrupt {
            detail: "the JPEG stops before its end-of-image marker (cut short)".into(),
        });
    }
    let image_format = match format {
        PhotoFormat::Jpeg => ImageFormat::Jpeg,
        PhotoFormat::Png => ImageFormat::Png,
        PhotoFormat::WebP => ImageFormat::WebP,
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format);
    // Width and height are checked below so the error can name them; the allocation cap is
    // also handed to the decoders, which apply it to their own buffers (PNG chunks, WebP frames).
    let mut decoder_limits = Limits::default();
    decoder_limits.max_alloc = Some(limits.max_alloc);
    reader.limits(decoder_limits);
    let mut decoder = reader.into_decoder().map_err(|e| decode_error(e, limits))?;

    let (width, height) = decoder.dimensions();
    if width > limits.max_width || height > limits.max_height {
        return Err(PhotoError::TooManyPixels {
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
        });
    }
    let needed = decoder.total_bytes();
    if needed > limits.max_alloc {
        return Err(PhotoError::OverAllocation {
            max_alloc: limits.max_alloc,
            detail: format!(
                "{width}×{height} px as {:?} takes {needed} bytes",
                decoder.color_type()
            ),
        });
    }
    // EXIF is evidence about the photo, not the photo: when it cannot be read the picture is
    // still taken, and the missing capture time and position are flagged by the evidence checks.
    let exif = match decoder.exif_metadata() {
        Ok(Some(raw)) => ExifFacts::read(raw),
        Ok(None) | Err(_) => ExifFacts::default(),
    };
    let image = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(e, limits))?;
    Ok(Decoded {
        format,
        image: image.into_rgb8(),
        exif,
    })
}

/// Decodes a JPEG's every scan, as [`decode`] does, but turns only its brightness into pixels:
/// the check an upload gets when its picture is not kept. The same decoder (zune-jpeg, which
/// `image` uses), with the same tolerance, reads the same headers, tables and entropy-coded
/// data of every component, so whatever the full decode refuses (a cut file, damaged headers
/// or tables, a scan the decoder cannot follow) is refused here too; the colour planes are not
/// upsampled nor converted to RGB, which was most of the cost. Returns the width and height.
/// Colour models other than YCbCr and grey (CMYK, YCCK: no phone writes them) take the full
/// decode.
pub(super) fn check_jpeg(bytes: &[u8], limits: &DecodeLimits) -> Result<(u32, u32), PhotoError> {
    use zune_core::bytestream::ZCursor;
    use zune_core::colorspace::ColorSpace;
    use zune_core::options::DecoderOptions;

    if !jpeg_reaches_its_end(bytes) {
        return Err(PhotoError::Corrupt {
            detail: "the JPEG stops before its end-of-image marker (cut short)".into(),
        });
    }
    let corrupt = |e: zune_jpeg::errors::DecodeErrors| PhotoError::Corrupt {
        detail: e.to_string(),
    };
    // The same options as `image`'s decoder, but brightness out; the size is checked below so
    // the refusal names it.
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX)
        .jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(corrupt)?;
    let (width, height) = decoder.dimensions().ok_or_else(|| PhotoError::Corrupt {
        detail: "the JPEG's header gives no size".into(),
    })?;
    let (width, height) = (
        u32::try_from(width).unwrap_or(u32::MAX),
        u32::try_from(height).unwrap_or(u32::MAX),
    );
    if width > limits.max_width || height > limits.max_height {
        return Err(PhotoError::TooManyPixels {
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
        });
    }
    let colour = decoder.input_colorspace();
    let channels: u64 = match colour {
        Some(ColorSpace::YCbCr) => 3,
        Some(ColorSpace::Luma) => 1,
        _ => {
            let decoded = decode(bytes, limits)?;
            return Ok(decoded.image.dimensions());
        }
    };
    // The bound the full decode applies to its RGB (or grey) picture, so the same uploads are
    // refused for their size.
    let needed = u64::from(width) * u64::from(height) * channels;
    if needed > limits.max_alloc {
        return Err(PhotoError::OverAllocation {
            max_alloc: limits.max_alloc,
            detail: format!("{width}×{height} px as {channels} channels takes {needed} bytes"),
        });
    }
    decoder.decode().map_err(corrupt)?;
    Ok((width, height))
}

/// Whether a JPEG's segments and entropy-coded scans run, in order, to an end-of-image marker.
/// Bytes after the marker (some phones append their own data to camera files) are allowed here;
/// the server's upload check refuses them.
fn jpeg_reaches_its_end(bytes: &[u8]) -> bool {
    jpeg_end(bytes).is_some()
}

/// Where a JPEG's end-of-image marker ends, following its segments and scans in order.
pub(super) fn jpeg_end(bytes: &[u8]) -> Option<usize> {
    const EOI: u8 = 0xD9;
    const SOS: u8 = 0xDA;
    let standalone = |marker: u8| (0xD0..=0xD7).contains(&marker) || marker == 0x01;
    // After the start-of-image marker.
    let mut at = 2;
    loop {
        // A marker: 0xFF, possibly padded with more 0xFF, then its code.
        if bytes.get(at) != Some(&0xFF) {
            return None;
        }
        while bytes.get(at) == Some(&0xFF) {
            at += 1;
        }
        let &marker = bytes.get(at)?;
        at += 1;
        if marker == EOI {
            return Some(at);
        }
        if standalone(marker) {
            continue;
        }
        let length = bytes.get(at..at + 2)?;
        at += usize::from(u16::from_be_bytes([length[0], length[1]]));
        if at > bytes.len() {
            return None;
        }
        if marker == SOS {
            // Entropy-coded data runs to the next 0xFF that is neither a stuffed zero nor a
            // restart marker.
            loop {
                let offset = bytes[at..].iter().position(|&b| b == 0xFF)?;
                at += offset;
                match bytes.get(at + 1) {
                    Some(&next) if next == 0x00 || (0xD0..=0xD7).contains(&next) => at += 2,
                    Some(_) => break,
                    None => return None,
                }
            }
        }
    }
}

fn decode_error(error: ImageError, limits: &DecodeLimits) -> PhotoError {
    match error {
        ImageError::Limits(e) => PhotoError::OverAllocation {
            max_alloc: limits.max_alloc,
            detail: e.to_string(),
        },
        ImageError::Unsupported(e) => PhotoError::Unsupported {
            detail: e.to_string(),
        },
        // Decoding errors, and the end of input reached early: a cut or damaged file.
        other => PhotoError::Corrupt {
            detail: other.to_string(),
        },
    }
}

/// The size of a `width`×`height` picture shrunk so its long side is at most `max_side`,
/// keeping the aspect ratio; pictures already small enough keep their size.
pub(super) fn fit(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let long = width.max(height);
    if long <= max_side {
        return (width, height);
    }
    let scale = |side: u32| {
        let scaled =
            (u64::from(side) * u64::from(max_side) + u64::from(long) / 2) / u64::from(long);
        // `scaled <= max_side` because `side <= long`, so it fits in u32.
        u32::try_from(scaled.max(1)).unwrap_or(max_side)
    };
    (scale(width), scale(height))
}

/// Shrinks `image` so its long side is at most `max_side`.
pub(super) fn shrink(image: RgbImage, max_side: u32) -> Result<RgbImage, PhotoError> {
    let (width, height) = image.dimensions();
    let (target_w, target_h) = fit(width, height, max_side);
    if (target_w, target_h) == (width, height) {
        return Ok(image);
    }
    let render_error = |detail: String| PhotoError::Render { detail };
    let src = fr::images::ImageRef::new(width, height, image.as_raw(), fr::PixelType::U8x3)
        .map_err(|e| render_error(e.to_string()))?;
    let mut dst = fr::images::Image::new(target_w, target_h, fr::PixelType::U8x3);
    let options =
        fr::ResizeOptions::new().resize_alg(fr::ResizeAlg::Convolution(fr::FilterType::Lanczos3));
    fr::Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| render_error(e.to_string()))?;
    RgbImage::from_raw(target_w, target_h, dst.into_vec())
        .ok_or_else(|| render_error("resized buffer has the wrong size".into()))
}

/// Turns a picture upright according to its EXIF orientation (1 to 8; anything else is upright).
pub(super) fn orient(image: RgbImage, exif_orientation: u16) -> RgbImage {
    match u8::try_from(exif_orientation)
        .ok()
        .and_then(Orientation::from_exif)
    {
        None | Some(Orientation::NoTransforms) => image,
        Some(orientation) => {
            let mut image = DynamicImage::ImageRgb8(image);
            image.apply_orientation(orientation);
            image.into_rgb8()
        }
    }
}

/// Encodes an RGB picture as baseline JPEG at `quality` (1 to 100).
pub(super) fn encode_jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>, PhotoError> {
    let render_error = |detail: String| PhotoError::Render { detail };
    let (width, height) = image.dimensions();
    let too_wide = || render_error(format!("{width}×{height} px is too large for JPEG"));
    let w = u16::try_from(width).map_err(|_| too_wide())?;
    let h = u16::try_from(height).map_err(|_| too_wide())?;
    // Phone photos of this size land around 0.2–0.6 bytes a pixel at quality 80.
    let mut jpeg = Vec::with_capacity(image.as_raw().len() / 8);
    let mut encoder = jpeg_encoder::Encoder::new(&mut jpeg, quality.clamp(1, 100));
    // Averaging each 2×2 block of chroma (as libjpeg does) rather than sampling one pixel keeps
    // colour edges clean and the file a little smaller.
    encoder.set_chroma_subsampling_method(jpeg_encoder::ChromaSubsamplingMethod::Average);
    // Optimised Huffman tables would save about a tenth, but zune-jpeg 0.5 (the server's
    // decoder, through `image`) misreads jpeg-encoder's optimised 4:2:0 output as green while
    // libjpeg reads it fine; standard tables decode the same everywhere.
    encoder
        .encode(image.as_raw(), w, h, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| render_error(e.to_string()))?;
    Ok(jpeg)
}

/// Decodes within `limits`, shrinks to `max_side`, turns upright and re-encodes at `quality`.
pub(super) fn render(
    bytes: &[u8],
    limits: &DecodeLimits,
    max_side: u32,
    quality: u8,
) -> Result<Rendered, PhotoError> {
    let decoded = decode(bytes, limits)?;
    let small = shrink(decoded.image, max_side)?;
    let upright = orient(small, decoded.exif.orientation);
    Ok(Rendered {
        format: decoded.format,
        jpeg: encode_jpeg(&upright, quality)?,
        width: upright.width(),
        height: upright.height(),
        exif: decoded.exif,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_keeps_the_aspect_ratio_and_never_enlarges() {
        assert_eq!(fit(4000, 3000, 1920), (1920, 1440));
        assert_eq!(fit(3000, 4000, 1920), (1440, 1920));
        assert_eq!(fit(1920, 1080, 1920), (1920, 1080));
        assert_eq!(fit(800, 600, 1920), (800, 600));
        assert_eq!(fit(12_000, 10, 320), (320, 1));
        assert_eq!(fit(4000, 3000, 320), (320, 240));
    }

    #[test]
    fn a_jpeg_must_reach_its_end_marker_but_may_carry_bytes_after_it() {
        let whole = crate::photo::testimg::jpeg(&crate::photo::testimg::textured(64, 48));
        assert!(jpeg_reaches_its_end(&whole));
        let mut trailed = whole.clone();
        trailed.extend_from_slice(b"vendor data after the image");
        assert!(jpeg_reaches_its_end(&trailed));
        assert!(decode(&trailed, &DecodeLimits::default()).is_ok());
        for cut in [2, 3, 20, whole.len() / 2, whole.len() - 1] {
            assert!(!jpeg_reaches_its_end(&whole[..cut]), "cut at {cut}");
        }
    }

    #[test]
    fn our_jpegs_decode_to_the_colours_they_were_given() {
        let picture = crate::photo::testimg::textured(96, 64);
        let back = decode(
            &encode_jpeg(&picture, 80).unwrap(),
            &DecodeLimits::default(),
        )
        .unwrap()
        .image;
        let total: u64 = back
            .as_raw()
            .iter()
            .zip(picture.as_raw())
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        let mean_error = total as f64 / picture.as_raw().len() as f64;
        assert!(mean_error < 12.0, "mean error {mean_error}");
    }

    #[test]
    fn text_and_other_formats_are_told_apart() {
        assert!(matches!(
            sniff(b"this is a patrol report, not a photo"),
            Err(PhotoError::NotAnImage)
        ));
        assert!(matches!(sniff(b""), Err(PhotoError::NotAnImage)));
        assert!(matches!(
            sniff(b"GIF89a\x01\x00\x01\x00"),
            Err(PhotoError::Unsupported { .. })
        ));
    }
}
