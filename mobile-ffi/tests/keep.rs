//! Documents opened on demand and a bounded store, through a real demo server: the office
//! reads a chief's patrol it does not receive by sync; a document outside the scope is not
//! found as one that does not exist; offline is a network error; a store over its size drops
//! what it may, never unsent work; a dropped problem of the chief's comes back when the office
//! acts on it; a photo leaves the phone with its patrol once the server holds it.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use mobile_ffi::{
    ChiefsyncError, ClientConfig, Clock, EventDraft, FieldClient, IssueDraft, PhotoRole, Severity,
    StoreBounds,
};

const T0: i64 = 1_764_291_600_000;
const DAY: i64 = 86_400_000;

/// A store of one byte that keeps own work no time at all: everything goes that may.
const TIGHT: StoreBounds = StoreBounds {
    max_bytes: 1,
    max_age_ms: 365 * DAY,
    own_recent_ms: 0,
    pin_ms: 0,
};

#[derive(Debug)]
struct TestClock(AtomicI64);

impl Clock for TestClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn phone(
    dir: &std::path::Path,
    base: &str,
    user: &str,
    clock: Arc<TestClock>,
    store: StoreBounds,
) -> Arc<FieldClient> {
    let config = ClientConfig {
        clock,
        store,
        ..ClientConfig::new(dir, base)
    };
    let phone = FieldClient::open(config).expect("open the phone's store");
    phone.login(user.into(), "demo".into()).unwrap();
    phone
}

/// The chief walks a short patrol on their first asset and finishes it; returns its id.
fn walk(chief: &FieldClient) -> String {
    let asset = chief.me().unwrap().assets[0].clone();
    let (lat, lon) = common::spot(&asset);
    let patrol = chief.start_patrol(asset).unwrap();
    for i in 0..3 {
        chief
            .add_track_point(
                patrol.clone(),
                lat + f64::from(i) * 1e-5,
                lon,
                T0 + i64::from(i) * 1000,
                5.0,
                false,
                String::new(),
            )
            .unwrap();
    }
    chief
        .finish_patrol(patrol.clone(), "巡河完毕".into())
        .unwrap();
    patrol
}

