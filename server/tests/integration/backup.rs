//! `chiefsync backup` and `chiefsync restore` with real server processes on 127.0.0.1 and real
//! sled: a district's server is backed up while its chiefs' phones keep syncing, its disk is
//! lost, the backup is restored into a new data directory, `chiefsync verify` passes on it, a
//! server started on it holds every change and photo acknowledged before the backup began,
//! accepts the phones' sessions, and the phones converge with it. Damaged, incomplete and
//! misplaced backups and restores are refused with the reason, writing nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use automerge::AutoCommit;
use image::{DynamicImage, ImageFormat, RgbImage};
use serde_json::{json, Value};
use server::blobs::{BlobStore, FileBlobs};
use server::demo::{CHIEF, CHIEF_2, FOREST_CHIEF};
use server::state::now_ms;
use server::storage::SledStore;
use sync_core::doc::{DocKind, IssueDoc, NewIssue, NewPatrol, PatrolDoc};
use sync_core::hub::DocumentStore;
use sync_core::model::{Geometry, Role, Severity, System};
use sync_core::photo::sha256_hex;
use sync_core::track::walk_along;

use crate::harness::TestServer;
use crate::phone::Phone;

/// Runs `chiefsync --data-dir DATA ARGS…` to the end.
fn chiefsync(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_chiefsync"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .env_remove("CHIEFSYNC_SIGNING_KEY")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run chiefsync")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout_json(out: &Output) -> Value {
    assert!(out.status.success(), "chiefsync failed: {}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("chiefsync prints JSON")
}

/// A `chiefsync` server process over a data directory, with the signing key it generates and
/// keeps there.
struct Served {
    child: Child,
    base: String,
}

impl Served {
    async fn start(data: &Path) -> Self {
        // The port is free when chosen but another test may take it first: then the server
        // exits at once and another port is tried.
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new(env!("CARGO_BIN_EXE_chiefsync"))
                .arg("--data-dir")
                .arg(data)
                .args(["--addr", &format!("127.0.0.1:{port}"), "--workers", "2"])
                .env_remove("CHIEFSYNC_SIGNING_KEY")
                .env_remove("CHIEFSYNC_DEMO")
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .expect("start chiefsync");
            // Held from here on, so a server that never comes up is still killed and reaped.
            let mut served = Self {
                child,
                base: format!("http://127.0.0.1:{port}"),
            };
            let client = awc::Client::new();
            for _ in 0..1200 {
                if served.child.try_wait().unwrap().is_some() {
                    break;
                }
                if let Ok(res) = client.get(format!("{}/healthz", served.base)).send().await {
                    if res.status().is_success() {
                        return served;
                    }
                }
                actix_web::rt::time::sleep(Duration::from_millis(100)).await;
            }
        }
        panic!("chiefsync did not come up over {}", data.display());
    }

    /// SIGKILL: the machine dies with its disk.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM: the server stops and flushes its store.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(self.child.wait().unwrap().success(), "clean stop");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn login(base: &str, username: &str, device: &str) -> Value {
    let mut res = awc::Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .send_json(&json!({"username": username, "password": "demo", "device_id": device}))
        .await
        .unwrap();
    assert!(res.status().is_success(), "login {username}");
    res.json().await.unwrap()
}

/// A camera-like JPEG: textured, so it does not compress to nothing.
pub(crate) fn jpeg(seed: u32) -> Vec<u8> {
    let picture = RgbImage::from_fn(96, 64, |x, y| {
        let v = x.wrapping_mul(31) ^ y.wrapping_mul(17) ^ seed.wrapping_mul(2_654_435_761);
        image::Rgb([v as u8, (v >> 8) as u8, (x + y) as u8])
    });
    let mut out = Vec::new();
    DynamicImage::ImageRgb8(picture)
        .write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
        .unwrap();
    out
}

pub(crate) async fn upload(base: &str, token: &str, photo: &[u8]) {
    let res = awc::Client::new()
        .put(format!("{base}/api/v1/blobs/{}", sha256_hex(photo)))
        .insert_header(("Authorization", format!("Bearer {token}")))
        .send_body(photo.to_vec())
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201, "photo stored");
}

/// The first asset in the chief's jurisdiction.
fn home_asset(phone: &Phone) -> sync_core::model::Asset {
    let Role::Chief { jurisdiction, .. } = &phone.user.role else {
        panic!("a chief");
    };
    server::demo::facts()
        .asset(&jurisdiction.assets[0])
        .unwrap()
        .clone()
}

/// Records a short finished patrol on the phone (it goes up at the next sync).
pub(crate) fn patrol(phone: &Phone, n: u64) -> String {
    let asset = home_asset(phone);
    let started = now_ms() - 2 * 3_600_000 + (n as i64) * 1_000;
    let mut patrol = PatrolDoc::create(
        phone.actor.clone(),
        &NewPatrol {
            system: asset.system,
            asset: asset.id.clone(),
            chief: phone.user.id.clone(),
            division: asset.division.clone(),
            device: phone.device.clone(),
            started_at_ms: started,
        },
    )
    .unwrap();
    let track = walk_along(&asset.geometry, started, 30, n);
    patrol.append_track(&track).unwrap();
    patrol.finish(track.last().unwrap().t_ms).unwrap();
    let id = patrol.id().to_owned();
    phone.save_record(&mut patrol, DocKind::Patrol, &id);
    id
}

