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
    /// The server's root URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Chiefs' phones to simulate.
    #[arg(long, default_value_t = 20)]
    devices: usize,
    /// Days of offline work before the phones sync.
    #[arg(long, default_value_t = 7)]
    days: u32,
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
    /// phase is reported beside the simulator's own (Linux, from /proc).
    #[arg(long)]
    server_pid: Option<u32>,
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
    server_pid: Option<String>,
    database_pid: Option<String>,
    blobs_pid: Option<String>,
}

impl Watched {
    /// `(server, database, photo store, simulator)` CPU seconds so far.
    fn cpu(&self) -> (f64, f64, f64, f64) {
        let tree = |pid: &Option<String>| pid.as_deref().and_then(tree_cpu_seconds);
        (
            self.server_pid
                .as_deref()
                .and_then(cpu_seconds)
                .unwrap_or(0.0),
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
                if self.watched.server_pid.is_some() {
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
}

/// Syncs until it succeeds; a phone with a relay loses the first answer on purpose.
fn sync(phone: &Phone, lose_answer: bool) -> Result<SyncFigures> {
    let mut figures = SyncFigures::default();
    if let (true, Some(relay)) = (lose_answer, &phone.relay) {
        relay.arm();
    }
    loop {
        figures.attempts += 1;
        let started = Instant::now();
        match phone.client()?.sync() {
            Ok(report) => {
                figures.latency = started.elapsed();
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

/// Documents where a phone and the server disagree about what the person should hold, asked of
/// the server as that person (`checker`, signed in on a device of its own): one line each, what
/// the phone holds against what the server says it receives.
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
        server_pid: pid(cli.server_pid),
        database_pid: pid(cli.database_pid),
        blobs_pid: pid(cli.blobs_pid),
    });
    let quiet = !console_is_interactive();
    let admin = Api::login(
        &cli.server,
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
            &cli.server,
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
                    &cli.server,
                    p.clone(),
                    false,
                    now,
                )
            })
            .collect()
    };
    let offices = open_staff(&people.supervisors, "office")?;
    let handlers = open_staff(&people.handlers, "handler")?;
    // The convergence check asks the server as each person, from a device of its own; signing
    // those in now keeps the password hashing out of the check's time.
    let everyone_people: Vec<&people::Person> = chiefs
        .iter()
        .chain(&offices)
        .chain(&handlers)
        .map(|p| &p.person)
        .collect();
    let checkers = pool(
        &everyone_people,
        cli.concurrency,
        &ProgressBar::hidden(),
        |_, p| {
            Api::login(
                &cli.server,
                &p.user.username,
                people::PASSWORD,
                "fieldsim-check",
            )
        },
    )?;
    phases.lap("sign_in");

    // Offline days.
    let days = bar(chiefs.len(), quiet, "days offline");
    let logs: Vec<ChiefLog> = pool(&chiefs, cli.concurrency, &days, |i, phone| {
        let log = field::chief_days(
            phone,
            cli.recorder,
            first_day,
            cli.days,
            cli.seed.wrapping_mul(1_000_003) + i as u64,
            cli.fabricated,
        );
        phone.close();
        log
    })?;
    days.finish();
    phases.lap("offline");

    // Everyone back in signal: chiefs sync concurrently in random order, their phones' clocks
    // at today's time. The days' walks left each clock at its last fix, and a backdated walk
    // (a phone set back 60 days) left it there: the phone's store index then dated the chief's
    // own week 60 days back, and the next sync, at the right time, dropped it as unchanged for
    // 60 days (`sync_core::evict`), documents the server still delivers to that phone.
    for phone in &chiefs {
        phone.clock.set(now_ms());
    }
    let mut order: Vec<usize> = (0..chiefs.len()).collect();
    order.shuffle(&mut rng);
    let back = bar(order.len(), quiet, "chiefs sync");
    let mut figures = pool(&order, cli.concurrency, &back, |_, &i| {
        let figures = sync(&chiefs[i], true);
        chiefs[i].close();
        figures
    })?;
    back.finish();
    phases.lap("chiefs_sync");

    // The loop: assign, rectify, verify, each on its own phone, synced between steps.
    let staff_now = now_ms();
    let mut outcome: BTreeMap<String, Status> = BTreeMap::new();
    for log in &logs {
        for id in &log.issues {
            outcome.insert(id.clone(), Status::Reported);
        }
    }
    let ours: BTreeSet<String> = outcome.keys().cloned().collect();
    // What each kind of phone received over the run: (documents, answer bytes).
    let mut delivered: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    // The same by step of the loop, for the offices and departments: (documents, bytes).
    let mut by_step: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut staff_sync = |phone: &Phone, step: &str| -> Result<()> {
        phases.lap("staff_work");
        phone.clock.set(now_ms());
        let synced = sync(phone, false)?;
        let at = delivered.entry(kind_of(phone)).or_default();
        at.0 += synced.docs_received;
        at.1 += synced.bytes_down;
        let at = by_step
            .entry(format!("{} {step}", kind_of(phone)))
            .or_default();
        at.0 += synced.docs_received;
        at.1 += synced.bytes_down;
        figures.push(synced);
        phases.lap("staff_sync");
        Ok(())
    };
    for office in &offices {
        staff_sync(office, "1 before assigning")?;
        outcome.extend(field::office_assigns(office, &ours, staff_now, &mut rng)?);
        staff_sync(office, "2 after assigning")?;
    }
    let mut after_photos = 0;
    for (n, handler) in handlers.iter().enumerate() {
        staff_sync(handler, "3 before rectifying")?;
        let camera = Api::login(
            &cli.server,
            &handler.person.user.username,
            people::PASSWORD,
            "fieldsim-camera",
        )?;
        let (done, uploaded) =
            field::handler_rectifies(handler, &ours, &camera, &mut rng, n as u64 + 1)?;
        outcome.extend(done);
        after_photos += uploaded;
        staff_sync(handler, "4 after rectifying")?;
    }
    for office in &offices {
        staff_sync(office, "5 before verifying")?;
        outcome.extend(field::office_verifies(office, &ours, &mut rng)?);
        staff_sync(office, "6 after verifying")?;
    }

    // Every phone syncs once more, then each is compared with the server.
    let everyone: Vec<&Phone> = chiefs.iter().chain(&offices).chain(&handlers).collect();
    let last = bar(everyone.len(), quiet, "final sync");
    for phone in &everyone {
        phone.clock.set(now_ms());
    }
    figures.extend(pool(&everyone, cli.concurrency, &last, |_, phone| {
        let figures = sync(phone, false);
        phone.close();
        figures
    })?);
    last.finish();
    phases.lap("final_sync");
    let check = bar(everyone.len(), quiet, "convergence check");
    let checked = pool(&everyone, cli.concurrency, &check, |i, phone| {
        let lost = differences(phone, &checkers[i]);
        let quarantine = phone.client()?.quarantine().map_err(|e| e.to_string());
        phone.close();
        Ok((lost?, quarantine?))
    })?;
    check.finish();
    phases.lap("check");
    let lost: usize = checked.iter().map(|(lost, _)| lost.len()).sum();
    let lost_docs: Vec<Value> = checked
        .iter()
        .flat_map(|(lost, _)| lost)
        .map(|line| {
            let mut line = line.clone();
            line["server"] = describe(&admin, line["doc"].as_str().unwrap_or_default());
            line
        })
        .collect();
    let mut quarantine_reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (phone, (_, quarantine)) in everyone.iter().zip(&checked) {
        for change in quarantine {
            *quarantine_reasons
                .entry(format!(
                    "{}: {}",
                    phone.person.user.role.name(),
                    change.reason
                ))
                .or_default() += 1;
        }
    }
    let quarantined: usize = quarantine_reasons.values().sum();
    let documents = admin.doc_heads()?.len();
    // Chiefs per level, and the documents their phones received (first and final sync): the
    // fan-out of routing by jurisdiction.
    let level_of = |phone: &Phone| match &phone.person.user.role {
        sync_core::model::Role::Chief { level, .. } => level.as_str(),
        _ => "staff",
    };
    let mut levels: BTreeMap<&str, usize> = sync_core::model::Level::ALL
        .iter()
        .map(|l| (l.as_str(), 0))
        .collect();
    let mut received_by_level = levels.clone();
    for phone in &chiefs {
        *levels.entry(level_of(phone)).or_default() += 1;
    }
    let final_figures = &figures[figures.len() - everyone.len()..];
    for (k, &i) in order.iter().enumerate() {
        *received_by_level.entry(level_of(&chiefs[i])).or_default() +=
            (figures[k].docs_received + final_figures[i].docs_received) as usize;
    }
    // Documents and bytes delivered per phone per week, by level: every sync of the run (a
    // chief's first one included) over the run's weeks.
    for (k, &i) in order.iter().enumerate() {
        let at = delivered.entry(kind_of(&chiefs[i])).or_default();
        at.0 += figures[k].docs_received;
        at.1 += figures[k].bytes_down;
    }
    for (phone, last) in everyone.iter().zip(final_figures) {
        let at = delivered.entry(kind_of(phone)).or_default();
        at.0 += last.docs_received;
        at.1 += last.bytes_down;
        if !matches!(phone.person.user.role, sync_core::model::Role::Chief { .. }) {
            let at = by_step
                .entry(format!("{} 7 final sync", kind_of(phone)))
                .or_default();
            at.0 += last.docs_received;
            at.1 += last.bytes_down;
        }
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

    let chief_syncs = &figures[..order.len()];
    let mut trips: Vec<f64> = chief_syncs
        .iter()
        .map(|f| f64::from(f.round_trips))
        .collect();
    trips.sort_by(f64::total_cmp);
    let mut latency: Vec<f64> = chief_syncs
        .iter()
        .map(|f| f.latency.as_secs_f64() * 1_000.0)
        .collect();
    latency.sort_by(f64::total_cmp);
    let sum = |f: &dyn Fn(&SyncFigures) -> u64| figures.iter().map(f).sum::<u64>();
    let photo_errors: Vec<&String> = figures.iter().flat_map(|f| &f.photo_errors).collect();
    let photos_taken: u64 = logs.iter().map(|l| l.photos).sum::<u64>();
    let waiting_at_end: u64 = figures[figures.len() - everyone.len()..]
        .iter()
        .map(|f| f.photos_waiting)
        .sum();

    let mut out = json!({
        "server": cli.server,
        "seed": cli.seed,
        "devices": chiefs.len(),
        "staff_devices": offices.len() + handlers.len(),
        "levels": levels,
        "docs_received_by_level": received_by_level,
        "delivered_by_level": delivered_by_level,
        "delivered_by_step": delivered_by_step,
        "places_created": { "villages": people.divisions_created, "stretches": people.assets_created },
        "days": cli.days,
        "documents": documents,
        "patrols": logs.iter().map(|l| l.patrols).sum::<u64>(),
        "issues": outcome.len(),
        "changes": sum(&|f| f.changes),
        "bytes_up": sum(&|f| f.bytes_up),
        "bytes_down": sum(&|f| f.bytes_down),
        "round_trips": { "median": percentile(&trips, 50.0), "max": trips.last().copied().unwrap_or(0.0) },
        "sync_latency_ms": { "p50": percentile(&latency, 50.0), "p99": percentile(&latency, 99.0) },
        "docs_received": sum(&|f| f.docs_received),
        "chief_sync_wall_s": phases.wall("chiefs_sync"),
        "phases": phases.json(),
        "merged_and_converged_s": MERGE_PHASES.iter().map(|p| phases.wall(p)).sum::<f64>(),
        "wall_s": started.elapsed().as_secs_f64(),
        "interrupted": http::answers_lost(),
        "retries": figures.iter().map(|f| u64::from(f.attempts - 1)).sum::<u64>(),
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
        "lost": lost,
        "lost_docs": lost_docs,
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

fn print_summary(out: &Value) {
    println!(
        "fieldsim: {} chiefs' phones (+{} office/department), {} days offline, seed {}",
        out["devices"], out["staff_devices"], out["days"], out["seed"]
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
    println!("  lost          {}", out["lost"]);
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
