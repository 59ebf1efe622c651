//! `FieldClient` from plain Rust, as the field simulator uses it: shared between threads, with
//! its own clock, against a real demo server whose access tokens expire quickly.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mobile_ffi::{ChiefsyncError, ClientConfig, Clock, FieldClient, SyncProgress};

const T0: i64 = 1_764_291_600_000;

/// A clock the test moves by hand.
#[derive(Debug)]
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn chief(dir: &std::path::Path, base: &str, clock: Arc<TestClock>) -> Arc<FieldClient> {
    let config = ClientConfig {
        clock,
        ..ClientConfig::new(dir, base)
    };
    let phone = FieldClient::open(config).expect("open the phone's store");
    phone.login("demo-chief".into(), "demo".into()).unwrap();
    phone
}

/// A walk north at about 1.1 m/s from the first point of the asset's line.
fn fix(asset_geojson: &str, i: i64) -> (f64, f64) {
    let geometry: serde_json::Value = serde_json::from_str(asset_geojson).unwrap();
    let start = &geometry["coordinates"][0];
    let (lon, lat) = (start[0].as_f64().unwrap(), start[1].as_f64().unwrap());
    (lat + i as f64 * 1e-5, lon)
}

#[test]
fn threads_record_and_sync_through_one_shared_client_with_its_own_clock() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);
    let clock = Arc::new(TestClock(AtomicI64::new(T0)));
    let phone = chief(&dir.path().join("phone"), &base, clock.clone());
    let me = phone.me().unwrap();
    let asset = phone
        .assets()
        .unwrap()
        .into_iter()
        .find(|a| me.assets.contains(&a.id))
        .unwrap();
    let patrol = phone.start_patrol(asset.id.clone()).unwrap();
    assert_eq!(phone.patrol(patrol.clone()).unwrap().started_at_ms, T0);

    // One thread records 1 Hz fixes while another syncs again and again: every fix and every
    // edit reaches the server, none is lost to a sync that ran meanwhile.
    let recorder = {
        let phone = phone.clone();
        let patrol = patrol.clone();
        let geometry = asset.geometry_geojson.clone();
        std::thread::spawn(move || {
            for i in 0..600 {
                let (lat, lon) = fix(&geometry, i);
                phone
                    .add_track_point(
                        patrol.clone(),
                        lat,
                        lon,
                        T0 + i * 1000,
                        4.0,
                        false,
                        String::new(),
                    )
                    .unwrap();
            }
        })
    };
    let syncer = {
        let phone = phone.clone();
        std::thread::spawn(move || {
            let mut syncs = 0;
            while syncs < 5 {
                phone.sync().unwrap();
                syncs += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    recorder.join().unwrap();
    syncer.join().unwrap();

    clock.0.store(T0 + 600_000, Ordering::SeqCst);
    let summary = phone.finish_patrol(patrol.clone(), "done".into()).unwrap();
    assert_eq!(summary.points, 600);
    assert_eq!(summary.ended_at_ms, Some(T0 + 600_000));
    assert!(!summary.synced);
    phone.sync().unwrap();
    assert!(phone.patrol(patrol.clone()).unwrap().synced);

    // A second phone of the same chief sees the whole patrol.
    let other = chief(&dir.path().join("other"), &base, clock);
    other.sync().unwrap();
    let seen = other.patrol(patrol).unwrap();
    assert_eq!(seen.points, 600);
    assert_eq!(seen.ended_at_ms, Some(T0 + 600_000));
    assert_eq!(seen.notes, "done");
}

#[test]
fn an_expired_access_token_is_refreshed_without_the_app_noticing() {
    let dir = tempfile::tempdir().unwrap();
    // Tokens live 1 s (plus the server's 5 s of clock leeway).
    let base = common::start_demo_server(&dir.path().join("server"), 1);
    let phone = chief(
        &dir.path().join("phone"),
        &base,
        Arc::new(TestClock(AtomicI64::new(T0))),
    );
    let asset = phone.me().unwrap().assets[0].clone();
    let patrol = phone.start_patrol(asset).unwrap();
    std::thread::sleep(Duration::from_millis(7_500));
    let report = phone.sync().expect("sync refreshes the expired token");
    assert_eq!(report.docs_sent, 1);
    assert!(phone.patrol(patrol).unwrap().synced);

    // The rotated pair was stored: a reopened client keeps syncing with it.
    drop(phone);
    let reopened = FieldClient::open(ClientConfig::new(dir.path().join("phone"), &base)).unwrap();
    reopened.sync().unwrap();
    reopened.logout().unwrap();
    assert!(matches!(
        reopened.sync(),
        Err(ChiefsyncError::NotLoggedIn { .. })
    ));
}

#[test]
fn an_unreachable_server_is_a_network_error_and_the_work_stays() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);
    let clock = Arc::new(TestClock(AtomicI64::new(T0)));
    let phone = chief(&dir.path().join("phone"), &base, clock.clone());
    let asset = phone.me().unwrap().assets[0].clone();
    drop(phone);

    // The same store, pointed at a port nothing listens on (the phone is offline).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let offline_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = ClientConfig {
        clock,
        ..ClientConfig::new(dir.path().join("phone"), offline_url)
    };
    let offline = FieldClient::open(config).unwrap();
    let patrol = offline.start_patrol(asset).unwrap();
    assert!(matches!(
        offline.sync(),
        Err(ChiefsyncError::Network { .. })
    ));
    assert!(!offline.patrol(patrol.clone()).unwrap().synced);
    // The progress bar shows the sync ended with the patrol still to send.
    let progress = offline.sync_progress();
    assert!(!progress.running, "{progress:?}");
    assert_eq!((progress.docs_sent, progress.docs_total), (0, 1));
    drop(offline);

    let online = FieldClient::open(ClientConfig::new(dir.path().join("phone"), &base)).unwrap();
    assert_eq!(online.sync().unwrap().docs_sent, 1);
    assert!(online.patrol(patrol).unwrap().synced);
}

