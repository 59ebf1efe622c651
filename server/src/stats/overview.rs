//! The overview delivered with the sync (`sync_core::overview`), kept per user between syncs
//! ([`sync_core::hub::overviews`]): a chief above the village or an office syncs many times a
//! day, and while the change feed has not moved, the reference data is the same and their
//! overview still holds at this hour, it is answered from what was kept instead of a pass over
//! the statistics facts under their lock.

use sync_core::hub::overviews::{self, Current};
use sync_core::model::User;
use sync_core::overview;

use super::{StatsCache, StatsError, StatsInputs};
use crate::storage::Store;

pub use sync_core::hub::overviews::OverviewCache;

/// The version of everything an overview is computed from, as the store holds it now: the
/// change feed's head (every document save moves it) and a digest of the reference data the
/// facts and the overview read (users, divisions, assets, patrol rules, the bounds of phone
/// times), with that reference data. Read before the facts are, so a kept overview is never
/// labelled newer than what it was computed from; every server on one store reads the same.
pub fn facts_version(store: &dyn Store) -> Result<(u64, StatsInputs), StatsError> {
    let head = store.feed_head()?;
    let inputs = StatsInputs::load(store)?;
    let version = overviews::digest(head, &inputs.view(), &inputs.device_times);
    Ok((version, inputs))
}

/// `user`'s overview at `now_ms`: the one kept when nothing it depends on changed, or else
/// computed from the statistics facts (brought up to date first, judged with the reference
/// data the version was read with) and kept.
pub fn current(
    store: &dyn Store,
    stats: &StatsCache,
    kept: &OverviewCache,
    user: &User,
    now_ms: i64,
) -> Result<Current, StatsError> {
    if !overview::has_overview(user) {
        return Ok(Current {
            version: 0,
            overview: None,
        });
    }
    let (facts, inputs) = facts_version(store)?;
    kept.current(user, facts, now_ms, || {
        stats.with_facts_of(store, &inputs, |index, reference| {
            overview::computed(user, index, reference, now_ms)
        })
    })
}
