//! `fieldsim`: a district's days of offline field work against a running ChiefSync server.
//!
//! Through the admin API it creates a district's chief hierarchy over the server's systems and
//! assets (a few district and subdistrict chiefs, most at village level on their own stretch:
//! see `people`), a supervisor and a department handler per system. Each person's phone is mobile-ffi's
//! `PhoneApp`, the application layer behind the apps' `FieldClient`, with its own store and a
//! simulated clock. Chiefs patrol offline for `--days` days (1 Hz tracks along their asset; some
//! too short or driven, and a `--fabricated` share fabricated: spoofed, sparse, bouncing,
//! backdated, absurdly dated), fill in check items and report problems with photos. Then every chief's phone
//! syncs, concurrently and in random order, some losing the server's answer and retrying; the
//! office accepts and assigns, the departments rectify, the office verifies or rejects; every
//! phone syncs once more, and each phone's documents are compared with what the server holds in
//! that person's scope.
//!
//! With `--sync-every D` the days are cut into periods, each with its offline days, the chiefs'
//! sync and the office's loop (a year synced weekly: `--days 365 --sync-every 7`); `--observe N`
//! compares and measures N chiefs of each level and the staff, the rest of the district working
//! in bulk; every phone keeps its bounded store (`sync_core::evict`'s default bounds) and the
//! stores are reported per level. `--server A,B` spreads the phones over nodes of one service on
//! one database.
//!
//! ```sh
//! cargo run --release -p server -- --demo --data-dir /tmp/cs &
//! cargo run --release -p tests --bin fieldsim -- --server http://127.0.0.1:8080 --devices 50 --days 7 --seed 1
//! ```

mod field;
mod http;
mod people;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sync_core::workflow::Status;

use field::{ChiefLog, Phone, Recorder, DAY_MS};
use http::{Api, Result};

#[derive(Parser, Debug)]
#[command(about = "Simulates a district's days of offline field work against a ChiefSync server")]
struct Cli {
    /// The server's root URL; several, comma-separated, for nodes of one service on one
    /// database (`chiefsync --database postgres://…` started more than once): the accounts are
    /// made through the first, and the phones spread over all of them (`--spread`).
    #[arg(long, default_value = "http://127.0.0.1:8080", value_delimiter = ',')]
    server: Vec<String>,
    /// How phones choose among several `--server` nodes: `phone` keeps each phone on one node
    /// (phone `i` on node `i mod n`), `random` sends each sync to a node drawn at random.
    #[arg(long, value_enum, default_value_t = Spread::Phone)]
    spread: Spread,
    /// Chiefs' phones to simulate.
    #[arg(long, default_value_t = 20)]
    devices: usize,
    /// Days simulated. With `--sync-every` the days are cut into periods; without, they are
    /// all offline work before the phones sync.
    #[arg(long, default_value_t = 7)]
    days: u32,
    /// Days of offline work between the chiefs' syncs: each period the chiefs work offline,
    /// sync, and the office and the departments work the problems through the loop (e.g.
    /// `--days 365 --sync-every 7`: a year, everyone syncing weekly). Default: one period.
    #[arg(long)]
    sync_every: Option<u32>,
    /// Chiefs of each level (district, subdistrict, village) whose phones are compared with the
    /// server at the end and whose stores are measured, beside every office and department
    /// phone; the rest of the district works and syncs alike, in bulk, unmeasured. Default:
    /// every phone is compared and measured.
    #[arg(long)]
    observe: Option<usize>,
    /// Seed of everything random; also names the accounts (`sim<seed>-…`), so use a new seed
    /// for another run against the same server.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, default_value = "demo-admin")]
    admin_user: String,
    #[arg(long, default_value = "demo")]
    admin_password: String,
    /// How GPS fixes are recorded: `fix` through the phone library fix by fix (the app's path,
    /// each fix flushed), `chunk` a minute at a time into the same documents (much faster).
    #[arg(long, value_enum, default_value_t = Recorder::Fix)]
    recorder: Recorder,
    /// Share of patrols that are fabricated tracks (spoofed, sparse, bouncing, backdated 60
    /// days, a fix dated at the end of time, in equal parts); `--expect` predicts each invalid
    /// with its reasons. The server must accept times from the simulated days before the phones'
    /// binding (`settings.device_times.binding_grace_ms` of at least `--days` + 1 days).
    #[arg(long, default_value_t = 0.2)]
    fabricated: f64,
    /// Phones working or syncing at the same time.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Share of phones whose first sync loses the server's answer and is retried.
    #[arg(long, default_value_t = 0.2)]
    interrupted: f64,
    /// Where the phones keep their stores (default: a temporary directory, removed at the end).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Print one JSON object instead of the summary.
    #[arg(long)]
    json: bool,
    /// The server's process id, when it runs on this machine: the CPU time it spends in each
    /// phase is reported beside the simulator's own (Linux, from /proc); several,
    /// comma-separated, for several nodes (their CPU time summed).
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// The database server's main process (PostgreSQL's postmaster), when the server keeps its
    /// data there and it runs on this machine: the CPU time of it and all its processes
    /// (connections, writers, those already ended) in each phase is reported too.
    #[arg(long)]
    database_pid: Option<u32>,
    /// The photo store's process (e.g. SeaweedFS), reported like `--database-pid`.
    #[arg(long)]
    blobs_pid: Option<u32>,
    /// Also print the figures the statistics must show: patrols, valid patrols and km per
    /// chief, problems by status.
    #[arg(long)]
    expect: bool,
}

/// How phones choose among several server nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Spread {
    /// Each phone on one node, phone `i` on node `i mod n`.
    Phone,
    /// Each sync to a node drawn at random.
    Random,
}

