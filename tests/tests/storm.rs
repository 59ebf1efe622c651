//! Sync storm: a thousand chiefs' phones come back into signal at the same instant, each with a
//! little offline work (a patrol and a problem report), against one server started with a low
//! `--max-in-flight`. The server must shed what it cannot serve with 503 + `Retry-After`
//! (counted in `/metrics`) instead of queueing or falling over, and the phones, waiting by
//! sync-core's retry policy, must all end synced: no phone gives up, every document they
//! recorded is in the server's store, and the server still answers.
//!
//! `CHIEFSYNC_STORM_DEVICES` and `CHIEFSYNC_STORM_LIMIT` (default 8) change the storm. A debug
//! build (`cargo test`) storms with 300 phones, since a thousand take the debug server and
//! phones about a minute and a half on two cores; `cargo test --release` storms with 1000.
//! Run with `-- --nocapture` to see the figures.
#![cfg(target_os = "linux")]

mod fleet;

use std::collections::BTreeSet;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use server::storage::SledStore;
use sync_core::client::retry::RetryPolicy;
use sync_core::hub::DocumentStore;
use sync_core::store::DocKind;

use fleet::{ms, quantile, ServerProcess, NOW};

/// The phone's policy, with the attempts the app's next scheduled syncs would add: a storm
/// must drain however long it takes, and no phone may give up for good.
const PATIENT: RetryPolicy = RetryPolicy {
    max_attempts: 12,
    cap: Duration::from_secs(30),
    ..RetryPolicy::PHONE
};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn a_thousand_phones_coming_back_at_once_all_sync_while_the_server_sheds_load() {
    let default_devices = if cfg!(debug_assertions) { 300 } else { 1000 };
    let devices = env_or("CHIEFSYNC_STORM_DEVICES", default_devices);
    let limit = env_or("CHIEFSYNC_STORM_LIMIT", 8);
    let data = tempfile::tempdir().unwrap();
    let mut server = ServerProcess::start(data.path(), &["--max-in-flight", &limit.to_string()]);
    let base = server.base.clone();

    let setup = Instant::now();
    let usernames = fleet::create_chiefs(&base, "storm", devices);
    let stores: Vec<_> = (0..devices).map(|_| tempfile::tempdir().unwrap()).collect();
    let phones = fleet::parallel(
        usernames.iter().zip(&stores).enumerate().collect(),
        4,
        |(i, (username, dir))| {
            let phone = fleet::sign_in(&base, username, dir.path(), PATIENT);
            let mut rng = StdRng::seed_from_u64(i as u64);
            // Offline work since the last signal: a short patrol and a problem report.
            fleet::work(&phone, &mut rng, 1, 60);
            fleet::work(&phone, &mut rng, 2, 0);
            phone
        },
    );
    let recorded: BTreeSet<String> = phones
        .iter()
        .flat_map(|p| p.client().dirty().unwrap())
        .collect();
    assert_eq!(recorded.len(), 2 * devices);
    let before = server.memory();
    println!(
        "storm: {devices} phones with {} unsent documents ready in {:.1} s; server RSS {} MiB",
        recorded.len(),
        setup.elapsed().as_secs_f64(),
        before.rss_kib / 1024
    );

    // Everyone at once: each phone syncs as the app does, waiting by the phone's policy.
    let barrier = Barrier::new(devices);
    let outcomes = Mutex::new(Vec::with_capacity(devices));
    let started = Instant::now();
    std::thread::scope(|s| {
        for phone in &phones {
            let (barrier, outcomes) = (&barrier, &outcomes);
            std::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn_scoped(s, move || {
                    let signed_in = phone.traffic();
                    barrier.wait();
                    let t = Instant::now();
                    let result = phone.sync(NOW).map_err(|e| e.to_string());
                    let took = t.elapsed();
                    let traffic = phone.traffic().since(&signed_in);
                    outcomes.lock().unwrap().push((
                        result,
                        took,
                        traffic.shed,
                        traffic.cut,
                        Duration::from_millis(traffic.waited_ms),
                    ));
                })
                .expect("spawn a phone");
        }
    });
    let storm = started.elapsed();
    let outcomes = outcomes.into_inner().unwrap();
    let during = server.memory();

    let errors: Vec<&String> = outcomes
        .iter()
        .filter_map(|(r, ..)| r.as_ref().err())
        .collect();
    // Every 503 any phone saw since it opened (sign-in included), to set against /metrics.
    let shed_seen: u64 = phones.iter().map(|p| p.traffic().shed).sum();
    let waited: Duration = outcomes.iter().map(|o| o.4).sum();
    let cut: u64 = outcomes.iter().map(|o| o.3).sum();
    let shed_phones = outcomes.iter().filter(|o| o.2 > 0).count();
    let mut times: Vec<Duration> = outcomes.iter().map(|o| o.1).collect();
    times.sort();
    let shed_counted = server.metric("chiefsync_load_shed_total", "");
    println!(
        "storm: {devices} phones synced in {:.1} s ({:.0} syncs/s); per phone p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        storm.as_secs_f64(),
        devices as f64 / storm.as_secs_f64(),
        ms(quantile(&times, 0.5)),
        ms(quantile(&times, 0.99)),
        ms(quantile(&times, 1.0)),
    );
    println!(
        "storm: limit {limit} in flight; 503 + Retry-After: {shed_seen} seen by {shed_phones} phones, {shed_counted} counted by the server; {cut} cut connections retried; {:.0} s waited before retries in all; {} errors",
        waited.as_secs_f64(),
        errors.len()
    );
    let (handling, served) = server.mean_handling("/api/v1/sync");
    println!(
        "storm: the server served {served} syncs, {:.1} ms each on average",
        ms(handling)
    );
    println!(
        "storm: server RSS {} MiB before, {} MiB after, peak {} MiB",
        before.rss_kib / 1024,
        during.rss_kib / 1024,
        during.hwm_kib / 1024
    );

    assert!(errors.is_empty(), "phones gave up: {errors:?}");
    assert!(server.alive(), "the server stayed up");
    assert!(fleet::healthy(&base), "the server still answers");
    assert!(
        shed_counted > 0.0,
        "with {limit} in flight and {devices} phones at once, the server sheds load"
    );
    assert_eq!(
        shed_counted as u64, shed_seen,
        "every 503 a phone saw is counted in /metrics"
    );
    for phone in &phones {
        assert!(
            phone.client().dirty().unwrap().is_empty(),
            "{} has unsent work",
            phone.device_id
        );
        assert!(phone.store().quarantined().unwrap().is_empty());
    }

    // Nothing the phones recorded is missing from the server's store.
    server.kill();
    let store = SledStore::open(&data.path().join("db")).expect("the server's store opens");
    let stored: BTreeSet<String> = store
        .all_documents()
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    let missing: Vec<_> = recorded.difference(&stored).collect();
    assert!(missing.is_empty(), "documents lost: {missing:?}");
    let patrols = phones
        .iter()
        .map(|p| p.store().doc_ids(DocKind::Patrol).unwrap().len())
        .sum::<usize>();
    assert!(
        patrols >= devices,
        "every phone kept at least its own patrol"
    );
}
