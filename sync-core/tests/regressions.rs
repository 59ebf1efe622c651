//! Inputs the fuzz targets found (or that were written by hand to probe a decoder), kept under
//! `fuzz/regressions/<target>/` and replayed here through the very code the fuzz targets run,
//! so that `cargo test` catches a decoder that starts panicking again without any fuzzing.
//! Every kept input must be refused with a typed error, except those named `*.accepted`: inputs
//! that once crashed a target and are rightly taken now, which only have to run without a panic.

#[allow(dead_code)]
#[path = "../../fuzz/src/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

fn regressions_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions")
}

#[test]
fn every_kept_input_is_refused_with_a_typed_error() {
    let mut replayed = 0;
    for target in harness::TARGETS {
        let dir = regressions_dir().join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| Some(e.ok()?.path())).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).expect("read a kept input");
            let outcome = harness::run(target, &data);
            replayed += 1;
            // An input that once crashed a target and that the target rightly takes (a push
            // whose incremental save automerge cannot work out is stored whole) only has to run
            // through without a panic, which it just did.
            if file.extension().is_some_and(|e| e == "accepted") {
                continue;
            }
            assert!(
                outcome.is_err(),
                "{target}: {} is accepted, expected a typed refusal",
                file.display()
            );
        }
    }
    assert!(replayed > 0, "no kept inputs under {:?}", regressions_dir());
}

#[test]
fn the_fixtures_are_the_documents_the_harness_expects() {
    let fixture = harness::Fixture::get();
    for patrol in [true, false] {
        assert!(!fixture.doc_id(patrol).is_empty());
    }
    // A genuine push of the owning chief is accepted as it is.
    let mut genuine = vec![0x80];
    assert!(harness::hub_sync(&genuine).is_ok());
    genuine[0] |= 0x08;
    assert!(harness::hub_sync(&genuine).is_ok());
}

/// Writes `fuzz/fixtures/`. The fixtures carry random document and event ids, so they are
/// written once and kept; rewrite them only when the document schema changes.
#[test]
#[ignore = "rewrites the fuzz fixtures in the repository"]
fn write_fuzz_fixtures() {
    let (patrol, issue) = harness::build_fixtures();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/fixtures");
    std::fs::write(dir.join("patrol.automerge"), patrol).expect("write patrol fixture");
    std::fs::write(dir.join("issue.automerge"), issue).expect("write issue fixture");
}
