//! A chief's phone against the server over a field link: 300 ms round trip, 5 % loss,
//! 256 kbit/s (`tests::weaklink`), between network namespaces the test makes and removes
//! (`tests::netns`). The server, the link and the phone are the `weaknet` program's three
//! roles, each in its own namespace; the phone is mobile-ffi's `FieldClient`.
//!
//! - A week of offline work syncs; the test prints the bytes on the wire, the link's physical
//!   limit (those bytes at 256 kbit/s plus one round trip), the time taken and their ratio
//!   (goal ≤ 2×, printed, not asserted).
//! - A sync cut at a random moment (the phone killed, or the link dropped and then the phone
//!   killed) resumes without sending again what was finished: judged by what reached the
//!   server — no acknowledged document in a later sync request, and every photo's accepted
//!   chunks follow each other without overlap, so no chunk the server kept is sent twice.
//!
//! Where the machine cannot build the namespaces (no iproute2, no permission, no VXLAN) the
//! tests print `skipped: <reason>` and pass. `WEAK_NETWORK_SEED=<seed>` replays the link's
//! losses and the moment of the cut.
#![cfg(target_os = "linux")]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sync_core::client::SyncClient;
use sync_core::store::{DocKind, LocalStore, UploadState};
use tests::netns::{Testbed, SERVER_IP};
use tests::weaklink::LinkSpec;

const PROGRAM: &str = env!("CARGO_BIN_EXE_weaknet");
/// mobile-ffi's upload chunk: a photo goes up in pieces of this size.
const CHUNK_BYTES: u64 = 128 * 1024;

fn testbed() -> Option<Testbed> {
    match Testbed::create() {
        Ok(bed) => Some(bed),
        Err(reason) => {
            println!("skipped: {reason}");
            None
        }
    }
}

fn seed() -> u64 {
    tests::crash::seed("WEAK_NETWORK_SEED")
}

/// A role of the `weaknet` program in a namespace: killed when dropped; its JSON lines arrive
/// on `lines`.
struct Role {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Value>,
}

impl Role {
    fn start(bed: &Testbed, ns: &str, args: &[&str]) -> Role {
        let mut child = bed
            .command(ns, Path::new(PROGRAM))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start weaknet");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let value = serde_json::from_str(&line).unwrap_or(Value::String(line));
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        let stdin = child.stdin.take();
        Role {
            child,
            stdin,
            lines,
        }
    }

    fn next(&self, within: Duration) -> Value {
        self.lines
            .recv_timeout(within)
            .expect("weaknet answers in time")
    }

