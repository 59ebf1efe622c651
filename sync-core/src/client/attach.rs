//! Attaching a photo to a patrol or an issue on the phone.
//!
//! The steps run in the order that keeps a crash harmless: the prepared JPEG is written to a
//! temporary file, flushed and renamed to `<sha256>.jpg`, so a file under its final name is
//! always whole; then the photo enters the store's outbox (flushed before it returns); only then
//! does the document reference it. A crash in between leaves at worst a photo that uploads
//! without being referenced, never a reference to a photo that cannot arrive. Attaching the
//! same photo again writes nothing twice: same bytes, same name, one outbox entry, one reference.
//!
//! The document change is made in memory; the caller saves the document as after any other
//! edit (`SyncClient::save`). This module uploads nothing.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::doc::{DocError, IssueDoc, PatrolDoc};
use crate::model::{PhotoRef, PhotoRole};
use crate::photo::{prepare, PhotoError, PhotoFormat, PrepareOptions};
use crate::store::{LocalStore, StoreError};

/// Why a photo could not be attached: the picture or its file ([`PhotoError`]), or the
/// phone's store refused the outbox entry.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The picture or its file.
    #[error(transparent)]
    Photo(#[from] PhotoError),
    /// The store refused the outbox entry.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<DocError> for AttachError {
    fn from(err: DocError) -> Self {
        AttachError::Photo(PhotoError::Doc(err))
    }
}

/// A document a photo can be attached to: a patrol or an issue.
pub trait PhotoTarget {
    /// The document id, under which the outbox links the photo to its record.
    fn record_id(&self) -> &str;
    /// The photos the record references.
    fn photos(&self) -> Result<Vec<PhotoRef>, DocError>;
    /// References one more photo from the record.
    fn add_photo(&mut self, photo: &PhotoRef) -> Result<(), DocError>;
}

impl PhotoTarget for PatrolDoc {
    fn record_id(&self) -> &str {
        self.id()
    }
    fn photos(&self) -> Result<Vec<PhotoRef>, DocError> {
        Ok(self.view()?.photos)
    }
    fn add_photo(&mut self, photo: &PhotoRef) -> Result<(), DocError> {
        PatrolDoc::add_photo(self, photo)
    }
}

impl PhotoTarget for IssueDoc {
    fn record_id(&self) -> &str {
        self.id()
    }
    fn photos(&self) -> Result<Vec<PhotoRef>, DocError> {
        Ok(self.view()?.photos)
    }
    fn add_photo(&mut self, photo: &PhotoRef) -> Result<(), DocError> {
        IssueDoc::add_photo(self, photo)
    }
}

/// Where the prepared photo named `sha256` lies on the phone.
pub fn photo_path(photo_dir: &Path, sha256: &str) -> PathBuf {
    photo_dir.join(format!("{sha256}.jpg"))
}

/// Where the phone keeps the original of the prepared photo `sha256` when configured to.
pub fn original_path(photo_dir: &Path, sha256: &str, format: PhotoFormat) -> PathBuf {
    photo_dir
        .join("originals")
        .join(format!("{sha256}.{}", format.extension()))
}

/// Prepares the camera photo `file`, stores it in `photo_dir` and puts it in the outbox under
/// `record_id`, without referencing it from the record: for an after photo a handler takes,
/// which travels in the rectification event (the issue's photo list is its reporter's and
/// supervisors'). Returns the reference to put in the event.
pub fn stage_photo(
    store: &LocalStore,
    record_id: &str,
    file: &Path,
    role: PhotoRole,
    opts: &PrepareOptions,
    photo_dir: &Path,
) -> Result<PhotoRef, AttachError> {
    let original = read_at_most(file, opts.max_file_bytes)?;
    let prepared = prepare(&original, opts)?;

    let path = photo_path(photo_dir, &prepared.sha256);
    write_once(&path, &prepared.jpeg)?;
    if opts.keep_original {
        let kept = original_path(photo_dir, &prepared.sha256, prepared.original_format);
        write_once(&kept, &original)?;
    }

    // The outbox reopens the file by this path later; a path that is not text cannot be kept.
    let path_text = path.to_str().ok_or_else(|| PhotoError::Io {
        path: path.clone(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "photo path is not UTF-8"),
    })?;
    store.enqueue_photo(
        &prepared.sha256,
        record_id,
        path_text,
        prepared.jpeg.len() as u64,
    )?;

    Ok(prepared.photo_ref(role))
}

