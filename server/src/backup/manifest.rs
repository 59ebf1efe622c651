//! A backup's manifest: what the backup holds, with the size and SHA-256 of every file, and
//! the check of a backup against it before anything is restored.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{sha256_hex, BackupError, MANIFEST};
use crate::blobs::is_sha256;

/// The format named in every manifest; a restore refuses any other.
pub const FORMAT: &str = "chiefsync-backup/1";

/// What a backup holds, written last: a directory with a manifest is complete.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    /// The server version that took the backup.
    pub server_version: String,
    pub created_at_ms: i64,
    /// How long document saves were held for the copy of the tables, milliseconds.
    pub held_ms: u64,
    /// The change feed's head at the backup: every save up to it is in the copy.
    pub feed_head: u64,
    /// Patrols and issues stored.
    pub documents: u64,
    /// Accounts stored.
    pub users: u64,
    pub tables: Vec<TableFile>,
    pub photos: Vec<PhotoFile>,
    /// The generated token signing key, when the server keeps one on disk (with
    /// `--signing-key` the operator keeps the key and none is copied).
    pub signing_key: Option<FileSum>,
}

impl Manifest {
    /// The SHA-256 of the manifest as written (`manifest.json`), printed when the backup is
    /// taken and asked for when it is restored: the manifest's own sums prove the files match
    /// the manifest, this proves the manifest is the one the server wrote.
    pub fn sha256(&self) -> String {
        sha256_hex(&self.to_json())
    }

    pub(super) fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a manifest serializes")
    }

    /// Bytes of every file the backup holds, the manifest aside.
    pub fn total_bytes(&self) -> u64 {
        let tables: u64 = self.tables.iter().map(|t| t.file.bytes).sum();
        let photos: u64 = self.photos.iter().map(|p| p.bytes + p.record.bytes).sum();
        tables + photos + self.signing_key.as_ref().map_or(0, |k| k.bytes)
    }
}

/// One table of the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableFile {
    /// The table's name, hex-encoded (names are bytes).
    pub name_hex: String,
    pub entries: u64,
    pub file: FileSum,
}

/// One photo: its bytes are named by their SHA-256, its receipt record beside them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotoFile {
    pub sha256: String,
    pub bytes: u64,
    pub record: FileSum,
}

/// A file of the backup, relative to its directory, with its size and SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Which manifest a restore accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// Only the manifest with this SHA-256 (printed by `chiefsync backup`): whoever can write
    /// the backup's disk cannot hand the server accounts, documents or a signing key of their
    /// own making.
    Sha256(String),
    /// Whatever manifest the backup holds; the operator vouches for the backup's disk.
    Trusted,
}

/// Reads a backup's manifest, checks it is the one expected, and checks every file it names
/// (size, SHA-256, record counts, each photo against its name). Writes nothing.
pub fn check(dir: &Path, expected: &Expected) -> Result<Manifest, BackupError> {
    let damaged = |detail: String| BackupError::Damaged {
        dir: dir.display().to_string(),
        detail,
    };
    let json = match read_regular(dir, MANIFEST) {
        Ok(json) => json,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(damaged(format!(
                "no {MANIFEST} (a backup that did not finish has none)"
            )))
        }
        Err(e) => return Err(damaged(format!("{MANIFEST}: {e}"))),
    };
    if let Expected::Sha256(wanted) = expected {
        let found = sha256_hex(&json);
        if !found.eq_ignore_ascii_case(wanted.trim()) {
            return Err(BackupError::Refused(format!(
                "the manifest of {} has SHA-256 {found}, not the {wanted} given: this is not \
                 the backup that was taken, or it was changed since",
                dir.display()
            )));
        }
    }
    let manifest: Manifest = serde_json::from_slice(&json)
        .map_err(|e| damaged(format!("{MANIFEST} does not read: {e}")))?;
    if manifest.format != FORMAT {
        return Err(damaged(format!(
            "format {:?}, this server reads {FORMAT:?}",
            manifest.format
        )));
    }
    for table in &manifest.tables {
        let entries = read_table(dir, &table.file, &mut |_, _| Ok(())).map_err(damaged)?;
        if entries != table.entries {
            return Err(damaged(format!(
                "{} holds {entries} records, the manifest says {}",
                table.file.path, table.entries
            )));
        }
    }
    for photo in &manifest.photos {
        if !is_sha256(&photo.sha256) {
            return Err(damaged(format!("{:?} is not a photo name", photo.sha256)));
        }
        let path = format!("photos/{}/{}", &photo.sha256[..2], photo.sha256);
        check_file(
            dir,
            &FileSum {
                path,
                bytes: photo.bytes,
                sha256: photo.sha256.clone(),
            },
        )
        .map_err(&damaged)?;
        check_file(dir, &photo.record).map_err(&damaged)?;
    }
    if let Some(key) = &manifest.signing_key {
        check_file(dir, key).map_err(&damaged)?;
    }
    Ok(manifest)
}

