//! Every stored document's routing facts and feed position, in memory.
//!
//! Each sync walks routing facts: a phone's first sync every document on the server (to find
//! those in its scope), a later one every document changed since its cursor, and a listing of
//! `GET /docs` every document after the page's start. Walking sled's trees for that costs more
//! than the routing itself, so the store keeps the same facts in ordered maps: by id for pages,
//! by feed position for the feed.
//!
//! The index is read from sled when the store opens and changed only by a save, under the lock
//! that hands out feed positions, after the save's transaction has committed. Every reader
//! (the feed head included) reads the index, so a reader that sees position `n` sees every
//! position below it, as with sled's trees. The facts are the parsed JSON of `doc_meta`, held
//! once instead of parsed again on every walk.
//!
//! The PostgreSQL store keeps one per process too, caught up from the shared feed before it is
//! read ([`DocIndex::caught_up`]): the saves of every server on the database reach it by their
//! feed positions.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use sync_core::authz::DocMeta;
use sync_core::hub::HubError;

/// One document at its latest feed position: its id and facts, or why the stored facts did not
/// parse (reported as damage to whoever walks over it, as reading them from sled would).
#[derive(Debug)]
struct Indexed {
    id: Arc<str>,
    meta: Result<DocMeta, String>,
}

/// The feed holds the facts, so a walk over it compares numbers, not ids; ids lead to positions.
#[derive(Debug, Default)]
struct Index {
    head: u64,
    by_id: BTreeMap<Arc<str>, u64>,
    feed: BTreeMap<u64, Indexed>,
}

#[derive(Debug, Default)]
pub struct DocIndex {
    index: RwLock<Index>,
}

fn damaged(id: &str, reason: &str) -> HubError {
    HubError::Damaged {
        id: id.to_owned(),
        reason: reason.to_owned(),
    }
}