/// Phones do not use glibc's allocator (Android's is scudo or jemalloc); with 16 phones' stores
/// in one process, glibc's per-thread arenas zeroed fresh pages for every sled buffer.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// China time is UTC+8 all year.
const CHINA_OFFSET_MS: i64 = 8 * 3_600_000;

fn china_midnight(ms: i64) -> i64 {
    (ms + CHINA_OFFSET_MS).div_euclid(DAY_MS) * DAY_MS - CHINA_OFFSET_MS
}

fn china_date(ms: i64) -> String {
    let (y, m, d) = sync_core::rules::civil_from_days((ms + CHINA_OFFSET_MS).div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Runs `work` over `items` on `threads` threads, ticking `bar`; the first error wins.
fn pool<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    bar: &ProgressBar,
    work: impl Fn(usize, &T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Result<R>>>> =
        Mutex::new((0..items.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..threads.max(1).min(items.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= items.len() {
                    break;
                }
                let result = work(i, &items[i]);
                bar.inc(1);
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(result);
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err("not run".into())))
        .collect()
}

/// CPU seconds (user + system) a process has used so far, from `/proc/<pid>/stat`; `None` where
/// there is no such file.
fn cpu_seconds(pid: &str) -> Option<f64> {
    stat_ticks(pid, false).map(|(ticks, _)| ticks / 100.0)
}

/// `(user + system ticks, parent pid)` of a process from `/proc/<pid>/stat`, with the ticks of
/// its ended children it has waited for when `reaped`.
fn stat_ticks(pid: &str, reaped: bool) -> Option<(f64, String)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at the third, the state.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let mut ticks = field(11)? + field(12)?;
    if reaped {
        ticks += field(13)? + field(14)?;
    }
    Some((ticks, fields.get(1)?.to_string()))
}

/// CPU seconds of a process and all its children, running or ended: a database server that
/// serves each connection in a process of its own (PostgreSQL) and reaps those that end.
fn tree_cpu_seconds(pid: &str) -> Option<f64> {
    let (mut ticks, _) = stat_ticks(pid, true)?;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(child) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if let Some((child_ticks, parent)) = stat_ticks(child, true) {
            if parent == pid {
                ticks += child_ticks;
            }
        }
    }
    Some(ticks / 100.0)
}

/// Where a phase's time went: wall time, and CPU time of the server, of the processes it works
/// through (database, photo store) and of the simulator.
#[derive(Debug, Default, Clone, Copy)]
struct Spent {
    wall: Duration,
    server_cpu: f64,
    database_cpu: f64,
    blobs_cpu: f64,
    simulator_cpu: f64,
}

/// The processes whose CPU time is counted, and their CPU time at the start of the phase.
#[derive(Debug)]
struct Watched {
    /// Every node's process.
    server_pid: Vec<String>,
    database_pid: Option<String>,
    blobs_pid: Option<String>,
}

impl Watched {
    /// `(server, database, photo store, simulator)` CPU seconds so far.
    fn cpu(&self) -> (f64, f64, f64, f64) {
        let tree = |pid: &Option<String>| pid.as_deref().and_then(tree_cpu_seconds);
        (
            self.server_pid
                .iter()
                .filter_map(|pid| cpu_seconds(pid))
                .sum(),
            tree(&self.database_pid).unwrap_or(0.0),
            tree(&self.blobs_pid).unwrap_or(0.0),
            cpu_seconds("self").unwrap_or(0.0),
        )
    }
}

/// The time of each phase of a run, in the order they ran.
#[derive(Debug)]
struct Phases {
    list: Vec<(&'static str, Spent)>,
    watched: Watched,
    since: Instant,
    cpu: (f64, f64, f64, f64),
}

impl Phases {
    fn start(watched: Watched) -> Self {
        Phases {
            cpu: watched.cpu(),
            list: Vec::new(),
            watched,
            since: Instant::now(),
        }
    }

    /// Ends the running phase, adding its time to `name`, and starts the next one.
    fn lap(&mut self, name: &'static str) {
        let cpu = self.watched.cpu();
        let spent = Spent {
            wall: self.since.elapsed(),
            server_cpu: cpu.0 - self.cpu.0,
            database_cpu: cpu.1 - self.cpu.1,
            blobs_cpu: cpu.2 - self.cpu.2,
            simulator_cpu: cpu.3 - self.cpu.3,
        };
        (self.since, self.cpu) = (Instant::now(), cpu);
        match self.list.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => {
                total.wall += spent.wall;
                total.server_cpu += spent.server_cpu;
                total.database_cpu += spent.database_cpu;
                total.blobs_cpu += spent.blobs_cpu;
                total.simulator_cpu += spent.simulator_cpu;
            }
            None => self.list.push((name, spent)),
        }
    }

    fn wall(&self, name: &str) -> f64 {
        self.list
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0.0, |(_, s)| s.wall.as_secs_f64())
    }

    /// `[{"phase", "wall_s", "simulator_cpu_s", "server_cpu_s"?, "database_cpu_s"?,
    /// "blobs_cpu_s"?}]` in the order they ran.
    fn json(&self) -> Value {
        let round = |v: f64| (v * 1_000.0).round() / 1_000.0;
        self.list
            .iter()
            .map(|(n, s)| {
                let mut phase = json!({
                    "phase": n,
                    "wall_s": round(s.wall.as_secs_f64()),
                    "simulator_cpu_s": round(s.simulator_cpu),
                });
                if !self.watched.server_pid.is_empty() {
                    phase["server_cpu_s"] = json!(round(s.server_cpu));
                }
                if self.watched.database_pid.is_some() {
                    phase["database_cpu_s"] = json!(round(s.database_cpu));
                }
                if self.watched.blobs_pid.is_some() {
                    phase["blobs_cpu_s"] = json!(round(s.blobs_cpu));
                }
                phase
            })
            .collect()
    }
}

