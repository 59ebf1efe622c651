//! `chiefsync migrate` with the real binary, a real PostgreSQL and a real SeaweedFS: a district's
//! sled server whose chiefs' phones synced and uploaded photos through the real endpoints is
//! stopped and moved into a cluster's database and bucket; counts and heads are equal on both
//! sides, `chiefsync verify` is clean on the cluster, a server on PostgreSQL + S3 takes over and
//! the phones carry on against it without sending or receiving anything twice, photos and
//! thumbnails download, accounts sign in. A source still in use, a wrong database address, a bad
//! bucket and a database that already holds records are refused, writing nothing. Without
//! `CHIEFSYNC_TEST_POSTGRES` or `CHIEFSYNC_TEST_WEED` the test says `skipped:` and passes.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use automerge::AutoCommit;
use serde_json::{json, Value};
use server::blobs::BlobLocation;
use server::demo::{CHIEF, CHIEF_2, SUPERVISOR};
use server::state::now_ms;
use server::storage::{PostgresStore, SledStore, Store};
use sync_core::hub::DocumentStore;
use sync_core::model::{PhotoRef, PhotoRole};
use sync_core::photo::sha256_hex;

use crate::backup::{jpeg, patrol, report};
use crate::blobs::{push_patrol, send};
use crate::harness::TestServer;
use crate::phone::Phone;
use crate::postgres::Database;
use crate::weed::Weed;

/// Runs `chiefsync ARGS…` to the end.
fn chiefsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chiefsync"))
        .args(args)
        .env_remove("CHIEFSYNC_SIGNING_KEY")
        .env_remove("CHIEFSYNC_DATABASE")
        .env_remove("CHIEFSYNC_BLOBS")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run chiefsync")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts the command failed, saying `reason`, and returns what it said.
