//! A backup's manifest: what the backup holds, with the size and SHA-256 of every file, and
//! the check of a backup against it before anything is restored.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

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

/// Reads a backup's manifest and checks every file it names (size, SHA-256, record counts,
/// each photo against its name). Writes nothing.
pub fn check(dir: &Path) -> Result<Manifest, BackupError> {
    let damaged = |detail: String| BackupError::Damaged {
        dir: dir.display().to_string(),
        detail,
    };
    let json = match fs::read(dir.join(MANIFEST)) {
        Ok(json) => json,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(damaged(format!(
                "no {MANIFEST} (a backup that did not finish has none)"
            )))
        }
        Err(e) => return Err(e.into()),
    };
    let manifest: Manifest = serde_json::from_slice(&json)
        .map_err(|e| damaged(format!("{MANIFEST} does not read: {e}")))?;
    if manifest.format != FORMAT {
        return Err(damaged(format!(
            "format {:?}, this server reads {FORMAT:?}",
            manifest.format
        )));
    }
    for table in &manifest.tables {
        let entries = count_entries(dir, &table.file).map_err(damaged)?;
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
    let path = safe_path(dir, &sum.path)?;
    let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", sum.path))?;
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

/// `dir/relative`, refusing anything but plain names (no `..`, no absolute paths).
fn safe_path(dir: &Path, relative: &str) -> Result<PathBuf, String> {
    let path = Path::new(relative);
    if relative.is_empty()
        || !path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return Err(format!("{relative:?} is not a path inside the backup"));
    }
    Ok(dir.join(path))
}

/// Reads a table file through: size, SHA-256 and framing checked; returns its record count.
fn count_entries(dir: &Path, sum: &FileSum) -> Result<u64, String> {
    let mut entries = 0;
    let mut hash = Sha256::new();
    let mut bytes = 0u64;
    read_table(dir, sum, &mut |key, value| {
        entries += 1;
        for part in [key, value] {
            hash.update((part.len() as u32).to_be_bytes());
            hash.update(part);
            bytes += 4 + part.len() as u64;
        }
        Ok(())
    })?;
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

/// What [`read_table`] hands each (key, value) to.
pub(super) type EachRecord<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), String> + 'a;

/// Hands every (key, value) of a table file to `each`; a cut-off file is an error.
pub(super) fn read_table(
    dir: &Path,
    sum: &FileSum,
    each: &mut EachRecord<'_>,
) -> Result<(), String> {
    let path = safe_path(dir, &sum.path)?;
    let file = File::open(&path).map_err(|e| format!("{}: {e}", sum.path))?;
    let mut input = BufReader::new(file);
    let cut = |e: io::Error| format!("{} is cut off or unreadable: {e}", sum.path);
    loop {
        let mut len = [0u8; 4];
        match input.read(&mut len[..1]) {
            Ok(0) => return Ok(()),
            Ok(_) => input.read_exact(&mut len[1..]).map_err(cut)?,
            Err(e) => return Err(cut(e)),
        }
        let key = read_part(&mut input, len, sum.bytes).map_err(cut)?;
        let mut len = [0u8; 4];
        input.read_exact(&mut len).map_err(cut)?;
        let value = read_part(&mut input, len, sum.bytes).map_err(cut)?;
        each(&key, &value)?;
    }
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
