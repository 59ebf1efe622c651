//! `repo`: documents merged per second by the ChiefSync server and by the automerge-repo sync
//! server (Node, `@automerge/automerge-repo` with its websocket and nodefs adapters, from
//! `bench/automerge-repo-server`), in the same run, on the same documents.
//!
//! The documents are what chiefs' phones make: patrols with a 1 Hz track saved a minute of fixes
//! at a time, check items, notes and the finish, and reported issues, each written with sync-core's
//! document API by the actor the server gave the phone at login. D phones push them concurrently:
//! - to ChiefSync with `Phone::sync` (`POST /api/v1/sync` over loopback to a real server on a
//!   temporary directory). A sync returns once the server has authorized every change against the
//!   chief's jurisdiction, merged it and flushed it to disk, so the clock stops when the last
//!   phone's sync returns;
//! - to automerge-repo through samod (the Rust automerge-repo implementation, speaking its
//!   websocket protocol), one samod repo per phone with in-memory storage. Each phone creates its
//!   documents in its repo, which announces them to the server and syncs them. The clock stops
//!   when every document is in the server's storage directory with all its changes: the bench
//!   reads the nodefs files of each document, loads them with automerge and compares the heads
//!   with the phone's (the time at which the server had acknowledged every document over the
//!   protocol is printed too).
//!
//! Logging in and the phones' first sync (which brings down the demo documents in their scope)
//! happen before the clock starts, as does connecting the websockets.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use automerge::{Automerge, ChangeHash};
use samod::{BackoffConfig, Repo};
use sync_core::doc::{DocKind, IssueDoc, NewIssue, NewPatrol, PatrolDoc, Record};
use sync_core::model::{Asset, CheckResult, Role, Severity, System};
use sync_core::track::{self, walk_along};
use tests::phone::Phone;
use tests::server::RunningServer;

const NOW: i64 = 1_764_288_000_000;
/// The demo chiefs whose phones push; phone `i` belongs to `CHIEFS[i % 4]`.
const CHIEFS: [&str; 4] = [
    server::demo::CHIEF,
    server::demo::CHIEF_2,
    server::demo::FOREST_CHIEF,
    server::demo::FIELD_CHIEF,
];

/// What a measured push cost on one side.
struct Timing {
    /// Until the server has every document merged (and, for ChiefSync, flushed).
    merged: Duration,
    /// automerge-repo only: until every phone's repo knew the server had all its changes.
    acknowledged: Option<Duration>,
    /// automerge-repo only: until the last phone's repo had created its documents (samod's
    /// share of the time, before and while it syncs).
    created: Option<Duration>,
    /// automerge-repo only: CPU time of the Node server process while it was timed.
    server_cpu: Option<Duration>,
}

/// One phone's documents, built once and pushed to both servers.
struct PhoneDocs {
    /// For the automerge-repo side, with their heads.
    docs: Vec<(Automerge, Vec<ChangeHash>)>,
    /// ChiefSync ids and heads, to check the server afterwards.
    ids: Vec<(String, Vec<ChangeHash>)>,
}

