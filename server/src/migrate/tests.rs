use automerge::transaction::Transactable;
use sync_core::doc::DocKind;
use sync_core::hub::testing::doc_meta;
use sync_core::hub::DeviceDoc;
use sync_core::photo::PhotoFormat;

use super::*;
use crate::blobs::BlobRecord;
use crate::storage::{RefreshRecord, UserRecord};

/// A stopped district server in `dir`: an account signed in on a phone, a refresh token,
/// settings, three documents saved four times (the feed has a gap), audit, the phone's
/// ledger, a photo with its thumbnail.
fn district(dir: &Path) -> (SledStore, FileBlobs, String) {
    let store = SledStore::open(&dir.join("db")).unwrap();
    let blobs = FileBlobs::open(&dir.join("blobs")).unwrap();
    let user = sync_core::model::User {
        id: "u-chief".into(),
        username: "Chief".into(),
        display_name: "王河长".into(),
        role: sync_core::model::Role::Admin,
        active: true,
    };
    store
        .create_user(&UserRecord {
            user,
            password_hash: Some("$argon2id$stand-in".into()),
            created_at_ms: 1,
            updated_at_ms: 2,
        })
        .unwrap();
    let device = store
        .start_session("u-chief", "phone-1", &"ab".repeat(16), 10)
        .unwrap();
    store
        .put_refresh_token(&RefreshRecord {
            token_hash: "11".repeat(32),
            user_id: "u-chief".into(),
            device_id: "phone-1".into(),
            session: 1,
            expires_at_ms: 99,
            used_at_ms: None,
            replaced_by: None,
        })
        .unwrap();
    store.put_meta("setup.code/abc", b"{}").unwrap();
    for (n, id) in ["doc-a", "doc-b", "doc-a", "doc-c"].iter().enumerate() {
        let mut doc = AutoCommit::new();
        doc.put(automerge::ROOT, "n", n as i64).unwrap();
        let audit = AuditEntry {
            doc_id: (*id).into(),
            change: format!("{n:064x}"),
            user: "u-chief".into(),
            device: device.ledger_key(),
            actor: "ab".repeat(16),
            received_at_ms: 100 + n as i64,
            previous_sync_ms: None,
        };
        store
            .save_document(id, &doc_meta(id, DocKind::Patrol), &doc.save(), &[audit])
            .unwrap();
    }
    let key = device.ledger_key();
    let held = DeviceDoc {
        confirmed: vec![],
        pending: vec![],
        pending_cursor: 4,
    };
    store
        .put_device_docs(&key, &[("doc-a".into(), Some(held))])
        .unwrap();
    store.put_device_scope(&key, "scope-1").unwrap();
    store.put_device_synced(&key, 1234).unwrap();
    store.put_sync_state(&key, "doc-b", b"state").unwrap();
    let photo = b"not really a jpeg, but named by its sum".to_vec();
    let sha256 = sync_core::photo::sha256_hex(&photo);
    blobs
        .commit(
            &BlobRecord {
                sha256: sha256.clone(),
                format: PhotoFormat::Jpeg,
                width: 4,
                height: 3,
                bytes: photo.len() as u64,
                received_at_ms: 5,
                uploaded_by: "u-chief".into(),
            },
            &photo,
        )
        .unwrap();
    blobs.put_thumbnail(&sha256, b"thumb").unwrap();
    store.flush().unwrap();
    (store, blobs, sha256)
}

