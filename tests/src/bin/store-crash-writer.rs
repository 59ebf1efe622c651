//! The writer half of the store crash test (`tests/tests/store_crash.rs`).
//!
//! Opens the device store at the directory given on the command line and writes records as fast
//! as it can — document chunks, photo outbox entries and their progress, quarantined changes and
//! compactions — until it is killed. It prints `committed <what> <run> <n>` only after the store
//! call returned, so every printed line is a write the store acknowledged and must survive
//! `kill -9`. It is not a tool for anything else.
//!
//! Usage: `store-crash-writer <store-dir> <run>`; `run` keeps ids unique across restarts.

use std::error::Error;
use std::io::Write;

use sync_core::store::{DocKind, LocalStore, QuarantinedChange};

/// Documents the records are spread over, so chunks, compaction and reloads interleave.
const DOCS: u64 = 5;

fn doc_id(n: u64) -> String {
    format!("doc-{}", n % DOCS)
}

fn doc_kind(n: u64) -> DocKind {
    match n % DOCS {
        1 | 3 => DocKind::Issue,
        _ => DocKind::Patrol,
    }
}

/// A self-delimiting record: `R <run> <n> <len>\n` and `len` pattern bytes. The checker in
/// `tests/tests/store_crash.rs` regenerates the same bytes to prove each record is intact.
fn record(run: u64, n: u64) -> Vec<u8> {
    let len = 1 + (n * 37 + run * 11) % 400;
    let mut out = format!("R {run} {n} {len}\n").into_bytes();
    out.extend((0..len).map(|i| (run * 31 + n * 17 + i) as u8));
    out
}

fn photo_sha(run: u64, n: u64) -> String {
    format!("{run:032x}{n:032x}")
}

/// Prints one line and pushes it out of the process before the next store call.
fn ack(out: &mut impl Write, line: std::fmt::Arguments) -> std::io::Result<()> {
    writeln!(out, "{line}")?;
    out.flush()
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(run)) = (args.next(), args.next()) else {
        return Err("usage: store-crash-writer <store-dir> <run>".into());
    };
    let run: u64 = run.parse()?;
    let store = LocalStore::open(&dir)?;
    let mut out = std::io::stdout().lock();
    ack(&mut out, format_args!("ready"))?;

    for n in 0.. {
        let doc = doc_id(n);
        store.append_doc_changes(&doc, doc_kind(n), &record(run, n))?;
        ack(&mut out, format_args!("committed chunk {run} {n}"))?;

        if n % 4 == 3 {
            store.enqueue_photo(&photo_sha(run, n), &doc, &format!("/photos/{n}.jpg"), 1000)?;
            ack(&mut out, format_args!("committed photo {run} {n}"))?;
        }
        // Photos enqueued at n ≡ 3 (mod 8) get progress; those at n ≡ 7 (mod 8) finish.
        if n % 8 == 1 && n > 2 {
            store.mark_progress(&photo_sha(run, n - 2), 500)?;
            ack(&mut out, format_args!("committed progress {run} {}", n - 2))?;
        }
        if n % 8 == 5 && n > 2 {
            store.mark_done(&photo_sha(run, n - 2))?;
            ack(&mut out, format_args!("committed done {run} {}", n - 2))?;
        }
        if n % 6 == 5 {
            store.quarantine(&QuarantinedChange {
                doc_id: doc.clone(),
                change_hash: format!("{run}-{n}"),
                change: record(run, n),
                reason: "refused by the crash test".into(),
                refused_at_ms: n as i64,
            })?;
            ack(&mut out, format_args!("committed quarantine {run} {n}"))?;
        }
        if n % 10 == 9 {
            // The store treats documents as opaque bytes, so the current concatenation is a
            // valid "full save" to compact into.
            if let Some(full) = store.load_doc(&doc)? {
                store.compact_doc(&doc, &full)?;
                ack(&mut out, format_args!("committed compact {run} {n}"))?;
            }
        }
    }
    Ok(())
}
