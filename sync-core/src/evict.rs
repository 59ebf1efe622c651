//! What a phone may drop from its store, and what it drops first: the rule that keeps a chief's
//! phone bounded over years of work without losing anything they still need.
//!
//! A phone holds what sync delivers (`authz::delivered`: the user's own work and the problems
//! they act on) and what the user opened on demand (a subordinate's patrol read from the
//! overview). Over a year that grows without end; this rule says which documents may go and
//! when. The phone library applies it; the server learns what went (`SyncRequest::dropped`),
//! forgets that the phone holds it, and sends it again whole if it changes and is still
//! delivered to the user.
//!
//! | document on the phone | may be dropped |
//! |---|---|
//! | holds local changes the server has not acknowledged (unsent work, a patrol being walked, photos waiting to upload) | never |
//! | has changes the server refused (quarantined) | never |
//! | opened on demand and pinned (in use: until released, or until [`StoreBounds::pin_ms`] after it was fetched) | not while pinned |
//! | facts that do not read (a damaged copy) | never: it is left for the integrity check |
//! | an open issue assigned to the user by name, or to their department | never |
//! | an open issue the user's phones receive (`authz::delivered`: on the assets they lead, waiting for their office, escalated to them) | never: it waits for them |
//! | the user's own patrol or reported issue, changed on the phone less than [`StoreBounds::own_recent_ms`] ago | never |
//! | anything else, unchanged on the phone for [`StoreBounds::max_age_ms`] or more | yes, at the next pass |
//! | anything else, while the store holds more than [`StoreBounds::max_bytes`] | yes, the longest unchanged first, until the store is under the limit |
//!
//! "Changed on the phone" is when the phone last received, fetched or edited the document; a
//! document that keeps changing on the server keeps coming back to the phone and stays young.
//! What is kept counts towards the size all the same: a store whose kept documents alone pass
//! the limit drops everything it may and keeps the rest (unsent work is never the price of
//! space).

use serde::{Deserialize, Serialize};

use crate::authz::DocMeta;
use crate::model::{Role, User};
use crate::workflow::Assignee;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// How large and how old a phone's store may grow before it drops documents (the phone
/// library's `ClientConfig::store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreBounds {
    /// Past this many bytes of documents, the phone drops what it may, longest unchanged
    /// first. Default 100 MB (photos are not counted: each leaves the phone with the last
    /// document that references it, once the server holds it: `LocalStore::release_photos`).
    pub max_bytes: u64,
    /// A document the phone may drop is dropped once it has not changed on the phone for
    /// this long. Default 60 days.
    pub max_age_ms: i64,
    /// The user's own patrols and reported issues are kept this long after they last changed
    /// on the phone, whatever the size. Default 30 days.
    pub own_recent_ms: i64,
    /// A document opened on demand stays at least this long after it was fetched, unless the
    /// app releases it earlier. Default 1 day.
    pub pin_ms: i64,
}

impl Default for StoreBounds {
    fn default() -> Self {
        StoreBounds {
            max_bytes: 100 * 1024 * 1024,
            max_age_ms: 60 * DAY_MS,
            own_recent_ms: 30 * DAY_MS,
            pin_ms: DAY_MS,
        }
    }
}

/// What the phone knows of one document it holds, for [`evictions`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldDoc {
    /// The document's id.
    pub id: String,
    /// Its routing facts, `None` when they do not read.
    pub meta: Option<DocMeta>,
    /// Bytes it takes in the store.
    pub bytes: u64,
    /// When it last changed on the phone (received, fetched or edited), Unix ms.
    pub changed_ms: i64,
    /// It holds local changes the server has not acknowledged, or work waiting to go into it
    /// (track points, photos waiting to upload).
    pub unsent: bool,
    /// Some of its changes were refused by the server and are kept in the quarantine.
    pub quarantined: bool,
    /// Opened on demand and pinned until this time (Unix ms); `None` when not pinned.
    pub pinned_until_ms: Option<i64>,
}

/// Why a document stays on the phone (a row of the table above).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Local changes the server has not acknowledged.
    Unsent,
    /// Changes the server refused, kept in the quarantine.
    Quarantined,
    /// Opened on demand and in use.
    Pinned,
    /// Its facts do not read.
    Unreadable,
    /// An open issue assigned to the user or their department.
    AssignedOpen,
    /// An open issue the user's phones receive: it waits for them.
    Waiting,
    /// The user's own recent work.
    OwnRecent,
}

