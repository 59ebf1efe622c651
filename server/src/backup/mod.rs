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
mod manifest;
mod restore;
mod take;

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::blobs::BlobError;
use crate::storage::StoreError;

pub use manifest::{check, Expected, FileSum, Manifest, PhotoFile, TableFile, FORMAT};
pub use restore::{restore, Restored};
pub use take::{take, take_offline};

const MANIFEST: &str = "manifest.json";
/// The file the server keeps its generated token signing key in (`auth::signing_key`).
const SIGNING_KEY_FILE: &str = "jwt-signing.key";

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

/// Creates a new private directory beside `dir` (on the same file system, so a rename moves
/// it) named `.name.suffix-<random>`. The name cannot be guessed and the directory must not
/// exist yet, so nobody else sharing the parent directory can have put a link or files there
/// first.
fn staging_beside(dir: &Path, suffix: &str) -> Result<PathBuf, BackupError> {
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| BackupError::Refused(format!("{} has no usable name", dir.display())))?;
    let staging = dir.with_file_name(format!(
        ".{name}.{suffix}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(&staging)?;
    Ok(staging)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use automerge::AutoCommit;
    use sync_core::doc::DocKind;
    use sync_core::hub::testing::doc_meta;
    use sync_core::hub::{DeviceLedger, DocumentStore};

    use std::io::BufReader;

    use super::*;
    use crate::blobs::FileBlobs;
    use crate::storage::SledStore;

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
        store.put_sync_state("phone-1", "doc-0", b"state").unwrap();
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
        let restored = restore(&to, &restored_dir, &Expected::Sha256(manifest.sha256())).unwrap();
        assert_eq!((restored.feed_head, restored.documents), (3, 3));
        let back = SledStore::open(&restored_dir.join("db")).unwrap();
        assert!(back.document("doc-after").unwrap().is_none());
        assert!(back.document("doc-2").unwrap().is_some());
        // Each phone's next sync walks its whole scope again.
        assert_eq!(back.device_scope("phone-1").unwrap(), None);
        // And exchanges single documents afresh: the lost server's sync states are not restored.
        assert_eq!(back.sync_state("phone-1", "doc-0").unwrap(), None);
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

    /// The backup of [`district`], its manifest re-read from disk.
    fn backed_up(n: usize) -> (tempfile::TempDir, PathBuf, Manifest) {
        let (dir, store, blobs) = district(n);
        let to = dir.path().join("backup");
        let manifest = take(&store, &blobs, &dir.path().join("data"), &to).unwrap();
        drop((store, blobs));
        (dir, to, manifest)
    }

    /// Rewrites the backup as a forger with write access to its disk would: a record added to
    /// the `meta` table and the manifest's sums made to match.
    fn forge(backup: &Path) {
        let mut manifest: Manifest =
            serde_json::from_slice(&fs::read(backup.join(MANIFEST)).unwrap()).unwrap();
        let table = manifest
            .tables
            .iter_mut()
            .find(|t| t.name_hex == hex::encode("meta"))
            .unwrap();
        let path = backup.join(&table.file.path);
        let mut bytes = fs::read(&path).unwrap();
        for part in [&b"forged"[..], &b"by someone"[..]] {
            bytes.extend_from_slice(&(part.len() as u32).to_be_bytes());
            bytes.extend_from_slice(part);
        }
        fs::write(&path, &bytes).unwrap();
        table.entries += 1;
        table.file.bytes = bytes.len() as u64;
        table.file.sha256 = sha256_hex(&bytes);
        fs::write(backup.join(MANIFEST), manifest.to_json()).unwrap();
    }

    #[test]
    fn a_restore_takes_only_the_manifest_it_was_given() {
        let (dir, to, manifest) = backed_up(2);
        assert_eq!(
            manifest.sha256(),
            sha256_hex(&fs::read(to.join(MANIFEST)).unwrap()),
            "the printed SHA-256 is the one of the file written"
        );
        forge(&to);
        // The forged backup passes its own sums, but not the SHA-256 printed at the backup.
        check(&to, &Expected::Trusted).unwrap();
        let restored_dir = dir.path().join("restored");
        for given in [manifest.sha256(), "00".repeat(32)] {
            match restore(&to, &restored_dir, &Expected::Sha256(given)) {
                Err(BackupError::Refused(reason)) => {
                    assert!(reason.contains("not the"), "{reason}")
                }
                other => panic!("a forged backup was restored: {other:?}"),
            }
            assert!(!restored_dir.exists(), "a refused restore wrote nothing");
        }
        // What --trust-manifest accepts: whatever the disk holds.
        restore(&to, &restored_dir, &Expected::Trusted).unwrap();
        let db = sled::open(restored_dir.join("db")).unwrap();
        assert!(db
            .open_tree("meta")
            .unwrap()
            .get("forged")
            .unwrap()
            .is_some());
    }

    #[test]
    fn links_pipes_and_files_changed_after_the_check_are_refused() {
        use std::os::unix::fs::symlink;
        let (dir, to, manifest) = backed_up(2);
        let expected = Expected::Sha256(manifest.sha256());
        let table = manifest.tables[0].file.clone();
        let original = to.join(&table.path);
        let kept = dir.path().join("kept.kv");
        fs::rename(&original, &kept).unwrap();

        // The same bytes through a link are still not a file of the backup.
        symlink(&kept, &original).unwrap();
        let reason = check(&to, &expected).unwrap_err().to_string();
        assert!(reason.contains("symbolic link"), "{reason}");

        // A pipe would hold the restore forever; it is refused at once.
        fs::remove_file(&original).unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(&original)
            .status()
            .unwrap();
        assert!(made.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let (to_checked, expected_checked) = (to.clone(), expected.clone());
        std::thread::spawn(move || tx.send(check(&to_checked, &expected_checked).map(|_| ())));
        let checked = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the check of a backup holding a pipe returned");
        let reason = checked.unwrap_err().to_string();
        assert!(reason.contains("not a plain file"), "{reason}");

        // The bytes a restore copies are the bytes it checks: a file changed after the check
        // of the whole backup is found while it is copied.
        fs::remove_file(&original).unwrap();
        let mut bytes = fs::read(&kept).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        fs::write(&original, &bytes).unwrap();
        let mut handed = 0;
        let read = manifest::read_table(&to, &table, &mut |_, _| {
            handed += 1;
            Ok(())
        });
        assert!(read.unwrap_err().contains("does not match its checksum"));
        assert!(handed > 0, "the records were read before the sum was known");
    }
}