pub fn run(patrols: usize, issues: usize, devices: usize, track_secs: u32, runs: usize) {
    let package = package_dir();
    ensure_node(&package);
    let devices = devices.max(1);
    println!(
        "repo: {patrols} patrols ({track_secs} s at 1 Hz) + {issues} issues from {devices} phones, \
         median of {runs} runs"
    );
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for n in 0..runs {
        let (chiefsync, repo, docs) = one_run(&package, patrols, issues, devices, track_secs);
        let rate = |d: Duration| docs as f64 / d.as_secs_f64();
        println!(
            "  run {}: {docs} documents; ChiefSync {:.2} s ({:.0} docs/s), automerge-repo {:.2} s \
             ({:.0} docs/s; created in the phones' repos at {:.2} s, acknowledged over the protocol \
             at {:.2} s, Node server CPU {:.2} s), ratio {:.2}x",
            n + 1,
            chiefsync.merged.as_secs_f64(),
            rate(chiefsync.merged),
            repo.merged.as_secs_f64(),
            rate(repo.merged),
            repo.created.unwrap_or_default().as_secs_f64(),
            repo.acknowledged.unwrap_or_default().as_secs_f64(),
            repo.server_cpu.unwrap_or_default().as_secs_f64(),
            rate(chiefsync.merged) / rate(repo.merged),
        );
        ours.push(rate(chiefsync.merged));
        theirs.push(rate(repo.merged));
    }
    let (ours, theirs) = (median(ours), median(theirs));
    println!();
    println!("{:<44} {:>14}", "server", "docs merged/s");
    println!("{:<44} {:>14.0}", "ChiefSync (POST /api/v1/sync)", ours);
    println!(
        "{:<44} {:>14.0}",
        "automerge-repo 2.5.6 sync server (samod)", theirs
    );
    println!(
        "ratio ChiefSync / automerge-repo: {:.2}x (goal >= 3x)",
        ours / theirs
    );
    println!();
    println!(
        "ChiefSync: every change is checked against the chief's jurisdiction and the workflow, \
         merged, indexed for the change feed and audit history, and flushed to disk (sled) \
         before the phone's sync returns; the phone then also learns the ids and heads the \
         server holds in its scope."
    );
    println!(
        "automerge-repo: the server accepts any change from any peer (no authorization), merges \
         it and writes it with nodefs (fs.writeFile, no fsync) after its save debounce (100 ms); \
         counted as merged once the files on disk load with all the phone's heads."
    );
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../automerge-repo-server")
}

fn fail(message: &str) -> ! {
    eprintln!("bench repo: {message}");
    std::process::exit(2)
}

/// Node and npm must be installed; the server's packages are installed once, at the versions
/// of the committed lock file. `npm install --no-save` rather than `npm ci`: npm 11 refuses
/// `npm ci` on this lock file because cbor-extract's optional per-platform packages are not
/// recorded in it, while `install` resolves them and leaves the lock file as it is.
fn ensure_node(package: &Path) {
    for tool in ["node", "npm"] {
        let found = Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            fail(&format!(
                "`{tool}` was not found on PATH; this bench runs the automerge-repo sync server \
                 with Node.js (20 or newer) and installs it with npm"
            ));
        }
    }
    if !package.join("node_modules").is_dir() {
        println!("installing the automerge-repo sync server (npm install) ...");
        let ok = Command::new("npm")
            .args(["install", "--no-save", "--no-audit", "--no-fund"])
            .current_dir(package)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            fail(&format!("`npm install` failed in {}", package.display()));
        }
    }
}

/// One run on fresh servers: returns both timings and the number of documents.
fn one_run(
    package: &Path,
    patrols: usize,
    issues: usize,
    devices: usize,
    track_secs: u32,
) -> (Timing, Timing, usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = RunningServer::start(&dir.path().join("chiefsync"), true);
    let phones: Vec<Phone> = (0..devices)
        .map(|i| {
            let phone = Phone::login(
                &server.base,
                CHIEFS[i % CHIEFS.len()],
                &format!("bench-repo-{i}"),
                &dir.path().join(format!("phone-{i}")),
            );
            phone.sync(NOW).expect("first sync");
            phone
        })
        .collect();
    let built: Vec<PhoneDocs> = phones
        .iter()
        .enumerate()
        .map(|(i, phone)| {
            let share = |total: usize| total / devices + usize::from(i < total % devices);
            build(phone, share(patrols), share(issues), track_secs, i)
        })
        .collect();
    let docs = built.iter().map(|b| b.ids.len()).sum();

    let started = Instant::now();
    std::thread::scope(|scope| {
        for phone in &phones {
            scope.spawn(move || {
                let report = phone.sync(NOW).expect("sync");
                assert_eq!(report.refused, 0, "the server refused changes");
            });
        }
    });
    let chiefsync = Timing {
        merged: started.elapsed(),
        acknowledged: None,
        created: None,
        server_cpu: None,
    };
    for (id, heads) in built.iter().flat_map(|b| &b.ids) {
        let stored = server
            .state()
            .store
            .document(id)
            .expect("server store")
            .unwrap_or_else(|| panic!("ChiefSync lacks {id}"));
        let doc = Automerge::load(&stored.bytes).expect("stored document loads");
        assert_eq!(&sorted(doc.get_heads()), heads, "ChiefSync heads of {id}");
    }
    server.stop();

    let node = NodeServer::start(package, &dir.path().join("automerge-repo"));
    let repo = push_to_repo(&node, built);
    node.stop();
    (chiefsync, repo, docs)
}

