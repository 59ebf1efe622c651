//! Crash test of the device store: a write the store acknowledged survives `kill -9`.
//!
//! `store-crash-writer` writes records into one store directory and prints each one it was told
//! is committed. It is killed with SIGKILL at a random moment, 50 times over; after every kill
//! the store is reopened here and every record ever reported committed must be present, intact
//! and stored once, and no stored value may fail its checksum. Most kills land while the writer
//! is writing; one in five lands anywhere from process start, including while sled recovers.
//!
//! The delays come from a seeded generator; the seed is printed and can be replayed with
//! `STORE_CRASH_SEED=<seed>`.
#![cfg(unix)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sync_core::store::{LocalStore, OutboxEntry, UploadState};

const RUNS: u64 = 50;
const SIGKILL: i32 = 9;
/// Must match the writer's spread of records over documents.
const DOCS: u64 = 5;

/// Mirrors `record` in the writer: the checker regenerates every record to compare bytes.
fn record(run: u64, n: u64) -> Vec<u8> {
    let len = 1 + (n * 37 + run * 11) % 400;
    let mut out = format!("R {run} {n} {len}\n").into_bytes();
    out.extend((0..len).map(|i| (run * 31 + n * 17 + i) as u8));
    out
}

fn doc_id(n: u64) -> String {
    format!("doc-{}", n % DOCS)
}

fn photo_sha(run: u64, n: u64) -> String {
    format!("{run:032x}{n:032x}")
}

/// SplitMix64: enough randomness for kill delays, and replayable from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

/// Everything the writer reported committed, over all runs so far.
#[derive(Debug, Default)]
struct Ledger {
    chunks: Vec<(u64, u64)>,
    photos: Vec<(u64, u64)>,
    progressed: Vec<(u64, u64)>,
    done: Vec<(u64, u64)>,
    quarantined: Vec<(u64, u64)>,
    compactions: usize,
}

impl Ledger {
    fn take(&mut self, line: &str) {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [_, what, run, n] = parts[..] else {
            panic!("writer printed an unexpected line {line:?}");
        };
        let id = (run.parse().unwrap(), n.parse().unwrap());
        match what {
            "chunk" => self.chunks.push(id),
            "photo" => self.photos.push(id),
            "progress" => self.progressed.push(id),
            "done" => self.done.push(id),
            "quarantine" => self.quarantined.push(id),
            "compact" => self.compactions += 1,
            _ => panic!("writer printed an unexpected line {line:?}"),
        }
    }
}

/// Splits a loaded document into its records, checking each record's bytes and that none
/// appears twice (a torn compaction would duplicate or drop them).
fn records_in(doc: &str, bytes: &[u8], found: &mut HashMap<(u64, u64), String>) {
    let mut rest = bytes;
    while !rest.is_empty() {
        let newline = rest
            .iter()
            .position(|&b| b == b'\n')
            .expect("record header");
        let header = std::str::from_utf8(&rest[..newline]).expect("utf-8 header");
        let fields: Vec<u64> = header[2..].split(' ').map(|f| f.parse().unwrap()).collect();
        let [run, n, len] = fields[..] else {
            panic!("bad record header {header:?} in {doc}");
        };
        let total = newline + 1 + len as usize;
        assert_eq!(
            &rest[..total],
            record(run, n),
            "record {run}/{n} in {doc} is damaged"
        );
        let earlier = found.insert((run, n), doc.to_owned());
        assert!(earlier.is_none(), "record {run}/{n} is stored twice");
        rest = &rest[total..];
    }
}

fn check(dir: &Path, ledger: &Ledger) {
    let store = LocalStore::open(dir).expect("reopen the store after the kill");
    let report = store.verify().unwrap();
    assert!(
        report.corrupt.is_empty(),
        "damaged values: {:?}",
        report.corrupt
    );

    let mut found = HashMap::new();
    for d in 0..DOCS {
        let doc = format!("doc-{d}");
        if let Some(bytes) = store.load_doc(&doc).unwrap() {
            records_in(&doc, &bytes, &mut found);
        }
    }
    for &(run, n) in &ledger.chunks {
        assert_eq!(
            found.get(&(run, n)),
            Some(&doc_id(n)),
            "committed record {run}/{n} is missing"
        );
    }
    let outbox: HashMap<String, OutboxEntry> = store
        .outbox()
        .unwrap()
        .into_iter()
        .map(|e| (e.sha256.clone(), e))
        .collect();
    let photo = |run: u64, n: u64| {
        outbox
            .get(&photo_sha(run, n))
            .unwrap_or_else(|| panic!("committed photo {run}/{n} is missing"))
    };
    for &(run, n) in &ledger.photos {
        assert_eq!(photo(run, n).record_ids, vec![doc_id(n)]);
    }
    for &(run, n) in &ledger.progressed {
        assert_eq!(photo(run, n).state, UploadState::Uploading { offset: 500 });
    }
    for &(run, n) in &ledger.done {
        assert_eq!(photo(run, n).state, UploadState::Done);
    }

    let quarantine: HashMap<(String, String), Vec<u8>> = store
        .quarantined()
        .unwrap()
        .into_iter()
        .map(|c| ((c.doc_id, c.change_hash), c.change))
        .collect();
    for &(run, n) in &ledger.quarantined {
        let change = quarantine
            .get(&(doc_id(n), format!("{run}-{n}")))
            .unwrap_or_else(|| panic!("quarantined {run}/{n} is missing"));
        assert_eq!(change, &record(run, n));
    }
}

/// Runs the writer once, kills it after `delay` (counted from its "ready" line unless
/// `from_spawn`), and returns the lines it printed.
fn run_writer(dir: &Path, run: u64, delay: Duration, from_spawn: bool) -> Vec<String> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_store-crash-writer"))
        .arg(dir)
        .arg(run.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the writer");
    let stdout = child.stdout.take().unwrap();
    let (ready_tx, ready_rx) = mpsc::channel();
    let reader = thread::spawn(move || {
        let mut lines = Vec::new();
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        // A line cut short by the kill has no newline and was never acknowledged.
        while reader.read_line(&mut line).unwrap() > 0 && line.ends_with('\n') {
            if line == "ready\n" {
                ready_tx.send(()).unwrap();
            } else {
                lines.push(line.trim_end().to_owned());
            }
            line.clear();
        }
        lines
    });
    if !from_spawn {
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("writer did not open the store");
    }
    thread::sleep(delay);
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(SIGKILL),
        "writer of run {run} ended on its own ({status})"
    );
    reader.join().unwrap()
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let seed = std::env::var("STORE_CRASH_SEED")
        .ok()
        .map(|s| s.parse().expect("STORE_CRASH_SEED is a number"))
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("store crash test seed: {seed} (replay with STORE_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::default();
    let started = Instant::now();

    for run in 0..RUNS {
        let from_spawn = rng.between(0, 5) == 0;
        let delay = Duration::from_millis(if from_spawn {
            rng.between(0, 150)
        } else {
            rng.between(20, 300)
        });
        for line in run_writer(dir.path(), run, delay, from_spawn) {
            ledger.take(&line);
        }
        check(dir.path(), &ledger);
    }

    println!(
        "{RUNS} kills in {:.1} s: {} records, {} photos ({} progressed, {} done), \
         {} quarantined, {} compactions acknowledged and all found",
        started.elapsed().as_secs_f64(),
        ledger.chunks.len(),
        ledger.photos.len(),
        ledger.progressed.len(),
        ledger.done.len(),
        ledger.quarantined.len(),
        ledger.compactions
    );
    assert!(
        !ledger.chunks.is_empty(),
        "the writer never got to commit anything"
    );
}
