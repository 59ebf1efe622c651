//! Photos in an S3-compatible bucket (`--blobs s3://…`) shared by several servers: a phone's
//! upload cut on one server resumes on another, which then serves the photo and its thumbnail,
//! and a third server on the same bucket finds them. Runs against a real SeaweedFS
//! (`CHIEFSYNC_TEST_WEED`, installed by `.ci/run`) and says `skipped:` where there is none.

use std::time::Duration;

use server::blobs::BlobLocation;
use server::demo::{self, CHIEF, SUPERVISOR};
use sync_core::model::{PhotoRef, PhotoRole};
use sync_core::photo::sha256_hex;

use crate::blobs::{cut_chunk, head, jpeg, push_patrol, put_chunk, send};
use crate::harness::TestServer;
use crate::weed::Weed;

#[actix_web::test]
async fn an_upload_cut_on_one_server_resumes_on_another_and_reads_back_with_its_thumbnail() {
    let weed = match Weed::shared() {
        Ok(weed) => weed,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let bucket = weed.url(&format!("it-{}", uuid::Uuid::new_v4().simple()));
    let location = BlobLocation::parse(&bucket).unwrap();
    let first = TestServer::demo_with(|s| s.blobs = location.clone()).await;
    let second = TestServer::demo_with(|s| s.blobs = location.clone()).await;

    let photo = jpeg(900, 700, 21);
    let sha = sha256_hex(&photo);
    let third = photo.len() / 3;
    let on_first = first.token(CHIEF, "phone-1").await;
    put_chunk(&first, &on_first, &sha, &photo, 0, third)
        .await
        .expect(202, "");
    // The phone loses signal halfway through the second chunk, and the first server goes away.
    cut_chunk(&first, &on_first, &sha, &photo, third, 2 * third);
    actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    first.stop().await;

    // The phone comes back through another server, which knows how far the upload got.
    let grant = second.login(CHIEF, "phone-1").await;
    let on_second = grant["access_token"].as_str().unwrap().to_owned();
    let held = head(&second, &on_second, &sha).await;
    held.expect(200, "");
    assert_eq!(held.headers.get("Upload-Complete").unwrap(), "?0");
    assert_eq!(held.offset(), Some(third as u64));
    let rest = put_chunk(&second, &on_second, &sha, &photo, third, photo.len()).await;
    rest.expect(201, "");
    assert_eq!(rest.json()["complete"], true);
    assert_eq!(rest.offset(), Some(photo.len() as u64));

    // A patrol referencing the photo arrives; the supervisor sees the photo and its thumbnail.
    let started = server::state::now_ms() - 3_600_000;
    let asset = demo::facts().asset("river-thh-01").unwrap().clone();
    let on_river = match &asset.geometry {
        sync_core::model::Geometry::LineString(line) => line[0],
        sync_core::model::Geometry::Polygon(rings) => rings[0][0],
    };
    let photos = [PhotoRef {
        sha256: sha.clone(),
        role: PhotoRole::Evidence,
        taken_at_ms: Some(started + 5 * 60_000),
        position: Some(on_river),
        bytes: photo.len() as u64,
    }];
    push_patrol(&second, &grant, &photos, started).await;
    let supervisor = second.token(SUPERVISOR, "pc").await;
    let got = send(
        &second,
        "GET",
        &format!("/api/v1/blobs/{sha}"),
        &supervisor,
        &[],
        None,
    )
    .await;
    got.expect(200, "");
    assert_eq!(got.body, photo);
    let thumb = send(
        &second,
        "GET",
        &format!("/api/v1/blobs/{sha}/thumbnail"),
        &supervisor,
        &[],
        None,
    )
    .await;
    thumb.expect(200, "");
    let small = image::load_from_memory(&thumb.body).unwrap();
    assert_eq!(small.width().max(small.height()), 320);

    // Another server started on the same bucket (a restarted node) has the photo, its receipt
    // and the thumbnail the second one rendered, and nothing of the interrupted upload.
    let third_server = TestServer::demo_with(|s| s.blobs = location.clone()).await;
    let store = third_server.state.blobs.store();
    let record = store.record(&sha).unwrap().unwrap();
    assert_eq!(record.uploaded_by, "u-demo-chief");
    assert_eq!(record.bytes, photo.len() as u64);
    assert_eq!(store.read(&sha).unwrap(), Some(photo));
    assert_eq!(store.thumbnail(&sha).unwrap(), Some(thumb.body));
    assert_eq!(store.stored().unwrap(), vec![sha]);
    assert!(store
        .idle_partials(std::time::SystemTime::now() + Duration::from_secs(60))
        .unwrap()
        .is_empty());
    third_server.stop().await;
    second.stop().await;
}

#[actix_web::test]
async fn a_bucket_that_does_not_answer_stops_the_start() {
    // A closed port on loopback: the server refuses to start rather than lose photos later.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let location = BlobLocation::parse(&format!(
        "s3://chiefsync-photos?endpoint=http://127.0.0.1:{port}&skip_signature=true"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let settings = server::Settings {
        blobs: location,
        ..server::Settings::new(dir.path())
    };
    let err = server::AppState::open(&settings).unwrap_err();
    assert!(err.to_string().contains("blob storage"), "{err}");
}
