//! Which documents reference which photo: the index that decides who may download a blob.
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

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use sync_core::authz::{in_scope, DocMeta};
use sync_core::doc::{DocError, DocKind, IssueDoc, PatrolDoc};
use sync_core::hub::{HubError, HubStore};
use sync_core::model::User;
use sync_core::workflow::Action;

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

    /// Whether `user` may see a document that references `sha256`.
    pub fn visible_to<S: HubStore + ?Sized>(
        &self,
        store: &S,
        user: &User,
        sha256: &str,
    ) -> Result<bool, HubError> {
        Ok(self
            .documents(store, sha256)?
            .iter()
            .any(|meta| in_scope(user, meta)))
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
            // stay unreachable until it is repaired (`chiefsync verify` reports it).
            let stored = match store.document(&meta.id) {
                Ok(Some(stored)) => stored,
                Ok(None) => continue,
                Err(err @ HubError::Damaged { .. }) => {
                    tracing::error!(doc = %meta.id, error = %err, "cannot index the photos of a document");
                    continue;
                }
                Err(err) => return Err(err),
            };
            let photos = match referenced_photos(meta.kind, &stored.bytes) {
                Ok(photos) => photos,
                Err(err) => {
                    tracing::error!(doc = %meta.id, error = %err, "cannot index the photos of a document");
                    continue;
                }
            };
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