/// sled releases its lock from its flusher thread a moment after the last handle drops.
fn retry_lock<T>(open: impl Fn() -> Result<T, String>) -> T {
    for _ in 0..100 {
        match open() {
            Ok(opened) => return opened,
            Err(e) if e.contains("lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the database stayed locked");
}

fn target(dir: &Path) -> (SledStore, FileBlobs) {
    (
        SledStore::open(&dir.join("target-db")).unwrap(),
        FileBlobs::open(&dir.join("target-blobs")).unwrap(),
    )
}

/// Runs the migration from `source` (its data directory `dir`, photos `blobs`) into `to` and
/// `to_blobs`, with `--into-existing` or without.
fn run(
    source: &SledStore,
    dir: &Path,
    blobs: &FileBlobs,
    to: &SledStore,
    to_blobs: &FileBlobs,
    into_existing: bool,
) -> Result<Migrated, MigrateError> {
    migrate(
        source,
        dir,
        Some(blobs),
        to,
        Some(to_blobs),
        Options { into_existing },
    )
}

fn refused(result: Result<Migrated, MigrateError>) -> String {
    match result {
        Err(MigrateError::Refused(why)) => why,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn everything_arrives_at_its_feed_position_and_a_second_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (source, blobs, sha256) = district(dir.path());
    let (to, to_blobs) = target(dir.path());
    let moved = run(&source, dir.path(), &blobs, &to, &to_blobs, false).unwrap();
    assert_eq!(moved.feed_head, 4);
    assert_eq!(moved.census.documents, 3);
    assert_eq!(moved.census.audit_entries, 4);
    assert_eq!((moved.photos, moved.thumbnails), (1, 1));
    assert!(!moved.resumed);
    // The feed keeps its gap: doc-a's first save (position 1) was overtaken by its third.
    assert_eq!(to.feed_head().unwrap(), 4);
    for (id, seq) in [("doc-a", 3), ("doc-b", 2), ("doc-c", 4)] {
        assert_eq!(to.document_seq(id).unwrap(), Some(seq), "{id}");
    }
    assert_eq!(to.history("doc-a").unwrap().len(), 2);
    let binding = to.get_device("u-chief", "phone-1").unwrap().unwrap();
    assert_eq!(
        binding,
        source.get_device("u-chief", "phone-1").unwrap().unwrap()
    );
    assert_eq!(
        to.sync_state("u-chief/phone-1", "doc-b").unwrap().unwrap(),
        b"state"
    );
    assert_eq!(to_blobs.thumbnail(&sha256).unwrap().unwrap(), b"thumb");
    assert!(to.find_user_by_username("chief").unwrap().is_some());
    // The feed head is the feed's, not a setting that moves.
    assert_eq!(to.list_meta("feed.").unwrap(), vec![]);

    let again = refused(run(&source, dir.path(), &blobs, &to, &to_blobs, true));
    assert!(
        again.contains("already holds a finished migration"),
        "{again}"
    );
}

#[test]
fn a_target_with_records_is_refused_unless_told_and_one_with_documents_always() {
    let dir = tempfile::tempdir().unwrap();
    let (source, blobs, _) = district(dir.path());
    let (to, to_blobs) = target(dir.path());
    to.put_meta("demo.seeded", b"1").unwrap();
    let why = refused(run(&source, dir.path(), &blobs, &to, &to_blobs, false));
    assert!(
        why.contains("not empty") && why.contains("--into-existing"),
        "{why}"
    );
    assert_eq!(to.list_users().unwrap().len(), 0, "nothing was written");
    assert_eq!(to.get_meta(MARKER).unwrap(), None);
    let moved = run(&source, dir.path(), &blobs, &to, &to_blobs, true).unwrap();
    assert_eq!(moved.census.users, 1);
    assert_eq!(to.get_meta("demo.seeded").unwrap().unwrap(), b"1");

    let other = tempfile::tempdir().unwrap();
    let (with_docs, with_docs_blobs) = target(other.path());
    with_docs
        .save_document(
            "doc-x",
            &doc_meta("doc-x", DocKind::Issue),
            &AutoCommit::new().save(),
            &[],
        )
        .unwrap();
    let why = refused(run(
        &source,
        dir.path(),
        &blobs,
        &with_docs,
        &with_docs_blobs,
        true,
    ));
    assert!(why.contains("already holds 1 documents"), "{why}");
}

#[test]
fn a_migration_stopped_halfway_resumes_and_a_changed_source_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (source, blobs, _) = district(dir.path());
    let (to, to_blobs) = target(dir.path());
    // The first run got as far as the accounts and doc-b (position 2), then stopped.
    let census = source.census().unwrap();
    let marker = Marker {
        from: dir.path().display().to_string(),
        feed_head: 4,
        documents: census.documents,
        started_at_ms: 1,
        finished_at_ms: None,
    };
    to.put_meta(MARKER, &serde_json::to_vec(&marker).unwrap())
        .unwrap();
    move_records(&source, &to).unwrap();
    let b = source.document("doc-b").unwrap().unwrap();
    to.advance_feed(1).unwrap();
    to.save_document(
        "doc-b",
        &b.meta,
        &b.bytes,
        &source.history("doc-b").unwrap(),
    )
    .unwrap();

    // The source changed meanwhile (a server ran over it): refused.
    let changed = Marker {
        feed_head: 3,
        ..marker.clone()
    };
    to.put_meta(MARKER, &serde_json::to_vec(&changed).unwrap())
        .unwrap();
    let why = refused(run(&source, dir.path(), &blobs, &to, &to_blobs, false));
    assert!(why.contains("did not finish"), "{why}");

    // The same source: the same command finishes the migration.
    to.put_meta(MARKER, &serde_json::to_vec(&marker).unwrap())
        .unwrap();
    let moved = run(&source, dir.path(), &blobs, &to, &to_blobs, false).unwrap();
    assert!(moved.resumed);
    assert_eq!(to.document_seq("doc-c").unwrap(), Some(4));
    assert_eq!(to.history("doc-b").unwrap().len(), 1, "placed once");
}

#[test]
fn records_the_listings_do_not_reach_stop_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let (source, blobs, _) = district(dir.path());
    // A ledger of a device without a binding.
    source
        .put_device_docs("web/desk", &[("doc-a".into(), Some(DeviceDoc::default()))])
        .unwrap();
    let (to, to_blobs) = target(dir.path());
    let why = refused(run(&source, dir.path(), &blobs, &to, &to_blobs, false));
    assert!(why.contains("devices without a binding"), "{why}");

    // A table of a kind this server does not know.
    let other = tempfile::tempdir().unwrap();
    let (source, blobs, _) = district(other.path());
    drop(source);
    let db = other.path().join("db");
    let raw = retry_lock(|| sled::open(&db).map_err(|e| e.to_string()));
    raw.open_tree("statistics_facts")
        .unwrap()
        .insert(b"k", b"v")
        .unwrap();
    raw.flush().unwrap();
    drop(raw);
    let source = retry_lock(|| SledStore::open(&db).map_err(|e| e.to_string()));
    let (to, to_blobs) = target(other.path());
    let why = refused(run(&source, other.path(), &blobs, &to, &to_blobs, false));
    assert!(why.contains("statistics_facts"), "{why}");
    assert_eq!(to.list_users().unwrap().len(), 0, "nothing was written");
}
