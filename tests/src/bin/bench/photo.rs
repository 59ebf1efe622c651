//! `photo`: what a 12-megapixel camera photo costs to prepare on the phone (decode, orient,
//! resize to 1920, encode at quality 80, hash) and to thumbnail on the server, side by side
//! with ImageMagick's `convert in.jpg -resize 1920x1920 -quality 80 out.jpg` on the same file
//! in the same run. The photo is painted here (gradients, stripes and noise, so the encoders do
//! real work) and written to a temporary directory; nothing is read from the repository.

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use image::codecs::jpeg::JpegEncoder;
use image::{Rgb, RgbImage};
use sync_core::model::PhotoRole;
use sync_core::photo::{
    prepare, thumbnail, validate_upload, DecodeLimits, PrepareOptions, UploadLimits, THUMBNAIL_SIDE,
};

/// Camera apps save at about this quality.
const CAMERA_QUALITY: u8 = 90;

/// A scene-like picture: sky and ground gradients, stripes at several frequencies, a dark
/// "river" band and pixel noise.
fn camera_picture(width: u32, height: u32) -> RgbImage {
    let mut state = 0x2545_f491_u32;
    RgbImage::from_fn(width, height, |x, y| {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let noise = (state % 24) as f32 - 12.0;
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        let stripes = 30.0 * ((x as f32 * 0.05).sin() * (y as f32 * 0.031).cos());
        let fine = 12.0 * ((x + 2 * y) as f32 * 0.7).sin();
        let river = if (0.55..0.7).contains(&(fy + 0.1 * (fx * 9.0).sin())) {
            -60.0
        } else {
            0.0
        };
        let base = if fy < 0.4 {
            [110.0 + 80.0 * fy, 150.0 + 60.0 * fy, 220.0 - 40.0 * fy]
        } else {
            [90.0 + 40.0 * fx, 120.0 + 30.0 * fy, 60.0 + 20.0 * fx]
        };
        let px = |c: f32| (c + stripes + fine + river + noise).clamp(0.0, 255.0) as u8;
        Rgb([px(base[0]), px(base[1]), px(base[2])])
    })
}

fn encode_camera_jpeg(picture: &RgbImage) -> Vec<u8> {
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut Cursor::new(&mut jpeg), CAMERA_QUALITY)
        .encode_image(picture)
        .expect("encode the camera photo");
    jpeg
}

/// The same JPEG with an EXIF block saying the phone was held upright (orientation 6: the
/// stored picture must be turned a quarter clockwise), as most portrait phone photos are.
fn with_orientation_6(jpeg: &[u8]) -> Vec<u8> {
    // Big-endian TIFF header, one IFD with a single entry: Orientation (0x0112), SHORT, 1, 6.
    let tiff: [u8; 26] = [
        b'M', b'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0,
    ];
    let length = (2 + 6 + tiff.len()) as u16;
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(b"Exif\0\0");
    out.extend_from_slice(&tiff);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Runs `f` once to warm up, then `runs` times; returns the median in milliseconds and the
/// last result.
fn median_ms<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut last = f();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        last = f();
        times.push(start.elapsed().as_secs_f64() * 1_000.0);
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], last)
}

fn convert_available() -> bool {
    Command::new("convert")
        .arg("-version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn imagemagick(input: &Path, output: &Path) {
    let status = Command::new("convert")
        .arg(input)
        .args(["-resize", "1920x1920", "-quality", "80"])
        .arg(output)
        .status()
        .expect("run convert");
    assert!(status.success(), "convert failed: {status}");
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        // Best effort: the directory lives under the system's temporary directory anyway.
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub fn run(runs: usize, width: u32, height: u32, input: Option<&Path>) {
    let dir =
        TempDir(std::env::temp_dir().join(format!("chiefsync-photo-bench-{}", std::process::id())));
    fs::create_dir_all(&dir.0).expect("temporary directory");
    let camera = match input {
        Some(path) => fs::read(path).expect("read the camera photo"),
        None => encode_camera_jpeg(&camera_picture(width, height)),
    };
    let in_jpg = dir.0.join("in.jpg");
    fs::write(&in_jpg, &camera).expect("write the camera photo");
    let rotated = with_orientation_6(&camera);
    let opts = PrepareOptions::default();

    let (prepare_ms, prepared) =
        median_ms(runs, || prepare(&camera, &opts).expect("prepare the photo"));
    let (rotated_ms, upright) = median_ms(runs, || {
        prepare(&rotated, &opts).expect("prepare the turned photo")
    });
    let (thumb_ms, thumb) = median_ms(runs, || {
        thumbnail(&camera, THUMBNAIL_SIDE, &DecodeLimits::default()).expect("thumbnail")
    });
    let photo = prepared.photo_ref(PhotoRole::Evidence);
    let (verify_ms, _) = median_ms(runs, || {
        validate_upload(&prepared.jpeg, &photo.sha256, &UploadLimits::default())
            .expect("validate the upload")
    });

    let source = match input {
        Some(path) => format!("{}", path.display()),
        None => format!("painted {width}×{height} camera JPEG, quality {CAMERA_QUALITY}"),
    };
    println!(
        "photo: {source} ({:.1} MB), median of {runs} runs",
        camera.len() as f64 / 1e6
    );
    println!(
        "  phone prepare      : {prepare_ms:7.1} ms  decode, orient, resize to {}×{}, JPEG q{}, SHA-256 → {} KB",
        prepared.width,
        prepared.height,
        opts.quality,
        prepared.jpeg.len() / 1000
    );
    println!(
        "  … EXIF-turned photo: {rotated_ms:7.1} ms  (orientation 6 → {}×{})",
        upright.width, upright.height
    );
    println!(
        "  server thumbnail   : {thumb_ms:7.1} ms  ≤ {THUMBNAIL_SIDE} px from the camera photo → {} KB",
        thumb.len() / 1000
    );
    println!("  server verify      : {verify_ms:7.1} ms  hash + full decode of the prepared photo");

    if !convert_available() {
        println!(
            "  ImageMagick        : skipped, `convert` not found (apt-get install imagemagick)"
        );
        return;
    }
    let output = dir.0.join("out.jpg");
    let (magick_ms, ()) = median_ms(runs, || imagemagick(&in_jpg, &output));
    let magick_bytes = fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    println!(
        "  ImageMagick convert: {magick_ms:7.1} ms  -resize 1920x1920 -quality 80 (its own threads) → {} KB",
        magick_bytes / 1000
    );
    println!(
        "  ratio              : {:.1}x faster than ImageMagick (goal ≥ 2x)",
        magick_ms / prepare_ms
    );
}
