//! Which documents reference which photo: the index that decides who may download a blob.
//!
//! A photo's name is only its hash, and anyone who learns a hash can write it into a record of
//! his own. So a reference shows a photo only when it was made by the person who uploaded the
//! photo, acting within his role: the patrol's chief for a patrol's photos; for an issue's own
//! photos its reporter or a supervisor of it (who may edit its record); for after photos the
//! one who submitted that rectification. A user may download a photo when a record in his scope
//! references it in that way. The honest cases keep working: a supervisor opening an issue in
//! his division sees the reporter's photos, the chief sees his own, the handler his after
//! photos; a chief who copies another's hash into his own record sees nothing, and the record
//! shows the photo as not received.
//!
//! The index follows the hub's change feed rather than hooks in handlers: every writer of a
//! document (batch sync, automerge sync, workflow actions from the dashboard, the deadline job,
//! the demo seed) goes through `save_document`, which appends to the feed, so nothing that
//! references a photo can be missed. Before answering, the index reads the documents whose
//! feed position moved past its cursor and records their photo names (the `photos` list and
//! the after photos named by rectification events) with their routing facts.
//!
//! It lives in memory and is rebuilt from the feed after a restart (the first photo request
//! walks every document once); it holds about 150 bytes per reference. Photos are append-only
//! in documents, but routing facts change (an issue is reassigned), so a document's entry is
//! replaced whole each time it changes.
//!
//! A document that cannot be read (damaged, or whose photo list does not load) is skipped and
//! remembered until a later save of it reads: its photos may be referenced without the index
//! knowing. While any is skipped, [`PhotoIndex::referenced`] answers yes for every photo, so
//! that collecting unreferenced photos cannot delete evidence a damaged record holds (the
//! index is rebuilt after every restart, so an older entry of it cannot be relied on).

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use sync_core::authz::DocMeta;
use sync_core::doc::{DocError, DocKind, IssueDoc, PatrolDoc};
use sync_core::hub::read::ReadScope;
use sync_core::hub::{HubError, HubStore};
use sync_core::model::User;
use sync_core::workflow::{self, Action, IssueContext, IssueState};

/// The user whose upload stored a photo, as the access rule needs him: his id (from the
/// photo's receipt record) and, when his account still exists, his role.
#[derive(Debug, Clone)]
pub struct Uploader {
    pub id: String,
    pub user: Option<User>,
}

#[derive(Debug, Default)]
pub struct PhotoIndex {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Feed position read up to.
    cursor: u64,
    docs: HashMap<String, Indexed>,
    /// Blob name → ids of the documents referencing it.
    blobs: HashMap<String, BTreeSet<String>>,
    /// Documents whose photos could not be read when they last changed.
    unreadable: BTreeSet<String>,
}

#[derive(Debug)]
struct Indexed {
    meta: DocMeta,
    photos: Vec<String>,
}

impl PhotoIndex {
    pub fn new() -> Self {
        Self::default()
    }

    /// Routing facts of every document that references `sha256`.
    pub fn documents<S: HubStore + ?Sized>(
        &self,
        store: &S,
        sha256: &str,
    ) -> Result<Vec<DocMeta>, HubError> {
        let mut inner = self.lock();
        inner.catch_up(store)?;
        Ok(inner
            .blobs
            .get(sha256)
            .into_iter()
            .flatten()
            .filter_map(|id| inner.docs.get(id).map(|d| d.meta.clone()))
            .collect())
    }

    /// Whether any document references `sha256`, however made; yes for every photo while a
    /// document could not be read ([`PhotoIndex::unreadable`]), since it may be among its.
    pub fn referenced<S: HubStore + ?Sized>(
        &self,
        store: &S,
        sha256: &str,
    ) -> Result<bool, HubError> {
        let mut inner = self.lock();
        inner.catch_up(store)?;
        Ok(!inner.unreadable.is_empty() || inner.blobs.contains_key(sha256))
    }

    /// The documents whose photos could not be read at their latest save (damaged, or not
    /// loading), in id order: their photos are unknown until they are repaired.
    pub fn unreadable<S: HubStore + ?Sized>(&self, store: &S) -> Result<Vec<String>, HubError> {
        let mut inner = self.lock();
        inner.catch_up(store)?;
        Ok(inner.unreadable.iter().cloned().collect())
    }