    /// Waits for the process to end and returns everything it printed.
    fn finish(mut self) -> Vec<Value> {
        let status = self.child.wait().unwrap();
        let lines: Vec<Value> = self.lines.iter().collect();
        assert!(status.success(), "weaknet failed: {lines:?}");
        lines
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The emulated link, with its counters.
struct Link(Role);

impl Link {
    fn start(bed: &Testbed, seed: u64) -> Link {
        let role = Role::start(bed, &bed.link, &["link", &seed.to_string()]);
        assert_eq!(role.next(Duration::from_secs(10))["ready"], true);
        Link(role)
    }

    fn command(&mut self, command: &str) -> Value {
        let stdin = self.0.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
        self.0.next(Duration::from_secs(10))
    }
}

/// The server, and every request it recorded (one JSON object each, in the order answered).
struct Server {
    _role: Role,
    records: Arc<Mutex<Vec<Value>>>,
}

impl Server {
    fn start(bed: &Testbed, data: &Path) -> (Server, String) {
        let addr = format!("{SERVER_IP}:8080");
        let mut role = Role::start(bed, &bed.server, &["server", data.to_str().unwrap(), &addr]);
        let ready = role.next(Duration::from_secs(60));
        assert_eq!(ready["ready"], addr.as_str(), "{ready}");
        let records = Arc::new(Mutex::new(Vec::new()));
        let lines = std::mem::replace(&mut role.lines, mpsc::channel().1);
        let sink = records.clone();
        std::thread::spawn(move || {
            for line in lines {
                sink.lock().unwrap().push(line);
            }
        });
        let server = Server {
            _role: role,
            records,
        };
        (server, format!("http://{addr}"))
    }

    fn records(&self) -> Vec<Value> {
        self.records.lock().unwrap().clone()
    }
}

/// Runs a phone command to its end.
fn phone(bed: &Testbed, dir: &Path, url: &str, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["phone", dir.to_str().unwrap(), url];
    all.extend(args);
    Role::start(bed, &bed.device, &all).finish()
}

/// What the phone's store says: documents the server acknowledged, documents still to send,
/// and each photo's upload state. Opened only while no phone process runs.
struct DeviceState {
    acknowledged: BTreeSet<String>,
    dirty: BTreeSet<String>,
    photos: BTreeMap<String, (u64, UploadState)>,
}

fn device_state(dir: &Path) -> DeviceState {
    let store = LocalStore::open(dir.join("store")).expect("the phone's store opens");
    let client = SyncClient::new(&store);
    let dirty = client.dirty().unwrap();
    let mut all = store.doc_ids(DocKind::Patrol).unwrap();
    all.extend(store.doc_ids(DocKind::Issue).unwrap());
    let acknowledged = all.into_iter().filter(|id| !dirty.contains(id)).collect();
    let photos = store
        .outbox()
        .unwrap()
        .into_iter()
        .map(|e| (e.sha256, (e.size, e.state)))
        .collect();
    DeviceState {
        acknowledged,
        dirty,
        photos,
    }
}

/// Prints what went wrong on the way, for the record: failed syncs and photo uploads on the
/// phone, and error answers and cut requests on the server.
fn print_trouble(phone_lines: &[Value], records: &[Value]) {
    for line in phone_lines {
        if let Some(err) = line.get("sync_error") {
            println!("a sync failed on the phone and was tried again: {err}");
        }
        for err in line["errors"].as_array().into_iter().flatten() {
            println!("reported by the sync: {err}");
        }
    }
    for record in records {
        // A HEAD answered 404 only says the photo is not there yet.
        let failed = record["status"].as_u64().is_some_and(|s| s >= 400)
            && !(record["method"] == "HEAD" && record["status"] == 404);
        if failed || record.get("cut").is_some() {
            println!("server: {record}");
        }
    }
}

fn counter(stats: &Value, direction: &str, what: &str) -> u64 {
    stats[direction][what].as_u64().unwrap()
}

fn sha_of(path: &str) -> Option<&str> {
    path.strip_prefix("/api/v1/blobs/")
}

/// `bytes first-last/total` → (first, end); a PUT without it is the whole photo.
fn chunk(record: &Value, size: u64) -> (u64, u64) {
    match record["range"].as_str() {
        None => (0, size),
        Some(range) => {
            let (span, _) = range.trim_start_matches("bytes ").split_once('/').unwrap();
            let (first, last) = span.split_once('-').unwrap();
            (first.parse().unwrap(), last.parse::<u64>().unwrap() + 1)
        }
    }
}

#[test]
fn a_week_of_offline_work_syncs_close_to_the_links_limit() {
    let seed = seed();
    let Some(bed) = testbed() else {
        return;
    };
    let mut link = Link::start(&bed, seed);
    let data = tempfile::tempdir().unwrap();
    let (server, url) = Server::start(&bed, data.path());
    let dir = tempfile::tempdir().unwrap();
    phone(&bed, dir.path(), &url, &["login"]);
    // The phone held its jurisdiction's documents before going offline.
    phone(&bed, dir.path(), &url, &["sync"]);
    // A week: a 20-minute patrol a day at 1 Hz; four problems with two small photos each.
    let week = phone(
        &bed,
        dir.path(),
        &url,
        &["record", "7", "1200", "2", "480", &seed.to_string()],
    );
    let week = &week[0];
    let recorded = device_state(dir.path());
    let mark = server.records().len();
    let before = link.command("stats");
    let started = Instant::now();
    let syncs = phone(&bed, dir.path(), &url, &["sync"]);
    let outside = started.elapsed().as_secs_f64();
    let after = link.command("stats");

    print_trouble(&syncs, &server.records()[mark..]);
    let took = syncs.last().unwrap()["done"]
        .as_f64()
        .expect("the sync finished");
    let sum = |what: &str| -> u64 { syncs.iter().filter_map(|s| s[what].as_u64()).sum() };
    let delta = |direction: &str, what: &str| {
        counter(&after, direction, what) - counter(&before, direction, what)
    };
    let (up, down) = (delta("up", "bytes"), delta("down", "bytes"));
    let spec = LinkSpec::FIELD;
    let limit = (spec.transmit_time(up + down) + spec.rtt()).as_secs_f64();
    let app = sum("bytes_up") + sum("bytes_down") + sum("photo_bytes_up");
    let app_limit = (spec.transmit_time(app) + spec.rtt()).as_secs_f64();
    println!(
        "link: {} ms RTT, {:.0} % loss, {} kbit/s each way (emulated)",
        spec.rtt().as_millis(),
        spec.loss * 100.0,
        spec.rate_bits_per_s / 1000
    );
    println!(
        "a week offline: {} patrols ({} points at 1 Hz), {} issues, {} photos of {} bytes",
        week["patrols"], week["points"], week["issues"], week["photos"], week["photo_bytes"]
    );
    println!(
        "sync: {} sync bytes up, {} down, {} photo bytes; {} syncs, {} failed and tried again",
        sum("bytes_up"),
        sum("bytes_down"),
        sum("photo_bytes_up"),
        syncs
            .iter()
            .filter(|s| s.get("docs_sent").is_some())
            .count(),
        syncs
            .iter()
            .filter(|s| s.get("sync_error").is_some())
            .count(),
    );
    println!(
        "on the wire: {up} bytes up in {} frames ({} lost), {down} bytes down in {} frames ({} lost)",
        delta("up", "frames"),
        delta("up", "lost"),
        delta("down", "frames"),
        delta("down", "lost"),
    );
    println!(
        "link's limit: ({up} + {down}) bytes at {} kbit/s + one RTT = {limit:.1} s; measured {took:.1} s \
         ({outside:.1} s with the phone's start); ratio {:.2} (goal ≤ 2); against the app's own {app} bytes: \
         limit {app_limit:.1} s, ratio {:.2}",
        spec.rate_bits_per_s / 1000,
        took / limit,
        took / app_limit,
    );

    // Everything arrived: every document in a sync request, every photo stored whole.
    let state = device_state(dir.path());
    assert!(state.dirty.is_empty(), "unsent: {:?}", state.dirty);
    let records = server.records();
    let pushed: Vec<&str> = records[mark..]
        .iter()
        .filter_map(|r| r["docs"].as_array())
        .flatten()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(
        pushed.len(),
        recorded.dirty.len(),
        "each document sent once"
    );
    assert_eq!(
        pushed
            .into_iter()
            .map(str::to_owned)
            .collect::<BTreeSet<_>>(),
        recorded.dirty
    );
    for (sha, (_, upload)) in &state.photos {
        assert_eq!(*upload, UploadState::Done, "{sha}");
        assert!(
            records.iter().any(|r| r["method"] == "PUT"
                && sha_of(r["path"].as_str().unwrap()) == Some(sha)
                && r["status"] == 201),
            "photo {sha} stored"
        );
    }
}

#[test]
fn a_sync_cut_at_a_random_moment_resumes_without_sending_finished_work_again() {
    let seed = seed();
    let Some(bed) = testbed() else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut link = Link::start(&bed, seed);
    let data = tempfile::tempdir().unwrap();
    let (server, url) = Server::start(&bed, data.path());
    let dir = tempfile::tempdir().unwrap();
    phone(&bed, dir.path(), &url, &["login"]);
    phone(&bed, dir.path(), &url, &["sync"]);
    // Three days; two problems with one photo each, large enough to go up in several chunks.
    phone(
        &bed,
        dir.path(),
        &url,
        &["record", "3", "1200", "1", "1400", &seed.to_string()],
    );
    let recorded = device_state(dir.path());
    // The sync's requests: the documents, the reference data, then per photo a HEAD and its
    // chunks. The cut comes inside one of them, chosen by the seed.
    let requests = 2 + recorded
        .photos
        .values()
        .map(|(size, _)| 1 + size.div_ceil(CHUNK_BYTES) as usize)
        .sum::<usize>();
    let after_requests = rng.random_range(0..requests - 1);
    let delay = Duration::from_millis(rng.random_range(0..2_000));
    let drop_link = rng.random_bool(0.5);
    let how = if drop_link {
        "the link drops, then the phone is killed"
    } else {
        "the phone is killed"
    };
    println!(
        "photos: {:?} bytes; cut after {after_requests} of {requests} requests + {} ms: {how}",
        recorded
            .photos
            .values()
            .map(|(s, _)| *s)
            .collect::<Vec<_>>(),
        delay.as_millis()
    );

    let mark = server.records().len();
    let mut cut_phone = Role::start(
        &bed,
        &bed.device,
        &["phone", dir.path().to_str().unwrap(), &url, "sync"],
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while server.records().len() < mark + after_requests {
        assert!(Instant::now() < deadline, "the sync made no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(delay);
    let finished_first = cut_phone.child.try_wait().unwrap().is_some();
    if drop_link {
        link.command("down");
        std::thread::sleep(Duration::from_secs(1));
    }
    drop(cut_phone);
    if drop_link {
        std::thread::sleep(Duration::from_millis(500));
        link.command("up");
    }
    // Let requests the server was still answering finish before judging the resumed run.
    std::thread::sleep(Duration::from_secs(1));
    let at_cut = device_state(dir.path());
    let resumed_from = server.records().len();
    println!(
        "at the cut{}: {} documents acknowledged, {} not; photos {:?}",
        if finished_first {
            " (the sync had already finished)"
        } else {
            ""
        },
        at_cut.acknowledged.len(),
        at_cut.dirty.len(),
        at_cut.photos.values().map(|(_, s)| s).collect::<Vec<_>>()
    );
    let resumed = phone(&bed, dir.path(), &url, &["sync"]);
    assert!(resumed.last().unwrap()["done"].is_number(), "{resumed:?}");
    let records = server.records();
    print_trouble(&resumed, &records[mark..]);
    let finished = device_state(dir.path());

    // Documents: no sync request after the cut carries one the phone had been told was stored,
    // and the ones it had not are sent.
    let mut resent_docs = BTreeSet::new();
    for record in &records[resumed_from..] {
        for doc in record["docs"].as_array().into_iter().flatten() {
            let doc = doc.as_str().unwrap();
            assert!(
                !at_cut.acknowledged.contains(doc),
                "document {doc} was acknowledged before the cut and sent again"
            );
            resent_docs.insert(doc.to_owned());
        }
    }
    assert!(
        at_cut.dirty.is_subset(&resent_docs),
        "unacknowledged documents are sent"
    );
    assert!(
        finished.dirty.is_empty(),
        "unsent after resuming: {:?}",
        finished.dirty
    );

    // Photos. A connection that first shows up after the cut with a PUT is the killed
    // phone's: its kernel may still deliver a chunk it had buffered once the link is back.
    // Everything else after the cut is the resumed phone, which must send each photo from the
    // offset the server last told it (HEAD or PUT `Upload-Offset`) and nothing for a photo
    // the server holds whole. Before the cut, accepted chunks follow each other.
    let mut first_seen = BTreeMap::new();
    for record in &records[..resumed_from] {
        first_seen
            .entry(record["port"].as_u64())
            .or_insert("before");
    }
    for record in &records[resumed_from..] {
        let first = if record["method"] == "PUT" {
            "old"
        } else {
            "new"
        };
        first_seen.entry(record["port"].as_u64()).or_insert(first);
    }
    for (sha, (size, upload)) in &finished.photos {
        assert_eq!(*upload, UploadState::Done, "{sha}");
        let mut held = 0;
        let mut told: Option<u64> = None;
        let mut resumed_at = None;
        let (mut after_cut, mut late) = (0, 0);
        for (i, record) in records[mark..].iter().enumerate() {
            if sha_of(record["path"].as_str().unwrap()) != Some(sha) {
                continue;
            }
            let status = record["status"].as_u64();
            let resumed = mark + i >= resumed_from && first_seen[&record["port"].as_u64()] == "new";
            if record["method"] == "HEAD" {
                if resumed {
                    told = Some(record["offset"].as_u64().unwrap_or(0));
                }
                continue;
            }
            let (first, end) = chunk(record, *size);
            if resumed {
                assert_eq!(
                    Some(first),
                    told,
                    "photo {sha}: the resumed phone sent from byte {first}, the server had told it {told:?}"
                );
                assert!(first < *size, "photo {sha} was sent again though stored");
                resumed_at.get_or_insert(first);
                after_cut += end - first;
                told = record["offset"].as_u64().or(told);
            } else if mark + i >= resumed_from {
                late += end - first;
            } else if matches!(status, Some(201 | 202)) {
                assert_eq!(
                    first, held,
                    "photo {sha}: a chunk from byte {first} was accepted while the server held {held}"
                );
            }
            if matches!(status, Some(201 | 202)) {
                held = held.max(end);
            }
        }
        assert_eq!(held, *size, "photo {sha} is stored whole");
        if let Some((_, UploadState::Done)) = at_cut.photos.get(sha) {
            assert_eq!(resumed_at, None, "photo {sha} was done before the cut");
        }
        if late > 0 {
            println!(
                "photo {}…: {late} bytes of a chunk sent before the cut reached the server after it",
                &sha[..12]
            );
        }
        match resumed_at {
            Some(first) => println!(
                "photo {}…: resumed from byte {first} of {size}, {after_cut} bytes sent after the cut",
                &sha[..12]
            ),
            None => println!(
                "photo {}…: nothing sent after the cut, the server held it whole",
                &sha[..12]
            ),
        }
    }
}
