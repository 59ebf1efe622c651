//! A device's changes for one document, as one sync request carries them: each judged against
//! the state its author saw, in causal order, and merged into the server's document only if
//! allowed.
//!
//! Retrying a batch is harmless: changes the document already holds are skipped. A change
//! whose dependencies the server lacks is set aside (the server asks the device for them) and
//! nothing that depends on it is applied. This module decides; it stores nothing.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use automerge::{ActorId, AutoCommit, Change, ChangeHash};

use super::change::{admit, guarded};
use super::meta::DocMeta;
use super::schema::{self, Frame, Reading};
use super::Refusal;
use crate::doc::Appended;
use crate::model::User;

/// What became of a device's batch.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// Changes merged into the document, in the order they were applied.
    pub accepted: Vec<ChangeHash>,
    /// Changes not merged, each with the reason.
    pub refused: Vec<(ChangeHash, Refusal)>,
    /// Dependencies neither the document nor the batch holds. The changes needing them were
    /// neither applied nor refused; the device should send them again with these.
    pub missing_deps: Vec<ChangeHash>,
    /// The routing facts of the document after the accepted changes (`None` when none was).
    pub meta: Option<DocMeta>,
    /// The workflow events the accepted changes appended, in the order they were accepted:
    /// what the server gives receipts to (`IssueDoc::accept`).
    pub appended: Vec<Appended>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accepted,
    Refused,
    Waiting,
}

/// Authorizes `changes` sent by `user` from the device bound to `bound_actor` for the document
/// `doc_id`, and merges the allowed ones into `doc` (the server's current document, empty if
/// the server has none yet). `doc` is left exactly as it was when nothing is accepted.
pub fn authorize_batch(
    user: &User,
    bound_actor: &ActorId,
    doc_id: &str,
    doc: &mut AutoCommit,
    changes: Vec<Change>,
) -> BatchOutcome {
    let mut outcome = BatchOutcome::default();
    let mut pending = Vec::with_capacity(changes.len());
    let mut index = HashMap::with_capacity(changes.len());
    for change in changes {
        let hash = change.hash();
        if index.contains_key(&hash) || doc.get_change_by_hash(&hash).is_some() {
            continue;
        }
        index.insert(hash, pending.len());
        pending.push(change);
    }

    let mut verdicts = vec![Verdict::Waiting; pending.len()];
    // The frame of `doc` as it stands, when the last accepted change left it.
    let mut frame = None;
    for i in causal_order(&pending, &index) {
        let change = &pending[i];
        let mut refused_dep = None;
        let mut waits = false;
        for dep in change.deps() {
            match index.get(dep).map(|&j| verdicts[j]) {
                Some(Verdict::Accepted) => {}
                Some(Verdict::Refused) => refused_dep = refused_dep.or(Some(*dep)),
                Some(Verdict::Waiting) => waits = true,
                None if doc.get_change_by_hash(dep).is_some() => {}
                None => {
                    waits = true;
                    if !outcome.missing_deps.contains(dep) {
                        outcome.missing_deps.push(*dep);
                    }
                }
            }
        }
        let result = match refused_dep {
            Some(dep) => Err(Refusal::DependsOnRefused(dep)),
            None if waits => continue,
            None => merge(user, bound_actor, doc_id, doc, frame.take(), change),
        };
        verdicts[i] = match result {
            Ok((now, reading, appended)) => {
                frame = now;
                outcome.appended.extend(appended);
                outcome.meta = Some(DocMeta::from_reading(&reading));
                outcome.accepted.push(change.hash());
                Verdict::Accepted
            }
            Err(why) => {
                outcome.refused.push((change.hash(), why));
                Verdict::Refused
            }
        };
    }
    outcome
}

/// The batch's changes, dependencies first; among changes ready together, in the order sent.
/// Hashes cover dependencies, so the graph has no cycles and every change is ordered.
fn causal_order(pending: &[Change], index: &HashMap<ChangeHash, usize>) -> Vec<usize> {
    let mut waiting_on = vec![0usize; pending.len()];
    let mut dependents = vec![Vec::new(); pending.len()];
    for (i, change) in pending.iter().enumerate() {
        for dep in change.deps() {
            if let Some(&j) = index.get(dep) {
                waiting_on[i] += 1;
                dependents[j].push(i);
            }
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> = (0..pending.len())
        .filter(|&i| waiting_on[i] == 0)
        .map(Reverse)
        .collect();
    let mut order = Vec::with_capacity(pending.len());
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &k in &dependents[i] {
            waiting_on[k] -= 1;
            if waiting_on[k] == 0 {
                ready.push(Reverse(k));
            }
        }
    }
    order
}

/// Authorizes one change whose dependencies `doc` holds, and merges it if allowed. Returns
/// the merged document's frame when it is known without reading it again, its reading, and
/// the events the change appended.
fn merge(
    user: &User,
    bound_actor: &ActorId,
    doc_id: &str,
    doc: &mut AutoCommit,
    frame: Option<Frame>,
    change: &Change,
) -> Result<(Option<Frame>, Reading, Vec<Appended>), Refusal> {
    let mut heads = doc.get_heads();
    heads.sort();
    let mut deps = change.deps().to_vec();
    deps.sort();
    deps.dedup();
    if deps == heads {
        // The author saw exactly what the server holds, so the checked copy is the merge.
        let copy = doc.clone();
        let admitted = admit(user, bound_actor, doc_id, doc, frame, copy, change)?;
        *doc = admitted.doc;
        return Ok((Some(admitted.frame), admitted.reading, admitted.appended));
    }
    // Made concurrently with changes the server already has: judge it against what its author
    // saw, then check that merging it into the present leaves the document well formed.
    let (merged, reading, appended) = guarded(|| {
        let before = doc
            .fork_at(change.deps())
            .map_err(|e| Refusal::Malformed(e.to_string()))?;
        let admitted = admit(
            user,
            bound_actor,
            doc_id,
            &before,
            None,
            before.clone(),
            change,
        )?;
        let mut merged = doc.clone();
        merged
            .apply_changes([change.clone()])
            .map_err(|e| Refusal::Malformed(e.to_string()))?;
        let (merged, reading) = schema::read(doc_id, merged)?;
        schema::frame(reading.kind(), doc, &merged)?;
        // Unique among the events its author saw is not enough: an id taken by an event the
        // author had not seen would make the fold take one for a repeat of the other.
        if let (Reading::Issue { events, .. }, false) = (&reading, admitted.appended.is_empty()) {
            let mut count: HashMap<&str, usize> = HashMap::with_capacity(events.len());
            for event in events {
                *count.entry(event.id.as_str()).or_default() += 1;
            }
            if let Some(new) = admitted
                .appended
                .iter()
                .find(|a| count.get(a.event.as_str()).copied().unwrap_or(0) > 1)
            {
                return Err(Refusal::DuplicateEvent(new.event.clone()));
            }
        }
        Ok((merged, reading, admitted.appended))
    })?;
    *doc = merged;
    Ok((None, reading, appended))
}
