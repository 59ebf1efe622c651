//! Crash test of the server: 20 phones keep editing and syncing while the server is killed
//! with SIGKILL 50 times at random moments and started again on the same data directory.
//!
//! Afterwards sled opens cleanly, every change the server acknowledged (a sync that returned)
//! is in its store before any phone syncs again, and after a final sync every phone holds
//! exactly the server's version of every document. The kill delays come from a seeded
//! generator; the seed is printed and can be replayed with `SERVER_CRASH_SEED=<seed>`.
#![cfg(unix)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use automerge::{AutoCommit, ChangeHash};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use server::demo::{CHIEF, CHIEF_2, FIELD_CHIEF, FOREST_CHIEF};
use server::storage::SledStore;
use sync_core::doc::DocKind;
use sync_core::model::Role;
use tests::phone::Phone;

const KILLS: usize = 50;
const DEVICES_PER_CHIEF: usize = 5;
const NOW: i64 = 1_764_400_000_000;

fn start(data: &Path, addr: &str) -> tests::crash::KilledServer {
    tests::crash::start(env!("CARGO_BIN_EXE_crash-server"), data, addr)
}

/// SIGKILL, then reap.
fn kill(server: tests::crash::KilledServer) {
    drop(server);
}

/// One edit a chief makes on the phone: a patrol, a problem report, or a better description of
/// a problem they reported (possibly from another of their devices, concurrently).
fn edit(phone: &Phone, rng: &mut StdRng, n: usize) {
    let Role::Chief { jurisdiction, .. } = &phone.user.role else {
        unreachable!("only chiefs patrol here")
    };
    let asset = &jurisdiction.assets[0];
    let at = NOW + n as i64 * 60_000;
    match rng.random_range(0..3) {
        0 => {
            phone.record_patrol(asset, at, 30, rng.random());
        }
        1 => {
            phone.report(asset, at, &format!("{} 第{n}次发现", phone.device_id));
        }
        _ => {
            let ids = phone
                .store()
                .doc_ids(sync_core::store::DocKind::Issue)
                .unwrap();
            let own: Vec<String> = ids
                .into_iter()
                .filter(|id| phone.issue(id).unwrap().view().unwrap().reporter == phone.user.id)
                .collect();
            if let Some(id) = own.get(rng.random_range(0..own.len().max(1))) {
                let mut issue = phone.issue(id).unwrap();
                issue
                    .set_description(&format!("{} 补充 {n}", phone.device_id))
                    .unwrap();
                phone.save(&mut issue, DocKind::Issue, id);
            }
        }
    }
}

/// What sled holds after the kills (opened with no server running): every document with the
/// heads of every document, checking each one loads.
fn stored_heads(data: &Path) -> BTreeMap<String, (AutoCommit, Vec<String>)> {
    let store = SledStore::open(&data.join("db")).expect("sled opens cleanly after the kills");
    tests::crash::stored_heads(&store)
}

