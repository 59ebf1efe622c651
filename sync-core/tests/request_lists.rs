//! A `/sync` request is refused at the length of a list over its limit, before the list is
//! held: a 32 KiB deflated body of one-byte elements (empty ids, empty documents, empty
//! changes) inflates to tens of millions of them, which would take the server a gigabyte if
//! it decoded them first and counted them after. Measured by the process's peak resident
//! memory around each decode, so the limits are seen checked as the decoder reads.

use std::io::Write;
use std::sync::Mutex;

use flate2::write::DeflateEncoder;
use flate2::Compression;
use sync_core::protocol::{
    ProtocolError, SyncRequest, MAGIC, MAX_DROPPED_DOCS, MAX_MESSAGE_BYTES, MAX_PUSHED_DOCS,
    MAX_REQUEST_CHANGES, PROTOCOL_VERSION,
};

/// The tests of this file one at a time, so one's memory is not counted in another's.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// This process's peak resident memory (Linux's `VmHWM`), in bytes.
fn peak_resident() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM");
    let kib: usize = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("VmHWM in kB");
    kib * 1024
}

/// Sets the peak resident memory back to what is resident now.
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting the peak resident memory");
}

/// A postcard length (an unsigned LEB128 varint).
fn varint(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// The envelope of a deflated body, as a phone sends one.
fn deflated(body: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(PROTOCOL_VERSION);
    out.push(1);
    let mut encoder = DeflateEncoder::new(out, Compression::best());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

/// How far decoding `bytes` raised this process's resident memory, and its result.
fn peak_while_decoding(bytes: &[u8]) -> (usize, Result<SyncRequest, ProtocolError>) {
    reset_peak();
    let before = peak_resident();
    let decoded = SyncRequest::decode(bytes);
    (peak_resident().saturating_sub(before), decoded)
}

#[test]
fn lists_over_their_limits_are_refused_as_they_are_read() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // As many one-byte elements as an inflated body may hold, well over every limit.
    let n = MAX_MESSAGE_BYTES - 64;
    // What decoding may hold besides the elements: the inflated body (32 MiB at most), with
    // room for the buffer growing. Tens of millions of elements take 24 bytes each at least.
    let allowed = 3 * MAX_MESSAGE_BYTES;

    // Dropped ids: the cursor, no pushed documents, then `n` empty ids.
    let mut body = vec![0, 0];
    varint(n, &mut body);
    body.resize(body.len() + n, 0);
    let bytes = deflated(&body);
    assert!(bytes.len() < 64 * 1024, "{} bytes on the wire", bytes.len());
    let (peak, decoded) = peak_while_decoding(&bytes);
    assert_eq!(
        decoded,
        Err(ProtocolError::TooManyDropped {
            count: n,
            max: MAX_DROPPED_DOCS
        })
    );
    assert!(peak < allowed, "dropped ids: {peak} bytes held at once");

    // Pushed documents: `n / 5` pushes of an empty text id, listed (empty) heads, no changes.
    let pushes = n / 5;
    let mut body = vec![0];
    varint(pushes, &mut body);
    for _ in 0..pushes {
        body.extend_from_slice(&[1, 0, 1, 0, 0]);
    }
    let (peak, decoded) = peak_while_decoding(&deflated(&body));
    assert_eq!(
        decoded,
        Err(ProtocolError::TooManyDocuments {
            count: pushes,
            max: MAX_PUSHED_DOCS
        })
    );
    assert!(
        peak < allowed,
        "pushed documents: {peak} bytes held at once"
    );

    // Changes: one pushed document with `n` empty changes.
    let mut body = vec![0, 1, 1, 0, 1, 0];
    varint(n, &mut body);
    body.resize(body.len() + n, 0);
    let (peak, decoded) = peak_while_decoding(&deflated(&body));
    assert_eq!(
        decoded,
        Err(ProtocolError::TooManyChanges {
            count: n,
            max: MAX_REQUEST_CHANGES
        })
    );
    assert!(peak < allowed, "changes: {peak} bytes held at once");

    // Changes over the limit spread over many documents are counted for the whole request.
    let per_doc = MAX_REQUEST_CHANGES / 10 + 1;
    let mut body = vec![0];
    varint(10, &mut body);
    for i in 0..10u8 {
        body.extend_from_slice(&[1, 1, b'a' + i, 1, 0]);
        varint(per_doc, &mut body);
        body.resize(body.len() + per_doc, 0);
    }
    let (peak, decoded) = peak_while_decoding(&deflated(&body));
    assert!(
        matches!(
            decoded,
            Err(ProtocolError::TooManyChanges { count, max: MAX_REQUEST_CHANGES })
                if count > MAX_REQUEST_CHANGES
        ),
        "{decoded:?}"
    );
    assert!(
        peak < allowed,
        "changes of many documents: {peak} bytes held at once"
    );
}

#[test]
fn lists_within_their_limits_still_decode() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    // The most dropped ids a request may name, each empty on the wire: decoded, then refused
    // by the id check (an id is never empty), not by a count.
    let mut body = vec![0, 0];
    varint(MAX_DROPPED_DOCS, &mut body);
    body.resize(body.len() + MAX_DROPPED_DOCS, 0);
    assert!(matches!(
        SyncRequest::decode(&deflated(&body)),
        Err(ProtocolError::BadDocumentId(_))
    ));
    let ids: Vec<String> = (0..MAX_DROPPED_DOCS).map(|i| format!("doc-{i}")).collect();
    let request = SyncRequest {
        cursor: 7,
        docs: Vec::new(),
        dropped: ids,
    };
    assert_eq!(SyncRequest::decode(&request.encode()), Ok(request));
}
