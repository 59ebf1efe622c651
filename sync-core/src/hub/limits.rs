//! The hub's side of the request limits: how often each device may talk automerge sync (kept
//! in memory per device and document), and the answer budget the server can change while it
//! serves. What a request may hold is measured in [`crate::limits`], shared with the phone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use automerge::Change;

use super::{Hub, HubError, HubStore};
use crate::protocol::DocPush;

/// The limits themselves, which the hub enforces.
pub use crate::limits::*;

/// The hub's answer limits, changeable while it serves.
#[derive(Debug)]
pub(super) struct AnswerBudget {
    bytes: AtomicUsize,
    docs: AtomicUsize,
}

impl Default for AnswerBudget {
    fn default() -> Self {
        let limits = AnswerLimits::default();
        Self {
            bytes: AtomicUsize::new(limits.bytes),
            docs: AtomicUsize::new(limits.docs),
        }
    }
}

impl ChunkProblem {
    pub(super) fn into_hub(self, malformed: impl FnOnce(String) -> HubError) -> HubError {
        match self {
            ChunkProblem::Limit(limit) => HubError::Limit(limit),
            ChunkProblem::Malformed(why) => malformed(why),
        }
    }
}

/// How many automerge sync messages each (device, document), and each device, may still send:
/// a generic cell rate algorithm, [`SYNC_MESSAGES_PER_MINUTE`] sustained with bursts of
/// [`SYNC_MESSAGE_BURST`] per document, and [`DEVICE_SYNC_MESSAGES_PER_MINUTE`] per device.
/// Kept in memory: a restart forgets it, which only forgives.
#[derive(Debug, Default)]
pub(super) struct SyncRounds {
    /// (device, document) → the time from which the next message conforms, ms; the device's
    /// own allowance is kept under the document `None`.
    next: Mutex<HashMap<(String, Option<String>), i64>>,
}

/// Above this many tracked pairs, those that have fully recovered are forgotten.
const TRACKED_PAIRS: usize = 4096;

/// A cell rate: `per_minute` sustained, `burst` at once.
#[derive(Clone, Copy)]
struct Rate {
    per_minute: u32,
    burst: u32,
}

impl Rate {
    fn interval(self) -> i64 {
        60_000 / i64::from(self.per_minute)
    }

    /// When the next message conforms, from the stored time `at`; or after how many seconds
    /// it will.
    fn next(self, at: Option<i64>, now_ms: i64) -> Result<i64, u64> {
        let tolerance = self.interval() * i64::from(self.burst - 1);
        let conforming = at.unwrap_or(now_ms).max(now_ms);
        if conforming - now_ms > tolerance {
            let wait_ms = conforming - tolerance - now_ms;
            return Err((wait_ms as u64).div_ceil(1000).max(1));
        }
        Ok(conforming + self.interval())
    }
}

impl SyncRounds {
    /// Admits one message at `now_ms`, or says after how many seconds the next one will be.
    /// A refused message uses up nothing.
    pub(super) fn admit(&self, device: &str, doc_id: &str, now_ms: i64) -> Result<(), u64> {
        let per_doc = Rate {
            per_minute: SYNC_MESSAGES_PER_MINUTE,
            burst: SYNC_MESSAGE_BURST,
        };
        let per_device = Rate {
            per_minute: DEVICE_SYNC_MESSAGES_PER_MINUTE,
            burst: DEVICE_SYNC_MESSAGES_PER_MINUTE,
        };
        let mut next = self
            .next
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if next.len() > TRACKED_PAIRS {
            next.retain(|_, at| *at > now_ms);
        }
        let doc_key = (device.to_owned(), Some(doc_id.to_owned()));
        let device_key = (device.to_owned(), None);
        let doc_next = per_doc.next(next.get(&doc_key).copied(), now_ms)?;
        let device_next = per_device.next(next.get(&device_key).copied(), now_ms)?;
        next.insert(doc_key, doc_next);
        next.insert(device_key, device_next);
        Ok(())
    }
}

impl<S: HubStore> Hub<S> {
    /// Reads one document's push of a `/sync` request: every chunk is checked before automerge
    /// parses it. Nothing is merged or stored.
    pub(super) fn parse_push(&self, push: &DocPush) -> Result<Vec<Change>, HubError> {
        let malformed = |why: String| HubError::MalformedChange(format!("{}: {why}", push.doc_id));
        let mut changes = Vec::with_capacity(push.changes.len());
        for raw in &push.changes {
            check_chunks(raw, Chunks::ChangesOnly).map_err(|p| p.into_hub(malformed))?;
            changes.push(Change::try_from(&raw[..]).map_err(|e| malformed(e.to_string()))?);
        }
        Ok(changes)
    }

    /// Checks every push of a `/sync` request against every limit, before anything of it is
    /// merged or stored: the operations of the whole request first (counted from the changes'
    /// headers), then each document's changes against its stored size (0 when absent, or
    /// damaged and left out by the store: a damaged document is reported where it is loaded).
    /// Returns those sizes, read in one call.
    pub(super) fn check_pushes(
        &self,
        pushes: &[(&DocPush, Vec<Change>)],
    ) -> Result<HashMap<String, usize>, HubError> {
        let ops: usize = pushes
            .iter()
            .flat_map(|(_, changes)| changes.iter().map(Change::len))
            .fold(0, usize::saturating_add);
        over(ops, MAX_REQUEST_OPS, |ops, max| {
            LimitError::RequestTooManyOps { ops, max }
        })?;
        let ids: Vec<&str> = pushes
            .iter()
            .map(|(push, _)| push.doc_id.as_str())
            .collect();
        let sizes = self.store.document_sizes(&ids)?;
        for (push, changes) in pushes {
            check_changes(changes, sizes.get(&push.doc_id).copied().unwrap_or(0))?;
        }
        Ok(sizes)
    }

    /// What one `/sync` answer may carry now.
    pub fn answer_limits(&self) -> AnswerLimits {
        AnswerLimits {
            bytes: self.answer_budget.bytes.load(Ordering::Relaxed),
            docs: self.answer_budget.docs.load(Ordering::Relaxed),
        }
    }

    /// Changes what one `/sync` answer may carry, for the requests that start from now on.
    pub fn set_answer_limits(&self, limits: AnswerLimits) {
        self.answer_budget
            .bytes
            .store(limits.bytes, Ordering::Relaxed);
        self.answer_budget
            .docs
            .store(limits.docs, Ordering::Relaxed);
    }
}