/// Reports a problem on the chief's asset from the phone.
pub(crate) fn report(phone: &Phone, text: &str) {
    let asset = home_asset(phone);
    let category = match asset.system {
        System::River => "river.garbage",
        System::Forest => "forest.fire_hazard",
        System::Field => "field.non_agricultural",
    };
    let mut issue = IssueDoc::report(
        phone.actor.clone(),
        &phone.user,
        &phone.device,
        now_ms() - 600_000,
        &NewIssue {
            system: asset.system,
            category: category.into(),
            severity: Severity::General,
            asset: asset.id.clone(),
            division: asset.division.clone(),
            location: match &asset.geometry {
                Geometry::LineString(line) => line[line.len() / 2],
                Geometry::Polygon(rings) => rings[0][0],
            },
            description: text.into(),
            patrol: None,
        },
    )
    .unwrap();
    phone.save(&mut issue);
}

/// Every change hash of a stored document.
fn change_hashes(store: &SledStore, id: &str) -> Option<BTreeSet<String>> {
    let stored = store.document(id).unwrap()?;
    let mut doc = AutoCommit::load(&stored.bytes).unwrap();
    Some(
        doc.get_changes(&[])
            .iter()
            .map(|c| c.hash().to_string())
            .collect(),
    )
}

fn heads_of(store: &SledStore, id: &str) -> Option<Vec<String>> {
    let stored = store.document(id).unwrap()?;
    let mut doc = AutoCommit::load(&stored.bytes).unwrap();
    let mut heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
    heads.sort();
    Some(heads)
}

fn damaged_copy(backup: &Path, to: &Path, change: impl Fn(&Path)) -> PathBuf {
    let out = Command::new("cp")
        .arg("-a")
        .arg(backup)
        .arg(to)
        .status()
        .unwrap();
    assert!(out.success());
    change(to);
    to.to_owned()
}

