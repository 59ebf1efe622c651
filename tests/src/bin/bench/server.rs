//! `server`: a district's week against a release server on this machine. Builds and starts the
//! `chiefsync` binary (release, Tianqiao demo, data on disk, production password hashing), runs
//! `fieldsim` against it (1,000 chiefs' phones × 7 days by default, 16 at a time) and prints the
//! time of each phase, the merged-and-converged time (every sync and the comparison of every
//! phone with the server), the documents and bytes delivered per phone per week by level
//! (village, subdistrict and district chiefs, offices, departments), the wire figures, `lost`
//! and the server's peak memory (VmHWM from /proc).
//!
//! The phones record their tracks a minute at a time (`--recorder chunk`: the same chunks and
//! documents the app's recorder writes) and keep their stores in /dev/shm when it exists: the
//! phones' own disks are not what this measures, and they share the server's two cores.
//!
//! `--test-passwords` runs `bench-server` instead (the same serving path, accounts hashed at
//! the tests' argon2 cost) so that 10,000 accounts and sign-ins take seconds; `--nodes N` with
//! `--database` and `--s3` runs N server processes on one PostgreSQL database and bucket
//! beside one, the phones spread over them. Every node of a run shares one signing key, and
//! access tokens last a day (the simulator signs in its checkers long before the check).

use std::io::BufRead;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The server process; stopped with SIGKILL when dropped, so no server outlives the bench.
struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds the release server and simulator (nothing to do when they are up to date).
fn build() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "-p", "server", "--bin", "chiefsync"])
        .args(["-p", "tests", "--bin", "fieldsim", "--bin", "bench-server"])
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build --release failed");
}

fn release_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    exe.parent().expect("release directory").to_path_buf()
}

fn free_addr() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    listener.local_addr().expect("local addr").to_string()
}

/// The signing key every node of a run shares (a cluster's nodes accept each other's tokens).
const SIGNING_KEY: &str = "server-bench-signing-key-0123456789abcdef";

/// Access tokens outlive the run: a run of 10,000 phones takes longer than the default 15
/// minutes between the simulator signing in its checkers and cameras and using them.
const ACCESS_TTL_SECS: &str = "86400";

