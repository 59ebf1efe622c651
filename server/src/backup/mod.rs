//! Backups of a district's server: `chiefsync backup --to DIR` takes a consistent copy of the
//! store (documents and their change feed, audit, device ledger, accounts and sessions,
//! reference data, settings) and of the photos while the server keeps serving, and
//! `chiefsync restore --from DIR` brings it back into a new, empty data directory.
//!
//! A backup is a directory:
//!
//! ```text
//! manifest.json          what the backup holds: counts, sizes and SHA-256 of every file
//! store/<table>.kv       every record of one table (length-prefixed key and value pairs)
//! photos/ab/abcd…        a photo's bytes; the name is their SHA-256
//! photos/ab/abcd….record the server's receipt of that photo (JSON)
//! jwt-signing.key        the generated token signing key, when the server keeps one on disk
//! ```
//!
//! Consistency: the tables are copied while document saves are held (`Store::hold_saves`), so
//! every document is in the copy with its feed position and audit, or not at all, and every
//! change a phone had acknowledged before the backup began is in it. Only the copy of the
//! tables to the backup's disk happens under the hold; photos are copied afterwards, outside
//! it: they are named by their content and never change once complete, so a photo is either
//! copied whole (checked against its name) or, if it was removed meanwhile, left out. Uploads
//! still under way are not copied: a phone resumes or restarts them at its next upload.
//!
//! The backup is written under a temporary name beside `DIR` and renamed into place once its
//! manifest is written, so `DIR` either holds a complete backup or does not exist. A restore
//! checks every file against the manifest before it writes anything, writes the new data
//! directory under a temporary name too, loads what it wrote (feed head, documents, the
//! integrity check of `chiefsync verify`) and only then renames it into place.
//!
//! After a restore the server's feed stands behind the cursors of phones that synced with the
//! lost server after the backup, and lacks what they sent since. The restore therefore leaves
//! out what each phone's scope was last synced as, so every phone's next sync walks its whole
//! scope instead of the feed after its cursor, and numbers the feed anew, one position per
//! document; the backup itself moved the live feed far on (`Store::export`), so the restored
//! head stands below those cursors even after other phones' saves: a phone that sees the server behind its
//! cursor sends everything it holds again (`sync_core::client`), and what it recorded after
//! the backup comes back.

pub mod control;

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::blobs::{is_sha256, BlobError, BlobRecord, BlobStore, FileBlobs};
use crate::storage::{SledStore, Store, StoreError};
use sync_core::hub::DocumentStore;

/// The format named in every manifest; a restore refuses any other.
pub const FORMAT: &str = "chiefsync-backup/1";
const MANIFEST: &str = "manifest.json";
/// The file the server keeps its generated token signing key in (`auth::signing_key`).
const SIGNING_KEY_FILE: &str = "jwt-signing.key";
/// The table of what each phone's scope was last synced as; left out by a restore (see above).
const DEVICE_SCOPE_TABLE: &[u8] = b"device_scope";
const DOCUMENTS_TABLE: &[u8] = b"doc_bytes";
const USERS_TABLE: &[u8] = b"users";
/// Where the sled store keeps its feed head, in its `meta` table (`storage::sled_documents`).
const FEED_HEAD: &[u8] = b"feed.head";

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

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The target or the data directory is not acceptable; nothing was written.
    #[error("{0}")]
    Refused(String),
    /// The backup to restore does not match its manifest; nothing was written.
    #[error("the backup in {dir} is damaged or incomplete: {detail}")]
    Damaged { dir: String, detail: String },
    /// Another backup of this server is under way.
    #[error("a backup of this server is already running; try again when it has finished")]
    Busy,
    #[error("backup I/O: {0}")]
    Io(#[from] io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Blobs(#[from] BlobError),
    #[error("the restored store: {0}")]
    Hub(#[from] sync_core::hub::HubError),
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `dir`'s sibling named `.name.suffix-pid`, on the same file system so a rename moves it.
fn sibling(dir: &Path, suffix: &str) -> Result<PathBuf, BackupError> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| BackupError::Refused(format!("{} has no usable name", dir.display())))?;
    Ok(dir.with_file_name(format!(".{name}.{suffix}-{}", std::process::id())))
}

