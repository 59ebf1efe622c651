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
        if !prior.is_empty() {
            let records: Vec<(String, Option<DeviceDoc>)> = prior
                .iter()
                .map(|(id, held)| (id.clone(), Some(held.gone())))
                .collect();
            self.store.put_device_docs(&caller.device, &records)?;
        }
        let states: Vec<String> = self
            .store
            .sync_states(&caller.device)?
            .into_iter()
            .map(|(id, _)| id)
            .filter(|id| dropped.contains(id))
            .collect();
        if !states.is_empty() {
            self.store.forget_sync_states(&caller.device, &states)?;
        }
        Ok(prior)
    }
}
