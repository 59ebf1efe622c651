//! What a phone receives: the documents its user needs offline, a part of what they may read.
//!
//! [`super::in_scope`] says what a user may read and write: a chief their whole jurisdiction.
//! Sending all of it to every phone made a district chief's phone receive every patrol walked in
//! the district (about 3,300 documents and 27 MB a week at 1,000 chiefs) and a new phone the
//! whole history. A phone receives instead what its user works on; anything else in their
//! scope stays readable on demand (`GET /docs/{id}`, the automerge sync of one document), and
//! writes are authorized by [`super::in_scope`] as before.
//!
//! | who | document | state | delivered |
//! |---|---|---|---|
//! | anyone | their own patrol, or an issue they reported | any | yes |
//! | anyone | an issue assigned to them by name | any | yes |
//! | village chief | issue of their jurisdiction | open | yes |
//! | village chief | issue of their jurisdiction | closed less than [`CLOSED_KEPT_DAYS`] ago | yes |
//! | subdistrict or district chief | issue on an asset they lead | open | yes |
//! | subdistrict or district chief | issue on an asset they lead | closed less than [`CLOSED_KEPT_DAYS`] ago | yes |
//! | subdistrict or district chief | issue of their jurisdiction escalated (督办) since its latest assignment | open | yes |
//! | subdistrict or district chief | any other issue of their jurisdiction | any | no |
//! | chief of any level | another chief's patrol | any | no |
//! | supervisor (office) | issue of their system inside their division awaiting the office: reported, accepted and not yet assigned, or a rectification submitted for verification | open | yes |
//! | supervisor (office) | issue of their system inside their division escalated (督办) since its latest assignment | open | yes |
//! | supervisor (office) | issue assigned to a department and not yet submitted, or closed | any | no |
//! | supervisor (office) | patrol | any | no |
//! | handler | issue assigned to their department and not yet submitted (rejected ones again) | open | yes |
//! | handler | issue of their department submitted for verification, or closed | any | no |
//! | administrator | as a supervisor of every system and place | | |
//! | anyone | issue closed [`CLOSED_KEPT_DAYS`] or more ago (not their own, not assigned to them by name) | closed | no |
//! | deactivated user | anything | any | no |
//!
//! Why offices receive issues and no patrols: on the phone an office works the problems —
//! accepting, assigning, checking a rectification on site, verifying, escalating — and has
//! them offline where it goes; patrols are reviewed on the web desk from the statistics, and a
//! single patrol is read on demand.
//!
//! Why offices and departments receive only the problems waiting for them: receiving every
//! open problem of their system made an office's phone receive each problem again at every
//! step of its loop, the department's steps included (about 1,950 documents a week for an
//! office of the 1,000-chief bench, 1,300 for a department). An office acts when a problem is
//! reported (accept, assign, or refuse it) and when a rectification is submitted (verify or
//! reject), a department between assignment and submission; escalated problems stay with the
//! office until they are assigned again. A problem leaves the office's phone while the
//! department works on it and comes back, whole, when the rectification is submitted: two
//! deliveries of each problem instead of one at every step. What the office assigned, and the
//! closed ones, stay readable on demand and in the overview's figures.
//!
//! A document that stops being delivered because of a change (reassigned away, an escalation
//! answered by a new assignment, the jurisdiction moved) is removed from phones that hold it at
//! their next sync, unless it holds their unsent work. A closed issue that ages out changes
//! nothing on the server, so phones already holding it keep it until they drop it themselves,
//! or until it changes again.

use super::DocMeta;
use crate::doc::DocKind;
use crate::model::{DivisionCode, Level, Role, User};
use crate::workflow::{Assignee, Status};

/// How long a closed issue keeps being delivered: long enough for the chiefs and the office to
/// see the result of a problem they followed, and for a reopening within the month.
pub const CLOSED_KEPT_DAYS: i64 = 30;

const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// Increases whenever the table above changes, so every device's next sync re-routes all it
/// holds under the new rule.
pub const DELIVERY_RULE: u32 = 2;