#[actix_web::test]
async fn a_backup_taken_while_phones_sync_restores_every_acknowledged_change() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    // The demo district, then the real server process over it.
    TestServer::start_in(&data, true).await.stop().await;
    let lost = Served::start(&data).await;

    let mut phones = Vec::new();
    let mut tokens = Vec::new();
    for (user, device) in [
        (CHIEF, "backup-phone-1"),
        (CHIEF_2, "backup-phone-2"),
        (FOREST_CHIEF, "backup-phone-3"),
    ] {
        let grant = login(&lost.base, user, device).await;
        tokens.push(grant["access_token"].as_str().unwrap().to_owned());
        phones.push(Phone::at(&lost.base, &grant, device));
    }

    // Before the backup: patrols, a problem report each, and photos, all acknowledged.
    for (i, phone) in phones.iter().enumerate() {
        for n in 0..3 {
            patrol(phone, (i * 100 + n) as u64);
        }
        report(phone, "河岸有垃圾堆放（备份前）");
        phone.sync(now_ms()).await;
    }
    let photos: Vec<Vec<u8>> = (0..3).map(jpeg).collect();
    for photo in &photos {
        upload(&lost.base, &tokens[0], photo).await;
    }
    let acknowledged: Vec<BTreeMap<String, Vec<String>>> =
        phones.iter().map(|phone| phone.heads()).collect();
    assert!(acknowledged.iter().all(|docs| docs.len() >= 4));

    // While the backup runs, every phone keeps recording patrols and syncing.
    let stop = Arc::new(AtomicBool::new(false));
    let syncs: Arc<Mutex<Vec<(usize, Instant, Instant)>>> = Arc::default();
    let workers: Vec<_> = phones
        .iter()
        .enumerate()
        .map(|(i, phone)| {
            let (phone, stop, syncs) = (phone.clone(), stop.clone(), syncs.clone());
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(Ordering::SeqCst) {
                    patrol(&phone, (1_000 * (i + 1) + n) as u64);
                    let began = Instant::now();
                    actix_web::rt::System::new().block_on(phone.sync(now_ms()));
                    syncs.lock().unwrap().push((i, began, Instant::now()));
                    n += 1;
                }
            })
        })
        .collect();
    // Let the phones get going before the backup starts.
    while syncs.lock().unwrap().len() < 3 {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    let backup = root.path().join("backup");
    let began = Instant::now();
    let taken = chiefsync(&data, &["backup", "--to", backup.to_str().unwrap()]);
    let ended = Instant::now();
    // Phones do not stop for a backup: each syncs at least once more after it, so every
    // phone holds a cursor of the server as it was after the backup.
    while (0..phones.len()).any(|i| {
        !syncs
            .lock()
            .unwrap()
            .iter()
            .any(|(phone, from, _)| *phone == i && *from > ended)
    }) {
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for worker in workers {
        worker.join().expect("a phone kept syncing");
    }
    let summary = stdout_json(&taken);
    let during = syncs
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, from, to)| *from < ended && *to > began)
        .count();
    assert!(during >= 1, "phones synced while the backup ran");
    assert_eq!(summary["photos"], json!(photos.len()));
    assert_eq!(summary["signing_key"], json!(true));
    assert!(summary["documents"].as_u64().unwrap() > 0);
    // The manifest's SHA-256, printed to be kept off the backup's disk, is the file's.
    let manifest_sha256 = summary["manifest_sha256"].as_str().unwrap().to_owned();
    assert_eq!(
        manifest_sha256,
        sha256_hex(&std::fs::read(backup.join("manifest.json")).unwrap())
    );

    // The machine dies with its disk.
    lost.kill();
    std::fs::remove_dir_all(&data).unwrap();

    // A damaged or incomplete backup is refused, and nothing is written.
    let restored = root.path().join("restored");
    let photo_path = |dir: &Path| {
        let sha = sha256_hex(&photos[1]);
        dir.join("photos").join(&sha[..2]).join(sha)
    };
    let flipped = damaged_copy(&backup, &root.path().join("flipped"), |dir| {
        let mut bytes = std::fs::read(photo_path(dir)).unwrap();
        bytes[100] ^= 0x01;
        std::fs::write(photo_path(dir), bytes).unwrap();
    });
    let unfinished = damaged_copy(&backup, &root.path().join("unfinished"), |dir| {
        std::fs::remove_file(dir.join("manifest.json")).unwrap();
    });
    let cut = damaged_copy(&backup, &root.path().join("cut"), |dir| {
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        let table = manifest["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["entries"].as_u64().unwrap() > 1)
            .unwrap()["file"]["path"]
            .as_str()
            .unwrap()
            .to_owned();
        let bytes = std::fs::read(dir.join(&table)).unwrap();
        std::fs::write(dir.join(&table), &bytes[..bytes.len() - 3]).unwrap();
    });
    for (bad, reason) in [
        (&flipped, "does not match its checksum"),
        (&unfinished, "no manifest.json"),
        (&cut, "cut off"),
    ] {
        let out = chiefsync(
            &restored,
            &[
                "restore",
                "--from",
                bad.to_str().unwrap(),
                "--manifest-sha256",
                &manifest_sha256,
            ],
        );
        assert!(!out.status.success(), "{} was restored", bad.display());
        assert!(stderr(&out).contains(reason), "{}", stderr(&out));
        assert!(!restored.exists(), "a refused restore wrote nothing");
    }

    // A restore names the manifest it expects (or says it trusts the disk).
    let unnamed = chiefsync(&restored, &["restore", "--from", backup.to_str().unwrap()]);
    assert!(!unnamed.status.success());
    assert!(
        stderr(&unnamed).contains("--manifest-sha256"),
        "{}",
        stderr(&unnamed)
    );
    assert!(!restored.exists());

    // The good backup restores into a new directory, and `chiefsync verify` passes on it.
    let restore_args = [
        "restore",
        "--from",
        backup.to_str().unwrap(),
        "--manifest-sha256",
        &manifest_sha256,
    ];
    let out = chiefsync(&restored, &restore_args);
    let report = stdout_json(&out);
    assert_eq!(report["documents"], summary["documents"]);
    assert_eq!(report["signing_key_restored"], json!(true));
    let again = chiefsync(&restored, &restore_args);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("is not empty"),
        "{}",
        stderr(&again)
    );
    let verified = stdout_json(&chiefsync(&restored, &["verify"]));
    assert_eq!(verified["documents_checked"], summary["documents"]);
    assert_eq!(verified["damaged"], json!([]));

    // A server on the restored directory takes the phones back on their existing sessions.
    let back = Served::start(&restored).await;
    for (i, phone) in phones.iter().enumerate() {
        phone.reconnect_to(&back.base);
        phone.sync(now_ms()).await;
        patrol(phone, (9_000 + i) as u64);
        phone.sync(now_ms()).await;
        phone.sync(now_ms()).await;
    }
    back.stop();

    let store = SledStore::open(&restored.join("db")).unwrap();
    // Every change acknowledged before the backup began is there.
    for (phone, docs) in phones.iter().zip(&acknowledged) {
        for (id, heads) in docs {
            let changes = change_hashes(&store, id)
                .unwrap_or_else(|| panic!("{}'s {id} is missing", phone.user.username));
            for head in heads {
                assert!(changes.contains(head), "{id} lacks change {head}");
            }
        }
    }
    // The photos too, byte for byte.
    let blobs = FileBlobs::open(&restored.join("blobs")).unwrap();
    for photo in &photos {
        assert_eq!(
            blobs.read(&sha256_hex(photo)).unwrap().as_deref(),
            Some(&photo[..])
        );
    }
    // And the phones converged with the restored server: every document a phone holds is on
    // the server with the same heads, including what the phones recorded after the backup.
    for phone in &phones {
        for (id, heads) in phone.heads() {
            assert_eq!(
                heads_of(&store, &id).as_ref(),
                Some(&heads),
                "{}'s {id} differs from the restored server",
                phone.user.username
            );
        }
    }
}