fn signed_in(
    dir: &std::path::Path,
    base: &str,
    user: &str,
    clock: Arc<TestClock>,
) -> Arc<FieldClient> {
    let config = ClientConfig {
        clock,
        ..ClientConfig::new(dir, base)
    };
    let phone = FieldClient::open(config).expect("open the phone's store");
    phone.login(user.into(), "demo".into()).unwrap();
    phone
}

#[test]
fn a_handler_rectifies_with_an_after_photo_from_the_phone() {
    use mobile_ffi::{AssigneeDraft, EventDraft, IssueDraft, PhotoRole, Severity};

    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);
    let clock = Arc::new(TestClock(AtomicI64::new(T0)));
    let chief = chief(&dir.path().join("chief"), &base, clock.clone());
    let office = signed_in(
        &dir.path().join("office"),
        &base,
        "demo-supervisor",
        clock.clone(),
    );
    let handler = signed_in(
        &dir.path().join("handler"),
        &base,
        "demo-handler",
        clock.clone(),
    );
    let asset = chief.me().unwrap().assets[0].clone();
    let (lat, lon) = common::spot(&asset);
    let issue = chief
        .report_issue(IssueDraft {
            category: "river.garbage".into(),
            severity: Severity::General,
            asset_id: asset,
            lat,
            lon,
            description: "河面漂浮垃圾".into(),
            patrol_id: None,
        })
        .unwrap();
    chief.sync().unwrap();
    office.sync().unwrap();
    office
        .append_event(issue.clone(), EventDraft::Accept)
        .unwrap();
    let assign = EventDraft::Assign {
        assignee: AssigneeDraft::Department {
            name: "区水务局".into(),
        },
        deadline_ms: T0 + 7 * 86_400_000,
    };
    office.append_event(issue.clone(), assign).unwrap();
    assert_eq!(office.sync().unwrap().refused, 0);

    // The handler photographs the cleaned river and submits: the photo goes with the event,
    // not into the reporter's photo list, so nothing is refused.
    handler.sync().unwrap();
    let file = dir.path().join("after.jpg");
    image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    })
    .save(&file)
    .unwrap();
    let photo = handler
        .attach_photo(issue.clone(), file.display().to_string(), PhotoRole::After)
        .unwrap();
    handler
        .append_event(
            issue.clone(),
            EventDraft::SubmitRectification {
                note: "已打捞清理".into(),
                photos: vec![photo.sha256.clone()],
            },
        )
        .unwrap();
    let report = handler.sync().unwrap();
    assert_eq!(
        (report.refused, report.photos_uploaded),
        (0, 1),
        "{report:?}"
    );
    assert!(handler.quarantine().unwrap().is_empty());
    // What the progress bar showed last: the event's issue and the photo, all sent.
    assert_eq!(
        handler.sync_progress(),
        SyncProgress {
            running: false,
            docs_total: 1,
            docs_sent: 1,
            docs_received: report.docs_received,
            pages: 0,
            photos_total: 1,
            photos_sent: 1,
            photo_bytes_total: photo.bytes,
            photo_bytes_sent: photo.bytes,
        }
    );

    office.sync().unwrap();
    let seen = office.issue(issue).unwrap();
    assert!(
        format!("{:?}", seen.summary.status).contains("Submitted"),
        "{:?}",
        seen.summary.status
    );
}
