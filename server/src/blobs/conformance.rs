//! The blob storage conformance suite, written once and run against every [`BlobStore`]
//! backend (`blob_conformance_tests!(harness)` in the backend's test module). Calling
//! [`Harness::open`] again after dropping the previous store must reopen the same data.
//! Test-only.

use sync_core::photo::PhotoFormat;

use super::{BlobError, BlobRecord, BlobStore, UploadKey};

pub(crate) trait Harness {
    fn open(&self) -> Box<dyn BlobStore>;
    /// Flips a bit in the middle of a stored blob's bytes, as a failing disk would.
    fn damage(&self, sha256: &str);
}

/// Expands to one `#[test]` per conformance case, each with a fresh harness from `$harness`.
/// With `optional`, `$harness` gives `Result<impl Harness, String>`: a backend whose server is
/// missing here (`Err(why)`) prints `skipped: why` and passes.
macro_rules! blob_conformance_tests {
    (optional $harness:expr) => {
        blob_conformance_tests!(@list optional $harness);
    };
    ($harness:expr) => {
        blob_conformance_tests!(@list plain $harness);
    };
    (@list $kind:ident $harness:expr) => {
        blob_conformance_tests!(@cases $kind $harness;
            commit_is_visible_whole_and_once,
            partial_uploads_resume_and_replace_resent_chunks,
            partial_uploads_are_kept_per_uploader,
            idle_partial_uploads_expire_and_fresh_ones_stay,
            thumbnails_round_trip,
            damaged_bytes_are_reported_not_served,
            names_that_are_not_hashes_are_refused,
            reopen_keeps_blobs_partials_and_thumbnails,
            stored_blobs_are_listed_and_removed_whole,
        );
    };
    (@cases plain $harness:expr; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::blobs::conformance::$case(&$harness);
            }
        )+
    };
    (@cases optional $harness:expr; $($case:ident),+ $(,)?) => {
        $(
            #[test]
            fn $case() {
                match $harness {
                    Ok(harness) => $crate::blobs::conformance::$case(&harness),
                    Err(why) => println!("skipped: {why}"),
                }
            }
        )+
    };
}

fn sample(seed: u8) -> (BlobRecord, Vec<u8>) {
    let bytes: Vec<u8> = (0..5_000u32)
        .map(|i| (i as u8).wrapping_mul(seed))
        .collect();
    let record = BlobRecord {
        sha256: sync_core::photo::sha256_hex(&bytes),
        format: PhotoFormat::Jpeg,
        width: 64,
        height: 48,
        bytes: bytes.len() as u64,
        received_at_ms: 1_764_291_600_000 + i64::from(seed),
        uploaded_by: "u-demo-chief".into(),
    };
    (record, bytes)
}

fn key(sha256: &str, user: &str) -> UploadKey {
    UploadKey {
        sha256: sha256.into(),
        user: user.into(),
    }
}

pub(crate) fn commit_is_visible_whole_and_once(h: &impl Harness) {
    let store = h.open();
    let (record, bytes) = sample(3);
    assert_eq!(store.record(&record.sha256).unwrap(), None);
    assert_eq!(store.read(&record.sha256).unwrap(), None);
    assert!(store.commit(&record, &bytes).unwrap());
    assert_eq!(store.record(&record.sha256).unwrap(), Some(record.clone()));
    assert_eq!(store.read(&record.sha256).unwrap(), Some(bytes.clone()));
    // A second commit changes nothing, not even the receipt time.
    let later = BlobRecord {
        received_at_ms: record.received_at_ms + 60_000,
        uploaded_by: "u-demo-chief-2".into(),
        ..record.clone()
    };
    assert!(!store.commit(&later, &bytes).unwrap());
    assert_eq!(store.record(&record.sha256).unwrap(), Some(record));
}

pub(crate) fn partial_uploads_resume_and_replace_resent_chunks(h: &impl Harness) {
    let store = h.open();
    let (record, bytes) = sample(5);
    let k = key(&record.sha256, "u-demo-chief");
    assert_eq!(store.partial_len(&k).unwrap(), None);
    assert_eq!(store.write_partial(&k, 0, &bytes[..2_000]).unwrap(), 2_000);
    assert_eq!(store.partial_len(&k).unwrap(), Some(2_000));
    // The same chunk again (its answer was lost) replaces itself.
    assert_eq!(
        store
            .write_partial(&k, 1_000, &bytes[1_000..2_000])
            .unwrap(),
        2_000
    );
    // A resend from earlier cuts what followed.
    assert_eq!(store.write_partial(&k, 500, &bytes[500..600]).unwrap(), 600);
    assert_eq!(store.write_partial(&k, 600, &bytes[600..]).unwrap(), 5_000);
    assert_eq!(store.read_partial(&k).unwrap(), bytes);
    // Nothing partial is visible as a blob.
    assert_eq!(store.record(&record.sha256).unwrap(), None);
    assert!(store.write_partial(&k, 6_000, b"gap").is_err());
    store.discard_partial(&k).unwrap();
    assert_eq!(store.partial_len(&k).unwrap(), None);
    store.discard_partial(&k).unwrap();
}

pub(crate) fn partial_uploads_are_kept_per_uploader(h: &impl Harness) {
    let store = h.open();
    let (record, bytes) = sample(7);
    let first = key(&record.sha256, "u-demo-chief");
    let second = key(&record.sha256, "u-demo-supervisor");
    store.write_partial(&first, 0, &bytes[..100]).unwrap();
    store.write_partial(&second, 0, &bytes[..300]).unwrap();
    assert_eq!(store.partial_len(&first).unwrap(), Some(100));
    assert_eq!(store.partial_len(&second).unwrap(), Some(300));
    store.discard_partial(&second).unwrap();
    assert_eq!(store.partial_len(&first).unwrap(), Some(100));
}

