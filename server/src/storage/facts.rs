//! Statistics facts kept in the store (`crate::stats`): each document's fact
//! (`sync_core::stats::DocFact`), so a server that starts reads the facts back instead of working
//! every patrol and issue out again from its automerge document.
//!
//! Facts are worked out from documents after they are saved, not in the save's transaction:
//! they depend on reference data (the rules, chiefs, assets, the bounds of phone times) that a
//! save does not read. What keeps them right is the feed cursor they were worked out at:
//!
//! - the [`FactsMark`] names the *generation* (the facts' format version and a digest of the
//!   reference data they were judged with) and the *cursor*: every document saved at or below
//!   it has its fact stored. Facts and the cursor move in one step (one sled transaction, one
//!   PostgreSQL transaction), and the cursor never moves back;
//! - each fact carries the feed head it was worked out at ([`StoredFact::seq`]); a fact replaces
//!   a stored one only when it was worked out at the same head or a later one, so a server that
//!   read a document before another saved it again cannot put an older fact back;
//! - a crash between a document's save and its fact leaves the cursor below the save, and the
//!   next catch-up works it out again. Working a fact out twice gives the same fact.
//!
//! A new generation (rules or reference data changed, or a new format) starts from cursor 0 and
//! every fact of another generation is removed. Servers sharing a database read what the others
//! stored: the facts worked out at heads past their own cursor ([`FactStore::facts_since`]).

use serde::{Deserialize, Serialize};
use sync_core::stats::DocFact;

use super::StoreError;

/// Which facts are stored, and how far they reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FactsMark {
    /// The facts' format version and what they were judged with (`crate::stats`).
    pub generation: String,
    /// Every document saved at or below this feed position has its fact stored.
    pub cursor: u64,
}

/// One document's fact as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredFact {
    /// The feed head the fact was worked out at (its document's save is at or below it).
    pub seq: u64,
    pub fact: DocFact,
}

/// Where statistics facts are kept between starts. Part of every [`super::Store`].
pub trait FactStore {
    /// The generation and cursor of the stored facts; `None` before any were stored.
    fn facts_mark(&self) -> Result<Option<FactsMark>, StoreError>;

    /// Makes `generation` the stored one, at cursor 0 with no facts, unless it already is (then
    /// nothing changes, so servers meeting a new generation together start it once). Facts
    /// of any other generation are removed.
    fn start_facts(&self, generation: &str) -> Result<(), StoreError>;

    /// Stores `facts` (each replacing a stored fact of its document worked out at the same head
    /// or an earlier one) and moves the cursor up to `cursor` (never back), in one step.
    /// Nothing is stored, and `false` returned, when `generation` is not the stored one.
    fn put_facts(
        &self,
        generation: &str,
        facts: &[StoredFact],
        cursor: u64,
    ) -> Result<bool, StoreError>;

    /// The stored facts of `generation` worked out at heads above `after`, in no set order.
    fn facts_since(&self, generation: &str, after: u64) -> Result<Vec<StoredFact>, StoreError>;
}