fn start(data_dir: &Path, addr: &str, store: &[String], test_passwords: bool) -> Server {
    let log = std::fs::File::create(data_dir.with_extension("log")).expect("server log");
    let program = if test_passwords {
        "bench-server"
    } else {
        "chiefsync"
    };
    let child = Command::new(release_dir().join(program))
        .args(["--demo", "--addr", addr])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--signing-key", SIGNING_KEY])
        .args(["--access-ttl-secs", ACCESS_TTL_SECS])
        .args(store)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start chiefsync");
    let mut server = Server { child };
    let started = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = server.child.try_wait() {
            let log = std::fs::read_to_string(data_dir.with_extension("log")).unwrap_or_default();
            panic!("the server exited ({status}):\n{log}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the server did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// A line of `/proc/<pid>/status` in kB, e.g. `VmHWM`.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::File::open(format!("/proc/{pid}/status")).ok()?;
    std::io::BufReader::new(status)
        .lines()
        .map_while(Result::ok)
        .find(|line| line.starts_with(&format!("{field}:")))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn phones_dir(run: &Path, chosen: Option<&Path>) -> PathBuf {
    let shm = Path::new("/dev/shm");
    if let Some(dir) = chosen {
        dir.join(format!("chiefsync-phones-{}", std::process::id()))
    } else if shm.is_dir() {
        shm.join(format!("chiefsync-phones-{}", std::process::id()))
    } else {
        run.join("phones")
    }
}

fn f(value: &Value) -> f64 {
    value.as_f64().unwrap_or(0.0)
}

pub struct Params {
    pub devices: usize,
    pub days: u32,
    pub seed: u64,
    pub concurrency: usize,
    /// A PostgreSQL address of a user who may create databases: the runs on PostgreSQL each
    /// get a new database of their own, dropped afterwards.
    pub database: Option<String>,
    /// Photos in a SeaweedFS of the run's own (a new bucket) on the PostgreSQL runs.
    pub s3: bool,
    /// Runs of each store; with `database`, sled and PostgreSQL alternate.
    pub rounds: usize,
    /// Server processes on the PostgreSQL database at once; above one, runs with one node and
    /// with this many alternate (instead of sled and PostgreSQL), the phones spread over the
    /// nodes (phone `i` on node `i mod n`).
    pub nodes: usize,
    /// Accounts hashed at argon2's cheapest cost (the `bench-server` program) instead of
    /// production's: account creation and sign-in stop dominating large runs; the syncs are
    /// the same.
    pub test_passwords: bool,
    /// Where the phones keep their stores (default /dev/shm, which is memory).
    pub phones_dir: Option<PathBuf>,
}

/// Where a run keeps its data.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    /// sled and photo files under the data directory, the embedded default.
    Sled,
    /// PostgreSQL, with photos in files or (`s3`) in a SeaweedFS bucket, served by `nodes`
    /// server processes.
    Postgres { s3: bool, nodes: usize },
}

impl Kind {
    fn name(self) -> String {
        match self {
            Kind::Sled => "sled + files".into(),
            Kind::Postgres { s3: false, .. } => "PostgreSQL + files".into(),
            Kind::Postgres { s3: true, nodes: 1 } => "PostgreSQL + S3".into(),
            Kind::Postgres { s3: true, nodes } => format!("PostgreSQL + S3, {nodes} nodes"),
        }
    }

    fn nodes(self) -> usize {
        match self {
            Kind::Sled => 1,
            Kind::Postgres { nodes, .. } => nodes.max(1),
        }
    }
}

/// A database of the run's own on the PostgreSQL server named by the address of a user who may
/// create databases; dropped (with its connections) when this is dropped.
struct Database {
    admin: String,
    name: String,
}

impl Database {
    fn create(admin: &str) -> Database {
        static RUN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run = RUN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("chiefsync_bench_{}_{run}", std::process::id());
        psql(admin, &format!("CREATE DATABASE {name}"));
        Database {
            admin: admin.to_owned(),
            name,
        }
    }

    /// The admin address with this database in place of its own.
    fn url(&self) -> String {
        let authority = self.admin.find("://").map_or(0, |i| i + 3);
        let (base, query) = match self.admin[authority..].find(['/', '?']) {
            Some(at) => {
                let rest = &self.admin[authority + at..];
                let query = rest.find('?').map_or("", |q| &rest[q..]);
                (&self.admin[..authority + at], query)
            }
            None => (self.admin.as_str(), ""),
        };
        format!("{base}/{}{query}", self.name)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        psql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs one statement with `psql` (PostgreSQL's client, installed with the server) and returns
/// its unaligned output.
fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args([url, "-X", "-v", "ON_ERROR_STOP=1", "-Atc", sql])
        .output()
        .expect("run psql (PostgreSQL's client)");
    assert!(
        output.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The process id of the PostgreSQL server (its postmaster), when it runs on this machine: the
/// first line of `postmaster.pid` in its data directory.
fn postmaster_pid(admin: &str) -> Option<u32> {
    let dir = psql(admin, "SHOW data_directory");
    let pid = std::fs::read_to_string(Path::new(&dir).join("postmaster.pid")).ok()?;
    let pid: u32 = pid.lines().next()?.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

/// A process and its children (PostgreSQL's connections and writers).
fn process_tree(pid: u32) -> Vec<u32> {
    let mut tree = vec![pid];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return tree;
    };
    for entry in entries.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if parent == Some(pid) {
            tree.push(child);
        }
    }
    tree
}

/// Memory of a process tree in kB, each page shared by several processes counted once in all
/// (the sum of their `Pss` in `/proc/<pid>/smaps_rollup`): PostgreSQL's shared buffers are
/// mapped by every connection.
fn tree_pss_kb(pid: u32) -> u64 {
    process_tree(pid)
        .into_iter()
        .filter_map(|p| {
            let rollup = std::fs::read_to_string(format!("/proc/{p}/smaps_rollup")).ok()?;
            rollup
                .lines()
                .find(|l| l.starts_with("Pss:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// The highest memory of a process tree, sampled every second until stopped.
struct PeakSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl PeakSampler {
    fn start(pid: u32) -> PeakSampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                peak = peak.max(tree_pss_kb(pid));
                std::thread::sleep(Duration::from_secs(1));
            }
            peak.max(tree_pss_kb(pid))
        });
        PeakSampler { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap_or(0)
    }
}

/// Bytes a directory takes on disk (allocated blocks, so sparse files count what they hold).
fn disk_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.blocks() * 512;
    }
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| disk_bytes(&entry.path()))
        .sum()
}

/// The PostgreSQL server's write-ahead log position in bytes (`pg_current_wal_lsn()`).
fn wal_bytes(admin: &str) -> Option<u64> {
    psql(admin, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
        .split('.')
        .next()?
        .parse()
        .ok()
}

/// What a run's database holds and did: its size and largest tables, its transactions and
/// rows, and (where `pg_stat_statements` is loaded) the statements it ran most.
fn database_report(db: &Database, wal_before: Option<u64>, devices: usize) {
    let url = db.url();
    let size: f64 = psql(&url, "SELECT pg_database_size(current_database())")
        .parse()
        .unwrap_or(0.0);
    println!(
        "  database      {:.1} MB on disk; largest tables (with indexes, MB):",
        size / 1e6
    );
    let tables = psql(
        &url,
        "SELECT relname || ' ' || round(pg_total_relation_size(relid) / 1e6, 1) || ' (' || n_live_tup || ' rows)'
         FROM pg_stat_user_tables ORDER BY pg_total_relation_size(relid) DESC LIMIT 6",
    );
    println!(
        "                {}",
        tables.lines().collect::<Vec<_>>().join(", ")
    );
    if let (Some(before), Some(after)) = (wal_before, wal_bytes(&db.admin)) {
        println!(
            "  write-ahead log {:.1} MB written during the run (the whole PostgreSQL server)",
            after.saturating_sub(before) as f64 / 1e6
        );
    }
    // The statistics reach the shared counters within a second of each transaction.
    std::thread::sleep(Duration::from_millis(1_500));
    let counts = psql(
        &db.admin,
        &format!(
            "SELECT xact_commit || ' ' || xact_rollback || ' ' || tup_returned || ' ' || tup_fetched || ' ' || tup_inserted || ' ' || tup_updated || ' ' || tup_deleted
             FROM pg_stat_database WHERE datname = '{}'",
            db.name
        ),
    );
    let n: Vec<f64> = counts
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    if let [commits, rollbacks, returned, fetched, inserted, updated, deleted] = n[..] {
        println!(
            "  transactions  {commits:.0} committed ({:.0} per phone), {rollbacks:.0} rolled back; rows returned {returned:.0}, fetched {fetched:.0}, inserted {inserted:.0}, updated {updated:.0}, deleted {deleted:.0}",
            commits / devices.max(1) as f64
        );
    }
    let statements = Command::new("psql")
        .args([db.admin.as_str(), "-X", "-Atc"])
        .arg(format!(
            "SELECT calls || ' calls, ' || round(total_exec_time::numeric / 1000, 1) || ' s: ' || regexp_replace(left(query, 90), '\\s+', ' ', 'g')
             FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '{}')
             ORDER BY calls DESC LIMIT 12",
            db.name
        ))
        .output();
    if let Ok(out) = statements {
        if out.status.success() {
            println!("  statements run most (pg_stat_statements; calls, time in PostgreSQL):");
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                println!("    {line}");
            }
        }
    }
}

/// The `weed` process this bench started (a child of the bench).
fn weed_pid() -> Option<u32> {
    let own = std::process::id();
    process_tree(own).into_iter().skip(1).find(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "weed")
    })
}

/// One server process at the end of a run: its memory and CPU from /proc, and from its
/// `/metrics` the answers it refused.
struct Node {
    peak_kb: Option<u64>,
    rss_kb: Option<u64>,
    cpu_s: f64,
    status_5xx: u64,
    status_503: u64,
    status_429: u64,
    /// Sync and upload requests shed (503) because too many were in progress.
    shed: u64,
}

impl Node {
    fn read(pid: u32, base: &str) -> Node {
        let cpu_s = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let fields: Vec<f64> = stat
                    .rsplit_once(')')?
                    .1
                    .split_whitespace()
                    .map(|f| f.parse().unwrap_or(0.0))
                    .collect();
                Some((fields.get(11)? + fields.get(12)?) / 100.0)
            })
            .unwrap_or(0.0);
        let metrics = ureq::get(format!("{base}/metrics"))
            .call()
            .ok()
            .and_then(|mut reply| reply.body_mut().read_to_string().ok())
            .unwrap_or_default();
        let (mut status_5xx, mut status_503, mut status_429, mut shed) = (0, 0, 0, 0);
        for line in metrics.lines() {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let value = value.parse::<f64>().unwrap_or(0.0) as u64;
            if series.starts_with("chiefsync_http_requests_total{") {
                let status = series
                    .split("status=\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .and_then(|s| s.parse::<u16>().ok())
                    .unwrap_or(0);
                match status {
                    503 => {
                        status_503 += value;
                        status_5xx += value;
                    }
                    500..=599 => status_5xx += value,
                    429 => status_429 += value,
                    _ => {}
                }
            } else if series.starts_with("chiefsync_load_shed_total") {
                shed += value;
            }
        }
        Node {
            peak_kb: status_kb(pid, "VmHWM"),
            rss_kb: status_kb(pid, "VmRSS"),
            cpu_s,
            status_5xx,
            status_503,
            status_429,
            shed,
        }
    }
}

