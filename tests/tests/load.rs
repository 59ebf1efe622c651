//! Bounded load test on loopback: 200 chiefs' phones work and sync at once against the real
//! server (its own process, default `--max-in-flight`) for a bounded time. Each phone, in a
//! loop, records a patrol, reports a problem or improves a description of one it reported,
//! syncs as the app does (mobile-ffi's `PhoneApp`: timeouts, retries with backoff and jitter by
//! the phone's policy), and pauses briefly.
//!
//! Prints throughput (syncs/s), p50/p99 sync latency as the chief sees it (retries included),
//! the 503s retried, and the server's memory. Asserts no errors (a sync that still fails after
//! its retries) and that the server's peak memory (`VmHWM`) stays within [`GROWTH_BOUND_MIB`]
//! of its memory after the warm-up, with at most [`thread_bound`] threads. Timings are printed,
//! never asserted.
//!
//! `CHIEFSYNC_LOAD_SECONDS` (default 15) and `CHIEFSYNC_LOAD_DEVICES` (default 200) change it:
//! `CHIEFSYNC_LOAD_SECONDS=60 cargo test --release -p tests --test load -- --nocapture`.
#![cfg(target_os = "linux")]

mod fleet;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sync_core::client::retry::RetryPolicy;

use fleet::{ms, quantile, ServerProcess, NOW};

/// How far the server's peak resident memory may rise above its resident memory after the
/// warm-up, MiB. What legitimately grows during a run is the data itself (a 60-second run
/// stores a few thousand small documents, a few MiB in sled and in the statistics cache) and
/// sled's page cache over it; what the limit in flight caps is 64 requests of a few KiB each.
/// A server that queued requests without bound or leaked per request would pass this within
/// seconds at these rates.
const GROWTH_BOUND_MIB: u64 = 200;

/// Most threads the server may run under this load: 32 on the 2-core reference machine. Its
/// work is CPU-bound, so it needs a few threads per core (actix's workers, two blocking threads
/// per worker) besides sled's and the jobs' own; a blocking pool that grew a thread per request
/// in flight (actix's default allows 512) would hold dozens, each with an allocator heap of its
/// own.
fn thread_bound() -> u64 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get() as u64);
    16 + 8 * cores
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[derive(Debug, Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: Vec<String>,
    shed: u64,
    cut: u64,
}

#[test]
fn two_hundred_phones_syncing_for_a_bounded_time_get_no_errors_and_bounded_memory() {
    let seconds = env_or("CHIEFSYNC_LOAD_SECONDS", 15);
    let devices = env_or("CHIEFSYNC_LOAD_DEVICES", 200) as usize;
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path(), &[]);
    let base = server.base.clone();

    let usernames = fleet::create_chiefs(&base, "load", devices);
    let stores: Vec<_> = (0..devices).map(|_| tempfile::tempdir().unwrap()).collect();
    let phones = fleet::parallel(usernames.iter().zip(&stores).collect(), 4, |(u, dir)| {
        fleet::sign_in(&base, u, dir.path(), RetryPolicy::PHONE)
    });
    let before = server.memory();

    let stop = AtomicBool::new(false);
    let tally = Mutex::new(Tally::default());
    let run = Duration::from_secs(seconds);
    let warm_up = run / 5;
    let started = Instant::now();
    let (warm, warm_syncs) = std::thread::scope(|s| {
        for (i, phone) in phones.iter().enumerate() {
            let (stop, tally) = (&stop, &tally);
            std::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn_scoped(s, move || {
                    let mut rng = StdRng::seed_from_u64(0x10ad ^ i as u64);
                    let signed_in = phone.traffic();
                    let mut mine = Tally::default();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        fleet::work(phone, &mut rng, n, 30);
                        let t = Instant::now();
                        match phone.sync(NOW) {
                            Ok(report) if report.refused == 0 => mine.latencies.push(t.elapsed()),
                            Ok(report) => mine.errors.push(format!("refused: {report:?}")),
                            Err(e) => mine.errors.push(e.to_string()),
                        }
                        std::thread::sleep(Duration::from_millis(rng.random_range(20..200)));
                    }
                    let traffic = phone.traffic().since(&signed_in);
                    mine.shed = traffic.shed;
                    mine.cut = traffic.cut;
                    let mut all = tally.lock().unwrap();
                    all.latencies.extend(mine.latencies);
                    all.errors.extend(mine.errors);
                    all.shed += mine.shed;
                    all.cut += mine.cut;
                })
                .expect("spawn a phone");
        }
        std::thread::sleep(warm_up);
        let warm = server.memory();
        let warm_syncs = server.mean_handling("/api/v1/sync").1;
        std::thread::sleep(run.saturating_sub(started.elapsed()));
        stop.store(true, Ordering::Relaxed);
        (warm, warm_syncs)
    });
    let elapsed = started.elapsed();
    let after = server.memory();
    let tally = tally.into_inner().unwrap();
    let mut latencies = tally.latencies;
    latencies.sort();
    let (handling, served) = server.mean_handling("/api/v1/sync");
    let shed_counted = server.metric("chiefsync_load_shed_total", "");

    println!(
        "load: {devices} phones for {:.1} s: {} syncs, {:.1} syncs/s; latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        elapsed.as_secs_f64(),
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        ms(quantile(&latencies, 0.5)),
        ms(quantile(&latencies, 0.99)),
        ms(quantile(&latencies, 1.0)),
    );
    println!(
        "load: errors {}; 503s retried {} ({} counted by the server); cut connections retried {}; server time per sync {:.1} ms over {served} requests ({warm_syncs} during the warm-up)",
        tally.errors.len(),
        tally.shed,
        shed_counted,
        tally.cut,
        ms(handling),
    );
    println!(
        "load: server RSS {} MiB after setup, {} MiB after the warm-up, {} MiB at the end; peak {} MiB (bound: warm-up + {GROWTH_BOUND_MIB} MiB); {} threads after the warm-up (bound {})",
        before.rss_kib / 1024,
        warm.rss_kib / 1024,
        after.rss_kib / 1024,
        after.hwm_kib / 1024,
        warm.threads,
        thread_bound(),
    );

    assert!(tally.errors.is_empty(), "errors: {:?}", tally.errors);
    assert!(!latencies.is_empty(), "the phones synced");
    assert!(
        after.hwm_kib <= warm.rss_kib + GROWTH_BOUND_MIB * 1024,
        "the server's memory grew beyond the bound"
    );
    assert!(
        warm.threads <= thread_bound(),
        "the server ran {} threads under load",
        warm.threads
    );
    assert!(fleet::healthy(&base), "the server still answers");
}
