//! Every stored document's routing facts and feed position, in memory.
//!
//! Each sync walks routing facts: a phone's first sync the documents its user's phones may
//! receive, a later one every document changed since its cursor, and a listing of `GET /docs`
//! every document after the page's start. Walking sled's trees for that costs more than the
//! routing itself, so the store keeps the same facts in ordered maps: by id for pages, by feed
//! position for the feed, and the ids by owner and assignee and, of issues, by place, asset and
//! assigned department, so a first sync walks the user's own work and the problems of their place
//! (`authz::Reach`), not every problem of the district.
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

use std::cmp::Reverse;
use std::collections::btree_set::Range;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::ops::Bound;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use sync_core::authz::{DocMeta, IssueReach, Reach};
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
    by_user: Lists,
    /// Ids of every issue.
    issues: BTreeSet<Arc<str>>,
    /// Division code → ids of the issues there; codes sort so that a division's places are
    /// together (`DivisionCode::significant`).
    issues_by_division: Lists,
    /// Asset → ids of the issues on it.
    issues_by_asset: Lists,
    /// Department → ids of the issues assigned to it.
    issues_by_department: Lists,
    /// Ids of every document whose facts do not parse, so a walk for what a phone receives
    /// reports the damage as a walk over every document does.
    damaged: BTreeSet<Arc<str>>,
    /// Whether a reader of a shared store folded in every document since the last clearing.
    loaded: bool,
    /// How many times the index was cleared: a fold read before a clearing is not folded in.
    clearings: u64,
}

/// Where a reader of a shared store starts from ([`DocIndex::mark`]).
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    /// The feed position the index holds.
    pub head: u64,
    /// Whether the index holds every document up to `head`; when not, the reader reads all.
    pub loaded: bool,
    clearings: u64,
}

/// Where a document is listed besides the feed: under its users, and as an issue by place
/// and asset (and by department when assigned to one), or as damaged.
struct Listing<'a> {
    users: Vec<&'a str>,
    issue: Option<(&'a str, &'a str)>,
    department: Option<&'a str>,
    damaged: bool,
}

impl<'a> Listing<'a> {
    fn of(meta: &'a Result<DocMeta, String>) -> Self {
        match meta {
            Ok(meta) => {
                let mut users = vec![meta.owner.as_str()];
                if let Some(Assignee::User(id)) = &meta.assignee {
                    if *id != meta.owner {
                        users.push(id.as_str());
                    }
                }
                let issue = (meta.kind == DocKind::Issue)
                    .then(|| (meta.division.as_str(), meta.asset.as_str()));
                let department = match &meta.assignee {
                    Some(Assignee::Department(d)) if issue.is_some() => Some(d.as_str()),
                    _ => None,
                };
                Listing {
                    users,
                    issue,
                    department,
                    damaged: false,
                }
            }
            Err(_) => Listing {
                users: Vec::new(),
                issue: None,
                department: None,
                damaged: true,
            },
        }
    }
}

/// How many lists of places a walk merges at most; a reach over more places (a district's
/// villages) walks every issue instead.
const MERGED_LISTS: usize = 16;

/// Id sets by a key (a user, a division, an asset, a department).
type Lists = BTreeMap<Arc<str>, BTreeSet<Arc<str>>>;

/// Adds `id` to the set under `key`.
fn list(lists: &mut Lists, key: &str, id: &Arc<str>) {
    if let Some(ids) = lists.get_mut(key) {
        ids.insert(id.clone());
    } else {
        lists.insert(key.into(), BTreeSet::from([id.clone()]));
    }
}

/// Takes `id` out of the set under `key`, and the set out of `lists` once empty.
fn unlist(lists: &mut Lists, key: &str, id: &str) {
    if let Some(ids) = lists.get_mut(key) {
        ids.remove(id);
        if ids.is_empty() {
            lists.remove(key);
        }
    }
}