/// Whether the issue of `meta` is open, or closed less than [`CLOSED_KEPT_DAYS`] before
/// `now_ms`. A closed issue without a known closing time (facts stored before it was kept)
/// is still delivered, as it was under the earlier rule: its facts are written anew when it
/// next changes.
fn current(meta: &DocMeta, now_ms: i64) -> bool {
    match meta.status {
        // An issue whose report did not count yet is still waiting for its first state.
        None => true,
        Some(status) if status.is_open() => true,
        Some(_) => meta
            .closed_at_ms
            .is_none_or(|at| now_ms.saturating_sub(at) < CLOSED_KEPT_DAYS * DAY_MS),
    }
}

/// Whether `user`'s phones receive the document of `meta` at `now_ms` (the table of this
/// module). Always a part of [`super::in_scope`].
pub fn delivered(user: &User, meta: &DocMeta, now_ms: i64) -> bool {
    if !user.active || !super::in_scope(user, meta) {
        return false;
    }
    if meta.owner == user.id {
        return true;
    }
    if matches!(&meta.assignee, Some(Assignee::User(id)) if *id == user.id) {
        return true;
    }
    if meta.kind != DocKind::Issue || !current(meta, now_ms) {
        return false;
    }
    match &user.role {
        Role::Chief {
            level: Level::Village,
            ..
        } => true,
        Role::Chief { jurisdiction, .. } => {
            jurisdiction.assets.contains(&meta.asset) || meta.escalated
        }
        // In scope: the office's system and division. What waits for the office.
        Role::Supervisor { .. } | Role::Admin => {
            meta.escalated
                || matches!(
                    meta.status,
                    None | Some(Status::Reported | Status::Accepted | Status::Submitted)
                )
        }
        // In scope: assigned to the department. What waits for the department.
        Role::Handler { .. } => meta.status == Some(Status::Assigned),
    }
}

/// Where the documents a user's phones receive can lie, for a store that indexes its documents
/// by owner, assignee and place ([`crate::hub::DocumentStore::delivered_page`]): every document
/// [`delivered`] accepts for the user is one that [`Reach::covers`]. A first sync then walks
/// the user's own work and the problems of their place, not every problem of the district.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    /// Documents owned by or assigned by name to this user, of any kind and place.
    pub user: String,
    /// The issues besides.
    pub issues: IssueReach,
}

/// Where the issues a user's phones receive can lie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueReach {
    /// Anywhere: an administrator's.
    Anywhere,
    /// Assigned to this department ([`Assignee::Department`]), wherever they lie.
    AssignedTo(String),
    /// Inside one of the divisions ([`DivisionCode::contains`]) or on one of the assets.
    Within {
        divisions: Vec<DivisionCode>,
        assets: Vec<String>,
    },
}

impl Reach {
    /// Where `user`'s phones' documents lie. It follows [`super::in_scope`], which
    /// [`delivered`] never goes beyond: a chief reads their jurisdiction's division and assets,
    /// an office its division, a department the issues assigned to it.
    pub fn of(user: &User) -> Reach {
        let issues = if !user.active {
            IssueReach::Within {
                divisions: Vec::new(),
                assets: Vec::new(),
            }
        } else {
            match &user.role {
                Role::Chief { jurisdiction, .. } => IssueReach::Within {
                    divisions: vec![jurisdiction.division.clone()],
                    assets: jurisdiction.assets.clone(),
                },
                Role::Supervisor { division, .. } => IssueReach::Within {
                    divisions: vec![division.clone()],
                    assets: Vec::new(),
                },
                Role::Handler { department } => IssueReach::AssignedTo(department.clone()),
                Role::Admin => IssueReach::Anywhere,
            }
        };
        Reach {
            user: user.id.clone(),
            issues,
        }
    }

    /// Whether the document of `meta` lies where this reach says: a store's walk of the reach
    /// must find every such document.
    pub fn covers(&self, meta: &DocMeta) -> bool {
        if meta.owner == self.user
            || matches!(&meta.assignee, Some(Assignee::User(id)) if *id == self.user)
        {
            return true;
        }
        if meta.kind != DocKind::Issue {
            return false;
        }
        match &self.issues {
            IssueReach::Anywhere => true,
            IssueReach::AssignedTo(department) => {
                matches!(&meta.assignee, Some(Assignee::Department(d)) if d == department)
            }
            IssueReach::Within { divisions, assets } => {
                divisions.iter().any(|d| d.contains(&meta.division)) || assets.contains(&meta.asset)
            }
        }
    }
}
