//! Pictures painted in code for the photo tests, so no binary fixtures live in the repository:
//! textured RGB images, their JPEG and PNG encodings, and JPEGs carrying a hand-built EXIF block.

use std::io::Cursor;

use exif::experimental::Writer;
use exif::{Field, In, Rational, Tag, Value};
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

/// A picture with gradients and noise, so encoders and resizers do real work. The top-left
/// quarter is red and the rest blue-grey, so tests can tell which way up it is.
pub fn textured(width: u32, height: u32) -> RgbImage {
    let mut state = 0x9e37_79b9_u32;
    RgbImage::from_fn(width, height, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state & 0x1f) as u8;
        if x < width / 2 && y < height / 2 {
            Rgb([220 + noise, 20 + noise, 20 + noise])
        } else {
            Rgb([40 + noise, 60 + (x % 64) as u8, 120 + (y % 64) as u8])
        }
    })
}

pub fn encode(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    DynamicImage::ImageRgb8(image.clone())
        .write_to(&mut Cursor::new(&mut bytes), format)
        .expect("encode test picture");
    bytes
}

pub fn jpeg(image: &RgbImage) -> Vec<u8> {
    encode(image, ImageFormat::Jpeg)
}

/// Degrees, minutes and seconds.
pub type Dms = (u32, u32, f64);

/// The EXIF fields a test wants in its photo.
#[derive(Debug, Default)]
pub struct ExifSpec {
    pub orientation: Option<u16>,
    /// `DateTimeOriginal`, e.g. `"2025:11:28 08:00:00"`.
    pub taken: Option<&'static str>,
    /// `OffsetTimeOriginal`, e.g. `"+08:00"`.
    pub offset: Option<&'static str>,
    /// `SubSecTimeOriginal`, e.g. `"25"`.
    pub subsec: Option<&'static str>,
    /// Latitude, `N`/`S`, longitude, `E`/`W`.
    pub gps: Option<(Dms, u8, Dms, u8)>,
}

fn ascii(tag: Tag, text: &str) -> Field {
    Field {
        tag,
        ifd_num: In::PRIMARY,
        value: Value::Ascii(vec![text.as_bytes().to_vec()]),
    }
}

fn dms((deg, min, sec): Dms) -> Value {
    Value::Rational(vec![
        Rational { num: deg, denom: 1 },
        Rational { num: min, denom: 1 },
        Rational {
            num: (sec * 100.0).round() as u32,
            denom: 100,
        },
    ])
}

/// A raw EXIF block (TIFF structure) holding the fields of `spec`.
pub fn exif_block(spec: &ExifSpec) -> Vec<u8> {
    let mut fields = vec![ascii(Tag::Make, "ChiefSync test camera")];
    if let Some(o) = spec.orientation {
        fields.push(Field {
            tag: Tag::Orientation,
            ifd_num: In::PRIMARY,
            value: Value::Short(vec![o]),
        });
    }
    if let Some(t) = spec.taken {
        fields.push(ascii(Tag::DateTimeOriginal, t));
    }
    if let Some(o) = spec.offset {
        fields.push(ascii(Tag::OffsetTimeOriginal, o));
    }
    if let Some(s) = spec.subsec {
        fields.push(ascii(Tag::SubSecTimeOriginal, s));
    }
    if let Some((lat, lat_ref, lon, lon_ref)) = spec.gps {
        let gps = |tag, value| Field {
            tag,
            ifd_num: In::PRIMARY,
            value,
        };
        fields.push(gps(Tag::GPSLatitude, dms(lat)));
        fields.push(gps(Tag::GPSLatitudeRef, Value::Ascii(vec![vec![lat_ref]])));
        fields.push(gps(Tag::GPSLongitude, dms(lon)));
        fields.push(gps(Tag::GPSLongitudeRef, Value::Ascii(vec![vec![lon_ref]])));
    }
    let mut writer = Writer::new();
    for field in &fields {
        writer.push_field(field);
    }
    let mut out = Cursor::new(Vec::new());
    writer.write(&mut out, false).expect("write EXIF");
    out.into_inner()
}

/// `jpeg` with an APP1 EXIF segment inserted right after its start-of-image marker, where
/// cameras put it.
pub fn with_exif(jpeg: &[u8], spec: &ExifSpec) -> Vec<u8> {
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "not a JPEG");
    let tiff = exif_block(spec);
    let length = u16::try_from(2 + 6 + tiff.len()).expect("EXIF fits one segment");
    let mut out = Vec::with_capacity(jpeg.len() + tiff.len() + 10);
    out.extend_from_slice(&jpeg[..2]);
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A valid PNG signature and header chunk declaring `width`×`height` RGBA, followed by an
/// empty image-data chunk and the end chunk: a few dozen bytes that claim gigabytes.
pub fn png_header_only(width: u32, height: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = crc32fast::Hasher::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    // 8 bits per sample, colour type 6 (RGBA), deflate, adaptive filtering, no interlace.
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(&mut png, b"IDAT", &[]);
    chunk(&mut png, b"IEND", &[]);
    png
}