impl Index {
    /// Records `id` at position `seq` with `meta`, in place of its earlier position.
    fn insert(&mut self, id: Arc<str>, seq: u64, meta: Result<DocMeta, String>) {
        if let Some(old) = self.by_id.insert(id.clone(), seq) {
            if let Some(old) = self.feed.remove(&old) {
                let listing = Listing::of(&old.meta);
                for user in listing.users {
                    unlist(&mut self.by_user, user, &id);
                }
                if let Some((division, asset)) = listing.issue {
                    self.issues.remove(&id);
                    unlist(&mut self.issues_by_division, division, &id);
                    unlist(&mut self.issues_by_asset, asset, &id);
                }
                if let Some(department) = listing.department {
                    unlist(&mut self.issues_by_department, department, &id);
                }
                if listing.damaged {
                    self.damaged.remove(&id);
                }
            }
        }
        let listing = Listing::of(&meta);
        for user in listing.users {
            list(&mut self.by_user, user, &id);
        }
        if let Some((division, asset)) = listing.issue {
            self.issues.insert(id.clone());
            list(&mut self.issues_by_division, division, &id);
            list(&mut self.issues_by_asset, asset, &id);
        }
        if let Some(department) = listing.department {
            list(&mut self.issues_by_department, department, &id);
        }
        if listing.damaged {
            self.damaged.insert(id.clone());
        }
        self.feed.insert(seq, Indexed { id, meta });
    }

    /// The id lists a walk of `reach` merges, each from after `start`: every document the
    /// reach covers (`Reach::covers`) and every damaged one is on at least one of them.
    fn lists_of<'a>(&'a self, reach: &Reach, start: Bound<&str>) -> Vec<Range<'a, Arc<str>>> {
        let from = (start, Bound::Unbounded);
        let mut lists: Vec<Range<'a, Arc<str>>> = Vec::new();
        if let Some(own) = self.by_user.get(reach.user.as_str()) {
            lists.push(own.range::<str, _>(from));
        }
        lists.push(self.damaged.range::<str, _>(from));
        match &reach.issues {
            IssueReach::Anywhere => lists.push(self.issues.range::<str, _>(from)),
            IssueReach::AssignedTo(department) => {
                if let Some(ids) = self.issues_by_department.get(department.as_str()) {
                    lists.push(ids.range::<str, _>(from));
                }
            }
            IssueReach::Within { divisions, assets } => {
                let mut places = Vec::new();
                for division in divisions {
                    let inside = division.significant();
                    places.extend(
                        self.issues_by_division
                            .range::<str, _>((Bound::Included(inside), Bound::Unbounded))
                            .take_while(|(code, _)| code.starts_with(inside))
                            .map(|(_, ids)| ids),
                    );
                }
                for asset in assets {
                    places.extend(self.issues_by_asset.get(asset.as_str()));
                }
                if places.len() > MERGED_LISTS {
                    // A district's villages: every issue, filtered by `keep`, costs less than
                    // merging a list per place.
                    lists.push(self.issues.range::<str, _>(from));
                } else {
                    lists.extend(places.into_iter().map(|ids| ids.range::<str, _>(from)));
                }
            }
        }
        lists
    }
}