#[test]
fn acknowledged_changes_survive_fifty_server_kills_and_every_phone_converges() {
    let seed = tests::crash::seed("SERVER_CRASH_SEED");
    let data = tempfile::tempdir().unwrap();
    let addr = tests::crash::free_addr();
    let base = format!("http://{addr}");
    let mut server = start(data.path(), &addr);

    let stores: Vec<_> = (0..4 * DEVICES_PER_CHIEF)
        .map(|_| tempfile::tempdir().unwrap())
        .collect();
    let phones: Vec<Phone> = [CHIEF, CHIEF_2, FOREST_CHIEF, FIELD_CHIEF]
        .iter()
        .flat_map(|user| (0..DEVICES_PER_CHIEF).map(move |d| (*user, d)))
        .zip(&stores)
        .map(|((user, d), store)| Phone::login(&base, user, &format!("{user}-{d}"), store.path()))
        .collect();

    // Every change a phone had when a sync of it returned: the server acknowledged it.
    let acknowledged: Mutex<BTreeMap<String, BTreeSet<String>>> = Mutex::new(BTreeMap::new());
    let stop = AtomicBool::new(false);
    let (synced, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let started = Instant::now();
    let server = std::thread::scope(|s| {
        for (i, phone) in phones.iter().enumerate() {
            let (acknowledged, stop, synced, failed) = (&acknowledged, &stop, &synced, &failed);
            s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(seed ^ (i as u64 + 1));
                let mut n = 0;
                let mut pending = false;
                while !stop.load(Ordering::Relaxed) {
                    if !pending {
                        n += 1;
                        edit(phone, &mut rng, n);
                    }
                    let before = phone.heads();
                    match phone.sync(NOW) {
                        Ok(report) => {
                            assert_eq!(report.refused, 0, "{}: {report:?}", phone.device_id);
                            let mut acked = acknowledged.lock().unwrap();
                            for (id, heads) in before {
                                acked.entry(id).or_default().extend(heads);
                            }
                            pending = false;
                            synced.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            pending = true;
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    std::thread::sleep(Duration::from_millis(rng.random_range(5..40)));
                }
            });
        }

        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..KILLS {
            std::thread::sleep(Duration::from_millis(rng.random_range(80..500)));
            kill(server);
            server = start(data.path(), &addr);
        }
        stop.store(true, Ordering::Relaxed);
        server
    });
    kill(server);
    let acknowledged = acknowledged.into_inner().unwrap();
    println!(
        "{KILLS} kills in {:.1} s: {} syncs returned, {} cut by a kill, {} documents acknowledged",
        started.elapsed().as_secs_f64(),
        synced.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
        acknowledged.len()
    );
    assert!(
        synced.load(Ordering::Relaxed) > 100,
        "the phones kept syncing"
    );
    assert!(
        failed.load(Ordering::Relaxed) > 0,
        "some syncs were cut by a kill"
    );

    // Before any phone syncs again: everything acknowledged is on the server.
    let mut stored = stored_heads(data.path());
    for (id, heads) in &acknowledged {
        let (doc, _) = stored
            .get_mut(id)
            .unwrap_or_else(|| panic!("acknowledged document {id} is missing"));
        for head in heads {
            let hash: ChangeHash = head.parse().unwrap();
            assert!(
                doc.get_change_by_hash(&hash).is_some(),
                "acknowledged change {head} of {id} is missing"
            );
        }
    }

    // Every phone syncs twice more (the first may carry edits cut by the last kill); then
    // they all hold the server's version of everything in their scope.
    let server = start(data.path(), &addr);
    for _ in 0..2 {
        for phone in &phones {
            let report = phone.sync(NOW).unwrap();
            assert_eq!(report.refused, 0, "{report:?}");
        }
    }
    kill(server);
    let mut stored = stored_heads(data.path());
    let records = SledStore::open(&data.path().join("db")).expect("sled opens again");
    for phone in &phones {
        for (id, heads) in phone.heads() {
            if Some(&heads) != stored.get(&id).map(|(_, h)| h) {
                panic!("{}", apart(phone, &id, stored.get_mut(&id), &records));
            }
        }
    }
}

/// What a phone and the server hold apart of one document, with what each side recorded of
/// the phone's syncs: the failure message that says which side lacks what.
fn apart(
    phone: &Phone,
    id: &str,
    stored: Option<&mut (AutoCommit, Vec<String>)>,
    records: &SledStore,
) -> String {
    use sync_core::hub::{DeviceLedger, DocumentStore};
    let mut held = phone
        .client()
        .load(id)
        .unwrap()
        .expect("the phone holds it");
    let Some((server, _)) = stored else {
        return format!(
            "{}: {id} is on the phone, not on the server",
            phone.device_id
        );
    };
    let describe = |doc: &mut AutoCommit, other: &mut AutoCommit| -> Vec<String> {
        doc.get_changes(&[])
            .iter()
            .filter(|c| other.get_change_by_hash(&c.hash()).is_none())
            .map(|c| format!("{} by {} (deps {:?})", c.hash(), c.actor_id(), c.deps()))
            .collect()
    };
    let only_phone = describe(&mut held, server);
    let only_server = describe(server, &mut held);
    let server_heads: Vec<String> = phone
        .store()
        .sync_state(id, "server")
        .unwrap()
        .unwrap_or_default()
        .chunks_exact(32)
        .map(|h| ChangeHash::try_from(h).unwrap().to_string())
        .collect();
    format!(
        "{} and {id} differ\n only on the phone: {only_phone:#?}\n only on the server: \
         {only_server:#?}\n phone: cursor {}, server heads {server_heads:?}, dirty {}\n \
         server: document at feed position {:?} (head {}), device record {:?}",
        phone.device_id,
        phone.client().cursor().unwrap(),
        phone.client().dirty().unwrap().contains(id),
        records.document_seq(id).unwrap(),
        records.feed_head().unwrap(),
        records
            .device_doc(&format!("{}/{}", phone.user.id, phone.device_id), id)
            .unwrap(),
    )
}