#[test]
fn the_office_opens_a_chiefs_patrol_on_demand_and_it_goes_later() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);
    let clock = Arc::new(TestClock(AtomicI64::new(T0)));
    let bounds = StoreBounds::default();
    let chief = phone(
        &dir.path().join("chief"),
        &base,
        "demo-chief",
        clock.clone(),
        bounds,
    );
    let patrol = walk(&chief);
    chief.sync().unwrap();

    // Offices receive problems, not patrols: the patrol is not on the office's phone...
    let office = phone(
        &dir.path().join("office"),
        &base,
        "demo-supervisor",
        clock.clone(),
        bounds,
    );
    office.sync().unwrap();
    assert!(matches!(
        office.patrol(patrol.clone()),
        Err(ChiefsyncError::NotFound { .. })
    ));
    // ...until it is opened from the overview.
    let fetched = office.fetch_document(patrol.clone()).unwrap();
    assert_eq!(fetched.kind, "patrol");
    assert_eq!(fetched.pinned_until_ms, T0 + bounds.pin_ms);
    let read = office.patrol(patrol.clone()).unwrap();
    assert_eq!((read.points, read.notes.as_str()), (3, "巡河完毕"));
    // Syncing does not take it away (the server does not record it as the phone's), nor
    // send anything for it.
    let report = office.sync().unwrap();
    assert_eq!(report.removed, 0);
    assert!(office.patrol(patrol.clone()).is_ok());

    // Another village's chief may not read it: answered exactly as a document that does not
    // exist.
    let other = phone(
        &dir.path().join("other"),
        &base,
        "demo-chief-2",
        clock.clone(),
        bounds,
    );
    let hidden = other.fetch_document(patrol.clone()).unwrap_err();
    let unknown = other
        .fetch_document("0192f0c4-2c8e-7b51-9d0e-3c1a5b7e8f21".into())
        .unwrap_err();
    match (&hidden, &unknown) {
        (ChiefsyncError::NotFound { detail: a }, ChiefsyncError::NotFound { detail: b }) => {
            assert_eq!(
                a.replace(&patrol, "ID"),
                b.replace("0192f0c4-2c8e-7b51-9d0e-3c1a5b7e8f21", "ID")
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(other.patrol(patrol.clone()).is_err());
    assert!(matches!(
        other.fetch_document("../sync".into()),
        Err(ChiefsyncError::InvalidInput { .. })
    ));

    // Offline: a network error, nothing stored.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let offline_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    drop(other);
    let offline = FieldClient::open(ClientConfig {
        clock: clock.clone(),
        retry: mobile_ffi::RetryPolicy::NONE,
        ..ClientConfig::new(dir.path().join("other"), offline_url)
    })
    .unwrap();
    assert!(matches!(
        offline.fetch_document(patrol.clone()),
        Err(ChiefsyncError::Network { .. })
    ));

    // Pinned, it stays past the age limit while in use; released, it goes like anything else.
    clock.0.store(T0 + bounds.pin_ms - 1, Ordering::SeqCst);
    assert_eq!(office.evict_now().unwrap().dropped, 0);
    clock
        .0
        .store(T0 + bounds.max_age_ms + DAY, Ordering::SeqCst);
    office.fetch_document(patrol.clone()).unwrap();
    // The office's aged problems go; the patrol, pinned again, stays.
    office.evict_now().unwrap();
    assert!(office.patrol(patrol.clone()).is_ok(), "pinned again");
    office.release_document(patrol.clone()).unwrap();
    clock
        .0
        .store(T0 + 2 * bounds.max_age_ms + 2 * DAY, Ordering::SeqCst);
    let report = office.evict_now().unwrap();
    assert!(report.dropped >= 1, "{report:?}");
    assert!(matches!(
        office.patrol(patrol.clone()),
        Err(ChiefsyncError::NotFound { .. })
    ));
    // The office's next sync tells the server, and brings nothing back.
    office.sync().unwrap();
    assert!(office.patrol(patrol).is_err());
}

#[test]
fn a_full_store_drops_what_it_may_never_unsent_work_and_needed_work_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);
    let clock = Arc::new(TestClock(AtomicI64::new(T0)));
    let chief = phone(
        &dir.path().join("chief"),
        &base,
        "demo-chief",
        clock.clone(),
        TIGHT,
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
    // Unsent: kept whatever the size.
    let patrol = walk(&chief);
    assert_eq!(chief.evict_now().unwrap().dropped, 0);
    assert!(chief.patrol(patrol.clone()).is_ok() && chief.issue(issue.clone()).is_ok());

    // Sent, the patrol may go: the sync drops it first and tells the server in the same
    // request only from the next one (it was unsent when it began), so sync twice. The open
    // problem on the chief's own stretch stays: it waits for them.
    let first = chief.sync().unwrap();
    assert_eq!(first.docs_sent, 2);
    clock.0.store(T0 + DAY, Ordering::SeqCst);
    chief.sync().unwrap();
    assert!(
        chief.issue(issue.clone()).is_ok(),
        "the open problem was kept"
    );
    assert!(
        chief.patrol(patrol.clone()).is_err(),
        "the patrol was dropped"
    );
    // Nothing comes back while nothing changes.
    chief.sync().unwrap();
    assert!(chief.patrol(patrol.clone()).is_err());

    // The office accepts the problem: the chief's phone receives the change. The patrol did
    // not change and stays away.
    let office = phone(
        &dir.path().join("office"),
        &base,
        "demo-supervisor",
        clock.clone(),
        StoreBounds::default(),
    );
    office.sync().unwrap();
    office
        .append_event(issue.clone(), EventDraft::Accept)
        .unwrap();
    assert_eq!(office.sync().unwrap().refused, 0);
    // A store bound that keeps what comes back long enough to look at it.
    drop(chief);
    let chief = FieldClient::open(ClientConfig {
        clock: clock.clone(),
        ..ClientConfig::new(dir.path().join("chief"), &base)
    })
    .unwrap();
    let report = chief.sync().unwrap();
    assert_eq!(report.docs_received, 1, "{report:?}");
    let back = chief.issue(issue).unwrap();
    assert_eq!(
        back.summary.status,
        Some(mobile_ffi::IssueStatus::Accepted),
        "{back:?}"
    );
    assert!(chief.patrol(patrol).is_err());
}

/// The photos a chief takes would fill the phone over a year outside the store's bound. A photo
/// leaves the phone with the last document that references it, and only once the server holds
/// it: while it waits to go up, its patrol is unsent work and both stay.
#[test]
fn a_photo_leaves_the_phone_with_its_patrol_once_the_server_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);
    let clock = Arc::new(TestClock(AtomicI64::new(T0)));
    let chief = phone(
        &dir.path().join("chief"),
        &base,
        "demo-chief",
        clock.clone(),
        TIGHT,
    );
    let asset = chief.me().unwrap().assets[0].clone();
    let (lat, lon) = common::spot(&asset);
    let patrol = chief.start_patrol(asset).unwrap();
    chief
        .add_track_point(patrol.clone(), lat, lon, T0, 5.0, false, String::new())
        .unwrap();
    let taken = dir.path().join("camera.jpg");
    image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 60])
    })
    .save(&taken)
    .unwrap();
    let photo = chief
        .attach_photo(
            patrol.clone(),
            taken.display().to_string(),
            PhotoRole::Evidence,
        )
        .unwrap();
    chief
        .finish_patrol(patrol.clone(), "巡河完毕".into())
        .unwrap();
    let kept = dir
        .path()
        .join("chief/photos")
        .join(format!("{}.jpg", photo.sha256));
    assert!(kept.exists(), "the prepared photo is on the phone");

    // Not yet sent: the patrol and its photo stay.
    let report = chief.evict_now().unwrap();
    assert_eq!((report.dropped, report.photos_removed), (0, 0));
    assert!(kept.exists());

    // Sent, with its photo: at the next pass the patrol goes, and its photo with it.
    let sent = chief.sync().unwrap();
    assert_eq!(sent.photos_uploaded, 1, "{sent:?}");
    clock.0.store(T0 + DAY, Ordering::SeqCst);
    let report = chief.evict_now().unwrap();
    // The patrol and what the sync brought of the district's demo work.
    assert!(report.dropped >= 1, "{report:?}");
    assert_eq!(report.photos_removed, 1, "{report:?}");
    assert_eq!(report.photo_bytes_removed, photo.bytes);
    assert!(!kept.exists(), "the photo's file is gone from the phone");
    assert!(chief.patrol(patrol).is_err());
    assert!(chief.pending_uploads().unwrap().is_empty());
    // The camera's own file is the user's, not the phone library's.
    assert!(taken.exists());
    assert_eq!(chief.evict_now().unwrap().photos_removed, 0);
}

