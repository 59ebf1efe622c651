//! Blobs as files under `<data-dir>/blobs/`:
//!
//! ```text
//! objects/ab/abcd…        the photo bytes; the name is their SHA-256, checked on every read
//! objects/ab/abcd….record the receipt record (JSON), CRC32-sealed
//! thumbs/ab/abcd….jpg     the cached thumbnail, CRC32-sealed
//! incoming/abcd….<user>   an interrupted upload, per blob and uploader
//! tmp/                    files being written; emptied at open
//! ```
//!
//! Files rather than sled values: photos are hundreds of kilobytes to megabytes, which sled
//! would copy through its page cache and log on every write, while a file is written once and
//! served as is. Every complete file is written under a temporary name in `tmp/` (same file
//! system), fsynced, then renamed into place and its directory fsynced, so a crash leaves either
//! nothing or the whole file. The record is renamed in before the blob, and a blob counts as
//! stored only when its bytes are there, so a record never describes a half-written blob.

use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::{is_sha256, BlobError, BlobRecord, BlobStore, IdlePartial, UploadKey};

#[derive(Debug)]
pub struct FileBlobs {
    root: PathBuf,
}

impl FileBlobs {
    /// Opens (or creates) the blob directory and removes what a crash left behind: temporary
    /// files, and partial uploads of photos already stored (a crash between a photo's commit and
    /// the removal of its partial leaves one, which no upload would ever resume or finish).
    pub fn open(root: &Path) -> Result<Self, BlobError> {
        for dir in ["objects", "thumbs", "incoming", "tmp"] {
            fs::create_dir_all(root.join(dir))?;
        }
        for entry in fs::read_dir(root.join("tmp"))? {
            fs::remove_file(entry?.path())?;
        }
        let blobs = Self {
            root: root.to_owned(),
        };
        let mut removed = false;
        for entry in fs::read_dir(root.join("incoming"))? {
            let entry = entry?;
            let name = entry.file_name();
            let Some((sha256, _user)) = name.to_str().and_then(|n| n.split_once('.')) else {
                continue;
            };
            if is_sha256(sha256) && blobs.object(sha256, "")?.exists() {
                fs::remove_file(entry.path())?;
                removed = true;
            }
        }
        if removed {
            sync_dir(&root.join("incoming"))?;
        }
        Ok(blobs)
    }

    fn object(&self, sha256: &str, suffix: &str) -> Result<PathBuf, BlobError> {
        Ok(self
            .root
            .join("objects")
            .join(&checked(sha256)?[..2])
            .join(format!("{sha256}{suffix}")))
    }

    fn thumb(&self, sha256: &str) -> Result<PathBuf, BlobError> {
        Ok(self
            .root
            .join("thumbs")
            .join(&checked(sha256)?[..2])
            .join(format!("{sha256}.jpg")))
    }

    fn incoming(&self, key: &UploadKey) -> Result<PathBuf, BlobError> {
        // The uploader's id is hashed so any id makes a short, safe file name.
        let user = hex::encode(&Sha256::digest(key.user.as_bytes())[..16]);
        Ok(self
            .root
            .join("incoming")
            .join(format!("{}.{user}", checked(&key.sha256)?)))
    }

    /// Writes `bytes` to `path` all at once: temporary file, fsync, rename, fsync directory.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), BlobError> {
        let dir = path.parent().expect("blob paths have a directory");
        fs::create_dir_all(dir)?;
        let tmp = self
            .root
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string());
        let written = (|| {
            let mut file = File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, path)?;
            sync_dir(dir)
        })();
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        Ok(written?)
    }
}