/// Why `doc` must stay on `user`'s phone at `now_ms`, or `None` when it may be dropped.
pub fn kept(user: &User, doc: &HeldDoc, bounds: &StoreBounds, now_ms: i64) -> Option<Keep> {
    if doc.unsent {
        return Some(Keep::Unsent);
    }
    if doc.quarantined {
        return Some(Keep::Quarantined);
    }
    if doc.pinned_until_ms.is_some_and(|until| now_ms < until) {
        return Some(Keep::Pinned);
    }
    let Some(meta) = &doc.meta else {
        return Some(Keep::Unreadable);
    };
    let open = meta.status.is_none_or(|s| s.is_open());
    let assigned = match (&meta.assignee, &user.role) {
        (Some(Assignee::User(id)), _) => *id == user.id,
        (Some(Assignee::Department(name)), Role::Handler { department }) => name == department,
        _ => false,
    };
    if meta.kind == crate::doc::DocKind::Issue && open && assigned {
        return Some(Keep::AssignedOpen);
    }
    if meta.kind == crate::doc::DocKind::Issue
        && open
        && crate::authz::delivered(user, meta, now_ms)
    {
        return Some(Keep::Waiting);
    }
    if meta.owner == user.id && now_ms.saturating_sub(doc.changed_ms) < bounds.own_recent_ms {
        return Some(Keep::OwnRecent);
    }
    None
}