/// Prepares the camera photo `file`, stores it in `photo_dir`, puts it in the outbox and
/// references it from `record` in `role`. Returns the reference, whether new or already there.
pub fn attach_photo(
    store: &LocalStore,
    record: &mut impl PhotoTarget,
    file: &Path,
    role: PhotoRole,
    opts: &PrepareOptions,
    photo_dir: &Path,
) -> Result<PhotoRef, AttachError> {
    let photo = stage_photo(store, record.record_id(), file, role, opts, photo_dir)?;
    let referenced = record
        .photos()?
        .iter()
        .any(|p| p.sha256 == photo.sha256 && p.role == role);
    if !referenced {
        record.add_photo(&photo)?;
    }
    Ok(photo)
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> PhotoError + '_ {
    move |source| PhotoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a camera file, refusing it unread if it is larger than `max` bytes.
fn read_at_most(file: &Path, max: u64) -> Result<Vec<u8>, PhotoError> {
    let f = File::open(file).map_err(io_error(file))?;
    let declared = f.metadata().map_err(io_error(file))?.len();
    if declared > max {
        return Err(PhotoError::TooLarge {
            bytes: declared,
            max,
        });
    }
    let mut bytes = Vec::new();
    // The file may grow while it is read (a camera app still writing it); never read past max.
    f.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_error(file))?;
    if bytes.len() as u64 > max {
        return Err(PhotoError::TooLarge {
            bytes: bytes.len() as u64,
            max,
        });
    }
    Ok(bytes)
}

