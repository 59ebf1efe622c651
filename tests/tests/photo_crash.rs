//! Crash test of photo uploads: chiefs' phones (mobile-ffi's `FieldClient`, with its resumable
//! chunked upload) keep recording patrols and problems with a photo each and syncing, while the
//! server (the `crash-server` program, as in `server_crash.rs`) is killed with SIGKILL at random
//! moments and started again on the same data directory.
//!
//! Checked, with the server down after the last kill: sled opens, every acknowledged document
//! is stored with its photo references, every stored photo hashes to its name and has its
//! receipt, and every interrupted upload holds an exact prefix of its photo (no half-written or
//! foreign bytes). Every upload that completed is checked to have sent exactly the bytes the
//! server did not hold yet (it resumed from the server's offset), and some must have resumed
//! mid-photo. After the phones catch up with a server left alone: every photo referenced by an
//! acknowledged document downloads with the right bytes, and the blob store holds each photo
//! the phones took exactly once, with no partial upload left. Replay a run with
//! `PHOTO_CRASH_SEED=<seed>`.
#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use image::RgbImage;
use mobile_ffi::{ClientConfig, Clock, FieldClient, IssueDraft, PhotoRole, Severity, System};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use server::demo::{CHIEF, CHIEF_2, FIELD_CHIEF, FOREST_CHIEF};
use server::storage::SledStore;
use sync_core::doc::{self, DocKind, IssueDoc, PatrolDoc};
use sync_core::hub::DocumentStore;
use sync_core::photo::{sha256_hex, PrepareOptions};

const KILLS: usize = 25;
const DEVICES_PER_CHIEF: usize = 2;
/// Camera pictures of noise: prepared at JPEG quality 95 they stay large (several 128 KiB
/// chunks), so kills land in the middle of uploads.
const CAMERA_WIDTH: u32 = 960;
const CAMERA_HEIGHT: u32 = 720;