/// What one run measured.
struct Measured {
    kind: Kind,
    merged_s: f64,
    server_cpu_s: f64,
    database_cpu_s: f64,
    blobs_cpu_s: f64,
    /// The nodes' peaks summed.
    server_peak_mib: f64,
    /// Requests the nodes answered 503 (busy, or the store unreachable).
    refusals_503: u64,
    database_peak_mib: f64,
    blobs_peak_mib: f64,
}

/// `--database own`: a PostgreSQL cluster of the bench's own (`tests::postgres::Cluster`, on a
/// free loopback port, removed at the end), so everything the database does is the bench's.
const OWN_CLUSTER: &str = "own";

pub fn run(params: &Params) {
    build();
    if params.nodes > 1 && !(params.database.is_some() && params.s3) {
        eprintln!("--nodes shares one store between server processes: give --database and --s3");
        std::process::exit(2);
    }
    let kinds: Vec<Kind> = match &params.database {
        Some(_) if params.nodes > 1 => vec![
            Kind::Postgres {
                s3: params.s3,
                nodes: 1,
            },
            Kind::Postgres {
                s3: params.s3,
                nodes: params.nodes,
            },
        ],
        Some(_) => vec![
            Kind::Sled,
            Kind::Postgres {
                s3: params.s3,
                nodes: 1,
            },
        ],
        None if params.s3 => {
            eprintln!("--s3 keeps photos in S3 beside a PostgreSQL database: give --database too");
            std::process::exit(2);
        }
        None => vec![Kind::Sled],
    };
    let cluster = match params.database.as_deref() {
        // The free port the cluster was given may be taken before PostgreSQL binds it (the
        // phones of a large run use many ports): tried three times.
        Some(OWN_CLUSTER) => (0..3)
            .find_map(|_| tests::postgres::Cluster::start().ok())
            .or_else(|| {
                let why = tests::postgres::Cluster::start().err().unwrap_or_default();
                eprintln!("--database own: no PostgreSQL cluster could start: {why}");
                std::process::exit(2);
            }),
        _ => None,
    };
    let params = &Params {
        database: match &cluster {
            Some(cluster) => Some(cluster.url()),
            None => params.database.clone(),
        },
        phones_dir: params.phones_dir.clone(),
        ..*params
    };
    let mut measured = Vec::new();
    for round in 0..params.rounds.max(1) {
        for &kind in &kinds {
            println!(
                "-- round {} of {}: {}",
                round + 1,
                params.rounds,
                kind.name()
            );
            measured.push(run_once(params, kind));
        }
    }
    drop(cluster);
    if kinds.len() > 1 || params.rounds > 1 {
        compare(&measured, &kinds);
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => 0.0,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// The runs of each store side by side: medians, and PostgreSQL's throughput as a share of
/// sled's (the same work, so the inverse ratio of the merged-and-converged times).
fn compare(measured: &[Measured], kinds: &[Kind]) {
    println!(
        "side by side (median of {} runs each; CPU in the merged-and-converged phases)",
        measured.len() / kinds.len()
    );
    println!("  store                        merged s   server CPU s   database CPU s   photo store CPU s   server MiB   database MiB   photo store MiB   503s");
    let mut merged = Vec::new();
    for &kind in kinds {
        let runs: Vec<&Measured> = measured.iter().filter(|m| m.kind == kind).collect();
        let of = |f: fn(&Measured) -> f64| median(runs.iter().map(|&m| f(m)).collect());
        let times: Vec<String> = runs.iter().map(|m| format!("{:.1}", m.merged_s)).collect();
        println!(
            "  {:<27} {:>9.1} {:>14.1} {:>16.1} {:>19.1} {:>12.0} {:>14.0} {:>17.0} {:>6}   (runs: {} s)",
            kind.name(),
            of(|m| m.merged_s),
            of(|m| m.server_cpu_s),
            of(|m| m.database_cpu_s),
            of(|m| m.blobs_cpu_s),
            of(|m| m.server_peak_mib),
            of(|m| m.database_peak_mib),
            of(|m| m.blobs_peak_mib),
            runs.iter().map(|m| m.refusals_503).sum::<u64>(),
            times.join(", ")
        );
        merged.push(of(|m| m.merged_s));
    }
    if let [first, other] = merged[..] {
        println!(
            "  throughput of {} = {:.2}× {}'s{}",
            kinds[1].name(),
            if other > 0.0 { first / other } else { 0.0 },
            kinds[0].name(),
            if kinds[0] == Kind::Sled {
                " (goal >= 0.7×)"
            } else {
                ""
            }
        );
    }
}

fn run_once(params: &Params, kind: Kind) -> Measured {
    let root = release_dir().join("../tmp");
    std::fs::create_dir_all(&root).expect("target/tmp");
    let run = tempfile::tempdir_in(&root).expect("run directory");
    let data_dir = run.path().join("server");
    let phones = phones_dir(run.path(), params.phones_dir.as_deref());
    let mut store = Vec::new();
    let mut database = None;
    let mut weed = None;
    let mut database_pid = None;
    if let (Kind::Postgres { s3, .. }, Some(admin)) = (kind, &params.database) {
        let db = Database::create(admin);
        store.extend(["--database".to_owned(), db.url()]);
        database_pid = postmaster_pid(admin);
        if database_pid.is_none() {
            println!("  (the PostgreSQL server is not on this machine or its pid is unreadable: its CPU is not counted)");
        }
        database = Some(db);
        if s3 {
            let binary = crate::weed::Weed::binary().unwrap_or_else(|why| {
                eprintln!("--s3 needs SeaweedFS: {why}");
                std::process::exit(2);
            });
            let started = crate::weed::Weed::start(&binary);
            store.extend(["--blobs".to_owned(), started.url("bench")]);
            weed = Some(started);
        }
    }
    let blobs_pid = weed.as_ref().and_then(|_| weed_pid());
    let wal_before = params
        .database
        .as_deref()
        .filter(|_| database.is_some())
        .and_then(wal_bytes);
    // The nodes one after the other: the first seeds the demo, the next find it seeded. Each
    // keeps its own data directory (logs, the backup socket); with several nodes the store
    // and the photos are shared.
    let mut servers = Vec::new();
    let mut addrs = Vec::new();
    for n in 0..kind.nodes() {
        let addr = free_addr();
        let dir = match n {
            0 => data_dir.clone(),
            n => run.path().join(format!("server-{}", n + 1)),
        };
        servers.push(start(&dir, &addr, &store, params.test_passwords));
        addrs.push(format!("http://{addr}"));
    }
    let pids: Vec<u32> = servers.iter().map(|s| s.child.id()).collect();
    let database_peak = database_pid.map(PeakSampler::start);
    let started = Instant::now();
    let mut fieldsim = Command::new(release_dir().join("fieldsim"));
    let pid_list: Vec<String> = pids.iter().map(u32::to_string).collect();
    fieldsim
        .args(["--server", &addrs.join(",")])
        .args(["--spread", "phone"])
        .args(["--devices", &params.devices.to_string()])
        .args(["--days", &params.days.to_string()])
        .args(["--seed", &params.seed.to_string()])
        .args(["--concurrency", &params.concurrency.to_string()])
        .args(["--recorder", "chunk", "--json"])
        .args(["--server-pid", &pid_list.join(",")])
        .arg("--data-dir")
        .arg(&phones)
        .stderr(Stdio::inherit());
    if let Some(pid) = database_pid {
        fieldsim.args(["--database-pid", &pid.to_string()]);
    }
    if let Some(pid) = blobs_pid {
        fieldsim.args(["--blobs-pid", &pid.to_string()]);
    }
    let output = fieldsim.output().expect("run fieldsim");
    let wall = started.elapsed();
    let nodes: Vec<Node> = pids
        .iter()
        .zip(&addrs)
        .map(|(&pid, addr)| Node::read(pid, addr))
        .collect();
    let peak_kb: Option<u64> = nodes.iter().map(|n| n.peak_kb).sum();
    let rss_kb: Option<u64> = nodes.iter().map(|n| n.rss_kb).sum();
    let database_peak_kb = database_peak.map(PeakSampler::stop);
    let blobs_peak_kb = blobs_pid.and_then(|pid| status_kb(pid, "VmHWM"));
    drop(servers);
    drop(weed);
    let _ = std::fs::remove_dir_all(&phones);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Ok(out) = serde_json::from_str::<Value>(stdout.trim()) else {
        eprintln!("fieldsim failed ({}): {stdout}", output.status);
        drop(database);
        drop(run);
        std::process::exit(1);
    };

    println!(
        "server bench: fieldsim {} chiefs' phones (+{} office/department) × {} days against {} release {} ({}, 2 workers each) on {}, seed {}",
        out["devices"],
        out["staff_devices"],
        out["days"],
        nodes.len(),
        if nodes.len() == 1 { "server" } else { "servers" },
        if params.test_passwords {
            "bench-server: passwords at the tests' argon2 cost"
        } else {
            "chiefsync: production argon2 cost"
        },
        kind.name(),
        out["seed"]
    );
    println!(
        "  load average  {} at the end (the machine's, all users)",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!(
        "  chiefs        {} district, {} subdistrict, {} village level ({} villages, {} village stretches added)",
        out["levels"]["district"],
        out["levels"]["subdistrict"],
        out["levels"]["village"],
        out["places_created"]["villages"],
        out["places_created"]["stretches"]
    );
    let received = &out["docs_received_by_level"];
    println!(
        "  fan-out       documents received by district chiefs {}, subdistrict {}, village {} (first and final sync)",
        received["district"], received["subdistrict"], received["village"]
    );
    // What reaches one phone in a week, by level: the first sync of a new phone and every
    // sync after it (sync-core `authz::delivered`).
    println!("  delivered per phone per week (goal <= 300 documents and <= 5 MB for every level)");
    println!("    level                phones   documents        MB");
    for (kind, name) in [
        ("village", "village chiefs"),
        ("subdistrict", "subdistrict chiefs"),
        ("district", "district chiefs"),
        ("supervisor", "offices"),
        ("handler", "departments"),
    ] {
        let at = &out["delivered_by_level"][kind];
        if at.is_null() {
            continue;
        }
        println!(
            "    {:<20} {:>6} {:>11.1} {:>9.2}",
            name,
            at["phones"],
            f(&at["docs_per_phone_week"]),
            f(&at["bytes_per_phone_week"]) / 1e6
        );
    }
    // The offices' and departments' figures by step of the loop (all phones of the kind).
    for (step, at) in out["delivered_by_step"].as_object().into_iter().flatten() {
        println!(
            "      {:<34} {:>7} documents {:>9.2} MB",
            step,
            at["docs"],
            f(&at["bytes"]) / 1e6
        );
    }
    println!(
        "  phase           wall s   server CPU s   database CPU s   photo store CPU s   simulator CPU s"
    );
    // The merged-and-converged phases (fieldsim's MERGE_PHASES): CPU summed over them.
    let merge_phases = ["chiefs_sync", "staff_sync", "final_sync", "check"];
    let (mut server_cpu, mut database_cpu, mut blobs_cpu) = (0.0, 0.0, 0.0);
    for phase in out["phases"].as_array().into_iter().flatten() {
        let name = phase["phase"].as_str().unwrap_or("");
        let cpu_or_dash = |v: &Value| {
            if v.is_null() {
                "-".to_owned()
            } else {
                format!("{:.1}", f(v))
            }
        };
        println!(
            "  {:<14} {:>7.1} {:>14.1} {:>16} {:>19} {:>17.1}",
            name,
            f(&phase["wall_s"]),
            f(&phase["server_cpu_s"]),
            cpu_or_dash(&phase["database_cpu_s"]),
            cpu_or_dash(&phase["blobs_cpu_s"]),
            f(&phase["simulator_cpu_s"]),
        );
        if merge_phases.contains(&name) {
            server_cpu += f(&phase["server_cpu_s"]);
            database_cpu += f(&phase["database_cpu_s"]);
            blobs_cpu += f(&phase["blobs_cpu_s"]);
        }
    }
    println!(
        "  merged and converged {:.1} s (goal < 60 s): every sync and the comparison of every phone with the server",
        f(&out["merged_and_converged_s"])
    );
    println!(
        "  documents     {} on the server ({} patrols, {} problems); {} changes pushed; {} documents delivered to phones",
        out["documents"], out["patrols"], out["issues"], out["changes"], out["docs_received"]
    );
    println!(
        "  wire          {:.1} MB up, {:.1} MB down (photos {:.1} MB up)",
        f(&out["bytes_up"]) / 1e6,
        f(&out["bytes_down"]) / 1e6,
        f(&out["photos"]["bytes_up"]) / 1e6
    );
    println!(
        "  chiefs' sync  latency p50 {:.0} ms, p99 {:.0} ms; round trips median {}, max {}; {} answers lost and retried",
        f(&out["sync_latency_ms"]["p50"]),
        f(&out["sync_latency_ms"]["p99"]),
        out["round_trips"]["median"],
        out["round_trips"]["max"],
        out["interrupted"]
    );
    println!(
        "  lost          {} (refusals {}, photos waiting {})",
        out["lost"], out["refusals"], out["photos"]["waiting_at_end"]
    );
    // Each difference: which phone, which document, the server's state of it, and the heads
    // the phone holds against those the server says it receives (`null`: none).
    for line in out["lost_docs"].as_array().into_iter().flatten() {
        let server = &line["server"];
        println!(
            "                {} {} ({}) on the phone of {} {}: status {}, assignee {}, escalations {}, reporter {}; holds {}, receives {}",
            line["what"].as_str().unwrap_or(""),
            line["doc"].as_str().unwrap_or(""),
            server["kind"].as_str().unwrap_or("?"),
            line["role"].as_str().unwrap_or(""),
            line["user"].as_str().unwrap_or(""),
            server["status"],
            server["assignee"],
            server["escalations"],
            server["reporter"],
            line["held"],
            line["expected"],
        );
    }
    println!(
        "  server memory peak {:.0} MiB (VmHWM{}), {:.0} MiB at the end",
        peak_kb.unwrap_or(0) as f64 / 1024.0,
        if nodes.len() > 1 {
            ", the nodes' summed"
        } else {
            ""
        },
        rss_kb.unwrap_or(0) as f64 / 1024.0
    );
    for (n, node) in nodes.iter().enumerate() {
        println!(
            "  node {}        {} syncs; CPU {:.1} s over the whole run; peak {:.0} MiB; answers 5xx {}, of which 503 {} (shed {}); 429 {}",
            n + 1,
            out["syncs_by_node"][n],
            node.cpu_s,
            node.peak_kb.unwrap_or(0) as f64 / 1024.0,
            node.status_5xx,
            node.status_503,
            node.shed,
            node.status_429
        );
    }
    if let Some(kb) = database_peak_kb {
        println!(
            "  database memory peak {:.0} MiB (PostgreSQL's processes, shared pages counted once: Pss sampled each second)",
            kb as f64 / 1024.0
        );
    }
    if let Some(kb) = blobs_peak_kb {
        println!(
            "  photo store memory peak {:.0} MiB (SeaweedFS, VmHWM)",
            kb as f64 / 1024.0
        );
    }
    match &database {
        Some(db) => database_report(db, wal_before, params.devices),
        None => println!(
            "  stored        sled {:.1} MB, photo files {:.1} MB on disk",
            disk_bytes(&data_dir.join("db")) as f64 / 1e6,
            disk_bytes(&data_dir.join("blobs")) as f64 / 1e6
        ),
    }
    drop(database);
    drop(run);
    println!("  wall time     {:.1} s in all", wall.as_secs_f64());
    if out["lost"].as_u64() != Some(0) {
        std::process::exit(1);
    }
    Measured {
        kind,
        merged_s: f(&out["merged_and_converged_s"]),
        server_cpu_s: server_cpu,
        database_cpu_s: database_cpu,
        blobs_cpu_s: blobs_cpu,
        server_peak_mib: peak_kb.unwrap_or(0) as f64 / 1024.0,
        refusals_503: nodes.iter().map(|n| n.status_503).sum(),
        database_peak_mib: database_peak_kb.unwrap_or(0) as f64 / 1024.0,
        blobs_peak_mib: blobs_peak_kb.unwrap_or(0) as f64 / 1024.0,
    }
}
