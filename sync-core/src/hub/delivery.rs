//! The changes of stored documents, decoded once per saved version and shared by every device
//! they are delivered to.
//!
//! One document reaches many devices: a problem in a subdistrict reaches every chief of that
//! subdistrict, their supervisors and its handler, and a week of a district's patrols reaches
//! each district chief. Loading an automerge save and encoding its changes is most of what a
//! sync response costs, so the hub does it once per saved version and keeps the decoded changes
//! of recently delivered documents, bounded in bytes, least recently used first out.
//!
//! An entry is valid only for the exact version it was read from. Stores that number their saves
//! (the feed position each save gets, in the same atomic write as the save) name the version by
//! that number, so a hit reads neither the save nor its routing facts; for other stores every read
//! compares the stored save with a copy the entry keeps. Either way a document changed by any
//! writer (a sync, a web action, the deadline job) is decoded again and never served stale.
//! (Comparing a digest instead of a copy would cost a SHA-256 of every delivered save.)

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use automerge::{AutoCommit, Automerge};
use lru::LruCache;

use super::{HubError, StoredDoc};
use crate::doc::DocKind;
use crate::protocol::{DocUpdate, Hash, Heads, PackedUpdate};

/// What the delivery cache may hold, in bytes of saves and changes: a district's week at 1,000
/// chiefs (6,500 documents) fits; a larger district keeps its most recently sent ones.
pub const DEFAULT_BUDGET_BYTES: usize = 512 * 1024 * 1024;

/// One change as stored: the positions of its dependencies and its encoding.
#[derive(Debug)]
struct Entry {
    deps: Vec<usize>,
    raw: Vec<u8>,
}

/// Which stored version of a document an entry was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Version {
    /// The save's position in the store's change feed ([`super::HubStore::document_seq`]).
    Seq(u64),
    /// The save itself, for stores that do not number their saves.
    Saved(Vec<u8>),
}

/// A saved document's changes in causal order, with its heads, and the update that sends all of
/// them, packed: the answer to every device that holds nothing of this version yet.
#[derive(Debug)]
pub struct DocChanges {
    version: Version,
    heads: Vec<Hash>,
    changes: Vec<Entry>,
    index: HashMap<Hash, usize>,
    whole: Whole,
}

/// The update that sends every change, packed when first asked for.
#[derive(Debug)]
struct Whole {
    doc_id: String,
    kind: DocKind,
    packed: OnceLock<Arc<PackedUpdate>>,
}

impl DocChanges {
    /// Decodes a document's save; `seq` is its feed position when the store numbers its saves.
    pub fn read(id: &str, kind: DocKind, saved: &[u8], seq: Option<u64>) -> Result<Self, HubError> {
        let doc = Automerge::load(saved).map_err(|e| HubError::Damaged {
            id: id.to_string(),
            reason: e.to_string(),
        })?;
        let version = match seq {
            Some(seq) => Version::Seq(seq),
            None => Version::Saved(saved.to_vec()),
        };
        Ok(Self::of(
            id,
            kind,
            doc.get_heads(),
            doc.get_changes(&[]),
            version,
        ))
    }

    /// The changes of a document the hub holds loaded, exactly as it saved it at feed position
    /// `seq` (the version it just stored): what [`Self::read`] of that save gives, without
    /// loading the save again.
    pub fn saved(id: &str, kind: DocKind, doc: &mut AutoCommit, seq: u64) -> Self {
        let heads = doc.get_heads();
        let changes = doc.get_changes(&[]);
        Self::of(id, kind, heads, changes, Version::Seq(seq))
    }

