//! The server crash test on the province setup: two servers (`crash-server --database …
//! --blobs s3://…`) on one PostgreSQL, photos in one S3 bucket. Chiefs' phones (mobile-ffi's
//! `FieldClient`) keep recording patrols and problems, some with a photo, editing their
//! problems from several devices, and syncing each time through one of the two servers chosen
//! at random, while the servers are killed with SIGKILL at random moments and started again,
//! and PostgreSQL itself is restarted once as a crash does (`pg_ctl restart -m immediate`).
//!
//! Checked: a sync that failed was answered 503 or cut, never a 500 (a server that cannot
//! reach the database, or finds another server saved the document meanwhile, says "send
//! again"); both servers answer again after the database restart without being restarted;
//! every change and every photo a server acknowledged is in PostgreSQL and S3 before any phone
//! syncs again; after two more syncs every phone holds exactly the stored version of every
//! document it has and has no photo left to send.
//!
//! The PostgreSQL is a cluster of the test's own (`tests::postgres`, on a free loopback port),
//! never the one other tests share; SeaweedFS is the real `weed` (`CHIEFSYNC_TEST_WEED`). The
//! test says `skipped:` where either is missing. Replay a run with `TWO_NODE_CRASH_SEED=<seed>`.
//!
//! Beside it, `a_server_answers_503_while_its_database_is_down_and_recovers_without_restart`:
//! one server, the database stopped, requests answered at once with a JSON 503, and after the
//! database starts again the same server process answers and stores what the phone kept.
#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use automerge::ChangeHash;
use image::RgbImage;
use mobile_ffi::{
    ChiefsyncError, ClientConfig, Clock, FieldClient, IssueDraft, PhotoRole, RetryPolicy, Severity,
    System,
};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use server::blobs::BlobLocation;
use server::demo::{CHIEF, CHIEF_2, FIELD_CHIEF, FOREST_CHIEF};
use server::{AppState, Settings};
use sync_core::client::SyncClient;
use sync_core::doc::{DocKind, IssueDoc};
use sync_core::hub::DocumentStore;
use sync_core::photo::sha256_hex;
use sync_core::store::DocKind as StoreKind;
use tests::crash::KilledServer;
use tests::postgres::Cluster;
use tests::weed::Weed;

const NODES: usize = 2;
/// Kills of a server; the database restart comes halfway through them.
const KILLS: usize = 18;
const DEVICES_PER_CHIEF: usize = 2;
const CAMERA_WIDTH: u32 = 640;
const CAMERA_HEIGHT: u32 = 480;

/// One server of the two: its address, its own data directory (the signing key file; the
/// store and photos are shared) and its arguments.
struct Node {
    addr: String,
    data: tempfile::TempDir,
    args: Vec<String>,
}

impl Node {
    fn new(database: &str, blobs: Option<&str>) -> Node {
        let mut args = vec!["--database".to_owned(), database.to_owned()];
        if let Some(blobs) = blobs {
            args.extend(["--blobs".to_owned(), blobs.to_owned()]);
        }
        Node {
            addr: tests::crash::free_addr(),
            data: tempfile::tempdir().unwrap(),
            args,
        }
    }