/// Whether `dir` is absent or an empty directory; an error says what is in the way.
fn absent_or_empty(dir: &Path, what: &str) -> Result<(), BackupError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err(BackupError::Refused(format!(
                "{what} {} is not empty; choose a new or empty directory",
                dir.display()
            ))),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => Err(BackupError::Refused(format!(
            "{what} {} is a file",
            dir.display()
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Renames the finished `staging` to `dir` (which is absent or empty) and makes it durable.
fn put_in_place(staging: &Path, dir: &Path) -> Result<(), BackupError> {
    if dir.exists() {
        // An empty directory is replaced by the rename; `remove_dir` refuses a non-empty one.
        fs::remove_dir(dir)?;
    }
    fs::rename(staging, dir)?;
    if let Some(parent) = dir.parent() {
        File::open(parent)?.sync_all()?;
    }
    Ok(())
}

fn private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Writes `bytes` to `dir/path`, fsynced, and returns its sum.
fn write_file(dir: &Path, path: &str, bytes: &[u8]) -> io::Result<FileSum> {
    let full = dir.join(path);
    if let Some(parent) = full.parent() {
        fs::create_dir_all(parent)?;
    }
    let mut file = File::create(&full)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(FileSum {
        path: path.to_owned(),
        bytes: bytes.len() as u64,
        sha256: sha256_hex(bytes),
    })
}

/// One table's file being written: length-prefixed (u32, big-endian) key and value pairs.
struct TableWriter {
    name: Vec<u8>,
    path: String,
    out: BufWriter<File>,
    hash: Sha256,
    entries: u64,
    bytes: u64,
}

impl TableWriter {
    fn create(dir: &Path, name: &[u8]) -> io::Result<Self> {
        let path = format!("store/{}.kv", hex::encode(name));
        Ok(Self {
            name: name.to_vec(),
            out: BufWriter::new(File::create(dir.join(&path))?),
            path,
            hash: Sha256::new(),
            entries: 0,
            bytes: 0,
        })
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        for part in [key, value] {
            let len = u32::try_from(part.len())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "record over 4 GiB"))?
                .to_be_bytes();
            for piece in [&len[..], part] {
                self.out.write_all(piece)?;
                self.hash.update(piece);
                self.bytes += piece.len() as u64;
            }
        }
        self.entries += 1;
        Ok(())
    }

    fn finish(self) -> io::Result<TableFile> {
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(TableFile {
            name_hex: hex::encode(&self.name),
            entries: self.entries,
            file: FileSum {
                path: self.path,
                bytes: self.bytes,
                sha256: hex::encode(self.hash.finalize()),
            },
        })
    }
}

/// Takes a backup of `store` and `blobs` (the server's data directory is `data_dir`) into `to`,
/// which must be an absolute path outside the data directory that is absent or empty.
pub fn take(
    store: &dyn Store,
    blobs: &dyn BlobStore,
    data_dir: &Path,
    to: &Path,
) -> Result<Manifest, BackupError> {
    check_target(data_dir, to)?;
    let to = &std::path::absolute(to)?;
    let staging = sibling(to, "partial")?;
    if staging.exists() {
        fs::remove_dir_all(&staging)?;
    }
    private_dir(&staging)?;
    let taken = take_into(store, blobs, data_dir, &staging).and_then(|manifest| {
        put_in_place(&staging, to)?;
        Ok(manifest)
    });
    if taken.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    taken
}

/// Refuses a relative target, one inside the data directory (a backup must survive losing
/// the data's disk, and would be copied into the next backup's neighbours), one whose parent
/// does not exist, and one that holds anything.
fn check_target(data_dir: &Path, to: &Path) -> Result<(), BackupError> {
    if !to.is_absolute() {
        return Err(BackupError::Refused(format!(
            "the backup directory must be an absolute path, not {}",
            to.display()
        )));
    }
    let parent = to.parent().ok_or_else(|| {
        BackupError::Refused(format!("{} cannot be a backup directory", to.display()))
    })?;
    let parent = parent.canonicalize().map_err(|e| {
        BackupError::Refused(format!(
            "the backup directory's parent {} is not usable: {e}",
            parent.display()
        ))
    })?;
    let data = data_dir.canonicalize()?;
    if parent.starts_with(&data) {
        return Err(BackupError::Refused(format!(
            "the backup directory {} is inside the data directory {}; put it on another disk",
            to.display(),
            data.display()
        )));
    }
    absent_or_empty(to, "the backup directory")
}

fn take_into(
    store: &dyn Store,
    blobs: &dyn BlobStore,
    data_dir: &Path,
    staging: &Path,
) -> Result<Manifest, BackupError> {
    fs::create_dir_all(staging.join("store"))?;
    let created_at_ms = crate::state::now_ms();
    let mut tables = Vec::new();
    let (feed_head, held_ms) = {
        let saves = store.hold_saves();
        let held = Instant::now();
        let feed_head = store.feed_head()?;
        let mut current: Option<TableWriter> = None;
        store.export(&mut |name, key, value| {
            if current.as_ref().is_none_or(|w| w.name != name) {
                if let Some(done) = current.take() {
                    tables.push(done.finish()?);
                }
                current = Some(TableWriter::create(staging, name)?);
            }
            current.as_mut().expect("a table is open").put(key, value)
        })?;
        if let Some(done) = current.take() {
            tables.push(done.finish()?);
        }
        drop(saves);
        (feed_head, held.elapsed().as_millis() as u64)
    };
    let entries_of = |name: &[u8]| {
        tables
            .iter()
            .find(|t| t.name_hex == hex::encode(name))
            .map_or(0, |t| t.entries)
    };
    let (documents, users) = (entries_of(DOCUMENTS_TABLE), entries_of(USERS_TABLE));

    let mut photos = Vec::new();
    let mut names = blobs.stored()?;
    names.sort();
    for sha256 in names {
        // A photo removed since it was listed (unreferenced for a week) is left out.
        let (Some(record), Some(bytes)) = (blobs.record(&sha256)?, blobs.read(&sha256)?) else {
            continue;
        };
        let dir = format!("photos/{}", &sha256[..2]);
        let data = write_file(staging, &format!("{dir}/{sha256}"), &bytes)?;
        let record_json = serde_json::to_vec(&record).map_err(io::Error::other)?;
        photos.push(PhotoFile {
            record: write_file(staging, &format!("{dir}/{sha256}.record"), &record_json)?,
            sha256,
            bytes: data.bytes,
        });
    }

    let signing_key = match fs::read(data_dir.join(SIGNING_KEY_FILE)) {
        Ok(bytes) => {
            let sum = write_file(staging, SIGNING_KEY_FILE, &bytes)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(
                    staging.join(SIGNING_KEY_FILE),
                    fs::Permissions::from_mode(0o600),
                )?;
            }
            Some(sum)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };

    let manifest = Manifest {
        format: FORMAT.to_owned(),
        server_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at_ms,
        held_ms,
        feed_head,
        documents,
        users,
        tables,
        photos,
        signing_key,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
    for dir in [staging.join("store"), staging.to_owned()] {
        File::open(dir)?.sync_all()?;
    }
    write_file(staging, MANIFEST, &json)?;
    File::open(staging)?.sync_all()?;
    Ok(manifest)
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
fn check_file(dir: &Path, sum: &FileSum) -> Result<Vec<u8>, String> {
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
type EachRecord<'a> = dyn FnMut(&[u8], &[u8]) -> Result<(), String> + 'a;

/// Hands every (key, value) of a table file to `each`; a cut-off file is an error.
fn read_table(dir: &Path, sum: &FileSum, each: &mut EachRecord<'_>) -> Result<(), String> {
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

/// What a restore brought back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restored {
    pub data_dir: String,
    /// The restored feed's head: one position per document (see `renumber_feed`).
    pub feed_head: u64,
    pub documents: u64,
    pub users: u64,
    pub photos: u64,
    /// Whether the token signing key came with the backup: phones keep their sessions. When it
    /// did not, the server must be started with the same `--signing-key` as before, or every
    /// phone signs in again.
    pub signing_key_restored: bool,
}

/// Restores the backup in `from` into `data_dir`, which must be absent or empty. Every file is
/// checked against the manifest first; a damaged or incomplete backup writes nothing.
pub fn restore(from: &Path, data_dir: &Path) -> Result<Restored, BackupError> {
    let data_dir = &std::path::absolute(data_dir)?;
    absent_or_empty(data_dir, "the data directory")?;
    let manifest = check(from)?;
    let staging = sibling(data_dir, "restoring")?;
    if staging.exists() {
        fs::remove_dir_all(&staging)?;
    }
    private_dir(&staging)?;
    let restored = restore_into(from, &manifest, &staging).and_then(|restored| {
        put_in_place(&staging, data_dir)?;
        Ok(Restored {
            data_dir: data_dir.display().to_string(),
            ..restored
        })
    });
    if restored.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    restored
}

fn restore_into(from: &Path, manifest: &Manifest, staging: &Path) -> Result<Restored, BackupError> {
    let damaged = |detail: String| BackupError::Damaged {
        dir: from.display().to_string(),
        detail,
    };
    {
        let db = sled::open(staging.join("db")).map_err(|e| StoreError::Backend(e.to_string()))?;
        let backend = |e: sled::Error| StoreError::Backend(e.to_string());
        for table in &manifest.tables {
            let name = hex::decode(&table.name_hex)
                .map_err(|_| damaged(format!("table name {:?} is not hex", table.name_hex)))?;
            if name == DEVICE_SCOPE_TABLE {
                continue;
            }
            let tree = db.open_tree(&name).map_err(backend)?;
            let mut batch = sled::Batch::default();
            let mut in_batch = 0;
            let mut failed = None;
            read_table(from, &table.file, &mut |key, value| {
                batch.insert(key, value);
                in_batch += 1;
                if in_batch == 10_000 {
                    in_batch = 0;
                    if let Err(e) = tree.apply_batch(std::mem::take(&mut batch)) {
                        failed = Some(e);
                        return Err("write".into());
                    }
                }
                Ok(())
            })
            .map_err(|detail| match failed.take() {
                Some(e) => BackupError::Store(backend(e)),
                None => damaged(detail),
            })?;
            tree.apply_batch(batch).map_err(backend)?;
        }
        renumber_feed(&db).map_err(backend)?;
        reindex_usernames(&db).map_err(|e| damaged(format!("accounts: {e}")))?;
        db.flush().map_err(backend)?;
    }

    let blobs = FileBlobs::open(&staging.join("blobs"))?;
    for photo in &manifest.photos {
        let path = format!("photos/{}/{}", &photo.sha256[..2], photo.sha256);
        let sum = FileSum {
            path,
            bytes: photo.bytes,
            sha256: photo.sha256.clone(),
        };
        let bytes = check_file(from, &sum).map_err(&damaged)?;
        let record_json = check_file(from, &photo.record).map_err(&damaged)?;
        let record: BlobRecord = serde_json::from_slice(&record_json)
            .map_err(|e| damaged(format!("{}: {e}", photo.record.path)))?;
        if record.sha256 != photo.sha256 {
            return Err(damaged(format!(
                "{} describes another photo",
                photo.record.path
            )));
        }
        blobs.commit(&record, &bytes)?;
    }

    if let Some(key) = &manifest.signing_key {
        let bytes = check_file(from, key).map_err(&damaged)?;
        write_file(staging, SIGNING_KEY_FILE, &bytes)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(
                staging.join(SIGNING_KEY_FILE),
                fs::Permissions::from_mode(0o600),
            )?;
        }
    }

    // Read back what was written, as the server will at its start.
    let store = SledStore::open(&staging.join("db"))?;
    let feed_head = store.feed_head()?;
    let documents = store.all_documents()?.len() as u64;
    let users = store.list_users()?.len() as u64;
    if (feed_head, documents, users) != (manifest.documents, manifest.documents, manifest.users) {
        return Err(damaged(format!(
            "restored feed head {feed_head}, {documents} documents, {users} accounts; the \
             manifest says {} documents and {} accounts",
            manifest.documents, manifest.users
        )));
    }
    let report = crate::integrity::check_documents(&store)?;
    if let Some(first) = report.damaged.first() {
        return Err(damaged(format!(
            "{} documents do not load, the first {}: {}",
            report.damaged.len(),
            first.id,
            first.reason
        )));
    }
    store.flush()?;
    drop(store);
    File::open(staging)?.sync_all()?;
    Ok(Restored {
        data_dir: String::new(),
        feed_head,
        documents,
        users,
        photos: manifest.photos.len() as u64,
        signing_key_restored: manifest.signing_key.is_some(),
    })
}

/// Numbers the restored feed 1, 2, … in its order, one position per document, and puts its
/// head at the last. Every cursor the lost server handed out after the backup is at least
/// [`crate::storage::BACKUP_FEED_GAP`] past the backup's head, so each phone that synced since
/// finds the server behind its cursor and sends everything it holds again
/// (`sync_core::client`): what it recorded after the backup comes back from the phones. The
/// lower head also catches phones whose last sync read the head just before the backup, as
/// long as the store held fewer documents than saves.
fn renumber_feed(db: &sled::Db) -> Result<(), sled::Error> {
    let doc_seq = db.open_tree("doc_seq")?;
    let mut feed: Vec<(u64, sled::IVec)> = Vec::new();
    for entry in doc_seq.iter() {
        let (id, seq) = entry?;
        let seq = <[u8; 8]>::try_from(seq.as_ref()).map_or(u64::MAX, u64::from_be_bytes);
        feed.push((seq, id));
    }
    feed.sort();
    let mut batch = sled::Batch::default();
    for (position, (_, id)) in feed.iter().enumerate() {
        batch.insert(id, &(position as u64 + 1).to_be_bytes()[..]);
    }
    doc_seq.apply_batch(batch)?;
    db.open_tree("meta")?
        .insert(FEED_HEAD, &(feed.len() as u64).to_be_bytes()[..])?;
    Ok(())
}

/// Builds the username index again from the accounts. The tables are copied one after the
/// other while only document saves are held, so an account created during the copy could be
/// in one of the two and not the other; the accounts are what counts.
fn reindex_usernames(db: &sled::Db) -> Result<(), String> {
    let users = db.open_tree(USERS_TABLE).map_err(|e| e.to_string())?;
    let usernames = db.open_tree("usernames").map_err(|e| e.to_string())?;
    usernames.clear().map_err(|e| e.to_string())?;
    for entry in users.iter() {
        let (id, json) = entry.map_err(|e| e.to_string())?;
        let record: crate::storage::UserRecord =
            serde_json::from_slice(&json).map_err(|e| e.to_string())?;
        usernames
            .insert(record.user.username.to_lowercase().as_bytes(), id)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Takes a backup of a server that is not running: opens its data directory (refused while a
/// server holds it) and copies it as the running server would.
pub fn take_offline(data_dir: &Path, to: &Path) -> Result<Manifest, BackupError> {
    let db = data_dir.join("db");
    if !db.exists() {
        return Err(BackupError::Refused(format!(
            "{} holds no ChiefSync data",
            data_dir.display()
        )));
    }
    let store = SledStore::open(&db).map_err(|e| {
        BackupError::Refused(format!(
            "{} cannot be opened ({e}): a server running over it does not answer on {} \
             (see its log)",
            data_dir.display(),
            control::socket_path(data_dir).display()
        ))
    })?;
    let blobs = FileBlobs::open(&data_dir.join("blobs"))?;
    take(&store, &blobs, data_dir, to)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use automerge::AutoCommit;
    use sync_core::doc::DocKind;
    use sync_core::hub::testing::doc_meta;
    use sync_core::hub::{DeviceLedger, DocumentStore};

    use super::*;

    /// A data directory with `n` documents, each saved once, and one phone's recorded scope.
    fn district(n: usize) -> (tempfile::TempDir, SledStore, FileBlobs) {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let store = SledStore::open(&data.join("db")).unwrap();
        let blobs = FileBlobs::open(&data.join("blobs")).unwrap();
        for i in 0..n {
            let id = format!("doc-{i}");
            let bytes = AutoCommit::new().save();
            store
                .save_document(&id, &doc_meta(&id, DocKind::Patrol), &bytes, &[])
                .unwrap();
        }
        store.put_device_scope("phone-1", "scope").unwrap();
        (dir, store, blobs)
    }

    #[test]
    fn the_live_feed_moves_past_the_copy_and_the_restore_numbers_it_per_document() {
        let (dir, store, blobs) = district(3);
        let data = dir.path().join("data");
        let to = dir.path().join("backup");
        let manifest = take(&store, &blobs, &data, &to).unwrap();
        assert_eq!((manifest.feed_head, manifest.documents), (3, 3));
        // Every cursor handed out from now on is far past the copy's head.
        let gap = crate::storage::BACKUP_FEED_GAP;
        assert_eq!(store.feed_head().unwrap(), 3 + gap);
        let id = "doc-after";
        store
            .save_document(
                id,
                &doc_meta(id, DocKind::Patrol),
                &AutoCommit::new().save(),
                &[],
            )
            .unwrap();
        assert_eq!(store.feed_head().unwrap(), 4 + gap);

        let restored_dir = dir.path().join("restored");
        let restored = restore(&to, &restored_dir).unwrap();
        assert_eq!((restored.feed_head, restored.documents), (3, 3));
        let back = SledStore::open(&restored_dir.join("db")).unwrap();
        assert!(back.document("doc-after").unwrap().is_none());
        assert!(back.document("doc-2").unwrap().is_some());
        // Each phone's next sync walks its whole scope again.
        assert_eq!(back.device_scope("phone-1").unwrap(), None);
    }

    #[test]
    fn misplaced_targets_are_refused_and_nothing_is_written() {
        let (dir, store, blobs) = district(1);
        let data = dir.path().join("data");
        let refused = |to: &Path| match take(&store, &blobs, &data, to) {
            Err(BackupError::Refused(reason)) => reason,
            other => panic!("{} was accepted: {other:?}", to.display()),
        };
        assert!(refused(Path::new("relative/backup")).contains("absolute"));
        assert!(refused(&data.join("backups").join("b")).contains("not usable"));
        fs::create_dir_all(data.join("backups")).unwrap();
        assert!(refused(&data.join("backups").join("b")).contains("inside the data directory"));
        let full = dir.path().join("full");
        fs::create_dir_all(&full).unwrap();
        fs::write(full.join("something"), b"x").unwrap();
        assert!(refused(&full).contains("not empty"));
        assert!(refused(&dir.path().join("no-such-parent").join("b")).contains("not usable"));
        // Nothing half-written is left beside the targets.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(names.iter().all(|n| !n.contains("partial")), "{names:?}");
    }

    #[test]
    fn one_backup_at_a_time_and_a_silent_caller_blocks_nobody() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().to_owned();
        let (entered, release) = (
            std::sync::Arc::new(std::sync::Barrier::new(2)),
            std::sync::Arc::new(std::sync::Mutex::new(())),
        );
        let gate = release.lock().unwrap();
        let (entered2, release2) = (entered.clone(), release.clone());
        control::listen(&data, move |_to| {
            entered2.wait();
            drop(release2.lock().unwrap());
            Err(BackupError::Refused("taken".into()))
        })
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(control::socket_path(&data).parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(
                mode & 0o777,
                0o700,
                "only the server's account reaches the socket"
            );
        }
        // A caller that connects and says nothing.
        let silent = std::os::unix::net::UnixStream::connect(control::socket_path(&data)).unwrap();
        let first = {
            let data = data.clone();
            std::thread::spawn(move || control::request(&data, Path::new("/tmp/one")))
        };
        entered.wait();
        // The first backup runs: a second is refused at once.
        match control::request(&data, Path::new("/tmp/two")) {
            Err(BackupError::Busy) => {}
            other => panic!("a second backup ran: {other:?}"),
        }
        drop(gate);
        match first.join().unwrap() {
            Err(BackupError::Refused(reason)) => assert_eq!(reason, "taken"),
            other => panic!("{other:?}"),
        }
        // The silent caller is cut off with an error once it has idled too long.
        silent
            .set_read_timeout(Some(control::IDLE + Duration::from_secs(5)))
            .unwrap();
        let mut answer = String::new();
        io::BufRead::read_line(&mut BufReader::new(&silent), &mut answer).unwrap();
        assert!(answer.contains("unreadable request"), "{answer}");
    }
}
