//! Restoring a backup into a new data directory: every file checked against the manifest
//! first, the store written under a temporary name, read back and checked, then renamed into
//! place.

use std::fs::{self, File};
use std::path::Path;

use serde::Serialize;

use super::manifest::{check, check_file, read_table, Expected, FileSum, Manifest};
use super::{
    absent_or_empty, put_in_place, staging_beside, write_file, BackupError, SIGNING_KEY_FILE,
};
use crate::blobs::{BlobRecord, BlobStore, FileBlobs};
use crate::storage::{SledStore, Store, StoreError};
use sync_core::hub::DocumentStore;

/// Tables a restore leaves out. What each phone's scope was last synced as (see the module
/// `backup`), and the automerge sync states of single documents: they name heads the lost
/// server shared with a phone after the backup, which the restored one does not hold; a phone
/// without a state starts that exchange afresh, at the cost of one more message. Statistics
/// facts name feed positions of the lost server, which a restore numbers again: the restored
/// server works them out once from the documents (`crate::stats`).
const LEFT_OUT: [&[u8]; 3] = [b"device_scope", b"sync_states", b"stats_facts"];
const USERS_TABLE: &[u8] = b"users";
/// Where the sled store keeps its feed head, in its `meta` table (`storage::sled_documents`).
const FEED_HEAD: &[u8] = b"feed.head";

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

/// Restores the backup in `from` into `data_dir`, which must be absent or empty. The manifest
/// must be the one `expected`, and every file is checked against it first and again as it is
/// copied; a damaged, changed or incomplete backup writes nothing.
pub fn restore(from: &Path, data_dir: &Path, expected: &Expected) -> Result<Restored, BackupError> {
    let data_dir = &std::path::absolute(data_dir)?;
    absent_or_empty(data_dir, "the data directory")?;
    let manifest = check(from, expected)?;
    let staging = staging_beside(data_dir, "restoring")?;
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
            if LEFT_OUT.contains(&name.as_slice()) {
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
