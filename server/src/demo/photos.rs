//! The demo's photos, painted at seeding (nothing downloaded): a river bank, a forest edge or a
//! field, with the problem in it before rectification and without it after, carried in a JPEG
//! whose EXIF records the capture time (China time) and GPS position as a phone camera would.
//! Each goes through sync-core's `prepare` exactly as a phone's photo does, so the stored blob,
//! its thumbnail and the record's photo reference are the real thing.

use std::io::Cursor;

use exif::experimental::Writer;
use exif::{Field, In, Rational, Tag, Value};
use image::{Rgb, RgbImage};
use sync_core::model::{PhotoRef, PhotoRole, System};
use sync_core::photo::{prepare, PrepareOptions};

const WIDTH: u32 = 480;
const HEIGHT: u32 = 360;

/// A photo ready to store and reference.
#[derive(Debug, Clone)]
pub struct DemoPhoto {
    pub jpeg: Vec<u8>,
    pub photo_ref: PhotoRef,
    /// The user id that uploads it (the reporter, or the rectification's author).
    pub uploader: String,
}

/// A small deterministic generator (SplitMix64): the same seed paints the same picture.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn fill_rect(img: &mut RgbImage, x: i64, y: i64, w: i64, h: i64, color: [u8; 3]) {
    for yy in y.max(0)..(y + h).min(i64::from(HEIGHT)) {
        for xx in x.max(0)..(x + w).min(i64::from(WIDTH)) {
            img.put_pixel(xx as u32, yy as u32, Rgb(color));
        }
    }
}

fn fill_circle(img: &mut RgbImage, cx: i64, cy: i64, r: i64, color: [u8; 3]) {
    for yy in (cy - r).max(0)..(cy + r).min(i64::from(HEIGHT)) {
        for xx in (cx - r).max(0)..(cx + r).min(i64::from(WIDTH)) {
            if (xx - cx).pow(2) + (yy - cy).pow(2) <= r * r {
                img.put_pixel(xx as u32, yy as u32, Rgb(color));
            }
        }
    }
}

/// The scene of `system`, with the problem painted in when `problem` is set.
fn paint(system: System, problem: bool, seed: u64) -> RgbImage {
    let mut rng = Rng(seed);
    let horizon = 110 + rng.below(40) as u32;
    let shore = horizon + 70 + rng.below(30) as u32;
    let mut img = RgbImage::from_fn(WIDTH, HEIGHT, |x, y| {
        let n = ((x.wrapping_mul(7919) ^ y.wrapping_mul(104_729)) % 13) as u8;
        if y < horizon {
            // Sky, lighter towards the horizon.
            let t = (y * 60 / horizon) as u8;
            Rgb([150 + t, 190 + t / 2, 235])
        } else if y < shore {
            match system {
                System::River => Rgb([96 + n, 128 + n, 70]),
                System::Forest => Rgb([40 + n, 96 + n + (x % 9) as u8, 45]),
                System::Field => Rgb([150 + n, 170 + n, 80 + (y % 7) as u8 * 6]),
            }
        } else {
            match system {
                System::River => Rgb([50 + n, 100 + n + ((x / 12 + y / 5) % 6) as u8 * 4, 150 + n]),
                System::Forest => Rgb([110 + n, 90 + n, 60]),
                System::Field => {
                    // Furrows running towards the viewer.
                    let row = (x + (HEIGHT - y) / 3) % 24 < 12;
                    if row {
                        Rgb([88 + n, 140 + n, 60])
                    } else {
                        Rgb([120 + n, 96 + n, 62])
                    }
                }
            }
        }
    });
    // Distant trees or buildings on the horizon.
    for i in 0..12 {
        let x = i64::from(i * 40) + rng.below(20) as i64;
        let h = 15 + rng.below(35) as i64;
        fill_rect(&mut img, x, i64::from(horizon) - h, 26, h, [70, 110, 80]);
    }
    if system == System::Forest {
        for _ in 0..9 {
            let x = rng.below(u64::from(WIDTH)) as i64;
            let y = i64::from(shore) - 10 - rng.below(40) as i64;
            fill_rect(&mut img, x, y, 6, 40, [90, 60, 35]);
            fill_circle(&mut img, x + 3, y, 22, [30, 110 + rng.below(30) as u8, 40]);
        }
    }
    if problem {
        let (x0, y0) = (140 + rng.below(160) as i64, i64::from(shore) + 20);
        match system {
            System::River => {
                // Floating rubbish: bags, bottles and foam.
                for _ in 0..40 {
                    let colour = [[240, 240, 235], [220, 40, 40], [250, 210, 40], [40, 40, 40]]
                        [rng.below(4) as usize];
                    let (x, y) = (x0 + rng.below(180) as i64 - 40, y0 + rng.below(90) as i64);
                    if rng.below(2) == 0 {
                        fill_circle(&mut img, x, y, 3 + rng.below(6) as i64, colour);
                    } else {
                        fill_rect(
                            &mut img,
                            x,
                            y,
                            6 + rng.below(12) as i64,
                            4 + rng.below(5) as i64,
                            colour,
                        );
                    }
                }
            }
            System::Forest => {
                // Felled trunks and a scorched patch.
                fill_circle(&mut img, x0, y0, 45, [45, 35, 30]);
                for k in 0..5 {
                    fill_rect(
                        &mut img,
                        x0 - 60 + k * 28,
                        y0 + 20 + (k % 2) * 14,
                        70,
                        9,
                        [150, 110, 70],
                    );
                }
            }
            System::Field => {
                // A shed built on the field and a heap of spoil.
                fill_rect(&mut img, x0, y0 - 60, 110, 70, [170, 170, 175]);
                fill_rect(&mut img, x0 - 8, y0 - 72, 126, 14, [60, 90, 160]);
                fill_circle(&mut img, x0 + 180, y0 + 30, 35, [140, 120, 100]);
            }
        }
    }
    img
}

