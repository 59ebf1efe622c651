//! The generated bindings, used from another language: Python bindings are generated from the
//! built library with this crate's `uniffi-bindgen`, and `tests/python/field_client.py` drives
//! a real server (started here on 127.0.0.1, Tianqiao demo seeded) through them, as an app
//! would. Kotlin and Swift bindings are generated too, and no exported type may take a name
//! either language (or UniFFI's templates) already uses. The Kotlin bindings are compiled and
//! run by `kotlin_bindings.rs`.
#![cfg(feature = "bindgen")]

mod bindgen;
mod common;

use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// A camera-sized JPEG with texture, so preparing it really downscales and re-encodes.
fn camera_photo(path: &Path) {
    let picture = image::RgbImage::from_fn(2400, 1800, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x * y) % 239) as u8])
    });
    picture.save(path).expect("write the camera photo");
}

#[test]
fn python_drives_a_chief_and_a_supervisor_against_a_real_server() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);

    let library = bindgen::built_library();
    let bindings = dir.path().join("bindings");
    bindgen::generate(&library, "python", &bindings);
    std::fs::copy(&library, bindings.join(library.file_name().unwrap())).unwrap();
    for language in ["kotlin", "swift"] {
        bindgen::generate(&library, language, &dir.path().join(language));
    }
    assert!(dir
        .path()
        .join("kotlin/uniffi/chiefsync/chiefsync.kt")
        .exists());
    assert!(dir.path().join("swift/chiefsync.swift").exists());
    // Every exported name compiles in every binding language.
    for generated in [
        "kotlin/uniffi/chiefsync/chiefsync.kt",
        "swift/chiefsync.swift",
    ] {
        bindgen::assert_no_reserved_names(&dir.path().join(generated));
    }
    assert!(dir.path().join("swift/chiefsyncFFI.h").exists());

    let photo = dir.path().join("IMG_0001.jpg");
    camera_photo(&photo);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/field_client.py");
    let output = Command::new("python3")
        .arg(&script)
        .env("PYTHONPATH", &bindings)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("CHIEFSYNC_URL", &base)
        .env("CHIEFSYNC_DATA", dir.path().join("phones"))
        .env("CHIEFSYNC_PHOTO", &photo)
        .output()
        .expect("python3 runs (Python 3.8 or newer is needed, no packages)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "python: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("all steps passed"), "{stdout}");
    println!(
        "bindings generated and exercised in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
