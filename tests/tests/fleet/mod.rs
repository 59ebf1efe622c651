//! What the load test and the sync storm test share: the server in its own process (so its
//! memory can be read from `/proc`), a fleet of village chiefs created through the admin API,
//! each with a phone (mobile-ffi's `PhoneApp` on a real device store on sled) that retries by
//! sync-core's policy and counts what it retried, the chief's work between syncs, and the
//! figures (percentiles, `/metrics`, RSS).
// Each test binary that includes this module uses only part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mobile_ffi::RetryPolicy;
use rand::rngs::StdRng;
use rand::Rng;
use serde_json::json;
use sync_core::doc::DocKind;
use sync_core::model::{Jurisdiction, Level, Role};
use tests::phone::{agent, get, login, post_json, Phone};

/// Device time of the work (the chiefs' clocks; the server stamps its own receive time).
pub const NOW: i64 = 1_764_400_000_000;
/// The password of every chief of the fleet.
const PASSWORD: &str = "fleet-passphrase";

/// The load server (`tests/src/bin/load-server.rs`) in its own process, killed when dropped so
/// a failing test never leaves it behind.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    pub base: String,
}

impl ServerProcess {
    /// Starts the server over `data` with extra `chiefsync` flags and waits until it listens.
    pub fn start(data: &Path, flags: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_load-server"))
            .args(["--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(flags)
            // The phones' 503s are the point of the storm; per-request logs would only cost.
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the load server");
        let stdout = child.stdout.take().expect("stdout");
        let mut server = ServerProcess {
            child,
            base: String::new(),
        };
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the server's first line");
        let addr = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("the server did not start: {line:?}"))
            .to_owned();
        server.base = format!("http://{addr}");
        server
    }

    /// Whether the process still runs (it did not fall over).
    pub fn alive(&mut self) -> bool {
        self.child.try_wait().expect("poll the server").is_none()
    }

    /// Resident memory now and at its peak (`VmRSS`, `VmHWM` of `/proc/<pid>/status`), KiB,
    /// and the threads it runs now.
    pub fn memory(&self) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read the server's /proc status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("{name} in /proc status"))
        };
        Memory {
            rss_kib: field("VmRSS:"),
            hwm_kib: field("VmHWM:"),
            threads: field("Threads:"),
        }
    }

    /// The sum of one metric in the server's `/metrics` over the label sets that contain
    /// `labels` (e.g. `route="/api/v1/sync"`; empty: all of them).
    pub fn metric(&self, name: &str, labels: &str) -> f64 {
        let text = get(&self.base, "", "/metrics");
        assert_eq!(text.status, 200);
        String::from_utf8_lossy(&text.bytes)
            .lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter(|l| l.contains(labels))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Mean time the server spent on one request of `route` (successful or not), and how many.
    pub fn mean_handling(&self, route: &str) -> (Duration, f64) {
        let labels = format!("route=\"{route}\"");
        let sum = self.metric("chiefsync_http_request_duration_seconds_sum", &labels);
        let count = self.metric("chiefsync_http_request_duration_seconds_count", &labels);
        (Duration::from_secs_f64(sum / count.max(1.0)), count)
    }

    /// Stops the server at once (SIGKILL: nothing it acknowledged may depend on a clean exit).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub threads: u64,
}

/// Creates `n` village chiefs (`{prefix}-{i}`) spread over the demo's assets, each
/// responsible for one asset in its village, as most chiefs in the district are.
pub fn create_chiefs(base: &str, prefix: &str, n: usize) -> Vec<String> {
    let admin = login(base, server::demo::ADMIN, "demo", "fleet-admin");
    let token = admin["access_token"]
        .as_str()
        .expect("admin token")
        .to_owned();
    let facts = server::demo::facts();
    let mut assets = facts.assets.clone();
    assets.sort_by(|a, b| a.id.cmp(&b.id));
    let created: Vec<String> = (0..n)
        .map(|i| {
            let asset = &assets[i % assets.len()];
            let division = [Level::Village, Level::Subdistrict]
                .iter()
                .find_map(|level| {
                    facts
                        .divisions
                        .iter()
                        .find(|d| d.level() == *level && d.code.contains(&asset.division))
                })
                .expect("a division containing the asset");
            let role = Role::Chief {
                system: asset.system,
                level: division.level(),
                jurisdiction: Jurisdiction {
                    division: division.code.clone(),
                    assets: vec![asset.id.clone()],
                },
            };
            let username = format!("{prefix}-{i:04}");
            let reply = post_json(
                base,
                &token,
                "/api/v1/admin/users",
                &json!({
                    "username": username,
                    "display_name": format!("{}{}{}号", division.name, asset.system.chief_title(), i + 1),
                    "password": PASSWORD,
                    "role": role,
                }),
            );
            assert_eq!(reply.status, 201, "create {username}: {}", reply.json());
            username
        })
        .collect();
    created
}

/// Signs `username` in from a new phone whose data is in `dir`, sending requests again by
/// `retry`.
pub fn sign_in(base: &str, username: &str, dir: &Path, retry: RetryPolicy) -> Phone {
    let device_id = format!("{username}-phone");
    Phone::sign_in(base, username, PASSWORD, &device_id, dir, retry)
}

/// One piece of a chief's work on the phone, offline until the next sync: a short patrol
/// (`points` 1 Hz fixes), a problem report, or a better description of a problem they reported.
pub fn work(phone: &Phone, rng: &mut StdRng, n: usize, points: usize) {
    let Role::Chief { jurisdiction, .. } = &phone.user.role else {
        unreachable!("the fleet is chiefs")
    };
    let asset = &jurisdiction.assets[0];
    let at = NOW + n as i64 * 60_000;
    match n % 3 {
        1 => {
            phone.record_patrol(asset, at, points, rng.random());
        }
        2 => {
            phone.report(asset, at, &format!("{} 第{n}次发现", phone.device_id));
        }
        _ => {
            let own: Vec<String> = phone
                .store()
                .doc_ids(sync_core::store::DocKind::Issue)
                .expect("issue ids")
                .into_iter()
                .filter(|id| {
                    phone
                        .issue(id)
                        .expect("issue")
                        .view()
                        .expect("view")
                        .reporter
                        == phone.user.id
                })
                .collect();
            if own.is_empty() {
                phone.report(asset, at, &format!("{} 第{n}次发现", phone.device_id));
                return;
            }
            let id = &own[rng.random_range(0..own.len())];
            let mut issue = phone.issue(id).expect("own issue");
            issue
                .set_description(&format!("{} 补充说明 {n}", phone.device_id))
                .expect("edit the description");
            phone.save(&mut issue, DocKind::Issue, id);
        }
    }
}

/// The `q`-quantile (0..=1) of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `f` on each item with `threads` threads (setup work: accounts, sign-ins, stores).
pub fn parallel<T: Send, R: Send>(
    items: Vec<T>,
    threads: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    let slots: Vec<std::sync::Mutex<Option<T>>> = items
        .into_iter()
        .map(|t| std::sync::Mutex::new(Some(t)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Option<R>>> =
        slots.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(slot) = slots.get(i) else { break };
                let item = slot.lock().unwrap().take().expect("each item once");
                *results[i].lock().unwrap() = Some(f(item));
            });
        }
    });
    results
        .into_iter()
        .map(|r| r.into_inner().unwrap().expect("every item ran"))
        .collect()
}

/// Sanity check that the server answers ordinary requests (it stayed up).
pub fn healthy(base: &str) -> bool {
    agent()
        .get(format!("{base}/healthz"))
        .call()
        .map(|r| r.status() == 200)
        .unwrap_or(false)
}
