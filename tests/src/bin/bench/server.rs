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
        .args(["-p", "tests", "--bin", "fieldsim"])
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

fn start(data_dir: &Path, addr: &str) -> Server {
    let log = std::fs::File::create(data_dir.with_extension("log")).expect("server log");
    let child = Command::new(release_dir().join("chiefsync"))
        .args(["--demo", "--addr", addr])
        .arg("--data-dir")
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start chiefsync");
    let server = Server { child };
    let started = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
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

fn phones_dir(run: &Path) -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
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
}

pub fn run(params: &Params) {
    build();
    let root = release_dir().join("../tmp");
    std::fs::create_dir_all(&root).expect("target/tmp");
    let run = tempfile::tempdir_in(&root).expect("run directory");
    let data_dir = run.path().join("server");
    let phones = phones_dir(run.path());
    let addr = free_addr();
    let server = start(&data_dir, &addr);
    let pid = server.child.id();
    let started = Instant::now();
    let output = Command::new(release_dir().join("fieldsim"))
        .args(["--server", &format!("http://{addr}")])
        .args(["--devices", &params.devices.to_string()])
        .args(["--days", &params.days.to_string()])
        .args(["--seed", &params.seed.to_string()])
        .args(["--concurrency", &params.concurrency.to_string()])
        .args(["--recorder", "chunk", "--json"])
        .args(["--server-pid", &pid.to_string()])
        .arg("--data-dir")
        .arg(&phones)
        .stderr(Stdio::inherit())
        .output()
        .expect("run fieldsim");
    let wall = started.elapsed();
    let peak_kb = status_kb(pid, "VmHWM");
    let rss_kb = status_kb(pid, "VmRSS");
    drop(server);
    let _ = std::fs::remove_dir_all(&phones);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let Ok(out) = serde_json::from_str::<Value>(stdout.trim()) else {
        eprintln!("fieldsim failed ({}): {stdout}", output.status);
        drop(run);
        std::process::exit(1);
    };
    drop(run);

    println!(
        "server bench: fieldsim {} chiefs' phones (+{} office/department) × {} days against a release server (2 workers), seed {}",
        out["devices"], out["staff_devices"], out["days"], out["seed"]
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
    println!("  phase           wall s   server CPU s   simulator CPU s");
    for phase in out["phases"].as_array().into_iter().flatten() {
        println!(
            "  {:<14} {:>7.1} {:>14.1} {:>17.1}",
            phase["phase"].as_str().unwrap_or(""),
            f(&phase["wall_s"]),
            f(&phase["server_cpu_s"]),
            f(&phase["simulator_cpu_s"]),
        );
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
    println!(
        "  server memory peak {:.0} MiB (VmHWM), {:.0} MiB at the end",
        peak_kb.unwrap_or(0) as f64 / 1024.0,
        rss_kb.unwrap_or(0) as f64 / 1024.0
    );
    println!("  wall time     {:.1} s in all", wall.as_secs_f64());
    if out["lost"].as_u64() != Some(0) {
        std::process::exit(1);
    }
}