/// The ids of `lists` (each in id order) in id order, each once.
fn merged<'a>(mut lists: Vec<Range<'a, Arc<str>>>) -> impl Iterator<Item = &'a Arc<str>> {
    let mut next: BinaryHeap<Reverse<(&'a Arc<str>, usize)>> = lists
        .iter_mut()
        .enumerate()
        .filter_map(|(i, list)| list.next().map(|id| Reverse((id, i))))
        .collect();
    let mut last: Option<&'a Arc<str>> = None;
    std::iter::from_fn(move || loop {
        let Reverse((id, i)) = next.pop()?;
        if let Some(more) = lists[i].next() {
            next.push(Reverse((more, i)));
        }
        if last != Some(id) {
            last = Some(id);
            return Some(id);
        }
    })
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

    /// Forgets everything: the store it mirrors went back in time (a crash of its database
    /// took back saves), so it is read again in full.
    pub fn clear(&self) {
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        let clearings = index.clearings + 1;
        *index = Index {
            clearings,
            ..Index::default()
        };
    }

    /// Where a reader of a shared store starts: what it reads is folded in with
    /// [`Self::caught_up`].
    pub fn mark(&self) -> Mark {
        let index = self.read();
        Mark {
            head: index.head,
            loaded: index.loaded,
            clearings: index.clearings,
        }
    }

    /// Folds in what a reader of a shared store found: the latest position of each document
    /// saved at or below `head`, read after `head` had settled (every save at or below it
    /// committed). A document already held at a later position keeps it: readers may fold in
    /// out of order, and a position never moves back. The head moves on to `head`, never back.
    /// The reader started at `from`, and read every document when the index was not loaded
    /// then. Returns `false`, folding nothing, when the index was cleared since `from`: what
    /// was read may predate what the clearing forgot, so the reader starts again.
    pub fn caught_up(
        &self,
        from: Mark,
        head: u64,
        docs: Vec<(String, u64, Result<DocMeta, String>)>,
    ) -> bool {
        let mut index = self.index.write().unwrap_or_else(|p| p.into_inner());
        if index.clearings != from.clearings {
            return false;
        }
        for (id, seq, meta) in docs {
            let id: Arc<str> = id.into();
            if index.by_id.get(&id).is_some_and(|&held| held >= seq) {
                continue;
            }
            index.insert(id, seq, meta);
        }
        index.head = index.head.max(head);
        index.loaded = true;
        true
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

    /// As [`Self::page`], over only the documents within `reach` (owned by or assigned to its
    /// user, and the issues of its places): every document `authz::delivered` can accept for
    /// the user is among them, so with a `keep` that accepts no other this is the same page,
    /// walked over far fewer documents.
    pub fn page_for(
        &self,
        reach: &Reach,
        after: Option<&str>,
        limit: usize,
        keep: &dyn Fn(&DocMeta) -> bool,
    ) -> Result<Vec<DocMeta>, HubError> {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let index = self.read();
        let mut page = Vec::new();
        for id in merged(index.lists_of(reach, start)) {
            if page.len() >= limit {
                break;
            }
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
            ids(index
                .page_for(&anywhere(user), after, limit, &every)
                .expect("walk"))
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
                ids(index
                    .page_for(&anywhere(user), None, 100, &theirs)
                    .expect("walk")),
                ids(index.page(None, 100, &theirs).expect("page"))
            );
        }
        let damaged = DocIndex::new(1, vec![("p9".into(), 1, Err("bad json".into()))]);
        assert!(damaged
            .page_for(&anywhere("chief"), None, 10, &every)
            .is_err());
        assert!(damaged
            .page_for(&within("chief", &["370105001001"], &[]), None, 10, &every)
            .is_err());
    }

    fn anywhere(user: &str) -> Reach {
        Reach {
            user: user.into(),
            issues: IssueReach::Anywhere,
        }
    }

    fn within(user: &str, divisions: &[&str], assets: &[&str]) -> Reach {
        Reach {
            user: user.into(),
            issues: IssueReach::Within {
                divisions: divisions
                    .iter()
                    .map(|d| (*d).to_owned().try_into().expect("division code"))
                    .collect(),
                assets: assets.iter().map(|a| (*a).to_string()).collect(),
            },
        }
    }

    /// A walk within places lists the issues inside the divisions (of every village of a
    /// subdistrict or district) and on the assets, merged in id order with the user's own,
    /// each once, as they stand after each save; patrols of others and issues elsewhere are
    /// not walked at all.
    #[test]
    fn a_walk_within_places_follows_each_issues_place_and_asset() {
        let issue = |id: &str, division: &str, asset: &str| DocMeta {
            kind: DocKind::Issue,
            owner: "someone".into(),
            division: division.to_owned().try_into().expect("division code"),
            asset: asset.into(),
            ..meta(id)
        };
        let index = DocIndex::new(
            6,
            vec![
                ("a".into(), 1, Ok(issue("a", "370105001001", "river-1"))),
                ("b".into(), 2, Ok(issue("b", "370105001002", "river-2"))),
                ("c".into(), 3, Ok(issue("c", "370105002001", "river-1"))),
                ("d".into(), 4, Ok(issue("d", "370106001001", "river-3"))),
                ("e".into(), 5, Ok(issue("e", "370105001001", "river-3"))),
                ("p".into(), 6, Ok(meta("p"))),
            ],
        );
        // Every document walked is kept, so a page shows all the walk looked at.
        let every = |_: &DocMeta| true;
        let ids = |metas: Vec<DocMeta>| metas.into_iter().map(|m| m.id).collect::<Vec<_>>();
        let walk = |reach: &Reach, after: Option<&str>, limit: usize| {
            ids(index.page_for(reach, after, limit, &every).expect("walk"))
        };
        let village = within("other", &["370105001001"], &[]);
        assert_eq!(walk(&village, None, 10), ["a", "e"]);
        let subdistrict = within("other", &["370105001000"], &["river-3"]);
        assert_eq!(walk(&subdistrict, None, 10), ["a", "b", "d", "e"]);
        assert_eq!(walk(&subdistrict, Some("a"), 2), ["b", "d"]);
        let district = within("chief", &["370105000000"], &["river-1"]);
        assert_eq!(walk(&district, None, 10), ["a", "b", "c", "e", "p"]);
        assert_eq!(walk(&district, Some("c"), 10), ["e", "p"]);
        assert_eq!(
            walk(&within("nobody", &[], &[]), None, 10),
            Vec::<String>::new()
        );
        // An issue saved again with another place and asset is walked where it now lies.
        index.saved("a", 7, &issue("a", "370106001001", "river-3"));
        assert_eq!(walk(&village, None, 10), ["e"]);
        assert_eq!(
            walk(&within("other", &["370106000000"], &[]), None, 10),
            ["a", "d"]
        );
        // A document assigned to the user by name is theirs wherever it lies.
        let mut assigned = issue("f", "370107001001", "river-9");
        assigned.assignee = Some(Assignee::User("other".into()));
        index.saved("f", 8, &assigned);
        assert_eq!(walk(&village, None, 10), ["e", "f"]);
        // Caught up from a shared feed, the lists move the same way.
        assert!(index.caught_up(
            index.mark(),
            9,
            vec![("e".into(), 9, Ok(issue("e", "370105002001", "river-3")))],
        ));
        assert_eq!(walk(&village, None, 10), ["f"]);
        assert_eq!(
            walk(&within("x", &["370105002000"], &[]), None, 10),
            ["c", "e"]
        );
        // A reach over more places than a walk merges walks every issue: the same pages.
        for n in 0..MERGED_LISTS + 4 {
            let id = format!("v{n:02}");
            let place = format!("3701050030{n:02}");
            index.saved(&id, 10 + n as u64, &issue(&id, &place, "river-8"));
        }
        let district = within("chief", &["370105000000"], &[]);
        let inside = |m: &DocMeta| district.covers(m);
        let every_place = ids(index.page_for(&district, None, 100, &inside).expect("walk"));
        assert_eq!(every_place.len(), MERGED_LISTS + 4 + 4, "{every_place:?}");
        assert_eq!(
            every_place,
            ids(index.page(None, 100, &inside).expect("page"))
        );
        assert_eq!(
            ids(index
                .page_for(&district, Some("v03"), 2, &inside)
                .expect("walk")),
            ["v04", "v05"]
        );
        let one_village = within("other", &["370105003007"], &[]);
        assert_eq!(walk(&one_village, None, 10), ["f", "v07"]);
    }

    /// A department's walk lists the issues assigned to it, wherever they lie, as they stand
    /// after each save.
    #[test]
    fn a_departments_walk_follows_the_issues_assigned_to_it() {
        let assigned = |id: &str, department: Option<&str>| DocMeta {
            kind: DocKind::Issue,
            owner: "someone".into(),
            assignee: department.map(|d| Assignee::Department(d.into())),
            ..meta(id)
        };
        let index = DocIndex::new(
            3,
            vec![
                ("a".into(), 1, Ok(assigned("a", Some("区水务局")))),
                ("b".into(), 2, Ok(assigned("b", Some("区城管局")))),
                ("c".into(), 3, Ok(assigned("c", None))),
            ],
        );
        let every = |_: &DocMeta| true;
        let ids = |metas: Vec<DocMeta>| metas.into_iter().map(|m| m.id).collect::<Vec<_>>();
        let walk = |department: &str| {
            let reach = Reach {
                user: "handler".into(),
                issues: IssueReach::AssignedTo(department.into()),
            };
            ids(index.page_for(&reach, None, 10, &every).expect("walk"))
        };
        assert_eq!(walk("区水务局"), ["a"]);
        assert_eq!(walk("区城管局"), ["b"]);
        // Reassigned: from one department to the other, and to nobody.
        index.saved("c", 4, &assigned("c", Some("区水务局")));
        index.saved("a", 5, &assigned("a", Some("区城管局")));
        index.saved("b", 6, &assigned("b", None));
        assert_eq!(walk("区水务局"), ["c"]);
        assert_eq!(walk("区城管局"), ["a"]);
        assert_eq!(walk("区林业局"), Vec::<String>::new());
    }

    #[test]
    fn catching_up_moves_documents_forward_only() {
        let index = DocIndex::default();
        let every = |_: &DocMeta| true;
        let ids = |metas: Vec<DocMeta>| metas.into_iter().map(|m| m.id).collect::<Vec<_>>();
        let first = index.mark();
        assert!(!first.loaded, "a new index is read in full");
        assert!(index.caught_up(
            first,
            3,
            vec![
                ("a".into(), 1, Ok(meta("a"))),
                ("b".into(), 3, Ok(meta("b"))),
            ],
        ));
        assert_eq!(index.head(), 3);
        assert!(index.mark().loaded);
        // A later reader saw "a" saved again at 5; an earlier one, folding in after it, still
        // holds "a" at 1 and a head of 3: neither moves anything back.
        let (earlier, later) = (index.mark(), index.mark());
        assert!(index.caught_up(later, 5, vec![("a".into(), 5, Ok(meta("a")))]));
        assert!(index.caught_up(earlier, 3, vec![("a".into(), 1, Ok(meta("a")))]));
        assert_eq!(index.head(), 5);
        assert_eq!(
            ids(index.changed_since(0, 5, &every).expect("feed")),
            ["b", "a"]
        );
        assert!(index.changed_since(0, 2, &every).expect("feed").is_empty());
        assert_eq!(ids(index.page(None, 10, &every).expect("page")), ["a", "b"]);
    }

    /// A reader that started before the index was cleared (its database restarted) folds in
    /// nothing: what it read since its mark would stand for everything the clearing forgot,
    /// and the index would count as read in full with the rest missing.
    #[test]
    fn a_read_begun_before_a_clearing_is_not_folded_in() {
        let index = DocIndex::default();
        let every = |_: &DocMeta| true;
        let ids = |metas: Vec<DocMeta>| metas.into_iter().map(|m| m.id).collect::<Vec<_>>();
        let docs = vec![
            ("a".into(), 1, Ok(meta("a"))),
            ("b".into(), 2, Ok(meta("b"))),
        ];
        assert!(index.caught_up(index.mark(), 2, docs));
        // One reader reads the few rows since its mark; meanwhile another forgets the index.
        let incremental = index.mark();
        assert!(incremental.loaded);
        index.clear();
        assert!(!index.caught_up(incremental, 3, vec![("c".into(), 3, Ok(meta("c")))]));
        let again = index.mark();
        assert!(!again.loaded, "the next reader reads everything");
        assert_eq!(again.head, 0);
        assert!(index.page(None, 10, &every).expect("page").is_empty());
        let all = vec![
            ("a".into(), 1, Ok(meta("a"))),
            ("b".into(), 2, Ok(meta("b"))),
            ("c".into(), 3, Ok(meta("c"))),
        ];
        assert!(index.caught_up(again, 3, all));
        assert_eq!(
            ids(index.page(None, 10, &every).expect("page")),
            ["a", "b", "c"]
        );
    }
}