fn sorted(mut heads: Vec<ChangeHash>) -> Vec<ChangeHash> {
    heads.sort();
    heads
}

/// The phone's share of patrols and issues, saved in its device store for its next sync.
fn build(phone: &Phone, patrols: usize, issues: usize, track_secs: u32, seed: usize) -> PhoneDocs {
    let asset = chief_asset(phone);
    let mut out = PhoneDocs {
        docs: Vec::new(),
        ids: Vec::new(),
    };
    let mut keep = |id: &str, doc: Automerge| {
        let heads = sorted(doc.get_heads());
        out.ids.push((id.to_owned(), heads.clone()));
        out.docs.push((doc, heads));
    };
    for n in 0..patrols {
        let mut doc = patrol(phone, &asset, n, track_secs, seed);
        let id = doc.id().to_string();
        phone.save(&mut doc, DocKind::Patrol, &id);
        keep(&id, doc.am_mut().document().clone());
    }
    for n in 0..issues {
        let mut doc = IssueDoc::report(
            phone.actor.clone(),
            &phone.user,
            &phone.device_id,
            NOW + n as i64 * 60_000,
            &new_issue(&asset, seed * 10_000 + n),
        )
        .expect("report");
        let id = doc.id().to_string();
        phone.save(&mut doc, DocKind::Issue, &id);
        keep(&id, doc.am_mut().document().clone());
    }
    out
}

fn chief_asset(phone: &Phone) -> Asset {
    let Role::Chief { jurisdiction, .. } = &phone.user.role else {
        unreachable!("the bench's phones belong to chiefs")
    };
    server::demo::facts()
        .asset(&jurisdiction.assets[0])
        .expect("chief's asset")
        .clone()
}

/// A patrol along the asset at 1 Hz, saved a minute of fixes at a time as the phone does.
fn patrol(phone: &Phone, asset: &Asset, n: usize, secs: u32, seed: usize) -> PatrolDoc {
    let started = NOW - (n as i64 + 1) * 3_600_000;
    let mut doc = PatrolDoc::create(
        phone.actor.clone(),
        &NewPatrol {
            system: asset.system,
            asset: asset.id.clone(),
            chief: phone.user.id.clone(),
            division: asset.division.clone(),
            device: phone.device_id.clone(),
            started_at_ms: started,
        },
    )
    .expect("patrol");
    let walk = walk_along(
        &asset.geometry,
        started,
        secs as usize,
        (seed * 100_000 + n) as u64,
    );
    for chunk in walk.chunks(track::CHUNK_POINTS) {
        doc.append_track(chunk).expect("track chunk");
        doc.am_mut().commit();
    }
    for item in sync_core::model::default_check_items()
        .iter()
        .filter(|c| c.system == asset.system)
    {
        doc.set_check_item(&item.code, CheckResult::Ok, "", started + 60_000)
            .expect("check item");
    }
    doc.set_notes("巡查正常").expect("notes");
    doc.finish(walk.last().map_or(started, |p| p.t_ms))
        .expect("finish");
    doc.am_mut().commit();
    doc
}

fn new_issue(asset: &Asset, n: usize) -> NewIssue {
    NewIssue {
        system: asset.system,
        category: match asset.system {
            System::River => "river.garbage",
            System::Forest => "forest.fire_hazard",
            System::Field => "field.abandonment",
        }
        .into(),
        severity: Severity::General,
        asset: asset.id.clone(),
        division: asset.division.clone(),
        location: [116.98 + (n % 1_000) as f64 * 1e-5, 36.72],
        description: format!("巡查发现问题，第{n}处"),
        patrol: None,
    }
}

/// The automerge-repo sync server in a child process, on a free port of 127.0.0.1.
struct NodeServer {
    child: Child,
    port: u16,
    storage: PathBuf,
}

