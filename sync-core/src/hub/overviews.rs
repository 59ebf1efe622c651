//! The overviews of the users who have one, kept between their syncs: a chief above the
//! village syncs many times a day, and while nothing in the facts or the reference data
//! changed, and the day has not ended nor a deadline in their place passed
//! ([`Computed::until_ms`](crate::overview::Computed::until_ms)), their overview is the one computed before. Keeping it makes an
//! unchanged overview cost a lookup instead of a pass over the statistics facts.
//!
//! Each entry is labelled with the version of the facts it was computed from, an opaque number
//! the caller derives from everything the facts and the reference data are (the server: the
//! change feed's head and a digest of the reference data). The caller must read that version
//! *before* it reads the facts it computes from: an entry is then never labelled newer than
//! what it holds, and a writer that changes the facts meanwhile changes the version, so the
//! next lookup misses.
//!
//! ```
//! use sync_core::hub::overviews::OverviewCache;
//! use sync_core::overview::Computed;
//! # use sync_core::model::{Role, User};
//! # let office = User { id: "u-1".into(), username: "office".into(), display_name: "河长办".into(),
//! #     role: Role::Admin, active: true };
//! let cache = OverviewCache::default();
//! let mut computed = 0;
//! let mut compute = || -> Result<Computed, ()> {
//!     computed += 1;
//!     Ok(Computed { overview: None, until_ms: 2_000 })
//! };
//! cache.current(&office, 7, 1_000, &mut compute).unwrap();
//! cache.current(&office, 7, 1_500, &mut compute).unwrap(); // kept
//! cache.current(&office, 8, 1_500, &mut compute).unwrap(); // the facts changed
//! cache.current(&office, 8, 2_000, &mut compute).unwrap(); // expired
//! assert_eq!(computed, 3);
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use std::hash::{Hash, Hasher};

use serde::Serialize;

use crate::model::User;
use crate::overview::{Computed, Overview};
use crate::stats::Reference;

/// A user's overview as delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Current {
    /// Its version ([`crate::overview::version_of`]), 0 for none.
    pub version: u64,
    /// The overview itself; `None` for a user without one.
    pub overview: Option<Arc<Overview>>,
}

#[derive(Debug)]
struct Kept {
    /// The user as they were when it was computed: a change of role, jurisdiction or
    /// activity changes what their overview covers.
    user: User,
    facts: u64,
    /// When it was computed, and until when it holds on the same facts.
    from_ms: i64,
    until_ms: i64,
    current: Current,
}

impl Kept {
    fn holds(&self, user: &User, facts: u64, now_ms: i64) -> bool {
        self.facts == facts && self.user == *user && (self.from_ms..self.until_ms).contains(&now_ms)
    }
}

/// One entry per user with an overview, replaced when it no longer holds. Bounded by the
/// number of such users (chiefs above the village, offices, administrators).
#[derive(Debug, Default)]
pub struct OverviewCache {
    kept: Mutex<HashMap<String, Kept>>,
}

impl OverviewCache {
    fn kept(&self) -> MutexGuard<'_, HashMap<String, Kept>> {
        // Every update is one insertion of a whole entry: a poisoned lock holds nothing
        // half-done.
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `user`'s overview at `now_ms` from the facts of version `facts`: the one kept when it
    /// still holds, or else what `compute` gives (kept for the next sync). The lock is not
    /// held while `compute` runs.
    pub fn current<E>(
        &self,
        user: &User,
        facts: u64,
        now_ms: i64,
        compute: impl FnOnce() -> Result<Computed, E>,
    ) -> Result<Current, E> {
        if let Some(kept) = self.kept().get(&user.id) {
            if kept.holds(user, facts, now_ms) {
                return Ok(kept.current.clone());
            }
        }
        let computed = compute()?;
        let current = Current {
            version: crate::overview::version_of(computed.overview.as_ref()),
            overview: computed.overview.map(Arc::new),
        };
        self.kept().insert(
            user.id.clone(),
            Kept {
                user: user.clone(),
                facts,
                from_ms: now_ms,
                until_ms: computed.until_ms,
                current: current.clone(),
            },
        );
        Ok(current)
    }

