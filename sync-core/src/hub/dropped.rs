//! Documents a phone says it dropped from its store (`SyncRequest::dropped`, the phone's side
//! is `evict`): the device's records say it holds nothing of them, so nothing is sent on top of
//! a copy that is gone and nothing is re-sent needlessly. What it held stays in the record as
//! the floor of its receipts ([`DeviceDoc::gone`]) until a sync of its own vouches for a later
//! time. If such a document changes later and the user's
//! phones still receive it (`authz::delivered`), the next sync sends it whole again, as to a
//! phone that never held it; if not, it stays away.
//!
//! A request names at most [`crate::protocol::MAX_DROPPED_DOCS`] ids (checked before anything
//! is touched). Only ids the device's records hold are forgotten: an id it never held, or one
//! the same request pushes (the phone holds it after all), changes nothing.

use std::collections::{HashMap, HashSet};

use super::automerge_sync::state_heads;
use super::{Caller, DeviceDoc, Hub, HubError, HubStore};
use crate::protocol::SyncRequest;

impl<S: HubStore> Hub<S> {
    /// Records that the device holds nothing of the documents `request` names as dropped
    /// (keeping what it held as its receipts' floor) and forgets the automerge sync states kept
    /// for them; `held` is what the device's records say it holds.
    /// Returns what they said it held of each forgotten one, so the answer can tell a document dropped as it stands (left out)
    /// from one that changed since (sent whole: the phone chose from older facts).
    pub(super) fn forget_dropped(
        &self,
        caller: &Caller,
        request: &SyncRequest,
        held: &HashMap<String, DeviceDoc>,
    ) -> Result<HashMap<String, DeviceDoc>, HubError> {
        if request.dropped.is_empty() {
            return Ok(HashMap::new());
        }
        let pushed: HashSet<&str> = request.docs.iter().map(|p| p.doc_id.as_str()).collect();
        let dropped: HashSet<String> = request
            .dropped
            .iter()
            .filter(|id| !pushed.contains(id.as_str()))
            .cloned()
            .collect();
        let prior: HashMap<String, DeviceDoc> = dropped
            .iter()
            .filter_map(|id| Some((id.clone(), held.get(id)?.clone())))
            .collect();
        // The automerge sync states kept for them go too; what they say the device held stays
        // in its records with the rest (a document it only ever exchanged through
        // `POST /docs/{id}/automerge-sync` has no other record).
        let states: Vec<(String, Vec<u8>)> = self
            .store
            .sync_states(&caller.device)?
            .into_iter()
            .filter(|(id, _)| dropped.contains(id))
            .collect();
        let mut gone: HashMap<String, DeviceDoc> = prior
            .iter()
            .map(|(id, held)| (id.clone(), held.gone()))
            .collect();
        for (id, state) in &states {
            let record = gone
                .entry(id.clone())
                .or_insert_with(|| DeviceDoc::default().gone());
            record
                .pending
                .extend(state_heads(state).into_iter().map(|h| h.0));
            record.pending.sort_unstable();
            record.pending.dedup();
        }
        if !gone.is_empty() {
            let records: Vec<(String, Option<DeviceDoc>)> = gone
                .into_iter()
                .map(|(id, record)| (id, Some(record)))
                .collect();
            self.store.put_device_docs(&caller.device, &records)?;
        }
        if !states.is_empty() {
            let ids: Vec<String> = states.into_iter().map(|(id, _)| id).collect();
            self.store.forget_sync_states(&caller.device, &ids)?;
        }
        Ok(prior)
    }
}