/// The phases during which the server merges and everyone converges: every sync and the
/// comparison of every phone with the server. The offline days and the staff's own edits are
/// people's time, not the system's.
const MERGE_PHASES: [&str; 4] = ["chiefs_sync", "staff_sync", "final_sync", "check"];

/// What one phone's sync cost.
#[derive(Debug, Default, Clone)]
struct SyncFigures {
    attempts: u32,
    round_trips: u32,
    bytes_up: u64,
    bytes_down: u64,
    changes: u64,
    docs_received: u64,
    refused: u64,
    photos_uploaded: u64,
    photos_waiting: u64,
    photo_bytes_up: u64,
    photo_errors: Vec<String>,
    latency: Duration,
    /// Documents the phone dropped from its store just before (`PhoneApp::evict`).
    dropped: u64,
    /// The server node that answered.
    node: usize,
}

/// Syncs until it succeeds; a phone with a relay loses the first answer on purpose. With
/// `spread` random, each attempt goes to a node drawn at random.
fn sync(phone: &Phone, lose_answer: bool, spread: Spread) -> Result<SyncFigures> {
    let mut figures = SyncFigures::default();
    let choose = || {
        if spread == Spread::Random && phone.node_count() > 1 {
            phone.use_node(rand::rng().random_range(0..phone.node_count()));
        }
    };
    choose();
    if lose_answer {
        phone.lose_next_answer();
    }
    // What the bounded store drops goes up with this sync (the sync would drop it itself;
    // dropping it here first counts it).
    figures.dropped = u64::from(phone.client()?.evict().map_err(|e| e.to_string())?.dropped);
    loop {
        figures.attempts += 1;
        let started = Instant::now();
        match phone.client()?.sync() {
            Ok(report) => {
                figures.latency = started.elapsed();
                figures.node = phone.node();
                figures.round_trips = report.round_trips;
                figures.bytes_up = report.bytes_up;
                figures.bytes_down = report.bytes_down;
                figures.changes = u64::from(report.changes_sent);
                figures.docs_received = u64::from(report.docs_received);
                figures.refused = u64::from(report.refused);
                figures.photos_uploaded = u64::from(report.photos_uploaded);
                figures.photos_waiting = u64::from(report.photos_waiting);
                figures.photo_bytes_up = report.photo_bytes_up;
                figures.photo_errors = report.errors;
                return Ok(figures);
            }
            Err(e) if figures.attempts < 5 => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(100 * u64::from(figures.attempts)));
                choose();
            }
            Err(e) => {
                return Err(format!(
                    "{} could not sync after {} attempts: {e}",
                    phone.person.user.username, figures.attempts
                ))
            }
        }
    }
}

/// Documents on a phone: id → sorted hex heads.
fn phone_heads(phone: &Phone) -> Result<BTreeMap<String, Vec<String>>> {
    let client = phone.client()?;
    let store = client.store();
    let mut out = BTreeMap::new();
    for kind in [
        sync_core::store::DocKind::Patrol,
        sync_core::store::DocKind::Issue,
    ] {
        for id in store.doc_ids(kind).map_err(|e| e.to_string())? {
            let bytes = store
                .load_doc(&id)
                .map_err(|e| e.to_string())?
                .ok_or("listed document missing")?;
            let mut doc = automerge::AutoCommit::load(&bytes).map_err(|e| e.to_string())?;
            let mut heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
            heads.sort();
            out.insert(id, heads);
        }
    }
    Ok(out)
}

/// Which figures a phone's deliveries count under: a chief's level, or the person's role.
fn kind_of(phone: &Phone) -> &'static str {
    use sync_core::model::Role;
    match &phone.person.user.role {
        Role::Chief { level, .. } => level.as_str(),
        Role::Supervisor { .. } => "supervisor",
        Role::Handler { .. } => "handler",
        Role::Admin => "admin",
    }
}

/// Where a phone and the server disagree about what the person should hold, asked of the
/// server as that person (`checker`, signed in on a device of its own): one line each
/// (`what`: `different` heads, `extra` on the phone though not delivered, or `missing` from
/// it), what the phone holds against what the server says it receives.
fn differences(phone: &Phone, checker: &Api) -> Result<Vec<Value>> {
    // What the person's phones receive (sync-core `authz::delivered`), not all they may read.
    let expected = checker.delivered_heads()?;
    let held = phone_heads(phone)?;
    let who = &phone.person.user;
    let line = |id: &str, what: &str| {
        json!({
            "user": who.username,
            "role": kind_of(phone),
            "doc": id,
            "what": what,
            "held": held.get(id),
            "expected": expected.get(id),
        })
    };
    let mut out = Vec::new();
    for (id, heads) in &expected {
        match held.get(id) {
            None => out.push(line(id, "missing")),
            Some(h) if h != heads => out.push(line(id, "different")),
            Some(_) => {}
        }
    }
    for id in held.keys().filter(|id| !expected.contains_key(*id)) {
        out.push(line(id, "extra"));
    }
    Ok(out)
}

/// The server's view of a document a phone disagrees on, read as the administrator: its state
/// and who it waits for, so the difference can be told apart at a glance.
fn describe(admin: &Api, id: &str) -> Value {
    match admin.call("GET", &format!("/api/v1/issues/{id}"), None) {
        Ok((200, issue)) => json!({
            "kind": "issue",
            "status": issue["status"],
            "assignee": issue["assignee"],
            "escalations": issue["escalations"],
            "asset": issue["asset"],
            "division": issue["division"],
            "reporter": issue["reporter"],
        }),
        Ok((status, _)) => json!({ "kind": "not an issue", "status": status }),
        Err(e) => json!({ "error": e.to_string() }),
    }
}