/// The documents `user`'s phone drops now, in the order it drops them: every one that may go
/// and has not changed on the phone for [`StoreBounds::max_age_ms`], then, while the store
/// would still hold more than [`StoreBounds::max_bytes`], the longest unchanged of the rest
/// that may go (ties by id, so every phone decides alike).
pub fn evictions(user: &User, docs: &[HeldDoc], bounds: &StoreBounds, now_ms: i64) -> Vec<String> {
    let mut total: u64 = docs.iter().map(|d| d.bytes).sum();
    let mut free: Vec<&HeldDoc> = docs
        .iter()
        .filter(|d| kept(user, d, bounds, now_ms).is_none())
        .collect();
    free.sort_by(|a, b| {
        a.changed_ms
            .cmp(&b.changed_ms)
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut out = Vec::new();
    for doc in free {
        let aged = now_ms.saturating_sub(doc.changed_ms) >= bounds.max_age_ms;
        if !aged && total <= bounds.max_bytes {
            // The rest changed later still: none of them is aged either.
            break;
        }
        total = total.saturating_sub(doc.bytes);
        out.push(doc.id.clone());
    }
    out
}

/// The time the rule goes by on a phone whose last highest reading of its clock was `seen`
/// and whose clock reads `now_ms`: the clock, never behind `seen` (a clock set back and later
/// put right would otherwise date what arrived meanwhile in the past, and the chief's own
/// recent week would look months old once it is right again), unless `seen` leads it by more
/// than [`StoreBounds::max_age_ms`] (a wrong time far ahead must not stop everything from
/// ageing). Returns that time, and the reading to keep as the highest when it changed by an
/// hour or more (ages are counted in days, and a write per pass costs the phone).
pub fn store_time(seen: Option<i64>, now_ms: i64, bounds: &StoreBounds) -> (i64, Option<i64>) {
    const KEPT_TO_MS: i64 = 3_600_000;
    match seen {
        Some(seen) if now_ms > seen && now_ms.saturating_sub(seen) < KEPT_TO_MS => (now_ms, None),
        Some(seen) if seen >= now_ms && seen.saturating_sub(now_ms) <= bounds.max_age_ms => {
            (seen, None)
        }
        _ => (now_ms, Some(now_ms)),
    }
}

/// When a document the phone dated `changed_ms` counts as changed, at the rule's time
/// `now_ms` (see [`store_time`]), and until when a pin set for `pinned_until_ms` holds: never
/// past that time, so what was dated or pinned by a clock since put back counts from now.
pub fn dated_at_most(
    changed_ms: i64,
    pinned_until_ms: Option<i64>,
    bounds: &StoreBounds,
    now_ms: i64,
) -> (i64, Option<i64>) {
    (
        changed_ms.min(now_ms),
        pinned_until_ms.map(|until| until.min(now_ms.saturating_add(bounds.pin_ms))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::DocKind;
    use crate::model::{DivisionCode, Jurisdiction, Level, System};
    use crate::workflow::Status;

    const NOW: i64 = 1_800_000_000_000;

    fn chief() -> User {
        User {
            id: "chief".into(),
            username: "chief".into(),
            display_name: "村河长".into(),
            role: Role::Chief {
                system: System::River,
                level: Level::Village,
                jurisdiction: Jurisdiction {
                    division: division(),
                    assets: vec!["asset".into()],
                },
            },
            active: true,
        }
    }

    fn division() -> DivisionCode {
        DivisionCode::new("370105001001").expect("a village code")
    }

    fn meta(kind: DocKind, owner: &str) -> DocMeta {
        DocMeta {
            id: String::new(),
            kind,
            system: System::River,
            asset: "asset".into(),
            division: division(),
            owner: owner.into(),
            assignee: None,
            status: None,
            closed_at_ms: None,
            escalated: false,
        }
    }

    fn held(id: &str, meta: DocMeta, bytes: u64, days_ago: i64) -> HeldDoc {
        HeldDoc {
            id: id.into(),
            meta: Some(meta),
            bytes,
            changed_ms: NOW - days_ago * DAY_MS,
            unsent: false,
            quarantined: false,
            pinned_until_ms: None,
        }
    }

    fn bounds() -> StoreBounds {
        StoreBounds::default()
    }

    #[test]
    fn each_row_of_the_table() {
        let user = chief();
        let b = bounds();
        let other = held("p", meta(DocKind::Patrol, "someone"), 10, 0);
        assert_eq!(
            kept(&user, &other, &b, NOW),
            None,
            "another's patrol may go"
        );
        let unsent = HeldDoc {
            unsent: true,
            ..other.clone()
        };
        assert_eq!(kept(&user, &unsent, &b, NOW), Some(Keep::Unsent));
        let refused = HeldDoc {
            quarantined: true,
            ..other.clone()
        };
        assert_eq!(kept(&user, &refused, &b, NOW), Some(Keep::Quarantined));
        let pinned = HeldDoc {
            pinned_until_ms: Some(NOW + 1),
            ..other.clone()
        };
        assert_eq!(kept(&user, &pinned, &b, NOW), Some(Keep::Pinned));
        let expired = HeldDoc {
            pinned_until_ms: Some(NOW),
            ..other.clone()
        };
        assert_eq!(kept(&user, &expired, &b, NOW), None, "a pin ends");
        let damaged = HeldDoc {
            meta: None,
            ..other.clone()
        };
        assert_eq!(kept(&user, &damaged, &b, NOW), Some(Keep::Unreadable));

        let mut issue = meta(DocKind::Issue, "someone");
        issue.assignee = Some(Assignee::User("chief".into()));
        issue.status = Some(Status::Assigned);
        let assigned = held("i", issue.clone(), 10, 400);
        assert_eq!(kept(&user, &assigned, &b, NOW), Some(Keep::AssignedOpen));
        issue.status = Some(Status::Closed);
        let closed = held("i", issue.clone(), 10, 400);
        assert_eq!(kept(&user, &closed, &b, NOW), None, "a closed one may go");
        issue.status = Some(Status::Assigned);
        issue.assignee = Some(Assignee::User("other".into()));
        // Open on the chief's own stretch: their phone receives it, it waits for them too.
        let on_their_stretch = held("i", issue.clone(), 10, 400);
        assert_eq!(kept(&user, &on_their_stretch, &b, NOW), Some(Keep::Waiting));
        // Open but not delivered to them (a forest problem in the same village).
        issue.system = System::Forest;
        let elsewhere = held("i", issue, 10, 400);
        assert_eq!(kept(&user, &elsewhere, &b, NOW), None);

        let own = held("o", meta(DocKind::Patrol, "chief"), 10, 29);
        assert_eq!(kept(&user, &own, &b, NOW), Some(Keep::OwnRecent));
        let own_old = held("o", meta(DocKind::Patrol, "chief"), 10, 30);
        assert_eq!(kept(&user, &own_old, &b, NOW), None);
    }

    #[test]
    fn a_department_keeps_its_open_assignments() {
        let handler = User {
            role: Role::Handler {
                department: "区水务局".into(),
            },
            ..chief()
        };
        let mut issue = meta(DocKind::Issue, "someone");
        issue.assignee = Some(Assignee::Department("区水务局".into()));
        issue.status = Some(Status::Assigned);
        let doc = held("i", issue.clone(), 10, 400);
        assert_eq!(
            kept(&handler, &doc, &bounds(), NOW),
            Some(Keep::AssignedOpen)
        );
        // The village chief's phone receives it as an open problem of their stretch.
        assert_eq!(kept(&chief(), &doc, &bounds(), NOW), Some(Keep::Waiting));
        let mut forest = doc.clone();
        forest.meta.as_mut().unwrap().system = System::Forest;
        assert_eq!(
            kept(&handler, &forest, &bounds(), NOW),
            Some(Keep::AssignedOpen)
        );
        let mut other_department = doc;
        other_department.meta.as_mut().unwrap().assignee =
            Some(Assignee::Department("区环卫管护服务中心".into()));
        assert_eq!(kept(&handler, &other_department, &bounds(), NOW), None);
    }

    #[test]
    fn aged_documents_go_and_young_ones_stay_under_the_limit() {
        let user = chief();
        let docs = vec![
            held("young", meta(DocKind::Patrol, "x"), 10, 1),
            held("old", meta(DocKind::Patrol, "x"), 10, 60),
            held("older", meta(DocKind::Patrol, "x"), 10, 90),
            held("own-old", meta(DocKind::Patrol, "chief"), 10, 90),
        ];
        assert_eq!(
            evictions(&user, &docs, &bounds(), NOW),
            // Longest unchanged first, ties by id.
            vec![
                "older".to_string(),
                "own-old".to_string(),
                "old".to_string()
            ],
        );
    }

    #[test]
    fn over_the_size_the_longest_unchanged_go_until_under_it() {
        let user = chief();
        let b = StoreBounds {
            max_bytes: 25,
            ..bounds()
        };
        let docs = vec![
            held("a", meta(DocKind::Patrol, "x"), 10, 3),
            held("b", meta(DocKind::Patrol, "x"), 10, 2),
            held("c", meta(DocKind::Patrol, "x"), 10, 1),
            held("mine", meta(DocKind::Patrol, "chief"), 10, 5),
        ];
        // 40 bytes: "a" then "b" go (40 → 20), "mine" is recent own work.
        assert_eq!(
            evictions(&user, &docs, &b, NOW),
            vec!["a".to_string(), "b".to_string()]
        );
    }

    #[test]
    fn unsent_work_is_never_the_price_of_space() {
        let user = chief();
        let b = StoreBounds {
            max_bytes: 1,
            max_age_ms: 0,
            own_recent_ms: 0,
            pin_ms: 0,
        };
        let mut unsent = held("unsent", meta(DocKind::Patrol, "x"), 1_000_000, 10_000);
        unsent.unsent = true;
        let mut refused = held("refused", meta(DocKind::Issue, "x"), 1_000_000, 10_000);
        refused.quarantined = true;
        let free = held("free", meta(DocKind::Patrol, "x"), 1, 0);
        let out = evictions(&user, &[unsent, refused, free], &b, NOW);
        assert_eq!(out, vec!["free".to_string()]);
    }

    #[test]
    fn the_store_time_holds_through_a_clock_set_back_but_not_a_reading_far_ahead() {
        let bounds = StoreBounds::default();
        let t = 1_764_291_600_000;
        assert_eq!(
            store_time(None, t, &bounds),
            (t, Some(t)),
            "first reading kept"
        );
        assert_eq!(
            store_time(Some(t), t + 60_000, &bounds),
            (t + 60_000, None),
            "kept to the hour"
        );
        assert_eq!(
            store_time(Some(t), t + 2 * 3_600_000, &bounds),
            (t + 2 * 3_600_000, Some(t + 2 * 3_600_000))
        );
        let set_back = t - 60 * DAY_MS;
        assert_eq!(
            store_time(Some(t), set_back, &bounds),
            (t, None),
            "stands still"
        );
        let far_behind = t - 61 * DAY_MS;
        assert_eq!(
            store_time(Some(t), far_behind, &bounds),
            (far_behind, Some(far_behind))
        );
        assert_eq!(store_time(Some(i64::MIN), i64::MAX, &bounds).0, i64::MAX);
        assert_eq!(store_time(Some(i64::MAX), i64::MIN, &bounds).0, i64::MIN);
        assert_eq!(
            dated_at_most(t + DAY_MS, Some(t + 9 * DAY_MS), &bounds, t),
            (t, Some(t + bounds.pin_ms))
        );
        assert_eq!(
            dated_at_most(t - DAY_MS, None, &bounds, t),
            (t - DAY_MS, None)
        );
    }
}