/// A phone whose clock was set back two months (by hand, or a wrong network time) receives and
/// records a week of work, then its clock is put right: the chief's own patrol, days old, is
/// not taken for months old and stays on the phone. The store's rule dates what it holds by a
/// clock that never runs backwards.
#[test]
fn a_clock_set_back_and_put_right_does_not_age_the_chiefs_own_week() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);
    let clock = Arc::new(TestClock(AtomicI64::new(T0)));
    let bounds = StoreBounds::default();
    let chief = phone(
        &dir.path().join("chief"),
        &base,
        "demo-chief",
        clock.clone(),
        bounds,
    );
    chief.sync().unwrap();
    clock.0.store(T0 - 60 * DAY, Ordering::SeqCst);
    let patrol = walk(&chief);
    chief.sync().unwrap();
    assert!(chief.patrol(patrol.clone()).is_ok());

    clock.0.store(T0 + DAY, Ordering::SeqCst);
    let report = chief.evict_now().unwrap();
    assert!(
        chief.patrol(patrol.clone()).is_ok(),
        "the chief's patrol of yesterday was dropped as two months old: {report:?}"
    );
    // It still ages from when the phone saw it: past the age limit it may go.
    clock
        .0
        .store(T0 + bounds.max_age_ms + DAY, Ordering::SeqCst);
    chief.evict_now().unwrap();
    assert!(chief.patrol(patrol).is_err(), "aged out");
}

/// A phone whose clock once read two years ahead (a wrong network time) and was put right: the
/// store's clock lets that reading go, and the chief's patrol of today ages from today.
#[test]
fn a_reading_far_ahead_does_not_stop_the_store_from_ageing() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);
    let clock = Arc::new(TestClock(AtomicI64::new(T0 + 730 * DAY)));
    let bounds = StoreBounds::default();
    let chief = phone(
        &dir.path().join("chief"),
        &base,
        "demo-chief",
        clock.clone(),
        bounds,
    );
    chief.evict_now().unwrap();
    clock.0.store(T0, Ordering::SeqCst);
    let patrol = walk(&chief);
    chief.sync().unwrap();
    clock
        .0
        .store(T0 + bounds.max_age_ms + DAY, Ordering::SeqCst);
    let report = chief.evict_now().unwrap();
    assert!(
        chief.patrol(patrol).is_err(),
        "the patrol was dated two years ahead and never aged: {report:?}"
    );
}

/// A patrol's routing facts are taken from the store's index without reading it again
/// (`DocMeta::lasts`); one whose stored copy no longer reads is still never dropped: it is left
/// for the integrity check, as any copy whose facts do not read.
#[test]
fn a_patrol_that_no_longer_reads_is_not_dropped_on_facts_read_before() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::start_demo_server(&dir.path().join("server"), 900);
    let clock = Arc::new(TestClock(AtomicI64::new(T0)));
    let phone_dir = dir.path().join("chief");
    let chief = phone(&phone_dir, &base, "demo-chief", clock.clone(), TIGHT);
    let patrol = walk(&chief);
    chief.sync().unwrap();
    drop(chief);

    // Damage the patrol's stored copy: a chunk that is no automerge at all.
    let store = sync_core::store::LocalStore::open(phone_dir.join("store")).unwrap();
    store
        .append_doc_changes(&patrol, sync_core::store::DocKind::Patrol, b"not a change")
        .unwrap();
    drop(store);

    clock.0.store(T0 + DAY, Ordering::SeqCst);
    let config = ClientConfig {
        clock,
        store: TIGHT,
        ..ClientConfig::new(&phone_dir, &base)
    };
    let chief = FieldClient::open(config).unwrap();
    let report = chief.evict_now().unwrap();
    drop(chief);
    let store = sync_core::store::LocalStore::open(phone_dir.join("store")).unwrap();
    assert!(
        store.has_doc(&patrol).unwrap(),
        "the damaged patrol was dropped: {report:?}"
    );
}