/// Bytes of the files under `dir`.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// `{"phones", "docs": {max, median}, "doc_bytes": {…}, "disk_bytes": {…}}` of one level's
/// measured stores (`disk_bytes`: the store and the prepared photos on disk).
fn store_figures(stores: &[(u64, u64, u64)]) -> Value {
    let stat = |f: &dyn Fn(&(u64, u64, u64)) -> u64| {
        let mut v: Vec<f64> = stores.iter().map(|s| f(s) as f64).collect();
        v.sort_by(f64::total_cmp);
        json!({ "median": percentile(&v, 50.0), "max": v.last().copied().unwrap_or(0.0) })
    };
    json!({
        "phones": stores.len(),
        "docs": stat(&|s| s.0),
        "doc_bytes": stat(&|s| s.1),
        "disk_bytes": stat(&|s| s.2),
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn bar(len: usize, quiet: bool, what: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg:>22} [{bar:40}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_owned());
    bar
}

fn run(cli: &Cli) -> Result<Value> {
    let started = Instant::now();
    let pid = |pid: Option<u32>| pid.map(|p| p.to_string());
    let mut phases = Phases::start(Watched {
        server_pid: cli.server_pid.iter().map(u32::to_string).collect(),
        database_pid: pid(cli.database_pid),
        blobs_pid: pid(cli.blobs_pid),
    });
    let quiet = !console_is_interactive();
    let servers = &cli.server;
    let main_server = servers.first().ok_or("no --server")?;
    let admin = Api::login(
        main_server,
        &cli.admin_user,
        &cli.admin_password,
        "fieldsim-admin",
    )?;
    let people = people::create_people(&admin, cli.devices, cli.seed, cli.concurrency)?;
    phases.lap("accounts");
    let temp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let root = cli
        .data_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let now = now_ms();
    let today = china_midnight(now);
    let first_day = today - i64::from(cli.days) * DAY_MS;
    let mut rng = StdRng::seed_from_u64(cli.seed);

    // Phones: every chief's, then the offices' and the departments'.
    let interrupted: Vec<bool> = (0..people.chiefs.len())
        .map(|_| rng.random_bool(cli.interrupted.clamp(0.0, 1.0)))
        .collect();
    let setup = bar(people.chiefs.len(), quiet, "phones sign in");
    let chiefs = pool(&people.chiefs, cli.concurrency, &setup, |i, person| {
        Phone::open(
            &root.join(format!("chief-{i:04}")),
            servers,
            i,
            person.clone(),
            interrupted[i],
            now,
        )
        .inspect(Phone::close)
    })?;
    setup.finish();
    let open_staff = |list: &[people::Person], what: &str| -> Result<Vec<Phone>> {
        list.iter()
            .enumerate()
            .map(|(i, p)| {
                Phone::open(
                    &root.join(format!("{what}-{i}")),
                    servers,
                    i,
                    p.clone(),
                    false,
                    now,
                )
            })
            .collect()
    };
    let offices = open_staff(&people.supervisors, "office")?;
    let handlers = open_staff(&people.handlers, "handler")?;
    let everyone: Vec<&Phone> = chiefs.iter().chain(&offices).chain(&handlers).collect();
    // The phones compared with the server at the end and measured: `--observe` chiefs of each
    // level (the first of each, `people` lists them level by level) and all staff, or all.
    let observed: Vec<usize> = match cli.observe {
        None => (0..everyone.len()).collect(),
        Some(n) => {
            let mut taken: BTreeMap<&str, usize> = BTreeMap::new();
            (0..everyone.len())
                .filter(|&i| {
                    let kind = kind_of(everyone[i]);
                    let count = taken.entry(kind).or_default();
                    *count += 1;
                    i >= chiefs.len() || *count <= n
                })
                .collect()
        }
    };
    // The convergence check asks the server as each person, from a device of its own (on the
    // phone's own node); signing those in now keeps the password hashing out of the check's
    // time.
    let sign_checkers = || {
        pool(
            &observed,
            cli.concurrency,
            &ProgressBar::hidden(),
            |_, &i| {
                let p = &everyone[i].person;
                Api::login(
                    &servers[i % servers.len()],
                    &p.user.username,
                    people::PASSWORD,
                    "fieldsim-check",
                )
            },
        )
    };
    let mut checkers = sign_checkers()?;
    // The departments' cameras upload their "after" photos with the handlers' own accounts,
    // signed in again each period (an access token lasts minutes, a long run hours).
    let sign_cameras = || {
        handlers
            .iter()
            .enumerate()
            .map(|(n, handler)| {
                Api::login(
                    &servers[n % servers.len()],
                    &handler.person.user.username,
                    people::PASSWORD,
                    "fieldsim-camera",
                )
            })
            .collect::<Result<Vec<_>>>()
    };
    let mut cameras = sign_cameras()?;
    phases.lap("sign_in");

    // The days in periods: offline work, the chiefs' sync, the office's loop.
    let period_days = cli.sync_every.unwrap_or(cli.days).clamp(1, cli.days.max(1));
    let periods = cli.days.div_ceil(period_days).max(1);
    let mut logs: Vec<ChiefLog> = vec![ChiefLog::default(); chiefs.len()];
    // Every sync of the run: (phone index in `everyone`, its figures).
    let mut figures: Vec<(usize, SyncFigures)> = Vec::new();
    let mut outcome: BTreeMap<String, Status> = BTreeMap::new();
    // What the offices and departments received by step of their loop: (documents, bytes).
    let mut by_step: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut after_photos = 0;
    let mut chief_syncs = 0;
    for period in 0..periods {
        let last = period + 1 == periods;
        let days_here = period_days.min(cli.days - period * period_days);
        let start = first_day + i64::from(period * period_days) * DAY_MS;
        let end = start + i64::from(days_here) * DAY_MS;
        // Offline days.
        let days = bar(chiefs.len(), quiet, "days offline");
        let worked: Vec<ChiefLog> = pool(&chiefs, cli.concurrency, &days, |i, phone| {
            let log = field::chief_days(
                phone,
                cli.recorder,
                start,
                days_here,
                (cli.seed.wrapping_mul(1_000_003) + i as u64).wrapping_add(u64::from(period) << 32),
                cli.fabricated,
            );
            phone.close();
            log
        })?;
        days.finish();
        for (log, more) in logs.iter_mut().zip(worked) {
            log.absorb(more);
        }
        phases.lap("offline");

        // Everyone back in signal: chiefs sync concurrently in random order, their phones' clocks
        // at the period's end (the last one: now). The days' walks left each clock at its last
        // fix, and a backdated walk (a phone set back 60 days) left it there: the phone's store
        // index then dated the chief's own week 60 days back, and a later sync at the right time
        // dropped it as unchanged for 60 days (`sync_core::evict`), documents the server still
        // delivers to that phone.
        for phone in &chiefs {
            phone.clock.set(if last { now_ms() } else { end });
        }
        let mut order: Vec<usize> = (0..chiefs.len()).collect();
        order.shuffle(&mut rng);
        let back = bar(order.len(), quiet, "chiefs sync");
        let synced = pool(&order, cli.concurrency, &back, |_, &i| {
            let figures = sync(&chiefs[i], period == 0, cli.spread);
            chiefs[i].close();
            figures
        })?;
        back.finish();
        chief_syncs += synced.len();
        figures.extend(order.iter().copied().zip(synced));
        phases.lap("chiefs_sync");

        // The loop: assign, rectify, verify, each on its own phone, synced between steps. The
        // staff work at the end of the period (the last one: now); deadlines are a week after
        // the real time, so the server's deadline job escalates none of the simulated ones.
        let staff_now = if last { now_ms() } else { end };
        for log in &logs {
            for id in &log.issues {
                outcome.entry(id.clone()).or_insert(Status::Reported);
            }
        }
        let ours: BTreeSet<String> = outcome.keys().cloned().collect();
        if period > 0 {
            phases.lap("staff_work");
            cameras = sign_cameras()?;
            phases.lap("sign_in");
        }
        let mut staff_sync = |n: usize, phone: &Phone, step: &str| -> Result<()> {
            phases.lap("staff_work");
            phone.clock.set(staff_now);
            let synced = sync(phone, false, cli.spread)?;
            let at = by_step
                .entry(format!("{} {step}", kind_of(phone)))
                .or_default();
            at.0 += synced.docs_received;
            at.1 += synced.bytes_down;
            figures.push((n, synced));
            phases.lap("staff_sync");
            Ok(())
        };
        let (first_office, first_handler) = (chiefs.len(), chiefs.len() + offices.len());
        for (n, office) in offices.iter().enumerate() {
            staff_sync(first_office + n, office, "1 before assigning")?;
            outcome.extend(field::office_assigns(office, &ours, now_ms(), &mut rng)?);
            staff_sync(first_office + n, office, "2 after assigning")?;
        }
        for (n, handler) in handlers.iter().enumerate() {
            staff_sync(first_handler + n, handler, "3 before rectifying")?;
            let photo = u64::from(period) * handlers.len() as u64 + n as u64 + 1;
            let (done, uploaded) =
                field::handler_rectifies(handler, &ours, &cameras[n], &mut rng, photo)?;
            outcome.extend(done);
            after_photos += uploaded;
            staff_sync(first_handler + n, handler, "4 after rectifying")?;
        }
        for (n, office) in offices.iter().enumerate() {
            staff_sync(first_office + n, office, "5 before verifying")?;
            outcome.extend(field::office_verifies(office, &ours, &mut rng)?);
            staff_sync(first_office + n, office, "6 after verifying")?;
        }
        for phone in chiefs.iter().chain(&offices).chain(&handlers) {
            phone.close();
        }
    }

    // The checkers' tokens have expired in a run of many periods.
    if periods > 1 {
        phases.lap("staff_work");
        checkers = sign_checkers()?;
        phases.lap("sign_in");
    }

    // Every phone syncs once more, then each observed one is compared with the server and its
    // store measured.
    let last = bar(everyone.len(), quiet, "final sync");
    for phone in &everyone {
        phone.clock.set(now_ms());
    }
    let final_figures = pool(&everyone, cli.concurrency, &last, |_, phone| {
        let figures = sync(phone, false, cli.spread);
        phone.close();
        figures
    })?;
    figures.extend(final_figures.iter().cloned().enumerate());
    last.finish();
    phases.lap("final_sync");
    let check = bar(observed.len(), quiet, "convergence check");
    let checked = pool(&observed, cli.concurrency, &check, |k, &i| {
        let phone = everyone[i];
        let compared = differences(phone, &checkers[k]);
        let client = phone.client()?;
        let quarantine = client.quarantine().map_err(|e| e.to_string());
        // What the phone keeps after a pass of its bounded store's rule (nothing more to drop
        // just after a sync, unless it is over its bounds).
        let kept = client.evict().map_err(|e| e.to_string())?;
        drop(client);
        phone.close();
        // The app's own files: its store and its prepared photos (not the simulator's camera
        // roll beside them).
        let disk = dir_bytes(&phone.dir().join("store")) + dir_bytes(&phone.dir().join("photos"));
        Ok((
            compared?,
            quarantine?,
            (u64::from(kept.docs_after), kept.bytes_after, disk),
        ))
    })?;
    check.finish();
    phases.lap("check");
    // Documents a phone dropped over the run (its bounded store) may be missing from it; on a
    // phone that never dropped one, every missing document is lost.
    let mut dropped_by: BTreeMap<usize, u64> = BTreeMap::new();
    for (i, f) in &figures {
        *dropped_by.entry(*i).or_default() += f.dropped;
    }
    let mut lost_docs: Vec<Value> = Vec::new();
    let mut not_held = 0;
    for (&i, (lines, _, _)) in observed.iter().zip(&checked) {
        let dropped_some = dropped_by.get(&i).copied().unwrap_or(0) > 0;
        for line in lines {
            if line["what"] == "missing" && dropped_some {
                not_held += 1;
                continue;
            }
            let mut line = line.clone();
            line["server"] = describe(&admin, line["doc"].as_str().unwrap_or_default());
            lost_docs.push(line);
        }
    }
    let lost = lost_docs.len();
    let mut quarantine_reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (&i, (_, quarantine, _)) in observed.iter().zip(&checked) {
        for change in quarantine {
            *quarantine_reasons
                .entry(format!(
                    "{}: {}",
                    everyone[i].person.user.role.name(),
                    change.reason
                ))
                .or_default() += 1;
        }
    }
    let quarantined: usize = quarantine_reasons.values().sum();
    // The measured stores by level: (documents, document bytes, bytes on disk).
    let mut stores: BTreeMap<&str, Vec<(u64, u64, u64)>> = BTreeMap::new();
    for (&i, (_, _, store)) in observed.iter().zip(&checked) {
        stores.entry(kind_of(everyone[i])).or_default().push(*store);
    }
    let store_by_level: BTreeMap<&str, Value> = stores
        .iter()
        .map(|(&kind, list)| (kind, store_figures(list)))
        .collect();
    // The observed district chiefs' accounts: a new phone for one of them is what the first
    // sync after a year measures.
    let observed_accounts: BTreeMap<&str, Vec<&str>> =
        observed.iter().fold(BTreeMap::new(), |mut acc, &i| {
            acc.entry(kind_of(everyone[i]))
                .or_insert_with(Vec::new)
                .push(everyone[i].person.user.username.as_str());
            acc
        });
    let documents = admin.doc_heads()?.len();
    // Chiefs per level, and the documents their phones received over the run: the fan-out
    // of routing.
    let mut levels: BTreeMap<&str, usize> = sync_core::model::Level::ALL
        .iter()
        .map(|l| (l.as_str(), 0))
        .collect();
    let mut received_by_level = levels.clone();
    for phone in &chiefs {
        *levels.entry(kind_of(phone)).or_default() += 1;
    }
    // Documents and bytes delivered per phone per week, by level: every sync of the run (a
    // chief's first one included) over the run's weeks.
    let mut delivered: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (i, f) in &figures {
        let kind = kind_of(everyone[*i]);
        let at = delivered.entry(kind).or_default();
        at.0 += f.docs_received;
        at.1 += f.bytes_down;
        if *i < chiefs.len() {
            *received_by_level.entry(kind).or_default() += f.docs_received as usize;
        }
    }
    for (i, last) in final_figures.iter().enumerate().skip(chiefs.len()) {
        let at = by_step
            .entry(format!("{} 7 final sync", kind_of(everyone[i])))
            .or_default();
        at.0 += last.docs_received;
        at.1 += last.bytes_down;
    }
    let delivered_by_step: BTreeMap<&str, Value> = by_step
        .iter()
        .map(|(step, &(docs, bytes))| (step.as_str(), json!({ "docs": docs, "bytes": bytes })))
        .collect();
    let mut phones_of: BTreeMap<&str, u64> = BTreeMap::new();
    for phone in &everyone {
        *phones_of.entry(kind_of(phone)).or_default() += 1;
    }
    let weeks = f64::from(cli.days.max(1)) / 7.0;
    let delivered_by_level: BTreeMap<&str, Value> = delivered
        .iter()
        .map(|(&kind, &(docs, bytes))| {
            let phones = phones_of.get(kind).copied().unwrap_or(1).max(1) as f64;
            let per = |total: u64| total as f64 / phones / weeks;
            (
                kind,
                json!({
                    "phones": phones as u64,
                    "docs": docs,
                    "bytes": bytes,
                    "docs_per_phone_week": per(docs),
                    "bytes_per_phone_week": per(bytes),
                }),
            )
        })
        .collect();

    let chief_figures: Vec<&SyncFigures> = figures
        .iter()
        .filter(|(i, _)| *i < chiefs.len())
        .take(chief_syncs.max(1))
        .map(|(_, f)| f)
        .collect();
    let mut trips: Vec<f64> = chief_figures
        .iter()
        .map(|f| f64::from(f.round_trips))
        .collect();
    trips.sort_by(f64::total_cmp);
    let mut latency: Vec<f64> = chief_figures
        .iter()
        .map(|f| f.latency.as_secs_f64() * 1_000.0)
        .collect();
    latency.sort_by(f64::total_cmp);
    let sum = |f: &dyn Fn(&SyncFigures) -> u64| figures.iter().map(|(_, s)| f(s)).sum::<u64>();
    let photo_errors: Vec<&String> = figures.iter().flat_map(|(_, f)| &f.photo_errors).collect();
    let photos_taken: u64 = logs.iter().map(|l| l.photos).sum::<u64>();
    let mut syncs_by_node = vec![0u64; servers.len()];
    for (_, f) in &figures {
        syncs_by_node[f.node % servers.len()] += 1;
    }
    let waiting_at_end: u64 = final_figures.iter().map(|f| f.photos_waiting).sum();

    let mut out = json!({
        "server": servers.join(","),
        "syncs_by_node": syncs_by_node,
        "seed": cli.seed,
        "devices": chiefs.len(),
        "staff_devices": offices.len() + handlers.len(),
        "levels": levels,
        "docs_received_by_level": received_by_level,
        "delivered_by_level": delivered_by_level,
        "places_created": { "villages": people.divisions_created, "stretches": people.assets_created },
        "days": cli.days,
        "sync_every_days": period_days,
        "observed_phones": observed.len(),
        "observed_accounts": observed_accounts,
        "store_by_level": store_by_level,
        "documents": documents,
        "patrols": logs.iter().map(|l| l.patrols).sum::<u64>(),
        "issues": outcome.len(),
        "changes": sum(&|f| f.changes),
        "bytes_up": sum(&|f| f.bytes_up),
        "bytes_down": sum(&|f| f.bytes_down),
        "round_trips": { "median": percentile(&trips, 50.0), "max": trips.last().copied().unwrap_or(0.0) },
        "sync_latency_ms": { "p50": percentile(&latency, 50.0), "p99": percentile(&latency, 99.0) },
        "docs_received": sum(&|f| f.docs_received),
        "dropped_by_phones": sum(&|f| f.dropped),
        "chief_sync_wall_s": phases.wall("chiefs_sync"),
        "phases": phases.json(),
        "merged_and_converged_s": MERGE_PHASES.iter().map(|p| phases.wall(p)).sum::<f64>(),
        "wall_s": started.elapsed().as_secs_f64(),
        "interrupted": http::answers_lost(),
        "retries": sum(&|f| u64::from(f.attempts - 1)),
        "photos": {
            "attached_by_chiefs": photos_taken,
            "uploaded": sum(&|f| f.photos_uploaded),
            "after_photos_uploaded": after_photos,
            "bytes_up": sum(&|f| f.photo_bytes_up),
            "waiting_at_end": waiting_at_end,
            "skipped_reason": photo_errors.first().map(|e| e.as_str()),
        },
        "refusals": sum(&|f| f.refused),
        "quarantined": quarantined,
        "quarantine_reasons": quarantine_reasons,
        "not_held_after_dropping": not_held,
        "lost": lost,
        "lost_docs": lost_docs,
        "delivered_by_step": delivered_by_step,
    });
    if cli.expect {
        out["expect"] = expectation(&chiefs, &logs, &outcome, first_day, today);
    }
    Ok(out)
}

/// The figures the server's statistics must show for this run.
fn expectation(
    chiefs: &[Phone],
    logs: &[ChiefLog],
    outcome: &BTreeMap<String, Status>,
    first_day: i64,
    today: i64,
) -> Value {
    let rows: Vec<Value> = chiefs
        .iter()
        .zip(logs)
        .map(|(phone, log)| {
            json!({
                "chief": phone.person.user.id,
                "username": phone.person.user.username,
                "patrols": log.patrols,
                "valid": log.valid,
                "km": (log.km * 1_000.0).round() / 1_000.0,
            })
        })
        .collect();
    let patrols: Vec<Value> = logs
        .iter()
        .flat_map(|log| &log.walks)
        .map(|w| {
            json!({
                "id": w.id,
                "kind": w.walk.name(),
                "fabricated": w.walk.fabricated(),
                "valid": w.valid,
                "reasons": w.walk.reasons(),
            })
        })
        .collect();
    let fabricated = logs
        .iter()
        .flat_map(|log| &log.walks)
        .filter(|w| w.walk.fabricated())
        .count();
    let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
    for status in outcome.values() {
        *by_status.entry(status.as_str()).or_default() += 1;
    }
    json!({
        "from": china_date(first_day),
        "to": china_date(today - 1),
        "chiefs": rows,
        "valid_patrols": logs.iter().map(|l| l.valid).sum::<u64>(),
        "km": (logs.iter().map(|l| l.km).sum::<f64>() * 1_000.0).round() / 1_000.0,
        "issues_by_status": by_status,
        "patrols": patrols,
        "fabricated_patrols": fabricated,
    })
}

fn console_is_interactive() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// Documents and bytes delivered per phone per week, by level (`delivered_by_level`).
fn print_delivered(by_level: &Value) {
    println!("  delivered per phone per week (goal <= 300 documents, <= 5 MB):");
    for (kind, name) in [
        ("village", "village chiefs"),
        ("subdistrict", "subdistrict chiefs"),
        ("district", "district chiefs"),
        ("supervisor", "offices"),
        ("handler", "departments"),
    ] {
        let at = &by_level[kind];
        if at.is_null() {
            continue;
        }
        println!(
            "    {:<20} {:>5} phones {:>9.1} documents {:>8.2} MB",
            name,
            at["phones"],
            at["docs_per_phone_week"].as_f64().unwrap_or(0.0),
            at["bytes_per_phone_week"].as_f64().unwrap_or(0.0) / 1e6
        );
    }
}

/// The measured phones' stores by level (`store_by_level`).
fn print_stores(by_level: &Value) {
    println!("  phone store at the end (goal <= 200 MB), median / max:");
    for (kind, name) in [
        ("village", "village chiefs"),
        ("subdistrict", "subdistrict chiefs"),
        ("district", "district chiefs"),
        ("supervisor", "offices"),
        ("handler", "departments"),
    ] {
        let at = &by_level[kind];
        if at.is_null() {
            continue;
        }
        let mb = |v: &Value| v.as_f64().unwrap_or(0.0) / 1e6;
        println!(
            "    {:<20} {:>3} phones {:>6} / {:>6} documents {:>7.2} / {:>7.2} MB of documents {:>7.2} / {:>7.2} MB on disk",
            name,
            at["phones"],
            at["docs"]["median"],
            at["docs"]["max"],
            mb(&at["doc_bytes"]["median"]),
            mb(&at["doc_bytes"]["max"]),
            mb(&at["disk_bytes"]["median"]),
            mb(&at["disk_bytes"]["max"]),
        );
    }
}

fn print_summary(out: &Value) {
    println!(
        "fieldsim: {} chiefs' phones (+{} office/department), {} days (syncing every {}), seed {}, {} phones observed",
        out["devices"], out["staff_devices"], out["days"], out["sync_every_days"], out["seed"], out["observed_phones"]
    );
    let levels = &out["levels"];
    println!(
        "  chiefs        {} district, {} subdistrict, {} village level; {} villages and {} village stretches added",
        levels["district"],
        levels["subdistrict"],
        levels["village"],
        out["places_created"]["villages"],
        out["places_created"]["stretches"]
    );
    let received = &out["docs_received_by_level"];
    println!(
        "  fan-out       documents received by district chiefs {}, subdistrict {}, village {}",
        received["district"], received["subdistrict"], received["village"]
    );
    print_delivered(&out["delivered_by_level"]);
    print_stores(&out["store_by_level"]);
    println!(
        "  recorded      {} patrols, {} problems; server holds {} documents",
        out["patrols"], out["issues"], out["documents"]
    );
    println!(
        "  wire          {} changes, {} bytes up, {} bytes down",
        out["changes"], out["bytes_up"], out["bytes_down"]
    );
    println!(
        "  chiefs' sync  round trips median {} max {}; latency p50 {:.1} ms p99 {:.1} ms; all in {:.2} s",
        out["round_trips"]["median"],
        out["round_trips"]["max"],
        out["sync_latency_ms"]["p50"].as_f64().unwrap_or(0.0),
        out["sync_latency_ms"]["p99"].as_f64().unwrap_or(0.0),
        out["chief_sync_wall_s"].as_f64().unwrap_or(0.0)
    );
    println!(
        "  interruptions {} answers lost, {} retries",
        out["interrupted"], out["retries"]
    );
    let photos = &out["photos"];
    println!(
        "  photos        {} of {} chiefs' photos uploaded ({} bytes), {} after photos, {} still waiting{}",
        photos["uploaded"],
        photos["attached_by_chiefs"],
        photos["bytes_up"],
        photos["after_photos_uploaded"],
        photos["waiting_at_end"],
        photos["skipped_reason"]
            .as_str()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    println!(
        "  refusals      {} (quarantined on phones: {})",
        out["refusals"], out["quarantined"]
    );
    for (reason, count) in out["quarantine_reasons"].as_object().into_iter().flatten() {
        println!("                {count} × {reason}");
    }
    println!(
        "  lost          {} ({} documents not held by phones that dropped {} over the run)",
        out["lost"], out["not_held_after_dropping"], out["dropped_by_phones"]
    );
    print_lost(out);
    for phase in out["phases"].as_array().into_iter().flatten() {
        let name = phase["phase"].as_str().unwrap_or("");
        let server = phase["server_cpu_s"]
            .as_f64()
            .map(|s| format!(", server CPU {s:.1} s"))
            .unwrap_or_default();
        println!(
            "  {name:<13} {:>7.1} s wall, simulator CPU {:.1} s{server}",
            phase["wall_s"].as_f64().unwrap_or(0.0),
            phase["simulator_cpu_s"].as_f64().unwrap_or(0.0)
        );
    }
    println!(
        "  merged and converged {:.1} s (every sync and the check); wall time {:.1} s",
        out["merged_and_converged_s"].as_f64().unwrap_or(0.0),
        out["wall_s"].as_f64().unwrap_or(0.0)
    );
    if let Some(expect) = out.get("expect") {
        println!(
            "expected statistics {} .. {}: {} valid patrols, {} km, problems {}",
            expect["from"].as_str().unwrap_or(""),
            expect["to"].as_str().unwrap_or(""),
            expect["valid_patrols"],
            expect["km"],
            expect["issues_by_status"]
        );
        for row in expect["chiefs"].as_array().into_iter().flatten() {
            println!(
                "  {:<22} patrols {:>3} valid {:>3} km {:>8.3}",
                row["username"].as_str().unwrap_or(""),
                row["patrols"],
                row["valid"],
                row["km"].as_f64().unwrap_or(0.0)
            );
        }
    }
}

/// One line per document a phone and the server disagree on (`lost_docs`).
fn print_lost(out: &Value) {
    for line in out["lost_docs"].as_array().into_iter().flatten() {
        let server = &line["server"];
        println!(
            "                {} {} ({}): {} status {} assignee {} escalations {} reporter {}; holds {} expected {}",
            line["what"].as_str().unwrap_or(""),
            line["doc"].as_str().unwrap_or(""),
            server["kind"].as_str().unwrap_or("?"),
            format_args!("{} {}", line["role"].as_str().unwrap_or(""), line["user"].as_str().unwrap_or("")),
            server["status"],
            server["assignee"],
            server["escalations"],
            server["reporter"],
            line["held"],
            line["expected"],
        );
    }
}
fn main() {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(out) => {
            if cli.json {
                println!("{out}");
            } else {
                print_summary(&out);
            }
            if out["lost"].as_u64() != Some(0) {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("fieldsim: {e}");
            std::process::exit(2);
        }
    }
}
