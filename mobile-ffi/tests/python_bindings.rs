//! The generated bindings, used from another language: Python bindings are generated from the
//! built library with this crate's `uniffi-bindgen`, and `tests/python/field_client.py` drives
//! a real server (started here on 127.0.0.1, Tianqiao demo seeded) through them, as an app
//! would. Kotlin and Swift bindings are generated too, to prove the interface translates.
#![cfg(feature = "bindgen")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const BINDGEN: &str = env!("CARGO_BIN_EXE_uniffi-bindgen");

/// The cdylib cargo built beside this test (`target/<profile>/libmobile_ffi.so` or the like).
fn built_library() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps");
    let name = format!(
        "{}mobile_ffi{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let library = profile_dir.join(name);
    if !library.exists() {
        // `cargo test` builds this crate's library only as the tests' rlib and leaves out the
        // cdylib. Ask for it with the same selection `cargo test --workspace` made (libraries,
        // binaries and tests of the whole workspace, so the same features): everything else is
        // already fresh and only the cdylib is linked.
        let status = Command::new(env!("CARGO"))
            .args(["build", "--workspace", "--lib", "--bins", "--tests"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build for the cdylib");
        assert!(status.success(), "building the cdylib failed");
    }
    assert!(library.exists(), "{} was not built", library.display());
    library
}

fn generate(library: &Path, language: &str, out: &Path) {
    let output = Command::new(BINDGEN)
        .arg("generate")
        .arg(library)
        .args(["--language", language, "--no-format", "--metadata-no-deps"])
        .arg("--out-dir")
        .arg(out)
        .output()
        .expect("run uniffi-bindgen");
    assert!(
        output.status.success(),
        "uniffi-bindgen {language}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

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

    let library = built_library();
    let bindings = dir.path().join("bindings");
    generate(&library, "python", &bindings);
    std::fs::copy(&library, bindings.join(library.file_name().unwrap())).unwrap();
    for language in ["kotlin", "swift"] {
        generate(&library, language, &dir.path().join(language));
    }
    assert!(dir
        .path()
        .join("kotlin/uniffi/chiefsync/chiefsync.kt")
        .exists());
    assert!(dir.path().join("swift/chiefsync.swift").exists());
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
