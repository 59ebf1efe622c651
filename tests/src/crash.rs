//! The server process the crash tests kill: `crash-server` on a data directory, started and
//! waited for until it has opened its data, and killed with SIGKILL when dropped, so a failing
//! test never leaves a server behind.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

/// A running server process; SIGKILLed when dropped.
#[derive(Debug)]
pub struct KilledServer(Child);

impl Drop for KilledServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the `crash-server` binary at `bin` (`env!("CARGO_BIN_EXE_crash-server")`) on `data`
/// and `addr`, and returns once it says it is ready.
pub fn start(bin: &str, data: &Path, addr: &str) -> KilledServer {
    start_with(bin, data, addr, &[])
}

/// As [`start`], with more arguments for the server (`--database URL`, `--blobs URL`).
pub fn start_with(bin: &str, data: &Path, addr: &str, args: &[String]) -> KilledServer {
    // What the server says on its way out is kept beside its data, for a failed start.
    let said = data.join("server.stderr");
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&said)
        .expect("a file for the server's messages");
    let mut child = Command::new(bin)
        .arg(data)
        .arg(addr)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start the server");
    let stdout = child.stdout.take().expect("the server's stdout is piped");
    let server = KilledServer(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the server's first line");
    if line.trim() != "ready" {
        let said = std::fs::read_to_string(&said).unwrap_or_default();
        let tail: String = said.lines().rev().take(20).collect::<Vec<_>>().join("\n");
        panic!("the server did not open its data after a kill; it said, last first:\n{tail}");
    }
    server
}

/// The seed of a randomized test: from the environment variable `var` to replay a run, else
/// from the clock; printed either way, so a failure can be replayed.
pub fn seed(var: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("the clock is after 1970")
                .as_nanos() as u64
        });
    println!("{var}={seed}");
    seed
}

/// A free port on 127.0.0.1 for a server started in another process, as `host:port`.
pub fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
        .port();
    format!("127.0.0.1:{port}")
}

/// A camera picture of noise with a unique 64-pixel block of its own (so every picture is a
/// different photo), as the camera app would save it: JPEG at `quality`.
pub fn camera_picture(
    noise: &mut image::RgbImage,
    rng: &mut rand::rngs::StdRng,
    path: &Path,
    quality: u8,
) {
    use rand::{Rng, RngCore};
    let (x0, y0) = (
        rng.random_range(0..noise.width() - 64),
        rng.random_range(0..noise.height() - 64),
    );
    let mut bytes = [0u8; 3];
    for y in y0..y0 + 64 {
        for x in x0..x0 + 64 {
            rng.fill_bytes(&mut bytes);
            noise.put_pixel(x, y, image::Rgb(bytes));
        }
    }
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, quality)
        .encode_image(&*noise)
        .expect("encode the camera picture");
    std::fs::write(path, jpeg).expect("save the camera picture");
}

/// Every document of a store that survived the kills, with its sorted heads, each checked to
/// load.
pub fn stored_heads(
    store: &dyn sync_core::hub::DocumentStore,
) -> std::collections::BTreeMap<String, (automerge::AutoCommit, Vec<String>)> {
    let mut out = std::collections::BTreeMap::new();
    for meta in store.all_documents().unwrap() {
        let stored = store
            .document(&meta.id)
            .unwrap()
            .expect("listed documents exist");
        let mut doc = automerge::AutoCommit::load(&stored.bytes).expect("stored documents load");
        let mut heads: Vec<String> = doc.get_heads().iter().map(|h| h.to_string()).collect();
        heads.sort();
        out.insert(meta.id, (doc, heads));
    }
    out
}
