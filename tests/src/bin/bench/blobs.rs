//! The server's side of a photo upload, in process and on the real file store: accepting a
//! prepared photo whole and in 64 KiB chunks (each chunk fsynced, the last one validated and
//! committed), the first thumbnail against a cached one, and rebuilding the photo index from the
//! change feed after a restart.

use std::time::Instant;

use image::RgbImage;
use server::blobs::{Blobs, ChunkRange, FileBlobs, UploadKey, DEFAULT_MAX_PHOTO_BYTES};
use server::{demo, AppState, Settings};
use sync_core::photo::{prepare, PrepareOptions};

const CHUNK: usize = 64 * 1024;

/// A prepared photo (what a phone uploads) from a painted 2400×1800 camera picture.
fn prepared(seed: u32) -> Vec<u8> {
    let picture = RgbImage::from_fn(2_400, 1_800, |x, y| {
        let v = (x / 7 + y / 5).wrapping_mul(seed.wrapping_add(3)) ^ (x * y / 97);
        image::Rgb([v as u8, (x / 16) as u8, (y / 12) as u8])
    });
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(picture)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .expect("encode camera picture");
    prepare(&png, &PrepareOptions::default())
        .expect("prepare")
        .jpeg
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn ms(started: Instant) -> f64 {
    started.elapsed().as_secs_f64() * 1_000.0
}

pub fn run(runs: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let blobs = Blobs::new(
        Box::new(FileBlobs::open(dir.path()).expect("blob dir")),
        DEFAULT_MAX_PHOTO_BYTES,
    );
    let photos: Vec<Vec<u8>> = (0..runs as u32 * 2).map(prepared).collect();
    let size_kb = photos[0].len() as f64 / 1024.0;
    let (mut whole, mut chunked, mut duplicate, mut first_thumb, mut cached_thumb) =
        (vec![], vec![], vec![], vec![], vec![]);
    for pair in photos.chunks(2) {
        let key = |bytes: &[u8]| UploadKey {
            sha256: sync_core::photo::sha256_hex(bytes),
            user: "u-demo-chief".into(),
        };
        let started = Instant::now();
        blobs
            .put_whole(&key(&pair[0]), &pair[0], 0, true)
            .expect("whole");
        whole.push(ms(started));
        let started = Instant::now();
        blobs
            .put_whole(&key(&pair[0]), &pair[0], 0, true)
            .expect("duplicate");
        duplicate.push(ms(started));

        let photo = &pair[1];
        let started = Instant::now();
        for first in (0..photo.len()).step_by(CHUNK) {
            let end = (first + CHUNK).min(photo.len());
            let range = ChunkRange {
                first: first as u64,
                last: end as u64 - 1,
                total: photo.len() as u64,
            };
            blobs
                .put_chunk(&key(photo), range, &photo[first..end], 0, true)
                .expect("chunk");
        }
        chunked.push(ms(started));

        let sha = key(&pair[0]).sha256;
        let started = Instant::now();
        blobs.thumbnail(&sha).expect("thumbnail");
        first_thumb.push(ms(started));
        let started = Instant::now();
        blobs.thumbnail(&sha).expect("cached thumbnail");
        cached_thumb.push(ms(started));
    }

    let state_dir = tempfile::tempdir().expect("temp dir");
    let state = AppState::open(&Settings::new(state_dir.path())).expect("state");
    demo::seed(&state).expect("seed the demo");
    let documents = state.store.all_documents().expect("documents").len();
    let started = Instant::now();
    state
        .photo_index
        .documents(&*state.store, &"0".repeat(64))
        .expect("index");
    let rebuild = ms(started);
    let started = Instant::now();
    state
        .photo_index
        .documents(&*state.store, &"0".repeat(64))
        .expect("index");
    let warm = ms(started);

    println!(
        "photo upload on the server, median of {runs} prepared photos ({size_kb:.0} KB, 1920 px):"
    );
    println!(
        "  whole body (validate, fsync, rename)   : {:7.1} ms",
        median(whole)
    );
    println!(
        "  64 KiB chunks ({:2} chunks, each fsynced): {:7.1} ms",
        photos[1].len().div_ceil(CHUNK),
        median(chunked)
    );
    println!(
        "  duplicate upload (no-op)               : {:7.3} ms",
        median(duplicate)
    );
    println!(
        "  first thumbnail (decode, resize, JPEG) : {:7.1} ms",
        median(first_thumb)
    );
    println!(
        "  cached thumbnail (read, CRC check)     : {:7.3} ms",
        median(cached_thumb)
    );
    println!(
        "photo index rebuilt from the change feed: {documents} demo documents in {rebuild:.1} ms \
         ({:.2} ms a document); an up-to-date lookup {warm:.3} ms",
        rebuild / documents.max(1) as f64
    );
}