    /// Whether `user` may see the photo `sha256` that `uploader` uploaded: whether a document
    /// in his scope references it by its uploader's hand (see the module's rule).
    pub fn visible_to<S: HubStore + ?Sized>(
        &self,
        store: &S,
        user: &User,
        sha256: &str,
        uploader: &Uploader,
    ) -> Result<bool, HubError> {
        let reads = ReadScope::of(user);
        for meta in self.documents(store, sha256)? {
            if !reads.sees(&meta) {
                continue;
            }
            let Some(stored) = store.document(&meta.id)? else {
                continue;
            };
            match attached_by(meta.kind, &stored.bytes, sha256, uploader) {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(err) => {
                    tracing::error!(doc = %meta.id, error = %err, "cannot read who attached a photo");
                }
            }
        }
        Ok(false)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every update below replaces whole entries, so a panic mid-way leaves a consistent map.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Inner {
    fn catch_up<S: HubStore + ?Sized>(&mut self, store: &S) -> Result<(), HubError> {
        let head = store.feed_head()?;
        if head <= self.cursor {
            return Ok(());
        }
        for meta in store.changed_since(self.cursor, head, &|_| true)? {
            // A damaged document must not stop every photo from being served; its own photos
            // stay unreachable until it is repaired (`chiefsync verify` reports it). It is
            // remembered, so that no photo counts as unreferenced meanwhile.
            let stored = match store.document(&meta.id) {
                Ok(Some(stored)) => stored,
                Ok(None) => {
                    self.unreadable.remove(&meta.id);
                    continue;
                }
                Err(err @ HubError::Damaged { .. }) => {
                    tracing::error!(doc = %meta.id, error = %err, "cannot index the photos of a document");
                    self.unreadable.insert(meta.id.clone());
                    continue;
                }
                Err(err) => return Err(err),
            };
            let photos = match referenced_photos(meta.kind, &stored.bytes) {
                Ok(photos) => photos,
                Err(err) => {
                    tracing::error!(doc = %meta.id, error = %err, "cannot index the photos of a document");
                    self.unreadable.insert(meta.id.clone());
                    continue;
                }
            };
            self.unreadable.remove(&meta.id);
            self.replace(stored.meta, photos);
        }
        self.cursor = head;
        Ok(())
    }

    fn replace(&mut self, meta: DocMeta, photos: Vec<String>) {
        if let Some(old) = self.docs.remove(&meta.id) {
            for sha in &old.photos {
                if let Some(ids) = self.blobs.get_mut(sha) {
                    ids.remove(&meta.id);
                    if ids.is_empty() {
                        self.blobs.remove(sha);
                    }
                }
            }
        }
        if photos.is_empty() {
            return;
        }
        for sha in &photos {
            self.blobs
                .entry(sha.clone())
                .or_default()
                .insert(meta.id.clone());
        }
        self.docs.insert(meta.id.clone(), Indexed { meta, photos });
    }
}

/// Who may put photos into a record's own photo list: a patrol's chief; an issue's reporter or
/// anyone who may edit its record (its supervisors).
#[derive(Debug, Clone, PartialEq)]
pub enum RecordEditors {
    Patrol {
        chief: String,
    },
    Issue {
        context: IssueContext,
        state: Box<IssueState>,
    },
}

impl RecordEditors {
    /// Whether `uploader` is one of them. Roles are taken as the uploader's account has them
    /// now, active or not: a chief who has left still took his photos.
    pub fn include(&self, uploader: &Uploader) -> bool {
        match self {
            RecordEditors::Patrol { chief } => *chief == uploader.id,
            RecordEditors::Issue { context, state } => {
                if context.reporter == uploader.id {
                    return true;
                }
                let Some(user) = &uploader.user else {
                    return false;
                };
                let user = User {
                    active: true,
                    ..user.clone()
                };
                workflow::edits_record(&workflow::relations(&user, context, state))
            }
        }
    }
}

/// Whether the document (`kind`, `bytes`) references `sha256` by the hand of `uploader`: in its
/// own photo list when he is one of its [`RecordEditors`]; as an after photo when he submitted
/// that rectification.
fn attached_by(
    kind: DocKind,
    bytes: &[u8],
    sha256: &str,
    uploader: &Uploader,
) -> Result<bool, DocError> {
    match kind {
        DocKind::Patrol => {
            let patrol = PatrolDoc::load(bytes)?.view()?;
            let editors = RecordEditors::Patrol {
                chief: patrol.chief,
            };
            Ok(editors.include(uploader) && patrol.photos.iter().any(|p| p.sha256 == sha256))
        }
        DocKind::Issue => {
            let issue = IssueDoc::load(bytes)?;
            for event in issue.events()? {
                if let Action::RectificationSubmitted { photos, .. } = &event.action {
                    if event.by == uploader.id && photos.iter().any(|p| p == sha256) {
                        return Ok(true);
                    }
                }
            }
            if !issue.view()?.photos.iter().any(|p| p.sha256 == sha256) {
                return Ok(false);
            }
            let editors = RecordEditors::Issue {
                context: issue.context()?,
                state: Box::new(issue.state()?),
            };
            Ok(editors.include(uploader))
        }
    }
}

/// Every photo name a saved document references, without duplicates.
pub fn referenced_photos(kind: DocKind, bytes: &[u8]) -> Result<Vec<String>, DocError> {
    let mut names: BTreeSet<String> = BTreeSet::new();
    match kind {
        DocKind::Patrol => {
            names.extend(
                PatrolDoc::load(bytes)?
                    .view()?
                    .photos
                    .into_iter()
                    .map(|p| p.sha256),
            );
        }
        DocKind::Issue => {
            let issue = IssueDoc::load(bytes)?;
            names.extend(issue.view()?.photos.into_iter().map(|p| p.sha256));
            // Superseded submissions count too: their photos stay in the timeline.
            for event in issue.events()? {
                if let Action::RectificationSubmitted { photos, .. } = event.action {
                    names.extend(photos);
                }
            }
        }
    }
    Ok(names.into_iter().collect())
}
