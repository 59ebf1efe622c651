//! Taking a backup: the store's tables copied while document saves are held, then the photos
//! and the signing key, then the manifest, under a temporary name renamed into place.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::manifest::{FileSum, Manifest, PhotoFile, TableFile, FORMAT};
use super::{
    absent_or_empty, control, put_in_place, staging_beside, write_file, BackupError, MANIFEST,
    SIGNING_KEY_FILE,
};
use crate::blobs::{BlobStore, FileBlobs};
use crate::storage::{SledStore, Store};

const DOCUMENTS_TABLE: &[u8] = b"doc_bytes";
const USERS_TABLE: &[u8] = b"users";

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
    let staging = staging_beside(to, "partial")?;
    let taken = take_into(store, blobs, data_dir, &staging).and_then(|manifest| {
        put_in_place(&staging, to)?;
        // Kept in the server's log, off the backup's disk: the restore asks for it.
        tracing::info!(to = %to.display(), manifest_sha256 = %manifest.sha256(), documents = manifest.documents, "backup taken");
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
        let saves = store.hold_saves()?;
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
    let json = manifest.to_json();
    for dir in [staging.join("store"), staging.to_owned()] {
        File::open(dir)?.sync_all()?;
    }
    write_file(staging, MANIFEST, &json)?;
    File::open(staging)?.sync_all()?;
    Ok(manifest)
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