impl DocIndex {
    /// An index of `docs` (id, latest feed position, parsed facts) with the feed at `head`.
    pub fn new(head: u64, docs: Vec<(String, u64, Result<DocMeta, String>)>) -> Self {
        let mut index = Index {
            head,
            ..Index::default()
        };
        for (id, seq, meta) in docs {
            let id: Arc<str> = id.into();
            index.by_id.insert(id.clone(), seq);
            index.feed.insert(seq, Indexed { id, meta });
        }
        Self {
            index: RwLock::new(index),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a committed save; the caller holds the lock that hands out feed positions.
    pub fn saved(&self, id: &str, seq: u64, meta: &DocMeta) {
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        let id: Arc<str> = id.into();
        if let Some(old) = index.by_id.insert(id.clone(), seq) {
            index.feed.remove(&old);
        }
        let meta = Ok(meta.clone());
        index.feed.insert(seq, Indexed { id, meta });
        index.head = index.head.max(seq);
    }

    /// Folds in what a reader of a shared store found: the latest position of each document
    /// saved at or below `head`, read after `head` had settled (every save at or below it
    /// committed). A document already held at a later position keeps it: readers may fold in
    /// out of order, and a position never moves back. The head moves on to `head`, never back.
    pub fn caught_up(&self, head: u64, docs: Vec<(String, u64, Result<DocMeta, String>)>) {
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        for (id, seq, meta) in docs {
            let id: Arc<str> = id.into();
            match index.by_id.get(&id) {
                Some(&held) if held >= seq => continue,
                Some(&held) => {
                    index.feed.remove(&held);
                }
                None => {}
            }
            index.by_id.insert(id.clone(), seq);
            index.feed.insert(seq, Indexed { id, meta });
        }
        index.head = index.head.max(head);
    }

    /// Moves the head on to `head` without a document there (a backup marks where it was
    /// taken); the caller holds the lock that hands out feed positions.
    pub fn skipped_to(&self, head: u64) {
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        index.head = index.head.max(head);
    }

    pub fn head(&self) -> u64 {
        self.read().head
    }

    /// Facts `keep` accepts, copied only then; damage is an error.
    fn kept(doc: &Indexed, keep: &dyn Fn(&DocMeta) -> bool) -> Result<Option<DocMeta>, HubError> {
        match &doc.meta {
            Ok(meta) => Ok(keep(meta).then(|| meta.clone())),
            Err(reason) => Err(damaged(&doc.id, reason)),
        }
    }

    /// Facts `keep` accepts of documents whose latest position is in `(after, upto]`, in feed
    /// order.
    pub fn changed_since(
        &self,
        after: u64,
        upto: u64,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        if upto <= after {
            return Ok(Vec::new());
        }
        let index = self.read();
        let mut metas = Vec::new();
        for (_, doc) in index.feed.range(after + 1..=upto) {
            metas.extend(Self::kept(doc, keep)?);
        }
        Ok(metas)
    }

    /// Up to `limit` facts `keep` accepts, of documents whose ids come after `after`, in id order.
    pub fn page(
        &self,
        after: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let index = self.read();
        let mut page = Vec::new();
        for (_, seq) in index.by_id.range::<str, _>((start, Bound::Unbounded)) {
            if page.len() >= limit {
                break;
            }
            if let Some(doc) = index.feed.get(seq) {
                page.extend(Self::kept(doc, keep)?);
            }
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::doc::DocKind;
    use sync_core::model::System;

    fn meta(id: &str) -> DocMeta {
        DocMeta {
            id: id.into(),
            kind: DocKind::Patrol,
            system: System::River,
            asset: "river-1".into(),
            division: "370105001000".to_owned().try_into().expect("division code"),
            owner: "chief".into(),
            assignee: None,
            status: None,
            closed_at_ms: None,
            escalated: false,
        }
    }

    #[test]
    fn damaged_facts_are_reported_by_every_walk_over_them() {
        let index = DocIndex::new(
            2,
            vec![
                ("a".into(), 1, Ok(meta("a"))),
                ("b".into(), 2, Err("expected value at line 1".into())),
            ],
        );
        let every = |_: &DocMeta| true;
        let err = index
            .page(None, 10, &every)
            .expect_err("damage is an error");
        assert!(
            matches!(&err, HubError::Damaged { id, .. } if id == "b"),
            "{err:?}"
        );
        assert!(index.changed_since(0, 2, &every).is_err());
        // Walks that stop before it are not affected.
        assert_eq!(index.page(None, 1, &every).expect("first page").len(), 1);
        assert_eq!(index.changed_since(0, 1, &every).expect("feed").len(), 1);
        // A new save replaces the damaged facts.
        index.saved("b", 3, &meta("b"));
        assert_eq!(index.page(None, 10, &every).expect("page").len(), 2);
        assert_eq!(index.changed_since(2, 3, &every).expect("feed").len(), 1);
        assert_eq!(index.head(), 3);
    }

    #[test]
    fn catching_up_moves_documents_forward_only() {
        let index = DocIndex::default();
        let every = |_: &DocMeta| true;
        let ids = |metas: Vec<DocMeta>| metas.into_iter().map(|m| m.id).collect::<Vec<_>>();
        index.caught_up(
            3,
            vec![
                ("a".into(), 1, Ok(meta("a"))),
                ("b".into(), 3, Ok(meta("b"))),
            ],
        );
        assert_eq!(index.head(), 3);
        // A later reader saw "a" saved again at 5; an earlier one, folding in after it, still
        // holds "a" at 1 and a head of 3: neither moves anything back.
        index.caught_up(5, vec![("a".into(), 5, Ok(meta("a")))]);
        index.caught_up(3, vec![("a".into(), 1, Ok(meta("a")))]);
        assert_eq!(index.head(), 5);
        assert_eq!(
            ids(index.changed_since(0, 5, &every).expect("feed")),
            ["b", "a"]
        );
        assert!(index.changed_since(0, 2, &every).expect("feed").is_empty());
        assert_eq!(ids(index.page(None, 10, &every).expect("page")), ["a", "b"]);
    }
}