fn start(data: &Path, addr: &str) -> tests::crash::KilledServer {
    tests::crash::start(env!("CARGO_BIN_EXE_crash-server"), data, addr)
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

/// One photo a phone took, and the record it belongs to.
#[derive(Debug, Clone)]
struct Taken {
    record: String,
    sha256: String,
    path: PathBuf,
    size: u64,
}

struct Phone {
    user: &'static str,
    client: Arc<FieldClient>,
    clock: Arc<HourPerSync>,
    asset: String,
    /// `[lon, lat]` on the asset, where problems are reported.
    spot: [f64; 2],
    system: System,
    dir: PathBuf,
}

/// What the server holds of a photo for one user (`HEAD /blobs/{sha}`): `Some(bytes)` (0 when
/// nothing), `None` when the server could not be asked.
fn held(base: &str, token: &str, sha256: &str, size: u64) -> Option<u64> {
    let response = tests::phone::agent()
        .head(format!("{base}/api/v1/blobs/{sha256}"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .ok()?;
    match response.status().as_u16() {
        404 => Some(0),
        200 => {
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let offset: u64 = header("Upload-Offset")?.parse().ok()?;
            // Every byte held but not stored (killed before the commit): the phone owes the
            // last byte again, which makes the server check and commit the photo.
            let stored = header("Upload-Complete").as_deref() != Some("?0");
            Some(if !stored && offset == size {
                offset - 1
            } else {
                offset
            })
        }
        _ => None,
    }
}

impl Phone {
    /// A patrol or a problem report with one photo, saved on the phone (offline).
    fn record_with_photo(&self, rng: &mut StdRng, noise: &mut RgbImage, n: usize) -> Taken {
        let camera = self.dir.join(format!("camera-{n}.jpg"));
        tests::crash::camera_picture(noise, rng, &camera, 95);
        let file = camera.display().to_string();
        let (record, photo) = if rng.random_bool(0.5) {
            let patrol = self.client.start_patrol(self.asset.clone()).unwrap();
            let photo = self
                .client
                .attach_photo(patrol.clone(), file, PhotoRole::Evidence)
                .unwrap();
            (patrol, photo)
        } else {
            let category = match self.system {
                System::River => "river.garbage",
                System::Forest => "forest.fire_hazard",
                System::Field => "field.non_agricultural",
            };
            let issue = self
                .client
                .report_issue(IssueDraft {
                    category: category.into(),
                    severity: Severity::General,
                    asset_id: self.asset.clone(),
                    lat: self.spot[1],
                    lon: self.spot[0],
                    description: format!("{} 第{n}次发现", self.user),
                    patrol_id: None,
                })
                .unwrap();
            let photo = self
                .client
                .attach_photo(issue.clone(), file, PhotoRole::Before)
                .unwrap();
            (issue, photo)
        };
        let entry = self
            .client
            .pending_uploads()
            .unwrap()
            .into_iter()
            .find(|p| p.sha256 == photo.sha256)
            .expect("the new photo waits in the outbox");
        Taken {
            record,
            sha256: photo.sha256,
            path: PathBuf::from(entry.path),
            size: entry.size,
        }
    }

    fn sync(&self) -> Result<mobile_ffi::SyncReport, mobile_ffi::ChiefsyncError> {
        self.clock.0.fetch_add(3_600_001, Ordering::SeqCst);
        self.client.sync()
    }
}

/// Counts of what happened during the kills.
#[derive(Default)]
struct Tally {
    syncs: AtomicUsize,
    syncs_cut: AtomicUsize,
    uploads_done: AtomicUsize,
    uploads_cut: AtomicUsize,
    /// Completed uploads whose server offset was known just before: the phone sent exactly
    /// the rest.
    checked: AtomicUsize,
    /// Of those, the ones that began in the middle of the photo.
    resumed: AtomicUsize,
    resumed_bytes_saved: AtomicUsize,
}

/// One sync of a phone with a photo waiting: asks the server what it holds of the photo first,
/// and when the sync completes the upload, checks that the phone sent exactly the rest.
/// Returns the sync's result; counts in `tally`, and notes a wrong resume in `wrong`.
fn sync_checked(
    phone: &Phone,
    photo: &Taken,
    base: &str,
    token: &str,
    tally: &Tally,
    wrong: &Mutex<Vec<String>>,
) -> Result<mobile_ffi::SyncReport, mobile_ffi::ChiefsyncError> {
    let before = held(base, token, &photo.sha256, photo.size);
    let result = phone.sync();
    match &result {
        Ok(report) => {
            tally.syncs.fetch_add(1, Ordering::Relaxed);
            if report.photos_uploaded == 1 {
                tally.uploads_done.fetch_add(1, Ordering::Relaxed);
                if let Some(held) = before {
                    tally.checked.fetch_add(1, Ordering::Relaxed);
                    let rest = photo.size - held.min(photo.size);
                    if report.photo_bytes_up != rest {
                        wrong.lock().unwrap().push(format!(
                            "{}: server held {held} of {} bytes, phone sent {}",
                            photo.sha256, photo.size, report.photo_bytes_up
                        ));
                    }
                    if held > 0 && held < photo.size {
                        tally.resumed.fetch_add(1, Ordering::Relaxed);
                        tally
                            .resumed_bytes_saved
                            .fetch_add(held as usize, Ordering::Relaxed);
                    }
                }
            } else if !report.errors.is_empty() {
                tally.uploads_cut.fetch_add(1, Ordering::Relaxed);
            }
        }
        Err(_) => {
            tally.syncs_cut.fetch_add(1, Ordering::Relaxed);
        }
    }
    result
}

/// Every object in the blob store: name → bytes. Checks each object hashes to its name and has
/// its receipt record.
fn stored_objects(blobs: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for shard in std::fs::read_dir(blobs.join("objects")).unwrap() {
        for file in std::fs::read_dir(shard.unwrap().path()).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".record") {
                continue;
            }
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(
                sha256_hex(&bytes),
                name,
                "a stored photo is whole and named by its hash"
            );
            assert!(
                path.with_file_name(format!("{name}.record")).exists(),
                "photo {name} has its receipt"
            );
            assert!(out.insert(name, bytes).is_none());
        }
    }
    out
}

/// The photo references of every document in the server's store, by document id.
fn stored_photo_refs(data: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let store = SledStore::open(&data.join("db")).expect("sled opens cleanly after the kills");
    let mut out = BTreeMap::new();
    for meta in store.all_documents().unwrap() {
        let stored = store
            .document(&meta.id)
            .unwrap()
            .expect("listed documents exist");
        let (am, header) = doc::load(&stored.bytes).expect("stored documents load");
        let photos = match header.kind {
            DocKind::Patrol => {
                PatrolDoc::from_automerge(am)
                    .unwrap()
                    .view()
                    .unwrap()
                    .photos
            }
            DocKind::Issue => IssueDoc::from_automerge(am).unwrap().view().unwrap().photos,
        };
        out.insert(meta.id, photos.into_iter().map(|p| p.sha256).collect());
    }
    out
}

/// A kill between the last chunk reaching the disk and the photo's commit leaves all the bytes
/// as a partial upload, and `HEAD` answers `Upload-Offset` = size with `Upload-Complete: ?0`;
/// the phone must send the last byte again so the server checks and commits the photo (this
/// test found the phone taking such a partial for a stored photo, which then never arrived).
#[test]
fn photo_uploads_cut_by_server_kills_resume_and_every_acknowledged_photo_arrives_once() {
    let seed = tests::crash::seed("PHOTO_CRASH_SEED");
    let data = tempfile::tempdir().unwrap();
    let addr = tests::crash::free_addr();
    let base = format!("http://{addr}");
    let mut server = start(data.path(), &addr);

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let chiefs = [CHIEF, CHIEF_2, FOREST_CHIEF, FIELD_CHIEF];
    // Each chief's token, to ask the server what it holds of their uploads.
    let tokens: BTreeMap<&str, String> = chiefs
        .iter()
        .map(|user| {
            let grant = tests::phone::login(&base, user, "demo", &format!("{user}-observer"));
            (*user, grant["access_token"].as_str().unwrap().to_owned())
        })
        .collect();
    let homes: Vec<_> = (0..chiefs.len() * DEVICES_PER_CHIEF)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let phones: Vec<Phone> = chiefs
        .iter()
        .flat_map(|user| (0..DEVICES_PER_CHIEF).map(move |_| *user))
        .zip(&homes)
        .map(|(user, home)| {
            let clock = Arc::new(HourPerSync(AtomicI64::new(now)));
            let client = FieldClient::open(ClientConfig {
                clock: clock.clone(),
                photos: PrepareOptions {
                    quality: 95,
                    ..PrepareOptions::default()
                },
                ..ClientConfig::new(home.path(), &base)
            })
            .unwrap();
            let me = client.login(user.into(), "demo".into()).unwrap();
            Phone {
                user,
                client,
                clock,
                asset: me.assets[0].clone(),
                spot: tests::phone::spot_on(
                    &server::demo::facts()
                        .asset(&me.assets[0])
                        .expect("demo asset")
                        .geometry,
                ),
                system: me.system.unwrap(),
                dir: home.path().to_owned(),
            }
        })
        .collect();

    // Every photo taken, and the (record, photo) pairs the server acknowledged.
    let taken: Mutex<Vec<Taken>> = Mutex::new(Vec::new());
    let acknowledged: Mutex<BTreeSet<(String, String)>> = Mutex::new(BTreeSet::new());
    let wrong_resumes: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let tally = Tally::default();
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let server = std::thread::scope(|s| {
        for (i, phone) in phones.iter().enumerate() {
            let (taken, acknowledged, wrong_resumes, tally, stop, tokens, base) = (
                &taken,
                &acknowledged,
                &wrong_resumes,
                &tally,
                &stop,
                &tokens,
                &base,
            );
            s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed ^ (i as u64 + 1));
                let mut noise =
                    RgbImage::from_fn(CAMERA_WIDTH, CAMERA_HEIGHT, |_, _| image::Rgb([0, 0, 0]));
                rng.fill_bytes(&mut noise);
                let mut mine: Vec<Taken> = Vec::new();
                let mut uploading: Option<Taken> = None;
                while !stop.load(Ordering::Relaxed) {
                    if uploading.is_none() {
                        let photo = phone.record_with_photo(&mut rng, &mut noise, mine.len());
                        taken.lock().unwrap().push(photo.clone());
                        mine.push(photo.clone());
                        uploading = Some(photo);
                    }
                    let photo = uploading.clone().expect("a photo to upload");
                    let token = &tokens[phone.user];
                    if let Ok(report) =
                        sync_checked(phone, &photo, base, token, tally, wrong_resumes)
                    {
                        acknowledged
                            .lock()
                            .unwrap()
                            .extend(mine.iter().map(|t| (t.record.clone(), t.sha256.clone())));
                        if report.photos_uploaded == 1 {
                            uploading = None;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(rng.random_range(5..40)));
                }
            });
        }

        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..KILLS {
            std::thread::sleep(Duration::from_millis(rng.random_range(150..900)));
            drop(server);
            server = start(data.path(), &addr);
        }
        stop.store(true, Ordering::Relaxed);
        server
    });
    drop(server);
    let taken = taken.into_inner().unwrap();
    let acknowledged = acknowledged.into_inner().unwrap();
    let load = |n: &AtomicUsize| n.load(Ordering::Relaxed);
    println!(
        "{KILLS} kills in {:.1} s: {} photos taken ({:.0} kB on average), {} syncs returned, \
         {} cut by a kill; {} uploads completed, {} cut",
        started.elapsed().as_secs_f64(),
        taken.len(),
        taken.iter().map(|t| t.size as f64).sum::<f64>() / taken.len().max(1) as f64 / 1e3,
        load(&tally.syncs),
        load(&tally.syncs_cut),
        load(&tally.uploads_done),
        load(&tally.uploads_cut),
    );
    assert!(
        load(&tally.uploads_cut) > 0,
        "some uploads were cut by a kill"
    );

    // With the server down: documents, stored photos and partial uploads as the kills left them.
    let bytes_of: BTreeMap<&str, Vec<u8>> = taken
        .iter()
        .map(|t| (t.sha256.as_str(), std::fs::read(&t.path).unwrap()))
        .collect();
    let refs = stored_photo_refs(data.path());
    for (record, sha256) in &acknowledged {
        let photos = refs
            .get(record)
            .unwrap_or_else(|| panic!("acknowledged record {record} is missing"));
        assert!(photos.contains(sha256), "{record} lost its photo {sha256}");
    }
    let blobs = data.path().join("blobs");
    for (name, bytes) in stored_objects(&blobs) {
        assert_eq!(
            bytes_of.get(name.as_str()),
            Some(&bytes),
            "{name} is a photo a phone took"
        );
    }
    let mut partials = 0;
    for file in std::fs::read_dir(blobs.join("incoming")).unwrap() {
        let path = file.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let sha256 = name.split('.').next().unwrap();
        let whole = &bytes_of[sha256];
        let partial = std::fs::read(&path).unwrap();
        assert!(
            partial.len() <= whole.len() && whole.starts_with(&partial),
            "the interrupted upload {name} holds exactly the photo's first {} bytes",
            partial.len()
        );
        partials += 1;
    }

    // The phones catch up with a server nobody kills; the uploads the last kills cut resume.
    let server = start(data.path(), &addr);
    let resumed_during_kills = load(&tally.resumed);
    for phone in &phones {
        for _ in 0..5 {
            let Some(pending) = phone.client.pending_uploads().unwrap().pop() else {
                break;
            };
            let photo = taken
                .iter()
                .find(|t| t.sha256 == pending.sha256)
                .expect("a photo the phone took");
            let token = &tokens[phone.user];
            let report = sync_checked(phone, photo, &base, token, &tally, &wrong_resumes)
                .expect("the server is up");
            assert_eq!(report.photos_refused, 0, "{report:?}");
        }
        assert_eq!(
            phone.client.pending_uploads().unwrap(),
            vec![],
            "{}",
            phone.user
        );
    }
    let wrong = wrong_resumes.into_inner().unwrap();
    assert!(
        wrong.is_empty(),
        "uploads that did not resume from the server's offset: {wrong:#?}"
    );
    println!(
        "catching up: {} uploads checked against the server's offset in all, {} resumed \
         mid-photo ({resumed_during_kills} during the kills), {:.1} MB not sent again",
        load(&tally.checked),
        load(&tally.resumed),
        load(&tally.resumed_bytes_saved) as f64 / 1e6,
    );
    // Whether a kill lands mid-photo is up to chance (on a fast machine every upload may finish
    // between kills); when one did, catching up must have resumed it from the middle.
    assert!(
        partials == 0 || load(&tally.resumed) > 0,
        "{partials} uploads were cut mid-photo, but none resumed in the middle of its photo"
    );
    // Every photo of an acknowledged record downloads whole, for its chief.
    let owner: BTreeMap<&str, &str> = phones
        .iter()
        .flat_map(|p| {
            taken
                .iter()
                .filter(|t| t.path.starts_with(&p.dir))
                .map(|t| (t.sha256.as_str(), p.user))
        })
        .collect();
    let mut unreachable = Vec::new();
    for (record, sha256) in &acknowledged {
        let token = &tokens[owner[sha256.as_str()]];
        let answer = tests::phone::get(&base, token, &format!("/api/v1/blobs/{sha256}"));
        if answer.status != 200 {
            let object = blobs.join("objects").join(&sha256[..2]).join(sha256);
            unreachable.push(format!(
                "{sha256} of {record} ({}): GET answered {}; stored: {}; HEAD: {:?}",
                owner[sha256.as_str()],
                answer.status,
                object.exists(),
                held(&base, token, sha256, u64::MAX),
            ));
            continue;
        }
        assert_eq!(sha256_hex(&answer.bytes), *sha256);
        assert_eq!(answer.bytes, bytes_of[sha256.as_str()]);
    }
    assert!(
        unreachable.is_empty(),
        "photos of acknowledged records that do not download: {unreachable:#?}"
    );
    drop(server);

    // Each photo the phones took is stored exactly once, and no partial upload is left.
    let objects = stored_objects(&blobs);
    assert_eq!(
        objects.keys().map(String::as_str).collect::<BTreeSet<_>>(),
        bytes_of.keys().copied().collect::<BTreeSet<_>>(),
        "the blob store holds exactly the photos taken"
    );
    assert_eq!(
        std::fs::read_dir(blobs.join("incoming")).unwrap().count(),
        0,
        "no partial upload remains once every photo is stored"
    );
    println!(
        "after the kills: {} acknowledged records with photos, {} partial uploads on disk; \
         after catching up: {} photos stored once each",
        acknowledged.len(),
        partials,
        objects.len()
    );
}
