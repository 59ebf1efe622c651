//! Fuzz targets for every decoder of untrusted bytes in sync-core; see `harness`.

pub mod harness;

/// libfuzzer-sys aborts on every panic, even one the code under test catches on purpose
/// (authorization runs automerge under `catch_unwind` and refuses what trips it). Keep the
/// message, drop the abort: a panic that escapes the target still aborts in libfuzzer-sys's
/// own `catch_unwind` around it and is reported as a crash.
pub fn report_only_uncaught_panics() {
    std::panic::set_hook(Box::new(|info| eprintln!("caught or not: {info}")));
}