    /// How many users' overviews are kept.
    pub fn len(&self) -> usize {
        self.kept().len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A version of the facts for [`OverviewCache::current`]: `position` (where the facts are read
/// up to, e.g. the change feed's head), the reference data statistics read (users, divisions,
/// assets, patrol rules; every name and quota of an overview comes from them) and `more` (what
/// else the facts were judged by, e.g. the bounds of phone times), digested together.
pub fn digest(position: u64, reference: &Reference, more: &impl Serialize) -> u64 {
    let all = (
        position,
        reference.users,
        reference.divisions,
        reference.assets,
        reference.rules,
        more,
    );
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    // postcard is the quick one; JSON encodes whatever postcard cannot; and what neither
    // encodes gets a version never given before, so nothing is kept on it.
    match postcard::to_allocvec(&all).or_else(|_| serde_json::to_vec(&all)) {
        Ok(bytes) => bytes.hash(&mut hasher),
        Err(_) => {
            static NEVER_AGAIN: AtomicU64 = AtomicU64::new(0);
            NEVER_AGAIN
                .fetch_add(1, Ordering::Relaxed)
                .hash(&mut hasher);
            "unencodable".hash(&mut hasher);
        }
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Jurisdiction, Level, Role, System};
    use crate::overview::tests::*;
    use crate::overview::{computed, period, version_of};
    use crate::rules::RuleSet;

    #[test]
    fn a_kept_overview_is_computed_again_when_anything_it_depends_on_changes() {
        let users = users();
        let index = facts(&users);
        let district = users.iter().find(|u| u.id == "district").unwrap().clone();
        let cache = OverviewCache::default();
        let computed_count = std::cell::Cell::new(0);
        let rules = RuleSet::default();
        let reference = Reference {
            users: &users,
            divisions: &[],
            assets: &[],
            rules: &rules,
            categories: &[],
        };
        let current = |user: &User, facts: u64, at: i64| {
            cache
                .current(user, facts, at, || {
                    computed_count.set(computed_count.get() + 1);
                    Ok::<_, ()>(computed(user, &index, &reference, at))
                })
                .unwrap()
        };
        let first = current(&district, 1, now());
        assert_eq!(computed_count.get(), 1);
        assert_eq!(first.version, version_of(overview_of("district").as_ref()));
        assert_eq!(first.overview.as_deref(), overview_of("district").as_ref());
        // Same facts, same day: kept.
        assert_eq!(current(&district, 1, now() + 1_000), first);
        assert_eq!(computed_count.get(), 1);
        // New facts: computed again.
        current(&district, 2, now() + 2_000);
        assert_eq!(computed_count.get(), 2);
        // The day ends: computed again, with the longer period.
        let next_day = current(&district, 2, period(now()).to_ms);
        assert_eq!(computed_count.get(), 3);
        assert_ne!(next_day.version, first.version);
        // A clock set back before the entry was computed: computed again.
        current(&district, 2, now());
        assert_eq!(computed_count.get(), 4);
        // The user's role changes: computed again, for what they lead now.
        let mut moved = district.clone();
        moved.role = Role::Chief {
            system: System::River,
            level: Level::Subdistrict,
            jurisdiction: Jurisdiction {
                division: code(SUB_A),
                assets: vec![],
            },
        };
        let sub = current(&moved, 2, now());
        assert_eq!(computed_count.get(), 5);
        assert_ne!(sub.version, first.version);
        // Each user their own: another user's sync computes theirs.
        let office = users.iter().find(|u| u.id == "office").unwrap();
        current(office, 2, now());
        assert_eq!(computed_count.get(), 6);
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn the_facts_digest_follows_the_feed_and_the_reference_data() {
        let users = users();
        let rules = RuleSet::default();
        let reference = |users: &[User]| -> u64 {
            digest(
                7,
                &Reference {
                    users,
                    divisions: &[],
                    assets: &[],
                    rules: &rules,
                    categories: &[],
                },
                &0i64,
            )
        };
        // The quick encoding reads every kind of user.
        assert!(postcard::to_allocvec(&users).is_ok());
        let same = reference(&users);
        assert_eq!(same, reference(&users));
        let mut renamed = users.clone();
        renamed[1].display_name = "新河长".into();
        assert_ne!(same, reference(&renamed));
        let mut moved = users.clone();
        moved[3].role = Role::Supervisor {
            system: System::River,
            division: code(DISTRICT),
        };
        assert_ne!(same, reference(&moved));
        let view = Reference {
            users: &users,
            divisions: &[],
            assets: &[],
            rules: &rules,
            categories: &[],
        };
        assert_ne!(digest(7, &view, &0i64), digest(8, &view, &0i64));
        assert_ne!(digest(7, &view, &0i64), digest(7, &view, &1i64));
        let mut stricter = RuleSet::default();
        stricter.quotas.clear();
        let with_rules = Reference {
            rules: &stricter,
            ..view
        };
        assert_ne!(digest(7, &view, &0i64), digest(7, &with_rules, &0i64));
    }
}
