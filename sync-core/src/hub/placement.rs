//! Where a new record says it is, checked against the reference data (`authz::
//! check_placement`) as it arrives. One answer often brings many new records on the same
//! stretch (a chief's week of patrols on their one or two rivers), so the reference data it
//! reads is kept for the answer: each asset is read once, the categories once.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use automerge::AutoCommit;

use super::{Hub, HubError, HubStore, ReferenceSource};
use crate::authz::{check_placement, BatchOutcome, Placement};
use crate::model::{Asset, Category};

/// The reference data read for one answer's new records. Reference data changed by an
/// administrator while the answer runs may be seen before or after the change, as a
/// record arriving a moment earlier or later would see it.
#[derive(Debug, Default)]
pub(super) struct PlacedAgainst {
    assets: Mutex<HashMap<String, Option<Asset>>>,
    categories: Mutex<Option<Vec<Category>>>,
}

fn held<T>(lock: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each update is one insert or assignment: a poisoned lock holds nothing half-done.
    lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl PlacedAgainst {
    fn asset(&self, store: &impl ReferenceSource, id: &str) -> Result<Option<Asset>, HubError> {
        if let Some(asset) = held(&self.assets).get(id) {
            return Ok(asset.clone());
        }
        let asset = store.asset(id)?;
        held(&self.assets).insert(id.to_owned(), asset.clone());
        Ok(asset)
    }

    fn categories(&self, store: &impl ReferenceSource) -> Result<Vec<Category>, HubError> {
        if let Some(categories) = held(&self.categories).as_ref() {
            return Ok(categories.clone());
        }
        let categories = store.categories()?;
        *held(&self.categories) = Some(categories.clone());
        Ok(categories)
    }
}

impl<S: HubStore> Hub<S> {
    /// Checks where a document created by `outcome`'s changes says it is against the reference
    /// data; when it disagrees, every accepted change is refused instead (they all build on the
    /// one that created it) and `doc` is left empty, as it was.
    pub(super) fn place_new(
        &self,
        doc: &mut AutoCommit,
        outcome: &mut BatchOutcome,
        against: &PlacedAgainst,
    ) -> Result<(), HubError> {
        if outcome.accepted.is_empty() {
            return Ok(());
        }
        let placement = Placement::of(doc).map_err(|e| HubError::MalformedChange(e.to_string()))?;
        let asset = against.asset(&self.store, &placement.asset)?;
        let categories = match placement.category {
            Some(_) => against.categories(&self.store)?,
            None => Vec::new(),
        };
        if let Err(why) = check_placement(&placement, asset.as_ref(), &categories) {
            *doc = AutoCommit::new();
            outcome.meta = None;
            outcome.appended.clear();
            outcome.refused.splice(
                0..0,
                outcome.accepted.drain(..).map(|hash| (hash, why.clone())),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::model::User;

    /// Reference data that counts how often it is read.
    #[derive(Default)]
    struct Counted {
        assets: AtomicUsize,
        categories: AtomicUsize,
    }

    impl ReferenceSource for Counted {
        fn asset(&self, id: &str) -> Result<Option<Asset>, HubError> {
            self.assets.fetch_add(1, Ordering::Relaxed);
            Ok((id == "xqh-01").then(|| Asset {
                id: id.into(),
                system: crate::model::System::River,
                name: "小清河".into(),
                division: crate::model::DivisionCode::new("370105001000").unwrap(),
                geometry: crate::model::Geometry::LineString(vec![[116.98, 36.742]]),
            }))
        }
        fn categories(&self) -> Result<Vec<Category>, HubError> {
            self.categories.fetch_add(1, Ordering::Relaxed);
            Ok(Vec::new())
        }
        fn user(&self, _: &str) -> Result<Option<User>, HubError> {
            Ok(None)
        }
        fn department_exists(&self, _: &str) -> Result<bool, HubError> {
            Ok(false)
        }
    }

    #[test]
    fn an_answer_reads_each_asset_once_and_the_categories_once() {
        let store = Counted::default();
        let placed = PlacedAgainst::default();
        for _ in 0..5 {
            assert_eq!(
                placed.asset(&store, "xqh-01").unwrap().unwrap().name,
                "小清河"
            );
            assert!(placed.asset(&store, "no-such-river").unwrap().is_none());
            assert!(placed.categories(&store).unwrap().is_empty());
        }
        assert_eq!(store.assets.load(Ordering::Relaxed), 2);
        assert_eq!(store.categories.load(Ordering::Relaxed), 1);
        // The next answer reads again.
        let next = PlacedAgainst::default();
        next.asset(&store, "xqh-01").unwrap();
        assert_eq!(store.assets.load(Ordering::Relaxed), 3);
    }
}