fn refused(out: &Output, reason: &str) -> String {
    let said = stderr(out);
    assert!(
        !out.status.success(),
        "accepted: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(said.contains(reason), "{said}");
    said
}

/// The database holds no record (its schema may have been created).
fn holds_nothing(url: &str) {
    let store = PostgresStore::open(url).unwrap();
    assert_eq!(store.feed_head().unwrap(), 0);
    assert!(store.list_users().unwrap().is_empty());
    assert!(store.list_meta("").unwrap().is_empty());
}

/// Sorted automerge heads of every document a store holds, by id.
fn heads(store: &dyn Store) -> BTreeMap<String, Vec<String>> {
    store
        .all_documents()
        .unwrap()
        .into_iter()
        .map(|meta| {
            let stored = store.document(&meta.id).unwrap().unwrap();
            let mut doc = AutoCommit::load(&stored.bytes).unwrap();
            let mut heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
            heads.sort();
            (meta.id, heads)
        })
        .collect()
}

/// sled lets go of its lock a moment after the server over it stops.
async fn open_sled(db: &Path) -> SledStore {
    for _ in 0..100 {
        match SledStore::open(db) {
            Ok(store) => return store,
            Err(_) => actix_web::rt::time::sleep(Duration::from_millis(50)).await,
        }
    }
    panic!("{} stays locked", db.display());
}

#[actix_web::test]
async fn a_district_moves_into_postgres_and_s3_and_its_phones_carry_on() {
    let Some(db) = Database::create("migrate") else {
        return;
    };
    let weed = match Weed::shared() {
        Ok(weed) => weed,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let bucket = weed.url(&format!("migrate-{}", uuid::Uuid::new_v4().simple()));
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("district");
    let from = data.to_str().unwrap().to_owned();

    // The district's sled server, with the demo; its chiefs' phones record and sync.
    let old = TestServer::start_in(&data, true).await;
    let phones: Vec<Arc<Phone>> = vec![
        Phone::login(&old, CHIEF, "migrate-phone-1").await,
        Phone::login(&old, CHIEF_2, "migrate-phone-2").await,
    ];
    for (i, phone) in phones.iter().enumerate() {
        for n in 0..3 {
            patrol(phone, (i * 10 + n) as u64);
        }
        report(phone, "河岸有垃圾堆放（迁移前）");
        phone.sync(now_ms()).await;
        // A second round: the cursors move past the first round's saves.
        patrol(phone, (i * 10 + 5) as u64);
        phone.sync(now_ms()).await;
    }
    // Photos from a chief's camera, on a patrol the office sees, with their thumbnails made.
    let camera = old.login(CHIEF, "migrate-camera").await;
    let camera_token = camera["access_token"].as_str().unwrap().to_owned();
    let photos: Vec<Vec<u8>> = (0..2).map(|seed| jpeg(40 + seed)).collect();
    for photo in &photos {
        crate::backup::upload(&old.base, &camera_token, photo).await;
    }
    let started = now_ms() - 3_600_000;
    let refs: Vec<PhotoRef> = photos
        .iter()
        .map(|photo| PhotoRef {
            sha256: sha256_hex(photo),
            role: PhotoRole::Evidence,
            taken_at_ms: Some(started + 60_000),
            position: None,
            bytes: photo.len() as u64,
        })
        .collect();
    push_patrol(&old, &camera, &refs, started).await;
    let office = old.token(SUPERVISOR, "migrate-desk").await;
    let mut thumbnails = Vec::new();
    for photo in &photos {
        let path = format!("/api/v1/blobs/{}/thumbnail", sha256_hex(photo));
        let thumb = send(&old, "GET", &path, &office, &[], None).await;
        thumb.expect(200, "");
        thumbnails.push(thumb.body);
    }
    // The phones take the camera's patrol where it is theirs to see, then hold what they hold.
    for phone in &phones {
        phone.sync(now_ms()).await;
    }
    let held_before: Vec<BTreeMap<String, Vec<String>>> =
        phones.iter().map(|p| p.heads()).collect();

    // While the server runs, its store is in use: refused, nothing written.
    let in_use = chiefsync(&[
        "migrate", "--from", &from, "--to", &db.url, "--blobs", &bucket,
    ]);
    refused(&in_use, "stop the server running over it");
    holds_nothing(&db.url);
    old.stop().await;
    let source = open_sled(&data.join("db")).await;
    let (source_head, source_heads, source_users) = (
        source.feed_head().unwrap(),
        heads(&source),
        source.list_users().unwrap(),
    );
    assert!(
        source_heads.len() > 8,
        "the district holds the phones' work"
    );
    drop(source);
    // sled lets go of its lock from its flusher thread.
    drop(open_sled(&data.join("db")).await);

    // Wrong addresses and buckets are refused before anything is written.
    refused(
        &chiefsync(&[
            "migrate",
            "--from",
            &from,
            "--to",
            "mysql://root@127.0.0.1/district",
        ]),
        "postgres://",
    );
    let unreachable = refused(
        &chiefsync(&[
            "migrate",
            "--from",
            &from,
            "--to",
            "postgres://postgres:secret-word@127.0.0.1:1/district",
        ]),
        "the target database",
    );
    assert!(!unreachable.contains("secret-word"), "{unreachable}");
    refused(
        &chiefsync(&[
            "migrate", "--from", &from, "--to", &db.url, "--blobs", "files",
        ]),
        "name a bucket",
    );
    refused(
        &chiefsync(&[
            "migrate",
            "--from",
            &from,
            "--to",
            &db.url,
            "--blobs",
            "s3://chiefsync-photos/x?endpoint=http://127.0.0.1:1&skip_signature=true",
        ]),
        "the target bucket",
    );
    refused(
        &chiefsync(&[
            "migrate",
            "--from",
            root.path().join("nothing").to_str().unwrap(),
            "--to",
            &db.url,
        ]),
        "holds no ChiefSync data",
    );
    holds_nothing(&db.url);

    // A database that already holds records is refused unless told.
    let Some(full) = Database::create("migrate_full") else {
        return;
    };
    PostgresStore::open(&full.url)
        .unwrap()
        .put_meta("demo.seeded", b"1")
        .unwrap();
    refused(
        &chiefsync(&[
            "migrate", "--from", &from, "--to", &full.url, "--blobs", &bucket,
        ]),
        "--into-existing",
    );
    assert!(PostgresStore::open(&full.url)
        .unwrap()
        .list_users()
        .unwrap()
        .is_empty());
    drop(full);

    // The migration.
    let out = chiefsync(&[
        "migrate", "--from", &from, "--to", &db.url, "--blobs", &bucket,
    ]);
    assert!(out.status.success(), "migrate failed: {}", stderr(&out));
    let moved: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(moved["feed_head"], json!(source_head));
    assert_eq!(moved["census"]["documents"], json!(source_heads.len()));
    assert_eq!(moved["census"]["users"], json!(source_users.len()));
    assert_eq!(moved["documents_verified"], json!(source_heads.len()));
    assert_eq!(moved["photos"], json!(photos.len()));
    assert_eq!(moved["thumbnails"], json!(photos.len()));
    assert_eq!(moved["resumed"], json!(false));
    // Run again, it is refused: the database holds the district now.
    refused(
        &chiefsync(&[
            "migrate", "--from", &from, "--to", &db.url, "--blobs", &bucket,
        ]),
        "already holds a finished migration",
    );

    // Counts and heads, read by this test on both sides.
    {
        let target = PostgresStore::open(&db.url).unwrap();
        assert_eq!(target.feed_head().unwrap(), source_head);
        assert_eq!(heads(&target), source_heads);
        assert_eq!(target.list_users().unwrap(), source_users);
    }

    // `chiefsync verify` on the cluster.
    let scratch = root.path().join("verify");
    let verified = chiefsync(&[
        "--data-dir",
        scratch.to_str().unwrap(),
        "--database",
        &db.url,
        "--blobs",
        &bucket,
        "verify",
    ]);
    assert!(verified.status.success(), "verify: {}", stderr(&verified));
    let report: Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert_eq!(report["documents_checked"], json!(source_heads.len()));
    assert_eq!(report["damaged"], json!([]));

    // A server on PostgreSQL + S3 takes over (same signing key, as the operator copies it).
    let location = BlobLocation::parse(&bucket).unwrap();
    let node_dir = root.path().join("node");
    let node = TestServer::start_with(&node_dir, false, |s| {
        s.database = Some(db.url.clone());
        s.blobs = location.clone();
    })
    .await;

    // The phones carry on with their sessions: each sends only its new patrol, receives
    // nothing it held, and holds what the server holds.
    for (i, phone) in phones.iter().enumerate() {
        phone.reconnect(&node);
        let new_patrol = patrol(phone, (100 + i) as u64);
        let sync = phone.sync(now_ms()).await;
        assert_eq!(
            sync.docs_sent, 1,
            "phone {i} sent only its new patrol: {sync:?}"
        );
        assert_eq!(
            sync.docs_received, 0,
            "phone {i} received nothing twice: {sync:?}"
        );
        let held = phone.heads();
        let mut expected = held_before[i].clone();
        expected.insert(new_patrol.clone(), held[&new_patrol].clone());
        assert_eq!(held, expected, "phone {i} lost or gained nothing");
        let on_server = heads(node.state.store.as_ref());
        for (id, phone_heads) in &held {
            assert_eq!(on_server.get(id), Some(phone_heads), "{id} on the server");
        }
        // A second sync finds nothing to do.
        let idle = phone.sync(now_ms()).await;
        assert_eq!((idle.docs_sent, idle.docs_received), (0, 0), "{idle:?}");
    }
    assert_eq!(
        node.state.store.all_documents().unwrap().len(),
        source_heads.len() + phones.len()
    );
    // A chief's new phone gets exactly what the old one holds.
    let fresh = Phone::login(&node, CHIEF, "migrate-phone-new").await;
    fresh.sync(now_ms()).await;
    assert_eq!(fresh.heads(), phones[0].heads());

    // Photos and thumbnails download for the office; accounts sign in.
    let office = node.token(SUPERVISOR, "migrate-desk").await;
    for (photo, thumbnail) in photos.iter().zip(&thumbnails) {
        let sha = sha256_hex(photo);
        let got = send(
            &node,
            "GET",
            &format!("/api/v1/blobs/{sha}"),
            &office,
            &[],
            None,
        )
        .await;
        got.expect(200, "");
        assert_eq!(&got.body, photo);
        let thumb = send(
            &node,
            "GET",
            &format!("/api/v1/blobs/{sha}/thumbnail"),
            &office,
            &[],
            None,
        )
        .await;
        thumb.expect(200, "");
        assert_eq!(&thumb.body, thumbnail);
    }
    node.login_reply(CHIEF_2, "demo", "migrate-desk-2")
        .await
        .expect_ok();
    let wrong = node
        .login_reply(CHIEF_2, "not-the-password", "migrate-desk-2")
        .await;
    assert_eq!(wrong.status.as_u16(), 401, "{}", wrong.body);
    node.stop().await;
}
