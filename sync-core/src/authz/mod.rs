//! Which automerge changes a user may make, which documents a user may read (`in_scope`) and
//! which of those their phones receive at sync (`delivered`, `need`): the server calls this for
//! every change a device sends before anything is merged or stored.
//!
//! A change is judged against the document as its author saw it (the state at the change's
//! dependencies): two supervisors who both saw a submitted rectification may both act offline,
//! both changes are accepted. What their events then do is decided by the server's order, not
//! by the sender: the server gives every event it accepts a receipt after all the events it
//! accepted before (`IssueDoc::accept`), judged against that state with the sender's role, and
//! the fold follows the receipts, so a late event counts or is marked superseded but never
//! rewrites what came before it. What is checked, in this order:
//!
//! 1. the change's actor is the one bound to the authenticated (user, device) and the user is
//!    active;
//! 2. the change applies, and the resulting document follows the schema (`schema`);
//! 3. header fields never change, containers are never replaced, append-only lists only grow
//!    at their end (`schema::diff`);
//! 4. the user may touch the document at all (`meta::in_scope`), owns what they create, and
//!    may change what changed: on a patrol only its chief; on an issue the record fields only
//!    its reporter or a supervisor, and every appended event is in the user's own name and
//!    allowed by the workflow's transition table (`change`), with an id no other event of the
//!    merged document has; the server's receipts (`order`) are never touched by a device.
//!
//! `batch` runs a device's changes for one document through these checks in causal order.
//! This module is sans-IO: no storage, no clock, no HTTP; the server supplies the documents.
//!
//! ```
//! use automerge::AutoCommit;
//! use sync_core::authz::{authorize_batch, in_scope, DocMeta};
//! use sync_core::doc::{actor_for, IssueDoc, NewIssue, Record};
//! use sync_core::model::{DivisionCode, Jurisdiction, Level, Role, Severity, System, User};
//!
//! let village = DivisionCode::new("370105014201").unwrap();
//! let chief = User {
//!     id: "u-chief".into(),
//!     username: "demo-chief".into(),
//!     display_name: "小寨村河长".into(),
//!     role: Role::Chief {
//!         system: System::River,
//!         level: Level::Village,
//!         jurisdiction: Jurisdiction { division: village.clone(), assets: vec!["xqh-01".into()] },
//!     },
//!     active: true,
//! };
//! let new = NewIssue {
//!     system: System::River,
//!     category: "river.garbage".into(),
//!     severity: Severity::General,
//!     asset: "xqh-01".into(),
//!     division: village,
//!     location: [116.98, 36.72],
//!     description: "河面漂浮垃圾".into(),
//!     patrol: None,
//! };
//! // The phone reports offline with the actor bound to (chief, phone-1) at login.
//! let bound = actor_for(1);
//! let mut phone = IssueDoc::report(bound.clone(), &chief, "phone-1", 1_700_000_000_000, &new)
//!     .unwrap();
//! let changes = phone.am_mut().get_changes(&[]);
//!
//! // The server has nothing of this issue yet.
//! let mut server = AutoCommit::new();
//! let outcome = authorize_batch(&chief, &bound, phone.id(), &mut server, changes.clone());
//! assert_eq!(outcome.accepted.len(), 1);
//! assert!(outcome.refused.is_empty());
//! let meta = DocMeta::of(&server).unwrap();
//! assert!(in_scope(&chief, &meta));
//!
//! // The same changes from an actor bound to some other device are refused.
//! let mut empty = AutoCommit::new();
//! let outcome = authorize_batch(&chief, &actor_for(2), phone.id(), &mut empty, changes);
//! assert_eq!(outcome.refused[0].1.code(), "actor_not_bound");
//! ```

mod batch;
mod change;
mod meta;
mod need;
mod oversight;
mod placement;
mod schema;

#[cfg(test)]
mod tests;

pub use batch::{authorize_batch, BatchOutcome};
pub use change::{authorize_change, MAX_OP_COUNTER_SLACK};
pub use meta::{in_scope, reads_audit, supervises, DocMeta};
pub use need::{delivered, IssueReach, Reach, CLOSED_KEPT_DAYS, DELIVERY_RULE};
pub use oversight::oversees;
pub use placement::{check_category, check_placement, Placement, MAX_REPORT_DISTANCE_M};

use automerge::{ActorId, ChangeHash};

use crate::doc::DocError;
use crate::workflow::TransitionError;

/// Why a change was refused. A refused change is never merged; the device keeps it in its
/// quarantine and shows the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the change was made by actor {actor}, which is not bound to this user's device")]
    ActorNotBound { actor: ActorId },
    #[error("user {user} is deactivated and may not change anything")]
    Inactive { user: String },
    #[error("the change cannot be applied: {0}")]
    Malformed(String),
    #[error("the document would not follow the schema: {0}")]
    Schema(String),
    #[error("{field} is fixed when the document is created and never changes")]
    ImmutableField { field: String },
    #[error("{list} is append-only: existing entries may not be edited, removed or reordered")]
    HistoryRewrite { list: String },
    #[error("the document is outside the user's scope")]
    OutOfScope,
    #[error("{0}")]
    NotOwner(String),
    #[error("event {event} is in the name of {by}, but the change comes from {user}")]
    ForgedAuthor {
        event: String,
        by: String,
        user: String,
    },
    #[error("event id {0} is already in the timeline")]
    DuplicateEvent(String),
    #[error("{field} is written by the server alone")]
    ServerOnly { field: String },
    #[error("event {event} claims to come from {device}, a name only the server writes")]
    ForgedDevice { event: String, device: String },
    #[error("the record's place does not agree with the reference data: {0}")]
    Misplaced(String),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error("depends on a refused change ({0})")]
    DependsOnRefused(ChangeHash),
    #[error(
        "the change numbers its operations from {start_op}, but what it was made on justifies \
         at most {justified}"
    )]
    OpCounterJump { start_op: u64, justified: u64 },
}

impl Refusal {
    /// A stable machine-readable code, for API error bodies and the device's quarantine.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::ActorNotBound { .. } => "actor_not_bound",
            Refusal::Inactive { .. } => "inactive_user",
            Refusal::Malformed(_) => "malformed",
            Refusal::Schema(_) => "schema",
            Refusal::ImmutableField { .. } => "immutable_field",
            Refusal::HistoryRewrite { .. } => "history_rewrite",
            Refusal::OutOfScope => "out_of_scope",
            Refusal::NotOwner(_) => "not_owner",
            Refusal::ForgedAuthor { .. } => "forged_author",
            Refusal::DuplicateEvent(_) => "duplicate_event",
            Refusal::ServerOnly { .. } => "server_only",
            Refusal::Misplaced(_) => "misplaced",
            Refusal::ForgedDevice { .. } => "forged_device",
            Refusal::Transition(_) => "transition",
            Refusal::DependsOnRefused(_) => "depends_on_refused",
            Refusal::OpCounterJump { .. } => "op_counter_jump",
        }
    }
}

impl From<DocError> for Refusal {
    /// A document the views cannot read does not follow the schema, whatever the reason.
    fn from(e: DocError) -> Self {
        match e {
            DocError::Schema(why) => Refusal::Schema(why),
            other => Refusal::Schema(other.to_string()),
        }
    }
}