/// Writes `bytes` to `path` unless it exists: into a temporary file in the same directory,
/// flushed to disk, then renamed, and the directory flushed so the rename survives power loss.
/// A file only ever appears under its final name whole, so an existing one is complete.
fn write_once(path: &Path, bytes: &[u8]) -> Result<(), PhotoError> {
    if path.exists() {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".incoming-")
        .tempfile_in(dir)
        .map_err(io_error(dir))?;
    temp.write_all(bytes).map_err(io_error(temp.path()))?;
    temp.as_file().sync_all().map_err(io_error(path))?;
    temp.persist(path).map_err(|e| io_error(path)(e.error))?;
    sync_dir(dir)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), PhotoError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// Other systems cannot open a directory to flush it; their rename is as durable as it gets.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), PhotoError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::{actor_for, NewIssue, NewPatrol};
    use crate::model::{DivisionCode, Jurisdiction, Level, Role, Severity, System, User};
    use crate::photo::sha256_hex;
    use crate::photo::testimg::{jpeg, textured, with_exif, ExifSpec};
    use crate::store::{SledStorage, UploadState};
    use std::sync::Arc;

    const T0: i64 = 1_764_291_600_000;

    fn village() -> DivisionCode {
        DivisionCode::new("370105014201").unwrap()
    }

    fn patrol() -> PatrolDoc {
        PatrolDoc::create(
            actor_for(1),
            &NewPatrol {
                system: System::River,
                asset: "xqh-01".into(),
                chief: "u-chief".into(),
                division: village(),
                device: "phone-1".into(),
                started_at_ms: T0,
            },
        )
        .unwrap()
    }

    fn issue(patrol_id: &str) -> IssueDoc {
        let chief = User {
            id: "u-chief".into(),
            username: "demo-chief".into(),
            display_name: "小寨村河长".into(),
            role: Role::Chief {
                system: System::River,
                level: Level::Village,
                jurisdiction: Jurisdiction {
                    division: village(),
                    assets: vec!["xqh-01".into()],
                },
            },
            active: true,
        };
        let new = NewIssue {
            system: System::River,
            category: "river.garbage".into(),
            severity: Severity::General,
            asset: "xqh-01".into(),
            division: village(),
            location: [116.98, 36.72],
            description: "河面漂浮垃圾".into(),
            patrol: Some(patrol_id.into()),
        };
        IssueDoc::report(actor_for(1), &chief, "phone-1", T0, &new).unwrap()
    }

    struct Phone {
        store: LocalStore,
        dir: tempfile::TempDir,
    }

    impl Phone {
        fn new() -> Self {
            Self {
                store: LocalStore::new(Arc::new(SledStorage::temporary().unwrap())),
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn photos(&self) -> PathBuf {
            self.dir.path().join("photos")
        }
        fn camera_file(&self, name: &str, bytes: &[u8]) -> PathBuf {
            let path = self.dir.path().join(name);
            fs::write(&path, bytes).unwrap();
            path
        }
        fn listing(&self) -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(self.photos())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        }
    }

    #[test]
    fn attaching_writes_the_photo_whole_enqueues_it_and_references_it_once() {
        let phone = Phone::new();
        let camera = with_exif(
            &jpeg(&textured(2400, 1800)),
            &ExifSpec {
                taken: Some("2025:11:28 09:20:00"),
                ..ExifSpec::default()
            },
        );
        let file = phone.camera_file("IMG_0001.jpg", &camera);
        let mut patrol = patrol();
        let opts = PrepareOptions::default();

        let photo = attach_photo(
            &phone.store,
            &mut patrol,
            &file,
            PhotoRole::Evidence,
            &opts,
            &phone.photos(),
        )
        .unwrap();

        let path = photo_path(&phone.photos(), &photo.sha256);
        let stored = fs::read(&path).unwrap();
        assert_eq!(sha256_hex(&stored), photo.sha256);
        assert_eq!(stored.len() as u64, photo.bytes);
        assert_eq!(photo.taken_at_ms, Some(T0 + 20 * 60_000));
        // Only the finished photo: no temporary file left beside it, no original kept.
        assert_eq!(phone.listing(), vec![format!("{}.jpg", photo.sha256)]);

        let outbox = phone.store.outbox().unwrap();
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].sha256, photo.sha256);
        assert_eq!(outbox[0].record_ids, vec![patrol.id().to_string()]);
        assert_eq!(outbox[0].path, path.to_str().unwrap());
        assert_eq!(outbox[0].size, photo.bytes);
        assert_eq!(outbox[0].state, UploadState::Waiting);
        assert_eq!(patrol.view().unwrap().photos, vec![photo.clone()]);
        assert!(!phone.store.record_photos_done(patrol.id()).unwrap());

        // The same photo again (a double tap, a retry after a crash): nothing doubles.
        phone.store.mark_progress(&photo.sha256, 4096).unwrap();
        let again = attach_photo(
            &phone.store,
            &mut patrol,
            &file,
            PhotoRole::Evidence,
            &opts,
            &phone.photos(),
        )
        .unwrap();
        assert_eq!(again, photo);
        let outbox = phone.store.outbox().unwrap();
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].state, UploadState::Uploading { offset: 4096 });
        assert_eq!(patrol.view().unwrap().photos.len(), 1);
        assert_eq!(phone.listing().len(), 1);

        // The issue raised on this patrol shows the same photo: one upload, two records.
        let mut issue = issue(patrol.id());
        attach_photo(
            &phone.store,
            &mut issue,
            &file,
            PhotoRole::Before,
            &opts,
            &phone.photos(),
        )
        .unwrap();
        let outbox = phone.store.outbox().unwrap();
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].record_ids.len(), 2);
        assert_eq!(issue.view().unwrap().photos[0].role, PhotoRole::Before);
        phone.store.mark_done(&photo.sha256).unwrap();
        assert!(phone.store.record_photos_done(issue.id()).unwrap());
    }

    #[test]
    fn the_original_is_kept_on_the_phone_only_when_configured() {
        let phone = Phone::new();
        let camera = jpeg(&textured(200, 150));
        let file = phone.camera_file("IMG_0002.jpg", &camera);
        let opts = PrepareOptions {
            keep_original: true,
            ..PrepareOptions::default()
        };
        let photo = attach_photo(
            &phone.store,
            &mut patrol(),
            &file,
            PhotoRole::Evidence,
            &opts,
            &phone.photos(),
        )
        .unwrap();
        let kept = original_path(&phone.photos(), &photo.sha256, PhotoFormat::Jpeg);
        assert_eq!(fs::read(kept).unwrap(), camera);
        // Only the prepared photo is queued for upload.
        let outbox = phone.store.outbox().unwrap();
        assert_eq!(outbox.len(), 1);
        assert_eq!(outbox[0].size, photo.bytes);
    }

    #[test]
    fn a_refused_file_leaves_no_trace() {
        let phone = Phone::new();
        let mut patrol = patrol();
        let text = phone.camera_file("notes.jpg", b"not a photo at all");
        assert!(matches!(
            attach_photo(
                &phone.store,
                &mut patrol,
                &text,
                PhotoRole::Evidence,
                &PrepareOptions::default(),
                &phone.photos()
            ),
            Err(AttachError::Photo(PhotoError::NotAnImage))
        ));
        let missing = phone.dir.path().join("IMG_9999.jpg");
        assert!(matches!(
            attach_photo(
                &phone.store,
                &mut patrol,
                &missing,
                PhotoRole::Evidence,
                &PrepareOptions::default(),
                &phone.photos()
            ),
            Err(AttachError::Photo(PhotoError::Io { .. }))
        ));
        assert!(!phone.photos().exists());
        assert!(phone.store.outbox().unwrap().is_empty());
        assert!(patrol.view().unwrap().photos.is_empty());
    }
}