fn ascii(tag: Tag, text: &str) -> Field {
    Field {
        tag,
        ifd_num: In::PRIMARY,
        value: Value::Ascii(vec![text.as_bytes().to_vec()]),
    }
}

fn dms(degrees: f64) -> Value {
    let d = degrees.abs();
    let deg = d.floor();
    let min = ((d - deg) * 60.0).floor();
    let sec = (d - deg - min / 60.0) * 3600.0;
    Value::Rational(vec![
        Rational {
            num: deg as u32,
            denom: 1,
        },
        Rational {
            num: min as u32,
            denom: 1,
        },
        Rational {
            num: (sec * 10_000.0).round() as u32,
            denom: 10_000,
        },
    ])
}

/// `jpeg` with an EXIF segment recording `taken_ms` (as China time) and `[lon, lat]`.
fn with_exif(jpeg: &[u8], taken_ms: i64, [lon, lat]: [f64; 2]) -> Vec<u8> {
    let china = taken_ms / 1000 + 8 * 3600;
    let (days, secs) = (china.div_euclid(86_400), china.rem_euclid(86_400));
    let (y, m, d) = sync_core::rules::civil_from_days(days);
    let stamp = format!(
        "{y:04}:{m:02}:{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    );
    let fields = [
        ascii(Tag::Make, "ChiefSync demo"),
        ascii(Tag::DateTimeOriginal, &stamp),
        ascii(Tag::OffsetTimeOriginal, "+08:00"),
        Field {
            tag: Tag::GPSLatitudeRef,
            ifd_num: In::PRIMARY,
            value: Value::Ascii(vec![b"N".to_vec()]),
        },
        Field {
            tag: Tag::GPSLatitude,
            ifd_num: In::PRIMARY,
            value: dms(lat),
        },
        Field {
            tag: Tag::GPSLongitudeRef,
            ifd_num: In::PRIMARY,
            value: Value::Ascii(vec![b"E".to_vec()]),
        },
        Field {
            tag: Tag::GPSLongitude,
            ifd_num: In::PRIMARY,
            value: dms(lon),
        },
    ];
    let mut writer = Writer::new();
    for field in &fields {
        writer.push_field(field);
    }
    let mut tiff = Cursor::new(Vec::new());
    writer
        .write(&mut tiff, false)
        .expect("EXIF of a painted photo");
    let tiff = tiff.into_inner();
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

/// Paints, encodes and prepares one photo taken at `taken_ms` and `position`.
pub fn photo(
    system: System,
    role: PhotoRole,
    taken_ms: i64,
    position: [f64; 2],
    seed: u64,
    uploader: &str,
) -> DemoPhoto {
    let picture = paint(system, role != PhotoRole::After, seed);
    // The camera's JPEG, written with the same encoder phones prepare photos with (the image
    // crate's own is several times slower in debug builds, and the demo paints over a hundred).
    let mut camera = Vec::new();
    jpeg_encoder::Encoder::new(&mut camera, 88)
        .encode(
            picture.as_raw(),
            WIDTH as u16,
            HEIGHT as u16,
            jpeg_encoder::ColorType::Rgb,
        )
        .expect("encode a painted photo");
    let camera = with_exif(&camera, taken_ms, position);
    let prepared = prepare(&camera, &PrepareOptions::default()).expect("prepare a painted photo");
    DemoPhoto {
        photo_ref: prepared.photo_ref(role),
        jpeg: prepared.jpeg,
        uploader: uploader.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn painted_photos_carry_their_time_and_place() {
        let taken = 1_764_291_600_000; // 2025-11-28 09:00 in Jinan
        let at = [116.975_31, 36.721_07];
        let p = photo(
            System::River,
            PhotoRole::Before,
            taken,
            at,
            7,
            "u-demo-chief",
        );
        assert_eq!(p.photo_ref.taken_at_ms, Some(taken));
        let [lon, lat] = p.photo_ref.position.unwrap();
        assert!(
            (lon - at[0]).abs() < 1e-5 && (lat - at[1]).abs() < 1e-5,
            "{lon} {lat}"
        );
        assert_eq!(p.photo_ref.role, PhotoRole::Before);
        let after = photo(
            System::River,
            PhotoRole::After,
            taken,
            at,
            7,
            "u-demo-handler",
        );
        assert_ne!(
            after.photo_ref.sha256, p.photo_ref.sha256,
            "the problem is gone after"
        );
    }
}