impl NodeServer {
    fn start(package: &Path, storage: &Path) -> Self {
        let mut child = Command::new("node")
            .arg("server.mjs")
            .arg("0")
            .arg(storage)
            .current_dir(package)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| fail(&format!("cannot start node: {e}")));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("node stdout"))
            .read_line(&mut line)
            .expect("read node's first line");
        let Some(port) = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|p| p.parse().ok())
        else {
            let _ = child.kill();
            fail(&format!(
                "the automerge-repo server did not start (said {line:?})"
            ));
        };
        Self {
            child,
            port,
            storage: storage.to_path_buf(),
        }
    }

    /// CPU time the server process has used so far (user + system), where /proc tells it.
    fn cpu(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // Clock ticks are 100 per second on Linux.
        Some(Duration::from_millis(ticks * 10))
    }

    /// Closes its stdin, which makes it shut its repo down and exit.
    fn stop(mut self) {
        drop(self.child.stdin.take());
        for _ in 0..100 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The heads of the document as stored on disk, if its files load.
    fn stored_heads(&self, doc_id: &str) -> Option<Vec<ChangeHash>> {
        let dir = self.storage.join(&doc_id[..2]).join(&doc_id[2..]);
        let mut doc = Automerge::new();
        for kind in ["snapshot", "incremental"] {
            let Ok(entries) = std::fs::read_dir(dir.join(kind)) else {
                continue;
            };
            for entry in entries.flatten() {
                // A file being compacted away or half written is read again at the next look.
                let bytes = std::fs::read(entry.path()).ok()?;
                doc.load_incremental(&bytes).ok()?;
            }
        }
        Some(sorted(doc.get_heads()))
    }
}

/// Each phone's samod repo creates its documents and syncs them to the Node server; the clock
/// stops when the server's storage holds every document with all its heads.
fn push_to_repo(node: &NodeServer, built: Vec<PhoneDocs>) -> Timing {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        let url: samod::Url = format!("ws://127.0.0.1:{}", node.port)
            .parse()
            .expect("url");
        let mut repos = Vec::new();
        for _ in &built {
            let repo = Repo::build_tokio().load().await;
            let dialer = repo
                .dial_websocket(url.clone(), BackoffConfig::default())
                .expect("dial");
            dialer
                .established()
                .await
                .unwrap_or_else(|e| fail(&format!("connect to automerge-repo: {e:?}")));
            let conn = dialer.connection_id().expect("connected");
            repos.push((repo, dialer, conn));
        }

        let cpu_before = node.cpu();
        let started = Instant::now();
        let mut pushes = tokio::task::JoinSet::new();
        for ((repo, _, conn), phone) in repos.iter().zip(built) {
            let (repo, conn) = (repo.clone(), *conn);
            pushes.spawn(async move {
                let mut acks = tokio::task::JoinSet::new();
                let mut ids = Vec::new();
                for (doc, heads) in phone.docs {
                    let handle = repo.create(doc).await.expect("create");
                    let created = sorted(handle.with_document(|d| d.get_heads()));
                    assert_eq!(created, heads, "samod kept the phone's history");
                    ids.push((handle.document_id().to_string(), heads));
                    acks.spawn(handle.they_have_our_changes(conn));
                }
                let created = started.elapsed();
                acks.join_all().await;
                (created, ids)
            });
        }
        let pushed = pushes.join_all().await;
        let created = pushed.iter().map(|(t, _)| *t).max().unwrap_or_default();
        let expected: BTreeMap<String, Vec<ChangeHash>> =
            pushed.into_iter().flat_map(|(_, ids)| ids).collect();
        let acknowledged = started.elapsed();

        let mut missing: BTreeSet<&String> = expected.keys().collect();
        let deadline = Instant::now() + Duration::from_secs(600);
        while !missing.is_empty() {
            missing.retain(|id| node.stored_heads(id).as_ref() != Some(&expected[*id]));
            if missing.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "automerge-repo did not store {} documents",
                missing.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let merged = started.elapsed();
        let server_cpu = node
            .cpu()
            .zip(cpu_before)
            .map(|(after, before)| after - before);
        for (repo, dialer, _) in repos {
            dialer.close();
            repo.stop().await;
        }
        Timing {
            merged,
            acknowledged: Some(acknowledged),
            created: Some(created),
            server_cpu,
        }
    })
}
