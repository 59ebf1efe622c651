//! The Kotlin bindings as an Android developer takes them: `chiefsync.kt` generated from the
//! built library, compiled with the official Kotlin compiler (npm `kotlin-compiler`, pinned in
//! `kotlin/package-lock.json`) together with the coroutine wrapper (`kotlin/Background.kt`), the
//! README's example (`kotlin/Example.kt`) and the JUnit tests (`kotlin/FieldClientTest.kt`), then
//! run on the JVM with JNA loading the library, against a real server on 127.0.0.1 (the Python
//! test's scenario). kotlinc takes tens of seconds, so everything is compiled in one go.
//!
//! Needs `npm ci` in `mobile-ffi/kotlin` (or `KOTLINC` naming a kotlinc 2.x), a JDK 17, and
//! Debian's `libjna-java` and `junit4`; `.ci/run` installs them. Without kotlinc the test says
//! `skipped:` and passes.
#![cfg(feature = "bindgen")]

mod bindgen;
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

const KOTLIN_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/kotlin");
/// The README's block that must be `kotlin/Example.kt`, word for word.
const README_MARKER: &str = "<!-- kotlin-example -->";

/// kotlinc: `KOTLINC`, else the one `npm ci` put under `mobile-ffi/kotlin`.
fn kotlinc() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("KOTLINC") {
        return Some(PathBuf::from(path));
    }
    let npm = Path::new(KOTLIN_DIR).join("node_modules/kotlin-compiler");
    npm.join("bin/kotlinc")
        .exists()
        .then_some(npm.join("bin/kotlinc"))
}

/// The JDK kotlinc compiles against: `JAVA_HOME`, else the one `javac` on the PATH belongs to.
fn jdk_home() -> PathBuf {
    if let Some(home) = std::env::var_os("JAVA_HOME") {
        return PathBuf::from(home);
    }
    let javac = std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join("javac"))
        .find(|p| p.exists())
        .expect("javac on the PATH (a JDK 17: Debian's openjdk-17-jdk-headless)");
    let real = std::fs::canonicalize(&javac).expect("resolve javac");
    real.parent()
        .and_then(Path::parent)
        .expect("javac lives in <jdk>/bin")
        .to_path_buf()
}

/// A jar from Debian's Java packages.
fn debian_jar(name: &str, package: &str) -> PathBuf {
    let jar = Path::new("/usr/share/java").join(name);
    assert!(
        jar.exists(),
        "{} is missing: apt-get install {package}",
        jar.display()
    );
    jar
}

fn class_path(parts: &[&Path]) -> String {
    std::env::join_paths(parts)
        .expect("class path")
        .into_string()
        .expect("UTF-8 class path")
}

#[test]
fn kotlin_compiles_the_bindings_and_drives_a_real_server() {
    let Some(kotlinc) = kotlinc() else {
        println!("skipped: kotlinc not found (run `npm ci` in mobile-ffi/kotlin, or set KOTLINC)");
        return;
    };
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);

    let library = bindgen::built_library();
    let generated = dir.path().join("kotlin");
    bindgen::generate(&library, "kotlin", &generated);
    let bindings = generated.join("uniffi/chiefsync/chiefsync.kt");
    bindgen::assert_no_reserved_names(&bindings);
    let native = dir.path().join("native");
    std::fs::create_dir_all(&native).unwrap();
    std::fs::copy(&library, native.join(library.file_name().unwrap())).unwrap();

    let jna = debian_jar("jna.jar", "libjna-java");
    let junit = debian_jar("junit4.jar", "junit4");
    let hamcrest = debian_jar("hamcrest-core.jar", "junit4 (its hamcrest dependency)");
    let jar = dir.path().join("chiefsync-test.jar");
    let sources = ["Background.kt", "Example.kt", "FieldClientTest.kt"]
        .map(|file| Path::new(KOTLIN_DIR).join(file));
    let compiled = Command::new(&kotlinc)
        .arg("-jdk-home")
        .arg(jdk_home())
        .args(["-nowarn", "-cp"])
        .arg(class_path(&[&jna, &junit, &hamcrest]))
        .arg("-d")
        .arg(&jar)
        .arg(&bindings)
        .args(&sources)
        .output()
        .expect("run kotlinc");
    assert!(
        compiled.status.success(),
        "kotlinc: {}\n{}",
        compiled.status,
        String::from_utf8_lossy(&compiled.stderr)
    );
    let compile_s = started.elapsed().as_secs_f64();

    let stdlib = kotlinc
        .parent()
        .and_then(Path::parent)
        .expect("kotlinc lives in <kotlin>/bin")
        .join("lib/kotlin-stdlib.jar");
    let output = Command::new("java")
        .arg(format!("-Djna.library.path={}", native.display()))
        .arg("-Djava.awt.headless=true")
        .arg("-cp")
        .arg(class_path(&[&jar, &stdlib, &jna, &junit, &hamcrest]))
        .args(["org.junit.runner.JUnitCore", "FieldClientTest"])
        .env("CHIEFSYNC_URL", &base)
        .env("CHIEFSYNC_DATA", dir.path().join("phones"))
        .env("CHIEFSYNC_PHOTO", common_photo(dir.path()))
        .output()
        .expect("run java");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the Kotlin tests failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("OK (4 tests)"), "{stdout}");
    println!(
        "Kotlin bindings compiled in {compile_s:.1} s, compiled and exercised in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

/// A camera-sized JPEG with texture, so preparing it really downscales and re-encodes.
fn common_photo(dir: &Path) -> PathBuf {
    let path = dir.join("IMG_0001.jpg");
    let picture = image::RgbImage::from_fn(2400, 1800, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x * y) % 239) as u8])
    });
    picture.save(&path).expect("write the camera photo");
    path
}

/// The name check fails on an export that shadows a runtime name, as `System` once did.
#[test]
fn the_name_check_refuses_an_export_called_system() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("chiefsync.kt");
    let exports = "FfiConverterTypeFieldClient FfiConverterTypeChiefSystem";
    std::fs::write(&fake, exports).unwrap();
    bindgen::assert_no_reserved_names(&fake);
    std::fs::write(&fake, format!("{exports} FfiConverterTypeSystem")).unwrap();
    let refused = std::panic::catch_unwind(|| bindgen::assert_no_reserved_names(&fake));
    let message = *refused
        .expect_err("an export called System is refused")
        .downcast::<String>()
        .unwrap();
    assert!(message.contains("\"System\""), "{message}");
}

/// The README's Kotlin example is `kotlin/Example.kt`, which the test above compiles and runs:
/// the README cannot show code that does not build.
#[test]
fn the_readme_shows_the_compiled_kotlin_example() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let Some(at) = readme.find(README_MARKER) else {
        println!("skipped: README.md has no {README_MARKER} block");
        return;
    };
    let after = &readme[at + README_MARKER.len()..];
    let block = after
        .split_once("```kotlin\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .map(|(code, _)| code)
        .expect("a ```kotlin block after the marker");
    let example = std::fs::read_to_string(Path::new(KOTLIN_DIR).join("Example.kt")).unwrap();
    assert_eq!(
        block.trim(),
        example.trim(),
        "the README's Kotlin example differs from mobile-ffi/kotlin/Example.kt"
    );
}