/// Checks a file's path stays inside the backup, then its size and SHA-256.
pub(super) fn check_file(dir: &Path, sum: &FileSum) -> Result<Vec<u8>, String> {
    let bytes = read_regular(dir, &sum.path).map_err(|e| format!("{}: {e}", sum.path))?;
    if bytes.len() as u64 != sum.bytes {
        return Err(format!(
            "{} has {} bytes, the manifest says {}",
            sum.path,
            bytes.len(),
            sum.bytes
        ));
    }
    if sha256_hex(&bytes) != sum.sha256 {
        return Err(format!("{} does not match its checksum", sum.path));
    }
    Ok(bytes)
}

/// Opens `dir/relative` for reading if it is a plain file of the backup: only plain names (no
/// `..`, no absolute paths), no symbolic link on the way, and not a pipe or a device, which
/// would hold a restore forever or read what is not in the backup.
fn open_regular(dir: &Path, relative: &str) -> io::Result<File> {
    let refused = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_owned());
    let path = Path::new(relative);
    if relative.is_empty()
        || !path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return Err(refused("not a path inside the backup"));
    }
    let mut walked = dir.to_path_buf();
    for part in path.components() {
        walked.push(part);
        if fs::symlink_metadata(&walked)?.file_type().is_symlink() {
            return Err(refused("a symbolic link, not a file of the backup"));
        }
    }
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    let file = options.open(&walked)?;
    if !file.metadata()?.is_file() {
        return Err(refused("not a plain file"));
    }
    Ok(file)
}

/// The whole of a plain file of the backup (see [`open_regular`]).
fn read_regular(dir: &Path, relative: &str) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_regular(dir, relative)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// What [`read_table`] hands each (key, value) to.
pub(super) type EachRecord<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), String> + 'a;

/// Hands every (key, value) of a table file to `each` and returns how many there were. The
/// bytes handed on are the bytes checked: size and SHA-256 are computed over this very read, so
/// a file changed after an earlier check is found, not restored. A cut-off file is an error;
/// a caller writing what it was handed must discard it when this fails.
pub(super) fn read_table(
    dir: &Path,
    sum: &FileSum,
    each: &mut EachRecord<'_>,
) -> Result<u64, String> {
    let file = open_regular(dir, &sum.path).map_err(|e| format!("{}: {e}", sum.path))?;
    let mut input = BufReader::new(file);
    let cut = |e: io::Error| format!("{} is cut off or unreadable: {e}", sum.path);
    let (mut entries, mut bytes, mut hash) = (0u64, 0u64, Sha256::new());
    loop {
        let mut len = [0u8; 4];
        match input.read(&mut len[..1]) {
            Ok(0) => break,
            Ok(_) => input.read_exact(&mut len[1..]).map_err(cut)?,
            Err(e) => return Err(cut(e)),
        }
        let key = read_part(&mut input, len, sum.bytes).map_err(cut)?;
        let mut len = [0u8; 4];
        input.read_exact(&mut len).map_err(cut)?;
        let value = read_part(&mut input, len, sum.bytes).map_err(cut)?;
        for part in [&key, &value] {
            hash.update((part.len() as u32).to_be_bytes());
            hash.update(part);
            bytes += 4 + part.len() as u64;
        }
        entries += 1;
        each(&key, &value)?;
    }
    if bytes != sum.bytes {
        return Err(format!(
            "{} has {bytes} bytes, the manifest says {}",
            sum.path, sum.bytes
        ));
    }
    if hex::encode(hash.finalize()) != sum.sha256 {
        return Err(format!("{} does not match its checksum", sum.path));
    }
    Ok(entries)
}

fn read_part(input: &mut impl Read, len: [u8; 4], file_bytes: u64) -> io::Result<Vec<u8>> {
    let len = u64::from(u32::from_be_bytes(len));
    // A length beyond the whole file is damage, not a reason to allocate it.
    if len > file_bytes {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a record longer than its file",
        ));
    }
    let mut part = vec![0u8; len as usize];
    input.read_exact(&mut part)?;
    Ok(part)
}