    /// `changes` as `get_changes` lists them: every change after its dependencies.
    fn of(
        id: &str,
        kind: DocKind,
        heads: Vec<automerge::ChangeHash>,
        changes: Vec<automerge::Change>,
        version: Version,
    ) -> Self {
        let heads: Vec<Hash> = heads.into_iter().map(|h| h.0).collect();
        let mut index = HashMap::new();
        let mut deps = Vec::new();
        let mut raws = Vec::new();
        for change in changes {
            deps.push(
                change
                    .deps()
                    .iter()
                    .filter_map(|dep| index.get(&dep.0).copied())
                    .collect(),
            );
            index.insert(change.hash().0, raws.len());
            raws.push(change.raw_bytes().to_vec());
        }
        let changes = deps
            .into_iter()
            .zip(raws)
            .map(|(deps, raw)| Entry { deps, raw })
            .collect();
        // Packed when first sent whole: many entries are read only for their heads
        // (`GET /docs`) or for the changes one device lacks.
        let whole = Whole {
            doc_id: id.to_owned(),
            kind,
            packed: OnceLock::new(),
        };
        Self {
            version,
            heads,
            changes,
            index,
            whole,
        }
    }

    /// The heads of the version these changes were read from.
    pub fn heads(&self) -> &[Hash] {
        &self.heads
    }

    /// How many changes the document holds.
    pub fn change_count(&self) -> usize {
        self.changes.len()
    }

    /// The update carrying every change (heads listed), packed, for a device that holds none;
    /// deflated on the first call, then kept.
    pub fn whole(&self) -> Arc<PackedUpdate> {
        self.whole
            .packed
            .get_or_init(|| {
                Arc::new(PackedUpdate::of(&DocUpdate {
                    doc_id: self.whole.doc_id.clone(),
                    kind: Some(self.whole.kind),
                    heads: Heads::Listed(self.heads.clone()),
                    changes: self.changes.iter().map(|c| c.raw.clone()).collect(),
                    refused: Vec::new(),
                    missing: Vec::new(),
                    snapshot: None,
                }))
            })
            .clone()
    }

    /// The changes a replica holding the heads `have` lacks, in causal order. Hashes this
    /// document does not hold are ignored rather than trusted.
    pub fn after(&self, have: &[Hash]) -> Vec<Vec<u8>> {
        let mut held = vec![false; self.changes.len()];
        let mut stack: Vec<usize> = have
            .iter()
            .filter_map(|h| self.index.get(h).copied())
            .collect();
        while let Some(at) = stack.pop() {
            if !held[at] {
                held[at] = true;
                stack.extend(&self.changes[at].deps);
            }
        }
        self.changes
            .iter()
            .zip(held)
            .filter(|(_, held)| !held)
            .map(|(entry, _)| entry.raw.clone())
            .collect()
    }

    /// The bytes of its changes: what sending it whole adds to an answer.
    pub fn bytes(&self) -> usize {
        self.changes.iter().map(|c| c.raw.len()).sum()
    }

    /// Bytes this entry keeps alive, counting the packed update as if it were made: it is
    /// deflated from the changes, so it takes at most about as many bytes as they do.
    fn weight(&self) -> usize {
        let per_change = std::mem::size_of::<Entry>() + 64;
        let saved = match &self.version {
            Version::Seq(_) => 0,
            Version::Saved(bytes) => bytes.len(),
        };
        let raw = self.changes.iter().map(|c| c.raw.len()).sum::<usize>();
        saved
            + raw
            + 64
            + self.whole.doc_id.len()
            + self
                .changes
                .iter()
                .map(|c| c.raw.len() + c.deps.len() * 8 + per_change)
                .sum::<usize>()
    }

    #[cfg(test)]
    fn hashes(&self) -> Vec<Hash> {
        let mut hashes = vec![[0; 32]; self.changes.len()];
        for (hash, at) in &self.index {
            hashes[*at] = *hash;
        }
        hashes
    }
}

#[derive(Debug)]
struct Held {
    entries: LruCache<String, Arc<DocChanges>>,
    bytes: usize,
}

/// Decoded documents, least recently used evicted first once over the budget.
#[derive(Debug)]
pub struct DeliveryCache {
    held: Mutex<Held>,
    budget: usize,
}

