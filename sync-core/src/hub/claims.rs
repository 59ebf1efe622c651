//! One answer at a time per device.
//!
//! An answer reads the device's records when it starts (what the phone holds, its scope) and
//! writes them when it ends. Two answers to one device that overlap, a phone retrying while
//! its first request is still being answered on this server or another, would each write
//! records from their own reading, the last one standing: it can then claim the phone holds
//! a change that only the other answer, the one the phone never applied, carried. So every
//! answer first claims its device ([`DeviceLedger::claim_device`]). A second one is refused at
//! once ([`HubError::SyncInProgress`], a 503 the phone sends again after a moment) rather than
//! waiting: a wait would keep one of the server's few blocking threads asleep per request.
//!
//! A claim stands until the answer lets go of it, or until its server stops; never by time,
//! so a slow answer (a save waiting for a lock) keeps it to the end.
//!
//! [`DeviceLedger::claim_device`]: super::DeviceLedger::claim_device
//! [`HubError::SyncInProgress`]: super::HubError::SyncInProgress

use std::collections::HashSet;
use std::sync::Mutex;

/// A device's claim, held while alive: dropping it lets go (a failed answer lets go too).
pub struct DeviceClaim<'a> {
    _held: Box<dyn Send + 'a>,
}

impl<'a> DeviceClaim<'a> {
    /// A claim that lets go when `held` is dropped.
    pub fn new(held: impl Send + 'a) -> Self {
        Self {
            _held: Box::new(held),
        }
    }
}

impl std::fmt::Debug for DeviceClaim<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceClaim")
    }
}

/// The claims of a store that one process serves, kept in memory: exact for sled, which one
/// process opens at a time (its claims end with the process), and for the tests' store.
#[derive(Debug, Default)]
pub struct DeviceClaims(Mutex<HashSet<String>>);

impl DeviceClaims {
    /// [`super::DeviceLedger::claim_device`] over this table.
    pub fn claim(&self, device: &str) -> Option<DeviceClaim<'_>> {
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if !held.insert(device.to_owned()) {
            return None;
        }
        Some(DeviceClaim::new(Held {
            claims: self,
            device: device.to_owned(),
        }))
    }
}

/// One entry of [`DeviceClaims`], removed when dropped.
struct Held<'a> {
    claims: &'a DeviceClaims,
    device: String,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut held = self.claims.0.lock().unwrap_or_else(|p| p.into_inner());
        held.remove(&self.device);
    }
}
