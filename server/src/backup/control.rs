//! How `chiefsync backup` asks the running server for a backup: a Unix socket in the data
//! directory, `<data-dir>/control/backup.sock`, in a directory only the server's system account
//! may enter.
//!
//! A socket rather than an HTTP endpoint: the running server holds sled's lock, so the copy
//! must be taken by it, and a backup writes a directory on the server's disks. Whoever may do
//! that is whoever runs the server's system account (the operator, a cron job as that account,
//! root), not whoever holds an administrator's token: a stolen token or a desk session must
//! not be able to make the server write files, and a cron job should not keep a person's
//! password. No network listener is involved, so nothing on the network can reach it.
//!
//! One line of JSON each way: `{"to": "/absolute/dir"}`, answered by the manifest
//! (`{"manifest": …}`) or `{"error": "…"}`. One backup at a time: a second request while one
//! runs is answered with [`BackupError::Busy`]. A caller that connects and says nothing, or
//! never reads its answer, is cut off after [`IDLE`]; saves are held only while the tables are
//! copied to the backup's disk, never while a caller is waited on.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BackupError, Manifest};

/// How long the socket waits for a request line, or for its answer to be read.
pub const IDLE: Duration = Duration::from_secs(10);
/// The longest request line read.
const MAX_REQUEST_BYTES: u64 = 8 * 1024;

/// The socket of the server over `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("control").join("backup.sock")
}

#[derive(Debug, Serialize, Deserialize)]
struct Request {
    to: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Manifest(Box<Manifest>),
    Error(String),
}

/// Listens on the data directory's socket in a thread of its own; each request runs `take`
/// with the requested target. Replaces a socket a stopped server left behind (the caller holds
/// the data directory's store, so no other server is listening on it).
pub fn listen<F>(data_dir: &Path, take: F) -> io::Result<std::thread::JoinHandle<()>>
where
    F: Fn(&Path) -> Result<Manifest, BackupError> + Send + Sync + 'static,
{
    let path = socket_path(data_dir);
    let dir = path.parent().expect("the socket has a directory");
    super::private_dir(dir)?;
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(&path)?;
    let take = Arc::new(take);
    let running = Arc::new(Mutex::new(()));
    std::thread::Builder::new()
        .name("backup-socket".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let (take, running) = (take.clone(), running.clone());
                let _ = std::thread::Builder::new()
                    .name("backup".into())
                    .spawn(move || serve(stream, &*take, &running));
            }
        })
}

fn serve(
    stream: UnixStream,
    take: &(dyn Fn(&Path) -> Result<Manifest, BackupError> + Send + Sync),
    running: &Mutex<()>,
) {
    let _ = stream.set_read_timeout(Some(IDLE));
    let _ = stream.set_write_timeout(Some(IDLE));
    let answer = match read_request(&stream) {
        Err(e) => Answer::Error(format!("unreadable request: {e}")),
        Ok(request) => match match running.try_lock() {
            Ok(one) => Some(one),
            // A backup that panicked holds nothing any more: the next one may run.
            Err(std::sync::TryLockError::Poisoned(held)) => Some(held.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        } {
            None => Answer::Error(BackupError::Busy.to_string()),
            Some(_one) => {
                let started = std::time::Instant::now();
                match take(&request.to) {
                    Ok(manifest) => {
                        tracing::info!(
                            to = %request.to.display(),
                            documents = manifest.documents,
                            photos = manifest.photos.len(),
                            bytes = manifest.total_bytes(),
                            held_ms = manifest.held_ms,
                            took_ms = started.elapsed().as_millis() as u64,
                            "backup taken"
                        );
                        Answer::Manifest(Box::new(manifest))
                    }
                    Err(e) => {
                        tracing::warn!(to = %request.to.display(), error = %e, "backup failed");
                        Answer::Error(e.to_string())
                    }
                }
            }
        },
    };
    let mut stream = stream;
    if let Ok(mut line) = serde_json::to_vec(&answer) {
        line.push(b'\n');
        let _ = stream.write_all(&line);
    }
}

fn read_request(stream: &UnixStream) -> io::Result<Request> {
    let mut line = String::new();
    BufReader::new(stream.take(MAX_REQUEST_BYTES)).read_line(&mut line)?;
    if !line.ends_with('\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "no complete request line",
        ));
    }
    serde_json::from_str(&line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Asks the server running over `data_dir` for a backup into `to`. `Ok(None)` when no server
/// listens there (none is running, or it runs without the socket).
pub fn request(data_dir: &Path, to: &Path) -> Result<Option<Manifest>, BackupError> {
    let mut stream = match UnixStream::connect(socket_path(data_dir)) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e.into()),
    };
    let mut line = serde_json::to_vec(&Request { to: to.to_owned() }).map_err(io::Error::other)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    match serde_json::from_str(&answer) {
        Ok(Answer::Manifest(manifest)) => Ok(Some(*manifest)),
        Ok(Answer::Error(message)) if message == BackupError::Busy.to_string() => {
            Err(BackupError::Busy)
        }
        Ok(Answer::Error(message)) => Err(BackupError::Refused(message)),
        Err(e) => Err(BackupError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the server's answer does not read: {e}"),
        ))),
    }
}