pub(crate) fn thumbnails_round_trip(h: &impl Harness) {
    let store = h.open();
    let (record, _) = sample(9);
    assert_eq!(store.thumbnail(&record.sha256).unwrap(), None);
    store.put_thumbnail(&record.sha256, b"small jpeg").unwrap();
    assert_eq!(
        store.thumbnail(&record.sha256).unwrap().as_deref(),
        Some(&b"small jpeg"[..])
    );
}

pub(crate) fn damaged_bytes_are_reported_not_served(h: &impl Harness) {
    let store = h.open();
    let (record, bytes) = sample(11);
    store.commit(&record, &bytes).unwrap();
    h.damage(&record.sha256);
    assert!(matches!(
        store.read(&record.sha256),
        Err(BlobError::Corrupt { .. })
    ));
}

pub(crate) fn names_that_are_not_hashes_are_refused(h: &impl Harness) {
    let store = h.open();
    let (mut record, bytes) = sample(13);
    record.sha256 = "../../etc/passwd".into();
    assert!(store.commit(&record, &bytes).is_err());
    assert!(store.read("../db").is_err());
    assert!(store
        .write_partial(&key("x/../../y", "u"), 0, b"bytes")
        .is_err());
}

pub(crate) fn reopen_keeps_blobs_partials_and_thumbnails(h: &impl Harness) {
    let (record, bytes) = sample(15);
    let (other, other_bytes) = sample(17);
    let k = key(&other.sha256, "u-demo-chief");
    {
        let store = h.open();
        store.commit(&record, &bytes).unwrap();
        store.put_thumbnail(&record.sha256, b"thumb").unwrap();
        store.write_partial(&k, 0, &other_bytes[..1_234]).unwrap();
    }
    let store = h.open();
    assert_eq!(store.record(&record.sha256).unwrap(), Some(record.clone()));
    assert_eq!(store.read(&record.sha256).unwrap(), Some(bytes));
    assert!(store.thumbnail(&record.sha256).unwrap().is_some());
    assert_eq!(store.partial_len(&k).unwrap(), Some(1_234));
}

pub(crate) fn idle_partial_uploads_expire_and_fresh_ones_stay(h: &impl Harness) {
    use std::time::{Duration, SystemTime};

    let store = h.open();
    let (record, bytes) = sample(7);
    let chief = key(&record.sha256, "u-demo-chief");
    let other = key(&record.sha256, "u-demo-chief-2");
    store.write_partial(&chief, 0, &bytes[..1_000]).unwrap();
    store.write_partial(&other, 0, &bytes[..2_000]).unwrap();
    // Nothing is idle since an hour ago.
    let hour_ago = SystemTime::now() - Duration::from_secs(3_600);
    assert!(store.idle_partials(hour_ago).unwrap().is_empty());
    // Both are idle since a moment from now; removing one leaves the other uploader's bytes.
    let soon = SystemTime::now() + Duration::from_secs(60);
    let idle = store.idle_partials(soon).unwrap();
    assert_eq!(idle.len(), 2);
    assert!(idle.iter().all(|p| p.sha256 == record.sha256));
    assert!(
        !store.discard_idle(&idle[0], hour_ago).unwrap(),
        "not idle by that cutoff"
    );
    assert!(store.discard_idle(&idle[0], soon).unwrap());
    assert!(!store.discard_idle(&idle[0], soon).unwrap(), "already gone");
    let left = [&chief, &other]
        .iter()
        .filter(|k| store.partial_len(k).unwrap().is_some())
        .count();
    assert_eq!(left, 1);
    // A name that is not one of the store's partials is refused, never turned into a path.
    let forged = super::IdlePartial {
        sha256: record.sha256.clone(),
        name: format!("{}/../../objects", record.sha256),
    };
    assert!(store.discard_idle(&forged, soon).is_err());
}

pub(crate) fn stored_blobs_are_listed_and_removed_whole(h: &impl Harness) {
    let store = h.open();
    assert!(store.stored().unwrap().is_empty());
    let (kept, kept_bytes) = sample(19);
    let (gone, gone_bytes) = sample(21);
    let (partial, partial_bytes) = sample(23);
    store.commit(&kept, &kept_bytes).unwrap();
    store.commit(&gone, &gone_bytes).unwrap();
    store.put_thumbnail(&gone.sha256, b"thumb").unwrap();
    let k = key(&partial.sha256, "u-demo-chief");
    store.write_partial(&k, 0, &partial_bytes[..100]).unwrap();
    // Partial uploads are not stored blobs.
    let mut expected = vec![kept.sha256.clone(), gone.sha256.clone()];
    expected.sort();
    assert_eq!(store.stored().unwrap(), expected);

    assert!(store.remove(&gone.sha256).unwrap());
    assert!(!store.remove(&gone.sha256).unwrap(), "already gone");
    assert_eq!(store.record(&gone.sha256).unwrap(), None);
    assert_eq!(store.read(&gone.sha256).unwrap(), None);
    assert_eq!(store.thumbnail(&gone.sha256).unwrap(), None);
    assert_eq!(store.stored().unwrap(), vec![kept.sha256.clone()]);
    assert_eq!(store.read(&kept.sha256).unwrap(), Some(kept_bytes));
    assert_eq!(store.partial_len(&k).unwrap(), Some(100));
    assert!(store.remove("../db").is_err());
    // The same photo can be stored again afterwards.
    assert!(store.commit(&gone, &gone_bytes).unwrap());
    assert_eq!(store.read(&gone.sha256).unwrap(), Some(gone_bytes));
}