    fn start(&self) -> KilledServer {
        tests::crash::start_with(
            env!("CARGO_BIN_EXE_crash-server"),
            self.data.path(),
            &self.addr,
            &self.args,
        )
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The phone's clock: an hour passes between two syncs, so a photo whose upload failed is due
/// again at once (the outbox backs off for at most an hour).
#[derive(Debug)]
struct HourPerSync(AtomicI64);

impl Clock for HourPerSync {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One chief's phone. The app is opened again against the server chosen for each sync (the
/// same store and session), as a phone behind a load balancer reaches whichever server.
struct Phone {
    device_id: String,
    dir: PathBuf,
    clock: Arc<HourPerSync>,
    client: Option<Arc<FieldClient>>,
    asset: String,
    spot: [f64; 2],
    system: System,
}

impl Phone {
    fn sign_in(user: &'static str, device_id: String, dir: &Path, base: &str) -> Phone {
        let mut phone = Phone {
            device_id,
            dir: dir.to_owned(),
            clock: Arc::new(HourPerSync(AtomicI64::new(unix_ms()))),
            client: None,
            asset: String::new(),
            spot: [0.0, 0.0],
            system: System::River,
        };
        phone.open(base);
        let me = phone
            .client()
            .login(user.into(), "demo".into())
            .unwrap_or_else(|e| panic!("login {user}: {e}"));
        phone.asset = me.assets[0].clone();
        phone.spot = tests::phone::spot_on(
            &server::demo::facts()
                .asset(&phone.asset)
                .expect("demo asset")
                .geometry,
        );
        phone.system = me.system.expect("a chief's system");
        phone
    }

    /// The app closed and opened again against `base`.
    fn open(&mut self, base: &str) {
        drop(self.client.take());
        let client = FieldClient::open(ClientConfig {
            clock: self.clock.clone(),
            retry: RetryPolicy::NONE,
            device_id: Some(self.device_id.clone()),
            ..ClientConfig::new(&self.dir, base)
        })
        .expect("open the phone");
        self.client = Some(client);
    }

    fn client(&self) -> &FieldClient {
        self.client.as_deref().expect("the app is open")
    }

    /// Heads of every document on the phone, as hex, by id.
    fn heads(&self) -> BTreeMap<String, Vec<String>> {
        let store = self.client().app().store();
        let mut out = BTreeMap::new();
        for kind in [StoreKind::Patrol, StoreKind::Issue] {
            for id in store.doc_ids(kind).unwrap() {
                let mut doc = SyncClient::new(store).load(&id).unwrap().unwrap();
                let mut heads: Vec<String> =
                    doc.get_heads().iter().map(|h| h.to_string()).collect();
                heads.sort();
                out.insert(id, heads);
            }
        }
        out
    }

    /// Photos waiting in the outbox.
    fn waiting(&self) -> BTreeSet<String> {
        self.client()
            .pending_uploads()
            .unwrap()
            .into_iter()
            .map(|p| p.sha256)
            .collect()
    }

    /// One thing a chief does on the phone: a patrol, a problem report (every other one with a
    /// photo), or a better description of a problem they reported, possibly from their other
    /// device at the same time.
    fn work(&self, rng: &mut StdRng, noise: &mut RgbImage, n: usize) {
        let client = self.client();
        match rng.random_range(0..4) {
            0 => {
                let patrol = client.start_patrol(self.asset.clone()).unwrap();
                let now = self.clock.now_ms();
                for i in 0..5 {
                    client
                        .add_track_point(
                            patrol.clone(),
                            self.spot[1] + i as f64 * 1e-5,
                            self.spot[0],
                            now + i * 1_000,
                            5.0,
                            false,
                            "gps".into(),
                        )
                        .unwrap();
                }
                client.finish_patrol(patrol, String::new()).unwrap();
            }
            1 | 2 => {
                let category = match self.system {
                    System::River => "river.garbage",
                    System::Forest => "forest.fire_hazard",
                    System::Field => "field.non_agricultural",
                };
                let issue = client
                    .report_issue(IssueDraft {
                        category: category.into(),
                        severity: Severity::General,
                        asset_id: self.asset.clone(),
                        lat: self.spot[1],
                        lon: self.spot[0],
                        description: format!("{} 第{n}次发现", self.device_id),
                        patrol_id: None,
                    })
                    .unwrap();
                if rng.random_bool(0.5) {
                    let camera = self.dir.join(format!("camera-{n}.jpg"));
                    tests::crash::camera_picture(noise, rng, &camera, 90);
                    client
                        .attach_photo(issue, camera.display().to_string(), PhotoRole::Before)
                        .unwrap();
                }
            }
            _ => {
                let app = client.app();
                let store = app.store();
                let me = app.user().unwrap().id;
                let own: Vec<String> = store
                    .doc_ids(StoreKind::Issue)
                    .unwrap()
                    .into_iter()
                    .filter(|id| self.issue(id).view().unwrap().reporter == me)
                    .collect();
                if let Some(id) = own.get(rng.random_range(0..own.len().max(1))) {
                    let mut issue = self.issue(id);
                    issue
                        .set_description(&format!("{} 补充 {n}", self.device_id))
                        .unwrap();
                    SyncClient::new(store)
                        .save(&mut issue, DocKind::Issue, id)
                        .unwrap();
                }
            }
        }
    }

    fn issue(&self, id: &str) -> IssueDoc {
        let app = self.client().app();
        let bytes = app.store().load_doc(id).unwrap().expect("listed");
        IssueDoc::load(&bytes)
            .unwrap()
            .with_actor(app.actor().unwrap())
    }

    fn sync(&self) -> Result<mobile_ffi::SyncReport, ChiefsyncError> {
        self.clock.0.fetch_add(3_600_001, Ordering::SeqCst);
        self.client().sync()
    }
}

/// The shared store and photos, opened in this process with no server running.
fn open_shared(database: &str, blobs: &str) -> (tempfile::TempDir, AppState) {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        database: Some(database.to_owned()),
        blobs: BlobLocation::parse(blobs).unwrap(),
        ..Settings::new(dir.path())
    };
    let state = AppState::open(&settings).expect("the shared store opens after the kills");
    (dir, state)
}

/// Asks `base` for the signed-in user until it answers 200; every other answer must be a
/// JSON 503. Returns how long it took.
fn wait_until_serving(base: &str, token: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let reply = tests::phone::get(base, token, "/api/v1/me");
        if reply.status == 200 {
            return started.elapsed();
        }
        reply.expect_error(503, "unavailable");
        assert!(
            started.elapsed() < within,
            "{base} still answers 503 after {within:?}: it did not recover its connections"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_servers_on_one_postgres_keep_every_acknowledged_change_and_photo_through_kills() {
    let weed = match Weed::binary() {
        Ok(binary) => binary,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let cluster = match Cluster::start() {
        Ok(cluster) => cluster,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let seed = tests::crash::seed("TWO_NODE_CRASH_SEED");
    let weed = Weed::start(&weed);
    let blobs = weed.url("two-node-crash");
    let database = cluster.url();
    let nodes: Vec<Node> = (0..NODES)
        .map(|_| Node::new(&database, Some(&blobs)))
        .collect();
    // One after the other: the first seeds the demo, the second finds it seeded.
    let mut running: Vec<Option<KilledServer>> = nodes.iter().map(|n| Some(n.start())).collect();
    let bases: Vec<String> = nodes.iter().map(Node::base).collect();
    let watcher = tests::phone::login(&bases[0], CHIEF, "demo", "watcher")["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let chiefs = [CHIEF, CHIEF_2, FOREST_CHIEF, FIELD_CHIEF];
    let homes: Vec<_> = (0..chiefs.len() * DEVICES_PER_CHIEF)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let phones: Vec<Phone> = chiefs
        .iter()
        .flat_map(|user| (0..DEVICES_PER_CHIEF).map(move |d| (*user, d)))
        .zip(&homes)
        .enumerate()
        .map(|(i, ((user, d), home))| {
            Phone::sign_in(user, format!("{user}-{d}"), home.path(), &bases[i % NODES])
        })
        .collect();

    // Every change a phone had when a sync of it returned, and every photo that left its
    // outbox in a sync that returned: the servers acknowledged them.
    let acknowledged: Mutex<BTreeMap<String, BTreeSet<String>>> = Mutex::new(BTreeMap::new());
    let photos: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    // The status and code of every failed sync the servers answered (cut ones have none).
    let statuses: Mutex<BTreeMap<(u16, String), usize>> = Mutex::new(BTreeMap::new());
    let stop = AtomicBool::new(false);
    let (synced, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let through: [AtomicUsize; NODES] = Default::default();
    // 503s answered while the database was not restarting: another server saved the same
    // document between this one's read and its save.
    let (restarting, raced) = (AtomicBool::new(false), AtomicUsize::new(0));
    let started = Instant::now();
    let mut recovered = Vec::new();
    let phones = std::thread::scope(|s| {
        let workers: Vec<_> = phones
            .into_iter()
            .enumerate()
            .map(|(i, mut phone)| {
                let (acknowledged, photos, statuses, stop, synced, failed, bases) = (
                    &acknowledged,
                    &photos,
                    &statuses,
                    &stop,
                    &synced,
                    &failed,
                    &bases,
                );
                let (restarting, raced, through) = (&restarting, &raced, &through);
                s.spawn(move || {
                    let mut rng = StdRng::seed_from_u64(seed ^ (i as u64 + 1));
                    let mut noise = RgbImage::new(CAMERA_WIDTH, CAMERA_HEIGHT);
                    rng.fill_bytes(&mut noise);
                    let (mut n, mut pending) = (0, false);
                    while !stop.load(Ordering::Relaxed) {
                        let node = rng.random_range(0..NODES);
                        phone.open(&bases[node]);
                        if !pending {
                            n += 1;
                            phone.work(&mut rng, &mut noise, n);
                        }
                        let (before, waiting) = (phone.heads(), phone.waiting());
                        match phone.sync() {
                            Ok(report) => {
                                assert_eq!(
                                    report.refused,
                                    0,
                                    "{}: {report:?}: {:?}",
                                    phone.device_id,
                                    phone.client().quarantine()
                                );
                                let mut acked = acknowledged.lock().unwrap();
                                for (id, heads) in before {
                                    acked.entry(id).or_default().extend(heads);
                                }
                                let left = phone.waiting();
                                photos
                                    .lock()
                                    .unwrap()
                                    .extend(waiting.difference(&left).cloned());
                                pending = false;
                                synced.fetch_add(1, Ordering::Relaxed);
                                through[node].fetch_add(1, Ordering::Relaxed);
                            }
                            Err(err) => {
                                if let ChiefsyncError::Server { status, code, .. } = err {
                                    if !restarting.load(Ordering::Relaxed) {
                                        raced.fetch_add(1, Ordering::Relaxed);
                                    }
                                    *statuses.lock().unwrap().entry((status, code)).or_default() +=
                                        1;
                                }
                                pending = true;
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        std::thread::sleep(Duration::from_millis(rng.random_range(5..40)));
                    }
                    phone
                })
            })
            .collect();

        let mut rng = StdRng::seed_from_u64(seed);
        for kill in 0..KILLS {
            std::thread::sleep(Duration::from_millis(rng.random_range(300..1_200)));
            if kill == KILLS / 2 {
                // The database machine crashes and comes back while both servers run; each
                // answers again on its own.
                restarting.store(true, Ordering::Relaxed);
                cluster.restart_immediately();
                for base in &bases {
                    recovered.push(wait_until_serving(base, &watcher, Duration::from_secs(20)));
                }
                // Answers to requests already on their way are still coming in.
                std::thread::sleep(Duration::from_millis(500));
                restarting.store(false, Ordering::Relaxed);
            }
            let node = rng.random_range(0..NODES);
            drop(running[node].take());
            std::thread::sleep(Duration::from_millis(rng.random_range(0..300)));
            running[node] = Some(nodes[node].start());
        }
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .collect::<Vec<Phone>>()
    });
    let mut phones = phones;
    running.clear();
    let acknowledged = acknowledged.into_inner().unwrap();
    let photos = photos.into_inner().unwrap();
    let statuses = statuses.into_inner().unwrap();
    println!(
        "{KILLS} kills and a database restart in {:.1} s: {} syncs returned, {} failed \
         (answered: {statuses:?}; {} of them outside the database restart), {} documents and \
         {} photos acknowledged; after the database restart the servers answered again in \
         {recovered:?}",
        started.elapsed().as_secs_f64(),
        synced.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        raced.load(Ordering::Relaxed),
        acknowledged.len(),
        photos.len(),
    );
    assert!(
        synced.load(Ordering::Relaxed) > 50,
        "the phones kept syncing"
    );
    assert!(
        through.iter().all(|n| n.load(Ordering::Relaxed) > 10),
        "both servers answered syncs: {through:?}"
    );
    assert!(failed.load(Ordering::Relaxed) > 0, "some syncs were cut");
    assert!(!photos.is_empty(), "some photos were acknowledged");
    assert!(
        statuses.keys().all(|(status, _)| *status == 503),
        "a failed sync is answered 503 (send again), never a server error: {statuses:?}"
    );

    // Before any phone syncs again: everything acknowledged is stored.
    let (dir, state) = open_shared(&database, &blobs);
    let mut stored = tests::crash::stored_heads(&*state.store);
    for (id, heads) in &acknowledged {
        let (doc, _) = stored
            .get_mut(id)
            .unwrap_or_else(|| panic!("acknowledged document {id} is missing"));
        for head in heads {
            let hash: ChangeHash = head.parse().unwrap();
            assert!(
                doc.get_change_by_hash(&hash).is_some(),
                "acknowledged change {head} of {id} is missing; the stored document lacks \
                 dependencies {:?}; its records: {}",
                doc.get_missing_deps(&[]),
                records_of(&database, id),
            );
        }
    }
    for sha in &photos {
        let bytes = state
            .blobs
            .store()
            .read(sha)
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged photo {sha} is missing"));
        assert_eq!(&sha256_hex(&bytes), sha, "photo {sha} is whole");
    }
    drop(state);
    drop(dir);

    // Every phone syncs twice more, through each server once; then each holds the stored
    // version of everything it has, and has sent every photo it took.
    let running: Vec<KilledServer> = nodes.iter().map(Node::start).collect();
    for round in 0..2 {
        for (i, phone) in phones.iter_mut().enumerate() {
            phone.open(&bases[(i + round) % NODES]);
            let report = phone
                .sync()
                .unwrap_or_else(|e| panic!("{}: {e}", phone.device_id));
            assert_eq!(report.refused, 0, "{report:?}");
        }
    }
    drop(running);
    let (_dir, state) = open_shared(&database, &blobs);
    let stored = tests::crash::stored_heads(&*state.store);
    for phone in &phones {
        assert!(
            phone.waiting().is_empty(),
            "{} has photos left to send",
            phone.device_id
        );
        assert!(phone.client().quarantine().unwrap().is_empty());
        for (id, heads) in phone.heads() {
            assert_eq!(
                Some(&heads),
                stored.get(&id).map(|(_, h)| h),
                "{} and {id}",
                phone.device_id
            );
        }
        for photo in phone.client().app().store().outbox().unwrap() {
            let bytes = state.blobs.store().read(&photo.sha256).unwrap();
            assert!(bytes.is_some(), "photo {} is stored", photo.sha256);
        }
    }
    println!("{} phones converged through both servers", phones.len());
    drop(cluster);
}

#[test]
fn a_server_answers_503_while_its_database_is_down_and_recovers_without_restart() {
    let cluster = match Cluster::start() {
        Ok(cluster) => cluster,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let database = cluster.url();
    let node = Node::new(&database, None);
    let server = node.start();
    let base = node.base();
    let dir = tempfile::tempdir().unwrap();
    let phone = tests::phone::Phone::login(&base, CHIEF, "outage-phone", dir.path());
    let token = phone.token();
    let now = unix_ms();
    let (before, _) = phone.record_patrol(&phone_asset(&phone), now - 3_600_000, 30, 1);
    phone.sync(now).expect("sync with the database up");

    cluster.stop_immediately();
    // Answered at once, as JSON, with a 503 the phone sends again after.
    for _ in 0..3 {
        let asked = Instant::now();
        tests::phone::get(&base, &token, "/api/v1/me").expect_error(503, "unavailable");
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "answered in {:?}",
            asked.elapsed()
        );
    }
    let (during, _) = phone.record_patrol(&phone_asset(&phone), now - 1_800_000, 30, 2);
    match phone.sync(now) {
        Err(ChiefsyncError::Server { status, code, .. }) => {
            assert_eq!((status, code.as_str()), (503, "unavailable"));
        }
        other => panic!("a sync while the database is down: {other:?}"),
    }
    let login = tests::phone::agent()
        .post(format!("{base}/api/v1/auth/login"))
        .send_json(serde_json::json!({
            "username": CHIEF_2, "password": "demo", "device_id": "outage-2",
        }))
        .unwrap();
    assert_eq!(login.status().as_u16(), 503);

    // The same server process, once the database is back.
    cluster.start_again();
    let took = wait_until_serving(&base, &token, Duration::from_secs(20));
    println!("the server answered again {took:?} after the database started");
    let report = phone.sync(now).expect("sync after the database is back");
    assert!(report.docs_sent >= 1, "{report:?}");
    drop(server);

    let dir = tempfile::tempdir().unwrap();
    let state = AppState::open(&Settings {
        database: Some(database.clone()),
        ..Settings::new(dir.path())
    })
    .unwrap();
    for id in [before, during] {
        assert!(
            state.store.document(&id).unwrap().is_some(),
            "patrol {id} is stored"
        );
    }
}

/// The stored records of a document (snapshot and incremental saves, with their feed
/// positions), to say what a failed check found.
fn records_of(database: &str, id: &str) -> String {
    let sql = format!(
        "SELECT 'snapshot', seq, octet_length(bytes) FROM documents WHERE id = '{id}' \
         UNION ALL SELECT 'incremental', seq, octet_length(bytes) FROM document_changes \
         WHERE doc_id = '{id}' ORDER BY 2"
    );
    let out = std::process::Command::new("psql")
        .args([database, "-At", "-c", &sql])
        .output()
        .expect("psql runs");
    String::from_utf8_lossy(&out.stdout).replace('\n', "; ")
}

fn phone_asset(phone: &tests::phone::Phone) -> String {
    let sync_core::model::Role::Chief { jurisdiction, .. } = &phone.user.role else {
        unreachable!("a chief")
    };
    jurisdiction.assets[0].clone()
}