impl DeliveryCache {
    /// A cache holding at most `budget` bytes of decoded changes.
    pub fn new(budget: usize) -> Self {
        Self {
            held: Mutex::new(Held {
                entries: LruCache::unbounded(),
                bytes: 0,
            }),
            budget,
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        // Every update below leaves the map and its byte count consistent between statements
        // that can panic, so a poisoned lock holds nothing half-done.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The entry of the save at feed position `seq`, if the cache holds it.
    pub fn at(&self, id: &str, seq: u64) -> Option<Arc<DocChanges>> {
        let mut held = self.held();
        match held.entries.get(id) {
            Some(hit) if hit.version == Version::Seq(seq) => Some(hit.clone()),
            _ => None,
        }
    }

    /// The decoded changes of `stored` (saved at feed position `seq` when the store numbers its
    /// saves), from the cache when it holds this exact version.
    pub fn changes(
        &self,
        id: &str,
        stored: &StoredDoc,
        seq: Option<u64>,
    ) -> Result<Arc<DocChanges>, HubError> {
        if let Some(hit) = self.held().entries.get(id) {
            let same = match (&hit.version, seq) {
                (Version::Seq(at), Some(seq)) => *at == seq,
                (Version::Saved(saved), None) => *saved == stored.bytes,
                _ => false,
            };
            if same {
                return Ok(hit.clone());
            }
        }
        // Decoded outside the lock: other deliveries go on meanwhile.
        let fresh = Arc::new(DocChanges::read(id, stored.meta.kind, &stored.bytes, seq)?);
        self.keep(&mut self.held(), id, fresh.clone());
        Ok(fresh)
    }

    /// Keeps `fresh`, the changes of the version just saved, in place of any older entry of
    /// the document: the next delivery of it reads no save. An entry of a later save, kept
    /// meanwhile by another writer, stays.
    pub fn saved(&self, id: &str, fresh: DocChanges) {
        let Version::Seq(seq) = fresh.version else {
            return;
        };
        let mut held = self.held();
        if let Some(old) = held.entries.peek(id) {
            if matches!(old.version, Version::Seq(at) if at > seq) {
                return;
            }
        }
        self.keep(&mut held, id, Arc::new(fresh));
    }

    fn keep(&self, held: &mut Held, id: &str, fresh: Arc<DocChanges>) {
        let weight = fresh.weight();
        if let Some(old) = held.entries.pop(id) {
            held.bytes -= old.weight();
        }
        if weight <= self.budget {
            held.entries.put(id.to_string(), fresh);
            held.bytes += weight;
            while held.bytes > self.budget {
                let Some((_, evicted)) = held.entries.pop_lru() else {
                    break;
                };
                held.bytes -= evicted.weight();
            }
        }
    }

    /// Entries and bytes held now.
    pub fn size(&self) -> (usize, usize) {
        let held = self.held();
        (held.entries.len(), held.bytes)
    }
}

impl Default for DeliveryCache {
    fn default() -> Self {
        Self::new(DEFAULT_BUDGET_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{AutoCommit, ReadDoc, ROOT};

    use super::*;
    use crate::authz::DocMeta;
    use crate::doc::DocKind;
    use crate::model::{DivisionCode, System};

    fn stored(doc: &mut AutoCommit) -> StoredDoc {
        StoredDoc {
            meta: DocMeta {
                id: "x".into(),
                kind: DocKind::Patrol,
                system: System::River,
                asset: "a".into(),
                division: DivisionCode::new("370105000000").expect("code"),
                owner: "u".into(),
                assignee: None,
                status: None,
                closed_at_ms: None,
                escalated: false,
            },
            bytes: doc.save(),
            version: Default::default(),
        }
    }

    fn edit(doc: &mut AutoCommit, key: &str) -> Hash {
        doc.put(ROOT, key, key).expect("put");
        doc.commit();
        doc.get_heads()[0].0
    }

    #[test]
    fn after_sends_exactly_what_a_replica_lacks_in_causal_order() {
        let mut doc = AutoCommit::new();
        let a = edit(&mut doc, "a");
        let mut fork = doc.fork();
        let b = edit(&mut doc, "b");
        let c = edit(&mut fork, "c");
        doc.merge(&mut fork).expect("merge");
        let d = edit(&mut doc, "d");
        let changes = DocChanges::read("x", DocKind::Issue, &doc.save(), None).expect("read");

        assert_eq!(changes.after(&[]).len(), 4);
        assert_eq!(changes.hashes()[0], a);
        let mut expected = |have: &[Hash]| -> Vec<Vec<u8>> {
            let have: Vec<_> = have.iter().map(|h| automerge::ChangeHash(*h)).collect();
            doc.get_changes(&have)
                .iter()
                .map(|c| c.raw_bytes().to_vec())
                .collect()
        };
        for have in [vec![], vec![a], vec![b], vec![c], vec![b, c], vec![d]] {
            let mut got = changes.after(&have);
            let mut want = expected(&have);
            got.sort();
            want.sort();
            assert_eq!(got, want, "have {have:?}");
        }
        // A hash the document does not hold is ignored, not taken as holding everything.
        assert_eq!(changes.after(&[[7; 32]]).len(), 4);
        assert_eq!(changes.heads(), &[d][..]);
        // Dependencies come before the changes that need them.
        let order = changes.hashes();
        let at = |h: Hash| order.iter().position(|x| *x == h).expect("listed");
        assert!(at(a) < at(b) && at(a) < at(c) && at(b) < at(d) && at(c) < at(d));
        assert_eq!(doc.get(ROOT, "d").expect("read").map(|_| ()), Some(()));
    }

    #[test]
    fn a_changed_save_is_decoded_again_and_the_budget_holds() {
        let mut doc = AutoCommit::new();
        edit(&mut doc, "a");
        let first = stored(&mut doc);
        let cache = DeliveryCache::new(1 << 20);
        let one = cache.changes("x", &first, None).expect("decode");
        let again = cache.changes("x", &first, None).expect("hit");
        assert!(Arc::ptr_eq(&one, &again), "the same save is decoded once");

        edit(&mut doc, "b");
        let second = stored(&mut doc);
        let two = cache.changes("x", &second, None).expect("decode");
        assert!(!Arc::ptr_eq(&one, &two));
        assert_eq!(two.after(&[]).len(), 2, "a new save is never served stale");
        assert_eq!(cache.size().0, 1);

        // A budget smaller than two documents keeps one.
        let small = DeliveryCache::new(two.weight() + 10);
        small.changes("x", &second, None).expect("decode");
        small.changes("y", &second, None).expect("decode");
        let (entries, bytes) = small.size();
        assert_eq!(entries, 1);
        assert!(bytes <= two.weight() + 10);
        // A document larger than the whole budget is served, not kept.
        let tiny = DeliveryCache::new(8);
        assert_eq!(
            tiny.changes("x", &second, None)
                .expect("decode")
                .after(&[])
                .len(),
            2
        );
        assert_eq!(tiny.size(), (0, 0));
    }

    #[test]
    fn a_numbered_save_is_found_by_its_number_and_only_by_it() {
        let mut doc = AutoCommit::new();
        edit(&mut doc, "a");
        let first = stored(&mut doc);
        let cache = DeliveryCache::new(1 << 20);
        assert!(cache.at("x", 7).is_none());
        let one = cache.changes("x", &first, Some(7)).expect("decode");
        let hit = cache.at("x", 7).expect("held at 7");
        assert!(Arc::ptr_eq(&one, &hit));
        assert_eq!(one.weight(), cache.size().1, "no copy of the save is kept");

        // The next save has another number: the entry is not served for it, nor for the save
        // compared byte for byte.
        edit(&mut doc, "b");
        let second = stored(&mut doc);
        assert!(cache.at("x", 8).is_none());
        let two = cache.changes("x", &second, Some(8)).expect("decode");
        assert_eq!(two.after(&[]).len(), 2);
        assert!(cache.at("x", 7).is_none(), "the older version is gone");
        let by_bytes = cache.changes("x", &second, None).expect("decode");
        assert!(!Arc::ptr_eq(&two, &by_bytes));
    }

    #[test]
    fn a_damaged_save_is_reported() {
        let mut doc = AutoCommit::new();
        edit(&mut doc, "a");
        let mut damaged = stored(&mut doc);
        damaged.bytes.truncate(damaged.bytes.len() / 2);
        let cache = DeliveryCache::default();
        assert!(matches!(
            cache.changes("x", &damaged, Some(1)),
            Err(HubError::Damaged { .. })
        ));
        assert_eq!(cache.size(), (0, 0));
    }
}
