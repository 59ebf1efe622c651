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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use sync_core::authz::DocMeta;
use sync_core::doc::DocKind;
use sync_core::hub::HubError;
use sync_core::workflow::Assignee;

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
    /// User id → ids of the documents they own or are assigned (as a user), in id order.
    by_user: HashMap<Arc<str>, BTreeSet<Arc<str>>>,
    /// Ids of every issue, and of every document whose facts do not parse (so a walk for what a
    /// phone receives reports the damage as a walk over every document does).
    issues: BTreeSet<Arc<str>>,
}

/// The user ids a document is listed under in `by_user`, and whether it is in `issues`.
fn listed_under(meta: &Result<DocMeta, String>) -> (Vec<&str>, bool) {
    match meta {
        Ok(meta) => {
            let mut users = vec![meta.owner.as_str()];
            if let Some(Assignee::User(id)) = &meta.assignee {
                if *id != meta.owner {
                    users.push(id.as_str());
                }
            }
            (users, meta.kind == DocKind::Issue)
        }
        Err(_) => (Vec::new(), true),
    }
}

impl Index {
    fn insert(&mut self, id: Arc<str>, seq: u64, meta: Result<DocMeta, String>) {
        if let Some(old) = self.by_id.insert(id.clone(), seq) {
            if let Some(old) = self.feed.remove(&old) {
                let (users, issue) = listed_under(&old.meta);
                for user in users {
                    if let Some(ids) = self.by_user.get_mut(user) {
                        ids.remove(&id);
                        if ids.is_empty() {
                            self.by_user.remove(user);
                        }
                    }
                }
                if issue {
                    self.issues.remove(&id);
                }
            }
        }
        let (users, issue) = listed_under(&meta);
        for user in users {
            self.by_user
                .entry(user.into())
                .or_default()
                .insert(id.clone());
        }
        if issue {
            self.issues.insert(id.clone());
        }
        self.feed.insert(seq, Indexed { id, meta });
    }
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
            index.insert(id.into(), seq, meta);
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
        index.insert(id.into(), seq, Ok(meta.clone()));
        index.head = index.head.max(seq);
    }

    /// Folds in what a reader of a shared store found: the latest position of each document
    /// saved at or below `head`, read after `head` had settled (every save at or below it
    /// committed). A document already held at a later position keeps it: readers may fold in
    /// out of order, and a position never moves back. The head moves on to `head`, never back.
    /// Forgets everything: the store it mirrors went back in time (a crash of its database
    /// took back saves), so it is read again in full.
    pub fn clear(&self) {
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = Index::default();
    }

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

    /// As [`Self::page`], over only the documents owned by or assigned to `user` and the
    /// issues: every document `authz::delivered` can accept for `user` is among them, so with
    /// a `keep` that accepts no other this is the same page, walked over far fewer documents.
    pub fn page_for(
        &self,
        user: &str,
        after: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let index = self.read();
        let none = BTreeSet::new();
        let own = index.by_user.get(user).unwrap_or(&none);
        let mut own = own.range::<str, _>((start, Bound::Unbounded)).peekable();
        let mut issues = index
            .issues
            .range::<str, _>((start, Bound::Unbounded))
            .peekable();
        let mut page = Vec::new();
        while page.len() < limit {
            // The next id of either list, in id order, each once.
            let id = match (own.peek(), issues.peek()) {
                (None, None) => break,
                (Some(a), Some(b)) if a < b => own.next(),
                (Some(a), Some(b)) if a > b => issues.next(),
                (Some(_), Some(_)) => {
                    own.next();
                    issues.next()
                }
                (Some(_), None) => own.next(),
                (None, Some(_)) => issues.next(),
            };
            let Some(id) = id else { break };
            let doc = index.by_id.get(id).and_then(|seq| index.feed.get(seq));
            if let Some(doc) = doc {
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

    /// The walk for one user's phones lists their own and assigned documents and every issue,
    /// as they stand after each save, in id order, and reports damage as every walk does.
    #[test]
    fn a_users_walk_follows_owners_assignees_and_issues_through_saves() {
        let of = |id: &str, owner: &str, kind: DocKind| DocMeta {
            owner: owner.into(),
            kind,
            ..meta(id)
        };
        let index = DocIndex::new(
            4,
            vec![
                ("p1".into(), 1, Ok(of("p1", "chief", DocKind::Patrol))),
                ("p2".into(), 2, Ok(of("p2", "other", DocKind::Patrol))),
                ("i1".into(), 3, Ok(of("i1", "other", DocKind::Issue))),
                ("p3".into(), 4, Ok(of("p3", "chief", DocKind::Patrol))),
            ],
        );
        let every = |_: &DocMeta| true;
        let ids = |metas: Vec<DocMeta>| metas.into_iter().map(|m| m.id).collect::<Vec<_>>();
        let walk = |user: &str, after: Option<&str>, limit: usize| {
            ids(index.page_for(user, after, limit, &every).expect("walk"))
        };
        assert_eq!(walk("chief", None, 10), ["i1", "p1", "p3"]);
        assert_eq!(walk("chief", Some("i1"), 1), ["p1"]);
        assert_eq!(walk("other", None, 10), ["i1", "p2"]);
        assert_eq!(walk("nobody", None, 10), ["i1"]);
        // A patrol changes hands; an issue is assigned to the chief, who also reported it.
        index.saved("p2", 5, &of("p2", "chief", DocKind::Patrol));
        let mut assigned = of("i2", "chief", DocKind::Issue);
        assigned.assignee = Some(Assignee::User("chief".into()));
        index.saved("i2", 6, &assigned);
        assert_eq!(walk("chief", None, 10), ["i1", "i2", "p1", "p2", "p3"]);
        assert_eq!(walk("other", None, 10), ["i1", "i2"]);
        let mut patrol = of("p4", "other", DocKind::Patrol);
        patrol.assignee = Some(Assignee::User("chief".into()));
        index.saved("p4", 7, &patrol);
        assert_eq!(walk("chief", Some("p3"), 10), ["p4"]);
        assert_eq!(walk("other", Some("p3"), 10), ["p4"]);
        patrol.assignee = None;
        index.saved("p4", 8, &patrol);
        assert_eq!(walk("chief", Some("p3"), 10), Vec::<String>::new());
        // Every walk for a user equals the full walk with a `keep` of that user's documents.
        for user in ["chief", "other", "nobody"] {
            let theirs = |m: &DocMeta| {
                m.owner == user
                    || m.kind == DocKind::Issue
                    || matches!(&m.assignee, Some(Assignee::User(id)) if id == user)
            };
            assert_eq!(
                ids(index.page_for(user, None, 100, &theirs).expect("walk")),
                ids(index.page(None, 100, &theirs).expect("page"))
            );
        }
        let damaged = DocIndex::new(1, vec![("p9".into(), 1, Err("bad json".into()))]);
        assert!(damaged.page_for("chief", None, 10, &every).is_err());
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