fn checked(sha256: &str) -> Result<&str, BlobError> {
    if is_sha256(sha256) {
        Ok(sha256)
    } else {
        Err(io::Error::new(ErrorKind::InvalidInput, "not a blob name").into())
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, BlobError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// CRC32 (little-endian) in front of the bytes.
fn seal(bytes: &[u8]) -> Vec<u8> {
    let mut out = crc32fast::hash(bytes).to_le_bytes().to_vec();
    out.extend_from_slice(bytes);
    out
}

fn unseal(what: &Path, sealed: Vec<u8>) -> Result<Vec<u8>, BlobError> {
    let corrupt = |detail: &str| BlobError::Corrupt {
        what: what.display().to_string(),
        detail: detail.to_owned(),
    };
    if sealed.len() < 4 {
        return Err(corrupt("shorter than its checksum"));
    }
    let (crc, bytes) = sealed.split_at(4);
    if crc32fast::hash(bytes).to_le_bytes() != crc {
        return Err(corrupt("checksum mismatch"));
    }
    Ok(bytes.to_vec())
}

impl BlobStore for FileBlobs {
    fn record(&self, sha256: &str) -> Result<Option<BlobRecord>, BlobError> {
        if !self.object(sha256, "")?.exists() {
            return Ok(None);
        }
        let path = self.object(sha256, ".record")?;
        let sealed = read_if_exists(&path)?.ok_or_else(|| BlobError::Corrupt {
            what: sha256.to_owned(),
            detail: "stored without its record".into(),
        })?;
        let record =
            serde_json::from_slice(&unseal(&path, sealed)?).map_err(|e| BlobError::Corrupt {
                what: path.display().to_string(),
                detail: e.to_string(),
            })?;
        Ok(Some(record))
    }

    fn read(&self, sha256: &str) -> Result<Option<Vec<u8>>, BlobError> {
        let Some(bytes) = read_if_exists(&self.object(sha256, "")?)? else {
            return Ok(None);
        };
        let actual = hex::encode(Sha256::digest(&bytes));
        if actual != sha256 {
            return Err(BlobError::Corrupt {
                what: sha256.to_owned(),
                detail: format!("stored bytes hash to {actual}"),
            });
        }
        Ok(Some(bytes))
    }

    fn commit(&self, record: &BlobRecord, bytes: &[u8]) -> Result<bool, BlobError> {
        let path = self.object(&record.sha256, "")?;
        if path.exists() {
            return Ok(false);
        }
        let json = serde_json::to_vec(record).map_err(io::Error::other)?;
        self.write_atomic(&self.object(&record.sha256, ".record")?, &seal(&json))?;
        self.write_atomic(&path, bytes)?;
        Ok(true)
    }

    fn partial_len(&self, key: &UploadKey) -> Result<Option<u64>, BlobError> {
        match fs::metadata(self.incoming(key)?) {
            Ok(meta) => Ok(Some(meta.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn write_partial(&self, key: &UploadKey, offset: u64, bytes: &[u8]) -> Result<u64, BlobError> {
        let path = self.incoming(key)?;
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        if offset > file.metadata()?.len() {
            return Err(
                io::Error::new(ErrorKind::InvalidInput, "offset after the held bytes").into(),
            );
        }
        file.set_len(offset)?;
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(bytes)?;
        // The offset a client is told must survive a crash, or it would resume past a gap.
        file.sync_all()?;
        if !existed {
            sync_dir(path.parent().expect("incoming has a directory"))?;
        }
        Ok(file.metadata()?.len())
    }

    fn read_partial(&self, key: &UploadKey) -> Result<Vec<u8>, BlobError> {
        Ok(read_if_exists(&self.incoming(key)?)?.unwrap_or_default())
    }

    fn discard_partial(&self, key: &UploadKey) -> Result<(), BlobError> {
        match fs::remove_file(self.incoming(key)?) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn idle_partials(&self, cutoff: SystemTime) -> Result<Vec<IdlePartial>, BlobError> {
        let mut idle = Vec::new();
        for entry in fs::read_dir(self.root.join("incoming"))? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let Some((sha256, _user)) = name.split_once('.') else {
                continue;
            };
            if is_sha256(sha256) && entry.metadata()?.modified()? < cutoff {
                idle.push(IdlePartial {
                    sha256: sha256.to_owned(),
                    name: name.clone(),
                });
            }
        }
        Ok(idle)
    }

    fn discard_idle(&self, partial: &IdlePartial, cutoff: SystemTime) -> Result<bool, BlobError> {
        if !partial.name.starts_with(checked(&partial.sha256)?) || partial.name.contains('/') {
            return Err(
                io::Error::new(ErrorKind::InvalidInput, "not a partial upload name").into(),
            );
        }
        let path = self.root.join("incoming").join(&partial.name);
        match fs::metadata(&path) {
            Ok(meta) if meta.modified()? < cutoff => {
                fs::remove_file(&path)?;
                sync_dir(path.parent().expect("incoming has a directory"))?;
                Ok(true)
            }
            Ok(_) => Ok(false),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn thumbnail(&self, sha256: &str) -> Result<Option<Vec<u8>>, BlobError> {
        let path = self.thumb(sha256)?;
        read_if_exists(&path)?
            .map(|sealed| unseal(&path, sealed))
            .transpose()
    }

    fn put_thumbnail(&self, sha256: &str, jpeg: &[u8]) -> Result<(), BlobError> {
        self.write_atomic(&self.thumb(sha256)?, &seal(jpeg))
    }

    fn stored(&self) -> Result<Vec<String>, BlobError> {
        let mut names = Vec::new();
        for shard in fs::read_dir(self.root.join("objects"))? {
            let shard = shard?;
            if !shard.file_type()?.is_dir() {
                continue;
            }
            for entry in fs::read_dir(shard.path())? {
                if let Ok(name) = entry?.file_name().into_string() {
                    if is_sha256(&name) {
                        names.push(name);
                    }
                }
            }
        }
        names.sort();
        Ok(names)
    }

    fn remove(&self, sha256: &str) -> Result<bool, BlobError> {
        let object = self.object(sha256, "")?;
        let thumb = self.thumb(sha256)?;
        let removed = remove_if_exists(&object)?;
        if removed {
            sync_dir(object.parent().expect("blob paths have a directory"))?;
        }
        remove_if_exists(&self.object(sha256, ".record")?)?;
        if remove_if_exists(&thumb)? {
            sync_dir(thumb.parent().expect("thumbnail paths have a directory"))?;
        }
        Ok(removed)
    }
}

fn remove_if_exists(path: &Path) -> Result<bool, BlobError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::FileBlobs;
    use crate::blobs::conformance::Harness;
    use crate::blobs::{BlobRecord, BlobStore, UploadKey};
    use sync_core::photo::PhotoFormat;

    struct FileHarness {
        dir: tempfile::TempDir,
    }

    impl Harness for FileHarness {
        fn open(&self) -> Box<dyn BlobStore> {
            Box::new(FileBlobs::open(self.dir.path()).expect("open blob dir"))
        }

        fn damage(&self, sha256: &str) {
            let path = self
                .dir
                .path()
                .join("objects")
                .join(&sha256[..2])
                .join(sha256);
            let mut bytes = std::fs::read(&path).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x40;
            std::fs::write(&path, bytes).unwrap();
        }
    }

    blob_conformance_tests!(FileHarness {
        dir: tempfile::tempdir().expect("temp dir"),
    });

    #[test]
    fn leftover_temporary_files_are_removed_at_open() {
        let dir = tempfile::tempdir().unwrap();
        drop(FileBlobs::open(dir.path()).unwrap());
        let leftover = dir.path().join("tmp").join("half-written");
        std::fs::write(&leftover, b"half").unwrap();
        drop(FileBlobs::open(dir.path()).unwrap());
        assert!(!leftover.exists());
    }

    #[test]
    fn partials_of_stored_photos_are_removed_at_open_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = FileBlobs::open(dir.path()).unwrap();
        let stored = b"a stored photo".to_vec();
        let other = b"a photo still uploading".to_vec();
        let key = |bytes: &[u8]| UploadKey {
            sha256: sync_core::photo::sha256_hex(bytes),
            user: "u-demo-chief".into(),
        };
        // As a crash between the commit and the removal of the partial leaves them.
        blobs.write_partial(&key(&stored), 0, &stored).unwrap();
        blobs.write_partial(&key(&other), 0, &other[..5]).unwrap();
        let record = BlobRecord {
            sha256: key(&stored).sha256,
            format: PhotoFormat::Jpeg,
            width: 1,
            height: 1,
            bytes: stored.len() as u64,
            received_at_ms: 1_764_291_600_000,
            uploaded_by: "u-demo-chief".into(),
        };
        assert!(blobs.commit(&record, &stored).unwrap());
        drop(blobs);

        let blobs = FileBlobs::open(dir.path()).unwrap();
        assert_eq!(blobs.partial_len(&key(&stored)).unwrap(), None);
        assert_eq!(blobs.partial_len(&key(&other)).unwrap(), Some(5));
        assert_eq!(blobs.read(&record.sha256).unwrap(), Some(stored));
    }
}
