//! Routing facts: the few fields of a document that decide who receives it, and the rule that
//! decides it. The server stores a `DocMeta` beside each document so it can route without
//! loading documents; it must recompute it whenever it merges a change (an issue's assignee
//! moves with its events).

use automerge::AutoCommit;
use serde::{Deserialize, Serialize};

use super::schema::{self, Reading};
use crate::doc::{self, DocError, DocKind, Issue, Patrol};
use crate::model::{DivisionCode, Role, System, User};
use crate::workflow::{self, Assignee, IssueState, Status};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocMeta {
    pub id: String,
    pub kind: DocKind,
    pub system: System,
    pub asset: String,
    pub division: DivisionCode,
    /// The patrol's chief or the issue's reporter.
    pub owner: String,
    /// Issues only: whom the workflow fold says the issue is assigned to.
    pub assignee: Option<Assignee>,
    /// Issues only: the folded status.
    pub status: Option<Status>,
    /// Issues only: when the workflow finished the issue (verified, invalid or duplicate); a
    /// closed issue leaves phones' delivery some time after ([`super::delivered`]). Facts
    /// stored before this was kept read as `None`, and such a closed issue is delivered as
    /// before until it changes (its facts are then written anew).
    #[serde(default)]
    pub closed_at_ms: Option<i64>,
    /// Issues only: open and escalated (督办) since its latest assignment, so the chiefs above
    /// the place receive it ([`super::delivered`]). Facts stored before this was kept read as
    /// `true`: an escalation there may not be hidden from the chiefs who must act on it, so
    /// such an issue reaches every chief in scope, as it did, until it changes.
    #[serde(default = "unknown_escalation")]
    pub escalated: bool,
}

/// What facts stored before escalations were kept say of one: possibly escalated.
fn unknown_escalation() -> bool {
    true
}

impl DocMeta {
    /// Reads the routing facts of a patrol or issue document.
    pub fn of(doc: &AutoCommit) -> Result<DocMeta, DocError> {
        let id = doc::header(doc)?.id;
        let (_, reading) = schema::read(&id, doc.clone())?;
        Ok(Self::from_reading(&reading))
    }

    /// Whether these facts hold for every later state of the document, so a copy that
    /// changed need not be read again for them: a patrol's are all header fields (id, system,
    /// asset, division, chief), written when it is created and never again (`schema`'s header
    /// rule); an issue's follow its workflow.
    pub fn lasts(&self) -> bool {
        self.kind == DocKind::Patrol
    }

    pub(super) fn from_reading(reading: &Reading) -> DocMeta {
        match reading {
            Reading::Patrol(patrol) => Self::of_patrol(patrol),
            Reading::Issue {
                issue,
                events,
                receipts,
            } => Self::of_issue(issue, &workflow::fold_ordered(events, receipts)),
        }
    }

    pub(super) fn of_patrol(patrol: &Patrol) -> DocMeta {
        DocMeta {
            id: patrol.id.clone(),
            kind: DocKind::Patrol,
            system: patrol.system,
            asset: patrol.asset.clone(),
            division: patrol.division.clone(),
            owner: patrol.chief.clone(),
            assignee: None,
            status: None,
            closed_at_ms: None,
            escalated: false,
        }
    }

    /// An issue's facts with its workflow `state` (which may be an earlier one than the fold of
    /// all its events).
    pub(super) fn of_issue(issue: &Issue, state: &IssueState) -> DocMeta {
        DocMeta {
            id: issue.id.clone(),
            kind: DocKind::Issue,
            system: issue.system,
            asset: issue.asset.clone(),
            division: issue.division.clone(),
            owner: issue.reporter.clone(),
            assignee: state.assignee.clone(),
            status: state.status,
            closed_at_ms: state.closed_at_ms,
            escalated: state.status.is_some_and(Status::is_open)
                && workflow::escalated_since_assignment(state),
        }
    }
}

/// Whether the document described by `meta` is in `user`'s scope: what they may read (and,
/// with the checks of `authz`, change). Their phones receive a part of it
/// ([`super::delivered`]).
///
/// Everyone may read what they own and issues assigned to them by name. Beyond that a chief
/// may read the documents of their jurisdiction (same system, and one of their assets or a
/// place inside their division), a supervisor those of their system inside their division, a
/// handler the issues assigned to their department, an admin everything; a deactivated user
/// nothing.
pub fn in_scope(user: &User, meta: &DocMeta) -> bool {
    if !user.active {
        return false;
    }
    if meta.owner == user.id {
        return true;
    }
    if let Some(Assignee::User(id)) = &meta.assignee {
        if *id == user.id {
            return true;
        }
    }
    match &user.role {
        Role::Chief {
            system,
            jurisdiction,
            ..
        } => {
            *system == meta.system
                && (jurisdiction.assets.contains(&meta.asset)
                    || jurisdiction.division.contains(&meta.division))
        }
        Role::Supervisor { .. } | Role::Admin => supervises(user, meta.system, &meta.division),
        Role::Handler { department } => {
            matches!(&meta.assignee, Some(Assignee::Department(d)) if d == department)
        }
    }
}

/// Whether `user` is the office supervising the place (`system`, `division`), or an
/// administrator: who reads every record there, enters hotline and letter reports for it and
/// reads a public report's phone number.
pub fn supervises(user: &User, system: System, division: &DivisionCode) -> bool {
    match &user.role {
        Role::Supervisor {
            system: own,
            division: office,
        } => *own == system && office.contains(division),
        Role::Admin => true,
        _ => false,
    }
}

/// Whether `user` reads the audit facts of the records in their scope: which user and device
/// delivered each change and when the server received it. Supervisors and administrators do;
/// chiefs and handlers see the records and their timelines without them.
pub fn reads_audit(user: &User) -> bool {
    matches!(user.role, Role::Supervisor { .. } | Role::Admin)
}
